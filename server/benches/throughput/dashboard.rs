//! The benchmark's dashboard phases: live-stream clients (latency, memory, throughput with
//! them connected) and HTTP load with wrk.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

/// `n` SSE clients following the live stream, all on one thread of the benchmark (an event
/// loop, as a load generator should be: 1 000 reader threads took more of the two cores than
/// the server did). Each counts the frames it receives: events, plus a `lagged` notice each
/// time it skipped ahead. They stop when dropped.
pub(crate) struct Followers {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Followers {
    pub(crate) fn start(port: u16, n: u32) -> Followers {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let (stop_, frames_) = (Arc::clone(&stop), Arc::clone(&frames));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                for _ in 0..n {
                    tokio::spawn(follow(port, Arc::clone(&frames_)));
                }
                while !stop_.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        Followers { stop, frames, thread: Some(thread) }
    }

    /// Stops every client; the frames they received in all.
    pub(crate) fn stop(mut self) -> u64 {
        self.halt();
        self.frames.load(Ordering::Relaxed)
    }

    pub(crate) fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the followers' thread");
        }
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One follower: connects (the server may not listen yet), asks for the stream and counts
/// the frames (`\n\n`-terminated) it reads, until its runtime stops.
pub(crate) async fn follow(port: u16, frames: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut s = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("the server never accepted: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let request =
        "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = 0u8;
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut count = 0;
        for &b in &buf[..n] {
            count += u64::from(b == b'\n' && last == b'\n');
            last = b;
        }
        frames.fetch_add(count, Ordering::Relaxed);
    }
}

/// The real server in `group`, with its data (and its log) in `data`; returns it with its
/// HTTP port.
pub(crate) fn start_server(brokers: &str, group: &str, data: &Path) -> (Server, u16) {
    let port = free_port();
    let server = Server::start(
        serve(data, port)
            .env("THERMO_KAFKA_BROKERS", brokers)
            .env("THERMO_GROUP", group)
            .env("THERMO_FLUSH_INTERVAL", "2s")
            .env("RUST_LOG", "warn"),
        data.join("server.log"),
    );
    (server, port)
}

/// Waits until the server answers `/readyz` with 200, then a little for the group to settle.
pub(crate) fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(port, "/readyz").is_some_and(|r| r.ok()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
}

/// Runs `thermoalert simulate` at `rate` readings/s in total over `sensors` for `seconds`.
pub(crate) fn simulate(bin: &str, brokers: &str, sensors: u32, rate: u32, seconds: u32) -> Child {
    let per_sensor = f64::from(rate) / f64::from(sensors);
    Command::new(bin)
        .args(["simulate", "--kafka-brokers", brokers, "--sensors", &sensors.to_string()])
        .args(["--rate", &per_sensor.to_string()])
        .args(["--count", &(u64::from(rate) * u64::from(seconds)).to_string()])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("thermoalert simulate runs")
}

/// A live-stream client: reads `/api/stream` until `stop`, sending the latency of each
/// `reading` event (now − its sensor timestamp, ms) to `latencies`.
pub(crate) fn sse_client(
    port: u16,
    stop: Arc<AtomicBool>,
    latencies: mpsc::Sender<f64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        // The server may not listen yet (a drain starts its clients with it).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("the server never accepted: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        write!(
            s,
            "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        let mut events = 0u64;
        let mut reading = false;
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => continue, // read timeout: check `stop`
            }
            if let Some(name) = line.strip_prefix("event: ") {
                reading = name.trim() == "reading";
            } else if let (true, Some(data)) = (reading, line.strip_prefix("data: ")) {
                events += 1;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                    && let Some(t) = v["timestamp"].as_f64()
                {
                    let _ = latencies.send((now - t) * 1000.0);
                }
            }
        }
        events
    })
}

/// Sensor timestamp → SSE event received, at a steady rate, through a fresh server.
pub(crate) fn latency_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (_server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let client = sse_client(port, Arc::clone(&stop), tx);
    eprintln!(
        "latency: {} readings/s from {} sensors for {} s, one SSE client",
        a.latency_rate, a.latency_sensors, a.latency_seconds
    );
    let mut sim = simulate(bin, &a.brokers, a.latency_sensors, a.latency_rate, a.latency_seconds);
    assert!(sim.wait().unwrap().success(), "simulate failed");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let mut ms: Vec<f64> = rx.try_iter().collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms.get(((ms.len() as f64 * p) as usize).min(ms.len().saturating_sub(1)));
    let round = |v: Option<&f64>| v.map(|v| (v * 10.0).round() / 10.0);
    serde_json::json!({
        "rate_per_s": a.latency_rate,
        "seconds": a.latency_seconds,
        "events": ms.len(),
        "p50_ms": round(pct(0.50)),
        "p95_ms": round(pct(0.95)),
        "p99_ms": round(pct(0.99)),
        "max_ms": round(ms.last()),
    })
}

/// Peak RSS of a fresh server while `memory_sensors` sensors report and `memory_clients`
/// SSE clients follow the stream.
pub(crate) fn memory_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let followers = Followers::start(port, a.memory_clients);
    eprintln!(
        "memory: {} sensors at 1 reading/s for {} s, {} SSE clients",
        a.memory_sensors, a.memory_seconds, a.memory_clients
    );
    let mut sim = simulate(bin, &a.brokers, a.memory_sensors, a.memory_sensors, a.memory_seconds);
    assert!(sim.wait().unwrap().success(), "simulate failed");
    std::thread::sleep(Duration::from_secs(3));
    // Kept up: every reading sent was processed within 3 s of the last one.
    let processed = processed(&get(port, "/metrics").unwrap_or_default().body);
    let pid = server.child.id();
    let (peak_kb, rss_kb) = (vm_kb(pid, "VmHWM:"), vm_kb(pid, "VmRSS:"));
    let frames = followers.stop();
    serde_json::json!({
        "sensors": a.memory_sensors,
        "sse_clients": a.memory_clients,
        "frames_delivered": frames,
        "readings_sent": u64::from(a.memory_sensors) * u64::from(a.memory_seconds),
        "readings_processed_3s_after": processed,
        "peak_rss_mb": peak_kb / 1024,
        "rss_mb": rss_kb / 1024,
    })
}

/// The JSON API and the dashboard under wrk while 100 sensors report 1 000 readings/s: each
/// endpoint for `load_seconds` with `load_connections` connections (2 threads), requests/s,
/// p50/p99 and errors (socket errors plus non-2xx answers).
pub(crate) fn load_phase(bin: &str, a: &Args, group: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    commit_group_at_end(&a.brokers, group);
    let (_server, port) = start_server(&a.brokers, group, data.path());
    wait_ready(port);
    let seconds = 5 + 6 * a.load_seconds;
    let mut sim = simulate(bin, &a.brokers, 100, 1000, seconds);
    std::thread::sleep(Duration::from_secs(4)); // some history to read
    let endpoints = [
        "/healthz",
        "/api/sensors",
        "/api/alerts?limit=100",
        "/api/readings?sensor=sensor1",
        "/api/history/sensor1?points=200",
        "/",
    ];
    let mut figures = serde_json::Map::new();
    for path in endpoints {
        eprintln!("load: wrk {path} for {} s, {} connections", a.load_seconds, a.load_connections);
        let out = Command::new("wrk")
            .args(["-t2", &format!("-c{}", a.load_connections), &format!("-d{}s", a.load_seconds)])
            .args(["--latency", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .expect("wrk runs (scripts/setup.sh installs it)");
        assert!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
        figures.insert(path.into(), wrk_figures(&String::from_utf8_lossy(&out.stdout)));
    }
    let _ = sim.kill();
    let _ = sim.wait();
    serde_json::json!({ "connections": a.load_connections, "seconds_each": a.load_seconds,
        "endpoints": figures })
}
