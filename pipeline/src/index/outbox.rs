//! The outbox: the messages a flush produces (alerts, dead letters), made durable in the
//! flush's own transaction and deleted once the broker acknowledged them. Offsets saved with
//! a flush skip its readings at the next start, so without it a crash after the transaction
//! and before the broker's acknowledgement lost those messages; with it, the next start sends
//! what is left (at least once: a message acknowledged just before the crash goes twice).

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{CHUNK, Index, IndexError, delete_in, query_err};

/// A message for a Kafka topic, kept until the broker acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub topic: String,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl OutboxRecord {
    /// Bytes it holds (key, payload, headers).
    pub fn size(&self) -> usize {
        self.key.len()
            + self.payload.len()
            + self.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// Inserts `records` in the transaction `tx`; their row ids, in order.
pub(super) async fn insert(
    tx: &mut SqliteConnection,
    records: &[OutboxRecord],
    written_ms: i64,
) -> Result<Vec<i64>, IndexError> {
    let mut ids = Vec::with_capacity(records.len());
    for chunk in records.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (topic, key, payload, headers, written_ms) ",
        );
        q.push_values(chunk, |mut row, r| {
            let headers = serde_json::to_string(&r.headers).expect("headers serialize");
            row.push_bind(&r.topic)
                .push_bind(&r.key)
                .push_bind(&r.payload)
                .push_bind(headers)
                .push_bind(written_ms);
        });
        q.push(" RETURNING id");
        let rows = q.build().fetch_all(&mut *tx).await.map_err(query_err("record the outbox"))?;
        ids.extend(rows.iter().map(|r| r.get::<i64, _>(0)));
    }
    Ok(ids)
}

impl Index {
    /// Messages still waiting for the broker, oldest first, at most `limit`.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<(i64, OutboxRecord)>, IndexError> {
        let rows =
            sqlx::query("SELECT id, topic, key, payload, headers FROM outbox ORDER BY id LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("load the outbox"))?;
        rows.into_iter()
            .map(|r| {
                let headers: String = r.get(4);
                let id: i64 = r.get(0);
                let headers = serde_json::from_str(&headers)
                    .map_err(|source| IndexError::CorruptOutbox { id, source })?;
                let record =
                    OutboxRecord { topic: r.get(1), key: r.get(2), payload: r.get(3), headers };
                Ok((id, record))
            })
            .collect()
    }

    /// Forgets the messages `ids`: the broker has them.
    pub async fn outbox_sent(&self, ids: &[i64]) -> Result<(), IndexError> {
        let mut conn = self.pool.acquire().await.map_err(query_err("clear the outbox"))?;
        delete_in(&mut conn, "clear the outbox", "DELETE FROM outbox WHERE id IN (", ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBatch;

    fn record(topic: &str, key: &[u8]) -> OutboxRecord {
        OutboxRecord {
            topic: topic.into(),
            key: key.to_vec(),
            payload: vec![0, 159, 146, 150],
            headers: vec![("thermoalert.reason".into(), "bad_json".into())],
        }
    }

    #[tokio::test]
    async fn a_flush_s_messages_wait_in_the_outbox_until_sent() {
        let (_dir, index) = crate::index::test_support::index().await;
        let first = [record("temperature_alerts", b"s1"), record("temperature_data_dlq", b"")];
        let ids = index.record(IndexBatch { outbox: &first, ..Default::default() }).await.unwrap();
        assert_eq!(ids.len(), 2);
        let second = [record("temperature_alerts", b"s2")];
        let more =
            index.record(IndexBatch { outbox: &second, ..Default::default() }).await.unwrap();
        assert!(more[0] > ids[1], "ids grow");
        // A restart finds them, oldest first, exactly as written.
        let left = index.outbox(10).await.unwrap();
        let records: Vec<_> = left.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(records, [first[0].clone(), first[1].clone(), second[0].clone()]);
        assert_eq!(index.outbox(1).await.unwrap().len(), 1, "limited");
        index.outbox_sent(&ids).await.unwrap();
        let left: Vec<i64> =
            index.outbox(10).await.unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, more);
        // Sent twice (a retry) is harmless.
        index.outbox_sent(&ids).await.unwrap();
        assert_eq!(first[0].size(), 2 + 4 + "thermoalert.reason".len() + "bad_json".len());
    }
}
