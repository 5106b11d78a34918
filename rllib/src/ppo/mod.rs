//! The PPO driver: rollout-worker actors sample, the learner actor updates, weights are broadcast.
//!
//! Read [`train`] top to bottom; it follows PPO's pseudocode (Schulman et al. 2017, Alg. 1) as
//! laid out by CleanRL's `ppo.py`:
//!
//! ```text
//! for iteration = 1, 2, ...
//!     anneal the learning rate
//!     learner publishes its weights once; every rollout worker loads them
//!     every worker runs its policy for rollout_fragment_length steps in each of its envs
//!     the learner computes advantages (GAE) and optimizes the clipped surrogate objective
//!         for num_epochs epochs of minibatch_size minibatches
//!     report metrics, evaluate, checkpoint, check the stop conditions
//! ```
//!
//! The iteration is synchronous, and every random stream has its own seed (env resets, each
//! worker's action sampling, the learner's shuffling, the policy init), so a config and seed
//! give the same numbers on every run, whatever the thread timing.

pub mod loss;

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rl_runtime::{ActorHandle, ActorOptions, Runtime, RuntimeOptions};

use crate::checkpoint::{CHECKPOINT_FORMAT_VERSION, CheckpointMetadata, write_checkpoint};
use crate::config::{LrSchedule, TrainConfig};
use crate::evaluation::{EvalStats, evaluate};
use crate::learner::{Learner, LearnerMsg, LearnerReply, LearnerState, UpdateStats, env_spaces};
use crate::metrics::{EpisodeWindow, IterationResult, ResultWriter};
use crate::rollout::{RolloutMsg, RolloutReply, RolloutWorker, RolloutWorkerInit};
use crate::tensorboard::EventWriter;

/// Where and how to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory to create.
    pub output: PathBuf,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// The file `rl train` writes last into a run directory; its presence marks a finished run.
pub const SUMMARY_FILE: &str = "summary.json";

/// What a finished run reports; written to `summary.txt` (this type's `Display`) and
/// [`SUMMARY_FILE`] (serde; the run directory is then complete).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Iterations done.
    pub iterations: u64,
    /// Env steps sampled.
    pub env_steps: u64,
    /// Wall-clock seconds of training (without the final evaluation).
    pub train_seconds: f64,
    /// Mean return of the last 100 training episodes (`None` if none finished).
    pub train_episode_return_mean: Option<f64>,
    /// The final deterministic evaluation.
    pub final_evaluation: EvalStats,
    /// Why training stopped.
    pub stop_reason: String,
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.final_evaluation;
        write!(
            f,
            "final evaluation: episode_return_mean {:.2} +- {:.2} over {} episodes (min {:.2}, max {:.2}) | \
             {} iterations, {} env steps in {:.1}s ({}) | run dir {}",
            e.return_mean(),
            e.return_std(),
            e.returns.len(),
            e.return_min(),
            e.return_max(),
            self.iterations,
            self.env_steps,
            self.train_seconds,
            self.stop_reason,
            self.run_dir.display()
        )
    }
}

impl TrainSummary {
    /// Reads a finished run directory's [`SUMMARY_FILE`].
    pub fn read(run_dir: &std::path::Path) -> Result<Self> {
        let path = run_dir.join(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))
    }
}

/// The learning rate at 1-based `iteration` (CleanRL: `lr * (1 - (iteration - 1) / num_iterations)`).
pub fn learning_rate(config: &TrainConfig, iteration: u64) -> f64 {
    scheduled(config.lr, config.lr_schedule, config, iteration)
}

/// The PPO clip parameter at 1-based `iteration`, annealed like the learning rate when
/// `clip_param_schedule` is linear.
pub fn clip_param(config: &TrainConfig, iteration: u64) -> f64 {
    scheduled(config.clip_param, config.clip_param_schedule, config, iteration)
}

fn scheduled(value: f64, schedule: LrSchedule, config: &TrainConfig, iteration: u64) -> f64 {
    match (schedule, config.planned_iterations()) {
        (LrSchedule::Linear, Some(total)) => value * (1.0 - (iteration - 1) as f64 / total as f64),
        _ => value,
    }
}

/// Trains PPO as configured and writes the run directory. See the module docs.
pub fn train(config: &TrainConfig, options: &TrainOptions) -> Result<TrainSummary> {
    // 1. Start the embedded runtime and the actors: one learner, num_env_runners rollout workers.
    //    Everything that can fail on bad input fails here, before the run directory exists.
    env_spaces(&config.env, &config.env_config)?;
    let rt = Runtime::local(RuntimeOptions::default())?;
    rt.register_actor::<Learner>();
    rt.register_actor::<RolloutWorker>();
    let result = run(&rt, config, options);
    rt.shutdown();
    result
}

fn spawn_actors(rt: &Runtime, config: &TrainConfig) -> Result<(ActorHandle<Learner>, Vec<ActorHandle<RolloutWorker>>)> {
    // The learner and the workers take turns in a synchronous iteration, so the learner
    // reserves no CPU of its own; each worker reserves num_cpus_per_env_runner.
    let learner_opts = ActorOptions { name: Some("learner".into()), num_cpus: 0.0, ..Default::default() };
    let learner = rt.spawn::<Learner>(config.clone(), learner_opts)?;
    let workers = (0..config.num_env_runners as u32)
        .map(|i| {
            let opts = ActorOptions {
                name: Some(format!("env_runner_{i}")),
                num_cpus: config.num_cpus_per_env_runner,
                ..Default::default()
            };
            rt.spawn::<RolloutWorker>(RolloutWorkerInit { config: config.clone(), worker_index: i }, opts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((learner, workers))
}

fn run(rt: &Runtime, config: &TrainConfig, options: &TrainOptions) -> Result<TrainSummary> {
    let (learner, workers) = spawn_actors(rt, config)?;

    // 2. The run directory: resolved config, progress.csv, result.jsonl, TensorBoard events,
    //    checkpoints/.
    let dir = &options.output;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
    std::fs::write(dir.join("config.yaml"), serde_saphyr::to_string(config)?)?;
    let mut results = ResultWriter::create(dir)?;
    let mut events = EventWriter::create(dir)?;
    let progress = progress_bar(config, options.quiet);
    tracing::info!(run_dir = %dir.display(), env = %config.env, seed = config.seed, workers = workers.len(), "training started");

    let start = Instant::now();
    let mut window = EpisodeWindow::new(100);
    let (mut env_steps, mut episodes, mut iteration) = (0u64, 0u64, 0u64);
    let stop_reason = loop {
        iteration += 1;
        let iter_start = Instant::now();
        let (lr, clip) = (learning_rate(config, iteration), clip_param(config, iteration));

        // 3. Broadcast the learner's weights: one object, pulled by every worker, then sample.
        let LearnerReply::Weights(weights, _) = learner.call(LearnerMsg::PublishWeights).wait()? else {
            unreachable!("PublishWeights answers Weights")
        };
        let pending: Vec<_> = workers
            .iter()
            .map(|w| (w.call(RolloutMsg::SetWeights(weights.clone())), w.call(RolloutMsg::Sample)))
            .collect();
        let mut batches = Vec::with_capacity(workers.len());
        for (set, sample) in pending {
            set.wait()?;
            let RolloutReply::Batch(b) = sample.wait()? else { unreachable!("Sample answers Batch") };
            batches.push(b);
        }
        let sample_s = iter_start.elapsed().as_secs_f64();

        // 4. Learn: GAE and the PPO epochs on the learner actor.
        let learn_start = Instant::now();
        let LearnerReply::Updated(stats) = learner.call(LearnerMsg::Update { batches, lr, clip_param: clip }).wait()?
        else {
            unreachable!("Update answers Updated")
        };
        let learn_s = learn_start.elapsed().as_secs_f64();

        // 5. Metrics.
        env_steps += stats.num_env_steps;
        episodes += stats.episode_returns.len() as u64;
        window.extend(&stats.episode_returns, &stats.episode_lengths);
        let mut r = iteration_result(iteration, env_steps, episodes, &window, &stats, lr);
        r.set("learners/clip_param", clip);

        // 6. Evaluation every `evaluation.interval` iterations, on the weights just trained.
        if config.evaluation.interval > 0 && iteration % config.evaluation.interval == 0 {
            let eval = evaluate_current(&learner, config)?;
            tracing::info!(iteration, return_mean = eval.return_mean(), "evaluation");
            r.set("evaluation/episode_return_mean", eval.return_mean());
            r.set("evaluation/episode_return_std", eval.return_std());
            r.set("evaluation/episode_len_mean", eval.length_mean());
        }
        let total_s = start.elapsed().as_secs_f64();
        r.set("time_this_iter_s", iter_start.elapsed().as_secs_f64());
        r.set("time_total_s", total_s);
        r.set("timers/sample_s", sample_s);
        r.set("timers/learn_s", learn_s);
        r.set("num_env_steps_sampled_per_s", env_steps as f64 / total_s);
        results.write(&r)?;
        let scalars: Vec<(&str, f32)> = r.numbers().into_iter().map(|(k, v)| (k, v as f32)).collect();
        events.add_scalars(&scalars, env_steps as i64)?;
        progress.set_position(env_steps);
        progress.set_message(format!(
            "iter {iteration} | return {} | {:.0} steps/s",
            window.mean_return().map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into()),
            env_steps as f64 / total_s
        ));

        // 7. Checkpoint every `checkpoint.frequency` iterations.
        if config.checkpoint.frequency > 0 && iteration % config.checkpoint.frequency == 0 {
            save_checkpoint(&learner, &workers, config, dir, &format!("iter_{iteration:06}"), iteration, env_steps)?;
        }

        // 8. Stop conditions: the first one met ends training.
        let s = &config.stop;
        if let Some(n) = s.num_env_steps_sampled_lifetime.filter(|n| env_steps >= *n) {
            break format!("num_env_steps_sampled_lifetime >= {n}");
        }
        if let Some(n) = s.training_iteration.filter(|n| iteration >= *n) {
            break format!("training_iteration >= {n}");
        }
        if let (Some(t), Some(m)) = (s.episode_return_mean, window.mean_return())
            && m >= t
        {
            break format!("env_runners/episode_return_mean >= {t}");
        }
        if let Some(t) = s.time_total_s.filter(|t| total_s >= *t) {
            break format!("time_total_s >= {t}");
        }
    };
    let train_seconds = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    events.flush()?;

    // 9. Final checkpoint and final deterministic evaluation.
    save_checkpoint(&learner, &workers, config, dir, "final", iteration, env_steps)?;
    let final_evaluation = evaluate_current(&learner, config)?;
    let summary = TrainSummary {
        run_dir: dir.clone(),
        iterations: iteration,
        env_steps,
        train_seconds,
        train_episode_return_mean: window.mean_return(),
        final_evaluation,
        stop_reason,
    };
    let title = format!("PPO {} seed {}", config.env, config.seed);
    if let Err(e) = crate::plot::plot_run(dir, &title, Some(&summary)) {
        // The run itself is complete; a missing picture must not fail it.
        tracing::warn!(error = %e, "cannot draw the learning curve");
        eprintln!("warning: cannot draw {}: {e}", dir.join(crate::plot::RUN_PLOT).display());
    }
    std::fs::write(dir.join("summary.txt"), format!("{summary}\n"))?;
    // Written last: its presence marks a finished run directory.
    std::fs::write(dir.join(SUMMARY_FILE), serde_json::to_string_pretty(&summary)? + "\n")?;
    Ok(summary)
}

fn iteration_result(
    iteration: u64,
    env_steps: u64,
    episodes: u64,
    window: &EpisodeWindow,
    stats: &UpdateStats,
    lr: f64,
) -> IterationResult {
    let mut r = IterationResult::default();
    r.set("training_iteration", iteration);
    r.set("num_env_steps_sampled_lifetime", env_steps);
    r.set("num_episodes_lifetime", episodes);
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
    r.set("env_runners/num_episodes", stats.episode_returns.len());
    r.set("learners/policy_loss", stats.policy_loss);
    r.set("learners/vf_loss", stats.vf_loss);
    r.set("learners/entropy", stats.entropy);
    r.set("learners/approx_kl", stats.approx_kl);
    r.set("learners/clip_fraction", stats.clip_fraction);
    r.set("learners/explained_variance", stats.explained_variance);
    r.set("learners/grad_norm", stats.grad_norm);
    r.set("learners/lr", lr);
    r.set("learners/num_minibatch_updates", stats.num_minibatch_updates);
    r.set("learners/policy_version", stats.policy_version);
    r
}

fn learner_state(learner: &ActorHandle<Learner>) -> Result<LearnerState> {
    let LearnerReply::State(state) = learner.call(LearnerMsg::State).wait()? else {
        unreachable!("State answers State")
    };
    Ok(*state)
}

fn evaluate_current(learner: &ActorHandle<Learner>, config: &TrainConfig) -> Result<EvalStats> {
    let state = learner_state(learner)?;
    evaluate(config, &state.policy, config.evaluation.duration, config.evaluation.seed)
}

fn save_checkpoint(
    learner: &ActorHandle<Learner>,
    workers: &[ActorHandle<RolloutWorker>],
    config: &TrainConfig,
    run_dir: &std::path::Path,
    name: &str,
    iteration: u64,
    env_steps: u64,
) -> Result<()> {
    let state = learner_state(learner)?;
    let mut rngs = Vec::with_capacity(workers.len());
    for w in workers {
        let RolloutReply::RngState(s, i) = w.call(RolloutMsg::RngState).wait()? else {
            unreachable!("RngState answers RngState")
        };
        rngs.push((s, i));
    }
    let metadata = CheckpointMetadata {
        format_version: CHECKPOINT_FORMAT_VERSION,
        algorithm: "PPO".into(),
        env: config.env.clone(),
        training_iteration: iteration,
        num_env_steps_sampled_lifetime: env_steps,
        policy_version: iteration,
        library_version: env!("CARGO_PKG_VERSION").into(),
    };
    let path = write_checkpoint(&run_dir.join("checkpoints").join(name), &metadata, config, &state, &rngs)?;
    tracing::info!(checkpoint = %path.display(), iteration, "checkpoint written");
    Ok(())
}

fn progress_bar(config: &TrainConfig, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let total = config
        .stop
        .num_env_steps_sampled_lifetime
        .unwrap_or_else(|| config.stop.training_iteration.map(|i| i * config.train_batch_size() as u64).unwrap_or(0));
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} env steps | {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> TrainConfig {
        let text = format!("env: CartPole-v1\nrollout_fragment_length: 32\nminibatch_size: 32\n{extra}");
        TrainConfig::parse(&text, "test.yaml", &[]).unwrap()
    }

    #[test]
    fn schedules_anneal_linearly_to_zero_over_the_planned_iterations() {
        // 4 envs x 32 steps = 128 steps per iteration; 512 steps = 4 iterations.
        let c = config(
            "lr: 1.0e-3\nclip_param: 0.2\nclip_param_schedule: linear\nstop: {num_env_steps_sampled_lifetime: 512}\n",
        );
        let lrs: Vec<f64> = (1..=4).map(|i| learning_rate(&c, i)).collect();
        let clips: Vec<f64> = (1..=4).map(|i| clip_param(&c, i)).collect();
        assert_eq!(lrs, [1.0e-3, 0.75e-3, 0.5e-3, 0.25e-3]);
        assert_eq!(clips, [0.2, 0.15000000000000002, 0.1, 0.05]);
        // The default clip schedule is constant.
        let c = config("stop: {training_iteration: 4}\n");
        assert!((1..=4).all(|i| clip_param(&c, i) == c.clip_param));
    }

    #[test]
    fn linear_clip_schedule_needs_a_budget() {
        let text = "env: CartPole-v1\nlr_schedule: constant\nclip_param_schedule: linear\nstop: {time_total_s: 10}\n";
        let err = TrainConfig::parse(text, "t.yaml", &[]).unwrap_err().to_string();
        assert!(err.starts_with("t.yaml:3: clip_param_schedule: linear annealing needs"), "{err}");
    }
}
