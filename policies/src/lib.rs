//! Policies for the RL library: candle actor-critic networks, action distributions, versioned
//! safetensors weights and a fast inference path for rollouts.
//!
//! - [`ActorCritic`]: an MLP actor-critic for Discrete or Box action spaces, built from a
//!   [`PolicyConfig`] (RLlib's `fcnet_hiddens`, `fcnet_activation`, `vf_share_layers`) with
//!   CleanRL's orthogonal init, seeded. [`ActorCritic::evaluate_actions`] is what the learner
//!   differentiates; [`ActorCritic::vars`] is what its optimizer updates.
//! - [`Categorical`] and [`DiagGaussian`]: action distributions with seeded sampling,
//!   log-probabilities, entropies and modes.
//! - Weights to and from safetensors bytes tagged with a policy version and the architecture
//!   ([`ActorCritic::to_safetensors`], [`ActorCritic::load_safetensors`],
//!   [`ActorCritic::from_safetensors`]).
//! - Off-policy networks with PyTorch's default `nn.Linear` init, seeded: [`Mlp`], DQN's
//!   [`QNetwork`] (plain or dueling), SAC's [`SquashedGaussianActor`] and [`QCritic`]; each has
//!   `soft_update_from` / `duplicate` for target networks, and the Q-network and the actor have
//!   plain-`f32` snapshots for rollout workers ([`FastQNetwork`], [`FastSquashedActor`]).
//!   [`vars_to_safetensors`] and [`load_vars_safetensors`] checkpoint any set of named vars.
//! - [`FastPolicy`]: a plain-`f32` snapshot of the same network for batched rollout inference,
//!   reading observations in place and writing into caller buffers.
//!
//! Performance: candle's CPU ops cost microseconds each whatever their size, and candle picks
//! its thread count on every matmul (one per physical core, looked up each time, unless
//! `RAYON_NUM_THREADS` is set). For networks this small, set `RAYON_NUM_THREADS=1` at the start
//! of `main` and run rollouts through [`FastPolicy`]; `benches/inference.rs` measures both.
//!
//! # Examples
//!
//! One policy step for two CartPole-like observations, then the PPO quantities for the learner:
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use rl_env::Space;
//! use rl_env::rng::NpRandom;
//! use rl_policies::{ActorCritic, PolicyConfig};
//!
//! let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4])?;
//! let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2)?, 0)?;
//!
//! // Rollout: sample actions for a batch of observations `[2, 4]` into caller buffers.
//! let fast = policy.fast_policy()?;
//! let obs = [0.1f32, 0.0, -0.1, 0.2, 0.0, 0.0, 0.0, 0.0];
//! let (mut actions, mut logp, mut values) = ([0i64; 2], [0.0f32; 2], [0.0f32; 2]);
//! let mut rng = NpRandom::from_seed(1);
//! fast.act_discrete(&obs, rng.bits_mut(), false, &mut actions, &mut logp, &mut values)?;
//! assert!(actions.iter().all(|a| *a == 0 || *a == 1));
//!
//! // Learner: the same numbers from candle, differentiable.
//! let x = Tensor::from_slice(&obs, (2, 4), &Device::Cpu)?;
//! let a = Tensor::new(&[actions[0] as u32, actions[1] as u32], &Device::Cpu)?;
//! let (new_logp, entropy, new_values) = policy.evaluate_actions(&x, &a)?;
//! let diff = (new_logp - Tensor::new(&logp, &Device::Cpu)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-5);
//! assert_eq!((entropy.dims(), new_values.dims()), (&[2usize][..], &[2usize][..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod bias_act;
mod categorical_ops;
mod config;
mod distributions;
mod error;
mod fast;
mod fastmath;
mod frozen;
mod init;
mod kernel;
mod mlp;
mod model;
mod qnet;
mod squashed;
mod test_utils;
mod weights;

pub use bias_act::BiasAct;
pub use categorical_ops::{CategoricalEntropy, CategoricalLogProb};
pub use config::{Activation, PolicyConfig};
pub use distributions::{
    Categorical, DiagGaussian, argmax_row, gaussian_log_prob_row, log_softmax_row, sample_categorical_row,
};
pub use error::{PolicyError, Result};
pub use fast::{FAST_BLOCK_ROWS, FastPolicy};
pub use fastmath::{FastTanh, exp_f32, tanh_f32};
pub use frozen::FrozenMatmul;
pub use init::orthogonal;
pub use mlp::{FastMlp, Mlp, load_vars_safetensors, vars_to_safetensors};
pub use model::{ActionKind, ActorCritic, Architecture};
pub use qnet::{FastQNetwork, QNetwork};
pub use squashed::{FastSquashedActor, LOG_STD_MAX, LOG_STD_MIN, QCritic, SquashedGaussianActor};
pub use weights::{WEIGHTS_FORMAT_VERSION, weights_architecture, weights_version};
