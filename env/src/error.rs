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

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(", ")) }
}

/// `Result` with [`EnvError`].
pub type Result<T> = std::result::Result<T, EnvError>;
