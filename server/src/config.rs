//! The command line: every setting is a flag with a `THERMO_*` environment fallback, and
//! `--help` is generated from the doc comments here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use thermoalert_pipeline::duration::parse_duration;
use thermoalert_pipeline::parse::ParseLimits;
use thermoalert_pipeline::processor::ProcessorConfig;
use thermoalert_pipeline::rules::{
    DEFAULT_CRITICAL, DEFAULT_HIGH, DEFAULT_HYSTERESIS, SensorThresholdList, ThresholdTable,
    Thresholds, parse_sensor_thresholds,
};
use thermoalert_pipeline::simulate::DEFAULT_EXCURSION_CHANCE;
use thermoalert_pipeline::window::WindowConfig;

/// ThermoAlert: real-time temperature monitoring and alerting.
#[derive(Debug, Parser)]
#[command(name = "thermoalert", version, about)]
pub struct Cli {
    /// Log lines for people (`human`) or one JSON object per line (`json`), to stderr.
    #[arg(long, global = true, env = "THERMO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Who may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reads {
    Public,
    Operators,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: consume readings, raise alerts, archive, serve the web app (default).
    Serve(Box<ServeArgs>),
    /// Publish simulated sensor readings to Kafka.
    Simulate(SimulateArgs),
    /// Manage the operators who may acknowledge alerts and change thresholds.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Notification settings: contact points, routes, silences.
    #[command(subcommand)]
    Notify(NotifyCommand),
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Check a notifications file (as `serve` will): every entry, and the environment
    /// variables its secrets name. Prints what it sets up, or the first bad entry.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator, or set a new password for one: the password is read from stdin (the
    /// first line), its argon2 hash written to the operators file.
    Add {
        /// The operator's name: letters, digits, `-`, `_`, `.`.
        name: String,
        /// The operators file (`THERMO_DATA_DIR/operators` when unset).
        #[arg(long, env = "THERMO_OPERATORS_FILE")]
        operators_file: Option<PathBuf>,
        /// Where `serve` keeps its data (for the default operators file).
        #[arg(long, env = "THERMO_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Kafka bootstrap servers (host:port,…). Unset: an embedded in-process broker and a
    /// built-in simulator feed the pipeline.
    #[arg(long, env = "THERMO_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// HDFS NameNode URL for the archive (e.g. hdfs://namenode:9000). Unset: the archive
    /// goes to `<data-dir>/archive`.
    #[arg(long, env = "THERMO_HDFS_URL")]
    pub hdfs_url: Option<String>,

    /// Directory for local state: the SQLite index, and the archive when HDFS is not used.
    #[arg(long, env = "THERMO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Default HIGH threshold in °C (readings strictly above are HIGH).
    #[arg(long, env = "THERMO_HIGH", default_value_t = DEFAULT_HIGH)]
    pub high: f64,

    /// Default CRITICAL threshold in °C (readings strictly above are CRITICAL).
    #[arg(long, env = "THERMO_CRITICAL", default_value_t = DEFAULT_CRITICAL)]
    pub critical: f64,

    /// How far (°C) below HIGH a value must fall before an alert episode clears.
    #[arg(long, env = "THERMO_HYSTERESIS", default_value_t = DEFAULT_HYSTERESIS)]
    pub hysteresis: f64,

    /// Thresholds of particular sensors, as `sensor=HIGH/CRITICAL[/HYSTERESIS]` separated by
    /// commas, e.g. `freezer1=-15/-10,oven=200/250/5`. Others use the defaults above.
    #[arg(long, env = "THERMO_SENSOR_THRESHOLDS", value_parser = parse_sensor_thresholds, default_value = "")]
    pub sensor_thresholds: SensorThresholdList,

    /// Length of the event-time windows (aligned to the epoch), e.g. `5m`.
    #[arg(long, env = "THERMO_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,

    /// How far the watermark trails the latest event time: readings later than this after
    /// their window ends revise it instead of counting on time.
    #[arg(long, env = "THERMO_LATENESS", default_value = "30s", value_parser = parse_duration)]
    pub lateness: Duration,

    /// How long a closed window still accepts late readings (each emits a revision).
    #[arg(long, env = "THERMO_REVISE_FOR", default_value = "1h", value_parser = parse_duration)]
    pub revise_for: Duration,

    /// Silence (processing time) after which a known sensor is reported offline.
    #[arg(long, env = "THERMO_OFFLINE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub offline_after: Duration,

    /// Sensors tracked at most: readings of further sensors go to the dead-letter topic with
    /// the reason `sensor_limit` (a producer inventing ids must not exhaust memory).
    #[arg(long, env = "THERMO_MAX_SENSORS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_sensors: u64,

    /// Readings older than this (event time) go to the dead-letter topic with the reason
    /// `too_old`: each past hour would be an archive file of its own.
    #[arg(long, env = "THERMO_MAX_READING_AGE", default_value = "30d", value_parser = parse_duration)]
    pub max_reading_age: Duration,

    /// Consumer group the server joins.
    #[arg(long, env = "THERMO_GROUP", default_value = thermoalert_pipeline::topics::CONSUMER_GROUP)]
    pub group: String,

    /// Partitions of the topics the server creates when they are missing.
    #[arg(long, env = "THERMO_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,

    /// How often buffered archive data is written (then Kafka offsets are committed),
    /// e.g. `10s`, `500ms`, `1m`.
    #[arg(long, env = "THERMO_FLUSH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// How long archive files are kept, e.g. `90d` (unset: forever). Older files are
    /// deleted by the archive upkeep; alerts and window statistics in the index stay.
    #[arg(long, env = "THERMO_RETENTION", value_parser = parse_duration)]
    pub retention: Option<Duration>,

    /// How often the archive upkeep runs: past days' files merged into one per sensor-day,
    /// then retention applied.
    #[arg(long, env = "THERMO_UPKEEP_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub upkeep_interval: Duration,

    /// Sensors of the built-in simulator (embedded mode only).
    #[arg(long, env = "THERMO_SIM_SENSORS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sim_sensors: u32,

    /// Readings per second of each simulated sensor, or `max` (embedded mode only).
    #[arg(long, env = "THERMO_SIM_RATE", default_value = "1", value_parser = thermoalert_pipeline::kafka::feed::parse_rate)]
    pub sim_rate: thermoalert_pipeline::kafka::feed::Rate,

    /// Chance per reading that a simulated sensor starts an excursion above HIGH/CRITICAL
    /// (embedded mode only; raise it for a demo with many alerts).
    #[arg(long, env = "THERMO_SIM_EXCURSION_CHANCE", default_value_t = DEFAULT_EXCURSION_CHANCE, value_parser = parse_chance)]
    pub sim_excursion_chance: f64,

    /// The operators file: one `name:<argon2 hash>` per line (`thermoalert operator add`
    /// writes it). Unset: `THERMO_DATA_DIR/operators`, created at the first start with an
    /// operator `admin` whose password is logged once.
    #[arg(long, env = "THERMO_OPERATORS_FILE")]
    pub operators_file: Option<PathBuf>,

    /// Who may read (pages, the JSON API, the live stream): `public`, or only logged-in
    /// `operators` (then `/login`, `/healthz`, `/readyz` and `/metrics` stay open).
    #[arg(long, env = "THERMO_READS", value_enum, default_value_t = Reads::Public)]
    pub reads: Reads,

    /// Mark the session cookie `Secure` (set when browsers reach the server over HTTPS).
    #[arg(long, env = "THERMO_SECURE_COOKIE", default_value_t = false, action = clap::ArgAction::Set)]
    pub secure_cookie: bool,
}

/// The operators file: the configured one, or `operators` in the data directory.
pub fn operators_file(configured: &Option<PathBuf>, data_dir: &std::path::Path) -> PathBuf {
    configured.clone().unwrap_or_else(|| data_dir.join("operators"))
}

impl ServeArgs {
    /// Every setting as `name=value`, for the start-up log. Secrets (passwords in URLs)
    /// are masked.
    pub fn effective(&self) -> String {
        let or_unset = |v: &Option<String>, unset: &str| {
            v.as_deref().map_or_else(|| unset.to_owned(), mask_password)
        };
        let mut items = vec![
            format!("kafka_brokers={}", or_unset(&self.kafka_brokers, "embedded")),
            format!("hdfs_url={}", or_unset(&self.hdfs_url, "none (local archive)")),
            format!("data_dir={}", self.data_dir.display()),
            format!("high={} critical={} hysteresis={}", self.high, self.critical, self.hysteresis),
            format!("sensor_thresholds=[{}]", self.sensor_thresholds),
            format!(
                "window={:?} lateness={:?} revise_for={:?}",
                self.window, self.lateness, self.revise_for
            ),
            format!(
                "offline_after={:?} flush_interval={:?}",
                self.offline_after, self.flush_interval
            ),
            format!("max_sensors={} max_reading_age={:?}", self.max_sensors, self.max_reading_age),
            format!("group={} partitions={}", self.group, self.partitions),
            format!("retention={}", self.retention.map_or("forever".into(), |r| format!("{r:?}"))),
            format!("upkeep_interval={:?}", self.upkeep_interval),
            format!(
                "operators_file={} secure_cookie={} reads={:?}",
                operators_file(&self.operators_file, &self.data_dir).display(),
                self.secure_cookie,
                self.reads
            ),
        ];
        if self.kafka_brokers.is_none() {
            items.push(format!(
                "sim_sensors={} sim_rate={:?} sim_excursion_chance={}",
                self.sim_sensors, self.sim_rate, self.sim_excursion_chance
            ));
        }
        items.join(" ")
    }

    /// The default thresholds, checked for consistency.
    pub fn thresholds(&self) -> anyhow::Result<Thresholds> {
        let t =
            Thresholds { high: self.high, critical: self.critical, hysteresis: self.hysteresis };
        t.validate().map_err(|e| anyhow::anyhow!("invalid thresholds: {e}"))?;
        Ok(t)
    }

    /// The per-sensor thresholds, each checked for consistency.
    pub fn per_sensor_thresholds(&self) -> anyhow::Result<HashMap<String, Thresholds>> {
        self.sensor_thresholds.resolve(self.hysteresis).map_err(anyhow::Error::msg)
    }

    /// The settings of the pipeline core.
    pub fn processor_config(&self) -> anyhow::Result<ProcessorConfig> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Ok(ProcessorConfig {
            thresholds: Arc::new(ThresholdTable {
                defaults: self.thresholds()?,
                per_sensor: self.per_sensor_thresholds()?,
            }),
            windows: WindowConfig {
                size_ms: ms(self.window),
                lateness_ms: ms(self.lateness),
                revise_for_ms: ms(self.revise_for),
            },
            offline_after_ms: ms(self.offline_after),
            max_sensors: usize::try_from(self.max_sensors).unwrap_or(usize::MAX),
        })
    }

    /// The limits of message parsing.
    pub fn parse_limits(&self) -> ParseLimits {
        ParseLimits { max_age_s: self.max_reading_age.as_secs_f64(), ..ParseLimits::default() }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers (host:port,…) to publish to.
    #[arg(long, env = "THERMO_KAFKA_BROKERS")]
    pub kafka_brokers: String,

    /// Partitions of the topics created when they are missing (as the server creates them).
    #[arg(long, env = "THERMO_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,

    /// Number of simulated sensors (`sensor1` … `sensorN`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sensors: u32,

    /// Readings per second of each sensor, or `max` for as fast as the broker takes them.
    #[arg(long, default_value = "1", value_parser = thermoalert_pipeline::kafka::feed::parse_rate)]
    pub rate: thermoalert_pipeline::kafka::feed::Rate,

    /// Stop after this many messages in total (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,

    /// Seed of the simulation: the same seed yields the same signals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Chance per reading that a quiet sensor starts an excursion above HIGH/CRITICAL.
    #[arg(long, default_value_t = DEFAULT_EXCURSION_CHANCE, value_parser = parse_chance)]
    pub excursion_chance: f64,

    /// Chance per reading that a sensor gets stuck on one value for a while.
    #[arg(long, default_value_t = 0.0, value_parser = parse_chance)]
    pub stuck_chance: f64,

    /// Chance per reading that a sensor drops out (sends nothing) for a while.
    #[arg(long, default_value_t = 0.0, value_parser = parse_chance)]
    pub dropout_chance: f64,

    /// Chance per reading that it is held back 5–120 s and sent late, out of order.
    #[arg(long, default_value_t = 0.0, value_parser = parse_chance)]
    pub late_chance: f64,

    /// Chance per sensor and tick of a malformed message (each kind the parser rejects).
    #[arg(long, default_value_t = 0.0, value_parser = parse_chance)]
    pub malformed_chance: f64,
}

/// `scheme://user:secret@host` → `scheme://user:***@host`; anything else unchanged.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
    match path {
        Some(p) => format!("{scheme}://{masked}@{host}/{p}"),
        None => format!("{scheme}://{masked}@{host}"),
    }
}

/// A probability between 0 and 1.
pub fn parse_chance(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a probability between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_password("hdfs://nn:9000"), "hdfs://nn:9000");
        assert_eq!(mask_password("hdfs://ops:s3cret@nn:9000/x"), "hdfs://ops:***@nn:9000/x");
        assert_eq!(mask_password("hdfs://ops@nn:9000"), "hdfs://ops@nn:9000");
        assert_eq!(mask_password("b1:9092,b2:9092"), "b1:9092,b2:9092");
    }

    #[test]
    fn the_effective_configuration_names_every_setting_and_masks_secrets() {
        let cli = Cli::try_parse_from([
            "thermoalert",
            "serve",
            "--hdfs-url",
            "hdfs://ops:pw@nn:9000",
            "--retention",
            "30d",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve") };
        let text = args.effective();
        assert!(text.contains("hdfs_url=hdfs://ops:***@nn:9000"), "{text}");
        assert!(!text.contains("pw"), "{text}");
        assert!(text.contains("kafka_brokers=embedded"), "{text}");
        assert!(text.contains("retention=2592000s"), "{text}");
        assert!(text.contains("sim_sensors=5"), "{text}");
    }

    #[test]
    fn inverted_thresholds_are_refused_with_a_sentence() {
        let cli = Cli::try_parse_from(["thermoalert", "serve", "--high", "95", "--critical", "90"])
            .unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve") };
        let e = args.thresholds().unwrap_err().to_string();
        assert!(e.contains("must be below the CRITICAL"), "{e}");
    }

    #[test]
    fn per_sensor_thresholds_parse_and_take_the_default_hysteresis() {
        let cli = Cli::try_parse_from([
            "thermoalert",
            "serve",
            "--hysteresis",
            "3",
            "--sensor-thresholds",
            "freezer1=-15/-10, oven=200/250/5",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve") };
        let map = args.per_sensor_thresholds().unwrap();
        assert_eq!(map["freezer1"], Thresholds { high: -15.0, critical: -10.0, hysteresis: 3.0 });
        assert_eq!(map["oven"], Thresholds { high: 200.0, critical: 250.0, hysteresis: 5.0 });
    }

    #[test]
    fn inverted_per_sensor_thresholds_are_refused_with_the_sensor_named() {
        let cli = Cli::try_parse_from(["thermoalert", "serve", "--sensor-thresholds", "oven=9/5"])
            .unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve") };
        let e = args.per_sensor_thresholds().unwrap_err().to_string();
        assert!(e.contains("sensor `oven`") && e.contains("must be below"), "{e}");
    }

    #[test]
    fn simulate_flags_are_checked_with_clear_messages() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["thermoalert", "simulate", "--kafka-brokers", "127.0.0.1:9092"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let Some(Command::Simulate(ok)) =
            parse(&["--rate", "max", "--late-chance", "0.1"]).unwrap().command
        else {
            panic!("simulate")
        };
        assert_eq!(ok.rate, thermoalert_pipeline::kafka::feed::Rate::Max);
        assert_eq!(ok.late_chance, 0.1);
        let e = parse(&["--rate", "fast"]).unwrap_err().to_string();
        assert!(e.contains("neither a positive number"), "{e}");
        let e = parse(&["--rate", "0"]).unwrap_err().to_string();
        assert!(e.contains("neither a positive number"), "{e}");
        let e = parse(&["--stuck-chance", "2"]).unwrap_err().to_string();
        assert!(e.contains("not a probability"), "{e}");
        let e = parse(&["--sensors", "0"]).unwrap_err().to_string();
        assert!(e.contains("--sensors"), "{e}");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
