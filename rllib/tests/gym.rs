//! PPO on real Gymnasium envs through the bridge (feature `gym`). These tests run only with
//! `RL_GYM_TESTS=1` (`.ci/run` sets it after building the Python venv); with it set, a missing
//! Python or package fails them.
#![cfg(feature = "gym")]

use std::path::{Path, PathBuf};

use rllib::checkpoint::Checkpoint;
use rllib::evaluation::evaluate;
use rllib::{RunDir, TrainConfig, train};

/// False (with a note) unless the bridge tests are switched on.
fn enabled() -> bool {
    let on = std::env::var("RL_GYM_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: set RL_GYM_TESTS=1 (and VIRTUAL_ENV or RL_PYTHON to a Python with requirements-gym.txt)");
    }
    on
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rllib-gym-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mujoco_config(extra: &[&str]) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo-mujoco.yaml");
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::load(&path, &overrides).unwrap()
}

/// The threshold of the short run below: InvertedPendulum-v4 pays 1 per step the pole stays up,
/// so a policy that balances for 200 steps on average has learned what the env asks (a random
/// policy keeps the pole up for about 5-10 steps).
const INVERTED_PENDULUM_THRESHOLD: f64 = 200.0;

/// CleanRL's MuJoCo settings (configs/ppo-mujoco.yaml, with observation and reward
/// normalization) learn InvertedPendulum-v4 through the bridge on a short budget of 40 iterations
/// (81,920 steps), and `rl evaluate`'s path reads the checkpoint back with its frozen statistics.
#[test]
fn ppo_learns_inverted_pendulum_through_the_bridge() {
    if !enabled() {
        return;
    }
    let dir = scratch("inverted-pendulum");
    let c = mujoco_config(&[
        "env=gym:InvertedPendulum-v4",
        "stop.num_env_steps_sampled_lifetime=81920",
        "evaluation.interval=0",
        "evaluation.duration=5",
        "checkpoint.frequency=0",
    ]);
    let summary = train(&c, &dir, &mut ()).unwrap();
    let progress = RunDir::open(&dir).unwrap().read_progress().unwrap();
    let returns: Vec<f64> = progress.column("env_runners/episode_return_mean").unwrap().into_iter().flatten().collect();
    let last = *returns.last().unwrap();
    assert!(last >= INVERTED_PENDULUM_THRESHOLD, "training return {last} after {} iterations", summary.iterations);
    let ckpt = Checkpoint::load(&dir).unwrap();
    let eval = evaluate(&ckpt.config, &ckpt.policy, ckpt.observation_normalization.as_ref(), 5, 0).unwrap();
    assert!(eval.return_mean() >= INVERTED_PENDULUM_THRESHOLD, "evaluation {:?}", eval.returns);
    std::fs::remove_dir_all(&dir).unwrap();
}
