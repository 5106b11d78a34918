//! Policy outputs to env actions: the one mapping rollout workers and evaluation share.
//!
//! The policy emits Discrete actions as indices from 0 and Box actions unbounded. The env takes
//! Discrete values from its space's `start` (`start + index`) and Box actions within its bounds:
//! they are clipped, as SB3 and CleanRL's `ClipAction` do before stepping. The unclipped action
//! is what the policy's log-probability refers to, so trajectory batches keep that one.

use rand::Rng;
use rl_env::{Actions, Space};
use rl_policies::FastPolicy;

use crate::error::Result;

/// Acts for `n` observations at a time: runs a [`FastPolicy`], keeps its outputs, and maps
/// them to env actions. Its buffers are reused across steps.
#[derive(Debug, Clone)]
pub struct PolicyActions {
    space: Space,
    discrete: bool,
    /// Discrete indices the policy chose, `[n]` (Discrete spaces only).
    pub indices: Vec<i64>,
    /// Box actions the policy chose, unclipped, `[n, act_dim]` (Box spaces only).
    pub raw: Vec<f32>,
    /// Log-probabilities of the chosen actions, `[n]`.
    pub logp: Vec<f32>,
    /// Value estimates of the observations, `[n]`.
    pub values: Vec<f32>,
    env_discrete: Vec<i64>,
    env_continuous: Vec<f32>,
}

impl PolicyActions {
    /// Buffers for `n` observations at a time in the action space `space`.
    pub fn new(space: &Space, n: usize) -> Self {
        let discrete = matches!(space, Space::Discrete { .. });
        let dim = if discrete { 0 } else { n * space.flat_dim() };
        let n_disc = if discrete { n } else { 0 };
        Self {
            space: space.clone(),
            discrete,
            indices: vec![0; n_disc],
            raw: vec![0.0; dim],
            logp: vec![0.0; n],
            values: vec![0.0; n],
            env_discrete: vec![0; n_disc],
            env_continuous: vec![0.0; dim],
        }
    }

    /// True for a Discrete action space.
    pub fn is_discrete(&self) -> bool {
        self.discrete
    }

    /// Runs `policy` on `obs` (`[n, obs_dim]`), greedily with `deterministic`, else sampling
    /// with `rng`; returns the env actions to step with.
    pub fn act<R: Rng + ?Sized>(
        &mut self,
        policy: &FastPolicy,
        obs: &[f32],
        rng: &mut R,
        deterministic: bool,
    ) -> Result<Actions<'_>> {
        if self.discrete {
            policy.act_discrete(obs, rng, deterministic, &mut self.indices, &mut self.logp, &mut self.values)?;
            for (v, &i) in self.env_discrete.iter_mut().zip(&self.indices) {
                *v = self.space.discrete_value(i);
            }
            Ok(Actions::Discrete(&self.env_discrete))
        } else {
            policy.act_continuous(obs, rng, deterministic, &mut self.raw, &mut self.logp, &mut self.values)?;
            self.env_continuous.copy_from_slice(&self.raw);
            clip_to_space(&self.space, &mut self.env_continuous);
            Ok(Actions::Continuous(&self.env_continuous))
        }
    }
}

/// Clips continuous actions row by row into a Box action space; a no-op for other spaces.
pub fn clip_to_space(space: &Space, actions: &mut [f32]) {
    if let Space::Box(b) = space {
        let dim = b.len();
        for row in actions.chunks_mut(dim) {
            for ((a, lo), hi) in row.iter_mut().zip(b.low()).zip(b.high()) {
                *a = a.clamp(*lo, *hi);
            }
        }
    }
}
