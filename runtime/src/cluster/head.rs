//! The head: the node table with failure detection, the actor directory, cluster-wide resource
//! accounting and placement, and a small KV store.
//!
//! Every node's heartbeat reports its free resources (with a version, so a late heartbeat never
//! overwrites a newer view), its actors and its counters; the answer lists the nodes declared
//! dead. Placement subtracts what a spawn in flight will take until the node's own answer says
//! what is left, so two concurrent spawns never count the same CPU.

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::auth::{AddToken, Caller, build_key};
use super::failure::FailureDetector;
use super::peer::NodeRpc;
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
}

impl NodeEntry {
    fn alive(&self) -> bool {
        self.info.state == NodeState::Alive as i32
    }

    /// Free amount of `resource`, less what spawns in flight will take.
    fn free(&self, resource: &str) -> f64 {
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
}

/// The head's state and settings.
pub(crate) struct HeadCore {
    state: Mutex<HeadState>,
    changed: tokio::sync::Notify,
    heartbeat_interval: Duration,
    node_timeout: Duration,
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
            }),
            changed: tokio::sync::Notify::new(),
            heartbeat_interval: options.heartbeat_interval,
            node_timeout: options.node_timeout,
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

    /// The node to place `need` on: `wanted` if given, else the worker node with the most free
    /// CPUs (ties: the lowest id). Drivers are only used when asked for by id.
    fn pick(st: &HeadState, need: &BTreeMap<String, f64>, wanted: u32) -> Result<u32, String> {
        if wanted != 0 {
            let entry = st.nodes.get(&wanted).filter(|e| e.alive()).ok_or(format!("node {wanted} is not alive"))?;
            return if entry.fits(need) {
                Ok(wanted)
            } else {
                Err(format!("node {wanted} lacks room: {}", describe(entry, need)))
            };
        }
        let best = st
            .nodes
            .iter()
            .filter(|(_, e)| e.alive() && !e.info.is_driver && e.fits(need))
            .max_by(|(a_id, a), (b_id, b)| a.free("CPU").total_cmp(&b.free("CPU")).then(b_id.cmp(a_id)));
        if let Some((id, _)) = best {
            return Ok(*id);
        }
        let workers: Vec<String> = st
            .nodes
            .iter()
            .filter(|(_, e)| e.alive() && !e.info.is_driver)
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
        };
        st.nodes.insert(id, NodeEntry { info, version: 0, in_flight: BTreeMap::new(), actors: Vec::new(), rpc: None });
        drop(st);
        tracing::info!(node = id, address = %req.address, driver = req.is_driver, "node joined");
        head.changed.notify_waiters();
        Ok(Response::new(proto::JoinReply {
            node_id: id,
            heartbeat_interval_ms: head.heartbeat_interval.as_millis() as u64,
            node_timeout_ms: head.node_timeout.as_millis() as u64,
            head_build: head.build.clone(),
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        let mut st = lock(&head.state);
        let dead_nodes = st.dead.clone();
        let Some(entry) = st.nodes.get_mut(&req.node_id).filter(|e| e.alive()) else {
            return Ok(Response::new(proto::HeartbeatReply { dead_nodes, accepted: false }));
        };
        if req.resource_version >= entry.version {
            entry.version = req.resource_version;
            entry.info.available = req.available;
        }
        entry.actors = req.actors;
        entry.info.transfers = req.transfers;
        st.detector.heartbeat(req.node_id, Instant::now());
        drop(st);
        head.changed.notify_waiters();
        Ok(Response::new(proto::HeartbeatReply { dead_nodes, accepted: true }))
    }

    async fn leave(&self, req: Request<proto::LeaveRequest>) -> Result<Response<proto::LeaveReply>, Status> {
        let req = req.into_inner();
        self.0.mark_dead(req.node_id, &format!("left ({})", req.reason));
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
        Ok(Response::new(proto::ListNodesReply { nodes, actors }))
    }

    async fn spawn_actor(
        &self,
        req: Request<proto::SpawnActorRequest>,
    ) -> Result<Response<proto::SpawnActorReply>, Status> {
        let head = &self.0;
        let req = req.into_inner();
        let options = req.options.clone().unwrap_or_default();
        let need: BTreeMap<String, f64> = options
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
        let (node, rpc) = loop {
            let mut notified = pin!(head.changed.notified());
            notified.as_mut().enable();
            {
                let mut st = lock(&head.state);
                match HeadCore::pick(&st, &need, options.node_id) {
                    Ok(node) => {
                        let entry = st.nodes.get_mut(&node).expect("picked from the table");
                        for (r, v) in &need {
                            *entry.in_flight.entry(r.clone()).or_insert(0.0) += v;
                        }
                        let rpc = head.node_rpc(&mut st, node)?;
                        break (node, rpc);
                    }
                    Err(message) if tokio::time::Instant::now() >= deadline => {
                        let message = format!("{message} (waited {:.0} s)", timeout.as_secs_f64());
                        return Err(error_status(&RuntimeError::Unschedulable { what, message }));
                    }
                    Err(_) => {}
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
        let result = rpc.clone().spawn_actor(forwarded).await;
        let mut st = lock(&head.state);
        if let Some(entry) = st.nodes.get_mut(&node) {
            for (r, v) in &need {
                if let Some(x) = entry.in_flight.get_mut(r) {
                    *x -= v;
                }
            }
            if let Ok(reply) = &result {
                let reply = reply.get_ref();
                if reply.resource_version >= entry.version {
                    entry.version = reply.resource_version;
                    entry.info.available = reply.available.clone();
                }
                entry.actors.retain(|a| a.actor_id != reply.actor_id);
                entry.actors.push(proto::ActorInfo {
                    actor_id: reply.actor_id,
                    name: reply.name.clone(),
                    type_name: req.type_name.clone(),
                    node_id: node,
                    alive: true,
                    death_reason: String::new(),
                });
            }
        }
        drop(st);
        head.changed.notify_waiters();
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
