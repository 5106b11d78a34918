//! CartPole-v1: balance a pole on a cart pushed left or right (Gymnasium's `cartpole.py`).

use crate::env::{Env, Info, Kwargs, StepResult, check_obs_len, reset_bounds, seeded_rng};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::NpRandom;
use crate::space::{Action, Space};
use crate::state::{self, StateReader};

use super::check_range;

const ID: &str = "CartPole-v1";

// Constants of `CartPoleEnv.__init__` in gymnasium/envs/classic_control/cartpole.py (1.4.0),
// derived in the same order as there.
const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

/// Gymnasium's `CartPoleEnv`: a pole hinged on a cart; action 0 pushes the cart left, 1 right.
///
/// Observation `[x, x_dot, theta, theta_dot]` (float32). The episode terminates when the cart
/// leaves `|x| <= 2.4` or the pole leans beyond 12 degrees. Reward 1.0 per step, including the
/// terminating one; steps after termination return 0.0 (with `sutton_barto_reward`: 0.0 per
/// step, -1.0 from termination on). Reset draws every state variable from `U(-0.05, 0.05)`
/// (reset options `low` / `high` change the range).
///
/// # Examples
///
/// ```
/// use rl_env::envs::CartPole;
/// use rl_env::{Action, Env};
///
/// let mut env = CartPole::new();
/// let (obs, _) = env.reset(Some(0), None)?;
/// assert_eq!(obs.len(), 4);
/// assert_eq!(env.step(Action::Discrete(1))?.reward, 1.0);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CartPole {
    sutton_barto_reward: bool,
    state: Option<[f64; 4]>,
    steps_beyond_terminated: Option<u64>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl CartPole {
    /// CartPole with Gymnasium's defaults (`sutton_barto_reward=False`).
    pub fn new() -> Self {
        let high = [(X_THRESHOLD * 2.0) as f32, f32::INFINITY, (THETA_THRESHOLD_RADIANS * 2.0) as f32, f32::INFINITY];
        Self {
            sutton_barto_reward: false,
            state: None,
            steps_beyond_terminated: None,
            rng: None,
            observation_space: Space::boxed(high.map(|h| -h).to_vec(), high.to_vec(), vec![4])
                .expect("CartPole bounds are valid"),
            action_space: Space::discrete(2).expect("Discrete(2) is valid"),
        }
    }

    /// CartPole from Gymnasium's constructor keywords: `sutton_barto_reward` (bool, default false).
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let sutton_barto_reward = kw.bool("sutton_barto_reward", false)?;
        kw.finish()?;
        Ok(Self { sutton_barto_reward, ..Self::new() })
    }
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for CartPole {
    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "type": ID,
            "state": self.state.as_ref().map(|s| state::f64s_bits(s)),
            "steps_beyond_terminated": self.steps_beyond_terminated,
            "rng": state::rng_state(self.rng.as_ref()),
        }))
    }

    fn restore_state(&mut self, saved: &serde_json::Value) -> Result<()> {
        let r = StateReader::new(ID, saved, ID)?;
        let (st, beyond, rng) = (r.opt_f64_array("state")?, r.opt_u64("steps_beyond_terminated")?, r.rng("rng")?);
        (self.state, self.steps_beyond_terminated, self.rng) = (st, beyond, rng);
        Ok(())
    }

    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        check_obs_len(4, obs)?;
        let (low, high) = reset_bounds(ID, options, -0.05, 0.05)?;
        check_range(ID, "low/high", low, high)?;
        let state = seeded_rng(&mut self.rng, seed).uniform_array::<4>(low, high);
        self.state = Some(state);
        self.steps_beyond_terminated = None;
        obs.copy_from_slice(&state.map(|v| v as f32));
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let [mut x, mut x_dot, mut theta, mut theta_dot] =
            self.state.ok_or_else(|| EnvError::StepBeforeReset { env: ID.to_string() })?;
        self.action_space.check(ID, action)?;
        check_obs_len(4, obs)?;
        let force = if action == Action::Discrete(1) { FORCE_MAG } else { -FORCE_MAG };
        let costheta = theta.cos();
        let sintheta = theta.sin();
        // np.square(v) is v * v.
        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        // Gymnasium's default kinematics integrator, "euler".
        x += TAU * x_dot;
        x_dot += TAU * xacc;
        theta += TAU * theta_dot;
        theta_dot += TAU * thetaacc;
        let state = [x, x_dot, theta, theta_dot];
        self.state = Some(state);

        // Not `RangeInclusive::contains`: a NaN state must not count as terminated, as in Python.
        #[allow(clippy::manual_range_contains)]
        let terminated =
            x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD_RADIANS || theta > THETA_THRESHOLD_RADIANS;
        let reward = if !terminated {
            if self.sutton_barto_reward { 0.0 } else { 1.0 }
        } else if let Some(n) = self.steps_beyond_terminated.as_mut() {
            // Stepping past termination is undefined behaviour in Gymnasium; it pays nothing.
            *n += 1;
            if self.sutton_barto_reward { -1.0 } else { 0.0 }
        } else {
            self.steps_beyond_terminated = Some(0);
            if self.sutton_barto_reward { -1.0 } else { 1.0 }
        };
        obs.copy_from_slice(&state.map(|v| v as f32));
        Ok(StepResult { reward, terminated, truncated: false, info: Info::new() })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kwargs(v: serde_json::Value) -> Kwargs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn invalid_action_is_an_error_naming_the_env() {
        let mut env = CartPole::new();
        env.reset(Some(0), None).unwrap();
        for bad in [Action::Discrete(2), Action::Discrete(-1), Action::Continuous(&[1.0])] {
            let err = env.step(bad).unwrap_err();
            assert!(matches!(err, EnvError::InvalidAction { .. }), "{err:?}");
            assert!(err.to_string().starts_with("CartPole-v1: action"), "{err}");
        }
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let err = CartPole::new().step(Action::Discrete(0)).unwrap_err();
        assert!(matches!(err, EnvError::StepBeforeReset { .. }), "{err:?}");
    }

    #[test]
    fn kwargs_are_read_and_unknown_ones_rejected() {
        let env = CartPole::from_kwargs(&kwargs(json!({"sutton_barto_reward": true}))).unwrap();
        assert!(env.sutton_barto_reward);
        let err = CartPole::from_kwargs(&kwargs(json!({"gravity": 9.8}))).unwrap_err().to_string();
        assert!(err.contains("\"gravity\"") && err.contains("sutton_barto_reward"), "{err}");
        assert!(CartPole::from_kwargs(&kwargs(json!({"sutton_barto_reward": 1}))).is_err());
    }

    #[test]
    fn reset_options_set_and_validate_the_range() {
        let mut env = CartPole::new();
        let (obs, _) = env.reset(Some(3), Some(&kwargs(json!({"low": 0.25, "high": 0.25})))).unwrap();
        assert_eq!(obs, [0.25; 4]);
        for bad in [
            json!({"low": 0.1, "high": -0.1}),
            json!({"low": "0"}),
            json!({"spread": 1.0}),
            json!({"low": -1e308, "high": 1e308}),
        ] {
            assert!(env.reset(Some(0), Some(&kwargs(bad.clone()))).is_err(), "{bad}");
        }
    }

    #[test]
    fn reset_without_seed_continues_the_generator() {
        let mut a = CartPole::new();
        let mut b = CartPole::new();
        assert_eq!(a.reset(Some(7), None).unwrap(), b.reset(Some(7), None).unwrap());
        let (first, _) = a.reset(None, None).unwrap();
        assert_eq!(first, b.reset(None, None).unwrap().0);
        assert_ne!(first, a.reset(Some(7), None).unwrap().0);
    }

    #[test]
    fn rewards_after_termination() {
        for (sutton_barto, live, at_end, after) in [(false, 1.0, 1.0, 0.0), (true, 0.0, -1.0, -1.0)] {
            let mut env = CartPole { sutton_barto_reward: sutton_barto, ..CartPole::new() };
            env.reset(Some(0), None).unwrap();
            let mut rewards = Vec::new();
            loop {
                let step = env.step(Action::Discrete(1)).unwrap();
                rewards.push(step.reward);
                if step.terminated {
                    break;
                }
            }
            assert!(rewards[..rewards.len() - 1].iter().all(|r| *r == live));
            assert_eq!(*rewards.last().unwrap(), at_end);
            let step = env.step(Action::Discrete(1)).unwrap();
            assert!(step.terminated && step.reward == after);
            env.reset(None, None).unwrap();
            assert_eq!(env.step(Action::Discrete(0)).unwrap().reward, live);
        }
    }

    #[test]
    fn wrong_obs_buffer_is_an_error() {
        let mut env = CartPole::new();
        assert!(matches!(env.reset_into(Some(0), None, &mut [0.0; 3]), Err(EnvError::LengthMismatch { .. })));
    }
}
