//! An actor's mailbox: a bounded queue of messages (the backpressure) and a control lane read first.
//!
//! Messages travel through a crossbeam `bounded` channel of `mailbox_capacity` slots: a sender
//! blocks while it is full, and [`Outbox::try_send`] hands the message back instead. Stop
//! requests do not queue behind messages: they raise a level in an atomic and leave a token on a
//! one-slot wake channel, which the actor reads before every message (`select_biased!`), so a stop
//! never waits for room in a full mailbox.
//!
//! The mailbox closes when the actor dies: the death note is written (later sends fail at once),
//! then every queued message is dropped, so their callers hear [`RuntimeError::NotDelivered`](crate::RuntimeError::NotDelivered)
//! instead of waiting forever. A crossbeam bounded channel keeps its queued messages while any
//! sender lives, so the actor cannot close it by dropping its receiver; instead every outbox keeps
//! a receiver too, and a send that finds the actor dead after pushing drops what is queued. Either
//! the dying actor's drain sees the pushed message or the sender sees the death note: both sides
//! put a `SeqCst` fence between their write and their read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering, fence};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::actor::DeathNote;

/// A stop request. Requests only ever rise: `Now` overrides `Drain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopRequest {
    /// Handle the messages queued when the actor reads the request, then stop; messages sent
    /// later are not delivered.
    Drain = 1,
    /// Stop after the message in progress; queued messages are not delivered.
    Now = 2,
}

/// The death reasons the mailbox itself produces.
pub(crate) const STOPPED: &str = "stopped";
/// See [`STOPPED`].
pub(crate) const SHUT_DOWN: &str = "the runtime shut down";
/// See [`STOPPED`].
pub(crate) const ALL_HANDLES_DROPPED: &str = "all handles dropped";

/// What the actor should do next.
pub(crate) enum Next<T> {
    /// Handle this message.
    Msg(T),
    /// Stop, for this reason.
    Stop(&'static str),
}

/// Why a send failed; the message comes back either way.
pub(crate) enum SendError<T> {
    /// The mailbox is at capacity (only from [`Outbox::try_send`]).
    Full(T),
    /// The actor is dead; its death note's reason.
    Closed(T, String),
}

/// The senders' end, one per actor handle.
pub(crate) struct Outbox<T> {
    calls: Sender<T>,
    /// Used only once the actor is dead, to drop messages that arrived after its final drain.
    leftovers: Receiver<T>,
    wake: Sender<()>,
    request: Arc<AtomicU8>,
    death: DeathNote,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
            leftovers: self.leftovers.clone(),
            wake: self.wake.clone(),
            request: self.request.clone(),
            death: self.death.clone(),
        }
    }
}

/// The actor's end.
pub(crate) struct Inbox<T> {
    calls: Receiver<T>,
    wake: Receiver<()>,
    request: Arc<AtomicU8>,
    death: DeathNote,
    /// While draining: how many of the messages queued at the request are still to be handled.
    draining: Option<usize>,
    /// A message received after a stop request; dropped with the queue when the mailbox closes.
    held: Option<T>,
}

/// A mailbox of `capacity` (at least 1) messages whose closing writes `death`.
pub(crate) fn mailbox<T>(capacity: usize, death: DeathNote) -> (Outbox<T>, Inbox<T>) {
    let (calls_tx, calls_rx) = crossbeam_channel::bounded(capacity);
    // One token is enough: the actor rereads the request level after every token.
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    let request = Arc::new(AtomicU8::new(0));
    let outbox = Outbox {
        calls: calls_tx,
        leftovers: calls_rx.clone(),
        wake: wake_tx,
        request: request.clone(),
        death: death.clone(),
    };
    (outbox, Inbox { calls: calls_rx, wake: wake_rx, request, death, draining: None, held: None })
}

impl<T> Outbox<T> {
    /// Queues `msg`, blocking while the mailbox is full. Fails only if the actor is dead.
    pub(crate) fn send(&self, msg: T) -> Result<(), SendError<T>> {
        if let Some(reason) = self.death.get() {
            return Err(SendError::Closed(msg, reason.clone()));
        }
        // Every outbox holds a receiver, so the channel never reports the receivers gone; a send
        // blocked on a full mailbox gets room when the dying actor drops what is queued.
        let sent = self.calls.send(msg);
        debug_assert!(sent.is_ok(), "an outbox keeps the channel's receiving side alive");
        self.discard_if_dead();
        Ok(())
    }

    /// Queues `msg` if there is room now; never blocks.
    pub(crate) fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        if let Some(reason) = self.death.get() {
            return Err(SendError::Closed(msg, reason.clone()));
        }
        match self.calls.try_send(msg) {
            Ok(()) => {
                self.discard_if_dead();
                Ok(())
            }
            Err(TrySendError::Full(msg)) => Err(SendError::Full(msg)),
            Err(TrySendError::Disconnected(msg)) => {
                Err(SendError::Closed(msg, self.death.get().cloned().unwrap_or_else(|| STOPPED.into())))
            }
        }
    }

    /// After a push: if the actor has died meanwhile, its final drain may have missed the message,
    /// so drop everything queued (no one else will).
    fn discard_if_dead(&self) {
        fence(Ordering::SeqCst);
        if self.death.get().is_some() {
            while self.leftovers.try_recv().is_ok() {}
        }
    }

    /// Asks the actor to stop; never blocks.
    pub(crate) fn request(&self, stop: StopRequest) {
        self.request.fetch_max(stop as u8, Ordering::SeqCst);
        // A full wake lane already holds a token the actor has yet to read, and it rereads the
        // level after reading it; a closed one belongs to a dead actor.
        let _ = self.wake.try_send(());
    }

    /// The mailbox's capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.calls.capacity().expect("an actor mailbox is a bounded channel")
    }
}

impl<T> Inbox<T> {
    /// Blocks for the next thing to do: a stop request first, then a queued message.
    pub(crate) fn next(&mut self) -> Next<T> {
        loop {
            let request = self.request.load(Ordering::SeqCst);
            if request >= StopRequest::Now as u8 {
                return Next::Stop(STOPPED);
            }
            if request >= StopRequest::Drain as u8 {
                let left = *self.draining.get_or_insert_with(|| self.calls.len());
                if left == 0 {
                    return Next::Stop(SHUT_DOWN);
                }
                self.draining = Some(left - 1);
                // Only this thread receives while the actor lives, so the counted messages are there.
                return self.calls.try_recv().map_or(Next::Stop(SHUT_DOWN), Next::Msg);
            }
            crossbeam_channel::select_biased! {
                recv(self.wake) -> token => if token.is_err() {
                    // Every handle is gone: handle what they queued, then stop.
                    return self.calls.recv().map_or(Next::Stop(ALL_HANDLES_DROPPED), Next::Msg);
                },
                recv(self.calls) -> msg => {
                    let Ok(msg) = msg else { return Next::Stop(ALL_HANDLES_DROPPED) };
                    // A stop requested before this message was sent may have raced past the wake
                    // lane; the message then counts as queued behind the stop, and is not handled.
                    if self.request.load(Ordering::SeqCst) >= StopRequest::Now as u8 {
                        self.held = Some(msg);
                        return Next::Stop(STOPPED);
                    }
                    return Next::Msg(msg);
                },
            }
        }
    }

    /// Closes the mailbox as the actor dies: writes the death note with `reason` (later sends
    /// fail), then drops every queued message (their callers hear `NotDelivered`).
    pub(crate) fn close(self, reason: &str) {
        let _ = self.death.set(reason.to_string());
        fence(Ordering::SeqCst);
        drop(self.held);
        while self.calls.try_recv().is_ok() {}
    }
}
