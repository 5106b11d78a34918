//! The entry point of training: the embedded runtime, the configured algorithm, the shared loop.

use std::path::Path;

use rl_runtime::{Runtime, RuntimeOptions};

use crate::algorithm;
use crate::callbacks::Callbacks;
use crate::config::{AlgorithmId, TrainConfig};
use crate::error::Result;
use crate::ppo::Ppo;
use crate::run_dir::{RunDir, TrainSummary};

/// Trains the configured algorithm on an embedded runtime and writes the run directory at
/// `output` (which must not exist or be empty), reporting to `callbacks`.
///
/// Everything that can fail on bad input (the output directory, the env, its arguments, the
/// model, the actors) fails before the run directory is created.
pub fn train(config: &TrainConfig, output: &Path, callbacks: &mut dyn Callbacks) -> Result<TrainSummary> {
    RunDir::check_new(output)?;
    config.env_spaces()?;
    let rt = Runtime::local(runtime_options(config, RuntimeOptions::default()))?;
    let result = match config.algorithm {
        AlgorithmId::Ppo => {
            Ppo::new(&rt, config).and_then(|mut ppo| algorithm::run(&mut ppo, config, output, callbacks))
        }
    };
    rt.shutdown();
    result
}

/// The embedded runtime's options: `defaults`, with logical CPUs raised to what the env runners
/// reserve when the machine has fewer. The runners then share the cores (oversubscribed, like
/// SB3's vectorized envs) and a warning says so; a real cluster instead keeps such actors
/// pending until a node has room.
fn runtime_options(config: &TrainConfig, defaults: RuntimeOptions) -> RuntimeOptions {
    let needed = config.num_env_runners as f64 * config.num_cpus_per_env_runner;
    if needed <= defaults.num_cpus {
        return defaults;
    }
    tracing::warn!(
        "num_env_runners {} x num_cpus_per_env_runner {} reserve {needed} logical CPUs and this machine has {}: \
         the env runners will share the cores (lower num_env_runners to avoid oversubscribing)",
        config.num_env_runners,
        config.num_cpus_per_env_runner,
        defaults.num_cpus
    );
    RuntimeOptions { num_cpus: needed, ..defaults }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_env_runners_than_cores_are_granted_logical_cpus() {
        let config = |runners: usize| {
            let text = format!("env: CartPole-v1\nnum_env_runners: {runners}\nstop: {{training_iteration: 1}}\n");
            TrainConfig::parse(&text, "t.yaml", &[]).unwrap()
        };
        let one_cpu = RuntimeOptions { num_cpus: 1.0, ..RuntimeOptions::default() };
        assert_eq!(runtime_options(&config(4), one_cpu.clone()).num_cpus, 4.0);
        assert_eq!(runtime_options(&config(1), one_cpu.clone()).num_cpus, 1.0);
        // Four runners really train on a one-CPU runtime.
        let rt = Runtime::local(runtime_options(&config(4), one_cpu)).unwrap();
        let dir = std::env::temp_dir().join(format!("rllib-oversubscribe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = config(4);
        let mut ppo = Ppo::new(&rt, &c).unwrap();
        let summary = algorithm::run(&mut ppo, &c, &dir, &mut ()).unwrap();
        assert_eq!(summary.env_steps, 4 * 2 * 128);
        rt.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
