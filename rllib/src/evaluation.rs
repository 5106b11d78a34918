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
#[derive(Debug, Clone, PartialEq)]
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

/// Runs `episodes` deterministic episodes of the policy whose safetensors weights are `weights`.
pub fn evaluate(config: &TrainConfig, weights: &[u8], episodes: u64, seed: u64) -> anyhow::Result<EvalStats> {
    let mut env = make(&config.env, &config.env_config)?;
    let mut policy = ActorCritic::new(&config.model, env.observation_space(), env.action_space(), config.seed)?;
    policy.load_safetensors(weights)?;
    let fast = policy.fast_policy()?;
    let discrete = matches!(env.action_space(), Space::Discrete { .. });
    let act_dim = env.action_space().flat_dim();
    // Deterministic mode draws nothing; the generator only satisfies the signature.
    let mut rng = Pcg64::from_raw_state(0, 1);
    let (mut a_i, mut a_f, mut logp, mut value) = ([0i64], vec![0.0f32; act_dim], [0.0f32], [0.0f32]);
    let mut stats = EvalStats { returns: Vec::new(), lengths: Vec::new() };
    for ep in 0..episodes {
        let (mut obs, _) = env.reset(Some(seed + ep), None)?;
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let step = if discrete {
                fast.act_discrete(&obs, &mut rng, true, &mut a_i, &mut logp, &mut value)?;
                env.step(Action::Discrete(a_i[0]))?
            } else {
                fast.act_continuous(&obs, &mut rng, true, &mut a_f, &mut logp, &mut value)?;
                clip_to_space(env.action_space(), &mut a_f);
                env.step(Action::Continuous(&a_f))?
            };
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
