//! The network a rollout worker or an evaluation acts with, for every algorithm, and how it
//! explores.
//!
//! | algorithm | network (broadcast weights)  | explores with                         | acts greedily with |
//! |-----------|------------------------------|---------------------------------------|--------------------|
//! | PPO       | actor-critic                 | samples of its action distribution    | argmax / mean      |
//! | DQN       | Q-network                    | epsilon-greedy (epsilon from driver)  | argmax of Q        |
//! | SAC       | squashed Gaussian actor      | samples `tanh(mean + std * noise)`    | `tanh(mean)`       |
//!
//! Before `learning_starts` the off-policy algorithms sample uniformly random actions from the
//! action space (SB3's warm-up), whatever the network says.

use rl_env::{BoxSpace, Space};
use rl_policies::{ActorCritic, FastPolicy, FastQNetwork, FastSquashedActor, QNetwork, SquashedGaussianActor};
use serde::{Deserialize, Serialize};

use crate::config::{AlgorithmId, TrainConfig};
use crate::error::{Error, Result};
use crate::observation::{ObservationEncoder, actor_critic};

/// How a rollout worker picks actions in one sampling round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Exploration {
    /// The policy's own exploration: PPO and SAC sample their distribution, DQN acts greedily.
    Policy,
    /// Uniformly random actions from the action space (the off-policy warm-up).
    Random,
    /// DQN: a random action with this probability, else the greedy one (each sub-env draws).
    EpsilonGreedy(f64),
}

/// How [`crate::action::PolicyActions::act`] acts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActMode {
    /// The deterministic mode: argmax of the logits or of Q, the Gaussian's mean, `tanh(mean)`.
    Deterministic,
    /// Exploring, as in training.
    Explore(Exploration),
}

/// The acting network of an algorithm, with its plain-`f32` fast path.
pub enum ActingPolicy {
    /// PPO's actor-critic.
    ActorCritic {
        /// The candle model (weights load into it).
        policy: ActorCritic,
        /// Its fast path.
        fast: Box<FastPolicy>,
    },
    /// DQN's Q-network.
    Q {
        /// The candle model.
        net: QNetwork,
        /// Its fast path.
        fast: Box<FastQNetwork>,
    },
    /// SAC's squashed Gaussian actor.
    Squashed {
        /// The candle model.
        actor: SquashedGaussianActor,
        /// Its fast path.
        fast: Box<FastSquashedActor>,
    },
}

impl std::fmt::Debug for ActingPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ActorCritic { .. } => "ActingPolicy::ActorCritic",
            Self::Q { .. } => "ActingPolicy::Q",
            Self::Squashed { .. } => "ActingPolicy::Squashed",
        })
    }
}

impl ActingPolicy {
    /// The freshly initialized acting network of `config`'s algorithm for these spaces, and the
    /// encoder of its inputs. Weights come later with [`ActingPolicy::load`]; the init seed is
    /// the config's, as the learner's.
    pub fn new(config: &TrainConfig, obs_space: &Space, act_space: &Space) -> Result<(Self, ObservationEncoder)> {
        if config.algorithm == AlgorithmId::Ppo {
            let (policy, encoder) = actor_critic(&config.model, obs_space, act_space, config.seed)?;
            return Ok((Self::ActorCritic { fast: Box::new(policy.fast_policy()?), policy }, encoder));
        }
        let encoder = ObservationEncoder::new(obs_space);
        let policy = match (config.algorithm, act_space) {
            (AlgorithmId::Dqn, Space::Discrete { n, .. }) => {
                let net = q_network(config, encoder.dim(), *n as usize)?;
                Self::Q { fast: Box::new(net.fast()?), net }
            }
            (AlgorithmId::Sac, Space::Box(b)) => {
                let actor = squashed_actor(config, encoder.dim(), b)?;
                Self::Squashed { fast: Box::new(actor.fast()?), actor }
            }
            (algorithm, space) => {
                return Err(Error::config(
                    "algorithm",
                    format!("{} cannot act in the action space {space}", algorithm.name()),
                ));
            }
        };
        Ok((policy, encoder))
    }

    /// Loads published weights (names and shapes checked) and rebuilds the fast path; returns
    /// the weights' version.
    pub fn load(&mut self, bytes: &[u8]) -> Result<u64> {
        Ok(match self {
            Self::ActorCritic { policy, fast } => {
                let v = policy.load_safetensors(bytes)?;
                **fast = policy.fast_policy()?;
                v
            }
            Self::Q { net, fast } => {
                let v = net.load_safetensors(bytes)?;
                **fast = net.fast()?;
                v
            }
            Self::Squashed { actor, fast } => {
                let v = actor.load_safetensors(bytes)?;
                **fast = actor.fast()?;
                v
            }
        })
    }

    /// The actor-critic's fast path, for value estimates (PPO only).
    pub fn actor_critic(&self) -> Option<&FastPolicy> {
        match self {
            Self::ActorCritic { fast, .. } => Some(fast.as_ref()),
            _ => None,
        }
    }
}

/// DQN's Q-network for `config` (its model, `dueling`, the run seed), on the CPU: the one
/// constructor runners and the learner share, so their initial weights agree.
pub fn q_network(config: &TrainConfig, obs_dim: usize, n_actions: usize) -> Result<QNetwork> {
    let m = &config.model;
    let device = candle_core::Device::Cpu;
    Ok(QNetwork::new(obs_dim, n_actions, &m.fcnet_hiddens, m.fcnet_activation, config.dueling, config.seed, &device)?)
}

/// SAC's actor for `config` (its model, the run seed) squashing into `bounds`, on the CPU: the
/// one constructor runners and the learner share, so their initial weights agree.
pub fn squashed_actor(config: &TrainConfig, obs_dim: usize, bounds: &BoxSpace) -> Result<SquashedGaussianActor> {
    let m = &config.model;
    let device = candle_core::Device::Cpu;
    Ok(SquashedGaussianActor::new(
        obs_dim,
        bounds.low(),
        bounds.high(),
        &m.fcnet_hiddens,
        m.fcnet_activation,
        config.seed,
        &device,
    )?)
}
