//! What `rl train` shows and draws while training: the progress bar and, when the run ends, its
//! learning curve.

use indicatif::{ProgressBar, ProgressStyle};
use rllib::run_dir::{PLOT_FILE, RunDir, TrainSummary};
use rllib::{Callbacks, IterationResult, TrainConfig};

/// The callbacks `rl train` passes to [`rllib::train`]: a progress bar over the env-step budget
/// (hidden with `--quiet`) and `learning_curve.png` in the run directory at the end.
#[derive(Debug)]
pub struct TrainProgress {
    quiet: bool,
    bar: ProgressBar,
    title: String,
}

impl TrainProgress {
    /// Callbacks with the bar shown unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: ProgressBar::hidden(), title: String::new() }
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
        if self.quiet {
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
        self.bar.set_position(get("num_env_steps_sampled_lifetime") as u64);
        self.bar.set_message(format!(
            "iter {} | return {} | {:.0} steps/s",
            get("training_iteration"),
            r.get("env_runners/episode_return_mean").map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into()),
            get("num_env_steps_sampled_per_s"),
        ));
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
