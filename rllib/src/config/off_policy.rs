//! The config's derived quantities and checks for the off-policy algorithms (DQN, SAC), and the
//! recorded form of a config.

use serde_json::Value;

use super::TrainConfig;
use super::algorithms::{AlgorithmId, TargetEntropy, reads_key, reads_model_key};
use super::validate::{Check, positive};

impl TrainConfig {
    /// True for DQN and SAC, which learn from a replay buffer.
    pub fn is_off_policy(&self) -> bool {
        matches!(self.algorithm, AlgorithmId::Dqn | AlgorithmId::Sac)
    }

    /// Steps each sub-env takes per sampling round: `rollout_fragment_length` for PPO,
    /// `train_freq` for the off-policy algorithms.
    pub fn fragment_length(&self) -> usize {
        if self.is_off_policy() { self.train_freq } else { self.rollout_fragment_length }
    }

    /// Env steps of one off-policy round: every sub-env of every runner steps `train_freq`
    /// times (SB3's `train_freq` on one vector env of all the runners' sub-envs).
    pub fn steps_per_round(&self) -> usize {
        self.num_env_runners.saturating_mul(self.num_envs_per_env_runner).saturating_mul(self.train_freq)
    }

    /// Gradient steps after each off-policy round (`gradient_steps`, or the round's env steps
    /// for -1, SB3's meaning).
    pub fn gradient_steps_per_round(&self) -> usize {
        if self.gradient_steps < 0 { self.steps_per_round() } else { self.gradient_steps as usize }
    }

    /// Env steps per training iteration: the PPO batch, or whole off-policy rounds until at
    /// least `min_sample_timesteps_per_iteration` (RLlib's meaning).
    pub fn steps_per_iteration(&self) -> usize {
        if !self.is_off_policy() {
            return self.train_batch_size();
        }
        let round = self.steps_per_round().max(1);
        let rounds = (self.min_sample_timesteps_per_iteration as usize).div_ceil(round).max(1);
        rounds.saturating_mul(round)
    }

    /// The env steps the run is planned for (from the step or iteration budget, the smaller),
    /// which the exploration and importance-sampling schedules run over.
    pub fn planned_env_steps(&self) -> Option<u64> {
        let by_iterations = self.stop.training_iteration.map(|i| i.saturating_mul(self.steps_per_iteration() as u64));
        match (self.stop.num_env_steps_sampled_lifetime, by_iterations) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Range checks of the DQN and SAC keys (see [`TrainConfig::validate`]).
    pub(super) fn validate_off_policy(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        let counts = [
            ("buffer_size", self.buffer_size as u64),
            ("batch_size", self.batch_size as u64),
            ("train_freq", self.train_freq as u64),
            ("target_update_interval", self.target_update_interval),
            ("n_step", self.n_step as u64),
            ("policy_frequency", self.policy_frequency as u64),
        ];
        for (k, v) in counts {
            if v == 0 {
                return fail(k, "must be at least 1".into());
            }
        }
        if self.gradient_steps == 0 || self.gradient_steps < -1 {
            return fail(
                "gradient_steps",
                format!(
                    "must be at least 1, or -1 for as many as the env steps of a round; got {}",
                    self.gradient_steps
                ),
            );
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return fail("tau", format!("must be within (0, 1], got {}", self.tau));
        }
        let rates = [("actor_lr", self.actor_lr), ("critic_lr", self.critic_lr), ("alpha_lr", self.alpha_lr)];
        for (k, v) in rates.into_iter().chain([("initial_alpha", self.initial_alpha)]) {
            if !positive(v) {
                return fail(k, format!("must be a positive number, got {v}"));
            }
        }
        if let TargetEntropy::Value(v) = self.target_entropy
            && !v.is_finite()
        {
            return fail("target_entropy", format!("must be `auto` or a finite number, got {v}"));
        }
        let eps = [
            ("exploration_fraction", self.exploration_fraction),
            ("exploration_initial_eps", self.exploration_initial_eps),
            ("exploration_final_eps", self.exploration_final_eps),
        ];
        for (k, v) in eps {
            if !(0.0..=1.0).contains(&v) {
                return fail(k, format!("must be within [0, 1], got {v}"));
            }
        }
        if let Some(p) = &self.prioritized_replay {
            let checks = [
                ("prioritized_replay.alpha", p.alpha, 0.0..=f64::MAX),
                ("prioritized_replay.beta", p.beta, 0.0..=1.0),
                ("prioritized_replay.beta_final", p.beta_final, 0.0..=1.0),
            ];
            for (k, v, range) in checks {
                if !(range.contains(&v) && v.is_finite()) {
                    return fail(k, format!("must be within [{}, {}], got {v}", range.start(), range.end()));
                }
            }
            if !positive(p.eps) {
                return fail("prioritized_replay.eps", format!("must be a positive number, got {}", p.eps));
            }
        }
        if self.algorithm == AlgorithmId::Dqn && self.exploration_fraction > 0.0 && self.planned_env_steps().is_none() {
            return fail(
                "exploration_fraction",
                "the exploration schedule runs over the planned steps: it needs \
                 stop.num_env_steps_sampled_lifetime or stop.training_iteration"
                    .into(),
            );
        }
        if self.prioritized_replay.is_some() && self.planned_env_steps().is_none() {
            return fail(
                "prioritized_replay",
                "beta is annealed over the planned steps: it needs stop.num_env_steps_sampled_lifetime or \
                 stop.training_iteration"
                    .into(),
            );
        }
        Ok(())
    }

    /// The config as YAML with exactly the keys its algorithm reads (what a run records).
    pub fn to_yaml(&self) -> std::result::Result<String, String> {
        let mut tree = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Some(map) = tree.as_object_mut() {
            map.retain(|k, _| reads_key(self.algorithm, k));
            if let Some(model) = map.get_mut("model").and_then(Value::as_object_mut) {
                model.retain(|k, _| reads_model_key(self.algorithm, k));
            }
        }
        serde_saphyr::to_string(&tree).map_err(|e| e.to_string())
    }
}
