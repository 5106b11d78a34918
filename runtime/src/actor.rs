//! Actors: stateful workers on their own OS threads, driven by messages through a handle.
//!
//! An actor owns state that lives across calls (a vector env and a policy copy, a learner and
//! its optimizer). Where the object store passes *data* between workers, actors hold *state*
//! and do the CPU work: each runs on a dedicated OS thread with a crossbeam mailbox, so env
//! stepping and SGD never block an async executor.
//!
//! **Example:**
//!
//! ```
//! use rl_runtime::{Actor, ActorContext, ActorOptions, BoxError, Runtime, RuntimeOptions};
//!
//! struct Counter(u64);
//!
//! impl Actor for Counter {
//!     const TYPE_NAME: &'static str = "Counter";
//!     type Init = u64;
//!     type Msg = u64;
//!     type Reply = u64;
//!     fn new(init: u64, _ctx: &ActorContext) -> Result<Self, BoxError> {
//!         Ok(Counter(init))
//!     }
//!     fn handle(&mut self, add: u64, _ctx: &ActorContext) -> Result<u64, BoxError> {
//!         self.0 += add;
//!         Ok(self.0)
//!     }
//! }
//!
//! let rt = Runtime::local(RuntimeOptions::default())?;
//! rt.register_actor::<Counter>();
//! let counter = rt.spawn::<Counter>(10, ActorOptions::default())?;
//! counter.tell(1)?;
//! assert_eq!(counter.call(5).wait()?, 16);
//! rt.shutdown();
//! # Ok::<(), rl_runtime::RuntimeError>(())
//! ```
//!
//! A panic inside `handle` is caught: the caller gets [`RuntimeError::ActorPanicked`] with the
//! panic message, the process lives on, and the actor is rebuilt from its `Init` if it has
//! restarts left (`ActorOptions::max_restarts`), else it is dead and later calls fail with
//! [`RuntimeError::NotDelivered`].
//!
//! ## Errors say what is safe to retry
//!
//! A call that gets no answer from the handler fails with one of two errors, which tell a
//! supervisor what a retry risks (see [`RuntimeError::is_retryable_anywhere`]):
//!
//! - [`RuntimeError::NotDelivered`]: the handler never saw the message (the actor was dead or
//!   stopped when it was sent, or died while it was still queued). Nothing of it ran: retry it
//!   anywhere.
//! - [`RuntimeError::DiedDuringCall`]: the actor took the message up and died before answering.
//!   It may have run in part: retry only idempotent messages.
//!
//! A handler that answers with an error gives [`RuntimeError::ActorFailed`] (do not retry), a
//! panicking one [`RuntimeError::ActorPanicked`].
//!
//! ## Bounded mailboxes and a control lane
//!
//! Each actor's mailbox holds at most `ActorOptions::mailbox_capacity` messages. [`ActorHandle::call`]
//! and [`ActorHandle::tell`] block while it is full: that is the backpressure a slow actor puts on
//! its callers. [`ActorHandle::try_tell`] never blocks and hands the message back in
//! [`TryTellError::MailboxFull`]. Stop requests travel on a separate lane that the actor reads
//! before every message, so [`ActorHandle::stop`] never waits behind a full mailbox: it takes
//! effect once the message in progress is handled, and the queued ones are not delivered.
//!
//! ## Death is one step, seen the same way by every caller
//!
//! An actor dies when its constructor fails, when it is stopped (`stop` or `Runtime::shutdown`),
//! when it panics with no restarts left, or when a restart fails. (Dropping every handle would
//! end it too, but the runtime keeps one until shutdown.) Its thread then, in this order: drops
//! the actor instance, returns the actor's resources to the runtime, writes the death note
//! (`is_alive()` turns false and later sends fail with [`RuntimeError::NotDelivered`] and the
//! reason), drops the queued messages (their calls fail the same way), and only then sends the
//! reply to the call that killed it. So a caller that sees the death in any way (that reply, a
//! `NotDelivered`, a `DiedDuringCall` or `!is_alive()`) also sees the resources free. A panicked
//! call's reply is likewise sent only after the restart: when it arrives, the actor is either
//! rebuilt (keeping its reservation) or dead and released. A failed constructor returns the
//! reservation before `spawn` returns the error.
//!
//! ## Threads or processes
//!
//! By default an actor is a thread of its node's process ([`Isolation::Thread`]). With
//! [`ActorOptions::isolation`] set to [`Isolation::Process`] (cluster runtimes only) its node
//! runs it in a worker process of its own, which may have its own environment variables
//! ([`ActorOptions::env`]): a crash of that process (an abort, a segfault in native code) kills
//! only that actor, whose calls then fail with an error naming the exit signal or status. The
//! handle is the same; see [`crate::cluster::run_actor_process_if_asked`] for what the program
//! must do. A process actor's resources come back when its node has seen the process exit, which
//! may be a moment after a call in flight failed.
//!
//! Messages, replies and init values are serde types: local calls move them, calls to actors on
//! other nodes serialize them, and the caller's code is the same either way. An
//! [`ObjectRef`](crate::ObjectRef) inside a message or reply keeps its object alive either way:
//! moved, it stays owning; sent to another node, it arrives holding a borrow counted at the
//! object's owner (see [`crate::object_store`]). Init values are encoded without that context:
//! pass objects to an actor in messages, not in its `Init`.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::RemoteActor;
use crate::error::{Result, RuntimeError};
use crate::mailbox::{self, Inbox, Next, Outbox, SendError, StopRequest};
pub use crate::reply::Reply;
use crate::reply::{self as reply_channel, ReplySender};
use crate::runtime::{Reservation, Runtime};

/// The error type actor code returns; its text reaches the caller.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An actor error that restarting the actor cannot fix: a bug in its inputs or code (a
/// non-finite number from an env, an invalid config) rather than a transient failure. The caller
/// gets [`RuntimeError::ActorFailed`] with `recoverable: false`, so a supervisor knows not to
/// restart or retry.
///
/// ```
/// use rl_runtime::{BoxError, Unrecoverable};
///
/// let e: BoxError = Box::new(Unrecoverable::new("observation 3 is NaN".into()));
/// assert!(Unrecoverable::is(&*e));
/// assert_eq!(e.to_string(), "observation 3 is NaN");
/// ```
#[derive(Debug)]
pub struct Unrecoverable(BoxError);

impl Unrecoverable {
    /// Marks `error` as one a restart cannot fix.
    pub fn new(error: BoxError) -> Self {
        Self(error)
    }

    /// True if `error` is marked unrecoverable.
    pub fn is(error: &(dyn std::error::Error + 'static)) -> bool {
        error.is::<Self>()
    }
}

impl std::fmt::Display for Unrecoverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Unrecoverable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The [`RuntimeError::ActorFailed`] for an error returned by actor `actor`.
fn failed(actor: &str, context: &str, e: &BoxError) -> RuntimeError {
    RuntimeError::ActorFailed {
        actor: actor.to_string(),
        message: format!("{context}{e}"),
        recoverable: !Unrecoverable::is(&**e),
    }
}

/// A type whose instances run as actors.
pub trait Actor: Sized + 'static {
    /// The name the type is registered under, the same on every node.
    const TYPE_NAME: &'static str;
    /// What the actor is built from; kept to rebuild it after a panic.
    type Init: Clone + Send + Serialize + DeserializeOwned + 'static;
    /// The messages it handles.
    type Msg: Send + Serialize + DeserializeOwned + 'static;
    /// Its replies.
    type Reply: Send + Serialize + DeserializeOwned + 'static;

    /// Builds the actor on its own thread.
    fn new(init: Self::Init, ctx: &ActorContext) -> std::result::Result<Self, BoxError>;

    /// Handles one message.
    fn handle(&mut self, msg: Self::Msg, ctx: &ActorContext) -> std::result::Result<Self::Reply, BoxError>;
}

/// What an actor sees of the world: its name and the runtime (to put and get objects).
#[derive(Debug, Clone)]
pub struct ActorContext {
    name: String,
    runtime: Runtime,
}

impl ActorContext {
    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime the actor runs in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

/// How to run an actor.
#[derive(Debug, Clone, PartialEq)]
pub struct ActorOptions {
    /// A name for logs and errors; defaults to `TYPE_NAME#index`.
    pub name: Option<String>,
    /// Logical CPUs reserved while the actor lives.
    pub num_cpus: f64,
    /// GPUs reserved while the actor lives.
    pub num_gpus: f64,
    /// Custom resources reserved while the actor lives.
    pub resources: BTreeMap<String, f64>,
    /// How many times a panicked actor is rebuilt from its `Init` before it is declared dead.
    pub max_restarts: u32,
    /// How many messages may wait in the actor's mailbox; at least 1 (`spawn` rejects 0). Senders
    /// block while it is full (`try_tell` does not), which bounds the memory a slow actor's
    /// callers can fill.
    pub mailbox_capacity: usize,
    /// Which node runs the actor. Only a cluster runtime looks at it; an embedded runtime runs
    /// every actor in-process.
    pub placement: Placement,
    /// How long a cluster spawn waits for a node with room before failing with
    /// [`RuntimeError::Unschedulable`].
    pub placement_timeout: std::time::Duration,
    /// A thread of its node's process (the default), or a worker process of its own (see
    /// [`Isolation`]).
    pub isolation: Isolation,
    /// Environment variables set for the actor, on top of its node's environment. Only a
    /// process actor can have them (threads share their process's environment): `spawn` of a
    /// thread actor with any fails with [`RuntimeError::InvalidActorOption`]. They travel with
    /// the spawn and are applied on whichever node the actor lands.
    pub env: BTreeMap<String, String>,
}

/// How an actor is isolated from the rest of its node.
///
/// - `Thread`: the actor runs on a thread of its node's process. Spawning and calling are
///   cheapest (no process start, and a caller in the same process moves messages without
///   encoding them), but a crash of the process (an abort, a segfault in native code, running
///   out of memory) takes the node and every actor on it along.
/// - `Process`: the node starts a worker process for the actor (its own program, re-executed;
///   see [`crate::cluster::run_actor_process_if_asked`]), as Ray runs each actor in a worker
///   process. A crash of that process kills only this actor: its node notices the exit, marks the
///   actor dead with the exit status or signal as the reason (calls fail with
///   [`RuntimeError::DiedDuringCall`] or [`RuntimeError::NotDelivered`] saying it died) and frees
///   its resources. It can have its own environment variables ([`ActorOptions::env`]). Every
///   call crosses a process boundary, so it is encoded even from its own node. A panic is still
///   caught inside the worker and restarted per [`ActorOptions::max_restarts`]; a crash of the
///   process is not restarted. Process actors need a cluster runtime; an embedded runtime refuses
///   them with [`RuntimeError::InvalidActorOption`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A thread of the node's process.
    #[default]
    Thread,
    /// A worker process of its own, started by its node.
    Process,
}

/// Where a cluster runtime places an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Any worker node with the resources free (the head picks the one with the most free CPUs).
    /// Drivers are never picked: they offer no CPUs to remote work.
    #[default]
    Any,
    /// This process (a learner next to the driver that talks to it).
    Local,
    /// The node with this id.
    Node(u32),
    /// A bundle of a placement group (see [`crate::cluster::PlacementGroup`]): the one with this
    /// index, or (`None`) the first with room. The actor takes its resources from the bundle's
    /// reservation and waits while the group is pending.
    Group {
        /// The group's id.
        group: u64,
        /// The bundle's index.
        bundle: Option<u32>,
    },
}

/// The default [`ActorOptions::mailbox_capacity`]: deep enough that callers of a busy actor rarely
/// wait, small enough that a stalled one holds a bounded backlog.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

impl Default for ActorOptions {
    /// One CPU, no GPU, no restarts (Ray's defaults for actor scheduling), a mailbox of
    /// [`DEFAULT_MAILBOX_CAPACITY`] messages, any node, and 60 s to find one.
    fn default() -> Self {
        Self {
            name: None,
            num_cpus: 1.0,
            num_gpus: 0.0,
            resources: BTreeMap::new(),
            max_restarts: 0,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            placement: Placement::Any,
            placement_timeout: std::time::Duration::from_secs(60),
            isolation: Isolation::Thread,
            env: BTreeMap::new(),
        }
    }
}

impl ActorOptions {
    /// Checks `mailbox_capacity`: a mailbox holds at least one message.
    pub(crate) fn check_mailbox(&self, actor: &str) -> Result<()> {
        if self.mailbox_capacity == 0 {
            return Err(RuntimeError::InvalidActorOption {
                actor: actor.to_string(),
                option: "mailbox_capacity".into(),
                expected: "at least 1".into(),
                found: "0".into(),
            });
        }
        Ok(())
    }

    /// Checks the options that need no runtime to judge: [`ActorOptions::env`] only with process
    /// isolation, and names and values a process environment can hold.
    pub(crate) fn check_isolation(&self, actor: &str) -> Result<()> {
        let invalid = |expected: &str, found: String| RuntimeError::InvalidActorOption {
            actor: actor.to_string(),
            option: "env".into(),
            expected: expected.into(),
            found,
        };
        if self.isolation == Isolation::Thread && !self.env.is_empty() {
            let names: Vec<&str> = self.env.keys().map(String::as_str).collect();
            return Err(invalid(
                "empty for a thread actor (threads share their process's environment; use isolation: \
                 Isolation::Process)",
                names.join(", "),
            ));
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid("variable names that are not empty and hold no '=' or NUL", format!("{key:?}")));
            }
            if value.contains('\0') {
                return Err(invalid("values without NUL", format!("{key}={value:?}")));
            }
            if key == crate::cluster::WORKER_ENV {
                return Err(invalid("no runtime-reserved variable", key.clone()));
            }
        }
        Ok(())
    }
}

/// One message in a mailbox, with where its answer goes (`None` for `tell`).
struct Envelope<A: Actor> {
    msg: A::Msg,
    reply: Option<ReplySender<A::Reply>>,
}

/// Shared liveness of one actor: empty while it runs, else why it stopped. Written once, when the
/// actor dies (see [`Exit::die`]).
pub(crate) type DeathNote = Arc<OnceLock<String>>;

/// Why the actor is dead, as its death note says.
fn death_reason(death: &DeathNote) -> String {
    death.get().cloned().unwrap_or_else(|| mailbox::STOPPED.into())
}

/// The error for a message actor `actor` never took up.
pub(crate) fn not_delivered(actor: &str, death: &DeathNote) -> RuntimeError {
    RuntimeError::NotDelivered { actor: actor.to_string(), reason: death_reason(death) }
}

/// The error for a message actor `actor` took up but died before answering.
pub(crate) fn died_during_call(actor: &str, death: &DeathNote) -> RuntimeError {
    RuntimeError::DiedDuringCall { actor: actor.to_string(), reason: death_reason(death) }
}

/// Why [`ActorHandle::try_tell`] did not queue a message; the message comes back either way.
pub enum TryTellError<M> {
    /// The mailbox is at capacity. Nothing was sent; retry later (or call `tell`, which waits).
    MailboxFull {
        /// The message, unsent.
        msg: M,
        /// The actor's name.
        actor: String,
        /// The mailbox's capacity.
        capacity: usize,
    },
    /// The actor is not running. Nothing was sent; safe to send to another actor.
    NotDelivered {
        /// The message, unsent.
        msg: M,
        /// The actor's name.
        actor: String,
        /// Why the actor stopped.
        reason: String,
    },
}

impl<M> TryTellError<M> {
    /// The message that was not sent.
    pub fn into_msg(self) -> M {
        match self {
            Self::MailboxFull { msg, .. } | Self::NotDelivered { msg, .. } => msg,
        }
    }

    /// The error without the message: [`RuntimeError::MailboxFull`] or
    /// [`RuntimeError::NotDelivered`].
    pub fn to_error(&self) -> RuntimeError {
        match self {
            Self::MailboxFull { actor, capacity, .. } => {
                RuntimeError::MailboxFull { actor: actor.clone(), capacity: *capacity }
            }
            Self::NotDelivered { actor, reason, .. } => {
                RuntimeError::NotDelivered { actor: actor.clone(), reason: reason.clone() }
            }
        }
    }
}

impl<M> std::fmt::Debug for TryTellError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message is left out so that any message type can be reported.
        write!(f, "TryTellError({:?})", self.to_error())
    }
}

impl<M> std::fmt::Display for TryTellError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_error().fmt(f)
    }
}

impl<M> std::error::Error for TryTellError<M> {}

impl<M> From<TryTellError<M>> for RuntimeError {
    fn from(e: TryTellError<M>) -> Self {
        e.to_error()
    }
}

/// A handle to a running actor, in this process or on another node. Cheap to clone;
/// `Send + Sync`.
pub struct ActorHandle<A: Actor> {
    name: Arc<str>,
    id: u64,
    target: Target<A>,
}

/// How many times an actor was rebuilt after a panic, shared with its handles.
pub(crate) type Restarts = Arc<std::sync::atomic::AtomicU32>;

/// Where the actor's mailbox is.
enum Target<A: Actor> {
    /// In this process.
    Local { outbox: Outbox<Envelope<A>>, death: DeathNote, restarts: Restarts },
    /// On another node: messages are encoded and sent on that node's call stream.
    Remote(Arc<RemoteActor>),
}

impl<A: Actor> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        let target = match &self.target {
            Target::Local { outbox, death, restarts } => {
                Target::Local { outbox: outbox.clone(), death: death.clone(), restarts: restarts.clone() }
            }
            Target::Remote(r) => Target::Remote(r.clone()),
        };
        Self { name: self.name.clone(), id: self.id, target }
    }
}

impl<A: Actor> std::fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorHandle({})", self.name)
    }
}

/// Where an actor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorLocation {
    /// The node's id (0 in an embedded runtime). A process actor's worker process is a node of
    /// its own, hidden from placement, so this is that node's id.
    pub node_id: u32,
    /// The process id of the actor's process: its node's, or for a process actor its worker
    /// process's.
    pub pid: u32,
    /// The node's address, empty in an embedded runtime.
    pub address: String,
}

impl<A: Actor> ActorHandle<A> {
    pub(crate) fn remote(name: String, remote: Arc<RemoteActor>) -> Self {
        Self { name: name.into(), id: remote.actor_id, target: Target::Remote(remote) }
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actor's id, unique cluster-wide (its node sits in the high bits, as in object ids).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node and process the actor runs in.
    pub fn location(&self) -> ActorLocation {
        match &self.target {
            Target::Local { .. } => ActorLocation {
                node_id: crate::object_store::owner_node(self.id),
                pid: std::process::id(),
                address: String::new(),
            },
            Target::Remote(r) => ActorLocation { node_id: r.node_id(), pid: r.pid, address: r.address().to_string() },
        }
    }

    /// Sends `msg` and returns its pending reply: `.await` it, or `.wait()` for it from any thread.
    ///
    /// Blocks while the mailbox is full (the backpressure of
    /// [`ActorOptions::mailbox_capacity`]), so avoid it on an async executor's thread when the
    /// actor may be backed up. If the actor is dead, the reply is [`RuntimeError::NotDelivered`].
    /// For an actor on another node the message is encoded here and its reply decoded on
    /// arrival; a lost connection fails the reply with [`RuntimeError::DiedDuringCall`].
    pub fn call(&self, msg: A::Msg) -> Reply<A::Reply> {
        match &self.target {
            Target::Local { outbox, death, .. } => {
                let (tx, reply) = reply_channel::channel(self.name.clone(), death.clone());
                match outbox.send(Envelope { msg, reply: Some(tx) }) {
                    Ok(()) => reply,
                    Err(e) => Reply::failed(self.send_error(e)),
                }
            }
            Target::Remote(r) => {
                let (tx, reply) = reply_channel::remote_channel(self.name.clone(), r.death.clone());
                let remote = r.clone();
                let on_reply = Box::new(move |result: Result<bytes::Bytes>| {
                    tx.handled().send(result.and_then(|b| remote.decode::<A::Reply>(&b)));
                });
                match r.encode(&msg).and_then(|payload| r.send(payload, Some(on_reply))) {
                    Ok(()) => reply,
                    Err(e) => Reply::failed(e),
                }
            }
        }
    }

    /// Queues `msg` without waiting for a reply; `Ok` means queued, not handled (a failure while
    /// handling it is logged, and if the actor dies first it is dropped).
    ///
    /// Blocks while the mailbox is full, like [`ActorHandle::call`]; [`ActorHandle::try_tell`]
    /// does not. Fails with [`RuntimeError::NotDelivered`] if the actor is dead.
    pub fn tell(&self, msg: A::Msg) -> Result<()> {
        match &self.target {
            Target::Local { outbox, .. } => outbox.send(Envelope { msg, reply: None }).map_err(|e| self.send_error(e)),
            Target::Remote(r) => r.send(r.encode(&msg)?, None),
        }
    }

    /// Queues `msg` if the mailbox has room now; never blocks. A full mailbox or a dead actor
    /// hands the message back in the error. For an actor on another node, "room" is room on the
    /// connection's send queue.
    pub fn try_tell(&self, msg: A::Msg) -> std::result::Result<(), TryTellError<A::Msg>> {
        let actor = self.name.to_string();
        match &self.target {
            Target::Local { outbox, .. } => outbox.try_send(Envelope { msg, reply: None }).map_err(|e| match e {
                SendError::Full(envelope) => {
                    TryTellError::MailboxFull { msg: envelope.msg, actor, capacity: outbox.capacity() }
                }
                SendError::Closed(envelope, reason) => TryTellError::NotDelivered { msg: envelope.msg, actor, reason },
            }),
            Target::Remote(r) => {
                let payload = match r.encode(&msg) {
                    Ok(p) => p,
                    Err(e) => return Err(TryTellError::NotDelivered { msg, actor, reason: e.to_string() }),
                };
                match r.try_send(payload) {
                    Ok(()) => Ok(()),
                    Err(RuntimeError::MailboxFull { capacity, .. }) => {
                        Err(TryTellError::MailboxFull { msg, actor, capacity })
                    }
                    Err(e) => Err(TryTellError::NotDelivered { msg, actor, reason: e.to_string() }),
                }
            }
        }
    }

    /// Sends `msg` to a local actor from an async task without blocking the executor, with
    /// `on_answer` run on the actor's thread when it answers (or with `None` and whether it took
    /// the message up, if it never will). A full mailbox hands the send to a blocking thread. Used
    /// by a node serving calls from other nodes: the answer is encoded and sent on without waking
    /// any task in between.
    pub(crate) fn call_with(
        &self,
        msg: A::Msg,
        on_answer: impl FnOnce(Option<Result<A::Reply>>, bool) + Send + 'static,
    ) {
        let Target::Local { outbox, .. } = &self.target else { unreachable!("a node hosts only its own actors") };
        let envelope = Envelope { msg, reply: Some(reply_channel::callback(on_answer)) };
        if let Err(SendError::Full(envelope)) = outbox.try_send(envelope) {
            let outbox = outbox.clone();
            // A closed mailbox drops the envelope, whose sender then reports "not delivered".
            tokio::task::spawn_blocking(move || drop(outbox.send(envelope)));
        }
    }

    /// The error of a failed local send (the message it hands back is dropped).
    fn send_error(&self, e: SendError<Envelope<A>>) -> RuntimeError {
        let actor = self.name.to_string();
        match e {
            SendError::Closed(_, reason) => RuntimeError::NotDelivered { actor, reason },
            SendError::Full(_) => RuntimeError::MailboxFull { actor, capacity: self.mailbox_capacity() },
        }
    }

    /// Asks the actor to stop once the message in progress is handled; never blocks, even when
    /// the mailbox is full. Messages still queued are not delivered (their calls fail with
    /// [`RuntimeError::NotDelivered`], reason `"stopped"`). Returns before the actor has stopped;
    /// [`ActorHandle::is_alive`] turns false when it has (for an actor on another node, once
    /// this process hears of it).
    pub fn stop(&self) {
        match &self.target {
            Target::Local { outbox, .. } => outbox.request(StopRequest::Now),
            Target::Remote(r) => r.stop(false),
        }
    }

    /// Ends the actor at once, without waiting for the message in progress (Ray's `ray.kill`):
    /// an actor in a worker process of its own ([`Isolation::Process`]) has that process ended,
    /// and its calls in flight fail with [`RuntimeError::DiedDuringCall`]. A thread cannot be
    /// interrupted, so for a thread actor this is [`ActorHandle::stop`]: it stops once the
    /// message in progress returns. Never blocks.
    pub fn kill(&self) {
        match &self.target {
            Target::Local { outbox, .. } => outbox.request(StopRequest::Now),
            Target::Remote(r) => r.stop(true),
        }
    }

    /// Asks the actor to handle the messages queued when it reads the request, then stop (what
    /// `Runtime::shutdown` does); never blocks.
    pub(crate) fn drain_and_stop(&self) {
        if let Target::Local { outbox, .. } = &self.target {
            outbox.request(StopRequest::Drain);
        }
    }

    /// True while the actor runs, as far as this process knows. Once false, its resources are
    /// back with its node and every send fails with [`RuntimeError::NotDelivered`]. An actor on
    /// another node is known dead once a call says so or its node is declared dead.
    pub fn is_alive(&self) -> bool {
        self.death().get().is_none()
    }

    /// The shared note that records the actor's death.
    pub(crate) fn death_note(&self) -> DeathNote {
        self.death().clone()
    }

    /// The shared count of the actor's restarts after panics; `None` for an actor on another
    /// node (its node reports the count to the head's directory).
    pub(crate) fn restart_count(&self) -> Option<Restarts> {
        match &self.target {
            Target::Local { restarts, .. } => Some(restarts.clone()),
            Target::Remote(_) => None,
        }
    }

    fn death(&self) -> &DeathNote {
        match &self.target {
            Target::Local { death, .. } => death,
            Target::Remote(r) => &r.death,
        }
    }

    /// How many messages its mailbox holds at most ([`ActorOptions::mailbox_capacity`]).
    pub fn mailbox_capacity(&self) -> usize {
        match &self.target {
            Target::Local { outbox, .. } => outbox.capacity(),
            Target::Remote(r) => r.mailbox_capacity,
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Starts the actor's thread. Called by [`Runtime::spawn`] after scheduling, with
/// `options.mailbox_capacity` already checked to be at least 1.
///
/// The thread owns `reservation` and returns it when the actor dies (see [`Exit::die`]). If the
/// thread cannot start, the closure that holds it is dropped here, which returns it as well; and
/// if the constructor fails, it is returned before the error reaches the caller.
pub(crate) fn start<A: Actor>(
    init: A::Init,
    options: &ActorOptions,
    id: u64,
    name: String,
    runtime: Runtime,
    reservation: Reservation,
) -> Result<(ActorHandle<A>, JoinHandle<()>)> {
    let death: DeathNote = Arc::new(OnceLock::new());
    let (outbox, inbox) = mailbox::mailbox::<Envelope<A>>(options.mailbox_capacity, death.clone());
    let restarts = Restarts::default();
    let counter = restarts.clone();
    let handle = ActorHandle { name: name.clone().into(), id, target: Target::Local { outbox, death, restarts } };
    let max_restarts = options.max_restarts;
    let ctx = ActorContext { name: name.clone(), runtime };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut exit =
                Exit { reservation: Some(reservation), inbox: Some(inbox), in_flight: None, name: ctx.name.clone() };
            run_actor::<A>(init, &ctx, &mut exit, (max_restarts, &counter), ready_tx);
        })
        .map_err(|e| RuntimeError::NotDelivered { actor: name.clone(), reason: format!("cannot start thread: {e}") })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((handle, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(RuntimeError::NotDelivered { actor: name, reason: "the constructor's thread exited".into() })
        }
    }
}

/// What the actor thread holds that callers can observe: its reservation, its mailbox (whose
/// closing writes the death note) and the reply of the call in progress. [`Exit::die`] changes
/// them in one fixed order; dropping an `Exit` that has not died yet (an unexpected unwind of the
/// thread) dies with a generic reason.
struct Exit<A: Actor> {
    reservation: Option<Reservation>,
    inbox: Option<Inbox<Envelope<A>>>,
    /// The reply of the message being handled; dropped unanswered only if the thread dies with it.
    in_flight: Option<ReplySender<A::Reply>>,
    name: String,
}

impl<A: Actor> Exit<A> {
    /// The next thing to do: a message, or a stop (requested, or because every handle is gone).
    fn next(&mut self) -> Next<Envelope<A>> {
        match &mut self.inbox {
            Some(inbox) => inbox.next(),
            None => Next::Stop(mailbox::STOPPED),
        }
    }

    /// Makes the actor's death visible, in this order: its resources go back to the runtime,
    /// then its death note is written (`is_alive()` turns false, later sends fail with
    /// [`RuntimeError::NotDelivered`] carrying `reason`), then the queued messages are dropped
    /// (their calls fail the same way), then a call still in progress, if the thread is dying
    /// under it, fails with [`RuntimeError::DiedDuringCall`]. The caller sends its final reply, if
    /// any, only after this returns, so whoever observes the death in any of these ways also
    /// observes the resources released.
    fn die(&mut self, reason: &str) {
        drop(self.reservation.take());
        if let Some(inbox) = self.inbox.take() {
            inbox.close(reason);
        }
        drop(self.in_flight.take());
        tracing::debug!(actor = %self.name, %reason, "actor stopped");
    }

    /// Answers the call in progress (or logs the failure of a `tell`).
    fn answer(&mut self, result: Result<A::Reply>) {
        send_reply(self.in_flight.take(), result, &self.name);
    }
}

impl<A: Actor> Drop for Exit<A> {
    fn drop(&mut self) {
        if self.inbox.is_some() {
            self.die("the actor thread exited unexpectedly");
        }
    }
}

fn construct<A: Actor>(init: &A::Init, ctx: &ActorContext) -> Result<A> {
    match catch_unwind(AssertUnwindSafe(|| A::new(init.clone(), ctx))) {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(failed(&ctx.name, "constructor: ", &e)),
        Err(p) => Err(RuntimeError::ActorPanicked {
            actor: ctx.name.clone(),
            message: format!("constructor: {}", panic_message(&*p)),
        }),
    }
}

/// Drops an actor instance before its resources are returned or its successor is built; a panic
/// in its `Drop` is logged, not propagated.
fn dispose<A: Actor>(actor: A, ctx: &ActorContext) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(actor))) {
        tracing::error!(actor = %ctx.name, panic = %panic_message(&*p), "dropping the actor panicked");
    }
}

fn send_reply<R>(reply: Option<ReplySender<R>>, result: Result<R>, actor: &str) {
    match (reply, result) {
        (Some(tx), result) => tx.send(result),
        (None, Err(e)) => tracing::error!(%actor, error = %e, "message sent with tell failed"),
        (None, Ok(_)) => {}
    }
}

/// The actor's thread body. Every way out goes through [`Exit::die`] before the last reply is
/// sent: a constructor error, a stop, the last handle dropped, a panic with no restarts left, a
/// failed restart.
fn run_actor<A: Actor>(
    init: A::Init,
    ctx: &ActorContext,
    exit: &mut Exit<A>,
    (max_restarts, counter): (u32, &Restarts),
    ready: std::sync::mpsc::Sender<Result<()>>,
) {
    let mut actor = match construct::<A>(&init, ctx) {
        Ok(a) => a,
        Err(e) => {
            exit.die(&e.to_string());
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut restarts: u32 = 0;
    loop {
        let msg = match exit.next() {
            Next::Msg(Envelope { msg, reply }) => {
                // From here until it is answered, a death of this thread is a death during the call.
                exit.in_flight = reply.map(ReplySender::handled);
                msg
            }
            Next::Stop(reason) => {
                dispose(actor, ctx);
                exit.die(reason);
                return;
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| actor.handle(msg, ctx)));
        let message = match outcome {
            Ok(Ok(r)) => {
                exit.answer(Ok(r));
                continue;
            }
            Ok(Err(e)) => {
                exit.answer(Err(failed(&ctx.name, "", &e)));
                continue;
            }
            // Should dropping the payload panic, the thread unwinds with the call in flight, and
            // `Exit`'s drop fails it with `DiedDuringCall`.
            Err(p) => panic_message(&*p),
        };
        // The handler panicked. The caller hears of it only once the actor's next state is
        // settled: rebuilt and running (it keeps its reservation), or dead and released.
        let reply = exit.in_flight.take();
        let panicked = RuntimeError::ActorPanicked { actor: ctx.name.clone(), message };
        dispose(actor, ctx);
        if restarts >= max_restarts {
            exit.die(&format!("panicked with no restarts left (max_restarts = {max_restarts})"));
            send_reply(reply, Err(panicked), &ctx.name);
            return;
        }
        restarts += 1;
        counter.store(restarts, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(actor = %ctx.name, restarts, "restarting actor after a panic");
        actor = match construct::<A>(&init, ctx) {
            Ok(a) => a,
            Err(e) => {
                exit.die(&format!("restart failed: {e}"));
                send_reply(reply, Err(panicked), &ctx.name);
                return;
            }
        };
        send_reply(reply, Err(panicked), &ctx.name);
    }
}
