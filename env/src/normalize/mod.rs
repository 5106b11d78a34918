//! Observation and reward normalization: Gymnasium's `NormalizeObservation` and `NormalizeReward`
//! (as wrappers and as bare transforms), and RLlib's `MeanStdFilter`.
//!
//! Two families, because the two libraries normalize differently:
//!
//! - **Gymnasium** ([`RunningMeanStd`], [`ObservationNormalizer`], [`RewardNormalizer`], and the
//!   wrappers [`NormalizeObservation`] and [`NormalizeReward`]): population variance with a
//!   pseudo-count of `1e-4`, `(x - mean) / sqrt(var + epsilon)` for observations, and rewards
//!   divided (not centered) by the spread of a discounted sum of rewards. Each env keeps its own
//!   statistics, which is how CleanRL's `ppo_continuous_action.py` uses them: per sub-env,
//!   `NormalizeObservation`, clip to `[-10, 10]`, `NormalizeReward(gamma)`, clip to `[-10, 10]`.
//! - **RLlib** ([`RunningStat`], [`MeanStdFilter`]): Welford's algorithm with the sample variance,
//!   `(x - mean) / (std + 1e-6)`, and a buffer per worker so that a driver can merge every
//!   worker's observations into one set of statistics and hand it back.
//!
//! **Example:** CleanRL's stack around CartPole.
//!
//! ```
//! use rl_env::{Action, Env, EnvExt, Kwargs, make};
//!
//! let mut env = make("CartPole-v1", &Kwargs::new())?
//!     .normalize_observation(1e-8)
//!     .with_clip(Some(10.0))
//!     .normalize_reward(0.99, 1e-8)
//!     .with_clip(Some(10.0));
//! env.reset(Some(0), None)?;
//! let step = env.step(Action::Discrete(1))?;
//! assert!(step.obs.iter().all(|x| x.abs() <= 10.0) && step.reward.abs() <= 10.0);
//! # Ok::<(), rl_env::EnvError>(())
//! ```

mod gymnasium;
mod rllib;
mod wrappers;

pub use gymnasium::{ObservationNormalizer, RewardNormalizer, RunningMeanStd};
pub use rllib::{MeanStdFilter, RunningStat, SMALL_NUMBER};
pub use wrappers::{NormalizeObservation, NormalizeReward};

#[cfg(test)]
mod tests;
