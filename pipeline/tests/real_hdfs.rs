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
fn reading_a_missing_file_is_an_error_naming_it() {
    let store = HdfsStore::connect(&namenode()).expect("the NameNode answers");
    let err = store.read_file("/no/such/file.jsonl").unwrap_err();
    assert!(err.to_string().contains("/no/such/file.jsonl"), "{err}");
}
