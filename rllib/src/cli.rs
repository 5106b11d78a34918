//! The `rl` command line: raw flags parsed by clap, validated into actions, run, and mapped to an exit code.
//!
//! Custom environment crates reuse it whole: register the env, then call [`main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     // rl_env::register(...) your env here.
//!     rllib::cli::main()
//! }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::evaluation::{EvalStats, evaluate, write_rollout};
use crate::ppo::{TrainOptions, train};

const EXAMPLES: &str = "Examples:
  rl train --config configs/ppo.yaml
  rl train --config configs/ppo.yaml --seed 2 --set lr=3e-4 --set model.fcnet_hiddens=[128,128]
  rl evaluate --checkpoint runs/PPO_CartPole-v1_seed1_20261128-120000/checkpoints/final --episodes 20
  rl rollout --checkpoint runs/PPO_CartPole-v1_seed1_20261128-120000/checkpoints/final --steps 500 --out traj.jsonl
  rl plot runs/PPO_CartPole-v1_seed1_* runs/PPO_CartPole-v1_seed2_* --out cartpole.png
  rl experiment run experiments/cleanrl-classic-control.yaml
  rl bench
  rl envs";

/// Reinforcement learning on an embedded local cluster of rollout-worker and learner actors.
#[derive(Debug, Parser)]
#[command(name = "rl", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a policy from a YAML config; writes a run directory.
    Train {
        /// The config file (see configs/ for ready ones).
        #[arg(long)]
        config: PathBuf,
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
    },
    /// Run deterministic evaluation episodes of a checkpoint.
    Evaluate {
        /// A checkpoint directory (holding metadata.json and policy.safetensors).
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
        /// A checkpoint directory.
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
    /// Measure env steps/s, policy inference, the object store, the learner and end-to-end
    /// training on this machine.
    Bench,
    /// List the registered environment ids.
    Envs,
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
        /// Where the table and plots go (default: results/ beside the spec).
        #[arg(long)]
        results: Option<PathBuf>,
    },
}

/// Runs the CLI on the process arguments and returns the exit code. Call it first thing in
/// `main`, before any other thread is started (it may set `RAYON_NUM_THREADS`).
pub fn main() -> ExitCode {
    configure_threads();
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
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Train { config, mut overrides, output, seed, quiet } => {
            if let Some(s) = seed {
                overrides.push(format!("seed={s}"));
            }
            let config = TrainConfig::load(&config, &overrides)?;
            let output = output.unwrap_or_else(|| default_run_dir(&config));
            check_output_dir(&output)?;
            let summary = train(&config, &TrainOptions { output, quiet })?;
            println!("{summary}");
            Ok(())
        }
        Command::Evaluate { checkpoint, episodes, seed } => {
            if episodes == 0 {
                bail!("--episodes must be at least 1");
            }
            let ckpt = Checkpoint::load(&checkpoint)?;
            let stats = evaluate(&ckpt.config, &ckpt.policy, episodes, seed)?;
            print_eval(&checkpoint, &stats);
            Ok(())
        }
        Command::Rollout { checkpoint, steps, out, seed, sample } => {
            let ckpt = Checkpoint::load(&checkpoint)?;
            if out.as_os_str() == "-" {
                write_rollout(&ckpt.config, &ckpt.policy, steps, seed, !sample, &mut std::io::stdout().lock())?;
            } else {
                let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
                let mut w = std::io::BufWriter::new(file);
                let n = write_rollout(&ckpt.config, &ckpt.policy, steps, seed, !sample, &mut w)?;
                eprintln!("wrote {steps} steps ({n} finished episodes) to {}", out.display());
            }
            Ok(())
        }
        Command::Plot { runs, out } => {
            let out = out.unwrap_or_else(|| match runs.as_slice() {
                [one] => one.join(crate::plot::RUN_PLOT),
                _ => PathBuf::from("learning_curves.png"),
            });
            crate::plot::plot_runs(&runs, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Experiment(ExperimentCommand::Run { spec, jobs, output, results }) => {
            let program = std::env::current_exe().context("cannot find this program's path to start training runs")?;
            let options = crate::experiment::ExperimentOptions { program, output, results, jobs };
            let report = crate::experiment::run_experiment(&spec, &options)?;
            println!(
                "{} runs trained, {} reused; wrote {} and {}",
                report.trained,
                report.reused,
                report.table_path.display(),
                report.plot_path.display()
            );
            Ok(())
        }
        Command::Bench => crate::bench::run(false, &mut std::io::stdout().lock()),
        Command::Envs => {
            for id in rl_env::ids() {
                let spec = rl_env::spec(&id)?;
                let limit = spec.default_max_episode_steps().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                println!("{id:<28} max_episode_steps {limit}");
            }
            Ok(())
        }
    }
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

/// `runs/ALGO_ENV_seedN_YYYYmmdd-HHMMSS` (UTC).
fn default_run_dir(config: &TrainConfig) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let stamp = format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    PathBuf::from("runs").join(format!("PPO_{}_seed{}_{stamp}", config.env, config.seed))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn check_output_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = dir.read_dir().with_context(|| format!("cannot read {}", dir.display()))?.next().is_none();
        if !empty {
            bail!("output directory {} already exists and is not empty; choose another --output", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn help_lists_examples() {
        let err = Cli::try_parse_from(["rl", "--help"]).unwrap_err();
        assert!(err.to_string().contains("rl train --config configs/ppo.yaml"));
    }
}
