//! The object store: immutable byte objects behind reference-counted [`ObjectRef`]s, with byte
//! accounting and a memory cap.
//!
//! Objects are `bytes::Bytes`, so a `get` inside the process is a reference-count bump, never a
//! copy. An object lives while at least one owning [`ObjectRef`] to it lives, or until it is
//! [`ObjectStore::free`]d; afterwards `get` reports [`RuntimeError::ObjectFreed`]. Ids are never
//! reused. An object can also be *pending*: reserved by a task whose result is not in yet;
//! `get` and `wait` block (or `.await`) until it is.
//!
//! The store never grows past its cap: a put that does not fit waits up to the configured put
//! timeout for other objects to be freed, then fails with [`RuntimeError::StoreFull`].
//!
//! Every change (put, complete, free, last owning ref dropped) happens under one lock together
//! with its byte accounting, so [`ObjectStore::stats`] agrees with what `get` reports: once a
//! `get` says [`RuntimeError::ObjectFreed`], the object's bytes are already out of `used_bytes`.
//!
//! ## Ownership across a serialization boundary
//!
//! Ownership is local to one process today. An owning [`ObjectRef`] (from `put`, `reserve` or
//! `Runtime::submit`) keeps its object alive; `Serialize` writes only the id, and `Deserialize`
//! builds a *borrowed* ref that names the object and keeps nothing alive. For actor replies:
//!
//! - A local call moves the reply, refs included: the caller receives the owning ref the actor
//!   made, nothing is serialized, and the object lives until the caller drops it.
//! - A reply that goes through the codec ([`encode`](crate::encode) / [`decode`](crate::decode),
//!   as every reply from another process will) arrives with a borrowed ref. The object is freed
//!   as soon as the sender's owning clones drop, so the sender must keep its owning ref alive
//!   until the receiver has read the object (for example, until the receiver's next call
//!   acknowledges it). Reads after that fail with `ObjectFreed`.
//!
//! What a ref must carry across processes (planned, not implemented; Ray's ownership model):
//!
//! - The ref names its owner: the node that created it, as name plus generation (a generation
//!   grows on every restart, so a restarted node is never taken for its old self), next to the
//!   object id, which becomes unique cluster-wide.
//! - The owner counts borrowers. Deserializing a ref on another node registers that node as a
//!   borrower with the owner; dropping the last copy there deregisters it.
//! - The owner frees the object once its own owning refs and all borrowers are gone.
//! - Once the owner is declared dead, reads of its objects fail with an `OwnerDied` error; a
//!   dead owner's objects are not rebuilt (there is no lineage).

use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Notify;

use crate::error::{Result, RuntimeError};

/// A handle to an object in the store.
///
/// # Ownership
///
/// A ref is *owning* or *borrowed*; [`ObjectRef::is_owning`] tells which.
///
/// - `put`, `reserve` and `Runtime::submit` return owning refs. Clones share ownership; when the
///   last owning clone drops, the object is freed (and its bytes leave
///   [`StoreStats::used_bytes`] in the same step). [`ObjectStore::free`] frees it earlier.
/// - Serializing writes the id only; deserializing gives a borrowed ref, which names the object
///   but keeps nothing alive. Reads through it succeed while an owning clone lives in the same
///   store and fail with [`RuntimeError::ObjectFreed`] afterwards.
///
/// So a ref in an actor reply carries ownership when the reply is moved (a local call) and none
/// when it is serialized: then the sender must keep its owning ref alive until the receiver has
/// read the object. The module docs give the details and the planned cross-process protocol, in
/// which a deserialized ref registers as a borrower with the owner node named in the ref, and the
/// owner frees the object only when its own refs and all borrowers are gone.
///
/// # Equality
///
/// `==` compares ids only: an owning ref and a borrowed copy of it are equal. Ids are unique
/// within one store, not across processes; the cross-process ref adds its owner to the identity.
#[derive(Clone)]
pub struct ObjectRef {
    id: u64,
    owner: Option<Arc<Owner>>,
}

struct Owner {
    id: u64,
    store: Weak<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(store) = self.store.upgrade() {
            store.remove([self.id]);
        }
    }
}

impl ObjectRef {
    /// The object's id, unique within its store.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether this ref keeps its object alive: true for refs from `put`, `reserve` and `submit`
    /// and their clones, false for refs that were deserialized (and clones of those).
    pub fn is_owning(&self) -> bool {
        self.owner.is_some()
    }
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef({}{})", self.id, if self.is_owning() { "" } else { ", borrowed" })
    }
}

impl PartialEq for ObjectRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for ObjectRef {}

/// Writes the id only: the result deserializes into a borrowed ref.
impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}

/// Reads a borrowed ref (`is_owning() == false`).
impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(ObjectRef { id: u64::deserialize(d)?, owner: None })
    }
}

enum Slot {
    Pending,
    Ready(Bytes),
    Failed(String),
}

/// Everything callers can observe, behind one lock: `get` and `stats` read the same state, so
/// an object that `get` reports freed is never still counted in `stats`.
#[derive(Default)]
struct State {
    objects: HashMap<u64, Slot>,
    /// The sum of the lengths of `Slot::Ready` objects.
    used: usize,
    next_id: u64,
    peak: usize,
    /// Puts and completions blocked in `make_room` (lets tests wait for that state).
    room_waiters: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    notify: Notify,
    cap: usize,
    put_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated: every update is a
        // single map operation plus counter arithmetic. So a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the objects and their bytes in one step, then wakes waiters.
    fn remove(&self, ids: impl IntoIterator<Item = u64>) {
        let mut st = self.lock();
        for id in ids {
            if let Some(Slot::Ready(b)) = st.objects.remove(&id) {
                st.used -= b.len();
            }
        }
        drop(st);
        self.wake();
    }

    fn wake(&self) {
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    /// Waits until `len` more bytes fit under the cap, or fails. Stops waiting early, returning
    /// the guard with no room promised, once `abandon` holds (the object to fill was freed).
    fn make_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        len: usize,
        abandon: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>> {
        let full = |st: &State| RuntimeError::StoreFull { requested: len, used: st.used, cap: self.cap };
        if len > self.cap {
            return Err(full(&st));
        }
        let deadline = Instant::now() + self.put_timeout;
        while st.used + len > self.cap && !abandon(&st) {
            let now = Instant::now();
            if now >= deadline {
                return Err(full(&st));
            }
            st.room_waiters += 1;
            st = self.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
            st.room_waiters -= 1;
        }
        Ok(st)
    }
}

/// Capacity settings of a store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreOptions {
    /// Most bytes held at once.
    pub memory_cap: usize,
    /// How long a put that does not fit waits for room before failing.
    pub put_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { memory_cap: 2 << 30, put_timeout: Duration::from_secs(30) }
    }
}

/// Byte accounting of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Objects held (ready, pending or failed).
    pub num_objects: usize,
    /// Bytes held by ready objects.
    pub used_bytes: usize,
    /// The most bytes ever held at once.
    pub peak_bytes: usize,
    /// The cap.
    pub cap_bytes: usize,
}

/// One process's object store. Cheap to clone: clones share the store.
#[derive(Clone)]
pub struct ObjectStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStore").field("stats", &self.stats()).finish()
    }
}

impl ObjectStore {
    /// An empty store.
    pub fn new(options: StoreOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                notify: Notify::new(),
                cap: options.memory_cap,
                put_timeout: options.put_timeout,
            }),
        }
    }

    fn new_ref(&self, st: &mut State, slot: Slot) -> ObjectRef {
        let id = st.next_id;
        st.next_id += 1;
        st.objects.insert(id, slot);
        ObjectRef { id, owner: Some(Arc::new(Owner { id, store: Arc::downgrade(&self.shared) })) }
    }

    /// Stores `data` and returns an owning ref. Waits for room if the store is full; see the
    /// module docs.
    pub fn put(&self, data: Bytes) -> Result<ObjectRef> {
        let st = self.shared.lock();
        let mut st = self.shared.make_room(st, data.len(), |_| false)?;
        st.used += data.len();
        st.peak = st.peak.max(st.used);
        let r = self.new_ref(&mut st, Slot::Ready(data));
        drop(st);
        self.shared.wake();
        Ok(r)
    }

    /// Reserves a pending object, to be completed with [`ObjectStore::complete`].
    pub fn reserve(&self) -> ObjectRef {
        let mut st = self.shared.lock();
        self.new_ref(&mut st, Slot::Pending)
    }

    /// Completes a reserved object with a value or an error message. If the value does not fit
    /// the store, it waits for room like a put, and the object fails with the store-full message
    /// if none comes. Completing an object that was freed (before or while waiting) drops the
    /// value without counting its bytes.
    pub fn complete(&self, id: u64, value: std::result::Result<Bytes, String>) {
        let pending = |st: &State| matches!(st.objects.get(&id), Some(Slot::Pending));
        let mut st = self.shared.lock();
        if !pending(&st) {
            return;
        }
        let slot = match value {
            Ok(data) => match self.shared.make_room(st, data.len(), |st| !pending(st)) {
                Ok(guard) => {
                    st = guard;
                    if !pending(&st) {
                        return;
                    }
                    st.used += data.len();
                    st.peak = st.peak.max(st.used);
                    Slot::Ready(data)
                }
                Err(e) => {
                    st = self.shared.lock();
                    if !pending(&st) {
                        return;
                    }
                    Slot::Failed(e.to_string())
                }
            },
            Err(message) => Slot::Failed(message),
        };
        st.objects.insert(id, slot);
        drop(st);
        self.shared.wake();
    }

    /// The object's bytes if it is complete, `None` while pending.
    pub fn try_get(&self, r: &ObjectRef) -> Result<Option<Bytes>> {
        let st = self.shared.lock();
        Self::read(&st, r.id)
    }

    fn read(st: &State, id: u64) -> Result<Option<Bytes>> {
        match st.objects.get(&id) {
            None => Err(RuntimeError::ObjectFreed(id)),
            Some(Slot::Pending) => Ok(None),
            Some(Slot::Ready(b)) => Ok(Some(b.clone())),
            Some(Slot::Failed(m)) => Err(RuntimeError::ObjectFailed { id, message: m.clone() }),
        }
    }

    /// The object's bytes, blocking the thread while it is pending (at most `timeout`).
    pub fn get_blocking(&self, r: &ObjectRef, timeout: Option<Duration>) -> Result<Bytes> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.lock();
        loop {
            if let Some(b) = Self::read(&st, r.id)? {
                return Ok(b);
            }
            st = self
                .wait_changed(st, deadline)
                .ok_or_else(|| RuntimeError::Timeout(timeout.unwrap_or_default(), format!("object {}", r.id)))?;
        }
    }

    /// The object's bytes, awaiting while it is pending.
    pub async fn get(&self, r: &ObjectRef) -> Result<Bytes> {
        loop {
            let mut notified = pin!(self.shared.notify.notified());
            notified.as_mut().enable();
            if let Some(b) = self.try_get(r)? {
                return Ok(b);
            }
            notified.await;
        }
    }

    /// Waits for a change to the store; `None` once `deadline` has passed.
    fn wait_changed<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, State>> {
        match deadline {
            None => Some(self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner())),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                Some(self.shared.changed.wait_timeout(st, d - now).unwrap_or_else(|e| e.into_inner()).0)
            }
        }
    }

    fn split_ready(st: &State, refs: &[ObjectRef]) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
        refs.iter().cloned().partition(|r| !matches!(st.objects.get(&r.id), Some(Slot::Pending)))
    }

    /// Ray's `wait`: blocks until at least `num_returns` of `refs` are complete (ready, failed
    /// or freed) or `timeout` passes, and returns `(complete, pending)` in the order of `refs`.
    /// A timeout is not an error: the split is returned as it stands.
    pub fn wait_blocking(
        &self,
        refs: &[ObjectRef],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
        let want = num_returns.min(refs.len());
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.lock();
        loop {
            let (done, pending) = Self::split_ready(&st, refs);
            if done.len() >= want {
                return (done, pending);
            }
            match self.wait_changed(st, deadline) {
                Some(g) => st = g,
                None => return (done, pending),
            }
        }
    }

    /// Async [`ObjectStore::wait_blocking`].
    pub async fn wait(
        &self,
        refs: &[ObjectRef],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
        let want = num_returns.min(refs.len());
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let mut notified = pin!(self.shared.notify.notified());
            notified.as_mut().enable();
            let (done, pending) = Self::split_ready(&self.shared.lock(), refs);
            if done.len() >= want {
                return (done, pending);
            }
            match deadline {
                None => notified.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return Self::split_ready(&self.shared.lock(), refs);
                    }
                }
            }
        }
    }

    /// Frees the objects now, whatever refs to them still exist. All of them go in one step:
    /// no reader sees some freed and others not, and `stats` never counts a freed one.
    pub fn free(&self, refs: &[ObjectRef]) {
        self.shared.remove(refs.iter().map(|r| r.id));
    }

    /// Current byte accounting.
    pub fn stats(&self) -> StoreStats {
        let st = self.shared.lock();
        StoreStats {
            num_objects: st.objects.len(),
            used_bytes: st.used,
            peak_bytes: st.peak,
            cap_bytes: self.shared.cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn store(cap: usize, put_timeout: Duration) -> ObjectStore {
        ObjectStore::new(StoreOptions { memory_cap: cap, put_timeout })
    }

    #[test]
    fn get_is_zero_copy_and_accounted() {
        let s = store(1024, Duration::ZERO);
        let data = Bytes::from(vec![7u8; 100]);
        let r = s.put(data.clone()).unwrap();
        let got = s.get_blocking(&r, None).unwrap();
        assert_eq!(got.as_ptr(), data.as_ptr());
        assert_eq!(s.stats().used_bytes, 100);
    }

    #[test]
    fn last_ref_drop_frees_the_object() {
        let s = store(1024, Duration::ZERO);
        let r = s.put(Bytes::from_static(b"abc")).unwrap();
        let r2 = r.clone();
        let id = r.id();
        drop(r);
        assert_eq!(s.stats().num_objects, 1, "a clone still owns it");
        drop(r2);
        assert_eq!(s.stats(), StoreStats { num_objects: 0, used_bytes: 0, peak_bytes: 3, cap_bytes: 1024 });
        let borrowed: ObjectRef = ObjectRef { id, owner: None };
        assert_eq!(s.try_get(&borrowed), Err(RuntimeError::ObjectFreed(id)));
    }

    #[test]
    fn free_removes_even_with_live_refs() {
        let s = store(1024, Duration::ZERO);
        let r = s.put(Bytes::from_static(b"abc")).unwrap();
        s.free(std::slice::from_ref(&r));
        assert_eq!(s.get_blocking(&r, None), Err(RuntimeError::ObjectFreed(r.id())));
        assert_eq!(s.stats().used_bytes, 0);
        drop(r); // Dropping the now-dangling owner must not underflow the accounting.
        assert_eq!(s.stats().used_bytes, 0);
    }

    #[test]
    fn put_past_cap_fails_clearly() {
        let s = store(100, Duration::ZERO);
        let _a = s.put(Bytes::from(vec![0u8; 60])).unwrap();
        let err = s.put(Bytes::from(vec![0u8; 50])).unwrap_err();
        assert_eq!(err, RuntimeError::StoreFull { requested: 50, used: 60, cap: 100 });
        assert!(err.to_string().contains("object store full"));
        let err = s.put(Bytes::from(vec![0u8; 101])).unwrap_err();
        assert!(matches!(err, RuntimeError::StoreFull { requested: 101, .. }));
        assert_eq!(s.stats().used_bytes, 60);
    }

    #[test]
    fn put_waits_for_room_when_allowed() {
        let s = store(100, Duration::from_secs(60));
        let a = s.put(Bytes::from(vec![0u8; 80])).unwrap();
        let s2 = s.clone();
        let putter = thread::spawn(move || s2.put(Bytes::from(vec![1u8; 50])).map(|r| r.id()));
        // The putter cannot finish until `a` is gone; dropping it makes room.
        drop(a);
        assert!(putter.join().unwrap().is_ok());
        assert!(s.stats().peak_bytes <= 100);
    }

    #[test]
    fn wait_returns_when_enough_are_complete() {
        let s = store(1024, Duration::ZERO);
        let pending: Vec<ObjectRef> = (0..3).map(|_| s.reserve()).collect();
        let (done, rest) = s.wait_blocking(&pending, 1, Some(Duration::ZERO));
        assert!(done.is_empty() && rest.len() == 3);
        let s2 = s.clone();
        let id = pending[1].id();
        let t = thread::spawn(move || s2.complete(id, Ok(Bytes::from_static(b"x"))));
        let (done, rest) = s.wait_blocking(&pending, 1, None);
        t.join().unwrap();
        assert_eq!(done, vec![pending[1].clone()]);
        assert_eq!(rest, vec![pending[0].clone(), pending[2].clone()]);
        s.complete(pending[0].id(), Err("boom".into()));
        let err = s.get_blocking(&pending[0], None).unwrap_err();
        assert_eq!(err, RuntimeError::ObjectFailed { id: pending[0].id(), message: "boom".into() });
    }

    #[tokio::test]
    async fn async_get_and_wait() {
        let s = store(1024, Duration::ZERO);
        let r = s.reserve();
        let s2 = s.clone();
        let id = r.id();
        let t = thread::spawn(move || s2.complete(id, Ok(Bytes::from_static(b"late"))));
        assert_eq!(s.get(&r).await.unwrap(), Bytes::from_static(b"late"));
        t.join().unwrap();
        let p = s.reserve();
        let (done, rest) = s.wait(&[r.clone(), p.clone()], 2, Some(Duration::from_millis(10))).await;
        assert_eq!((done, rest), (vec![r], vec![p]));
    }

    /// Checks the accounting against the objects themselves, under the lock.
    fn assert_consistent(s: &ObjectStore) {
        let st = s.shared.lock();
        let ready: usize = st.objects.values().map(|o| if let Slot::Ready(b) = o { b.len() } else { 0 }).sum();
        assert_eq!(st.used, ready, "used_bytes must be the sum of the ready objects");
        assert!(st.used <= s.shared.cap && st.used <= st.peak);
    }

    #[test]
    fn a_round_tripped_ref_is_borrowed_and_lives_only_as_long_as_the_owner() {
        let s = store(1024, Duration::ZERO);
        let r = s.put(Bytes::from_static(b"abc")).unwrap();
        let back: ObjectRef = crate::decode(&crate::encode(&r).unwrap()).unwrap();
        assert_eq!(back.id(), r.id());
        assert_eq!(back, r);
        assert!(r.is_owning());
        assert!(!back.is_owning());
        assert!(!back.clone().is_owning(), "clones of a borrowed ref borrow too");
        // Readable through the borrowed ref while the owning one lives.
        assert_eq!(s.get_blocking(&back, None).unwrap(), Bytes::from_static(b"abc"));
        drop(back.clone());
        assert_eq!(s.stats().num_objects, 1, "dropping a borrowed ref frees nothing");
        drop(r);
        assert_eq!(s.get_blocking(&back, None), Err(RuntimeError::ObjectFreed(back.id())));
        assert_eq!(s.stats().used_bytes, 0);
    }

    #[test]
    fn stats_agree_with_get_right_after_a_free_or_a_drop() {
        let s = store(1024, Duration::ZERO);
        for i in 0..200 {
            let r = s.put(Bytes::from(vec![1u8; 10])).unwrap();
            let other = s.put(Bytes::from(vec![2u8; 20])).unwrap();
            let borrowed: ObjectRef = crate::decode(&crate::encode(&r).unwrap()).unwrap();
            // Free from another thread half the time; it must be done when the join returns.
            let (s2, other2) = (s.clone(), other.clone());
            let freeing = move || if i % 2 == 0 { drop(r) } else { s2.free(&[r, other2]) };
            thread::spawn(freeing).join().unwrap();
            assert_eq!(s.try_get(&borrowed), Err(RuntimeError::ObjectFreed(borrowed.id())));
            let expect = if i % 2 == 0 { (1, 20) } else { (0, 0) };
            let stats = s.stats();
            assert_eq!((stats.num_objects, stats.used_bytes), expect, "iteration {i}");
            assert_consistent(&s);
            drop(other);
            assert_eq!(s.stats().used_bytes, 0);
        }
    }

    #[test]
    fn a_completion_waiting_for_room_gives_up_when_its_object_is_freed() {
        let s = store(100, Duration::from_secs(600));
        let a = s.put(Bytes::from(vec![0u8; 40])).unwrap();
        let _b = s.put(Bytes::from(vec![0u8; 40])).unwrap();
        let p = s.reserve();
        let (s2, id) = (s.clone(), p.id());
        let completer = thread::spawn(move || s2.complete(id, Ok(Bytes::from(vec![1u8; 50]))));
        // Wait (without sleeping) until the completion is blocked on room.
        while s.shared.lock().room_waiters == 0 {
            thread::yield_now();
        }
        s.free(std::slice::from_ref(&p));
        // Room appears only after the free; a completion still waiting would now take it and
        // count 50 bytes of an object nobody can read.
        drop(a);
        completer.join().unwrap();
        assert_eq!(s.stats(), StoreStats { num_objects: 1, used_bytes: 40, peak_bytes: 80, cap_bytes: 100 });
        assert_eq!(s.try_get(&p), Err(RuntimeError::ObjectFreed(p.id())));
        assert_consistent(&s);
    }

    #[test]
    fn accounting_stays_consistent_under_concurrent_puts_frees_and_completions() {
        let s = store(4096, Duration::from_secs(600));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                thread::spawn(move || {
                    for i in 0..200usize {
                        let r = s.put(Bytes::from(vec![0u8; 1 + (i * 7 + w) % 64])).unwrap();
                        let p = s.reserve();
                        match i % 3 {
                            0 => s.complete(p.id(), Ok(Bytes::from(vec![1u8; 1 + i % 32]))),
                            1 => s.free(std::slice::from_ref(&p)),
                            _ => s.complete(p.id(), Err("failed".into())),
                        }
                        assert!(!matches!(s.try_get(&p), Ok(None)), "completed or freed, never pending");
                        assert_consistent(&s);
                        if i % 2 == 0 {
                            s.free(&[r]);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_consistent(&s);
        assert_eq!(s.stats().used_bytes, 0, "every ref was dropped");
    }

    #[test]
    fn a_blocking_get_that_times_out_names_its_timeout() {
        let s = store(1024, Duration::ZERO);
        let p = s.reserve();
        let t = Duration::from_millis(5);
        assert_eq!(s.get_blocking(&p, Some(t)), Err(RuntimeError::Timeout(t, format!("object {}", p.id()))));
    }
}
