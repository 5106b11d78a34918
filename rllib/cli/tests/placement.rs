//! Placement groups on a real cluster: a head and worker nodes as `rl` processes on 127.0.0.1,
//! this test's process joined as the driver that creates the groups and spawns into them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Cluster;
use rl_cli::bench_cluster::{Probe, ProbeMsg, ProbeReply};
use rl_runtime::cluster::{PlacementGroupState, PlacementStrategy};
use rl_runtime::{ActorOptions, Placement, RuntimeError};

fn cpus(n: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([("CPU".to_string(), n)])
}

#[test]
fn strict_spread_waits_for_a_third_node_strict_pack_shares_one_and_removal_frees_resources() {
    let mut c = Cluster::for_test_driver("pg", 2, 30_000);
    let rt = c.driver();

    // STRICT_SPREAD of 3 bundles cannot be placed on 2 nodes: it stays PENDING...
    let spread = rt.create_placement_group("spread", PlacementStrategy::StrictSpread, vec![cpus(1.0); 3]).unwrap();
    let err = spread.wait(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, RuntimeError::Timeout(..)) && err.to_string().contains("PENDING"), "{err}");
    let status = c.status();
    assert!(status.contains("spread") && status.contains("PENDING"), "{status}");

    // ...and is placed, one bundle per node, as soon as a third node joins.
    c.add_node(&[]);
    let info = spread.wait(Duration::from_secs(60)).unwrap();
    let nodes: BTreeSet<u32> = info.bundles.iter().map(|b| b.node_id).collect();
    assert_eq!(nodes.len(), 3, "{info:?}");
    assert!(!nodes.contains(&0) && !nodes.contains(&1), "not unplaced, not the head: {info:?}");

    // STRICT_PACK: both bundles on one node.
    let pack = rt.create_placement_group("pack", PlacementStrategy::StrictPack, vec![cpus(0.5); 2]).unwrap();
    let info = pack.wait(Duration::from_secs(60)).unwrap();
    assert_eq!(info.state(), PlacementGroupState::Created);
    assert_eq!(info.bundles[0].node_id, info.bundles[1].node_id, "{info:?}");

    // An actor in bundle 0 of the spread group runs on that bundle's node.
    let spread_nodes: Vec<u32> = spread.info().unwrap().bundles.iter().map(|b| b.node_id).collect();
    let in_group = ActorOptions { placement: spread.bundle(Some(0)), ..Default::default() };
    let member = rt.spawn::<Probe>((), in_group).unwrap();
    assert!(matches!(member.call(ProbeMsg::Echo(5)).wait().unwrap(), ProbeReply::Echo(5)));
    assert_eq!(member.location().node_id, spread_nodes[0]);

    // The groups hold 1 + 1 CPU per node (the pack group's 1 on one of them): no node has 2 CPUs
    // free for an actor outside them.
    let big = ActorOptions {
        num_cpus: 2.0,
        placement: Placement::Any,
        placement_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let err = rt.spawn::<Probe>((), big.clone()).unwrap_err();
    assert!(matches!(err, RuntimeError::Unschedulable { .. }), "{err}");

    // Removing the spread group stops its actor and frees its CPUs: the big actor fits now.
    spread.remove().unwrap();
    assert_eq!(spread.info().unwrap().state(), PlacementGroupState::Removed);
    let err = member.call(ProbeMsg::Echo(6)).wait().unwrap_err();
    assert!(!err.to_string().is_empty());
    let big = ActorOptions { placement_timeout: Duration::from_secs(60), ..big };
    let outside = rt.spawn::<Probe>((), big).unwrap();
    assert!(matches!(outside.call(ProbeMsg::Echo(7)).wait().unwrap(), ProbeReply::Echo(7)));
    // The pack group is untouched, and a removed group takes no more actors.
    assert_eq!(pack.info().unwrap().state(), PlacementGroupState::Created);
    let late = ActorOptions { placement: spread.bundle(None), ..Default::default() };
    let err = rt.spawn::<Probe>((), late).unwrap_err();
    assert!(err.to_string().contains("was removed"), "{err}");
    rt.shutdown();
}
