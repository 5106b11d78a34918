//! Per-iteration results with RLlib metric names: the columns every algorithm reports, and the
//! window of recent episodes they are computed from.
//!
//! Every iteration produces one [`IterationResult`]. The columns of `progress.csv` are
//! [`COMMON_HEAD`], then the algorithm's own learner columns (`Algorithm::metric_columns`), then
//! [`COMMON_TAIL`]; see [`columns`]. Columns whose names start with `time_`, `timers/` or end in
//! `_per_s` hold wall-clock measurements; every other column is a deterministic function of the
//! config and seed.

use std::collections::VecDeque;

use serde_json::{Map, Value};

/// The columns every algorithm reports first: counters and the training episodes.
pub const COMMON_HEAD: &[&str] = &[
    "training_iteration",
    "num_env_steps_sampled_lifetime",
    "num_episodes_lifetime",
    "env_runners/episode_return_mean",
    "env_runners/episode_return_min",
    "env_runners/episode_return_max",
    "env_runners/episode_len_mean",
    "env_runners/num_episodes",
    "fault_tolerance/num_healthy_workers",
    "fault_tolerance/num_remote_worker_restarts",
    "fault_tolerance/num_sub_env_restarts",
];

/// The columns every algorithm reports last: evaluation and timing.
pub const COMMON_TAIL: &[&str] = &[
    "evaluation/episode_return_mean",
    "evaluation/episode_return_std",
    "evaluation/episode_len_mean",
    "time_this_iter_s",
    "time_total_s",
    "timers/sample_s",
    "timers/learn_s",
    "num_env_steps_sampled_per_s",
];

/// The `progress.csv` columns of an algorithm whose own columns are `algorithm_columns`.
pub fn columns(algorithm_columns: &[&'static str]) -> Vec<&'static str> {
    [COMMON_HEAD, algorithm_columns, COMMON_TAIL].concat()
}

/// True for columns that hold wall-clock measurements.
pub fn is_timing_column(name: &str) -> bool {
    name.starts_with("time_") || name.starts_with("timers/") || name.ends_with("_per_s")
}

/// One iteration's metrics by name. Missing entries (e.g. evaluation on iterations without
/// one) stay empty in the CSV and are left out of the JSON. Integers stay integers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IterationResult {
    values: Map<String, Value>,
}

impl IterationResult {
    /// Sets a metric.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.values.insert(name.to_string(), value.into());
    }

    /// A metric as a number, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).and_then(Value::as_f64)
    }

    /// The names of the metrics set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The numeric metrics in the order of `columns`, for TensorBoard.
    pub fn numbers<'c>(&self, columns: &[&'c str]) -> Vec<(&'c str, f64)> {
        columns.iter().filter_map(|c| self.get(c).map(|v| (*c, v))).collect()
    }

    /// All metrics as a JSON object (keys sorted).
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.clone())
    }

    /// One CSV row with a cell per column of `columns`.
    pub fn csv_row(&self, columns: &[&str]) -> String {
        columns
            .iter()
            .map(|c| match self.values.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Returns and lengths of the most recent episodes (RLlib's smoothing window of 100).
#[derive(Debug, Clone)]
pub struct EpisodeWindow {
    episodes: VecDeque<(f64, i64)>,
    capacity: usize,
}

impl EpisodeWindow {
    /// A window over the last `capacity` episodes.
    pub fn new(capacity: usize) -> Self {
        Self { episodes: VecDeque::with_capacity(capacity), capacity }
    }

    /// A window over the last `capacity` episodes holding `episodes` (`(return, length)`,
    /// oldest first; only the newest `capacity` are kept).
    pub fn with_episodes(capacity: usize, episodes: &[(f64, i64)]) -> Self {
        let mut w = Self::new(capacity);
        for (r, l) in episodes {
            w.extend(&[*r], &[*l]);
        }
        w
    }

    /// The episodes in the window, oldest first, as `(return, length)`.
    pub fn episodes(&self) -> Vec<(f64, i64)> {
        self.episodes.iter().copied().collect()
    }

    /// Adds finished episodes in order.
    pub fn extend(&mut self, returns: &[f64], lengths: &[i64]) {
        for (r, l) in returns.iter().zip(lengths) {
            if self.episodes.len() == self.capacity {
                self.episodes.pop_front();
            }
            self.episodes.push_back((*r, *l));
        }
    }

    /// Mean return, or `None` before the first episode.
    pub fn mean_return(&self) -> Option<f64> {
        (!self.episodes.is_empty()).then(|| self.episodes.iter().map(|e| e.0).sum::<f64>() / self.episodes.len() as f64)
    }

    /// Min and max return.
    pub fn return_range(&self) -> Option<(f64, f64)> {
        let mut it = self.episodes.iter().map(|e| e.0);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), r| (lo.min(r), hi.max(r))))
    }

    /// Mean length.
    pub fn mean_length(&self) -> Option<f64> {
        (!self.episodes.is_empty())
            .then(|| self.episodes.iter().map(|e| e.1 as f64).sum::<f64>() / self.episodes.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_last_episodes() {
        let mut w = EpisodeWindow::new(3);
        assert_eq!(w.mean_return(), None);
        w.extend(&[1.0, 2.0, 3.0, 10.0], &[1, 2, 3, 4]);
        assert_eq!(w.mean_return(), Some(5.0));
        assert_eq!(w.return_range(), Some((2.0, 10.0)));
        assert_eq!(w.mean_length(), Some(3.0));
    }

    #[test]
    fn csv_rows_follow_the_columns_and_leave_blanks() {
        let mut r = IterationResult::default();
        r.set("training_iteration", 1);
        r.set("learners/lr", 0.5);
        r.set("learners/explained_variance", f64::NAN);
        let cols = columns(&["learners/lr", "learners/explained_variance"]);
        let row: Vec<String> = r.csv_row(&cols).split(',').map(String::from).collect();
        assert_eq!(row.len(), cols.len());
        assert_eq!(row[0], "1");
        assert_eq!(row[1], "");
        assert_eq!(row[COMMON_HEAD.len()], "0.5");
        // NaN has no JSON number: an empty cell.
        assert_eq!(row[COMMON_HEAD.len() + 1], "");
        assert_eq!(r.numbers(&cols), vec![("training_iteration", 1.0), ("learners/lr", 0.5)]);
        assert_eq!(
            r.to_json().to_string(),
            r#"{"learners/explained_variance":null,"learners/lr":0.5,"training_iteration":1}"#
        );
    }

    #[test]
    fn timing_columns_are_recognised() {
        assert!(is_timing_column("time_total_s"));
        assert!(is_timing_column("timers/learn_s"));
        assert!(is_timing_column("num_env_steps_sampled_per_s"));
        assert!(!is_timing_column("learners/lr"));
    }
}
