//! The runtime's one error type, [`RuntimeError`], and its `Result` alias.

/// Everything the runtime can report to a caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    // === Actors ===
    /// The actor panicked while handling a message; the payload's text is kept.
    #[error("actor {actor} panicked: {message}")]
    ActorPanicked {
        /// The actor's name.
        actor: String,
        /// The panic message.
        message: String,
    },
    /// The actor's handler (or constructor) returned an error.
    #[error("actor {actor} failed: {message}")]
    ActorFailed {
        /// The actor's name.
        actor: String,
        /// The error, formatted.
        message: String,
        /// False when the actor marked the error [`Unrecoverable`](crate::Unrecoverable): a
        /// bug or bad input that rebuilding the actor would meet again, so supervisors must not
        /// restart or retry on it.
        recoverable: bool,
    },
    /// The actor has stopped (shut down, or dead after exhausting its restarts).
    #[error("actor {actor} is not running: {reason}")]
    ActorDead {
        /// The actor's name.
        actor: String,
        /// Why it stopped.
        reason: String,
    },
    /// No actor type of this name was registered with the runtime.
    #[error("actor type {0:?} is not registered; call register_actor first")]
    UnknownActorType(String),
    /// The actor's resource request cannot be met.
    #[error("cannot place actor {actor}: it needs {needed} {resource}, {available} of {total} available")]
    InsufficientResources {
        /// The actor's name.
        actor: String,
        /// The resource name (`CPU`, `GPU` or a custom one).
        resource: String,
        /// The amount requested.
        needed: f64,
        /// The amount still free.
        available: f64,
        /// The runtime's total.
        total: f64,
    },

    // === Objects ===
    /// The object was freed (explicitly or because its last reference dropped).
    #[error("object {0} was freed")]
    ObjectFreed(u64),
    /// The task that should have produced the object failed.
    #[error("object {id} has no value: {message}")]
    ObjectFailed {
        /// The object id.
        id: u64,
        /// Why the producing task failed.
        message: String,
    },
    /// A put that would push the store past its memory cap and could not wait for room.
    #[error(
        "object store full: putting {requested} bytes with {used} of {cap} bytes in use \
         (raise object_store_memory or free objects sooner)"
    )]
    StoreFull {
        /// Bytes of the rejected object.
        requested: usize,
        /// Bytes in use.
        used: usize,
        /// The cap.
        cap: usize,
    },
    /// A blocking wait ran past its deadline.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),

    // === Tasks ===
    /// No task function of this name was registered.
    #[error("task {0:?} is not registered; call register_task first")]
    UnknownTask(String),

    // === Serialization ===
    /// A message or value could not be (de)serialized.
    #[error("serialization of {what} failed: {message}")]
    Serialization {
        /// What was being (de)serialized.
        what: String,
        /// The codec's message.
        message: String,
    },
    /// The runtime was shut down.
    #[error("the runtime is shut down")]
    Shutdown,
}

/// `Result` with [`RuntimeError`].
pub type Result<T> = std::result::Result<T, RuntimeError>;
