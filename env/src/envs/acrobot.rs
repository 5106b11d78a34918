//! Acrobot-v1: swing a two-link pendulum up by torquing its middle joint (Gymnasium's `acrobot.py`).

use std::f64::consts::PI;

use crate::env::{Env, Info, Kwargs, StepResult, check_obs_len, reset_bounds, seeded_rng};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::NpRandom;
use crate::space::{Action, Space};
use crate::state;

use super::{check_range, pow_f64};

const ID: &str = "Acrobot-v1";

// Class constants of `AcrobotEnv` in gymnasium/envs/classic_control/acrobot.py (1.4.0).
/// Integration time step, seconds.
const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
/// Position of the centre of mass of link 1.
const LINK_COM_POS_1: f64 = 0.5;
/// Position of the centre of mass of link 2.
const LINK_COM_POS_2: f64 = 0.5;
/// Moment of inertia of both links.
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
/// Torque of actions 0, 1, 2. Gymnasium's `torque_noise_max` is 0: no noise is drawn.
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

/// Gymnasium's `AcrobotEnv` ("book" dynamics): two links hanging from a fixed joint; the action
/// applies torque -1, 0 or +1 at the joint between them.
///
/// Observation `[cos θ1, sin θ1, cos θ2, sin θ2, θ1_dot, θ2_dot]` (float32). Reward -1.0 per step,
/// 0.0 on the step that reaches the goal (the free end above the bar: `-cos θ1 - cos(θ1 + θ2) >
/// 1`), which terminates the episode. Reset draws the four state variables from `U(-0.1, 0.1)`
/// and rounds them to float32, as Gymnasium does (reset options `low` / `high` change the range).
///
/// # Examples
///
/// ```
/// use rl_env::envs::Acrobot;
/// use rl_env::{Action, Env};
///
/// let mut env = Acrobot::new();
/// env.reset(Some(0), None)?;
/// assert_eq!(env.step(Action::Discrete(2))?.reward, -1.0);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Acrobot {
    /// `[θ1, θ2, θ1_dot, θ2_dot]`.
    state: Option<[f64; 4]>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Acrobot {
    /// Acrobot as Gymnasium builds it.
    pub fn new() -> Self {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        Self {
            state: None,
            rng: None,
            observation_space: Space::boxed(high.map(|h| -h).to_vec(), high.to_vec(), vec![6])
                .expect("Acrobot bounds are valid"),
            action_space: Space::discrete(3).expect("Discrete(3) is valid"),
        }
    }

    /// Acrobot from Gymnasium's constructor keywords: it takes none (besides `render_mode`,
    /// which does not apply here).
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
        KwargReader::new(ID, kwargs).finish()?;
        Ok(Self::new())
    }
}

impl Default for Acrobot {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for Acrobot {
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
        check_obs_len(6, obs)?;
        let (low, high) = reset_bounds(ID, options, -0.1, 0.1)?;
        check_range(ID, "low/high", low, high)?;
        // `uniform(low, high, size=(4,)).astype(np.float32)`: the state is float32 until the first step.
        let s = seeded_rng(&mut self.rng, seed).uniform_array::<4>(low, high).map(|v| v as f32);
        self.state = Some(s.map(f64::from));
        // `_get_ob` on a float32 state: NumPy's own float32 sin and cos.
        let (sin0, cos0) = np_sincos_f32(s[0]);
        let (sin1, cos1) = np_sincos_f32(s[1]);
        obs.copy_from_slice(&[cos0, sin0, cos1, sin1, s[2], s[3]]);
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        let s = self.state.ok_or_else(|| EnvError::StepBeforeReset { env: ID.to_string() })?;
        self.action_space.check(ID, action)?;
        check_obs_len(6, obs)?;
        let Action::Discrete(a) = action else { unreachable!("checked against Discrete(3)") };
        let torque = AVAIL_TORQUE[a as usize];
        // `np.append(s, torque)` is float64 even when `s` is float32.
        let ns = rk4([s[0], s[1], s[2], s[3], torque]);
        let ns = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            bound(ns[2], -MAX_VEL_1, MAX_VEL_1),
            bound(ns[3], -MAX_VEL_2, MAX_VEL_2),
        ];
        self.state = Some(ns);
        let terminated = -ns[0].cos() - (ns[1] + ns[0]).cos() > 1.0;
        let reward = if terminated { 0.0 } else { -1.0 };
        obs.copy_from_slice(&[ns[0].cos(), ns[0].sin(), ns[1].cos(), ns[1].sin(), ns[2], ns[3]].map(|v| v as f32));
        Ok(StepResult { reward, terminated, truncated: false, info: Info::new() })
    }
}

/// `AcrobotEnv._dsdt`, "book" variant: the time derivative of `[θ1, θ2, θ1_dot, θ2_dot, torque]`.
/// Written term by term as in Gymnasium so that every float64 operation happens in its order.
fn dsdt(s: [f64; 5]) -> [f64; 5] {
    let (m1, m2, l1, lc1, lc2) = (LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1, LINK_COM_POS_1, LINK_COM_POS_2);
    let (i1, i2) = (LINK_MOI, LINK_MOI);
    let g = 9.8;
    let a = s[4];
    let (theta1, theta2, dtheta1, dtheta2) = (s[0], s[1], s[2], s[3]);
    let d1 =
        m1 * pow_f64(lc1, 2.0) + m2 * (pow_f64(l1, 2.0) + pow_f64(lc2, 2.0) + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (pow_f64(lc2, 2.0) + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * pow_f64(dtheta2, 2.0) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * pow_f64(dtheta1, 2.0) * theta2.sin() - phi2)
        / (m2 * pow_f64(lc2, 2.0) + i2 - pow_f64(d2, 2.0) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
}

/// Gymnasium's `rk4(derivs, y0, [0, dt])`: one classic Runge-Kutta step of length `DT`,
/// returning the first four components.
fn rk4(y0: [f64; 5]) -> [f64; 4] {
    // `t = [0, dt]`; `dt = t[1] - t[0]` with an integer `t[0] = 0`.
    let dt = DT - 0.0;
    let dt2 = dt / 2.0;
    let along = |k: &[f64; 5], h: f64| std::array::from_fn::<f64, 5, _>(|i| y0[i] + h * k[i]);
    let k1 = dsdt(y0);
    let k2 = dsdt(along(&k1, dt2));
    let k3 = dsdt(along(&k2, dt2));
    let k4 = dsdt(along(&k3, dt));
    std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// Gymnasium's `wrap(x, m, M)`: shifts `x` by whole periods `M - m` into `[m, M]`.
fn wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

/// Gymnasium's `bound(x, m, M)`: Python's `min(max(x, m), M)`.
fn bound(x: f64, m: f64, big_m: f64) -> f64 {
    // Python's max/min keep the first argument unless another is strictly greater/smaller.
    let x = if m > x { m } else { x };
    if big_m < x { big_m } else { x }
}

/// `(np.sin(x), np.cos(x))` for a `np.float32` scalar, as NumPy 2.4 computes them on x86-64 with
/// FMA (`FLOAT_sin` / `FLOAT_cos` in `numpy/_core/src/umath/loops_trigonometric.dispatch.cpp`).
///
/// NumPy does not call libm's `sinf`/`cosf` there: it reduces `x` by Cody-Waite with three float32
/// parts of pi/2 and evaluates minimax polynomials with fused multiply-adds; only arguments beyond
/// the reduction's range go to libm. The compiled quadrant computation `x * 2/pi + 0x1.8p23` is
/// contracted into one fused multiply-add, reproduced here. Checked against NumPy 2.4.6 on 1.4
/// million float32 inputs from 1e-6 to 1e6 in magnitude.
fn np_sincos_f32(x: f32) -> (f32, f32) {
    (np_sin_or_cos_f32(x, false), np_sin_or_cos_f32(x, true))
}

fn np_sin_or_cos_f32(x: f32, cos: bool) -> f32 {
    // Constants as float32 bit patterns (hex floats in NumPy's source).
    const TWO_OVER_PI: u32 = 0x3f22_f983; // 0x1.45f306p-1
    const PIO2_HIGH: u32 = 0xbfc9_0fd8; // -0x1.921fb0p+00
    const PIO2_MED: u32 = 0xb4a8_885a; // -0x1.5110b4p-22
    const PIO2_LOW: u32 = 0xa7c2_34c4; // -0x1.846988p-48
    const RINT_MAGIC: u32 = 0x4b40_0000; // 0x1.800000p+23
    const COS: [u32; 4] = [0x37cc_730b, 0xbab6_036e, 0x3d2a_aa9e, 0xbf00_0000]; // x^8, x^6, x^4, x^2
    const SIN: [u32; 4] = [0x363e_9dde, 0xb950_35dd, 0x3c08_88cd, 0xbe2a_aaab]; // x^9, x^7, x^5, x^3
    let f = f32::from_bits;

    if x.is_nan() {
        return f32::NAN;
    }
    // Beyond these magnitudes the reduction loses accuracy and NumPy calls libm. NumPy's limits
    // are the float32 values 71476.0625 and 117435.9921875, which these shortest literals denote.
    let max_cody: f32 = if cos { 71_476.06 } else { 117_435.99 };
    if x.abs() > max_cody {
        return if cos { x.cos() } else { x.sin() };
    }
    let magic = f(RINT_MAGIC);
    let quadrant = x.mul_add(f(TWO_OVER_PI), magic) - magic;
    let mut r = quadrant.mul_add(f(PIO2_HIGH), x);
    r = quadrant.mul_add(f(PIO2_MED), r);
    r = quadrant.mul_add(f(PIO2_LOW), r);
    let r2 = r * r;
    let mut c = f(COS[0]).mul_add(r2, f(COS[1]));
    c = c.mul_add(r2, f(COS[2]));
    c = c.mul_add(r2, f(COS[3]));
    c = c.mul_add(r2, 1.0);
    let mut s = f(SIN[0]).mul_add(r2, f(SIN[1]));
    s = s.mul_add(r2, f(SIN[2]));
    s = s.mul_add(r2, f(SIN[3]));
    s = s.mul_add(r2, 0.0);
    s = s.mul_add(r, r);
    let mut q = quadrant as i32;
    if cos {
        q += 1;
    }
    let v = if q & 1 == 0 { s } else { c };
    if q & 2 == 2 { 0.0 - v } else { v }
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
        let mut env = Acrobot::new();
        env.reset(Some(0), None).unwrap();
        for bad in [Action::Discrete(3), Action::Discrete(-1), Action::MultiDiscrete(&[1])] {
            let err = env.step(bad).unwrap_err();
            assert!(matches!(err, EnvError::InvalidAction { .. }), "{err:?}");
            assert!(err.to_string().starts_with("Acrobot-v1: action"), "{err}");
        }
    }

    #[test]
    fn step_before_reset_is_an_error() {
        assert!(matches!(Acrobot::new().step(Action::Discrete(1)), Err(EnvError::StepBeforeReset { .. })));
    }

    #[test]
    fn takes_no_kwargs() {
        assert!(Acrobot::from_kwargs(&Kwargs::new()).is_ok());
        let err = Acrobot::from_kwargs(&kwargs(json!({"book_or_nips": "nips"}))).unwrap_err().to_string();
        assert!(err.contains("\"book_or_nips\"") && err.contains("takes no keyword arguments"), "{err}");
    }

    #[test]
    fn reset_options_set_and_validate_the_range() {
        let mut env = Acrobot::new();
        let (obs, _) = env.reset(Some(1), Some(&kwargs(json!({"low": 0.0, "high": 0.0})))).unwrap();
        assert_eq!(obs, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert!(env.reset(Some(1), Some(&kwargs(json!({"low": 1.0, "high": 0.5})))).is_err());
        assert!(env.reset(Some(1), Some(&kwargs(json!({"torque": 1.0})))).is_err());
    }

    #[test]
    fn wrap_and_bound_follow_gymnasium() {
        assert_eq!(wrap(3.5, -PI, PI), 3.5 - 2.0 * PI);
        assert_eq!(wrap(-10.0, -PI, PI), -10.0 + 2.0 * PI + 2.0 * PI);
        assert_eq!(wrap(PI, -PI, PI), PI);
        assert_eq!(bound(20.0, -MAX_VEL_1, MAX_VEL_1), MAX_VEL_1);
        assert_eq!(bound(-30.0, -MAX_VEL_2, MAX_VEL_2), -MAX_VEL_2);
        assert_eq!(bound(1.5, -MAX_VEL_1, MAX_VEL_1), 1.5);
    }

    #[test]
    fn float32_sin_cos_match_numpy() {
        // (x, np.sin(np.float32(x)), np.cos(np.float32(x))) from NumPy 2.4.6, as float32 bits. NumPy's
        // sine of the first two differs from libm's sinf; 100000.0 and 1e6 take the libm fallback.
        let cases: [(u32, u32, u32); 8] = [
            (0xbdbd_1689, 0xbdbc_d1ca, 0x3f7e_e8de), // -0.09232813864946365
            (0xbdba_835e, 0xbdba_4164, 0x3f7e_f06a), // -0.09107087552547455
            (0x3dcc_cccd, 0x3dcc_7577, 0x3f7e_b898), // 0.1
            (0xbd4c_cccd, 0xbd4c_b6f5, 0x3f7f_ae19), // -0.05
            (0x4048_f5c3, 0x3ad0_bd0b, 0xbf7f_ffeb), // 3.14
            (0x447a_0000, 0x3f53_ae61, 0x3f0f_f813), // 1000.0
            (0x47c3_5000, 0x3d12_6d55, 0xbf7f_d61c), // 100000.0
            (0x4974_2400, 0xbeb3_3259, 0x3f6f_cefd), // 1000000.0
        ];
        for (x, s, c) in cases {
            let (sin, cos) = np_sincos_f32(f32::from_bits(x));
            assert_eq!((sin.to_bits(), cos.to_bits()), (s, c), "x = {}", f32::from_bits(x));
        }
        let (sin, cos) = np_sincos_f32(f32::NAN);
        assert!(sin.is_nan() && cos.is_nan());
    }
}
