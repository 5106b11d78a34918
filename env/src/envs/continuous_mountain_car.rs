//! MountainCarContinuous-v0: drive an underpowered car out of a valley with a continuous force
//! (Gymnasium's `continuous_mountain_car.py`).

use crate::env::{Env, Info, Kwargs, StepResult, check_obs_len, reset_bounds, seeded_rng};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::NpRandom;
use crate::space::{Action, Space};
use crate::state::{self, StateReader};

use super::{check_range, pow_f64};

const ID: &str = "MountainCarContinuous-v0";

// Constants of `Continuous_MountainCarEnv.__init__` in
// gymnasium/envs/classic_control/continuous_mountain_car.py (1.4.0).
const MIN_ACTION: f32 = -1.0;
const MAX_ACTION: f32 = 1.0;
const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.45;
const POWER: f64 = 0.0015;

/// Gymnasium's `Continuous_MountainCarEnv`: a car on the curve `sin(3x)` pushed by a force in
/// `[-1, 1]`.
///
/// Observation `[position, velocity]` (float32). Reward `-0.1 * force^2` per step, plus 100 on
/// the step that terminates the episode (`position >= 0.45` and `velocity >= goal_velocity`).
/// Reset draws the position from `U(-0.6, -0.4)` (reset options `low` / `high` change the range)
/// with zero velocity.
///
/// Gymnasium stores the state as a float32 array after every step, so from the second step of
/// an episode on, NumPy 2 does the velocity and position updates and their comparisons in
/// float32; this type follows it (see `Num`).
///
/// # Examples
///
/// ```
/// use rl_env::envs::MountainCarContinuous;
/// use rl_env::{Action, Env};
///
/// let mut env = MountainCarContinuous::new();
/// env.reset(Some(0), None)?;
/// let step = env.step(Action::Continuous(&[0.5]))?;
/// assert_eq!(step.reward, -0.025);
/// assert!(env.step(Action::Continuous(&[1.5])).is_err());
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MountainCarContinuous {
    goal_velocity: f64,
    /// `[position, velocity]`.
    state: Option<[f64; 2]>,
    /// Whether `state` holds `np.float32` values (after a step) rather than `np.float64` (after reset).
    state_is_f32: bool,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl MountainCarContinuous {
    /// MountainCarContinuous with Gymnasium's defaults (`goal_velocity=0`).
    pub fn new() -> Self {
        Self {
            goal_velocity: 0.0,
            state: None,
            state_is_f32: false,
            rng: None,
            observation_space: Space::boxed(
                vec![MIN_POSITION as f32, -MAX_SPEED as f32],
                vec![MAX_POSITION as f32, MAX_SPEED as f32],
                vec![2],
            )
            .expect("MountainCarContinuous bounds are valid"),
            action_space: Space::boxed(vec![MIN_ACTION], vec![MAX_ACTION], vec![1]).expect("Box(-1, 1) is valid"),
        }
    }

    /// MountainCarContinuous from Gymnasium's constructor keywords: `goal_velocity` (number,
    /// default 0), the least velocity at the goal that ends the episode.
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let goal_velocity = kw.f64("goal_velocity", 0.0)?;
        kw.finish()?;
        Ok(Self { goal_velocity, ..Self::new() })
    }
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for MountainCarContinuous {
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
            "state_is_f32": self.state_is_f32,
            "rng": state::rng_state(self.rng.as_ref()),
        }))
    }

    fn restore_state(&mut self, saved: &serde_json::Value) -> Result<()> {
        let r = StateReader::new(ID, saved, ID)?;
        let (st, is_f32, rng) = (r.opt_f64_array("state")?, r.bool("state_is_f32")?, r.rng("rng")?);
        (self.state, self.state_is_f32, self.rng) = (st, is_f32, rng);
        Ok(())
    }

    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        check_obs_len(2, obs)?;
        let (low, high) = reset_bounds(ID, options, -0.6, -0.4)?;
        check_range(ID, "low/high", low, high)?;
        let state = [seeded_rng(&mut self.rng, seed).uniform(low, high), 0.0];
        self.state = Some(state);
        self.state_is_f32 = false;
        obs.copy_from_slice(&state.map(|v| v as f32));
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let s = self.state.ok_or_else(|| EnvError::StepBeforeReset { env: ID.to_string() })?;
        self.action_space.check(ID, action)?;
        check_obs_len(2, obs)?;
        let Action::Continuous(&[a]) = action else { unreachable!("checked against Box(-1, 1, (1,))") };
        use Num::{F32, F64, Py};
        let (position, velocity) =
            if self.state_is_f32 { (F32(s[0] as f32), F32(s[1] as f32)) } else { (F64(s[0]), F64(s[1])) };
        // `force = min(max(action[0], -1.0), 1.0)` hands back `action[0]` itself, a np.float32, for
        // every action in the space.
        let force = a;
        // `velocity += force * power - 0.0025 * math.cos(3 * position)`: the product is float32
        // (np.float32 times a Python float), `math.cos` is float64, and their difference is float32.
        let three_position = match position {
            F32(p) => f64::from(3.0 * p),
            other => 3.0 * other.f64(),
        };
        let pull = 0.0025 * three_position.cos();
        let mut velocity = velocity.add(F32(force * POWER as f32 - pull as f32));
        if velocity.gt(MAX_SPEED) {
            velocity = Py(MAX_SPEED);
        }
        if velocity.lt(-MAX_SPEED) {
            velocity = Py(-MAX_SPEED);
        }
        let mut position = position.add(velocity);
        if position.gt(MAX_POSITION) {
            position = Py(MAX_POSITION);
        }
        if position.lt(MIN_POSITION) {
            position = Py(MIN_POSITION);
        }
        if position.eq(MIN_POSITION) && velocity.lt(0.0) {
            velocity = Py(0.0);
        }
        let terminated = position.ge(GOAL_POSITION) && velocity.ge(self.goal_velocity);
        let mut reward = if terminated { 100.0 } else { 0.0 };
        reward -= pow_f64(f64::from(a), 2.0) * 0.1;
        // `np.array([position, velocity], dtype=np.float32)` is both the new state and the observation.
        let next = [position.f32(), velocity.f32()];
        self.state = Some(next.map(f64::from));
        self.state_is_f32 = true;
        obs.copy_from_slice(&next);
        Ok(StepResult { reward, terminated, truncated: false, info: Info::new() })
    }
}

/// A scalar as typed at one point of Gymnasium's `step`; the type decides the precision of the
/// operations it takes part in under NumPy 2's promotion rules (NEP 50).
#[derive(Debug, Clone, Copy)]
enum Num {
    /// A `np.float64` scalar.
    F64(f64),
    /// A `np.float32` scalar.
    F32(f32),
    /// A Python float or int: "weak", it adopts the NumPy operand's precision.
    Py(f64),
}

impl Num {
    fn f64(self) -> f64 {
        match self {
            Num::F64(v) | Num::Py(v) => v,
            Num::F32(v) => f64::from(v),
        }
    }

    fn f32(self) -> f32 {
        match self {
            Num::F32(v) => v,
            Num::F64(v) | Num::Py(v) => v as f32,
        }
    }

    /// `self + other`: float64 if either is a `np.float64`, else float32 if either is a
    /// `np.float32` (a Python float is rounded to float32 first), else a Python float.
    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::F64(_), _) | (_, Num::F64(_)) => Num::F64(self.f64() + other.f64()),
            (Num::F32(_), _) | (_, Num::F32(_)) => Num::F32(self.f32() + other.f32()),
            (Num::Py(a), Num::Py(b)) => Num::Py(a + b),
        }
    }

    /// Compares with a Python number `c`: in float32 when `self` is a `np.float32`.
    fn cmp(self, c: f64) -> Option<std::cmp::Ordering> {
        match self {
            Num::F32(v) => v.partial_cmp(&(c as f32)),
            Num::F64(v) | Num::Py(v) => v.partial_cmp(&c),
        }
    }

    fn gt(self, c: f64) -> bool {
        self.cmp(c) == Some(std::cmp::Ordering::Greater)
    }

    fn lt(self, c: f64) -> bool {
        self.cmp(c) == Some(std::cmp::Ordering::Less)
    }

    fn eq(self, c: f64) -> bool {
        self.cmp(c) == Some(std::cmp::Ordering::Equal)
    }

    fn ge(self, c: f64) -> bool {
        matches!(self.cmp(c), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal))
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
        let mut env = MountainCarContinuous::new();
        env.reset(Some(0), None).unwrap();
        let bad: [&[f32]; 4] = [&[1.0001], &[-2.0], &[f32::NAN], &[0.0, 0.0]];
        for a in bad {
            let err = env.step(Action::Continuous(a)).unwrap_err();
            assert!(matches!(err, EnvError::InvalidAction { .. }), "{err:?}");
            assert!(err.to_string().starts_with("MountainCarContinuous-v0: action"), "{err}");
        }
        assert!(env.step(Action::Discrete(0)).is_err());
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let err = MountainCarContinuous::new().step(Action::Continuous(&[0.0])).unwrap_err();
        assert!(matches!(err, EnvError::StepBeforeReset { .. }), "{err:?}");
    }

    #[test]
    fn kwargs_are_read_and_unknown_ones_rejected() {
        let env = MountainCarContinuous::from_kwargs(&kwargs(json!({"goal_velocity": 0.01}))).unwrap();
        assert_eq!(env.goal_velocity, 0.01);
        let err = MountainCarContinuous::from_kwargs(&kwargs(json!({"power": 1}))).unwrap_err().to_string();
        assert!(err.contains("\"power\"") && err.contains("goal_velocity"), "{err}");
    }

    #[test]
    fn reset_options_set_and_validate_the_range() {
        let mut env = MountainCarContinuous::new();
        let (obs, _) = env.reset(Some(0), Some(&kwargs(json!({"low": -1.0, "high": -1.0})))).unwrap();
        assert_eq!(obs, [-1.0, 0.0]);
        assert!(env.reset(Some(0), Some(&kwargs(json!({"high": -0.9, "low": 0.0})))).is_err());
        assert!(env.reset(Some(0), Some(&kwargs(json!({"low": null})))).is_err());
    }

    /// Steps from a state Gymnasium never reaches in the fixtures (the speed limit), checked
    /// against Gymnasium 1.4.0 with `env.unwrapped.state = ...; env.step(...)`.
    #[test]
    fn speed_limit_and_walls_match_gymnasium() {
        // (state, state is float32, action, expected obs as float64s, reward, terminated)
        type Case = ([f64; 2], bool, f32, [f64; 2], f64, bool);
        let cases: [Case; 5] = [
            ([-0.8, 0.0699], true, 1.0, [-0.730_000_019_073_486_3, 0.070_000_000_298_023_22], -0.1, false),
            ([-0.8, 0.0699], false, 1.0, [-0.730_000_019_073_486_3, 0.070_000_000_298_023_22], -0.1, false),
            ([0.1, -0.0699], true, -1.0, [0.030_000_001_192_092_896, -0.070_000_000_298_023_22], -0.1, false),
            ([-1.15, -0.0699], true, -1.0, [-1.200_000_047_683_715_8, 0.0], -0.1, false),
            ([0.58, 0.05], true, 1.0, [0.600_000_023_841_857_9, 0.051_920_995_116_233_826], 99.9, true),
        ];
        for (state, is_f32, a, want_obs, want_reward, want_terminated) in cases {
            let mut env = MountainCarContinuous::new();
            env.state = Some(if is_f32 { state.map(|v| f64::from(v as f32)) } else { state });
            env.state_is_f32 = is_f32;
            let step = env.step(Action::Continuous(&[a])).unwrap();
            assert_eq!(step.obs.iter().map(|v| f64::from(*v)).collect::<Vec<_>>(), want_obs, "{state:?}");
            assert_eq!((step.reward, step.terminated), (want_reward, want_terminated), "{state:?}");
        }
    }

    #[test]
    fn numpy_promotion_rules() {
        // np.float32(0.3) + 0.1 rounds 0.1 to float32 first; np.float64 wins over np.float32.
        assert!(matches!(Num::F32(0.3).add(Num::Py(0.1)), Num::F32(v) if v == 0.3f32 + 0.1f32));
        assert!(matches!(Num::F64(0.3).add(Num::F32(0.1)), Num::F64(v) if v == 0.3 + f64::from(0.1f32)));
        // np.float32(0.07) > 0.07 is False in NumPy 2, although 0.07f32 > 0.07f64.
        assert!(!Num::F32(0.07).gt(0.07) && Num::F32(0.07).eq(0.07));
        assert!(Num::F32(0.45).ge(0.45) && f64::from(0.45f32) < 0.45);
    }
}
