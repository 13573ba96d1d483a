//! The `thermoalert` binary: parses the command line, wires Kafka (real or embedded), the
//! pipeline, the archive and the web app together, and runs them until interrupted.

mod config;
mod http;
mod operators;
mod telemetry;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use leptos::config::get_configuration;
use thermoalert_app::live::LiveHub;
use thermoalert_app::settings::Settings;
use thermoalert_pipeline::archive::{LocalStore, Store};
use thermoalert_pipeline::history::History;
use thermoalert_pipeline::index::Index;
use thermoalert_pipeline::kafka::{self, EmbeddedBroker, TopicPlan, feed};
use thermoalert_pipeline::processor::Processor;
use thermoalert_pipeline::runner::{self, ConsumerDelay, Runner, SensorLimit, Sinks};
use thermoalert_pipeline::simulate::SimulatorConfig;
use thermoalert_pipeline::upkeep::{self, ArchiveGate, Upkeep};
use tokio::sync::watch;
use tracing::info;

use crate::config::{Cli, Command, LogFormat, NotifyCommand, ServeArgs, SimulateArgs};

/// Capacity of the live broadcast, in batches: how far a browser may fall behind before it
/// skips ahead (a batch holds about `live::BATCH_BYTES`).
const LIVE_CAPACITY: usize = 1024;
/// How long a shutdown may take to flush and commit before the process gives up.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the process may take beyond [`SHUTDOWN_TIMEOUT`] to let go of its clients and
/// runtimes before it ends regardless.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long start-up waits for a configured Kafka broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

fn main() -> anyhow::Result<()> {
    keep_signals_from_the_jvm();
    fixed_mmap_threshold();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run());
    // Blocking work still running (an archive call, a history query) is not waited for: the
    // process is done.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The pipeline's own runtime: one worker thread for the run loop and the flushes it
/// starts. On the web's runtime, every wake-up of the pipeline (each await of a flush: the
/// archive, the index, the broker) queued behind whatever the web had ready; with 1 000
/// live-stream writers that was seconds per flush, and consumption paused meanwhile.
struct PipelineRuntime(Option<tokio::runtime::Runtime>);

impl PipelineRuntime {
    fn start() -> anyhow::Result<PipelineRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pipeline")
            .enable_all()
            .build()
            .context("starting the pipeline's runtime")?;
        Ok(PipelineRuntime(Some(runtime)))
    }

    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.0.as_ref().expect("the runtime lives until dropped").spawn(task)
    }
}

impl Drop for PipelineRuntime {
    /// Dropped from async code (`serve`), where a runtime may only be let go in the
    /// background; by then the pipeline task has ended or the process is giving up.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB), so after
/// the first login argon2's 19 MiB blocks came from the heap arenas, which kept them: 20
/// logins at once left 310 MB resident (measured; 38 MB with this). A fixed threshold keeps
/// blocks that large mapped on their own, given back to the system when freed.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a tuning call on the allocator, made before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// The JVM that libhdfs starts would install its own SIGTERM/SIGINT handlers and end the
/// process before it flushes and commits; `-Xrs` leaves the signals to us. Set before any
/// thread exists (the container's entrypoint sets it too).
fn keep_signals_from_the_jvm() {
    let opts = std::env::var("LIBHDFS_OPTS").unwrap_or_default();
    if !opts.split_whitespace().any(|o| o == "-Xrs") {
        let opts = format!("{opts} -Xrs").trim().to_owned();
        // SAFETY: called first thing in `main`, while the process has a single thread.
        unsafe { std::env::set_var("LIBHDFS_OPTS", opts) };
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Some(Command::Simulate(args)) => simulate(args).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Operator(command)) => operators::run(command),
        Some(Command::Notify(NotifyCommand::Check { file })) => {
            let (_, notify) = thermoalert_pipeline::notify::file::load(&file)?;
            let (c, r, s) =
                (notify.contact_points.len(), notify.routes.len(), notify.silences.len());
            println!("{}: {c} contact points, {r} routes, {s} silences: OK", file.display());
            Ok(())
        }
        // `thermoalert` alone serves, with the flags' environment fallbacks.
        None => serve(Cli::parse_from(["thermoalert", "serve"]).serve_args()).await,
    }
}

impl Cli {
    fn serve_args(self) -> ServeArgs {
        match self.command {
            Some(Command::Serve(args)) => *args,
            _ => unreachable!("parsed from `serve`"),
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut core = args.processor_config()?;
    let metrics = telemetry::install()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let plan = TopicPlan { partitions: args.partitions };

    // Kafka: the configured cluster, or an embedded one fed by the built-in simulator.
    let embedded;
    let brokers = match &args.kafka_brokers {
        Some(brokers) => {
            kafka::ensure_topics(brokers, &plan, BROKER_TIMEOUT)
                .await
                .with_context(|| format!("THERMO_KAFKA_BROKERS={brokers}"))?;
            embedded = None;
            brokers.clone()
        }
        None => {
            let broker = EmbeddedBroker::start(&plan)?;
            let bootstrap = broker.bootstrap_servers().to_owned();
            embedded = Some(broker);
            bootstrap
        }
    };

    let store = open_store(&args)?;
    let index_path = args.data_dir.join("index.sqlite");
    let index = Index::open(&index_path).await?;
    let hub = LiveHub::new(LIVE_CAPACITY);
    info!(
        kafka = if embedded.is_some() {
            "embedded (in-process mock cluster)".to_owned()
        } else {
            config::mask_password(&brokers)
        },
        archive = %store.location(),
        index = %index_path.display(),
        "starting ThermoAlert"
    );
    info!(config = %args.effective(), "effective configuration");

    let mut tasks = tokio::task::JoinSet::<anyhow::Result<()>>::new();
    // Sensors' episodes and windows continue where this instance saved them, restored
    // partition by partition as the group assigns them (see `thermoalert_pipeline::runner`).
    // Thresholds saved from the dashboard win over the configured ones: they are newer.
    let table = Arc::make_mut(&mut core.thresholds);
    for (sensor, saved) in index.saved_thresholds().await? {
        if let Some(configured) = table.per_sensor.get(&sensor).filter(|c| **c != saved) {
            info!(%sensor, ?configured, ?saved, "using the thresholds saved from the dashboard");
        }
        table.per_sensor.insert(sensor, saved);
    }
    let (settings, thresholds) = Settings::new(&core);
    let operators = operators::load(&args)?;
    let gate = ArchiveGate::default();
    let sensor_limit = SensorLimit::default();
    let delay = ConsumerDelay::default();
    let processor = Processor::new(core);
    let rebalances = kafka::Rebalances::default();
    let consumer = Arc::new(kafka::readings_consumer(
        &brokers,
        &args.group,
        rebalances.clone(),
        runner::metrics::consumer_lag(),
    )?);
    // One client for alerts, dead letters and readiness checks (clones share it).
    let producer = kafka::producer(&brokers)?;
    let runner = Runner {
        consumer: Arc::clone(&consumer),
        processor,
        sinks: Sinks {
            consumer,
            producer: producer.clone(),
            store: Arc::clone(&store),
            index: index.clone(),
            gate: Arc::clone(&gate),
        },
        live: hub.clone(),
        writer_id: writer_id(),
        flush_interval: args.flush_interval,
        rebalances,
        thresholds,
        limits: args.parse_limits(),
        sensor_limit: sensor_limit.clone(),
        delay: delay.clone(),
    };
    let pipeline = PipelineRuntime::start()?;
    let runner = pipeline.spawn(runner.run(shutdown_rx.clone()));
    tasks.spawn(async move { Ok(runner.await.context("the pipeline task panicked")??) });
    let upkeep = Upkeep { index: index.clone(), store: Arc::clone(&store), gate };
    let (interval, retention, rx) = (args.upkeep_interval, args.retention, shutdown_rx.clone());
    tasks.spawn(async move {
        upkeep::run(upkeep, interval, retention, rx).await;
        Ok(())
    });
    if embedded.is_some() {
        let feed = feed::Feed {
            sim: SimulatorConfig {
                sensors: args.sim_sensors as usize,
                seed: seed_from_clock(),
                excursion_chance: args.sim_excursion_chance,
                ..Default::default()
            },
            rate: args.sim_rate,
            count: None,
            progress: false,
        };
        let producer = kafka::producer(&brokers)?;
        let rx = shutdown_rx.clone();
        tasks.spawn(async move {
            feed::run(feed, producer, rx).await.context("the simulator's feed")?;
            Ok(())
        });
    }

    let conf = get_configuration(None).context("reading the Leptos site configuration")?;
    let addr: SocketAddr = conf.leptos_options.site_addr;
    let app = web::router(web::AppState {
        leptos_options: conf.leptos_options,
        hub,
        history: History::new(index, Arc::clone(&store)),
        metrics,
        kafka: producer,
        store,
        settings,
        operators,
        reads_need_login: args.reads == config::Reads::Operators,
        sensor_limit,
        delay,
        shutdown: shutdown_rx.clone(),
    });
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (set LEPTOS_SITE_ADDR to another address)")
    })?;
    info!("serving http://{addr}");
    let shutdown_web = shutdown_rx.clone();
    let max_connections = http::max_connections();
    info!(max_connections, "connections served at once at most");
    tasks.spawn(async move {
        http::serve(listener, app, max_connections, shutdown_web).await;
        Ok(())
    });

    tokio::select! {
        signal = stop_signal() => info!("{signal}: shutting down (flushing the archive, committing offsets)"),
        Some(result) = tasks.join_next() => {
            // A task ended on its own: that is an error (they run until shutdown).
            let _ = shutdown_tx.send(true);
            result.context("a background task panicked")??;
            bail!("a background task stopped unexpectedly");
        }
    }
    let _ = shutdown_tx.send(true);
    end_process_after(SHUTDOWN_TIMEOUT + SHUTDOWN_GRACE);
    let drained = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
        while let Some(result) = tasks.join_next().await {
            result.context("a background task panicked")??;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => bail!(
            "shutdown took longer than {SHUTDOWN_TIMEOUT:?}; unflushed readings will be replayed at the next start"
        ),
    }
    info!("stopped cleanly");
    drop(embedded);
    Ok(())
}

/// Ends the process with an error once `limit` has passed, whatever it is waiting for then.
/// A graceful stop waits for the last flush; if that flush cannot finish (a broker away, a
/// delivery that never completes), closing the Kafka clients or a runtime could wait for it
/// too, and a stop signal would never end the process. What was not committed is replayed at
/// the next start.
fn end_process_after(limit: Duration) {
    let watchdog = std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
        std::thread::sleep(limit);
        tracing::error!("shutdown still not done after {limit:?}: ending the process now");
        std::process::exit(1);
    });
    if let Err(e) = watchdog {
        tracing::warn!("cannot start the shutdown watchdog: {e}");
    }
}

fn open_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn Store>> {
    match &args.hdfs_url {
        #[cfg(feature = "hdfs")]
        Some(url) => Ok(Arc::new(
            thermoalert_pipeline::archive::HdfsStore::connect(url).context("THERMO_HDFS_URL")?,
        )),
        #[cfg(not(feature = "hdfs"))]
        Some(url) => bail!(
            "THERMO_HDFS_URL={url} is set, but this build has no HDFS support: build with `--features hdfs`"
        ),
        None => {
            let root = args.data_dir.join("archive");
            std::fs::create_dir_all(&root)
                .with_context(|| format!("creating {}", root.display()))?;
            Ok(Arc::new(LocalStore::new(root)))
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (`docker stop`, systemd); returns which.
async fn stop_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// A path-safe token unique to this process run, for archive file names.
fn writer_id() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("w{ms}p{}", std::process::id())
}

fn seed_from_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    // A fresh cluster has no topics yet (and brokers usually do not create them on use).
    let plan = TopicPlan { partitions: args.partitions };
    kafka::ensure_topics(&args.kafka_brokers, &plan, BROKER_TIMEOUT)
        .await
        .with_context(|| format!("THERMO_KAFKA_BROKERS={}", args.kafka_brokers))?;
    let producer = kafka::producer(&args.kafka_brokers)?;
    // Connected before the first reading is stamped: the simulated sensors' clock starts
    // when they can send (otherwise the first burst waits out the connection, ~0.5 s).
    let client = producer.clone();
    tokio::task::spawn_blocking(move || kafka::reachable(&client, Duration::from_secs(30)))
        .await
        .context("metadata request panicked")?
        .with_context(|| format!("cannot reach Kafka at {}", args.kafka_brokers))?;
    let (stop, rx) = watch::channel(false);
    let feed = feed::Feed {
        sim: SimulatorConfig {
            sensors: args.sensors as usize,
            seed: args.seed,
            excursion_chance: args.excursion_chance,
            stuck_chance: args.stuck_chance,
            dropout_chance: args.dropout_chance,
            late_chance: args.late_chance,
            malformed_chance: args.malformed_chance,
        },
        rate: args.rate,
        count: args.count,
        progress: true,
    };
    let run = feed::run(feed, producer, rx);
    tokio::pin!(run);
    // A signal stops the feed, which still waits for what it queued to be acknowledged.
    let sent = tokio::select! {
        r = &mut run => r?,
        signal = stop_signal() => {
            info!("{signal}: stopping");
            let _ = stop.send(true);
            run.await?
        }
    };
    info!(sent, "done");
    Ok(())
}
