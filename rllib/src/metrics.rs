//! Per-iteration results with RLlib metric names, and the run directory files that record them.
//!
//! Every iteration produces one [`IterationResult`]: a fixed, ordered set of columns so that
//! `progress.csv` has a stable header, plus `result.jsonl` with the same values as JSON.
//! Columns whose names start with `time_`, `timers/` or end in `_per_s` hold wall-clock
//! measurements; every other column is a deterministic function of the config and seed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

/// Columns of `progress.csv`, in order.
pub const COLUMNS: &[&str] = &[
    "training_iteration",
    "num_env_steps_sampled_lifetime",
    "num_episodes_lifetime",
    "env_runners/episode_return_mean",
    "env_runners/episode_return_min",
    "env_runners/episode_return_max",
    "env_runners/episode_len_mean",
    "env_runners/num_episodes",
    "learners/policy_loss",
    "learners/vf_loss",
    "learners/entropy",
    "learners/approx_kl",
    "learners/clip_fraction",
    "learners/explained_variance",
    "learners/grad_norm",
    "learners/lr",
    "learners/clip_param",
    "learners/num_minibatch_updates",
    "learners/policy_version",
    "evaluation/episode_return_mean",
    "evaluation/episode_return_std",
    "evaluation/episode_len_mean",
    "time_this_iter_s",
    "time_total_s",
    "timers/sample_s",
    "timers/learn_s",
    "num_env_steps_sampled_per_s",
];

/// True for columns that hold wall-clock measurements.
pub fn is_timing_column(name: &str) -> bool {
    name.starts_with("time_") || name.starts_with("timers/") || name.ends_with("_per_s")
}

/// One iteration's metrics. Missing entries (e.g. evaluation on iterations without one) stay
/// empty in the CSV and are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IterationResult {
    values: Map<String, Value>,
}

impl IterationResult {
    /// Sets a metric; `name` must be one of [`COLUMNS`].
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        debug_assert!(COLUMNS.contains(&name), "unknown metric {name}");
        self.values.insert(name.to_string(), value.into());
    }

    /// A metric as a number, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).and_then(Value::as_f64)
    }

    /// The numeric metrics in column order, for TensorBoard.
    pub fn numbers(&self) -> Vec<(&'static str, f64)> {
        COLUMNS.iter().filter_map(|c| self.get(c).map(|v| (*c, v))).collect()
    }

    /// All metrics as a JSON object (keys sorted).
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.clone())
    }

    fn csv_row(&self) -> String {
        COLUMNS
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

/// Appends results to `progress.csv` and `result.jsonl`, flushing after every iteration so a
/// crash loses nothing already reported.
#[derive(Debug)]
pub struct ResultWriter {
    csv: BufWriter<File>,
    jsonl: BufWriter<File>,
}

impl ResultWriter {
    /// Creates both files in `dir` (the CSV with its header).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let mut csv = BufWriter::new(File::create(dir.join("progress.csv"))?);
        writeln!(csv, "{}", COLUMNS.join(","))?;
        csv.flush()?;
        Ok(Self { csv, jsonl: BufWriter::new(File::create(dir.join("result.jsonl"))?) })
    }

    /// Records one iteration.
    pub fn write(&mut self, result: &IterationResult) -> std::io::Result<()> {
        writeln!(self.csv, "{}", result.csv_row())?;
        writeln!(self.jsonl, "{}", result.to_json())?;
        self.csv.flush()?;
        self.jsonl.flush()
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
    fn csv_has_stable_columns_and_blanks() {
        let dir = std::env::temp_dir().join(format!("rllib-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = ResultWriter::create(&dir).unwrap();
        let mut r = IterationResult::default();
        r.set("training_iteration", 1);
        r.set("learners/lr", 0.5);
        w.write(&r).unwrap();
        drop(w);
        let csv = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), COLUMNS.len());
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(row[0], "1");
        assert_eq!(row[COLUMNS.iter().position(|c| *c == "learners/lr").unwrap()], "0.5");
        assert_eq!(row[1], "");
        let json = std::fs::read_to_string(dir.join("result.jsonl")).unwrap();
        assert_eq!(json.trim(), r#"{"learners/lr":0.5,"training_iteration":1}"#);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timing_columns_are_recognised() {
        assert!(is_timing_column("time_total_s"));
        assert!(is_timing_column("timers/learn_s"));
        assert!(is_timing_column("num_env_steps_sampled_per_s"));
        assert!(!is_timing_column("learners/lr"));
    }
}
