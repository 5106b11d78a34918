//! The dashboard against a fake cluster: its HTTP API and token checks over plain sockets, and
//! (with `RL_BROWSER_TESTS=1`) its page in a real headless Chromium while a job's progress.csv
//! grows.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::browser::{Browser, attr, tags};
use rl_cli::dashboard::{Dashboard, DashboardSource};
use rl_runtime::cluster::Token;
use serde_json::{Value, json};

const HEADER: &str = "training_iteration,num_env_steps_sampled_lifetime,env_runners/episode_return_mean,evaluation/episode_return_mean\n";
/// An actor name that would run script if the page put API text into HTML unescaped.
const HOSTILE: &str = "<img src=x onerror=\"document.title='pwned'\">";

/// A cluster of two nodes with one running job (`job-1`, run directory `dir`) and one
/// finished job without a progress file.
struct FakeCluster {
    dir: PathBuf,
    fail: AtomicBool,
}

impl FakeCluster {
    fn status_json() -> Value {
        json!({
            "head": "127.0.0.1:6380",
            "nodes": [
                {"id": 1, "address": "127.0.0.1:6380", "state": "ALIVE", "role": "head", "pid": 123,
                 "resources_total": {"CPU": 0.0}, "resources_free": {"CPU": 0.0},
                 "store_used_bytes": 0, "store_capacity_bytes": 0, "spilled_bytes": 0,
                 "bytes_pulled": 0, "bytes_served": 0, "last_heartbeat_ms_ago": 12, "death_reason": null},
                {"id": 2, "address": "127.0.0.1:40001", "state": "ALIVE", "role": "worker", "pid": 124,
                 "resources_total": {"CPU": 2.0, "GPU": 1.0}, "resources_free": {"CPU": 1.0, "GPU": 1.0},
                 "store_used_bytes": 3_145_728, "store_capacity_bytes": 1_073_741_824, "spilled_bytes": 1024,
                 "bytes_pulled": 10, "bytes_served": 20, "last_heartbeat_ms_ago": null, "death_reason": null}
            ],
            "actors": [
                {"id": 5, "name": HOSTILE, "type": "RolloutWorker", "node": 2, "state": "ALIVE",
                 "restarts": 0, "death_reason": null}
            ],
            "placement_groups": [
                {"id": 1, "name": "job-1", "strategy": "SPREAD", "state": "CREATED",
                 "bundles": [{"resources": {"CPU": 1.0}, "node": 2}]}
            ],
            "jobs": [
                {"id": "job-1", "name": "ppo", "state": "RUNNING", "entrypoint": "train --config ppo.yaml",
                 "submitted_at_ms": 1_700_000_000_000_u64, "ended_at_ms": null},
                {"id": "job-0", "name": "old", "state": "SUCCEEDED", "entrypoint": "train --config old.yaml",
                 "submitted_at_ms": 1_600_000_000_000_u64, "ended_at_ms": 1_600_000_100_000_u64}
            ]
        })
    }
}

impl DashboardSource for FakeCluster {
    fn status(&self) -> anyhow::Result<Value> {
        if self.fail.load(Ordering::SeqCst) {
            anyhow::bail!("the head is unreachable");
        }
        Ok(Self::status_json())
    }

    fn job_run_dir(&self, id: &str) -> Option<PathBuf> {
        match id {
            "job-1" => Some(self.dir.clone()),
            "job-0" => Some(self.dir.join("job-0-never-started")),
            _ => None,
        }
    }
}

/// A dashboard over a fake cluster whose job writes to `dir/progress.csv`.
fn serve(dir: &Path) -> (Dashboard, Arc<FakeCluster>, Token) {
    let token = Token::generate();
    let fake = Arc::new(FakeCluster { dir: dir.to_path_buf(), fail: AtomicBool::new(false) });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dashboard = Dashboard::serve(listener, token.clone(), fake.clone()).unwrap();
    (dashboard, fake, token)
}

/// One HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.body);
        serde_json::from_str(&self.body).unwrap()
    }
}

/// `GET path` with extra header lines, over a fresh connection closed by the server.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer with a header block");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| l.split_once(':').unwrap())
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Answer { status, headers, body }
}

fn dechunk(mut raw: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&rest[..size]);
        raw = &rest[size + 2..];
    }
}

fn bearer(token: &Token) -> String {
    format!("Bearer {}", token.as_str())
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

#[test]
fn without_the_token_every_route_but_healthz_answers_401() {
    let scratch = common::scratch("dashboard-401");
    let (dashboard, _fake, token) = serve(&scratch.0);
    let addr = dashboard.local_addr();
    let wrong = Token::generate();
    let wrong_bearer = bearer(&wrong);
    let wrong_cookie = format!("rl_dashboard_token={}", wrong.as_str());
    let truncated = format!("Bearer {}", &token.as_str()[..63]);
    let refusals: [&[(&str, &str)]; 5] = [
        &[],
        &[("Authorization", &wrong_bearer)],
        &[("Authorization", &truncated)],
        &[("Authorization", token.as_str())],
        &[("Cookie", &wrong_cookie)],
    ];
    for path in ["/", "/app.js", "/api/status", "/api/jobs/x/progress", "/api/jobs/job-1/progress", "/nope"] {
        for headers in refusals {
            let a = get(addr, path, headers);
            assert_eq!(a.status, 401, "{path} {headers:?}: {}", a.body);
            assert!(a.body.contains("/?token=TOKEN") && a.body.contains("Authorization: Bearer TOKEN"), "{}", a.body);
            assert!(a.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
            assert!(a.header("set-cookie").is_none());
        }
    }
    // A wrong token in the URL is refused, even next to a valid bearer, and sets no cookie.
    let a = get(addr, &format!("/?token={}", wrong.as_str()), &[("Authorization", &bearer(&token))]);
    assert_eq!((a.status, a.header("set-cookie")), (401, None));
    let a = get(addr, "/healthz", &[]);
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
}

#[test]
fn the_bearer_token_opens_the_page_and_the_api() {
    let scratch = common::scratch("dashboard-bearer");
    let (dashboard, fake, token) = serve(&scratch.0);
    let addr = dashboard.local_addr();
    let auth = bearer(&token);
    let auth = [("Authorization", auth.as_str())];

    let page = get(addr, "/", &auth);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("content-security-policy").is_some_and(|p| p.contains("script-src 'self'")));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    for id in
        ["id=\"nodes\"", "id=\"jobs\"", "id=\"actors\"", "id=\"placement-groups\"", "id=\"curves\"", "id=\"error\""]
    {
        assert!(page.body.contains(id), "the page has no {id}");
    }
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "the page loads nothing external");
    let script = get(addr, "/app.js", &auth);
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").is_some_and(|t| t.starts_with("text/javascript")));
    assert!(!script.body.contains("innerHTML"), "the script must not build HTML from strings");

    assert_eq!(get(addr, "/api/status", &auth).json(), FakeCluster::status_json());
    fake.fail.store(true, Ordering::SeqCst);
    let failed = get(addr, "/api/status", &auth);
    assert_eq!(failed.status, 500);
    let message = failed.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("the head is unreachable"), "{message}");

    let missing = get(addr, "/api/nothing", &auth);
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("/api/nothing"));
}

#[test]
fn a_token_in_the_url_becomes_a_cookie_and_leaves_the_address() {
    let scratch = common::scratch("dashboard-cookie");
    let (dashboard, _fake, token) = serve(&scratch.0);
    let addr = dashboard.local_addr();
    let a = get(addr, &format!("/?token={}", token.as_str()), &[]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some("/"));
    let set = a.header("set-cookie").expect("a cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split(';').any(|p| p.trim() == part), "{part} missing in {set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(cookie, format!("rl_dashboard_token={}", token.as_str()));
    let page = get(addr, "/", &[("Cookie", &format!("theme=dark; {cookie}"))]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"nodes\""));
    assert_eq!(get(addr, "/api/status", &[("Cookie", &cookie)]).status, 200);
    // Other query parameters survive the redirect.
    let a = get(addr, &format!("/api/status?token={}&pretty=1", token.as_str()), &[]);
    assert_eq!((a.status, a.header("location")), (303, Some("/api/status?pretty=1")));
}

#[test]
fn progress_follows_a_growing_csv_with_gaps_and_a_torn_last_line() {
    let scratch = common::scratch("dashboard-progress");
    let (dashboard, _fake, token) = serve(&scratch.0);
    let addr = dashboard.local_addr();
    let auth = bearer(&token);
    let auth = [("Authorization", auth.as_str())];
    let csv = scratch.0.join("progress.csv");
    let series = |v: &Value, name: &str| v["series"][name].as_array().unwrap().clone();

    // Before the job writes anything: no rows, no series.
    let v = get(addr, "/api/jobs/job-1/progress", &auth).json();
    assert_eq!((v["job"].as_str(), v["rows"].as_u64()), (Some("job-1"), Some(0)));
    assert_eq!(v["x"], "num_env_steps_sampled_lifetime");

    append(&csv, &format!("{HEADER}1,500,,\n2,1000,20.5,\n3,1500,25,31\n4,20"));
    let v = get(addr, "/api/jobs/job-1/progress", &auth).json();
    assert_eq!((v["rows"].as_u64(), v["skipped_rows"].as_u64()), (Some(3), Some(0)));
    assert_eq!(series(&v, "env_runners/episode_return_mean"), vec![json!([1000.0, 20.5]), json!([1500.0, 25.0])]);
    assert_eq!(series(&v, "evaluation/episode_return_mean"), vec![json!([1500.0, 31.0])]);

    // The torn line completes; one more row and a broken one arrive.
    append(&csv, "00,30,\n5,2500,35,\nnot,a,row\n");
    let v = get(addr, "/api/jobs/job-1/progress", &auth).json();
    assert_eq!((v["rows"].as_u64(), v["skipped_rows"].as_u64()), (Some(5), Some(1)));
    let train = series(&v, "env_runners/episode_return_mean");
    assert_eq!(train.len(), 4);
    assert_eq!(train[2..], [json!([2000.0, 30.0]), json!([2500.0, 35.0])]);

    let never = get(addr, "/api/jobs/job-0/progress", &auth).json();
    assert_eq!((never["rows"].as_u64(), never["series"].as_object().map(|s| s.len())), (Some(0), Some(0)));
    let unknown = get(addr, "/api/jobs/job-9/progress", &auth);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no job \"job-9\"");
}

#[test]
fn a_dropped_dashboard_closes_its_port() {
    let scratch = common::scratch("dashboard-drop");
    let (dashboard, _fake, token) = serve(&scratch.0);
    let addr = dashboard.local_addr();
    assert_eq!(get(addr, "/api/status", &[("Authorization", &bearer(&token))]).status, 200);
    // An idle keep-alive connection does not hold up the stop.
    let _idle = TcpStream::connect(addr).unwrap();
    drop(dashboard);
    assert!(TcpStream::connect(addr).is_err(), "the dashboard still accepts connections after the drop");
}

#[test]
fn it_starts_and_stops_inside_another_runtime() {
    // The head calls it from code that may run on its own tokio runtime.
    let scratch = common::scratch("dashboard-nested");
    let outer = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    outer.block_on(async {
        let (dashboard, _fake, token) = serve(&scratch.0);
        assert_eq!(get(dashboard.local_addr(), "/api/status", &[("Authorization", &bearer(&token))]).status, 200);
        drop(dashboard);
    });
}

/// The page in a real browser: the tables and the curve appear, the curve grows between loads,
/// API text is escaped, and without the token the page is a 401.
#[test]
fn the_page_in_a_headless_browser_shows_nodes_jobs_and_a_growing_curve() {
    let Some(browser) = Browser::for_test("the_page_in_a_headless_browser_shows_nodes_jobs_and_a_growing_curve") else {
        return;
    };
    let scratch = common::scratch("dashboard-browser");
    let (dashboard, fake, token) = serve(&scratch.0);
    let url = format!("http://{}/", dashboard.local_addr());
    let csv = scratch.0.join("progress.csv");
    append(&csv, &format!("{HEADER}1,500,10,\n2,1000,,\n3,1500,14,20\n4,2000,17,\n5,25"));
    let limit = Duration::from_secs(60);
    let with_token = format!("{url}?token={}", token.as_str());

    let first = browser.dump_dom(&with_token, &scratch.0, 2500, limit);
    assert!(tags(&first, "div", "banner").iter().all(|b| b.contains(" hidden")), "an error banner shows:\n{first}");
    let nodes: Vec<String> = tags(&first, "tr", "node").iter().filter_map(|t| attr(t, "data-node-id")).collect();
    assert_eq!(nodes, ["1", "2"], "node rows:\n{first}");
    let jobs: Vec<String> = tags(&first, "tr", "job").iter().filter_map(|t| attr(t, "data-job-id")).collect();
    assert_eq!(jobs, ["job-1", "job-0"]);
    assert_eq!(tags(&first, "tr", "actor").len(), 1);
    assert_eq!(tags(&first, "tr", "placement-group").len(), 1);
    assert!(first.contains(">1 / 2<") && first.contains("3.0 MiB / 1.0 GiB"), "CPU and store cells:\n{first}");
    assert!(!first.contains("<img") && first.contains("&lt;img src=x"), "API text must be escaped:\n{first}");
    let points = |dom: &str| -> Option<usize> {
        let curve =
            tags(dom, "svg", "curve").into_iter().find(|t| attr(t, "data-job-id").as_deref() == Some("job-1"))?;
        attr(curve, "data-points")?.parse().ok()
    };
    assert_eq!(points(&first), Some(3), "job-1's curve:\n{first}");

    append(&csv, "00,19,\n6,3000,22,\n7,3500,26,30\n");
    let second = browser.dump_dom(&with_token, &scratch.0, 2500, limit);
    assert_eq!(points(&second), Some(6), "job-1's curve on the second load:\n{second}");

    // A failing API shows as a banner over the page, not as a blank page.
    fake.fail.store(true, Ordering::SeqCst);
    let failing = browser.dump_dom(&with_token, &scratch.0, 1500, limit);
    let banner = tags(&failing, "div", "banner");
    assert!(banner.len() == 1 && !banner[0].contains(" hidden"), "no visible banner:\n{failing}");
    assert!(failing.contains("the head is unreachable"), "{failing}");

    let refused = browser.dump_dom(&url, &scratch.0, 500, limit);
    assert!(refused.contains("401 Unauthorized") && refused.contains("?token=TOKEN"), "{refused}");
    assert!(tags(&refused, "tr", "node").is_empty());
}
