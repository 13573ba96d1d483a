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

#[path = "../../tests/common/mod.rs"]
mod common;
mod dashboard;

use dashboard::*;

use std::path::Path;
use std::process::{Child, Command};
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
