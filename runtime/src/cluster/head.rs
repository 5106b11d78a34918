//! The head: the node table with failure detection, the actor directory, cluster-wide resource
//! accounting and placement, and a small KV store.
//!
//! Every node's heartbeat reports its free resources (with a version, so a late heartbeat never
//! overwrites a newer view), its actors and its counters; the answer lists the nodes declared
//! dead. Placement subtracts what a spawn in flight will take until the node's own answer says
//! what is left, so two concurrent spawns never count the same CPU, and what placement groups'
//! bundles hold back (see [`super::placement`]).

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::auth::{AddToken, Caller, build_key};
use super::failure::FailureDetector;
use super::peer::NodeRpc;
use super::placement::{Groups, Res};
use super::proto::head_server::{Head, HeadServer};
use super::proto::node_client::NodeClient;
use super::proto::{self, NodeState};
use super::{ClusterOptions, MAX_MESSAGE_BYTES, TlsConfig, Token, endpoint, error_status};
use crate::error::RuntimeError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a handful of map updates, so a poisoned lock is consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node as the head knows it.
struct NodeEntry {
    info: proto::NodeInfo,
    /// Version of `info.available`, from the node.
    version: u64,
    /// Resources of spawns placed on it whose answer has not come back.
    in_flight: BTreeMap<String, f64>,
    actors: Vec<proto::ActorInfo>,
    rpc: Option<NodeRpc>,
    /// What placement-group bundles on it hold back from other work (see [`HeadCore::refresh`]).
    held: Res,
}

impl NodeEntry {
    fn alive(&self) -> bool {
        self.info.state == NodeState::Alive as i32
    }

    /// Whether placement may pick it without being asked by id: alive, not a driver, not a
    /// process actor's worker process.
    fn takes_work(&self) -> bool {
        self.alive() && !self.info.is_driver && self.info.parent == 0
    }

    /// Free amount of `resource` for work outside placement groups: what the node reports, less
    /// what spawns in flight will take and what bundles hold back.
    fn free(&self, resource: &str) -> f64 {
        self.unheld(resource) - self.held.get(resource).copied().unwrap_or(0.0)
    }

    /// Free amount of `resource` counting bundles' reservations as free (room for a bundle's actor).
    fn unheld(&self, resource: &str) -> f64 {
        let available = self.info.available.as_ref().and_then(|r| r.amounts.get(resource)).copied().unwrap_or(0.0);
        available - self.in_flight.get(resource).copied().unwrap_or(0.0)
    }

    fn total(&self, resource: &str) -> f64 {
        self.info.total.as_ref().and_then(|r| r.amounts.get(resource)).copied().unwrap_or(0.0)
    }

    fn fits(&self, need: &BTreeMap<String, f64>) -> bool {
        need.iter().all(|(r, v)| *v <= self.free(r) + 1e-9)
    }
}

struct HeadState {
    nodes: BTreeMap<u32, NodeEntry>,
    next_id: u32,
    detector: FailureDetector,
    kv: HashMap<String, Bytes>,
    dead: Vec<u32>,
    groups: Groups,
}

/// Where a spawn goes: the node, and the placement-group bundle it takes from.
struct Slot {
    node: u32,
    bundle: Option<(u64, usize)>,
}

/// What [`HeadCore::try_place`] found.
enum Placed {
    Now(Slot),
    /// Not yet; the message says what is missing, for the error if it never comes.
    Wait(String),
    /// Never (a removed or unknown group, a bundle index out of range).
    Never(Status),
}

/// The head's state and settings.
pub(crate) struct HeadCore {
    state: Mutex<HeadState>,
    changed: tokio::sync::Notify,
    heartbeat_interval: Duration,
    node_timeout: Duration,
    /// This run of the head (`JoinReply.head_epoch`): its start time in ns.
    epoch: u64,
    build: String,
    token: Token,
    tls: Option<TlsConfig>,
}

impl HeadCore {
    pub(crate) fn new(options: &ClusterOptions, build: String) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HeadState {
                nodes: BTreeMap::new(),
                next_id: 1,
                detector: FailureDetector::new(options.node_timeout),
                kv: HashMap::new(),
                dead: Vec::new(),
                groups: Groups::default(),
            }),
            changed: tokio::sync::Notify::new(),
            heartbeat_interval: options.heartbeat_interval,
            node_timeout: options.node_timeout,
            epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            build,
            token: options.token.clone(),
            tls: options.tls.clone(),
        })
    }

    /// The gRPC service.
    pub(crate) fn service(self: Arc<Self>) -> HeadServer<HeadService> {
        HeadServer::new(HeadService(self))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Checks for silent nodes a few times per heartbeat interval.
    pub(crate) fn watch_heartbeats(self: Arc<Self>, handle: &tokio::runtime::Handle) {
        let period = (self.heartbeat_interval / 2).max(Duration::from_millis(10));
        let weak = Arc::downgrade(&self);
        handle.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(head) = weak.upgrade() else { return };
                let now = Instant::now();
                let expired = lock(&head.state).detector.expired(now);
                for (node, silence) in expired {
                    let reason = format!(
                        "no heartbeat for {:.1} s (node_timeout {:.1} s)",
                        silence.as_secs_f64(),
                        head.node_timeout.as_secs_f64()
                    );
                    head.mark_dead(node, &reason);
                }
            }
        });
    }

    /// Declares `node` dead (or gone): its actors are lost, its resources leave the pool.
    fn mark_dead(&self, node: u32, reason: &str) {
        let mut st = lock(&self.state);
        st.detector.remove(node);
        let Some(entry) = st.nodes.get_mut(&node) else { return };
        if !entry.alive() {
            return;
        }
        entry.info.state = NodeState::Dead as i32;
        entry.info.death_reason = reason.to_string();
        entry.info.available = Some(proto::Resources::default());
        entry.rpc = None;
        for a in &mut entry.actors {
            if a.alive {
                a.alive = false;
                a.death_reason = format!("its node {node} is gone: {reason}");
            }
        }
        st.dead.push(node);
        st.groups.node_dead(node);
        Self::refresh(&mut st);
        drop(st);
        if reason.starts_with("left") {
            tracing::info!(node, %reason, "node left");
        } else {
            tracing::warn!(node, %reason, "node declared dead");
        }
        self.changed.notify_waiters();
    }

    fn node_rpc(&self, st: &mut HeadState, node: u32) -> Result<NodeRpc, Status> {
        let entry = st.nodes.get_mut(&node).ok_or_else(|| Status::not_found(format!("no node {node}")))?;
        if let Some(rpc) = &entry.rpc {
            return Ok(rpc.clone());
        }
        let channel = endpoint(&entry.info.address, self.tls.as_ref()).map_err(|e| error_status(&e))?.connect_lazy();
        let rpc = NodeClient::with_interceptor(channel, AddToken::new(&self.token, 0).map_err(|e| error_status(&e))?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        entry.rpc = Some(rpc.clone());
        Ok(rpc)
    }

    /// Ends a spawn's time in flight: the node's answer (if it built the actor) updates its free
    /// resources and the directory, and the actor joins its bundle. Returns true if the bundle's
    /// group was removed meanwhile (the caller stops the new actor).
    fn settle(
        &self,
        st: &mut HeadState,
        slot: &Slot,
        need: &Res,
        reply: Option<&proto::SpawnActorReply>,
        type_name: &str,
    ) -> bool {
        if let Some(entry) = st.nodes.get_mut(&slot.node) {
            add(&mut entry.in_flight, need, -1.0);
            if let Some(reply) = reply {
                if reply.resource_version >= entry.version {
                    entry.version = reply.resource_version;
                    entry.info.available = reply.available.clone();
                }
                entry.actors.retain(|a| a.actor_id != reply.actor_id);
                entry.actors.push(proto::ActorInfo {
                    actor_id: reply.actor_id,
                    name: reply.name.clone(),
                    type_name: type_name.to_string(),
                    node_id: slot.node,
                    alive: true,
                    death_reason: String::new(),
                    restarts: 0,
                });
            }
        }
        let mut orphan = false;
        if let Some((group, i)) = slot.bundle
            && let Some(g) = st.groups.groups.get_mut(&group)
        {
            let removed = g.state == proto::PlacementGroupState::Removed;
            let b = &mut g.bundles[i];
            if b.node == Some(slot.node) {
                add(&mut b.in_flight, need, -1.0);
                if let Some(reply) = reply {
                    b.actors.insert(reply.actor_id, need.clone());
                }
            }
            orphan = removed && reply.is_some();
        }
        Self::refresh(st);
        orphan
    }

    /// Recomputes what bundles hold back on each node, places the placement groups that wait if
    /// the cluster can now hold them, and recomputes again if any was placed. Called on every
    /// change of nodes, resources, actors or groups.
    fn refresh(st: &mut HeadState) {
        loop {
            let alive = alive_actors(st);
            let held = st.groups.reserved(&|a| alive.contains(&a));
            for (id, e) in &mut st.nodes {
                e.held = held.get(id).cloned().unwrap_or_default();
            }
            let mut free: BTreeMap<u32, Res> = st
                .nodes
                .iter()
                .filter(|(_, e)| e.takes_work())
                .map(|(id, e)| {
                    let names = e.info.total.iter().flat_map(|t| t.amounts.keys());
                    (*id, names.map(|r| (r.clone(), e.free(r))).collect())
                })
                .collect();
            if !st.groups.place_waiting(&mut free) {
                return;
            }
        }
    }

    /// Where a spawn of `need` with `options` goes now, if anywhere: a bundle of its placement
    /// group with room, or a node by [`HeadCore::pick`]. Marks what it takes as in flight.
    fn try_place(st: &mut HeadState, need: &Res, options: &proto::ActorOptionsProto) -> Placed {
        Self::refresh(st);
        if options.placement_group_id == 0 {
            return match Self::pick(st, need, options.node_id) {
                Ok(node) => {
                    let entry = st.nodes.get_mut(&node).expect("picked from the table");
                    add(&mut entry.in_flight, need, 1.0);
                    Placed::Now(Slot { node, bundle: None })
                }
                Err(message) => Placed::Wait(message),
            };
        }
        let id = options.placement_group_id;
        let alive = alive_actors(st);
        let Some(group) = st.groups.groups.get_mut(&id) else {
            return Placed::Never(Status::not_found(format!("no placement group {id}")));
        };
        let state = group.state;
        if state == proto::PlacementGroupState::Removed {
            return Placed::Never(Status::failed_precondition(format!("placement group {id} was removed")));
        }
        let candidates: Vec<usize> = match usize::try_from(options.bundle_index) {
            Ok(i) if i < group.bundles.len() => vec![i],
            Ok(i) => {
                let e = RuntimeError::InvalidActorOption {
                    actor: options.name.clone(),
                    option: "placement".into(),
                    expected: format!("a bundle index below {} (placement group {id}'s bundles)", group.bundles.len()),
                    found: i.to_string(),
                };
                return Placed::Never(error_status(&e));
            }
            Err(_) => (0..group.bundles.len()).collect(),
        };
        let nodes = &st.nodes;
        let chosen = candidates.into_iter().find(|i| {
            let b = &group.bundles[*i];
            b.node.and_then(|n| nodes.get(&n)).is_some_and(|e| {
                e.alive()
                    && b.has_room(need, &|a| alive.contains(&a))
                    && need.iter().all(|(r, v)| *v <= e.unheld(r) + 1e-9)
            })
        });
        let Some(i) = chosen else {
            let name = super::placement_group::state_name(state);
            return Placed::Wait(format!("placement group {id} ({name}) has no bundle with {} free", show(need)));
        };
        let bundle = &mut group.bundles[i];
        add(&mut bundle.in_flight, need, 1.0);
        let node = bundle.node.expect("chosen bundles are placed");
        add(&mut st.nodes.get_mut(&node).expect("bundle nodes are in the table").in_flight, need, 1.0);
        Placed::Now(Slot { node, bundle: Some((id, i)) })
    }

    /// The node to place `need` on: `wanted` if given, else the worker node with the most free
    /// CPUs (ties: the lowest id). Drivers are only used when asked for by id.
    fn pick(st: &HeadState, need: &BTreeMap<String, f64>, wanted: u32) -> Result<u32, String> {
        if wanted != 0 {
            let entry = st.nodes.get(&wanted).filter(|e| e.alive()).ok_or(format!("node {wanted} is not alive"))?;
            if entry.info.parent != 0 {
                return Err(format!(
                    "node {wanted} is the worker process of an actor of node {}, which runs nothing else; place \
                     actors on node {} instead",
                    entry.info.parent, entry.info.parent
                ));
            }
            return if entry.fits(need) {
                Ok(wanted)
            } else {
                Err(format!("node {wanted} lacks room: {}", describe(entry, need)))
            };
        }
        let best = st
            .nodes
            .iter()
            .filter(|(_, e)| e.takes_work() && e.fits(need))
            .max_by(|(a_id, a), (b_id, b)| a.free("CPU").total_cmp(&b.free("CPU")).then(b_id.cmp(a_id)));
        if let Some((id, _)) = best {
            return Ok(*id);
        }
        let workers: Vec<String> = st
            .nodes
            .iter()
            .filter(|(_, e)| e.takes_work())
            .map(|(id, e)| format!("node {id}: {}", describe(e, need)))
            .collect();
        if workers.is_empty() {
            return Err("the cluster has no worker nodes (start one with `rl start --address HEAD`)".into());
        }
        Err(format!(
            "no worker node has {} free ({}); start more nodes with `rl start --address HEAD` or ask for less",
            show(need),
            workers.join("; ")
        ))
    }
}

/// The actors the nodes' latest reports (and settled spawns) say are alive.
fn alive_actors(st: &HeadState) -> std::collections::HashSet<u64> {
    st.nodes.values().flat_map(|e| e.actors.iter().filter(|a| a.alive).map(|a| a.actor_id)).collect()
}

/// Adds `sign * need` to `to`.
fn add(to: &mut Res, need: &Res, sign: f64) {
    for (r, v) in need {
        *to.entry(r.clone()).or_insert(0.0) += sign * v;
    }
}

/// `CPU 1, GPU 0.5`.
fn show(r: &BTreeMap<String, f64>) -> String {
    if r.is_empty() {
        return "nothing".into();
    }
    r.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// What a node has free of the resources in `need`: `CPU 0/2 free`.
fn describe(e: &NodeEntry, need: &BTreeMap<String, f64>) -> String {
    let keys: Vec<&String> = if need.is_empty() { Vec::new() } else { need.keys().collect() };
    keys.iter().map(|k| format!("{k} {}/{} free", e.free(k), e.total(k))).collect::<Vec<_>>().join(", ")
}

/// The head's gRPC service.
pub(crate) struct HeadService(Arc<HeadCore>);

#[tonic::async_trait]
impl Head for HeadService {
    async fn join(&self, req: Request<proto::JoinRequest>) -> Result<Response<proto::JoinReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        if build_key(&req.build) != build_key(&head.build) {
            tracing::warn!(node = %req.address, build = %req.build, "refused a node of another build");
            return Err(error_status(&RuntimeError::BuildMismatch { ours: req.build, head: head.build.clone() }));
        }
        let mut st = lock(&head.state);
        let id = st.next_id;
        st.next_id += 1;
        st.detector.heartbeat(id, Instant::now());
        let info = proto::NodeInfo {
            node_id: id,
            address: req.address.clone(),
            pid: req.pid,
            hostname: req.hostname,
            available: req.total.clone(),
            total: req.total,
            state: NodeState::Alive as i32,
            is_driver: req.is_driver,
            last_heartbeat_ms_ago: 0,
            death_reason: String::new(),
            transfers: None,
            build: req.build,
            parent: req.parent,
        };
        st.nodes.insert(
            id,
            NodeEntry { info, version: 0, in_flight: BTreeMap::new(), actors: Vec::new(), rpc: None, held: Res::new() },
        );
        HeadCore::refresh(&mut st);
        drop(st);
        tracing::info!(node = id, address = %req.address, driver = req.is_driver, "node joined");
        head.changed.notify_waiters();
        Ok(Response::new(proto::JoinReply {
            node_id: id,
            heartbeat_interval_ms: head.heartbeat_interval.as_millis() as u64,
            node_timeout_ms: head.node_timeout.as_millis() as u64,
            head_build: head.build.clone(),
            head_epoch: head.epoch,
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        if req.head_epoch != head.epoch {
            // A node of an earlier run of this head (ids start again at 1): its membership is gone,
            // and its id may be another node's now. The reply's epoch tells it so.
            return Ok(Response::new(proto::HeartbeatReply { head_epoch: head.epoch, ..Default::default() }));
        }
        let mut st = lock(&head.state);
        // Only the deaths this node has not heard of: the list grows with every process actor.
        let dead_total = st.dead.len() as u64;
        let seen = usize::try_from(req.dead_seen).unwrap_or(usize::MAX).min(st.dead.len());
        let dead_nodes = st.dead[seen..].to_vec();
        let death_reasons = dead_nodes
            .iter()
            .filter_map(|n| st.nodes.get(n).map(|e| (*n, e.info.death_reason.clone())))
            .filter(|(_, reason)| !reason.is_empty())
            .collect();
        let Some(entry) = st.nodes.get_mut(&req.node_id).filter(|e| e.alive()) else {
            return Ok(Response::new(proto::HeartbeatReply {
                dead_nodes,
                accepted: false,
                death_reasons,
                dead_total,
                head_epoch: head.epoch,
            }));
        };
        if req.resource_version >= entry.version {
            entry.version = req.resource_version;
            entry.info.available = req.available;
        }
        entry.actors = req.actors;
        entry.info.transfers = req.transfers;
        st.detector.heartbeat(req.node_id, Instant::now());
        HeadCore::refresh(&mut st);
        drop(st);
        head.changed.notify_waiters();
        Ok(Response::new(proto::HeartbeatReply {
            dead_nodes,
            accepted: true,
            death_reasons,
            dead_total,
            head_epoch: head.epoch,
        }))
    }

    async fn leave(&self, req: Request<proto::LeaveRequest>) -> Result<Response<proto::LeaveReply>, Status> {
        let req = req.into_inner();
        if req.head_epoch != self.0.epoch {
            // A node of an earlier run: its id may be another node's now.
            return Ok(Response::new(proto::LeaveReply {}));
        }
        let reason = if req.died { req.reason } else { format!("left ({})", req.reason) };
        self.0.mark_dead(req.node_id, &reason);
        Ok(Response::new(proto::LeaveReply {}))
    }

    async fn list_nodes(
        &self,
        _req: Request<proto::ListNodesRequest>,
    ) -> Result<Response<proto::ListNodesReply>, Status> {
        let st = lock(&self.0.state);
        let now = Instant::now();
        let nodes = st
            .nodes
            .iter()
            .map(|(id, e)| {
                let mut info = e.info.clone();
                info.last_heartbeat_ms_ago = st.detector.silence(*id, now).map_or(0, |d| d.as_millis() as u64);
                info
            })
            .collect();
        let actors = st.nodes.values().flat_map(|e| e.actors.iter().cloned()).collect();
        let placement_groups = st.groups.groups.values().map(|g| g.info()).collect();
        Ok(Response::new(proto::ListNodesReply { nodes, actors, placement_groups }))
    }

    async fn spawn_actor(
        &self,
        req: Request<proto::SpawnActorRequest>,
    ) -> Result<Response<proto::SpawnActorReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        let options = req.options.clone().unwrap_or_default();
        let need: Res = options
            .resources
            .clone()
            .map(|r| r.amounts.into_iter().filter(|(_, v)| *v > 0.0).collect())
            .unwrap_or_default();
        let what = if options.name.is_empty() {
            format!("actor {}", req.type_name)
        } else {
            format!("actor {}", options.name)
        };
        let timeout = Duration::from_millis(if options.placement_timeout_ms == 0 {
            60_000
        } else {
            options.placement_timeout_ms
        });
        let deadline = tokio::time::Instant::now() + timeout;
        let (slot, rpc) = loop {
            let mut notified = pin!(head.changed.notified());
            notified.as_mut().enable();
            {
                let mut st = lock(&head.state);
                match HeadCore::try_place(&mut st, &need, &options) {
                    Placed::Now(slot) => match head.node_rpc(&mut st, slot.node) {
                        Ok(rpc) => break (slot, rpc),
                        Err(e) => {
                            head.settle(&mut st, &slot, &need, None, "");
                            return Err(e);
                        }
                    },
                    Placed::Never(status) => return Err(status),
                    Placed::Wait(message) if tokio::time::Instant::now() >= deadline => {
                        let message = format!("{message} (waited {:.0} s)", timeout.as_secs_f64());
                        return Err(error_status(&RuntimeError::Unschedulable { what, message }));
                    }
                    Placed::Wait(_) => {}
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        };
        let forwarded = proto::NodeSpawnRequest {
            type_name: req.type_name.clone(),
            init: req.init,
            options: req.options,
            owner: req.caller,
        };
        let node_address = lock(&head.state).nodes.get(&slot.node).map(|e| e.info.address.clone()).unwrap_or_default();
        // A node that cannot be reached is named as such: the caller must not read the head's
        // answer as the head itself being unreachable.
        let result = rpc
            .clone()
            .spawn_actor(forwarded)
            .await
            .map_err(|s| error_status(&super::status_error(&s, slot.node, &node_address)));
        let orphan = {
            let mut st = lock(&head.state);
            head.settle(&mut st, &slot, &need, result.as_ref().ok().map(|r| r.get_ref()), &req.type_name)
        };
        head.changed.notify_waiters();
        if orphan {
            // Its group was removed while it was being built: stop it, as removal stops the rest.
            let actor_id = result.as_ref().map_or(0, |r| r.get_ref().actor_id);
            let _ = rpc.clone().stop_actor(proto::StopActorRequest { actor_id, force: false }).await;
            return Err(Status::failed_precondition(format!(
                "placement group {} was removed while {what} was being placed",
                options.placement_group_id
            )));
        }
        result
    }

    async fn pick_node(&self, req: Request<proto::PickNodeRequest>) -> Result<Response<proto::PickNodeReply>, Status> {
        let caller = req.extensions().get::<Caller>().map_or(0, |c| c.0);
        let req = req.into_inner();
        let need: BTreeMap<String, f64> = req.resources.map(|r| r.amounts.into_iter().collect()).unwrap_or_default();
        let st = lock(&self.0.state);
        // A task takes its CPU only while it runs: any worker node with room, else the caller.
        let node = HeadCore::pick(&st, &need, 0).unwrap_or(caller);
        let address = st.nodes.get(&node).map(|e| e.info.address.clone()).unwrap_or_default();
        Ok(Response::new(proto::PickNodeReply { node_id: node, address }))
    }

    async fn create_placement_group(
        &self,
        req: Request<proto::CreatePlacementGroupRequest>,
    ) -> Result<Response<proto::CreatePlacementGroupReply>, Status> {
        let req = req.into_inner();
        let strategy = proto::PlacementStrategy::try_from(req.strategy)
            .ok()
            .filter(|s| *s != proto::PlacementStrategy::Unspecified)
            .ok_or_else(|| Status::invalid_argument(format!("unknown placement strategy {}", req.strategy)))?;
        if req.bundles.is_empty() {
            return Err(Status::invalid_argument("a placement group needs at least one bundle"));
        }
        let bundles: Vec<Res> =
            req.bundles.into_iter().map(|r| r.amounts.into_iter().filter(|(_, v)| *v > 0.0).collect()).collect();
        if let Some((r, v)) = bundles.iter().flatten().find(|(_, v)| !v.is_finite()) {
            return Err(Status::invalid_argument(format!("bundle resource {r} = {v} is not a finite amount")));
        }
        let mut st = lock(&self.0.state);
        let id = st.groups.create(req.name, strategy, bundles, req.caller);
        HeadCore::refresh(&mut st);
        let group = st.groups.groups[&id].info();
        drop(st);
        self.0.changed.notify_waiters();
        Ok(Response::new(proto::CreatePlacementGroupReply { group: Some(group) }))
    }

    async fn remove_placement_group(
        &self,
        req: Request<proto::RemovePlacementGroupRequest>,
    ) -> Result<Response<proto::RemovePlacementGroupReply>, Status> {
        let head = &self.0;
        let id = req.into_inner().group_id;
        // Ray's removal stops the group's actors; their nodes free the resources they held.
        let stops = {
            let mut st = lock(&head.state);
            let actors = st.groups.remove(id).ok_or_else(|| Status::not_found(format!("no placement group {id}")))?;
            HeadCore::refresh(&mut st);
            let mut stops = Vec::new();
            for (node, actor_id) in actors {
                if let Ok(rpc) = head.node_rpc(&mut st, node) {
                    stops.push((rpc, actor_id));
                }
            }
            stops
        };
        head.changed.notify_waiters();
        tracing::info!(group = id, actors = stops.len(), "placement group removed");
        for (mut rpc, actor_id) in stops {
            // A node that is gone took the actor with it; nothing more to stop there.
            let _ = rpc.stop_actor(proto::StopActorRequest { actor_id, force: false }).await;
        }
        Ok(Response::new(proto::RemovePlacementGroupReply {}))
    }

    async fn get_placement_group(
        &self,
        req: Request<proto::GetPlacementGroupRequest>,
    ) -> Result<Response<proto::GetPlacementGroupReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
        loop {
            let mut notified = pin!(head.changed.notified());
            notified.as_mut().enable();
            {
                let st = lock(&head.state);
                let g = st
                    .groups
                    .groups
                    .get(&req.group_id)
                    .ok_or_else(|| Status::not_found(format!("no placement group {}", req.group_id)))?;
                let settled =
                    matches!(g.state, proto::PlacementGroupState::Created | proto::PlacementGroupState::Removed);
                if settled || tokio::time::Instant::now() >= deadline {
                    return Ok(Response::new(proto::GetPlacementGroupReply { group: Some(g.info()) }));
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    async fn kv_put(&self, req: Request<proto::KvPutRequest>) -> Result<Response<proto::KvPutReply>, Status> {
        let req = req.into_inner();
        let mut st = lock(&self.0.state);
        let written = req.overwrite || !st.kv.contains_key(&req.key);
        if written {
            st.kv.insert(req.key, req.value);
        }
        Ok(Response::new(proto::KvPutReply { written }))
    }

    async fn kv_get(&self, req: Request<proto::KvGetRequest>) -> Result<Response<proto::KvGetReply>, Status> {
        let st = lock(&self.0.state);
        let value = st.kv.get(&req.into_inner().key).cloned();
        Ok(Response::new(proto::KvGetReply { found: value.is_some(), value: value.unwrap_or_default() }))
    }
}
