//! The crate's one error type, [`PolicyError`], and its `Result` alias.

/// Everything that can go wrong building, running or loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The policy config is invalid.
    #[error("invalid model config: {0}")]
    Config(String),
    /// The env's spaces cannot be handled by this policy.
    #[error("unsupported space: {0}")]
    UnsupportedSpace(String),
    /// Weights that do not fit the policy (names, shapes, format, architecture).
    #[error("cannot load weights: {0}")]
    Weights(String),
    /// Buffers whose sizes disagree with the batch.
    #[error("{what}: expected {expected} values, got {got}")]
    BufferSize {
        /// Which buffer.
        what: &'static str,
        /// Length implied by the batch.
        expected: usize,
        /// Length given.
        got: usize,
    },
}

/// `Result` with [`PolicyError`].
pub type Result<T> = std::result::Result<T, PolicyError>;
