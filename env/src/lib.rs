//! Environments with Gymnasium 1.x semantics.
//!
//! - [`Env`]: `reset(seed, options) -> (obs, info)`, `step(action) -> (obs, reward, terminated,
//!   truncated, info)`, with observation and action [`Space`]s.
//! - [`envs`]: CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1,
//!   matching Gymnasium bit for bit (checked against committed golden trajectories).
//! - [`wrappers`]: [`TimeLimit`], [`RecordEpisodeStatistics`] and the wrapper pattern.
//! - [`SyncVectorEnv`]: many envs stepped in lockstep with autoreset, observations in one
//!   contiguous `[n_envs, obs_dim]` buffer.
//! - [`make`] / [`register`]: the registry of env ids.
//!
//! # Examples
//!
//! ```
//! use rl_env::{Action, Env, Kwargs, make};
//!
//! let mut env = make("CartPole-v1", &Kwargs::new())?;
//! let (mut obs, _) = env.reset(Some(0), None)?;
//! let mut ret = 0.0;
//! loop {
//!     // Push the cart toward the side the pole leans to.
//!     let step = env.step(Action::Discrete(i64::from(obs[2] > 0.0)))?;
//!     ret += step.reward;
//!     obs = step.obs;
//!     if step.terminated || step.truncated {
//!         break;
//!     }
//! }
//! assert!(ret >= 1.0);
//! # Ok::<(), rl_env::EnvError>(())
//! ```
#![deny(missing_docs)]

mod env;
pub mod envs;
mod error;
pub mod kwargs_serde;
mod registry;
pub mod rng;
mod space;
pub mod vector;
pub mod wrappers;

pub use env::{Env, Info, Kwargs, Step, StepResult, check_obs_len, reset_bounds, seeded_rng};
pub use error::{EnvError, Result};
pub use registry::{Constructor, EnvSpec, KwargReader, Registry, ids, make, register, spec};
pub use space::{Action, BoxSpace, OwnedAction, Space};
pub use vector::{Actions, FinishedEpisode, SyncVectorEnv};
pub use wrappers::{EnvExt, EpisodeStats, RecordEpisodeStatistics, TimeLimit, Wrapper};
