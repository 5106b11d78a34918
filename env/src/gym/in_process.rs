//! The in-process design: the Python half runs in the interpreter embedded through pyo3, called
//! in the calling thread. Every env of the process shares that interpreter and its lock.

use std::ffi::CString;
use std::process::Command;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyModule};
use pyo3::{PyErr, intern};
use serde_json::Value;

use super::interpreter::{BRIDGE_SOURCE, PYTHON_HINT};
use super::spaces::{decode_info, decode_obs};
use super::{Backend, BridgeResult, Setup};
use crate::env::{Info, Kwargs, StepResult};
use crate::error::{EnvError, Result};

/// One env's `Bridge` object in the embedded interpreter.
pub(super) struct InProcessBackend {
    bridge: Py<PyAny>,
}

impl InProcessBackend {
    /// Makes the env; returns the backend and its spaces' description.
    pub(super) fn start(setup: &Setup) -> Result<(Self, Vec<u8>)> {
        attach(|py| {
            let module = bridge_module(py).map_err(|m| EnvError::custom(&setup.id, m))?;
            let made = module.getattr("Bridge").and_then(|cls| cls.call1((&setup.gym_id, setup.kwargs.to_string())));
            let bridge = made.map_err(|e| EnvError::custom(&setup.id, format_error(py, module, &e)))?;
            let describe = bridge.call_method0("describe").and_then(|d| d.extract::<String>());
            let describe = describe.map_err(|e| EnvError::custom(&setup.id, format_error(py, module, &e)))?;
            Ok((Self { bridge: bridge.unbind() }, describe.into_bytes()))
        })
    }
}

impl Backend for InProcessBackend {
    fn reset(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> BridgeResult<Info> {
        let options = options.map(|o| Value::Object(o.clone()).to_string());
        attach(|py| {
            let out = self.bridge.bind(py).call_method1(intern!(py, "reset"), (seed, options));
            let out = out.and_then(|o| o.extract::<(Bound<'_, PyBytes>, Bound<'_, PyBytes>)>());
            let (obs_bytes, info) = out.map_err(|e| format_error_any(py, &e))?;
            decode_obs(obs_bytes.as_bytes(), obs)?;
            decode_info(info.as_bytes())
        })
    }

    fn step(&mut self, action: &[u8], obs: &mut [f32]) -> BridgeResult<StepResult> {
        attach(|py| {
            let action = PyBytes::new(py, action);
            let out = self.bridge.bind(py).call_method1(intern!(py, "step"), (action,));
            type Out<'py> = (Bound<'py, PyBytes>, f64, bool, bool, Bound<'py, PyBytes>);
            let out = out.and_then(|o| o.extract::<Out<'_>>());
            let (obs_bytes, reward, terminated, truncated, info) = out.map_err(|e| format_error_any(py, &e))?;
            decode_obs(obs_bytes.as_bytes(), obs)?;
            Ok(StepResult { reward, terminated, truncated, info: decode_info(info.as_bytes())? })
        })
    }
}

impl Drop for InProcessBackend {
    fn drop(&mut self) {
        // Gymnasium's close releases renderers and simulators; an error there has nowhere to go.
        attach(|py| {
            let _ = self.bridge.bind(py).call_method0("close");
        });
    }
}

/// [`Python::attach`] that keeps this thread's Python thread state between calls.
///
/// Attaching a thread that has no thread state creates one and detaching deletes it again,
/// which made every step from a thread other than the one that started the interpreter about a
/// third slower (MuJoCo's HalfCheetah: 12k instead of 17.5k steps/s). Each thread that steps an
/// env keeps one thread state for its lifetime instead.
fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    thread_local! {
        static THREAD_STATE: KeptThreadState = KeptThreadState::new();
    }
    THREAD_STATE.with(|_| ());
    Python::attach(f)
}

/// This thread's Python thread state, held (with the interpreter lock released) until the
/// thread ends.
struct KeptThreadState {
    gil: pyo3::ffi::PyGILState_STATE,
    state: *mut pyo3::ffi::PyThreadState,
}

impl KeptThreadState {
    fn new() -> Self {
        Python::initialize();
        // SAFETY: the interpreter is initialized; Ensure gives this thread a thread state and the
        // lock, SaveThread releases the lock and returns that state for `drop` to restore.
        unsafe {
            let gil = pyo3::ffi::PyGILState_Ensure();
            let state = pyo3::ffi::PyEval_SaveThread();
            Self { gil, state }
        }
    }
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // SAFETY: runs on the thread that made `self`, which does not hold the lock here (every
        // `attach` has returned); this undoes `new` in reverse order.
        unsafe {
            pyo3::ffi::PyEval_RestoreThread(self.state);
            pyo3::ffi::PyGILState_Release(self.gil);
        }
    }
}

/// The bridge module in the embedded interpreter, made once with the module search path of the
/// Python that `RL_PYTHON` or `VIRTUAL_ENV` names.
fn bridge_module(py: Python<'_>) -> std::result::Result<&Bound<'_, PyModule>, String> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    // A failure is not kept: the next env tries again (say, after RL_PYTHON was fixed).
    let module = MODULE.get_or_try_init(py, || -> std::result::Result<_, String> {
        let source = CString::new(BRIDGE_SOURCE).expect("bridge.py holds no NUL byte");
        let module = PyModule::from_code(py, &source, c"rl_env_gym_bridge.py", c"rl_env_gym_bridge")
            .map_err(|e| format!("cannot load the bridge module: {e}"))?;
        let dirs = site_dirs(py)?;
        module.getattr("add_site_dirs").and_then(|f| f.call1((dirs,))).map_err(|e| e.to_string())?;
        Ok(module.unbind())
    })?;
    Ok(module.bind(py))
}

/// The directories to add to the embedded interpreter's search path: the whole `sys.path` of
/// `$RL_PYTHON` (which must be the embedded Python's version), else `$VIRTUAL_ENV`'s
/// site-packages, else none.
fn site_dirs(py: Python<'_>) -> std::result::Result<Vec<String>, String> {
    let version: (u8, u8) = py
        .import("sys")
        .and_then(|sys| sys.getattr("version_info"))
        .and_then(|v| Ok((v.get_item(0)?.extract()?, v.get_item(1)?.extract()?)))
        .map_err(|e| e.to_string())?;
    if let Some(python) = std::env::var_os("RL_PYTHON").filter(|p| !p.is_empty()) {
        let script = "import json, sys; print(json.dumps([list(sys.version_info[:2]), sys.path]))";
        let out = Command::new(&python)
            .args(["-c", script])
            .output()
            .map_err(|e| format!("cannot run RL_PYTHON={}: {e}; {PYTHON_HINT}", python.to_string_lossy()))?;
        if !out.status.success() {
            return Err(format!(
                "RL_PYTHON={} failed to report its module search path ({}): {}",
                python.to_string_lossy(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let (theirs, path): ((u8, u8), Vec<String>) = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("RL_PYTHON={} printed an unexpected search path: {e}", python.to_string_lossy()))?;
        if theirs != version {
            return Err(format!(
                "RL_PYTHON={} is Python {}.{}, but this binary embeds Python {}.{}: point RL_PYTHON at a \
                 Python {}.{}, or use rl_bridge: process, which runs RL_PYTHON itself",
                python.to_string_lossy(),
                theirs.0,
                theirs.1,
                version.0,
                version.1,
                version.0,
                version.1
            ));
        }
        return Ok(path);
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let dir = std::path::Path::new(&venv).join(format!("lib/python{}.{}/site-packages", version.0, version.1));
        return Ok(vec![dir.to_string_lossy().into_owned()]);
    }
    Ok(Vec::new())
}

/// `ExceptionType: message` for a Python exception, with install hints for missing packages.
fn format_error(py: Python<'_>, module: &Bound<'_, PyModule>, err: &PyErr) -> String {
    module
        .getattr("format_exception")
        .and_then(|f| f.call1((err.value(py),)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| err.to_string())
}

/// [`format_error`] once the module is loaded (it is, for any made env).
fn format_error_any(py: Python<'_>, err: &PyErr) -> String {
    match bridge_module(py) {
        Ok(module) => format_error(py, module, err),
        Err(_) => err.to_string(),
    }
}
