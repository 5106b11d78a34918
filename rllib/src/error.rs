//! The library's one error type, [`Error`], and its `Result` alias.
//!
//! Every fallible function of `rllib` returns [`Result`]. Variants are grouped by where the
//! problem lies (user input, files, the layers below) and carry the path, key or value they are
//! about, so a message reads on its own: `ppo.yaml:4: lr: must be a positive number, got -0.1`.
//! Actor handlers return it boxed (`rl_runtime::BoxError`); its text reaches the caller through
//! the runtime's `ActorFailed`.

use std::path::PathBuf;

/// Everything `rllib` can report.
///
/// The errors of the layers below (`Env`, `Policy`, `Runtime`, `Tensor`) convert with `?`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === User input ===
    /// A config value, key or file is not usable. `origin` says where the bad value came from:
    /// `FILE:LINE`, `FILE`, or `--set KEY=VALUE`.
    #[error("{origin}: {message}")]
    Config {
        /// Where the value came from.
        origin: String,
        /// The key (if known) and what is allowed.
        message: String,
    },
    /// A run directory must not be overwritten.
    #[error("output directory {} already exists and is not empty; choose another --output", path.display())]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// A directory given as a run directory does not hold one.
    #[error("{} is not a run directory (it has no {file})", path.display())]
    NotARunDir {
        /// The directory.
        path: PathBuf,
        /// The file it lacks.
        file: &'static str,
    },

    // === Numbers ===
    /// An env produced a non-finite observation or reward: a bug in the env or its
    /// `env_config`. A restart would meet it again, so it is never retried.
    #[error(
        "env {env} returned a non-finite {quantity} ({value}{}) in env runner {worker}, sub-env {sub_env}, \
         at that runner's step {step}: a bug in the env or its env_config",
        element.map(|e| format!(" at element {e}")).unwrap_or_default()
    )]
    NonFiniteEnv {
        /// The env id.
        env: String,
        /// `observation`, `final observation` or `reward`.
        quantity: &'static str,
        /// The offending value (NaN or an infinity).
        value: f64,
        /// Its index in the observation, if it is one.
        element: Option<usize>,
        /// The env runner's index.
        worker: u32,
        /// The sub-env's index within the runner.
        sub_env: usize,
        /// Vector-env steps the runner had taken, counting this one.
        step: u64,
    },
    /// An env returned a Discrete or MultiDiscrete observation outside its observation space: a
    /// bug in the env, never retried.
    #[error(
        "observation value {value} of element {element} is not one of the space's {choices} choices from {start}: \
         a bug in the env (its observations must lie in its observation_space)"
    )]
    ObservationOutsideSpace {
        /// The value.
        value: f32,
        /// Its index in the observation.
        element: usize,
        /// The element's number of choices.
        choices: u64,
        /// The value of its first choice.
        start: i64,
    },
    /// An off-policy gradient step met a non-finite loss or gradient and stopped before changing
    /// the weights of the network it updates.
    #[error(
        "non-finite {quantity} ({value}) at {algorithm}'s gradient step {gradient_step}; the network it updates \
         was left unchanged. Lower the learning rates or check the env's observations and rewards"
    )]
    NonFiniteGradientStep {
        /// `DQN` or `SAC`.
        algorithm: &'static str,
        /// What was not finite (`loss`, `critic loss`, `actor gradient norm`, ...).
        quantity: &'static str,
        /// The offending value.
        value: f64,
        /// 1-based lifetime gradient step.
        gradient_step: u64,
    },
    /// A learner update met a non-finite loss or gradient and stopped before changing any weight.
    #[error(
        "non-finite {quantity} ({value}) in the learner's update towards policy version {version} \
         (epoch {epoch}, minibatch {minibatch}); the weights were left unchanged. \
         Lower the learning rate (lr) or check the env's observations and rewards"
    )]
    NonFiniteUpdate {
        /// `loss` or `gradient norm`.
        quantity: &'static str,
        /// The offending value.
        value: f64,
        /// The policy version the update would have produced.
        version: u64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based minibatch within the epoch.
        minibatch: usize,
    },

    // === Files ===
    /// Reading or writing a file or directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read config`, `create`, `write`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file this library writes (progress.csv, summary.json, metadata.json, a checkpoint's
    /// tensors) is malformed or from an incompatible version.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        /// The file.
        path: PathBuf,
        /// The 1-based line, for text files.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A run cannot be resumed from what its directory holds (no complete checkpoint, a
    /// finished run, a checkpoint without the state an exact resume needs).
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Env runners failed and fault tolerance could not carry the run on: restarts are off or
    /// used up, or no runner is left. The message names each failure.
    #[error("env runners failed: {0}")]
    EnvRunners(String),
    /// The run was stopped by a signal (SIGINT or SIGTERM) after writing a checkpoint.
    #[error("interrupted by {signal} after iteration {iteration}; checkpoint {} written; continue with `rl train --resume {}`", checkpoint.display(), run_dir.display())]
    Interrupted {
        /// The signal's name.
        signal: &'static str,
        /// The last completed iteration.
        iteration: u64,
        /// The checkpoint written.
        checkpoint: PathBuf,
        /// The run directory.
        run_dir: PathBuf,
    },
    /// A trajectory batch from the object store could not be decoded.
    #[error("trajectory batch: {message}")]
    Batch {
        /// What is wrong with it.
        message: String,
    },
    /// Writing to an output stream the caller handed over (a file, standard output) failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// A value could not be serialized (config to YAML, summary to JSON).
    #[error("cannot serialize {what}: {message}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serializer's message.
        message: String,
    },

    // === Layers below ===
    /// An environment failed (unknown id, bad kwargs, invalid action, ...).
    #[error(transparent)]
    Env(Box<rl_env::EnvError>),
    /// A policy could not be built or loaded.
    #[error(transparent)]
    Policy(Box<rl_policies::PolicyError>),
    /// The runtime failed (actor failed or died, object freed, store full, ...).
    #[error(transparent)]
    Runtime(Box<rl_runtime::RuntimeError>),
    /// A tensor operation of the learner failed.
    #[error("tensor operation failed: {0}")]
    Tensor(Box<candle_core::Error>),
}

// The errors of the layers below are boxed: they are large, and `Result<T>` stays small on the
// paths that succeed.
macro_rules! from_boxed {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    )*};
}

from_boxed!(
    Env(rl_env::EnvError),
    Policy(rl_policies::PolicyError),
    Runtime(rl_runtime::RuntimeError),
    Tensor(candle_core::Error),
);

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// True for errors that restarting an actor cannot fix (non-finite numbers, observations
    /// outside their space): supervisors
    /// must not restart or retry on them.
    pub fn is_unrecoverable(&self) -> bool {
        matches!(
            self,
            Self::NonFiniteEnv { .. }
                | Self::NonFiniteUpdate { .. }
                | Self::NonFiniteGradientStep { .. }
                | Self::ObservationOutsideSpace { .. }
        )
    }

    /// The error as an actor handler returns it: marked [`rl_runtime::Unrecoverable`] when
    /// [`Error::is_unrecoverable`], so the caller's `ActorFailed` says `recoverable: false`.
    pub fn into_actor_error(self) -> rl_runtime::BoxError {
        if self.is_unrecoverable() { Box::new(rl_runtime::Unrecoverable::new(Box::new(self))) } else { Box::new(self) }
    }

    /// A [`Error::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }

    /// A [`Error::Config`] from `origin`.
    pub fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { origin: origin.into(), message: message.into() }
    }
}
