//! The [`NormalizeObservation`] and [`NormalizeReward`] wrappers: Gymnasium's wrappers of those
//! names over [`ObservationNormalizer`] and [`RewardNormalizer`], with the clip CleanRL adds
//! after each.

use serde_json::{Value, json};

use super::gymnasium::{ObservationNormalizer, RewardNormalizer, RunningMeanStd, check_clip};
use crate::env::{Env, Info, Kwargs, StepResult};
use crate::error::Result;
use crate::space::{Action, Space};
use crate::state::{StateReader, f64_bits, f64s_bits};
use crate::wrappers::Wrapper;

/// Gymnasium's `NormalizeObservation`: every observation, from `reset` and from `step`, is added
/// to running statistics and then normalized with them; see [`ObservationNormalizer`].
///
/// The observation space becomes `Box(-inf, inf)` of the inner space's shape, as in Gymnasium.
/// [`with_clip`](Self::with_clip) adds CleanRL's `np.clip(obs, -10, 10)` step.
/// [`set_update_running_mean(false)`](Self::set_update_running_mean) freezes the statistics, for
/// evaluation.
///
/// # Examples
///
/// ```
/// use rl_env::envs::Pendulum;
/// use rl_env::{Action, Env, EnvExt, NormalizeObservation};
///
/// let mut env = NormalizeObservation::new(Pendulum::new().time_limit(200), 1e-8).with_clip(Some(10.0));
/// env.reset(Some(0), None)?;
/// for _ in 0..200 {
///     let step = env.step(Action::Continuous(&[1.0]))?;
///     assert!(step.obs.iter().all(|x| x.abs() <= 10.0));
/// }
/// // The reset and 200 steps, plus Gymnasium's pseudo-count of 1e-4.
/// let count = env.normalizer().stats().count;
/// assert!((count - 201.0001).abs() < 1e-9);
///
/// // Frozen: the statistics stay as they are.
/// env.set_update_running_mean(false);
/// env.step(Action::Continuous(&[1.0]))?;
/// assert_eq!(env.normalizer().stats().count, count);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NormalizeObservation<E> {
    inner: E,
    normalizer: ObservationNormalizer,
    update_running_mean: bool,
    observation_space: Space,
}

impl<E: Env> NormalizeObservation<E> {
    /// Wraps `inner`, normalizing with `sqrt(var + epsilon)` (Gymnasium's default epsilon is
    /// `1e-8`) and no clip.
    ///
    /// # Panics
    ///
    /// If `epsilon <= 0`; [`try_new`](Self::try_new) returns that as an error instead.
    pub fn new(inner: E, epsilon: f64) -> Self {
        Self::try_new(inner, epsilon).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), returning [`EnvError::InvalidArgument`](crate::EnvError::InvalidArgument) for a bad `epsilon`.
    pub fn try_new(inner: E, epsilon: f64) -> Result<Self> {
        let space = inner.observation_space();
        let shape = match space {
            Space::Box(b) => b.shape().to_vec(),
            Space::Discrete { .. } => Vec::new(),
            Space::MultiDiscrete { nvec } => vec![nvec.len()],
        };
        let dim = space.flat_dim();
        let observation_space = Space::boxed(vec![f32::NEG_INFINITY; dim], vec![f32::INFINITY; dim], shape)?;
        let normalizer = ObservationNormalizer::try_new(dim, epsilon, None)?;
        Ok(Self { inner, normalizer, update_running_mean: true, observation_space })
    }

    /// Clips normalized observations to `[-clip, clip]` (CleanRL uses 10), or not for `None`.
    ///
    /// # Panics
    ///
    /// If `clip` is `Some(c)` with `c <= 0` or NaN.
    pub fn with_clip(mut self, clip: Option<f64>) -> Self {
        check_clip("NormalizeObservation", clip).unwrap_or_else(|e| panic!("{e}"));
        self.normalizer.clip = clip;
        self
    }

    /// Whether observations update the statistics (true, the default) or only use them.
    pub fn set_update_running_mean(&mut self, update: bool) {
        self.update_running_mean = update;
    }

    /// See [`set_update_running_mean`](Self::set_update_running_mean).
    pub fn update_running_mean(&self) -> bool {
        self.update_running_mean
    }

    /// The normalizer and its statistics.
    pub fn normalizer(&self) -> &ObservationNormalizer {
        &self.normalizer
    }

    /// The normalizer, mutably: to load statistics saved by a training run with
    /// [`ObservationNormalizer::set_stats`].
    pub fn normalizer_mut(&mut self) -> &mut ObservationNormalizer {
        &mut self.normalizer
    }

    fn transform(&mut self, obs: &mut [f32]) {
        if self.update_running_mean {
            self.normalizer.normalize(obs);
        } else {
            self.normalizer.normalize_frozen(obs);
        }
    }
}

impl<E: Env> Env for NormalizeObservation<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    /// `{"type": "NormalizeObservation", "mean", "var", "count", "inner"}`; epsilon, clip and
    /// whether the statistics update are configuration.
    fn save_state(&self) -> Option<Value> {
        let inner = self.inner.save_state()?;
        let mut state = rms_state("NormalizeObservation", self.normalizer.stats());
        state["inner"] = inner;
        Some(state)
    }
    fn restore_state(&mut self, state: &Value) -> Result<()> {
        if self.inner.save_state().is_none() {
            // The inner env's own refusal says more than a wrong-type error would.
            return self.inner.restore_state(state);
        }
        let id = self.inner.id().to_string();
        let r = StateReader::new(&id, state, "NormalizeObservation")?;
        let rms = read_rms(&r, self.normalizer.dim())?;
        self.inner.restore_state(r.value("inner")?)?;
        self.normalizer.rms = rms;
        Ok(())
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        let info = self.inner.reset_into(seed, options, obs)?;
        self.transform(obs);
        Ok(info)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let r = self.inner.step_into(action, obs)?;
        self.transform(obs);
        Ok(r)
    }
}

impl<E: Env> Wrapper for NormalizeObservation<E> {
    type Inner = E;
    fn inner(&self) -> &E {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
    fn into_inner(self) -> E {
        self.inner
    }
}

/// Gymnasium's `NormalizeReward`: every step's reward is divided by the running standard
/// deviation of a discounted sum of rewards; see [`RewardNormalizer`] for the exact order.
///
/// Observations, flags and `reset` pass through; the discounted sum restarts only on a
/// terminating step, never on truncation or reset, as in Gymnasium.
/// [`with_clip`](Self::with_clip) adds CleanRL's `np.clip(reward, -10, 10)` step.
/// [`set_update_running_mean(false)`](Self::set_update_running_mean) freezes the statistics (the
/// discounted sum keeps running, as in Gymnasium).
///
/// # Examples
///
/// ```
/// use rl_env::envs::Pendulum;
/// use rl_env::{Action, Env, EnvExt, NormalizeReward};
///
/// let mut env = NormalizeReward::new(Pendulum::new().time_limit(200), 0.99, 1e-8).with_clip(Some(10.0));
/// env.reset(Some(0), None)?;
/// let mut last = 0.0;
/// for _ in 0..200 {
///     last = env.step(Action::Continuous(&[0.0]))?.reward;
///     assert!((-10.0..=0.0).contains(&last));
/// }
/// // Pendulum's rewards are -16..0; scaled by the discounted sum's spread they end up small.
/// assert!(last > -1.0, "{last}");
/// assert!((env.normalizer().stats().count - 200.0001).abs() < 1e-9);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NormalizeReward<E> {
    inner: E,
    normalizer: RewardNormalizer,
    update_running_mean: bool,
}

impl<E: Env> NormalizeReward<E> {
    /// Wraps `inner` with discount `gamma` (Gymnasium's default is 0.99), `epsilon` (default
    /// `1e-8`) and no clip.
    ///
    /// # Panics
    ///
    /// If `gamma` is outside `[0, 1]` or `epsilon <= 0`; [`try_new`](Self::try_new) returns these
    /// as errors instead.
    pub fn new(inner: E, gamma: f64, epsilon: f64) -> Self {
        Self::try_new(inner, gamma, epsilon).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), returning [`EnvError::InvalidArgument`](crate::EnvError::InvalidArgument) for a bad argument.
    pub fn try_new(inner: E, gamma: f64, epsilon: f64) -> Result<Self> {
        let normalizer = RewardNormalizer::try_new(gamma, epsilon, None)?;
        Ok(Self { inner, normalizer, update_running_mean: true })
    }

    /// Clips normalized rewards to `[-clip, clip]` (CleanRL uses 10), or not for `None`.
    ///
    /// # Panics
    ///
    /// If `clip` is `Some(c)` with `c <= 0` or NaN.
    pub fn with_clip(mut self, clip: Option<f64>) -> Self {
        check_clip("NormalizeReward", clip).unwrap_or_else(|e| panic!("{e}"));
        self.normalizer.clip = clip;
        self
    }

    /// Whether rewards update the statistics (true, the default) or only use them.
    pub fn set_update_running_mean(&mut self, update: bool) {
        self.update_running_mean = update;
    }

    /// See [`set_update_running_mean`](Self::set_update_running_mean).
    pub fn update_running_mean(&self) -> bool {
        self.update_running_mean
    }

    /// The normalizer, its discounted sum and its statistics.
    pub fn normalizer(&self) -> &RewardNormalizer {
        &self.normalizer
    }
}

impl<E: Env> Env for NormalizeReward<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    /// `{"type": "NormalizeReward", "discounted_return", "mean", "var", "count", "inner"}`; gamma,
    /// epsilon, clip and whether the statistics update are configuration.
    fn save_state(&self) -> Option<Value> {
        let inner = self.inner.save_state()?;
        let mut state = rms_state("NormalizeReward", self.normalizer.stats());
        state["discounted_return"] = f64_bits(self.normalizer.discounted_return);
        state["inner"] = inner;
        Some(state)
    }
    fn restore_state(&mut self, state: &Value) -> Result<()> {
        if self.inner.save_state().is_none() {
            // The inner env's own refusal says more than a wrong-type error would.
            return self.inner.restore_state(state);
        }
        let id = self.inner.id().to_string();
        let r = StateReader::new(&id, state, "NormalizeReward")?;
        let rms = read_rms(&r, 1)?;
        let discounted_return = r.f64("discounted_return")?;
        self.inner.restore_state(r.value("inner")?)?;
        (self.normalizer.rms, self.normalizer.discounted_return) = (rms, discounted_return);
        Ok(())
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        self.inner.reset_into(seed, options, obs)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let mut r = self.inner.step_into(action, obs)?;
        r.reward = if self.update_running_mean {
            self.normalizer.normalize(r.reward, r.terminated)
        } else {
            self.normalizer.advance_return(r.reward, r.terminated);
            self.normalizer.normalize_frozen(r.reward)
        };
        Ok(r)
    }
}

impl<E: Env> Wrapper for NormalizeReward<E> {
    type Inner = E;
    fn inner(&self) -> &E {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
    fn into_inner(self) -> E {
        self.inner
    }
}

/// A saved state tagged `saved_by` holding `rms` bit for bit.
fn rms_state(saved_by: &str, rms: &RunningMeanStd) -> Value {
    json!({"type": saved_by, "mean": f64s_bits(&rms.mean), "var": f64s_bits(&rms.var), "count": f64_bits(rms.count)})
}

/// Reads what [`rms_state`] wrote, checking that it has `dim` elements.
fn read_rms(r: &StateReader<'_>, dim: usize) -> Result<RunningMeanStd> {
    let rms = RunningMeanStd { mean: r.f64_vec("mean")?, var: r.f64_vec("var")?, count: r.f64("count")? };
    for (key, len) in [("mean", rms.mean.len()), ("var", rms.var.len())] {
        if len != dim {
            return Err(r.invalid(key, &format!("a list of {dim} float64 bit patterns")));
        }
    }
    Ok(rms)
}
