//! End-to-end training through the library API: learning, determinism, checkpoints.

use std::path::{Path, PathBuf};

use rllib::checkpoint::Checkpoint;
use rllib::evaluation::evaluate;
use rllib::metrics::{columns, is_timing_column};
use rllib::ppo::METRIC_COLUMNS;
use rllib::{TrainConfig, train};

mod common;

fn config(overrides: &[&str]) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::load(&path, &overrides).unwrap()
}

/// PPO with CleanRL's hyperparameters learns CartPole on a short budget: 40k env steps
/// (lr annealed over them) reach a deterministic evaluation of at least 195.
#[test]
fn ppo_learns_cartpole_on_a_short_budget() {
    let dir = common::scratch("test", "learn");
    let c = config(&["stop.num_env_steps_sampled_lifetime=40000", "evaluation.interval=0", "checkpoint.frequency=40"]);
    let summary = train(&c, &dir, &mut ()).unwrap();
    let eval = &summary.final_evaluation;
    assert!(eval.return_mean() >= 195.0, "final evaluation {:.1} < 195: {summary}", eval.return_mean());
    assert_eq!(summary.env_steps, 79 * 512);

    // The run directory holds what the README promises.
    for f in ["config.yaml", "progress.csv", "result.jsonl", "summary.txt"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let progress = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
    assert_eq!(progress.lines().count(), 1 + 79);

    // TensorBoard: one event file with every numeric metric of every iteration, keyed by env steps.
    let event_files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(event_files.len(), 1);
    let events = rllib::tensorboard::read_events(&event_files[0]).unwrap();
    let scalar_events: Vec<_> = events.iter().filter(|e| !e.scalars().is_empty()).collect();
    assert_eq!(scalar_events.len(), 79);
    assert_eq!(scalar_events.last().unwrap().step, 79 * 512);
    let last: Vec<&str> = scalar_events.last().unwrap().scalars().iter().map(|(t, _)| *t).collect();
    for tag in ["env_runners/episode_return_mean", "learners/policy_loss", "learners/lr", "time_total_s"] {
        assert!(last.contains(&tag), "{tag} missing from {last:?}");
    }
    for ckpt in ["iter_000040", "final"] {
        for f in ["metadata.json", "config.yaml", "policy.safetensors", "optimizer.safetensors", "rng_state.json"] {
            assert!(dir.join("checkpoints").join(ckpt).join(f).is_file(), "{ckpt}/{f} missing");
        }
    }

    // The final checkpoint reproduces the final evaluation exactly.
    let ckpt = Checkpoint::load(&dir.join("checkpoints/final")).unwrap();
    assert_eq!(ckpt.metadata.training_iteration, 79);
    let again = evaluate(&ckpt.config, &ckpt.policy, None, c.evaluation.duration, c.evaluation.seed).unwrap();
    assert_eq!(&again, eval);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two runs of the same config and seed write the same progress.csv, timing columns aside,
/// whatever the thread timing.
#[test]
fn same_seed_same_progress() {
    let c = config(&["stop.training_iteration=12", "evaluation.interval=5", "lr_schedule=constant"]);
    let columns = columns(METRIC_COLUMNS);
    let run = |name: &str| {
        let dir = common::scratch("test", name);
        train(&c, &dir, &mut ()).unwrap();
        let text = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        text.lines()
            .skip(1)
            .map(|l| {
                l.split(',')
                    .zip(&columns)
                    .filter(|(_, c)| !is_timing_column(c))
                    .map(|(v, _)| v.to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let a = run("det-a");
    let b = run("det-b");
    assert_eq!(a.len(), 12);
    assert_eq!(a, b);
    // Evaluation columns are filled on iterations 5 and 10 only.
    let eval_col =
        columns.iter().filter(|c| !is_timing_column(c)).position(|c| *c == "evaluation/episode_return_mean").unwrap();
    let filled: Vec<usize> =
        a.iter().enumerate().filter(|(_, r)| !r[eval_col].is_empty()).map(|(i, _)| i + 1).collect();
    assert_eq!(filled, [5, 10]);
}

/// Reward 1 for the action that matches the parity of the state, 0 otherwise; the next state is
/// random. The observation is `Discrete(10)`: fed as a raw number, parity is hard for an MLP to
/// read; one-hot encoded (as SB3 does) it is one weight per state.
struct Parity {
    state: Option<i64>,
    rng: Option<rl_env::rng::NpRandom>,
    steps: u64,
    observation_space: rl_env::Space,
    action_space: rl_env::Space,
}

impl rl_env::Env for Parity {
    fn observation_space(&self) -> &rl_env::Space {
        &self.observation_space
    }
    fn action_space(&self) -> &rl_env::Space {
        &self.action_space
    }
    fn reset_into(
        &mut self,
        seed: Option<u64>,
        _options: Option<&rl_env::Kwargs>,
        obs: &mut [f32],
    ) -> rl_env::Result<rl_env::Info> {
        let s = rl_env::seeded_rng(&mut self.rng, seed).integers(0, 10)?;
        (self.state, self.steps, obs[0]) = (Some(s), 0, s as f32);
        Ok(rl_env::Info::new())
    }
    fn step_into(&mut self, action: rl_env::Action<'_>, obs: &mut [f32]) -> rl_env::Result<rl_env::StepResult> {
        let state = self.state.ok_or_else(|| rl_env::EnvError::StepBeforeReset { env: self.id().to_string() })?;
        self.action_space.check(self.id(), action)?;
        let rl_env::Action::Discrete(a) = action else { unreachable!("checked") };
        let reward = if a == state % 2 { 1.0 } else { 0.0 };
        let next = seeded_rng(&mut self.rng).integers(0, 10)?;
        (self.state, obs[0]) = (Some(next), next as f32);
        self.steps += 1;
        Ok(rl_env::StepResult { reward, terminated: false, truncated: self.steps == 10, info: rl_env::Info::new() })
    }
}

fn seeded_rng(rng: &mut Option<rl_env::rng::NpRandom>) -> &mut rl_env::rng::NpRandom {
    rl_env::seeded_rng(rng, None)
}

/// Discrete observations reach the policy one-hot: the parity task is learned to the optimum
/// (10 per episode) on a short budget, and the saved policy has one input per state.
#[test]
fn discrete_observations_are_one_hot_encoded() {
    rl_env::register(rl_env::EnvSpec::new("Parity-v0", |_| {
        Ok(Box::new(Parity {
            state: None,
            rng: None,
            steps: 0,
            observation_space: rl_env::Space::discrete_from(10, 0)?,
            action_space: rl_env::Space::discrete_from(2, 0)?,
        }))
    }))
    .unwrap();
    let dir = common::scratch("test", "parity");
    let text = "env: Parity-v0\nentropy_coeff: 0.0\nlr: 1.0e-2\nstop: {num_env_steps_sampled_lifetime: 20480}\nevaluation: {duration: 5}\n";
    let c = TrainConfig::parse(text, "parity.yaml", &[]).unwrap();
    let summary = train(&c, &dir, &mut ()).unwrap();
    assert_eq!(summary.final_evaluation.returns, [10.0; 5], "{summary}");
    let policy = std::fs::read(dir.join("checkpoints/final/policy.safetensors")).unwrap();
    let (policy, _) = rl_policies::ActorCritic::from_safetensors(&policy, &candle_core::Device::Cpu).unwrap();
    assert_eq!(policy.architecture().obs_dim, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The rows (timing columns dropped) and final weights of seed-1 runs are those recorded from the
/// commit before the runtime seam and the per-algorithm configs (`experiments/baseline.sh`, which
/// also checks the full DQN and SAC runs): a refactor changes no number.
fn assert_matches_baseline(config: &str, name: &str, overrides: &[&str]) {
    use sha2::Digest;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/baseline").join(name);
    let dir = common::scratch("baseline", name);
    let mut overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    overrides.push("seed=1".into());
    let c = TrainConfig::load(&root.join("../configs").join(config), &overrides).unwrap();
    train(&c, &dir, &mut ()).unwrap();

    let progress = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
    let mut lines = progress.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let keep: Vec<bool> = header.iter().map(|c| !is_timing_column(c)).collect();
    let stripped: Vec<String> = std::iter::once(header)
        .chain(lines)
        .map(|cells| cells.iter().zip(&keep).filter(|(_, k)| **k).map(|(c, _)| *c).collect::<Vec<_>>().join(","))
        .collect();
    let expected = std::fs::read_to_string(fixture.join("progress.csv")).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(stripped.len(), expected.len(), "{name}: row count");
    for (i, (ours, theirs)) in stripped.iter().zip(&expected).enumerate() {
        assert_eq!(ours, theirs, "{name}: progress.csv line {} differs from the baseline", i + 1);
    }

    let hashes = std::fs::read_to_string(fixture.join("weights.sha256")).unwrap();
    for line in hashes.lines() {
        let (hash, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(dir.join("checkpoints/final").join(file)).unwrap();
        let ours: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ours, hash, "{name}: final {file} differs from the baseline");
    }
}

#[test]
fn baseline_ppo_cartpole_rows_and_weights_are_unchanged() {
    assert_matches_baseline("ppo.yaml", "ppo", &[]);
}

#[test]
fn baseline_dqn_cartpole_rows_and_weights_are_unchanged() {
    assert_matches_baseline("dqn.yaml", "dqn-short", &["stop.num_env_steps_sampled_lifetime=20000"]);
}

#[test]
fn baseline_sac_pendulum_rows_and_weights_are_unchanged() {
    assert_matches_baseline("sac-pendulum-zoo.yaml", "sac-short", &["stop.num_env_steps_sampled_lifetime=1500"]);
}
