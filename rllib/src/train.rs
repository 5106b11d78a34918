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
    let rt = Runtime::local(RuntimeOptions::default())?;
    let result = match config.algorithm {
        AlgorithmId::Ppo => {
            Ppo::new(&rt, config).and_then(|mut ppo| algorithm::run(&mut ppo, config, output, callbacks))
        }
    };
    rt.shutdown();
    result
}
