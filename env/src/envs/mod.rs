//! Built-in classic-control envs, matching Gymnasium 1.4.0 bit for bit, and their registration;
//! also CrashingCartPole-v1, CartPole-v1 with injected faults for fault-tolerance tests.
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
mod crashing_cartpole;
mod mountain_car;
mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use continuous_mountain_car::MountainCarContinuous;
pub use crashing_cartpole::{CrashKind, CrashingCartPole};
pub use mountain_car::MountainCar;
pub use pendulum::Pendulum;

use crate::error::{EnvError, Result};
use crate::registry::{EnvSpec, Registry};

/// Registers every built-in env in `registry`, with Gymnasium's time limits and reward thresholds
/// (`gymnasium/envs/__init__.py`, Gymnasium 1.4.0). CrashingCartPole-v1, which Gymnasium lacks,
/// takes CartPole-v1's.
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
    registry.register(
        EnvSpec::with_context("CrashingCartPole-v1", |kw, ctx| Ok(Box::new(CrashingCartPole::from_kwargs(kw, ctx)?)))
            .max_episode_steps(500)
            .reward_threshold(475.0),
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
    use crate::rng::NpRandom;
    use crate::space::Space;
    use crate::{Env, Kwargs};

    #[test]
    fn registers_gymnasium_limits_and_thresholds() {
        let r = Registry::with_builtins();
        let expect = [
            ("CartPole-v1", Some(500), Some(475.0)),
            ("MountainCar-v0", Some(200), Some(-110.0)),
            ("MountainCarContinuous-v0", Some(999), Some(90.0)),
            ("Pendulum-v1", Some(200), None),
            ("Acrobot-v1", Some(500), Some(-100.0)),
            ("CrashingCartPole-v1", Some(500), Some(475.0)),
        ];
        for (id, steps, threshold) in expect {
            let spec = r.spec(id).unwrap();
            assert_eq!(spec.default_max_episode_steps(), steps, "{id}");
            assert_eq!(spec.default_reward_threshold(), threshold, "{id}");
            let env = r.make(id, &Default::default()).unwrap();
            assert_eq!(env.id(), id);
        }
    }

    /// One step's outcome, floats as bits.
    type Record = (Vec<u32>, u64, bool, bool);

    /// Steps `env` `n` times with actions sampled from `actions`, resetting (unseeded, so the
    /// env's own generator draws the start) whenever an episode ends.
    fn run(env: &mut dyn Env, actions: &mut NpRandom, n: usize) -> Vec<Record> {
        (0..n)
            .map(|_| {
                let action = env.action_space().sample(actions.bits_mut());
                let s = env.step(action.as_action()).unwrap();
                if s.terminated || s.truncated {
                    env.reset(None, None).unwrap();
                }
                (s.obs.iter().map(|x| x.to_bits()).collect(), s.reward.to_bits(), s.terminated, s.truncated)
            })
            .collect()
    }

    #[test]
    fn every_builtin_resumes_bit_for_bit_from_saved_json_text() {
        let r = Registry::with_builtins();
        // A short time limit crosses several episode ends, so resets draw from the restored generator.
        let kw: Kwargs = serde_json::from_str(r#"{"max_episode_steps": 40}"#).unwrap();
        for id in r.ids() {
            let mut env = r.make(&id, &kw).unwrap();
            env.reset(Some(11), None).unwrap();
            let mut actions = NpRandom::from_seed(5);
            run(&mut *env, &mut actions, 57);
            let saved = serde_json::to_string(&env.save_state().expect("built-ins save their state")).unwrap();
            let actions_at_save = actions.clone();
            let want = run(&mut *env, &mut actions, 300);
            assert!(want.iter().filter(|s| s.2 || s.3).count() >= 3, "{id}: too few episode ends");

            let mut resumed = r.make(&id, &kw).unwrap();
            resumed.restore_state(&serde_json::from_str(&saved).unwrap()).unwrap();
            assert_eq!(run(&mut *resumed, &mut actions_at_save.clone(), 300), want, "{id}");
        }
    }

    #[test]
    fn restoring_another_envs_state_or_garbage_is_an_error() {
        let r = Registry::with_builtins();
        let mut cartpole = r.make("CartPole-v1", &Kwargs::new()).unwrap();
        cartpole.reset(Some(0), None).unwrap();
        let saved = cartpole.save_state().unwrap();
        let mut pendulum = r.make("Pendulum-v1", &Kwargs::new()).unwrap();
        let err = pendulum.restore_state(&saved).unwrap_err().to_string();
        assert_eq!(
            err,
            "Pendulum-v1: cannot restore state: expected a state saved by Pendulum-v1, got one saved by CartPole-v1"
        );
        // Without its time limit the env is not wrapped in TimeLimit: a state saved with one does not fit.
        let mut bare = r.make("CartPole-v1", &serde_json::from_str(r#"{"max_episode_steps": null}"#).unwrap()).unwrap();
        let err = bare.restore_state(&saved).unwrap_err().to_string();
        assert!(err.contains("expected a state saved by CartPole-v1, got one saved by TimeLimit"), "{err}");
        let mut broken = saved.clone();
        broken["inner"]["state"] = serde_json::json!([1, 2]);
        let err = cartpole.restore_state(&broken).unwrap_err().to_string();
        assert!(err.starts_with("CartPole-v1: cannot restore state: state must be a list of 4"), "{err}");
        for garbage in [serde_json::json!(null), serde_json::json!("x"), serde_json::json!({"type": 3})] {
            assert!(matches!(cartpole.restore_state(&garbage), Err(EnvError::InvalidState { .. })), "{garbage}");
        }
        // A failed restore changes nothing.
        let after: Vec<_> = run(&mut *cartpole, &mut NpRandom::from_seed(1), 20);
        let mut fresh = r.make("CartPole-v1", &Kwargs::new()).unwrap();
        fresh.reset(Some(0), None).unwrap();
        assert_eq!(run(&mut *fresh, &mut NpRandom::from_seed(1), 20), after);
    }

    #[test]
    fn envs_that_cannot_save_say_so() {
        struct Opaque(Space);
        impl Env for Opaque {
            fn observation_space(&self) -> &Space {
                &self.0
            }
            fn action_space(&self) -> &Space {
                &self.0
            }
            fn reset_into(&mut self, _: Option<u64>, _: Option<&Kwargs>, _: &mut [f32]) -> Result<crate::Info> {
                Ok(crate::Info::new())
            }
            fn step_into(&mut self, _: crate::Action<'_>, _: &mut [f32]) -> Result<crate::StepResult> {
                unreachable!("never stepped")
            }
        }
        let mut r = Registry::empty();
        r.register(EnvSpec::new("Opaque-v0", |_| Ok(Box::new(Opaque(Space::discrete(2)?)))).max_episode_steps(5))
            .unwrap();
        let mut env = r.make("Opaque-v0", &Kwargs::new()).unwrap();
        assert!(env.save_state().is_none());
        let err = env.restore_state(&serde_json::json!({})).unwrap_err().to_string();
        assert_eq!(err, "Opaque-v0: cannot restore state: this env does not support saving and restoring its state");
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
