//! Gymnasium's running statistics and the two transforms built on them: [`RunningMeanStd`],
//! [`ObservationNormalizer`] (what `NormalizeObservation` computes) and [`RewardNormalizer`]
//! (what `NormalizeReward` computes).
//!
//! Sources: gymnasium 1.4.0, `wrappers/utils.py` (`RunningMeanStd`,
//! `update_mean_var_count_from_moments`), `wrappers/stateful_observation.py`
//! (`NormalizeObservation.observation`) and `wrappers/stateful_reward.py`
//! (`NormalizeReward.step`). The arithmetic follows theirs operation by operation, so the reward
//! statistics, which Gymnasium keeps in float64, come out bit for bit the same.
//!
//! The one deliberate difference: Gymnasium keeps the observation statistics in the observation
//! dtype (float32; under NumPy 2's promotion rules the Python-float count and epsilon are cast to
//! float32 too), while [`ObservationNormalizer`] keeps them in f64. Normalized observations
//! therefore agree with Gymnasium's to float32 rounding noise, not bit for bit
//! (`env/tests/normalize.rs` states the tolerance).

use std::iter;

use serde::{Deserialize, Serialize};

use crate::error::{EnvError, Result};

/// Gymnasium's `RunningMeanStd`, in f64: the mean, the population variance and the count of the
/// values seen so far, per element, merged batch by batch with the parallel algorithm (Chan et
/// al.).
///
/// It starts from a pseudo-count of `1e-4` with mean 0 and variance 1 (Gymnasium's `epsilon`
/// argument), which keeps the first update from dividing by zero and weighs almost nothing after
/// a few samples.
///
/// # Examples
///
/// ```
/// use rl_env::RunningMeanStd;
///
/// let mut rms = RunningMeanStd::new(2);
/// for x in [[1.0, 10.0], [3.0, 10.0]] {
///     rms.update(&x);
/// }
/// assert!((rms.mean[0] - 2.0).abs() < 1e-3 && (rms.var[0] - 1.0).abs() < 1e-3);
/// assert!((rms.var[1] - 0.0).abs() < 1e-1);
/// assert!((rms.count - 2.0001).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// The mean of each element.
    pub mean: Vec<f64>,
    /// The population variance (divided by the count) of each element.
    pub var: Vec<f64>,
    /// How many values were seen, plus the initial pseudo-count.
    pub count: f64,
}

impl RunningMeanStd {
    /// The initial pseudo-count (Gymnasium's `RunningMeanStd(epsilon=1e-4)`).
    pub const INITIAL_COUNT: f64 = 1e-4;

    /// Statistics of `dim` elements: mean 0, variance 1, count [`INITIAL_COUNT`](Self::INITIAL_COUNT).
    pub fn new(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], var: vec![1.0; dim], count: Self::INITIAL_COUNT }
    }

    /// The number of elements.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Adds one sample, as Gymnasium's `update(np.array([x]))`: a batch whose mean is `x`, whose
    /// variance is 0 and whose count is 1.
    ///
    /// # Panics
    ///
    /// If `x.len() != self.dim()`.
    pub fn update(&mut self, x: &[f32]) {
        self.check_dim("sample", x.len());
        self.apply_moments(x.iter().map(|&v| (f64::from(v), 0.0)), 1.0);
    }

    /// Adds a batch given by its per-element mean, population variance and count
    /// (Gymnasium's `update_from_moments`).
    ///
    /// # Panics
    ///
    /// If `mean` or `var` does not have `self.dim()` elements.
    pub fn update_from_moments(&mut self, mean: &[f64], var: &[f64], count: f64) {
        self.check_dim("batch mean", mean.len());
        self.check_dim("batch variance", var.len());
        self.apply_moments(mean.iter().copied().zip(var.iter().copied()), count);
    }

    /// Combines these statistics with `other`'s, as if every value `other` saw had been added
    /// here too (the parallel algorithm, the same update as [`update_from_moments`](Self::update_from_moments)).
    ///
    /// Both sides carry their initial pseudo-count, so the merged count is
    /// [`INITIAL_COUNT`](Self::INITIAL_COUNT) higher than that of one instance that saw every
    /// value, and the moments differ from it by a relative `O(1e-4 / count)`.
    ///
    /// # Panics
    ///
    /// If the two have different dims.
    pub fn merge(&mut self, other: &RunningMeanStd) {
        self.check_dim("merged statistics", other.dim());
        self.update_from_moments(&other.mean, &other.var, other.count);
    }

    /// `update_mean_var_count_from_moments`, in Gymnasium's order of operations.
    pub(crate) fn apply_moments(&mut self, batch: impl Iterator<Item = (f64, f64)>, batch_count: f64) {
        let count = self.count;
        let tot_count = count + batch_count;
        for ((mean, var), (batch_mean, batch_var)) in self.mean.iter_mut().zip(&mut self.var).zip(batch) {
            let delta = batch_mean - *mean;
            let m_a = *var * count;
            let m_b = batch_var * batch_count;
            let m2 = m_a + m_b + delta * delta * count * batch_count / tot_count;
            *mean += delta * batch_count / tot_count;
            *var = m2 / tot_count;
        }
        self.count = tot_count;
    }

    fn check_dim(&self, what: &str, got: usize) {
        assert_eq!(got, self.dim(), "RunningMeanStd: {what} has {got} elements, the statistics have {}", self.dim());
    }
}

/// Checks the `epsilon` of a normalizer: strictly positive (Gymnasium raises `InvalidBound`).
pub(crate) fn check_epsilon(what: &'static str, epsilon: f64) -> Result<()> {
    if epsilon > 0.0 {
        Ok(())
    } else {
        Err(EnvError::InvalidArgument { what, message: format!("epsilon must be positive, got {epsilon}") })
    }
}

/// Checks a clip bound: `None`, or strictly positive.
pub(crate) fn check_clip(what: &'static str, clip: Option<f64>) -> Result<()> {
    match clip {
        Some(c) if c.is_nan() || c <= 0.0 => {
            Err(EnvError::InvalidArgument { what, message: format!("clip must be positive (or none), got {c}") })
        }
        _ => Ok(()),
    }
}

/// NormalizeObservation's transform: `(x - mean) / sqrt(var + epsilon)` with running
/// statistics, rounded to f32, then (if set) clipped to `[-clip, clip]` as CleanRL's
/// `TransformObservation(env, lambda obs: np.clip(obs, -10, 10))` does.
///
/// Observations are flat: `dim` elements in, `dim` out, in place.
///
/// # Examples
///
/// ```
/// use rl_env::ObservationNormalizer;
///
/// let mut norm = ObservationNormalizer::new(1, 1e-8, Some(10.0));
/// for x in [1.0f32, 2.0, 3.0, 4.0] {
///     norm.normalize(&mut [x]);
/// }
/// // Mean 2.5, variance 1.25 (to a pseudo-count of 1e-4).
/// let mut obs = [2.5f32 + 1.25f32.sqrt()];
/// norm.normalize_frozen(&mut obs);
/// assert!((obs[0] - 1.0).abs() < 1e-4);
/// let mut far = [1e6f32];
/// norm.normalize_frozen(&mut far);
/// assert_eq!(far, [10.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationNormalizer {
    pub(crate) rms: RunningMeanStd,
    pub(crate) epsilon: f64,
    pub(crate) clip: Option<f64>,
}

impl ObservationNormalizer {
    /// A normalizer of `dim`-element observations with fresh statistics.
    ///
    /// # Panics
    ///
    /// If `epsilon <= 0` or `clip` is `Some(c)` with `c <= 0` (or NaN); [`try_new`](Self::try_new)
    /// returns these as errors instead.
    pub fn new(dim: usize, epsilon: f64, clip: Option<f64>) -> Self {
        Self::try_new(dim, epsilon, clip).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), returning [`EnvError::InvalidArgument`] for a bad `epsilon` or `clip`.
    pub fn try_new(dim: usize, epsilon: f64, clip: Option<f64>) -> Result<Self> {
        check_epsilon("NormalizeObservation", epsilon)?;
        check_clip("NormalizeObservation", clip)?;
        Ok(Self { rms: RunningMeanStd::new(dim), epsilon, clip })
    }

    /// Adds `obs` to the statistics, then normalizes it in place with the updated statistics
    /// (Gymnasium updates before it normalizes).
    ///
    /// # Panics
    ///
    /// If `obs.len()` is not the normalizer's dim.
    pub fn normalize(&mut self, obs: &mut [f32]) {
        self.rms.check_dim("observation", obs.len());
        self.rms.update(obs);
        self.normalize_frozen(obs);
    }

    /// Normalizes `obs` in place without touching the statistics (evaluation, or Gymnasium's
    /// `update_running_mean = False`).
    ///
    /// # Panics
    ///
    /// If `obs.len()` is not the normalizer's dim.
    pub fn normalize_frozen(&self, obs: &mut [f32]) {
        self.rms.check_dim("observation", obs.len());
        // `np.clip(obs, -c, c)` on a float32 array casts the Python-float bound to float32.
        let clip = self.clip.map(|c| c as f32);
        for ((x, mean), var) in obs.iter_mut().zip(&self.rms.mean).zip(&self.rms.var) {
            let y = ((f64::from(*x) - mean) / (var + self.epsilon).sqrt()) as f32;
            *x = match clip {
                Some(c) => y.clamp(-c, c),
                None => y,
            };
        }
    }

    /// The running statistics of the raw observations.
    pub fn stats(&self) -> &RunningMeanStd {
        &self.rms
    }

    /// Replaces the statistics, e.g. with those a training run saved, to evaluate with them.
    /// [`EnvError::LengthMismatch`] when their mean or variance does not have the normalizer's dim.
    pub fn set_stats(&mut self, stats: RunningMeanStd) -> Result<()> {
        let expected = self.rms.dim();
        for (what, got) in
            [("normalizer statistics mean", stats.mean.len()), ("normalizer statistics var", stats.var.len())]
        {
            if got != expected {
                return Err(EnvError::LengthMismatch { what, expected, got });
            }
        }
        self.rms = stats;
        Ok(())
    }

    /// The number of elements of an observation.
    pub fn dim(&self) -> usize {
        self.rms.dim()
    }

    /// The `epsilon` added to the variance under the square root.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The clip bound, if any.
    pub fn clip(&self) -> Option<f64> {
        self.clip
    }
}

/// NormalizeReward's transform: keeps a discounted sum of the rewards, tracks its running
/// variance, and divides each reward by `sqrt(var + epsilon)` (no centering), then (if set) clips
/// it to `[-clip, clip]` as CleanRL's `TransformReward(env, lambda r: np.clip(r, -10, 10))`.
///
/// The order is Gymnasium 1.4's: on each step the discounted sum becomes
/// `sum * gamma * (1 - terminated) + reward` (so a terminal step restarts it from that step's
/// reward, and truncation or reset does not restart it), the statistics take that sum, and the
/// reward is divided using the updated variance.
///
/// # Examples
///
/// ```
/// use rl_env::RewardNormalizer;
///
/// let mut norm = RewardNormalizer::new(0.99, 1e-8, Some(10.0));
/// // The first reward meets a variance of about 1e-4: scaled up ~100x, then clipped.
/// assert_eq!(norm.normalize(1.0, false), 10.0);
/// for _ in 0..1000 {
///     norm.normalize(1.0, false);
/// }
/// // The discounted sum has settled near 1 / (1 - 0.99) = 100, with a large variance behind it.
/// let r = norm.normalize(1.0, false);
/// assert!(r > 0.0 && r < 0.1, "{r}");
/// assert_eq!(norm.stats().dim(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardNormalizer {
    pub(crate) rms: RunningMeanStd,
    pub(crate) discounted_return: f64,
    pub(crate) gamma: f64,
    pub(crate) epsilon: f64,
    pub(crate) clip: Option<f64>,
}

impl RewardNormalizer {
    /// A normalizer with fresh statistics and a discounted sum of 0.
    ///
    /// # Panics
    ///
    /// If `gamma` is outside `[0, 1]`, `epsilon <= 0`, or `clip` is `Some(c)` with `c <= 0`;
    /// [`try_new`](Self::try_new) returns these as errors instead.
    pub fn new(gamma: f64, epsilon: f64, clip: Option<f64>) -> Self {
        Self::try_new(gamma, epsilon, clip).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), returning [`EnvError::InvalidArgument`] for a bad argument.
    pub fn try_new(gamma: f64, epsilon: f64, clip: Option<f64>) -> Result<Self> {
        if !(0.0..=1.0).contains(&gamma) {
            return Err(EnvError::InvalidArgument {
                what: "NormalizeReward",
                message: format!("gamma must be in [0, 1], got {gamma}"),
            });
        }
        check_epsilon("NormalizeReward", epsilon)?;
        check_clip("NormalizeReward", clip)?;
        Ok(Self { rms: RunningMeanStd::new(1), discounted_return: 0.0, gamma, epsilon, clip })
    }

    /// Normalizes the reward of one step, updating the discounted sum and its statistics first.
    pub fn normalize(&mut self, reward: f64, terminated: bool) -> f64 {
        self.advance_return(reward, terminated);
        self.rms.apply_moments(iter::once((self.discounted_return, 0.0)), 1.0);
        self.normalize_frozen(reward)
    }

    /// Normalizes `reward` with the current statistics, touching nothing.
    pub fn normalize_frozen(&self, reward: f64) -> f64 {
        let r = reward / (self.rms.var[0] + self.epsilon).sqrt();
        match self.clip {
            Some(c) => r.clamp(-c, c),
            None => r,
        }
    }

    /// Updates the discounted sum only: Gymnasium keeps it running while
    /// `update_running_mean` is off, so that turning updates back on resumes where it would.
    pub(crate) fn advance_return(&mut self, reward: f64, terminated: bool) {
        let keep = if terminated { 0.0 } else { 1.0 };
        self.discounted_return = self.discounted_return * self.gamma * keep + reward;
    }

    /// The running statistics of the discounted sum of rewards (dim 1).
    pub fn stats(&self) -> &RunningMeanStd {
        &self.rms
    }

    /// The discounted sum of rewards so far.
    pub fn discounted_return(&self) -> f64 {
        self.discounted_return
    }

    /// The discount factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The `epsilon` added to the variance under the square root.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The clip bound, if any.
    pub fn clip(&self) -> Option<f64> {
        self.clip
    }
}
