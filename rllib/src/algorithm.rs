//! The training loop every algorithm shares, around the one thing each does differently:
//! [`Algorithm::training_step`].
//!
//! ```text
//! start the embedded runtime; the algorithm spawns its actors      (bad input fails here)
//! create the run directory        (or, resuming: restore the newest checkpoint, drop later rows)
//! for iteration = 1, 2, ...       (or k + 1, k + 2, ... after the checkpoint of iteration k)
//!     algorithm.training_step()        sample and learn; fills the algorithm's metric columns
//!     episode and counter metrics, evaluation every evaluation.interval iterations
//!     progress.csv, result.jsonl, TensorBoard, callbacks
//!     checkpoint every checkpoint.frequency iterations
//!     SIGINT/SIGTERM: checkpoint and stop (crate::interrupt)
//!     stop when the first stop condition is met
//! final checkpoint, final evaluation, callbacks, summary.txt, summary.json (last)
//! ```
//!
//! A resume is exact: every random stream, the optimizer, the schedules (a function of the
//! iteration), the episode window and the envs mid-episode (when they can save their state)
//! continue from the checkpoint, so the rows after it equal those of an uninterrupted run in
//! every column but the timing ones.
//!
//! An algorithm (PPO in [`crate::ppo`]; DQN and SAC to come) implements [`Algorithm`]: its
//! training step, its metric columns, its policy weights for evaluation, and its state for
//! checkpoints (where a replay buffer or normalizer statistics go as extra files). Everything
//! else lives here once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::callbacks::Callbacks;
use crate::checkpoint::{
    AlgorithmState, CHECKPOINT_FORMAT_VERSION, CheckpointMetadata, ResumePoint, TrainingState, write_checkpoint,
};
use crate::config::{StopConfig, TrainConfig};
use crate::error::Result;
use crate::evaluation::{EvalStats, evaluate};
use crate::metrics::{EpisodeWindow, IterationResult, columns};
use crate::normalization::ObservationNormalization;
use crate::run_dir::{ResultWriter, RunDir, TrainSummary};
use crate::tensorboard::EventWriter;

/// An RL algorithm as the shared training loop drives it.
pub trait Algorithm {
    /// The algorithm's own `progress.csv` columns (its learner metrics), in order; they sit
    /// between [`crate::metrics::COMMON_HEAD`] and [`crate::metrics::COMMON_TAIL`].
    fn metric_columns(&self) -> &'static [&'static str];

    /// One training iteration (1-based `iteration`): sample, learn, and set the algorithm's
    /// metric columns in `result`.
    fn training_step(&mut self, iteration: u64, result: &mut IterationResult) -> Result<StepReport>;

    /// The current policy weights (safetensors), to evaluate.
    fn policy_weights(&mut self) -> Result<Vec<u8>>;

    /// Everything needed to continue exactly, for a checkpoint.
    fn state(&mut self) -> Result<AlgorithmState>;

    /// Continues from a checkpoint's state; returns false when the envs could not be restored
    /// exactly (envs without `Env::save_state` are re-seeded instead).
    fn restore(&mut self, state: &AlgorithmState) -> Result<bool>;

    /// The frozen observation normalization its policy acts with, when the config normalizes
    /// observations (evaluation applies it; checkpoints keep it).
    fn observation_normalization(&self) -> Option<ObservationNormalization> {
        None
    }

    /// Where each of its actors runs, by actor name (written to `cluster.json` on a cluster).
    fn actor_locations(&self) -> Vec<(String, rl_runtime::ActorLocation)> {
        Vec::new()
    }
}

/// What one [`Algorithm::training_step`] sampled and how long it took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    /// Env steps sampled.
    pub num_env_steps: u64,
    /// Returns of the episodes that finished, in worker order.
    pub episode_returns: Vec<f64>,
    /// Their lengths.
    pub episode_lengths: Vec<i64>,
    /// Seconds spent sampling.
    pub sample_s: f64,
    /// Seconds spent learning.
    pub learn_s: f64,
}

/// Runs the shared loop (see the module docs) for `algo`, whose actors are already up, writing
/// the run directory at `output`. [`crate::train`] starts the runtime and the algorithm first.
pub fn run(
    algo: &mut dyn Algorithm,
    config: &TrainConfig,
    output: &Path,
    callbacks: &mut dyn Callbacks,
) -> Result<TrainSummary> {
    let run = RunDir::create(output, config)?;
    let results = ResultWriter::create(&run, columns(algo.metric_columns()))?;
    drive(algo, config, &run, results, TrainingState::default(), callbacks)
}

/// Continues the run in `run` from checkpoint `point` (see [`ResumePoint::latest`]): restores
/// the algorithm, drops the rows and TensorBoard points written after the checkpoint, and runs
/// the loop from the next iteration.
pub fn resume(
    algo: &mut dyn Algorithm,
    config: &TrainConfig,
    run: &RunDir,
    point: ResumePoint,
    callbacks: &mut dyn Callbacks,
) -> Result<TrainSummary> {
    let exact = algo.restore(&point.state)?;
    if !exact {
        tracing::warn!(env = %config.env, "the env cannot save its state (Env::save_state): its envs were re-seeded, \
            so this resume is not exact (episodes in flight start over)");
    }
    let k = point.training.training_iteration;
    let results = ResultWriter::resume(run, columns(algo.metric_columns()), k)?;
    crate::tensorboard::retain_events(run.path(), point.training.num_env_steps_sampled_lifetime as i64)
        .map_err(crate::Error::io("rewrite the event files in", run.path()))?;
    tracing::info!(checkpoint = %point.dir.display(), iteration = k, exact, "resuming");
    drive(algo, config, run, results, point.training, callbacks)
}

/// The loop itself, from the state after `state.training_iteration` iterations.
fn drive(
    algo: &mut dyn Algorithm,
    config: &TrainConfig,
    run: &RunDir,
    mut results: ResultWriter,
    state: TrainingState,
    callbacks: &mut dyn Callbacks,
) -> Result<TrainSummary> {
    let mut events =
        EventWriter::create(run.path()).map_err(crate::Error::io("create an event file in", run.path()))?;
    callbacks.on_train_start(run, config);
    tracing::info!(run_dir = %run.path().display(), algorithm = config.algorithm.name(), env = %config.env,
        seed = config.seed, "training started");

    let start = Instant::now();
    let elapsed = |start: &Instant| state.time_total_s + start.elapsed().as_secs_f64();
    let mut window = EpisodeWindow::with_episodes(100, &state.episode_window);
    let (mut env_steps, mut episodes, mut iteration) =
        (state.num_env_steps_sampled_lifetime, state.num_episodes_lifetime, state.training_iteration);
    let snapshot = |training_iteration,
                    num_env_steps_sampled_lifetime,
                    num_episodes_lifetime,
                    window: &EpisodeWindow,
                    time_total_s| TrainingState {
        training_iteration,
        num_env_steps_sampled_lifetime,
        num_episodes_lifetime,
        time_total_s,
        episode_window: window.episodes(),
    };
    let stop_reason = loop {
        if iteration > 0
            && let Some(reason) = stop_reason(&config.stop, iteration, env_steps, window.mean_return(), elapsed(&start))
        {
            break reason;
        }
        iteration += 1;
        let iter_start = Instant::now();
        let mut r = IterationResult::default();
        let step = algo.training_step(iteration, &mut r)?;

        env_steps += step.num_env_steps;
        episodes += step.episode_returns.len() as u64;
        window.extend(&step.episode_returns, &step.episode_lengths);
        r.set("training_iteration", iteration);
        r.set("num_env_steps_sampled_lifetime", env_steps);
        r.set("num_episodes_lifetime", episodes);
        r.set("env_runners/num_episodes", step.episode_returns.len());
        set_episode_metrics(&mut r, &window);

        // Evaluation every `evaluation.interval` iterations, on the weights just trained.
        if config.evaluation.interval > 0 && iteration % config.evaluation.interval == 0 {
            set_evaluation_metrics(&mut r, iteration, &evaluate_current(algo, config)?);
        }
        let total_s = elapsed(&start);
        r.set("time_this_iter_s", iter_start.elapsed().as_secs_f64());
        r.set("time_total_s", total_s);
        r.set("timers/sample_s", step.sample_s);
        r.set("timers/learn_s", step.learn_s);
        r.set("num_env_steps_sampled_per_s", env_steps as f64 / total_s);
        results.write(&r)?;
        let scalars: Vec<(&str, f32)> = r.numbers(results.columns()).into_iter().map(|(k, v)| (k, v as f32)).collect();
        events.add_scalars(&scalars, env_steps as i64).map_err(crate::Error::io("write", events.path()))?;
        events.flush().map_err(crate::Error::io("write", events.path()))?;
        callbacks.on_iteration(&r);

        checkpoint_if_due(algo, config, run, &snapshot(iteration, env_steps, episodes, &window, total_s))?;
    };
    let train_seconds = elapsed(&start);
    events.flush().map_err(crate::Error::io("write", events.path()))?;

    let training = snapshot(iteration, env_steps, episodes, &window, train_seconds);
    save_checkpoint(algo, config, run, "final", &training)?;
    let summary = TrainSummary {
        run_dir: run.path().to_path_buf(),
        iterations: iteration,
        env_steps,
        train_seconds,
        train_episode_return_mean: window.mean_return(),
        final_evaluation: evaluate_current(algo, config)?,
        stop_reason,
    };
    callbacks.on_train_end(run, &summary);
    run.write_summary(&summary)?;
    Ok(summary)
}

/// The `evaluation/` metrics of an evaluation after `iteration`.
fn set_evaluation_metrics(r: &mut IterationResult, iteration: u64, eval: &EvalStats) {
    tracing::info!(iteration, return_mean = eval.return_mean(), "evaluation");
    r.set("evaluation/episode_return_mean", eval.return_mean());
    r.set("evaluation/episode_return_std", eval.return_std());
    r.set("evaluation/episode_len_mean", eval.length_mean());
}

/// The `env_runners/` metrics of the recent-episode window (left empty before the first episode).
fn set_episode_metrics(r: &mut IterationResult, window: &EpisodeWindow) {
    if let Some(m) = window.mean_return() {
        r.set("env_runners/episode_return_mean", m);
    }
    if let Some((lo, hi)) = window.return_range() {
        r.set("env_runners/episode_return_min", lo);
        r.set("env_runners/episode_return_max", hi);
    }
    if let Some(l) = window.mean_length() {
        r.set("env_runners/episode_len_mean", l);
    }
}

/// The first stop condition met, as the reason to report; `None` to go on.
pub fn stop_reason(
    stop: &StopConfig,
    iteration: u64,
    env_steps: u64,
    return_mean: Option<f64>,
    total_s: f64,
) -> Option<String> {
    if let Some(n) = stop.num_env_steps_sampled_lifetime.filter(|n| env_steps >= *n) {
        return Some(format!("num_env_steps_sampled_lifetime >= {n}"));
    }
    if let Some(n) = stop.training_iteration.filter(|n| iteration >= *n) {
        return Some(format!("training_iteration >= {n}"));
    }
    if let (Some(t), Some(m)) = (stop.episode_return_mean, return_mean)
        && m >= t
    {
        return Some(format!("env_runners/episode_return_mean >= {t}"));
    }
    if let Some(t) = stop.time_total_s.filter(|t| total_s >= *t) {
        return Some(format!("time_total_s >= {t}"));
    }
    None
}

fn evaluate_current(algo: &mut dyn Algorithm, config: &TrainConfig) -> Result<EvalStats> {
    let weights = algo.policy_weights()?;
    let normalization = algo.observation_normalization();
    evaluate(config, &weights, normalization.as_ref(), config.evaluation.duration, config.evaluation.seed)
}

/// Writes the iteration's checkpoint every `checkpoint.frequency` iterations, and when a signal
/// asked the run to stop ([`crate::interrupt`]), after which it fails with `Interrupted`. Then
/// deletes the oldest beyond `checkpoint.num_to_keep`.
fn checkpoint_if_due(
    algo: &mut dyn Algorithm,
    config: &TrainConfig,
    run: &RunDir,
    training: &TrainingState,
) -> Result<()> {
    let iteration = training.training_iteration;
    let periodic = config.checkpoint.frequency > 0 && iteration.is_multiple_of(config.checkpoint.frequency);
    let signal = crate::interrupt::requested();
    if !periodic && signal.is_none() {
        return Ok(());
    }
    let checkpoint =
        save_checkpoint(algo, config, run, &crate::checkpoint::iteration_checkpoint_name(iteration), training)?;
    if let Some(keep) = config.checkpoint.num_to_keep {
        crate::checkpoint::prune_iteration_checkpoints(run, keep)?;
    }
    match signal {
        Some(signal) => {
            Err(crate::Error::Interrupted { signal, iteration, checkpoint, run_dir: run.path().to_path_buf() })
        }
        None => Ok(()),
    }
}

fn save_checkpoint(
    algo: &mut dyn Algorithm,
    config: &TrainConfig,
    run: &RunDir,
    name: &str,
    training: &TrainingState,
) -> Result<PathBuf> {
    let state = algo.state()?;
    let metadata = CheckpointMetadata {
        format_version: CHECKPOINT_FORMAT_VERSION,
        algorithm: config.algorithm.name().into(),
        env: config.env.clone(),
        training_iteration: training.training_iteration,
        num_env_steps_sampled_lifetime: training.num_env_steps_sampled_lifetime,
        policy_version: state.policy_version,
        library_version: env!("CARGO_PKG_VERSION").into(),
    };
    let path = write_checkpoint(&run.checkpoint_dir(name), &metadata, config, &state, training)?;
    tracing::info!(checkpoint = %path.display(), iteration = training.training_iteration, "checkpoint written");
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_condition_met_is_reported() {
        let stop = StopConfig {
            num_env_steps_sampled_lifetime: Some(1000),
            training_iteration: Some(10),
            episode_return_mean: Some(195.0),
            time_total_s: Some(60.0),
        };
        assert_eq!(stop_reason(&stop, 1, 10, Some(10.0), 1.0), None);
        assert_eq!(stop_reason(&stop, 1, 1000, None, 1.0).unwrap(), "num_env_steps_sampled_lifetime >= 1000");
        assert_eq!(stop_reason(&stop, 10, 10, None, 1.0).unwrap(), "training_iteration >= 10");
        assert_eq!(stop_reason(&stop, 1, 10, Some(195.0), 1.0).unwrap(), "env_runners/episode_return_mean >= 195");
        assert_eq!(stop_reason(&stop, 1, 10, None, 60.0).unwrap(), "time_total_s >= 60");
    }
}
