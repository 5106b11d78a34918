//! Process actors on a real cluster: a head and a worker node as `rl` processes on 127.0.0.1,
//! this test's process joined as the driver. A process actor runs in a worker process of its
//! node with its own environment; its crash takes only that process; its node (or the driver
//! that started it) stopping or dying takes the worker along.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use rl_cli::bench_cluster::{Probe, ProbeMsg, ProbeReply};
use rl_runtime::cluster::proto::NodeState;
use rl_runtime::{ActorHandle, ActorOptions, Isolation, Placement, Runtime, RuntimeError, RuntimeOptions};

fn pid_of(probe: &ActorHandle<Probe>) -> u32 {
    match probe.call(ProbeMsg::Pid).wait().unwrap() {
        ProbeReply::Pid(pid) => pid,
        other => panic!("Pid answered {other:?}"),
    }
}

fn env_of(probe: &ActorHandle<Probe>, name: &str) -> Option<String> {
    match probe.call(ProbeMsg::Env(name.into())).wait().unwrap() {
        ProbeReply::Env(value) => value,
        other => panic!("Env answered {other:?}"),
    }
}

fn echo(probe: &ActorHandle<Probe>, x: u64) {
    assert!(matches!(probe.call(ProbeMsg::Echo(x)).wait().unwrap(), ProbeReply::Echo(y) if y == x));
}

fn with_env(isolation: Isolation, placement: Placement, value: &str) -> ActorOptions {
    ActorOptions {
        placement,
        isolation,
        env: BTreeMap::from([("RL_TEST_VAR".to_string(), value.to_string())]),
        ..ActorOptions::default()
    }
}

/// Polls `done` until it holds, failing after 30 s with `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` runs (exists and is not a zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The parent pid of process `pid`.
fn parent_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("PPid:")).unwrap();
    line["PPid:".len()..].trim().parse().unwrap()
}

/// Free CPUs of node `node` as the head last heard.
fn cpu_free(rt: &Runtime, node: u32) -> f64 {
    let (nodes, _) = rt.cluster_nodes().unwrap();
    let n = nodes.iter().find(|n| n.node_id == node).unwrap();
    n.available.as_ref().and_then(|r| r.amounts.get("CPU")).copied().unwrap_or(0.0)
}

#[test]
fn a_process_actor_has_its_own_pid_and_env_and_its_abort_kills_only_it() {
    let mut c = Cluster::for_test_driver("proc", 1, 30_000);
    let rt = c.driver();
    let node_pid = c.nodes[0].pid();

    // A thread actor runs in its node's process and sees the node's environment.
    let thread = rt.spawn::<Probe>((), ActorOptions::default()).unwrap();
    let node = thread.location().node_id;
    assert_eq!(pid_of(&thread), node_pid);
    assert_eq!(env_of(&thread, "RL_TEST_VAR"), None);

    // A process actor on the same node runs in a process of its own, with its own variable.
    let actor = rt.spawn::<Probe>((), with_env(Isolation::Process, Placement::Node(node), "x")).unwrap();
    let pid = pid_of(&actor);
    assert_ne!(pid, node_pid);
    assert_eq!(parent_of(pid), node_pid, "the node started it");
    assert_eq!(actor.location().pid, pid);
    assert_ne!(actor.location().node_id, node, "its worker is a node of its own");
    assert_eq!(env_of(&actor, "RL_TEST_VAR").as_deref(), Some("x"));
    assert_eq!(env_of(&thread, "RL_TEST_VAR"), None, "the node's environment is untouched");
    // Its node holds its CPU: both of the node's CPUs are taken.
    wait_for("the node to report both CPUs taken", || cpu_free(&rt, node) == 0.0);
    let status = c.status();
    assert!(status.contains("actor process"), "{status}");

    // An abort kills the actor's process: the call in flight fails saying it died...
    let err = actor.call(ProbeMsg::Abort).wait().unwrap_err();
    assert!(matches!(err, RuntimeError::DiedDuringCall { .. }), "{err}");
    wait_for("the aborted process to be gone and reaped", || !running(pid));
    // ...the node and its thread actor carry on...
    echo(&thread, 1);
    assert!(running(node_pid));
    // ...later calls fail with the exit signal as the reason...
    wait_for("the driver to hear of the death", || !actor.is_alive());
    let err = actor.call(ProbeMsg::Echo(2)).wait().unwrap_err();
    assert!(matches!(err, RuntimeError::NotDelivered { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("died") && text.contains("SIGABRT"), "{text}");
    // ...and its CPU is free again.
    wait_for("the node to report its CPU free", || cpu_free(&rt, node) == 1.0);
    let (nodes, _) = rt.cluster_nodes().unwrap();
    let parent = nodes.iter().find(|n| n.node_id == node).unwrap();
    assert_eq!(parent.state(), NodeState::Alive);
    let worker = nodes.iter().find(|n| n.node_id == actor.location().node_id).unwrap();
    assert_eq!((worker.state(), worker.parent), (NodeState::Dead, node));
    assert!(worker.death_reason.contains("killed by signal 6 (SIGABRT)"), "{}", worker.death_reason);
    echo(&thread, 3);

    // A node killed outright takes its worker processes along.
    let second = rt.spawn::<Probe>((), with_env(Isolation::Process, Placement::Node(node), "y")).unwrap();
    let second_pid = pid_of(&second);
    assert!(running(second_pid));
    c.nodes[0].child.kill().unwrap();
    c.nodes[0].child.wait().unwrap();
    wait_for("the worker of a killed node to die with it", || !running(second_pid));
    rt.shutdown();
}

#[test]
fn a_driver_runs_process_actors_as_its_children_and_stops_them_with_it() {
    let c = Cluster::for_test_driver("proc-local", 0, 30_000);
    let rt = c.driver();
    let local = |value: &str| ActorOptions { num_cpus: 0.0, ..with_env(Isolation::Process, Placement::Local, value) };

    // A process actor placed in the driver is a child process of the driver.
    let actor = rt.spawn::<Probe>((), local("here")).unwrap();
    let pid = pid_of(&actor);
    assert_ne!(pid, std::process::id());
    assert_eq!(parent_of(pid), std::process::id());
    assert_eq!(env_of(&actor, "RL_TEST_VAR").as_deref(), Some("here"));
    assert_eq!(std::env::var("RL_TEST_VAR").ok(), None, "the driver's environment is untouched");

    // Stopping it ends its process.
    actor.stop();
    wait_for("the stopped actor's process to exit", || !running(pid));
    wait_for("the driver to hear of the stop", || !actor.is_alive());
    assert!(matches!(actor.call(ProbeMsg::Echo(1)).wait().unwrap_err(), RuntimeError::NotDelivered { .. }));

    // The driver's shutdown stops the process actors it started.
    let other = rt.spawn::<Probe>((), local("again")).unwrap();
    let other_pid = pid_of(&other);
    rt.shutdown();
    wait_for("the driver's worker to exit with it", || !running(other_pid));

    // Environment variables need process isolation, and process isolation needs a cluster.
    let embedded = Runtime::local(RuntimeOptions { num_cpus: 1.0, ..RuntimeOptions::default() }).unwrap();
    rl_cli::cluster::register_actor_types(&embedded);
    let err = embedded.spawn::<Probe>((), with_env(Isolation::Thread, Placement::Local, "x")).unwrap_err();
    assert!(matches!(&err, RuntimeError::InvalidActorOption { option, .. } if option == "env"), "{err}");
    let err = embedded.spawn::<Probe>((), with_env(Isolation::Process, Placement::Local, "x")).unwrap_err();
    assert!(err.to_string().contains("embedded runtime"), "{err}");
    embedded.shutdown();
}
