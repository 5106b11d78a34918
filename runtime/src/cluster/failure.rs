//! Failure detection as clock-driven state machines: no I/O, callers report heartbeats (or the
//! head's answers) and ask who is overdue. [`FailureDetector`] is the head's view of its nodes,
//! [`HeadWatch`] a node's view of the head.

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

/// A node's view of the head: when it last answered a heartbeat, and whether it has been silent
/// for longer than the head's own node timeout (which the node learns at join).
///
/// The node uses the head's timeout because the head would have declared the node dead after
/// the same silence: past it, the head is gone or no longer counts the node as alive, and the
/// node gives up instead of waiting forever.
#[derive(Debug, Clone)]
pub struct HeadWatch {
    timeout: Duration,
    last_answer: Instant,
}

impl HeadWatch {
    /// A watch of a head that answered (the join) at `now`.
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Self { timeout, last_answer: now }
    }

    /// The silence after which the head counts as lost.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records an answer of the head at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.last_answer = self.last_answer.max(now);
    }

    /// Time since the head's last answer.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_answer)
    }

    /// The head's silence, once it is longer than the timeout at `now`.
    pub fn lost(&self, now: Instant) -> Option<Duration> {
        Some(self.silence(now)).filter(|s| *s > self.timeout)
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

    #[test]
    fn the_head_is_lost_only_after_a_silence_longer_than_the_timeout() {
        let t0 = Instant::now();
        let mut w = HeadWatch::new(Duration::from_secs(2), t0);
        assert_eq!(w.lost(t0 + Duration::from_secs(2)), None);
        w.answered(t0 + Duration::from_millis(1_500));
        assert_eq!(w.lost(t0 + Duration::from_millis(3_400)), None, "the answer restarted the clock");
        assert_eq!(w.lost(t0 + Duration::from_millis(3_600)), Some(Duration::from_millis(2_100)));
        // An answer recorded late with an earlier time never moves the clock back.
        w.answered(t0);
        assert_eq!(w.silence(t0 + Duration::from_millis(3_600)), Duration::from_millis(2_100));
        assert_eq!(w.timeout(), Duration::from_secs(2));
    }
}
