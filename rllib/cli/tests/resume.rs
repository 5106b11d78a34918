//! Durable runs with real processes: `rl train` SIGKILLed at an iteration drawn from a seeded
//! generator, or killed by a failpoint in the middle of a checkpoint write, then
//! `rl train --resume` writes the same progress.csv as an uninterrupted run (timing columns
//! aside); SIGINT stops a run with a checkpoint it resumes from.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PPO, Proc, RL, scratch};
use rllib::metrics::is_timing_column;

const ITERATIONS: u64 = 120;

fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--config",
        PPO,
        "--quiet",
        "--output",
        &out.display().to_string(),
        "--set",
        &format!("stop.training_iteration={ITERATIONS}"),
        "--set",
        "evaluation.interval=25",
        "--set",
        "checkpoint.frequency=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// progress.csv without its timing columns, and the number of data rows.
fn rows(run: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(run.join("progress.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| l.split(',').zip(&header).filter(|(_, c)| !is_timing_column(c)).map(|(v, _)| v.to_string()).collect())
        .collect()
}

fn row_count(run: &Path) -> usize {
    std::fs::read_to_string(run.join("progress.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

fn run_to_end(args: &[String], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(RL).args(args).env("RL_LOG", "warn").envs(env.iter().copied()).output().unwrap()
}

fn resume(run: &Path) {
    let out = run_to_end(&["train".into(), "--quiet".into(), "--resume".into(), run.display().to_string()], &[]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// An iteration in `lo..hi` from a fixed-seed generator (SplitMix64), so the test is the same
/// on every run while the kill point is not hand-picked.
fn drawn_iteration(seed: u64, lo: u64, hi: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    lo + (z ^ (z >> 31)) % (hi - lo)
}

fn uninterrupted(dir: &Path) -> Vec<Vec<String>> {
    let run = dir.join("full");
    let out = run_to_end(&train_args(&run), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = rows(&run);
    assert_eq!(r.len() as u64, ITERATIONS);
    r
}

#[test]
fn a_run_killed_with_sigkill_resumes_exactly() {
    let dir = scratch("resume-sigkill");
    let expected = uninterrupted(&dir.0);
    let k = drawn_iteration(12, 10, ITERATIONS - 20);
    let run = dir.0.join("killed");
    let args = train_args(&run);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut driver = Proc::spawn(Path::new(RL), &args, &dir.0, "driver");
    let deadline = Instant::now() + Duration::from_secs(120);
    while row_count(&run) < k as usize {
        assert!(driver.child.try_wait().unwrap().is_none(), "finished before iteration {k}: {}", driver.err());
        assert!(Instant::now() < deadline, "no row {k} within 120 s; stderr: {}", driver.err());
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(driver.pid() as libc::pid_t, libc::SIGKILL) };
    let status = driver.exit(Duration::from_secs(30));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let written = row_count(&run);
    assert!(written >= k as usize && (written as u64) < ITERATIONS, "killed after {written} rows");
    resume(&run);
    assert_eq!(rows(&run), expected, "killed after row {written} (drawn iteration {k})");
}

#[test]
fn a_kill_in_the_middle_of_a_checkpoint_write_loses_nothing() {
    let dir = scratch("resume-failpoint");
    let expected = uninterrupted(&dir.0);
    let run = dir.0.join("torn");
    // A checkpoint writes 7 files; the 4th write of the 5th checkpoint is hit 7 * 4 + 4 = 32.
    let out = run_to_end(&train_args(&run), &[("RL_FAILPOINT", "checkpoint.write@32")]);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failpoint checkpoint.write reached"));
    let ckpts = run.join("checkpoints");
    assert!(ckpts.join(".iter_000005.tmp").is_dir(), "the torn write is left in its temporary directory");
    assert!(!ckpts.join("iter_000005").exists(), "no torn checkpoint under a final name");
    assert!(ckpts.join("iter_000004/metadata.json").is_file());
    assert_eq!(row_count(&run), 5, "row 5 was written before its checkpoint");
    resume(&run);
    assert_eq!(rows(&run), expected);
    assert!(ckpts.join("iter_000005/metadata.json").is_file());
}

#[test]
fn sigint_stops_with_a_checkpoint_and_resume_finishes_the_run() {
    let dir = scratch("resume-sigint");
    let run = dir.0.join("interrupted");
    let args = train_args(&run);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut driver = Proc::spawn(Path::new(RL), &args, &dir.0, "driver");
    let deadline = Instant::now() + Duration::from_secs(120);
    while row_count(&run) < 5 {
        assert!(Instant::now() < deadline, "no 5 rows within 120 s; stderr: {}", driver.err());
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(driver.pid() as libc::pid_t, libc::SIGINT) };
    let status = driver.exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "stderr: {}", driver.err());
    let err = driver.err();
    assert!(err.contains("interrupted by SIGINT after iteration") && err.contains("rl train --resume"), "{err}");
    let stopped_at = row_count(&run);
    let ckpt = run.join(format!("checkpoints/iter_{stopped_at:06}"));
    assert!(ckpt.join("metadata.json").is_file(), "a checkpoint of the last iteration: {err}");
    assert!(!run.join("summary.json").exists());
    resume(&run);
    assert_eq!(row_count(&run) as u64, ITERATIONS);
    assert!(run.join("summary.json").is_file());
}
