//! A cluster of a head, worker nodes and a driver, each a separate runtime with its own gRPC
//! server, talking over 127.0.0.1 inside one test process. (Killing and restarting nodes for
//! real, as separate OS processes, is tested in the `rl` application's tests.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use rl_runtime::cluster::{ClusterOptions, TlsConfig, Token};
use rl_runtime::{
    Actor, ActorContext, ActorOptions, BoxError, Isolation, ObjectRef, Placement, Runtime, RuntimeError, decode, encode,
};
use serde::{Deserialize, Serialize};

/// An actor that reads, writes and counts objects.
struct Store;

#[derive(Debug, Serialize, Deserialize)]
enum StoreMsg {
    /// Read the object and answer its length and checksum.
    Read(ObjectRef),
    /// Put `n` bytes (byte i = i mod 251) and answer the ref, keeping no copy.
    Make(usize),
    /// This process's id.
    Pid,
    /// Sleep this many milliseconds.
    Sleep(u64),
    /// Echo.
    Echo(u64),
    /// Panic in the handler.
    Panic,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum StoreReply {
    Read(usize, u64),
    Made(ObjectRef),
    Pid(u32),
    Done,
    Echo(u64),
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().enumerate().fold(0u64, |h, (i, x)| h.wrapping_mul(31).wrapping_add(u64::from(*x) ^ i as u64))
}

fn pattern(n: usize) -> Bytes {
    (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

impl Actor for Store {
    const TYPE_NAME: &'static str = "Store";
    type Init = ();
    type Msg = StoreMsg;
    type Reply = StoreReply;

    fn new(_: (), _ctx: &ActorContext) -> Result<Self, BoxError> {
        Ok(Store)
    }

    fn handle(&mut self, msg: StoreMsg, ctx: &ActorContext) -> Result<StoreReply, BoxError> {
        Ok(match msg {
            StoreMsg::Read(r) => {
                let b = ctx.runtime().get_blocking(&r, Some(Duration::from_secs(30)))?;
                StoreReply::Read(b.len(), checksum(&b))
            }
            StoreMsg::Make(n) => StoreReply::Made(ctx.runtime().put(pattern(n))?),
            StoreMsg::Pid => StoreReply::Pid(std::process::id()),
            StoreMsg::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                StoreReply::Done
            }
            StoreMsg::Echo(x) => StoreReply::Echo(x),
            StoreMsg::Panic => panic!("asked to panic"),
        })
    }
}

struct Cluster {
    head: Runtime,
    nodes: Vec<Runtime>,
    driver: Runtime,
}

impl Cluster {
    fn start(num_nodes: usize, token: &Token, tls: Option<TlsConfig>) -> Self {
        let opts = |cpus: f64| {
            let mut o = ClusterOptions::new(token.clone());
            o.num_cpus = cpus;
            o.tls = tls.clone();
            o.heartbeat_interval = Duration::from_millis(100);
            o
        };
        let head = Runtime::start_head(opts(0.0)).unwrap();
        head.register_actor::<Store>();
        let nodes: Vec<Runtime> = (0..num_nodes)
            .map(|_| {
                let n = Runtime::join(&head.address(), opts(2.0)).unwrap();
                n.register_actor::<Store>();
                n
            })
            .collect();
        let mut d = opts(0.0);
        d.is_driver = true;
        let driver = Runtime::join(&head.address(), d).unwrap();
        driver.register_actor::<Store>();
        Self { head, nodes, driver }
    }

    fn stop(self) {
        self.driver.shutdown();
        for n in self.nodes {
            n.shutdown();
        }
        self.head.shutdown();
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn actors_are_placed_on_worker_nodes_and_called_like_local_ones() {
    let token = Token::generate();
    let c = Cluster::start(2, &token, None);
    let a = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let b = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    // The most-free rule spreads them: one per worker node, none on the head (0 CPUs) or driver.
    let (la, lb) = (a.location(), b.location());
    let workers: Vec<u32> = c.nodes.iter().map(Runtime::node_id).collect();
    assert!(workers.contains(&la.node_id) && workers.contains(&lb.node_id), "{la:?} {lb:?}");
    assert_ne!(la.node_id, lb.node_id);
    assert_eq!(a.call(StoreMsg::Echo(7)).wait().unwrap(), StoreReply::Echo(7));
    // Ids are unique cluster-wide: the node sits in the high bits.
    assert_eq!(a.id() >> 40, u64::from(la.node_id));
    // A node chosen by the caller.
    let there = ActorOptions { placement: Placement::Node(lb.node_id), ..Default::default() };
    let third = c.driver.spawn::<Store>((), there).unwrap();
    assert_eq!(third.location().node_id, lb.node_id);
    // The head's KV store, shared by every node.
    assert!(c.driver.kv_put("answer", Bytes::from_static(b"42"), false).unwrap());
    assert!(!c.nodes[0].kv_put("answer", Bytes::from_static(b"7"), false).unwrap());
    assert_eq!(c.nodes[1].kv_get("answer").unwrap().as_deref(), Some(&b"42"[..]));
    assert_eq!(c.nodes[1].kv_get("nothing").unwrap(), None);
    // A local actor next to the driver.
    let here = c
        .driver
        .spawn::<Store>((), ActorOptions { num_cpus: 0.0, placement: Placement::Local, ..Default::default() })
        .unwrap();
    assert_eq!(here.location().node_id, c.driver.node_id());
    // The head's directory lists the three spawned through it at once (the local one comes with
    // a heartbeat, which on a loaded machine may already have arrived).
    let (_, actors) = c.driver.cluster_nodes().unwrap();
    for id in [a.id(), b.id(), third.id()] {
        assert!(actors.iter().any(|x| x.actor_id == id), "spawned through the head: {actors:?}");
    }
    eventually(Duration::from_secs(10), "heartbeats to list the local actor", || {
        c.driver.cluster_nodes().unwrap().1.len() == 4
    });
    c.stop();
}

#[test]
fn a_spawn_that_fits_nowhere_waits_then_fails_clearly() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let opts = ActorOptions { num_cpus: 3.0, placement_timeout: Duration::from_millis(300), ..Default::default() };
    let err = c.driver.spawn::<Store>((), opts).unwrap_err();
    let RuntimeError::Unschedulable { message, .. } = &err else { panic!("{err}") };
    assert!(message.contains("CPU 2/2 free"), "{message}");
    c.stop();
}

/// A node whose worker program does not run process actors (it has no
/// `run_actor_process_if_asked`) fails the spawn with a hint, and keeps nothing reserved.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_program_that_runs_no_worker_fails_the_spawn_and_returns_its_resources() {
    let token = Token::generate();
    let c = Cluster::start(0, &token, None);
    let mut o = ClusterOptions::new(token.clone());
    o.num_cpus = 1.0;
    o.is_driver = true;
    o.worker_program = Some("/bin/true".into());
    let driver = Runtime::join(&c.head.address(), o).unwrap();
    driver.register_actor::<Store>();
    let opts = ActorOptions { placement: Placement::Local, isolation: Isolation::Process, ..Default::default() };
    let err = driver.spawn::<Store>((), opts).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited before it was ready") && text.contains("run_actor_process_if_asked"), "{text}");
    assert_eq!(driver.available_resources()["CPU"], 1.0);
    driver.shutdown();
    c.stop();
}

#[test]
fn objects_cross_nodes_in_chunks_and_intact() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let worker = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    // Driver -> worker: a 64 MiB object the worker pulls in 64 chunks.
    let data = pattern(64 << 20);
    let r = c.driver.put(data.clone()).unwrap();
    let reply = worker.call(StoreMsg::Read(r.clone())).wait().unwrap();
    assert_eq!(reply, StoreReply::Read(data.len(), checksum(&data)));
    let node = &c.nodes[0];
    assert_eq!(node.transfer_stats().objects_pulled, 1);
    assert_eq!(node.transfer_stats().bytes_pulled, 64 << 20);
    assert_eq!(node.transfer_stats().chunks_pulled, 64, "1 MiB chunks");
    // A second read of the same object is served from the node's cache.
    worker.call(StoreMsg::Read(r.clone())).wait().unwrap();
    assert_eq!(node.transfer_stats().objects_pulled, 1);
    // Worker -> driver.
    let StoreReply::Made(made) = worker.call(StoreMsg::Make(3 << 20)).wait().unwrap() else { panic!() };
    assert_eq!(made.owner_node(), node.node_id());
    let got = c.driver.get_blocking(&made, None).unwrap();
    assert_eq!(checksum(&got), checksum(&pattern(3 << 20)));
    assert_eq!(c.driver.transfer_stats().objects_pulled, 1);
    c.stop();
}

#[test]
fn a_returned_ref_keeps_its_object_alive_until_the_receiver_drops_it() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let node = &c.nodes[0];
    let worker = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let StoreReply::Made(made) = worker.call(StoreMsg::Make(1000)).wait().unwrap() else { panic!() };
    // The worker dropped its own ref when the reply was sent; the driver's borrow keeps it.
    assert!(made.is_owning());
    assert_eq!(node.store_stats().num_objects, 1);
    // Still there after a while (heartbeats and other traffic change nothing).
    worker.call(StoreMsg::Echo(1)).wait().unwrap();
    assert_eq!(c.driver.get_blocking(&made, None).unwrap().len(), 1000);
    let clone = made.clone();
    drop(made);
    assert_eq!(node.store_stats().num_objects, 1, "a clone still holds the borrow");
    drop(clone);
    eventually(Duration::from_secs(10), "the owner to free the object", || node.store_stats().num_objects == 0);
    assert_eq!(node.store_stats().used_bytes, 0);
    c.stop();
}

#[test]
fn a_ref_sent_to_another_node_keeps_the_object_alive_after_the_sender_drops_it() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let worker = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let r = c.driver.put(pattern(5000)).unwrap();
    // Queue a slow call first, so the read runs after the driver has dropped its own ref.
    let slow = worker.call(StoreMsg::Sleep(200));
    let read = worker.call(StoreMsg::Read(r.clone()));
    drop(r);
    assert_eq!(c.driver.store_stats().num_objects, 1, "the worker's borrow keeps it");
    slow.wait().unwrap();
    assert_eq!(read.wait().unwrap(), StoreReply::Read(5000, checksum(&pattern(5000))));
    eventually(Duration::from_secs(10), "the release to free it", || c.driver.store_stats().num_objects == 0);
    c.stop();
}

#[test]
fn tasks_run_on_worker_nodes_and_their_results_belong_to_the_submitter() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    for rt in std::iter::once(&c.driver).chain(&c.nodes).chain([&c.head]) {
        let node = rt.node_id();
        rt.register_task("where_times_3", move |args: Bytes| {
            let x: u64 = decode(&args)?;
            Ok(encode(&(node, x * 3))?)
        });
    }
    let r = c.driver.submit("where_times_3", encode(&14u64).unwrap()).unwrap();
    assert_eq!(r.owner_node(), c.driver.node_id());
    let (ran_on, out): (u32, u64) = decode(&c.driver.get_blocking(&r, Some(Duration::from_secs(30))).unwrap()).unwrap();
    assert_eq!(out, 42);
    assert_eq!(ran_on, c.nodes[0].node_id(), "the only node with CPUs ran it");
    c.stop();
}

#[test]
fn a_wrong_token_is_refused_and_changes_nothing() {
    let token = Token::generate();
    let c = Cluster::start(0, &token, None);
    let mut bad = ClusterOptions::new(Token::generate());
    bad.num_cpus = 4.0;
    let err = Runtime::join(&c.head.address(), bad).unwrap_err();
    assert!(matches!(err, RuntimeError::Unauthenticated(_)), "{err}");
    let (nodes, _) = c.driver.cluster_nodes().unwrap();
    assert_eq!(nodes.len(), 2, "head and driver only: {nodes:?}");
    c.stop();
}

/// `msg` with the cluster token in its metadata, as a raw client sends it.
fn with_token<T>(token: &Token, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {}", token.as_str()).parse().unwrap());
    req
}

#[test]
fn a_node_of_another_build_is_refused() {
    // A build differs in its executable's bytes; here a raw client claims another build. (The
    // `rl` application's tests start a node from a modified copy of the binary.)
    use rl_runtime::cluster::proto::{JoinRequest, head_client::HeadClient};
    let token = Token::generate();
    let c = Cluster::start(0, &token, None);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = rt.block_on(async { HeadClient::connect(format!("http://{}", c.head.address())).await.unwrap() });
    let other = "rl-runtime 0.1.0 #0000000000000000 (/elsewhere/rl)".to_string();
    let req = JoinRequest { address: "127.0.0.1:1".into(), build: other, ..Default::default() };
    let status = rt.block_on(client.join(with_token(&token, req))).unwrap_err();
    let err: RuntimeError = decode(status.details()).unwrap();
    let RuntimeError::BuildMismatch { ours, head } = &err else { panic!("{err}") };
    assert!(ours.contains("/elsewhere/rl") && head == rl_runtime::cluster::build_id(), "{err}");
    assert!(err.to_string().contains("must run the same binary"), "{err}");
    let (nodes, _) = c.driver.cluster_nodes().unwrap();
    assert_eq!(nodes.len(), 2, "the refused node is not in the table: {nodes:?}");
    // Without the token the head answers UNAUTHENTICATED before looking at the request.
    let status = rt.block_on(client.join(JoinRequest::default())).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    c.stop();
}

#[test]
fn tls_clusters_work_and_refuse_plain_text() {
    let (tls, _dir) = test_tls();
    let token = Token::generate();
    let c = Cluster::start(1, &token, Some(tls));
    let w = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    assert_eq!(w.call(StoreMsg::Echo(5)).wait().unwrap(), StoreReply::Echo(5));
    let err = Runtime::join(&c.head.address(), ClusterOptions::new(token.clone())).unwrap_err();
    assert!(matches!(err, RuntimeError::NodeUnreachable { .. } | RuntimeError::Cluster(_)), "{err}");
    c.stop();
}

/// A CA and a certificate for localhost and 127.0.0.1 signed by it, made here.
fn test_tls() -> (TlsConfig, ()) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        TlsConfig {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
            ca_pem: ca.pem().into_bytes(),
            domain: "localhost".into(),
            require_client_cert: true,
        },
        (),
    )
}

/// Sends one raw call frame to `actor` on `address` and returns the error (or reply) as text.
fn send_raw_frame(address: &str, token: &Token, actor: u64, payload: Vec<u8>) -> String {
    use rl_runtime::cluster::proto::{CallFrame, node_client::NodeClient};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let channel = raw_channel_async(address).await;
        let mut client = NodeClient::new(channel).max_encoding_message_size(64 << 20);
        let frame = CallFrame { call_id: 1, actor_id: actor, payload: payload.into(), want_reply: true };
        let stream = tokio_stream::iter(vec![frame]);
        match client.calls(with_token(token, stream)).await {
            Err(status) => format!("refused: {}", status.message()),
            Ok(response) => match response.into_inner().message().await {
                Ok(Some(reply)) if !reply.ok => format!("error reply: {:?}", decode::<RuntimeError>(&reply.payload)),
                Ok(Some(_)) => "ok".into(),
                Ok(None) => "stream ended".into(),
                Err(status) => format!("refused: {}", status.message()),
            },
        }
    })
}

async fn raw_channel_async(address: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

#[test]
fn an_oversized_or_malformed_message_is_refused_and_the_node_keeps_serving() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let w = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let address = w.location().address;
    let oversized = send_raw_frame(&address, &token, w.id(), vec![0u8; 17 << 20]);
    assert!(oversized.starts_with("refused") && oversized.contains("message length too large"), "{oversized}");
    let malformed = send_raw_frame(&address, &token, w.id(), vec![0xff; 16]);
    assert!(malformed.contains("Serialization"), "{malformed}");
    assert_eq!(w.call(StoreMsg::Echo(9)).wait().unwrap(), StoreReply::Echo(9));
    // The sending side refuses an oversized message before it leaves, with advice.
    let err = w.call(StoreMsg::Read(c.driver.put(Bytes::new()).unwrap())).wait();
    assert!(err.is_ok());
    c.stop();
}

/// A gRPC codec that sends and receives raw bytes, so a test can put bytes that are not the
/// method's protobuf message on the wire.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}

/// Sends `payload` as the raw request of `method` (`/rl.cluster.Node/Calls`, a client stream
/// there) and reads the answer to its end; returns whether the server answered at all.
fn send_raw(address: &str, token: &Token, method: &'static str, payload: Vec<u8>) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut grpc = tonic::client::Grpc::new(raw_channel_async(address).await);
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
        let stream = tokio_stream::iter(vec![payload]);
        match grpc.streaming(with_token(token, stream), path, RawCodec).await {
            Err(_) => true,
            Ok(response) => {
                let mut inbound = response.into_inner();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    match tokio::time::timeout_at(deadline, inbound.message()).await {
                        Ok(Ok(Some(_))) => continue,
                        Ok(Ok(None) | Err(_)) => return true,
                        Err(_) => return false,
                    }
                }
            }
        }
    })
}

#[test]
fn garbage_on_calls_pull_and_heartbeat_is_refused_and_the_node_keeps_serving() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let w = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let node = w.location().address;
    let head = c.head.address();
    // Bytes that are no protobuf message, a frame claiming a huge field, and valid-looking
    // fields of the wrong types; from a seeded generator so the run is reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut payloads: Vec<Vec<u8>> = vec![
        vec![0xff; 16],
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        vec![0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        vec![0x1a, 0x03, 0x01],
        vec![0x0b; 64],
    ];
    payloads.extend((0..12).map(|i| (0..(i * 11 + 1)).map(|_| next() as u8).collect()));
    for method in ["/rl.cluster.Node/Calls", "/rl.cluster.Node/Pull", "/rl.cluster.Head/Heartbeat"] {
        let address = if method.contains("Head") { &head } else { &node };
        for p in &payloads {
            assert!(send_raw(address, &token, method, p.clone()), "{method} did not answer {p:?}");
        }
    }
    // The node still serves calls, the head still counts it alive, and the cluster still moves
    // objects both ways.
    assert_eq!(w.call(StoreMsg::Echo(11)).wait().unwrap(), StoreReply::Echo(11));
    let (table, _) = c.driver.cluster_nodes().unwrap();
    assert!(table.iter().all(|n| n.state == 1), "{table:?}");
    assert!(w.call(StoreMsg::Read(c.driver.put(Bytes::from_static(b"after")).unwrap())).wait().is_ok());
    c.stop();
}

#[test]
fn a_node_that_leaves_is_reported_gone_and_calls_to_its_actors_fail() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let w = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    let Cluster { head, mut nodes, driver } = c;
    let node = nodes.pop().unwrap();
    let id = node.node_id();
    node.shutdown();
    let (table, actors) = driver.cluster_nodes().unwrap();
    let entry = table.iter().find(|x| x.node_id == id).unwrap();
    assert_eq!(entry.state, 2, "{entry:?}");
    assert!(entry.death_reason.starts_with("left"), "{entry:?}");
    assert!(actors.iter().all(|a| !a.alive), "{actors:?}");
    let err = w.call(StoreMsg::Echo(1)).wait_timeout(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, RuntimeError::NotDelivered { .. } | RuntimeError::DiedDuringCall { .. }), "{err}");
    eventually(Duration::from_secs(10), "the driver to hear of it", || !w.is_alive());
    driver.shutdown();
    head.shutdown();
}

#[test]
fn actors_share_the_fate_of_the_driver_that_made_them() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let node = &c.nodes[0];
    let w = c.driver.spawn::<Store>((), ActorOptions::default()).unwrap();
    assert_eq!(w.location().node_id, node.node_id());
    assert_eq!(node.available_resources()["CPU"], 1.0);
    let Cluster { head, nodes, driver } = c;
    driver.shutdown();
    // Like Ray's non-detached actors: once the driver is gone, its actors stop and their CPUs
    // are free for the next driver.
    eventually(Duration::from_secs(10), "the node to stop the driver's actor", || {
        nodes[0].available_resources()["CPU"] == 2.0
    });
    let (_, actors) = head.cluster_nodes().unwrap();
    eventually(Duration::from_secs(10), "the directory to show it dead", || {
        head.cluster_nodes().unwrap().1.iter().all(|a| !a.alive)
    });
    assert_eq!(actors.len(), 1);
    for n in nodes {
        n.shutdown();
    }
    head.shutdown();
}

#[test]
fn the_directory_counts_an_actors_restarts() {
    let token = Token::generate();
    let c = Cluster::start(1, &token, None);
    let a = c.driver.spawn::<Store>((), ActorOptions { max_restarts: 2, ..Default::default() }).unwrap();
    assert!(matches!(a.call(StoreMsg::Panic).wait(), Err(RuntimeError::ActorPanicked { .. })));
    assert_eq!(a.call(StoreMsg::Echo(1)).wait().unwrap(), StoreReply::Echo(1), "rebuilt");
    eventually(Duration::from_secs(10), "a heartbeat to report the restart", || {
        c.driver.cluster_nodes().unwrap().1.iter().any(|x| x.actor_id == a.id() && x.restarts == 1 && x.alive)
    });
    c.stop();
}

#[test]
fn heartbeats_carry_only_the_deaths_a_node_has_not_heard_of() {
    use rl_runtime::cluster::proto::{self, head_client::HeadClient};
    let token = Token::generate();
    let c = Cluster::start(2, &token, None);
    let Cluster { head, mut nodes, driver } = c;
    let gone: Vec<u32> = nodes
        .drain(..)
        .map(|n| {
            let id = n.node_id();
            n.shutdown();
            id
        })
        .collect();
    let beat_in = |head_epoch: u64, dead_seen: u64| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut client = HeadClient::new(raw_channel_async(&head.address()).await);
            let req =
                proto::HeartbeatRequest { node_id: driver.node_id(), dead_seen, head_epoch, ..Default::default() };
            client.heartbeat(with_token(&token, req)).await.unwrap().into_inner()
        })
    };
    // A heartbeat of another run of the head (a node that joined before it restarted) is not
    // taken: the answer has nothing in it but this run's epoch.
    let foreign = beat_in(0, 0);
    assert!(!foreign.accepted && foreign.dead_nodes.is_empty() && foreign.head_epoch != 0, "{foreign:?}");
    let beat = |dead_seen: u64| beat_in(foreign.head_epoch, dead_seen);
    let all = beat(0);
    assert!(all.accepted);
    assert_eq!(all.dead_nodes, gone);
    assert_eq!(all.dead_total, 2);
    let rest = beat(1);
    assert_eq!(rest.dead_nodes, gone[1..], "only what came after the first");
    assert!(beat(all.dead_total).dead_nodes.is_empty(), "nothing new");
    assert!(beat(99).dead_nodes.is_empty(), "a count past the list's end asks for nothing");
    driver.shutdown();
    head.shutdown();
}
