//! ThermoAlert's benchmark on the real broker, in one run:
//! - throughput: a topic pre-loaded by `thermoalert simulate`, drained once by a plain rdkafka
//!   consumer that parses nothing (the limit of this machine and broker), then by the real
//!   server (pipeline, archive and index on);
//! - latency: the simulator at a steady rate and a real SSE client measuring sensor timestamp
//!   → event received, p50/p95/p99/max;
//! - memory: peak RSS of a server with many live sensors and many SSE clients;
//! - throughput again with many SSE clients connected (do they slow the pipeline?);
//! - HTTP load: wrk on each JSON API endpoint and the dashboard while readings flow
//!   (requests/s, p50/p99, errors).
//!
//! Prints progress lines, the figures, and one JSON object at the end; `--record` adds a row
//! to BENCHMARKS.md. It measures; it never fails on speed. `--smoke` is the seconds-long
//! version the test command runs so that the benchmark cannot rot.
//!
//!     scripts/services.sh start kafka
//!     cargo bench -p thermoalert --bench throughput -- [--readings N] [--sensors N] [--record]
//!         [--throughput-only] [--latency-only] [--memory-only] [--memory-clients N]
//!         [--load-only] [--sse-only]
//!     cargo test -p thermoalert --bench throughput -- --smoke

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, commit_group_at_end, free_port, get, serve};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use thermoalert_pipeline::{kafka, topics};

struct Args {
    readings: u64,
    sensors: u32,
    brokers: String,
    /// Latency phase: readings per second in total, from this many sensors, for this long.
    latency_rate: u32,
    latency_sensors: u32,
    latency_seconds: u32,
    /// Memory phase: live sensors, SSE clients, seconds.
    memory_sensors: u32,
    memory_clients: u32,
    memory_seconds: u32,
    record: bool,
    smoke: bool,
    /// Stop after the throughput figures (for profiling runs).
    throughput_only: bool,
    /// Only the memory phase (with `--memory-clients N` SSE clients).
    memory_only: bool,
    /// HTTP load phase: seconds per endpoint and wrk connections.
    load_seconds: u32,
    load_connections: u32,
    /// Only the HTTP load phase.
    load_only: bool,
    /// Only the latency phase.
    latency_only: bool,
    /// Only the drains without and with `--memory-clients N` × 10 SSE clients.
    sse_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        readings: 2_000_000,
        sensors: 1000,
        brokers: std::env::var("THERMO_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        latency_rate: 10_000,
        latency_sensors: 1000,
        latency_seconds: 60,
        memory_sensors: 10_000,
        memory_clients: 100,
        memory_seconds: 30,
        record: false,
        smoke: false,
        throughput_only: false,
        memory_only: false,
        load_seconds: 10,
        load_connections: 50,
        load_only: false,
        latency_only: false,
        sse_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--readings" => {
                a.readings = it.next().and_then(|v| v.parse().ok()).expect("--readings N")
            }
            "--sensors" => a.sensors = it.next().and_then(|v| v.parse().ok()).expect("--sensors N"),
            "--record" => a.record = true,
            "--throughput-only" => a.throughput_only = true,
            "--memory-only" => a.memory_only = true,
            "--load-only" => a.load_only = true,
            "--latency-only" => a.latency_only = true,
            "--sse-only" => a.sse_only = true,
            "--memory-clients" => {
                a.memory_clients =
                    it.next().and_then(|v| v.parse().ok()).expect("--memory-clients N")
            }
            "--smoke" => {
                a.smoke = true;
                a.readings = 20_000;
                a.sensors = 50;
                (a.latency_rate, a.latency_sensors, a.latency_seconds) = (200, 20, 3);
                (a.memory_sensors, a.memory_clients, a.memory_seconds) = (100, 5, 3);
                (a.load_seconds, a.load_connections) = (1, 4);
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn main() {
    let a = args();
    let bin = env!("CARGO_BIN_EXE_thermoalert");
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    if a.memory_only {
        println!("{}", memory_phase(bin, &a, &format!("bench-mem-{nonce}")));
        return;
    }
    if a.latency_only {
        println!("{}", latency_phase(bin, &a, &format!("bench-lat-{nonce}")));
        return;
    }
    if a.load_only {
        println!("{}", load_phase(bin, &a, &format!("bench-load-{nonce}")));
        return;
    }

    eprintln!(
        "throughput: pre-loading {} readings of {} sensors with `thermoalert simulate`",
        a.readings, a.sensors
    );
    let started = Instant::now();
    let status = Command::new(bin)
        .args(["simulate", "--kafka-brokers", &a.brokers, "--rate", "max"])
        .args(["--sensors", &a.sensors.to_string(), "--count", &a.readings.to_string()])
        .args(["--seed", &nonce.to_string()])
        .env("RUST_LOG", "warn")
        .status()
        .expect("thermoalert simulate runs");
    assert!(status.success(), "simulate failed");
    let produce_s = started.elapsed().as_secs_f64();

    let total = topic_size(&a.brokers);
    eprintln!(
        "throughput: the topic holds {total} messages (this run's and any earlier ones within retention)"
    );

    let (raw_n, raw_s) = raw_consume(&a.brokers, &format!("bench-raw-{nonce}"), total);
    eprintln!(
        "throughput: raw consume {raw_n} messages in {raw_s:.2} s = {:.0}/s",
        raw_n as f64 / raw_s
    );

    let group = format!("bench-pipe-{nonce}");
    let pipe = pipeline_drain(&a.brokers, &group, total, 0);
    eprintln!(
        "throughput: pipeline {} messages in {:.2} s = {:.0}/s; peak RSS {} MB",
        pipe.followed.0,
        pipe.followed.1,
        pipe.per_s(),
        pipe.peak_rss_mb,
    );

    if a.throughput_only {
        return;
    }
    let (latency, memory) = if a.sse_only {
        Default::default()
    } else {
        let latency = latency_phase(bin, &a, &format!("bench-lat-{nonce}"));
        eprintln!("latency: {latency}");
        let memory = memory_phase(bin, &a, &format!("bench-mem-{nonce}"));
        eprintln!("memory: {memory}");
        (latency, memory)
    };
    let clients = a.memory_clients * 10;
    eprintln!("throughput: pipeline again with {clients} SSE clients connected");
    let group = format!("bench-pipe-sse-{nonce}");
    let sse = pipeline_drain(&a.brokers, &group, total, clients);
    eprintln!(
        "throughput: pipeline with {clients} SSE clients ({} connected at its first message): {} of {} messages in {:.2} s with all connected = {:.0}/s; peak RSS {} MB",
        sse.clients_at_first,
        sse.followed.0,
        sse.messages,
        sse.followed.1,
        sse.per_s(),
        sse.peak_rss_mb,
    );
    if a.sse_only {
        return;
    }
    let load = load_phase(bin, &a, &format!("bench-load-{nonce}"));
    eprintln!("load: {load}");

    let raw_rate = raw_n as f64 / raw_s;
    let pipe_rate = pipe.per_s();
    let figures = serde_json::json!({
        "benchmark": "thermoalert",
        "smoke": a.smoke,
        "readings_produced": a.readings,
        "sensors": a.sensors,
        "produce_seconds": produce_s,
        "topic_messages": total,
        "raw_consume_per_s": raw_rate.round(),
        "pipeline_per_s": pipe_rate.round(),
        "pipeline_to_raw": (pipe_rate / raw_rate * 1000.0).round() / 1000.0,
        "latency": latency,
        "memory": memory,
        "pipeline_with_sse_clients": {
            "sse_clients": clients,
            "connected_at_first_message": sse.clients_at_first,
            "messages_with_all_connected": sse.followed.0,
            "per_s": sse.per_s().round(),
            "peak_rss_mb": sse.peak_rss_mb,
            "to_pipeline": (sse.per_s() / pipe_rate * 1000.0).round() / 1000.0,
        },
        "http_load": load,
    });
    println!("{figures}");
    if a.record {
        record(&figures);
    }
}

/// Adds a row for `figures` to the table of BENCHMARKS.md (after its marker line).
fn record(f: &serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md");
    let text = std::fs::read_to_string(path).expect("BENCHMARKS.md");
    let marker = "<!-- bench rows: `cargo bench -p thermoalert --bench throughput -- --record` -->";
    let date = today();
    // The HTTP load in one cell: the slowest endpoint's requests/s and all errors.
    let endpoints = f["http_load"]["endpoints"].as_object();
    let slowest = endpoints
        .into_iter()
        .flatten()
        .filter_map(|(path, e)| Some((path, e["per_s"].as_f64()?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let errors: u64 =
        endpoints.into_iter().flatten().filter_map(|(_, e)| e["errors"].as_u64()).sum();
    let http = match slowest {
        Some((path, per_s)) => format!("≥ {per_s:.0} req/s (slowest: `{path}`), {errors} errors"),
        None => "–".to_owned(),
    };
    let row = format!(
        "| {date} | {} / {} | {:.0} | {:.0} | {:.1} % | {} / {} / {} / {} | {} MB ({} sensors, {} SSE clients) | {:.0} ({} clients, all connected; peak RSS {} MB) | {http} |",
        f["readings_produced"],
        f["sensors"],
        f["raw_consume_per_s"].as_f64().unwrap_or(0.0),
        f["pipeline_per_s"].as_f64().unwrap_or(0.0),
        f["pipeline_to_raw"].as_f64().unwrap_or(0.0) * 100.0,
        f["latency"]["p50_ms"],
        f["latency"]["p95_ms"],
        f["latency"]["p99_ms"],
        f["latency"]["max_ms"],
        f["memory"]["peak_rss_mb"],
        f["memory"]["sensors"],
        f["memory"]["sse_clients"],
        f["pipeline_with_sse_clients"]["per_s"].as_f64().unwrap_or(0.0),
        f["pipeline_with_sse_clients"]["sse_clients"],
        f["pipeline_with_sse_clients"]["peak_rss_mb"],
    );
    let Some(at) = text.find(marker) else {
        eprintln!("BENCHMARKS.md has no `{marker}` line: not recorded");
        return;
    };
    let insert = at + marker.len();
    let updated = format!("{}\n{row}{}", &text[..insert], &text[insert..]);
    std::fs::write(path, updated).expect("BENCHMARKS.md is writable");
    eprintln!("recorded in BENCHMARKS.md");
}

/// Today's UTC date as YYYY-MM-DD.
fn today() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, 0).unwrap().format("%Y-%m-%d").to_string()
}

/// Messages in the readings topic: the sum over partitions of high minus low watermark.
fn topic_size(brokers: &str) -> u64 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let md = c.fetch_metadata(Some(topics::READINGS), Duration::from_secs(10)).unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (lo, hi) =
                c.fetch_watermarks(topics::READINGS, p.id(), Duration::from_secs(10)).unwrap();
            (hi - lo) as u64
        })
        .sum()
}

/// Reads the whole topic in a fresh group, touching nothing but the payload length; the
/// time runs from the first message (group joins are not throughput).
fn raw_consume(brokers: &str, group: &str, total: u64) -> (u64, f64) {
    let mut config = ClientConfig::new();
    // The pipeline's own prefetch settings: the limit measured is that of its consumer.
    for (key, value) in kafka::READINGS_PREFETCH {
        config.set(key, value);
    }
    let c: BaseConsumer = config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topics::READINGS]).unwrap();
    let mut n = 0u64;
    let mut bytes = 0usize;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < total && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload_len();
            n += 1;
        }
    }
    std::hint::black_box(bytes);
    (n, first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64()))
}

/// Starts the real server on the topic and polls its metrics until every message is
/// accounted for (valid readings plus rejections). With `clients` SSE clients following the
/// live stream, the rate counts only what was processed once all of them were connected.
fn pipeline_drain(brokers: &str, group: &str, total: u64, clients: u32) -> Drain {
    let data = tempfile::tempdir().unwrap();
    let (server, port) = start_server(brokers, group, data.path());
    let _followers = Followers::start(port, clients);
    let mut clients_at_first = None;
    // When every client followed, and how many messages were processed by then.
    let mut all_in: Option<(Instant, u64)> = None;
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let text = get(port, "/metrics").unwrap_or_default().body;
        let n = processed(&text);
        let connected = gauge(&text, "thermoalert_sse_clients");
        if n > 0 && clients_at_first.is_none() {
            clients_at_first = Some(connected);
        }
        if all_in.is_none() && connected >= u64::from(clients) && (clients > 0 || n > 0) {
            all_in = Some((Instant::now(), n));
        }
        if n >= total || Instant::now() > deadline {
            let followed =
                all_in.map_or((0, f64::NAN), |(t, n0)| (n - n0, t.elapsed().as_secs_f64()));
            let peak_rss_mb = vm_kb(server.child.id(), "VmHWM:") / 1024;
            let clients_at_first = clients_at_first.unwrap_or(0);
            return Drain { messages: n, clients_at_first, followed, peak_rss_mb };
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            eprint!("\rthroughput: pipeline {n}/{total}   ");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A figure of `/proc/<pid>/status`, in kB (0 if absent).
fn vm_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What a drain of the topic measured.
struct Drain {
    messages: u64,
    /// SSE clients connected when the first message was processed.
    clients_at_first: u64,
    /// Messages processed, and seconds, from the moment every client was connected (from
    /// the first message without clients).
    followed: (u64, f64),
    peak_rss_mb: u64,
}

impl Drain {
    /// Messages per second while every client followed.
    fn per_s(&self) -> f64 {
        self.followed.0 as f64 / self.followed.1
    }
}

/// `n` SSE clients following the live stream, all on one thread of the benchmark (an event
/// loop, as a load generator should be: 1 000 reader threads took more of the two cores than
/// the server did). Each counts the frames it receives: events, plus a `lagged` notice each
/// time it skipped ahead. They stop when dropped.
struct Followers {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Followers {
    fn start(port: u16, n: u32) -> Followers {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let (stop_, frames_) = (Arc::clone(&stop), Arc::clone(&frames));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                for _ in 0..n {
                    tokio::spawn(follow(port, Arc::clone(&frames_)));
                }
                while !stop_.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        Followers { stop, frames, thread: Some(thread) }
    }

    /// Stops every client; the frames they received in all.
    fn stop(mut self) -> u64 {
        self.halt();
        self.frames.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the followers' thread");
        }
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One follower: connects (the server may not listen yet), asks for the stream and counts
/// the frames (`\n\n`-terminated) it reads, until its runtime stops.
async fn follow(port: u16, frames: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut s = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("the server never accepted: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let request =
        "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = 0u8;
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut count = 0;
        for &b in &buf[..n] {
            count += u64::from(b == b'\n' && last == b'\n');
            last = b;
        }
        frames.fetch_add(count, Ordering::Relaxed);
    }
}

/// The real server in `group`, with its data (and its log) in `data`; returns it with its
/// HTTP port.
fn start_server(brokers: &str, group: &str, data: &Path) -> (Server, u16) {
    let port = free_port();
    let server = Server::start(
        serve(data, port)
            .env("THERMO_KAFKA_BROKERS", brokers)
            .env("THERMO_GROUP", group)
            .env("THERMO_FLUSH_INTERVAL", "2s")
            .env("RUST_LOG", "warn"),
        data.join("server.log"),
    );
    (server, port)
}

/// Waits until the server answers `/readyz` with 200, then a little for the group to settle.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(port, "/readyz").is_some_and(|r| r.ok()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
}

/// Runs `thermoalert simulate` at `rate` readings/s in total over `sensors` for `seconds`.
fn simulate(bin: &str, brokers: &str, sensors: u32, rate: u32, seconds: u32) -> Child {
    let per_sensor = f64::from(rate) / f64::from(sensors);
    Command::new(bin)
        .args(["simulate", "--kafka-brokers", brokers, "--sensors", &sensors.to_string()])
        .args(["--rate", &per_sensor.to_string()])
        .args(["--count", &(u64::from(rate) * u64::from(seconds)).to_string()])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("thermoalert simulate runs")
}

/// A live-stream client: reads `/api/stream` until `stop`, sending the latency of each
/// `reading` event (now − its sensor timestamp, ms) to `latencies`.
fn sse_client(
    port: u16,
    stop: Arc<AtomicBool>,
    latencies: mpsc::Sender<f64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        // The server may not listen yet (a drain starts its clients with it).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("the server never accepted: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        write!(
            s,
            "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        let mut events = 0u64;
        let mut reading = false;
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => continue, // read timeout: check `stop`
            }
            if let Some(name) = line.strip_prefix("event: ") {
                reading = name.trim() == "reading";
            } else if let (true, Some(data)) = (reading, line.strip_prefix("data: ")) {
                events += 1;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                    && let Some(t) = v["timestamp"].as_f64()
                {
                    let _ = latencies.send((now - t) * 1000.0);
                }
            }
        }
        events
    })
}

/// Sensor timestamp → SSE event received, at a steady rate, through a fresh server.
fn latency_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (_server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let client = sse_client(port, Arc::clone(&stop), tx);
    eprintln!(
        "latency: {} readings/s from {} sensors for {} s, one SSE client",
        a.latency_rate, a.latency_sensors, a.latency_seconds
    );
    let mut sim = simulate(bin, &a.brokers, a.latency_sensors, a.latency_rate, a.latency_seconds);
    assert!(sim.wait().unwrap().success(), "simulate failed");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let mut ms: Vec<f64> = rx.try_iter().collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms.get(((ms.len() as f64 * p) as usize).min(ms.len().saturating_sub(1)));
    let round = |v: Option<&f64>| v.map(|v| (v * 10.0).round() / 10.0);
    serde_json::json!({
        "rate_per_s": a.latency_rate,
        "seconds": a.latency_seconds,
        "events": ms.len(),
        "p50_ms": round(pct(0.50)),
        "p95_ms": round(pct(0.95)),
        "p99_ms": round(pct(0.99)),
        "max_ms": round(ms.last()),
    })
}

/// Peak RSS of a fresh server while `memory_sensors` sensors report and `memory_clients`
/// SSE clients follow the stream.
fn memory_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let followers = Followers::start(port, a.memory_clients);
    eprintln!(
        "memory: {} sensors at 1 reading/s for {} s, {} SSE clients",
        a.memory_sensors, a.memory_seconds, a.memory_clients
    );
    let mut sim = simulate(bin, &a.brokers, a.memory_sensors, a.memory_sensors, a.memory_seconds);
    assert!(sim.wait().unwrap().success(), "simulate failed");
    std::thread::sleep(Duration::from_secs(3));
    // Kept up: every reading sent was processed within 3 s of the last one.
    let processed = processed(&get(port, "/metrics").unwrap_or_default().body);
    let pid = server.child.id();
    let (peak_kb, rss_kb) = (vm_kb(pid, "VmHWM:"), vm_kb(pid, "VmRSS:"));
    let frames = followers.stop();
    serde_json::json!({
        "sensors": a.memory_sensors,
        "sse_clients": a.memory_clients,
        "frames_delivered": frames,
        "readings_sent": u64::from(a.memory_sensors) * u64::from(a.memory_seconds),
        "readings_processed_3s_after": processed,
        "peak_rss_mb": peak_kb / 1024,
        "rss_mb": rss_kb / 1024,
    })
}

/// The JSON API and the dashboard under wrk while 100 sensors report 1 000 readings/s: each
/// endpoint for `load_seconds` with `load_connections` connections (2 threads), requests/s,
/// p50/p99 and errors (socket errors plus non-2xx answers).
fn load_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (_server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let seconds = 5 + 6 * a.load_seconds;
    let mut sim = simulate(bin, &a.brokers, 100, 1000, seconds);
    std::thread::sleep(Duration::from_secs(4)); // some history to read
    let endpoints = [
        "/healthz",
        "/api/sensors",
        "/api/alerts?limit=100",
        "/api/readings?sensor=sensor1",
        "/api/history/sensor1?points=200",
        "/",
    ];
    let mut figures = serde_json::Map::new();
    for path in endpoints {
        eprintln!("load: wrk {path} for {} s, {} connections", a.load_seconds, a.load_connections);
        let out = Command::new("wrk")
            .args(["-t2", &format!("-c{}", a.load_connections), &format!("-d{}s", a.load_seconds)])
            .args(["--latency", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .expect("wrk runs (scripts/setup.sh installs it)");
        assert!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
        figures.insert(path.into(), wrk_figures(&String::from_utf8_lossy(&out.stdout)));
    }
    let _ = sim.kill();
    let _ = sim.wait();
    serde_json::json!({ "connections": a.load_connections, "seconds_each": a.load_seconds,
        "endpoints": figures })
}

/// Requests, requests/s, p50/p99 (ms) and errors from wrk's `--latency` report.
fn wrk_figures(report: &str) -> serde_json::Value {
    let field = |prefix: &str| {
        report.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let ms = |v: Option<String>| -> Option<f64> {
        let v = v?;
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = n.parse().ok()?;
        let scale = match unit {
            "us" => 0.001,
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            _ => return None,
        };
        Some((n * scale * 100.0).round() / 100.0)
    };
    let requests: Option<u64> = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket: u64 = field("Socket errors:")
        .map(|v| {
            v.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum()
        })
        .unwrap_or(0);
    serde_json::json!({
        "requests": requests,
        "per_s": field("Requests/sec:").and_then(|v| v.parse::<f64>().ok()).map(f64::round),
        "p50_ms": ms(field("50%")),
        "p99_ms": ms(field("99%")),
        "errors": non_2xx + socket,
    })
}

/// The value of an unlabelled gauge in a `/metrics` text (0 when absent).
fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Readings plus rejections the server has counted so far, from a `/metrics` text.
fn processed(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("thermoalert_readings_total")
                || l.starts_with("thermoalert_rejected_total")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
