//! The whole server against the real Kafka started by `scripts/services.sh start kafka`:
//! readings produced to `temperature_data` come out of the pipeline as alerts on
//! `temperature_alerts`, dead letters on `temperature_data_dlq`, archive files, and the
//! server-rendered page.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use thermoalert_pipeline::model::{Alert, AlertKind, AlertState, Level};
use thermoalert_pipeline::topics;

use common::{
    Server, brokers, eventually, expected_instant_alerts, free_port, from_start, get, get_json,
    hand_checked, headers_of, interleaved, produce, serve, services, simulated,
};

/// Every server consumes the whole readings topic (and so publishes alerts for the other
/// tests' sensors too): one test at a time keeps each test's alerts its own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start_server(data_dir: &Path, group: &str, port: u16) -> Server {
    start_server_logging_to(data_dir, group, port, "server.log")
}

fn start_server_logging_to(data_dir: &Path, group: &str, port: u16, log_name: &str) -> Server {
    start_server_with(data_dir, group, port, log_name, &[])
}

/// A server with `extra` environment set over the test defaults.
fn start_server_with(
    data_dir: &Path,
    group: &str,
    port: u16,
    log_name: &str,
    extra: &[(&str, &str)],
) -> Server {
    Server::start(
        serve(data_dir, port)
            .env("THERMO_KAFKA_BROKERS", brokers())
            .env("THERMO_GROUP", group)
            .env("THERMO_FLUSH_INTERVAL", "300ms")
            .env("THERMO_WINDOW", "10s")
            .env("THERMO_LATENESS", "1s")
            .env("THERMO_OFFLINE_AFTER", "3s")
            .env_remove("THERMO_HDFS_URL")
            .envs(extra.iter().copied()),
        data_dir.join(log_name),
    )
}

type Received = (Vec<u8>, Vec<(String, String)>);

/// Reads `topic` from the start in a fresh group, keeping the payload and headers of the
/// messages whose key is `key`, until `enough` says stop (or 90 s pass: the test fails).
async fn collect(
    group: &str,
    topic: &str,
    key: &str,
    enough: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let c = from_start(group, topic);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut found = Vec::new();
    while !enough(&found) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out on {topic} for key {key}; got {} messages",
            found.len()
        );
        let Ok(Ok(m)) = tokio::time::timeout(left, c.recv()).await else {
            continue;
        };
        if m.key() != Some(key.as_bytes()) {
            continue;
        }
        let headers = headers_of(&m);
        found.push((m.payload().unwrap_or_default().to_vec(), headers));
    }
    found
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(jsonl_files(&p));
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
    out
}

fn count_lines(dir: &Path) -> usize {
    jsonl_files(dir).iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka"]
async fn readings_on_real_kafka_come_out_as_alerts_dead_letters_archive_and_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let hot = format!("it{nonce}hot");
    let warm = format!("it{nonce}warm");
    let bad = format!("it{nonce}bad");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start_server(data.path(), &format!("it-{nonce}"), port);

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let send = |key: &str, payload: String| {
        let producer = producer.clone();
        let key = key.to_owned();
        async move {
            producer
                .send(
                    FutureRecord::to(topics::READINGS).key(&key).payload(&payload),
                    Duration::from_secs(60),
                )
                .await
                .expect("the broker takes the message");
        }
    };
    // Two minutes ago, aligned to the server's 10 s windows.
    let t0 = ((nonce / 1000) as f64 / 10.0).floor() * 10.0 - 120.0;
    // An excursion: normal, HIGH, CRITICAL, back to normal (window average exactly 80: no
    // window alert).
    let temps = [70.0, 85.0, 95.0, 70.0];
    for (i, temp) in temps.iter().enumerate() {
        let t = t0 + i as f64;
        send(&hot, format!(r#"{{"timestamp":{t},"sensor_id":"{hot}","temperature":{temp}}}"#))
            .await;
    }
    // A window whose average is HIGH: three readings at 85 °C.
    for i in 0..3 {
        let t = t0 + f64::from(i);
        send(&warm, format!(r#"{{"timestamp":{t},"sensor_id":"{warm}","temperature":85}}"#)).await;
    }
    let malformed = format!(r#"{{"timestamp":{t0},"sensor_id":"{bad}","temperature":"hot"}}"#);
    send(&bad, malformed.clone()).await;

    // The hot sensor's episode, then (silent for 3 s) its offline alert.
    let parse = |found: Vec<Received>| -> Vec<Alert> {
        found
            .into_iter()
            .map(|(p, _)| serde_json::from_slice(&p).expect("alerts are JSON"))
            .collect()
    };
    let alerts =
        parse(collect(&format!("it-alerts-{nonce}"), topics::ALERTS, &hot, |f| f.len() >= 4).await);
    let instant: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Instant)
        .map(|a| (a.state, a.severity, a.temperature))
        .collect();
    assert_eq!(
        instant,
        vec![
            (AlertState::Open, Level::High, 85.0),
            (AlertState::Escalated, Level::Critical, 95.0),
            (AlertState::Cleared, Level::Critical, 70.0),
        ]
    );
    let opened_ms = ((t0 + 1.0) * 1000.0) as i64;
    let instant_id = format!("instant-{hot}-{opened_ms}");
    assert!(
        alerts.iter().filter(|a| a.kind == AlertKind::Instant).all(|a| a.alert_id == instant_id)
    );
    let offline: Vec<_> = alerts.iter().filter(|a| a.kind == AlertKind::Offline).collect();
    assert_eq!(offline.len(), 1, "{alerts:?}");
    assert_eq!(offline[0].state, AlertState::Open);
    assert_eq!(offline[0].alert_id, format!("offline-{hot}-{}", ((t0 + 3.0) * 1000.0) as i64));

    // The warm sensor's window closes once it is idle and raises a HIGH window alert.
    let warm_alerts = parse(
        collect(&format!("it-walerts-{nonce}"), topics::ALERTS, &warm, |f| {
            f.iter().any(|(p, _)| p.windows(15).any(|w| w == br#""kind":"window""#))
        })
        .await,
    );
    let window = warm_alerts.iter().find(|a| a.kind == AlertKind::Window).unwrap();
    assert_eq!((window.state, window.severity), (AlertState::Open, Level::High));
    assert_eq!(window.alert_id, format!("window-{warm}-{}", (t0 * 1000.0) as i64));
    let stats = window.window.as_ref().expect("window alerts carry their window");
    assert_eq!(
        (stats.count, stats.avg_temperature, stats.window_end - stats.window_start),
        (3, 85.0, 10.0)
    );

    let dead =
        collect(&format!("it-dlq-{nonce}"), topics::DEAD_LETTERS, &bad, |f| !f.is_empty()).await;
    assert_eq!(dead[0].0, malformed.as_bytes(), "the raw bytes are kept");
    let reason = dead[0].1.iter().find(|(k, _)| k == "thermoalert.reason").map(|(_, v)| v.as_str());
    assert_eq!(reason, Some("wrong_type"));

    // The archive holds the four readings, the three instant alert states and the offline one.
    let readings_dir = data.path().join("archive/temperature_data").join(&hot);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_lines(&readings_dir) < temps.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count_lines(&readings_dir), temps.len());
    assert_eq!(count_lines(&data.path().join("archive/alerts/instant").join(&hot)), 3);

    // The index answers the JSON API: one row per alert id, the readings, the CSV export.
    let from = t0 - 1.0;
    let to = t0 + 10.0;
    let alerts_json = get_json(port, &format!("/api/alerts?sensor={hot}"));
    let mut listed: Vec<(String, String)> = alerts_json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap().to_owned(), a["state"].as_str().unwrap().to_owned()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![("instant".into(), "cleared".into()), ("offline".into(), "open".into())]
    );
    let readings_json = get_json(port, &format!("/api/readings?sensor={hot}&from={from}&to={to}"));
    assert_eq!(readings_json["readings"].as_array().unwrap().len(), temps.len());
    let csv = get(port, &format!("/api/export.csv?sensor={hot}&from={from}&to={to}")).unwrap().body;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "timestamp,sensor_id,temperature");
    assert_eq!(lines[1], format!("{},{hot},70", t0 as i64));
    assert_eq!(lines.len(), 1 + temps.len());
    let refused = get(port, "/api/alerts?severity=bogus").unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");

    // The server-rendered overview shows the sensor.
    let page = get(port, "/").expect("the page is served").body;
    assert!(page.contains(&format!("data-sensor=\"{hot}\"")), "overview lacks {hot}");

    // The consumer's lag, per partition, from librdkafka's statistics of the real broker:
    // once everything is read and committed, none is left on any partition it holds.
    eventually(90, || {
        let metrics = get(port, "/metrics").unwrap_or_default().body;
        let lag: Vec<f64> = metrics
            .lines()
            .filter(|l| l.starts_with("thermoalert_consumer_lag{partition=\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        let done = !lag.is_empty() && lag.iter().all(|&n| n == 0.0);
        (!done).then(|| format!("consumer lag never reached 0: {lag:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka"]
async fn a_crash_mid_stream_loses_no_reading_and_duplicates_no_alert() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let prefix = format!("kill{nonce}");
    let data = tempfile::tempdir().unwrap();
    let group = format!("it-kill-{nonce}");
    let t0 = ((nonce / 1000) as f64 / 300.0).floor() * 300.0 - 3600.0;
    let (sensors, seconds) = (8, 300);
    // Simulated sensors, plus one whose alerts are written by hand, with an excursion that
    // surely spans the crash (the middle).
    let span = format!("{prefix}span");
    let (by_hand, span_expected) = hand_checked(&span, t0, seconds);
    let readings = interleaved(&simulated(&prefix, sensors, seconds, t0), sensors, &by_hand);

    // What an uninterrupted run raises: the final state of every instant episode.
    let expected = expected_instant_alerts(&readings);
    assert!(expected.len() >= 4, "the simulation should raise several episodes");

    let half = readings.len() / 2;
    let archive = data.path().join("archive/temperature_data");
    let wait_archived = |at_least: usize| {
        let archive = archive.clone();
        async move {
            eventually(60, || {
                let n = count_lines(&archive);
                (n < at_least).then(|| format!("{n} readings archived, fewer than {at_least}"))
            })
            .await;
        }
    };
    // Crash 1, as soon as anything is archived: most likely before its offsets are
    // committed, so the restart replays what was archived already.
    let mut server = start_server_logging_to(data.path(), &group, free_port(), "server1.log");
    produce(&readings[..half]).await;
    wait_archived(1).await;
    server.kill();
    // Crash 2, once the first half is durable and committed: the restart must continue the
    // open episodes from the saved state, since nothing is replayed.
    let mut server = start_server_logging_to(data.path(), &group, free_port(), "server2.log");
    wait_archived(half).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.kill();

    produce(&readings[half..]).await;
    let port = free_port();
    let _server = start_server_logging_to(data.path(), &group, port, "server3.log");

    // Every reading is in the history exactly once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (from, to) = (t0 - 1.0, t0 + seconds as f64 + 1.0);
    for i in 1..=sensors {
        let sensor = format!("{prefix}sensor{i}");
        loop {
            let page =
                get_json(port, &format!("/api/readings?sensor={sensor}&from={from}&to={to}"));
            let n = page["readings"].as_array().map_or(0, Vec::len);
            if n == seconds {
                break;
            }
            assert!(n <= seconds, "{sensor}: {n} readings, more than the {seconds} produced");
            assert!(Instant::now() < deadline, "{sensor}: only {n} of {seconds} readings archived");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // Every expected alert is in the index once, in its final state.
    let mut sensors_param: Vec<String> =
        (1..=sensors).map(|i| format!("{prefix}sensor{i}")).collect();
    sensors_param.push(span.clone());
    let listed = get_json(
        port,
        &format!("/api/alerts?kind=instant&limit=10000&sensor={}", sensors_param.join(",")),
    );
    let mut got: BTreeMap<String, (String, AlertState)> = BTreeMap::new();
    for a in listed.as_array().unwrap() {
        let alert: Alert = serde_json::from_value(a.clone()).unwrap();
        assert!(
            got.insert(alert.alert_id.clone(), (alert.sensor_id, alert.state)).is_none(),
            "{} listed twice",
            alert.alert_id
        );
    }
    let span_got: BTreeMap<String, AlertState> =
        got.iter().filter(|(_, a)| a.0 == span).map(|(id, a)| (id.clone(), a.1)).collect();
    assert_eq!(span_got, span_expected, "the alerts written down by hand");
    let got: BTreeMap<String, AlertState> = got.into_iter().map(|(id, a)| (id, a.1)).collect();
    let missing: Vec<_> = expected.iter().filter(|(k, v)| got.get(*k) != Some(v)).collect();
    let extra: Vec<_> = got.iter().filter(|(k, v)| expected.get(*k) != Some(v)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "expected but not found: {missing:?}\nfound but not expected: {extra:?}"
    );
}

/// Every archived reading line of `dir`, as `(sensor, timestamp)`.
fn archived_readings(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in jsonl_files(&dir.join("archive/temperature_data")) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let timestamp = r["timestamp"].as_f64().unwrap().to_string();
            out.push((r["sensor_id"].as_str().unwrap().to_owned(), timestamp));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka"]
async fn two_instances_split_the_partitions_and_process_every_reading_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let prefix = format!("pair{nonce}");
    let group = format!("it-pair-{nonce}");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = ((nonce / 1000) as f64 / 300.0).floor() * 300.0 - 3600.0;
    let readings = simulated(&prefix, 12, 200, t0);
    let third = readings.len() / 3;
    let mine = |all: Vec<(String, String)>| -> Vec<(String, String)> {
        all.into_iter().filter(|(s, _)| s.starts_with(&prefix)).collect()
    };

    // A alone takes every partition, then B joins mid-stream: A must flush and commit what
    // it consumed before handing partitions over, or B would process it again. A flushes
    // rarely, so it surely holds unflushed readings when B joins.
    let flush = [("THERMO_FLUSH_INTERVAL", "4s")];
    let _a = start_server_with(a_dir.path(), &group, free_port(), "a.log", &flush);
    produce(&readings[..third]).await;
    eventually(60, || {
        let n = mine(archived_readings(a_dir.path())).len();
        (n < third).then(|| format!("A archived {n} readings, not the first third ({third})"))
    })
    .await;
    let _b = start_server_logging_to(b_dir.path(), &group, free_port(), "b.log");
    // B has joined once it archives anything of what follows.
    let mut rest = readings[third..].chunks(readings[third..].len() / 40);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mine(archived_readings(b_dir.path())).is_empty() {
        assert!(Instant::now() < deadline, "B never got a partition");
        if let Some(chunk) = rest.next() {
            produce(chunk).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for chunk in rest {
        produce(chunk).await;
    }

    // Together they archive every reading, and no reading twice.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (a, b) = loop {
        let (a, b) = (mine(archived_readings(a_dir.path())), mine(archived_readings(b_dir.path())));
        if a.len() + b.len() >= readings.len() || Instant::now() > deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A short grace period: anything processed twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (a2, b2) = (mine(archived_readings(a_dir.path())), mine(archived_readings(b_dir.path())));
    assert_eq!((a2.len(), b2.len()), (a.len(), b.len()), "readings archived after the end");
    let mut all: Vec<(String, String)> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let total = all.len();
    all.dedup();
    assert_eq!(total, all.len(), "{} readings archived by both instances", total - all.len());
    let mut expected: Vec<(String, String)> =
        readings.iter().map(|r| (r.sensor_id.clone(), r.timestamp.to_string())).collect();
    expected.sort();
    let missing = expected.iter().filter(|r| all.binary_search(r).is_err()).count();
    let extra = all.iter().filter(|r| expected.binary_search(r).is_err()).count();
    assert_eq!((missing, extra), (0, 0), "the union of both archives is every reading produced");
    assert!(!a.is_empty() && !b.is_empty());
    // Each sensor's readings after the split come from one partition: one instance.
    let sensors_of = |v: &[(String, String)]| -> std::collections::BTreeSet<String> {
        v.iter().map(|(s, _)| s.clone()).collect()
    };
    let late_a = sensors_of(&a[third.min(a.len())..]);
    let b_sensors = sensors_of(&b);
    assert!(b_sensors.len() < 12, "B took every sensor: {b_sensors:?} (A kept {late_a:?})");
}

/// Starts Kafka again when dropped, so a failing outage test leaves the broker up for the
/// next test.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        services(&["start", "kafka"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka; stops and restarts it"]
async fn a_broker_outage_is_survived_and_nothing_is_lost() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let prefix = format!("outage{nonce}");
    let data = tempfile::tempdir().unwrap();
    let t0 = ((nonce / 1000) as f64 / 300.0).floor() * 300.0 - 3600.0;
    let readings = simulated(&prefix, 6, 100, t0);
    let half = readings.len() / 2;
    let port = free_port();
    let _server = start_server(data.path(), &format!("it-outage-{nonce}"), port);
    let archived = || {
        archived_readings(data.path()).into_iter().filter(|(s, _)| s.starts_with(&prefix)).count()
    };
    let wait_archived = |n: usize, secs: u64| {
        eventually(secs, move || {
            let got = archived();
            (got < n).then(|| format!("only {got} of {n} readings archived"))
        })
    };
    let status_of = |path: &str| get(port, path).unwrap_or_default().status;

    produce(&readings[..half]).await;
    wait_archived(half, 60).await;

    // The broker goes away for a while: the server stays up, says it is not ready, and
    // names Kafka as the reason.
    let back = BrokerBack;
    services(&["stop", "kafka"]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(status_of("/healthz"), 200, "alive during the outage");
    let ready = get(port, "/readyz").unwrap();
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("Kafka unreachable"), "{ready:?}");
    drop(back);

    // Once it is back, the pipeline resumes: the second half arrives, nothing is lost and
    // nothing archived twice.
    produce(&readings[half..]).await;
    wait_archived(readings.len(), 120).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(archived(), readings.len(), "every reading archived once");
    eventually(30, || {
        let status = status_of("/readyz");
        (status != 200).then(|| format!("not ready again after the outage: {status}"))
    })
    .await;
}

/// Starts HDFS again when dropped, so a failing outage test leaves it up for the next test.
#[cfg(feature = "hdfs")]
struct HdfsBack;

#[cfg(feature = "hdfs")]
impl Drop for HdfsBack {
    fn drop(&mut self) {
        services(&["start", "hdfs"]);
    }
}

/// The readings of `sensor` the server's history holds in `[from, to)`.
#[cfg(feature = "hdfs")]
fn history_count(port: u16, sensor: &str, from: f64, to: f64) -> Option<usize> {
    let page = get_json(port, &format!("/api/readings?sensor={sensor}&from={from}&to={to}"));
    page["readings"].as_array().map(Vec::len)
}

#[cfg(feature = "hdfs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka and HDFS; stops and restarts HDFS"]
async fn an_hdfs_outage_pauses_the_archive_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let prefix = format!("nn{nonce}");
    let data = tempfile::tempdir().unwrap();
    let t0 = ((nonce / 1000) as f64 / 300.0).floor() * 300.0 - 3600.0;
    let (sensors, seconds) = (4, 120);
    let readings = simulated(&prefix, sensors, seconds, t0);
    let half = readings.len() / 2;
    let port = free_port();
    let hdfs = [("THERMO_HDFS_URL", "hdfs://127.0.0.1:9000")];
    let group = format!("it-nn-{nonce}");
    common::commit_group_at_end(&brokers(), &group);
    let _server = start_server_with(data.path(), &group, port, "server.log", &hdfs);
    let (from, to) = (t0 - 1.0, t0 + seconds as f64 + 1.0);
    let wait_all = |each: usize, secs: u64| {
        let prefix = prefix.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            for i in 1..=sensors {
                let sensor = format!("{prefix}sensor{i}");
                loop {
                    let n = history_count(port, &sensor, from, to).unwrap_or(0);
                    assert!(
                        n <= seconds,
                        "{sensor}: {n} readings, more than the {seconds} produced"
                    );
                    if n >= each {
                        break;
                    }
                    if Instant::now() > deadline {
                        let metrics = get(port, "/metrics").unwrap_or_default().body;
                        let counts: Vec<&str> = metrics
                            .lines()
                            .filter(|l| l.starts_with("thermoalert_") && !l.contains("bucket"))
                            .collect();
                        panic!("{sensor}: {n} of {each} readings in history; {counts:#?}");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    };
    let started = Instant::now();
    let step = |what: &str| eprintln!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    produce(&readings[..half]).await;
    step("first half produced");
    wait_all(seconds / 2, 180).await;
    step("first half in history");

    // HDFS goes away while readings keep coming and appends are in flight: the server holds
    // them (bounded), says it is not ready, and writes them once HDFS is back (files left
    // open by the outage wait for HDFS's lease recovery, about a minute).
    let back = HdfsBack;
    let rest = readings[half..].to_vec();
    let stream = tokio::spawn(async move {
        for chunk in rest.chunks(8) {
            produce(chunk).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    services(&["stop", "hdfs"]);
    step("HDFS stopped mid-stream");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready = get(port, "/readyz").unwrap_or_default();
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("archive"), "{ready:?}");
    step("not ready");
    drop(back);
    step("HDFS started");
    stream.await.unwrap();
    step("second half produced");
    wait_all(seconds, 300).await;
    step("second half in history");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 1..=sensors {
        let sensor = format!("{prefix}sensor{i}");
        assert_eq!(history_count(port, &sensor, from, to), Some(seconds), "{sensor}");
    }
}

/// The group's committed offset of each readings partition (none committed: absent).
fn committed_offsets(group: &str) -> BTreeMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = c.fetch_metadata(Some(topics::READINGS), timeout).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition(topics::READINGS, p.id());
    }
    let committed = c.committed_offsets(tpl, timeout).unwrap();
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka"]
async fn a_message_as_large_as_the_broker_takes_is_dead_lettered_and_commits_go_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let (poison_key, probe) = (format!("it{nonce}poison"), format!("it{nonce}probe"));
    let group = format!("it-poison-{nonce}");
    common::commit_group_at_end(&brokers(), &group);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start_server(data.path(), &group, port);

    // ~1 MB: the broker takes it (its limit is 1 MiB a record batch); its dead letter, with
    // the whole value copied and headers added, would not fit.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "1048576")
        .create()
        .unwrap();
    let poison = vec![b'x'; 1_000_000];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let reading = format!(r#"{{"timestamp":{now},"sensor_id":"{probe}","temperature":21.5}}"#);
    let mut ends = BTreeMap::new();
    for (key, payload) in [(&poison_key, &poison[..]), (&probe, reading.as_bytes())] {
        let delivered = producer
            .send(
                FutureRecord::to(topics::READINGS).key(key).payload(payload),
                Duration::from_secs(60),
            )
            .await
            .expect("the broker takes the message");
        ends.insert(delivered.partition, delivered.offset + 1);
    }

    // The reading after it is archived, and the group's commits pass both messages.
    let readings_dir = data.path().join("archive/temperature_data").join(&probe);
    eventually(30, || {
        (count_lines(&readings_dir) < 1)
            .then(|| "the reading after the large one was not archived".into())
    })
    .await;
    eventually(30, || {
        let committed = committed_offsets(&group);
        let done = ends.iter().all(|(p, end)| committed.get(p).is_some_and(|c| c >= end));
        (!done).then(|| format!("commits stalled: {committed:?}, produced to {ends:?}"))
    })
    .await;

    // Its dead letter holds the first 64 KiB, and says the original's size and SHA-256
    // (`head -c 1000000 /dev/zero | tr '\0' x | sha256sum`).
    let dead =
        collect(&format!("it-dlq-{nonce}"), topics::DEAD_LETTERS, &poison_key, |f| !f.is_empty())
            .await;
    let (value, headers) = &dead[0];
    assert_eq!(value.len(), 64 * 1024);
    assert!(value.iter().all(|&b| b == b'x'));
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("thermoalert.reason"), Some("too_large"));
    assert_eq!(header("thermoalert.original.bytes"), Some("1000000"));
    assert_eq!(
        header("thermoalert.original.sha256"),
        Some("1b977e9f84f1b26b6ed7f68b0498faee2385ea4125bd29adce4a7d9106ba3134")
    );

    // And a graceful stop ends.
    stop_within(&mut server, 40).await;
}

/// Thaws Kafka when dropped, so a failing test leaves the broker answering for the next.
struct BrokerThawed;

impl Drop for BrokerThawed {
    fn drop(&mut self) {
        services(&["resume", "kafka"]);
    }
}

/// A server on `data` and `port` in the fresh `group` (starting at the end of the readings
/// topic), once it archived five seconds of `sensors` simulated sensors named
/// `<prefix>sensorN`, up to now; then the broker is frozen (connections open, no answer)
/// until the returned guard drops.
async fn archived_then_frozen(
    prefix: &str,
    group: &str,
    sensors: usize,
    data: &Path,
    port: u16,
) -> (Server, BrokerThawed) {
    common::commit_group_at_end(&brokers(), group);
    let server = start_server(data, group, port);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let readings = simulated(prefix, sensors, 5, now - 5.0);
    produce(&readings).await;
    let archive = data.join("archive/temperature_data");
    eventually(60, || {
        let n = count_lines(&archive);
        (n < readings.len()).then(|| format!("{n} of {} readings archived", readings.len()))
    })
    .await;
    let thaw = BrokerThawed;
    services(&["pause", "kafka"]);
    (server, thaw)
}

/// Sends SIGTERM and waits (at most `seconds`) for the process to end: how it ended.
async fn stop_within(server: &mut Server, seconds: u64) -> std::process::ExitStatus {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            return exit;
        }
        assert!(Instant::now() < deadline, "no exit {seconds} s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka; freezes and thaws it"]
async fn a_stop_signal_ends_the_process_in_time_even_with_the_broker_frozen() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (prefix, group) = (format!("stop{nonce}"), format!("it-stop-{nonce}"));
    let (mut server, thaw) = archived_then_frozen(&prefix, &group, 3, data.path(), port).await;

    // The broker is frozen; the sensors fall silent, so their offline alerts (after 3 s) wait
    // for the broker: the flush that carries them cannot end.
    eventually(30, || {
        let raised = get(port, "/metrics").is_some_and(|r| r.body.contains(r#"kind="offline""#));
        (!raised).then(|| "no offline alert was raised".into())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let exit = stop_within(&mut server, 45).await;
    drop(thaw);
    // Not a clean stop (what was not committed is replayed at the next start), and it says so.
    assert!(!exit.success(), "{exit}");
    assert!(server.log().contains("shutdown"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka; freezes and thaws it"]
async fn alerts_indexed_before_a_crash_reach_the_alerts_topic_after_the_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (prefix, group) = (format!("outbox{nonce}"), format!("it-outbox-{nonce}"));
    let (mut server, thaw) = archived_then_frozen(&prefix, &group, 2, data.path(), port).await;

    // The two sensors go offline (after 3 s): their alerts are indexed (listed by the API),
    // then the server dies before the frozen broker has them.
    let offline_listed = || {
        let listed = get_json(port, "/api/alerts?kind=offline");
        let ours = |a: &&serde_json::Value| {
            a["sensor_id"].as_str().is_some_and(|s| s.starts_with(&prefix))
        };
        listed.as_array().map_or(0, |a| a.iter().filter(ours).count())
    };
    // The flush before them may first wait out its offset commit to the frozen broker (the
    // request times out after a minute).
    eventually(120, || {
        let n = offline_listed();
        (n < 2).then(|| format!("{n} of the 2 offline alerts indexed"))
    })
    .await;
    server.kill();
    drop(thaw);

    // Restarted on the same data, it sends them: their readings are not replayed (the offsets
    // saved with them are past those readings), so only the outbox has them.
    let _server = start_server_logging_to(data.path(), &group, free_port(), "restarted.log");
    for sensor in ["sensor1", "sensor2"].map(|s| format!("{prefix}{s}")) {
        let found =
            collect(&format!("it-outbox-read-{nonce}-{sensor}"), topics::ALERTS, &sensor, |f| {
                f.iter().any(|(p, _)| {
                    serde_json::from_slice::<Alert>(p).is_ok_and(|a| a.kind == AlertKind::Offline)
                })
            })
            .await;
        assert!(!found.is_empty(), "{sensor}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka: scripts/services.sh start kafka"]
async fn a_pipeline_far_behind_the_topic_s_retention_is_not_ready_and_says_why() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let group = format!("it-backlog-{nonce}");
    common::commit_group_at_end(&brokers(), &group);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start_server(data.path(), &group, port);
    server.wait_for("ready", 60, || get(port, "/readyz").is_some_and(|r| r.ok()));

    // Messages the broker got 40 minutes ago (as after an outage of the pipeline), read now.
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let sensor = format!("backlog{nonce}");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let feed = tokio::spawn(async move {
        for i in 0..100 {
            let t = (now_ms - 40 * 60_000) as f64 / 1000.0 + f64::from(i);
            let reading = format!(r#"{{"timestamp":{t},"sensor_id":"{sensor}","temperature":20}}"#);
            let record = FutureRecord::to(topics::READINGS)
                .key(&sensor)
                .payload(&reading)
                .timestamp(now_ms - 40 * 60_000 + i64::from(i) * 1000);
            producer.send(record, Duration::from_secs(30)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = get(port, "/readyz").unwrap();
        if ready.status == 503 {
            break ready;
        }
        assert!(Instant::now() < deadline, "still ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ready.body.contains("retention"), "{ready:?}");
    assert!(ready.body.contains(r#""backlog""#), "{ready:?}");
    // The gauge follows within a second.
    let delay = || -> f64 {
        let metrics = get(port, "/metrics").unwrap().body;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("thermoalert_consumer_delay_seconds "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    server.wait_for("the delay metric", 5, || delay() > 30.0 * 60.0);
    // Caught up, it is ready again.
    feed.await.unwrap();
    server.wait_for("ready again", 30, || get(port, "/readyz").is_some_and(|r| r.ok()));
}
