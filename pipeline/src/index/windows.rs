//! Closed window statistics by sensor and window start: long-range charts read these rather
//! than the raw files. A revision only ever replaces a lower one.

use sqlx::{Row, SqliteConnection};

use super::{Index, IndexError, query_err, seconds_to_ms, upsert};
use crate::model::{SensorWindow, WindowStats};

/// Records window results (first or revised) of a flush.
pub(super) async fn record(
    tx: &mut SqliteConnection,
    windows: &[SensorWindow],
) -> Result<(), IndexError> {
    upsert(
        tx,
        "record window statistics",
        "INSERT INTO window_stats (sensor_id, window_start_ms, window_end_ms, count, \
         avg, min, max, revision, late) ",
        windows,
        |mut row, w| {
            let s = &w.stats;
            row.push_bind(&w.sensor_id)
                .push_bind(seconds_to_ms(s.window_start))
                .push_bind(seconds_to_ms(s.window_end))
                .push_bind(s.count as i64)
                .push_bind(s.avg_temperature)
                .push_bind(s.min)
                .push_bind(s.max)
                .push_bind(i64::from(s.revision))
                .push_bind(s.late as i64);
        },
        " ON CONFLICT (sensor_id, window_start_ms) DO UPDATE SET \
         window_end_ms = excluded.window_end_ms, count = excluded.count, \
         avg = excluded.avg, min = excluded.min, max = excluded.max, \
         revision = excluded.revision, late = excluded.late \
         WHERE excluded.revision > window_stats.revision",
    )
    .await
}

impl Index {
    /// Closed windows of a sensor starting in `[from_ms, to_ms)`, oldest first.
    pub async fn windows(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<WindowStats>, IndexError> {
        let rows = sqlx::query(
            "SELECT window_start_ms, window_end_ms, count, avg, min, max, revision, late \
             FROM window_stats WHERE sensor_id = ? AND window_start_ms >= ? AND window_start_ms < ? \
             ORDER BY window_start_ms",
        )
        .bind(sensor_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list window statistics"))?;
        Ok(rows
            .into_iter()
            .map(|r| WindowStats {
                window_start: r.get::<i64, _>(0) as f64 / 1000.0,
                window_end: r.get::<i64, _>(1) as f64 / 1000.0,
                count: r.get::<i64, _>(2) as u64,
                avg_temperature: r.get(3),
                min: r.get(4),
                max: r.get(5),
                revision: r.get::<i64, _>(6) as u32,
                late: r.get::<i64, _>(7) as u64,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBatch;
    use crate::index::test_support::index;

    #[tokio::test]
    async fn window_results_keep_the_highest_revision() {
        let (_dir, index) = index().await;
        let w = |revision: u32, avg: f64| SensorWindow {
            sensor_id: "s1".into(),
            stats: WindowStats {
                window_start: 300.0,
                window_end: 600.0,
                count: 2 + u64::from(revision),
                avg_temperature: avg,
                min: 1.0,
                max: 2.0,
                revision,
                late: u64::from(revision),
            },
        };
        index
            .record(IndexBatch { windows: &[w(0, 10.0), w(2, 30.0)], ..Default::default() })
            .await
            .unwrap();
        index.record(IndexBatch { windows: &[w(1, 20.0)], ..Default::default() }).await.unwrap();
        let got = index.windows("s1", 0, 1_000_000).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].revision, got[0].avg_temperature, got[0].window_start),
            (2, 30.0, 300.0)
        );
        assert!(index.windows("s1", 300_001, 1_000_000).await.unwrap().is_empty());
    }
}
