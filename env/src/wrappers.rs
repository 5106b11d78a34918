//! Env wrappers: [`TimeLimit`], [`RecordEpisodeStatistics`], and the pattern new wrappers follow
//! ([`NormalizeObservation`] and [`NormalizeReward`] live in [`normalize`](crate::normalize)).
//!
//! A wrapper is a struct that owns its inner env, implements [`Env`] by changing what it needs
//! and delegating the rest, and implements [`Wrapper`] to give the inner env back. Wrappers nest
//! by value (`RecordEpisodeStatistics<TimeLimit<CartPole>>`), or over `Box<dyn Env>` when the
//! inner env is only known at run time. [`EnvExt`] adds a builder method per wrapper:
//!
//! ```
//! use rl_env::envs::CartPole;
//! use rl_env::{Action, Env, EnvExt};
//!
//! let mut env = CartPole::new().time_limit(500).record_episode_statistics();
//! env.reset(Some(0), None)?;
//! while !env.step(Action::Discrete(0))?.terminated {}
//! let ep = env.last_episode().unwrap();
//! assert!(ep.length > 0 && ep.r == ep.length as f64);
//! # Ok::<(), rl_env::EnvError>(())
//! ```
//!
//! To write a new wrapper (as [`NormalizeObservation`] does): hold `inner: E`, implement `Env` with
//! `reset_into`/`step_into` calling the inner env and then transforming `obs` in place, keep the
//! spaces consistent with what you emit, implement `Wrapper`, and add a method to `EnvExt`.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::json;

use crate::env::{Env, Info, Kwargs, StepResult};
use crate::error::Result;
use crate::normalize::{NormalizeObservation, NormalizeReward};
use crate::space::{Action, Space};
use crate::state::{StateReader, f64_bits};

/// An env that wraps another one.
pub trait Wrapper: Env {
    /// The wrapped env's type.
    type Inner: Env;

    /// The wrapped env.
    fn inner(&self) -> &Self::Inner;

    /// The wrapped env, mutably.
    fn inner_mut(&mut self) -> &mut Self::Inner;

    /// Unwraps one layer.
    fn into_inner(self) -> Self::Inner;
}

/// Builder methods that wrap any env.
pub trait EnvExt: Env + Sized {
    /// Truncates episodes after `max_episode_steps` steps; see [`TimeLimit`].
    fn time_limit(self, max_episode_steps: u64) -> TimeLimit<Self> {
        TimeLimit::new(self, max_episode_steps)
    }

    /// Records episode returns and lengths; see [`RecordEpisodeStatistics`].
    fn record_episode_statistics(self) -> RecordEpisodeStatistics<Self> {
        RecordEpisodeStatistics::new(self, 100)
    }

    /// Normalizes observations with running statistics; see [`NormalizeObservation`].
    ///
    /// # Panics
    ///
    /// If `epsilon <= 0`.
    fn normalize_observation(self, epsilon: f64) -> NormalizeObservation<Self> {
        NormalizeObservation::new(self, epsilon)
    }

    /// Scales rewards by the spread of their discounted sum; see [`NormalizeReward`].
    ///
    /// # Panics
    ///
    /// If `gamma` is outside `[0, 1]` or `epsilon <= 0`.
    fn normalize_reward(self, gamma: f64, epsilon: f64) -> NormalizeReward<Self> {
        NormalizeReward::new(self, gamma, epsilon)
    }
}

impl<E: Env> EnvExt for E {}

/// Gymnasium's `TimeLimit`: sets `truncated` once `max_episode_steps` steps have been taken
/// since the last reset (and on every step after that).
#[derive(Debug, Clone)]
pub struct TimeLimit<E> {
    inner: E,
    max_episode_steps: u64,
    elapsed_steps: u64,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `inner` with a limit of `max_episode_steps` steps per episode.
    pub fn new(inner: E, max_episode_steps: u64) -> Self {
        Self { inner, max_episode_steps, elapsed_steps: 0 }
    }

    /// The limit.
    pub fn max_episode_steps(&self) -> u64 {
        self.max_episode_steps
    }

    /// Steps taken since the last reset.
    pub fn elapsed_steps(&self) -> u64 {
        self.elapsed_steps
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    /// `{"type": "TimeLimit", "elapsed_steps", "inner"}`; the limit itself is configuration.
    fn save_state(&self) -> Option<serde_json::Value> {
        let inner = self.inner.save_state()?;
        Some(json!({"type": "TimeLimit", "elapsed_steps": self.elapsed_steps, "inner": inner}))
    }
    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        if self.inner.save_state().is_none() {
            // The inner env's own refusal says more than a wrong-type error would.
            return self.inner.restore_state(state);
        }
        let id = self.inner.id().to_string();
        let r = StateReader::new(&id, state, "TimeLimit")?;
        let elapsed_steps = r.u64("elapsed_steps")?;
        self.inner.restore_state(r.value("inner")?)?;
        self.elapsed_steps = elapsed_steps;
        Ok(())
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        let info = self.inner.reset_into(seed, options, obs)?;
        self.elapsed_steps = 0;
        Ok(info)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let mut r = self.inner.step_into(action, obs)?;
        self.elapsed_steps += 1;
        if self.elapsed_steps >= self.max_episode_steps {
            r.truncated = true;
        }
        Ok(r)
    }
}

impl<E: Env> Wrapper for TimeLimit<E> {
    type Inner = E;
    fn inner(&self) -> &E {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
    fn into_inner(self) -> E {
        self.inner
    }
}

/// Statistics of one finished episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeStats {
    /// The undiscounted return.
    pub r: f64,
    /// The number of steps.
    pub length: u64,
    /// Wall-clock seconds from reset to the end of the episode.
    pub t: f64,
}

/// Gymnasium's `RecordEpisodeStatistics`: at the end of every episode, adds
/// `info["episode"] = {"r": return, "l": length, "t": seconds}` and remembers the last
/// `buffer_length` episodes.
#[derive(Debug, Clone)]
pub struct RecordEpisodeStatistics<E> {
    inner: E,
    episode_return: f64,
    episode_length: u64,
    episode_start: Instant,
    history: VecDeque<EpisodeStats>,
    buffer_length: usize,
}

impl<E: Env> RecordEpisodeStatistics<E> {
    /// Wraps `inner`, keeping the statistics of the last `buffer_length` episodes.
    pub fn new(inner: E, buffer_length: usize) -> Self {
        Self {
            inner,
            episode_return: 0.0,
            episode_length: 0,
            episode_start: Instant::now(),
            history: VecDeque::with_capacity(buffer_length),
            buffer_length,
        }
    }

    /// The remembered episodes, oldest first.
    pub fn episodes(&self) -> &VecDeque<EpisodeStats> {
        &self.history
    }

    /// The most recent finished episode.
    pub fn last_episode(&self) -> Option<&EpisodeStats> {
        self.history.back()
    }
}

impl<E: Env> Env for RecordEpisodeStatistics<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    /// The running episode's return, length and elapsed seconds, and the remembered episodes. On
    /// restore, the running episode's clock restarts from the saved elapsed time.
    fn save_state(&self) -> Option<serde_json::Value> {
        let inner = self.inner.save_state()?;
        let history: Vec<_> = self.history.iter().map(|e| json!([f64_bits(e.r), e.length, f64_bits(e.t)])).collect();
        Some(json!({
            "type": "RecordEpisodeStatistics",
            "episode_return": f64_bits(self.episode_return),
            "episode_length": self.episode_length,
            "episode_elapsed_s": f64_bits(self.episode_start.elapsed().as_secs_f64()),
            "history": history,
            "inner": inner,
        }))
    }
    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        if self.inner.save_state().is_none() {
            // The inner env's own refusal says more than a wrong-type error would.
            return self.inner.restore_state(state);
        }
        let id = self.inner.id().to_string();
        let r = StateReader::new(&id, state, "RecordEpisodeStatistics")?;
        let (episode_return, episode_length) = (r.f64("episode_return")?, r.u64("episode_length")?);
        let elapsed = r.f64("episode_elapsed_s")?;
        let expected = "a list of [return bits, length, seconds bits] triples";
        let history = r.value("history")?.as_array().ok_or_else(|| r.invalid("history", expected))?;
        let history = history
            .iter()
            .map(|e| {
                let f = |i: usize| e.get(i).and_then(serde_json::Value::as_u64);
                Some(EpisodeStats { r: f64::from_bits(f(0)?), length: f(1)?, t: f64::from_bits(f(2)?) })
            })
            .collect::<Option<VecDeque<_>>>()
            .ok_or_else(|| r.invalid("history", expected))?;
        let start = std::time::Duration::try_from_secs_f64(elapsed)
            .ok()
            .and_then(|d| Instant::now().checked_sub(d))
            .ok_or_else(|| r.invalid("episode_elapsed_s", "a non-negative number of seconds"))?;
        self.inner.restore_state(r.value("inner")?)?;
        (self.episode_return, self.episode_length, self.episode_start) = (episode_return, episode_length, start);
        self.history = history;
        while self.history.len() > self.buffer_length {
            self.history.pop_front();
        }
        Ok(())
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        let info = self.inner.reset_into(seed, options, obs)?;
        self.episode_return = 0.0;
        self.episode_length = 0;
        self.episode_start = Instant::now();
        Ok(info)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let mut r = self.inner.step_into(action, obs)?;
        self.episode_return += r.reward;
        self.episode_length += 1;
        if r.done() {
            let stats = EpisodeStats {
                r: self.episode_return,
                length: self.episode_length,
                t: self.episode_start.elapsed().as_secs_f64(),
            };
            r.info.insert("episode".into(), json!({"r": stats.r, "l": stats.length, "t": stats.t}));
            if self.buffer_length > 0 {
                if self.history.len() == self.buffer_length {
                    self.history.pop_front();
                }
                self.history.push_back(stats);
            }
        }
        Ok(r)
    }
}

impl<E: Env> Wrapper for RecordEpisodeStatistics<E> {
    type Inner = E;
    fn inner(&self) -> &E {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
    fn into_inner(self) -> E {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::Pendulum;

    #[test]
    fn time_limit_truncates_at_limit_and_resets_count() {
        let mut env = Pendulum::new().time_limit(5);
        for _ in 0..2 {
            env.reset(Some(1), None).unwrap();
            let flags: Vec<bool> = (0..6).map(|_| env.step(Action::Continuous(&[0.0])).unwrap().truncated).collect();
            assert_eq!(flags, [false, false, false, false, true, true]);
        }
    }

    #[test]
    fn wrapper_states_round_trip() {
        let mut env = Pendulum::new().time_limit(4).record_episode_statistics();
        env.reset(Some(3), None).unwrap();
        for _ in 0..6 {
            env.step(Action::Continuous(&[0.3])).unwrap();
        }
        let saved: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&env.save_state().unwrap()).unwrap()).unwrap();
        let mut resumed = Pendulum::new().time_limit(4).record_episode_statistics();
        resumed.restore_state(&saved).unwrap();
        assert_eq!(resumed.inner().elapsed_steps(), 6);
        assert_eq!(resumed.episodes(), env.episodes());
        let (a, b) = (env.step(Action::Continuous(&[0.1])).unwrap(), resumed.step(Action::Continuous(&[0.1])).unwrap());
        assert_eq!((a.obs, a.reward, a.truncated), (b.obs, b.reward, b.truncated));
        assert_eq!(a.info["episode"]["r"], b.info["episode"]["r"]);
        let mut unwrapped = Pendulum::new().time_limit(4);
        let err = unwrapped.restore_state(&saved).unwrap_err().to_string();
        assert!(
            err.ends_with("expected a state saved by TimeLimit, got one saved by RecordEpisodeStatistics"),
            "{err}"
        );
    }

    #[test]
    fn episode_statistics_sum_rewards_and_count_steps() {
        let mut env = Pendulum::new().time_limit(10).record_episode_statistics();
        env.reset(Some(3), None).unwrap();
        let mut total = 0.0;
        let mut last = None;
        for _ in 0..10 {
            let s = env.step(Action::Continuous(&[1.0])).unwrap();
            total += s.reward;
            last = Some(s);
        }
        let last = last.unwrap();
        assert_eq!(last.info["episode"]["l"], 10);
        assert_eq!(last.info["episode"]["r"].as_f64().unwrap(), total);
        assert_eq!(env.last_episode().unwrap().r, total);
        assert_eq!(env.inner().elapsed_steps(), 10);
    }
}
