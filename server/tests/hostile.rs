//! Hostile input at the HTTP edge of a running server (the embedded default): every bad
//! parameter gets a 4xx with a sentence naming it, in bounded time, and the server keeps
//! serving. (Hostile Kafka messages: `thermoalert_pipeline::parse`'s tests.)

mod common;

use std::time::{Duration, Instant};

use common::{Server, free_port, get, post_form, serve};

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
        // Line breaks in parameters: refused in words, never a panic or a split header.
        ("/api/alerts?sensor=a%0D%0AX-Injected:%201".into(), "sensor"),
        ("/api/readings?sensor=sensor1&from=1%0D%0A2".into(), "from"),
        ("/api/history/sensor1%0D%0Ax?points=10".into(), "sensor"),
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

#[test]
fn a_login_flood_is_answered_401_or_429_never_5xx_and_repeated_failures_wait() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let operators = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/operators.test");
    let mut server = Server::start(
        serve(data.path(), port)
            .env("THERMO_SIM_SENSORS", "1")
            .env("THERMO_OPERATORS_FILE", operators),
        data.path().join("server.log"),
    );
    server.wait_for("healthz", 60, || get(port, "/healthz").is_some_and(|r| r.ok()));
    let same = format!("Origin: http://127.0.0.1:{port}");
    let login = |password: &str, extra: &[&str]| {
        let mut headers = vec![same.as_str()];
        headers.extend_from_slice(extra);
        let form = format!("name=e2e&password={password}&next=%2Falerts");
        post_form(port, "/api/login", &form, &headers).expect("an answer")
    };

    // A wrong password is a 401 saying so; a plain form post (no WASM) goes back to the login
    // page, which names the failure (by a code: a link cannot make it say anything else).
    let wrong = login("not-the-password", &[]);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("wrong name or password"), "{wrong:?}");
    let referer = format!("Referer: http://127.0.0.1:{port}/login");
    let form = login("not-the-password", &["Accept: text/html", &referer]);
    assert_eq!(form.status, 302, "{form:?}");
    let back = form.header("location").unwrap().to_owned();
    assert_eq!(back, "/login?failed=wrong&next=%2Falerts");
    assert!(get(port, &back).unwrap().body.contains("wrong name or password"));
    // A `next` that would leave the site, or split the Location header, is not followed.
    for next in ["%2F%0D%0ASet-Cookie%3A+x%3Dy", "%2F%09%2Fevil.example", "%2F%5Cevil.example"] {
        let form = format!("name=e2e&password=wrong&next={next}");
        let headers = [same.as_str(), "Accept: text/html", referer.as_str()];
        let r = post_form(port, "/api/login", &form, &headers).expect("an answer");
        assert_eq!(r.header("location"), Some("/login?failed=wrong&next=%2F"), "{next}: {r:?}");
        assert!(r.header("x-injected").is_none() && r.header("set-cookie").is_none());
    }

    // 200 wrong logins at once: each is refused in words, 401 or 429, never a server error.
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..200).map(|_| s.spawn(|| login("not-the-password", &[]))).collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap())
            .map(|r| (r.status, r.header("retry-after").map(str::to_owned)))
            .collect()
    });
    for (status, retry_after) in &answers {
        assert!([401, 429].contains(status), "{answers:?}");
        if *status == 429 {
            assert!(
                retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()),
                "{answers:?}"
            );
        }
    }
    assert!(answers.iter().any(|(s, _)| *s == 429), "nothing was throttled: {answers:?}");

    // This client has failed too often: even the right password waits now, and is told how
    // long.
    let right = login("e2e-operator-pass", &[]);
    assert_eq!(right.status, 429, "{right:?}");
    assert!(right.body.contains("too many failed logins"), "{right:?}");
    assert!(right.header("set-cookie").is_none());
    assert!(get(port, "/healthz").is_some_and(|r| r.ok()), "still serving");
}

#[test]
fn sensors_beyond_the_limit_are_refused_counted_and_shown_while_the_others_go_on() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(
        serve(data.path(), port)
            .env("THERMO_SIM_SENSORS", "5")
            .env("THERMO_MAX_SENSORS", "3")
            .env("THERMO_FLUSH_INTERVAL", "300ms"),
        data.path().join("server.log"),
    );
    let metric = |name: &str| -> Option<f64> {
        let text = get(port, "/metrics")?.body;
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    let refused = r#"thermoalert_rejected_total{reason="sensor_limit"}"#;
    server.wait_for("refused readings", 60, || metric(refused).is_some_and(|n| n >= 4.0));
    // Three sensors are tracked, listed and archived; the other two are not.
    server.wait_for("three sensors listed", 30, || {
        common::get_json(port, "/api/sensors").as_array().is_some_and(|a| a.len() == 3)
    });
    assert_eq!(metric("thermoalert_sensors_tracked"), Some(3.0));
    let archived = std::fs::read_dir(data.path().join("archive/temperature_data")).unwrap().count();
    assert_eq!(archived, 3);
    // The tracked ones go on: their readings keep coming.
    let readings = metric("thermoalert_readings_total").unwrap();
    server.wait_for("more readings", 30, || {
        metric("thermoalert_readings_total").is_some_and(|n| n >= readings + 3.0)
    });
    // Every page says so.
    let page = get(port, "/").unwrap().body;
    assert!(page.contains("Sensor limit reached"), "no banner");
    assert!(page.contains("THERMO_MAX_SENSORS"), "the banner names the setting");
}

/// Lines in the `.jsonl` files under `dir`, recursively.
fn archived_lines(dir: &std::path::Path) -> usize {
    let mut lines = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            lines += archived_lines(&path);
        } else if path.extension().is_some_and(|x| x == "jsonl") {
            lines += std::fs::read_to_string(&path).unwrap_or_default().lines().count();
        }
    }
    lines
}

#[test]
fn connections_beyond_the_descriptor_limit_get_503_and_the_archive_goes_on() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = serve(data.path(), port);
    command.env("THERMO_SIM_SENSORS", "3").env("THERMO_FLUSH_INTERVAL", "300ms");
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = Server::start(&mut command, data.path().join("server.log"));
    server.wait_for("healthz", 60, || get(port, "/healthz").is_some_and(|r| r.ok()));

    // 1 100 live streams at once, more than the server's 1 024 descriptors.
    let mut streams = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for _ in 0..1100 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).expect("every connection is answered");
        match &head[9..12] {
            b"200" => served += 1,
            b"503" => refused += 1,
            other => panic!("answered {}", String::from_utf8_lossy(other)),
        }
        streams.push(s);
    }
    assert!(refused > 0 && served > 500, "served {served}, refused {refused}");

    // The archive goes on meanwhile: it can still open its files.
    let archive = data.path().join("archive");
    let before = archived_lines(&archive);
    server.wait_for("archived readings", 30, || archived_lines(&archive) >= before + 6);
    assert!(!server.log().contains("archive write failed"), "{}", server.log());

    drop(streams);
    server.wait_for("serving again", 30, || get(port, "/healthz").is_some_and(|r| r.ok()));
}
