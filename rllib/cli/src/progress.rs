//! What `rl train` shows and draws while training: the progress bar and, when the run ends, its
//! learning curve.

use indicatif::{ProgressBar, ProgressStyle};
use rllib::run_dir::{PLOT_FILE, RunDir, TrainSummary};
use rllib::{Callbacks, IterationResult, TrainConfig};

/// The callbacks `rl train` passes to [`rllib::train`]: a progress bar over the env-step budget
/// (hidden with `--quiet`) and `learning_curve.png` in the run directory at the end. When stdout
/// is not a terminal (a log file, a job's logs), a plain status line every [`LOG_EVERY`] instead.
#[derive(Debug)]
pub struct TrainProgress {
    quiet: bool,
    bar: ProgressBar,
    title: String,
    /// When the last plain line was printed (`None`: print at the next iteration); only when
    /// stdout is not a terminal.
    plain: Option<Option<std::time::Instant>>,
    planned: u64,
}

/// How often a run logging to a file prints its status line.
pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl TrainProgress {
    /// Callbacks with the bar shown unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let plain = (!quiet && !std::io::stdout().is_terminal()).then_some(None);
        Self { quiet, bar: ProgressBar::hidden(), title: String::new(), plain, planned: 0 }
    }
}

/// The env steps a run is planned for (0 when only time or return limits it).
fn planned_steps(config: &TrainConfig) -> u64 {
    let by_iterations = config.stop.training_iteration.map(|i| i * config.train_batch_size() as u64);
    config.stop.num_env_steps_sampled_lifetime.or(by_iterations).unwrap_or(0)
}

impl Callbacks for TrainProgress {
    fn on_train_start(&mut self, _run: &RunDir, config: &TrainConfig) {
        self.title = format!("{} {} seed {}", config.algorithm.name(), config.env, config.seed);
        self.planned = planned_steps(config);
        if self.quiet || self.plain.is_some() {
            return;
        }
        self.bar = ProgressBar::new(planned_steps(config));
        self.bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} env steps | {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
    }

    fn on_iteration(&mut self, r: &IterationResult) {
        let get = |name: &str| r.get(name).unwrap_or(0.0);
        let message = format!(
            "iter {} | return {} | {:.0} steps/s",
            get("training_iteration"),
            r.get("env_runners/episode_return_mean").map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into()),
            get("num_env_steps_sampled_per_s"),
        );
        let steps = get("num_env_steps_sampled_lifetime") as u64;
        if let Some(last) = &mut self.plain {
            if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                *last = Some(std::time::Instant::now());
                let of = if self.planned > 0 { format!("/{}", self.planned) } else { String::new() };
                println!("{} | {steps}{of} env steps | {message}", self.title);
            }
            return;
        }
        self.bar.set_position(steps);
        self.bar.set_message(message);
    }

    fn on_train_end(&mut self, run: &RunDir, summary: &TrainSummary) {
        self.bar.finish_and_clear();
        if let Err(e) = crate::plot::plot_run(run, &self.title, Some(summary)) {
            // The run itself is complete; a missing picture must not fail it.
            tracing::warn!(error = %e, "cannot draw the learning curve");
            eprintln!("warning: cannot draw {}: {e}", run.file(PLOT_FILE).display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_spans_the_step_or_iteration_budget() {
        let parse =
            |stop: &str| TrainConfig::parse(&format!("env: CartPole-v1\nstop: {stop}\n"), "t.yaml", &[]).unwrap();
        assert_eq!(planned_steps(&parse("{num_env_steps_sampled_lifetime: 1000, training_iteration: 1}")), 1000);
        assert_eq!(planned_steps(&parse("{training_iteration: 3}")), 3 * 512);
        assert_eq!(planned_steps(&parse("{time_total_s: 5}\nlr_schedule: constant")), 0);
    }
}
