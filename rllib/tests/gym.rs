//! PPO on real Gymnasium envs through the bridge (feature `gym`). These tests run only with
//! `RL_GYM_TESTS=1` (`.ci/run` sets it after building the Python venv); with it set, a missing
//! Python or package fails them.
#![cfg(feature = "gym")]

use std::path::Path;
use std::sync::Once;

use rllib::checkpoint::Checkpoint;
use rllib::evaluation::evaluate;
use rllib::{RunDir, TrainConfig, train};

mod common;

/// False (with a note) unless the bridge tests are switched on; puts rl-env's fixture envs
/// (`gym_envs`) on `PYTHONPATH`.
fn enabled() -> bool {
    if std::env::var("RL_GYM_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set RL_GYM_TESTS=1 (and VIRTUAL_ENV or RL_PYTHON to a Python with requirements-gym.txt)");
        return false;
    }
    static PYTHONPATH: Once = Once::new();
    PYTHONPATH.call_once(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../env/tests/fixtures");
        let path = match std::env::var_os("PYTHONPATH") {
            Some(p) if !p.is_empty() => format!("{}:{}", fixtures.display(), p.to_string_lossy()),
            _ => fixtures.display().to_string(),
        };
        // SAFETY: every test calls this first and the others wait on the `Once`; no thread of
        // these tests reads the environment before it is done.
        unsafe { std::env::set_var("PYTHONPATH", path) };
    });
    true
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
    let dir = common::scratch("gym", "inverted-pendulum");
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

/// progress.csv rows without the timing columns.
fn learning_rows(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
    let cols: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    text.lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .zip(&cols)
                .filter(|(_, c)| !rllib::metrics::is_timing_column(c))
                .map(|(v, _)| v.to_string())
                .collect()
        })
        .collect()
}

/// Gymnasium's CartPole-v1 behind the bridge steps exactly like the native one, so PPO with two
/// env runner threads, each sub-env in a Python process of its own (the default `rl_bridge`),
/// learns exactly the same: the same progress rows as on the native env, timing aside.
#[test]
fn ppo_on_bridged_cartpole_matches_the_native_env() {
    if !enabled() {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    let run = |env: &str| {
        let dir = common::scratch("gym", &env.replace(':', "-"));
        let overrides = [format!("env={env}"), "stop.training_iteration=6".into(), "evaluation.interval=3".into()];
        let c = TrainConfig::load(&path, &overrides).unwrap();
        train(&c, &dir, &mut ()).unwrap();
        let rows = learning_rows(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        rows
    };
    let native = run("CartPole-v1");
    let bridged = run("gym:CartPole-v1");
    assert_eq!(native.len(), 6);
    assert_eq!(bridged, native);
}

/// SAC and DQN through the bridge: Gymnasium's Pendulum-v1 and CartPole-v1 in Python train
/// exactly like the native envs (same transitions into the replay buffer, same rows), with the
/// acting networks' weights and the off-policy batches (next observations included) crossing
/// the same paths as on the native envs.
#[test]
fn off_policy_on_bridged_envs_matches_the_native_envs() {
    if !enabled() {
        return;
    }
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let cases = [
        (
            "sac-pendulum-zoo.yaml",
            "Pendulum-v1",
            "stop.num_env_steps_sampled_lifetime=1400",
            "model.fcnet_hiddens=[32,32]",
        ),
        (
            "dqn-cartpole-zoo.yaml",
            "CartPole-v1",
            "stop.num_env_steps_sampled_lifetime=3000",
            "model.fcnet_hiddens=[32,32]",
        ),
    ];
    for (file, id, budget, model) in cases {
        let run = |env: &str| {
            let dir = common::scratch("gym", &format!("{file}-{}", env.replace(':', "-")));
            let overrides = [format!("env={env}"), budget.into(), model.into(), "num_envs_per_env_runner=2".into()];
            let c = TrainConfig::load(&configs.join(file), &overrides).unwrap();
            train(&c, &dir, &mut ()).unwrap();
            let rows = learning_rows(&dir);
            std::fs::remove_dir_all(&dir).unwrap();
            rows
        };
        let native = run(id);
        assert!(native.len() >= 2, "{file}: {native:?}");
        assert_eq!(run(&format!("gym:{id}")), native, "{file}");
    }
}

/// A Python env whose interpreter segfaults mid-training (the first life of
/// `CrashOnceCartPole-v1`, in a child process) fails its env runner with an error instead of
/// killing or hanging the run; the runner is restarted, and the run completes with the restart
/// counted.
#[test]
fn a_segfaulting_python_env_is_survived_by_restarting_its_runner() {
    if !enabled() {
        return;
    }
    let dir = common::scratch("gym", "crash-once");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("crashed");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    let overrides = [
        "env=gym:gym_envs:CrashOnceCartPole-v1".to_string(),
        format!("env_config.marker={}", marker.display()),
        "env_config.crash_at=300".into(),
        // One runner: exactly one env reaches step 300 first, so exactly one crash.
        "num_env_runners=1".into(),
        "stop.training_iteration=6".into(),
        "fault_tolerance.delay_between_env_runner_restarts_s=0".into(),
    ];
    let c = TrainConfig::load(&path, &overrides).unwrap();
    let run = dir.join("run");
    train(&c, &run, &mut ()).unwrap();
    assert!(marker.exists(), "the env crashed");
    let progress = RunDir::open(&run).unwrap().read_progress().unwrap();
    let restarts = progress.column("fault_tolerance/num_remote_worker_restarts").unwrap();
    assert_eq!(progress.len(), 6);
    assert_eq!(restarts.last().copied().flatten(), Some(1.0), "{restarts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
