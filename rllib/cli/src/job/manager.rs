//! The head's job manager: runs each submitted job's driver (`rl train … --address HEAD`) as a
//! child process, keeps its record, logs and run directory under `SESSION/jobs/ID/`, and serves
//! the jobs API on the dashboard's server.
//!
//! A job's files live in `jobs/ID/`: `job.json` (its record, rewritten on every change), `logs`
//! (the driver's stdout and stderr), `workdir/` (the shipped working directory and config; the
//! driver's current directory) and `run/` (its run directory). The table of all jobs is also
//! mirrored into the head's KV store under [`JOBS_KEY`], where `rl status` reads it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use rl_runtime::Runtime;
use serde_json::json;

use super::{JobRecord, JobState, SubmitRequest, now_ms};
use crate::dashboard::error;
use crate::status::JOBS_KEY;

/// How long `stop` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The most bytes of shipped files one job may carry.
pub const MAX_SHIPPED_BYTES: usize = 64 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Entry {
    record: JobRecord,
    /// The driver's pid while it runs.
    pid: Option<u32>,
    stop_requested: bool,
}

/// The jobs of one head.
pub struct JobManager {
    dir: PathBuf,
    head_address: String,
    session: PathBuf,
    rt: Runtime,
    /// By sequence number (`job-N` is number N), so listings go oldest first.
    jobs: Mutex<BTreeMap<u64, Entry>>,
    /// Notified on every change of a record (a stop waits on it for the driver's end).
    changed: Condvar,
}

/// The sequence number of job id `job-N`.
fn seq(id: &str) -> Option<u64> {
    id.strip_prefix("job-")?.parse().ok()
}

impl JobManager {
    /// A manager keeping its jobs under `session/jobs`, whose drivers join `rt`'s cluster.
    pub fn new(rt: &Runtime, session: &Path) -> Result<Arc<Self>> {
        let dir = session.join("jobs");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let jobs = load_records(&dir);
        let manager = Arc::new(Self {
            dir,
            head_address: rt.address(),
            session: session.to_path_buf(),
            rt: rt.clone(),
            jobs: Mutex::new(jobs),
            changed: Condvar::new(),
        });
        manager.publish();
        Ok(manager)
    }

    /// The run directory of job `id`, if it exists.
    pub fn run_dir(&self, id: &str) -> Option<PathBuf> {
        let known = seq(id).is_some_and(|n| lock(&self.jobs).contains_key(&n));
        known.then(|| self.dir.join(id).join("run"))
    }

    /// Every job's record, oldest first.
    pub fn list(&self) -> Vec<JobRecord> {
        lock(&self.jobs).values().map(|e| e.record.clone()).collect()
    }

    /// Job `id`'s record.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        lock(&self.jobs).get(&seq(id)?).map(|e| e.record.clone())
    }

    /// Accepts a job: writes its files, starts its driver. Returns its record (RUNNING, or
    /// FAILED if the driver could not start).
    pub fn submit(self: &Arc<Self>, req: SubmitRequest) -> Result<JobRecord> {
        let args = driver_args(&req.entrypoint)?;
        // Check everything the request carries before it becomes a job.
        let shipped: usize = req.files.values().map(String::len).sum::<usize>() * 3 / 4;
        if shipped > MAX_SHIPPED_BYTES {
            bail!("the job ships {shipped} bytes of files; at most {MAX_SHIPPED_BYTES} are taken");
        }
        let files = req
            .files
            .iter()
            .map(|(rel, data)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .with_context(|| format!("file {rel:?} is not valid base64"))?;
                Ok((safe_relative(rel)?, bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        // The id and the record, under one lock: concurrent submissions get distinct ids.
        let (id, job_dir) = {
            let mut jobs = lock(&self.jobs);
            let seq = jobs.keys().next_back().map_or(1, |k| k + 1);
            let id = format!("job-{seq}");
            let job_dir = self.dir.join(&id);
            let record = JobRecord {
                id: id.clone(),
                name: req.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| id.clone()),
                state: JobState::Pending,
                entrypoint: req.entrypoint.join(" "),
                submitted_at_ms: now_ms(),
                ended_at_ms: None,
                exit_code: None,
                message: String::new(),
                run_dir: job_dir.join("run").display().to_string(),
                env: req.env.clone(),
            };
            jobs.insert(seq, Entry { record, pid: None, stop_requested: false });
            (id, job_dir)
        };
        let workdir = job_dir.join("workdir");
        let run_dir = job_dir.join("run");
        let written = (|| -> Result<()> {
            for (rel, bytes) in &files {
                let path = workdir.join(rel);
                std::fs::create_dir_all(path.parent().expect("under the working directory"))
                    .with_context(|| format!("cannot create the directory of {}", path.display()))?;
                std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
            }
            std::fs::create_dir_all(&workdir).with_context(|| format!("cannot create {}", workdir.display()))
        })();
        if let Err(e) = written {
            self.update(&id, |entry| {
                entry.record.state = JobState::Failed;
                entry.record.message = format!("{e:#}");
                entry.record.ended_at_ms = Some(now_ms());
            });
            return Ok(self.get(&id).expect("just inserted"));
        }
        self.save(&id);
        let log_path = job_dir.join("logs");
        let started = (|| -> Result<Child> {
            let log =
                std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
            // The head's own image, even if its file was replaced since: a cluster runs one build.
            let exe = if cfg!(target_os = "linux") {
                PathBuf::from("/proc/self/exe")
            } else {
                std::env::current_exe().context("cannot find the rl executable")?
            };
            let mut cmd = Command::new(exe);
            cmd.args(&args)
                .args(["--address", &self.head_address, "--session-dir"])
                .arg(&self.session)
                .arg("--output")
                .arg(&run_dir)
                .current_dir(&workdir)
                .envs(&req.env)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            // Its own process group, so a terminal's Ctrl-C at the head does not reach it.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.spawn().context("cannot start the job's driver")
        })();
        match started {
            Ok(child) => {
                self.update(&id, |e| {
                    e.pid = Some(child.id());
                    e.record.state = JobState::Running;
                });
                let me = self.clone();
                let job = id.clone();
                std::thread::Builder::new()
                    .name(format!("rl-{id}"))
                    .spawn(move || me.watch(&job, child))
                    .context("cannot start the job's watcher")?;
            }
            Err(e) => self.update(&id, |entry| {
                entry.record.state = JobState::Failed;
                entry.record.message = format!("{e:#}");
                entry.record.ended_at_ms = Some(now_ms());
            }),
        }
        Ok(self.get(&id).expect("just inserted"))
    }

    /// Waits for a job's driver to exit and records how it ended.
    fn watch(&self, id: &str, mut child: Child) {
        let status = child.wait();
        let log = self.dir.join(id).join("logs");
        let last_error = std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().rev().find(|l| l.starts_with("error: ")).map(str::to_string))
            .unwrap_or_default();
        self.update(id, |e| {
            e.pid = None;
            e.record.ended_at_ms = Some(now_ms());
            e.record.exit_code = status.as_ref().ok().and_then(|s| s.code());
            let (state, message) = match &status {
                _ if e.stop_requested => (JobState::Stopped, "stopped by `rl job stop`".to_string()),
                Ok(s) if s.success() => (JobState::Succeeded, String::new()),
                Ok(s) => (
                    JobState::Failed,
                    if last_error.is_empty() { format!("the driver exited with {s}") } else { last_error },
                ),
                Err(err) => (JobState::Failed, format!("cannot wait for the driver: {err}")),
            };
            e.record.state = state;
            e.record.message = message;
        });
        tracing::info!(job = id, "job ended");
    }

    /// Stops job `id`: SIGTERM to its driver (which writes a checkpoint, then leaves the cluster,
    /// stopping its actors), SIGKILL after [`STOP_GRACE`]. Returns its record once it ended.
    pub fn stop(&self, id: &str) -> Result<JobRecord> {
        let pid = {
            let mut jobs = lock(&self.jobs);
            let e = seq(id).and_then(|n| jobs.get_mut(&n)).with_context(|| format!("no job {id:?}"))?;
            if e.record.state.is_terminal() {
                return Ok(e.record.clone());
            }
            e.stop_requested = true;
            e.pid
        };
        if let Some(pid) = pid {
            signal(pid, libc::SIGTERM);
            if !self.wait_ended(id, STOP_GRACE) {
                signal(pid, libc::SIGKILL);
                // SIGKILL ends it at once; its watcher records it.
                self.wait_ended(id, Duration::from_secs(5));
            }
        }
        self.get(id).with_context(|| format!("no job {id:?}"))
    }

    /// Waits up to `limit` for job `id` to end (its watcher to record it); returns whether it did.
    fn wait_ended(&self, id: &str, limit: Duration) -> bool {
        let ended = |jobs: &BTreeMap<u64, Entry>| {
            seq(id).and_then(|n| jobs.get(&n)).is_none_or(|e| e.record.state.is_terminal())
        };
        let jobs = lock(&self.jobs);
        let (jobs, _) = self.changed.wait_timeout_while(jobs, limit, |j| !ended(j)).unwrap_or_else(|e| e.into_inner());
        ended(&jobs)
    }

    /// Stops every running job (the head is stopping).
    pub fn stop_all(&self) {
        let running: Vec<String> =
            lock(&self.jobs).values().filter(|e| !e.record.state.is_terminal()).map(|e| e.record.id.clone()).collect();
        for id in running {
            if let Err(e) = self.stop(&id) {
                tracing::warn!("cannot stop {id}: {e:#}");
            }
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Entry)) {
        if let Some(n) = seq(id)
            && let Some(e) = lock(&self.jobs).get_mut(&n)
        {
            f(e);
        }
        self.changed.notify_all();
        self.save(id);
    }

    /// Writes `job.json` and mirrors the table into the KV store.
    fn save(&self, id: &str) {
        if let Some(record) = self.get(id) {
            let path = self.dir.join(id).join("job.json");
            let text = serde_json::to_string_pretty(&record).expect("records serialize") + "\n";
            if let Err(e) = std::fs::create_dir_all(self.dir.join(id)).and_then(|()| std::fs::write(&path, text)) {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let table = serde_json::to_vec(&self.list()).expect("records serialize");
        if let Err(e) = self.rt.kv_put(JOBS_KEY, table.into(), true) {
            tracing::warn!("cannot publish the job table: {e}");
        }
    }

    /// The jobs API, to merge into the dashboard's (authenticated) server.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/jobs", get(list).post(submit))
            .route("/api/jobs/{id}", get(one))
            .route("/api/jobs/{id}/logs", get(logs))
            .route("/api/jobs/{id}/stop", post(stop))
            .route("/api/jobs/{id}/files", get(files))
            .route("/api/jobs/{id}/files/{*path}", get(file))
            .with_state(self.clone())
    }
}

/// The records of an earlier head's jobs in `dir` (`ID/job.json`). A job that was still pending
/// or running lost its driver with that head: it is recorded as FAILED, saying so.
fn load_records(dir: &Path) -> BTreeMap<u64, Entry> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path().join("job.json");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let mut record: JobRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", path.display());
                continue;
            }
        };
        let Some(n) = seq(&record.id) else { continue };
        if !record.state.is_terminal() {
            record.state = JobState::Failed;
            record.message = "the head stopped while it ran".into();
            record.ended_at_ms.get_or_insert_with(now_ms);
        }
        out.insert(n, Entry { record, pid: None, stop_requested: false });
    }
    out
}

/// The driver's arguments for an entrypoint (`train --config F …`): only `train` runs as a job,
/// and the head chooses where it joins and writes.
fn driver_args(entrypoint: &[String]) -> Result<Vec<String>> {
    match entrypoint.first().map(String::as_str) {
        Some("train") => {}
        Some(other) => bail!("a job runs `rl train …`; got `{other}` (entrypoint: {})", entrypoint.join(" ")),
        None => bail!("the job has no entrypoint; give one after `--`, like `-- train --config ppo.yaml`"),
    }
    for flag in ["--address", "--output", "--session-dir", "--token-file"] {
        if entrypoint.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            bail!("a job's driver gets {flag} from the head; leave it out (fetch the run with `rl job fetch ID DIR`)");
        }
    }
    Ok(entrypoint.to_vec())
}

/// `rel` as a path inside a job's directory: relative, without `..`.
fn safe_relative(rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("shipped file {rel:?} must be a relative path without `..`");
    }
    Ok(p.to_path_buf())
}

#[cfg(unix)]
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this manager started and has not reaped (the watcher reaps it
    // only after it exits, and then clears the pid under the same lock we read it under).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow::anyhow!("the request's task failed: {e}"))?
}

async fn list(State(m): State<Arc<JobManager>>) -> Response {
    axum::Json(m.list()).into_response()
}

async fn one(State(m): State<Arc<JobManager>>, UrlPath(id): UrlPath<String>) -> Response {
    match m.get(&id) {
        Some(r) => axum::Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id:?}")),
    }
}

async fn submit(State(m): State<Arc<JobManager>>, body: Body) -> Response {
    let req: SubmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad job request: {e}")),
    };
    match blocking(move || m.submit(req)).await {
        Ok(r) => (StatusCode::CREATED, axum::Json(r)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn stop(State(m): State<Arc<JobManager>>, UrlPath(id): UrlPath<String>) -> Response {
    match blocking(move || m.stop(&id)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

async fn logs(
    State(m): State<Arc<JobManager>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(record) = m.get(&id) else { return error(StatusCode::NOT_FOUND, format!("no job {id:?}")) };
    let offset: u64 = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let path = m.dir.join(&id).join("logs");
    let read = move || -> Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        f.seek(std::io::SeekFrom::Start(offset))?;
        let mut out = Vec::new();
        f.take(4 << 20).read_to_end(&mut out)?;
        Ok(out)
    };
    match blocking(read).await {
        Ok(bytes) => {
            let headers = [
                (CONTENT_TYPE, "text/plain; charset=utf-8"),
                (axum::http::HeaderName::from_static("x-job-state"), record.state.name()),
            ];
            (headers, bytes).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn files(State(m): State<Arc<JobManager>>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(dir) = m.run_dir(&id) else { return error(StatusCode::NOT_FOUND, format!("no job {id:?}")) };
    match blocking(move || list_files(&dir)).await {
        Ok(files) => {
            axum::Json(json!(files.into_iter().map(|(p, n)| json!({"path": p, "bytes": n})).collect::<Vec<_>>()))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn file(State(m): State<Arc<JobManager>>, UrlPath((id, rel)): UrlPath<(String, String)>) -> Response {
    let Some(dir) = m.run_dir(&id) else { return error(StatusCode::NOT_FOUND, format!("no job {id:?}")) };
    let path = match safe_relative(&rel) {
        Ok(p) => dir.join(p),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    };
    match blocking(move || std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))).await {
        Ok(bytes) => ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

/// Every file under `dir` with its size, as paths relative to it, sorted.
fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", d.display())),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                let rel = entry.path().strip_prefix(dir).expect("under dir").display().to_string();
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_train_runs_and_the_head_chooses_address_and_output() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(driver_args(&args("train --config a.yaml --set lr=1")).is_ok());
        assert!(driver_args(&args("bench")).unwrap_err().to_string().contains("runs `rl train"));
        assert!(driver_args(&[]).unwrap_err().to_string().contains("after `--`"));
        let e = driver_args(&args("train --config a.yaml --output /x")).unwrap_err().to_string();
        assert!(e.contains("--output") && e.contains("rl job fetch"), "{e}");
    }

    #[test]
    fn an_earlier_heads_jobs_are_kept_and_its_running_ones_marked_failed() {
        let dir = std::env::temp_dir().join(format!("rl-job-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let record = |id: &str, state: JobState| JobRecord {
            id: id.into(),
            name: id.into(),
            state,
            entrypoint: "train --config a.yaml".into(),
            submitted_at_ms: 1,
            ended_at_ms: None,
            exit_code: None,
            message: String::new(),
            run_dir: String::new(),
            env: BTreeMap::new(),
        };
        for r in [record("job-1", JobState::Succeeded), record("job-2", JobState::Running)] {
            std::fs::create_dir_all(dir.join(&r.id)).unwrap();
            std::fs::write(dir.join(&r.id).join("job.json"), serde_json::to_string(&r).unwrap()).unwrap();
        }
        std::fs::create_dir_all(dir.join("job-3")).unwrap();
        std::fs::write(dir.join("job-3/job.json"), "{not json").unwrap();
        let loaded = load_records(&dir);
        assert_eq!(loaded.keys().copied().collect::<Vec<_>>(), [1, 2], "the unreadable record is skipped");
        assert_eq!(loaded[&1].record.state, JobState::Succeeded);
        assert_eq!(loaded[&2].record.state, JobState::Failed);
        assert!(loaded[&2].record.message.contains("head stopped") && loaded[&2].record.ended_at_ms.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn job_ids_carry_their_order() {
        assert_eq!(seq("job-12"), Some(12));
        assert!(seq("job-2") < seq("job-10"), "job-10 lists after job-2");
        assert_eq!(seq("job-"), None);
        assert_eq!(seq("12"), None);
    }

    #[test]
    fn shipped_paths_stay_inside_the_job() {
        assert_eq!(safe_relative("configs/a.yaml").unwrap(), PathBuf::from("configs/a.yaml"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
