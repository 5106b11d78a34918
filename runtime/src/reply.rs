//! The reply channel of an actor call: one value, waited for by a blocked thread or polled as a future.
//!
//! A [`Reply`] is a slot behind a mutex with a condition variable (for [`Reply::wait`]) and the
//! waker of the last poll (for `.await`). Blocking on a condvar needs no async runtime, so `wait`
//! works from any thread, including one inside a tokio runtime, where a tokio oneshot's
//! `blocking_recv` would panic. The actor thread fills the slot through a [`ReplySender`]; a
//! sender dropped without replying says whether the actor had started handling the message, which
//! decides between [`RuntimeError::NotDelivered`] and [`RuntimeError::DiedDuringCall`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::actor::{DeathNote, died_during_call, not_delivered};
use crate::error::{Result, RuntimeError};

/// How long a blocking wait spins before it sleeps on the condition variable (see
/// `Reply::wait_until`): about what waking a sleeping thread costs on a virtual machine.
const SPIN: Duration = Duration::from_micros(50);

/// Where a reply stands.
enum State<R> {
    /// No answer yet; holds the waker of the last poll, if the reply was polled.
    Waiting(Option<Waker>),
    /// The answer, not taken yet.
    Sent(Result<R>),
    /// The sender was dropped without answering; `handled` tells whether the actor had taken the
    /// message up.
    Dropped { handled: bool },
    /// The receiver took the answer.
    Taken,
}

struct Slot<R> {
    state: Mutex<State<R>>,
    answered: Condvar,
    /// Set once the state has left `Waiting`: a waiter can spin on it without the lock.
    done: AtomicBool,
    /// How long a blocking wait spins before it sleeps: [`SPIN`] for an actor in this process,
    /// zero for one on another node (its answer takes a network round trip, and the spin would
    /// only take CPU from the threads that bring it).
    spin: Duration,
}

impl<R> Slot<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // Every critical section is one assignment, so a poisoned lock still holds a whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the slot out of `Waiting`, wakes a blocked `wait` and a pending poll.
    fn finish(&self, outcome: State<R>) {
        let waker = match std::mem::replace(&mut *self.lock(), outcome) {
            State::Waiting(waker) => waker,
            _ => None,
        };
        self.done.store(true, Ordering::Release);
        self.answered.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What to do with an answer delivered through a callback: the answer, or `None` with whether
/// the actor had taken the message up.
type Callback<R> = Box<dyn FnOnce(Option<Result<R>>, bool) + Send>;

/// Where a [`ReplySender`]'s answer goes.
enum Target<R> {
    /// A [`Reply`] someone waits on.
    Slot(Arc<Slot<R>>),
    /// A function run on the actor's thread (a node encoding the answer for a remote caller).
    Callback(Callback<R>),
}

/// The actor's end of a reply: answers once, or on drop reports that no answer will come.
pub(crate) struct ReplySender<R> {
    target: Option<Target<R>>,
    handled: bool,
}

impl<R> ReplySender<R> {
    /// Marks the message as taken up by the actor: if this sender is now dropped unanswered, the
    /// caller gets [`RuntimeError::DiedDuringCall`] rather than [`RuntimeError::NotDelivered`].
    pub(crate) fn handled(mut self) -> Self {
        self.handled = true;
        self
    }

    /// Delivers the answer.
    pub(crate) fn send(mut self, result: Result<R>) {
        match self.target.take() {
            Some(Target::Slot(slot)) => slot.finish(State::Sent(result)),
            Some(Target::Callback(f)) => f(Some(result), self.handled),
            None => {}
        }
    }
}

impl<R> Drop for ReplySender<R> {
    fn drop(&mut self) {
        match self.target.take() {
            Some(Target::Slot(slot)) => slot.finish(State::Dropped { handled: self.handled }),
            Some(Target::Callback(f)) => f(None, self.handled),
            None => {}
        }
    }
}

/// A reply sender that hands the answer to `f` on the actor's thread: `f(Some(answer), _)`, or
/// `f(None, handled)` if the sender is dropped unanswered.
pub(crate) fn callback<R>(f: impl FnOnce(Option<Result<R>>, bool) + Send + 'static) -> ReplySender<R> {
    ReplySender { target: Some(Target::Callback(Box::new(f))), handled: false }
}

/// A new reply channel for a call to actor `actor`, whose death note explains a dropped sender.
pub(crate) fn channel<R>(actor: Arc<str>, death: DeathNote) -> (ReplySender<R>, Reply<R>) {
    channel_spinning(actor, death, SPIN)
}

/// A reply channel for a call to an actor on another node: a blocking wait sleeps at once.
pub(crate) fn remote_channel<R>(actor: Arc<str>, death: DeathNote) -> (ReplySender<R>, Reply<R>) {
    channel_spinning(actor, death, Duration::ZERO)
}

fn channel_spinning<R>(actor: Arc<str>, death: DeathNote, spin: Duration) -> (ReplySender<R>, Reply<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting(None)),
        answered: Condvar::new(),
        done: AtomicBool::new(false),
        spin,
    });
    let sender = ReplySender { target: Some(Target::Slot(slot.clone())), handled: false };
    (sender, Reply { inner: Inner::Pending { slot, actor, death } })
}

/// A pending actor reply: `.await` it, or block the thread with [`Reply::wait`] or
/// [`Reply::wait_timeout`].
///
/// Both ways work from any thread: `wait` blocks on a condition variable and needs no async
/// runtime, so it is also safe inside a tokio runtime (where it blocks that runtime's thread
/// while it waits; in async code prefer `.await`).
///
/// The answer is the handler's result, or why there is none: [`RuntimeError::NotDelivered`] (the
/// actor never took the message up; safe to retry anywhere), [`RuntimeError::DiedDuringCall`]
/// (it took it up and died before answering; retry only idempotent messages),
/// [`RuntimeError::ActorFailed`] or [`RuntimeError::ActorPanicked`].
pub struct Reply<R> {
    inner: Inner<R>,
}

enum Inner<R> {
    Pending { slot: Arc<Slot<R>>, actor: Arc<str>, death: DeathNote },
    Failed(Option<RuntimeError>),
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Pending { actor, .. } => write!(f, "Reply(pending from {actor})"),
            Inner::Failed(e) => write!(f, "Reply({e:?})"),
        }
    }
}

impl<R> Reply<R> {
    /// A reply that is already the error `e` (the call could not be sent).
    pub(crate) fn failed(e: RuntimeError) -> Self {
        Self { inner: Inner::Failed(Some(e)) }
    }

    /// Blocks the thread until the reply arrives. Safe from any thread, including one inside a
    /// tokio runtime (it needs no runtime context), though async code should `.await` instead.
    pub fn wait(self) -> Result<R> {
        self.wait_until(None)
    }

    /// Blocks at most `timeout` for the reply; past it, fails with [`RuntimeError::Timeout`]
    /// naming the actor.
    ///
    /// A timeout does not cancel the call: the message stays queued or keeps running, and its
    /// answer, when it comes, is dropped. Retry after a timeout only with an idempotent message.
    pub fn wait_timeout(self, timeout: Duration) -> Result<R> {
        // A deadline past what `Instant` can represent is no deadline.
        self.wait_until(Instant::now().checked_add(timeout).map(|d| (d, timeout)))
    }

    fn wait_until(self, deadline: Option<(Instant, Duration)>) -> Result<R> {
        let (slot, actor, death) = match self.inner {
            Inner::Pending { slot, actor, death } => (slot, actor, death),
            Inner::Failed(e) => return Err(e.expect("a failed reply is consumed once")),
        };
        // Most replies inside a process come within microseconds; waking a thread parked on the
        // condition variable costs tens of them. So spin briefly first, then block.
        let spin_start = Instant::now();
        while !slot.done.load(Ordering::Acquire) && spin_start.elapsed() < slot.spin {
            std::hint::spin_loop();
        }
        let mut state = slot.lock();
        while matches!(*state, State::Waiting(_)) {
            state = match deadline {
                None => slot.answered.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some((at, timeout)) => {
                    let now = Instant::now();
                    if now >= at {
                        return Err(RuntimeError::Timeout(timeout, format!("a reply from actor {actor}")));
                    }
                    slot.answered.wait_timeout(state, at - now).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        take(&mut state, &actor, &death)
    }
}

/// Takes the answer out of a state that is no longer `Waiting`.
fn take<R>(state: &mut State<R>, actor: &str, death: &DeathNote) -> Result<R> {
    match std::mem::replace(state, State::Taken) {
        State::Sent(result) => result,
        State::Dropped { handled: false } => Err(not_delivered(actor, death)),
        State::Dropped { handled: true } => Err(died_during_call(actor, death)),
        State::Waiting(_) | State::Taken => unreachable!("a reply is taken once, after it was answered"),
    }
}

impl<R> Future for Reply<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        // `Reply` holds no self-references, so it is `Unpin` and can be projected plainly.
        match &mut self.get_mut().inner {
            Inner::Pending { slot, actor, death } => {
                let mut state = slot.lock();
                if let State::Waiting(waker) = &mut *state {
                    match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                Poll::Ready(take(&mut state, actor, death))
            }
            Inner::Failed(e) => Poll::Ready(Err(e.take().expect("a failed reply is polled to completion once"))),
        }
    }
}
