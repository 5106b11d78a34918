//! The `rl` application: the command line, the progress bar, learning-curve plots, `rl bench`
//! and the reproduction runner, on the `rllib` library.
//!
//! Raw flags are parsed by clap, validated into actions, run, and mapped to an exit code.
//! Custom environment crates reuse the whole application: register the env, then call [`main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     // rl_env::register(...) your env here.
//!     rl_cli::main()
//! }
//! ```
//!
//! - [`progress`]: the callbacks `rl train` passes to `rllib::train` (bar, learning curve).
//! - [`plot`]: learning-curve PNGs with a bundled font.
//! - [`experiment`]: `rl experiment run`, configs x seeds against published numbers.
//! - [`bench`](mod@bench): `rl bench`.
//! - [`cluster`]: `rl start`, `rl stop` and the driver of `rl train --address`.
//! - [`dashboard`]: the head's web dashboard (a page over a JSON API, behind the cluster token).
//! - [`job`]: `rl job`, and the head's job manager that runs submitted drivers.
//! - [`status`]: `rl status`, as text or JSON.
#![deny(missing_docs)]

pub mod bench;
pub mod bench_cluster;
pub mod cluster;
pub mod dashboard;
pub mod experiment;
pub mod job;
pub mod plot;
pub mod progress;
pub mod status;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rllib::checkpoint::Checkpoint;
use rllib::evaluation::{EvalStats, evaluate, write_rollout};
use rllib::run_dir::PLOT_FILE;
use rllib::{TrainConfig, train};

const EXAMPLES: &str = "Examples:
  rl train --config configs/ppo.yaml
  rl train --config configs/ppo.yaml --seed 2 --set lr=3e-4 --set model.fcnet_hiddens=[128,128]
  rl train --resume runs/PPO_CartPole-v1_seed1_20261128-120000
  rl start --head --num-cpus 0 && rl start --address 127.0.0.1:6380 && rl train --config configs/ppo.yaml --address 127.0.0.1:6380
  rl job submit --address 127.0.0.1:6380 -- train --config configs/ppo.yaml
  rl stop
  rl evaluate --checkpoint runs/PPO_CartPole-v1_seed1_20261128-120000/checkpoints/final --episodes 20
  rl rollout --checkpoint runs/PPO_CartPole-v1_seed1_20261128-120000/checkpoints/final --steps 500 --out traj.jsonl
  rl plot runs/PPO_CartPole-v1_seed1_* runs/PPO_CartPole-v1_seed2_* --out cartpole.png
  rl experiment run experiments/cleanrl-classic-control.yaml
  rl bench
  rl envs
  rl check-env CartPole-v1 --set env_config.sutton_barto_reward=true";

/// Reinforcement learning on an embedded local cluster of rollout-worker and learner actors.
#[derive(Debug, Parser)]
#[command(name = "rl", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a policy from a YAML config; writes a run directory. SIGINT or SIGTERM stop it
    /// after the iteration in progress with a checkpoint (a second one exits at once); `--resume`
    /// continues it.
    Train {
        /// The config file (see configs/ for ready ones).
        #[arg(long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Continue the unfinished run in this directory from its newest complete checkpoint,
        /// with the config it recorded; the rows it wrote after that checkpoint are replaced.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "overrides", "output", "seed"])]
        resume: Option<PathBuf>,
        /// Override a config key, e.g. `--set lr=3e-4` or `--set stop.training_iteration=10`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The run directory to create (default: runs/ALGO_ENV_seedN_TIMESTAMP). Must not exist
        /// or be empty.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The seed (same as `--set seed=N`).
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar; only the final summary.
        #[arg(long)]
        quiet: bool,
        /// Train on the cluster whose head listens here (`rl start --head` prints it): rollout
        /// workers run on its worker nodes, the learner in this process.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        #[command(flatten)]
        access: cluster::ClusterAccess,
    },
    /// Submit training jobs to a cluster's head and manage them (the head runs their drivers).
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
        /// The head (default: the one of the session directory).
        #[arg(long, value_name = "HOST:PORT", global = true)]
        address: Option<String>,
        #[command(flatten)]
        access: cluster::ClusterAccess,
    },
    /// Start a cluster node: the head (`--head`) or a worker node joining one (`--address`). It
    /// runs in the background unless `--block`; `rl stop` stops it.
    Start(cluster::StartArgs),
    /// Show the cluster: every node (state, address, pid, free CPUs, last heartbeat, store use,
    /// bytes moved), every actor, placement group and job.
    Status {
        /// The head (default: the one of the session directory).
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        /// Print the JSON document the dashboard serves instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        access: cluster::ClusterAccess,
    },
    /// Stop the cluster nodes started from this machine (SIGTERM, then SIGKILL after the grace
    /// period).
    Stop {
        /// The session directory (default: $RL_SESSION_DIR, else ~/.rl/session).
        #[arg(long)]
        session_dir: Option<PathBuf>,
        /// Seconds to wait for a node to stop before killing it.
        #[arg(long, default_value_t = 10)]
        grace_s: u64,
    },
    /// Run deterministic evaluation episodes of a checkpoint.
    Evaluate {
        /// A checkpoint directory (holding metadata.json and policy.safetensors), or a run
        /// directory (its final checkpoint).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Number of episodes.
        #[arg(long, default_value_t = 20)]
        episodes: u64,
        /// Seed of the first episode's reset; episode i uses seed + i.
        #[arg(long, default_value_t = 1_000_000)]
        seed: u64,
    },
    /// Write a trajectory of a checkpoint's policy as JSON lines.
    Rollout {
        /// A checkpoint directory, or a run directory (its final checkpoint).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Number of env steps.
        #[arg(long, default_value_t = 1000)]
        steps: u64,
        /// Output file (JSON lines); `-` for standard output.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the first episode's reset (episode i uses seed + i) and of sampled actions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Sample actions from the policy instead of taking the deterministic ones.
        #[arg(long)]
        sample: bool,
    },
    /// Overlay the learning curves of run directories in one PNG; runs of the same config with
    /// different seeds are drawn as a mean ± std band.
    Plot {
        /// Run directories (each holding config.yaml and progress.csv).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// The PNG to write (default: RUN_DIR/learning_curve.png for one run, learning_curves.png
        /// for several).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Reproduction runs: train a grid of configs x seeds and compare with published results.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Measure env steps/s, policy inference, the object store, actor calls, the learner and
    /// end-to-end training on this machine; then the same across processes, on a head and two
    /// nodes it starts on 127.0.0.1 (call round trips, object pulls, training).
    Bench {
        /// Small workloads: a smoke test of every figure, not a measurement.
        #[arg(long)]
        quick: bool,
        /// Leave out the figures that start a cluster.
        #[arg(long)]
        no_cluster: bool,
    },
    /// List the registered environment ids.
    Envs,
    /// Check an env against the Env contract (like Gymnasium's check_env): spaces, reset and
    /// step, seeding determinism, observations inside their space, invalid actions refused.
    /// Exits 1 if a check fails.
    CheckEnv {
        /// The env id.
        id: String,
        /// An env argument, e.g. `--set env_config.max_episode_steps=100`.
        #[arg(long = "set", value_name = "env_config.KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Train every row of a spec with each of its seeds (finished runs are reused), then write
    /// a markdown table against the reference numbers and learning-curve plots.
    Run {
        /// The experiment spec (see experiments/*.yaml).
        spec: PathBuf,
        /// Runs trained at once (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Where run directories go (default: runs/experiments/NAME).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the table and plots go (default: the output directory, beside the runs).
        #[arg(long, conflicts_with = "update_results")]
        results: Option<PathBuf>,
        /// Write the table and plots to results/ beside the spec: the committed ones.
        #[arg(long)]
        update_results: bool,
    },
}

/// Runs the CLI on the process arguments and returns the exit code. Call it first thing in
/// `main`, before any other thread is started (it may set `RAYON_NUM_THREADS`).
pub fn main() -> ExitCode {
    configure_threads();
    configure_allocator();
    // A node re-executes this program to run a process actor: that worker never reaches clap.
    if std::env::var_os(rl_runtime::cluster::WORKER_ENV).is_some() {
        init_logging();
    }
    rl_runtime::cluster::run_actor_process_if_asked(cluster::register_actor_types);
    run(std::env::args_os())
}

/// Pins candle's CPU thread count to 1 unless `RAYON_NUM_THREADS` is set.
///
/// candle looks the count up on every tensor op and, without the variable, counts physical cores
/// by parsing `/proc/cpuinfo` each time; for the small networks trained here that parsing cost
/// more than the arithmetic, and one thread per actor is also the fastest setting measured
/// (see `experiments/`). Rollout workers and the learner are separate actors, so they still use
/// separate cores.
fn configure_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called at the start of `main` (documented on `main`), before this process
        // starts other threads, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

/// Keeps freed tensor buffers in the heap for reuse instead of handing them back to the kernel.
///
/// candle allocates a fresh buffer for every tensor op; the learners of DQN and SAC run thousands
/// of small gradient steps whose weight-sized buffers (256 KiB for a 256 x 256 layer) cross
/// glibc's default mmap threshold, so each one was an mmap, a page-fault-and-zero per page, and
/// an munmap: a third of DQN CartPole's wall-clock went to the kernel. Raising the mmap and trim
/// thresholds to 256 MiB and 512 MiB makes those buffers come from (and go back to) the heap, as
/// PyTorch's caching allocator does for its tensors; `rl bench` and
/// `experiments/speed_vs_sb3.sh dqn sac` measure the effect. Memory stays bounded by the peak
/// in use. Only glibc has these knobs; elsewhere this does nothing.
fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called at the start of `main`, before
    // other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// Runs the CLI on `args` (the first one is the program name).
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a terminal: piped or redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Train { config, resume, mut overrides, output, seed, quiet, address, access } => {
            if let Some(s) = seed {
                if let Some(other) = overrides.iter().find(|o| o.split('=').next().is_some_and(|k| k.trim() == "seed"))
                {
                    bail!("--seed {s} and --set {other} both set the seed; give it once");
                }
                overrides.push(format!("seed={s}"));
            }
            let fresh = match &config {
                Some(path) => {
                    let config = TrainConfig::load(path, &overrides)?;
                    let output = output.unwrap_or_else(|| default_run_dir(&config));
                    Some((config, output))
                }
                None => None,
            };
            let mut callbacks = progress::TrainProgress::new(quiet);
            // SIGINT/SIGTERM: checkpoint after the iteration in progress, then stop.
            rllib::interrupt::install_signal_handlers();
            let train_here =
                |rt: Option<&rl_runtime::Runtime>, callbacks: &mut progress::TrainProgress| match (&fresh, &resume, rt)
                {
                    (Some((config, output)), _, None) => train(config, output, callbacks),
                    (Some((config, output)), _, Some(rt)) => rllib::train_on(rt, config, output, callbacks),
                    (None, Some(run_dir), None) => rllib::resume(run_dir, callbacks),
                    (None, Some(run_dir), Some(rt)) => rllib::resume_on(rt, run_dir, callbacks),
                    (None, None, _) => unreachable!("clap requires --config or --resume"),
                };
            let result = match address {
                None => train_here(None, &mut callbacks),
                Some(address) => {
                    let rt = cluster::connect_driver(&address, &access)?;
                    cluster::exit_on_head_loss(&rt);
                    let result = match train_here(Some(&rt), &mut callbacks) {
                        Err(e) if !matches!(e, rllib::Error::Interrupted { .. }) => {
                            // A failed run whose head is gone fails with that.
                            let e = cluster::with_head_fate(&rt, Err::<(), _>(e.into())).unwrap_err();
                            rt.shutdown();
                            return Err(e);
                        }
                        other => other,
                    };
                    rt.shutdown();
                    result
                }
            };
            match result {
                Ok(summary) => {
                    println!("{summary}");
                    Ok(())
                }
                Err(e @ rllib::Error::Interrupted { signal, .. }) => {
                    eprintln!("{e}");
                    std::process::exit(rllib::interrupt::exit_code(signal));
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Start(args) => {
            let raw = std::env::args_os().skip(1).collect();
            cluster::start(&args, raw, &mut std::io::stdout().lock())
        }
        Command::Job { command, address, access } => {
            let code = job::run(command, address.as_deref(), &access, &mut std::io::stdout().lock())?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Status { address, json, access } => {
            status::run(address.as_deref(), &access, json, &mut std::io::stdout().lock())
        }
        Command::Stop { session_dir, grace_s } => cluster::stop(
            session_dir.as_deref(),
            std::time::Duration::from_secs(grace_s),
            &mut std::io::stdout().lock(),
        ),
        Command::Evaluate { checkpoint, episodes, seed } => {
            if episodes == 0 {
                bail!("--episodes must be at least 1");
            }
            let ckpt = Checkpoint::load(&checkpoint)?;
            let stats = evaluate(&ckpt.config, &ckpt.policy, ckpt.observation_normalization.as_ref(), episodes, seed)?;
            print_eval(&checkpoint, &stats);
            Ok(())
        }
        Command::Rollout { checkpoint, steps, out, seed, sample } => {
            let ckpt = Checkpoint::load(&checkpoint)?;
            let to_stdout = out.as_os_str() == "-";
            let mut w: Box<dyn std::io::Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
                Box::new(std::io::BufWriter::new(file))
            };
            let normalization = ckpt.observation_normalization.as_ref();
            let n = write_rollout(&ckpt.config, &ckpt.policy, normalization, steps, seed, !sample, &mut w)?;
            if !to_stdout {
                eprintln!("wrote {steps} steps ({n} finished episodes) to {}", out.display());
            }
            Ok(())
        }
        Command::Plot { runs, out } => {
            let out = out.unwrap_or_else(|| match runs.as_slice() {
                [one] => one.join(PLOT_FILE),
                _ => PathBuf::from("learning_curves.png"),
            });
            plot::plot_runs(&runs, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Experiment(ExperimentCommand::Run { spec, jobs, output, results, update_results }) => {
            let results = if update_results { Some(experiment::committed_results_dir(&spec)) } else { results };
            let program = std::env::current_exe().context("cannot find this program's path to start training runs")?;
            let options = experiment::ExperimentOptions { program, output, results, jobs };
            let report = experiment::run_experiment(&spec, &options)?;
            println!(
                "{} runs trained, {} reused; wrote {} and {}",
                report.trained,
                report.reused,
                report.table_path.display(),
                report.plot_path.display()
            );
            Ok(())
        }
        Command::Bench { quick, no_cluster } => {
            let mut out = std::io::stdout().lock();
            bench::run(quick, &mut out)?;
            if !no_cluster {
                let program = std::env::current_exe().context("cannot find this program's path to start nodes")?;
                bench_cluster::run(&program, quick, &mut out)?;
            }
            Ok(())
        }
        Command::CheckEnv { id, overrides } => {
            let kwargs = env_config_overrides(&overrides)?;
            // Panics inside the env are findings of the report; keep their default messages out
            // of the output while it runs.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let report = rl_env::check_env(&id, &kwargs);
            std::panic::set_hook(hook);
            let report = report?;
            println!("{report}");
            if !report.is_ok() {
                bail!("{id} does not pass the env checks");
            }
            Ok(())
        }
        Command::Envs => {
            for id in rl_env::ids() {
                let spec = rl_env::spec(&id)?;
                let limit = spec.default_max_episode_steps().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                println!("{id:<28} max_episode_steps {limit}");
            }
            print_bridged_envs();
            Ok(())
        }
    }
}

/// `rl envs`: the Gymnasium envs the bridge can make, when this build has it.
#[cfg(feature = "gym")]
fn print_bridged_envs() {
    match rl_env::gym::list_ids() {
        Ok(ids) => {
            for id in ids {
                println!("{id:<28} Gymnasium, through Python");
            }
        }
        Err(e) => eprintln!("warning: cannot list the Gymnasium envs: {e}"),
    }
}

/// `rl envs` without the bridge: one line saying how to get it.
#[cfg(not(feature = "gym"))]
fn print_bridged_envs() {
    eprintln!("(Gymnasium envs, `gym:ID`, need the `gym` feature: cargo build --release -p rl-cli --features gym)");
}

fn print_eval(checkpoint: &Path, s: &EvalStats) {
    println!(
        "{}: {} episodes  return mean {:.2} std {:.2} min {:.2} max {:.2}  length mean {:.1} min {} max {}",
        checkpoint.display(),
        s.returns.len(),
        s.return_mean(),
        s.return_std(),
        s.return_min(),
        s.return_max(),
        s.length_mean(),
        s.lengths.iter().min().copied().unwrap_or(0),
        s.lengths.iter().max().copied().unwrap_or(0),
    );
}

/// Env arguments from `env_config.KEY=VALUE` arguments (VALUE in YAML syntax).
fn env_config_overrides(args: &[String]) -> Result<rl_env::Kwargs> {
    let mut kwargs = rl_env::Kwargs::new();
    for arg in args {
        let (key, value) =
            arg.split_once('=').with_context(|| format!("--set {arg}: expected env_config.KEY=VALUE"))?;
        let Some(key) = key.trim().strip_prefix("env_config.") else {
            bail!("--set {arg}: rl check-env takes env arguments only, as env_config.KEY=VALUE");
        };
        let value = rllib::config::override_value(value).map_err(|m| anyhow::anyhow!("--set {arg}: {m}"))?;
        kwargs.insert(key.to_string(), value);
    }
    Ok(kwargs)
}

/// `runs/ALGO_ENV_seedN_YYYYmmdd-HHMMSS` (UTC).
fn default_run_dir(config: &TrainConfig) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    PathBuf::from("runs").join(format!("{}_{}_seed{}_{stamp}", config.algorithm.name(), config.env, config.seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_run_dirs_name_algorithm_env_seed_and_time() {
        let config =
            TrainConfig::parse("env: CartPole-v1\nseed: 7\nstop: {training_iteration: 1}\n", "t.yaml", &[]).unwrap();
        let dir = default_run_dir(&config).display().to_string();
        let (prefix, stamp) = dir.split_at("runs/PPO_CartPole-v1_seed7_".len());
        assert_eq!(prefix, "runs/PPO_CartPole-v1_seed7_");
        assert!(stamp.len() == 15 && stamp.as_bytes()[8] == b'-', "{stamp}");
        assert!(stamp.chars().filter(|c| *c != '-').all(|c| c.is_ascii_digit()), "{stamp}");
    }

    #[test]
    fn help_lists_examples() {
        let err = Cli::try_parse_from(["rl", "--help"]).unwrap_err();
        assert!(err.to_string().contains("rl train --config configs/ppo.yaml"));
    }
}
