//! What the server's integration tests and its benchmark all need to drive a real server
//! process from outside: a free port, a raw HTTP GET, the server child with its log, and a
//! consumer group that starts at the end of the readings topic. Each test crate uses a part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use thermoalert_pipeline::model::{Alert, AlertKind, AlertState, Reading};
use thermoalert_pipeline::processor::{Output, Processor, ProcessorConfig};
use thermoalert_pipeline::simulate::{Simulator, SimulatorConfig};
use thermoalert_pipeline::topics;

/// A port nothing listens on (the OS picked it; it is free again once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server's answer to [`get`] or [`post_form`].
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.0 on 127.0.0.1, or `None` when nothing answers (in 10 s).
pub fn get(port: u16, path: &str) -> Option<Response> {
    get_with(port, path, &[])
}

/// [`get`] with `headers` (`name: value` lines) added.
pub fn get_with(port: u16, path: &str, headers: &[&str]) -> Option<Response> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    exchange(port, &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n"))
}

/// `POST path` of a form body, with `headers` (`name: value` lines) added.
pub fn post_form(port: u16, path: &str, body: &str, headers: &[&str]) -> Option<Response> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    exchange(
        port,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        ),
    )
}

fn exchange(port: u16, request: &str) -> Option<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Response { status, headers, body: body.to_owned() })
}

/// The body of `GET path` parsed as JSON (`Null` when there is none).
pub fn get_json(port: u16, path: &str) -> serde_json::Value {
    get(port, path).and_then(|r| serde_json::from_str(&r.body).ok()).unwrap_or_default()
}

/// The `thermoalert` binary Cargo built for these tests.
pub fn thermoalert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_thermoalert"))
}

/// `thermoalert serve` with its data in `data` and its HTTP on `127.0.0.1:port`; the caller
/// adds the rest of its configuration.
pub fn serve(data: &Path, port: u16) -> Command {
    let mut command = thermoalert();
    command
        .arg("serve")
        .env("THERMO_DATA_DIR", data)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "thermoalert");
    command
}

/// A server process writing its output to a log file; killed when dropped, and its log
/// printed then if the test is failing.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
}

impl Server {
    pub fn start(command: &mut Command, log: PathBuf) -> Server {
        let file = std::fs::File::create(&log).unwrap();
        let out = file.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .expect("the server binary starts");
        Server { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `done` until it holds; fails at once if the server exits, or after `seconds`.
    pub fn wait_for(&mut self, what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !done() {
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("{what}: the server exited ({exit})");
            }
            assert!(Instant::now() < deadline, "{what}: not within {seconds} s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// kill -9, and waits for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log {} ---\n{}", self.log.display(), self.log());
        }
    }
}

/// A consumer in `group` (a fresh one: nothing committed) reading `topic` from its start.
pub fn from_start(group: &str, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

/// Commits `group`'s offsets at the end of the readings topic, so that a server joining the
/// group reads only what is produced from now on, not what earlier runs left in the topic.
pub fn commit_group_at_end(brokers: &str, group: &str) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = c.fetch_metadata(Some(topics::READINGS), timeout).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = c.fetch_watermarks(topics::READINGS, p.id(), timeout).unwrap();
        tpl.add_partition_offset(topics::READINGS, p.id(), Offset::Offset(high)).unwrap();
    }
    if tpl.count() > 0 {
        c.commit(&tpl, CommitMode::Sync).expect("the group's offsets are committed");
    }
}

/// The real Kafka of `scripts/services.sh` (or `THERMO_TEST_KAFKA`).
pub fn brokers() -> String {
    std::env::var("THERMO_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Readings of `sensors` simulated sensors named `<prefix>sensorN`, one per second each,
/// with frequent excursions, starting at `t0`.
pub fn simulated(prefix: &str, sensors: usize, seconds: usize, t0: f64) -> Vec<Reading> {
    let mut sim = Simulator::new(SimulatorConfig {
        sensors,
        seed: 42,
        excursion_chance: 0.03,
        ..Default::default()
    });
    let mut out = Vec::new();
    for s in 0..seconds {
        sim.tick(t0 + s as f64, &mut out);
    }
    for r in &mut out {
        r.sensor_id = format!("{prefix}{}", r.sensor_id);
    }
    out
}

/// Polls `not_yet` every 200 ms until it answers `None`; after `seconds`, fails with its last
/// answer (what is still missing). For async tests: [`Server::wait_for`] is the blocking form
/// that also notices the server's exit.
pub async fn eventually(seconds: u64, mut not_yet: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while let Some(missing) = not_yet() {
        assert!(Instant::now() < deadline, "{missing} (within {seconds} s)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A sensor whose instant alerts are written down by hand rather than predicted by the core:
/// one reading a second for `seconds` (at least 100) from `t0` (a whole second), 70 °C but for
/// three excursions under the default thresholds (HIGH above 80, CRITICAL above 90):
/// - seconds 20..30 at 85 °C: HIGH, then cleared;
/// - the middle 20 seconds, 85 °C then 95 °C: HIGH, escalated to CRITICAL, then cleared (an
///   episode a crash in the middle of the run interrupts);
/// - the last 10 seconds at 95 °C: CRITICAL at once, still open at the end.
///
/// Returns the readings (by second) and the final state of each episode, by alert id.
pub fn hand_checked(
    sensor_id: &str,
    t0: f64,
    seconds: usize,
) -> (Vec<Reading>, BTreeMap<String, AlertState>) {
    assert!(seconds >= 100 && t0.fract() == 0.0);
    let mid = seconds / 2;
    let temperature = |s: usize| match s {
        20..30 => 85.0,
        _ if (mid - 10..mid).contains(&s) => 85.0,
        _ if (mid..mid + 10).contains(&s) => 95.0,
        _ if s >= seconds - 10 => 95.0,
        _ => 70.0,
    };
    let readings = (0..seconds)
        .map(|s| Reading {
            timestamp: t0 + s as f64,
            sensor_id: sensor_id.to_owned(),
            temperature: temperature(s),
        })
        .collect();
    let id =
        |s: usize| Alert::id_for(AlertKind::Instant, sensor_id, ((t0 + s as f64) * 1e3) as i64);
    let expected = [
        (id(20), AlertState::Cleared),
        (id(mid - 10), AlertState::Cleared),
        (id(seconds - 10), AlertState::Open),
    ];
    (readings, expected.into())
}

/// `simulated` (`per_second` readings a second) with `extra` (one a second) after each
/// second's readings, so that every sensor's readings spread over the whole run.
pub fn interleaved(simulated: &[Reading], per_second: usize, extra: &[Reading]) -> Vec<Reading> {
    let mut out = Vec::with_capacity(simulated.len() + extra.len());
    for (second, one) in simulated.chunks(per_second).zip(extra) {
        out.extend_from_slice(second);
        out.push(one.clone());
    }
    out
}

/// Publishes `readings` to the readings topic, keyed by sensor, and waits for the broker.
pub async fn produce(readings: &[Reading]) {
    let messages: Vec<(String, Vec<u8>)> =
        readings.iter().map(|r| (r.sensor_id.clone(), serde_json::to_vec(r).unwrap())).collect();
    produce_raw(&messages).await;
}

/// Publishes `(key, payload)` messages to the readings topic and waits for the broker.
pub async fn produce_raw(messages: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        // Room for a whole batch queued at once (the fault suite's are 100 000 messages).
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .unwrap();
    // Queued synchronously, in order: the idempotent producer keeps each key's order.
    let mut deliveries = Vec::with_capacity(messages.len());
    for (key, payload) in messages {
        let record = FutureRecord::to(topics::READINGS).key(key).payload(payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for d in futures::future::join_all(deliveries).await {
        d.expect("not cancelled").map_err(|(e, _)| e).expect("the broker takes the message");
    }
}

/// Runs the project's service script (`stop kafka`, `start hdfs`, …).
pub fn services(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let status = Command::new("bash").arg(script).args(args).status().unwrap();
    assert!(status.success(), "scripts/services.sh {args:?} failed");
}

/// What an uninterrupted run of the core raises from `readings`: the final state of every
/// instant alert, by id. A prediction by the code under test: tests also check sensors of
/// [`hand_checked`], whose alerts are written by hand.
pub fn expected_instant_alerts(readings: &[Reading]) -> BTreeMap<String, AlertState> {
    let mut core = Processor::new(ProcessorConfig::default());
    let mut out = Output::default();
    for r in readings {
        core.process(r, r.event_time_ms(), &mut out);
    }
    out.alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Instant)
        .map(|a| (a.alert_id.clone(), a.state))
        .collect()
}

/// A Kafka message's headers as `(key, value)` pairs, values read as UTF-8 (lossy).
pub fn headers_of<C: FromIterator<(String, String)> + Default>(m: &impl Message) -> C {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
