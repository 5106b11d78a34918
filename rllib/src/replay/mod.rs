//! The replay buffer of the off-policy algorithms (DQN, SAC): a fixed-capacity ring of
//! transitions the learner owns, sampled uniformly or by priority, with n-step returns built per
//! env stream before insertion.
//!
//! Rollout workers send trajectory batches; the learner turns each sub-env's steps into
//! transitions with an [`NStepAccumulator`] (which pushes them into the [`ReplayBuffer`]) and then
//! draws [`ReplaySample`] minibatches. A transition is `(obs, action, reward, next_obs, discount)`
//! with the target `reward + discount * V(next_obs)`: `discount` is `gamma^k` for a k-step
//! transition and 0 where the episode terminated within those steps. A truncated episode keeps
//! `gamma^k` and its final observation, so the time limit is bootstrapped over, never treated as a
//! terminal state.
//!
//! Prioritized replay is the proportional variant of Schaul et al., "Prioritized Experience
//! Replay" (ICLR 2016): slot `i` is drawn with probability `P(i) = p_i / sum_j p_j`, where
//! `p_i = (|td_i| + eps)^alpha`, through a [`SumTree`]; draws are stratified over `batch_size`
//! equal segments of the total priority, and importance weights `(len * P(i))^-beta` are divided
//! by the largest one the buffer allows (from its smallest priority), so they lie in `(0, 1]`.
//!
//! All sampling uses the caller's [`Pcg64`], so a sample is a function of the buffer and the
//! generator state. Both types serialize for checkpoints ([`ReplayBuffer::to_bytes`],
//! [`NStepAccumulator::to_bytes`]) and round-trip bit for bit.
//!
//! ```
//! use rl_env::rng::Pcg64;
//! use rllib::replay::{NStepAccumulator, ReplayBuffer};
//!
//! let mut buffer = ReplayBuffer::new(100, 2, 1, None);
//! let mut nstep = NStepAccumulator::new(1, 0.99, 1);
//! nstep.add(&mut buffer, 0, &[0.0, 1.0], &[1.0], 1.0, &[0.5, 1.0], false, false);
//! nstep.add(&mut buffer, 0, &[0.5, 1.0], &[0.0], 1.0, &[0.7, 0.0], true, false);
//! let sample = buffer.sample(4, &mut Pcg64::from_state_seq(1, 2), 0.4);
//! assert_eq!(sample.obs.len(), 4 * 2);
//! assert!(sample.discounts.iter().all(|d| *d == 0.0 || *d == 0.99_f32));
//! ```

mod io;
mod nstep;
mod sum_tree;
#[cfg(test)]
mod tests;

use rl_env::rng::Pcg64;

pub use nstep::NStepAccumulator;
pub use sum_tree::SumTree;

/// Prioritized replay settings (Schaul et al. 2016, proportional variant).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritizedReplayConfig {
    /// Priority exponent alpha (0.6, the paper's proportional variant / RLlib default).
    pub alpha: f64,
    /// Importance-sampling exponent beta at the start of training (0.4); annealed linearly to
    /// `beta_final` over the planned env steps by the caller.
    pub beta: f64,
    /// beta at the end of training (1.0).
    pub beta_final: f64,
    /// Added to |TD error| so no transition gets priority 0 (1e-6).
    pub eps: f64,
}

impl Default for PrioritizedReplayConfig {
    /// alpha 0.6 and beta 0.4 annealed to 1: the proportional variant's values in Schaul et al.
    /// 2016 (Table 3) and RLlib's `PrioritizedEpisodeReplayBuffer` defaults; eps 1e-6 as RLlib's
    /// `prioritized_replay_eps`.
    fn default() -> Self {
        Self { alpha: 0.6, beta: 0.4, beta_final: 1.0, eps: 1e-6 }
    }
}

impl PrioritizedReplayConfig {
    /// Checks the values: `alpha` finite and not negative, `beta` and `beta_final` in `[0, 1]`,
    /// `eps` finite and positive. The error names the key, what is allowed and what was found.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(format!("alpha: must be a finite number >= 0, got {}", self.alpha));
        }
        for (key, value) in [("beta", self.beta), ("beta_final", self.beta_final)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{key}: must be in [0, 1], got {value}"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(format!("eps: must be a finite number > 0, got {}", self.eps));
        }
        Ok(())
    }
}

/// A minibatch drawn from the buffer, row-major, `batch_size` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySample {
    /// `[B]`: the buffer slots drawn, for [`ReplayBuffer::update_priorities`].
    pub indices: Vec<usize>,
    /// `[B, obs_dim]`.
    pub obs: Vec<f32>,
    /// `[B, act_dim]` (Discrete actions are stored as their index in f32, act_dim 1).
    pub actions: Vec<f32>,
    /// `[B]` (the n-step discounted sum when n_step > 1).
    pub rewards: Vec<f32>,
    /// `[B, obs_dim]`.
    pub next_obs: Vec<f32>,
    /// `[B]`: `gamma^k`, or 0 where the episode terminated within the k steps; the target is
    /// `reward + discount * V(next_obs)`.
    pub discounts: Vec<f32>,
    /// `[B]`: importance weights in `(0, 1]`; all 1.0 for uniform replay.
    pub weights: Vec<f32>,
}

/// The priorities of a prioritized buffer.
#[derive(Debug, Clone, PartialEq)]
struct Priorities {
    config: PrioritizedReplayConfig,
    /// `p_i = (|td_i| + eps)^alpha` of every filled slot.
    tree: SumTree,
    /// The largest `p_i` ever set (1.0 before any update); new transitions get it.
    max_priority: f64,
}

/// A fixed-capacity ring buffer of transitions, optionally prioritized.
///
/// Storage grows with the pushes up to `capacity` rows, then the oldest row is overwritten:
/// `obs` and `next_obs` are `[len, obs_dim]`, `actions` `[len, act_dim]`, `rewards` and
/// `discounts` `[len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    discounts: Vec<f32>,
    /// The slot the next push writes.
    pos: usize,
    priorities: Option<Priorities>,
}

impl ReplayBuffer {
    /// An empty buffer; `capacity >= 1`, `obs_dim >= 1`, `act_dim >= 1`.
    ///
    /// # Panics
    ///
    /// If a size is 0 or the prioritized config fails [`PrioritizedReplayConfig::validate`]
    /// (the config is validated when it is read).
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize, prioritized: Option<PrioritizedReplayConfig>) -> Self {
        assert!(
            capacity >= 1 && obs_dim >= 1 && act_dim >= 1,
            "replay buffer sizes must be at least 1: capacity {capacity}, obs_dim {obs_dim}, act_dim {act_dim}"
        );
        let priorities = prioritized.map(|config| {
            if let Err(message) = config.validate() {
                panic!("invalid prioritized replay config: {message}");
            }
            Priorities { config, tree: SumTree::new(capacity), max_priority: 1.0 }
        });
        Self {
            capacity,
            obs_dim,
            act_dim,
            obs: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            next_obs: Vec::new(),
            discounts: Vec::new(),
            pos: 0,
            priorities,
        }
    }

    /// The most transitions it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The transitions it holds.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// The observation length.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The action length (1 for Discrete actions).
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// The prioritized replay settings, `None` for uniform replay.
    pub fn prioritized(&self) -> Option<&PrioritizedReplayConfig> {
        self.priorities.as_ref().map(|p| &p.config)
    }

    /// Stores one transition, overwriting the oldest when full.
    ///
    /// A new transition gets the current maximum priority (1.0 before any update), as in the
    /// paper, so it is likely to be replayed at least once.
    ///
    /// # Panics
    ///
    /// On wrong slice lengths (a caller bug).
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], discount: f32) {
        assert_eq!(obs.len(), self.obs_dim, "replay buffer push: obs length");
        assert_eq!(action.len(), self.act_dim, "replay buffer push: action length");
        assert_eq!(next_obs.len(), self.obs_dim, "replay buffer push: next_obs length");
        let slot = self.pos;
        if slot == self.len() {
            if self.rewards.len() == self.rewards.capacity() {
                self.grow();
            }
            self.obs.extend_from_slice(obs);
            self.actions.extend_from_slice(action);
            self.rewards.push(reward);
            self.next_obs.extend_from_slice(next_obs);
            self.discounts.push(discount);
        } else {
            let (o, a) = (slot * self.obs_dim, slot * self.act_dim);
            self.obs[o..o + self.obs_dim].copy_from_slice(obs);
            self.actions[a..a + self.act_dim].copy_from_slice(action);
            self.rewards[slot] = reward;
            self.next_obs[o..o + self.obs_dim].copy_from_slice(next_obs);
            self.discounts[slot] = discount;
        }
        if let Some(p) = &mut self.priorities {
            p.tree.set(slot, p.max_priority);
        }
        self.pos = (slot + 1) % self.capacity;
    }

    /// Doubles the storage (at least 1024 rows) without going past `capacity` rows, so a large
    /// buffer never holds the slack of `Vec`'s own doubling.
    fn grow(&mut self) {
        let len = self.len();
        let extra = (2 * len).max(1024).min(self.capacity) - len;
        self.obs.reserve_exact(extra * self.obs_dim);
        self.actions.reserve_exact(extra * self.act_dim);
        self.rewards.reserve_exact(extra);
        self.next_obs.reserve_exact(extra * self.obs_dim);
        self.discounts.reserve_exact(extra);
    }

    /// Draws `batch_size` transitions with replacement.
    ///
    /// Uniform replay draws each slot with an unbiased bounded integer (Lemire's method) and
    /// returns weights of 1. Prioritized replay splits the total priority into `batch_size` equal
    /// segments and draws one slot uniformly by mass within each, so `P(i) = p_i / sum p`; the
    /// weight `(len * P(i))^-beta` is divided by the largest possible weight, that of the smallest
    /// priority in the buffer.
    ///
    /// # Panics
    ///
    /// If the buffer is empty, `batch_size` is 0, or `beta` is negative or not finite.
    pub fn sample(&self, batch_size: usize, rng: &mut Pcg64, beta: f64) -> ReplaySample {
        assert!(!self.is_empty(), "sampling from an empty replay buffer");
        assert!(batch_size >= 1, "replay sample batch_size must be at least 1");
        assert!(beta.is_finite() && beta >= 0.0, "replay sample beta must be a finite number >= 0, got {beta}");
        let len = self.len();
        let (indices, weights) = match &self.priorities {
            None => ((0..batch_size).map(|_| bounded(rng, len)).collect(), vec![1.0; batch_size]),
            Some(p) => {
                let total = p.tree.total();
                let segment = total / batch_size as f64;
                let indices: Vec<usize> =
                    (0..batch_size).map(|k| p.tree.find_prefix_sum((k as f64 + rng.next_f64()) * segment)).collect();
                let weight = |priority: f64| (len as f64 * priority / total).powf(-beta);
                let max_weight = weight(p.tree.min());
                let weights = indices.iter().map(|&i| (weight(p.tree.get(i)) / max_weight).min(1.0) as f32).collect();
                (indices, weights)
            }
        };
        let rows = |data: &[f32], dim: usize| -> Vec<f32> {
            indices.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect()
        };
        ReplaySample {
            obs: rows(&self.obs, self.obs_dim),
            actions: rows(&self.actions, self.act_dim),
            rewards: rows(&self.rewards, 1),
            next_obs: rows(&self.next_obs, self.obs_dim),
            discounts: rows(&self.discounts, 1),
            weights,
            indices,
        }
    }

    /// Sets `p_i = (|td_i| + eps)^alpha` for each sampled slot and raises the maximum priority
    /// to match; a no-op for uniform replay.
    ///
    /// # Panics
    ///
    /// If the lengths differ, a slot is not filled, or a TD error is not finite (the caller
    /// checks its loss first and reports a non-finite update as an error).
    pub fn update_priorities(&mut self, indices: &[usize], td_errors: &[f32]) {
        assert_eq!(indices.len(), td_errors.len(), "update_priorities: one TD error per index");
        let len = self.len();
        let Some(p) = &mut self.priorities else { return };
        for (&i, &td) in indices.iter().zip(td_errors) {
            assert!(i < len, "update_priorities: slot {i} is not filled (the buffer holds {len})");
            assert!(td.is_finite(), "update_priorities: non-finite TD error {td} for slot {i}");
            let priority = (f64::from(td.abs()) + p.config.eps).powf(p.config.alpha);
            p.tree.set(i, priority);
            p.max_priority = p.max_priority.max(priority);
        }
    }

    /// The probability of slot `index` being drawn: `1 / len` uniform, `p_i / sum p` prioritized.
    ///
    /// # Panics
    ///
    /// If the slot is not filled.
    pub fn probability(&self, index: usize) -> f64 {
        assert!(index < self.len(), "probability: slot {index} is not filled (the buffer holds {})", self.len());
        match &self.priorities {
            None => 1.0 / self.len() as f64,
            Some(p) => p.tree.get(index) / p.tree.total(),
        }
    }
}

/// An unbiased draw in `0..n` (`n >= 1`): Lemire's multiply-and-reject method
/// (<https://arxiv.org/abs/1805.10941>) on 64-bit outputs.
fn bounded(rng: &mut Pcg64, n: usize) -> usize {
    let n = n as u64;
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        // `2^64 mod n`: low products below it belong to an incomplete band and are redrawn.
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as usize
}
