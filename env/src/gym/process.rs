//! The process design: one Python child process per env, talking over its stdin and stdout with
//! the binary protocol described at the top of `bridge.py`.
//!
//! The child keeps the protocol on duplicates of its stdin and stdout and points fd 1 at its
//! stderr, so nothing an env prints can corrupt a reply. Its stderr is read by a thread that
//! echoes each line (prefixed with the env id and pid) and keeps the last lines for errors. A
//! child that dies (segfault, `os._exit`, kill) closes its stdout: the pending request fails at
//! once with an error naming the pid, the signal or exit code, and the tail of its stderr.
//!
//! On Linux each child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`).
//! That signal follows the *thread* that started the child, so children are started from one
//! launcher thread that lives as long as the process, not from the (maybe short-lived) thread
//! that makes the env.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::interpreter::{BRIDGE_SOURCE, PYTHON_HINT, python_executable};
use super::spaces::{decode_info, decode_obs};
use super::{Backend, BridgeResult, Setup};
use crate::env::{Info, Kwargs, StepResult};
use crate::error::{EnvError, Result};

/// How many lines of the child's stderr an error quotes.
const TAIL_LINES: usize = 20;

/// One env's Python child process.
pub(super) struct ProcessBackend {
    child: Child,
    pid: u32,
    /// `None` once closed (on drop).
    input: Option<BufWriter<ChildStdin>>,
    output: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<()>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The reply being read.
    buf: Vec<u8>,
    /// Set once the child died: every later request returns it.
    dead: Option<String>,
}

impl ProcessBackend {
    /// Starts the child and makes the env in it; returns the backend and its spaces' description.
    pub(super) fn start(setup: &Setup) -> Result<(Self, Vec<u8>)> {
        let mut backend = Self::spawn(&setup.id).map_err(|m| EnvError::custom(&setup.id, m))?;
        let make = serde_json::json!({"id": setup.gym_id, "kwargs": setup.kwargs});
        let describe =
            backend.request(b'M', &make.to_string().into_bytes()).map_err(|m| EnvError::custom(&setup.id, m))?;
        let describe = describe.to_vec();
        Ok((backend, describe))
    }

    /// Starts `python -c <bridge.py> serve` for the env `label` (used to prefix its stderr lines).
    fn spawn(label: &str) -> std::result::Result<Self, String> {
        let python = python_executable();
        let mut cmd = Command::new(&python);
        cmd.args(["-X", "faulthandler", "-c", BRIDGE_SOURCE, "serve"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = launch(cmd).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound { "not found".to_string() } else { e.to_string() };
            format!("cannot start the Python interpreter {}: {why}; {PYTHON_HINT}", python.display())
        })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three are piped")
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let prefix = format!("{label} [python pid {pid}] ");
        let lines = Arc::clone(&tail);
        let stderr = std::thread::Builder::new()
            .name(format!("gym-stderr-{pid}"))
            .spawn(move || echo_stderr(stderr, &prefix, &lines))
            .map_err(|e| format!("cannot start the thread reading the child's stderr: {e}"))?;
        Ok(Self {
            child,
            pid,
            input: Some(BufWriter::new(stdin)),
            output: BufReader::new(stdout),
            stderr: Some(stderr),
            tail,
            buf: Vec::new(),
            dead: None,
        })
    }

    /// Sends one request and returns the reply's payload; a Python exception is its
    /// `Type: message`, a dead child the reason it died.
    fn request(&mut self, op: u8, payload: &[u8]) -> std::result::Result<&[u8], String> {
        if let Some(dead) = &self.dead {
            return Err(dead.clone());
        }
        match self.exchange(op, payload) {
            Ok(0) => Ok(&self.buf),
            Ok(_) => Err(String::from_utf8_lossy(&self.buf).into_owned()),
            Err(_) => {
                let dead = self.death();
                self.dead = Some(dead.clone());
                Err(dead)
            }
        }
    }

    /// Writes a request and reads the reply into `buf`; returns the reply's status.
    fn exchange(&mut self, op: u8, payload: &[u8]) -> std::io::Result<u8> {
        let input = self.input.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
        input.write_all(&[op])?;
        input.write_all(&(payload.len() as u32).to_le_bytes())?;
        input.write_all(payload)?;
        input.flush()?;
        let mut head = [0u8; 5];
        self.output.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        self.buf.resize(len, 0);
        self.output.read_exact(&mut self.buf)?;
        Ok(head[0])
    }

    /// Waits for the dead child (killing it if it lingers) and says how it ended, with the tail
    /// of its stderr.
    fn death(&mut self) -> String {
        let status = wait_deadline(&mut self.child, Duration::from_secs(2));
        // The stderr thread ends once the dead child's pipe is drained.
        if let Some(handle) = self.stderr.take() {
            let deadline = Instant::now() + Duration::from_secs(1);
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        let tail: Vec<String> = self.tail.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        let tail = if tail.is_empty() {
            "; it wrote nothing to stderr".to_string()
        } else {
            format!("; the end of its stderr:\n{}", tail.join("\n"))
        };
        format!("the Python process (pid {}) died: {}{tail}", self.pid, describe_status(status))
    }
}

impl Backend for ProcessBackend {
    fn reset(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> BridgeResult<Info> {
        let mut payload = Vec::with_capacity(9);
        payload.push(u8::from(seed.is_some()));
        payload.extend_from_slice(&seed.unwrap_or(0).to_le_bytes());
        if let Some(options) = options {
            payload.extend_from_slice(Value::Object(options.clone()).to_string().as_bytes());
        }
        let reply = self.request(b'R', &payload)?;
        let n = 4 * obs.len();
        if reply.len() < n {
            return Err(format!("the bridge's reset reply has {} bytes, the observation alone needs {n}", reply.len()));
        }
        decode_obs(&reply[..n], obs)?;
        decode_info(&reply[n..])
    }

    fn step(&mut self, action: &[u8], obs: &mut [f32]) -> BridgeResult<StepResult> {
        let reply = self.request(b'S', action)?;
        let n = 4 * obs.len();
        if reply.len() < n + 9 {
            return Err(format!("the bridge's step reply has {} bytes, expected at least {}", reply.len(), n + 9));
        }
        decode_obs(&reply[..n], obs)?;
        let reward = f64::from_le_bytes(reply[n..n + 8].try_into().expect("8 bytes"));
        let flags = reply[n + 8];
        let info = decode_info(&reply[n + 9..])?;
        Ok(StepResult { reward, terminated: flags & 1 != 0, truncated: flags & 2 != 0, info })
    }
}

impl Drop for ProcessBackend {
    fn drop(&mut self) {
        // End of input asks the child to close its env and exit; one that does not is killed.
        drop(self.input.take());
        wait_deadline(&mut self.child, Duration::from_secs(2));
        if let Some(handle) = self.stderr.take()
            && handle.is_finished()
        {
            let _ = handle.join();
        }
    }
}

/// Every id in Gymnasium's registry, asked of a short-lived child.
pub(super) fn list_ids() -> Result<Vec<String>> {
    let label = "gym (listing ids)";
    let mut backend = ProcessBackend::spawn(label).map_err(|m| EnvError::custom(label, m))?;
    let reply = backend.request(b'L', &[]).map_err(|m| EnvError::custom(label, m))?;
    serde_json::from_slice(reply).map_err(|e| EnvError::custom(label, format!("the id list is not a JSON list: {e}")))
}

/// Echoes the child's stderr lines with `prefix` and keeps the last [`TAIL_LINES`] in `tail`.
fn echo_stderr(stderr: impl Read, prefix: &str, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        line.clear();
        eprintln!("{prefix}{text}");
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
}

/// Waits up to `patience` for `child` to exit, then kills it; always reaps it.
fn wait_deadline(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

/// "killed by signal 11 (SIGSEGV)" or "exited with code 3".
fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else { return "its exit status could not be read".to_string() };
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    let signal = status.signal().unwrap_or(0);
    let name = match signal {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    };
    format!("killed by signal {signal}{name}")
}

/// A command to start and where to send the started child.
type Launch = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// Starts `cmd` on the process-wide launcher thread (see the module docs).
fn launch(cmd: Command) -> std::io::Result<Child> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<Launch>>> = OnceLock::new();
    let launcher = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Launch>();
        std::thread::Builder::new()
            .name("gym-launcher".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the gym launcher thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let gone = || std::io::Error::other("the gym launcher thread is gone");
    launcher.lock().unwrap_or_else(|e| e.into_inner()).send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}
