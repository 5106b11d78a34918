//! Process actors ([`Isolation::Process`](crate::Isolation::Process)): the worker process that
//! runs one actor, how its node starts and watches it, and the entry point the worker runs.
//!
//! A node asked for a process actor reserves the actor's resources in its own runtime and
//! re-executes its program (or [`ClusterOptions::worker_program`]) with [`WORKER_ENV`] set and
//! the actor's environment variables added. The program's `main` hands over to
//! [`run_actor_process_if_asked`] first thing; the worker reads its [`WorkerSpec`] (head address,
//! token, TLS, build, the actor's type, init and options) from stdin, so no secret shows in its
//! command line or environment. It joins the cluster as a node of its own, which the head marks
//! with its parent and never picks for placement (it offers no resources: the parent holds
//! them), builds the one actor, and prints a ready line with its node id and address on stdout.
//! The parent answers the spawn with that node, so callers talk to the worker directly over the
//! same call streams as to any node; what the worker prints later is forwarded to the parent's
//! stdout, prefixed with the actor's name and pid.
//!
//! **Failure.** One thread per worker waits for its exit. When it exits the parent frees the
//! actor's resources first, then marks its node dead here with the exit status or signal as the
//! reason, and tells the head, which tells every node with its next heartbeat: calls in flight
//! fail with [`RuntimeError::DiedDuringCall`] (the call stream broke), later ones with
//! [`RuntimeError::NotDelivered`] whose reason names the exit (`killed by signal 6 (SIGABRT)`).
//! Nothing else on the node is touched. A worker whose actor stops (or whose owner dies) leaves
//! the cluster and exits by itself.
//!
//! **Fate-sharing.** The parent's shutdown sends SIGTERM to its workers (they leave cleanly),
//! waits a grace period, then SIGKILLs what is left. On Linux each worker also asks the kernel
//! for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), so a parent killed with SIGKILL takes
//! its workers along. That signal follows the *thread* that started the child, so workers are
//! started from one launcher thread that lives as long as the node.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc as tokio_mpsc;
use tonic::Status;

use super::hosted::{Hosted, reply_frame};
use super::node::{NodeCore, lock};
use super::proto::{self, CallFrame, ReplyFrame};
use super::{ClusterOptions, TlsConfig, Token};
use crate::actor::{ActorOptions, Isolation, Placement};
use crate::error::{Result, RuntimeError};
use crate::runtime::{Reservation, Runtime};

/// Set once this process runs as a process actor's worker.
static IS_WORKER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True in a process actor's worker process.
pub(crate) fn is_worker() -> bool {
    IS_WORKER.load(std::sync::atomic::Ordering::Relaxed)
}

/// The exit code of a worker process killed by [`crate::ActorHandle::kill`] (128 + SIGKILL's 9,
/// as a shell reports a killed process).
pub(crate) const KILLED_EXIT_CODE: i32 = 137;

/// The environment variable that marks a process as a process actor's worker (its value is
/// unused; the spec comes on stdin). Set by the runtime only; [`ActorOptions::env`] may not.
pub const WORKER_ENV: &str = "RL_ACTOR_PROCESS";

/// The stdout line prefix of a worker that is ready (then hex of the encoded [`Ready`]).
const READY: &str = "rl-actor-process ready ";
/// The stdout line prefix of a worker that could not start its actor (then hex of the encoded
/// [`RuntimeError`]).
const FAILED: &str = "rl-actor-process failed ";
/// How long a worker may take from its start to its ready line (start, join, constructor).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping node waits for its workers after SIGTERM before it SIGKILLs them.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a worker checks whether its actor still runs.
const ACTOR_CHECK: Duration = Duration::from_millis(50);

/// What a worker process needs to know, sent on its stdin.
#[derive(Serialize, Deserialize)]
struct WorkerSpec {
    head_address: String,
    token: String,
    tls: Option<TlsSpec>,
    build: String,
    listen_ip: IpAddr,
    /// The node that started it, and that node's process id (to notice a parent that died
    /// before the worker could ask to share its fate).
    parent: u32,
    parent_pid: u32,
    /// The node that asked for the actor; the actor stops when that node dies.
    owner: u32,
    type_name: String,
    init: Vec<u8>,
    name: Option<String>,
    max_restarts: u32,
    mailbox_capacity: usize,
}

/// [`TlsConfig`] in a form that travels.
#[derive(Serialize, Deserialize)]
struct TlsSpec {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
    domain: String,
    require_client_cert: bool,
}

/// What a worker reports once its actor runs.
#[derive(Serialize, Deserialize)]
struct Ready {
    actor_id: u64,
    node_id: u32,
    address: String,
    name: String,
}

// === The worker's side ===

/// Runs this process as a process actor's worker if its node started it as one (the
/// environment variable [`WORKER_ENV`] is set), and then exits; otherwise returns at once.
///
/// Call it first thing in `main`, before any thread starts, in every program that runs cluster
/// nodes (`rl_cli::main` does): a node starts process actors by re-executing its own program.
/// `register` registers the actor types, as the program does for its nodes; the worker builds
/// its actor from the type name the spawn gave.
///
/// ```no_run
/// // First thing in `main`:
/// rl_runtime::cluster::run_actor_process_if_asked(|rt| {
///     // rt.register_actor::<MyActor>(), for every type the program's nodes register.
///     let _ = rt;
/// });
/// // The program's usual work follows: parse flags, start a node, ...
/// ```
pub fn run_actor_process_if_asked(register: impl FnOnce(&Runtime)) {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    // SAFETY: documented to be called at the start of `main`, before other threads exist, so
    // nothing reads the environment concurrently. Removed so that programs the actor starts are
    // not mistaken for workers.
    unsafe { std::env::remove_var(WORKER_ENV) };
    IS_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ready = false;
    let result = run_worker(register, &mut ready);
    let code = match result {
        Ok(()) => 0,
        Err(e) if ready => {
            tracing::error!(error = %e, "the actor's worker process failed");
            1
        }
        Err(e) => {
            let line = format!("{FAILED}{}\n", to_hex(&crate::encode(&e).unwrap_or_default()));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            1
        }
    };
    std::process::exit(code)
}

/// The worker's life: read the spec, join, build the actor, report ready, serve until the actor
/// stops or the process is asked to stop, leave.
fn run_worker(register: impl FnOnce(&Runtime), ready: &mut bool) -> Result<()> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| RuntimeError::Cluster(format!("cannot read the worker spec from stdin: {e}")))?;
    let spec: WorkerSpec = crate::decode(&raw)?;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        if u32::try_from(parent).ok() != Some(spec.parent_pid) {
            return Err(RuntimeError::Cluster("the node that started this worker process is gone".into()));
        }
    }
    // Not `ClusterOptions::new`, whose default build id hashes the whole executable: the
    // worker declares its parent's build instead, and starts that much sooner.
    let mut options = ClusterOptions::with_build(Token::parse(&spec.token)?, spec.build.clone());
    options.listen = SocketAddr::new(spec.listen_ip, 0);
    options.num_cpus = 0.0;
    options.num_gpus = 0.0;
    options.num_task_threads = 1;
    options.tls = spec.tls.map(|t| TlsConfig {
        cert_pem: t.cert_pem,
        key_pem: t.key_pem,
        ca_pem: t.ca_pem,
        domain: t.domain,
        require_client_cert: t.require_client_cert,
    });
    let rt = super::start::start(Some(spec.head_address.clone()), options, spec.parent)?;
    let core = rt.cluster_core()?;
    register(&rt);
    // The parent holds the actor's resources; here it reserves none.
    let actor_options = ActorOptions {
        name: spec.name.clone(),
        num_cpus: 0.0,
        num_gpus: 0.0,
        resources: Default::default(),
        max_restarts: spec.max_restarts,
        mailbox_capacity: spec.mailbox_capacity,
        placement: Placement::Local,
        isolation: Isolation::Thread,
        ..ActorOptions::default()
    };
    let built = rt.factory(&spec.type_name).and_then(|factory| factory(&rt, &spec.init, actor_options));
    let hosted = match built {
        Ok(h) => h,
        Err(e) => {
            rt.shutdown();
            return Err(e);
        }
    };
    lock(&core.hosted).insert(hosted.id(), (hosted.clone(), spec.owner));
    let report =
        Ready { actor_id: hosted.id(), node_id: rt.node_id(), address: rt.address(), name: hosted.name().into() };
    let line = format!("{READY}{}\n", to_hex(&crate::encode(&report)?));
    {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| RuntimeError::Cluster(format!("cannot tell the parent node that the actor is ready: {e}")))?;
    }
    *ready = true;
    rt.stop_on_signal();
    let reason = loop {
        if let Some(reason) = core.wait_for_stop_timeout(ACTOR_CHECK) {
            break reason;
        }
        if !hosted.is_alive() {
            break format!("its actor {} stopped", hosted.name());
        }
    };
    core.request_stop(&reason);
    rt.shutdown();
    Ok(())
}

// === The parent's side ===

/// One start request for the launcher thread.
type Launch = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// The worker processes a node started, for its shutdown to stop.
#[derive(Default)]
pub(crate) struct Workers {
    /// The thread that starts every worker (see the module docs on `PR_SET_PDEATHSIG`).
    launcher: Mutex<Option<mpsc::Sender<Launch>>>,
    table: Mutex<WorkerTable>,
    /// Signalled when a worker leaves the table.
    exited: Condvar,
}

#[derive(Default)]
struct WorkerTable {
    /// Live workers by pid, with their actor's name. A pid stays here until just before it is
    /// reaped, so signalling a pid found here under the lock never hits a reused one.
    live: HashMap<u32, String>,
    /// Set when the node stops: no new workers.
    closed: bool,
}

impl Workers {
    /// Starts `cmd` on the launcher thread.
    fn launch(&self, cmd: Command) -> std::io::Result<Child> {
        let tx = {
            let mut launcher = lock(&self.launcher);
            match launcher.as_ref() {
                Some(tx) => tx.clone(),
                None => {
                    let (tx, rx) = mpsc::channel::<Launch>();
                    std::thread::Builder::new().name("rl-worker-launcher".into()).spawn(move || {
                        for (mut cmd, reply) in rx {
                            let _ = reply.send(cmd.spawn());
                        }
                    })?;
                    launcher.insert(tx).clone()
                }
            }
        };
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let gone = || std::io::Error::other("the worker launcher thread is gone");
        tx.send((cmd, reply_tx)).map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }

    /// Records a started worker; false if the node is stopping (the caller kills it).
    fn register(&self, pid: u32, actor: &str) -> bool {
        let mut table = lock(&self.table);
        if table.closed {
            return false;
        }
        table.live.insert(pid, actor.to_string());
        true
    }

    /// Forgets a worker that exited (before it is reaped).
    fn unregister(&self, pid: u32) {
        lock(&self.table).live.remove(&pid);
        self.exited.notify_all();
    }

    /// Kills worker `pid` whose `Child` is gone, reaps it and forgets it.
    fn kill_and_reap(&self, pid: u32) {
        {
            let _table = lock(&self.table);
            signal(pid, Signal::Kill);
        }
        wait_exited(pid);
        self.unregister(pid);
        #[cfg(target_os = "linux")]
        // SAFETY: reaps our own child, which has exited; no memory is passed.
        unsafe {
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0)
        };
    }

    /// Refuses new workers and asks the live ones to stop (SIGTERM): each leaves the cluster
    /// and exits.
    pub(crate) fn terminate_all(&self) {
        let mut table = lock(&self.table);
        table.closed = true;
        for pid in table.live.keys() {
            signal(*pid, Signal::Terminate);
        }
    }

    /// Waits up to [`STOP_GRACE`] for the workers to exit, then SIGKILLs the rest and waits
    /// for their watchers to see them go (bounded too).
    pub(crate) fn wait_all(&self) {
        let deadline = Instant::now() + STOP_GRACE;
        let mut table = lock(&self.table);
        while !table.live.is_empty() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            table = self.exited.wait_timeout(table, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        for (pid, actor) in &table.live {
            tracing::warn!(pid, %actor, "the actor's worker process ignored SIGTERM; killing it");
            signal(*pid, Signal::Kill);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !table.live.is_empty() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            table = self.exited.wait_timeout(table, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

enum Signal {
    Terminate,
    Kill,
}

/// Sends a signal to worker `pid` (the caller holds the worker table's lock, see
/// [`WorkerTable::live`]).
fn signal(pid: u32, which: Signal) {
    #[cfg(target_os = "linux")]
    {
        let sig = match which {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: kill has no memory effects; the pid is a child of this process not yet reaped.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (pid, which);
}

/// A process actor as its parent node hosts it: a stand-in in the node's table of hosted actors,
/// so that its owner's death, a placement group's removal and the node's shutdown stop it like
/// any hosted actor. Its calls go to the worker, never here.
struct ProcessActor {
    actor_id: u64,
    node_id: u32,
    address: String,
    name: String,
    core: Weak<NodeCore>,
}

impl Hosted for ProcessActor {
    fn serve(
        &self,
        _core: &Arc<NodeCore>,
        frame: CallFrame,
        _caller: u32,
        replies: &tokio_mpsc::Sender<std::result::Result<ReplyFrame, Status>>,
    ) {
        if frame.want_reply {
            let e = RuntimeError::NotDelivered {
                actor: self.name.clone(),
                reason: format!("it runs in its worker process, node {} at {}", self.node_id, self.address),
            };
            let _ = replies.try_send(Ok(reply_frame(frame.call_id, Err(e))));
        }
    }

    fn stop(&self) {
        if let Some(core) = self.core.upgrade() {
            core.stop_remote_actor(self.node_id, self.address.clone(), self.actor_id, false);
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn id(&self) -> u64 {
        self.actor_id
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn is_alive(&self) -> bool {
        // Removed from the table when its process exits.
        true
    }
}

impl NodeCore {
    /// Starts a worker process running actor `type_name` built from `init` for node `owner`,
    /// with this node's runtime holding the actor's resources until the process exits. Blocks
    /// until the worker is ready (or [`START_TIMEOUT`]); call it from a blocking thread.
    pub(crate) fn spawn_worker(
        self: &Arc<Self>,
        type_name: &str,
        init: Bytes,
        options: ActorOptions,
        owner: u32,
    ) -> Result<proto::SpawnActorReply> {
        let rt = self.runtime.upgrade().ok_or(RuntimeError::Shutdown)?;
        rt.factory(type_name)?;
        let label = options.name.clone().unwrap_or_else(|| type_name.to_string());
        options.check_isolation(&label)?;
        options.check_mailbox(&label)?;
        let reservation = rt.reserve_for(&label, &options)?;
        let program = match &self.worker.program {
            Some(p) => p.clone(),
            None => own_program()?,
        };
        let spec = self.worker_spec(type_name, init, &options, owner);
        let (child, ready) = self.start_worker(worker_command(&program, &options), &spec, &label, &program)?;
        let pid = child.id();
        let stand_in = ProcessActor {
            actor_id: ready.actor_id,
            node_id: ready.node_id,
            address: ready.address.clone(),
            name: ready.name.clone(),
            core: Arc::downgrade(self),
        };
        lock(&self.hosted).insert(ready.actor_id, (Arc::new(stand_in), owner));
        let (available, version) = rt.available_with_version();
        let reply = proto::SpawnActorReply {
            actor_id: ready.actor_id,
            node_id: ready.node_id,
            address: ready.address.clone(),
            pid,
            name: ready.name.clone(),
            available: Some(super::hosted::resources(&available)),
            resource_version: version,
        };
        let watch = Watch { core: Arc::downgrade(self), workers: self.workers.clone(), child, reservation, ready };
        if let Err(e) = std::thread::Builder::new().name(format!("rl-worker-{pid}")).spawn(move || watch.run()) {
            // Without a watcher nobody would notice its exit: stop it now. The dropped closure
            // returned the reservation; the pid is still in the table, so not yet reaped.
            self.workers.kill_and_reap(pid);
            lock(&self.hosted).remove(&reply.actor_id);
            return Err(RuntimeError::Cluster(format!("cannot watch the worker process of actor {label}: {e}")));
        }
        tracing::debug!(actor = %reply.name, pid, node = reply.node_id, "started a process actor");
        Ok(reply)
    }

    /// What a worker needs to know to run actor `type_name` for node `owner`.
    fn worker_spec(&self, type_name: &str, init: Bytes, options: &ActorOptions, owner: u32) -> WorkerSpec {
        WorkerSpec {
            head_address: self.head_address.clone(),
            token: self.token.as_str().to_string(),
            tls: self.tls.as_ref().map(|t| TlsSpec {
                cert_pem: t.cert_pem.clone(),
                key_pem: t.key_pem.clone(),
                ca_pem: t.ca_pem.clone(),
                domain: t.domain.clone(),
                require_client_cert: t.require_client_cert,
            }),
            build: self.worker.build.clone(),
            listen_ip: self.worker.listen_ip,
            parent: self.node_id,
            parent_pid: std::process::id(),
            owner,
            type_name: type_name.to_string(),
            init: init.to_vec(),
            name: options.name.clone(),
            max_restarts: options.max_restarts,
            mailbox_capacity: options.mailbox_capacity,
        }
    }

    /// Starts `cmd` as a worker (registered in the worker table), hands it `spec` and waits
    /// for its ready line. On failure the worker is gone (killed if need be, and reaped).
    fn start_worker(&self, cmd: Command, spec: &WorkerSpec, label: &str, program: &Path) -> Result<(Child, Ready)> {
        let mut child = self.workers.launch(cmd).map_err(|e| {
            RuntimeError::Cluster(format!(
                "cannot start a worker process for actor {label} ({}): {e}",
                program.display()
            ))
        })?;
        let pid = child.id();
        if !self.workers.register(pid, label) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RuntimeError::Shutdown);
        }
        if let Some(mut stdin) = child.stdin.take() {
            // A worker that died at once shows below, when its ready line never comes.
            let _ = crate::encode(spec).map(|bytes| stdin.write_all(&bytes));
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let forward_label = label.to_string();
        let reader = std::thread::Builder::new()
            .name(format!("rl-worker-out-{pid}"))
            .spawn(move || read_output(stdout, ready_tx, &forward_label, pid));
        let answer = match reader {
            Ok(_) => ready_rx.recv_timeout(START_TIMEOUT).map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read its output: {e}")),
        };
        match answer {
            Ok(Ok(ready)) => Ok((child, ready)),
            Ok(Err(e)) => {
                // It reported why and exits.
                self.workers.unregister(pid);
                let _ = child.wait();
                Err(e)
            }
            Err(why) => {
                self.workers.unregister(pid);
                let _ = child.kill();
                let status = child.wait().map(|s| exit_text(&s)).unwrap_or_else(|e| e.to_string());
                Err(RuntimeError::Cluster(format!(
                    "the worker process of actor {label} ({}, pid {pid}) {status} before it was ready ({why}); \
                     does the program call rl_runtime::cluster::run_actor_process_if_asked first thing in main? \
                     (rl_cli::main does)",
                    program.display()
                )))
            }
        }
    }
}

/// The command that starts a worker: `program` with [`WORKER_ENV`] and the actor's variables,
/// stdin and stdout piped (spec in, ready line out), stderr shared with this node; on Linux the
/// worker asks for SIGKILL when its parent dies.
fn worker_command(program: &Path, options: &ActorOptions) -> Command {
    let mut cmd = Command::new(program);
    cmd.env(WORKER_ENV, "1").envs(&options.env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// This process's program. On Linux `/proc/self/exe`, which is the very file this process runs
/// even if its path was replaced since (an upgrade in place), so a worker is always this build.
fn own_program() -> Result<PathBuf> {
    #[cfg(target_os = "linux")]
    return Ok(PathBuf::from("/proc/self/exe"));
    #[cfg(not(target_os = "linux"))]
    std::env::current_exe()
        .map_err(|e| RuntimeError::Cluster(format!("cannot find this program to start a worker: {e}")))
}

/// Reads a worker's stdout: its ready (or failed) line goes to `ready`, every other line is
/// forwarded to this process's stdout, prefixed with the actor and pid.
fn read_output(stdout: ChildStdout, ready: mpsc::Sender<Result<Ready>>, label: &str, pid: u32) {
    let mut ready = Some(ready);
    for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
        if let Some(tx) = ready.take() {
            if let Some(hex) = line.strip_prefix(READY) {
                let _ = tx.send(from_hex(hex).and_then(|b| crate::decode::<Ready>(&b)));
                continue;
            }
            if let Some(hex) = line.strip_prefix(FAILED) {
                let _ =
                    tx.send(Err(from_hex(hex).and_then(|b| crate::decode::<RuntimeError>(&b)).unwrap_or_else(|e| e)));
                continue;
            }
            ready = Some(tx);
        }
        // A closed stdout (nobody reads the node's output) loses the line, nothing else.
        let _ = writeln!(std::io::stdout().lock(), "({label} pid={pid}) {line}");
    }
}

/// What a worker's watcher thread holds until the worker exits.
struct Watch {
    core: Weak<NodeCore>,
    workers: Arc<Workers>,
    child: Child,
    reservation: Reservation,
    ready: Ready,
}

impl Watch {
    /// Waits for the worker to exit, then in this order: frees the actor's resources, drops
    /// the stand-in, marks the worker's node dead here, tells the head (unless this node is
    /// stopping, having left it already).
    fn run(mut self) {
        let pid = self.child.id();
        wait_exited(pid);
        self.workers.unregister(pid);
        let status = self.child.wait();
        let what = status.as_ref().map(exit_text).unwrap_or_else(|e| format!("could not be waited for: {e}"));
        let reason = format!("actor {}'s worker process (pid {pid}) {what}", self.ready.name);
        drop(self.reservation);
        let Some(core) = self.core.upgrade() else { return };
        lock(&core.hosted).remove(&self.ready.actor_id);
        if status.as_ref().is_ok_and(ExitStatus::success) {
            tracing::debug!("{reason}");
        } else {
            tracing::warn!("{reason}");
        }
        core.node_dead(self.ready.node_id, Some(&reason));
        if core.is_stopping() {
            return;
        }
        let mut head = core.head.clone();
        let request =
            proto::LeaveRequest { node_id: self.ready.node_id, reason, died: true, head_epoch: core.head_epoch };
        let _ = core.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), head.leave(request)).await;
        });
    }
}

/// Blocks until process `pid` (a child) has exited, without reaping it, so that it stays in the
/// worker table, and signals to its pid stay safe, until [`Workers::unregister`].
fn wait_exited(pid: u32) {
    #[cfg(target_os = "linux")]
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid writes it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; WNOWAIT leaves it waitable for `Child::wait`.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pid;
}

/// How a worker ended, as a phrase: `exited`, `died with exit status 3`, `died: killed by
/// signal 6 (SIGABRT)`.
fn exit_text(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let core = if status.core_dumped() { ", core dumped" } else { "" };
            return format!("died: killed by signal {sig} ({}{core})", signal_name(sig));
        }
    }
    match status.code() {
        Some(0) => "exited".into(),
        Some(code) => format!("died with exit status {code}"),
        None => format!("died ({status})"),
    }
}

/// The name of a common signal.
#[cfg(unix)]
fn signal_name(sig: i32) -> &'static str {
    #[cfg(not(target_os = "linux"))]
    return if sig == 6 { "SIGABRT" } else { "a signal" };
    #[cfg(target_os = "linux")]
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "a signal",
    }
}

/// Lower-case hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from [`to_hex`]'s text.
fn from_hex(text: &str) -> Result<Vec<u8>> {
    let bad = || RuntimeError::Serialization { what: "a worker's report".into(), message: "not hex".into() };
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

/// Where a node's worker processes come from and what they declare.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    /// The program to run ([`ClusterOptions::worker_program`]; `None`: this one).
    pub(crate) program: Option<PathBuf>,
    /// The build the workers declare (the node's).
    pub(crate) build: String,
    /// The interface workers listen on (the node's).
    pub(crate) listen_ip: IpAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_odd_text() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exit_texts_name_the_signal_or_status() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_text(&ExitStatus::from_raw(0)), "exited");
        assert_eq!(exit_text(&ExitStatus::from_raw(3 << 8)), "died with exit status 3");
        assert_eq!(exit_text(&ExitStatus::from_raw(libc::SIGABRT)), "died: killed by signal 6 (SIGABRT)");
    }
}
