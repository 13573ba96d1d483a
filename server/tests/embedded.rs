//! The embedded default, end to end and with nothing installed: `thermoalert serve` with no
//! Kafka or HDFS configured runs its in-process broker and simulator, archives and indexes the
//! readings, serves them and its metrics, and stops cleanly on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}

#[test]
fn the_embedded_default_archives_serves_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = data.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_thermoalert"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("THERMO_DATA_DIR", data.path())
        .env("THERMO_FLUSH_INTERVAL", "300ms")
        .env("THERMO_SIM_SENSORS", "3")
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "thermoalert")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(data.path().join("server.err")).unwrap())
        .spawn()
        .expect("the server starts");
    let show_log = || {
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        let err = std::fs::read_to_string(data.path().join("server.err")).unwrap_or_default();
        format!("{out}{err}")
    };

    // The simulator's three sensors reach the index (so the archive) and the API.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sensors: serde_json::Value = http_get(port, "/api/sensors")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        if sensors.as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sensors never showed up; log:\n{}", show_log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let readings: serde_json::Value =
        serde_json::from_str(&http_get(port, "/api/readings?sensor=sensor1").unwrap()).unwrap();
    assert!(!readings["readings"].as_array().unwrap().is_empty());

    // Ready: the embedded broker, the archive and the index all answer.
    let ready: serde_json::Value =
        serde_json::from_str(&http_get(port, "/readyz").unwrap()).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["kafka"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["archive"]["ok"], true, "{ready}");

    // Prometheus metrics count what went through.
    let metrics = http_get(port, "/metrics").unwrap();
    let readings_total: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("thermoalert_readings_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no readings counter in:\n{metrics}"));
    assert!(readings_total >= 3.0, "{readings_total}");
    assert!(
        metrics.contains("thermoalert_http_request_seconds_bucket{route=\"/api/sensors\""),
        "{metrics}"
    );
    assert!(metrics.contains("thermoalert_flush_seconds"), "{metrics}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit within 40 s of SIGTERM; log:\n{}", show_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = show_log();
    assert!(exit.success(), "exit {exit:?}; log:\n{text}");
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(text.contains("stopped cleanly"), "{text}");
    assert!(data.path().join("index.sqlite").exists());
}
