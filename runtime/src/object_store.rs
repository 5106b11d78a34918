//! The object store: immutable byte objects behind reference-counted [`ObjectRef`]s, with byte
//! accounting and a memory cap.
//!
//! Objects are `bytes::Bytes`, so a `get` inside the process is a reference-count bump, never a
//! copy. An object lives while at least one owning [`ObjectRef`] to it lives, or until it is
//! [`ObjectStore::free`]d; afterwards `get` reports [`RuntimeError::ObjectFreed`]. Ids are never
//! reused. An object can also be *pending*: reserved by a task whose result is not in yet;
//! `get` and `wait` block (or `.await`) until it is.
//!
//! The store never holds more than its cap in memory. A put that does not fit first *spills*
//! least-recently-used objects that nobody is reading to files on local disk, and `get` reads them
//! back transparently (see *Spilling* below). Only when nothing can be spilled (spilling is off,
//! or every object is being read) does the put wait up to the configured put timeout for other
//! objects to be freed, then fail with [`RuntimeError::StoreFull`].
//!
//! Every change (put, complete, free, last owning ref dropped) happens under one lock together
//! with its byte accounting, so [`ObjectStore::stats`] agrees with what `get` reports: once a
//! `get` says [`RuntimeError::ObjectFreed`], the object's bytes are already out of `used_bytes`.
//!
//! ## Ownership across processes (Ray's ownership model)
//!
//! Every object has one owner: the node whose store it was put in. Its id says which (the node
//! id sits in the high bits, see [`owner_node`]), so ids are unique cluster-wide and a ref names
//! its owner. The owner keeps the object while its own owning refs live *or* another node
//! borrows it:
//!
//! - Outside a cluster message (plain [`encode`](crate::encode) / [`decode`](crate::decode)),
//!   `Serialize` writes the id only and `Deserialize` gives a *borrowed* ref that keeps nothing
//!   alive.
//! - Inside a message to another node, serializing a ref first records one borrow by the
//!   receiving node at the owner ([`ObjectStore::add_borrow`]; a non-owner forwarding a ref asks
//!   the owner and waits for its answer before the message leaves). The receiver's deserialized
//!   ref holds that borrow; when its last clone drops, the receiving node releases it at the
//!   owner. When the owner's own refs are gone and no borrow is left, the object is freed.
//! - A node declared dead (or one that leaves) loses all its borrows at once
//!   ([`ObjectStore::drop_borrower`]), which also covers messages that never arrived.
//! - [`ObjectStore::free`] frees at once, borrows or not (Ray's `free`).
//!
//! ## Spilling (after Ray's object spilling)
//!
//! When a put, a completion or a read-back would pass the memory cap, the store writes
//! least-recently-used objects to files in its spill directory until the new bytes fit
//! ([`StoreOptions::spill_dir`]; one file per object, unlike Ray, which fuses small ones).
//!
//! - Only objects nobody is reading spill: the store's `Bytes` must be its only handle on the
//!   memory ([`Bytes::is_unique`]). A live `get` result pins its object (as a `ray.get` does), and
//!   so does a buffer the caller put and kept, which spilling could not free anyway. An object
//!   that gets read while its file is being written stays in memory.
//! - A read of a spilled object (`get`, `try_get`, `get_blocking`, [`ObjectStore::try_get_id`],
//!   which serves pulls by other nodes) restores it: reads the file, deletes it and re-admits the
//!   object to memory, spilling others if needed. If no room can be made at once, the read still
//!   returns the bytes and the object stays on disk.
//! - Freeing a spilled object (or dropping its last ref) deletes its file in the same step as its
//!   accounting. The spill directory is the store's own: made on the first spill, removed with
//!   everything in it when the store is dropped (a node's exit).
//! - Files are written outside the store's lock, to a temporary name renamed into place; a read
//!   checks the header and length and reports damage as [`RuntimeError::SpillFile`] naming the
//!   file.
//!
//! [`StoreStats`] counts the objects and bytes on disk now, and every spill and restore.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Notify;

use crate::error::{Result, RuntimeError};
use crate::spill::{Spill, SpillDir};

/// Where a node's id sits in an object id: `id >> NODE_SHIFT` is the owner node.
pub const NODE_SHIFT: u32 = 40;

/// The node that owns object `id` (0 in an embedded runtime).
pub fn owner_node(id: u64) -> u32 {
    (id >> NODE_SHIFT) as u32
}

/// A handle to an object in the store.
///
/// # Ownership
///
/// A ref is *owning* or *borrowed*; [`ObjectRef::is_owning`] tells which.
///
/// - `put`, `reserve` and `Runtime::submit` return owning refs. Clones share ownership; when the
///   last owning clone drops (and no other node borrows the object), the object is freed, and its
///   bytes leave [`StoreStats::used_bytes`] in the same step. [`ObjectStore::free`] frees it
///   earlier.
/// - A ref that arrives in a message from another node of a cluster also keeps its object alive:
///   it holds a borrow registered at the owner, released when its last clone drops.
/// - A ref deserialized outside a cluster message (plain [`decode`](crate::decode)) is borrowed:
///   it names the object but keeps nothing alive; reads through it succeed while an owning clone
///   lives and fail with [`RuntimeError::ObjectFreed`] afterwards.
///
/// The module docs give the protocol.
///
/// # Equality
///
/// `==` compares ids only: an owning ref and a borrowed copy of it are equal. Ids are unique
/// cluster-wide: the owner node sits in the high bits ([`owner_node`]).
#[derive(Clone)]
pub struct ObjectRef {
    id: u64,
    keep: Option<Arc<Keep>>,
}

/// What keeps an object alive for as long as a ref (and its clones) lives.
enum Keep {
    /// This store owns the object; dropping the last owning ref frees it unless borrowed.
    Owner { id: u64, store: Weak<Shared> },
    /// Another node owns it; dropping the last clone releases this node's borrow there.
    Borrow { id: u64, release: Arc<dyn Fn(u64) + Send + Sync> },
}

impl Drop for Keep {
    fn drop(&mut self) {
        match self {
            Keep::Owner { id, store } => {
                if let Some(store) = store.upgrade() {
                    store.owner_dropped(*id);
                }
            }
            Keep::Borrow { id, release } => release(*id),
        }
    }
}

impl ObjectRef {
    /// The object's id, unique cluster-wide.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node that owns the object.
    pub fn owner_node(&self) -> u32 {
        owner_node(self.id)
    }

    /// Whether this ref keeps its object alive: true for refs from `put`, `reserve` and `submit`,
    /// for refs received in a cluster message, and their clones; false for refs deserialized
    /// outside one (and clones of those).
    pub fn is_owning(&self) -> bool {
        self.keep.is_some()
    }

    /// A ref to object `id` that keeps nothing alive (for reading an object by id).
    pub(crate) fn unowned(id: u64) -> Self {
        Self { id, keep: None }
    }

    /// A ref that holds a borrow of object `id` (owned by another node) and calls `release(id)`
    /// once its last clone drops.
    pub(crate) fn borrowed_with(id: u64, release: Arc<dyn Fn(u64) + Send + Sync>) -> Self {
        Self { id, keep: Some(Arc::new(Keep::Borrow { id, release })) }
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

/// Writes the id. Inside a cluster message it first records a borrow by the receiving node at
/// the owner (see the module docs); that can fail if the object is already freed.
impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::wire::export(self).map_err(serde::ser::Error::custom)?;
        self.id.serialize(s)
    }
}

/// Reads the id. Inside a cluster message the ref holds the borrow its sender recorded;
/// elsewhere it is a borrowed ref (`is_owning() == false`).
impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let id = u64::deserialize(d)?;
        Ok(crate::wire::import(id).unwrap_or(ObjectRef { id, keep: None }))
    }
}

/// One object's state. `spill.rs` moves objects between `Ready`, `Spilling` and `Spilled`.
pub(crate) enum Slot {
    Pending,
    Ready(Bytes),
    /// Being written to disk: still in memory, readable and counted in `used`.
    Spilling(Bytes),
    /// On disk only: its length.
    Spilled(usize),
    Failed(String),
}

/// Everything callers can observe, behind one lock: `get` and `stats` read the same state, so
/// an object that `get` reports freed is never still counted in `stats`.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) objects: HashMap<u64, Slot>,
    /// The sum of the lengths of the objects in memory (`Slot::Ready` and `Slot::Spilling`).
    pub(crate) used: usize,
    next_id: u64,
    pub(crate) peak: usize,
    /// Puts and completions blocked in `make_room` (lets tests wait for that state).
    room_waiters: usize,
    /// Borrows of objects of this store by other nodes: object id -> node id -> count.
    borrows: HashMap<u64, HashMap<u32, u64>>,
    /// Objects whose owning refs are all gone, kept only for their borrowers.
    orphaned: HashSet<u64>,
    /// The spill directory, the in-memory objects by last use, and the spill counters.
    pub(crate) spill: Spill,
}

impl State {
    /// Releases `count` borrows of `id` by `borrower` (all of them for `None`); frees the object
    /// if no borrow is left and its owning refs are gone. Returns whether it was freed.
    fn release(st: &mut State, id: u64, borrower: u32, count: Option<u64>) -> bool {
        let Some(by_node) = st.borrows.get_mut(&id) else { return false };
        if let Some(n) = by_node.get_mut(&borrower) {
            *n = count.map_or(0, |c| n.saturating_sub(c));
            if *n == 0 {
                by_node.remove(&borrower);
            }
        }
        if !by_node.is_empty() {
            return false;
        }
        st.borrows.remove(&id);
        let freed = st.orphaned.remove(&id);
        if freed {
            State::remove(st, id);
        }
        freed
    }

    fn remove(st: &mut State, id: u64) {
        match st.objects.remove(&id) {
            Some(Slot::Ready(b) | Slot::Spilling(b)) => st.used -= b.len(),
            Some(Slot::Spilled(len)) => st.spill.delete_file(id, len),
            _ => {}
        }
        st.spill.forget(id);
        st.borrows.remove(&id);
        st.orphaned.remove(&id);
    }
}

/// The store's state and its wake-ups; `spill.rs` adds the spilling and restoring methods.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) changed: Condvar,
    notify: Notify,
    cap: usize,
    put_timeout: Duration,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated: every update is a
        // single map operation plus counter arithmetic. So a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the objects, their bytes and their borrows in one step, then wakes waiters.
    fn remove(&self, ids: impl IntoIterator<Item = u64>) {
        let mut st = self.lock();
        for id in ids {
            State::remove(&mut st, id);
        }
        drop(st);
        self.wake();
    }

    /// The last owning ref of `id` dropped: free it, unless another node still borrows it.
    fn owner_dropped(&self, id: u64) {
        let mut st = self.lock();
        if st.borrows.contains_key(&id) {
            st.orphaned.insert(id);
            return;
        }
        State::remove(&mut st, id);
        drop(st);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    /// Makes room for `len` more bytes under the cap: spills what it can, then waits up to
    /// `patience` for frees, then fails. Stops early, returning the guard with no room promised,
    /// once `abandon` holds (the object to fill was freed).
    pub(crate) fn make_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        len: usize,
        patience: Duration,
        abandon: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>> {
        let full = |st: &State| RuntimeError::StoreFull { requested: len, used: st.used, cap: self.cap };
        if len > self.cap {
            return Err(full(&st));
        }
        let deadline = Instant::now() + patience;
        while st.used + len > self.cap && !abandon(&st) {
            let need = st.used + len - self.cap;
            let progressed;
            (st, progressed) = self.spill(st, need)?;
            if progressed {
                continue;
            }
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

/// Capacity and spilling settings of a store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Most bytes held in memory at once.
    pub memory_cap: usize,
    /// How long a put that does not fit (and cannot spill) waits for room before failing.
    pub put_timeout: Duration,
    /// Where objects spill past the cap: the store makes its own fresh directory under this one
    /// on its first spill (`rl-spill-PID-nodeN-SEQ`) and removes it when the store is dropped.
    /// `None` turns spilling off: a put that does not fit waits, then fails with `StoreFull`.
    /// Default: the system's temporary directory ([`std::env::temp_dir`]).
    pub spill_dir: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { memory_cap: 2 << 30, put_timeout: Duration::from_secs(30), spill_dir: Some(std::env::temp_dir()) }
    }
}

/// Byte accounting of a store. The `spilled_*` fields are what is on disk now; the `total_*`
/// fields count since the store was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Objects held (in memory or spilled; ready, pending or failed).
    pub num_objects: usize,
    /// Bytes of the objects in memory.
    pub used_bytes: usize,
    /// The most bytes ever held in memory at once.
    pub peak_bytes: usize,
    /// The memory cap.
    pub cap_bytes: usize,
    /// Objects on disk now (spilled and not read back or freed since).
    pub spilled_objects: usize,
    /// Bytes of the objects on disk now (object bytes; each file adds a small header).
    pub spilled_bytes: usize,
    /// Objects ever written to disk.
    pub total_spilled_objects: u64,
    /// Bytes ever written to disk.
    pub total_spilled_bytes: u64,
    /// Reads of spilled objects from disk (a `get` of an object on disk is one restore).
    pub total_restored_objects: u64,
    /// Bytes read back from disk.
    pub total_restored_bytes: u64,
}

/// What a read found, under the lock.
enum Found {
    Pending,
    Ready(Bytes),
    /// On disk: read it back with `Shared::restore` once the lock is dropped.
    Spilled(usize),
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
    /// An empty store (of an embedded runtime: node 0).
    pub fn new(options: StoreOptions) -> Self {
        Self::for_node(options, 0)
    }

    /// An empty store of cluster node `node`: its object ids carry the node in their high bits.
    pub fn for_node(options: StoreOptions, node: u32) -> Self {
        let spill = Spill::new(options.spill_dir.map(|parent| SpillDir::under(&parent, node)));
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State { next_id: u64::from(node) << NODE_SHIFT, spill, ..State::default() }),
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
        if matches!(slot, Slot::Ready(_)) {
            st.spill.touch(id);
        }
        st.objects.insert(id, slot);
        ObjectRef { id, keep: Some(Arc::new(Keep::Owner { id, store: Arc::downgrade(&self.shared) })) }
    }

    /// Stores `data` and returns an owning ref. Waits for room if the store is full; see the
    /// module docs.
    pub fn put(&self, data: Bytes) -> Result<ObjectRef> {
        let st = self.shared.lock();
        let mut st = self.shared.make_room(st, data.len(), self.shared.put_timeout, |_| false)?;
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
            Ok(data) => match self.shared.make_room(st, data.len(), self.shared.put_timeout, |st| !pending(st)) {
                Ok(guard) => {
                    st = guard;
                    if !pending(&st) {
                        return;
                    }
                    st.used += data.len();
                    st.peak = st.peak.max(st.used);
                    st.spill.touch(id);
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

    /// The object's bytes if it is complete, `None` while pending. A spilled object is read back
    /// from disk on this thread.
    pub fn try_get(&self, r: &ObjectRef) -> Result<Option<Bytes>> {
        self.try_get_id(r.id)
    }

    fn read(st: &mut State, id: u64) -> Result<Found> {
        match st.objects.get(&id) {
            None => Err(RuntimeError::ObjectFreed(id)),
            Some(Slot::Pending) => Ok(Found::Pending),
            Some(Slot::Ready(b) | Slot::Spilling(b)) => {
                let b = b.clone();
                st.spill.touch(id);
                Ok(Found::Ready(b))
            }
            Some(Slot::Spilled(len)) => Ok(Found::Spilled(*len)),
            Some(Slot::Failed(m)) => Err(RuntimeError::ObjectFailed { id, message: m.clone() }),
        }
    }

    /// The object's bytes, blocking the thread while it is pending (at most `timeout`).
    pub fn get_blocking(&self, r: &ObjectRef, timeout: Option<Duration>) -> Result<Bytes> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.lock();
        loop {
            match Self::read(&mut st, r.id)? {
                Found::Ready(b) => return Ok(b),
                Found::Spilled(len) => {
                    drop(st);
                    return self.shared.restore(r.id, len);
                }
                Found::Pending => {}
            }
            st = self
                .wait_changed(st, deadline)
                .ok_or_else(|| RuntimeError::Timeout(timeout.unwrap_or_default(), format!("object {}", r.id)))?;
        }
    }

    /// The object's bytes, awaiting while it is pending. A spilled object is read back from disk
    /// on tokio's blocking pool when there is one.
    pub async fn get(&self, r: &ObjectRef) -> Result<Bytes> {
        loop {
            let mut notified = pin!(self.shared.notify.notified());
            notified.as_mut().enable();
            let found = Self::read(&mut self.shared.lock(), r.id)?;
            match found {
                Found::Ready(b) => return Ok(b),
                Found::Spilled(len) => return self.shared.clone().restore_async(r.id, len).await,
                Found::Pending => notified.await,
            }
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

    /// Records `count` more borrows of object `id` by node `borrower`. Fails with
    /// [`RuntimeError::ObjectFreed`] if the object is gone.
    pub fn add_borrow(&self, id: u64, borrower: u32, count: u64) -> Result<()> {
        let mut st = self.shared.lock();
        if !st.objects.contains_key(&id) {
            return Err(RuntimeError::ObjectFreed(id));
        }
        *st.borrows.entry(id).or_default().entry(borrower).or_insert(0) += count;
        Ok(())
    }

    /// Releases `count` borrows of object `id` by `borrower`; frees the object if that was the
    /// last borrow and its owning refs are gone. Unknown ids and borrowers are ignored (the
    /// object was freed, or the borrower was dropped as dead).
    pub fn release_borrow(&self, id: u64, borrower: u32, count: u64) {
        let mut st = self.shared.lock();
        if State::release(&mut st, id, borrower, Some(count)) {
            drop(st);
            self.shared.wake();
        }
    }

    /// Drops every borrow held by `borrower` (a node that died or left), freeing the objects only
    /// it kept alive.
    pub fn drop_borrower(&self, borrower: u32) {
        let mut st = self.shared.lock();
        let ids: Vec<u64> = st.borrows.iter().filter(|(_, m)| m.contains_key(&borrower)).map(|(id, _)| *id).collect();
        for id in ids {
            State::release(&mut st, id, borrower, None);
        }
        drop(st);
        self.shared.wake();
    }

    /// How many borrows other nodes hold on object `id`.
    pub fn borrow_count(&self, id: u64) -> u64 {
        self.shared.lock().borrows.get(&id).map_or(0, |m| m.values().sum())
    }

    /// The bytes of object `id` if it is ready here (read back from disk if spilled); `Ok(None)`
    /// while pending.
    pub fn try_get_id(&self, id: u64) -> Result<Option<Bytes>> {
        let found = Self::read(&mut self.shared.lock(), id)?;
        match found {
            Found::Ready(b) => Ok(Some(b)),
            Found::Spilled(len) => self.shared.restore(id, len).map(Some),
            Found::Pending => Ok(None),
        }
    }

    /// The store's shared state (for the spill tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Current byte accounting.
    pub fn stats(&self) -> StoreStats {
        let st = self.shared.lock();
        StoreStats {
            num_objects: st.objects.len(),
            used_bytes: st.used,
            peak_bytes: st.peak,
            cap_bytes: self.shared.cap,
            ..st.spill.stats()
        }
    }

    /// The directory this store spills to (made on the first spill, removed with the store);
    /// `None` when spilling is off.
    pub fn spill_dir(&self) -> Option<PathBuf> {
        self.shared.lock().spill.dir_path().map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn store(cap: usize, put_timeout: Duration) -> ObjectStore {
        ObjectStore::new(StoreOptions { memory_cap: cap, put_timeout, spill_dir: None })
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
        assert_eq!(
            s.stats(),
            StoreStats { num_objects: 0, used_bytes: 0, peak_bytes: 3, cap_bytes: 1024, ..StoreStats::default() }
        );
        let borrowed: ObjectRef = ObjectRef { id, keep: None };
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
        let in_memory = |o: &Slot| if let Slot::Ready(b) | Slot::Spilling(b) = o { b.len() } else { 0 };
        let ready: usize = st.objects.values().map(in_memory).sum();
        assert_eq!(st.used, ready, "used_bytes must be the sum of the objects in memory");
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
        assert_eq!(
            s.stats(),
            StoreStats { num_objects: 1, used_bytes: 40, peak_bytes: 80, cap_bytes: 100, ..StoreStats::default() }
        );
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
