//! Which Python the bridge uses, and the Python half both designs run.

use std::path::PathBuf;

/// The Python half of the bridge (`bridge.py`), run by both designs.
pub(super) const BRIDGE_SOURCE: &str = include_str!("bridge.py");

/// What to do when no usable Python is found.
pub(super) const PYTHON_HINT: &str = "install Python 3 with the bridge's packages (`pip install -r \
     requirements-gym.txt`, which pins gymnasium[mujoco]==1.4.0) and set RL_PYTHON to its python \
     executable or VIRTUAL_ENV to its virtual environment";

/// The python executable for child processes: `$RL_PYTHON`, else `$VIRTUAL_ENV/bin/python`, else
/// `python3` from `PATH`.
pub(super) fn python_executable() -> PathBuf {
    if let Some(p) = std::env::var_os("RL_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        return PathBuf::from(venv).join("bin").join("python");
    }
    PathBuf::from("python3")
}
