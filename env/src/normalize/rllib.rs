//! RLlib's observation filter: [`RunningStat`] (Welford's running mean and sum of squared
//! deviations, with a parallel merge) and [`MeanStdFilter`] (running statistics plus a buffer of
//! what was pushed since the last sync, so that many rollout workers can share one set of
//! statistics).
//!
//! Source: Ray's `rllib/utils/filter.py` (`RunningStat`, `MeanStdFilter`), `SMALL_NUMBER = 1e-6`
//! from `rllib/utils/numpy.py`, and the sync cycle of `rllib/utils/filter_manager.py`
//! (`FilterManager.synchronize`):
//!
//! 1. every worker hands over its buffer and clears it ([`MeanStdFilter::take_buffer`]; RLlib's
//!    `get_filters(flush_after=True)`);
//! 2. the driver merges each buffer into its running statistics
//!    ([`MeanStdFilter::apply_changes`]; RLlib's `apply_changes(other, with_buffer=False)`);
//! 3. every worker replaces its filter with the driver's ([`MeanStdFilter::sync_from`]; RLlib's
//!    `sync`).
//!
//! # Examples
//!
//! ```
//! use rl_env::MeanStdFilter;
//!
//! let mut driver = MeanStdFilter::new(1, None);
//! let mut workers = [MeanStdFilter::new(1, None), MeanStdFilter::new(1, None)];
//! workers[0].apply(&mut [1.0]);
//! workers[1].apply(&mut [3.0]);
//! for w in &mut workers {
//!     driver.apply_changes(&w.take_buffer());
//! }
//! for w in &mut workers {
//!     w.sync_from(&driver);
//! }
//! assert_eq!(workers[0].running().n, 2);
//! assert_eq!(workers[1].running().mean, [2.0]);
//! ```

use serde::{Deserialize, Serialize};

use super::gymnasium::check_clip;

/// RLlib's `SMALL_NUMBER`, added to the standard deviation before dividing.
pub const SMALL_NUMBER: f64 = 1e-6;

/// RLlib's `RunningStat`: the count, mean and sum of squared deviations (`m2`) of the values
/// pushed so far, per element, updated with Welford's algorithm.
///
/// Its [`var`](Self::var) is RLlib's: the sample variance `m2 / (n - 1)` once `n > 1`, and
/// `mean²` before that (so 0 for `n = 0` and `x²` for `n = 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningStat {
    /// How many values were pushed.
    pub n: u64,
    /// The mean of each element.
    pub mean: Vec<f64>,
    /// The sum of squared deviations from the mean of each element.
    pub m2: Vec<f64>,
}

impl RunningStat {
    /// Empty statistics of `dim` elements.
    pub fn new(dim: usize) -> Self {
        Self { n: 0, mean: vec![0.0; dim], m2: vec![0.0; dim] }
    }

    /// The number of elements.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Adds one value.
    ///
    /// # Panics
    ///
    /// If `x.len() != self.dim()` (RLlib raises `ValueError`).
    pub fn push(&mut self, x: &[f32]) {
        self.check_dim("pushed value", x.len());
        let n1 = self.n as f64;
        self.n += 1;
        let n = self.n as f64;
        if self.n == 1 {
            for (m, &v) in self.mean.iter_mut().zip(x) {
                *m = f64::from(v);
            }
            return;
        }
        for ((m, s), &v) in self.mean.iter_mut().zip(&mut self.m2).zip(x) {
            let delta = f64::from(v) - *m;
            *m += delta / n;
            *s += delta * delta * n1 / n;
        }
    }

    /// Adds every value `other` saw (RLlib's `RunningStat.update`, Chan et al.'s parallel
    /// algorithm). Merging two empty statistics leaves them empty.
    ///
    /// # Panics
    ///
    /// If the two have different dims.
    pub fn merge(&mut self, other: &RunningStat) {
        self.check_dim("merged statistics", other.dim());
        let (n1, n2) = (self.n as f64, other.n as f64);
        let n_total = self.n + other.n;
        if n_total == 0 {
            return;
        }
        let n = n_total as f64;
        for (((m, s), &m_other), &s_other) in self.mean.iter_mut().zip(&mut self.m2).zip(&other.mean).zip(&other.m2) {
            let delta = *m - m_other;
            let delta2 = delta * delta;
            *m = (n1 * *m + n2 * m_other) / n;
            *s = *s + s_other + delta2 * n1 * n2 / n;
        }
        self.n = n_total;
    }

    /// The variance of each element, as RLlib defines it (see the type's docs).
    pub fn var(&self) -> Vec<f64> {
        (0..self.dim()).map(|i| self.var_at(i)).collect()
    }

    /// The square root of [`var`](Self::var).
    pub fn std(&self) -> Vec<f64> {
        (0..self.dim()).map(|i| self.var_at(i).sqrt()).collect()
    }

    fn var_at(&self, i: usize) -> f64 {
        if self.n > 1 { self.m2[i] / (self.n - 1) as f64 } else { self.mean[i] * self.mean[i] }
    }

    fn check_dim(&self, what: &str, got: usize) {
        assert_eq!(got, self.dim(), "RunningStat: {what} has {got} elements, the statistics have {}", self.dim());
    }
}

/// RLlib's `MeanStdFilter`: normalizes observations to `(x - mean) / (std + 1e-6)` with running
/// statistics, then (if set) clips them to `[-clip, clip]`; the arithmetic is f64 and the result
/// is rounded back to f32, as RLlib computes in float64 and casts back to the input dtype.
///
/// Besides the running statistics it keeps a buffer of what was pushed since the last
/// [`take_buffer`](Self::take_buffer), which is what a worker sends to the driver (see the module
/// docs for the sync cycle).
///
/// `MeanStdFilter(shape)` defaults to a clip of 10 in RLlib, but its `observation_filter:
/// "MeanStdFilter"` setting builds one with no clip (`get_filter` passes `clip=None`); here the
/// clip is always explicit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanStdFilter {
    running: RunningStat,
    buffer: RunningStat,
    clip: Option<f64>,
}

impl MeanStdFilter {
    /// A filter of `dim`-element observations with empty statistics.
    ///
    /// # Panics
    ///
    /// If `clip` is `Some(c)` with `c <= 0` or NaN (RLlib treats a clip of 0 as none; pass `None`).
    pub fn new(dim: usize, clip: Option<f64>) -> Self {
        check_clip("MeanStdFilter", clip).unwrap_or_else(|e| panic!("{e}"));
        Self { running: RunningStat::new(dim), buffer: RunningStat::new(dim), clip }
    }

    /// Pushes `obs` into the running statistics and the buffer, then normalizes it in place with
    /// the updated statistics.
    ///
    /// # Panics
    ///
    /// If `obs.len()` is not the filter's dim.
    pub fn apply(&mut self, obs: &mut [f32]) {
        self.running.push(obs);
        self.buffer.push(obs);
        self.apply_frozen(obs);
    }

    /// Normalizes `obs` in place without touching the statistics (RLlib's `update=False`).
    ///
    /// # Panics
    ///
    /// If `obs.len()` is not the filter's dim.
    pub fn apply_frozen(&self, obs: &mut [f32]) {
        self.running.check_dim("observation", obs.len());
        for (i, x) in obs.iter_mut().enumerate() {
            let y = (f64::from(*x) - self.running.mean[i]) / (self.running.var_at(i).sqrt() + SMALL_NUMBER);
            let y = match self.clip {
                Some(c) => y.clamp(-c, c),
                None => y,
            };
            *x = y as f32;
        }
    }

    /// What was pushed since the last take, leaving the buffer empty (worker side).
    pub fn take_buffer(&mut self) -> RunningStat {
        std::mem::replace(&mut self.buffer, RunningStat::new(self.running.dim()))
    }

    /// Merges a worker's buffer into the running statistics (driver side).
    ///
    /// # Panics
    ///
    /// If `delta` has another dim.
    pub fn apply_changes(&mut self, delta: &RunningStat) {
        self.running.merge(delta);
    }

    /// Takes the driver's running statistics and clip, and clears the buffer (worker side).
    /// Whatever was pushed since the last [`take_buffer`](Self::take_buffer) is dropped, as in
    /// RLlib, where the worker's buffer is overwritten by the driver's copy.
    ///
    /// # Panics
    ///
    /// If `other` has another dim.
    pub fn sync_from(&mut self, other: &MeanStdFilter) {
        self.running.check_dim("synced filter", other.running.dim());
        self.running.clone_from(&other.running);
        self.buffer = RunningStat::new(self.running.dim());
        self.clip = other.clip;
    }

    /// The running statistics.
    pub fn running(&self) -> &RunningStat {
        &self.running
    }

    /// What was pushed since the last [`take_buffer`](Self::take_buffer).
    pub fn buffer(&self) -> &RunningStat {
        &self.buffer
    }

    /// The clip bound, if any.
    pub fn clip(&self) -> Option<f64> {
        self.clip
    }

    /// The number of elements of an observation.
    pub fn dim(&self) -> usize {
        self.running.dim()
    }
}
