//! RL algorithms on the rl runtime: PPO, DQN and SAC with rollout-worker actors and a learner
//! actor, and the machinery every algorithm shares (config, run directory, metrics, checkpoints,
//! evaluation).
//!
//! ```no_run
//! use std::path::Path;
//!
//! let config = rllib::TrainConfig::load(Path::new("configs/ppo.yaml"), &["seed=2".into()])?;
//! let summary = rllib::train(&config, Path::new("runs/ppo-seed2"), &mut ())?;
//! println!("{summary}");
//! # Ok::<(), rllib::Error>(())
//! ```
//!
//! - [`config`]: the YAML training config (RLlib key names), overrides and validation.
//! - [`train`]: the entry point; [`algorithm`]: the [`Algorithm`] trait and the training loop
//!   every algorithm shares;
//!   [`callbacks`]: how a run reports to the program that started it.
//! - [`ppo`]: PPO, top to bottom: hyperparameters, driver step, learner, and [`ppo::loss`].
//! - [`dqn`] and [`sac`]: the off-policy algorithms' learners, top to bottom; [`off_policy`]:
//!   their shared driver rounds and replay side; [`replay`]: the replay buffer (uniform or
//!   prioritized) and n-step returns; [`acting`]: the network a runner or evaluation acts with.
//! - [`rollout`]: the rollout-worker actor; [`action`]: policy outputs to env actions;
//!   [`observation`]: env observations to policy inputs (one-hot for Discrete spaces);
//!   [`batch`]: trajectory batches as safetensors; [`gae`]: advantages with truncation
//!   bootstrapping; [`optim`]: Adam with fused global-norm clipping; [`seeding`]: the random
//!   streams of a run.
//! - [`run_dir`]: the run directory's files, writers and readers; [`metrics`]: the metric
//!   columns; [`tensorboard`]: TensorBoard event files; [`checkpoint`]: checkpoint directories;
//!   [`evaluation`]: deterministic evaluation and trajectories; [`stats`]: mean and std.
//! - [`error`]: the one error type.
//!
//! The `rl` command line is the crate `rl-cli` (in `rllib/cli/`), built on this one.
#![deny(missing_docs)]

pub mod acting;
pub mod action;
pub mod algorithm;
pub mod batch;
pub mod callbacks;
pub mod checkpoint;
pub mod config;
pub mod dqn;
pub mod env_runners;
pub mod error;
pub mod evaluation;
pub mod failpoint;
pub mod gae;
pub mod interrupt;
pub mod metrics;
pub mod normalization;
pub mod observation;
pub mod off_policy;
pub mod optim;
pub mod ppo;
pub mod replay;
pub mod rollout;
pub mod run_dir;
pub mod sac;
pub mod seeding;
pub mod stats;
pub mod tensorboard;
mod train;

pub use algorithm::{Algorithm, StepReport};
pub use callbacks::Callbacks;
pub use config::TrainConfig;
pub use error::{Error, Result};
pub use metrics::IterationResult;
pub use run_dir::{RunDir, TrainSummary};
pub use train::{build, resume, resume_on, train, train_on};

/// Makes every algorithm's actor types buildable by name on `rt`: what every node of a cluster
/// does at start, so a driver can place rollout workers (and learners) on it.
pub fn register_actors(rt: &rl_runtime::Runtime) {
    rt.register_actor::<ppo::Learner>();
    rt.register_actor::<rollout::RolloutWorker>();
    rt.register_actor::<dqn::DqnLearner>();
    rt.register_actor::<sac::SacLearner>();
}
