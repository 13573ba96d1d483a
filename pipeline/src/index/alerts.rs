//! The latest state of every alert, by its deterministic id, with what operators did about
//! it. A replayed older state never overwrites a newer one.

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Index, IndexError, push_list, query_err, seconds_to_ms, upsert};
use crate::model::{Alert, AlertFilter, AlertState, EncodedAlert, Level};

/// An alert with what operators did about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: Alert,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
}

/// Order of states within one alert's life.
fn state_rank(s: AlertState) -> i64 {
    match s {
        AlertState::Open => 0,
        AlertState::Escalated => 1,
        AlertState::Cleared => 2,
    }
}

/// Records a flush's alert state changes. A replayed older state (earlier, lower revision,
/// or earlier in the episode) never overwrites a newer one; acknowledgements are kept.
pub(super) async fn record(
    tx: &mut SqliteConnection,
    alerts: &[EncodedAlert],
) -> Result<(), IndexError> {
    upsert(
        tx,
        "record alerts",
        "INSERT INTO alerts (alert_id, kind, sensor_id, severity, state, state_rank, \
         opened_ms, updated_ms, revision, temperature, threshold, body) ",
        alerts,
        |mut row, encoded| {
            let a = encoded.alert();
            let ms = seconds_to_ms(a.timestamp);
            row.push_bind(&a.alert_id)
                .push_bind(a.kind.as_str())
                .push_bind(&a.sensor_id)
                .push_bind(a.severity.as_str())
                .push_bind(a.state.as_str())
                .push_bind(state_rank(a.state))
                .push_bind(ms)
                .push_bind(ms)
                .push_bind(i64::from(a.window.as_ref().map_or(0, |w| w.revision)))
                .push_bind(a.temperature)
                .push_bind(a.threshold)
                .push_bind(encoded.json());
        },
        " ON CONFLICT (alert_id) DO UPDATE SET \
         severity = excluded.severity, state = excluded.state, \
         state_rank = excluded.state_rank, updated_ms = excluded.updated_ms, \
         revision = excluded.revision, temperature = excluded.temperature, \
         threshold = excluded.threshold, body = excluded.body, \
         opened_ms = min(alerts.opened_ms, excluded.opened_ms) \
         WHERE (excluded.updated_ms, excluded.revision, excluded.state_rank) \
             > (alerts.updated_ms, alerts.revision, alerts.state_rank)",
    )
    .await
}

/// ` AND column IN (…)` of the names of `values`, unless there are none.
fn any_of<T>(q: &mut QueryBuilder<Sqlite>, column: &str, values: &[T], name: impl Fn(&T) -> &str) {
    if values.is_empty() {
        return;
    }
    q.push(format!(" AND {column} IN ("));
    push_list(q, values.iter().map(name));
}

impl Index {
    /// Alerts matching `filter`, most severe first, then most recent first.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, IndexError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT alert_id, body, acknowledged_by, acknowledged_ms FROM alerts WHERE 1 = 1",
        );
        any_of(&mut q, "severity", &filter.severities, |l| l.as_str());
        any_of(&mut q, "sensor_id", &filter.sensors, String::as_str);
        any_of(&mut q, "kind", &filter.kinds, |k| k.as_str());
        any_of(&mut q, "state", &filter.states, |s| s.as_str());
        if let Some(from) = filter.from_ms {
            q.push(" AND opened_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            q.push(" AND opened_ms < ").push_bind(to);
        }
        q.push(" ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 ELSE 1 END, updated_ms DESC, alert_id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await.map_err(query_err("list alerts"))?;
        rows.into_iter()
            .map(|r| {
                let alert_id: String = r.get(0);
                let body: String = r.get(1);
                let alert = serde_json::from_str(&body)
                    .map_err(|source| IndexError::Corrupt { alert_id, source })?;
                Ok(AlertRecord { alert, acknowledged_by: r.get(2), acknowledged_ms: r.get(3) })
            })
            .collect()
    }

    /// Marks an alert acknowledged; false when there is no such alert.
    pub async fn acknowledge(
        &self,
        alert_id: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_ms = ? WHERE alert_id = ?",
        )
        .bind(by)
        .bind(at_ms)
        .bind(alert_id)
        .execute(&self.pool)
        .await
        .map_err(query_err("acknowledge an alert"))?;
        Ok(done.rows_affected() > 0)
    }

    /// How many alerts are not cleared yet, per severity (HIGH, CRITICAL).
    pub async fn open_alerts(&self) -> Result<(u64, u64), IndexError> {
        let rows = sqlx::query(
            "SELECT severity, count(*) FROM alerts WHERE state <> 'cleared' GROUP BY severity",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("count open alerts"))?;
        let count = |level: Level| -> u64 {
            rows.iter()
                .find(|r| r.get::<String, _>(0) == level.as_str())
                .map_or(0, |r| r.get::<i64, _>(1) as u64)
        };
        Ok((count(Level::High), count(Level::Critical)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBatch;
    use crate::index::test_support::index;
    use crate::model::{AlertKind, WindowStats};

    fn alert(id_ms: i64, state: AlertState, at: f64, revision: Option<u32>) -> Alert {
        Alert {
            alert_id: Alert::id_for(AlertKind::Instant, "s1", id_ms),
            kind: if revision.is_some() { AlertKind::Window } else { AlertKind::Instant },
            severity: Level::High,
            state,
            sensor_id: "s1".into(),
            timestamp: at,
            temperature: 85.0,
            threshold: 80.0,
            window: revision.map(|revision| WindowStats {
                window_start: at,
                window_end: at + 300.0,
                count: 3,
                avg_temperature: 85.0,
                min: 80.0,
                max: 90.0,
                revision,
                late: u64::from(revision),
            }),
        }
    }

    #[tokio::test]
    async fn a_replayed_older_alert_state_never_overwrites_a_newer_one() {
        let (_dir, index) = index().await;
        let open = alert(1_000, AlertState::Open, 1.0, None);
        let escalated = alert(1_000, AlertState::Escalated, 2.0, None);
        let cleared = alert(1_000, AlertState::Cleared, 3.0, None);
        index
            .record(IndexBatch {
                alerts: &[open.clone().into(), escalated.clone().into()],
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(index.acknowledge(&open.alert_id, "ops", 5).await.unwrap());
        index
            .record(IndexBatch { alerts: &[cleared.clone().into()], ..Default::default() })
            .await
            .unwrap();
        // Replay of the whole episode after a crash.
        index
            .record(IndexBatch {
                alerts: &[open.into(), escalated.into(), cleared.clone().into()],
                ..Default::default()
            })
            .await
            .unwrap();

        let rows = index.alerts(&AlertFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows.len(), 1, "one row per alert id");
        assert_eq!(rows[0].alert, cleared);
        assert_eq!(rows[0].acknowledged_by.as_deref(), Some("ops"));
        assert!(!index.acknowledge("no-such-alert", "ops", 5).await.unwrap());
    }

    #[tokio::test]
    async fn window_alerts_keep_the_highest_revision() {
        let (_dir, index) = index().await;
        let r1 = alert(300_000, AlertState::Open, 300.0, Some(1));
        let r2 = alert(300_000, AlertState::Escalated, 300.0, Some(2));
        index
            .record(IndexBatch { alerts: &[r2.clone().into(), r1.into()], ..Default::default() })
            .await
            .unwrap();
        let rows = index.alerts(&AlertFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows[0].alert, r2);
    }

    #[tokio::test]
    async fn alerts_filter_by_every_field_and_list_critical_first() {
        let (_dir, index) = index().await;
        let mut a = alert(1_000, AlertState::Open, 1.0, None);
        let mut b = alert(2_000, AlertState::Open, 2.0, None);
        b.alert_id = "instant-s2-2000".into();
        b.sensor_id = "s2".into();
        b.severity = Level::Critical;
        let mut c = alert(3_000, AlertState::Cleared, 3.0, None);
        c.alert_id = "instant-s1-3000".into();
        a.temperature = 81.0;
        index
            .record(IndexBatch {
                alerts: &[a.clone().into(), b.clone().into(), c.clone().into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let ids =
            |rows: Vec<AlertRecord>| rows.into_iter().map(|r| r.alert.alert_id).collect::<Vec<_>>();
        let all = AlertFilter { limit: 10, ..Default::default() };
        assert_eq!(
            ids(index.alerts(&all).await.unwrap()),
            vec![b.alert_id.clone(), c.alert_id.clone(), a.alert_id.clone()]
        );
        let f = AlertFilter { severities: vec![Level::High], ..all.clone() };
        assert_eq!(
            ids(index.alerts(&f).await.unwrap()),
            vec![c.alert_id.clone(), a.alert_id.clone()]
        );
        let f = AlertFilter { sensors: vec!["s2".into()], ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![b.alert_id.clone()]);
        let f = AlertFilter { states: vec![AlertState::Cleared], ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![c.alert_id.clone()]);
        let f = AlertFilter { kinds: vec![AlertKind::Window], ..all.clone() };
        assert!(index.alerts(&f).await.unwrap().is_empty());
        let f = AlertFilter { from_ms: Some(2_000), to_ms: Some(3_000), ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![b.alert_id.clone()]);
        let f = AlertFilter { limit: 1, ..all };
        assert_eq!(index.alerts(&f).await.unwrap().len(), 1);
        // a (HIGH) and b (CRITICAL) are open, c is cleared.
        assert_eq!(index.open_alerts().await.unwrap(), (1, 1));
    }
}
