//! Deterministic evaluation: greedy actions on separate, separately seeded envs; and
//! trajectories of a trained policy (`rl rollout`). One [`Agent`] serves both.
//!
//! Episode `i` resets its env with `seed + i`, so an evaluation is a pure function of the
//! weights, the config and the seed. The policy acts with its deterministic mode (argmax for
//! Discrete, the mean for Box). The acting policy is built from the config's algorithm
//! ([`ActingPolicy`]): the actor-critic's actor for PPO, the Q-network's argmax for DQN, the
//! squashed Gaussian's `tanh(mean)` for SAC.

use rl_env::rng::Pcg64;
use rl_env::{Action, Actions, OwnedAction};

use crate::acting::{ActMode, ActingPolicy, Exploration};
use crate::action::PolicyActions;
use crate::config::{AlgorithmId, TrainConfig};
use crate::error::{Error, Result};
use crate::normalization::ObservationNormalization;
use crate::observation::ObservationEncoder;
use crate::seeding::{ACTING_STREAM, stream_rng};
use crate::stats;

/// Returns and lengths of evaluation episodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalStats {
    /// Episode returns, in episode order.
    pub returns: Vec<f64>,
    /// Episode lengths.
    pub lengths: Vec<u64>,
}

impl EvalStats {
    /// Mean return.
    pub fn return_mean(&self) -> f64 {
        stats::mean(&self.returns)
    }

    /// Population standard deviation of the returns.
    pub fn return_std(&self) -> f64 {
        stats::std(&self.returns)
    }

    /// Lowest return.
    pub fn return_min(&self) -> f64 {
        self.returns.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Highest return.
    pub fn return_max(&self) -> f64 {
        self.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// Mean length.
    pub fn length_mean(&self) -> f64 {
        self.lengths.iter().sum::<u64>() as f64 / self.lengths.len() as f64
    }
}

/// A trained policy acting in one env: greedy (deterministic) or sampling, one observation at a time.
pub struct Agent {
    env: Box<dyn rl_env::Env>,
    policy: ActingPolicy,
    acting: PolicyActions,
    rng: Pcg64,
    mode: ActMode,
    encoder: ObservationEncoder,
    encoded: Vec<f32>,
    normalization: Option<ObservationNormalization>,
    normalized: Vec<f32>,
}

/// The worker index in the [`rl_env::EnvContext`] of envs that evaluate or act outside
/// training: no env runner has it, so an env that depends on its runner (a fault-injection env
/// crashing only on chosen runners) can tell evaluation apart.
pub const EVALUATION_WORKER_INDEX: u32 = u32::MAX;

/// What one [`Agent::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStep {
    /// The action sent to the env (clipped into a Box space).
    pub action: OwnedAction,
    /// The env's answer.
    pub step: rl_env::Step,
}

impl Agent {
    /// Builds the env of `config` and the policy with `weights`, which sees observations through
    /// `normalization` (frozen) when the run normalized them. With `deterministic`, actions are
    /// the argmax / mean; otherwise they are sampled with a generator seeded by `sample_seed`
    /// (DQN then acts epsilon-greedily with `exploration_final_eps`).
    pub fn new(
        config: &TrainConfig,
        weights: &[u8],
        normalization: Option<&ObservationNormalization>,
        deterministic: bool,
        sample_seed: u64,
    ) -> Result<Self> {
        if normalization.is_none() && config.normalizes_observations() {
            return Err(Error::Resume(
                "the config normalizes observations, but no normalization statistics were given to act with".into(),
            ));
        }
        let context = rl_env::EnvContext { worker_index: EVALUATION_WORKER_INDEX, ..Default::default() };
        let env = rl_env::make_with_context(&config.env, &config.env_config, &context)?;
        let (mut policy, encoder) = ActingPolicy::new(config, env.observation_space(), env.action_space())?;
        policy.load(weights)?;
        let mode = match (deterministic, config.algorithm) {
            (true, _) => ActMode::Deterministic,
            (false, AlgorithmId::Dqn) => ActMode::Explore(Exploration::EpsilonGreedy(config.exploration_final_eps)),
            (false, _) => ActMode::Explore(Exploration::Policy),
        };
        Ok(Self {
            policy,
            mode,
            acting: PolicyActions::new(env.action_space(), 1),
            encoder,
            encoded: Vec::new(),
            normalization: normalization.cloned(),
            normalized: Vec::new(),
            rng: stream_rng(sample_seed, ACTING_STREAM),
            env,
        })
    }

    /// Resets the env with `seed`; returns the first observation.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<Vec<f32>> {
        Ok(self.env.reset(seed, None)?.0)
    }

    /// Acts on `obs` and steps the env.
    pub fn step(&mut self, obs: &[f32]) -> Result<AgentStep> {
        let obs = match &self.normalization {
            Some(n) => {
                self.normalized.clear();
                self.normalized.extend_from_slice(obs);
                n.apply(&mut self.normalized);
                &self.normalized[..]
            }
            None => obs,
        };
        let inputs = self.encoder.encode(obs, &mut self.encoded)?;
        let (action, step) = match self.acting.act(&self.policy, inputs, &mut self.rng, self.mode)? {
            Actions::Discrete(a) => (OwnedAction::Discrete(a[0]), self.env.step(Action::Discrete(a[0]))?),
            Actions::Continuous(a) => (OwnedAction::Continuous(a.to_vec()), self.env.step(Action::Continuous(a))?),
            Actions::MultiDiscrete(a) => {
                (OwnedAction::MultiDiscrete(a.to_vec()), self.env.step(Action::MultiDiscrete(a))?)
            }
        };
        Ok(AgentStep { action, step })
    }
}

/// Runs `episodes` deterministic episodes of the policy whose safetensors weights are `weights`
/// (seeing observations through the frozen `normalization`, when the run normalized them), each
/// at most `config.evaluation.max_episode_steps` long.
pub fn evaluate(
    config: &TrainConfig,
    weights: &[u8],
    normalization: Option<&ObservationNormalization>,
    episodes: u64,
    seed: u64,
) -> Result<EvalStats> {
    let mut agent = Agent::new(config, weights, normalization, true, 0)?;
    let mut stats = EvalStats { returns: Vec::new(), lengths: Vec::new() };
    for ep in 0..episodes {
        let mut obs = agent.reset(Some(seed + ep))?;
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let AgentStep { step, .. } = agent.step(&obs)?;
            ret += step.reward;
            len += 1;
            obs = step.obs;
            if step.terminated || step.truncated || len >= config.evaluation.max_episode_steps {
                break;
            }
        }
        stats.returns.push(ret);
        stats.lengths.push(len);
    }
    Ok(stats)
}

/// Writes `steps` env steps of the policy as JSON lines to `out`: a `{"reset": {"seed": ..},
/// "obs": [..]}` line at every episode start (episode `i` resets with `seed + i`), then
/// `{"action", "obs", "reward", "terminated", "truncated"}` per step. The last line is always a
/// step. Returns the number of finished episodes.
pub fn write_rollout(
    config: &TrainConfig,
    weights: &[u8],
    normalization: Option<&ObservationNormalization>,
    steps: u64,
    seed: u64,
    deterministic: bool,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let mut agent = Agent::new(config, weights, normalization, deterministic, seed)?;
    let mut episode = 0u64;
    let mut obs = Vec::new();
    let mut needs_reset = true;
    for _ in 0..steps {
        // Reset lazily, so the file never ends with a reset that no step follows.
        if needs_reset {
            obs = agent.reset(Some(seed + episode))?;
            writeln!(out, "{}", serde_json::json!({"reset": {"seed": seed + episode}, "obs": obs}))
                .map_err(Error::Output)?;
            needs_reset = false;
        }
        let AgentStep { action, step } = agent.step(&obs)?;
        let action = match action {
            OwnedAction::Discrete(a) => serde_json::json!(a),
            OwnedAction::Continuous(a) => serde_json::json!(a),
            OwnedAction::MultiDiscrete(a) => serde_json::json!(a),
        };
        writeln!(
            out,
            "{}",
            serde_json::json!({"action": action, "obs": step.obs, "reward": step.reward,
                               "terminated": step.terminated, "truncated": step.truncated})
        )
        .map_err(Error::Output)?;
        obs = step.obs;
        if step.terminated || step.truncated {
            episode += 1;
            needs_reset = true;
        }
    }
    out.flush().map_err(Error::Output)?;
    Ok(episode)
}

#[cfg(test)]
mod tests {
    use rl_policies::ActorCritic;

    use super::*;

    /// Pendulum never terminates; without its time limit only the evaluation bound ends an episode.
    #[test]
    fn evaluation_episodes_are_bounded_on_envs_without_a_time_limit() {
        rl_env::register(rl_env::EnvSpec::new("EndlessPendulum-v0", |_| Ok(Box::new(rl_env::envs::Pendulum::new()))))
            .unwrap();
        let text = "env: EndlessPendulum-v0\nentropy_coeff: 0.0\nstop: {training_iteration: 1}\nevaluation: {max_episode_steps: 50}\n";
        let config = TrainConfig::parse(text, "t.yaml", &[]).unwrap();
        let (obs, act) = config.env_spaces().unwrap();
        let weights = ActorCritic::new(&config.model, &obs, &act, 1).unwrap().to_safetensors(0).unwrap();
        let stats = evaluate(&config, &weights, None, 3, 0).unwrap();
        assert_eq!(stats.lengths, [50, 50, 50]);
    }
}
