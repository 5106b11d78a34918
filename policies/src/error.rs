//! The crate's one error type, [`PolicyError`], and its `Result` alias.

use crate::model::{ActionKind, Architecture};

/// Everything that can go wrong building, running or loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    // === Tensor errors ===
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    // === Construction errors ===
    /// The policy config is invalid.
    #[error("invalid model config: {0}")]
    Config(String),
    /// The env's spaces cannot be handled by this policy.
    #[error("unsupported space: {0}")]
    UnsupportedSpace(String),

    // === Weights errors ===
    /// Bytes that are not readable safetensors, or whose metadata is missing or malformed.
    #[error("cannot load weights: {0}")]
    Weights(String),
    /// Weights written in a layout this build does not read.
    #[error("cannot load weights: format version {found}, this build reads version {supported}")]
    FormatVersion {
        /// The `format_version` in the metadata.
        found: String,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// Weights saved from a policy of another shape.
    #[error("cannot load weights: they are for a policy {found}, this policy is {expected}")]
    ArchitectureMismatch {
        /// The architecture stored with the weights.
        found: Box<Architecture>,
        /// The architecture of the policy being loaded into.
        expected: Box<Architecture>,
    },
    /// A parameter the policy has is absent from the weights.
    #[error("cannot load weights: tensor {name:?} is missing")]
    MissingTensor {
        /// Parameter name, e.g. `actor.0.weight`.
        name: String,
    },
    /// The weights hold a tensor the policy has no parameter for.
    #[error("cannot load weights: unexpected tensor {name:?}")]
    UnexpectedTensor {
        /// Name found in the weights.
        name: String,
    },
    /// A tensor whose shape differs from the parameter's.
    #[error("cannot load weights: tensor {name:?} has shape {actual:?}, the policy expects {expected:?}")]
    TensorShape {
        /// Parameter name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The shape found in the weights.
        actual: Vec<usize>,
    },
    /// A tensor stored with another dtype than F32.
    #[error("cannot load weights: tensor {name:?} is {actual}, expected F32")]
    TensorDtype {
        /// Parameter name.
        name: String,
        /// The dtype found in the weights.
        actual: String,
    },

    // === Call errors ===
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
    /// A method for one kind of action head called on a policy with the other kind.
    #[error("{op} needs a {needs} policy, this one has {kind}")]
    WrongActionKind {
        /// The method called.
        op: &'static str,
        /// What it needs: "Discrete" or "Box".
        needs: &'static str,
        /// The policy's action head.
        kind: ActionKind,
    },
}

/// `Result` with [`PolicyError`].
pub type Result<T> = std::result::Result<T, PolicyError>;
