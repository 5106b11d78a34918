//! Job submission (Ray's `ray job`): `rl job submit|list|status|logs|stop|fetch` against a
//! head's jobs API, and the types both sides share.
//!
//! The head runs each job's driver itself ([`manager::JobManager`]), so a job outlives the shell
//! that submitted it. The client finds the API through the cluster address users already know:
//! the head publishes its dashboard's address in its KV store, under [`DASHBOARD_KEY`]. Requests
//! carry the cluster token as a bearer token, as the dashboard requires.
//!
//! What a submission ships: the config named by `--config`, every file the config names by a
//! relative path that exists beside it, and with `--working-dir DIR` that directory's files; the
//! driver runs in the job's copy of them, with the `--env` variables set.

pub mod manager;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::{ClusterAccess, HeadAccess};

/// The KV key under which the head publishes its dashboard's `HOST:PORT`.
pub const DASHBOARD_KEY: &str = "rl/dashboard";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted; its driver is starting.
    Pending,
    /// Its driver runs.
    Running,
    /// Its driver exited with status 0.
    Succeeded,
    /// Its driver failed (see the record's message).
    Failed,
    /// Stopped by `rl job stop` (or the head stopping).
    Stopped,
}

impl JobState {
    /// Its name, as it travels in JSON (`RUNNING`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }
}

/// A job as the head keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// `job-N`.
    pub id: String,
    /// The name given at submission (else the id).
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// What it runs: `train --config …`.
    pub entrypoint: String,
    /// When it was submitted (ms since the Unix epoch).
    pub submitted_at_ms: u64,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// The driver's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Why it failed or stopped.
    pub message: String,
    /// Its run directory on the head.
    pub run_dir: String,
    /// The environment variables it runs with (its runtime environment).
    pub env: BTreeMap<String, String>,
}

/// What `rl job submit` sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// A name for listings.
    pub name: Option<String>,
    /// The `rl` arguments: `train --config PATH …`, with PATH relative to the working directory.
    pub entrypoint: Vec<String>,
    /// Files by path relative to the job's working directory, base64-encoded.
    pub files: BTreeMap<String, String>,
    /// Environment variables of the driver.
    pub env: BTreeMap<String, String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `rl job …`: which subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Submit a training job to the head, which runs its driver; prints the job id and returns.
    Submit {
        /// A name for `rl job list`.
        #[arg(long)]
        name: Option<String>,
        /// Ship this directory's files as the job's working directory.
        #[arg(long, value_name = "DIR")]
        working_dir: Option<PathBuf>,
        /// An environment variable of the driver (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Wait for the job to end, printing its logs (exit status: the job's).
        #[arg(long)]
        wait: bool,
        /// What to run, after `--`: `train --config FILE [--set KEY=VALUE ...]`.
        #[arg(last = true, required = true)]
        entrypoint: Vec<String>,
    },
    /// List the head's jobs.
    List,
    /// Print one job's state.
    Status {
        /// The job id (`rl job list`).
        id: String,
    },
    /// Print one job's logs.
    Logs {
        /// The job id.
        id: String,
        /// Keep printing until the job ends.
        #[arg(long)]
        follow: bool,
    },
    /// Stop a job (SIGTERM to its driver, SIGKILL after 10 s); its actors and resources go.
    Stop {
        /// The job id.
        id: String,
    },
    /// Copy a job's run directory from the head into DIR.
    Fetch {
        /// The job id.
        id: String,
        /// Where to put it (created; must not hold files of the same names).
        dir: PathBuf,
    },
}

/// A client of one head's jobs API.
pub struct JobClient {
    http: String,
    token: String,
}

impl JobClient {
    /// Finds the head (`--address`, else the session's) and its dashboard's address.
    pub fn connect(address: Option<&str>, access: &ClusterAccess) -> Result<Self> {
        let HeadAccess { address, token, tls } = access.head(address)?;
        let http = rl_runtime::cluster::read_kv(&address, &token, tls.as_ref(), DASHBOARD_KEY)?.with_context(|| {
            format!("the head at {address} serves no jobs API (was it started with --no-dashboard?)")
        })?;
        let http = String::from_utf8(http.to_vec()).context("the head's dashboard address is not text")?;
        // A dashboard on every interface (0.0.0.0) is reached where the head was.
        let http = match http.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_unspecified() => {
                let host = address.rsplit_once(':').map_or(address.as_str(), |(h, _)| h);
                format!("{host}:{}", a.port())
            }
            _ => http,
        };
        Ok(Self { http, token: token.as_str().to_string() })
    }

    /// Sends a request; returns the status code and body.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
        http_request(&self.http, method, path, &self.token, body)
    }

    fn json(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Value> {
        let (code, bytes) = self.request(method, path, body)?;
        let value: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the head answered {code} with: {}", String::from_utf8_lossy(&bytes)))?;
        if !(200..300).contains(&code) {
            bail!("{}", value["error"].as_str().unwrap_or(&value.to_string()));
        }
        Ok(value)
    }

    /// Job `id`'s record.
    pub fn record(&self, id: &str) -> Result<JobRecord> {
        Ok(serde_json::from_value(self.json("GET", &format!("/api/jobs/{id}"), None)?)?)
    }

    /// Prints job `id`'s logs from `offset`; returns the new offset.
    fn print_logs(&self, id: &str, offset: u64, out: &mut dyn Write) -> Result<u64> {
        let (code, bytes) = self.request("GET", &format!("/api/jobs/{id}/logs?offset={offset}"), None)?;
        if code != 200 {
            bail!("cannot read the logs of {id}: {}", String::from_utf8_lossy(&bytes));
        }
        out.write_all(&bytes)?;
        out.flush()?;
        Ok(offset + bytes.len() as u64)
    }

    /// Prints logs until the job ends; returns its final record.
    fn follow(&self, id: &str, out: &mut dyn Write) -> Result<JobRecord> {
        let mut offset = 0;
        loop {
            // Read the state first: logs read after it ended are complete.
            let record = self.record(id)?;
            let before = offset;
            offset = self.print_logs(id, offset, out)?;
            if record.state.is_terminal() && offset == before {
                return Ok(record);
            }
            if offset == before {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// One HTTP/1.1 request to `host:port` with a bearer token; the answer's status and body.
fn http_request(host: &str, method: &str, path: &str, token: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(host).with_context(|| format!("cannot reach the head's jobs API at {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("no answer from {host}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("a malformed HTTP answer")?;
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let code: u16 =
        headers.split(' ').nth(1).and_then(|c| c.parse().ok()).context("an HTTP answer without a status")?;
    let mut payload = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload)?;
    }
    Ok((code, payload))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("a truncated chunk")?;
        let size_text = std::str::from_utf8(&data[..line_end])?.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("a bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("a truncated chunk")?);
        data = data.get(size + 2..).context("a truncated chunk")?;
    }
}

/// Files by path relative to a job's working directory.
type Files = BTreeMap<String, Vec<u8>>;

/// What a submission ships, by path relative to the job's working directory, and the
/// entrypoint with its `--config` pointing into it.
fn pack(entrypoint: &[String], working_dir: Option<&Path>) -> Result<(Vec<String>, Files)> {
    let mut files = BTreeMap::new();
    if let Some(dir) = working_dir {
        add_dir(dir, dir, &mut files)?;
    }
    let mut entrypoint = entrypoint.to_vec();
    let at = entrypoint.iter().position(|a| a == "--config").map(|i| i + 1);
    let Some(config) = at.and_then(|i| entrypoint.get(i)).map(PathBuf::from) else {
        bail!("the entrypoint has no `--config FILE`: {}", entrypoint.join(" "));
    };
    let text = std::fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    // Inside the working directory the config keeps its place; else it goes to its root.
    let rel = working_dir
        .and_then(|d| config.canonicalize().ok()?.strip_prefix(d.canonicalize().ok()?).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from(config.file_name().expect("a file was read")));
    let base = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    files.insert(rel.display().to_string(), text.clone().into_bytes());
    // Files the config names by a relative path that exists beside it.
    let config_dir = config.parent().unwrap_or(Path::new("."));
    let value: Value = serde_saphyr::from_str(&text).with_context(|| format!("{} is not YAML", config.display()))?;
    for s in strings(&value) {
        let p = Path::new(&s);
        if p.is_relative() && !s.contains('\n') && config_dir.join(p).is_file() {
            let data = std::fs::read(config_dir.join(p))?;
            files.insert(base.join(p).display().to_string(), data);
        }
    }
    entrypoint[at.expect("found above")] = rel.display().to_string();
    Ok((entrypoint, files))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn add_dir(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if [".git", "target", "runs"].iter().any(|skip| name == *skip) {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            add_dir(root, &entry.path(), files)?;
        } else if meta.is_file() {
            let rel = entry.path().strip_prefix(root).expect("under root").display().to_string();
            files.insert(rel, std::fs::read(entry.path())?);
        }
        let total: usize = files.values().map(Vec::len).sum();
        if total > manager::MAX_SHIPPED_BYTES {
            bail!(
                "{} holds over {} MiB; ship a smaller working directory",
                root.display(),
                manager::MAX_SHIPPED_BYTES >> 20
            );
        }
    }
    Ok(())
}

/// Runs `rl job …`; returns the process's exit code.
pub fn run(command: JobCommand, address: Option<&str>, access: &ClusterAccess, out: &mut dyn Write) -> Result<i32> {
    let client = JobClient::connect(address, access)?;
    match command {
        JobCommand::Submit { name, working_dir, env, wait, entrypoint } => {
            let (entrypoint, files) = pack(&entrypoint, working_dir.as_deref())?;
            let env = env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .with_context(|| format!("--env {kv:?} is not KEY=VALUE"))
                })
                .collect::<Result<_>>()?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let files = files.into_iter().map(|(k, v)| (k, b64.encode(v))).collect();
            let req = SubmitRequest { name, entrypoint, files, env };
            let record: JobRecord =
                serde_json::from_value(client.json("POST", "/api/jobs", Some(&serde_json::to_vec(&req)?))?)?;
            writeln!(out, "submitted {} ({})", record.id, record.state.name())?;
            writeln!(out, "follow it:  rl job logs {} --follow", record.id)?;
            if !wait {
                return Ok(0);
            }
            let record = client.follow(&record.id, out)?;
            writeln!(out, "{} {}", record.id, record.state.name())?;
            Ok(if record.state == JobState::Succeeded { 0 } else { 1 })
        }
        JobCommand::List => {
            let records: Vec<JobRecord> = serde_json::from_value(client.json("GET", "/api/jobs", None)?)?;
            writeln!(out, "{:<8} {:<10} {:<16} entrypoint", "id", "state", "name")?;
            for r in records {
                writeln!(out, "{:<8} {:<10} {:<16} {}", r.id, r.state.name(), r.name, r.entrypoint)?;
            }
            Ok(0)
        }
        JobCommand::Status { id } => {
            let r = client.record(&id)?;
            writeln!(out, "{} {}", r.id, r.state.name())?;
            if !r.message.is_empty() {
                writeln!(out, "{}", r.message)?;
            }
            Ok(0)
        }
        JobCommand::Logs { id, follow } => {
            if follow {
                client.follow(&id, out)?;
            } else {
                client.print_logs(&id, 0, out)?;
            }
            Ok(0)
        }
        JobCommand::Stop { id } => {
            let r: JobRecord = serde_json::from_value(client.json("POST", &format!("/api/jobs/{id}/stop"), None)?)?;
            writeln!(out, "{} {}", r.id, r.state.name())?;
            Ok(0)
        }
        JobCommand::Fetch { id, dir } => {
            let listing = client.json("GET", &format!("/api/jobs/{id}/files"), None)?;
            let mut n = 0;
            for f in listing.as_array().into_iter().flatten() {
                let rel = f["path"].as_str().context("a file listing without paths")?;
                let (code, bytes) = client.request("GET", &format!("/api/jobs/{id}/files/{rel}"), None)?;
                if code != 200 {
                    bail!("cannot fetch {rel}: {}", String::from_utf8_lossy(&bytes));
                }
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().expect("joined under dir"))?;
                std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
                n += 1;
            }
            writeln!(out, "fetched {n} files of {id} into {}", dir.display())?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_states_name_is_its_json() {
        for s in [JobState::Pending, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Stopped] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
        assert!(dechunk(b"5\r\nab").is_err());
    }

    #[test]
    fn a_submission_ships_the_config_and_the_files_it_names() {
        let dir = std::env::temp_dir().join(format!("rl-job-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/table.csv"), "1,2\n").unwrap();
        std::fs::write(
            dir.join("exp.yaml"),
            "algorithm: PPO\nenv_config:\n  table: data/table.csv\n  other: missing.csv\n",
        )
        .unwrap();
        let config = dir.join("exp.yaml").display().to_string();
        let entry = vec!["train".to_string(), "--config".into(), config, "--set".into(), "lr=1".into()];
        let (entry, files) = pack(&entry, None).unwrap();
        assert_eq!(entry, ["train", "--config", "exp.yaml", "--set", "lr=1"]);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["data/table.csv", "exp.yaml"]);
        assert!(pack(&["train".to_string()], None).unwrap_err().to_string().contains("--config"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
