//! A custom environment defined outside `rl-env`: `Corridor-v0`.
//!
//! The agent walks a corridor of `length` cells, starting in the middle. The action is the move:
//! -1 steps left, 0 stays, +1 steps right (`Discrete(3, start=-1)`). Reaching the right end pays +1 and terminates; every step costs 0.01.
//! The left end is a wall. Observation: `[position / (length - 1), 1.0]` as `f32`.
//! The registry wraps it in a 100-step time limit.
//!
//! This file is everything a user writes to train on their own env: implement [`Env`], then
//! [`register`] it before handing control to the `rl` command line (see `main.rs`). The id is
//! written once, in [`register_corridor`]: the registry gives made envs their [`Env::id`] and names
//! it in their errors, so `Corridor` does not implement `id` and names itself with `self.id()`.

use rl_env::rng::NpRandom;
use rl_env::{
    Action, Env, EnvError, EnvSpec, Info, KwargReader, Kwargs, Result, Space, StepResult, check_obs_len, register,
    seeded_rng,
};

/// The most cells a corridor may have.
const MAX_LENGTH: u64 = 1_000_000;

/// The id the env is registered under.
pub const ID: &str = "Corridor-v0";

/// The corridor env.
#[derive(Debug, Clone)]
pub struct Corridor {
    length: u32,
    position: Option<u32>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Corridor {
    /// A corridor of `length` cells (at least 3).
    pub fn new(length: u32) -> Result<Self> {
        if length < 3 {
            return Err(KwargReader::new(ID, &Kwargs::new()).invalid("length", "at least 3", length));
        }
        Ok(Self {
            length,
            position: None,
            rng: None,
            observation_space: Space::boxed(vec![0.0, 1.0], vec![1.0, 1.0], vec![2])?,
            action_space: Space::discrete_from(3, -1)?,
        })
    }

    /// Reads the `length` keyword: an integer from 3 to 1,000,000 (default 8).
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let length = kw.u64("length", 8)?;
        if !(3..=MAX_LENGTH).contains(&length) {
            return Err(kw.invalid("length", &format!("from 3 to {MAX_LENGTH}"), length));
        }
        kw.finish()?;
        Self::new(u32::try_from(length).expect("length <= MAX_LENGTH fits a u32"))
    }

    fn write_obs(&self, obs: &mut [f32]) {
        let p = self.position.unwrap_or(0);
        obs[0] = p as f32 / (self.length - 1) as f32;
        obs[1] = 1.0;
    }
}

impl Env for Corridor {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, _options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        check_obs_len(2, obs)?;
        // Start in the middle, one cell either way at random (`np_random.integers(0, 3)`).
        let jitter = seeded_rng(&mut self.rng, seed).integers(0, 3)?;
        self.position = Some(self.length / 2 - 1 + jitter as u32);
        self.write_obs(obs);
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        check_obs_len(2, obs)?;
        let p = self.position.ok_or_else(|| EnvError::StepBeforeReset { env: self.id().to_string() })?;
        self.action_space.check(self.id(), action)?;
        let p = match action {
            Action::Discrete(-1) => p.saturating_sub(1),
            Action::Discrete(0) => p,
            _ => (p + 1).min(self.length - 1),
        };
        self.position = Some(p);
        self.write_obs(obs);
        let terminated = p == self.length - 1;
        Ok(StepResult { reward: if terminated { 1.0 } else { -0.01 }, terminated, truncated: false, info: Info::new() })
    }
}

/// Registers `Corridor-v0` (100-step time limit) in the process-wide registry.
pub fn register_corridor() -> Result<()> {
    register(EnvSpec::new(ID, |kw| Ok(Box::new(Corridor::from_kwargs(kw)?))).max_episode_steps(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walking_right_reaches_the_goal() {
        let mut env = Corridor::new(5).unwrap();
        let (obs, _) = env.reset(Some(0), None).unwrap();
        assert!(obs[0] > 0.0 && obs[0] < 1.0);
        let mut steps = 0;
        loop {
            let s = env.step(Action::Discrete(1)).unwrap();
            steps += 1;
            if s.terminated {
                assert_eq!(s.reward, 1.0);
                assert_eq!(s.obs[0], 1.0);
                break;
            }
            assert_eq!(s.reward, -0.01);
        }
        assert!(steps <= 3);
        assert!(env.step(Action::Discrete(2)).is_err());
        // Staying and stepping left (the space starts at -1).
        let (obs, _) = env.reset(Some(0), None).unwrap();
        assert_eq!(env.step(Action::Discrete(0)).unwrap().obs, obs);
        assert!(env.step(Action::Discrete(-1)).unwrap().obs[0] < obs[0]);
        assert!(env.step(Action::Discrete(-2)).is_err());
    }

    #[test]
    fn bad_length_is_an_error() {
        let message = |kw: Kwargs| Corridor::from_kwargs(&kw).unwrap_err().to_string();
        let two = [("length".to_string(), 2.into())].into_iter().collect();
        assert_eq!(message(two), "Corridor-v0: length must be from 3 to 1000000, got 2");
        let fraction = [("length".to_string(), 8.5.into())].into_iter().collect();
        assert_eq!(message(fraction), "Corridor-v0: length must be an integer from 0 to 18446744073709551615, got 8.5");
        let negative = [("length".to_string(), (-1).into())].into_iter().collect();
        assert_eq!(message(negative), "Corridor-v0: length must be a non-negative integer, got -1");
    }

    /// Registered and made by id, the env passes every check of the env checker.
    #[test]
    fn registered_corridor_passes_the_env_checker() {
        register_corridor().unwrap();
        let report = rl_env::check_env(ID, &Kwargs::new()).unwrap();
        assert!(report.is_ok(), "{report}");
        // The constant second feature is deliberate; the checker points it out, as Gymnasium's does.
        let warnings: Vec<&str> = report.warnings().map(|w| w.message.as_str()).collect();
        assert_eq!(
            warnings,
            ["observation space Box element 1 has equal bounds [1.0, 1.0]: it can take one value only"]
        );
        let mut env = rl_env::make(ID, &Kwargs::new()).unwrap();
        assert_eq!(env.id(), ID);
        env.reset(Some(0), None).unwrap();
        let err = env.step(Action::Discrete(2)).unwrap_err().to_string();
        assert_eq!(err, "Corridor-v0: action 2 is not in the action space Discrete(3, start=-1)");
    }
}
