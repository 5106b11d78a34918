//! Fuzz targets of what a node decodes from its peers: every protobuf message of
//! `proto/cluster.proto`, the runtime errors that travel in status details and reply frames,
//! object refs and the cluster token. Each runs on arbitrary bytes, on protobuf wire data of
//! random structure (fields of every wire type, nested to several levels) and on mutations of
//! valid encodings; none may panic or allocate past a small multiple of its input. The
//! crate-private decoders (status details, reply frames, chunk reassembly, the token
//! interceptor) have their targets beside them, as unit tests named `fuzz_*`.
//!
//! A short run is part of `cargo test`; `experiments/fuzz.sh` runs them long. Budget and seed:
//! `RL_FUZZ_CASES`, `RL_FUZZ_SECONDS`, `RL_FUZZ_SEED` (see `fuzz/harness.rs`).

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::fmt::Debug;

use proptest::prelude::*;
use rl_runtime::cluster::proto;
use rl_runtime::{ObjectRef, ObjectStore, RuntimeError, StoreOptions, decode, encode};

use harness::{assert_bounded, largest_allocation, varint};

#[global_allocator]
static ALLOC: harness::WatchedAlloc = harness::WatchedAlloc;

/// Protobuf wire data of random structure: varint, 64-bit, 32-bit and length-delimited fields
/// with small field numbers (so they hit the messages' real fields with wrong types too), and
/// length-delimited fields holding further fields.
fn proto_wire() -> impl Strategy<Value = Vec<u8>> {
    let key = |field: u32, wire: u32| varint(u64::from(field << 3 | wire));
    let leaf = prop_oneof![
        (1u32..12, harness::odd_u64()).prop_map(move |(f, v)| [key(f, 0), varint(v)].concat()),
        (1u32..12, any::<u64>()).prop_map(move |(f, v)| [key(f, 1), v.to_le_bytes().to_vec()].concat()),
        (1u32..12, any::<u32>()).prop_map(move |(f, v)| [key(f, 5), v.to_le_bytes().to_vec()].concat()),
        (1u32..12, harness::bytes(24)).prop_map(move |(f, b)| [key(f, 2), varint(b.len() as u64), b].concat()),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| v.concat()),
            (1u32..12, proptest::collection::vec(inner, 0..4)).prop_map(move |(f, v)| {
                let b = v.concat();
                [key(f, 2), varint(b.len() as u64), b].concat()
            }),
        ]
    })
}

fn enc<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

/// Valid encodings of the messages peers send most, with every field set.
fn valid_messages() -> Vec<Vec<u8>> {
    vec![
        enc(&proto::CallFrame { call_id: 7, actor_id: 1 << 41, payload: vec![1, 2, 3].into(), want_reply: true }),
        enc(&proto::ReplyFrame { call_id: 7, ok: false, payload: encode(&RuntimeError::Shutdown).unwrap() }),
        enc(&proto::Chunk { total_len: 3 << 20, data: vec![9; 64].into() }),
        enc(&proto::PullRequest { object_id: 5, timeout_ms: 1000 }),
        enc(&proto::RefUpdate { object_id: 5, borrower: 3, delta: -1 }),
        enc(&proto::FreeRequest { object_ids: vec![1, 2, u64::MAX] }),
        enc(&proto::RunTaskRequest { name: "square".into(), args: vec![4].into(), caller: 2 }),
        enc(&proto::KvPutRequest { key: "rl/jobs".into(), value: b"{}".to_vec().into(), overwrite: true }),
    ]
}

/// Decodes `bytes` as message `M`; what decodes re-encodes to bytes that decode again to a
/// message of the same encoded length (not compared for equality: a `double` field may hold a
/// NaN, and a map field's entries are encoded in hash order).
fn check<M: prost::Message + Default + Debug>(bytes: &[u8]) {
    let (result, largest) = largest_allocation(|| M::decode(bytes));
    assert_bounded(std::any::type_name::<M>(), bytes.len(), largest);
    if let Ok(m) = result {
        let again = M::decode(m.encode_to_vec().as_slice()).expect("a decoded message re-encodes");
        assert_eq!(again.encoded_len(), m.encoded_len(), "{m:?}");
    }
}

macro_rules! check_all {
    ($bytes:expr; $($message:ident),* $(,)?) => {
        $( check::<proto::$message>($bytes); )*
    };
}

/// Every message of `proto/cluster.proto`, decoded from hostile bytes.
#[test]
fn fuzz_proto_messages() {
    let strategy = prop_oneof![
        harness::bytes(256),
        proto_wire(),
        harness::mutated(valid_messages()),
        proto_wire().prop_flat_map(|b| harness::mutated(vec![b])),
    ];
    harness::run("proto_messages", strategy, |bytes| {
        check_all!(&bytes;
            Resources, TransferStats, ActorInfo, NodeInfo, JoinRequest, JoinReply, HeartbeatRequest,
            HeartbeatReply, LeaveRequest, LeaveReply, ListNodesRequest, ListNodesReply, BundleInfo,
            PlacementGroupInfo, CreatePlacementGroupRequest, CreatePlacementGroupReply,
            RemovePlacementGroupRequest, RemovePlacementGroupReply, GetPlacementGroupRequest,
            GetPlacementGroupReply, ActorOptionsProto, SpawnActorRequest, SpawnActorReply,
            PickNodeRequest, PickNodeReply, KvPutRequest, KvPutReply, KvGetRequest, KvGetReply,
            CallFrame, ReplyFrame, NodeSpawnRequest, PullRequest, Chunk, RefUpdate, RefUpdateReply,
            FreeRequest, FreeReply, RunTaskRequest, StopActorRequest, StopActorReply,
        );
    });
}

/// Runtime errors (what status details and error replies carry) and object refs, decoded from
/// hostile bytes: an error naming the type, or a value that re-encodes.
#[test]
fn fuzz_runtime_payloads() {
    let errors = [
        RuntimeError::ActorFailed { actor: "w".into(), message: "bad input".into(), recoverable: false },
        RuntimeError::Timeout(std::time::Duration::from_secs(3), "object 9".into()),
        RuntimeError::NodeUnreachable { node: 4, address: "10.0.0.1:7000".into(), message: "reset".into() },
        RuntimeError::UnknownTask("t".into()),
        RuntimeError::Shutdown,
    ];
    let mut valid: Vec<Vec<u8>> = errors.iter().map(|e| encode(e).unwrap().to_vec()).collect();
    let store = ObjectStore::new(StoreOptions::default());
    valid.push(encode(&store.put(bytes::Bytes::from_static(b"x")).unwrap()).unwrap().to_vec());
    harness::run("runtime_payloads", harness::hostile(valid, 256), |bytes| {
        let (result, largest) = largest_allocation(|| decode::<RuntimeError>(&bytes));
        assert_bounded("RuntimeError", bytes.len(), largest);
        match result {
            Ok(e) => assert_eq!(decode::<RuntimeError>(&encode(&e).unwrap()).unwrap().to_string(), e.to_string()),
            Err(e) => assert!(e.to_string().contains("RuntimeError"), "{e}"),
        }
        if let Ok(r) = decode::<ObjectRef>(&bytes) {
            // Outside a cluster message a ref arrives borrowed: it keeps nothing alive.
            assert!(!r.is_owning());
        }
    });
}
