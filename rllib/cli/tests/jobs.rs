//! Jobs and the dashboard on a real cluster: a head and worker nodes as `rl` processes on
//! 127.0.0.1, jobs submitted by `rl job submit` processes that exit at once, the head running
//! their drivers; the dashboard read over HTTP and, with `RL_BROWSER_TESTS=1`, in Chromium.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::browser::{Browser, attr, tags};
use common::{Cluster, PPO};

/// Polls `rl job status ID` until it prints `want` (a terminal or running state).
fn wait_for_state(c: &Cluster, id: &str, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = c.rl(&["job", "status", id]);
        if out.starts_with(&format!("{id} {want}")) {
            return out;
        }
        assert!(Instant::now() < deadline, "{id} did not reach {want} within {limit:?}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits a training that runs until stopped, named `name`; waits until it runs; returns its id.
fn submit_long(c: &Cluster, name: &str) -> String {
    let stop = "stop.num_env_steps_sampled_lifetime=100000000";
    let out = c.rl(&["job", "submit", "--name", name, "--", "train", "--config", PPO, "--set", stop]);
    let id = out.strip_prefix("submitted ").and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{out}"));
    wait_for_state(c, id, "RUNNING", Duration::from_secs(60));
    id.to_string()
}

/// The CPUs in use on worker nodes, from `rl status --json`.
fn cpus_in_use(c: &Cluster) -> f64 {
    let doc = c.status_json();
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "ALIVE" && n["role"] == "node")
        .map(|n| n["resources_total"]["CPU"].as_f64().unwrap() - n["resources_free"]["CPU"].as_f64().unwrap())
        .sum()
}

/// A plain HTTP GET; the status code and body.
fn http_get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let code = raw.split(' ').nth(1).unwrap().parse().unwrap();
    (code, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[test]
fn a_submitted_job_runs_on_the_head_after_the_submitter_exits_and_a_stopped_one_frees_its_resources() {
    let c = Cluster::start("jobs", 2, 30_000);
    // The job's working directory: a config in a subdirectory, shipped by the submission.
    let work = c.dir.join("work");
    std::fs::create_dir_all(work.join("cfg")).unwrap();
    std::fs::copy(PPO, work.join("cfg/short.yaml")).unwrap();
    let work_s = work.display().to_string();
    let out = c.rl(&[
        "job",
        "submit",
        "--name",
        "short",
        "--working-dir",
        &work_s,
        "--env",
        "RL_LOG=info",
        "--",
        "train",
        "--config",
        &work.join("cfg/short.yaml").display().to_string(),
        "--set",
        "stop.num_env_steps_sampled_lifetime=20000",
    ]);
    // The submitting process has exited; the head runs the job.
    assert!(out.starts_with("submitted job-1"), "{out}");
    wait_for_state(&c, "job-1", "SUCCEEDED", Duration::from_secs(180));
    let logs = c.rl(&["job", "logs", "job-1"]);
    assert!(logs.lines().any(|l| l.starts_with("final evaluation: episode_return_mean")), "{logs}");
    assert!(logs.contains("INFO"), "the job's env (RL_LOG=info) reached its driver: {logs}");
    let listing = c.rl(&["job", "list"]);
    assert!(
        listing.lines().any(|l| l.starts_with("job-1") && l.contains("SUCCEEDED") && l.contains("short")),
        "{listing}"
    );
    let fetched = c.dir.join("fetched");
    c.rl(&["job", "fetch", "job-1", &fetched.display().to_string()]);
    let progress = std::fs::read_to_string(fetched.join("progress.csv")).unwrap();
    assert!(progress.lines().count() > 10, "{progress}");
    assert!(fetched.join("checkpoints").is_dir());

    // A long job: stop it, and its actors' CPUs are free again.
    assert_eq!(submit_long(&c, "long"), "job-2");
    let deadline = Instant::now() + Duration::from_secs(120);
    while cpus_in_use(&c) < 2.0 {
        assert!(Instant::now() < deadline, "the long job's workers never ran: {}", c.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = c.rl(&["job", "stop", "job-2"]);
    assert!(out.starts_with("job-2 STOPPED"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cpus_in_use(&c) > 0.0 {
        assert!(Instant::now() < deadline, "the stopped job's resources stayed taken: {}", c.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = c.status();
    assert!(status.contains("job-2 long STOPPED"), "{status}");
    assert!(status.contains("env_runners SPREAD REMOVED"), "its placement group went with it: {status}");
}

#[test]
fn the_dashboard_shows_the_cluster_and_a_training_job_and_refuses_requests_without_the_token() {
    let c = Cluster::start("dash", 2, 30_000);
    let token = std::fs::read_to_string(Path::new(&c.session).join("token")).unwrap().trim().to_string();
    for path in ["/", "/api/status", "/api/jobs", "/api/jobs/job-1/progress"] {
        assert_eq!(http_get(&c.dashboard, path, None).0, 401, "{path} without the token");
        assert_eq!(http_get(&c.dashboard, path, Some("0123")).0, 401, "{path} with a wrong token");
    }
    assert_eq!(submit_long(&c, "live"), "job-1");
    // The API: the job with its growing curve.
    let points = || {
        let (code, body) = http_get(&c.dashboard, "/api/jobs/job-1/progress", Some(&token));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["rows"].as_u64().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while points() < 3 {
        assert!(Instant::now() < deadline, "the job wrote no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = http_get(&c.dashboard, "/api/status", Some(&token));
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["jobs"][0]["state"], "RUNNING", "{doc}");

    if let Some(browser) = Browser::for_test("dashboard_with_a_training_job") {
        let url = format!("{}/?token={token}", c.dashboard);
        let limit = Duration::from_secs(60);
        let curve_points = |dom: &str| -> u64 {
            let curve =
                tags(dom, "svg", "curve").into_iter().find(|t| attr(t, "data-job-id").as_deref() == Some("job-1"));
            curve.and_then(|t| attr(t, "data-points")).and_then(|p| p.parse().ok()).unwrap_or(0)
        };
        let first = browser.dump_dom(&url, &c.dir, 2500, limit);
        let nodes: Vec<String> = tags(&first, "tr", "node").iter().filter_map(|t| attr(t, "data-node-id")).collect();
        assert!(nodes.len() >= 3, "head, 2 nodes and the job's driver: {nodes:?}\n{first}");
        let jobs: Vec<String> = tags(&first, "tr", "job").iter().filter_map(|t| attr(t, "data-job-id")).collect();
        assert_eq!(jobs, ["job-1"], "{first}");
        let before = curve_points(&first);
        assert!(before > 0, "{first}");
        // Training goes on: a later load shows more points.
        let deadline = Instant::now() + Duration::from_secs(60);
        while points() <= before + 2 {
            assert!(Instant::now() < deadline, "the job stopped writing progress");
            std::thread::sleep(Duration::from_millis(100));
        }
        let second = browser.dump_dom(&url, &c.dir, 2500, limit);
        let after = curve_points(&second);
        assert!(after > before, "the curve grew from {before} points, now {after}");
        let refused = browser.dump_dom(&c.dashboard, &c.dir, 500, limit);
        assert!(tags(&refused, "tr", "node").is_empty() && refused.contains("401"), "{refused}");
    }
    let out = c.rl(&["job", "stop", "job-1"]);
    assert!(out.starts_with("job-1 STOPPED"), "{out}");
}
