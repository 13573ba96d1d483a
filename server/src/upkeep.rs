//! The archive upkeep task: at start and then every interval, past days' files are merged
//! into one per sensor-day and files past the retention are deleted
//! (`thermoalert_pipeline::upkeep` does the work; this only schedules and reports it).
//! A failed run is logged and retried at the next interval: the archive stays readable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thermoalert_pipeline::upkeep::{Upkeep, day_start};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::telemetry;

pub async fn run(
    upkeep: Upkeep,
    interval: Duration,
    retention: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        match upkeep.compact(day_start(now), now).await {
            Ok(r) if r.days_compacted > 0 => {
                telemetry::compacted(r.files_merged);
                info!(
                    days = r.days_compacted,
                    files = r.files_merged,
                    dropped = r.records_dropped,
                    "archive compacted"
                );
            }
            Ok(_) => {}
            Err(e) => warn!("archive compaction failed, next try in {interval:?}: {e}"),
        }
        let Some(keep) = retention else { continue };
        match upkeep.expire(now - keep.as_millis() as i64).await {
            Ok(r) if r.files_expired > 0 => {
                telemetry::expired(r.files_expired);
                info!(files = r.files_expired, "archive files past the retention deleted");
            }
            Ok(_) => {}
            Err(e) => warn!("archive retention failed, next try in {interval:?}: {e}"),
        }
    }
}
