//! ThermoAlert under hostile load, on the real broker: the peak memory (RSS) of the server and
//! what it answers while
//! - a login flood runs: `--logins N` wrong logins, `--at-once N` at a time, from as many
//!   loopback addresses (127.0.0.2, 127.0.0.3, …) so that each address stays within its free
//!   failures and every check reaches argon2 (one address would be throttled after five);
//! - a sensor-id flood runs: `--ids N` readings, each of a sensor never seen before;
//! - `--queries N` history queries run at once (raw readings and charts of a sensor with
//!   `--history N` readings over as many seconds);
//!
//! and after each, how long a reading of a known sensor then takes to reach the history.
//! Each phase has a fresh server, so its peak RSS is its own. Prints the figures and one JSON
//! object; it measures, it never fails on speed. `--smoke` is the seconds-long version the
//! test command runs so that the benchmark cannot rot.
//!
//!     scripts/services.sh start kafka
//!     cargo bench -p thermoalert --bench hostile -- [--logins 600] [--at-once 300] [--ids 300000]
//!         [--queries 1000] [--history 20000]
//!     cargo test -p thermoalert --bench hostile -- --smoke
//!
//! The floods stay on the readings topic for its retention (an hour): a server of another
//! group started on the same broker meanwhile reads them from the start (300 000 sensors'
//! worth after a full run) before anything of its own. After a full run, `scripts/services.sh
//! reset kafka` gives the tests a fresh broker.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, brokers, commit_group_at_end, free_port, get, get_json, produce_raw, serve};
use serde_json::json;

struct Args {
    logins: usize,
    at_once: usize,
    ids: usize,
    max_sensors: usize,
    queries: usize,
    history: usize,
}

fn args() -> Args {
    let mut a = Args {
        logins: 600,
        at_once: 300,
        ids: 300_000,
        max_sensors: 100_000,
        queries: 1000,
        history: 20_000,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> usize {
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--logins" => a.logins = number(it.next(), "--logins"),
            "--at-once" => a.at_once = number(it.next(), "--at-once"),
            "--ids" => a.ids = number(it.next(), "--ids"),
            "--queries" => a.queries = number(it.next(), "--queries"),
            "--history" => a.history = number(it.next(), "--history"),
            "--smoke" => {
                a = Args {
                    logins: 40,
                    at_once: 20,
                    ids: 2_000,
                    max_sensors: 500,
                    queries: 20,
                    history: 2_000,
                }
            }
            // What the bench harness passes.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let logins = login_flood(&a, nonce, &runtime);
    let ids = sensor_id_flood(&a, nonce, &runtime);
    let queries = history_queries(&a, nonce, &runtime);
    let figures =
        json!({ "login_flood": logins, "sensor_id_flood": ids, "history_queries": queries });
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
}

/// A server on the real broker in a fresh group that starts at the end of the readings topic,
/// with `extra` settings.
fn start(data: &Path, group: &str, extra: &[(&str, &str)]) -> (Server, u16) {
    commit_group_at_end(&brokers(), group);
    let port = free_port();
    let operators = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/operators.test");
    let mut server = Server::start(
        serve(data, port)
            .env("THERMO_KAFKA_BROKERS", brokers())
            .env("THERMO_GROUP", group)
            .env("THERMO_OPERATORS_FILE", operators)
            .env("THERMO_FLUSH_INTERVAL", "1s")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied()),
        data.join("server.log"),
    );
    server.wait_for("ready", 60, || get(port, "/readyz").is_some_and(|r| r.ok()));
    (server, port)
}

/// Peak resident memory of a process so far, in MB.
fn peak_rss_mb(server: &Server) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb / 1024
}

/// Sends a reading of `sensor` at the current time and waits until the history has it:
/// seconds taken (`None`: not within 120 s).
fn probe(runtime: &tokio::runtime::Runtime, port: u16, sensor: &str) -> Option<f64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let reading = format!(r#"{{"timestamp":{now},"sensor_id":"{sensor}","temperature":21.5}}"#);
    let sent = Instant::now();
    runtime.block_on(produce_raw(&[(sensor.to_owned(), reading.into_bytes())]));
    let path = format!("/api/readings?sensor={sensor}&from={}&to={}", now - 1.0, now + 1.0);
    while sent.elapsed() < Duration::from_secs(120) {
        let page = get_json(port, &path);
        if page["readings"].as_array().is_some_and(|r| !r.is_empty()) {
            return Some(sent.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn login_flood(a: &Args, nonce: u128, runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    let (server, port) = start(data.path(), &format!("bench-logins-{nonce}"), &[]);
    let probe_sensor = format!("probe{nonce}logins");
    probe(runtime, port, &probe_sensor);
    let base_rss = peak_rss_mb(&server);
    eprintln!("login flood: {} wrong logins, {} at a time", a.logins, a.at_once);
    let started = Instant::now();
    let codes = runtime.block_on(async {
        let per_client = a.logins.div_ceil(a.at_once);
        let clients = (0..a.at_once).map(|i| {
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..per_client {
                    codes.push(wrong_login(port, i).await);
                }
                codes
            })
        });
        let mut all = BTreeMap::<String, u64>::new();
        for client in futures::future::join_all(clients).await {
            for code in client.unwrap() {
                *all.entry(code).or_default() += 1;
            }
        }
        all
    });
    let took = started.elapsed().as_secs_f64();
    let peak = peak_rss_mb(&server);
    let probe_s = probe(runtime, port, &probe_sensor);
    eprintln!(
        "login flood: answers {codes:?} in {took:.1} s; peak RSS {peak} MB (before: {base_rss} MB); \
         a reading then reached the history in {probe_s:?} s"
    );
    json!({
        "logins": a.logins, "at_once": a.at_once, "answers": codes, "seconds": took,
        "peak_rss_mb": peak, "rss_before_mb": base_rss, "probe_to_history_s": probe_s,
    })
}

/// One wrong login from the loopback address 127.0.0.(2 + client % 250).(client / 250):
/// its status code, or what went wrong.
async fn wrong_login(port: u16, client: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let from = std::net::Ipv4Addr::new(127, (client / 250) as u8, 0, 2 + (client % 250) as u8);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Err(e) = socket.bind((from, 0).into()) {
        return format!("bind {from}: {e}");
    }
    let Ok(mut tcp) = socket.connect(([127, 0, 0, 1], port).into()).await else {
        return "refused".into();
    };
    let body = "name=e2e&password=not-the-password";
    let request = format!(
        "POST /api/login HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return "reset".into();
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(120), tcp.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(answer.get(9..12).unwrap_or(b"???")).into_owned(),
        Ok(Err(_)) => "reset".into(),
        Err(_) => "timeout".into(),
    }
}

fn sensor_id_flood(a: &Args, nonce: u128, runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    let limit = a.max_sensors.to_string();
    let (server, port) =
        start(data.path(), &format!("bench-ids-{nonce}"), &[("THERMO_MAX_SENSORS", &limit)]);
    // Known before the flood: its readings must still get through afterwards.
    let probe_sensor = format!("probe{nonce}ids");
    probe(runtime, port, &probe_sensor);
    let base_rss = peak_rss_mb(&server);
    eprintln!("sensor-id flood: {} readings of as many new sensors (limit {limit})", a.ids);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let messages: Vec<(String, Vec<u8>)> = (0..a.ids)
        .map(|i| {
            let id = format!("flood{nonce}-{i}");
            let reading = format!(r#"{{"timestamp":{now},"sensor_id":"{id}","temperature":20}}"#);
            (id, reading.into_bytes())
        })
        .collect();
    let started = Instant::now();
    runtime.block_on(produce_raw(&messages));
    drop(messages);
    // Until every message is either processed or refused.
    let metric = |text: &str, name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
    };
    let (mut readings, mut refused) = (0.0, 0.0);
    while started.elapsed() < Duration::from_secs(600) {
        let text = get(port, "/metrics").map(|r| r.body).unwrap_or_default();
        readings = metric(&text, "thermoalert_readings_total");
        refused = metric(&text, r#"thermoalert_rejected_total{reason="sensor_limit"}"#);
        if readings + refused >= (a.ids + 1) as f64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed().as_secs_f64();
    let peak = peak_rss_mb(&server);
    let probe_s = probe(runtime, port, &probe_sensor);
    let listed = get_json(port, "/api/sensors").as_array().map_or(0, Vec::len);
    eprintln!(
        "sensor-id flood: {readings} readings tracked, {refused} refused (sensor_limit) in \
         {took:.1} s; {listed} sensors listed; peak RSS {peak} MB (before: {base_rss} MB); a \
         reading then reached the history in {probe_s:?} s"
    );
    json!({
        "ids": a.ids, "max_sensors": a.max_sensors, "readings_tracked": readings,
        "refused": refused, "seconds": took, "sensors_listed": listed, "peak_rss_mb": peak,
        "rss_before_mb": base_rss, "probe_to_history_s": probe_s,
    })
}

fn history_queries(a: &Args, nonce: u128, runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    let (server, port) = start(data.path(), &format!("bench-queries-{nonce}"), &[]);
    let sensor = format!("hist{nonce}");
    // `--history` readings, one a second, ending now.
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64().floor();
    let start_s = end - a.history as f64;
    let messages: Vec<(String, Vec<u8>)> = (0..a.history)
        .map(|i| {
            let t = start_s + i as f64;
            let temp = 20.0 + (i % 600) as f64 / 60.0;
            let reading =
                format!(r#"{{"timestamp":{t},"sensor_id":"{sensor}","temperature":{temp}}}"#);
            (sensor.clone(), reading.into_bytes())
        })
        .collect();
    runtime.block_on(produce_raw(&messages));
    let all = format!("/api/readings?sensor={sensor}&from={start_s}&to={}", end + 1.0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while get_json(port, &all)["readings"].as_array().map_or(0, Vec::len) < a.history {
        assert!(Instant::now() < deadline, "the history was not archived");
        std::thread::sleep(Duration::from_millis(500));
    }
    let base_rss = peak_rss_mb(&server);
    eprintln!("history queries: {} at once over {} readings", a.queries, a.history);
    let chart = format!("/api/history/{sensor}?from={start_s}&to={}&points=1000", end + 1.0);
    let started = Instant::now();
    let (codes, bytes) = runtime.block_on(async {
        let calls = (0..a.queries).map(|i| {
            let path = if i % 2 == 0 { all.clone() } else { chart.clone() };
            tokio::spawn(async move { fetch(port, &path).await })
        });
        let mut codes = BTreeMap::<String, u64>::new();
        let mut bytes = 0u64;
        for call in futures::future::join_all(calls).await {
            let (code, n) = call.unwrap();
            *codes.entry(code).or_default() += 1;
            bytes += n;
        }
        (codes, bytes)
    });
    let took = started.elapsed().as_secs_f64();
    let peak = peak_rss_mb(&server);
    let probe_s = probe(runtime, port, &sensor);
    eprintln!(
        "history queries: answers {codes:?} in {took:.1} s ({} MB sent); peak RSS {peak} MB \
         (before: {base_rss} MB); a reading then reached the history in {probe_s:?} s",
        bytes >> 20
    );
    json!({
        "queries": a.queries, "readings": a.history, "answers": codes, "seconds": took,
        "bytes": bytes, "peak_rss_mb": peak, "rss_before_mb": base_rss,
        "probe_to_history_s": probe_s,
    })
}

/// `GET path`: the status code (or what went wrong) and the bytes received.
async fn fetch(port: u16, path: &str) -> (String, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return ("refused".into(), 0);
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return ("reset".into(), 0);
    }
    let mut head = [0u8; 12];
    let read = async {
        tcp.read_exact(&mut head).await?;
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await?;
        Ok::<_, std::io::Error>(rest.len() as u64 + 12)
    };
    match tokio::time::timeout(Duration::from_secs(300), read).await {
        Ok(Ok(n)) => (String::from_utf8_lossy(&head[9..12]).into_owned(), n),
        Ok(Err(_)) => ("reset".into(), 0),
        Err(_) => ("timeout".into(), 0),
    }
}
