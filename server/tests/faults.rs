//! The fault-injection suite, on the real Kafka and HDFS of `scripts/services.sh`: while
//! readings (and some malformed messages) stream in, the server is killed with SIGKILL five
//! times at random moments and restarted, the Kafka broker is restarted once, and HDFS is
//! stopped for 60 s once. At the end every reading must be in the history exactly once, every
//! alert an uninterrupted run raises must be in the index once in its final state and on
//! `temperature_alerts`, and the dead-letter topic must hold exactly the malformed messages.
//! The counts are printed.
//!
//! The test command runs it reduced (40 sensors × 300 s = 12 000 readings);
//! `THERMO_FAULTS=full` runs 1 000 sensors × 1 000 s = 1 000 000 readings:
//!
//! ```sh
//! THERMO_FAULTS=full cargo test -p thermoalert --features hdfs --test faults -- --ignored --nocapture
//! ```
#![cfg(feature = "hdfs")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::message::Message;
use thermoalert_pipeline::model::{Alert, AlertKind, AlertState};
use thermoalert_pipeline::topics;

use common::{
    Server, brokers, commit_group_at_end, expected_instant_alerts, free_port, from_start, get_json,
    hand_checked, headers_of, interleaved, produce_raw, serve, services, simulated,
};

/// Starts a service again when dropped, so a failing test leaves it up for the next one.
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        services(&["start", self.0]);
    }
}

fn start(data: &Path, group: &str, run: usize) -> (Server, u16) {
    let port = free_port();
    let server = Server::start(
        serve(data, port)
            .env("THERMO_KAFKA_BROKERS", brokers())
            .env("THERMO_HDFS_URL", "hdfs://127.0.0.1:9000")
            .env("THERMO_GROUP", group)
            .env("THERMO_FLUSH_INTERVAL", "1s"),
        data.join(format!("server{run}.log")),
    );
    (server, port)
}

/// A small deterministic generator for the fault moments (seeded by the run's nonce, which
/// is printed, so a failing schedule can be told apart).
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Messages of `topic` whose key starts with `prefix`: `(key, payload, headers)`, read from
/// the start until `enough` holds or 300 s pass.
async fn read_topic(
    topic: &str,
    prefix: &str,
    enough: impl Fn(&[(String, Vec<u8>, BTreeMap<String, String>)]) -> bool,
) -> Vec<(String, Vec<u8>, BTreeMap<String, String>)> {
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let c = from_start(&format!("faults-read-{nonce}"), topic);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut found = Vec::new();
    // `enough` looks at everything found: asked once a second, not per message.
    let mut checked = Instant::now();
    loop {
        if checked.elapsed() >= Duration::from_secs(1) {
            if enough(&found) || Instant::now() > deadline {
                break;
            }
            checked = Instant::now();
        }
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await else {
            if enough(&found) || Instant::now() > deadline {
                break;
            }
            continue;
        };
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        if !key.starts_with(prefix) {
            continue;
        }
        let headers = headers_of(&m);
        found.push((key, m.payload().unwrap_or_default().to_vec(), headers));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Kafka and HDFS; kills the server, restarts Kafka, stops HDFS"]
async fn kills_a_broker_restart_and_an_hdfs_outage_lose_and_duplicate_nothing() {
    let full = std::env::var("THERMO_FAULTS").is_ok_and(|v| v == "full");
    let (sensors, seconds) = if full { (1000, 1000) } else { (40, 300) };
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let prefix = format!("f{nonce}");
    let mut moments = Moments(nonce as u64 | 1);
    let data = tempfile::tempdir().unwrap();
    let group = format!("it-faults-{nonce}");
    let t0 = ((nonce / 1000) as f64 / 300.0).floor() * 300.0 - seconds as f64 - 3600.0;
    // Simulated sensors, and one whose alerts are written down by hand.
    let by_hand = format!("{prefix}sensor0");
    let (hand_readings, hand_expected) = hand_checked(&by_hand, t0, seconds);
    let readings = interleaved(&simulated(&prefix, sensors, seconds, t0), sensors, &hand_readings);

    // One malformed message after every 97 readings, each of its own key.
    let bad_payloads: [&[u8]; 4] = [
        b"not json",
        br#"{"timestamp":1,"sensor_id":"../x","temperature":1}"#,
        br#"{"timestamp":1,"sensor_id":"s"}"#,
        br#"{"timestamp":1,"sensor_id":"s","temperature":1e9}"#,
    ];
    let mut messages = Vec::with_capacity(readings.len() + readings.len() / 97 + 1);
    let mut malformed = BTreeSet::new();
    for (i, r) in readings.iter().enumerate() {
        messages.push((r.sensor_id.clone(), serde_json::to_vec(r).unwrap()));
        if i % 97 == 96 {
            let key = format!("{prefix}bad{i}");
            messages.push((key.clone(), bad_payloads[malformed.len() % 4].to_vec()));
            malformed.insert(key);
        }
    }

    // What an uninterrupted run raises: the final state of every instant episode.
    let expected = expected_instant_alerts(&readings);
    assert!(!expected.is_empty(), "the simulation should raise episodes");
    eprintln!(
        "faults: {} readings of {sensors} sensors, {} malformed, {} expected alerts (seed {nonce})",
        readings.len(),
        malformed.len(),
        expected.len()
    );

    commit_group_at_end(&brokers(), &group);
    let mut run = 1;
    let (mut server, mut port) = start(data.path(), &group, run);
    let chunks: Vec<&[(String, Vec<u8>)]> = messages.chunks(messages.len().div_ceil(10)).collect();
    let mut kills = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        if i == 6 {
            continue; // sent during the HDFS outage, below
        }
        produce_raw(chunk).await;
        match i {
            // Kill -9 at a random moment of the next couple of seconds, then start again.
            1 | 2 | 4 | 7 | 8 => {
                tokio::time::sleep(Duration::from_millis(moments.next_ms(2500))).await;
                server.kill();
                kills += 1;
                run += 1;
                (server, port) = start(data.path(), &group, run);
                eprintln!("faults: kill -9 #{kills} after chunk {i}");
            }
            3 => {
                let back = Restart("kafka");
                services(&["stop", "kafka"]);
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(back);
                eprintln!("faults: Kafka restarted after chunk {i}");
            }
            5 => {
                let back = Restart("hdfs");
                services(&["stop", "hdfs"]);
                let stopped = Instant::now();
                // Readings keep coming while HDFS is away.
                produce_raw(chunks[6]).await;
                tokio::time::sleep(Duration::from_secs(60).saturating_sub(stopped.elapsed())).await;
                drop(back);
                eprintln!("faults: HDFS back after {:.0} s", stopped.elapsed().as_secs_f64());
            }
            _ => {}
        }
    }

    // Every reading is in the history exactly once.
    let deadline = Instant::now() + Duration::from_secs(if full { 900 } else { 300 });
    let (from, to) = (t0 - 1.0, t0 + seconds as f64 + 1.0);
    let mut archived = 0;
    for s in 0..=sensors {
        let sensor = format!("{prefix}sensor{s}");
        loop {
            let page =
                get_json(port, &format!("/api/readings?sensor={sensor}&from={from}&to={to}"));
            let n = page["readings"].as_array().map_or(0, Vec::len);
            assert!(n <= seconds, "{sensor}: {n} readings, more than the {seconds} produced");
            if n == seconds {
                archived += n;
                break;
            }
            assert!(Instant::now() < deadline, "{sensor}: only {n} of {seconds} readings");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // Every expected alert is in the index once, in its final state.
    let names: Vec<String> = (0..=sensors).map(|s| format!("{prefix}sensor{s}")).collect();
    let mut indexed: BTreeMap<String, AlertState> = BTreeMap::new();
    for group in names.chunks(100) {
        let path = format!("/api/alerts?kind=instant&limit=10000&sensor={}", group.join(","));
        for a in get_json(port, &path).as_array().expect("alerts listed") {
            let alert: Alert = serde_json::from_value(a.clone()).unwrap();
            let twice = indexed.insert(alert.alert_id.clone(), alert.state).is_some();
            assert!(!twice, "{} listed twice", alert.alert_id);
        }
    }
    let hand_indexed: BTreeMap<String, AlertState> = indexed
        .iter()
        .filter(|(id, _)| id.starts_with(&format!("instant-{by_hand}-")))
        .map(|(id, state)| (id.clone(), *state))
        .collect();
    assert_eq!(hand_indexed, hand_expected, "the alerts written down by hand");
    assert_eq!(indexed, expected, "the index's alerts and their final states");

    // On the alerts topic: every expected alert, in its final state (a replay after a kill
    // may send a state change again: at-least-once delivery, counted and shown).
    // The latest change of each alert: by event time, then open < escalated < cleared.
    let final_state = |found: &[(String, Vec<u8>, BTreeMap<String, String>)]| {
        let rank = |s: AlertState| AlertState::ALL.iter().position(|x| *x == s);
        let mut last: BTreeMap<String, (f64, AlertState)> = BTreeMap::new();
        for (_, payload, _) in found {
            let Ok(a) = serde_json::from_slice::<Alert>(payload) else { continue };
            if a.kind != AlertKind::Instant {
                continue;
            }
            let newer = last.get(&a.alert_id).is_none_or(|&(t, s)| {
                a.timestamp > t || (a.timestamp == t && rank(a.state) > rank(s))
            });
            if newer {
                last.insert(a.alert_id.clone(), (a.timestamp, a.state));
            }
        }
        last.into_iter().map(|(id, (_, state))| (id, state)).collect::<BTreeMap<_, _>>()
    };
    let on_topic = read_topic(topics::ALERTS, &prefix, |f| final_state(f) == expected).await;
    let instant_messages = on_topic
        .iter()
        .filter(|(_, p, _)| {
            serde_json::from_slice::<Alert>(p).is_ok_and(|a| a.kind == AlertKind::Instant)
        })
        .count();
    let distinct: BTreeSet<(String, String)> = on_topic
        .iter()
        .filter_map(|(_, p, _)| serde_json::from_slice::<Alert>(p).ok())
        .filter(|a| a.kind == AlertKind::Instant)
        .map(|a| (a.alert_id, a.state.as_str().to_owned()))
        .collect();
    assert_eq!(final_state(&on_topic), expected, "the alerts topic's final states");

    // The dead-letter topic: exactly the malformed messages (by key; a replayed one is
    // recognised by its source offset).
    let bad_prefix = format!("{prefix}bad");
    let dead = read_topic(topics::DEAD_LETTERS, &bad_prefix, |f| {
        f.iter().map(|(k, _, _)| k).collect::<BTreeSet<_>>().len() >= malformed.len()
    })
    .await;
    let dead_keys: BTreeSet<String> = dead.iter().map(|(k, _, _)| k.clone()).collect();
    let dead_sources: BTreeSet<String> = dead
        .iter()
        .map(|(_, _, h)| {
            let at = |n: &str| h.get(n).cloned().unwrap_or_default();
            format!("{}/{}", at("thermoalert.source.partition"), at("thermoalert.source.offset"))
        })
        .collect();
    assert_eq!(dead_keys, malformed, "the dead letters are the malformed messages");
    assert_eq!(dead_sources.len(), malformed.len(), "one source offset per malformed message");

    println!(
        "faults: readings produced {} archived once {archived}; kills {kills}, Kafka restarts 1, \
         HDFS outage 60 s; alerts expected {} indexed {} on the topic {} distinct state \
         changes in {} messages; malformed {} dead letters {} ({} messages)",
        readings.len(),
        expected.len(),
        indexed.len(),
        distinct.len(),
        instant_messages,
        malformed.len(),
        dead_keys.len(),
        dead.len()
    );
}
