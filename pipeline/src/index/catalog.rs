//! The archive catalog: every archive file with its sensor, dataset, time range and size, so
//! that history queries, compaction and retention never list the store.

use sqlx::{Row, SqliteConnection};

use super::{Index, IndexError, delete_in, query_err, upsert};
use crate::archive::{ArchiveFile, Dataset};

const DAY_MS: i64 = 86_400_000;

/// An archive file as the index knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub sensor_id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub records: i64,
    pub bytes: i64,
}

/// `SELECT` of the columns [`file_entry`] reads, in its order, followed by `$rest`: one
/// static statement (sqlx takes no SQL built at run time without an audit).
macro_rules! select_files {
    ($rest:literal) => {
        concat!(
            "SELECT path, sensor_id, first_ms, last_ms, records, bytes FROM archive_files ",
            $rest
        )
    };
}

/// An `archive_files` row selected by `select_files!`.
fn file_entry(r: sqlx::sqlite::SqliteRow) -> FileEntry {
    FileEntry {
        path: r.get(0),
        sensor_id: r.get(1),
        first_ms: r.get(2),
        last_ms: r.get(3),
        records: r.get(4),
        bytes: r.get(5),
    }
}

/// Records a flush's files. Files are appended to by later flushes: a known path widens its
/// range and adds to its counts.
pub(super) async fn record(
    tx: &mut SqliteConnection,
    files: &[ArchiveFile],
    written_ms: i64,
) -> Result<(), IndexError> {
    upsert(
        tx,
        "record archive files",
        "INSERT INTO archive_files \
         (path, dataset, sensor_id, first_ms, last_ms, records, bytes, written_ms) ",
        files,
        |mut row, f| {
            row.push_bind(&f.path)
                .push_bind(f.dataset.name())
                .push_bind(&f.sensor_id)
                .push_bind(f.first_ms)
                .push_bind(f.last_ms)
                .push_bind(f.records as i64)
                .push_bind(f.contents.len() as i64)
                .push_bind(written_ms);
        },
        " ON CONFLICT (path) DO UPDATE SET \
         first_ms = min(archive_files.first_ms, excluded.first_ms), \
         last_ms = max(archive_files.last_ms, excluded.last_ms), \
         records = archive_files.records + excluded.records, \
         bytes = archive_files.bytes + excluded.bytes, \
         written_ms = excluded.written_ms",
    )
    .await
}

impl Index {
    /// The live files of `dataset` for `sensor_id` that may hold records in `[from_ms, to_ms]`.
    pub async fn files(
        &self,
        sensor_id: &str,
        dataset: Dataset,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let sql = select_files!(
            "WHERE sensor_id = ? AND dataset = ? AND state = 'live' \
             AND last_ms >= ? AND first_ms <= ? ORDER BY first_ms, path"
        );
        self.live_files(sql, "list archive files", sensor_id, dataset, from_ms, to_ms).await
    }

    /// `(sensor, dataset, day)` of past days with more than one live file (a day is
    /// `first_ms / 86 400 000`, the UTC day of the directory the files are in), at most
    /// `limit`, before `before_ms`.
    pub async fn days_to_compact(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, Dataset, i64)>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, dataset, first_ms / 86400000 AS day FROM archive_files \
             WHERE state = 'live' AND first_ms < ? GROUP BY sensor_id, dataset, day \
             HAVING count(*) > 1 ORDER BY day, sensor_id, dataset LIMIT ?",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("find days to compact"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let dataset = Dataset::from_name(&r.get::<String, _>(1))?;
                Some((r.get(0), dataset, r.get(2)))
            })
            .collect())
    }

    /// The live files of one sensor's dataset in the directory of `day` (days since the epoch,
    /// as [`Index::days_to_compact`] gives them): those whose first record is in that day.
    pub async fn files_of_day(
        &self,
        sensor_id: &str,
        dataset: Dataset,
        day: i64,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let sql = select_files!(
            "WHERE sensor_id = ? AND dataset = ? AND state = 'live' \
             AND first_ms >= ? AND first_ms < ? ORDER BY first_ms, path"
        );
        let (from_ms, to_ms) = (day * DAY_MS, (day + 1) * DAY_MS);
        self.live_files(sql, "list a day's files", sensor_id, dataset, from_ms, to_ms).await
    }

    /// The files `sql` selects with `sensor_id`, `dataset` and two times bound, in that order.
    async fn live_files(
        &self,
        sql: &'static str,
        op: &'static str,
        sensor_id: &str,
        dataset: Dataset,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let rows = sqlx::query(sql)
            .bind(sensor_id)
            .bind(dataset.name())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err(op))?;
        Ok(rows.into_iter().map(file_entry).collect())
    }

    /// Up to `limit` live files (any sensor or dataset) whose records all precede `before_ms`.
    pub async fn files_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let rows = sqlx::query(select_files!("WHERE last_ms < ? ORDER BY last_ms LIMIT ?"))
            .bind(before_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("list expired files"))?;
        Ok(rows.into_iter().map(file_entry).collect())
    }

    /// In one transaction: forgets the files at `old`, and (when given) records `new` as
    /// the live file that holds their records. Readers see either all old files or the new
    /// one, never both nor neither.
    pub async fn replace_files(
        &self,
        old: &[String],
        new: Option<(&FileEntry, Dataset)>,
        written_ms: i64,
    ) -> Result<(), IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        let forget = "DELETE FROM archive_files WHERE path IN (";
        delete_in(&mut tx, "forget archive files", forget, old).await?;
        if let Some((f, dataset)) = new {
            sqlx::query(
                "INSERT INTO archive_files (path, dataset, sensor_id, first_ms, last_ms, records, \
                 bytes, written_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&f.path)
            .bind(dataset.name())
            .bind(&f.sensor_id)
            .bind(f.first_ms)
            .bind(f.last_ms)
            .bind(f.records)
            .bind(f.bytes)
            .bind(written_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err("record a compacted file"))?;
        }
        tx.commit().await.map_err(query_err("commit a transaction"))
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
    async fn files_are_found_by_sensor_dataset_and_time_overlap() {
        let (_dir, index) = index().await;
        let mut buf = ArchiveBuffer::new("w");
        let r = |sensor: &str, t: f64| Reading {
            timestamp: t,
            sensor_id: sensor.into(),
            temperature: 1.0,
        };
        buf.push_reading(&r("a", 100.0));
        buf.push_reading(&r("a", 200.0));
        let first = buf.take_batch().files;
        // The next flush appends to the same hour's file, and starts the next hour's.
        buf.push_reading(&r("a", 300.0));
        buf.push_reading(&r("a", 3_700.0));
        buf.push_reading(&r("b", 300.0));
        let second = buf.take_batch().files;
        for (files, at) in [(&first, 1), (&second, 2)] {
            index.record(IndexBatch { files, written_ms: at, ..Default::default() }).await.unwrap();
        }

        let all = index.files("a", Dataset::Readings, 0, i64::MAX).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].first_ms, all[0].last_ms, all[0].records), (100_000, 300_000, 3));
        let appended: usize = [&first[0], &second[0]].iter().map(|f| f.contents.len()).sum();
        assert_eq!(all[0].bytes as usize, appended);
        assert_eq!((all[1].first_ms, all[1].records), (3_700_000, 1));
        assert_eq!(index.files("a", Dataset::Readings, 350_000, 3_600_000).await.unwrap().len(), 0);
        assert_eq!(index.files("a", Dataset::Readings, 300_000, 3_700_000).await.unwrap().len(), 2);
        assert!(index.files("a", Dataset::InstantAlerts, 0, i64::MAX).await.unwrap().is_empty());

        // The files' sensors are known from then on.
        let sensors = index.sensors().await.unwrap();
        let seen: Vec<_> = sensors
            .iter()
            .map(|s| (s.sensor_id.as_str(), s.first_seen_ms, s.last_seen_ms))
            .collect();
        assert_eq!(seen, vec![("a", 100_000, 3_700_000), ("b", 300_000, 300_000)]);
    }

    #[tokio::test]
    async fn replacing_files_swaps_them_for_one_in_one_step() {
        let (_dir, index) = index().await;
        let mut buf = ArchiveBuffer::new("w");
        for t in [100.0, 3_700.0] {
            buf.push_reading(&Reading { timestamp: t, sensor_id: "a".into(), temperature: 1.0 });
        }
        let files = buf.take_batch().files;
        index.record(IndexBatch { files: &files, ..Default::default() }).await.unwrap();
        assert_eq!(
            index.days_to_compact(i64::MAX, 10).await.unwrap(),
            [("a".to_owned(), Dataset::Readings, 0)]
        );
        let old: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let merged = FileEntry {
            path: "merged".into(),
            sensor_id: "a".into(),
            first_ms: 100_000,
            last_ms: 3_700_000,
            records: 2,
            bytes: 10,
        };
        index.replace_files(&old, Some((&merged, Dataset::Readings)), 5).await.unwrap();
        let live = index.files("a", Dataset::Readings, 0, i64::MAX).await.unwrap();
        assert_eq!(live, std::slice::from_ref(&merged));
        assert!(index.days_to_compact(i64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(index.files_before(3_700_001, 10).await.unwrap(), [merged]);
        assert!(index.files_before(3_700_000, 10).await.unwrap().is_empty());
        index.replace_files(&["merged".to_owned()], None, 6).await.unwrap();
        assert!(index.files("a", Dataset::Readings, 0, i64::MAX).await.unwrap().is_empty());
    }
}
