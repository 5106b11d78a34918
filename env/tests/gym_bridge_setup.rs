//! What the Gymnasium bridge says when its Python or packages are missing.
//!
//! A binary of its own with one test, because it changes `RL_PYTHON` for the whole process. Runs
//! only with `RL_GYM_TESTS=1`, like `gym_bridge.rs`.
#![cfg(feature = "gym")]

use std::path::PathBuf;
use std::process::Command;

use rl_env::{Kwargs, make};

fn kwargs(design: &str) -> Kwargs {
    serde_json::from_value(serde_json::json!({ "rl_bridge": design })).expect("an object")
}

fn make_err(id: &str, design: &str) -> String {
    match make(id, &kwargs(design)) {
        Ok(_) => panic!("{design}: making {id} succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Removes the scratch directory even when an assertion fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_rl_python(value: &std::ffi::OsStr) {
    // SAFETY: this binary's only test runs on one thread and starts no thread that reads the
    // environment while it changes.
    unsafe { std::env::set_var("RL_PYTHON", value) };
}

#[test]
fn missing_python_and_packages_are_explained() {
    if std::env::var("RL_GYM_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set RL_GYM_TESTS=1 (and VIRTUAL_ENV or RL_PYTHON) to run the Gymnasium bridge tests");
        return;
    }
    // No interpreter at all.
    set_rl_python("/nonexistent/bin/python".as_ref());
    let err = make_err("gym:CartPole-v1", "process");
    assert!(
        err.starts_with(
            "gym:CartPole-v1: cannot start the Python interpreter /nonexistent/bin/python: not found; install Python 3"
        ),
        "{err}"
    );
    assert!(err.contains("RL_PYTHON") && err.contains("pip install -r requirements-gym.txt"), "{err}");

    // A Python without gymnasium: a fresh virtual environment with nothing installed.
    let base = std::env::var_os("VIRTUAL_ENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|| PathBuf::from("python3"));
    let scratch = Scratch(std::env::temp_dir().join(format!("rl-gym-bare-venv-{}", std::process::id())));
    let status = Command::new(&base).args(["-m", "venv", "--without-pip"]).arg(&scratch.0).status().unwrap();
    assert!(status.success(), "{} -m venv failed: {status}", base.display());
    let bare = scratch.0.join("bin/python");
    set_rl_python(bare.as_os_str());
    for design in ["process", "in_process"] {
        let err = make_err("gym:CartPole-v1", design);
        assert!(
            err.starts_with(
                "gym:CartPole-v1: ModuleNotFoundError: the Python package 'gymnasium' is not installed for "
            ),
            "{design}: {err}"
        );
        assert!(err.contains("pip install -r requirements-gym.txt"), "{design}: {err}");
    }
    let err = rl_env::gym::list_ids().unwrap_err().to_string();
    assert!(err.contains("the Python package 'gymnasium' is not installed"), "{err}");
}
