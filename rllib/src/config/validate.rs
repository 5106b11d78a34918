//! Range and consistency checks of a [`TrainConfig`]: each names the offending key and what is
//! allowed.

use rl_env::Space;

use super::algorithms::AlgorithmId;
use super::{ObservationFilter, Schedule, TrainConfig};

/// The outcome of a check: the offending key and what is allowed, on failure.
pub(super) type Check = std::result::Result<(), (String, String)>;

impl TrainConfig {
    /// Range and consistency checks. Returns the offending key and what is allowed.
    pub fn validate(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        self.validate_env()?;
        self.validate_sizes_and_resources()?;
        self.validate_optimization()?;
        if self.is_off_policy() {
            self.validate_off_policy()?;
        } else if self.minibatch_size > self.train_batch_size() {
            return fail(
                "minibatch_size",
                format!(
                    "{} is larger than the batch of {} steps per iteration (num_env_runners {} x \
                     num_envs_per_env_runner {} x rollout_fragment_length {})",
                    self.minibatch_size,
                    self.train_batch_size(),
                    self.num_env_runners,
                    self.num_envs_per_env_runner,
                    self.rollout_fragment_length
                ),
            );
        }
        if let Err(e) = self.model.validate() {
            return fail("model", e.to_string());
        }
        self.validate_stop_and_schedules()?;
        self.validate_fault_tolerance()?;
        self.validate_normalization()?;
        if self.evaluation.duration == 0 {
            return fail("evaluation.duration", "must be at least 1 episode".into());
        }
        if self.evaluation.max_episode_steps == 0 {
            return fail("evaluation.max_episode_steps", "must be at least 1 step".into());
        }
        Ok(())
    }

    /// The env id exists, the env can be made with `env_config`, and the algorithm can act in
    /// its action space.
    fn validate_env(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        // A bridged Gymnasium id has no spec here; making it below checks it.
        if !rl_env::is_bridged(&self.env)
            && let Err(e) = rl_env::spec(&self.env)
        {
            return fail("env", e.to_string());
        }
        let env = match rl_env::make(&self.env, &self.env_config) {
            Ok(env) => env,
            Err(e) => {
                // Name the argument the env refused when its message quotes one.
                let message = e.to_string();
                let key = self.env_config.keys().find(|k| message.contains(&format!("\"{k}\"")));
                return fail(&key.map_or("env_config".into(), |k| format!("env_config.{k}")), message);
            }
        };
        self.validate_action_space(env.action_space())?;
        Ok(())
    }

    /// Counts of runners, envs and steps (at least 1, and their product countable), CPUs and
    /// the placement strategy.
    fn validate_sizes_and_resources(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        let counts = [
            ("num_env_runners", self.num_env_runners),
            ("num_envs_per_env_runner", self.num_envs_per_env_runner),
            ("rollout_fragment_length", self.rollout_fragment_length),
            ("num_epochs", self.num_epochs),
            ("minibatch_size", self.minibatch_size),
        ];
        for (k, v) in counts {
            if v == 0 {
                return fail(k, "must be at least 1".into());
            }
        }
        let steps = self.num_env_runners.checked_mul(self.num_envs_per_env_runner);
        if steps.and_then(|n| n.checked_mul(self.fragment_length())).is_none() {
            let (k, _) = counts.iter().take(3).max_by_key(|(_, v)| *v).expect("three counts");
            return fail(
                k,
                "num_env_runners x num_envs_per_env_runner x rollout_fragment_length (the steps per \
                 iteration) is too large to count"
                    .into(),
            );
        }
        if !(self.num_cpus_per_env_runner >= 0.0 && self.num_cpus_per_env_runner.is_finite()) {
            return fail(
                "num_cpus_per_env_runner",
                format!("must be a non-negative number, got {}", self.num_cpus_per_env_runner),
            );
        }
        if rl_runtime::cluster::placement_group::parse_strategy(&self.placement_strategy).is_err() {
            return fail(
                "placement_strategy",
                format!("must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, got {:?}", self.placement_strategy),
            );
        }
        Ok(())
    }

    /// Learning rate, Adam's epsilon, discounts, clipping and loss coefficients.
    fn validate_optimization(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        if !positive(self.lr) {
            return fail("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !positive(self.adam_epsilon) {
            return fail("adam_epsilon", format!("must be positive, got {}", self.adam_epsilon));
        }
        for (k, v) in [("gamma", self.gamma), ("lambda", self.lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return fail(k, format!("must be within [0, 1], got {v}"));
            }
        }
        if !positive(self.clip_param) {
            return fail("clip_param", format!("must be positive, got {}", self.clip_param));
        }
        for (k, v) in
            [("vf_clip_param", self.vf_clip_param), ("grad_clip", self.grad_clip), ("target_kl", self.target_kl)]
        {
            if let Some(v) = v
                && !positive(v)
            {
                return fail(k, format!("must be positive or null, got {v}"));
            }
        }
        for (k, v) in [("entropy_coeff", self.entropy_coeff), ("vf_loss_coeff", self.vf_loss_coeff)] {
            if !(v >= 0.0 && v.is_finite()) {
                return fail(k, format!("must be a non-negative number, got {v}"));
            }
        }
        Ok(())
    }

    /// At least one stop condition, budgets of at least 1, a budget for linear schedules, and a
    /// checkpoint retention of at least 1.
    fn validate_stop_and_schedules(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        let s = &self.stop;
        if s.num_env_steps_sampled_lifetime.is_none()
            && s.training_iteration.is_none()
            && s.episode_return_mean.is_none()
            && s.time_total_s.is_none()
        {
            return fail(
                "stop",
                "needs at least one of num_env_steps_sampled_lifetime, training_iteration, \
                 env_runners/episode_return_mean, time_total_s"
                    .into(),
            );
        }
        if s.num_env_steps_sampled_lifetime == Some(0) || s.training_iteration == Some(0) {
            return fail("stop", "budgets must be at least 1".into());
        }
        if self.checkpoint.num_to_keep == Some(0) {
            return fail(
                "checkpoint.num_to_keep",
                "must be at least 1 (null keeps every checkpoint; the newest is what a resume needs)".into(),
            );
        }
        let ppo = self.algorithm == AlgorithmId::Ppo;
        if ppo && self.lr_schedule == Schedule::Linear && self.planned_iterations().is_none() {
            return fail(
                "lr_schedule",
                "linear annealing needs stop.num_env_steps_sampled_lifetime or stop.training_iteration".into(),
            );
        }
        if ppo && self.clip_param_schedule == Schedule::Linear && self.planned_iterations().is_none() {
            return fail(
                "clip_param_schedule",
                "linear annealing needs stop.num_env_steps_sampled_lifetime or stop.training_iteration".into(),
            );
        }
        Ok(())
    }

    /// The runner timeouts and restart delays.
    fn validate_fault_tolerance(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        let ft = &self.fault_tolerance;
        if !positive(ft.sample_timeout_s) {
            return fail(
                "fault_tolerance.sample_timeout_s",
                format!("must be a positive number, got {}", ft.sample_timeout_s),
            );
        }
        if !(ft.delay_between_env_runner_restarts_s >= 0.0 && ft.delay_between_env_runner_restarts_s.is_finite()) {
            return fail(
                "fault_tolerance.delay_between_env_runner_restarts_s",
                format!("must be a non-negative number, got {}", ft.delay_between_env_runner_restarts_s),
            );
        }
        Ok(())
    }
}

impl TrainConfig {
    /// DQN needs Discrete actions; SAC a Box with finite bounds (its actor squashes into them).
    fn validate_action_space(&self, space: &Space) -> Check {
        let fail = |m: String| Err(("algorithm".to_string(), m));
        match (self.algorithm, space) {
            (AlgorithmId::Dqn, Space::Discrete { .. }) | (AlgorithmId::Ppo, _) => Ok(()),
            (AlgorithmId::Dqn, other) => fail(format!(
                "DQN needs Discrete actions and {} has {other}; SAC or PPO train on Box actions",
                self.env
            )),
            (AlgorithmId::Sac, Space::Box(b)) => {
                match b.low().iter().zip(b.high()).position(|(lo, hi)| !(lo.is_finite() && hi.is_finite())) {
                    Some(d) => fail(format!(
                        "SAC squashes actions into the Box bounds, and dimension {d} of {}'s action space is \
                         unbounded ({}, {})",
                        self.env,
                        b.low()[d],
                        b.high()[d]
                    )),
                    None => Ok(()),
                }
            }
            (AlgorithmId::Sac, other) => fail(format!(
                "SAC needs Box actions and {} has {other}; DQN or PPO train on Discrete actions",
                self.env
            )),
        }
    }

    /// The normalization keys: positive epsilons and clips, a discount within [0, 1], and one
    /// observation normalization at most.
    fn validate_normalization(&self) -> Check {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        let mut checks = Vec::new();
        if let Some(o) = &self.normalize_observation {
            checks.push(("normalize_observation.epsilon", Some(o.epsilon)));
            checks.push(("normalize_observation.clip", o.clip));
        }
        if let Some(r) = &self.normalize_reward {
            checks.push(("normalize_reward.epsilon", Some(r.epsilon)));
            checks.push(("normalize_reward.clip", r.clip));
            if let Some(g) = r.gamma
                && !(0.0..=1.0).contains(&g)
            {
                return fail("normalize_reward.gamma", format!("must be within [0, 1] or null, got {g}"));
            }
        }
        for (k, v) in checks {
            if let Some(v) = v
                && !positive(v)
            {
                return fail(k, format!("must be a positive number, got {v}"));
            }
        }
        if self.normalize_observation.is_some() && self.observation_filter == ObservationFilter::MeanStdFilter {
            return fail(
                "observation_filter",
                "MeanStdFilter and normalize_observation both normalize observations; choose one".into(),
            );
        }
        Ok(())
    }
}

/// True for finite numbers above 0 (false for NaN).
pub(super) fn positive(v: f64) -> bool {
    v > 0.0 && v.is_finite()
}
