//! A head that dies: its worker nodes and its driver give up on it within the head's node
//! timeout and exit non-zero with an error naming it (nothing reconnects: the cluster's state
//! died with the head), and a head started again on the same session directory takes new nodes.
//! Real `rl` processes, `--port 0` unless a test restarts a head on its old port, killed by pid
//! on drop (see `common`).

mod common;

use common::{Cluster, PPO, Proc, RL};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// The node timeout of these clusters; heartbeats go every 200 ms.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after the head's death a node or driver may take to exit: the timeout, then a
/// shutdown that stops actors and closes connections, on a loaded 2-core machine.
const EXIT_BOUND: Duration = Duration::from_secs(12);

/// Starts `rl start --head --block` on `port` in `session` (with `extra` flags); returns it and
/// its address once it is ready.
fn start_head(dir: &Path, session: &str, port: u16, extra: &[&str], name: &str) -> (Proc, String) {
    let port = port.to_string();
    let timeout = NODE_TIMEOUT.as_millis().to_string();
    let mut args = vec!["start", "--head", "--block", "--port", &port, "--num-cpus", "0", "--session-dir", session];
    args.extend(["--heartbeat-interval-ms", "200", "--node-timeout-ms", &timeout, "--dashboard-port", "0"]);
    args.extend_from_slice(extra);
    let head = Proc::spawn(Path::new(RL), &args, dir, name);
    let address = head.line("listening on ", Duration::from_secs(60));
    head.line("ready", Duration::from_secs(60));
    (head, address)
}

/// Waits for `p` to exit within [`EXIT_BOUND`] of `since`; returns its status and stderr.
fn exit_after(p: &mut Proc, since: Instant) -> (ExitStatus, String) {
    let status = p.exit(EXIT_BOUND.saturating_sub(since.elapsed()));
    (status, p.err())
}

/// The pid files of `session`'s live and dead node processes.
fn pid_files(session: &str) -> Vec<String> {
    let dir = Path::new(session).join("nodes");
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn nodes_and_the_driver_exit_with_a_clear_error_when_the_head_dies_and_a_new_head_takes_new_nodes() {
    let mut c = Cluster::start("head-kill", 2, NODE_TIMEOUT.as_millis() as u64);
    let run = c.dir.join("run");
    let run_s = run.display().to_string();
    let args = ["train", "--config", PPO, "--address", &c.address, "--session-dir", &c.session, "--output", &run_s];
    let more = ["--quiet", "--set", "stop.num_env_steps_sampled_lifetime=100000000"];
    let mut driver = Proc::spawn(Path::new(RL), &[&args[..], &more[..]].concat(), &c.dir, "driver");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(run.join("progress.csv")).map_or(0, |t| t.lines().count()) < 3 {
        assert!(Instant::now() < deadline, "training did not start: {}", driver.err());
        assert!(driver.child.try_wait().unwrap().is_none(), "the driver exited: {}", driver.err());
        std::thread::sleep(Duration::from_millis(20));
    }

    c.head.child.kill().unwrap();
    let killed_at = Instant::now();
    c.head.exit(Duration::from_secs(10));

    // Each node gives up once the head has not answered for the node timeout, stops, removes its
    // pid file, and says why and what to do.
    let lost = format!("lost the head at {}: no answer for ", c.address);
    for node in &mut c.nodes {
        let (status, err) = exit_after(node, killed_at);
        assert_eq!(status.code(), Some(1), "{err}");
        let error = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{err}"));
        assert!(error.contains(&lost) && error.contains("(node_timeout 2.0 s;"), "{error}");
        assert!(error.contains(&format!("rejoin with `rl start --address {}`", c.address)), "{error}");
        let silence: f64 = error[error.find(&lost).unwrap() + lost.len()..].split(' ').next().unwrap().parse().unwrap();
        assert!(silence >= 2.0, "{error}");
        assert!(!pid_files(&c.session).contains(&format!("{}.json", node.pid())), "{:?}", pid_files(&c.session));
    }
    // The driver too, with an error naming the head (its own or the one its next head request met).
    let (status, err) = exit_after(&mut driver, killed_at);
    assert_eq!(status.code(), Some(1), "{err}");
    let error = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(error.contains(&lost) || error.contains(&format!("cannot reach the head at {}", c.address)), "{error}");

    // A new head in the same session directory (on a new port) takes a new node; `rl status`
    // shows the new cluster only.
    let (head, address) = start_head(&c.dir, &c.session, 0, &[], "head2");
    (c.head, c.address) = (head, address);
    c.nodes.clear();
    let pid = c.add_node(&[]).pid();
    let status = c.status();
    let alive: Vec<&str> = status.lines().filter(|l| l.contains("ALIVE")).collect();
    assert_eq!(alive.len(), 2, "{status}");
    assert!(alive.iter().any(|l| l.contains(&pid.to_string()) && l.starts_with("2 ")), "{status}");
}

#[test]
fn a_head_restarted_on_its_port_stops_the_nodes_of_its_previous_run_at_once() {
    // A node timeout far longer than the test: only the restarted head can make the node stop.
    let mut c = Cluster::start("head-restart", 1, 60_000);
    let port: u16 = c.address.rsplit(':').next().unwrap().parse().unwrap();
    let token = Path::new(&c.session).join("token").display().to_string();
    c.head.child.kill().unwrap();
    c.head.exit(Duration::from_secs(10));
    let restarted_at = Instant::now();
    let (head, address) = start_head(&c.dir, &c.session, port, &["--token-file", &token], "head2");
    assert_eq!(address, c.address, "the same port");
    c.head = head;

    // The old node's next heartbeat reaches the new head, which never heard of it (node ids start
    // again at 1 in every run of a head): it stops at once, naming the restart.
    let mut old = c.nodes.remove(0);
    let status = old.exit(Duration::from_secs(30).saturating_sub(restarted_at.elapsed()));
    let err = old.err();
    assert_eq!(status.code(), Some(1), "{err}");
    let error = err.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{err}"));
    let restarted = format!("lost the head at {}: it restarted since this node (node 2) joined it", c.address);
    assert!(error.contains(&restarted), "{error}");

    // A new node gets the old one's id; the new head counts only it.
    let pid = c.add_node(&[]).pid();
    let status = c.status();
    let alive: Vec<&str> = status.lines().filter(|l| l.contains("ALIVE")).collect();
    assert_eq!(alive.len(), 2, "{status}");
    assert!(alive.iter().any(|l| l.starts_with("2 ") && l.contains(&pid.to_string())), "{status}");
    assert!(!status.contains("DEAD"), "the old node's leave did not reach the new run: {status}");
}
