//! Helpers the integration tests share: scratch directories, progress rows, directory copies,
//! killed-run layouts.
// Each test crate compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rllib::checkpoint::checkpoint_iteration;
use rllib::metrics::{columns, is_timing_column};

/// A fresh directory path under the temp dir, unique to this process, suite and name.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rllib-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The rows of a run's progress.csv without its timing columns, after checking its header
/// against the algorithm's `metric_columns`.
pub fn progress_rows(dir: &Path, metric_columns: &'static [&'static str]) -> Vec<Vec<String>> {
    let cols = columns(metric_columns);
    let text = std::fs::read_to_string(dir.join("progress.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header, cols, "progress.csv columns");
    text.lines()
        .skip(1)
        .map(|l| l.split(',').zip(&cols).filter(|(_, c)| !is_timing_column(c)).map(|(v, _)| v.to_string()).collect())
        .collect()
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Turns the finished run `dir` into what a run killed after its checkpoint of iteration `k`
/// leaves: no summary, no checkpoint after `k` and no `final` (the rows it wrote after `k`
/// stay in the files, as a killed run leaves them).
pub fn cut(dir: &Path, k: u64) {
    for f in ["summary.json", "summary.txt"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    for e in std::fs::read_dir(dir.join("checkpoints")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if checkpoint_iteration(&name).is_none_or(|i| i > k) {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
}
