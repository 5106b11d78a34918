//! Failure detection as a clock-driven state machine: no I/O, callers report heartbeats and ask
//! who is overdue.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Declares a node dead once no heartbeat came for `timeout`.
///
/// The head feeds it from its heartbeat handler and asks [`FailureDetector::expired`] on a timer.
/// Heartbeats come from each node's network thread, not its actor threads, so a node busy with
/// CPU work keeps beating; the default timeout (see `ClusterOptions`) still leaves a wide margin
/// for a loaded 2-core machine.
#[derive(Debug)]
pub struct FailureDetector {
    timeout: Duration,
    last: BTreeMap<u32, Instant>,
}

impl FailureDetector {
    /// A detector with no nodes.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, last: BTreeMap::new() }
    }

    /// Records a heartbeat (or a join) of `node` at `now`.
    pub fn heartbeat(&mut self, node: u32, now: Instant) {
        self.last.insert(node, now);
    }

    /// Stops watching `node` (it left or was declared dead).
    pub fn remove(&mut self, node: u32) {
        self.last.remove(&node);
    }

    /// Time since `node`'s last heartbeat, if it is watched.
    pub fn silence(&self, node: u32, now: Instant) -> Option<Duration> {
        self.last.get(&node).map(|t| now.saturating_duration_since(*t))
    }

    /// The watched nodes silent for longer than the timeout at `now`, with their silence, in id
    /// order. They stay watched until [`FailureDetector::remove`]d.
    pub fn expired(&self, now: Instant) -> Vec<(u32, Duration)> {
        self.last
            .iter()
            .map(|(n, t)| (*n, now.saturating_duration_since(*t)))
            .filter(|(_, silence)| *silence > self.timeout)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_declared_dead_only_after_the_timeout() {
        let t0 = Instant::now();
        let mut d = FailureDetector::new(Duration::from_secs(10));
        d.heartbeat(1, t0);
        d.heartbeat(2, t0);
        assert!(d.expired(t0 + Duration::from_secs(10)).is_empty());
        d.heartbeat(2, t0 + Duration::from_secs(9));
        let dead = d.expired(t0 + Duration::from_millis(10_001));
        assert_eq!(dead, vec![(1, Duration::from_millis(10_001))]);
        d.remove(1);
        assert!(d.expired(t0 + Duration::from_secs(19)).is_empty());
        assert_eq!(d.expired(t0 + Duration::from_secs(20)).len(), 1);
        assert_eq!(d.silence(2, t0 + Duration::from_secs(20)), Some(Duration::from_secs(11)));
    }
}
