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
//! [`RuntimeError::ActorDead`].
//!
//! ## Death is one step, seen the same way by every caller
//!
//! An actor dies when its constructor fails, when it is stopped (`stop` or `Runtime::shutdown`),
//! when it panics with no restarts left, or when a restart fails. (Dropping every handle would
//! end it too, but the runtime keeps one until shutdown.) Its thread then, in this order: drops
//! the actor instance, returns the actor's resources to the runtime, writes the death note
//! (`is_alive()` turns false), closes the mailbox (queued and later calls fail with
//! [`RuntimeError::ActorDead`] and the reason), and only then sends the reply to the call that
//! killed it. So a caller that sees the death in any way (that reply, an `ActorDead`, or
//! `!is_alive()`) also sees the resources free. A panicked call's reply is likewise sent only
//! after the restart: when it arrives, the actor is either rebuilt (keeping its reservation) or
//! dead and released. A failed constructor returns the reservation before `spawn` returns the
//! error.
//!
//! Messages, replies and init values are serde types: local calls move them, calls to actors on
//! other nodes serialize them, and the caller's code is the same either way. An
//! [`ObjectRef`](crate::ObjectRef) inside a reply is the exception to "the same either way": moved,
//! it stays owning; serialized, it arrives borrowed (see its docs for what the sender must do).

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::error::{Result, RuntimeError};
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
}

impl Default for ActorOptions {
    /// One CPU, no GPU, no restarts (Ray's defaults for actor scheduling).
    fn default() -> Self {
        Self { name: None, num_cpus: 1.0, num_gpus: 0.0, resources: BTreeMap::new(), max_restarts: 0 }
    }
}

enum Envelope<A: Actor> {
    Call(A::Msg, Option<oneshot::Sender<Result<A::Reply>>>),
    Stop,
}

/// Shared liveness of one actor: `None` while it runs, else why it stopped.
pub(crate) type DeathNote = Arc<Mutex<Option<String>>>;

/// A handle to a running actor. Cheap to clone; `Send + Sync`.
pub struct ActorHandle<A: Actor> {
    name: Arc<str>,
    tx: Sender<Envelope<A>>,
    death: DeathNote,
}

impl<A: Actor> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), tx: self.tx.clone(), death: self.death.clone() }
    }
}

impl<A: Actor> std::fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorHandle({})", self.name)
    }
}

impl<A: Actor> ActorHandle<A> {
    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn dead(&self) -> RuntimeError {
        let reason = self.death.lock().unwrap_or_else(|e| e.into_inner()).clone();
        RuntimeError::ActorDead { actor: self.name.to_string(), reason: reason.unwrap_or_else(|| "stopped".into()) }
    }

    /// Sends `msg` and returns its pending reply: `.await` it or `.wait()` for it.
    pub fn call(&self, msg: A::Msg) -> Reply<A::Reply> {
        let (tx, rx) = oneshot::channel();
        match self.tx.send(Envelope::Call(msg, Some(tx))) {
            Ok(()) => Reply { inner: ReplyInner::Pending(rx, self.name.clone(), self.death.clone()) },
            Err(_) => Reply { inner: ReplyInner::Failed(Some(self.dead())) },
        }
    }

    /// Sends `msg` without waiting for a reply. Errors only if the actor is already gone; a
    /// failure while handling the message is logged.
    pub fn tell(&self, msg: A::Msg) -> Result<()> {
        self.tx.send(Envelope::Call(msg, None)).map_err(|_| self.dead())
    }

    /// Asks the actor to stop after the messages already queued.
    pub fn stop(&self) {
        let _ = self.tx.send(Envelope::Stop);
    }

    /// True while the actor runs.
    pub fn is_alive(&self) -> bool {
        self.death.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

/// A pending actor reply. Implements `Future`; [`Reply::wait`] blocks the thread instead.
pub struct Reply<R> {
    inner: ReplyInner<R>,
}

enum ReplyInner<R> {
    Pending(oneshot::Receiver<Result<R>>, Arc<str>, DeathNote),
    Failed(Option<RuntimeError>),
}

fn dropped_reply(name: &str, death: &DeathNote) -> RuntimeError {
    let reason = death.lock().unwrap_or_else(|e| e.into_inner()).clone();
    RuntimeError::ActorDead { actor: name.to_string(), reason: reason.unwrap_or_else(|| "stopped".into()) }
}

impl<R> Reply<R> {
    /// Blocks until the reply arrives. Do not call from inside an async task; `.await` there.
    pub fn wait(self) -> Result<R> {
        match self.inner {
            ReplyInner::Pending(rx, name, death) => {
                rx.blocking_recv().unwrap_or_else(|_| Err(dropped_reply(&name, &death)))
            }
            ReplyInner::Failed(e) => Err(e.expect("a failed reply is consumed once")),
        }
    }
}

impl<R> Future for Reply<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        // `Reply` holds no self-references, so it is `Unpin` and can be projected plainly.
        match &mut self.get_mut().inner {
            ReplyInner::Pending(rx, name, death) => {
                Pin::new(rx).poll(cx).map(|r| r.unwrap_or_else(|_| Err(dropped_reply(name, death))))
            }
            ReplyInner::Failed(e) => Poll::Ready(Err(e.take().expect("a failed reply is polled to completion once"))),
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

/// Starts the actor's thread. Called by [`Runtime::spawn`] after scheduling.
///
/// The thread owns `reservation` and returns it when the actor dies (see [`Exit::die`]). If the
/// thread cannot start, the closure that holds it is dropped here, which returns it as well; and
/// if the constructor fails, it is returned before the error reaches the caller.
pub(crate) fn start<A: Actor>(
    init: A::Init,
    options: &ActorOptions,
    name: String,
    runtime: Runtime,
    reservation: Reservation,
) -> Result<(ActorHandle<A>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded::<Envelope<A>>();
    let death: DeathNote = Arc::new(Mutex::new(None));
    let handle = ActorHandle { name: name.clone().into(), tx, death: death.clone() };
    let max_restarts = options.max_restarts;
    let ctx = ActorContext { name: name.clone(), runtime };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut exit = Exit { reservation: Some(reservation), death, mailbox: Some(rx), name: ctx.name.clone() };
            run_actor::<A>(init, &ctx, &mut exit, max_restarts, ready_tx);
        })
        .map_err(|e| RuntimeError::ActorDead { actor: name.clone(), reason: format!("cannot start thread: {e}") })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((handle, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(RuntimeError::ActorDead { actor: name, reason: "constructor thread exited".into() })
        }
    }
}

/// What the actor thread holds that callers can observe: its reservation, its death note and its
/// mailbox. [`Exit::die`] changes all three in one fixed order; dropping an `Exit` that has not
/// died yet (an unexpected unwind of the thread) dies with a generic reason.
struct Exit<A: Actor> {
    reservation: Option<Reservation>,
    death: DeathNote,
    mailbox: Option<Receiver<Envelope<A>>>,
    name: String,
}

impl<A: Actor> Exit<A> {
    /// The next message, or `None` once every handle is gone (or the actor has died).
    fn recv(&self) -> Option<Envelope<A>> {
        self.mailbox.as_ref()?.recv().ok()
    }

    /// Makes the actor's death visible, in this order: its resources go back to the runtime,
    /// then its death note is written (`is_alive()` turns false), then its mailbox closes (later
    /// sends, and calls still queued, fail with [`RuntimeError::ActorDead`] carrying `reason`).
    /// The caller sends its final reply, if any, only after this returns, so whoever observes the
    /// death in any of these ways also observes the resources released.
    fn die(&mut self, reason: &str) {
        drop(self.reservation.take());
        *self.death.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        drop(self.mailbox.take());
        tracing::debug!(actor = %self.name, %reason, "actor stopped");
    }
}

impl<A: Actor> Drop for Exit<A> {
    fn drop(&mut self) {
        if self.mailbox.is_some() {
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

fn send_reply<R>(reply: Option<oneshot::Sender<Result<R>>>, result: Result<R>, ctx: &ActorContext) {
    match (reply, result) {
        (Some(tx), result) => {
            let _ = tx.send(result);
        }
        (None, Err(e)) => tracing::error!(actor = %ctx.name, error = %e, "message sent with tell failed"),
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
    max_restarts: u32,
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
    let mut restarts = 0;
    loop {
        let (msg, reply) = match exit.recv() {
            Some(Envelope::Call(msg, reply)) => (msg, reply),
            Some(Envelope::Stop) => {
                dispose(actor, ctx);
                exit.die("stopped");
                return;
            }
            None => {
                dispose(actor, ctx);
                exit.die("all handles dropped");
                return;
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| actor.handle(msg, ctx)));
        let message = match outcome {
            Ok(Ok(r)) => {
                send_reply(reply, Ok(r), ctx);
                continue;
            }
            Ok(Err(e)) => {
                send_reply(reply, Err(failed(&ctx.name, "", &e)), ctx);
                continue;
            }
            Err(p) => panic_message(&*p),
        };
        // The handler panicked. The caller hears of it only once the actor's next state is
        // settled: rebuilt and running (it keeps its reservation), or dead and released.
        let panicked = RuntimeError::ActorPanicked { actor: ctx.name.clone(), message };
        dispose(actor, ctx);
        if restarts >= max_restarts {
            exit.die(&format!("panicked with no restarts left (max_restarts = {max_restarts})"));
            send_reply(reply, Err(panicked), ctx);
            return;
        }
        restarts += 1;
        tracing::warn!(actor = %ctx.name, restarts, "restarting actor after a panic");
        actor = match construct::<A>(&init, ctx) {
            Ok(a) => a,
            Err(e) => {
                exit.die(&format!("restart failed: {e}"));
                send_reply(reply, Err(panicked), ctx);
                return;
            }
        };
        send_reply(reply, Err(panicked), ctx);
    }
}
