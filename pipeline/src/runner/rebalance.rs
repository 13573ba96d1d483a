//! Rebalances, applied by the loop between two messages. A revoked partition is flushed,
//! settled and committed before it is released, and its sensors' state goes with it; an
//! assigned one starts where this instance's saved state is still current, or else at the
//! group's committed offset with fresh state ([`starts`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer};
use tracing::{error, info, warn};

use super::flush::{InFlight, offset_list, settle};
use super::pending::Pending;
use super::{Runner, RunnerError};
use crate::clock::now_ms;
use crate::kafka::{self, Rebalance};
use crate::live::LiveView;

/// Where the assigned partitions start, and what becomes of this instance's saved state.
#[derive(Debug, PartialEq)]
pub(super) struct Starts {
    /// Each partition with its first offset.
    pub offsets: Vec<(i32, Offset)>,
    /// Partitions whose saved state is current: their sensors' state is restored.
    pub current: Vec<i32>,
    /// Partitions whose saved state is stale (the group committed past it): forgotten.
    pub stale: Vec<i32>,
}

/// Decides where each partition starts from the group's `committed` offset of each and the
/// offsets this instance `saved` with its state. The saved state is current unless the group
/// committed past it (another instance processed the partition since); nothing committed and
/// nothing saved starts at the group's default (`Offset::Stored`).
pub(super) fn starts(committed: &[(i32, Option<i64>)], saved: &HashMap<i32, i64>) -> Starts {
    let mut starts = Starts { offsets: Vec::new(), current: Vec::new(), stale: Vec::new() };
    for &(partition, committed) in committed {
        match saved.get(&partition) {
            Some(&saved) if committed.is_none_or(|c| saved >= c) => {
                starts.offsets.push((partition, Offset::Offset(saved)));
                starts.current.push(partition);
            }
            stale => {
                if stale.is_some() {
                    starts.stale.push(partition);
                }
                starts.offsets.push((partition, committed.map_or(Offset::Stored, Offset::Offset)));
            }
        }
    }
    starts
}

impl<L: LiveView> Runner<L> {
    /// Applies one rebalance queued by the consumer.
    pub(super) async fn rebalance(
        &mut self,
        change: Rebalance,
        pending: &mut Pending,
        in_flight: &mut InFlight,
    ) -> Result<(), RunnerError> {
        self.live.flush();
        match change {
            Rebalance::Revoke(partitions) => {
                // Everything consumed so far is made durable and committed first: the next
                // owner starts exactly after it.
                self.flush(pending, in_flight).await?;
                settle(in_flight, pending).await?;
                let (offsets, sensors) = pending.release(&partitions);
                self.commit_sync(offsets).await;
                let forgotten = sensors.iter().filter(|s| self.processor.forget(s)).count();
                kafka::unassign(&*self.consumer, &partitions).map_err(|source| {
                    RunnerError::Kafka { doing: "releasing partitions", source }
                })?;
                info!(?partitions, sensors = forgotten, "partitions revoked after a flush");
            }
            Rebalance::Assign(partitions) => {
                let starts = loop {
                    match self.prepare(&partitions, pending).await {
                        Ok(starts) => break starts,
                        Err(e) => {
                            error!("cannot prepare assigned partitions, retrying in 1s: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                kafka::assign(&*self.consumer, &starts)
                    .map_err(|source| RunnerError::Kafka { doing: "taking partitions", source })?;
            }
        }
        Ok(())
    }

    /// Where each assigned partition starts ([`starts`]), with the state of the sensors of
    /// the current ones restored and the stale ones' forgotten.
    async fn prepare(
        &mut self,
        partitions: &[i32],
        pending: &mut Pending,
    ) -> Result<Vec<(i32, Offset)>, RunnerError> {
        let consumer = Arc::clone(&self.consumer);
        let asked = partitions.to_vec();
        let committed = tokio::task::spawn_blocking(move || {
            kafka::committed(&*consumer, &asked, Duration::from_secs(10))
        })
        .await
        .map_err(|_| RunnerError::Panicked("the committed offsets lookup"))?
        .map_err(|source| RunnerError::Kafka {
            doing: "looking up the group's committed offsets",
            source,
        })?;
        let index = &self.sinks.index;
        let index_err = |doing| move |source| RunnerError::Index { doing, source };
        let saved: HashMap<i32, i64> = index
            .offsets()
            .await
            .map_err(index_err("reading the saved offsets"))?
            .into_iter()
            .collect();
        let Starts { offsets, current, stale } = starts(&committed, &saved);
        for partition in stale {
            index
                .forget_partition(partition)
                .await
                .map_err(index_err("forgetting a stale partition"))?;
        }
        let snapshots =
            index.snapshots(&current).await.map_err(index_err("reading the saved sensor state"))?;
        let sensors = snapshots.len();
        let mut restored = Vec::with_capacity(sensors);
        for (partition, snapshot) in snapshots {
            pending.restored(&snapshot.sensor_id, partition);
            restored.push(snapshot);
        }
        self.processor.restore(restored, now_ms());
        info!(starts = ?offsets, sensors, "partitions assigned; sensor state restored");
        Ok(offsets)
    }

    /// Commits `offsets` (durable: their flushes settled) to the group and waits for the
    /// broker's answer: before a partition is released, so that its next owner starts right
    /// after them, and at shutdown. A failure is logged: the next owner then replays a little.
    pub(super) async fn commit_sync(&self, offsets: BTreeMap<i32, i64>) {
        if offsets.is_empty() {
            return;
        }
        let consumer = Arc::clone(&self.consumer);
        let committed = tokio::task::spawn_blocking(move || {
            consumer.commit(&offset_list(offsets)?, CommitMode::Sync)
        })
        .await;
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("offset commit failed: {e}"),
            Err(e) => warn!("offset commit panicked: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_at_or_past_the_group_commit_is_current() {
        let saved = HashMap::from([(0, 100), (1, 50)]);
        let s = starts(&[(0, Some(100)), (1, Some(40))], &saved);
        assert_eq!(s.offsets, [(0, Offset::Offset(100)), (1, Offset::Offset(50))]);
        assert_eq!((s.current, s.stale), (vec![0, 1], vec![]));
    }

    #[test]
    fn saved_state_behind_the_group_commit_is_stale_and_the_commit_wins() {
        let saved = HashMap::from([(2, 10)]);
        let s = starts(&[(2, Some(11))], &saved);
        assert_eq!(s.offsets, [(2, Offset::Offset(11))]);
        assert_eq!((s.current, s.stale), (vec![], vec![2]));
    }

    #[test]
    fn saved_state_with_nothing_committed_is_current() {
        let s = starts(&[(3, None)], &HashMap::from([(3, 7)]));
        assert_eq!(s.offsets, [(3, Offset::Offset(7))]);
        assert_eq!(s.current, [3]);
    }

    #[test]
    fn without_saved_state_a_partition_starts_at_the_commit_or_the_group_default() {
        let s = starts(&[(0, Some(5)), (1, None)], &HashMap::new());
        assert_eq!(s.offsets, [(0, Offset::Offset(5)), (1, Offset::Stored)]);
        assert!(s.current.is_empty() && s.stale.is_empty());
    }

    #[test]
    fn state_saved_for_partitions_not_assigned_is_left_alone() {
        let s = starts(&[(0, Some(1))], &HashMap::from([(0, 1), (9, 99)]));
        assert_eq!((s.current, s.stale), (vec![0], vec![]));
        assert_eq!(s.offsets.len(), 1);
    }
}
