//! The Gymnasium bridge on a real cluster (feature `gym`): a head and two nodes as processes,
//! env runners each in a process of their own on the nodes, every sub-env's Python in a child of
//! those. Runs only with `RL_GYM_TESTS=1` (`.ci/run` sets it after building the Python venv).
#![cfg(feature = "gym")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Cluster, PPO, RL, progress_without_timing};

/// Gymnasium's CartPole-v1 through the bridge, in runner processes on two nodes, trains exactly
/// like the native CartPole-v1 on the embedded runtime: same seeds, same rows.
#[test]
fn bridged_envs_train_in_runner_processes_on_nodes() {
    if std::env::var("RL_GYM_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set RL_GYM_TESTS=1 (and VIRTUAL_ENV or RL_PYTHON) to run the Gymnasium bridge tests");
        return;
    }
    let c = Cluster::start("gym", 2, 30_000);
    let short = ["--set", "stop.training_iteration=4", "--set", "evaluation.interval=2"];
    let cluster_run = c.dir.join("cluster-run");
    let bridged = ["--set", "env=gym:CartPole-v1", "--set", "env_runner_isolation=process"];
    let mut driver = c.train(Path::new(PPO), &cluster_run, &[&bridged[..], &short[..]].concat());
    assert!(driver.exit(Duration::from_secs(300)).success(), "{}", driver.err());

    let local_run = c.dir.join("local-run");
    let local = Command::new(RL)
        .args(["train", "--config", PPO, "--output", local_run.to_str().unwrap(), "--quiet"])
        .args(short)
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    assert_eq!(progress_without_timing(&cluster_run), progress_without_timing(&local_run));

    // Each runner ran in a process of its own, neither a node's nor the driver's.
    let placed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cluster_run.join("cluster.json")).unwrap()).unwrap();
    let mut not_runners: Vec<u64> = c.nodes.iter().map(|n| u64::from(n.pid())).collect();
    not_runners.push(u64::from(driver.pid()));
    for name in ["env_runner_0", "env_runner_1"] {
        let actor = placed["actors"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap();
        let pid = actor["pid"].as_u64().unwrap_or_else(|| panic!("{placed}"));
        assert!(!not_runners.contains(&pid), "{name} ran in pid {pid}: {placed}");
    }
}
