//! The archive on the real HDFS (or a local directory), measured:
//! - write: many sensors' readings appended flush after flush, as the server does, readings/s
//!   and time per flush;
//! - history: one sensor with 30 days of one reading per second, archived hour by hour,
//!   compacted to one file per sensor-day, its window statistics in the index; then the
//!   30-day chart raw (downsampled to 1000 points) and from window statistics, latency over
//!   several runs.
//!
//! Prints progress, the figures, and one JSON object at the end. It measures; it never fails
//! on speed. `--smoke` is the seconds-long version the test command runs.
//!
//!     scripts/services.sh start hdfs && eval "$(scripts/services.sh env)"
//!     cargo bench -p thermoalert-pipeline --features hdfs,index --bench archive -- \
//!         [--local] [--sensors N] [--flushes N] [--per-flush N] [--days N] [--smoke]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thermoalert_pipeline::archive::Dataset;
use thermoalert_pipeline::archive::{ArchiveBuffer, ArchiveFile, HdfsStore, LocalStore, Store};
use thermoalert_pipeline::history::History;
use thermoalert_pipeline::index::{Index, IndexBatch};
use thermoalert_pipeline::model::Reading;
use thermoalert_pipeline::processor::{Output, Processor, ProcessorConfig};
use thermoalert_pipeline::upkeep::{Upkeep, day_start};

const DAY_MS: i64 = 86_400_000;

struct Args {
    local: bool,
    /// Write phase: sensors, flushes, readings per sensor per flush (one reading per second
    /// and the default 10 s flush interval).
    sensors: u32,
    flushes: u32,
    per_flush: u32,
    /// History phase: days of one reading per second.
    days: i64,
    /// Chart queries timed (the first one included).
    runs: u32,
    smoke: bool,
}

fn args() -> Args {
    let mut a = Args {
        local: false,
        sensors: 1000,
        flushes: 10,
        per_flush: 10,
        days: 30,
        runs: 5,
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, flag: &str| -> u32 {
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} N"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--local" => a.local = true,
            "--sensors" => a.sensors = number(it.next(), "--sensors"),
            "--flushes" => a.flushes = number(it.next(), "--flushes"),
            "--per-flush" => a.per_flush = number(it.next(), "--per-flush"),
            "--days" => a.days = number(it.next(), "--days").into(),
            "--smoke" => {
                a.smoke = true;
                (a.sensors, a.flushes, a.days, a.runs) = (20, 3, 2, 2);
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = if a.local {
        Arc::new(LocalStore::new(dir.path().join("archive")))
    } else {
        let url =
            std::env::var("THERMO_HDFS_URL").unwrap_or_else(|_| "hdfs://127.0.0.1:9000".into());
        Arc::new(
            HdfsStore::connect(&url)
                .expect("the NameNode answers (scripts/services.sh start hdfs)"),
        )
    };
    let index = Index::open(&dir.path().join("index.sqlite")).await.unwrap();
    eprintln!("archive benchmark on {}", store.location());

    let write = write_phase(&a, Arc::clone(&store), nonce).await;
    eprintln!("write: {write}");
    let history = history_phase(&a, store.clone(), index, nonce).await;
    eprintln!("history: {history}");
    let figures = serde_json::json!({
        "benchmark": "archive",
        "smoke": a.smoke,
        "store": store.location(),
        "write": write,
        "history": history,
    });
    println!("{figures}");
}

/// Every sensor's readings of one flush (`per_flush` each, one per second), appended as the
/// server's flush does; `flushes` times.
async fn write_phase(a: &Args, store: Arc<dyn Store>, nonce: u128) -> serde_json::Value {
    let start_s = 1_700_000_000.0;
    let mut buffer = ArchiveBuffer::new(format!("bench{nonce}"));
    let mut flush_ms = Vec::new();
    let mut files = 0;
    let mut total = 0u64;
    for flush in 0..a.flushes {
        for sensor in 0..a.sensors {
            for i in 0..a.per_flush {
                let t = start_s + f64::from(flush * a.per_flush + i);
                buffer.push_reading(&Reading {
                    timestamp: t,
                    sensor_id: format!("b{nonce}s{sensor}"),
                    temperature: 20.0 + f64::from(sensor % 50) / 10.0,
                });
                total += 1;
            }
        }
        let started = Instant::now();
        let batch = buffer.take_batch();
        let store = Arc::clone(&store);
        let written = tokio::task::spawn_blocking(move || batch.write(store.as_ref()))
            .await
            .unwrap()
            .map_err(|f| f.error)
            .expect("the batch is written");
        files += written.len();
        flush_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        eprintln!(
            "write: flush {}/{}: {} files in {:.0} ms",
            flush + 1,
            a.flushes,
            written.len(),
            flush_ms.last().unwrap()
        );
    }
    let seconds = flush_ms.iter().sum::<f64>() / 1000.0;
    let mut sorted = flush_ms.clone();
    sorted.sort_by(f64::total_cmp);
    serde_json::json!({
        "sensors": a.sensors,
        "flushes": a.flushes,
        "readings_per_sensor_per_flush": a.per_flush,
        "readings": total,
        "files_appended": files,
        "readings_per_s": (total as f64 / seconds).round(),
        "flush_ms_p50": sorted[sorted.len() / 2].round(),
        "flush_ms_max": sorted.last().copied().unwrap_or(0.0).round(),
        "ms_per_file_append": (seconds * 1000.0 / files as f64 * 10.0).round() / 10.0,
    })
}

/// One sensor, `days` × 86 400 readings, archived an hour per file as the server writes them,
/// windowed by the real core, then compacted; the 30-day chart timed both ways.
async fn history_phase(
    a: &Args,
    store: Arc<dyn Store>,
    index: Index,
    nonce: u128,
) -> serde_json::Value {
    let sensor = format!("h{nonce}");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let today = day_start(now_ms);
    let (from_ms, to_ms) = (today - a.days * DAY_MS, today);
    let mut processor = Processor::new(ProcessorConfig::default());
    let mut buffer = ArchiveBuffer::new(format!("hist{nonce}"));
    let mut out = Output::default();
    let started = Instant::now();
    let mut files = 0;
    for day in 0..a.days {
        let day_ms = from_ms + day * DAY_MS;
        for s in 0..86_400 {
            let t = (day_ms / 1000 + s) as f64;
            // A daily cycle with a little noise, so the chart has a shape to keep.
            let phase = (s as f64) / 86_400.0 * std::f64::consts::TAU;
            let temperature = 22.0 + 4.0 * phase.sin() + ((s * 7919) % 100) as f64 / 200.0;
            let reading = Reading { timestamp: t, sensor_id: sensor.clone(), temperature };
            processor.process(&reading, t as i64 * 1000, &mut out);
            buffer.push_reading(&reading);
        }
        // A day's readings flushed an hour at a time: 24 files, as the server leaves them.
        let batch = buffer.take_batch();
        let store_for_write = Arc::clone(&store);
        let written: Vec<ArchiveFile> =
            tokio::task::spawn_blocking(move || batch.write(store_for_write.as_ref()))
                .await
                .unwrap()
                .map_err(|f| f.error)
                .expect("the day is written");
        files += written.len();
        index
            .record(IndexBatch {
                files: &written,
                windows: &out.windows,
                written_ms: now_ms,
                ..IndexBatch::default()
            })
            .await
            .unwrap();
        out.clear();
        eprint!("\rhistory: {} of {} days archived", day + 1, a.days);
    }
    eprintln!();
    let archive_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let upkeep =
        Upkeep { index: index.clone(), store: Arc::clone(&store), gate: Default::default() };
    let report = upkeep.compact(today, now_ms).await.expect("compaction");
    let compact_s = started.elapsed().as_secs_f64();
    let after = index.files(&sensor, Dataset::Readings, from_ms, to_ms).await.unwrap();
    eprintln!(
        "history: {files} hour files compacted into {} in {compact_s:.1} s ({report:?})",
        after.len()
    );

    let history = History::new(index.clone(), store);
    let raw = time(a.runs, || async {
        match history.chart(&sensor, from_ms, to_ms, 1000).await {
            Ok(points) => Ok(points.len()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let windows = time(a.runs, || async {
        index.windows(&sensor, from_ms, to_ms).await.map(|w| w.len()).map_err(|e| e.to_string())
    })
    .await;
    serde_json::json!({
        "days": a.days,
        "readings": a.days * 86_400,
        "archive_seconds": (archive_s * 10.0).round() / 10.0,
        "hour_files_written": files,
        "files_after_compaction": after.len(),
        "files_per_sensor_day": after.len() as f64 / a.days as f64,
        "compaction_seconds": (compact_s * 10.0).round() / 10.0,
        "chart_raw_1000_points": raw,
        "chart_from_window_stats": windows,
    })
}

/// Runs `query` `runs` times: what it returned (points or windows, or its error) and the
/// latency of the first and the median run.
async fn time<F, Fut>(runs: u32, query: F) -> serde_json::Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, String>>,
{
    let mut took = Vec::new();
    let mut result = Ok(0);
    for _ in 0..runs {
        let started = Instant::now();
        result = query().await;
        took.push(started.elapsed());
    }
    let first = took[0];
    took.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    match result {
        Ok(n) => {
            serde_json::json!({ "items": n, "first_ms": ms(first), "median_ms": ms(took[took.len() / 2]) })
        }
        Err(e) => serde_json::json!({ "error": e, "first_ms": ms(first) }),
    }
}
