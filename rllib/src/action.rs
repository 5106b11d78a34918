//! Policy outputs to env actions: the one mapping rollout workers and evaluation share.
//!
//! The policy emits Discrete actions as indices from 0 and Box actions unbounded. The env takes
//! Discrete values from its space's `start` (`start + index`) and Box actions within its bounds:
//! they are clipped, as SB3 and CleanRL's `ClipAction` do before stepping. The unclipped action
//! is what the policy's log-probability refers to, so trajectory batches keep that one.

use rand::Rng;
use rand_distr::StandardNormal;
use rl_env::{Actions, OwnedAction, Space};

use crate::acting::{ActMode, ActingPolicy, Exploration};
use crate::error::Result;

/// Acts for `n` observations at a time: runs an [`ActingPolicy`], keeps its outputs, and maps
/// them to env actions. Its buffers are reused across steps.
#[derive(Debug, Clone)]
pub struct PolicyActions {
    space: Space,
    discrete: bool,
    /// Discrete indices the policy chose, `[n]` (Discrete spaces only).
    pub indices: Vec<i64>,
    /// Box actions the policy chose, unclipped, `[n, act_dim]` (Box spaces only).
    pub raw: Vec<f32>,
    /// Log-probabilities of the chosen actions, `[n]` (PPO only; zeros otherwise).
    pub logp: Vec<f32>,
    /// Value estimates of the observations, `[n]` (PPO only; zeros otherwise).
    pub values: Vec<f32>,
    env_discrete: Vec<i64>,
    env_continuous: Vec<f32>,
    greedy: Vec<usize>,
    noise: Vec<f32>,
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
            greedy: vec![0; n_disc],
            noise: Vec::new(),
        }
    }

    /// True for a Discrete action space.
    pub fn is_discrete(&self) -> bool {
        self.discrete
    }

    /// Runs `policy` on `obs` (`[n, obs_dim]`) in `mode`, drawing what is random from `rng`;
    /// returns the env actions to step with.
    pub fn act<R: Rng + ?Sized>(
        &mut self,
        policy: &ActingPolicy,
        obs: &[f32],
        rng: &mut R,
        mode: ActMode,
    ) -> Result<Actions<'_>> {
        let n = self.logp.len();
        match (policy, mode) {
            (_, ActMode::Explore(Exploration::Random)) => self.act_randomly(rng),
            (ActingPolicy::ActorCritic { fast, .. }, mode) => {
                let deterministic = mode == ActMode::Deterministic;
                if self.discrete {
                    fast.act_discrete(obs, rng, deterministic, &mut self.indices, &mut self.logp, &mut self.values)?;
                } else {
                    fast.act_continuous(obs, rng, deterministic, &mut self.raw, &mut self.logp, &mut self.values)?;
                }
            }
            (ActingPolicy::Q { fast, .. }, mode) => {
                fast.greedy(obs, n, &mut self.greedy);
                let epsilon = match mode {
                    ActMode::Explore(Exploration::EpsilonGreedy(e)) => e,
                    _ => 0.0,
                };
                let choices = fast.n_actions() as u64;
                for (index, &greedy) in self.indices.iter_mut().zip(&self.greedy) {
                    // One draw per sub-env: explore with probability epsilon.
                    *index = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                        rng.random_range(0..choices) as i64
                    } else {
                        greedy as i64
                    };
                }
            }
            (ActingPolicy::Squashed { fast, .. }, mode) => {
                if mode == ActMode::Deterministic {
                    fast.act(obs, n, None, &mut self.raw);
                } else {
                    self.noise.clear();
                    self.noise.extend((0..n * fast.act_dim()).map(|_| rng.sample::<f32, _>(StandardNormal)));
                    fast.act(obs, n, Some(&self.noise), &mut self.raw);
                }
            }
        }
        Ok(self.env_actions())
    }

    /// Uniformly random actions from the action space, kept as the policy's own would be.
    fn act_randomly<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let n = self.logp.len();
        let dim = self.raw.len() / n.max(1);
        for i in 0..n {
            match self.space.sample(rng) {
                OwnedAction::Discrete(v) => {
                    let start = self.space.discrete_value(0);
                    self.indices[i] = v - start;
                }
                OwnedAction::Continuous(a) => self.raw[i * dim..(i + 1) * dim].copy_from_slice(&a),
                OwnedAction::MultiDiscrete(_) => unreachable!("policies act in Discrete or Box spaces"),
            }
        }
        self.logp.fill(0.0);
        self.values.fill(0.0);
    }

    /// The env actions of what the policy chose: Discrete values from the space's `start`, Box
    /// actions clipped into the bounds.
    fn env_actions(&mut self) -> Actions<'_> {
        if self.discrete {
            for (v, &i) in self.env_discrete.iter_mut().zip(&self.indices) {
                *v = self.space.discrete_value(i);
            }
            Actions::Discrete(&self.env_discrete)
        } else {
            self.env_continuous.copy_from_slice(&self.raw);
            clip_to_space(&self.space, &mut self.env_continuous);
            Actions::Continuous(&self.env_continuous)
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
