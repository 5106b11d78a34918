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

use crate::env::{Env, Info, Kwargs};
use crate::error::{EnvError, Result};
use crate::registry::make;
use crate::space::{Action, Space};

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
    /// Wraps `envs`, which must be non-empty and share observation and action spaces.
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
        })
    }

    /// `n_envs` copies of the registered env `id`, made with `kwargs`.
    pub fn make(id: &str, kwargs: &Kwargs, n_envs: usize) -> Result<Self> {
        Self::new((0..n_envs).map(|_| make(id, kwargs)).collect::<Result<_>>()?)
    }

    /// Resets every sub-env; with `Some(seed)`, sub-env `i` gets `seed + i`. Returns the
    /// `[n_envs, obs_dim]` observations.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32]> {
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
        for (i, env) in self.envs.iter_mut().enumerate() {
            let row = &mut self.obs[i * d..(i + 1) * d];
            let r = env.step_into(action_of(i), row)?;
            self.rewards[i] = r.reward;
            self.terminated[i] = r.terminated;
            self.truncated[i] = r.truncated;
            self.infos[i] = r.info;
            self.episode_returns[i] += r.reward;
            self.episode_lengths[i] += 1;
            if r.terminated || r.truncated {
                self.final_obs[i * d..(i + 1) * d].copy_from_slice(row);
                self.finished.push(FinishedEpisode {
                    env_idx: i,
                    r: self.episode_returns[i],
                    length: self.episode_lengths[i],
                    truncated: !r.terminated,
                });
                self.episode_returns[i] = 0.0;
                self.episode_lengths[i] = 0;
                env.reset_into(None, None, row)?;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::{CartPole, Pendulum};

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

    #[test]
    fn step_before_reset_is_an_error() {
        let mut v = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), 1).unwrap();
        assert!(matches!(v.step(Actions::Discrete(&[0])), Err(EnvError::StepBeforeReset { .. })));
    }
}
