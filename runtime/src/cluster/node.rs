//! One process's membership in a cluster: its server, its peers, its pulled-object cache and the
//! actors it hosts for other nodes (served by `service.rs`, wrapped by `hosted.rs`).
//!
//! [`start`](super::start::start) binds the listener, serves the `Node` service (and the `Head` service in the head
//! process), joins the head, and sends heartbeats from then on. [`NodeCore`] is what the
//! [`Runtime`] of a cluster process reaches through for everything that crosses processes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Response, Status};

use super::auth::AddToken;
use super::hosted::{Hosted, HostedActor, options_from_proto, options_proto, resources};
use super::peer::{Peer, RemoteActor};
use super::process::{WorkerSettings, Workers};
use super::proto;
use super::proto::head_client::HeadClient;
use super::{TlsConfig, Token, status_error};
use crate::actor::{Actor, ActorHandle, ActorOptions, DeathNote, Isolation};
use crate::error::{Result, RuntimeError};
use crate::object_store::{ObjectRef, ObjectStore, owner_node};
use crate::runtime::WeakRuntime;

/// A client of the head's service, with the token interceptor.
pub(crate) type HeadRpc = HeadClient<InterceptedService<Channel, AddToken>>;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a single map or counter update, so a poisoned lock is consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Data-plane counters of this node.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) objects_pulled: AtomicU64,
    pub(crate) bytes_pulled: AtomicU64,
    pub(crate) chunks_pulled: AtomicU64,
    pub(crate) objects_served: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) calls_sent: AtomicU64,
    pub(crate) calls_received: AtomicU64,
}

/// Objects pulled from other nodes, kept for reuse (objects never change, so a copy stays
/// valid). Least recently pulled copies go first once the cache passes its cap.
pub(super) struct Cache {
    pub(super) entries: HashMap<u64, Arc<tokio::sync::OnceCell<Bytes>>>,
    pub(super) order: VecDeque<(u64, usize)>,
    pub(super) bytes: usize,
    pub(super) cap: usize,
}

impl Cache {
    fn insert_done(&mut self, id: u64, len: usize) {
        self.order.push_back((id, len));
        self.bytes += len;
        while self.bytes > self.cap && self.order.len() > 1 {
            let (old, old_len) = self.order.pop_front().expect("not empty");
            self.entries.remove(&old);
            self.bytes -= old_len;
        }
    }

    fn remove(&mut self, id: u64) {
        if self.entries.remove(&id).is_some()
            && let Some(pos) = self.order.iter().position(|(i, _)| *i == id)
        {
            let (_, len) = self.order.remove(pos).expect("found");
            self.bytes -= len;
        }
    }
}

/// A hosted actor and the node that owns it.
type HostedEntry = (Arc<dyn Hosted>, u32);

/// An actor of this node, as its heartbeats report it to the head's directory.
pub(super) struct LocalActor {
    pub(super) name: String,
    pub(super) type_name: &'static str,
    pub(super) death: DeathNote,
    pub(super) restarts: Option<crate::actor::Restarts>,
}

/// Why and whether this node has been asked to stop.
#[derive(Default)]
pub(super) struct StopState {
    pub(super) reason: Option<String>,
}

/// One process's membership in the cluster.
pub(crate) struct NodeCore {
    pub(crate) node_id: u32,
    pub(crate) address: String,
    pub(crate) head_address: String,
    /// The run of the head this node joined (`JoinReply.head_epoch`).
    pub(crate) head_epoch: u64,
    /// Set once this node gave up on the head ([`RuntimeError::HeadLost`]).
    pub(super) head_lost: OnceLock<RuntimeError>,
    pub(crate) token: Token,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) counters: Counters,
    pub(super) handle: tokio::runtime::Handle,
    /// The network runtime; taken and shut down at the end of `Runtime::shutdown`.
    pub(super) network: Mutex<Option<tokio::runtime::Runtime>>,
    pub(super) runtime: WeakRuntime,
    pub(super) store: ObjectStore,
    pub(super) head: HeadRpc,
    pub(super) peers: Mutex<HashMap<u32, Arc<Peer>>>,
    /// Serializes connecting, so one stream is opened per peer.
    pub(super) connecting: tokio::sync::Mutex<()>,
    pub(super) addresses: Mutex<HashMap<u32, String>>,
    pub(super) dead: Mutex<HashSet<u32>>,
    /// How much of the head's list of dead nodes this node has heard (see `HeartbeatRequest`).
    pub(super) dead_seen: AtomicU64,
    /// Actors built for other nodes, with the node that asked for each (its owner).
    pub(super) hosted: Mutex<HashMap<u64, HostedEntry>>,
    pub(super) directory: Mutex<BTreeMap<u64, LocalActor>>,
    /// Death notes of handles to actors on other nodes, by node, to mark when a node dies.
    pub(super) remote_deaths: Mutex<HashMap<u32, Vec<std::sync::Weak<OnceLock<String>>>>>,
    pub(super) cache: Mutex<Cache>,
    pub(super) release: OnceLock<Arc<dyn Fn(u64) + Send + Sync>>,
    pub(super) stop: Mutex<StopState>,
    pub(super) stopped: Condvar,
    /// Tells the server and the heartbeat loop to end.
    pub(super) shutdown_tx: tokio::sync::watch::Sender<bool>,
    /// Worker processes of this node's process actors.
    pub(super) workers: Arc<Workers>,
    /// How to start them.
    pub(super) worker: WorkerSettings,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore").field("node_id", &self.node_id).field("address", &self.address).finish()
    }
}

/// Runs `fut` on the network runtime and blocks this thread for its output. Safe from any thread
/// that is not one of the network runtime's own (actor threads, the driver, other runtimes).
pub(super) fn run_blocking<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = || rx.recv().map_err(|_| RuntimeError::Shutdown);
    // On a multi-threaded tokio worker, let the runtime move its other tasks off this thread.
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

impl NodeCore {
    /// Runs `fut` on the network runtime and waits for it (see [`run_blocking`]).
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        run_blocking(&self.handle, fut)
    }

    /// The releasing function every imported ref of this node shares.
    pub(crate) fn release_fn(&self) -> Arc<dyn Fn(u64) + Send + Sync> {
        self.release.get().expect("set at start").clone()
    }

    // === Peers ===

    /// The connected peer for node `node` at `address`, connecting if needed.
    pub(crate) async fn peer(self: &Arc<Self>, node: u32, address: &str) -> Result<Arc<Peer>> {
        if let Some(p) = lock(&self.peers).get(&node).filter(|p| !p.is_lost()) {
            return Ok(p.clone());
        }
        if lock(&self.dead).contains(&node) {
            return Err(RuntimeError::NodeUnreachable {
                node,
                address: address.to_string(),
                message: "the head declared it dead".into(),
            });
        }
        let _one = self.connecting.lock().await;
        if let Some(p) = lock(&self.peers).get(&node).filter(|p| !p.is_lost()) {
            return Ok(p.clone());
        }
        let peer = Peer::connect(self, node, address.to_string()).await?;
        lock(&self.peers).insert(node, peer.clone());
        Ok(peer)
    }

    /// [`NodeCore::peer`] from a blocking thread.
    pub(crate) fn peer_blocking(self: &Arc<Self>, node: u32, address: &str) -> Result<Arc<Peer>> {
        if let Some(p) = lock(&self.peers).get(&node).filter(|p| !p.is_lost()) {
            return Ok(p.clone());
        }
        let (me, address) = (self.clone(), address.to_string());
        self.block_on(async move { me.peer(node, &address).await })?
    }

    /// Where node `node` listens, asking the head if this node has not heard of it yet.
    async fn address_of(&self, node: u32) -> Result<String> {
        if let Some(a) = lock(&self.addresses).get(&node) {
            return Ok(a.clone());
        }
        let nodes = self.list_nodes().await?.nodes;
        lock(&self.addresses).extend(nodes.iter().map(|n| (n.node_id, n.address.clone())));
        lock(&self.addresses)
            .get(&node)
            .cloned()
            .ok_or_else(|| RuntimeError::Cluster(format!("the head knows no node {node}")))
    }

    /// The head's node table and actor directory.
    pub(crate) async fn list_nodes(&self) -> Result<proto::ListNodesReply> {
        let reply = self.head.clone().list_nodes(proto::ListNodesRequest {}).await;
        Ok(reply.map_err(|s| status_error(&s, 0, &self.head_address))?.into_inner())
    }

    /// Stores `value` under `key` in the head's KV store; with `overwrite` false an existing key
    /// is kept. Returns whether it was written.
    pub(crate) async fn kv_put(&self, key: String, value: Bytes, overwrite: bool) -> Result<bool> {
        let reply = self.head.clone().kv_put(proto::KvPutRequest { key, value, overwrite }).await;
        Ok(reply.map_err(|s| status_error(&s, 0, &self.head_address))?.into_inner().written)
    }

    /// The value under `key` in the head's KV store.
    pub(crate) async fn kv_get(&self, key: String) -> Result<Option<Bytes>> {
        let reply = self.head.clone().kv_get(proto::KvGetRequest { key }).await;
        let reply = reply.map_err(|s| status_error(&s, 0, &self.head_address))?.into_inner();
        Ok(reply.found.then_some(reply.value))
    }

    /// Node `node` was declared dead (for `why`, if known): fail calls to it, mark its actors
    /// dead, drop its borrows.
    pub(super) fn node_dead(&self, node: u32, why: Option<&str>) {
        if !lock(&self.dead).insert(node) {
            return;
        }
        let reason = match why {
            Some(why) => format!("node {node} is gone: {why}"),
            None => format!("node {node} is gone (the head declared it dead or it left)"),
        };
        tracing::info!("{reason}");
        if let Some(peer) = lock(&self.peers).remove(&node) {
            peer.fail_all(&reason);
        }
        for death in lock(&self.remote_deaths).remove(&node).into_iter().flatten() {
            if let Some(d) = death.upgrade() {
                let _ = d.set(reason.clone());
            }
        }
        self.store.drop_borrower(node);
        lock(&self.cache).entries.retain(|id, _| owner_node(*id) != node);
        // Actors share their owner's fate (as Ray's non-detached actors do): stop the ones a
        // gone node asked for, which returns their resources.
        let orphans: Vec<Arc<dyn Hosted>> = {
            let mut hosted = lock(&self.hosted);
            let ids: Vec<u64> = hosted.iter().filter(|(_, (_, owner))| *owner == node).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| hosted.remove(id)).map(|(h, _)| h).collect()
        };
        if !orphans.is_empty() {
            tracing::info!(owner = node, count = orphans.len(), "stopping the actors of a gone node");
        }
        for h in orphans {
            h.stop();
        }
    }

    // === Actors ===

    /// Spawns an actor through the head (placement `Any` or `Node`).
    pub(crate) fn spawn_remote<A: Actor>(
        self: &Arc<Self>,
        init: &A::Init,
        options: &ActorOptions,
    ) -> Result<ActorHandle<A>> {
        let request = proto::SpawnActorRequest {
            type_name: A::TYPE_NAME.into(),
            init: crate::encode(init)?,
            options: Some(options_proto(options)),
            caller: self.node_id,
        };
        let head = self.head.clone();
        let head_address = self.head_address.clone();
        let reply = self.block_on(async move {
            head.clone()
                .spawn_actor(request)
                .await
                .map(Response::into_inner)
                .map_err(|s| status_error(&s, 0, &head_address))
        })??;
        if reply.node_id == self.node_id {
            // Placed here: hand out the local handle, no network in the way.
            let hosted = lock(&self.hosted).get(&reply.actor_id).map(|(h, _)| h.clone());
            if let Some(local) = hosted.as_ref().and_then(|h| h.as_any().downcast_ref::<HostedActor<A>>()) {
                return Ok(local.handle.clone());
            }
        }
        Ok(self.remote_handle(reply, options.mailbox_capacity))
    }

    /// Starts a process actor whose worker is a child of this process (placement `Local`).
    pub(crate) fn spawn_process<A: Actor>(
        self: &Arc<Self>,
        init: &A::Init,
        options: &ActorOptions,
    ) -> Result<ActorHandle<A>> {
        let reply = self.spawn_worker(A::TYPE_NAME, crate::encode(init)?, options.clone(), self.node_id)?;
        Ok(self.remote_handle(reply, options.mailbox_capacity))
    }

    /// A handle to the actor a spawn reply names, on another node (or a worker process).
    fn remote_handle<A: Actor>(
        self: &Arc<Self>,
        reply: proto::SpawnActorReply,
        mailbox_capacity: usize,
    ) -> ActorHandle<A> {
        lock(&self.addresses).insert(reply.node_id, reply.address.clone());
        let remote = Arc::new(RemoteActor {
            actor_id: reply.actor_id,
            node_id: reply.node_id,
            address: reply.address,
            pid: reply.pid,
            name: reply.name.clone().into(),
            mailbox_capacity,
            death: Arc::new(OnceLock::new()),
            core: self.clone(),
        });
        {
            let mut deaths = lock(&self.remote_deaths);
            let on_node = deaths.entry(reply.node_id).or_default();
            on_node.retain(|d| d.strong_count() > 0);
            on_node.push(Arc::downgrade(&remote.death));
        }
        if lock(&self.dead).contains(&reply.node_id) {
            let _ = remote.death.set(format!("node {} died", reply.node_id));
        }
        ActorHandle::remote(reply.name, remote)
    }

    /// Records an actor of this node for the head's directory.
    pub(crate) fn record_actor(
        &self,
        id: u64,
        name: &str,
        type_name: &'static str,
        death: DeathNote,
        restarts: Option<crate::actor::Restarts>,
    ) {
        lock(&self.directory).insert(id, LocalActor { name: name.to_string(), type_name, death, restarts });
    }

    /// Asks node `node` to stop actor `actor_id`, without waiting.
    pub(crate) fn stop_remote_actor(self: &Arc<Self>, node: u32, address: String, actor_id: u64, force: bool) {
        let me = self.clone();
        self.handle.spawn(async move {
            if let Ok(peer) = me.peer(node, &address).await {
                let _ = peer.rpc.clone().stop_actor(proto::StopActorRequest { actor_id, force }).await;
            }
        });
    }

    /// Builds an actor for another node (the `SpawnActor` handler).
    pub(super) async fn host(self: &Arc<Self>, req: proto::NodeSpawnRequest) -> Result<proto::SpawnActorReply> {
        let rt = self.runtime.upgrade().ok_or(RuntimeError::Shutdown)?;
        let factory = rt.factory(&req.type_name)?;
        let options = options_from_proto(req.options.unwrap_or_default());
        let (init, owner) = (req.init, req.owner);
        if options.isolation == Isolation::Process {
            let me = self.clone();
            let type_name = req.type_name.clone();
            return tokio::task::spawn_blocking(move || me.spawn_worker(&type_name, init, options, owner))
                .await
                .map_err(|e| RuntimeError::Cluster(format!("spawning {} panicked: {e}", req.type_name)))?;
        }
        let built = tokio::task::spawn_blocking(move || {
            let hosted = factory(&rt, &init, options)?;
            let (available, version) = rt.available_with_version();
            Ok::<_, RuntimeError>((hosted, available, version))
        })
        .await
        .map_err(|e| RuntimeError::Cluster(format!("spawning {} panicked: {e}", req.type_name)))??;
        let (hosted, available, version) = built;
        lock(&self.hosted).insert(hosted.id(), (hosted.clone(), owner));
        Ok(proto::SpawnActorReply {
            actor_id: hosted.id(),
            node_id: self.node_id,
            address: self.address.clone(),
            pid: std::process::id(),
            name: hosted.name().to_string(),
            available: Some(resources(&available)),
            resource_version: version,
        })
    }

    // === Objects ===

    /// Records a borrow of object `id` by node `borrower`, at its owner (here, or by asking the
    /// owner and waiting for its answer).
    pub(crate) fn add_borrow(self: &Arc<Self>, id: u64, borrower: u32) -> Result<()> {
        let owner = owner_node(id);
        if owner == self.node_id {
            return self.store.add_borrow(id, borrower, 1);
        }
        let me = self.clone();
        self.block_on(async move { me.update_refs(id, borrower, 1).await })?
    }

    /// Releases one borrow of object `id` by this node (its last local ref dropped).
    pub(super) fn release_borrow(self: &Arc<Self>, id: u64) {
        let owner = owner_node(id);
        if owner == self.node_id {
            self.store.release_borrow(id, self.node_id, 1);
            return;
        }
        if lock(&self.dead).contains(&owner) {
            return;
        }
        let me = self.clone();
        self.handle.spawn(async move {
            if let Err(e) = me.update_refs(id, me.node_id, -1).await {
                tracing::debug!(object = id, error = %e, "could not release a borrow");
            }
        });
    }

    async fn update_refs(self: &Arc<Self>, id: u64, borrower: u32, delta: i64) -> Result<()> {
        let owner = owner_node(id);
        let address = self.address_of(owner).await?;
        let peer = self.peer(owner, &address).await?;
        peer.rpc
            .clone()
            .update_refs(proto::RefUpdate { object_id: id, borrower, delta })
            .await
            .map_err(|s| status_error(&s, owner, &address))?;
        Ok(())
    }

    /// The bytes of object `id`, owned by another node: from the cache, or pulled once.
    pub(crate) async fn fetch(self: &Arc<Self>, id: u64, timeout: Option<Duration>) -> Result<Bytes> {
        let owner = owner_node(id);
        if lock(&self.dead).contains(&owner) {
            return Err(RuntimeError::OwnerDied { id, node: owner });
        }
        let cell = lock(&self.cache).entries.entry(id).or_default().clone();
        let result = cell.get_or_try_init(|| self.pull(id, owner, timeout)).await.cloned();
        if result.is_err() {
            let mut cache = lock(&self.cache);
            if cache.entries.get(&id).is_some_and(|c| c.get().is_none()) {
                cache.entries.remove(&id);
            }
        }
        result
    }

    /// Starts [`NodeCore::fetch`] of object `id` in the background.
    pub(crate) fn prefetch(self: &Arc<Self>, id: u64) {
        let me = self.clone();
        self.handle.spawn(async move {
            if let Err(e) = me.fetch(id, None).await {
                tracing::debug!(object = id, error = %e, "prefetch failed");
            }
        });
    }

    /// Pulls object `id` from its owner in chunks.
    async fn pull(self: &Arc<Self>, id: u64, owner: u32, timeout: Option<Duration>) -> Result<Bytes> {
        let address = self.address_of(owner).await?;
        let peer = self.peer(owner, &address).await?;
        let status = |s: Status| status_error(&s, owner, &address);
        let timeout_ms = timeout.map_or(0, |t| t.as_millis().max(1) as u64);
        let mut stream =
            peer.rpc.clone().pull(proto::PullRequest { object_id: id, timeout_ms }).await.map_err(status)?.into_inner();
        let first = stream.message().await.map_err(status)?.ok_or_else(|| {
            RuntimeError::Cluster(format!("node {owner} ended the pull of object {id} before sending it"))
        })?;
        let what = format!("object {id} from node {owner}");
        let mut chunks = 1;
        let mut object = Reassembly::new(&what, first.total_len, first.data)?;
        while let Some(chunk) = stream.message().await.map_err(status)? {
            object.push(&chunk.data)?;
            chunks += 1;
        }
        let bytes = object.finish()?;
        let total = bytes.len();
        self.counters.objects_pulled.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_pulled.fetch_add(total as u64, Ordering::Relaxed);
        self.counters.chunks_pulled.fetch_add(chunks, Ordering::Relaxed);
        lock(&self.cache).insert_done(id, total);
        Ok(bytes)
    }

    /// Frees objects owned by other nodes on their owners, and drops this node's copies.
    pub(crate) fn free_remote(self: &Arc<Self>, refs: &[ObjectRef]) {
        let mut by_owner: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for r in refs {
            lock(&self.cache).remove(r.id());
            by_owner.entry(r.owner_node()).or_default().push(r.id());
        }
        for (owner, ids) in by_owner {
            let me = self.clone();
            self.handle.spawn(async move {
                let Ok(address) = me.address_of(owner).await else { return };
                if let Ok(peer) = me.peer(owner, &address).await {
                    let _ = peer.rpc.clone().free(proto::FreeRequest { object_ids: ids }).await;
                }
            });
        }
    }

    // === Tasks ===

    /// Runs task `name` on a node the head picks and completes object `out` (owned here) with
    /// its result.
    pub(crate) fn submit_remote(self: &Arc<Self>, name: &str, args: Bytes, out: u64) {
        let (me, name) = (self.clone(), name.to_string());
        self.handle.spawn(async move {
            let result = me.run_task_somewhere(&name, args).await.map_err(|e| e.to_string());
            let store = me.store.clone();
            // Completing may wait for room in the store: keep that off the network threads.
            let _ = tokio::task::spawn_blocking(move || store.complete(out, result)).await;
        });
    }

    async fn run_task_somewhere(self: &Arc<Self>, name: &str, args: Bytes) -> Result<Bytes> {
        let request = proto::PickNodeRequest {
            resources: Some(resources(&BTreeMap::from([("CPU".to_string(), 1.0)]))),
            placement_timeout_ms: 60_000,
            what: format!("task {name}"),
        };
        let picked = self
            .head
            .clone()
            .pick_node(request)
            .await
            .map_err(|s| status_error(&s, 0, &self.head_address))?
            .into_inner();
        if picked.node_id == self.node_id {
            let rt = self.runtime.upgrade().ok_or(RuntimeError::Shutdown)?;
            let name = name.to_string();
            return tokio::task::spawn_blocking(move || rt.run_task_now(&name, args))
                .await
                .map_err(|e| RuntimeError::Cluster(e.to_string()))?
                .map_err(|message| RuntimeError::ObjectFailed { id: 0, message });
        }
        let peer = self.peer(picked.node_id, &picked.address).await?;
        let status = |s: Status| status_error(&s, picked.node_id, &picked.address);
        let request = proto::RunTaskRequest { name: name.to_string(), args, caller: self.node_id };
        let mut stream = peer.rpc.clone().run_task(request).await.map_err(status)?.into_inner();
        let what = format!("the result of task {name} from node {}", picked.node_id);
        let Some(first) = stream.message().await.map_err(status)? else {
            return Err(RuntimeError::Cluster(format!("{what} ended before it was sent")));
        };
        let mut result = Reassembly::new(&what, first.total_len, first.data)?;
        while let Some(chunk) = stream.message().await.map_err(status)? {
            result.push(&chunk.data)?;
        }
        result.finish()
    }

    // === Lifecycle ===

    /// Counters of this node's data plane, with its store's and cache's bytes.
    pub(crate) fn transfer_stats(&self) -> proto::TransferStats {
        let c = &self.counters;
        let store = self.store.stats();
        proto::TransferStats {
            objects_pulled: c.objects_pulled.load(Ordering::Relaxed),
            bytes_pulled: c.bytes_pulled.load(Ordering::Relaxed),
            chunks_pulled: c.chunks_pulled.load(Ordering::Relaxed),
            objects_served: c.objects_served.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
            calls_sent: c.calls_sent.load(Ordering::Relaxed),
            calls_received: c.calls_received.load(Ordering::Relaxed),
            store_bytes: store.used_bytes as u64,
            cache_bytes: lock(&self.cache).bytes as u64,
            store_capacity_bytes: store.cap_bytes as u64,
            spilled_bytes: store.spilled_bytes as u64,
        }
    }

    /// One heartbeat: free resources, actors, counters; learns which nodes died.
    pub(super) async fn heartbeat(self: &Arc<Self>) -> Result<()> {
        let Some(rt) = self.runtime.upgrade() else { return Err(RuntimeError::Shutdown) };
        let (available, resource_version) = rt.available_with_version();
        drop(rt);
        let actors = lock(&self.directory)
            .iter()
            .map(|(id, a)| proto::ActorInfo {
                actor_id: *id,
                name: a.name.clone(),
                type_name: a.type_name.to_string(),
                node_id: self.node_id,
                alive: a.death.get().is_none(),
                death_reason: a.death.get().cloned().unwrap_or_default(),
                restarts: a.restarts.as_ref().map_or(0, |r| r.load(Ordering::Relaxed)),
            })
            .collect();
        let request = proto::HeartbeatRequest {
            node_id: self.node_id,
            available: Some(resources(&available)),
            resource_version,
            actors,
            transfers: Some(self.transfer_stats()),
            dead_seen: self.dead_seen.load(Ordering::Relaxed),
            head_epoch: self.head_epoch,
        };
        let reply = self
            .head
            .clone()
            .heartbeat(request)
            .await
            .map_err(|s| status_error(&s, 0, &self.head_address))?
            .into_inner();
        if reply.head_epoch != self.head_epoch {
            let why = format!("it restarted since this node (node {}) joined it, and no longer knows it", self.node_id);
            return Err(self.lose_head(why));
        }
        for node in reply.dead_nodes {
            self.node_dead(node, reply.death_reasons.get(&node).map(String::as_str));
        }
        self.dead_seen.store(reply.dead_total, Ordering::Relaxed);
        if !reply.accepted {
            self.request_stop("the head declared this node dead");
        }
        Ok(())
    }

    /// Gives up on the head (`why`: how it was lost): records [`RuntimeError::HeadLost`], which
    /// it returns, and asks this node to stop with it as the reason.
    pub(super) fn lose_head(&self, why: String) -> RuntimeError {
        let e = RuntimeError::HeadLost { address: self.head_address.clone(), message: why };
        if self.head_lost.set(e.clone()).is_ok() {
            tracing::error!("{e}");
            self.request_stop(&e.to_string());
        }
        e
    }

    /// Why this node gave up on the head, if it did.
    pub(crate) fn head_lost(&self) -> Option<RuntimeError> {
        self.head_lost.get().cloned()
    }

    /// Marks the node as asked to stop, with the first reason given.
    pub(crate) fn request_stop(&self, reason: &str) {
        let mut stop = lock(&self.stop);
        if stop.reason.is_none() {
            stop.reason = Some(reason.to_string());
        }
        self.stopped.notify_all();
    }

    /// Whether the node has been asked to stop.
    pub(crate) fn is_stopping(&self) -> bool {
        lock(&self.stop).reason.is_some()
    }

    /// Waits up to `limit` for the node to be asked to stop; returns why, if it was.
    pub(crate) fn wait_for_stop_timeout(&self, limit: Duration) -> Option<String> {
        let stop = lock(&self.stop);
        let (stop, _) =
            self.stopped.wait_timeout_while(stop, limit, |s| s.reason.is_none()).unwrap_or_else(|e| e.into_inner());
        stop.reason.clone()
    }

    /// Blocks until the node is asked to stop; returns why.
    pub(crate) fn wait_for_stop(&self) -> String {
        let mut stop = lock(&self.stop);
        while stop.reason.is_none() {
            stop = self.stopped.wait(stop).unwrap_or_else(|e| e.into_inner());
        }
        stop.reason.clone().unwrap_or_default()
    }

    /// Turns SIGINT and SIGTERM into a stop request.
    pub(crate) fn stop_on_signal(self: &Arc<Self>) {
        let me = self.clone();
        self.handle.spawn(async move {
            let reason = wait_for_signal().await;
            me.request_stop(&reason);
        });
    }

    /// The first half of shutdown (habit: decide, tell, wait): stop heartbeats and serving new
    /// calls, tell the head this node leaves (unless the head is lost: nobody would hear it).
    pub(crate) fn begin_shutdown(self: &Arc<Self>) {
        self.request_stop("shut down");
        let reason = lock(&self.stop).reason.clone().unwrap_or_default();
        if self.head_lost.get().is_none() {
            let mut head = self.head.clone();
            let (node_id, head_epoch) = (self.node_id, self.head_epoch);
            let _ = self.block_on(async move {
                let leave = head.leave(proto::LeaveRequest { node_id, reason, died: false, head_epoch });
                let _ = tokio::time::timeout(Duration::from_secs(2), leave).await;
            });
        }
        let _ = self.shutdown_tx.send(true);
        self.workers.terminate_all();
        for (_, (h, _)) in lock(&self.hosted).drain() {
            h.stop();
        }
    }

    /// The last half: wait for (or kill) the worker processes, drop connections and stop the
    /// network runtime.
    pub(crate) fn finish_shutdown(&self) {
        self.workers.wait_all();
        for (_, peer) in lock(&self.peers).drain() {
            peer.fail_all("this node shut down");
        }
        if let Some(network) = lock(&self.network).take() {
            network.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// An empty buffer with room for `len` bytes. On Linux a large one asks for transparent huge
/// pages: filling a new buffer is otherwise bound by faulting in its 4 KiB pages one by one (a
/// memcpy into a new 64 MiB buffer runs at about a fifth of the speed of one into a warm buffer).
/// The most memory reserved up front for an object arriving in chunks; a larger one grows as
/// its bytes arrive. The claimed length is the sender's word, so it is never trusted for more.
pub(crate) const MAX_RESERVE_BYTES: usize = 256 << 20;

/// An object arriving as a stream of chunks whose first one claims the total length
/// (`proto::Chunk`): the bytes so far, refused as soon as they pass the claim, and checked to
/// reach it at the end.
pub(crate) struct Reassembly {
    what: String,
    total: u64,
    first: Option<Bytes>,
    buf: Vec<u8>,
}

impl Reassembly {
    /// Starts `what` (named in errors) from its first chunk.
    pub(crate) fn new(what: &str, total_len: u64, first: Bytes) -> Result<Self> {
        let mut r = Self { what: what.to_string(), total: total_len, first: None, buf: Vec::new() };
        if first.len() as u64 == total_len {
            // The whole object in one chunk: no copy.
            r.first = Some(first);
            return Ok(r);
        }
        r.check(first.len() as u64)?;
        let reserve = usize::try_from(total_len).unwrap_or(usize::MAX).min(MAX_RESERVE_BYTES);
        r.buf = large_buffer(reserve);
        r.buf.extend_from_slice(&first);
        Ok(r)
    }

    fn received(&self) -> u64 {
        self.first.as_ref().map_or(self.buf.len(), Bytes::len) as u64
    }

    fn check(&self, received: u64) -> Result<()> {
        if received > self.total {
            return Err(RuntimeError::Cluster(format!(
                "{} sent more than the {} bytes it announced",
                self.what, self.total
            )));
        }
        Ok(())
    }

    /// Whether every announced byte has arrived.
    pub(crate) fn is_complete(&self) -> bool {
        self.received() == self.total
    }

    /// Appends the next chunk's data.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<()> {
        self.check(self.received().saturating_add(data.len() as u64))?;
        if let Some(first) = self.first.take() {
            self.buf = first.to_vec();
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The object, once all its announced bytes have arrived.
    pub(crate) fn finish(self) -> Result<Bytes> {
        if !self.is_complete() {
            return Err(RuntimeError::Cluster(format!(
                "{} arrived with {} of {} bytes",
                self.what,
                self.received(),
                self.total
            )));
        }
        Ok(self.first.unwrap_or_else(|| Bytes::from(self.buf)))
    }
}

fn large_buffer(len: usize) -> Vec<u8> {
    let buf = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    if len >= 4 << 20 {
        // madvise wants page-aligned bounds: advise the whole pages inside the buffer.
        const PAGE: usize = 4096;
        let start = (buf.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (buf.as_ptr() as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: advice on pages inside memory this Vec owns; madvise changes no contents,
            // and a refusal (huge pages disabled) only costs the speed-up.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    buf
}

/// Waits for SIGINT or SIGTERM; returns which.
async fn wait_for_signal() -> String {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM".into(),
            _ = int.recv() => "SIGINT".into(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C".into()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzz_harness;

    #[test]
    fn chunks_reassemble_to_the_announced_length() {
        let whole = Reassembly::new("object 1", 3, Bytes::from_static(b"abc")).unwrap();
        assert_eq!(whole.finish().unwrap(), Bytes::from_static(b"abc"));
        let mut r = Reassembly::new("object 1", 5, Bytes::from_static(b"ab")).unwrap();
        r.push(b"cd").unwrap();
        r.push(b"e").unwrap();
        assert_eq!(r.finish().unwrap(), Bytes::from_static(b"abcde"));
    }

    /// Found while writing the chunk fuzz target: a first chunk announcing 2^60 bytes reserved them
    /// at once (an allocation failure aborts the process), and a task result reserved `u64::MAX`.
    #[test]
    fn an_announced_length_is_not_trusted() {
        let mut r = Reassembly::new("object 7 from node 2", 1 << 60, Bytes::from_static(b"ab")).unwrap();
        assert!(r.buf.capacity() <= MAX_RESERVE_BYTES);
        r.push(b"cd").unwrap();
        let err = r.finish().unwrap_err().to_string();
        assert!(err.ends_with("object 7 from node 2 arrived with 4 of 1152921504606846976 bytes"), "{err}");
        let mut r = Reassembly::new("object 7 from node 2", 3, Bytes::from_static(b"ab")).unwrap();
        let err = r.push(b"cd").unwrap_err().to_string();
        assert!(err.ends_with("object 7 from node 2 sent more than the 3 bytes it announced"), "{err}");
        assert!(Reassembly::new("x", 1, Bytes::from_static(b"ab")).is_err());
    }

    /// Any sequence of chunks and announced length: the object is exactly the bytes sent when
    /// they match the announcement, else an error; never more memory than the cap up front.
    #[test]
    fn fuzz_chunk_reassembly() {
        let total = prop_oneof![0u64..64, fuzz_harness::odd_u64()];
        let chunks = proptest::collection::vec(fuzz_harness::bytes(24), 1..6);
        fuzz_harness::run("chunk_reassembly", (total, chunks), |(total, chunks)| {
            let sent: Vec<u8> = chunks.concat();
            let result = (|| {
                let mut r = Reassembly::new("object", total, Bytes::from(chunks[0].clone()))?;
                assert!(r.buf.capacity() <= MAX_RESERVE_BYTES.max(chunks[0].len()));
                for c in &chunks[1..] {
                    r.push(c)?;
                }
                r.finish()
            })();
            match result {
                Ok(bytes) => assert!(bytes == sent && sent.len() as u64 == total),
                Err(e) => assert!(sent.len() as u64 != total && e.to_string().contains("object"), "{e}"),
            }
        });
    }
}
