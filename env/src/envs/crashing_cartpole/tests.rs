use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use serde_json::json;

use super::*;
use crate::registry::{Registry, make_with_context};

fn kwargs(v: serde_json::Value) -> Kwargs {
    v.as_object().unwrap().clone()
}

fn ctx(worker_index: u32, vector_index: u32, restarts: u32) -> EnvContext {
    EnvContext { worker_index, vector_index, restarts }
}

/// What one step did: `Ok` with the observation bits, or the error or panic message.
fn step(env: &mut dyn Env, action: i64) -> std::result::Result<Vec<u32>, String> {
    match catch_unwind(AssertUnwindSafe(|| env.step(Action::Discrete(action)))) {
        Ok(Ok(s)) => Ok(s.obs.iter().map(|x| x.to_bits()).collect()),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(p) => Err(format!("panic: {}", p.downcast_ref::<String>().cloned().unwrap_or_default())),
    }
}

/// The steps (1-based) at which `n` steps fail.
fn failing_steps(env: &mut dyn Env, n: u64) -> Vec<u64> {
    env.reset(Some(0), None).unwrap();
    (1..=n).filter(|_| step(env, 1).is_err()).collect()
}

#[test]
fn without_faults_it_is_cartpole_bit_for_bit() {
    let r = Registry::with_builtins();
    let kw = kwargs(json!({"crash_on_worker_indices": [5], "crash_after_n_steps": 3}));
    let mut crashing = r.make_with_context("CrashingCartPole-v1", &kw, &ctx(0, 1, 0)).unwrap();
    let mut cartpole = r.make("CartPole-v1", &Kwargs::new()).unwrap();
    assert_eq!(crashing.reset(Some(7), None).unwrap(), cartpole.reset(Some(7), None).unwrap());
    let mut ends = 0;
    for t in 0..2000 {
        let a = Action::Discrete(i64::from(t % 7 < 3));
        let (x, y) = (crashing.step(a).unwrap(), cartpole.step(a).unwrap());
        assert_eq!(
            x.obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!((x.reward.to_bits(), x.terminated, x.truncated), (y.reward.to_bits(), y.terminated, y.truncated));
        if x.terminated || x.truncated {
            ends += 1;
            assert_eq!(crashing.reset(None, None).unwrap(), cartpole.reset(None, None).unwrap());
        }
    }
    assert!(ends > 10, "{ends}");
}

#[test]
fn each_kind_fires_at_its_step_on_its_indices_only() {
    for kind in ["panic", "error", "stall"] {
        let kw = kwargs(json!({
            "crash_after_n_steps": 5, "crash_on_worker_indices": [1], "crash_on_vector_indices": [2],
            "crash_kinds": [kind], "stall_s": 0.05,
        }));
        for (c, faulty) in [(ctx(1, 2, 0), true), (ctx(0, 2, 0), false), (ctx(1, 0, 0), false), (ctx(2, 2, 3), false)] {
            let mut env = make_with_context("CrashingCartPole-v1", &kw, &c).unwrap();
            let mut plain = make_with_context("CartPole-v1", &Kwargs::new(), &c).unwrap();
            env.reset(Some(0), None).unwrap();
            plain.reset(Some(0), None).unwrap();
            for n in 1..=8u64 {
                let start = Instant::now();
                let got = step(&mut *env, 0);
                let fault = faulty && n == 5;
                if fault && kind != "stall" {
                    let msg = got.unwrap_err();
                    let want = format!(
                        "{kind}: CrashingCartPole-v1: injected {kind} at step 5 (worker 1, sub-env 2, restarts 0)"
                    );
                    assert_eq!(msg, want);
                    continue; // A failed step leaves the physics where it was.
                }
                assert_eq!(got.unwrap(), step(&mut *plain, 0).unwrap(), "{kind} {c:?} step {n}");
                if fault {
                    assert!(start.elapsed().as_secs_f64() >= 0.05, "a stall sleeps stall_s");
                }
            }
        }
    }
}

#[test]
fn kinds_can_differ_per_worker() {
    let kw = kwargs(json!({"p_crash": 1.0, "crash_on_worker_indices": [0, 3], "crash_kinds": ["error", "panic"]}));
    let mut w0 = make_with_context("CrashingCartPole-v1", &kw, &ctx(0, 0, 0)).unwrap();
    let mut w3 = make_with_context("CrashingCartPole-v1", &kw, &ctx(3, 0, 0)).unwrap();
    w0.reset(Some(0), None).unwrap();
    w3.reset(Some(0), None).unwrap();
    assert!(step(&mut *w0, 0).unwrap_err().starts_with("error: "));
    assert!(step(&mut *w3, 0).unwrap_err().starts_with("panic: "));
    let err = CrashingCartPole::from_kwargs(&kwargs(json!({"crash_kinds": ["error", "panic"]})), &ctx(0, 0, 0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "CrashingCartPole-v1: crash_kinds must be one kind, or one per entry of crash_on_worker_indices (0), got 2 kinds"
    );
}

#[test]
fn faults_stop_once_restarts_reach_crash_until_restart() {
    let kw = kwargs(json!({"p_crash": 1.0, "crash_kinds": ["error"], "crash_until_restart": 2}));
    for (restarts, fails) in [(0, true), (1, true), (2, false), (5, false)] {
        let mut env = make_with_context("CrashingCartPole-v1", &kw, &ctx(0, 0, restarts)).unwrap();
        assert_eq!(failing_steps(&mut *env, 3).len(), if fails { 3 } else { 0 }, "restarts {restarts}");
    }
}

#[test]
fn random_faults_are_deterministic_per_context_and_seed() {
    let kw = |seed: u64| kwargs(json!({"p_crash": 0.25, "crash_kinds": ["error"], "crash_seed": seed}));
    let run = |seed: u64, c: EnvContext| {
        let mut env = make_with_context("CrashingCartPole-v1", &kw(seed), &c).unwrap();
        failing_steps(&mut *env, 400)
    };
    let a = run(0, ctx(0, 0, 0));
    assert_eq!(a, run(0, ctx(0, 0, 0)));
    assert!((60..=140).contains(&a.len()), "about a quarter of 400 steps fail, got {}", a.len());
    for other in [run(1, ctx(0, 0, 0)), run(0, ctx(1, 0, 0)), run(0, ctx(0, 1, 0)), run(0, ctx(0, 0, 1))] {
        assert_ne!(a, other);
    }
}

#[test]
fn fault_state_resumes_exactly() {
    let kw = kwargs(json!({"p_crash": 0.2, "crash_after_n_steps": 30, "crash_kinds": ["error"]}));
    let mut env = make_with_context("CrashingCartPole-v1", &kw, &ctx(2, 1, 0)).unwrap();
    env.reset(Some(3), None).unwrap();
    type Outcome = std::result::Result<(Vec<u32>, u64), String>;
    let play = |env: &mut dyn Env, n: usize| -> Vec<Outcome> {
        (0..n)
            .map(|t| match env.step(Action::Discrete((t % 2) as i64)) {
                Ok(s) => {
                    if s.terminated || s.truncated {
                        env.reset(None, None).unwrap();
                    }
                    Ok((s.obs.iter().map(|x| x.to_bits()).collect(), s.reward.to_bits()))
                }
                Err(e) => Err(e.to_string()),
            })
            .collect()
    };
    play(&mut *env, 17);
    let saved = serde_json::to_string(&env.save_state().unwrap()).unwrap();
    let want = play(&mut *env, 100);
    assert!(want.iter().any(|s| s.is_err()) && want.iter().any(|s| s.is_ok()));
    assert!(
        want.contains(&Err("CrashingCartPole-v1: injected error at step 30 (worker 2, sub-env 1, restarts 0)".into()))
    );
    // Restored into an instance of another context, it takes the saved one.
    let mut resumed = make_with_context("CrashingCartPole-v1", &kw, &ctx(0, 0, 0)).unwrap();
    resumed.restore_state(&serde_json::from_str(&saved).unwrap()).unwrap();
    assert_eq!(play(&mut *resumed, 100), want);
}

#[test]
fn kwargs_are_validated() {
    let cases = [
        (json!({"p_crash": 1.5}), "p_crash must be a probability in [0, 1], got 1.5"),
        (json!({"p_crash": -0.1}), "p_crash must be a probability in [0, 1], got -0.1"),
        (json!({"stall_s": -1}), "stall_s must be a non-negative number of seconds, got -1"),
        (
            json!({"crash_kinds": ["boom"]}),
            "crash_kinds must be a list of \"panic\", \"error\", \"abort\" or \"stall\", got \"boom\"",
        ),
        (
            json!({"crash_kinds": []}),
            "crash_kinds must be one kind, or one per entry of crash_on_worker_indices (0), got 0 kinds",
        ),
        (
            json!({"crash_on_worker_indices": [-1]}),
            "crash_on_worker_indices must be a list of indices from 0 to 4294967295, got -1",
        ),
        (json!({"crash_after_n_steps": -3}), "crash_after_n_steps must be a non-negative integer, got -3"),
    ];
    for (kw, want) in cases {
        let err = CrashingCartPole::from_kwargs(&kwargs(kw.clone()), &ctx(0, 0, 0)).unwrap_err().to_string();
        assert_eq!(err, format!("CrashingCartPole-v1: {want}"), "{kw}");
    }
    let err = CrashingCartPole::from_kwargs(&kwargs(json!({"p_crsh": 0.1})), &ctx(0, 0, 0)).unwrap_err().to_string();
    assert!(err.starts_with("CrashingCartPole-v1: unknown keyword argument \"p_crsh\"; allowed: p_crash"), "{err}");
    let kw = kwargs(json!({"crash_kinds": ["abort", "stall"], "crash_on_worker_indices": [4, 5]}));
    let env = CrashingCartPole::from_kwargs(&kw, &ctx(4, 0, 0)).unwrap();
    assert_eq!(env.fault_kind(), Some(CrashKind::Abort));
}

/// Set in the child process that `abort_ends_the_process` starts.
const ABORT_CHILD_VAR: &str = "RL_ENV_CRASHING_CARTPOLE_ABORT_CHILD";

/// In the child process only: steps into an `abort` fault.
#[test]
fn abort_child() {
    if std::env::var_os(ABORT_CHILD_VAR).is_none() {
        return;
    }
    let kw = kwargs(json!({"crash_after_n_steps": 2, "crash_kinds": ["abort"]}));
    let mut env = make_with_context("CrashingCartPole-v1", &kw, &ctx(0, 0, 0)).unwrap();
    env.reset(Some(0), None).unwrap();
    env.step(Action::Discrete(0)).unwrap();
    println!("stepped once");
    let _ = env.step(Action::Discrete(0));
    println!("survived the abort");
}

#[test]
fn abort_ends_the_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "envs::crashing_cartpole::tests::abort_child", "--nocapture", "--test-threads=1"])
        .env(ABORT_CHILD_VAR, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stepped once") && !stdout.contains("survived"), "{stdout}");
    assert!(!out.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "SIGABRT: {:?}", out.status);
    }
}
