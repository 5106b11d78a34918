//! Spilling on a real node: an `rl start` process with a 64 MiB object store holds 256 MiB of
//! live objects (put by an actor on it, referenced from this test's process as driver), every
//! one reads back intact, and the node removes its spill directory when it exits.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use rl_cli::bench_cluster::{Probe, ProbeMsg, ProbeReply, seeded_bytes};
use rl_runtime::{ActorOptions, Placement};

const MIB: u64 = 1 << 20;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn a_node_with_a_64_mib_store_holds_256_mib_of_live_objects_and_cleans_its_spill_directory() {
    let mut c = Cluster::for_test_driver("spill", 0, 30_000);
    let spill = c.dir.join("spill");
    std::fs::create_dir_all(&spill).unwrap();
    let spill_s = spill.display().to_string();
    c.add_node(&["--object-store-memory", "64MiB", "--spill-dir", &spill_s]);
    let rt = c.driver();
    let node = c.status_json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "node")
        .map(|n| n["id"].as_u64().unwrap() as u32)
        .unwrap();
    let probe = rt.spawn::<Probe>((), ActorOptions { placement: Placement::Node(node), ..Default::default() }).unwrap();

    // 64 objects of 4 MiB, owned by the node, kept alive by this process's refs.
    let refs: Vec<_> = (0..64u64)
        .map(|seed| {
            let ProbeReply::Made(r) = probe.call(ProbeMsg::MakeSeeded { bytes: 4 * MIB, seed }).wait().unwrap() else {
                panic!("MakeSeeded answers Made")
            };
            r
        })
        .collect();
    // The node's store stays under its cap; the rest is on disk.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = c.status_json();
        let n = doc["nodes"].as_array().unwrap().iter().find(|n| n["id"] == node).unwrap().clone();
        let (used, spilled) = (n["store_used_bytes"].as_u64().unwrap(), n["spilled_bytes"].as_u64().unwrap());
        assert!(used <= 64 * MIB, "{n}");
        // Once a heartbeat sent after the last put arrives: all 256 MiB are in memory or on disk.
        if used + spilled == 256 * MIB {
            assert!(spilled >= 192 * MIB, "at least 256 - 64 MiB on disk: {n}");
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat reported the objects spilled: {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let node_spill_dirs = || std::fs::read_dir(&spill).unwrap().count();
    assert_eq!(node_spill_dirs(), 1, "the node's own spill directory");

    // Every object reads back intact, in put order (each restore may spill the next one).
    for (seed, r) in refs.iter().enumerate() {
        let got = rt.get_blocking(r, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(got.len() as u64, 4 * MIB);
        assert_eq!(fnv1a(&got), fnv1a(&seeded_bytes(4 * MIB as usize, seed as u64)), "object {seed}");
    }
    drop(refs);
    rt.shutdown();

    // SIGTERM, as `rl stop` sends: the node exits cleanly and takes its spill directory along.
    let mut n = c.nodes.remove(0);
    // SAFETY: kill(2) on a child this test started and has not reaped.
    unsafe { libc::kill(n.pid() as libc::pid_t, libc::SIGTERM) };
    assert!(n.exit(Duration::from_secs(30)).success(), "{}", n.err());
    assert_eq!(node_spill_dirs(), 0, "the node removed its spill directory at exit");
}
