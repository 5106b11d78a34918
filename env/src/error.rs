//! The crate's one error type, [`EnvError`], and its `Result` alias.

use crate::space::Space;

/// Everything that can go wrong when building, resetting or stepping an environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    // === Actions and observations ===
    /// An action outside the env's action space. Never clamped silently.
    #[error("{env}: action {action} is not in the action space {space}")]
    InvalidAction {
        /// The env id.
        env: String,
        /// The rejected action, formatted.
        action: String,
        /// The action space.
        space: Space,
    },
    /// A buffer or batch whose length does not match what the space needs.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// What had the wrong length.
        what: &'static str,
        /// The length the space implies.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// `step` was called before the first `reset`.
    #[error("{env}: step called before reset")]
    StepBeforeReset {
        /// The env id.
        env: String,
    },

    // === An env's own failures ===
    /// A failure of the env itself that no other variant describes: a map that cannot be parsed, a
    /// simulator that diverged, an internal limit reached. For env authors: return it from
    /// `reset_into` or `step_into` (or a constructor) with a message saying what was expected and what
    /// was found, instead of panicking or borrowing [`EnvError::InvalidKwarg`]. Build one with
    /// [`EnvError::custom`].
    #[error("{env}: {message}")]
    Custom {
        /// The env id.
        env: String,
        /// What went wrong.
        message: String,
    },

    // === Saved state ===
    /// A state given to [`Env::restore_state`](crate::Env::restore_state) that this env cannot take:
    /// malformed, saved by another env or wrapper, or the env cannot save and restore at all.
    #[error("{env}: cannot restore state: {message}")]
    InvalidState {
        /// The env id.
        env: String,
        /// What was wrong, naming the key and what was expected.
        message: String,
    },

    // === Wrapper and normalizer arguments ===
    /// A wrapper or normalizer built with an argument outside its range: a non-positive epsilon,
    /// a discount outside `[0, 1]`, a clip bound that is not positive.
    #[error("{what}: {message}")]
    InvalidArgument {
        /// The wrapper or normalizer, e.g. `"NormalizeReward"`.
        what: &'static str,
        /// Which argument, what it must be, and what it was.
        message: String,
    },

    // === Random numbers ===
    /// [`NpRandom::integers`](crate::rng::NpRandom::integers) asked for an empty range.
    #[error("random integers: low ({low}) must be less than high ({high})")]
    EmptyRange {
        /// The inclusive lower bound asked for.
        low: i64,
        /// The exclusive upper bound asked for.
        high: i64,
    },

    // === Spaces ===
    /// A space built from inconsistent parts (low > high, zero categories, shape mismatch).
    #[error("invalid space: {0}")]
    InvalidSpace(String),

    // === Registry and construction ===
    /// An env id the registry does not know.
    #[error("unknown env id {id:?}{}", did_you_mean(suggestions))]
    UnknownEnv {
        /// The id asked for.
        id: String,
        /// The closest known ids, best first.
        suggestions: Vec<String>,
    },
    /// An id registered twice.
    #[error("env id {0:?} is already registered")]
    DuplicateId(String),
    /// A keyword argument the env does not accept, or one with a wrong type or value.
    #[error("{env}: {message}")]
    InvalidKwarg {
        /// The env id.
        env: String,
        /// What was wrong, naming the key and what is allowed.
        message: String,
    },
    /// A vector env needs at least one sub-env, all with the same spaces.
    #[error("invalid vector env: {0}")]
    InvalidVectorEnv(String),
}

impl EnvError {
    /// An [`EnvError::Custom`] for the env `env`.
    ///
    /// ```
    /// use rl_env::EnvError;
    ///
    /// let err = EnvError::custom("Maze-v0", "wall map row 3 has 7 cells, expected 8");
    /// assert_eq!(err.to_string(), "Maze-v0: wall map row 3 has 7 cells, expected 8");
    /// ```
    pub fn custom(env: &str, message: impl Into<String>) -> Self {
        EnvError::Custom { env: env.to_string(), message: message.into() }
    }

    /// The same error naming `id` wherever it names an env: how [`make`](crate::make) makes the
    /// registered id the one every error of a made env carries.
    pub(crate) fn for_env(mut self, id: &str) -> Self {
        match &mut self {
            EnvError::InvalidAction { env, .. }
            | EnvError::StepBeforeReset { env }
            | EnvError::Custom { env, .. }
            | EnvError::InvalidKwarg { env, .. }
            | EnvError::InvalidState { env, .. }
                if env != id =>
            {
                *env = id.to_string();
            }
            _ => {}
        }
        self
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(", ")) }
}

/// `Result` with [`EnvError`].
pub type Result<T> = std::result::Result<T, EnvError>;

/// Runs `f`, turning a panic into the message it carried (what the env checker reports and a
/// vector env restarting failed sub-envs records).
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic payload that is not a string)".to_string())
    })
}
