//! The pipeline's checkpoint: the core's state of each sensor with the partition its readings
//! come from, and the next offset of each partition, written in the same transaction as the
//! data they cover, so a restart resumes exactly where that state is.

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Index, IndexError, push_list, query_err, upsert};
use crate::processor::SensorSnapshot;
use crate::topics;

/// Records the state of the sensors that changed and the offsets consumed up to it.
pub(super) async fn record(
    tx: &mut SqliteConnection,
    snapshots: &[(i32, SensorSnapshot)],
    offsets: &[(i32, i64)],
    written_ms: i64,
) -> Result<(), IndexError> {
    upsert(
        tx,
        "record sensor state",
        "INSERT INTO sensor_state (sensor_id, snapshot, updated_ms, partition) ",
        snapshots,
        |mut row, (partition, s)| {
            row.push_bind(&s.sensor_id)
                .push_bind(serde_json::to_string(s).expect("snapshots serialize"))
                .push_bind(written_ms)
                .push_bind(partition);
        },
        " ON CONFLICT (sensor_id) DO UPDATE SET snapshot = excluded.snapshot, \
         updated_ms = excluded.updated_ms, partition = excluded.partition",
    )
    .await?;
    upsert(
        tx,
        "record consumer offsets",
        "INSERT INTO consumer_offsets (topic, partition, next_offset) ",
        offsets,
        |mut row, (partition, offset)| {
            row.push_bind(topics::READINGS).push_bind(partition).push_bind(offset);
        },
        " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )
    .await
}

impl Index {
    /// The offsets recorded with the sensor state, per partition of the readings topic.
    pub async fn offsets(&self) -> Result<Vec<(i32, i64)>, IndexError> {
        let rows = sqlx::query(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = ? ORDER BY partition",
        )
        .bind(topics::READINGS)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load consumer offsets"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The core's state, as of the last flush, of the sensors whose readings come from
    /// `partitions`, to restore when they are assigned. A snapshot that no longer parses
    /// (written by an incompatible version) is an error: the operator decides, nothing is
    /// silently reset.
    pub async fn snapshots(
        &self,
        partitions: &[i32],
    ) -> Result<Vec<(i32, SensorSnapshot)>, IndexError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT sensor_id, snapshot, partition FROM sensor_state WHERE partition IN (",
        );
        push_list(&mut q, partitions);
        q.push(" ORDER BY sensor_id");
        let rows = q.build().fetch_all(&self.pool).await.map_err(query_err("load sensor state"))?;
        rows.into_iter()
            .map(|r| {
                let sensor_id: String = r.get(0);
                let text: String = r.get(1);
                serde_json::from_str(&text)
                    .map(|snapshot| (r.get(2), snapshot))
                    .map_err(|source| IndexError::CorruptState { sensor_id, source })
            })
            .collect()
    }

    /// Forgets the state of the sensors of `partition` and where it resumes: another
    /// instance processed the partition since, so what is kept here is out of date.
    pub async fn forget_partition(&self, partition: i32) -> Result<(), IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        sqlx::query("DELETE FROM sensor_state WHERE partition = ?")
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(query_err("forget sensor state"))?;
        sqlx::query("DELETE FROM consumer_offsets WHERE topic = ? AND partition = ?")
            .bind(topics::READINGS)
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(query_err("forget consumer offsets"))?;
        tx.commit().await.map_err(query_err("commit a transaction"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBatch;
    use crate::index::test_support::index;
    use crate::model::Reading;
    use crate::processor::{Output, Processor, ProcessorConfig};

    #[tokio::test]
    async fn sensor_state_round_trips_and_the_latest_wins() {
        let (_dir, index) = index().await;
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        let mut snaps = Vec::new();
        p.process(
            &Reading { timestamp: 1.0, sensor_id: "s".into(), temperature: 85.0 },
            1_000,
            &mut out,
        );
        let in_partition = |snaps: &[SensorSnapshot], p: i32| -> Vec<(i32, SensorSnapshot)> {
            snaps.iter().map(|s| (p, s.clone())).collect()
        };
        p.take_changed(&mut snaps);
        let first = in_partition(&snaps, 1);
        index.record(IndexBatch { snapshots: &first, ..Default::default() }).await.unwrap();
        p.process(
            &Reading { timestamp: 2.0, sensor_id: "s".into(), temperature: 95.0 },
            2_000,
            &mut out,
        );
        p.process(
            &Reading { timestamp: 2.0, sensor_id: "t".into(), temperature: 20.0 },
            2_000,
            &mut out,
        );
        snaps.clear();
        p.take_changed(&mut snaps);
        snaps.sort_by(|a, b| a.sensor_id.cmp(&b.sensor_id));
        let (s, t) = (in_partition(&snaps[..1], 1), in_partition(&snaps[1..], 2));
        let latest = [s, t].concat();
        index.record(IndexBatch { snapshots: &latest, ..Default::default() }).await.unwrap();
        assert_eq!(index.snapshots(&[1, 2]).await.unwrap(), latest);
        assert_eq!(index.snapshots(&[2]).await.unwrap(), latest[1..]);
        assert_eq!(index.snapshots(&[]).await.unwrap(), []);

        let offsets = [(1, 10), (2, 7)];
        index.record(IndexBatch { offsets: &offsets, ..Default::default() }).await.unwrap();
        index.record(IndexBatch { offsets: &[(1, 12)], ..Default::default() }).await.unwrap();
        assert_eq!(index.offsets().await.unwrap(), vec![(1, 12), (2, 7)]);

        index.forget_partition(1).await.unwrap();
        assert_eq!(index.snapshots(&[1, 2]).await.unwrap(), latest[1..]);
        assert_eq!(index.offsets().await.unwrap(), vec![(2, 7)]);
    }
}
