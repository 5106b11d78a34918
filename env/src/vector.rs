//! Vector envs: many sub-envs stepped in lockstep, with same-step autoreset.
//!
//! [`SyncVectorEnv`] owns `n_envs` envs with identical spaces and keeps every per-step quantity
//! in one contiguous buffer: observations `[n_envs, obs_dim]` (row-major `f32`, ready for a
//! policy's batched forward pass without a copy), rewards, `terminated` and `truncated` flags.
//!
//! Autoreset happens in the same step, like Gymnasium's `AutoresetMode.SAME_STEP`: when sub-env
//! `i` finishes an episode, row `i` of [`SyncVectorEnv::observations`] already holds the first
//! observation of its next episode, and the last observation of the finished one is kept in
//! [`SyncVectorEnv::final_observations`] so a learner can bootstrap truncated episodes.
//! Finished episodes' returns and lengths are collected for [`SyncVectorEnv::drain_episodes`].
//!
//! Seeding follows Gymnasium's vector envs: `reset(Some(seed))` seeds sub-env `i` with `seed + i`.
//!
//! ## Exact resume
//!
//! [`SyncVectorEnv::save_state`] returns every sub-env's [`Env::save_state`] together with the
//! vector env's own buffers (observations, last rewards and flags, episode accumulators, restart
//! counts, reset seeds), as JSON that round-trips through text bit for bit;
//! [`SyncVectorEnv::restore_state`] puts it into a vector env made the same way. Finished episodes
//! and restart records not drained yet are not part of it: drain them before saving.
//!
//! ## Restarting failed sub-envs
//!
//! With [`SyncVectorEnv::set_restart_failed_sub_envs`] on (RLlib's
//! `restart_failed_sub_environments`), a sub-env whose step (or autoreset) returns an error or
//! panics is rebuilt from the registry with its [`EnvContext::restarts`] one higher and reset with
//! [`seed_for_restart`] of its reset seed. That step reports, for that sub-env only: the new reset
//! observation, reward 0.0, `terminated` false, `truncated` true, and as final observation the one
//! from before the failed step. The aborted episode is not reported by
//! [`SyncVectorEnv::drain_episodes`]; each restart is, by [`SyncVectorEnv::drain_sub_env_restarts`].
//! A failed rebuild or reset makes `step` return its error. Off (the default), errors are returned
//! and panics propagate, as for any env.
//!
//! ```
//! use rl_env::{Actions, Kwargs, SyncVectorEnv};
//!
//! let mut envs = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 8)?;
//! envs.reset(Some(0))?;
//! for _ in 0..100 {
//!     envs.step(Actions::Discrete(&[0; 8]))?;
//! }
//! let episodes = envs.drain_episodes();
//! assert!(!episodes.is_empty());
//! assert_eq!(envs.observations().len(), 8 * 4);
//! # Ok::<(), rl_env::EnvError>(())
//! ```

use serde_json::{Value, json};

use crate::env::{Env, EnvContext, Info, Kwargs, StepResult};
use crate::error::{EnvError, Result, catch_panic};
use crate::registry::make_with_context;
use crate::rng::mix_seed;
use crate::space::{Action, Space};
use crate::state::{StateReader, f32s_bits, f64s_bits};

/// The actions of a whole vector env, one per sub-env, flattened row-major.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Actions<'a> {
    /// `[n_envs]` indices for a Discrete action space.
    Discrete(&'a [i64]),
    /// `[n_envs, act_dim]` values for a Box action space.
    Continuous(&'a [f32]),
    /// `[n_envs, nvec.len()]` values for a MultiDiscrete action space.
    MultiDiscrete(&'a [i64]),
}

/// Return and length of an episode that finished inside a vector env.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedEpisode {
    /// The sub-env it ran in.
    pub env_idx: usize,
    /// The undiscounted return.
    pub r: f64,
    /// The number of steps.
    pub length: u64,
    /// Whether it ended by truncation rather than termination.
    pub truncated: bool,
}

/// A sub-env the vector env rebuilt after its step failed (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubEnvRestart {
    /// The sub-env that failed.
    pub env_idx: usize,
    /// Its [`EnvContext::restarts`] after the rebuild.
    pub restarts: u32,
    /// The error it returned, or the message it panicked with.
    pub error: String,
}

/// The reset seed of an env rebuilt for the `restarts`-th time, from the seed it was first reset
/// with: `seed` itself for `restarts == 0`, else [`mix_seed`]`(seed, restarts)`. A vector env
/// uses it for restarted sub-envs; a rollout worker can use it for a restarted worker's seed.
///
/// ```
/// use rl_env::seed_for_restart;
///
/// assert_eq!(seed_for_restart(42, 0), 42);
/// assert_ne!(seed_for_restart(42, 1), 42);
/// assert_ne!(seed_for_restart(42, 1), seed_for_restart(42, 2));
/// assert_eq!(seed_for_restart(42, 2), seed_for_restart(42, 2));
/// ```
pub fn seed_for_restart(seed: u64, restarts: u32) -> u64 {
    if restarts == 0 { seed } else { mix_seed(seed, u64::from(restarts)) }
}

/// How to rebuild a sub-env: the registry id and keyword arguments it was made from.
#[derive(Debug, Clone)]
struct Rebuild {
    id: String,
    kwargs: Kwargs,
}

/// Sub-envs stepped one after another on the calling thread.
pub struct SyncVectorEnv {
    envs: Vec<Box<dyn Env>>,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    infos: Vec<Info>,
    episode_returns: Vec<f64>,
    episode_lengths: Vec<u64>,
    finished: Vec<FinishedEpisode>,
    is_reset: bool,
    /// The context each sub-env was built in.
    contexts: Vec<EnvContext>,
    /// Each sub-env's seed from the last seeded reset (`seed + i`).
    base_seeds: Vec<Option<u64>>,
    /// Set when the sub-envs came from the registry, so they can be rebuilt.
    rebuild: Option<Rebuild>,
    restart_failed: bool,
    restarts: Vec<SubEnvRestart>,
    /// A sub-env's observation before its step, kept while restarts are on.
    prev_obs: Vec<f32>,
}

impl std::fmt::Debug for SyncVectorEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncVectorEnv")
            .field("id", &self.envs[0].id())
            .field("n_envs", &self.envs.len())
            .field("obs_dim", &self.obs_dim)
            .finish_non_exhaustive()
    }
}

impl SyncVectorEnv {
    /// Wraps `envs`, which must be non-empty and share observation and action spaces. Sub-env `i`
    /// counts as built in the context `{worker_index: 0, vector_index: i, restarts: 0}`; such a
    /// vector env cannot restart failed sub-envs (it does not know how to rebuild them).
    pub fn new(envs: Vec<Box<dyn Env>>) -> Result<Self> {
        let first = envs.first().ok_or_else(|| EnvError::InvalidVectorEnv("no sub-envs".into()))?;
        for (i, e) in envs.iter().enumerate().skip(1) {
            if e.observation_space() != first.observation_space() || e.action_space() != first.action_space() {
                return Err(EnvError::InvalidVectorEnv(format!(
                    "sub-env {i} ({}) has spaces {} / {}, sub-env 0 ({}) has {} / {}",
                    e.id(),
                    e.observation_space(),
                    e.action_space(),
                    first.id(),
                    first.observation_space(),
                    first.action_space()
                )));
            }
        }
        let n = envs.len();
        let obs_dim = first.observation_space().flat_dim();
        let act_dim = first.action_space().flat_dim();
        Ok(Self {
            envs,
            obs_dim,
            act_dim,
            obs: vec![0.0; n * obs_dim],
            final_obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            infos: vec![Info::new(); n],
            episode_returns: vec![0.0; n],
            episode_lengths: vec![0; n],
            finished: Vec::new(),
            is_reset: false,
            contexts: (0..n).map(|i| EnvContext { vector_index: i as u32, ..EnvContext::default() }).collect(),
            base_seeds: vec![None; n],
            rebuild: None,
            restart_failed: false,
            restarts: Vec::new(),
            prev_obs: vec![0.0; obs_dim],
        })
    }

    /// `n_envs` copies of the registered env `id`, made with `kwargs` (worker 0, no restarts).
    pub fn make(id: &str, kwargs: &Kwargs, n_envs: usize) -> Result<Self> {
        Self::make_with_context(id, kwargs, n_envs, 0, 0)
    }

    /// `n_envs` copies of the registered env `id`, sub-env `i` made in the context
    /// `{worker_index, vector_index: i, restarts}`. Such a vector env can restart failed sub-envs
    /// (see [`SyncVectorEnv::set_restart_failed_sub_envs`]).
    pub fn make_with_context(
        id: &str,
        kwargs: &Kwargs,
        n_envs: usize,
        worker_index: u32,
        restarts: u32,
    ) -> Result<Self> {
        let contexts: Vec<EnvContext> = (0..n_envs)
            .map(|i| {
                let vector_index = u32::try_from(i)
                    .map_err(|_| EnvError::InvalidVectorEnv(format!("{n_envs} sub-envs is more than u32 indices")))?;
                Ok(EnvContext { worker_index, vector_index, restarts })
            })
            .collect::<Result<_>>()?;
        let envs = contexts.iter().map(|ctx| make_with_context(id, kwargs, ctx)).collect::<Result<_>>()?;
        let mut v = Self::new(envs)?;
        v.contexts = contexts;
        v.rebuild = Some(Rebuild { id: id.to_string(), kwargs: kwargs.clone() });
        Ok(v)
    }

    /// Turns restarting failed sub-envs on or off (off by default; see the module docs). Turning it
    /// on is [`EnvError::InvalidVectorEnv`] for a vector env built by [`SyncVectorEnv::new`], which
    /// cannot rebuild its sub-envs.
    pub fn set_restart_failed_sub_envs(&mut self, on: bool) -> Result<()> {
        if on && self.rebuild.is_none() {
            return Err(EnvError::InvalidVectorEnv(
                "restarting failed sub-envs needs a vector env built by SyncVectorEnv::make or make_with_context, \
                 which can rebuild them from the registry"
                    .into(),
            ));
        }
        self.restart_failed = on;
        Ok(())
    }

    /// Whether failed sub-envs are restarted.
    pub fn restarts_failed_sub_envs(&self) -> bool {
        self.restart_failed
    }

    /// The context each sub-env was built in; `restarts` grows with each restart.
    pub fn sub_env_contexts(&self) -> &[EnvContext] {
        &self.contexts
    }

    /// Sub-env restarts since the last call, in the order they happened.
    pub fn drain_sub_env_restarts(&mut self) -> Vec<SubEnvRestart> {
        std::mem::take(&mut self.restarts)
    }

    /// Resets every sub-env; with `Some(seed)`, sub-env `i` gets `seed + i`. Returns the
    /// `[n_envs, obs_dim]` observations.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32]> {
        if let Some(seed) = seed {
            for (i, base) in self.base_seeds.iter_mut().enumerate() {
                *base = Some(seed.wrapping_add(i as u64));
            }
        }
        for (i, (env, row)) in self.envs.iter_mut().zip(self.obs.chunks_exact_mut(self.obs_dim)).enumerate() {
            self.infos[i] = env.reset_into(seed.map(|s| s.wrapping_add(i as u64)), None, row)?;
        }
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.episode_returns.fill(0.0);
        self.episode_lengths.fill(0);
        self.is_reset = true;
        Ok(&self.obs)
    }

    /// Steps every sub-env with its action. Every action is checked before any sub-env moves,
    /// so an invalid action leaves the whole vector env untouched. Sub-envs whose episode ends
    /// are reset at once (see the module docs).
    pub fn step(&mut self, actions: Actions<'_>) -> Result<()> {
        if !self.is_reset {
            return Err(EnvError::StepBeforeReset { env: format!("vector of {}", self.envs[0].id()) });
        }
        let n = self.envs.len();
        let (len, per_env) = match actions {
            Actions::Discrete(a) => (a.len(), 1),
            Actions::Continuous(a) => (a.len(), self.act_dim),
            Actions::MultiDiscrete(a) => (a.len(), self.act_dim),
        };
        if len != n * per_env {
            return Err(EnvError::LengthMismatch { what: "vector env actions", expected: n * per_env, got: len });
        }
        let action_of = |i: usize| match actions {
            Actions::Discrete(a) => Action::Discrete(a[i]),
            Actions::Continuous(a) => Action::Continuous(&a[i * per_env..(i + 1) * per_env]),
            Actions::MultiDiscrete(a) => Action::MultiDiscrete(&a[i * per_env..(i + 1) * per_env]),
        };
        for (i, env) in self.envs.iter().enumerate() {
            env.action_space().check(env.id(), action_of(i))?;
        }
        let d = self.obs_dim;
        for i in 0..n {
            let env = &mut *self.envs[i];
            let row = &mut self.obs[i * d..(i + 1) * d];
            let final_row = &mut self.final_obs[i * d..(i + 1) * d];
            let r = if self.restart_failed {
                self.prev_obs.copy_from_slice(row);
                let error = match catch_panic(|| step_one(env, action_of(i), row, final_row)) {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(panic) => Err(format!("panicked: {panic}")),
                };
                match error {
                    Ok(r) => r,
                    Err(error) => {
                        self.restart_sub_env(i, error)?;
                        continue;
                    }
                }
            } else {
                step_one(env, action_of(i), row, final_row)?
            };
            self.rewards[i] = r.reward;
            self.terminated[i] = r.terminated;
            self.truncated[i] = r.truncated;
            self.infos[i] = r.info;
            self.episode_returns[i] += r.reward;
            self.episode_lengths[i] += 1;
            if r.terminated || r.truncated {
                self.finished.push(FinishedEpisode {
                    env_idx: i,
                    r: self.episode_returns[i],
                    length: self.episode_lengths[i],
                    truncated: !r.terminated,
                });
                self.episode_returns[i] = 0.0;
                self.episode_lengths[i] = 0;
            }
        }
        Ok(())
    }

    /// Replaces failed sub-env `i` by a fresh one from the registry and reports the step as a
    /// truncation (see the module docs).
    fn restart_sub_env(&mut self, i: usize, error: String) -> Result<()> {
        let rebuild = self.rebuild.as_ref().expect("restarts are only turned on with a rebuild recipe");
        let ctx = EnvContext { restarts: self.contexts[i].restarts.saturating_add(1), ..self.contexts[i] };
        let mut env = make_with_context(&rebuild.id, &rebuild.kwargs, &ctx)?;
        let d = self.obs_dim;
        let seed = self.base_seeds[i].map(|s| seed_for_restart(s, ctx.restarts));
        self.infos[i] = env.reset_into(seed, None, &mut self.obs[i * d..(i + 1) * d])?;
        self.final_obs[i * d..(i + 1) * d].copy_from_slice(&self.prev_obs);
        self.envs[i] = env;
        self.contexts[i] = ctx;
        self.rewards[i] = 0.0;
        self.terminated[i] = false;
        self.truncated[i] = true;
        self.episode_returns[i] = 0.0;
        self.episode_lengths[i] = 0;
        self.restarts.push(SubEnvRestart { env_idx: i, restarts: ctx.restarts, error });
        Ok(())
    }

    /// The full state for exact resume: every sub-env's [`Env::save_state`] and the vector env's
    /// own buffers (see the module docs). `None` when any sub-env cannot save its state.
    pub fn save_state(&self) -> Option<Value> {
        let envs = self.envs.iter().map(|e| e.save_state()).collect::<Option<Vec<_>>>()?;
        Some(json!({
            "type": "SyncVectorEnv",
            "n_envs": self.envs.len(),
            "obs_dim": self.obs_dim,
            "envs": envs,
            "obs": f32s_bits(&self.obs),
            "final_obs": f32s_bits(&self.final_obs),
            "rewards": f64s_bits(&self.rewards),
            "terminated": self.terminated,
            "truncated": self.truncated,
            "infos": self.infos,
            "episode_returns": f64s_bits(&self.episode_returns),
            "episode_lengths": self.episode_lengths,
            "is_reset": self.is_reset,
            "restarts": self.contexts.iter().map(|c| c.restarts).collect::<Vec<_>>(),
            "base_seeds": self.base_seeds,
        }))
    }

    /// Restores a state [`SyncVectorEnv::save_state`] returned, into a vector env with as many
    /// sub-envs, made the same way. A malformed state is [`EnvError::InvalidState`]; when a sub-env
    /// refuses its part, the vector env counts as not reset (stepping it is an error until
    /// `reset` or a successful restore).
    pub fn restore_state(&mut self, state: &Value) -> Result<()> {
        let id = format!("vector of {}", self.envs[0].id());
        let r = StateReader::new(&id, state, "SyncVectorEnv")?;
        let n = self.envs.len();
        let (nd, n_d) = (n * self.obs_dim, n);
        if r.u64("n_envs")? != n as u64 || r.u64("obs_dim")? != self.obs_dim as u64 {
            return Err(r.invalid("n_envs", &format!("{n} sub-envs of {} observation values", self.obs_dim)));
        }
        let sized = |key: &str, len: usize, got: usize| {
            if got == len { Ok(()) } else { Err(r.invalid(key, &format!("a list of {len}"))) }
        };
        let envs = r.value("envs")?.as_array().ok_or_else(|| r.invalid("envs", "a list of sub-env states"))?;
        sized("envs", n, envs.len())?;
        let (obs, final_obs) = (r.f32_vec("obs")?, r.f32_vec("final_obs")?);
        sized("obs", nd, obs.len())?;
        sized("final_obs", nd, final_obs.len())?;
        let (rewards, terminated, truncated) =
            (r.f64_vec("rewards")?, r.bool_vec("terminated")?, r.bool_vec("truncated")?);
        let infos = r.value("infos")?.as_array().ok_or_else(|| r.invalid("infos", "a list of objects"))?;
        let infos = infos.iter().map(|i| i.as_object().cloned()).collect::<Option<Vec<Info>>>();
        let infos = infos.ok_or_else(|| r.invalid("infos", "a list of objects"))?;
        let (returns, lengths) = (r.f64_vec("episode_returns")?, r.u64_vec("episode_lengths")?);
        let restarts = r.u32_vec("restarts")?;
        let base_seeds = r.value("base_seeds")?.as_array().ok_or_else(|| r.invalid("base_seeds", "a list"))?;
        let base_seeds: Option<Vec<Option<u64>>> =
            base_seeds.iter().map(|v| if v.is_null() { Some(None) } else { v.as_u64().map(Some) }).collect();
        let base_seeds = base_seeds.ok_or_else(|| r.invalid("base_seeds", "a list of seeds or nulls"))?;
        for (key, got) in [
            ("rewards", rewards.len()),
            ("terminated", terminated.len()),
            ("truncated", truncated.len()),
            ("infos", infos.len()),
            ("episode_returns", returns.len()),
            ("episode_lengths", lengths.len()),
            ("restarts", restarts.len()),
            ("base_seeds", base_seeds.len()),
        ] {
            sized(key, n_d, got)?;
        }
        let is_reset = r.bool("is_reset")?;
        self.is_reset = false;
        for (env, saved) in self.envs.iter_mut().zip(envs) {
            env.restore_state(saved)?;
        }
        (self.obs, self.final_obs, self.rewards, self.terminated, self.truncated) =
            (obs, final_obs, rewards, terminated, truncated);
        (self.infos, self.episode_returns, self.episode_lengths, self.base_seeds) =
            (infos, returns, lengths, base_seeds);
        for (ctx, restarts) in self.contexts.iter_mut().zip(restarts) {
            ctx.restarts = restarts;
        }
        self.is_reset = is_reset;
        Ok(())
    }

    /// Number of sub-envs.
    pub fn n_envs(&self) -> usize {
        self.envs.len()
    }

    /// Length of one flattened observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Length of one flattened action (1 for Discrete).
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// The observation space of one sub-env.
    pub fn single_observation_space(&self) -> &Space {
        self.envs[0].observation_space()
    }

    /// The action space of one sub-env.
    pub fn single_action_space(&self) -> &Space {
        self.envs[0].action_space()
    }

    /// The current observations, `[n_envs, obs_dim]` row-major. After a step, the rows of
    /// sub-envs that finished an episode hold their reset observation.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// `[n_envs, obs_dim]`: for each sub-env whose episode ended in the last step
    /// (`terminated[i] || truncated[i]`), the last observation of that episode. Other rows are
    /// stale and must not be read.
    pub fn final_observations(&self) -> &[f32] {
        &self.final_obs
    }

    /// The last observation of sub-env `env_idx`'s episode if it ended in the last step.
    pub fn final_observation(&self, env_idx: usize) -> Option<&[f32]> {
        (self.terminated[env_idx] || self.truncated[env_idx])
            .then(|| &self.final_obs[env_idx * self.obs_dim..(env_idx + 1) * self.obs_dim])
    }

    /// Rewards of the last step, one per sub-env.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// Termination flags of the last step.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// Truncation flags of the last step.
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }

    /// The info of each sub-env's last step (or reset).
    pub fn infos(&self) -> &[Info] {
        &self.infos
    }

    /// Episodes that finished since the last call, in the order they finished.
    pub fn drain_episodes(&mut self) -> Vec<FinishedEpisode> {
        std::mem::take(&mut self.finished)
    }

    /// The sub-envs, for inspection.
    pub fn envs(&self) -> &[Box<dyn Env>] {
        &self.envs
    }
}

/// Steps one sub-env and, when its episode ends, keeps the final observation in `final_row` and
/// resets it (same-step autoreset).
fn step_one(env: &mut dyn Env, action: Action<'_>, row: &mut [f32], final_row: &mut [f32]) -> Result<StepResult> {
    let r = env.step_into(action, row)?;
    if r.terminated || r.truncated {
        final_row.copy_from_slice(row);
        env.reset_into(None, None, row)?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::envs::{CartPole, Pendulum};
    use crate::registry::{EnvSpec, make};
    use crate::rng::NpRandom;
    use crate::space::OwnedAction;

    #[test]
    fn sub_env_seeds_are_seed_plus_index() {
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 3).unwrap();
        let obs = v.reset(Some(10)).unwrap().to_vec();
        for i in 0..3 {
            let mut e = CartPole::new();
            let (o, _) = e.reset(Some(10 + i as u64), None).unwrap();
            assert_eq!(&obs[i * 4..(i + 1) * 4], o.as_slice());
        }
    }

    #[test]
    fn autoreset_keeps_final_obs_and_matches_single_env() {
        // Sub-env 0 of the vector must follow exactly the same trajectory as a single env that
        // is reset (without a seed) whenever its episode ends.
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 2).unwrap();
        v.reset(Some(5)).unwrap();
        let mut single = make("CartPole-v1", &Kwargs::new()).unwrap();
        single.reset(Some(5), None).unwrap();
        let mut ends = 0;
        for t in 0..300 {
            let a = (t % 3 == 0) as i64;
            v.step(Actions::Discrete(&[a, 1 - a])).unwrap();
            let s = single.step(Action::Discrete(a)).unwrap();
            assert_eq!(v.rewards()[0], s.reward);
            assert_eq!(v.terminated()[0], s.terminated);
            if s.terminated || s.truncated {
                ends += 1;
                assert_eq!(v.final_observation(0).unwrap(), s.obs.as_slice());
                let (o, _) = single.reset(None, None).unwrap();
                assert_eq!(&v.observations()[..4], o.as_slice());
            } else {
                assert!(v.final_observation(0).is_none());
                assert_eq!(&v.observations()[..4], s.obs.as_slice());
            }
        }
        assert!(ends > 3, "the test should cross several episode ends, saw {ends}");
        let eps = v.drain_episodes();
        assert!(eps.iter().filter(|e| e.env_idx == 0).count() == ends);
        assert!(eps.iter().all(|e| e.r == e.length as f64));
        assert!(v.drain_episodes().is_empty());
    }

    #[test]
    fn truncation_is_reported_and_bootstrappable() {
        let kw: Kwargs = serde_json::from_str(r#"{"max_episode_steps": 7}"#).unwrap();
        let mut v = SyncVectorEnv::make("Pendulum-v1", &kw, 2).unwrap();
        v.reset(Some(0)).unwrap();
        for _ in 0..6 {
            v.step(Actions::Continuous(&[0.5, -0.5])).unwrap();
            assert_eq!(v.truncated(), [false, false]);
        }
        v.step(Actions::Continuous(&[0.5, -0.5])).unwrap();
        assert_eq!(v.truncated(), [true, true]);
        assert_eq!(v.terminated(), [false, false]);
        assert!(v.final_observation(1).is_some());
        let eps = v.drain_episodes();
        assert_eq!(eps.len(), 2);
        assert!(eps.iter().all(|e| e.truncated && e.length == 7));
    }

    #[test]
    fn invalid_action_moves_no_sub_env() {
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 3).unwrap();
        v.reset(Some(1)).unwrap();
        let before = v.observations().to_vec();
        let err = v.step(Actions::Discrete(&[0, 1, 2])).unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction { .. }), "{err}");
        assert_eq!(v.observations(), before.as_slice());
        let err = v.step(Actions::Discrete(&[0, 1])).unwrap_err();
        assert!(matches!(err, EnvError::LengthMismatch { expected: 3, got: 2, .. }), "{err}");
    }

    #[test]
    fn mismatched_spaces_and_empty_are_rejected() {
        assert!(SyncVectorEnv::new(vec![]).is_err());
        let envs: Vec<Box<dyn Env>> = vec![Box::new(CartPole::new()), Box::new(Pendulum::new())];
        assert!(SyncVectorEnv::new(envs).is_err());
    }

    /// Everything a step exposes, floats as bits, and the episodes it finished.
    type Record = (Vec<u32>, Vec<u64>, Vec<bool>, Vec<bool>, Vec<Option<Vec<u32>>>, Vec<(usize, u64, u64, bool)>);

    /// Steps `v` `n` times with actions sampled from `actions`, recording everything.
    pub(crate) fn record(v: &mut SyncVectorEnv, actions: &mut NpRandom, n: usize) -> Vec<Record> {
        let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (0..n)
            .map(|_| {
                let sampled: Vec<OwnedAction> =
                    (0..v.n_envs()).map(|_| v.single_action_space().sample(actions.bits_mut())).collect();
                let (mut discrete, mut continuous) = (Vec::new(), Vec::new());
                for a in sampled {
                    match a {
                        OwnedAction::Discrete(a) => discrete.push(a),
                        OwnedAction::Continuous(a) => continuous.extend(a),
                        OwnedAction::MultiDiscrete(_) => unreachable!("no built-in env has MultiDiscrete actions"),
                    }
                }
                if discrete.is_empty() {
                    v.step(Actions::Continuous(&continuous)).unwrap();
                } else {
                    v.step(Actions::Discrete(&discrete)).unwrap();
                }
                (
                    bits(v.observations()),
                    v.rewards().iter().map(|r| r.to_bits()).collect(),
                    v.terminated().to_vec(),
                    v.truncated().to_vec(),
                    (0..v.n_envs()).map(|i| v.final_observation(i).map(bits)).collect(),
                    v.drain_episodes().iter().map(|e| (e.env_idx, e.r.to_bits(), e.length, e.truncated)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn resumes_bit_for_bit_from_saved_json_text() {
        let kw: Kwargs = serde_json::from_str(r#"{"max_episode_steps": 30}"#).unwrap();
        for id in ["CartPole-v1", "Pendulum-v1", "Acrobot-v1"] {
            let mut v = SyncVectorEnv::make(id, &kw, 3).unwrap();
            v.reset(Some(4)).unwrap();
            let mut actions = NpRandom::from_seed(2);
            record(&mut v, &mut actions, 45);
            let saved = serde_json::to_string(&v.save_state().unwrap()).unwrap();
            let actions_at_save = actions.clone();
            let obs_at_save = v.observations().to_vec();
            let want = record(&mut v, &mut actions, 200);
            assert!(want.iter().map(|r| r.5.len()).sum::<usize>() >= 6, "{id}: too few episode ends");

            let mut resumed = SyncVectorEnv::make(id, &kw, 3).unwrap();
            resumed.restore_state(&serde_json::from_str(&saved).unwrap()).unwrap();
            assert_eq!(resumed.observations(), obs_at_save.as_slice());
            assert_eq!(record(&mut resumed, &mut actions_at_save.clone(), 200), want, "{id}");
        }
    }

    #[test]
    fn restore_rejects_states_of_other_shapes() {
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 2).unwrap();
        v.reset(Some(0)).unwrap();
        let saved = v.save_state().unwrap();
        let mut three = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 3).unwrap();
        let err = three.restore_state(&saved).unwrap_err().to_string();
        assert!(err.starts_with("vector of CartPole-v1: cannot restore state: n_envs must be 3 sub-envs"), "{err}");
        let mut broken = saved.clone();
        broken["episode_lengths"] = serde_json::json!([1]);
        assert!(v.restore_state(&broken).unwrap_err().to_string().contains("episode_lengths must be a list of 2"));
        let mut other = SyncVectorEnv::make("Acrobot-v1", &Kwargs::new(), 2).unwrap();
        assert!(other.restore_state(&saved).is_err());
    }

    fn crash_kwargs(kind: &str) -> Kwargs {
        let kw = serde_json::json!({
            "crash_after_n_steps": 3, "crash_on_vector_indices": [1], "crash_kinds": [kind], "crash_until_restart": 1,
        });
        kw.as_object().unwrap().clone()
    }

    #[test]
    fn failed_sub_envs_are_restarted_and_reported_as_truncated() {
        for kind in ["panic", "error"] {
            let mut v = SyncVectorEnv::make_with_context("CrashingCartPole-v1", &crash_kwargs(kind), 3, 4, 0).unwrap();
            let mut clean = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 3).unwrap();
            v.set_restart_failed_sub_envs(true).unwrap();
            v.reset(Some(10)).unwrap();
            clean.reset(Some(10)).unwrap();
            for _ in 0..2 {
                v.step(Actions::Discrete(&[1, 1, 1])).unwrap();
                clean.step(Actions::Discrete(&[1, 1, 1])).unwrap();
            }
            let before = v.observations()[4..8].to_vec();
            v.step(Actions::Discrete(&[1, 1, 1])).unwrap();
            clean.step(Actions::Discrete(&[1, 1, 1])).unwrap();
            // Sub-env 1 was rebuilt as restart 1 and reset with the derived seed.
            let (fresh, _) = CartPole::new().reset(Some(seed_for_restart(11, 1)), None).unwrap();
            assert_eq!(&v.observations()[4..8], fresh.as_slice(), "{kind}");
            assert_eq!(v.final_observation(1).unwrap(), before.as_slice());
            assert_eq!((v.rewards()[1], v.terminated()[1], v.truncated()[1]), (0.0, false, true));
            // The other sub-envs are unaffected.
            for i in [0, 2] {
                assert_eq!(v.observations()[i * 4..(i + 1) * 4], clean.observations()[i * 4..(i + 1) * 4]);
                assert_eq!((v.rewards()[i], v.truncated()[i]), (1.0, false));
            }
            let restarts = v.drain_sub_env_restarts();
            assert_eq!(restarts.len(), 1);
            assert_eq!((restarts[0].env_idx, restarts[0].restarts), (1, 1));
            assert!(
                restarts[0].error.contains(&format!("injected {kind} at step 3 (worker 4, sub-env 1, restarts 0)"))
            );
            assert_eq!(v.sub_env_contexts()[1], EnvContext { worker_index: 4, vector_index: 1, restarts: 1 });
            // The rebuilt env (restarts 1 >= crash_until_restart) runs clean; the aborted episode is never reported.
            for _ in 0..200 {
                v.step(Actions::Discrete(&[0, 1, 0])).unwrap();
            }
            assert!(v.drain_sub_env_restarts().is_empty());
            let eps = v.drain_episodes();
            assert!(eps.iter().any(|e| e.env_idx == 1));
            assert!(eps.iter().filter(|e| e.env_idx == 1).all(|e| e.r == e.length as f64 && !e.truncated));
            // Restart counts survive a save and restore.
            let saved = v.save_state().unwrap();
            let mut resumed =
                SyncVectorEnv::make_with_context("CrashingCartPole-v1", &crash_kwargs(kind), 3, 4, 0).unwrap();
            resumed.restore_state(&saved).unwrap();
            assert_eq!(resumed.sub_env_contexts(), v.sub_env_contexts());
        }
    }

    #[test]
    fn without_restarts_failures_reach_the_caller() {
        let mut v = SyncVectorEnv::make("CrashingCartPole-v1", &crash_kwargs("error"), 2).unwrap();
        v.reset(Some(0)).unwrap();
        v.step(Actions::Discrete(&[0, 0])).unwrap();
        v.step(Actions::Discrete(&[0, 0])).unwrap();
        let err = v.step(Actions::Discrete(&[0, 0])).unwrap_err();
        assert!(matches!(err, EnvError::Custom { .. }), "{err}");
        let mut v = SyncVectorEnv::make("CrashingCartPole-v1", &crash_kwargs("panic"), 2).unwrap();
        v.reset(Some(0)).unwrap();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..3 {
                let _ = v.step(Actions::Discrete(&[0, 0]));
            }
        }));
        assert!(panicked.is_err());
        let mut from_new = SyncVectorEnv::new(vec![Box::new(CartPole::new())]).unwrap();
        let err = from_new.set_restart_failed_sub_envs(true).unwrap_err().to_string();
        assert!(err.contains("needs a vector env built by SyncVectorEnv::make"), "{err}");
        from_new.set_restart_failed_sub_envs(false).unwrap();
    }

    #[test]
    fn a_failed_rebuild_is_returned() {
        crate::registry::register(EnvSpec::with_context("VectorTestNoRebuild-v0", |kw, ctx| {
            if ctx.restarts > 0 {
                return Err(EnvError::custom("VectorTestNoRebuild-v0", "cannot be rebuilt"));
            }
            Ok(Box::new(crate::envs::CrashingCartPole::from_kwargs(kw, ctx)?))
        }))
        .unwrap();
        let mut v = SyncVectorEnv::make("VectorTestNoRebuild-v0", &crash_kwargs("error"), 2).unwrap();
        v.set_restart_failed_sub_envs(true).unwrap();
        v.reset(Some(0)).unwrap();
        v.step(Actions::Discrete(&[0, 0])).unwrap();
        v.step(Actions::Discrete(&[0, 0])).unwrap();
        let err = v.step(Actions::Discrete(&[0, 0])).unwrap_err().to_string();
        assert_eq!(err, "VectorTestNoRebuild-v0: cannot be rebuilt");
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 1).unwrap();
        assert!(matches!(v.step(Actions::Discrete(&[0])), Err(EnvError::StepBeforeReset { .. })));
    }
}
