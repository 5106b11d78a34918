//! Callbacks: how a training run reports to the program that started it.
//!
//! The library prints nothing; the `rl` application draws its progress bar from
//! [`Callbacks::on_iteration`] and its learning-curve picture from [`Callbacks::on_train_end`].
//! Every method has an empty default, and `()` is the callbacks object that does nothing.
//!
//! **Example:** count iterations.
//!
//! ```
//! use rllib::{Callbacks, IterationResult};
//!
//! #[derive(Default)]
//! struct Count(u64);
//!
//! impl Callbacks for Count {
//!     fn on_iteration(&mut self, _result: &IterationResult) {
//!         self.0 += 1;
//!     }
//! }
//! ```

use crate::config::TrainConfig;
use crate::metrics::IterationResult;
use crate::run_dir::{RunDir, TrainSummary};

/// Observer of a training run. Called on the driver thread, between iterations, so a slow
/// callback delays training but never races it.
pub trait Callbacks {
    /// Once, after the run directory is created and before the first iteration.
    fn on_train_start(&mut self, _run: &RunDir, _config: &TrainConfig) {}

    /// After every iteration, once its result is written to `progress.csv`.
    fn on_iteration(&mut self, _result: &IterationResult) {}

    /// Once, after the final checkpoint and evaluation and before the summary files that mark
    /// the run finished, so anything written here is part of every finished run directory.
    fn on_train_end(&mut self, _run: &RunDir, _summary: &TrainSummary) {}
}

/// No callbacks.
impl Callbacks for () {}
