//! `run_experiment` end to end: real `rl train` child processes, resume, and failed runs.

use std::fs;
use std::path::{Path, PathBuf};

use rl_cli::experiment::{ExperimentOptions, run_experiment};

/// A tiny CartPole config: 2 iterations of 64 steps, 2 evaluation episodes, no checkpoints.
const TINY: &str = "algorithm: PPO
env: CartPole-v1
num_env_runners: 1
num_envs_per_env_runner: 2
rollout_fragment_length: 32
lr: 2.5e-4
num_epochs: 2
minibatch_size: 32
model:
  fcnet_hiddens: [16, 16]
stop:
  training_iteration: 2
evaluation:
  interval: 0
  duration: 2
checkpoint:
  frequency: 0
";

/// A fresh directory under the system temp dir holding `tiny.yaml`.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rl-experiment-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("configs")).unwrap();
    fs::write(dir.join("configs/tiny.yaml"), TINY).unwrap();
    dir
}

fn options(dir: &Path) -> ExperimentOptions {
    ExperimentOptions {
        program: PathBuf::from(env!("CARGO_BIN_EXE_rl")),
        output: Some(dir.join("runs")),
        results: Some(dir.join("results")),
        jobs: Some(2),
    }
}

fn assert_png(path: &Path) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
}

const ROWS: &str = "rows:
  - label: CartPole-v1
    config: configs/tiny.yaml
    seeds: [1, 2]
    metric: train
    reference: {mean: 20.0, std: 10.0, source: \"a made-up reference\"}
  - label: CartPole-v1 eval
    config: configs/tiny.yaml
    seeds: [1, 2]
    set: [\"gamma=0.98\"]
    metric: evaluation
    note: \"gamma 0.98 instead of 0.99\"
";

#[test]
fn trains_the_grid_then_reuses_finished_runs_and_retrains_unfinished_ones() {
    let dir = scratch("grid");
    let spec = dir.join("tiny.yaml");
    fs::write(&spec, format!("description: Two tiny rows.\n{ROWS}")).unwrap();

    let report = run_experiment(&spec, &options(&dir)).unwrap();
    assert_eq!((report.trained, report.reused, report.failed.len()), (4, 0, 0));
    assert_eq!(report.table_path, dir.join("results/tiny.md"));
    let md = fs::read_to_string(&report.table_path).unwrap();
    assert!(md.starts_with("# tiny\n\nTwo tiny rows.\n\nProduced by `rl experiment run "), "{md}");
    assert!(md.contains("\n| CartPole-v1 | train | "), "{md}");
    assert!(md.contains("| 20.00 ± 10.00 | "), "{md}");
    assert!(md.contains("\n| CartPole-v1 eval | evaluation | "), "{md}");
    assert!(md.contains("- CartPole-v1: a made-up reference") && md.contains("- CartPole-v1 eval: gamma 0.98"));
    assert_eq!(report.rows.len(), 2);
    assert!(report.rows.iter().all(|r| r.result.is_some() && r.failed_seeds.is_empty()), "{:?}", report.rows);
    assert!(report.rows.iter().all(|r| r.env_steps == [128, 128]), "{:?}", report.rows);
    assert_png(&report.plot_path);
    assert_png(&dir.join("results/tiny-cartpole-v1.png"));
    assert_png(&dir.join("results/tiny-cartpole-v1-eval.png"));
    let run = dir.join("runs/cartpole-v1-eval/seed2");
    assert!(fs::read_to_string(run.join("config.yaml")).unwrap().contains("gamma: 0.98"));
    assert!(fs::read_to_string(dir.join("runs/cartpole-v1-eval/seed2.log")).unwrap().contains("--set=gamma=0.98"));

    let again = run_experiment(&spec, &options(&dir)).unwrap();
    assert_eq!((again.trained, again.reused), (0, 4));
    assert_eq!(again.rows, report.rows);

    // A run directory without summary.json is an interrupted attempt: it is removed and retrained.
    fs::remove_file(run.join("summary.json")).unwrap();
    fs::write(run.join("stale.txt"), "left over").unwrap();
    let resumed = run_experiment(&spec, &options(&dir)).unwrap();
    assert_eq!((resumed.trained, resumed.reused), (1, 3));
    assert!(run.join("summary.json").is_file() && !run.join("stale.txt").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_runs_are_reported_after_the_table_is_written() {
    let dir = scratch("failed");
    let spec = dir.join("broken.yaml");
    let rows = "rows:
  - label: Good
    config: configs/tiny.yaml
    seeds: [1]
    metric: evaluation
  - label: Broken
    config: configs/tiny.yaml
    seeds: [1, 2]
    set: [\"lr=-1\"]
    metric: train
";
    fs::write(&spec, rows).unwrap();
    let err = format!("{:#}", run_experiment(&spec, &options(&dir)).unwrap_err());
    assert!(err.starts_with("2 of 3 runs failed: Broken seed 1, Broken seed 2 "), "{err}");
    assert!(err.contains("results/broken.md"), "{err}");
    let md = fs::read_to_string(dir.join("results/broken.md")).unwrap();
    assert!(md.contains("\n| Good | evaluation | "), "{md}");
    assert!(
        md.contains("\n| Broken | train | failed (seeds 1, 2) | – | – | 0 of 2; failed: seeds 1, 2 | – | – |"),
        "{md}"
    );
    let log = fs::read_to_string(dir.join("runs/broken/seed1.log")).unwrap();
    assert!(log.contains("lr: must be a positive number"), "{log}");
    assert_png(&dir.join("results/broken.png"));
    fs::remove_dir_all(&dir).unwrap();
}
