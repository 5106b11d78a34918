//! The cluster commands: `rl start` (a head or a worker node), `rl stop`, and the driver side of
//! `rl train --address`, with the session directory that keeps their token, pids and logs.
//!
//! A session directory holds one cluster's local state, so parallel clusters on one machine
//! (concurrent tests, say) stay apart:
//!
//! ```text
//! SESSION/token          the cluster token (mode 0600), written by `rl start --head`
//! SESSION/head_address   where this machine's head listens
//! SESSION/nodes/PID.json one file per node process started here (role, address, node id)
//! SESSION/logs/          output of nodes started in the background
//! ```
//!
//! It is `--session-dir`, else `$RL_SESSION_DIR`, else `~/.rl/session`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rl_runtime::Runtime;
use rl_runtime::cluster::{ClusterOptions, TOKEN_ENV, TlsConfig, Token};
use serde::{Deserialize, Serialize};

/// The environment variable that overrides the default session directory.
pub const SESSION_ENV: &str = "RL_SESSION_DIR";

/// The head's default port (a head on port 0 gets a free one and prints it).
pub const DEFAULT_HEAD_PORT: u16 = 6380;

/// The default port of the head's dashboard and jobs API (Ray's dashboard port).
pub const DEFAULT_DASHBOARD_PORT: u16 = 8265;

/// One cluster's local state on this machine.
#[derive(Debug, Clone)]
pub struct SessionDir {
    root: PathBuf,
}

/// A node process started from this machine, as its pid file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its process id.
    pub pid: u32,
    /// `head` or `node`.
    pub role: String,
    /// Where it listens.
    pub address: String,
    /// Its id in the cluster.
    pub node_id: u32,
    /// Its executable, to tell it from an unrelated process that got the same pid later.
    pub exe: String,
}

impl SessionDir {
    /// `flag`, else `$RL_SESSION_DIR`, else `~/.rl/session`.
    pub fn resolve(flag: Option<&Path>) -> Result<Self> {
        let root = match (flag, std::env::var_os(SESSION_ENV)) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(p)) => PathBuf::from(p),
            (None, None) => {
                let home =
                    std::env::var_os("HOME").context("HOME is not set: pass --session-dir or set RL_SESSION_DIR")?;
                PathBuf::from(home).join(".rl").join("session")
            }
        };
        Ok(Self { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The token file.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("token")
    }

    /// The address of the head this session started, if it wrote one.
    pub fn head_address(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.head_file()).map(|s| s.trim().to_string())
    }

    fn head_file(&self) -> PathBuf {
        self.root.join("head_address")
    }

    fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn create(&self) -> Result<()> {
        for d in [self.root.clone(), self.nodes_dir(), self.logs_dir()] {
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(())
    }

    /// The nodes started from this machine whose processes still run.
    pub fn live_nodes(&self) -> Vec<(PathBuf, NodeRecord)> {
        let Ok(entries) = std::fs::read_dir(self.nodes_dir()) else { return Vec::new() };
        let mut out: Vec<(PathBuf, NodeRecord)> = entries
            .flatten()
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((e.path(), serde_json::from_str::<NodeRecord>(&text).ok()?))
            })
            .collect();
        out.sort_by_key(|(_, r)| (r.role == "head", r.node_id));
        out.into_iter()
            .filter(|(path, r)| {
                let alive = process_alive(r);
                if !alive {
                    let _ = std::fs::remove_file(path);
                }
                alive
            })
            .collect()
    }
}

/// Whether the process of `r` still runs (and is the executable that wrote the record).
fn process_alive(r: &NodeRecord) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(r.pid as libc::pid_t, 0) } == 0;
    if !exists {
        return false;
    }
    match std::fs::read_link(format!("/proc/{}/exe", r.pid)) {
        Ok(exe) => exe.display().to_string().trim_end_matches(" (deleted)") == r.exe,
        Err(_) => true,
    }
}

/// The cluster token for a process joining a cluster: `--token-file`, else `$RL_CLUSTER_TOKEN`,
/// else the session directory's token file.
pub fn find_token(token_file: Option<&Path>, session: &SessionDir) -> Result<Token> {
    if let Some(f) = token_file {
        return Ok(Token::read(f)?);
    }
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        return Ok(Token::parse(&t)?);
    }
    let f = session.token_file();
    if f.exists() {
        return Ok(Token::read(&f)?);
    }
    bail!(
        "no cluster token: `rl start --head` writes one to {} on the head's machine; on another machine copy it \
         and pass --token-file FILE or set {TOKEN_ENV}",
        f.display()
    )
}

/// The token a head starts with: `--token-file`, else `$RL_CLUSTER_TOKEN` (how a container gets
/// it from a secret), else a new random one. A variable that is set but empty is an error rather
/// than a reason to make up a token no node would know.
fn head_token(token_file: Option<&Path>) -> Result<Token> {
    if let Some(f) = token_file {
        return Ok(Token::read(f)?);
    }
    match std::env::var(TOKEN_ENV) {
        Ok(t) => Token::parse(&t).with_context(|| format!("{TOKEN_ENV} is set but holds no usable token")),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => Ok(Token::generate()),
    }
}

/// TLS from the environment, like Ray's `RAY_USE_TLS`: `RL_USE_TLS=1` with
/// `RL_TLS_SERVER_CERT`, `RL_TLS_SERVER_KEY` and `RL_TLS_CA_CERT` (PEM files). Every process of
/// the cluster presents the certificate as server and as client (mutual TLS).
pub fn tls_from_env() -> Result<Option<TlsConfig>> {
    let on = std::env::var("RL_USE_TLS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !on {
        return Ok(None);
    }
    let var =
        |k: &str| std::env::var_os(k).map(PathBuf::from).with_context(|| format!("RL_USE_TLS is set but {k} is not"));
    let (cert, key, ca) = (var("RL_TLS_SERVER_CERT")?, var("RL_TLS_SERVER_KEY")?, var("RL_TLS_CA_CERT")?);
    Ok(Some(TlsConfig::from_files(&cert, &key, &ca, true)?))
}

/// The local address this machine uses to reach `head` (no packet is sent): where a node or
/// driver joining a head on another machine listens by default.
fn local_ip_towards(head: &str) -> Result<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let target = head.to_socket_addrs().with_context(|| format!("cannot resolve the head address {head:?}"))?.next();
    let target = target.with_context(|| format!("{head:?} resolves to no address"))?;
    if target.ip().is_loopback() {
        return Ok(target.ip());
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

/// How a driver or `rl status` finds the cluster's token.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterAccess {
    /// The cluster token file (default: $RL_CLUSTER_TOKEN, else the session directory's).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// The session directory holding the token (default: $RL_SESSION_DIR, else ~/.rl/session).
    #[arg(long, global = true)]
    pub session_dir: Option<PathBuf>,
}

/// A head to talk to without joining: its address, the cluster token, TLS settings.
pub struct HeadAccess {
    /// `HOST:PORT`.
    pub address: String,
    /// The cluster token.
    pub token: Token,
    /// TLS, from the environment.
    pub tls: Option<TlsConfig>,
}

impl ClusterAccess {
    /// The head at `address`, else the one this session directory started, with the token.
    pub fn head(&self, address: Option<&str>) -> Result<HeadAccess> {
        let session = SessionDir::resolve(self.session_dir.as_deref())?;
        let address = match address {
            Some(a) => a.to_string(),
            None => session
                .head_address()
                .with_context(|| format!("no head runs in {} (pass --address HOST:PORT)", session.path().display()))?,
        };
        let token = find_token(self.token_file.as_deref(), &session)?;
        Ok(HeadAccess { address, token, tls: tls_from_env()? })
    }
}

/// What `rl start` was asked for (its command-line flags).
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Start the head: the node table, placement and failure detection, plus a node.
    #[arg(long, required_unless_present = "address", conflicts_with = "address")]
    pub head: bool,
    /// Join the head at HOST:PORT as a worker node.
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<String>,
    /// The interface to listen on (default: 127.0.0.1 for a head; for a node, the one it
    /// reaches the head through). Another one than loopback without TLS prints a warning.
    #[arg(long)]
    pub host: Option<String>,
    /// The port (default: 6380 for a head, a free one for a node; 0: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Logical CPUs this node offers to actors and tasks (default: this machine's).
    #[arg(long)]
    pub num_cpus: Option<f64>,
    /// GPUs this node offers.
    #[arg(long, default_value_t = 0.0)]
    pub num_gpus: f64,
    /// Custom resources as a JSON object, e.g. '{"slot": 2}'.
    #[arg(long)]
    pub resources: Option<String>,
    /// Stay in the foreground until SIGINT or SIGTERM.
    #[arg(long)]
    pub block: bool,
    /// The session directory (default: $RL_SESSION_DIR, else ~/.rl/session).
    #[arg(long)]
    pub session_dir: Option<PathBuf>,
    /// The cluster token file (default: $RL_CLUSTER_TOKEN; else a node reads the session
    /// directory's and a head makes a new one).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// How often nodes send heartbeats, in ms (set on the head).
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// How long the head waits for a heartbeat before declaring a node dead, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub node_timeout_ms: u64,
    /// The memory cap of this node's object store, in bytes or with a unit (KiB, MiB, GiB, KB,
    /// MB, GB), e.g. 512MiB (default: 2GiB). Past it, objects nobody is reading spill to disk.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub object_store_memory: Option<usize>,
    /// Where the object store spills: the node makes its own directory under this one and
    /// removes it when it stops (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// The head's dashboard and jobs API port (Ray's 8265); 0 picks a free one.
    #[arg(long, default_value_t = DEFAULT_DASHBOARD_PORT)]
    pub dashboard_port: u16,
    /// The dashboard's interface (default: the head's `--host`).
    #[arg(long)]
    pub dashboard_host: Option<String>,
    /// Serve no dashboard or jobs API on the head.
    #[arg(long, conflicts_with_all = ["dashboard_port", "dashboard_host"])]
    pub no_dashboard: bool,
}

/// A byte count: digits with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB).
fn parse_bytes(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("{text:?} is not a byte count: give digits and a unit, like 512MiB or 2GB")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a byte count: it must start with digits"))?;
    n.checked_mul(scale).and_then(|b| usize::try_from(b).ok()).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_resources(json: Option<&str>) -> Result<BTreeMap<String, f64>> {
    let Some(json) = json else { return Ok(BTreeMap::new()) };
    let map: BTreeMap<String, f64> = serde_json::from_str(json).with_context(|| {
        format!("--resources must be a JSON object of names to amounts, like '{{\"slot\": 2}}'; got {json:?}")
    })?;
    for (k, v) in &map {
        if k == "CPU" || k == "GPU" {
            bail!("--resources: give {k} with --num-cpus / --num-gpus");
        }
        if !(v.is_finite() && *v >= 0.0) {
            bail!("--resources: {k} must be a non-negative number, got {v}");
        }
    }
    Ok(map)
}

/// `rl start`: in the background (the default, like `ray start`) or the foreground (`--block`).
/// `raw` are the arguments after the program name, to start it again in the background.
pub fn start(args: &StartArgs, raw: Vec<std::ffi::OsString>, out: &mut dyn Write) -> Result<()> {
    let session = SessionDir::resolve(args.session_dir.as_deref())?;
    session.create()?;
    if args.head
        && let Some((_, h)) = session.live_nodes().into_iter().find(|(_, r)| r.role == "head")
    {
        bail!(
            "a head already runs in {} (pid {} at {}); stop it with `rl stop`, or give another --session-dir",
            session.path().display(),
            h.pid,
            h.address
        );
    }
    if args.block { run_node(args, &session, out) } else { start_in_background(args, raw, &session, out) }
}

/// Starts this program again with `--block` in a new process group, its output in the session's
/// logs, and returns once it listens (or fails).
fn start_in_background(
    args: &StartArgs,
    raw: Vec<std::ffi::OsString>,
    session: &SessionDir,
    out: &mut dyn Write,
) -> Result<()> {
    let role = if args.head { "head" } else { "node" };
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    let log = session.logs_dir().join(format!("{role}-{stamp}-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(raw).arg("--block");
    if args.session_dir.is_none() {
        cmd.arg("--session-dir").arg(session.path());
    }
    cmd.stdin(std::process::Stdio::null()).stdout(file.try_clone()?).stderr(file);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("cannot start the node process")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\nready\n") {
            let lines: Vec<&str> = text.lines().take_while(|l| *l != "ready").collect();
            writeln!(out, "{}", lines.join("\n"))?;
            writeln!(out, "pid {}; logs in {}", child.id(), log.display())?;
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the {role} process exited ({status}) before it was ready:\n{}", text.trim_end());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the {role} process was not ready within 60 s; its log so far:\n{}", text.trim_end());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a head or node in this process until SIGINT or SIGTERM.
fn run_node(args: &StartArgs, session: &SessionDir, out: &mut dyn Write) -> Result<()> {
    let token = if args.head {
        let t = head_token(args.token_file.as_deref())?;
        t.write(&session.token_file())?;
        t
    } else {
        find_token(args.token_file.as_deref(), session)?
    };
    let mut options = ClusterOptions::new(token);
    let host = match (&args.host, &args.address) {
        (Some(h), _) => h.parse().with_context(|| format!("--host {h:?} is not an IP address"))?,
        (None, Some(head)) => local_ip_towards(head)?,
        (None, None) => std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let port = args.port.unwrap_or(if args.head { DEFAULT_HEAD_PORT } else { 0 });
    options.listen = SocketAddr::new(host, port);
    if let Some(n) = args.num_cpus {
        if !(n.is_finite() && n >= 0.0) {
            bail!("--num-cpus must be a non-negative number, got {n}");
        }
        options.num_cpus = n;
    }
    options.num_gpus = args.num_gpus;
    options.resources = parse_resources(args.resources.as_deref())?;
    options.tls = tls_from_env()?;
    options.heartbeat_interval = Duration::from_millis(args.heartbeat_interval_ms.max(1));
    options.node_timeout = Duration::from_millis(args.node_timeout_ms);
    if let Some(bytes) = args.object_store_memory {
        options.store.memory_cap = bytes;
    }
    if let Some(dir) = &args.spill_dir {
        options.store.spill_dir = Some(dir.clone());
    }
    let rt = match &args.address {
        None => Runtime::start_head(options)?,
        Some(head) => Runtime::join(head, options)?,
    };
    register_actor_types(&rt);
    rt.stop_on_signal();
    let services = if args.head && !args.no_dashboard { Some(HeadServices::start(&rt, args, session)?) } else { None };
    let role = if args.head { "head" } else { "node" };
    let record = NodeRecord {
        pid: std::process::id(),
        role: role.into(),
        address: rt.address(),
        node_id: rt.node_id(),
        exe: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
    };
    let pid_file = session.nodes_dir().join(format!("{}.json", record.pid));
    std::fs::write(&pid_file, serde_json::to_string(&record)? + "\n")
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    if args.head {
        std::fs::write(session.head_file(), rt.address() + "\n")?;
    }
    writeln!(out, "listening on {}", rt.address())?;
    if args.head {
        writeln!(out, "head node {} started; cluster token in {}", rt.node_id(), session.token_file().display())?;
        writeln!(out, "join a node:     rl start --address {}", rt.address())?;
        writeln!(out, "train on it:     rl train --config configs/ppo.yaml --address {}", rt.address())?;
        if let Some(services) = &services {
            let url = format!("http://{}", services.dashboard.local_addr());
            writeln!(out, "dashboard on {url} (open {url}/?token=TOKEN once, TOKEN from the token file)")?;
            writeln!(
                out,
                "submit a job:    rl job submit --address {} -- train --config configs/ppo.yaml",
                rt.address()
            )?;
        }
        writeln!(out, "stop this machine's nodes: rl stop")?;
    } else {
        writeln!(out, "node {} joined the head at {}", rt.node_id(), rt.head_address())?;
    }
    writeln!(out, "ready")?;
    out.flush()?;
    let reason = rt.wait_for_stop();
    eprintln!("{role} {} stopping: {reason}", rt.node_id());
    if let Some(services) = services {
        services.jobs.stop_all();
        drop(services);
    }
    rt.shutdown();
    let _ = std::fs::remove_file(&pid_file);
    if args.head {
        let _ = std::fs::remove_file(session.head_file());
    }
    eprintln!("{role} {} stopped", rt.node_id());
    match rt.head_lost() {
        Some(lost) => Err(lost.into()),
        None => Ok(()),
    }
}

/// `rl stop`: SIGTERM to every node started from this machine (worker nodes first, the head
/// last), then SIGKILL to any still running after `grace`.
pub fn stop(session_dir: Option<&Path>, grace: Duration, out: &mut dyn Write) -> Result<()> {
    let session = SessionDir::resolve(session_dir)?;
    let nodes = session.live_nodes();
    if nodes.is_empty() {
        writeln!(out, "no nodes of {} are running", session.path().display())?;
        return Ok(());
    }
    for (_, r) in &nodes {
        // SAFETY: sending SIGTERM to a process this session started (checked by its executable).
        unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    let mut killed = 0;
    for (path, r) in &nodes {
        while process_alive(r) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if process_alive(r) {
            // SAFETY: as above; it ignored SIGTERM for the whole grace period.
            unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGKILL) };
            killed += 1;
        }
        let _ = std::fs::remove_file(path);
        writeln!(out, "stopped {} {} (pid {}, {})", r.role, r.node_id, r.pid, r.address)?;
    }
    let _ = std::fs::remove_file(session.head_file());
    if killed > 0 {
        writeln!(out, "{killed} did not stop within {} s and were killed", grace.as_secs())?;
    }
    Ok(())
}

/// Joins the head at `address` as a driver for `rl train --address`.
pub fn connect_driver(address: &str, access: &ClusterAccess) -> Result<Runtime> {
    let session = SessionDir::resolve(access.session_dir.as_deref())?;
    let mut options = ClusterOptions::new(find_token(access.token_file.as_deref(), &session)?);
    options.is_driver = true;
    options.num_cpus = 0.0;
    options.listen = SocketAddr::new(local_ip_towards(address)?, 0);
    options.tls = tls_from_env()?;
    let rt = Runtime::join(address, options).with_context(|| format!("cannot join the cluster at {address}"))?;
    register_actor_types(&rt);
    Ok(rt)
}

/// Registers every actor type an `rl` process can build (the library's and the benchmark
/// probe), on a node, a driver, or a process actor's worker: they must agree, since one builds
/// the actors another asks for by name.
pub fn register_actor_types(rt: &Runtime) {
    rllib::register_actors(rt);
    crate::bench_cluster::register_actors(rt);
}

/// Makes a driver that loses the head (no answer for the head's node timeout, see
/// [`Runtime::head_lost`]) stop its actors and exit with status 1 and the error, whatever its
/// training loop is waiting for. (SIGINT and SIGTERM are `rllib::interrupt`'s: the run stops
/// with a checkpoint.)
pub fn exit_on_head_loss(rt: &Runtime) {
    let rt = rt.clone();
    std::thread::spawn(move || {
        rt.wait_for_stop();
        if let Some(lost) = rt.head_lost() {
            eprintln!("error: {lost}");
            rt.shutdown();
            std::process::exit(1);
        }
    });
}

/// A driver's outcome with the head's fate in it: a failed run whose head is lost (or does not
/// answer a status request) fails with that, since every later error follows from it (a worker
/// node gives up on a lost head as the driver does, so calls to its actors fail first).
pub fn with_head_fate<T>(rt: &Runtime, outcome: Result<T>) -> Result<T> {
    let Err(e) = outcome else { return outcome };
    let head = match rt.head_lost() {
        Some(lost) => lost,
        None => match rt.cluster_status() {
            Err(unreachable) => unreachable,
            Ok(_) => return Err(e),
        },
    };
    Err(anyhow::Error::new(head).context(format!("training stopped ({e:#})")))
}

/// Reads `listening on ADDR` from a node's output (what tests and scripts wait for).
pub fn read_listen_line(reader: &mut dyn BufRead) -> Result<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the node's output ended before it said where it listens");
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            return Ok(addr.to_string());
        }
    }
}

/// What a head serves besides the cluster: the dashboard with the jobs API.
struct HeadServices {
    jobs: std::sync::Arc<crate::job::manager::JobManager>,
    dashboard: crate::dashboard::Dashboard,
}

impl HeadServices {
    fn start(rt: &Runtime, args: &StartArgs, session: &SessionDir) -> Result<Self> {
        let jobs = crate::job::manager::JobManager::new(rt, session.path())?;
        let host = args.dashboard_host.clone().or_else(|| args.host.clone()).unwrap_or_else(|| "127.0.0.1".into());
        let listen = format!("{host}:{}", args.dashboard_port);
        let listener = std::net::TcpListener::bind(&listen).with_context(|| {
            format!("cannot serve the dashboard on {listen} (pick another --dashboard-port, or --no-dashboard)")
        })?;
        let token = Token::read(&session.token_file())?;
        let source = std::sync::Arc::new(HeadSource { rt: rt.clone(), jobs: jobs.clone() });
        let dashboard = crate::dashboard::Dashboard::serve_with_routes(listener, token, source, jobs.routes())?;
        let published = dashboard.local_addr().to_string();
        rt.kv_put(crate::job::DASHBOARD_KEY, published.into_bytes().into(), true)?;
        Ok(Self { jobs, dashboard })
    }
}

/// The dashboard's view of a head: its cluster table and its jobs.
struct HeadSource {
    rt: Runtime,
    jobs: std::sync::Arc<crate::job::manager::JobManager>,
}

impl crate::dashboard::DashboardSource for HeadSource {
    fn status(&self) -> Result<serde_json::Value> {
        let reply = self.rt.cluster_status()?;
        Ok(crate::status::document(&self.rt.address(), &reply, serde_json::to_value(self.jobs.list())?))
    }

    fn job_run_dir(&self, id: &str) -> Option<PathBuf> {
        self.jobs.run_dir(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("67108864"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 gib"), Ok(2 << 30));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert!(parse_bytes("64 MiBs").unwrap_err().contains("like 512MiB"));
        assert!(parse_bytes("MiB").unwrap_err().contains("start with digits"));
        assert!(parse_bytes("99999999999TiB").unwrap_err().contains("too large"));
    }
}
