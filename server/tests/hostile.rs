//! Hostile input at the HTTP edge of a running server (the embedded default): every bad
//! parameter gets a 4xx with a sentence naming it, in bounded time, and the server keeps
//! serving. (Hostile Kafka messages: `thermoalert_pipeline::parse`'s tests.)

mod common;

use std::time::{Duration, Instant};

use common::{Server, free_port, get, serve};

#[test]
fn hostile_requests_are_refused_in_words_and_the_server_carries_on() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(
        serve(data.path(), port)
            .env("THERMO_SIM_SENSORS", "2")
            .env("THERMO_FLUSH_INTERVAL", "300ms"),
        data.path().join("server.log"),
    );
    server.wait_for("healthz", 60, || get(port, "/healthz").is_some_and(|r| r.ok()));

    let many_sensors: Vec<String> = (0..5000).map(|i| format!("s{i}")).collect();
    let many = format!("/api/alerts?sensor={}", many_sensors.join(","));
    let cases: Vec<(String, &str)> = vec![
        ("/api/readings?sensor=..%2F..%2Fetc%2Fpasswd".into(), "sensor"),
        ("/api/readings?sensor=%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(), "sensor"),
        ("/api/readings?sensor=s%00x".into(), "sensor"),
        ("/api/readings?sensor=%E2%80%AEevil".into(), "sensor"),
        (format!("/api/readings?sensor={}", "a".repeat(65)), "sensor"),
        (many, "sensor"),
        ("/api/history/sensor1?from=0&to=3155760000".into(), "range"),
        ("/api/readings?sensor=sensor1&from=-1e308".into(), "from"),
        ("/api/readings?sensor=sensor1&from=NaN".into(), "from"),
        ("/api/readings?sensor=sensor1&from=abc".into(), "from"),
        ("/api/readings?sensor=sensor1&from=20&to=10".into(), "to"),
        ("/api/alerts?limit=99999999999999999999".into(), "limit"),
        ("/api/alerts?severity=HOT".into(), "severity"),
        ("/api/alerts?bogus=1".into(), "bogus"),
        ("/api/history/sensor1?points=100000000".into(), "points"),
        ("/api/export.csv?sensor=sensor1&from=0&to=1e20".into(), "to"),
    ];
    for (path, names) in &cases {
        let started = Instant::now();
        let r = get(port, path).unwrap_or_else(|| panic!("{path:.100}: no answer"));
        let took = started.elapsed();
        assert!((400..500).contains(&r.status), "{path:.100}: {} {}", r.status, r.body);
        assert!(r.body.to_lowercase().contains(names), "{path:.100}: `{}` lacks {names}", r.body);
        assert!(!r.body.contains("<script>"), "{path:.100}: echoes markup: {}", r.body);
        assert!(took < Duration::from_secs(2), "{path:.100}: took {took:?}");
    }

    // A page for a hostile sensor id says so as text; a 64 KiB URL is refused.
    let page = get(port, "/sensors/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E").unwrap();
    assert!(!page.body.contains("<img src=x"), "markup echoed: {:.300}", page.body);
    let long = get(port, &format!("/api/alerts?sensor={}", "x".repeat(64 * 1024)));
    assert!(long.is_none_or(|r| r.status >= 400), "a 64 KiB URL was served");

    // Still serving.
    assert!(get(port, "/healthz").is_some_and(|r| r.ok()));
    assert!(common::get_json(port, "/api/sensors").as_array().is_some());
}
