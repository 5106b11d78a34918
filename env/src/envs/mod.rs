//! Built-in classic-control envs, matching Gymnasium 1.4.0 bit for bit, and their registration.
//!
//! Each env mirrors its Gymnasium twin in `gymnasium/envs/classic_control/`: float64 state, the
//! same operation order, NumPy 2 type promotion (NEP 50: an operation between a `np.float32` and a
//! Python float runs in float32), and the float32 observation Gymnasium returns. The golden
//! trajectories in `env/fixtures/` (recorded by `env/fixtures/generate.py` from the real Gymnasium)
//! are replayed by `env/tests/fixtures.rs`, which compares every observation and reward bitwise.
//!
//! Exactness relies on the platform's libm for `sin`, `cos` and `pow`: the fixtures were recorded
//! on x86-64 glibc, where Python, NumPy and Rust call the same functions. NumPy's float32 `sin` and
//! `cos` (used by Acrobot's reset observation) are its own SIMD kernel, reproduced in `acrobot.rs`.

mod acrobot;
mod cartpole;
mod continuous_mountain_car;
mod mountain_car;
mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use continuous_mountain_car::MountainCarContinuous;
pub use mountain_car::MountainCar;
pub use pendulum::Pendulum;

use crate::error::{EnvError, Result};
use crate::registry::{EnvSpec, Registry};

/// Registers every built-in env in `registry`, with Gymnasium's time limits and reward thresholds
/// (`gymnasium/envs/__init__.py`, Gymnasium 1.4.0).
pub fn register_builtins(registry: &mut Registry) -> Result<()> {
    registry.register(
        EnvSpec::new("CartPole-v1", |kw| Ok(Box::new(CartPole::from_kwargs(kw)?)))
            .max_episode_steps(500)
            .reward_threshold(475.0),
    )?;
    registry.register(
        EnvSpec::new("MountainCar-v0", |kw| Ok(Box::new(MountainCar::from_kwargs(kw)?)))
            .max_episode_steps(200)
            .reward_threshold(-110.0),
    )?;
    registry.register(
        EnvSpec::new("MountainCarContinuous-v0", |kw| Ok(Box::new(MountainCarContinuous::from_kwargs(kw)?)))
            .max_episode_steps(999)
            .reward_threshold(90.0),
    )?;
    // Pendulum-v1 has no reward threshold in Gymnasium.
    registry
        .register(EnvSpec::new("Pendulum-v1", |kw| Ok(Box::new(Pendulum::from_kwargs(kw)?))).max_episode_steps(200))?;
    registry.register(
        EnvSpec::new("Acrobot-v1", |kw| Ok(Box::new(Acrobot::from_kwargs(kw)?)))
            .max_episode_steps(500)
            .reward_threshold(-100.0),
    )?;
    Ok(())
}

// === NumPy scalar semantics shared by the envs ===

/// `x ** y` on a `np.float64` scalar, or `math.pow(x, y)`: the C `pow` call.
///
/// `pow(x, 2.0)` differs from `x * x` in the last bit for some `x`, so the exponent is hidden
/// from the optimizer, which would otherwise rewrite the call into a multiplication.
fn pow_f64(x: f64, y: f64) -> f64 {
    x.powf(std::hint::black_box(y))
}

/// `x ** y` on a `np.float32` scalar: the C `powf` call (see [`pow_f64`]).
fn pow_f32(x: f32, y: f32) -> f32 {
    x.powf(std::hint::black_box(y))
}

/// `np.clip(x, low, high)` on a float: `min(max(x, low), high)` with NumPy's NaN propagation.
fn np_clip(x: f64, low: f64, high: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let x = if x > low { x } else { low };
    if x < high { x } else { high }
}

/// `Generator.uniform` raises `OverflowError` when `high - low` is not finite; report it instead
/// of drawing infinities.
fn check_range(env: &str, what: &str, low: f64, high: f64) -> Result<()> {
    if (high - low).is_finite() {
        Ok(())
    } else {
        Err(EnvError::InvalidKwarg {
            env: env.to_string(),
            message: format!("reset range {what} [{low}, {high}] is too wide: high - low overflows"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_gymnasium_limits_and_thresholds() {
        let r = Registry::with_builtins();
        let expect = [
            ("CartPole-v1", Some(500), Some(475.0)),
            ("MountainCar-v0", Some(200), Some(-110.0)),
            ("MountainCarContinuous-v0", Some(999), Some(90.0)),
            ("Pendulum-v1", Some(200), None),
            ("Acrobot-v1", Some(500), Some(-100.0)),
        ];
        for (id, steps, threshold) in expect {
            let spec = r.spec(id).unwrap();
            assert_eq!(spec.default_max_episode_steps(), steps, "{id}");
            assert_eq!(spec.default_reward_threshold(), threshold, "{id}");
            let env = r.make(id, &Default::default()).unwrap();
            assert_eq!(env.id(), id);
        }
    }

    #[test]
    fn pow_is_libm_pow_not_a_multiplication() {
        // NumPy 2.4.6: np.float64(-1.523386358242358) ** 2 == 2.320705996478914, one ulp above x * x.
        let x = -1.523386358242358f64;
        assert_eq!(pow_f64(x, 2.0), 2.320705996478914);
        assert_eq!(x * x, 2.3207059964789134);
        // NumPy 2.4.6: np.float32(-1.9200358390808105) ** 2 == 3.686537742614746.
        // (Both numbers are float32 values, written as the float64s equal to them.)
        let x = -1.920_035_839_080_810_5_f64 as f32;
        assert_eq!(f64::from(pow_f32(x, 2.0)), 3.686_537_742_614_746);
        assert_eq!(f64::from(x * x), 3.686_537_504_196_167);
    }

    #[test]
    fn clip_matches_numpy() {
        assert_eq!(np_clip(0.5, -0.07, 0.07), 0.07);
        assert_eq!(np_clip(-0.5, -0.07, 0.07), -0.07);
        assert_eq!(np_clip(0.01, -0.07, 0.07), 0.01);
        assert!(np_clip(f64::NAN, -1.0, 1.0).is_nan());
    }
}
