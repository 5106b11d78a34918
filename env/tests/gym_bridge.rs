//! The Gymnasium bridge against real Gymnasium, in both designs: bridged CartPole bit for bit
//! against the native one, spaces and actions, keyword arguments, seeds, Python exceptions and
//! children that die.
//!
//! These run only with `RL_GYM_TESTS=1` (CI sets it after building the venv from
//! `requirements-gym.txt`); then a missing Python or package fails them. The Python comes from
//! `RL_PYTHON` or `VIRTUAL_ENV`. The test envs live in `tests/fixtures/gym_envs/`, put on
//! `PYTHONPATH` here.
#![cfg(feature = "gym")]

use std::path::Path;
use std::sync::Once;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rl_env::{Action, Env, EnvError, Kwargs, make};
use serde_json::{Value, json};

const DESIGNS: [&str; 2] = ["process", "in_process"];

/// False (after saying why) unless `RL_GYM_TESTS=1`; puts the fixture envs on `PYTHONPATH`.
fn enabled() -> bool {
    if std::env::var("RL_GYM_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set RL_GYM_TESTS=1 (and VIRTUAL_ENV or RL_PYTHON) to run the Gymnasium bridge tests");
        return false;
    }
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let path = match std::env::var_os("PYTHONPATH") {
            Some(p) if !p.is_empty() => format!("{}:{}", fixtures.display(), p.to_string_lossy()),
            _ => fixtures.display().to_string(),
        };
        // SAFETY: every test calls this first, and the others wait on the `Once` until it is done,
        // so no thread of this binary reads the environment meanwhile.
        unsafe { std::env::set_var("PYTHONPATH", path) };
    });
    true
}

fn kwargs(design: &str, extra: Value) -> Kwargs {
    let mut kw: Kwargs = serde_json::from_value(extra).expect("an object");
    kw.insert("rl_bridge".into(), design.into());
    kw
}

fn make_gym(id: &str, design: &str, extra: Value) -> Box<dyn Env> {
    make(id, &kwargs(design, extra)).unwrap_or_else(|e| panic!("{design}: making {id}: {e}"))
}

fn make_err(id: &str, design: &str, extra: Value) -> String {
    match make(id, &kwargs(design, extra)) {
        Ok(_) => panic!("{design}: making {id} succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Same seeds, same seeded actions, several episodes (reseeded and not), a short time limit:
/// every observation bit, reward and flag equal to the native CartPole's.
#[test]
fn cartpole_matches_the_native_env_bit_for_bit() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let mut bridged = make_gym("gym:CartPole-v1", design, json!({"max_episode_steps": 40}));
        assert_eq!(bridged.id(), "gym:CartPole-v1");
        assert_eq!(bridged.action_space(), make("CartPole-v1", &Kwargs::new()).unwrap().action_space());
        assert_eq!(bridged.observation_space(), make("CartPole-v1", &Kwargs::new()).unwrap().observation_space());
        let mut native =
            make("CartPole-v1", &serde_json::from_value(json!({"max_episode_steps": 40})).unwrap()).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let (mut truncations, mut terminations) = (0, 0);
        for episode in 0..12u64 {
            // Reseed every third episode; the others continue the env's generator.
            let seed = (episode % 3 == 0).then_some(100 + episode);
            let (a, b) = (bridged.reset(seed, None).unwrap(), native.reset(seed, None).unwrap());
            assert_eq!(bits(&a.0), bits(&b.0), "{design}: reset of episode {episode}");
            assert_eq!(a.1, b.1);
            let mut obs = a.0;
            loop {
                // Even episodes push toward the side the pole leans (and reach the time limit),
                // odd ones push at random (and let the pole fall).
                let action = if episode % 2 == 0 { i64::from(obs[2] > 0.0) } else { rng.random_range(0..2) };
                let (x, y) =
                    (bridged.step(Action::Discrete(action)).unwrap(), native.step(Action::Discrete(action)).unwrap());
                assert_eq!(bits(&x.obs), bits(&y.obs), "{design}: episode {episode}");
                assert_eq!((x.reward, x.terminated, x.truncated), (y.reward, y.terminated, y.truncated));
                assert_eq!(x.info, y.info);
                obs = x.obs;
                if x.terminated || x.truncated {
                    truncations += usize::from(x.truncated);
                    terminations += usize::from(x.terminated);
                    break;
                }
            }
        }
        assert!(
            truncations > 0 && terminations > 0,
            "{design}: {truncations} truncations, {terminations} terminations"
        );
    }
}

fn bits(obs: &[f32]) -> Vec<u32> {
    obs.iter().map(|v| v.to_bits()).collect()
}

/// Keyword arguments reach `gymnasium.make`: `g: 9.81` matches the native Pendulum with the same
/// `g` and differs from Gymnasium's default `g = 10`.
#[test]
fn kwargs_reach_gymnasium_make() {
    if !enabled() {
        return;
    }
    let rollout = |env: &mut Box<dyn Env>| -> Vec<u32> {
        let (mut obs, _) = env.reset(Some(3), None).unwrap();
        for t in 0..20 {
            obs = env.step(Action::Continuous(&[(t as f32 / 10.0) - 1.0])).unwrap().obs;
        }
        bits(&obs)
    };
    let mut native = make("Pendulum-v1", &serde_json::from_value(json!({"g": 9.81})).unwrap()).unwrap();
    let expected = rollout(&mut native);
    for design in DESIGNS {
        assert_eq!(rollout(&mut make_gym("gym:Pendulum-v1", design, json!({"g": 9.81}))), expected, "{design}");
        assert_ne!(rollout(&mut make_gym("gym:Pendulum-v1", design, json!({}))), expected, "{design}");
        let err = make_err("gym:Pendulum-v1", design, json!({"gravity": 9.81}));
        assert!(err.starts_with("gym:Pendulum-v1: TypeError: ") && err.contains("gravity"), "{design}: {err}");
    }
    let err = make("gym:Pendulum-v1", &serde_json::from_value(json!({"rl_bridg": "process"})).unwrap());
    let err = err.err().unwrap().to_string();
    assert!(err.contains("unknown bridge option \"rl_bridg\"; did you mean rl_bridge?"), "{err}");
}

/// `reset` passes seed and options through exactly, and info comes back as JSON without what
/// JSON cannot hold.
#[test]
fn seeds_options_and_info_pass_through() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let mut env = make_gym("gym:gym_envs:Echo-v0", design, json!({}));
        let big = u64::MAX - 5;
        let options: Kwargs = serde_json::from_value(json!({"level": 3, "name": "x"})).unwrap();
        let (obs, info) = env.reset(Some(big), Some(&options)).unwrap();
        assert_eq!(info["seed"], json!(big), "{design}");
        assert_eq!(info["options"], json!({"level": 3, "name": "x"}));
        let (again, info2) = env.reset(Some(big), None).unwrap();
        assert_eq!((bits(&obs), &info2["options"]), (bits(&again), &Value::Null));
        let (other, info3) = env.reset(None, None).unwrap();
        assert_eq!(info3["seed"], Value::Null);
        assert_ne!(bits(&other), bits(&obs), "{design}: an unseeded reset continues the generator");
        let step = env.step(Action::Discrete(0)).unwrap();
        assert_eq!(step.info["array"], json!([0, 1, 2]));
        assert_eq!(step.info["nested"], json!({"ok": 0.5}), "{design}: NaN and objects are skipped");
    }
}

/// Discrete with a start, MultiDiscrete and a float64 Box arrive in Python as Gymnasium expects.
#[test]
fn actions_arrive_in_the_spaces_types() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let mut env = make_gym("gym:gym_envs:Echo-v0", design, json!({"action_space": "discrete_start"}));
        assert_eq!(env.action_space().to_string(), "Discrete(3, start=-1)");
        env.reset(Some(0), None).unwrap();
        let step = env.step(Action::Discrete(-1)).unwrap();
        assert_eq!((step.obs[0], step.info["type"].as_str()), (-1.0, Some("int")), "{design}");
        assert_eq!((step.reward, step.terminated), (1.5, false));
        let err = env.step(Action::Discrete(2)).unwrap_err();
        assert!(matches!(err, EnvError::InvalidAction { .. }), "{design}: {err}");

        let mut env = make_gym("gym:gym_envs:Echo-v0", design, json!({"action_space": "multi_discrete"}));
        assert_eq!(env.action_space().to_string(), "MultiDiscrete([2, 3])");
        env.reset(Some(0), None).unwrap();
        let step = env.step(Action::MultiDiscrete(&[1, 2])).unwrap();
        assert_eq!(step.obs, [1.0, 2.0, 1.0]);
        assert_eq!((&step.info["dtype"], &step.info["shape"]), (&json!("int64"), &json!([2])), "{design}");

        let mut env = make_gym("gym:gym_envs:Echo-v0", design, json!({"action_space": "box_f64"}));
        assert_eq!(env.action_space().to_string(), "Box(-1.0, 1.0, (2, 2), float32)");
        assert_eq!(env.observation_space().to_string(), "Box(-inf, inf, (5,), float32)");
        env.reset(Some(0), None).unwrap();
        env.step(Action::Continuous(&[0.5, -0.5, 0.25, 1.0])).unwrap();
        let step = env.step(Action::Continuous(&[0.5, -0.5, 0.25, 1.0])).unwrap();
        assert_eq!(step.obs, [0.5, -0.5, 0.25, 1.0, 2.0]);
        assert_eq!((&step.info["dtype"], &step.info["shape"]), (&json!("float64"), &json!([2, 2])), "{design}");
        assert!(env.step(Action::Continuous(&[0.5, -0.5, 0.25, 1.0])).unwrap().terminated);
    }
}

/// MuJoCo envs: a float64 observation Box and a six-dimensional action Box.
#[test]
fn half_cheetah_steps_in_both_designs() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let mut env = make_gym("gym:HalfCheetah-v4", design, json!({}));
        assert_eq!((env.observation_space().flat_dim(), env.action_space().flat_dim()), (17, 6));
        env.reset(Some(1), None).unwrap();
        let step = env.step(Action::Continuous(&[0.1; 6])).unwrap();
        assert!(step.reward.is_finite() && step.info.contains_key("x_velocity"), "{design}: {step:?}");
    }
}

/// Unsupported spaces, exceptions in make and step, and step before reset are errors naming the
/// env; an exception leaves the env usable.
#[test]
fn errors_name_the_env_and_the_exception() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let err = make_err("gym:gym_envs:DictObs-v0", design, json!({}));
        assert!(
            err.starts_with("gym:gym_envs:DictObs-v0: its observation space Dict('a': Discrete(2)) is not supported"),
            "{design}: {err}"
        );
        let err = make_err("gym:NoSuchEnv-v0", design, json!({}));
        assert!(err.starts_with("gym:NoSuchEnv-v0: NameNotFound: Environment `NoSuchEnv` doesn't exist"), "{err}");

        let mut env = make_gym("gym:gym_envs:RaiseInStep-v0", design, json!({}));
        let err = env.step(Action::Discrete(0)).unwrap_err();
        assert!(matches!(err, EnvError::StepBeforeReset { .. }), "{design}: {err}");
        env.reset(Some(0), None).unwrap();
        env.step(Action::Discrete(0)).unwrap();
        let err = env.step(Action::Discrete(0)).unwrap_err().to_string();
        assert_eq!(err, "gym:gym_envs:RaiseInStep-v0: ValueError: boom on step 2", "{design}");
        env.reset(Some(0), None).unwrap();
        env.step(Action::Discrete(1)).unwrap();
    }
}

/// A child that segfaults or exits fails the step at once with its pid, signal or exit code and
/// the end of its stderr; what the env prints to stdout never corrupts the protocol.
#[test]
fn a_dying_child_is_an_error_naming_pid_and_cause() {
    if !enabled() {
        return;
    }
    for (how, cause) in [("segfault", "killed by signal 11 (SIGSEGV)"), ("exit", "exited with code 3")] {
        let mut env = make_gym("gym:gym_envs:Crash-v0", "process", json!({"how": how}));
        env.reset(Some(0), None).unwrap();
        env.step(Action::Discrete(0)).unwrap();
        let err = env.step(Action::Discrete(0)).unwrap_err().to_string();
        assert!(err.starts_with("gym:gym_envs:Crash-v0: the Python process (pid "), "{err}");
        assert!(err.contains(&format!(") died: {cause}")), "{err}");
        assert!(err.contains(&format!("about to {how}")), "the stderr tail is missing: {err}");
        // The dead child gives the same answer at once, for reset too.
        assert_eq!(env.reset(Some(0), None).unwrap_err().to_string(), err);
    }
}

/// A child started from a thread that has since ended keeps running (the launcher thread owns
/// its parent-death signal), and a dropped env's child is reaped.
#[test]
fn children_outlive_the_thread_that_made_them() {
    if !enabled() {
        return;
    }
    let mut env = std::thread::spawn(|| make_gym("gym:CartPole-v1", "process", json!({}))).join().unwrap();
    env.reset(Some(0), None).unwrap();
    assert_eq!(env.step(Action::Discrete(0)).unwrap().reward, 1.0);
}

/// `list_ids` lists Gymnasium's registry under the `gym:` prefix.
#[test]
fn list_ids_has_gymnasium_registry() {
    if !enabled() {
        return;
    }
    let ids = rl_env::gym::list_ids().unwrap();
    for id in ["gym:CartPole-v1", "gym:HalfCheetah-v4", "gym:Pendulum-v1"] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
}

/// Several threads each step their own env at once, in both designs.
#[test]
fn envs_step_from_several_threads() {
    if !enabled() {
        return;
    }
    for design in DESIGNS {
        let rewards: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    s.spawn(move || {
                        let mut env = make_gym("gym:CartPole-v1", design, json!({}));
                        env.reset(Some(i), None).unwrap();
                        let mut total = 0.0;
                        for t in 0..50 {
                            let step = env.step(Action::Discrete(t % 2)).unwrap();
                            total += step.reward;
                            if step.terminated || step.truncated {
                                env.reset(None, None).unwrap();
                            }
                        }
                        total
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(rewards.iter().all(|r| *r == 50.0), "{design}: {rewards:?}");
    }
}
