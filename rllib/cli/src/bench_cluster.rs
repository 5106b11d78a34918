//! `rl bench`'s cluster figures, each beside a baseline measured in the same run: an actor call
//! across processes against one in-process, the spawn time and call round trip of a process
//! actor against a thread actor on the same node, an object pull between nodes against a memcpy,
//! and a PPO run on a head and two nodes against the same run in one process.
//!
//! The head and the nodes are this program started with `rl start --block` in a private session
//! directory on 127.0.0.1; this process joins them as the driver. They are stopped (SIGTERM, then
//! SIGKILL) when the benchmark ends, also on failure.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use rl_runtime::cluster::{ClusterOptions, Token};
use rl_runtime::{
    Actor, ActorContext, ActorOptions, BoxError, Isolation, ObjectRef, Placement, Runtime, RuntimeOptions,
};
use serde::{Deserialize, Serialize};

use rllib::{TrainConfig, train, train_on};

/// What the probe actor does.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProbeMsg {
    /// Answer with the same number.
    Echo(u64),
    /// Put an object of this many bytes and answer its ref.
    Make(u64),
    /// Put an object of [`seeded_bytes`]`(bytes, seed)` and answer its ref.
    MakeSeeded {
        /// Its length.
        bytes: u64,
        /// The seed of its contents.
        seed: u64,
    },
    /// Answer the id of the process the probe runs in.
    Pid,
    /// Answer the value of this environment variable in the probe's process, if set.
    Env(String),
    /// Abort the process the probe runs in (`std::process::abort`), as a crash would: for tests
    /// of process actors, whose crash must take only their worker process along.
    Abort,
}

/// The probe's answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProbeReply {
    /// The number sent.
    Echo(u64),
    /// The object made.
    Made(ObjectRef),
    /// The probe's process id.
    Pid(u32),
    /// The environment variable's value.
    Env(Option<String>),
}

/// `n` pseudo-random bytes from `seed` (SplitMix64), the same on every machine: objects whose
/// contents a test can check after they crossed nodes or went to disk and back.
pub fn seeded_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The actor the cluster benchmarks call on a node.
pub struct Probe;

impl Actor for Probe {
    const TYPE_NAME: &'static str = "BenchProbe";
    type Init = ();
    type Msg = ProbeMsg;
    type Reply = ProbeReply;

    fn new(_init: (), _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        Ok(Probe)
    }

    fn handle(&mut self, msg: ProbeMsg, ctx: &ActorContext) -> std::result::Result<ProbeReply, BoxError> {
        Ok(match msg {
            ProbeMsg::Echo(x) => ProbeReply::Echo(x),
            ProbeMsg::Make(n) => ProbeReply::Made(ctx.runtime().put(Bytes::from(vec![7u8; n as usize]))?),
            ProbeMsg::MakeSeeded { bytes, seed } => {
                ProbeReply::Made(ctx.runtime().put(Bytes::from(seeded_bytes(bytes as usize, seed)))?)
            }
            ProbeMsg::Pid => ProbeReply::Pid(std::process::id()),
            ProbeMsg::Env(name) => ProbeReply::Env(std::env::var(name).ok()),
            ProbeMsg::Abort => {
                // No core file: the abort is the test, not a bug to debug.
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // SAFETY: setrlimit reads the struct passed by reference and nothing else.
                unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
                std::process::abort()
            }
        })
    }
}

/// Makes the probe buildable on `rt` (every `rl start` node does this).
pub fn register_actors(rt: &Runtime) {
    rt.register_actor::<Probe>();
}

/// A node process, stopped with SIGTERM (then SIGKILL) and reaped on drop.
struct NodeProcess {
    child: Child,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // SAFETY: signalling the child this benchmark started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    /// Starts `program args` and waits for its `listening on` line; returns it with the address.
    fn start(program: &Path, args: &[&str]) -> Result<(Self, String)> {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let node = Self { child };
        let mut lines = BufReader::new(stdout).lines();
        let mut address = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(a) = line.strip_prefix("listening on ") {
                address = Some(a.to_string());
            }
            if line == "ready" {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let address = address.context("the node exited before it was ready")?;
        Ok((node, address))
    }
}

/// Runs the cluster benchmarks with `program` (this `rl` binary) as head and nodes.
pub fn run(program: &Path, quick: bool, out: &mut dyn std::io::Write) -> Result<()> {
    let session = std::env::temp_dir().join(format!("rl-bench-session-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&session);
    let result = run_in(program, &session, quick, out);
    let _ = std::fs::remove_dir_all(&session);
    result
}

fn run_in(program: &Path, session: &Path, quick: bool, out: &mut dyn std::io::Write) -> Result<()> {
    let s = session.display().to_string();
    let head_args =
        ["start", "--head", "--block", "--port", "0", "--num-cpus", "0", "--no-dashboard", "--session-dir", &s];
    let (_head, address) = NodeProcess::start(program, &head_args)?;
    let node_args = ["start", "--address", &address, "--block", "--num-cpus", "2", "--session-dir", &s];
    let _nodes = [NodeProcess::start(program, &node_args)?, NodeProcess::start(program, &node_args)?];
    let mut options = ClusterOptions::new(Token::read(&session.join("token"))?);
    options.is_driver = true;
    options.num_cpus = 0.0;
    let driver = Runtime::join(&address, options)?;
    crate::cluster::register_actor_types(&driver);
    let result = measure(&driver, quick, out);
    driver.shutdown();
    result
}

fn measure(driver: &Runtime, quick: bool, out: &mut dyn std::io::Write) -> Result<()> {
    calls(driver, if quick { 200 } else { 20_000 }, out)?;
    isolation(driver, if quick { 3 } else { 20 }, if quick { 200 } else { 20_000 }, out)?;
    pulls(driver, quick, out)?;
    training(driver, if quick { 2_048 } else { 100_000 }, out)
}

/// Median and 99th percentile round trip of `calls` echo calls to `probe`, in microseconds.
fn round_trips(calls: usize, mut call: impl FnMut(u64)) -> (f64, f64) {
    for i in 0..(calls / 10).max(10) as u64 {
        call(i);
    }
    let mut rtt: Vec<Duration> = (0..calls as u64)
        .map(|i| {
            let t = Instant::now();
            call(i);
            t.elapsed()
        })
        .collect();
    rtt.sort();
    let at = |q: f64| rtt[((rtt.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn calls(driver: &Runtime, calls: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let remote = driver.spawn::<Probe>((), ActorOptions::default())?;
    if remote.location().node_id == driver.node_id() {
        bail!("the probe was placed in the driver, not on a node");
    }
    let (median, p99) = round_trips(calls, |i| {
        black_box(remote.call(ProbeMsg::Echo(i)).wait().expect("the probe answers"));
    });
    let local_rt = Runtime::local(RuntimeOptions { num_cpus: 1.0, ..RuntimeOptions::default() })?;
    register_actors(&local_rt);
    let local = local_rt.spawn::<Probe>((), ActorOptions::default())?;
    let (local_median, _) = round_trips(calls, |i| {
        black_box(local.call(ProbeMsg::Echo(i)).wait().expect("the probe answers"));
    });
    local_rt.shutdown();
    writeln!(
        out,
        "cluster call   across processes on loopback: round trip median {median:.1} us, p99 {p99:.1} us over {calls} \
         calls (in process, same run: median {local_median:.1} us; {:.0}x)",
        median / local_median
    )?;
    remote.stop();
    Ok(())
}

/// Spawn time and call round trip of a process actor against a thread actor, placed on a node
/// (so calls from the driver cross a process boundary either way) and in the driver's own node
/// (where a call to the thread actor stays in the process and one to the process actor does
/// not). The process actor's spawn also starts, joins and connects its worker process.
fn isolation(driver: &Runtime, spawns: usize, calls: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let first = driver.spawn::<Probe>((), ActorOptions { num_cpus: 0.0, ..ActorOptions::default() })?;
    let node = first.location().node_id;
    first.stop();
    for (placement, where_) in [(Placement::Node(node), "on a node"), (Placement::Local, "in the driver's node")] {
        // No CPUs (the driver offers none), so a stopped actor's resources need not be back
        // before the next spawn.
        let options = |isolation| ActorOptions { num_cpus: 0.0, placement, isolation, ..ActorOptions::default() };
        let spawn_ms = |isolation: Isolation| -> Result<f64> {
            let mut times = (0..spawns)
                .map(|_| {
                    let t = Instant::now();
                    let probe = driver.spawn::<Probe>((), options(isolation))?;
                    let took = t.elapsed();
                    probe.stop();
                    Ok(took)
                })
                .collect::<Result<Vec<Duration>>>()?;
            times.sort();
            Ok(times[times.len() / 2].as_secs_f64() * 1e3)
        };
        let (thread_ms, process_ms) = (spawn_ms(Isolation::Thread)?, spawn_ms(Isolation::Process)?);
        writeln!(
            out,
            "cluster spawn  process actor {where_}, from the driver: median {process_ms:.1} ms over {spawns} spawns \
             (thread actor, same run: {thread_ms:.2} ms; {:.0}x)",
            process_ms / thread_ms
        )?;
        let thread = driver.spawn::<Probe>((), options(Isolation::Thread))?;
        let process = driver.spawn::<Probe>((), options(Isolation::Process))?;
        let echo = |probe: &rl_runtime::ActorHandle<Probe>| {
            round_trips(calls, |i| {
                black_box(probe.call(ProbeMsg::Echo(i)).wait().expect("the probe answers"));
            })
        };
        let (thread_median, _) = echo(&thread);
        let (median, p99) = echo(&process);
        writeln!(
            out,
            "cluster call   process actor {where_}, from the driver: round trip median {median:.1} us, p99 {p99:.1} us \
             over {calls} calls (thread actor, same run: median {thread_median:.1} us; {:.1}x)",
            median / thread_median
        )?;
        thread.stop();
        process.stop();
    }
    Ok(())
}

fn pulls(driver: &Runtime, quick: bool, out: &mut dyn std::io::Write) -> Result<()> {
    let remote = driver.spawn::<Probe>((), ActorOptions::default())?;
    for (size, reps) in [(1usize << 20, if quick { 3 } else { 30 }), (64 << 20, if quick { 1 } else { 5 })] {
        // Each repetition pulls a new object (a pulled one is cached on the node).
        let mut best = Duration::MAX;
        for _ in 0..reps {
            let ProbeReply::Made(r) = remote.call(ProbeMsg::Make(size as u64)).wait()? else {
                bail!("Make answers Made")
            };
            let t = Instant::now();
            let bytes = driver.get_blocking(&r, None)?;
            best = best.min(t.elapsed());
            if bytes.len() != size {
                bail!("pulled {} of {size} bytes", bytes.len());
            }
            driver.free(&[r]);
        }
        // Baselines: a memcpy into a buffer already in memory, and into a new one (which, like a
        // pull, first faults its pages in).
        let src = vec![1u8; size];
        let mut dst = vec![0u8; size];
        let (mut warm, mut fresh) = (Duration::MAX, Duration::MAX);
        for _ in 0..reps.max(3) {
            let t = Instant::now();
            dst.copy_from_slice(black_box(&src));
            warm = warm.min(t.elapsed());
            let t = Instant::now();
            black_box(src.clone());
            fresh = fresh.min(t.elapsed());
        }
        let gbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
        writeln!(
            out,
            "cluster pull   {:>2} MiB object between two processes on loopback: {:.2} GB/s, best of {reps} \
             (memcpy of the same bytes: {:.2} GB/s into a warm buffer, {:.2} GB/s into a new one)",
            size >> 20,
            gbps(best),
            gbps(warm),
            gbps(fresh)
        )?;
    }
    remote.stop();
    Ok(())
}

fn training(driver: &Runtime, steps: u64, out: &mut dyn std::io::Write) -> Result<()> {
    let ppo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/ppo.yaml");
    let overrides = [format!("stop.num_env_steps_sampled_lifetime={steps}"), "evaluation.duration=1".to_string()];
    let config = match ppo.exists() {
        true => TrainConfig::load(&ppo, &overrides)?,
        false => TrainConfig::parse("env: CartPole-v1\nnum_env_runners: 2\n", "rl bench", &overrides)?,
    };
    let dir = |name: &str| -> PathBuf { std::env::temp_dir().join(format!("rl-bench-{name}-{}", std::process::id())) };
    let (local_dir, cluster_dir) = (dir("local"), dir("cluster"));
    let _ = std::fs::remove_dir_all(&local_dir);
    let _ = std::fs::remove_dir_all(&cluster_dir);
    let t = Instant::now();
    train(&config, &local_dir, &mut ())?;
    let local_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    train_on(driver, &config, &cluster_dir, &mut ())?;
    let cluster_s = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&local_dir)?;
    std::fs::remove_dir_all(&cluster_dir)?;
    writeln!(
        out,
        "cluster train  PPO CartPole-v1, {steps} steps, 2 env runners on 2 nodes: {cluster_s:.2} s \
         (in one process, same run: {local_s:.2} s; {:.2}x)",
        cluster_s / local_s
    )?;
    Ok(())
}
