//! Observation and reward normalization through the library API: the statistics the runners
//! merge, the `normalization.json` a checkpoint keeps, and evaluation from a checkpoint acting
//! with those frozen statistics exactly as the run's own evaluation did.

use std::path::Path;

use rllib::checkpoint::Checkpoint;
use rllib::evaluation::evaluate;
use rllib::normalization::ObservationNormalization;
use rllib::{RunDir, TrainConfig, train};

mod common;

fn config(extra: &[&str]) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo-pendulum.yaml");
    let base = [
        "num_env_runners=2",
        "num_envs_per_env_runner=2",
        "rollout_fragment_length=16",
        "minibatch_size=32",
        "num_epochs=1",
        "stop.training_iteration=2",
        "stop.num_env_steps_sampled_lifetime=null",
        "evaluation.interval=2",
        "evaluation.duration=2",
        "evaluation.max_episode_steps=50",
        "checkpoint.frequency=1",
    ];
    let overrides: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    TrainConfig::load(&path, &overrides).unwrap()
}

fn saved(dir: &Path, iteration: u64) -> ObservationNormalization {
    let path = dir.join(format!("checkpoints/iter_{iteration:06}/{}", ObservationNormalization::FILE));
    ObservationNormalization::from_json(&std::fs::read(&path).unwrap(), &path).unwrap()
}

/// Pendulum does not end an episode within 32 steps, so every runner pushed its 2 reset
/// observations and 2 x 16 observations per iteration: after two iterations the merged
/// statistics hold 2 runners x (2 + 2 x 32) = 132 observations, under either scheme.
#[test]
fn the_driver_merges_every_runners_observations() {
    for (scheme, extra) in [("gymnasium", "normalize_observation={}"), ("filter", "observation_filter=MeanStdFilter")] {
        let dir = common::scratch("normalization", scheme);
        train(&config(&[extra]), &dir, &mut ()).unwrap();
        match saved(&dir, 2) {
            ObservationNormalization::Gymnasium(n) => {
                assert_eq!(scheme, "gymnasium");
                // Each of the 4 sub-envs starts at Gymnasium's count of 1e-4.
                assert!((n.stats().count - (132.0 + 4e-4)).abs() < 1e-9, "{}", n.stats().count);
            }
            ObservationNormalization::MeanStdFilter(f) => {
                assert_eq!(scheme, "filter");
                assert_eq!(f.running().n, 132);
            }
        }
        // After one iteration, half of the steps.
        let first = match saved(&dir, 1) {
            ObservationNormalization::Gymnasium(n) => n.stats().count.round() as u64,
            ObservationNormalization::MeanStdFilter(f) => f.running().n,
        };
        assert_eq!(first, 2 * (2 + 2 * 16), "{scheme}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `rl evaluate` on a checkpoint acts with the statistics the run had at that iteration, so it
/// reproduces the run's own evaluation of that iteration; without `normalization.json` the
/// checkpoint is refused rather than evaluated with unnormalized observations.
#[test]
fn evaluation_from_a_checkpoint_uses_the_frozen_statistics() {
    for extra in ["normalize_observation={}", "observation_filter=MeanStdFilter"] {
        let dir = common::scratch("normalization", "eval");
        let c = config(&[extra, "normalize_reward={}"]);
        train(&c, &dir, &mut ()).unwrap();
        let progress = RunDir::open(&dir).unwrap().read_progress().unwrap();
        let in_run = progress.column("evaluation/episode_return_mean").unwrap()[1].expect("evaluated at iteration 2");

        let ckpt = Checkpoint::load(&dir.join("checkpoints/iter_000002")).unwrap();
        let norm = ckpt.observation_normalization.as_ref().expect("normalization.json is loaded");
        let stats = evaluate(&ckpt.config, &ckpt.policy, Some(norm), c.evaluation.duration, c.evaluation.seed).unwrap();
        assert_eq!(stats.return_mean(), in_run, "{extra}");
        // Without the statistics the same policy acts differently.
        let mut bare = ckpt.config.clone();
        bare.normalize_observation = None;
        bare.observation_filter = rllib::config::ObservationFilter::NoFilter;
        let raw = evaluate(&bare, &ckpt.policy, None, c.evaluation.duration, c.evaluation.seed).unwrap();
        assert_ne!(raw.returns, stats.returns, "{extra}");

        std::fs::remove_file(dir.join("checkpoints/iter_000002").join(ObservationNormalization::FILE)).unwrap();
        let err = Checkpoint::load(&dir.join("checkpoints/iter_000002")).unwrap_err().to_string();
        assert!(err.contains("normalization.json") && err.contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Episode returns in the metrics are the env's own, not the normalized rewards the learner
/// trains on: the first iteration samples with the initial policy whatever the rewards, so a run
/// with `normalize_reward` reports the same returns as one without, while its learner saw other
/// rewards (a different value loss).
#[test]
fn episode_returns_stay_unnormalized() {
    let row = |extra: &[&str], name: &str| {
        let dir = common::scratch("normalization", name);
        // 200 steps: every Pendulum episode ends within the first iteration.
        let c = config(&[&["rollout_fragment_length=200", "stop.training_iteration=1"], extra].concat());
        train(&c, &dir, &mut ()).unwrap();
        let progress = RunDir::open(&dir).unwrap().read_progress().unwrap();
        let get = |col: &str| progress.column(col).unwrap()[0].unwrap();
        let out = (get("env_runners/episode_return_mean"), get("learners/vf_loss"));
        std::fs::remove_dir_all(&dir).unwrap();
        out
    };
    let (raw_return, raw_vf) = row(&[], "returns-raw");
    let (norm_return, norm_vf) = row(&["normalize_reward={}"], "returns-norm");
    assert_eq!(norm_return, raw_return);
    // Pendulum's own scale: a 200-step episode of a random policy loses hundreds.
    assert!(raw_return < -100.0, "{raw_return}");
    assert_ne!(norm_vf, raw_vf);
}
