//! The archive on the real HDFS started by `scripts/services.sh start hdfs`, through hdrs.
//! Needs `eval "$(scripts/services.sh env)"` for libjvm and the Hadoop jars.
#![cfg(feature = "hdfs")]

use std::time::{SystemTime, UNIX_EPOCH};

use thermoalert_pipeline::archive::{ArchiveBuffer, HdfsStore, Store};
use thermoalert_pipeline::model::Reading;

fn namenode() -> String {
    std::env::var("THERMO_TEST_HDFS").unwrap_or_else(|_| "hdfs://127.0.0.1:9000".into())
}

fn nonce() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

#[test]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
fn an_archive_batch_round_trips_through_real_hdfs() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let sensor = format!("it{}", nonce());
    let readings: Vec<Reading> = (0..50)
        .map(|i| Reading {
            timestamp: 1_700_000_000.0 + f64::from(i),
            sensor_id: sensor.clone(),
            temperature: 20.0 + f64::from(i) / 4.0,
        })
        .collect();
    let mut buffer = ArchiveBuffer::new("ithdfs");
    readings.iter().for_each(|r| buffer.push_reading(r));
    let written = buffer.take_batch().write(&store).expect("the batch is written");
    assert_eq!(written.len(), 1);
    let file = &written[0];
    assert!(
        file.path.starts_with(&format!("/temperature_data/{sensor}/2023-11-14/")),
        "{}",
        file.path
    );

    let bytes = store.read_file(&file.path).expect("the file reads back");
    let back: Vec<Reading> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, readings);

    let dir = file.path.rsplit_once('/').unwrap().0;
    let listed = store.list(dir).unwrap();
    assert_eq!(listed, vec![file.path.rsplit('/').next().unwrap().to_owned()]);
    assert!(store.list(&format!("/temperature_data/{sensor}-none")).unwrap().is_empty());
}

#[test]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
fn later_flushes_append_to_the_same_file_on_real_hdfs() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let sensor = format!("it{}", nonce());
    let mut buffer = ArchiveBuffer::new("ithdfs");
    let mut expected = Vec::new();
    let mut paths = Vec::new();
    for flush in 0..3 {
        for i in 0..10 {
            let r = Reading {
                timestamp: 1_700_000_000.0 + f64::from(flush * 10 + i),
                sensor_id: sensor.clone(),
                temperature: 21.0,
            };
            buffer.push_reading(&r);
            expected.push(r);
        }
        let written = buffer.take_batch().write(&store).expect("the append succeeds");
        paths.push(written[0].path.clone());
    }
    assert!(paths.iter().all(|p| *p == paths[0]), "one file per sensor-hour: {paths:?}");
    let back: Vec<Reading> = String::from_utf8(store.read_file(&paths[0]).unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, expected);
}

#[test]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
fn a_torn_last_line_is_closed_before_the_next_append_whoever_tore_it() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let path = format!("/it/torn{}/00_w-000.jsonl", nonce());
    store.append_file(&path, b"one\n").unwrap();
    // Another writer (a crashed run) leaves a torn line behind this store's back.
    let other = HdfsStore::connect(&namenode()).unwrap();
    other.append_file(&path, b"{\"torn").unwrap();
    store.append_file(&path, b"two\n").unwrap();
    // This store's own torn write is caught the same way.
    store.append_file(&path, b"{\"half").unwrap();
    store.append_file(&path, b"three\n").unwrap();
    store.append_file(&path, b"four\n").unwrap();
    let text = String::from_utf8(store.read_file(&path).unwrap()).unwrap();
    assert_eq!(text, "one\n{\"torn\ntwo\n{\"half\nthree\nfour\n");
    store.delete_file(&path).unwrap();
}

/// libhdfs's 2.6 glue (hdrs's default) answered "no entries" for an empty directory without
/// clearing errno, and whatever the JVM had left there (EAGAIN from a futex wait, in CI) made
/// hdrs report an error. It depends on timing, so: several threads listing at once, many times.
#[test]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
fn an_empty_directory_lists_as_empty_every_time() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let dir = format!("/it/empty{}", nonce());
    let path = format!("{dir}/only.jsonl");
    store.append_file(&path, b"one\n").unwrap();
    store.delete_file(&path).unwrap();
    std::thread::scope(|s| {
        for thread in 0..4 {
            let (store, dir) = (&store, &dir);
            s.spawn(move || {
                for round in 0..250 {
                    let listed = store.list(dir);
                    let listed = listed.unwrap_or_else(|e| panic!("{thread}/{round}: {e}"));
                    assert!(listed.is_empty(), "{thread}/{round}: {listed:?}");
                }
            });
        }
    });
}

#[test]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
fn reading_a_missing_file_is_an_error_naming_it() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let err = store.read_file("/no/such/file.jsonl").unwrap_err();
    assert!(err.to_string().contains("/no/such/file.jsonl"), "{err}");
}

/// Compaction and retention on the real HDFS, through the index, as in the local-directory
/// unit tests of `upkeep`.
#[cfg(feature = "index")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real HDFS: scripts/services.sh start hdfs"]
async fn compaction_and_retention_on_real_hdfs() {
    use std::sync::Arc;
    use thermoalert_pipeline::history::History;
    use thermoalert_pipeline::index::{Index, IndexBatch};
    use thermoalert_pipeline::upkeep::{ArchiveGate, Upkeep};

    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.sqlite")).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(HdfsStore::connect(&namenode()).unwrap());
    let upkeep =
        Upkeep { index: index.clone(), store: Arc::clone(&store), gate: ArchiveGate::default() };
    let history = History::new(index.clone(), Arc::clone(&store));
    let sensor = format!("itc{}", nonce());
    let day = 1_700_006_400.0; // 2023-11-15T00:00Z
    let reading = |i: u32| Reading {
        timestamp: day + f64::from(i) * 900.0,
        sensor_id: sensor.clone(),
        temperature: f64::from(i),
    };
    // One day in many hour files by two writers, the second replaying part of the first.
    for (writer, range) in [("w1", 0..60), ("w2", 50..96)] {
        let mut buffer = ArchiveBuffer::new(writer);
        range.map(reading).for_each(|r| buffer.push_reading(&r));
        let files = buffer.take_batch().write(store.as_ref()).unwrap();
        index.record(IndexBatch { files: &files, ..Default::default() }).await.unwrap();
    }
    let (from, to) = ((day * 1000.0) as i64, ((day + 86_400.0) * 1000.0) as i64);
    let before = history.readings(&sensor, from, to).await.unwrap().readings;
    assert_eq!(before.len(), 96);

    let report = upkeep.compact(to, 42).await.unwrap();
    assert_eq!(report.records_dropped, 10);
    let files = index
        .files_of_day(&sensor, thermoalert_pipeline::archive::Dataset::Readings, from / 86_400_000)
        .await
        .unwrap();
    assert_eq!(files.len(), 1, "one file per sensor-day after compaction");
    assert_eq!(history.readings(&sensor, from, to).await.unwrap().readings, before);
    let dir_path = format!("/temperature_data/{sensor}/2023-11-15");
    assert_eq!(store.list(&dir_path).unwrap(), ["day-42.jsonl"]);

    let report = upkeep.expire(to + 1).await.unwrap();
    assert!(report.files_expired >= 1);
    assert!(history.readings(&sensor, from, to).await.unwrap().readings.is_empty());
    assert!(store.list(&dir_path).unwrap().is_empty());
}
