//! A real cluster: a head and worker nodes as separate `rl` processes on 127.0.0.1, a driver
//! process training on them, nodes killed for real. Every process is started with `--port 0`
//! (a free port, read from its `listening on` line), its own session directory, and a guard that
//! kills it by pid on drop, so a failed assert leaves nothing running.

mod common;

use common::{Cluster, PPO, Proc, RL, progress_without_timing};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn ppo_across_a_head_and_two_nodes_learns_and_matches_the_local_run() {
    let c = Cluster::start("ppo", 2, 30_000);
    let cluster_run = c.dir.join("cluster-run");
    let local_run = c.dir.join("local-run");
    let run = cluster_run.display().to_string();
    let mut driver = Proc::spawn(
        Path::new(RL),
        &["train", "--config", PPO, "--address", &c.address, "--session-dir", &c.session, "--output", &run, "--quiet"],
        &c.dir,
        "driver",
    );
    let driver_pid = driver.pid();
    assert!(driver.exit(Duration::from_secs(900)).success(), "{}", driver.err());
    let local = Command::new(RL)
        .args(["train", "--config", PPO, "--output", local_run.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));

    // The same learning curve, cell for cell, but for the timing columns.
    let (a, b) = (progress_without_timing(&cluster_run), progress_without_timing(&local_run));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "row {i} differs");
    }
    let summary = read_json(&cluster_run.join("summary.json"));
    let returns = summary["final_evaluation"]["returns"].as_array().unwrap();
    let final_return = returns.iter().map(|r| r.as_f64().unwrap()).sum::<f64>() / returns.len() as f64;
    assert!(final_return >= 475.0, "final evaluation {final_return}");

    // Each rollout worker ran in a worker-node process, the learner in the driver.
    let placed = read_json(&cluster_run.join("cluster.json"));
    let node_pids: Vec<u64> = c.nodes.iter().map(|n| u64::from(n.pid())).collect();
    let actors = placed["actors"].as_array().unwrap();
    let runners: Vec<&serde_json::Value> =
        actors.iter().filter(|a| a["name"].as_str().unwrap().starts_with("env_runner")).collect();
    assert_eq!(runners.len(), 2);
    for r in &runners {
        let pid = r["pid"].as_u64().unwrap();
        assert!(node_pids.contains(&pid) && pid != u64::from(driver_pid), "{r}");
    }
    assert_ne!(runners[0]["node_id"], runners[1]["node_id"], "spread over both nodes");
    // Through one SPREAD placement group, worker i in bundle i.
    let group = &placed["placement_groups"][0];
    assert_eq!((group["name"].as_str(), group["strategy"].as_str()), (Some("env_runners"), Some("SPREAD")), "{placed}");
    for (i, r) in runners.iter().enumerate() {
        assert_eq!(group["bundle_nodes"][i], r["node_id"], "{placed}");
    }
    let learner = actors.iter().find(|a| a["name"] == "learner").unwrap();
    assert_eq!(learner["pid"].as_u64(), Some(u64::from(driver_pid)));

    // Weights went out to both nodes and batches came back, every iteration.
    let iterations = (a.len() - 1) as u64;
    let nodes = placed["nodes"].as_array().unwrap();
    let driver_id = placed["driver"]["node_id"].as_u64().unwrap();
    for n in nodes {
        let t = &n["transfers"];
        let (pulled, served) = (t["objects_pulled"].as_u64().unwrap(), t["objects_served"].as_u64().unwrap());
        if n["node_id"].as_u64() == Some(driver_id) {
            assert_eq!(pulled, 2 * iterations, "the driver pulls two batches per iteration: {n}");
            assert!(served >= 2 * iterations, "and serves the weights to two nodes: {n}");
        } else if runners.iter().any(|r| r["node_id"] == n["node_id"]) {
            // Counters of other nodes are as of their last heartbeat (every 200 ms).
            assert!(pulled >= iterations / 2 && served >= iterations / 2, "{n}");
        }
    }

    // `rl status` shows the cluster; `rl stop` stops every node cleanly.
    let status = c.status();
    assert!(status.contains("ALIVE") && status.contains("RolloutWorker"), "{status}");
    let stop = Command::new(RL).args(["stop", "--session-dir", &c.session]).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    let Cluster { mut head, mut nodes, .. } = c;
    for n in &mut nodes {
        assert!(n.exit(Duration::from_secs(30)).success(), "{}", n.err());
    }
    assert!(head.exit(Duration::from_secs(30)).success(), "{}", head.err());
}

#[test]
fn a_killed_node_is_declared_dead_and_training_on_it_fails_clearly() {
    let mut c = Cluster::start("kill", 2, 2_000);
    let run = c.dir.join("run");
    let mut driver = c.train(
        Path::new(PPO),
        &run,
        &[
            "--set",
            "stop.num_env_steps_sampled_lifetime=100000000",
            // Without restarts a lost runner fails the run (tests/chaos.rs has them on).
            "--set",
            "fault_tolerance.restart_failed_env_runners=false",
        ],
    );
    // Wait until training runs (progress.csv has rows), then kill a node.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(run.join("progress.csv")).map_or(0, |t| t.lines().count()) < 5 {
        assert!(Instant::now() < deadline, "training did not start: {}", driver.err());
        assert!(driver.child.try_wait().unwrap().is_none(), "the driver exited: {}", driver.err());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut victim = c.nodes.remove(1);
    let killed_at = Instant::now();
    victim.child.kill().unwrap();
    victim.exit(Duration::from_secs(10));

    // The driver's next call to the dead node's worker (or the learner's pull of a batch the
    // worker had just made) fails: training stops with an error naming the node.
    let status = driver.exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = driver.err();
    let last = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{err}"));
    let node_id = c.nodes.len() + 2; // The head is node 1, the nodes 2 and 3 in start order.
    assert!(last.contains(&format!("node {node_id}")), "{last}");
    assert!(
        last.contains("env_runner_1") && last.contains("died while handling the call") || last.contains("unreachable"),
        "{last}"
    );

    // Within the timeout (2 s here, plus a check period) the head reports it dead.
    loop {
        let s = c.status();
        let mut lines = s.lines().skip_while(|l| !l.starts_with(&format!("{node_id} ")));
        if lines.next().is_some_and(|l| l.contains("DEAD")) {
            let reason = lines.next().unwrap_or_default();
            assert!(reason.trim().starts_with("no heartbeat for"), "{s}");
            assert!(s.contains("env_runner_1 (RolloutWorker) on node 3: dead: its node 3 is gone"), "{s}");
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(20), "the head did not declare the node dead: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_of_another_build_or_without_the_token_is_refused() {
    let c = Cluster::start("refuse", 0, 30_000);
    // Another build: the same program with one more byte, which changes its hash but not what it does.
    let other = c.dir.join("rl-other");
    std::fs::copy(RL, &other).unwrap();
    std::fs::OpenOptions::new().append(true).open(&other).unwrap().write_all_at_end();
    let mut node = Proc::spawn(
        &other,
        &["start", "--address", &c.address, "--block", "--session-dir", &c.session],
        &c.dir,
        "other",
    );
    assert!(!node.exit(Duration::from_secs(60)).success());
    let err = node.err();
    assert!(err.contains("must run the same binary") && err.contains("rl-other") && err.contains(RL), "{err}");

    // A wrong token.
    let token = c.dir.join("wrong-token");
    std::fs::write(&token, "0123456789abcdef\n").unwrap();
    let token_s = token.display().to_string();
    let args = ["start", "--address", &c.address, "--block", "--session-dir", &c.session, "--token-file", &token_s];
    let mut node = Proc::spawn(Path::new(RL), &args, &c.dir, "wrong-token");
    assert!(!node.exit(Duration::from_secs(60)).success());
    assert!(node.err().contains("unauthenticated"), "{}", node.err());
    let status = c.status();
    assert_eq!(status.lines().filter(|l| l.contains("ALIVE")).count(), 1, "only the head: {status}");
}

trait AppendByte {
    fn write_all_at_end(self);
}

impl AppendByte for std::fs::File {
    fn write_all_at_end(mut self) {
        std::io::Write::write_all(&mut self, b"\0").unwrap();
    }
}

#[test]
fn bench_reports_the_cluster_figures_beside_their_baselines() {
    let out = Command::new(RL).args(["bench", "--quick"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for (what, baseline) in [
        ("cluster call   across processes", "in process, same run"),
        ("cluster spawn  process actor on a node", "thread actor, same run"),
        ("cluster spawn  process actor in the driver's node", "thread actor, same run"),
        ("cluster call   process actor on a node", "thread actor, same run"),
        ("cluster call   process actor in the driver's node", "thread actor, same run"),
        ("cluster pull    1 MiB", "memcpy of the same bytes"),
        ("cluster pull   64 MiB", "memcpy of the same bytes"),
        ("cluster train  PPO", "in one process, same run"),
    ] {
        let line = text.lines().find(|l| l.starts_with(what)).unwrap_or_else(|| panic!("{what} missing:\n{text}"));
        assert!(line.contains(baseline), "{line}");
    }
}

#[test]
fn the_learner_can_run_on_a_worker_node_in_the_placement_group_with_the_same_curve() {
    let c = Cluster::start("learner-pg", 2, 30_000);
    let (cluster_run, local_run) = (c.dir.join("cluster-run"), c.dir.join("local-run"));
    let short = ["--set", "stop.num_env_steps_sampled_lifetime=8192", "--set", "learner_in_placement_group=true"];
    let run = cluster_run.display().to_string();
    let mut args = vec!["train", "--config", PPO, "--address", &c.address, "--session-dir", &c.session];
    args.extend(["--output", &run, "--quiet"]);
    args.extend(short);
    let mut driver = Proc::spawn(Path::new(RL), &args, &c.dir, "driver");
    assert!(driver.exit(Duration::from_secs(300)).success(), "{}", driver.err());
    let local = Command::new(RL)
        .args(["train", "--config", PPO, "--output", local_run.to_str().unwrap(), "--quiet"])
        .args(short)
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    assert_eq!(progress_without_timing(&cluster_run), progress_without_timing(&local_run));

    // The learner ran in a worker node's process, in bundle 0; the workers in bundles 1 and 2.
    let placed = read_json(&cluster_run.join("cluster.json"));
    let node_pids: Vec<u64> = c.nodes.iter().map(|n| u64::from(n.pid())).collect();
    let actors = placed["actors"].as_array().unwrap();
    let node_of = |name: &str| actors.iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{placed}"));
    assert!(node_pids.contains(&node_of("learner")["pid"].as_u64().unwrap()), "{placed}");
    let bundles = &placed["placement_groups"][0]["bundle_nodes"];
    assert_eq!(bundles.as_array().unwrap().len(), 3, "{placed}");
    assert_eq!(bundles[0], node_of("learner")["node_id"], "{placed}");
    assert_eq!(bundles[1], node_of("env_runner_0")["node_id"], "{placed}");
    assert_eq!(bundles[2], node_of("env_runner_1")["node_id"], "{placed}");
}

/// DQN and SAC across a head and two nodes: the runners on the nodes send their transitions to
/// the learner (and its replay buffer) in the driver, and the run's rows equal the embedded
/// run's, for two runners of two sub-envs each.
#[test]
fn off_policy_algorithms_on_a_cluster_match_the_local_run() {
    let c = Cluster::start("offpolicy", 2, 30_000);
    let configs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/");
    let cases: [(&str, &[&str]); 2] = [
        (
            "dqn-cartpole-zoo.yaml",
            &[
                "--set",
                "stop.num_env_steps_sampled_lifetime=3000",
                "--set",
                "n_step=2",
                "--set",
                "prioritized_replay={}",
            ],
        ),
        (
            "sac-pendulum-zoo.yaml",
            &["--set", "stop.num_env_steps_sampled_lifetime=1200", "--set", "model.fcnet_hiddens=[32,32]"],
        ),
    ];
    for (file, extra) in cases {
        let config = Path::new(configs).join(file);
        let shared =
            ["--set", "num_env_runners=2", "--set", "num_envs_per_env_runner=2", "--set", "evaluation.duration=3"];
        let args = [&shared[..], extra].concat();
        let cluster_run = c.dir.join(format!("cluster-{file}"));
        let mut driver = c.train(&config, &cluster_run, &args);
        assert!(driver.exit(Duration::from_secs(300)).success(), "{file}: {}", driver.err());
        let local_run = c.dir.join(format!("local-{file}"));
        let local = Command::new(RL)
            .args(["train", "--config", config.to_str().unwrap(), "--output", local_run.to_str().unwrap(), "--quiet"])
            .args(&args)
            .output()
            .unwrap();
        assert!(local.status.success(), "{file}: {}", String::from_utf8_lossy(&local.stderr));
        let rows = progress_without_timing(&cluster_run);
        assert!(rows.len() >= 2, "{file}: {rows:?}");
        assert_eq!(rows, progress_without_timing(&local_run), "{file}");
        // The runners ran on the nodes, the learner in the driver.
        let placed = read_json(&cluster_run.join("cluster.json"));
        let driver_node = placed["driver"]["node_id"].as_u64().unwrap();
        for actor in placed["actors"].as_array().unwrap() {
            let on_driver = actor["node_id"].as_u64() == Some(driver_node);
            assert_eq!(on_driver, actor["name"] == "learner", "{file}: {placed}");
        }
    }
}
