//! The embedded default, end to end and with nothing installed: `thermoalert serve` with no
//! Kafka or HDFS configured runs its in-process broker and simulator, archives and indexes the
//! readings, serves them and its metrics, and stops cleanly on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, get, get_json, post_form, thermoalert};

/// The response head (lower case) and the first `count` events `(name, data)` of
/// `/api/stream`, checking the framing of each; keep-alive comments are skipped.
fn live_events(port: u16, count: usize) -> (String, Vec<(String, String)>) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("the stream goes on");
        assert!(n > 0, "the stream ended: {text}");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let frames: Vec<&str> = body.split("\n\n").collect();
        // The last piece is an unfinished frame (or empty after a complete one).
        let events: Vec<(String, String)> = frames[..frames.len() - 1]
            .iter()
            .filter(|frame| !frame.starts_with(':'))
            .map(|frame| {
                let (event, data) = frame.split_once('\n').unwrap_or_else(|| panic!("{frame:?}"));
                let event = event.strip_prefix("event: ").unwrap_or_else(|| panic!("{frame:?}"));
                let data = data.strip_prefix("data: ").unwrap_or_else(|| panic!("{frame:?}"));
                (event.to_owned(), data.to_owned())
            })
            .collect();
        if events.len() >= count {
            return (head.to_lowercase(), events);
        }
    }
}

#[test]
fn the_embedded_default_archives_serves_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = data.path().join("server.log");
    let mut child = thermoalert()
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("THERMO_DATA_DIR", data.path())
        .env("THERMO_FLUSH_INTERVAL", "300ms")
        .env("THERMO_SIM_SENSORS", "3")
        .env("THERMO_LOG_FORMAT", "json")
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
        let sensors = get_json(port, "/api/sensors");
        if sensors.as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sensors never showed up; log:\n{}", show_log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let readings = get_json(port, "/api/readings?sensor=sensor1");
    assert!(!readings["readings"].as_array().unwrap().is_empty());

    // Ready: the embedded broker, the archive and the index all answer.
    let ready = get_json(port, "/readyz");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["kafka"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["archive"]["ok"], true, "{ready}");

    // The live stream: Server-Sent Events, each a reading of one of the sensors.
    let (head, events) = live_events(port, 6);
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    for (event, data) in &events {
        assert_eq!(event, "reading", "{data}");
        let view: thermoalert_app::live::SensorView = serde_json::from_str(data).unwrap();
        assert!(["sensor1", "sensor2", "sensor3"].contains(&view.sensor_id.as_str()), "{data}");
    }

    // Prometheus metrics count what went through.
    let metrics = get(port, "/metrics").unwrap().body;
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

    // Pages carry a nonce-based Content-Security-Policy and the other security headers.
    let page = get(port, "/").unwrap();
    let csp = page.header("content-security-policy").unwrap_or_default().to_owned();
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).unwrap_or("");
    assert!(nonce.len() >= 16 && csp.contains("'strict-dynamic'"), "{csp}");
    assert!(page.body.contains(&format!("nonce=\"{nonce}\"")), "scripts carry the nonce");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src 'unsafe-inline'"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let api = get(port, "/api/sensors").unwrap();
    assert_eq!(
        api.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );

    // Writes: refused from another site before anything runs, and refused without a login.
    let form = "alert_id=instant-sensor1-1";
    for cross in ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"] {
        let r = post_form(port, "/api/acknowledge", form, &[cross]).unwrap();
        assert_eq!(r.status, 403, "{cross}: {r:?}");
    }
    let same = format!("Origin: http://127.0.0.1:{port}");
    let r = post_form(port, "/api/acknowledge", form, &[&same]).unwrap();
    assert!(r.status >= 400 && r.body.contains("log in as an operator"), "{r:?}");
    let r = post_form(port, "/api/login", "name=admin&password=wrong-password", &[&same]).unwrap();
    assert!(r.status >= 400 && r.body.contains("wrong name or password"), "{r:?}");
    assert_eq!(r.header("set-cookie"), None);

    // A page still follows the live stream when the server is told to stop: its stream ends
    // and does not hold the shutdown up (it used to, until the 30 s limit ended the process
    // with an error).
    let mut follower = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(follower, "GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    follower.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut head = [0u8; 64];
    assert!(follower.read(&mut head).unwrap() > 0, "the stream answers");

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
    let mut rest = Vec::new();
    follower.read_to_end(&mut rest).expect("the live stream ended with the server");
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(text.contains("stopped cleanly"), "{text}");
    assert!(data.path().join("index.sqlite").exists());

    // JSON logs, one object per line; the first say where the data goes and how it is set.
    let logs: Vec<serde_json::Value> = std::fs::read_to_string(data.path().join("server.err"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |m: &str| logs.iter().find(|l| l["fields"]["message"] == m).cloned();
    let start = message("starting ThermoAlert").expect("a start line");
    assert!(start["fields"]["archive"].as_str().unwrap().ends_with("archive"), "{start}");
    let config = message("effective configuration").expect("the configuration");
    assert!(config["fields"]["config"].as_str().unwrap().contains("flush_interval=300ms"));

    // The first start created an operator `admin`; its password is in a file only the owner
    // may read, named in the log, and in no log line; it logs in.
    let created = logs
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .find(|m| m.starts_with("created operator `admin`"))
        .expect("the first start says it created the admin");
    let secret = data.path().join("admin-password");
    assert!(created.contains(&secret.display().to_string()), "{created}");
    let password = std::fs::read_to_string(&secret).unwrap().trim().to_owned();
    assert_eq!(password.len(), 24, "{password}");
    let all_logs = std::fs::read_to_string(data.path().join("server.err")).unwrap() + &show_log();
    assert!(!all_logs.contains(&password), "the password is in the log");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let password = password.as_str();
    let ops_file = data.path().join("operators");
    assert!(std::fs::read_to_string(&ops_file).unwrap().starts_with("admin:$argon2id$"));
    let ops = thermoalert_app::auth::Operators::load(&ops_file, false).unwrap();
    assert!(ops.login("admin", password, std::time::Instant::now()).is_some());
}

#[test]
fn with_reads_for_operators_only_everything_but_the_login_needs_a_session() {
    let data = tempfile::tempdir().unwrap();
    let ops = data.path().join("ops");
    // The operator is added by the CLI, the password on stdin.
    let mut add = thermoalert()
        .args(["operator", "add", "carol", "--operators-file"])
        .arg(&ops)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"carol's long password\n").unwrap();
    assert!(add.wait().unwrap().success());

    let port = free_port();
    let mut server = common::Server::start(
        common::serve(data.path(), port)
            .env("THERMO_OPERATORS_FILE", &ops)
            .env("THERMO_READS", "operators")
            .env("THERMO_SIM_SENSORS", "2"),
        data.path().join("server.log"),
    );
    server.wait_for("healthz", 60, || get(port, "/healthz").is_some_and(|r| r.ok()));
    let page = get(port, "/alerts?state=open").unwrap();
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/login?next=%2Falerts%3Fstate%3Dopen"));
    assert_eq!(get(port, "/api/sensors").unwrap().status, 401);
    assert_eq!(get(port, "/login").unwrap().status, 200);
    assert!(!data.path().join("operators").exists(), "no admin when a file is configured");

    let same = format!("Origin: http://127.0.0.1:{port}");
    let form = "name=carol&password=carol%27s+long+password&next=%2Falerts";
    let login = post_form(port, "/api/login", form, &[&same]).unwrap();
    let cookie = login.header("set-cookie").expect("a session cookie").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let sensors = common::get_with(port, "/api/sensors", &[&format!("Cookie: {session}")]);
    assert_eq!(sensors.map(|r| r.status), Some(200));

    // The live stream opened with the session ends when the session does.
    let mut follower = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(follower, "GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: {session}\r\n\r\n")
        .unwrap();
    follower.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = [0u8; 12];
    follower.read_exact(&mut head).unwrap();
    assert_eq!(&head[9..12], b"200");
    let logout = post_form(port, "/api/logout", "", &[&same, &format!("Cookie: {session}")]);
    assert!(logout.is_some_and(|r| r.status < 400));
    let mut rest = Vec::new();
    follower.read_to_end(&mut rest).expect("the stream ends at the logout, not after 20 s");
    let sensors = common::get_with(port, "/api/sensors", &[&format!("Cookie: {session}")]);
    assert_eq!(sensors.map(|r| r.status), Some(401));
}

#[test]
fn bad_flags_and_settings_exit_non_zero_naming_them() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = thermoalert()
            .args(args)
            .envs(env.iter().copied())
            .env("THERMO_DATA_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stderr), text(&out.stdout))
    };
    let (code, err, _) = run(&["serve", "--window", "soon"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.lines().next().unwrap().contains("`soon` is not a duration"), "{err}");
    let (code, err, _) = run(&["serve"], &[("THERMO_HIGH", "hot")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--high") && err.contains("hot"), "{err}");
    let (code, err, _) = run(&["serve"], &[("THERMO_HIGH", "95"), ("THERMO_CRITICAL", "90")]);
    assert_ne!(code, Some(0));
    assert!(err.contains("must be below the CRITICAL"), "{err}");
    let (code, err, _) = run(&["simulate", "--rate", "fast"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`fast` is neither"), "{err}");
    // Every option is documented, in `thermoalert --help` and each subcommand's.
    for (command, flags) in [
        (
            "serve",
            &["--kafka-brokers", "--hdfs-url", "--retention", "--sim-rate", "--log-format"][..],
        ),
        (
            "simulate",
            &["--kafka-brokers", "--sensors", "--rate", "--count", "--seed", "--late-chance"],
        ),
    ] {
        let (code, _, help) = run(&[command, "--help"], &[]);
        assert_eq!(code, Some(0));
        for flag in flags {
            let line = help.lines().find(|l| l.trim_start().starts_with(flag));
            assert!(line.is_some(), "`{command} --help` lacks {flag}:\n{help}");
        }
    }
    let (_, _, help) = run(&["--help"], &[]);
    assert!(help.contains("serve") && help.contains("simulate"), "{help}");
}
