//! The deployment files, run as written. No image registry or Kubernetes cluster is reachable
//! from a test, so this reads deploy/k8s's manifests and deploy/Dockerfile, checks that they agree
//! (entrypoint, names, ports, token, CPU requests), and runs the head's and the worker's exact
//! arguments and environment as local processes of the test's `rl` binary.
//!
//! The only changes a machine without pods needs, and nothing else:
//! - the head's `--port` becomes 0 (a free one, read from its `listening on` line), and the
//!   worker's `--address`, the Service's `host:port`, becomes `127.0.0.1:` that port;
//! - `RL_SESSION_DIR` points each process at a directory of its own in the test's scratch
//!   directory, as each pod has its own home;
//! - the Secret's value, made from `deploy/k8s/token` which git ignores, is a token of the test's.
//!
//! The environment is the manifest's only (the test's own is cleared), as in a container.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, RL, scratch};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The test's cluster token, as `openssl rand -hex 32 > deploy/k8s/token` would write it.
const TOKEN: &str = "5f0c1d6b9a7e48e3a2c4b1f0d9e8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0\n";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// deploy/k8s: the kustomization and every document of the files it lists, plus the training Job.
struct Manifests {
    kustomization: Value,
    /// The documents of the kustomization's resources.
    docs: Vec<Value>,
    /// train-job.yaml, applied on its own.
    job: Value,
}

impl Manifests {
    fn load() -> Self {
        let dir = Path::new(ROOT).join("deploy/k8s");
        let kustomization: Value = serde_saphyr::from_str(&read(&dir.join("kustomization.yaml"))).unwrap();
        let mut docs = Vec::new();
        for file in kustomization["resources"].as_array().expect("kustomization.yaml lists no resources") {
            let path = dir.join(file.as_str().unwrap());
            let parsed: Vec<Value> = serde_saphyr::from_multiple(&read(&path))
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            docs.extend(parsed);
        }
        let job = serde_saphyr::from_str(&read(&dir.join("train-job.yaml"))).unwrap();
        Self { kustomization, docs, job }
    }

    /// The one document of `kind` named `name`.
    fn find(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> =
            self.docs.iter().filter(|d| d["kind"] == kind && d["metadata"]["name"] == name).collect();
        assert_eq!(found.len(), 1, "expected one {kind} named {name}");
        found[0]
    }

    /// The only container of the Deployment `name`.
    fn container(&self, name: &str) -> &Value {
        only_container(self.find("Deployment", name))
    }

    /// The Secret the kustomization makes from a file: its name and its one key.
    fn secret(&self) -> (String, String) {
        let generators = self.kustomization["secretGenerator"].as_array().expect("no secretGenerator");
        assert_eq!(generators.len(), 1);
        let files = generators[0]["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "the token Secret holds one file");
        // `key=path` or just `path` (the key is then the file's name).
        let file = files[0].as_str().unwrap();
        let key = file.split_once('=').map_or(file, |(k, _)| k);
        (generators[0]["name"].as_str().unwrap().to_string(), key.to_string())
    }

    /// The head Service's `host:port`, as a pod in the namespace reaches it.
    fn head_service(&self) -> String {
        let service = self.find("Service", "rl-head");
        let ports = service["spec"]["ports"].as_array().unwrap();
        let rl = ports.iter().find(|p| p["name"] == "rl").expect("the Service's `rl` port");
        format!("rl-head:{}", rl["port"])
    }
}

fn only_container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

fn args(container: &Value) -> Vec<String> {
    let args = container["args"].as_array().unwrap_or_else(|| panic!("{} has no args", container["name"]));
    args.iter().map(|a| a.as_str().expect("every argument is a string").to_string()).collect()
}

/// The value after `--name` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).map(|i| args[i + 1].as_str())
}

/// A Kubernetes CPU quantity ("2", "0.5", "500m") in CPUs.
fn cpus(quantity: &Value) -> f64 {
    let text = match quantity {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => text.parse().unwrap_or_else(|_| panic!("bad CPU quantity {text:?}")),
    }
}

/// The container's environment with its Secret reference resolved to `token`, as the kubelet
/// would set it.
fn pod_env(container: &Value, secret: &(String, String), token: &str) -> Vec<(String, String)> {
    let Some(env) = container["env"].as_array() else { return Vec::new() };
    env.iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            if let Some(v) = e["value"].as_str() {
                return (name, v.to_string());
            }
            let r = &e["valueFrom"]["secretKeyRef"];
            assert!(r.is_object(), "{name}: only literal values and the token Secret are used");
            assert_eq!((r["name"].as_str().unwrap(), r["key"].as_str().unwrap()), (&*secret.0, &*secret.1));
            (name, token.to_string())
        })
        .collect()
}

/// The Dockerfile's instructions `word` (say `ENTRYPOINT`), their arguments joined with their
/// continuation lines.
fn instructions(dockerfile: &str, word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let joined = match current.take() {
            Some(prev) => prev + " " + line,
            None => match line.split_once(char::is_whitespace) {
                Some((w, rest)) if w == word => rest.trim().to_string(),
                _ => continue,
            },
        };
        match joined.strip_suffix('\\') {
            Some(more) => current = Some(more.trim_end().to_string()),
            None => out.push(joined),
        }
    }
    out
}

/// The Dockerfile's `ENTRYPOINT`, which must use the exec (JSON array) form.
fn entrypoint(dockerfile: &str) -> Vec<String> {
    let found = instructions(dockerfile, "ENTRYPOINT");
    assert_eq!(found.len(), 1, "one ENTRYPOINT");
    serde_json::from_str(&found[0]).expect("ENTRYPOINT in exec form, a JSON array")
}

/// `rl start` with `args` and exactly the environment `env` plus the session directory `session`.
fn start(args: &[String], env: &[(String, String)], session: &Path, dir: &Path, name: &str) -> Proc {
    // Without it `rl start` would move to the background: the container's process would exit,
    // and here a node would outlive the test.
    assert!(args.iter().any(|a| a == "--block"), "{name} runs without --block: {args:?}");
    let mut cmd = Command::new(RL);
    cmd.args(args).env_clear().envs(env.iter().cloned()).env("RL_SESSION_DIR", session);
    Proc::spawn_command(cmd, dir, name)
}

/// The head's arguments with its port replaced by 0 (a free one).
fn head_args(m: &Manifests) -> Vec<String> {
    let mut args = args(m.container("rl-head"));
    for port_flag in ["--port", "--dashboard-port"] {
        let i = args.iter().position(|a| a == port_flag).unwrap_or_else(|| panic!("the head names its {port_flag}"));
        args[i + 1] = "0".into();
    }
    args
}

/// The head as the manifest runs it, on a free port; returns it and its port.
fn start_head(m: &Manifests, token: &str, dir: &Path) -> (Proc, u16) {
    let env = pod_env(m.container("rl-head"), &m.secret(), token);
    let proc = start(&head_args(m), &env, &dir.join("head-session"), dir, "head");
    let address = proc.line("listening on ", Duration::from_secs(60));
    proc.line("ready", Duration::from_secs(60));
    let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    (proc, port.unwrap_or_else(|| panic!("bad address {address:?}")))
}

/// The worker's arguments with the Service's address replaced by the local head's.
fn worker_args(m: &Manifests, port: u16) -> Vec<String> {
    let service = m.head_service();
    let mut worker = args(m.container("rl-worker"));
    let address = worker.iter_mut().find(|a| **a == service).expect("the worker joins the head's Service");
    *address = format!("127.0.0.1:{port}");
    worker
}

/// One row of `rl status`'s node table.
#[derive(Debug)]
struct NodeRow {
    state: String,
    pid: u32,
    role: String,
    /// Total CPUs (the table shows free/total).
    cpus: f64,
}

/// `rl status` against the head's session directory, its node table parsed.
fn status(dir: &Path) -> Vec<NodeRow> {
    let out =
        Command::new(RL).arg("status").env_clear().env("RL_SESSION_DIR", dir.join("head-session")).output().unwrap();
    assert!(out.status.success(), "rl status: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .skip(2)
        .take_while(|l| !l.starts_with("actors:"))
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let total = f[5].split_once('/').unwrap().1;
            NodeRow { state: f[1].into(), pid: f[3].parse().unwrap(), role: f[4].into(), cpus: total.parse().unwrap() }
        })
        .collect()
}

/// Polls `rl status` until `done` holds for its node table, at most `limit`.
fn wait_for_status(dir: &Path, limit: Duration, done: impl Fn(&[NodeRow]) -> bool) -> Vec<NodeRow> {
    let deadline = Instant::now() + limit;
    loop {
        let rows = status(dir);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "rl status did not get there within {limit:?}: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `proc` as Kubernetes stops a pod (SIGTERM) and expects a clean exit within `grace`.
fn terminate(proc: &mut Proc, grace: Duration) {
    // SAFETY: a signal to a child process of this test, which has not been reaped yet.
    let res = unsafe { libc::kill(proc.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(res, 0);
    let status = proc.exit(grace);
    assert!(status.success(), "exit {status} on SIGTERM; stderr: {}", proc.err());
}

/// deploy/Dockerfile.
fn dockerfile() -> String {
    read(&Path::new(ROOT).join("deploy/Dockerfile"))
}

/// The default of the Dockerfile's `ARG name=default`.
fn build_arg(dockerfile: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    let found = instructions(dockerfile, "ARG");
    found.iter().find_map(|a| a.strip_prefix(&prefix).map(str::to_string)).unwrap_or_else(|| panic!("no ARG {name}"))
}

#[test]
fn the_image_builds_this_packages_rl_with_the_workspace_toolchain() {
    let dockerfile = dockerfile();
    assert_eq!(entrypoint(&dockerfile), ["rl"]);
    assert_eq!(build_arg(&dockerfile, "PACKAGE"), env!("CARGO_PKG_NAME"));
    assert_eq!(build_arg(&dockerfile, "BIN"), Path::new(RL).file_name().unwrap().to_str().unwrap());
    let workspace = read(&Path::new(ROOT).join("Cargo.toml"));
    let rust_version = workspace.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    assert_eq!(build_arg(&dockerfile, "RUST_VERSION"), rust_version, "the builder has the workspace's rust-version");
    let build = instructions(&dockerfile, "RUN").join("\n");
    assert!(build.contains(r#"cargo build --release --locked -p "$PACKAGE" --bin "$BIN""#), "{build}");
    let dockerignore = read(&Path::new(ROOT).join(".dockerignore"));
    for pattern in [".git", "**/target", "deploy/k8s/token"] {
        assert!(dockerignore.lines().any(|l| l == pattern), ".dockerignore lacks {pattern}");
    }
}

#[test]
fn every_container_runs_the_one_image_through_its_entrypoint_with_the_token() {
    let m = Manifests::load();
    let entry = entrypoint(&dockerfile());
    let (head, worker, train) = (m.container("rl-head"), m.container("rl-worker"), only_container(&m.job));
    let secret = m.secret();
    for c in [head, worker, train] {
        assert_eq!(c["image"], head["image"], "one image (one build) for every process of a cluster");
        if !c["command"].is_null() {
            assert_eq!(c["command"], serde_json::json!(entry), "{} replaces the entrypoint", c["name"]);
        }
        assert_eq!(pod_env(c, &secret, TOKEN), [("RL_CLUSTER_TOKEN".to_string(), TOKEN.to_string())]);
        assert!(!c["resources"]["limits"]["memory"].is_null(), "{} has a memory limit", c["name"]);
    }
    // No token is committed: the Secret is made from a file git ignores.
    let gitignore = read(&Path::new(ROOT).join(".gitignore"));
    assert!(gitignore.lines().any(|l| l == "/deploy/k8s/token"));
    // Everything lives in the kustomization's namespace.
    let namespace = &m.kustomization["namespace"];
    assert_eq!(m.find("Namespace", namespace.as_str().unwrap())["metadata"]["name"], *namespace);
    for doc in m.docs.iter().chain([&m.job]) {
        assert!(doc["metadata"]["namespace"].is_null(), "the kustomization sets the namespace");
    }
}

#[test]
fn the_head_is_one_foreground_process_behind_its_service() {
    let m = Manifests::load();
    let head = m.container("rl-head");
    let flags = args(head);
    assert_eq!(&flags[..3], ["start", "--head", "--block"]);
    assert_eq!(m.find("Deployment", "rl-head")["spec"]["replicas"], 1);
    let port: u16 = flag(&flags, "--port").unwrap().parse().unwrap();
    let dashboard: u16 = flag(&flags, "--dashboard-port").unwrap().parse().unwrap();
    assert_eq!(
        instructions(&dockerfile(), "EXPOSE"),
        [format!("{port} {dashboard}")],
        "the image exposes the head's port and its dashboard's"
    );
    let container_ports = head["ports"].as_array().unwrap();
    assert_eq!(container_ports.len(), 2);
    assert_eq!(container_ports[0]["containerPort"], port);
    assert_eq!(container_ports[1]["containerPort"], dashboard);
    let port_name = &container_ports[0]["name"];
    assert_eq!(head["readinessProbe"]["tcpSocket"]["port"], *port_name, "ready once it accepts connections");
    let service = m.find("Service", "rl-head");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], *port_name);
    assert_eq!(service["spec"]["ports"][1]["targetPort"], container_ports[1]["name"]);
    assert_eq!(service["spec"]["ports"][1]["port"], dashboard);
    assert_eq!(m.head_service(), format!("rl-head:{port}"));

    // Selectors pick their own pods: the Service the head, each Deployment its template.
    let labels = |d: &str| m.find("Deployment", d)["spec"]["template"]["metadata"]["labels"].clone();
    let subset = |sel: &Value, labels: &Value| sel.as_object().unwrap().iter().all(|(k, v)| labels[k] == *v);
    assert!(subset(&service["spec"]["selector"], &labels("rl-head")));
    assert!(!subset(&service["spec"]["selector"], &labels("rl-worker")));
    for d in ["rl-head", "rl-worker"] {
        assert!(subset(&m.find("Deployment", d)["spec"]["selector"]["matchLabels"], &labels(d)), "{d}");
    }
}

#[test]
fn each_node_offers_actors_the_cpus_its_pod_requests() {
    let m = Manifests::load();
    let (head, worker) = (m.container("rl-head"), m.container("rl-worker"));
    let num_cpus = |c: &Value| flag(&args(c), "--num-cpus").expect("--num-cpus is given").parse::<f64>().unwrap();
    let request = |c: &Value| cpus(&c["resources"]["requests"]["cpu"]);
    // All of a worker's request (and limit); none of the head's, whose request is for its own work.
    assert!(request(worker) >= 1.0);
    assert_eq!(num_cpus(worker), request(worker));
    assert_eq!(cpus(&worker["resources"]["limits"]["cpu"]), request(worker));
    assert_eq!(num_cpus(head), 0.0);
    assert!(request(head) > 0.0, "the head requests CPU for itself and the drivers of submitted jobs");
}

#[test]
fn workers_and_the_training_job_join_the_service() {
    let m = Manifests::load();
    let worker = args(m.container("rl-worker"));
    assert_eq!(worker[0], "start");
    assert!(worker.contains(&"--block".to_string()));
    assert_eq!(flag(&worker, "--address"), Some(&*m.head_service()));
    let train = args(only_container(&m.job));
    assert_eq!(train[0], "train");
    assert_eq!(flag(&train, "--address"), Some(&*m.head_service()));

    // The driver's config is one the Dockerfile copies into the image.
    let config = flag(&train, "--config").unwrap();
    let found = instructions(&dockerfile(), "COPY").into_iter().find_map(|c| {
        let words: Vec<&str> = c.split_whitespace().filter(|w| !w.starts_with("--")).collect();
        let [source, target] = words[..] else { return None };
        let rest = config.strip_prefix(target)?;
        Some(Path::new(ROOT).join(source).join(rest))
    });
    let in_repo = found.expect("the Dockerfile copies the driver's config into the image");
    assert!(in_repo.is_file(), "{} is not in the repository", in_repo.display());
}

#[test]
fn the_head_and_worker_manifests_run_as_a_cluster() {
    let m = Manifests::load();
    let scratch = scratch("deploy-run");
    let dir: PathBuf = scratch.0.clone();
    let (mut head, port) = start_head(&m, TOKEN, &dir);

    let worker = m.container("rl-worker");
    let env = pod_env(worker, &m.secret(), TOKEN);
    let mut node = start(&worker_args(&m, port), &env, &dir.join("worker-session"), &dir, "worker");
    node.line("ready", Duration::from_secs(60));

    // Both ALIVE, the worker with the CPUs its manifest gives it.
    let want = flag(&args(worker), "--num-cpus").unwrap().parse::<f64>().unwrap();
    let node_pid = node.pid();
    let rows =
        wait_for_status(&dir, Duration::from_secs(30), |rows| rows.iter().filter(|r| r.state == "ALIVE").count() == 2);
    let head_row = rows.iter().find(|r| r.role == "head").unwrap();
    assert_eq!((head_row.pid, head_row.cpus), (head.pid(), 0.0));
    let node_row = rows.iter().find(|r| r.role == "node").unwrap();
    assert_eq!((node_row.pid, node_row.cpus), (node_pid, want));

    // Deleting the pods: SIGTERM, and each exits cleanly well within the grace period.
    let grace = |d: &str| {
        let s = &m.find("Deployment", d)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"];
        Duration::from_secs(s.as_u64().unwrap_or(30))
    };
    terminate(&mut node, grace("rl-worker"));
    let rows = wait_for_status(&dir, Duration::from_secs(30), |rows| rows.iter().any(|r| r.state == "DEAD"));
    assert_eq!(rows.iter().find(|r| r.state == "DEAD").unwrap().pid, node_pid, "{rows:?}");
    terminate(&mut head, grace("rl-head"));
}

#[test]
fn a_worker_without_the_token_is_refused() {
    let m = Manifests::load();
    let scratch = scratch("deploy-refuse");
    let dir: PathBuf = scratch.0.clone();
    let (_head, port) = start_head(&m, TOKEN, &dir);
    let args = worker_args(&m, port);

    // No token at all: the node cannot even try.
    let mut none = start(&args, &[], &dir.join("none-session"), &dir, "no-token");
    assert!(!none.exit(Duration::from_secs(30)).success());
    assert!(none.err().contains("no cluster token"), "{}", none.err());

    // Another token: the head refuses it.
    let other = [("RL_CLUSTER_TOKEN".to_string(), "0".repeat(64))];
    let mut wrong = start(&args, &other, &dir.join("wrong-session"), &dir, "wrong-token");
    assert!(!wrong.exit(Duration::from_secs(30)).success());
    assert!(wrong.err().contains("unauthenticated"), "{}", wrong.err());

    // The Secret left as an empty value: the head refuses to start rather than make up a token.
    let empty = pod_env(m.container("rl-head"), &m.secret(), "");
    let mut unset = start(&head_args(&m), &empty, &dir.join("empty-session"), &dir, "empty-head");
    assert!(!unset.exit(Duration::from_secs(30)).success());
    assert!(unset.err().contains("RL_CLUSTER_TOKEN"), "{}", unset.err());

    // Only the head ever joined.
    let rows = status(&dir);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].role, "head");
}
