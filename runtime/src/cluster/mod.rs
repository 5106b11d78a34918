//! The cluster: a head and nodes in separate processes, talking gRPC (tonic) on tokio.
//!
//! - [`Runtime::start_head`] starts the head (node table, failure detection, actor directory,
//!   resource accounting, a small KV store) and a node in this process, like `ray start --head`.
//! - [`Runtime::join`] joins a running head as a worker node or, with
//!   [`ClusterOptions::is_driver`], as a driver, like `ray start --address` and
//!   `ray.init(address=...)`. Every process that joins is a node with its own object store.
//!
//! Networking runs on a small tokio runtime owned by the node; actors keep their own threads.
//! The wire protocol is `proto/cluster.proto`. The rules every process follows:
//!
//! - **Auth**: every RPC carries the cluster token ([`auth`]); TLS is optional builder config.
//! - **Calls**: one long-lived bidirectional stream per (caller, callee) pair carries every call
//!   and its reply, so a call costs one message each way, not an HTTP/2 request.
//! - **Objects**: owned by the node that put them (its id is in the object id); others pull them
//!   in ~1 MiB chunks over a server stream and cache them; borrows are counted at the owner (see
//!   [`crate::object_store`]).
//! - **Failure**: a node silent past `node_timeout` is declared dead by the head; every node
//!   hears it with its next heartbeat, fails calls to that node's actors, and drops its borrows.
//!   The other way round, a node whose heartbeats the head has not answered for `node_timeout`
//!   (or a restarted head no longer knows) gives up: it stops with [`RuntimeError::HeadLost`]
//!   ([`Runtime::head_lost`]). Nothing reconnects, since the head's state died with it.
//! - **Processes**: an actor with [`Isolation::Process`](crate::Isolation::Process) runs in a
//!   worker process its node starts (a hidden node of its own, see [`run_actor_process_if_asked`]);
//!   its crash kills only it, and it dies with its node.

pub mod auth;
pub mod failure;
mod head;
mod hosted;
mod node;
mod peer;
mod placement;
pub mod placement_group;
mod process;
pub mod proto;
mod service;
mod start;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use hosted::{Hosted, HostedActor};
pub(crate) use node::NodeCore;
pub(crate) use peer::RemoteActor;
use tonic::transport::{Channel, Endpoint};

pub use self::auth::{BUILD_ENV, TOKEN_ENV, TlsConfig, Token, build_id, declared_build};
pub use self::failure::{FailureDetector, HeadWatch};
pub use self::placement_group::{PlacementGroup, PlacementGroupInfo, PlacementGroupState, PlacementStrategy};
pub use self::process::{WORKER_ENV, run_actor_process_if_asked};
use crate::error::{Result, RuntimeError};
use crate::object_store::StoreOptions;
use crate::runtime::{Runtime, RuntimeOptions};

/// The largest gRPC message a node accepts or sends (actor messages and replies; objects travel
/// in 1 MiB chunks). A larger one is refused and the connection keeps serving.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The size of the chunks an object is pulled in.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Settings of a cluster node (the head's node, a worker node or a driver).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where the node's gRPC server listens; port 0 picks a free port. Default `127.0.0.1:0`:
    /// binding another interface without TLS prints a warning.
    pub listen: SocketAddr,
    /// Logical CPUs this node offers (default: the machine's; a driver offers 0).
    pub num_cpus: f64,
    /// GPUs this node offers.
    pub num_gpus: f64,
    /// Custom resources this node offers.
    pub resources: BTreeMap<String, f64>,
    /// This node's object store: its memory cap and where it spills past it (by default under
    /// the system's temporary directory, removed when the node stops).
    pub store: StoreOptions,
    /// Bytes of pulled objects kept for reuse on this node.
    pub cache_bytes: usize,
    /// Threads that run tasks submitted to this node.
    pub num_task_threads: usize,
    /// The cluster token.
    pub token: Token,
    /// TLS for every connection, or plain text.
    pub tls: Option<TlsConfig>,
    /// How often nodes send heartbeats (the head's value is used cluster-wide).
    pub heartbeat_interval: Duration,
    /// How long the head waits for a heartbeat before declaring a node dead (head only).
    pub node_timeout: Duration,
    /// Joins as a driver: the head never places `Placement::Any` work on it.
    pub is_driver: bool,
    /// This process's build identity, which the head compares with its own (default:
    /// [`build_id`]). A program that embeds the library and registers the same actor types as
    /// the `rl` it joins may declare that binary's build here.
    pub build: String,
    /// Threads of the node's network runtime.
    pub network_threads: usize,
    /// The program this node re-executes to run a process actor's worker (default `None`: this
    /// process's own executable). It must call [`run_actor_process_if_asked`] first thing in
    /// `main` and register the same actor types; a driver embedded in another program (a test
    /// binary, which would rerun its tests instead) names the cluster's `rl` binary here.
    pub worker_program: Option<std::path::PathBuf>,
}

impl ClusterOptions {
    /// Defaults for a node with `token`: loopback, this machine's CPUs, heartbeats every second,
    /// a node declared dead after 30 s of silence (wide enough for a loaded 2-core machine).
    pub fn new(token: Token) -> Self {
        Self::with_build(token, build_id().to_string())
    }

    /// [`ClusterOptions::new`] declaring `build` (without computing this binary's own).
    pub(crate) fn with_build(token: Token, build: String) -> Self {
        let local = RuntimeOptions::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            num_cpus: local.num_cpus,
            num_gpus: 0.0,
            resources: BTreeMap::new(),
            store: local.store,
            cache_bytes: 512 << 20,
            num_task_threads: local.num_task_threads,
            token,
            tls: None,
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(30),
            is_driver: false,
            build,
            network_threads: 2,
            worker_program: None,
        }
    }

    fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            num_cpus: self.num_cpus,
            num_gpus: self.num_gpus,
            resources: self.resources.clone(),
            store: self.store.clone(),
            num_task_threads: self.num_task_threads,
        }
    }
}

/// A node of the cluster as the head's table shows it.
pub type NodeInfo = proto::NodeInfo;

/// An actor as the head's directory shows it.
pub type ActorInfo = proto::ActorInfo;

impl Runtime {
    /// Starts a cluster head in this process, with a node of its own offering
    /// `options.num_cpus`. Other processes join it at [`Runtime::address`].
    pub fn start_head(options: ClusterOptions) -> Result<Self> {
        start::start(None, options, 0)
    }

    /// Joins the head at `head_address` (`host:port`) as a worker node, or as a driver if
    /// `options.is_driver`. Fails with [`RuntimeError::BuildMismatch`] if the head runs another
    /// build, [`RuntimeError::Unauthenticated`] on a wrong token.
    pub fn join(head_address: &str, options: ClusterOptions) -> Result<Self> {
        start::start(Some(head_address.to_string()), options, 0)
    }

    /// The address this node's server listens on (`host:port`); empty for an embedded runtime.
    pub fn address(&self) -> String {
        self.cluster().map(|c| c.address.clone()).unwrap_or_default()
    }

    /// The head's address; empty for an embedded runtime.
    pub fn head_address(&self) -> String {
        self.cluster().map(|c| c.head_address.clone()).unwrap_or_default()
    }

    /// The cluster core, or an error outside a cluster.
    pub(crate) fn cluster_core(&self) -> Result<std::sync::Arc<NodeCore>> {
        self.cluster().cloned().ok_or_else(|| RuntimeError::Cluster("not part of a cluster".into()))
    }

    /// The head's node table and actor directory (every node, dead ones too).
    pub fn cluster_nodes(&self) -> Result<(Vec<NodeInfo>, Vec<ActorInfo>)> {
        let core = self.cluster_core()?;
        let c = core.clone();
        let reply = core.block_on(async move { c.list_nodes().await })??;
        Ok((reply.nodes, reply.actors))
    }

    /// The head's whole table: nodes, actors and placement groups (what `rl status` shows).
    pub fn cluster_status(&self) -> Result<proto::ListNodesReply> {
        let core = self.cluster_core()?;
        let c = core.clone();
        core.block_on(async move { c.list_nodes().await })?
    }

    /// Stores `value` under `key` in the head's small KV store (cluster-wide settings, addresses,
    /// rendezvous); with `overwrite` false an existing key is kept. Returns whether it was written.
    pub fn kv_put(&self, key: &str, value: Bytes, overwrite: bool) -> Result<bool> {
        let core = self.cluster_core()?;
        let (c, key) = (core.clone(), key.to_string());
        core.block_on(async move { c.kv_put(key, value, overwrite).await })?
    }

    /// The value under `key` in the head's KV store, if any.
    pub fn kv_get(&self, key: &str) -> Result<Option<Bytes>> {
        let core = self.cluster_core()?;
        let (c, key) = (core.clone(), key.to_string());
        core.block_on(async move { c.kv_get(key).await })?
    }

    /// Blocks until this node is asked to stop: by [`Runtime::shutdown`] on another thread, by
    /// the head declaring it dead, or (for `rl start`) by a signal through
    /// [`Runtime::stop_on_signal`]. Returns the reason.
    pub fn wait_for_stop(&self) -> String {
        match self.cluster() {
            Some(core) => core.wait_for_stop(),
            None => "not part of a cluster".into(),
        }
    }

    /// Why this node gave up on the head, if it did: [`RuntimeError::HeadLost`], once the head
    /// answered no heartbeat for longer than its node timeout or restarted without this node.
    /// [`Runtime::wait_for_stop`] has returned by then (with that error as the reason), and
    /// `rl start` and `rl train --address` exit with it.
    pub fn head_lost(&self) -> Option<RuntimeError> {
        self.cluster().and_then(|c| c.head_lost())
    }

    /// Makes SIGINT and SIGTERM end [`Runtime::wait_for_stop`].
    pub fn stop_on_signal(&self) {
        if let Some(core) = self.cluster() {
            core.stop_on_signal();
        }
    }

    /// Data-plane counters of this node.
    pub fn transfer_stats(&self) -> proto::TransferStats {
        self.cluster().map(|c| c.transfer_stats()).unwrap_or_default()
    }
}

/// The head's node table, actor directory and placement groups, read from the head at `address`
/// without joining (what `rl status` shows).
pub fn status(address: &str, token: &Token, tls: Option<&TlsConfig>) -> Result<proto::ListNodesReply> {
    with_head(address, token, tls, |mut head| async move {
        let reply = head.list_nodes(proto::ListNodesRequest {}).await;
        Ok(reply.map_err(|s| status_error(&s, 0, address))?.into_inner())
    })
}

/// The value under `key` in the KV store of the head at `address`, read without joining.
pub fn read_kv(address: &str, token: &Token, tls: Option<&TlsConfig>, key: &str) -> Result<Option<Bytes>> {
    let key = key.to_string();
    with_head(address, token, tls, |mut head| async move {
        let reply = head.kv_get(proto::KvGetRequest { key }).await;
        let reply = reply.map_err(|s| status_error(&s, 0, address))?.into_inner();
        Ok(reply.found.then_some(reply.value))
    })
}

/// A head client without an interceptor type in its name, for one-off calls.
type OneOffHead = proto::head_client::HeadClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, auth::AddToken>,
>;

/// Runs `call` with a client of the head at `address` on a throwaway single-thread runtime.
fn with_head<'a, T, F, Fut>(address: &'a str, token: &Token, tls: Option<&TlsConfig>, call: F) -> Result<T>
where
    F: FnOnce(OneOffHead) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + 'a,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Cluster(format!("cannot start a network runtime: {e}")))?;
    let add = auth::AddToken::new(token, 0)?;
    rt.block_on(async {
        let channel = connect(address, 0, tls).await?;
        call(proto::head_client::HeadClient::with_interceptor(channel, add)).await
    })
}

/// A gRPC endpoint for `address` with the settings every connection uses: no Nagle delay,
/// 64 MiB HTTP/2 windows and 1 MiB frames (a 64 MiB pull is neither throttled by window updates
/// nor cut into 16 KiB frames), TLS if configured.
pub(crate) fn endpoint(address: &str, tls: Option<&TlsConfig>) -> Result<Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let bad = |e: tonic::transport::Error| RuntimeError::Cluster(format!("bad address {address:?}: {e}"));
    let mut e = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(bad)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .initial_stream_window_size(Some(64 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .max_frame_size(Some(1 << 20))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(tls) = tls {
        e = e.tls_config(tls.client()).map_err(bad)?;
    }
    Ok(e)
}

/// Connects to `address`; a failure is [`RuntimeError::NodeUnreachable`] for `node`.
pub(crate) async fn connect(address: &str, node: u32, tls: Option<&TlsConfig>) -> Result<Channel> {
    endpoint(address, tls)?.connect().await.map_err(|e| RuntimeError::NodeUnreachable {
        node,
        address: address.to_string(),
        message: error_chain(&e),
    })
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The one mapping from a gRPC status to a runtime error (`node` 0 stands for the head). A
/// status raised by a node's handler carries the runtime error itself (postcard in its details)
/// and comes back unchanged.
pub(crate) fn status_error(status: &tonic::Status, node: u32, address: &str) -> RuntimeError {
    if !status.details().is_empty()
        && let Ok(e) = crate::decode::<RuntimeError>(status.details())
    {
        return e;
    }
    match status.code() {
        tonic::Code::Unauthenticated => RuntimeError::Unauthenticated(status.message().to_string()),
        tonic::Code::Unavailable | tonic::Code::Cancelled if node == 0 => RuntimeError::Cluster(format!(
            "cannot reach the head at {address}: {} (is `rl start --head` running there, and is the address right?)",
            status.message()
        )),
        code if matches!(code, tonic::Code::Unavailable | tonic::Code::Cancelled) || connection_lost(status) => {
            RuntimeError::NodeUnreachable { node, address: address.to_string(), message: status.message().to_string() }
        }
        code => RuntimeError::Cluster(format!("{code:?} from node {node} at {address}: {}", status.message())),
    }
}

/// Whether a status without our error details says the connection broke mid-call (the peer's
/// process died or its socket closed) rather than a handler failing: tonic reports that as
/// `Unknown` or `Internal` with a transport, HTTP/2 or I/O error as the source.
fn connection_lost(status: &tonic::Status) -> bool {
    if !matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal) {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    let m = status.message();
    m.starts_with("transport error") || m.starts_with("h2 protocol error") || m.contains("connection")
}

/// The gRPC status for a runtime error raised in a handler; the error travels in the details.
pub(crate) fn error_status(e: &RuntimeError) -> tonic::Status {
    use tonic::Code;
    let code = match e {
        RuntimeError::Unauthenticated(_) => Code::Unauthenticated,
        RuntimeError::Unschedulable { .. } | RuntimeError::StoreFull { .. } | RuntimeError::MailboxFull { .. } => {
            Code::ResourceExhausted
        }
        RuntimeError::UnknownActorType(_) | RuntimeError::UnknownTask(_) | RuntimeError::ObjectFreed(_) => {
            Code::NotFound
        }
        RuntimeError::BuildMismatch { .. } | RuntimeError::InvalidActorOption { .. } => Code::FailedPrecondition,
        RuntimeError::Timeout(..) => Code::DeadlineExceeded,
        RuntimeError::Shutdown => Code::Unavailable,
        _ => Code::Aborted,
    };
    let details = crate::encode(e).unwrap_or_default();
    tonic::Status::with_details(code, e.to_string(), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_mid_call_is_an_unreachable_node() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection reset by peer");
        let status = tonic::Status::from_error(Box::new(io));
        assert_eq!(status.code(), tonic::Code::Unknown);
        let e = status_error(&status, 3, "127.0.0.1:1");
        assert!(matches!(e, RuntimeError::NodeUnreachable { node: 3, .. }), "{e}");
        // Without a transport source, the message tonic gives a broken stream is enough.
        let e = status_error(&tonic::Status::unknown("transport error"), 3, "127.0.0.1:1");
        assert!(matches!(e, RuntimeError::NodeUnreachable { node: 3, .. }), "{e}");
    }

    /// Errors that travel in status details and reply frames, encoded as a handler encodes them.
    pub(crate) fn encoded_errors() -> Vec<Vec<u8>> {
        let errors = [
            RuntimeError::UnknownTask("t".into()),
            RuntimeError::NotDelivered { actor: "actor 3".into(), reason: "node 2 hosts no such actor".into() },
            RuntimeError::Timeout(std::time::Duration::from_millis(1500), "object 9".into()),
            RuntimeError::Serialization { what: "Msg".into(), message: "unexpected end".into() },
            RuntimeError::NodeUnreachable { node: 4, address: "10.0.0.1:7000".into(), message: "reset".into() },
            RuntimeError::Shutdown,
        ];
        errors.iter().map(|e| crate::encode(e).unwrap().to_vec()).collect()
    }

    /// A status from a peer (any code, message and details) always maps to an error; details
    /// that decode travel as themselves.
    #[test]
    fn fuzz_status_error() {
        use crate::fuzz_harness;
        let details = fuzz_harness::hostile(encoded_errors(), 256);
        let strategy = (0i32..20, "(?s).{0,40}", details);
        fuzz_harness::run("status_error", strategy, |(code, message, details)| {
            let status = tonic::Status::with_details(tonic::Code::from(code), message, details.clone().into());
            let e = status_error(&status, 2, "127.0.0.1:1");
            if let Ok(sent) = crate::decode::<RuntimeError>(&details)
                && !details.is_empty()
            {
                assert_eq!(e.to_string(), sent.to_string());
            }
        });
    }

    #[test]
    fn a_handler_error_travels_as_itself_and_other_codes_stay_generic() {
        let status = error_status(&RuntimeError::UnknownTask("t".into()));
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(matches!(status_error(&status, 2, "a"), RuntimeError::UnknownTask(t) if t == "t"));
        let e = status_error(&tonic::Status::internal("failed to decode Protobuf message"), 2, "a");
        assert!(matches!(e, RuntimeError::Cluster(ref m) if m.contains("Internal from node 2")), "{e}");
    }
}
