//! `Chain-v0`, an env defined outside the library, trained with the library's `rl` command line:
//! `cargo run --release -- train --config chain.yaml`.

use rl_env::rng::NpRandom;
use rl_env::{Action, Env, EnvError, EnvSpec, Info, KwargReader, Kwargs, Result, Space, StepResult, seeded_rng};

/// A chain of `length` states (`Discrete` observations). The agent starts in a random state of
/// the left half and moves left (0) or right (1); the right end pays 1 and ends the episode,
/// every other step costs 0.01.
struct Chain {
    length: u64,
    state: Option<i64>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Chain {
    fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new("Chain", kwargs);
        let length = kw.u64("length", 10)?;
        if length < 2 {
            return Err(kw.invalid("length", "at least 2 states", length.to_string()));
        }
        kw.finish()?;
        Ok(Self {
            length,
            state: None,
            rng: None,
            observation_space: Space::discrete_from(length, 0)?,
            action_space: Space::discrete_from(2, 0)?,
        })
    }
}

impl Env for Chain {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, _options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        let state = seeded_rng(&mut self.rng, seed).integers(0, (self.length / 2) as i64)?;
        self.state = Some(state);
        obs[0] = state as f32;
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let state = self.state.ok_or_else(|| EnvError::StepBeforeReset { env: self.id().to_string() })?;
        self.action_space.check(self.id(), action)?;
        let Action::Discrete(a) = action else { unreachable!("checked against Discrete(2)") };
        let state = if a == 1 { state + 1 } else { (state - 1).max(0) };
        self.state = Some(state);
        obs[0] = state as f32;
        let terminated = state == self.length as i64 - 1;
        Ok(StepResult { reward: if terminated { 1.0 } else { -0.01 }, terminated, truncated: false, info: Info::new() })
    }
}

fn main() -> std::process::ExitCode {
    let spec = EnvSpec::new("Chain-v0", |kw| Ok(Box::new(Chain::from_kwargs(kw)?))).max_episode_steps(100);
    rl_env::register(spec).expect("Chain-v0 is registered once");
    rl_cli::main()
}
