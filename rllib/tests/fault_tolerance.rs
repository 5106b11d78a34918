//! Env-runner fault tolerance on the embedded runtime, RLlib's matrix on `CrashingCartPole-v1`:
//! restarts off (the run fails clearly), failures ignored (it goes on with the healthy
//! runners), recovery (runners restarted), sub-environment restarts (only the sub-env restarts);
//! and the kinds of faults a thread runner can survive (panic, error, a stall past the timeout).

use std::path::Path;

use rllib::run_dir::Progress;
use rllib::{Error, TrainConfig, train};

mod common;

fn config(extra: &[&str]) -> TrainConfig {
    let base = [
        "env=CrashingCartPole-v1",
        "num_env_runners=2",
        "num_envs_per_env_runner=2",
        "rollout_fragment_length=64",
        "minibatch_size=64",
        "stop.training_iteration=6",
        "lr_schedule=constant",
        "fault_tolerance.delay_between_env_runner_restarts_s=0",
    ];
    let overrides: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    TrainConfig::load(&path, &overrides).unwrap()
}

/// The last row's value of `column`.
fn last(dir: &Path, column: &str) -> f64 {
    let p = Progress::read(&dir.join("progress.csv")).unwrap();
    p.column(column).unwrap().last().copied().flatten().unwrap()
}

/// Runner 1 faults at its 100th step (of each sub-env), of `kind`, in its first life only.
fn crash(kind: &str) -> Vec<String> {
    vec![
        "env_config.crash_after_n_steps=100".into(),
        "env_config.crash_on_worker_indices=[1]".into(),
        format!("env_config.crash_kinds=[{kind}]"),
        "env_config.crash_until_restart=1".into(),
    ]
}

fn with(extra: &[String], more: &[&str]) -> TrainConfig {
    let all: Vec<&str> = extra.iter().map(String::as_str).chain(more.iter().copied()).collect();
    config(&all)
}

#[test]
fn restarts_off_fail_the_run_with_a_clear_error() {
    let dir = common::scratch("ft", "off");
    let c = with(&crash("panic"), &["fault_tolerance.restart_failed_env_runners=false"]);
    let err = train(&c, &dir, &mut ()).unwrap_err();
    assert!(matches!(err, Error::EnvRunners(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("env_runner_1") && msg.contains("restart_failed_env_runners is false"), "{msg}");
    assert!(msg.contains("panicked"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ignored_failures_go_on_with_the_healthy_runners() {
    let dir = common::scratch("ft", "ignore");
    let c = with(
        &crash("error"),
        &["fault_tolerance.restart_failed_env_runners=false", "fault_tolerance.ignore_env_runner_failures=true"],
    );
    let summary = train(&c, &dir, &mut ()).unwrap();
    assert_eq!(summary.iterations, 6);
    assert_eq!(last(&dir, "fault_tolerance/num_healthy_workers"), 1.0);
    assert_eq!(last(&dir, "fault_tolerance/num_remote_worker_restarts"), 0.0);
    // The iterations after the failure sample from one runner: half the steps.
    let steps = Progress::read(&dir.join("progress.csv")).unwrap().column("num_env_steps_sampled_lifetime").unwrap();
    let per_iter: Vec<f64> = steps.windows(2).map(|w| w[1].unwrap() - w[0].unwrap()).collect();
    assert_eq!(*per_iter.last().unwrap(), 128.0, "{per_iter:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_runners_are_restarted_for_panics_and_errors() {
    for kind in ["panic", "error"] {
        let dir = common::scratch("ft", &format!("recover-{kind}"));
        let summary = train(&with(&crash(kind), &[]), &dir, &mut ()).unwrap();
        assert_eq!(summary.iterations, 6, "{kind}");
        assert_eq!(last(&dir, "fault_tolerance/num_remote_worker_restarts"), 1.0, "{kind}");
        assert_eq!(last(&dir, "fault_tolerance/num_healthy_workers"), 2.0, "{kind}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_runner_that_stalls_past_the_sample_timeout_is_replaced() {
    let dir = common::scratch("ft", "stall");
    // A thread cannot be interrupted: the stalled runner holds its CPU until its stall ends,
    // and only then is there room for its replacement. So this run lasts past the stall.
    let c = with(
        &crash("stall"),
        &[
            "env_config.stall_s=2",
            "fault_tolerance.sample_timeout_s=1",
            "stop.training_iteration=null",
            "stop.time_total_s=5",
        ],
    );
    train(&c, &dir, &mut ()).unwrap();
    assert_eq!(last(&dir, "fault_tolerance/num_remote_worker_restarts"), 1.0);
    assert_eq!(last(&dir, "fault_tolerance/num_healthy_workers"), 2.0);
    let healthy =
        Progress::read(&dir.join("progress.csv")).unwrap().column("fault_tolerance/num_healthy_workers").unwrap();
    assert!(healthy.contains(&Some(1.0)), "one runner was out while it stalled");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_sub_environment_restarts_alone() {
    let dir = common::scratch("ft", "subenv");
    let mut extra = crash("panic");
    extra.push("env_config.crash_on_vector_indices=[0]".into());
    let c = with(&extra, &["fault_tolerance.restart_failed_sub_environments=true"]);
    let summary = train(&c, &dir, &mut ()).unwrap();
    assert_eq!(summary.iterations, 6);
    assert_eq!(last(&dir, "fault_tolerance/num_remote_worker_restarts"), 0.0);
    assert_eq!(last(&dir, "fault_tolerance/num_sub_env_restarts"), 1.0);
    // No step was lost: every iteration sampled the full batch.
    assert_eq!(last(&dir, "num_env_steps_sampled_lifetime"), 6.0 * 256.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fault_tolerance_keys_are_checked() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    let err = TrainConfig::load(&path, &["fault_tolerance.sample_timeout_s=0".into()]).unwrap_err().to_string();
    assert!(err.contains("fault_tolerance.sample_timeout_s: must be a positive number"), "{err}");
    let err = TrainConfig::load(&path, &["fault_tolerance.restart_failed_env_runner=true".into()]).unwrap_err();
    assert!(err.to_string().contains("did you mean restart_failed_env_runners"), "{err}");
}
