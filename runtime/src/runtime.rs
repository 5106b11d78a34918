//! [`Runtime`]: the entry point that owns the object store, actor scheduling and the task pool.
//!
//! `Runtime::local` is the embedded default: head and node in this process, like `ray.init()`
//! without an address. Everything rllib does goes through this type's methods, which keep the
//! same shape when the runtime spans several nodes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::actor::{self, Actor, ActorHandle, ActorOptions, BoxError, Isolation, Placement};
use crate::cluster::{Hosted, HostedActor, NodeCore};
use crate::error::{Result, RuntimeError};
use crate::object_store::{ObjectRef, ObjectStore, StoreOptions, StoreStats};

/// Settings of an embedded runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    /// Logical CPUs actors may reserve; defaults to the machine's available parallelism.
    pub num_cpus: f64,
    /// GPUs actors may reserve.
    pub num_gpus: f64,
    /// Custom resources actors may reserve.
    pub resources: BTreeMap<String, f64>,
    /// Object store capacity and spilling.
    pub store: StoreOptions,
    /// Threads that run submitted tasks.
    pub num_task_threads: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            num_cpus: cpus as f64,
            num_gpus: 0.0,
            resources: BTreeMap::new(),
            store: StoreOptions::default(),
            num_task_threads: cpus,
        }
    }
}

pub(crate) type TaskFn = Arc<dyn Fn(Bytes) -> std::result::Result<Bytes, BoxError> + Send + Sync>;

/// Builds an actor of one registered type from its encoded init, for a node hosting it on behalf
/// of another node.
pub(crate) type Factory = Arc<dyn Fn(&Runtime, &[u8], ActorOptions) -> Result<Arc<dyn Hosted>> + Send + Sync>;

struct Job {
    func: TaskFn,
    name: String,
    args: Bytes,
    out: u64,
}

struct ActorEntry {
    stop: Box<dyn Fn() + Send>,
    thread: JoinHandle<()>,
}

/// The actors a runtime must stop at shutdown, and the spawns still under way.
#[derive(Default)]
struct Actors {
    entries: Vec<ActorEntry>,
    /// Spawns past the shutdown check whose actor is not in `entries` yet.
    spawning: usize,
    shut_down: bool,
}

struct Inner {
    /// This node's id in its cluster; 0 for an embedded runtime.
    node_id: u32,
    store: ObjectStore,
    totals: BTreeMap<String, f64>,
    free: Mutex<BTreeMap<String, f64>>,
    /// Grows with every change of `free` (made under its lock), so a node's reports of its free
    /// resources can be ordered.
    resource_version: AtomicU64,
    actor_types: Mutex<HashMap<&'static str, Factory>>,
    /// Set once a cluster runtime has joined its head.
    cluster: OnceLock<Arc<NodeCore>>,
    actors: Mutex<Actors>,
    /// Signalled when `Actors::spawning` drops.
    spawn_done: Condvar,
    /// Held for the whole of `shutdown`, so a second caller returns only once the first is done.
    shutdown: Mutex<()>,
    next_actor: AtomicU64,
    tasks: Mutex<HashMap<String, TaskFn>>,
    jobs: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    task_threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A handle to the runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("resources", &self.inner.totals).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single insert/remove/arithmetic step; a panic elsewhere
    // cannot leave the data half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resources reserved for one actor. Dropping it returns them to the runtime: the actor thread
/// drops it as the first step of dying, and if the thread never starts, the closure that owns it
/// drops it instead.
pub(crate) struct Reservation {
    inner: Weak<Inner>,
    request: BTreeMap<String, f64>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut free = lock(&inner.free);
            for (res, v) in std::mem::take(&mut self.request) {
                *free.entry(res).or_insert(0.0) += v;
            }
            inner.resource_version.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts one spawn as under way until dropped, so `shutdown` can wait for it.
struct Spawning<'a> {
    inner: &'a Inner,
}

impl Drop for Spawning<'_> {
    fn drop(&mut self) {
        lock(&self.inner.actors).spawning -= 1;
        self.inner.spawn_done.notify_all();
    }
}

impl Runtime {
    /// Starts an embedded runtime in this process.
    pub fn local(options: RuntimeOptions) -> Result<Self> {
        Self::for_node(options, 0)
    }

    /// A runtime whose objects and actors carry node id `node_id` (0 outside a cluster).
    pub(crate) fn for_node(options: RuntimeOptions, node_id: u32) -> Result<Self> {
        let mut totals = options.resources.clone();
        totals.insert("CPU".into(), options.num_cpus);
        totals.insert("GPU".into(), options.num_gpus);
        let store = ObjectStore::for_node(options.store.clone(), node_id);
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..options.num_task_threads.max(1))
            .map(|i| {
                let rx = job_rx.clone();
                let store = store.clone();
                std::thread::Builder::new()
                    .name(format!("rl-task-{i}"))
                    .spawn(move || run_tasks(&rx, &store))
                    .map_err(|e| RuntimeError::Serialization { what: "task thread".into(), message: e.to_string() })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                node_id,
                store,
                free: Mutex::new(totals.clone()),
                resource_version: AtomicU64::new(0),
                totals,
                actor_types: Mutex::new(HashMap::new()),
                cluster: OnceLock::new(),
                actors: Mutex::new(Actors::default()),
                spawn_done: Condvar::new(),
                shutdown: Mutex::new(()),
                next_actor: AtomicU64::new(0),
                tasks: Mutex::new(HashMap::new()),
                jobs: Mutex::new(Some(job_tx)),
                task_threads: Mutex::new(threads),
            }),
        })
    }

    // === Objects ===

    /// Stores `data`; see [`ObjectStore::put`].
    pub fn put(&self, data: Bytes) -> Result<ObjectRef> {
        self.inner.store.put(data)
    }

    /// An object's bytes, awaiting while it is pending. An object owned by another node is
    /// pulled from it (once per node; later gets read the local copy).
    pub async fn get(&self, r: &ObjectRef) -> Result<Bytes> {
        match self.remote_owner(r) {
            Some(core) => core.fetch(r.id(), None).await,
            None => self.inner.store.get(r).await,
        }
    }

    /// An object's bytes, blocking while it is pending (at most `timeout`). An object owned by
    /// another node is pulled from it, as in [`Runtime::get`]. Safe from any thread.
    pub fn get_blocking(&self, r: &ObjectRef, timeout: Option<Duration>) -> Result<Bytes> {
        match self.remote_owner(r) {
            Some(core) => {
                let id = r.id();
                let fetching = core.clone();
                core.block_on(async move { fetching.fetch(id, timeout).await })?
            }
            None => self.inner.store.get_blocking(r, timeout),
        }
    }

    /// Starts pulling the objects of `refs` that other nodes own, without waiting, so a later
    /// `get` finds them here. Does nothing for local objects or outside a cluster; a failed pull
    /// is reported by the `get` that follows.
    pub fn prefetch(&self, refs: &[ObjectRef]) {
        for r in refs {
            if let Some(core) = self.remote_owner(r) {
                core.prefetch(r.id());
            }
        }
    }

    /// This node's cluster core if `r` is owned by another node.
    fn remote_owner(&self, r: &ObjectRef) -> Option<&Arc<NodeCore>> {
        self.inner.cluster.get().filter(|_| r.owner_node() != self.inner.node_id)
    }

    /// Ray's `wait`; see [`ObjectStore::wait`]. Objects owned by other nodes count as complete.
    pub async fn wait(
        &self,
        refs: &[ObjectRef],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
        self.inner.store.wait(refs, num_returns, timeout).await
    }

    /// Blocking [`Runtime::wait`].
    pub fn wait_blocking(
        &self,
        refs: &[ObjectRef],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
        self.inner.store.wait_blocking(refs, num_returns, timeout)
    }

    /// Frees objects now; see [`ObjectStore::free`]. Objects owned by other nodes are freed on
    /// their owners (and dropped from this node's cache).
    pub fn free(&self, refs: &[ObjectRef]) {
        match self.inner.cluster.get() {
            Some(core) => {
                let (local, remote): (Vec<_>, Vec<_>) =
                    refs.iter().cloned().partition(|r| r.owner_node() == self.inner.node_id);
                self.inner.store.free(&local);
                core.free_remote(&remote);
            }
            None => self.inner.store.free(refs),
        }
    }

    /// The store of this process (the owner of the objects it puts).
    pub(crate) fn store(&self) -> &ObjectStore {
        &self.inner.store
    }

    /// This runtime's node id: 0 for an embedded runtime, else the id its head assigned.
    pub fn node_id(&self) -> u32 {
        self.inner.node_id
    }

    /// The cluster core, if this runtime is part of a cluster.
    pub(crate) fn cluster(&self) -> Option<&Arc<NodeCore>> {
        self.inner.cluster.get()
    }

    pub(crate) fn set_cluster(&self, core: Arc<NodeCore>) {
        let _ = self.inner.cluster.set(core);
    }

    /// A handle that does not keep the runtime alive.
    pub(crate) fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    /// Byte accounting of the object store.
    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }

    // === Actors ===

    /// Makes the actor type spawnable by name on this runtime, by this process and, in a
    /// cluster, by other nodes asking this one to host it (they send its init encoded).
    pub fn register_actor<A: Actor>(&self) {
        let factory: Factory = Arc::new(|rt: &Runtime, init: &[u8], options: ActorOptions| {
            let init: A::Init = decode(init)?;
            let handle = rt.spawn_local::<A>(init, options)?;
            Ok(Arc::new(HostedActor::new(handle)) as Arc<dyn Hosted>)
        });
        lock(&self.inner.actor_types).insert(A::TYPE_NAME, factory);
    }

    /// The factory of a registered actor type.
    pub(crate) fn factory(&self, type_name: &str) -> Result<Factory> {
        lock(&self.inner.actor_types)
            .get(type_name)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownActorType(type_name.into()))
    }

    /// Free resources and their version, read together.
    pub(crate) fn available_with_version(&self) -> (BTreeMap<String, f64>, u64) {
        let free = lock(&self.inner.free);
        (free.clone(), self.inner.resource_version.load(Ordering::Relaxed))
    }

    /// Total resources of the runtime (`CPU`, `GPU` and custom ones).
    pub fn total_resources(&self) -> BTreeMap<String, f64> {
        self.inner.totals.clone()
    }

    /// Resources not reserved by live actors.
    pub fn available_resources(&self) -> BTreeMap<String, f64> {
        lock(&self.inner.free).clone()
    }

    fn reserve(&self, name: &str, request: BTreeMap<String, f64>) -> Result<Reservation> {
        let mut free = lock(&self.inner.free);
        for (res, &needed) in &request {
            let available = free.get(res).copied().unwrap_or(0.0);
            if needed > available + 1e-9 {
                return Err(RuntimeError::InsufficientResources {
                    actor: name.to_string(),
                    resource: res.clone(),
                    needed,
                    available,
                    total: self.inner.totals.get(res).copied().unwrap_or(0.0),
                });
            }
        }
        for (res, &needed) in &request {
            *free.entry(res.clone()).or_insert(0.0) -= needed;
        }
        self.inner.resource_version.fetch_add(1, Ordering::Relaxed);
        Ok(Reservation { inner: Arc::downgrade(&self.inner), request })
    }

    /// Reserves the resources `options` ask for, for actor `name`, until the reservation drops.
    pub(crate) fn reserve_for(&self, name: &str, options: &ActorOptions) -> Result<Reservation> {
        let mut request: BTreeMap<String, f64> =
            options.resources.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| (k.clone(), *v)).collect();
        for (key, value) in [("CPU", options.num_cpus), ("GPU", options.num_gpus)] {
            if value > 0.0 {
                request.insert(key.into(), value);
            }
        }
        self.reserve(name, request)
    }

    /// Registers a spawn as under way, unless the runtime is shut down.
    fn begin_spawn(&self) -> Result<Spawning<'_>> {
        let mut actors = lock(&self.inner.actors);
        if actors.shut_down {
            return Err(RuntimeError::Shutdown);
        }
        actors.spawning += 1;
        Ok(Spawning { inner: &self.inner })
    }

    /// Starts an actor of a registered type, reserving its resources until it dies.
    ///
    /// An embedded runtime starts it in this process. A cluster runtime follows
    /// [`ActorOptions::placement`]: `Local` starts it here; `Any` and `Node` ask the head, which
    /// picks a node with the resources free (waiting up to `placement_timeout` for one) and has
    /// it build the actor from its type name and encoded init. The handle works the same either
    /// way.
    ///
    /// With [`Isolation::Process`] the node that gets the actor (this one for `Local`) starts a
    /// worker process for it and keeps its resources reserved until that process exits; the
    /// handle then talks to the worker process. An embedded runtime has no nodes to run worker
    /// processes and refuses it with [`RuntimeError::InvalidActorOption`].
    ///
    /// On error nothing stays reserved: the reservation is returned before this returns. A
    /// `mailbox_capacity` of 0, or `env` on a thread actor, fails with
    /// [`RuntimeError::InvalidActorOption`]. After [`Runtime::shutdown`] it fails with
    /// [`RuntimeError::Shutdown`].
    pub fn spawn<A: Actor>(&self, init: A::Init, options: ActorOptions) -> Result<ActorHandle<A>> {
        if !lock(&self.inner.actor_types).contains_key(A::TYPE_NAME) {
            return Err(RuntimeError::UnknownActorType(A::TYPE_NAME.into()));
        }
        let name = options.name.clone().unwrap_or_else(|| A::TYPE_NAME.to_string());
        options.check_isolation(&name)?;
        match (self.inner.cluster.get(), options.isolation, options.placement) {
            (None, Isolation::Process, _) => Err(process_needs_cluster(&name)),
            (Some(core), _, Placement::Any | Placement::Node(_) | Placement::Group { .. }) => {
                core.spawn_remote::<A>(&init, &options)
            }
            (Some(core), Isolation::Process, Placement::Local) => core.spawn_process::<A>(&init, &options),
            (_, Isolation::Thread, _) => self.spawn_local(init, options),
        }
    }

    /// Starts an actor in this process (see [`Runtime::spawn`]).
    pub(crate) fn spawn_local<A: Actor>(&self, init: A::Init, options: ActorOptions) -> Result<ActorHandle<A>> {
        if !lock(&self.inner.actor_types).contains_key(A::TYPE_NAME) {
            return Err(RuntimeError::UnknownActorType(A::TYPE_NAME.into()));
        }
        // Dropped last, after any cleanup below, so `shutdown` waits for that cleanup too.
        let _spawning = self.begin_spawn()?;
        let index = self.inner.next_actor.fetch_add(1, Ordering::Relaxed);
        let id = (u64::from(self.inner.node_id) << crate::object_store::NODE_SHIFT) | index;
        let name = options.name.clone().unwrap_or_else(|| format!("{}#{index}", A::TYPE_NAME));
        if options.isolation == Isolation::Process {
            // Worker processes are started by their node (`NodeCore::spawn_worker`), never here.
            return Err(process_needs_cluster(&name));
        }
        options.check_mailbox(&name)?;
        let reservation = self.reserve_for(&name, &options)?;
        // On failure the reservation is already back: the actor thread returns it before
        // reporting a constructor error, and a thread that never started dropped it.
        let (handle, thread) = actor::start::<A>(init, &options, id, name, self.clone(), reservation)?;
        let mut actors = lock(&self.inner.actors);
        if actors.shut_down {
            // `shutdown` began while the constructor ran and is waiting for this spawn.
            drop(actors);
            handle.stop();
            let _ = thread.join();
            return Err(RuntimeError::Shutdown);
        }
        // Join the threads of actors that have died meanwhile, so the list does not grow with
        // every actor ever spawned.
        let (finished, running): (Vec<_>, Vec<_>) =
            std::mem::take(&mut actors.entries).into_iter().partition(|a| a.thread.is_finished());
        actors.entries = running;
        let stopper = handle.clone();
        actors.entries.push(ActorEntry { stop: Box::new(move || stopper.drain_and_stop()), thread });
        drop(actors);
        for a in finished {
            let _ = a.thread.join();
        }
        if let Some(core) = self.inner.cluster.get() {
            core.record_actor(handle.id(), handle.name(), A::TYPE_NAME, handle.death_note(), handle.restart_count());
        }
        Ok(handle)
    }

    // === Tasks ===

    /// Registers a task function under `name`. It takes and returns bytes (see [`encode`] and
    /// [`decode`] for typed values); an error or panic becomes the result object's failure.
    pub fn register_task<F>(&self, name: &str, func: F)
    where
        F: Fn(Bytes) -> std::result::Result<Bytes, BoxError> + Send + Sync + 'static,
    {
        lock(&self.inner.tasks).insert(name.to_string(), Arc::new(func));
    }

    /// Runs the registered task `name` and returns the ref of its future result, which this
    /// process owns.
    ///
    /// An embedded runtime runs it on its task pool. A cluster runtime asks the head for a node
    /// with a CPU free (this one or another) and runs it there; the result streams back into
    /// this node's store.
    pub fn submit(&self, name: &str, args: Bytes) -> Result<ObjectRef> {
        let func = lock(&self.inner.tasks).get(name).cloned().ok_or_else(|| RuntimeError::UnknownTask(name.into()))?;
        if let Some(core) = self.inner.cluster.get() {
            let out = self.inner.store.reserve();
            core.submit_remote(name, args, out.id());
            return Ok(out);
        }
        self.submit_local(func, name, args)
    }

    /// Runs task `name` on this process's pool.
    fn submit_local(&self, func: TaskFn, name: &str, args: Bytes) -> Result<ObjectRef> {
        let jobs = lock(&self.inner.jobs);
        let tx = jobs.as_ref().ok_or(RuntimeError::Shutdown)?;
        let out = self.inner.store.reserve();
        tx.send(Job { func, name: name.to_string(), args, out: out.id() }).map_err(|_| RuntimeError::Shutdown)?;
        Ok(out)
    }

    // === Lifecycle ===

    /// Stops every actor and the task pool, and waits for their threads. Objects stay readable
    /// through refs that are still held.
    ///
    /// Each actor first handles the messages queued when it reads the request (it reads it before
    /// its next message, even with a full mailbox); messages sent after that are not delivered
    /// ([`RuntimeError::NotDelivered`]). A handler in progress is waited for, so a handler
    /// blocked forever blocks this too.
    ///
    /// When it returns, every actor of this runtime is dead and every resource is free, including
    /// those of actors whose `spawn` was under way (that `spawn` returns
    /// [`RuntimeError::Shutdown`]); later spawns and submits fail with `Shutdown`. A second call,
    /// from any thread, returns once the first is done. Do not call it from inside an actor: it
    /// waits for the actor's own thread.
    pub fn shutdown(&self) {
        let _one_at_a_time = lock(&self.inner.shutdown);
        // A cluster node first leaves its head and stops serving, so no new work arrives.
        let core = self.inner.cluster.get().cloned();
        if let Some(core) = &core {
            core.begin_shutdown();
        }
        let entries = {
            let mut actors = lock(&self.inner.actors);
            actors.shut_down = true;
            std::mem::take(&mut actors.entries)
        };
        for a in &entries {
            (a.stop)();
        }
        // A spawn under way sees `shut_down` when its constructor returns, stops its actor and
        // joins it before it stops counting as under way.
        let mut actors = lock(&self.inner.actors);
        while actors.spawning > 0 {
            actors = self.inner.spawn_done.wait(actors).unwrap_or_else(|e| e.into_inner());
        }
        drop(actors);
        for a in entries {
            let _ = a.thread.join();
        }
        lock(&self.inner.jobs).take();
        for t in std::mem::take(&mut *lock(&self.inner.task_threads)) {
            let _ = t.join();
        }
        if let Some(core) = core {
            core.finish_shutdown();
        }
    }

    /// Runs registered task `name` on the calling thread (a node running it for another node).
    pub(crate) fn run_task_now(&self, name: &str, args: Bytes) -> std::result::Result<Bytes, String> {
        let Some(func) = lock(&self.inner.tasks).get(name).cloned() else {
            return Err(RuntimeError::UnknownTask(name.into()).to_string());
        };
        run_one(&func, name, args)
    }
}

/// The error for a process actor where no node can start its worker process.
fn process_needs_cluster(actor: &str) -> RuntimeError {
    RuntimeError::InvalidActorOption {
        actor: actor.to_string(),
        option: "isolation".into(),
        expected: "Isolation::Thread on an embedded runtime (process actors run in worker processes of cluster \
                   nodes: start one with Runtime::start_head or join one with Runtime::join)"
            .into(),
        found: "Isolation::Process".into(),
    }
}

/// A runtime reference that does not keep it alive (held by its cluster core).
#[derive(Clone)]
pub(crate) struct WeakRuntime(Weak<Inner>);

impl WeakRuntime {
    pub(crate) fn upgrade(&self) -> Option<Runtime> {
        self.0.upgrade().map(|inner| Runtime { inner })
    }
}

fn run_tasks(rx: &crossbeam_channel::Receiver<Job>, store: &ObjectStore) {
    while let Ok(job) = rx.recv() {
        let Job { func, name, args, out } = job;
        store.complete(out, run_one(&func, &name, args));
    }
}

/// Runs one task, catching its panic; the error text names the task.
fn run_one(func: &TaskFn, name: &str, args: Bytes) -> std::result::Result<Bytes, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| func(args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(format!("task {name} failed: {e}")),
        Err(p) => Err(format!(
            "task {name} panicked: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}

/// Serializes a value for a task argument or an object (postcard).
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    postcard::to_stdvec(value)
        .map(Bytes::from)
        .map_err(|e| RuntimeError::Serialization { what: std::any::type_name::<T>().into(), message: e.to_string() })
}

/// Deserializes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| RuntimeError::Serialization { what: std::any::type_name::<T>().into(), message: e.to_string() })
}
