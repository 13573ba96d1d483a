//! The sensors seen (from the archive files their readings went to) and the thresholds
//! operators saved for them from the dashboard.

use sqlx::{Row, SqliteConnection};

use super::{Index, IndexError, query_err, upsert};
use crate::archive::{ArchiveFile, Dataset};
use crate::rules::Thresholds;

/// A sensor the index has seen.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRecord {
    pub sensor_id: String,
    pub display_name: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A `sensors` row selected as `sensor_id, display_name, first_seen_ms, last_seen_ms`.
fn sensor_record(r: sqlx::sqlite::SqliteRow) -> SensorRecord {
    SensorRecord {
        sensor_id: r.get(0),
        display_name: r.get(1),
        first_seen_ms: r.get(2),
        last_seen_ms: r.get(3),
    }
}

/// Records the sensors of a flush's readings files, widening when each was seen.
pub(super) async fn record_seen(
    tx: &mut SqliteConnection,
    files: &[ArchiveFile],
) -> Result<(), IndexError> {
    let readings: Vec<&ArchiveFile> =
        files.iter().filter(|f| f.dataset == Dataset::Readings).collect();
    upsert(
        tx,
        "record sensors",
        "INSERT INTO sensors (sensor_id, first_seen_ms, last_seen_ms) ",
        &readings,
        |mut row, f| {
            row.push_bind(&f.sensor_id).push_bind(f.first_ms).push_bind(f.last_ms);
        },
        " ON CONFLICT (sensor_id) DO UPDATE SET \
         first_seen_ms = min(sensors.first_seen_ms, excluded.first_seen_ms), \
         last_seen_ms = max(sensors.last_seen_ms, excluded.last_seen_ms)",
    )
    .await
}

impl Index {
    /// One sensor, if the index has seen it.
    pub async fn sensor(&self, sensor_id: &str) -> Result<Option<SensorRecord>, IndexError> {
        let row = sqlx::query(
            "SELECT sensor_id, display_name, first_seen_ms, last_seen_ms FROM sensors \
             WHERE sensor_id = ?",
        )
        .bind(sensor_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("load a sensor"))?;
        Ok(row.map(sensor_record))
    }

    /// Every sensor seen, by id.
    pub async fn sensors(&self) -> Result<Vec<SensorRecord>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, display_name, first_seen_ms, last_seen_ms FROM sensors ORDER BY sensor_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list sensors"))?;
        Ok(rows.into_iter().map(sensor_record).collect())
    }

    /// Saves the thresholds an operator gave a sensor (they outlive restarts).
    pub async fn save_thresholds(
        &self,
        sensor_id: &str,
        t: &Thresholds,
        now_ms: i64,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO sensors (sensor_id, high, critical, hysteresis, first_seen_ms, \
             last_seen_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id) DO UPDATE SET \
             high = excluded.high, critical = excluded.critical, \
             hysteresis = excluded.hysteresis",
        )
        .bind(sensor_id)
        .bind(t.high)
        .bind(t.critical)
        .bind(t.hysteresis)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_err("save thresholds"))?;
        Ok(())
    }

    /// Every sensor's thresholds saved by operators.
    pub async fn saved_thresholds(&self) -> Result<Vec<(String, Thresholds)>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, high, critical, hysteresis FROM sensors \
             WHERE high IS NOT NULL AND critical IS NOT NULL AND hysteresis IS NOT NULL \
             ORDER BY sensor_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load saved thresholds"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (r.get(0), Thresholds { high: r.get(1), critical: r.get(2), hysteresis: r.get(3) })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveBuffer;
    use crate::index::IndexBatch;
    use crate::index::test_support::index;
    use crate::model::Reading;

    #[tokio::test]
    async fn sensors_are_seen_through_their_files_and_keep_saved_thresholds() {
        let (_dir, index) = index().await;
        let mut buf = ArchiveBuffer::new("w");
        for (sensor, t) in [("a", 100.0), ("a", 3_700.0), ("b", 300.0)] {
            let r = Reading { timestamp: t, sensor_id: sensor.into(), temperature: 1.0 };
            buf.push_reading(&r);
        }
        let files = buf.take_batch().files;
        index.record(IndexBatch { files: &files, ..Default::default() }).await.unwrap();
        let sensors = index.sensors().await.unwrap();
        assert_eq!(index.sensor("b").await.unwrap().as_ref(), Some(&sensors[1]));
        assert_eq!(index.sensor("c").await.unwrap(), None);

        // Thresholds saved for a known and a new sensor; seen times are left alone.
        let t = Thresholds { high: 30.0, critical: 40.0, hysteresis: 0.5 };
        index.save_thresholds("a", &t, 9_999_999).await.unwrap();
        index.save_thresholds("c", &t, 5_000_000).await.unwrap();
        let saved = index.saved_thresholds().await.unwrap();
        assert_eq!(saved, vec![("a".to_owned(), t), ("c".to_owned(), t)]);
        assert_eq!(index.sensor("a").await.unwrap().unwrap().last_seen_ms, 3_700_000);
    }
}
