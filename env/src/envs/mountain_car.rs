//! MountainCar-v0: rock an underpowered car out of a valley with three discrete pushes
//! (Gymnasium's `mountain_car.py`).

use crate::env::{Env, Info, Kwargs, StepResult, check_obs_len, reset_bounds, seeded_rng};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::NpRandom;
use crate::space::{Action, Space};
use crate::state;

use super::{check_range, np_clip};

const ID: &str = "MountainCar-v0";

// Constants of `MountainCarEnv.__init__` in gymnasium/envs/classic_control/mountain_car.py (1.4.0).
const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;

/// Gymnasium's `MountainCarEnv`: a car on the curve `sin(3x)`; action 0 accelerates left,
/// 1 does nothing, 2 accelerates right.
///
/// Observation `[position, velocity]` (float32). Reward -1.0 per step. The episode terminates when
/// `position >= 0.5` and `velocity >= goal_velocity`. Hitting the left wall (-1.2) stops the car.
/// Reset draws the position from `U(-0.6, -0.4)` (reset options `low` / `high` change the range)
/// with zero velocity.
///
/// # Examples
///
/// ```
/// use rl_env::envs::MountainCar;
/// use rl_env::{Action, Env};
///
/// let mut env = MountainCar::new();
/// let (obs, _) = env.reset(Some(0), None)?;
/// assert_eq!(obs[1], 0.0);
/// assert_eq!(env.step(Action::Discrete(2))?.reward, -1.0);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MountainCar {
    goal_velocity: f64,
    /// `[position, velocity]`.
    state: Option<[f64; 2]>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl MountainCar {
    /// MountainCar with Gymnasium's defaults (`goal_velocity=0`).
    pub fn new() -> Self {
        Self {
            goal_velocity: 0.0,
            state: None,
            rng: None,
            observation_space: Space::boxed(
                vec![MIN_POSITION as f32, -MAX_SPEED as f32],
                vec![MAX_POSITION as f32, MAX_SPEED as f32],
                vec![2],
            )
            .expect("MountainCar bounds are valid"),
            action_space: Space::discrete(3).expect("Discrete(3) is valid"),
        }
    }

    /// MountainCar from Gymnasium's constructor keywords: `goal_velocity` (number, default 0),
    /// the least velocity at the goal that ends the episode.
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let goal_velocity = kw.f64("goal_velocity", 0.0)?;
        kw.finish()?;
        Ok(Self { goal_velocity, ..Self::new() })
    }
}

impl Default for MountainCar {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for MountainCar {
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
        Some(state::physics(ID, self.state.as_ref().map(|s| &s[..]), self.rng.as_ref()))
    }

    fn restore_state(&mut self, saved: &serde_json::Value) -> Result<()> {
        (self.state, self.rng) = state::read_physics(ID, saved)?;
        Ok(())
    }

    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        check_obs_len(2, obs)?;
        let (low, high) = reset_bounds(ID, options, -0.6, -0.4)?;
        check_range(ID, "low/high", low, high)?;
        let state = [seeded_rng(&mut self.rng, seed).uniform(low, high), 0.0];
        self.state = Some(state);
        obs.copy_from_slice(&state.map(|v| v as f32));
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let [mut position, mut velocity] =
            self.state.ok_or_else(|| EnvError::StepBeforeReset { env: ID.to_string() })?;
        self.action_space.check(ID, action)?;
        check_obs_len(2, obs)?;
        let Action::Discrete(a) = action else { unreachable!("checked against Discrete(3)") };
        // All float64: `(action - 1) * force` is an integer times a Python float, `math.cos` is libm.
        velocity += (a - 1) as f64 * FORCE + (3.0 * position).cos() * (-GRAVITY);
        velocity = np_clip(velocity, -MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = np_clip(position, MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION && velocity >= self.goal_velocity;
        self.state = Some([position, velocity]);
        obs.copy_from_slice(&[position as f32, velocity as f32]);
        Ok(StepResult { reward: -1.0, terminated, truncated: false, info: Info::new() })
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
        let mut env = MountainCar::new();
        env.reset(Some(0), None).unwrap();
        for bad in [Action::Discrete(3), Action::Continuous(&[1.0])] {
            let err = env.step(bad).unwrap_err();
            assert!(matches!(err, EnvError::InvalidAction { .. }), "{err:?}");
            assert!(err.to_string().starts_with("MountainCar-v0: action"), "{err}");
        }
    }

    #[test]
    fn step_before_reset_is_an_error() {
        assert!(matches!(MountainCar::new().step(Action::Discrete(1)), Err(EnvError::StepBeforeReset { .. })));
    }

    #[test]
    fn kwargs_are_read_and_unknown_ones_rejected() {
        let env = MountainCar::from_kwargs(&kwargs(json!({"goal_velocity": 0.02}))).unwrap();
        assert_eq!(env.goal_velocity, 0.02);
        let err = MountainCar::from_kwargs(&kwargs(json!({"force": 0.01}))).unwrap_err().to_string();
        assert!(err.contains("\"force\"") && err.contains("goal_velocity"), "{err}");
        assert!(MountainCar::from_kwargs(&kwargs(json!({"goal_velocity": "fast"}))).is_err());
    }

    #[test]
    fn reset_options_set_and_validate_the_range() {
        let mut env = MountainCar::new();
        let (obs, _) = env.reset(Some(0), Some(&kwargs(json!({"low": -0.3, "high": -0.3})))).unwrap();
        assert_eq!(obs, [-0.3, 0.0]);
        assert!(env.reset(Some(0), Some(&kwargs(json!({"low": -0.3, "high": -0.5})))).is_err());
        assert!(env.reset(Some(0), Some(&kwargs(json!({"position": -0.5})))).is_err());
    }
}
