//! What the process-level tests share: `rl` processes started with `--port 0`, their stdout read
//! line by line, killed by pid on drop; a head with worker nodes in its own session directory,
//! removed when the test passes.
#![allow(dead_code)] // Each test file uses its own part.

pub mod browser;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const RL: &str = env!("CARGO_BIN_EXE_rl");
pub const PPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/ppo.yaml");

/// A scratch directory of one test, removed on drop unless the test is failing (its files, the
/// processes' stderr among them, are what one reads then).
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh scratch directory named after the test and this process.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("rl-cluster-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A child process killed (SIGKILL) and reaped on drop unless it already exited.
pub struct Proc {
    /// The process.
    pub child: Child,
    name: String,
    /// Lines of its stdout, read by a thread.
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    /// Starts `program args`, stdout read line by line, stderr into `dir/name.err`.
    pub fn spawn(program: &Path, args: &[&str], dir: &Path, name: &str) -> Self {
        Self::spawn_env(program, args, &[], dir, name)
    }

    /// [`Proc::spawn`] with more environment variables.
    pub fn spawn_env(program: &Path, args: &[&str], env: &[(&str, &str)], dir: &Path, name: &str) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args).env("RL_LOG", "warn").envs(env.iter().copied());
        Self::spawn_command(cmd, dir, name)
    }

    /// Starts `cmd` (its program, arguments and environment already set), stdout read line by
    /// line, stderr into `dir/name.err`.
    pub fn spawn_command(mut cmd: Command, dir: &Path, name: &str) -> Self {
        let stderr = dir.join(format!("{name}.err"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, name: name.into(), lines, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for a stdout line starting with `prefix`; returns the rest.
    pub fn line(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(_) => panic!("{} printed no {prefix:?} line within {limit:?}; stderr: {}", self.name, self.err()),
            }
        }
    }

    pub fn err(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most `limit`) for the process to exit.
    pub fn exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {limit:?}; stderr: {}", self.name, self.err());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A head and `n` worker nodes of one session.
pub struct Cluster {
    /// Its scratch directory.
    pub dir: PathBuf,
    /// Its session directory.
    pub session: String,
    /// The head's address.
    pub address: String,
    /// The head's dashboard, `http://HOST:PORT`.
    pub dashboard: String,
    /// The head.
    pub head: Proc,
    /// The worker nodes, in start order.
    pub nodes: Vec<Proc>,
    /// The build its processes declare, if any.
    build: Option<String>,
    /// Last, so it is removed after the processes are killed.
    _scratch: Scratch,
}

impl Cluster {
    pub fn start(name: &str, n: usize, node_timeout_ms: u64) -> Self {
        Self::start_with(name, n, node_timeout_ms, None)
    }

    /// A cluster whose processes declare one build (`RL_BUILD_ID`), so the test's own process
    /// can join it as a driver ([`Cluster::driver`]).
    pub fn for_test_driver(name: &str, n: usize, node_timeout_ms: u64) -> Self {
        Self::start_with(name, n, node_timeout_ms, Some(format!("test-{}-{name}", std::process::id())))
    }

    fn start_with(name: &str, n: usize, node_timeout_ms: u64, build: Option<String>) -> Self {
        let scratch = scratch(name);
        let dir = scratch.0.clone();
        let session = dir.join("session").display().to_string();
        let timeout = node_timeout_ms.to_string();
        let env: Vec<(&str, &str)> = build.iter().map(|b| (rl_runtime::cluster::BUILD_ENV, b.as_str())).collect();
        let head = Proc::spawn_env(
            Path::new(RL),
            &[
                "start",
                "--head",
                "--block",
                "--port",
                "0",
                "--num-cpus",
                "0",
                "--session-dir",
                &session,
                "--heartbeat-interval-ms",
                "200",
                "--node-timeout-ms",
                &timeout,
                "--dashboard-port",
                "0",
            ],
            &env,
            &dir,
            "head",
        );
        let address = head.line("listening on ", Duration::from_secs(60));
        let dashboard = head.line("dashboard on ", Duration::from_secs(60));
        let dashboard = dashboard.split(' ').next().unwrap().to_string();
        head.line("ready", Duration::from_secs(60));
        let mut c = Self { dir, session, address, dashboard, head, nodes: Vec::new(), build, _scratch: scratch };
        for _ in 0..n {
            c.add_node(&[]);
        }
        c
    }

    /// Starts one more worker node with 2 CPUs (and `extra` flags) and waits until it is ready.
    pub fn add_node(&mut self, extra: &[&str]) -> &Proc {
        let mut args =
            vec!["start", "--address", &self.address, "--block", "--num-cpus", "2", "--session-dir", &self.session];
        args.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = self.build.iter().map(|b| (rl_runtime::cluster::BUILD_ENV, b.as_str())).collect();
        let node = Proc::spawn_env(Path::new(RL), &args, &env, &self.dir, &format!("node{}", self.nodes.len()));
        node.line("ready", Duration::from_secs(60));
        self.nodes.push(node);
        self.nodes.last().unwrap()
    }

    /// A driver runtime in this (the test's) process, joined to the cluster like `rl train --address`.
    /// Only for a cluster made by [`Cluster::for_test_driver`].
    pub fn driver(&self) -> rl_runtime::Runtime {
        let build = self.build.clone().expect("a cluster started with Cluster::for_test_driver");
        let token = rl_runtime::cluster::Token::read(&Path::new(&self.session).join("token")).unwrap();
        let mut options = rl_runtime::cluster::ClusterOptions::new(token);
        options.is_driver = true;
        options.num_cpus = 0.0;
        options.build = rl_runtime::cluster::declared_build(&build);
        // This test binary cannot serve as a process actor's worker; `rl` can.
        options.worker_program = Some(PathBuf::from(RL));
        let rt = rl_runtime::Runtime::join(&self.address, options).unwrap();
        rl_cli::cluster::register_actor_types(&rt);
        rt
    }

    /// Starts `rl train --config CONFIG --address HEAD --output RUN --quiet EXTRA...` against this
    /// cluster (stderr in `driver.err`).
    pub fn train(&self, config: &Path, run: &Path, extra: &[&str]) -> Proc {
        let (config, run) = (config.display().to_string(), run.display().to_string());
        let mut args = vec![
            "train",
            "--config",
            &config,
            "--address",
            &self.address,
            "--session-dir",
            &self.session,
            "--output",
            &run,
            "--quiet",
        ];
        args.extend_from_slice(extra);
        Proc::spawn(Path::new(RL), &args, &self.dir, "driver")
    }

    /// Runs `rl ARGS` (with `--session-dir SESSION`) to its end; returns its stdout (asserting success).
    pub fn rl(&self, args: &[&str]) -> String {
        // Right after the subcommand, so it never lands after a `--`.
        let (first, rest) = args.split_first().expect("a subcommand");
        let out = Command::new(RL).arg(first).args(["--session-dir", &self.session]).args(rest).output().unwrap();
        assert!(out.status.success(), "rl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `rl status --json` of this cluster.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.rl(&["status", "--json"])).unwrap()
    }

    /// `rl status` of this cluster.
    pub fn status(&self) -> String {
        let out = Command::new(RL).args(["status", "--session-dir", &self.session]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// progress.csv without its timing columns, as rows of cells.
pub fn progress_without_timing(run: &Path) -> Vec<Vec<String>> {
    const TIMING: [&str; 5] =
        ["time_this_iter_s", "time_total_s", "timers/sample_s", "timers/learn_s", "num_env_steps_sampled_per_s"];
    let text = std::fs::read_to_string(run.join("progress.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let keep: Vec<usize> = (0..rows[0].len()).filter(|i| !TIMING.contains(&rows[0][*i])).collect();
    rows.iter().map(|r| keep.iter().map(|i| r.get(*i).unwrap_or(&"").to_string()).collect()).collect()
}
