//! Deterministic evaluation: greedy actions on separate, separately seeded envs.
//!
//! Episode `i` resets its env with `seed + i`, so an evaluation is a pure function of the
//! weights, the config and the seed. The policy acts with its deterministic mode (argmax for
//! Discrete, the mean for Box).

use rl_env::rng::Pcg64;
use rl_env::{Action, Space, make};
use rl_policies::ActorCritic;

use crate::config::TrainConfig;

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
        self.returns.iter().sum::<f64>() / self.returns.len() as f64
    }

    /// Population standard deviation of the returns.
    pub fn return_std(&self) -> f64 {
        let m = self.return_mean();
        (self.returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / self.returns.len() as f64).sqrt()
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

/// Clips continuous actions row by row into a Box action space (as SB3 and CleanRL's
/// `ClipAction` do before stepping); a no-op for other spaces. The unclipped action is what the
/// policy's log-probability refers to, so batches keep that one.
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

/// A trained policy acting in one env: greedy (deterministic) or sampling, one observation at a time.
pub struct Agent {
    env: Box<dyn rl_env::Env>,
    fast: rl_policies::FastPolicy,
    discrete: bool,
    rng: Pcg64,
    deterministic: bool,
    action_i: [i64; 1],
    action_f: Vec<f32>,
    logp: [f32; 1],
    value: [f32; 1],
}

/// What one [`Agent::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStep {
    /// The action sent to the env (clipped into a Box space).
    pub action: rl_env::OwnedAction,
    /// The env's answer.
    pub step: rl_env::Step,
}

impl Agent {
    /// Builds the env of `config` and the policy with `weights`. With `deterministic`, actions
    /// are the argmax / mean; otherwise they are sampled with a generator seeded by `sample_seed`.
    pub fn new(config: &TrainConfig, weights: &[u8], deterministic: bool, sample_seed: u64) -> anyhow::Result<Self> {
        let env = make(&config.env, &config.env_config)?;
        let mut policy = ActorCritic::new(&config.model, env.observation_space(), env.action_space(), config.seed)?;
        policy.load_safetensors(weights)?;
        let act_dim = env.action_space().flat_dim();
        Ok(Self {
            fast: policy.fast_policy()?,
            discrete: matches!(env.action_space(), Space::Discrete { .. }),
            rng: crate::rollout::stream_rng(sample_seed, u64::MAX),
            deterministic,
            action_i: [0],
            action_f: vec![0.0; act_dim],
            logp: [0.0],
            value: [0.0],
            env,
        })
    }

    /// Resets the env with `seed`; returns the first observation.
    pub fn reset(&mut self, seed: Option<u64>) -> anyhow::Result<Vec<f32>> {
        Ok(self.env.reset(seed, None)?.0)
    }

    /// Acts on `obs` and steps the env.
    pub fn step(&mut self, obs: &[f32]) -> anyhow::Result<AgentStep> {
        let det = self.deterministic;
        let (action, step) = if self.discrete {
            self.fast.act_discrete(obs, &mut self.rng, det, &mut self.action_i, &mut self.logp, &mut self.value)?;
            // The policy emits an index from 0; the env takes a value from its space's start.
            let a = self.env.action_space().discrete_value(self.action_i[0]);
            (rl_env::OwnedAction::Discrete(a), self.env.step(Action::Discrete(a))?)
        } else {
            self.fast.act_continuous(obs, &mut self.rng, det, &mut self.action_f, &mut self.logp, &mut self.value)?;
            clip_to_space(self.env.action_space(), &mut self.action_f);
            (rl_env::OwnedAction::Continuous(self.action_f.clone()), self.env.step(Action::Continuous(&self.action_f))?)
        };
        Ok(AgentStep { action, step })
    }
}

/// Runs `episodes` deterministic episodes of the policy whose safetensors weights are `weights`.
pub fn evaluate(config: &TrainConfig, weights: &[u8], episodes: u64, seed: u64) -> anyhow::Result<EvalStats> {
    let mut agent = Agent::new(config, weights, true, 0)?;
    let mut stats = EvalStats { returns: Vec::new(), lengths: Vec::new() };
    for ep in 0..episodes {
        let mut obs = agent.reset(Some(seed + ep))?;
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let AgentStep { step, .. } = agent.step(&obs)?;
            ret += step.reward;
            len += 1;
            obs = step.obs;
            if step.terminated || step.truncated {
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
/// `{"action", "obs", "reward", "terminated", "truncated"}` per step. Returns the number of
/// finished episodes.
pub fn write_rollout(
    config: &TrainConfig,
    weights: &[u8],
    steps: u64,
    seed: u64,
    deterministic: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u64> {
    let mut agent = Agent::new(config, weights, deterministic, seed)?;
    let mut episode = 0u64;
    let mut obs = agent.reset(Some(seed))?;
    writeln!(out, "{}", serde_json::json!({"reset": {"seed": seed}, "obs": obs}))?;
    for _ in 0..steps {
        let AgentStep { action, step } = agent.step(&obs)?;
        let action = match action {
            rl_env::OwnedAction::Discrete(a) => serde_json::json!(a),
            rl_env::OwnedAction::Continuous(a) => serde_json::json!(a),
            rl_env::OwnedAction::MultiDiscrete(a) => serde_json::json!(a),
        };
        writeln!(
            out,
            "{}",
            serde_json::json!({"action": action, "obs": step.obs, "reward": step.reward,
                               "terminated": step.terminated, "truncated": step.truncated})
        )?;
        obs = step.obs;
        if step.terminated || step.truncated {
            episode += 1;
            obs = agent.reset(Some(seed + episode))?;
            writeln!(out, "{}", serde_json::json!({"reset": {"seed": seed + episode}, "obs": obs}))?;
        }
    }
    out.flush()?;
    Ok(episode)
}
