//! Chaos with real processes: a head and three nodes, PPO on `CrashingCartPole-v1` whose env
//! runners (each in its own process) panic, return errors, abort and stall past the sample
//! timeout, twice each, while one node is SIGKILLed mid-run. The run completes, every injected
//! kind is seen and survived, restarts are counted, and the policy still solves CartPole.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Cluster;

/// CleanRL's CartPole settings (configs/ppo.yaml) on four runners whose envs fault after 1500
/// steps of each instance, in each runner's first two lives: runner 0 panics, 1 returns an
/// error, 2 aborts its process, 3 stalls for two minutes. `sample_timeout_s` is far above a
/// loaded machine's sample time (milliseconds), so only the stall trips it.
const CONFIG: &str = "\
env: CrashingCartPole-v1
env_config:
  crash_after_n_steps: 1500
  crash_on_worker_indices: [0, 1, 2, 3]
  crash_kinds: [panic, error, abort, stall]
  crash_until_restart: 2
  stall_s: 120
num_env_runners: 4
num_envs_per_env_runner: 1
rollout_fragment_length: 128
minibatch_size: 128
env_runner_isolation: process
fault_tolerance:
  sample_timeout_s: 15
  delay_between_env_runner_restarts_s: 0.2
stop:
  num_env_steps_sampled_lifetime: 500000
";

fn rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("progress.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

#[test]
fn training_survives_crashes_of_every_kind_and_a_killed_node() {
    let mut c = Cluster::start("chaos", 3, 2_000);
    let config = c.dir.join("chaos.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let run = c.dir.join("run");
    let mut driver = c.train(&config, &run, &[]);
    // Once training is well under way (every first-life fault has fired by iteration ~12),
    // kill a node with SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(300);
    while rows(&run) < 40 {
        assert!(Instant::now() < deadline, "training did not get going: {}", driver.err());
        assert!(driver.child.try_wait().unwrap().is_none(), "the driver exited: {}", driver.err());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut victim = c.nodes.remove(0);
    victim.child.kill().unwrap();
    victim.exit(Duration::from_secs(10));

    let status = driver.exit(Duration::from_secs(900));
    let err = driver.err();
    assert!(status.success(), "the run failed: {err}");

    // Every injected kind happened (twice) and was survived. An abort shows in the driver as a
    // broken call; the node that ran the worker process names the signal.
    let nodes_log: String =
        (0..3).map(|i| std::fs::read_to_string(c.dir.join(format!("node{i}.err"))).unwrap_or_default()).collect();
    for (kind, log, seen) in [
        ("panic", &err, "env_runner_0 panicked: CrashingCartPole-v1: injected panic"),
        ("error", &err, "env_runner_1 failed: CrashingCartPole-v1: injected error"),
        ("abort", &nodes_log, "actor env_runner_2's worker process"),
        ("stall", &err, "runner=env_runner_3 error=no sample within sample_timeout_s"),
    ] {
        let times = log.lines().filter(|l| l.contains(seen) && (kind != "abort" || l.contains("SIGABRT"))).count();
        assert!(times >= 2, "{kind} fault seen {times} times ({seen:?}); driver: {err}\nnodes: {nodes_log}");
    }
    // No healthy runner was taken for stuck: only the stalling one ever timed out.
    let timeouts: Vec<&str> = err.lines().filter(|l| l.contains("no sample within")).collect();
    assert!(timeouts.iter().all(|l| l.contains("runner=env_runner_3")), "{timeouts:#?}");
    // The node's runners were lost with it and restarted elsewhere.
    assert!(err.contains("unreachable") || err.contains("died while handling the call"), "{err}");

    let progress = rllib::run_dir::Progress::read(&run.join("progress.csv")).unwrap();
    let restarts = progress.column("fault_tolerance/num_remote_worker_restarts").unwrap();
    let restarts = restarts.last().copied().flatten().unwrap();
    // Two faults for each of the four runners, and at least one runner of the killed node.
    assert!(restarts >= 9.0, "{restarts} restarts");
    let healthy = progress.column("fault_tolerance/num_healthy_workers").unwrap();
    assert_eq!(healthy.last().copied().flatten(), Some(4.0));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let returns: Vec<f64> =
        summary["final_evaluation"]["returns"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    assert!(mean >= 475.0, "final evaluation {mean} over {} episodes", returns.len());
    println!("chaos: {} iterations, {restarts} env runner restarts, final evaluation {mean}", progress.len());
}
