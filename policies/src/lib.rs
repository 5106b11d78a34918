//! Policies for the RL library: candle actor-critic networks and a fast inference path.
//!
//! - [`ActorCritic`]: an MLP actor-critic (Discrete or Box actions) built from a
//!   [`PolicyConfig`], with orthogonal init; [`ActorCritic::evaluate_actions`] is what the
//!   learner differentiates.
//! - [`Categorical`] and [`DiagGaussian`]: action distributions.
//! - Weights to and from safetensors bytes with a version ([`ActorCritic::to_safetensors`]).
//! - [`FastPolicy`]: the same network on plain `f32` buffers for batched rollout inference.
//! - [`clip_grad_norm`]: global-norm gradient clipping over candle's `GradStore`.
//!
//! # Examples
//!
//! ```
//! use rl_env::Space;
//! use rl_env::rng::NpRandom;
//! use rl_policies::{ActorCritic, PolicyConfig};
//!
//! let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4])?;
//! let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2)?, 0)?;
//! let fast = policy.fast_policy()?;
//! let obs = [0.1f32, 0.0, -0.1, 0.2, 0.0, 0.0, 0.0, 0.0]; // two observations
//! let (mut actions, mut logp, mut values) = ([0i64; 2], [0.0f32; 2], [0.0f32; 2]);
//! fast.act_discrete(&obs, NpRandom::from_seed(1).bits_mut(), false, &mut actions, &mut logp, &mut values)?;
//! assert!(actions.iter().all(|a| *a == 0 || *a == 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod bias_act;
mod categorical_ops;
mod clip;
mod config;
mod distributions;
mod error;
mod fast;
mod fastmath;
mod init;
mod model;
mod weights;

pub use bias_act::BiasAct;
pub use categorical_ops::{CategoricalEntropy, CategoricalLogProb};
pub use clip::clip_grad_norm;
pub use config::{Activation, PolicyConfig};
pub use distributions::{
    Categorical, DiagGaussian, argmax_row, gaussian_log_prob_row, log_softmax_row, sample_categorical_row,
};
pub use error::{PolicyError, Result};
pub use fast::FastPolicy;
pub use fastmath::{FastTanh, exp_f32, tanh_f32};
pub use init::orthogonal;
pub use model::{ActionKind, ActorCritic, Architecture};
pub use weights::{WEIGHTS_FORMAT_VERSION, weights_architecture, weights_version};
