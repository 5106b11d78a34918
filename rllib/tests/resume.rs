//! Exact resume through the library API: a run cut after iteration k (its later checkpoints,
//! summary and rows as a killed run leaves them, or removed) and resumed writes the same
//! progress.csv as the uninterrupted run, timing columns aside; damaged checkpoints are refused
//! with the file named.

use std::path::Path;

use rllib::checkpoint::{Checkpoint, ResumePoint};
use rllib::ppo::METRIC_COLUMNS;
use rllib::{RunDir, TrainConfig, resume, train};

mod common;
use common::{copy_dir, cut, progress_rows};

fn config(extra: &[&str]) -> TrainConfig {
    let base = ["stop.training_iteration=8", "evaluation.interval=3", "checkpoint.frequency=1"];
    let overrides: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ppo.yaml");
    TrainConfig::load(&path, &overrides).unwrap()
}

#[test]
fn a_resumed_run_writes_the_rows_of_the_uninterrupted_one() {
    let full = common::scratch("resume", "full");
    let c = config(&[]);
    train(&c, &full, &mut ()).unwrap();
    let expected = progress_rows(&full, METRIC_COLUMNS);
    assert_eq!(expected.len(), 8);
    for k in [3, 5] {
        let cut_dir = common::scratch("resume", &format!("cut-{k}"));
        copy_dir(&full, &cut_dir);
        // Rows 1..=8 stay in the file: those after k must be replaced, not duplicated.
        cut(&cut_dir, k);
        assert_eq!(
            ResumePoint::latest(&RunDir::open(&cut_dir).unwrap()).unwrap().unwrap().file_name().unwrap(),
            format!("iter_{k:06}").as_str()
        );
        let summary = resume(&cut_dir, &mut ()).unwrap();
        assert_eq!(summary.iterations, 8);
        assert_eq!(progress_rows(&cut_dir, METRIC_COLUMNS), expected, "resumed after iteration {k}");
        let lines = std::fs::read_to_string(cut_dir.join("result.jsonl")).unwrap().lines().count();
        assert_eq!(lines, 8);
        std::fs::remove_dir_all(&cut_dir).unwrap();
    }
    // A finished run is not resumed.
    let err = resume(&full, &mut ()).unwrap_err().to_string();
    assert!(err.contains("is a finished run"), "{err}");
    std::fs::remove_dir_all(&full).unwrap();
}

/// The normalizers' statistics (each sub-env's, each runner's filter, the driver's merged ones)
/// are part of the checkpoint: a normalized run resumes exactly too.
#[test]
fn a_normalized_run_resumes_exactly() {
    for (name, extra) in [
        ("gymnasium", ["normalize_observation={}", "normalize_reward={}"]),
        ("filter", ["observation_filter=MeanStdFilter", "normalize_reward={clip: null}"]),
    ] {
        let full = common::scratch("resume", &format!("norm-{name}"));
        train(&config(&extra), &full, &mut ()).unwrap();
        let expected = progress_rows(&full, METRIC_COLUMNS);
        let cut_dir = common::scratch("resume", &format!("norm-{name}-cut"));
        copy_dir(&full, &cut_dir);
        cut(&cut_dir, 4);
        resume(&cut_dir, &mut ()).unwrap();
        assert_eq!(progress_rows(&cut_dir, METRIC_COLUMNS), expected, "{name}");
        for dir in [full, cut_dir] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}

/// `checkpoint.num_to_keep` leaves only the newest iteration checkpoints (and `final`), does not
/// change what the run computes, and a run resumed from what it kept is still exact.
#[test]
fn retention_keeps_the_newest_checkpoints_and_resume_stays_exact() {
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let full = common::scratch("resume", "keep-full");
    train(&config(&[]), &full, &mut ()).unwrap();
    let kept = common::scratch("resume", "keep-2");
    train(&config(&["checkpoint.num_to_keep=2"]), &kept, &mut ()).unwrap();
    assert_eq!(listing(&kept), ["final", "iter_000007", "iter_000008"]);
    let expected = progress_rows(&full, METRIC_COLUMNS);
    assert_eq!(progress_rows(&kept, METRIC_COLUMNS), expected);

    // Killed after iteration 7, with a deletion that a crash interrupted: the resume writes the
    // same rows, and the next retention pass removes the leftover.
    cut(&kept, 7);
    std::fs::create_dir(kept.join("checkpoints/.iter_000003.del")).unwrap();
    resume(&kept, &mut ()).unwrap();
    assert_eq!(progress_rows(&kept, METRIC_COLUMNS), expected);
    assert_eq!(listing(&kept), ["final", "iter_000007", "iter_000008"]);
    for dir in [full, kept] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file() {
    let dir = common::scratch("resume", "damaged");
    train(&config(&["stop.training_iteration=2"]), &dir, &mut ()).unwrap();
    let ckpt = dir.join("checkpoints/iter_000002");
    let load_err = || ResumePoint::load(&ckpt).unwrap_err().to_string();
    let damage = |file: &str, bytes: &[u8]| {
        let path = ckpt.join(file);
        let old = std::fs::read(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
        old
    };
    let restore = |file: &str, old: Vec<u8>| std::fs::write(ckpt.join(file), old).unwrap();
    ResumePoint::load(&ckpt).unwrap();

    // Truncated safetensors.
    let old = std::fs::read(ckpt.join("policy.safetensors")).unwrap();
    damage("policy.safetensors", &old[..old.len() / 2]);
    assert!(load_err().contains("policy.safetensors"), "{}", load_err());
    restore("policy.safetensors", old);
    // Corrupt JSON.
    let old = damage("env_runners.json", b"[{\"worker_index\": 0,");
    assert!(load_err().contains("env_runners.json"), "{}", load_err());
    restore("env_runners.json", old);
    let old = damage("optimizer.safetensors", b"junk");
    assert!(load_err().contains("optimizer.safetensors"), "{}", load_err());
    restore("optimizer.safetensors", old);
    // A newer format version, and the old one (not resumable).
    let meta = std::fs::read_to_string(ckpt.join("metadata.json")).unwrap();
    for (v, expect) in [(99, "format version 99"), (1, "format version 1 cannot be resumed")] {
        let changed = meta.replace("\"format_version\": 2", &format!("\"format_version\": {v}"));
        std::fs::write(ckpt.join("metadata.json"), changed).unwrap();
        let err = load_err();
        assert!(err.contains(expect) && err.contains("metadata.json") && err.contains('2'), "{err}");
        // Version 1 is still read to act on its policy; 99 is not.
        let acting = Checkpoint::load(&ckpt);
        assert_eq!(acting.is_ok(), v == 1, "{:?}", acting.err().map(|e| e.to_string()));
    }
    std::fs::write(ckpt.join("metadata.json"), meta).unwrap();
    ResumePoint::load(&ckpt).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CartPole behind an env that keeps the default `save_state` (none): a resume re-seeds it.
struct NoState(Box<dyn rl_env::Env>);

impl rl_env::Env for NoState {
    fn observation_space(&self) -> &rl_env::Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &rl_env::Space {
        self.0.action_space()
    }
    fn reset_into(
        &mut self,
        seed: Option<u64>,
        options: Option<&rl_env::Kwargs>,
        obs: &mut [f32],
    ) -> rl_env::Result<rl_env::Info> {
        self.0.reset_into(seed, options, obs)
    }
    fn step_into(&mut self, action: rl_env::Action<'_>, obs: &mut [f32]) -> rl_env::Result<rl_env::StepResult> {
        self.0.step_into(action, obs)
    }
}

#[test]
fn an_env_without_saved_state_resumes_from_fresh_episodes() {
    rl_env::register(rl_env::EnvSpec::new("NoStateCartPole-v0", |kw| {
        Ok(Box::new(NoState(rl_env::make("CartPole-v1", kw)?)))
    }))
    .unwrap();
    let dir = common::scratch("resume", "nostate");
    train(&config(&["env=NoStateCartPole-v0"]), &dir, &mut ()).unwrap();
    let full = progress_rows(&dir, METRIC_COLUMNS);
    let runners: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoints/iter_000004/env_runners.json")).unwrap())
            .unwrap();
    assert!(runners.as_array().unwrap().iter().all(|r| r["envs"].is_null()), "{runners}");
    cut(&dir, 4);
    let summary = resume(&dir, &mut ()).unwrap();
    assert_eq!(summary.iterations, 8);
    let resumed = progress_rows(&dir, METRIC_COLUMNS);
    assert_eq!(resumed.len(), 8);
    // Up to the checkpoint the rows stay; after it the episodes started over from new seeds.
    assert_eq!(resumed[..4], full[..4]);
    assert_ne!(resumed[4..], full[4..]);
    std::fs::remove_dir_all(&dir).unwrap();
}
