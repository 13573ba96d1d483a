//! Throughput on the real broker: a topic pre-loaded by `thermoalert simulate`, drained once by
//! a plain rdkafka consumer that parses nothing (the limit of this machine and broker), then
//! by the real server (pipeline, archive and index on). Prints a progress line, the figures,
//! and one JSON object at the end. It measures; it never fails on speed.
//!
//!     scripts/services.sh start kafka
//!     cargo bench -p thermoalert --bench throughput -- [--readings N] [--sensors N] [--smoke]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use thermoalert_pipeline::topics;

struct Args {
    readings: u64,
    sensors: u32,
    brokers: String,
}

fn args() -> Args {
    let mut a = Args {
        readings: 2_000_000,
        sensors: 1000,
        brokers: std::env::var("THERMO_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--readings" => {
                a.readings = it.next().and_then(|v| v.parse().ok()).expect("--readings N")
            }
            "--sensors" => a.sensors = it.next().and_then(|v| v.parse().ok()).expect("--sensors N"),
            "--smoke" => {
                a.readings = 20_000;
                a.sensors = 50;
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

    let (pipe_n, pipe_s) = pipeline_drain(bin, &a.brokers, &format!("bench-pipe-{nonce}"), total);
    eprintln!(
        "throughput: pipeline {pipe_n} messages in {pipe_s:.2} s = {:.0}/s",
        pipe_n as f64 / pipe_s
    );

    let raw_rate = raw_n as f64 / raw_s;
    let pipe_rate = pipe_n as f64 / pipe_s;
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "throughput",
            "readings_produced": a.readings,
            "sensors": a.sensors,
            "produce_seconds": produce_s,
            "topic_messages": total,
            "raw_consume_per_s": raw_rate.round(),
            "pipeline_per_s": pipe_rate.round(),
            "pipeline_to_raw": (pipe_rate / raw_rate * 1000.0).round() / 1000.0,
        })
    );
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
    let c: BaseConsumer = ClientConfig::new()
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

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real server on the topic and polls its metrics until every message is
/// accounted for (valid readings plus rejections); the time runs from the first one.
fn pipeline_drain(bin: &str, brokers: &str, group: &str, total: u64) -> (u64, f64) {
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Server(
        Command::new(bin)
            .arg("serve")
            .env("THERMO_KAFKA_BROKERS", brokers)
            .env("THERMO_GROUP", group)
            .env("THERMO_DATA_DIR", data.path())
            .env("THERMO_FLUSH_INTERVAL", "2s")
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LEPTOS_OUTPUT_NAME", "thermoalert")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("the server starts"),
    );
    let mut first = None;
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let n = processed(port);
        if n > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if n >= total || Instant::now() > deadline {
            return (n, first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64()));
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            eprint!("\rthroughput: pipeline {n}/{total}   ");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Readings plus rejections the server has counted so far.
fn processed(port: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| {
            l.starts_with("thermoalert_readings_total")
                || l.starts_with("thermoalert_rejected_total")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
