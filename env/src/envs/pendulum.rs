//! Pendulum-v1: swing a pendulum up and hold it with a bounded torque (Gymnasium's `pendulum.py`).

use std::f64::consts::PI;

use crate::env::{Env, Info, Kwargs, StepResult, check_obs_len, seeded_rng};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::NpRandom;
use crate::space::{Action, Space};
use crate::state;

use super::{check_range, np_clip, pow_f32, pow_f64};

const ID: &str = "Pendulum-v1";

// Constants of `PendulumEnv.__init__` and the module in
// gymnasium/envs/classic_control/pendulum.py (1.4.0).
const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;
const M: f64 = 1.0;
const L: f64 = 1.0;
/// Default half-width of the initial angle.
const DEFAULT_X: f64 = PI;
/// Default half-width of the initial angular velocity.
const DEFAULT_Y: f64 = 1.0;

/// Gymnasium's `PendulumEnv`: a pendulum on a frictionless pivot, driven by a torque in `[-2, 2]`.
///
/// Observation `[cos θ, sin θ, θ_dot]` (float32). Reward `-(θ² + 0.1 θ_dot² + 0.001 u²)`, with θ
/// normalized to `[-π, π)`; the episode never terminates (Pendulum-v1 truncates after 200 steps).
/// Reset draws θ from `U(-π, π)` and θ_dot from `U(-1, 1)`; the reset options `x_init` and
/// `y_init` replace the half-widths π and 1.
///
/// # Examples
///
/// ```
/// use rl_env::envs::Pendulum;
/// use rl_env::{Action, Env};
///
/// let mut env = Pendulum::new();
/// env.reset(Some(0), None)?;
/// let step = env.step(Action::Continuous(&[2.0]))?;
/// assert!(step.reward <= 0.0 && !step.terminated);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pendulum {
    g: f64,
    /// `[θ, θ_dot]`.
    state: Option<[f64; 2]>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Pendulum {
    /// Pendulum with Gymnasium's defaults (`g=10.0`).
    pub fn new() -> Self {
        let high = [1.0, 1.0, MAX_SPEED as f32];
        Self {
            g: 10.0,
            state: None,
            rng: None,
            observation_space: Space::boxed(high.map(|h| -h).to_vec(), high.to_vec(), vec![3])
                .expect("Pendulum bounds are valid"),
            action_space: Space::boxed(vec![-MAX_TORQUE as f32], vec![MAX_TORQUE as f32], vec![1])
                .expect("Box(-2, 2) is valid"),
        }
    }

    /// Pendulum from Gymnasium's constructor keywords: `g` (number, default 10.0), the
    /// gravitational acceleration.
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let g = kw.f64("g", 10.0)?;
        kw.finish()?;
        Ok(Self { g, ..Self::new() })
    }

    /// Gymnasium's reset options: `x_init` and `y_init`, numbers, default π and 1.
    fn reset_half_widths(options: Option<&Kwargs>) -> Result<(f64, f64)> {
        let error = |message: String| EnvError::InvalidKwarg { env: ID.to_string(), message };
        let Some(options) = options else { return Ok((DEFAULT_X, DEFAULT_Y)) };
        if let Some(k) = options.keys().find(|k| !matches!(k.as_str(), "x_init" | "y_init")) {
            return Err(error(format!("unknown reset option {k:?}; allowed: \"x_init\", \"y_init\"")));
        }
        let get = |key: &str, default: f64| match options.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| error(format!("reset option {key:?} must be a number, got {v}"))),
        };
        let (x, y) = (get("x_init", DEFAULT_X)?, get("y_init", DEFAULT_Y)?);
        // `uniform(-high, high)` raises for a negative range (`high - low < 0`).
        for (key, v) in [("x_init", x), ("y_init", y)] {
            if v < 0.0 {
                return Err(error(format!("reset option {key:?} must not be negative, got {v}")));
            }
        }
        Ok((x, y))
    }
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for Pendulum {
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
        check_obs_len(3, obs)?;
        let (x, y) = Self::reset_half_widths(options)?;
        check_range(ID, "x_init", -x, x)?;
        check_range(ID, "y_init", -y, y)?;
        // `uniform(low=-high, high=high)` over `high = [x, y]`: one draw per element, in order.
        let rng = seeded_rng(&mut self.rng, seed);
        let state = [rng.uniform(-x, x), rng.uniform(-y, y)];
        self.state = Some(state);
        obs.copy_from_slice(&observe(state));
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let [th, thdot] = self.state.ok_or_else(|| EnvError::StepBeforeReset { env: ID.to_string() })?;
        self.action_space.check(ID, action)?;
        check_obs_len(3, obs)?;
        let Action::Continuous(&[u]) = action else { unreachable!("checked against Box(-2, 2, (1,))") };
        let g = self.g;
        // `np.clip(u, -2.0, 2.0)[0]` leaves an in-space action unchanged: a np.float32.
        // Every `u` term is float32 arithmetic (np.float32 with Python floats) until it meets float64.
        let costs = pow_f64(angle_normalize(th), 2.0)
            + 0.1 * pow_f64(thdot, 2.0)
            + f64::from(0.001_f64 as f32 * pow_f32(u, 2.0));
        let torque_term = (3.0 / (M * pow_f64(L, 2.0))) as f32 * u;
        let newthdot = thdot + (3.0 * g / (2.0 * L) * th.sin() + f64::from(torque_term)) * DT;
        let newthdot = np_clip(newthdot, -MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        let state = [newth, newthdot];
        self.state = Some(state);
        obs.copy_from_slice(&observe(state));
        Ok(StepResult { reward: -costs, terminated: false, truncated: false, info: Info::new() })
    }
}

/// `_get_obs`: `[cos θ, sin θ, θ_dot]` as float32.
fn observe([theta, thetadot]: [f64; 2]) -> [f32; 3] {
    [theta.cos() as f32, theta.sin() as f32, thetadot as f32]
}

/// Gymnasium's `angle_normalize(x) = ((x + np.pi) % (2 * np.pi)) - np.pi`, with Python's
/// floored `%` (NumPy's `npy_remainder`: `fmod`, then shifted into the divisor's sign).
fn angle_normalize(x: f64) -> f64 {
    py_mod(x + PI, 2.0 * PI) - PI
}

/// Python/NumPy float `a % b` for a finite, nonzero `b`.
fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m == 0.0 {
        0.0_f64.copysign(b)
    } else if (b < 0.0) != (m < 0.0) {
        m + b
    } else {
        m
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
        let mut env = Pendulum::new();
        env.reset(Some(0), None).unwrap();
        let bad: [&[f32]; 4] = [&[2.5], &[-2.0001], &[f32::INFINITY], &[]];
        for a in bad {
            let err = env.step(Action::Continuous(a)).unwrap_err();
            assert!(matches!(err, EnvError::InvalidAction { .. }), "{err:?}");
            assert!(err.to_string().starts_with("Pendulum-v1: action"), "{err}");
        }
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let err = Pendulum::new().step(Action::Continuous(&[0.0])).unwrap_err();
        assert!(matches!(err, EnvError::StepBeforeReset { .. }), "{err:?}");
    }

    #[test]
    fn kwargs_are_read_and_unknown_ones_rejected() {
        assert_eq!(Pendulum::from_kwargs(&kwargs(json!({"g": 9.81}))).unwrap().g, 9.81);
        let err = Pendulum::from_kwargs(&kwargs(json!({"m": 2.0}))).unwrap_err().to_string();
        assert!(err.contains("\"m\"") && err.contains("allowed: g"), "{err}");
    }

    #[test]
    fn reset_options_set_and_validate_the_ranges() {
        let mut env = Pendulum::new();
        let (obs, _) = env.reset(Some(0), Some(&kwargs(json!({"x_init": 0.0, "y_init": 0.0})))).unwrap();
        assert_eq!(obs, [1.0, 0.0, 0.0]);
        let (obs, _) = env.reset(Some(0), Some(&kwargs(json!({"x_init": 0.0})))).unwrap();
        assert_eq!(obs[..2], [1.0, 0.0]);
        assert!(obs[2].abs() <= 1.0 && obs[2] != 0.0);
        for bad in [json!({"x_init": -1.0}), json!({"y_init": "1"}), json!({"low": 0.0}), json!({"x_init": 1e308})] {
            let err = env.reset(Some(0), Some(&kwargs(bad.clone()))).unwrap_err();
            assert!(err.to_string().starts_with("Pendulum-v1: "), "{bad}: {err}");
        }
    }

    #[test]
    fn never_terminates() {
        let mut env = Pendulum::new();
        env.reset(Some(0), None).unwrap();
        for _ in 0..1000 {
            let step = env.step(Action::Continuous(&[1.0])).unwrap();
            assert!(!step.terminated && !step.truncated);
        }
    }

    #[test]
    fn python_modulo() {
        assert_eq!(py_mod(-1.0, 2.0 * PI), 2.0 * PI - 1.0);
        assert_eq!(py_mod(7.0, 2.0 * PI), 7.0 - 2.0 * PI);
        assert_eq!(py_mod(-0.0, 2.0 * PI).to_bits(), 0.0f64.to_bits());
        assert_eq!(angle_normalize(PI), -PI);
    }
}
