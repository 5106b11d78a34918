//! RL algorithms on the rl runtime: PPO with rollout-worker actors and a learner actor.
//!
//! - [`config`]: the YAML training config (RLlib key names), overrides and validation.
//! - [`ppo`]: the PPO driver ([`ppo::train`]), reading like the paper's pseudocode, and its loss.
//! - [`rollout`]: the rollout-worker actor; [`learner`]: the learner actor.
//! - [`gae`]: generalized advantage estimation with bootstrapping on truncation.
//! - [`batch`]: trajectory batches as safetensors; [`optim`]: Adam with fused clipping.
//! - [`metrics`], [`checkpoint`], [`evaluation`]: what a run writes and how it is judged;
//!   [`tensorboard`]: TensorBoard event files of every metric; [`plot`]: learning-curve PNGs.
//! - [`experiment`]: reproduction runs of configs x seeds, compared with published results.
//! - [`cli`]: the `rl` command line, reusable by custom environment crates; [`bench`]: `rl bench`.

pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod evaluation;
pub mod experiment;
pub mod gae;
pub mod learner;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod ppo;
pub mod rollout;
pub mod tensorboard;
