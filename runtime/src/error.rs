//! The runtime's one error type, [`RuntimeError`], and its `Result` alias.

/// Everything the runtime can report to a caller.
///
/// It is serde-serializable, so an error raised on one node reaches a caller on another unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
    /// The actor never took the message up: it was dead or stopped when the message was sent, or
    /// it died while the message was still queued. Nothing of the message ran, so it is safe to
    /// retry anywhere (on another actor, or on this one once restarted).
    #[error("message to actor {actor} was not delivered: the actor is not running ({reason})")]
    NotDelivered {
        /// The actor's name.
        actor: String,
        /// Why the actor stopped.
        reason: String,
    },
    /// The actor took the message up but died before replying. The handler may have run in
    /// part, so retry only messages that are idempotent (applying one twice is the same as once).
    #[error("actor {actor} died while handling the call: {reason}")]
    DiedDuringCall {
        /// The actor's name.
        actor: String,
        /// Why the actor died.
        reason: String,
    },
    /// The actor's mailbox was at capacity and the send could not wait (`try_tell`). Nothing was
    /// sent: retry later, or send with `tell` or `call`, which wait for room.
    #[error("mailbox of actor {actor} is full ({capacity} messages queued); retry later or raise mailbox_capacity")]
    MailboxFull {
        /// The actor's name.
        actor: String,
        /// The mailbox's capacity.
        capacity: usize,
    },
    /// An actor option is out of range; nothing was spawned or reserved.
    #[error("cannot spawn actor {actor}: {option} must be {expected}, found {found}")]
    InvalidActorOption {
        /// The actor's name.
        actor: String,
        /// The option's field in `ActorOptions`.
        option: String,
        /// What the option must be.
        expected: String,
        /// The value given.
        found: String,
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
    /// Writing a spilled object to disk or reading it back failed (an I/O error, or a file that
    /// is truncated or not the object's).
    #[error("object spill file {path}: {message}")]
    SpillFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
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

    // === Cluster ===
    /// A call without the cluster's token (or with another one) was refused.
    #[error("unauthenticated: {0} (the token must match the one `rl start --head` wrote; see RL_CLUSTER_TOKEN)")]
    Unauthenticated(String),
    /// No node of the cluster could take the actor or task within its placement timeout.
    #[error("cannot place {what}: {message}")]
    Unschedulable {
        /// The actor or task.
        what: String,
        /// What the cluster has and lacks.
        message: String,
    },
    /// A node could not be reached, or its connection broke.
    #[error("node {node} at {address} is unreachable: {message}")]
    NodeUnreachable {
        /// Its id.
        node: u32,
        /// Its address.
        address: String,
        /// Why.
        message: String,
    },
    /// The node that owns an object is dead, so the object is gone (objects are not rebuilt).
    #[error("object {id} is lost: its owner, node {node}, died")]
    OwnerDied {
        /// The object.
        id: u64,
        /// Its owner.
        node: u32,
    },
    /// A node started from another build than the head's was refused at join.
    #[error(
        "this process runs build {ours}, the head runs build {head}: every process of a cluster must run the \
         same binary (actor types and message layouts must match); start it from the head's binary"
    )]
    BuildMismatch {
        /// This process's build.
        ours: String,
        /// The head's build.
        head: String,
    },
    /// This node gave up on the head: the head did not answer heartbeats for longer than its node
    /// timeout, or it restarted and no longer knows this node. The head held the cluster's
    /// state, so nothing of this node's membership can be saved: it stops.
    #[error(
        "lost the head at {address}: {message}; the cluster's state on it (node table, actor directory, \
         placement groups, KV store) is gone: once a head runs there again (`rl start --head`), rejoin with \
         `rl start --address {address}` and rerun the driver"
    )]
    HeadLost {
        /// The head's address.
        address: String,
        /// How it was lost.
        message: String,
    },
    /// Any other cluster failure: a bad address, a refused TLS handshake, a protocol error.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl RuntimeError {
    /// True when the request had no effect, so sending it again (to this actor later, or to
    /// another one) is safe whatever the message does: [`RuntimeError::NotDelivered`] and
    /// [`RuntimeError::MailboxFull`].
    ///
    /// ```
    /// use rl_runtime::RuntimeError;
    ///
    /// let e = RuntimeError::NotDelivered { actor: "env-runner-0".into(), reason: "stopped".into() };
    /// assert!(e.is_retryable_anywhere());
    /// let e = RuntimeError::DiedDuringCall { actor: "env-runner-0".into(), reason: "gone".into() };
    /// assert!(!e.is_retryable_anywhere() && e.is_retryable_if_idempotent());
    /// ```
    pub fn is_retryable_anywhere(&self) -> bool {
        matches!(self, Self::NotDelivered { .. } | Self::MailboxFull { .. } | Self::Unschedulable { .. })
    }

    /// True when a retry is safe provided the message is idempotent (applying it twice is the
    /// same as once, like setting weights of a given version): everything
    /// [`RuntimeError::is_retryable_anywhere`] accepts, plus [`RuntimeError::DiedDuringCall`] and
    /// [`RuntimeError::Timeout`] (after which the call may still run). Handler errors and panics
    /// are never retryable: the same message would meet them again.
    pub fn is_retryable_if_idempotent(&self) -> bool {
        self.is_retryable_anywhere() || matches!(self, Self::DiedDuringCall { .. } | Self::Timeout(..))
    }
}

/// `Result` with [`RuntimeError`].
pub type Result<T> = std::result::Result<T, RuntimeError>;
