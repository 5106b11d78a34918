//! Starting a cluster process: the network runtime, the listener and its services, joining the
//! head (or being it), and the heartbeat loop.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_stream::wrappers::TcpListenerStream;
use tonic::Response;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use super::auth::{AddToken, CheckToken};
use super::failure::HeadWatch;
use super::head::HeadCore;
use super::hosted::resources;
use super::node::{Cache, Counters, NodeCore, StopState, run_blocking};
use super::process::{WorkerSettings, Workers};
use super::proto;
use super::proto::head_client::HeadClient;
use super::proto::node_server::NodeServer;
use super::service::NodeService;
use super::{ClusterOptions, MAX_MESSAGE_BYTES, endpoint, error_chain, status_error};
use crate::error::{Result, RuntimeError};
use crate::runtime::Runtime;

/// Starts this process's node: binds, serves, joins `head` (or is the head when `None`).
/// `parent` is nonzero for a process actor's worker: the node that started it.
pub(crate) fn start(head: Option<String>, options: ClusterOptions, parent: u32) -> Result<Runtime> {
    let network = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.network_threads.max(1))
        .thread_name("rl-net")
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Cluster(format!("cannot start the network runtime: {e}")))?;
    let handle = network.handle().clone();
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| RuntimeError::Cluster(format!("cannot listen on {}: {e}", options.listen)))?;
    listener.set_nonblocking(true).map_err(|e| RuntimeError::Cluster(e.to_string()))?;
    let local = listener.local_addr().map_err(|e| RuntimeError::Cluster(e.to_string()))?;
    if !local.ip().is_loopback() && options.tls.is_none() {
        tracing::warn!(
            "listening on {local} without TLS: anyone who can reach this port and has the token can run actors here, \
             and traffic is plain text; set up TLS (RL_USE_TLS) or bind 127.0.0.1"
        );
    }
    let address = local.to_string();
    let head_core = head.is_none().then(|| HeadCore::new(&options, options.build.clone()));
    let slot: Arc<OnceLock<Arc<NodeCore>>> = Arc::new(OnceLock::new());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    serve(&handle, listener, &options, head_core, slot.clone(), shutdown_rx)?;

    // Join.
    let is_head = head.is_none();
    let head_address = head.unwrap_or_else(|| address.clone());
    let join = proto::JoinRequest {
        address: address.clone(),
        pid: std::process::id(),
        hostname: std::env::var("HOSTNAME").unwrap_or_default(),
        total: Some(resources(&{
            let mut r = options.resources.clone();
            r.insert("CPU".into(), options.num_cpus);
            r.insert("GPU".into(), options.num_gpus);
            r
        })),
        is_driver: options.is_driver,
        build: options.build.clone(),
        parent,
    };
    let channel = {
        let _context = handle.enter();
        endpoint(&head_address, options.tls.as_ref())?.connect_lazy()
    };
    let joining = HeadClient::with_interceptor(channel.clone(), AddToken::new(&options.token, 0)?);
    let head_for_errors = head_address.clone();
    let joined = run_blocking(&handle, async move {
        joining.clone().join(join).await.map(Response::into_inner).map_err(|s| status_error(&s, 0, &head_for_errors))
    })
    .and_then(|r| r);
    let reply = match joined {
        Ok(r) => r,
        Err(e) => {
            let _ = shutdown_tx.send(true);
            network.shutdown_timeout(Duration::from_secs(1));
            return Err(e);
        }
    };
    let rt = Runtime::for_node(options.runtime_options(), reply.node_id)?;
    let core = Arc::new(NodeCore {
        node_id: reply.node_id,
        address,
        head_address,
        head_epoch: reply.head_epoch,
        head_lost: OnceLock::new(),
        token: options.token.clone(),
        tls: options.tls.clone(),
        counters: Counters::default(),
        handle: handle.clone(),
        network: Mutex::new(Some(network)),
        runtime: rt.downgrade(),
        store: rt.store().clone(),
        head: HeadClient::with_interceptor(channel, AddToken::new(&options.token, reply.node_id)?),
        peers: Mutex::new(HashMap::new()),
        connecting: tokio::sync::Mutex::new(()),
        addresses: Mutex::new(HashMap::new()),
        dead: Mutex::new(HashSet::new()),
        dead_seen: AtomicU64::new(0),
        hosted: Mutex::new(HashMap::new()),
        directory: Mutex::new(BTreeMap::new()),
        remote_deaths: Mutex::new(HashMap::new()),
        cache: Mutex::new(Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            cap: options.cache_bytes,
        }),
        release: OnceLock::new(),
        stop: Mutex::new(StopState::default()),
        stopped: Condvar::new(),
        shutdown_tx,
        workers: Arc::new(Workers::default()),
        worker: WorkerSettings {
            program: options.worker_program.clone(),
            build: options.build.clone(),
            listen_ip: options.listen.ip(),
        },
    });
    let weak = Arc::downgrade(&core);
    let _ = core.release.set(Arc::new(move |id| {
        if let Some(core) = weak.upgrade() {
            core.release_borrow(id);
        }
    }));
    rt.set_cluster(core.clone());
    let _ = slot.set(core.clone());
    // The head's own node cannot lose it; every other node gives up after the head's node timeout.
    let watch = (!is_head).then(|| HeadWatch::new(Duration::from_millis(reply.node_timeout_ms), Instant::now()));
    spawn_heartbeats(&core, Duration::from_millis(reply.heartbeat_interval_ms.max(1)), watch);
    tracing::info!(node = reply.node_id, address = %core.address, head = %core.head_address, "joined the cluster");
    Ok(rt)
}

/// Serves the `Node` service (and the `Head` service in the head process) on `listener` until
/// `shutdown` turns true.
fn serve(
    handle: &tokio::runtime::Handle,
    listener: std::net::TcpListener,
    options: &ClusterOptions,
    head_core: Option<Arc<HeadCore>>,
    slot: Arc<OnceLock<Arc<NodeCore>>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut server = Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(64 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .max_frame_size(Some(1 << 20));
    if let Some(tls) = &options.tls {
        server =
            server.tls_config(tls.server()).map_err(|e| RuntimeError::Cluster(format!("TLS: {}", error_chain(&e))))?;
    }
    let check = CheckToken::new(&options.token);
    let node_svc = NodeServer::new(NodeService { core: slot })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut router = server.add_service(InterceptedService::new(node_svc, check.clone()));
    if let Some(h) = head_core {
        h.clone().watch_heartbeats(handle);
        router = router.add_service(InterceptedService::new(h.service(), check));
    }
    handle.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("cannot serve: {e}"),
        };
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        // The builder's tcp_nodelay applies only to listeners tonic binds itself: set it on each
        // accepted connection, or small replies wait for delayed ACKs (40 ms on Linux).
        let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |conn| {
            conn.inspect(|c| {
                let _ = c.set_nodelay(true);
            })
        });
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!("the node's server failed: {}", error_chain(&e));
        }
    });
    Ok(())
}

/// Sends a heartbeat every `interval` until shutdown. With a `watch`, a head that answers none
/// for longer than the watch's timeout is lost: the node stops (see [`NodeCore::lose_head`]).
/// Each heartbeat waits at most that timeout, so a head whose machine vanished without closing
/// its connections is given up within the timeout plus one interval, as one that refuses them.
fn spawn_heartbeats(core: &Arc<NodeCore>, interval: Duration, mut watch: Option<HeadWatch>) {
    let weak = Arc::downgrade(core);
    let mut shutdown = core.shutdown_tx.subscribe();
    core.handle.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let Some(core) = weak.upgrade() else { return };
            let limit = watch.as_ref().map_or(Duration::MAX, |w| w.timeout().max(interval));
            let result = match tokio::time::timeout(limit, core.heartbeat()).await {
                Ok(r) => r,
                Err(_) => Err(RuntimeError::Timeout(
                    limit,
                    format!("the head at {} to answer a heartbeat", core.head_address),
                )),
            };
            if core.head_lost().is_some() {
                return;
            }
            match result {
                Ok(()) => {
                    if let Some(w) = &mut watch {
                        w.answered(Instant::now());
                    }
                    if failing {
                        tracing::info!("the head answers heartbeats again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("heartbeat to the head at {} failed: {e}", core.head_address);
                        failing = true;
                    }
                    if let Some(silence) = watch.as_ref().and_then(|w| w.lost(Instant::now())) {
                        let timeout = watch.as_ref().map_or(Duration::ZERO, HeadWatch::timeout);
                        core.lose_head(format!(
                            "no answer for {:.1} s (node_timeout {:.1} s; last error: {e})",
                            silence.as_secs_f64(),
                            timeout.as_secs_f64()
                        ));
                        return;
                    }
                }
            }
        }
    });
}
