//! Checkpoint directories: weights, optimizer, generator states, config, metadata and whatever
//! else an algorithm needs to continue exactly.
//!
//! ```text
//! checkpoints/iter_000100/
//!   metadata.json         format_version, algorithm, env, iteration, env steps, policy version
//!   config.yaml           the resolved training config
//!   policy.safetensors    the policy weights (loadable by candle or PyTorch)
//!   optimizer.safetensors Adam moments (m.i, v.i) with the step count in the metadata
//!   rng_state.json        learner shuffle generator and each rollout worker's sampling generator
//!   env_runners.json      each env runner's restart count, step count and envs' state (physics,
//!                         generators, episode accumulators) for an exact resume mid-episode
//!   training_state.json   the loop's counters, elapsed time and the 100-episode window
//!   ...                   further files an algorithm keeps (a replay buffer, normalizer
//!                         statistics), named by the algorithm: see `AlgorithmState::extra_files`
//! ```
//!
//! A checkpoint is written to a temporary sibling directory (`.NAME.tmp`), every file synced,
//! and renamed into place, so a crash never leaves a half-written checkpoint under the final
//! name: any directory under a final name is complete. Format versions: 1 (no env runner or loop
//! state: loadable to act, not to resume) and 2 (this build's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::normalization::{ObservationNormalization, RunnerNormalizerState};
use crate::rollout::EnvRunnerState;
use crate::run_dir::{CHECKPOINTS_DIR, RunDir};

/// Flat `f32` tensors by name.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// The checkpoint layout written by this version.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;

/// The oldest layout this version reads (to act on its policy; resuming needs version 2).
pub const OLDEST_READABLE_FORMAT_VERSION: u32 = 1;

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// Layout version; see [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The algorithm's name (`"PPO"`).
    pub algorithm: String,
    /// Env id.
    pub env: String,
    /// Iterations completed.
    pub training_iteration: u64,
    /// Env steps sampled so far.
    pub num_env_steps_sampled_lifetime: u64,
    /// Policy version of the weights.
    pub policy_version: u64,
    /// The library version that wrote it.
    pub library_version: String,
}

/// `rng_state.json`: generator states as decimal strings (128-bit values do not fit JSON numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngStates {
    /// Learner shuffle generator `[state, increment]`.
    pub learner: [String; 2],
    /// Each rollout worker's sampling generator, by worker index.
    pub workers: Vec<[String; 2]>,
}

/// Adam's state: the step count and the moments as named flat tensors (`m.i`, `v.i`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u64,
    /// The moments.
    pub moments: NamedTensors,
}

/// Everything an algorithm hands over to be checkpointed, and gets back to resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmState {
    /// Policy weights (safetensors, with their version).
    pub policy: Vec<u8>,
    /// The version of those weights.
    pub policy_version: u64,
    /// The learner's optimizer.
    pub optimizer: OptimizerState,
    /// The learner's shuffle generator `(state, increment)`.
    pub learner_rng: (u128, u128),
    /// Each env runner's state, by worker index.
    pub env_runners: Vec<EnvRunnerState>,
    /// Sub-environment restarts so far.
    pub num_sub_env_restarts: u64,
    /// Further files of algorithm state, by file name (a replay buffer, normalizer statistics).
    /// Names must be plain file names that differ from the files above.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

/// `training_state.json`: the shared loop's state after the checkpoint's iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingState {
    /// Iterations completed.
    pub training_iteration: u64,
    /// Env steps sampled.
    pub num_env_steps_sampled_lifetime: u64,
    /// Episodes finished.
    pub num_episodes_lifetime: u64,
    /// Wall-clock seconds of training so far.
    pub time_total_s: f64,
    /// The recent-episode window, oldest first: `(return, length)`.
    pub episode_window: Vec<(f64, i64)>,
}

/// `training_state.json`: the loop's state and the run's sub-environment restart count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingFile {
    training: TrainingState,
    num_sub_env_restarts: u64,
}

/// One entry of `env_runners.json` (generator state as decimal strings, like `rng_state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRunnerFile {
    worker_index: u32,
    restarts: u32,
    steps: u64,
    rng: [String; 2],
    /// The vector env's state, or null when its envs cannot save theirs.
    envs: Option<serde_json::Value>,
    /// The runner's normalizers, when the config normalizes (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    normalizers: Option<RunnerNormalizerState>,
}

/// Everything a resume needs, read back from a checkpoint of this format version.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// The algorithm's state.
    pub state: AlgorithmState,
    /// The loop's state.
    pub training: TrainingState,
}

/// A checkpoint loaded from disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Metadata.
    pub metadata: CheckpointMetadata,
    /// The training config it was written with.
    pub config: TrainConfig,
    /// Policy weights (safetensors bytes).
    pub policy: Vec<u8>,
    /// The frozen observation normalization the policy was trained with (`normalization.json`),
    /// when the run normalized observations.
    pub observation_normalization: Option<ObservationNormalization>,
}

/// The files a checkpoint always has; `extra_files` may not reuse these names.
const FILES: [&str; 7] = [
    "metadata.json",
    "config.yaml",
    "policy.safetensors",
    "optimizer.safetensors",
    "rng_state.json",
    "env_runners.json",
    "training_state.json",
];

fn pair(x: (u128, u128)) -> [String; 2] {
    [x.0.to_string(), x.1.to_string()]
}

/// Writes a checkpoint to `dir`, replacing one of the same name atomically (see the module
/// docs). The failpoint `checkpoint.write` fires between the files.
pub fn write_checkpoint(
    dir: &Path,
    metadata: &CheckpointMetadata,
    config: &TrainConfig,
    state: &AlgorithmState,
    training: &TrainingState,
) -> Result<PathBuf> {
    for (name, _) in &state.extra_files {
        let plain = Path::new(name).file_name().is_some_and(|f| f == name.as_str());
        assert!(plain && !FILES.contains(&name.as_str()), "invalid extra checkpoint file name {name:?}");
    }
    let parent = dir.parent().expect("a checkpoint directory has a parent");
    std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    let tmp = parent.join(format!(".{}.tmp", dir.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io("remove", &tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
    let write = |name: &str, bytes: &[u8]| {
        crate::failpoint::hit("checkpoint.write");
        write_synced(&tmp.join(name), bytes)
    };
    write("metadata.json", (pretty_json("checkpoint metadata", metadata)? + "\n").as_bytes())?;
    let yaml = config.to_yaml().map_err(|e| Error::Serialize { what: "the config", message: e.to_string() })?;
    write("config.yaml", yaml.as_bytes())?;
    write("policy.safetensors", &state.policy)?;
    write("optimizer.safetensors", &optimizer_bytes(&state.optimizer))?;
    let rngs = RngStates {
        learner: pair(state.learner_rng),
        workers: state.env_runners.iter().map(|r| pair(r.rng)).collect(),
    };
    write("rng_state.json", (pretty_json("generator states", &rngs)? + "\n").as_bytes())?;
    let runners = state
        .env_runners
        .iter()
        .map(|r| {
            let envs = match &r.envs {
                Some(text) => Some(
                    serde_json::from_str(text)
                        .map_err(|e| Error::Serialize { what: "an env runner's env state", message: e.to_string() })?,
                ),
                None => None,
            };
            Ok(EnvRunnerFile {
                worker_index: r.worker_index,
                restarts: r.restarts,
                steps: r.steps,
                rng: pair(r.rng),
                envs,
                normalizers: r.normalizers.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    write("env_runners.json", (pretty_json("env runner states", &runners)? + "\n").as_bytes())?;
    let training_file = TrainingFile { training: training.clone(), num_sub_env_restarts: state.num_sub_env_restarts };
    write("training_state.json", (pretty_json("the training state", &training_file)? + "\n").as_bytes())?;
    for (name, bytes) in &state.extra_files {
        write(name, bytes)?;
    }
    sync_dir(&tmp)?;
    crate::failpoint::hit("checkpoint.rename");
    if dir.exists() {
        // Move the old one aside first: at every moment one complete checkpoint has the name
        // or is recoverable from its `.old` sibling.
        let old = parent.join(format!(".{}.old", dir.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io("remove", &old))?;
        }
        std::fs::rename(dir, &old).map_err(Error::io("move aside", dir))?;
        std::fs::rename(&tmp, dir).map_err(Error::io("move a checkpoint into", dir))?;
        std::fs::remove_dir_all(&old).map_err(Error::io("remove", &old))?;
    } else {
        std::fs::rename(&tmp, dir).map_err(Error::io("move a checkpoint into", dir))?;
    }
    sync_dir(parent)?;
    Ok(dir.to_path_buf())
}

/// The directory name of iteration `iteration`'s checkpoint: `iter_000100`.
pub fn iteration_checkpoint_name(iteration: u64) -> String {
    format!("iter_{iteration:06}")
}

/// The iteration an iteration checkpoint's directory name stands for; `None` for `final`,
/// hidden directories and anything else.
pub fn checkpoint_iteration(name: &str) -> Option<u64> {
    name.strip_prefix("iter_")?.parse().ok()
}

/// Deletes the oldest iteration checkpoints (`iter_*`) of `run` so that at most `keep` remain
/// (`checkpoint.num_to_keep`). `final` and hidden directories are not counted. Each is first renamed to a hidden `.NAME.del` (atomic),
/// then deleted, so a crash mid-delete never leaves a partial checkpoint under a final name;
/// leftovers of such a crash are deleted on the next call. A directory that cannot be deleted is
/// logged and skipped: retention never fails a run.
pub fn prune_iteration_checkpoints(run: &RunDir, keep: usize) -> Result<()> {
    let dir = run.file(CHECKPOINTS_DIR);
    let mut iterations = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(Error::io("read", &dir))? {
        let path = entry.map_err(Error::io("read", &dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with('.') && name.ends_with(".del") {
            remove_logged(&path);
        } else if let Some(i) = checkpoint_iteration(name) {
            iterations.push((i, path));
        }
    }
    iterations.sort();
    let excess = iterations.len().saturating_sub(keep);
    for (_, path) in iterations.into_iter().take(excess) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let doomed = dir.join(format!(".{name}.del"));
        match std::fs::rename(&path, &doomed) {
            Ok(()) => remove_logged(&doomed),
            Err(e) => tracing::warn!(checkpoint = %path.display(), error = %e, "could not delete an old checkpoint"),
        }
    }
    Ok(())
}

fn remove_logged(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not delete an old checkpoint");
    }
}

/// Writes `bytes` to `path` and syncs them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(Error::io("create", path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io("write", path))
}

/// Syncs a directory's entries (a rename into it) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync", dir))
}

fn pretty_json<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Serialize { what, message: e.to_string() })
}

/// Adam's state as `optimizer.safetensors` bytes (the moments as named F32 tensors, the step in the metadata).
pub fn optimizer_bytes(opt: &OptimizerState) -> Vec<u8> {
    let raw: Vec<(&str, Vec<u8>, usize)> = opt
        .moments
        .iter()
        .map(|(n, v)| (n.as_str(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len()))
        .collect();
    let views = raw.iter().map(|(n, b, len)| {
        (*n, TensorView::new(Dtype::F32, vec![*len], b).expect("the shape is derived from the data"))
    });
    let meta = HashMap::from([("adam_step".to_string(), opt.step.to_string())]);
    safetensors::serialize(views, Some(meta)).expect("in-memory serialization of valid views cannot fail")
}

/// Reads the Adam state back from `optimizer.safetensors` bytes (`path` names them in errors).
pub fn read_optimizer(bytes: &[u8], path: &Path) -> Result<OptimizerState> {
    let bad = |message: String| Error::Format { path: path.to_path_buf(), line: None, message };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let step = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adam_step"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no adam_step in the metadata".into()))?;
    let mut moments = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor {name} is {:?}, expected F32", view.dtype())));
        }
        moments
            .push((name, view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()));
    }
    Ok(OptimizerState { step, moments })
}

impl Checkpoint {
    /// The checkpoint directory `path` names: `path` itself when it holds a checkpoint, or the
    /// final checkpoint of the run directory `path`.
    pub fn resolve(path: &Path) -> Result<PathBuf> {
        if path.join("metadata.json").is_file() {
            return Ok(path.to_path_buf());
        }
        let Ok(run) = RunDir::open(path) else { return Ok(path.to_path_buf()) };
        let last = run.checkpoint_dir("final");
        if last.join("metadata.json").is_file() {
            return Ok(last);
        }
        let written: Vec<String> = std::fs::read_dir(run.file(CHECKPOINTS_DIR))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| !n.starts_with('.'))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let hint = match written.last() {
            Some(name) => format!("pass one of its checkpoints, e.g. {}", run.checkpoint_dir(name).display()),
            None => "it wrote no checkpoint".into(),
        };
        Err(Error::Format {
            path: path.to_path_buf(),
            line: None,
            message: format!("this run directory has no final checkpoint (the run did not finish); {hint}"),
        })
    }

    /// Loads the parts needed to act: metadata, config and weights, from a checkpoint directory
    /// or a run directory (its final checkpoint; see [`Checkpoint::resolve`]). The config is
    /// validated against this build, so an env it does not have is named here.
    pub fn load(path: &Path) -> Result<Self> {
        let dir = &Self::resolve(path)?;
        if !dir.is_dir() {
            return Err(Error::io("open checkpoint", dir)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a directory",
            )));
        }
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(Error::io("read", dir.join(name)));
        let meta_path = dir.join("metadata.json");
        let metadata = read_metadata(dir)?;
        if !(OLDEST_READABLE_FORMAT_VERSION..=CHECKPOINT_FORMAT_VERSION).contains(&metadata.format_version) {
            return Err(Error::Format {
                path: meta_path,
                line: None,
                message: format!(
                    "checkpoint format version {}, this build reads versions {OLDEST_READABLE_FORMAT_VERSION} to \
                     {CHECKPOINT_FORMAT_VERSION}",
                    metadata.format_version
                ),
            });
        }
        let config_path = dir.join("config.yaml");
        let text = std::fs::read_to_string(&config_path).map_err(Error::io("read config", &config_path))?;
        let source = config_path.display().to_string();
        let recorded = TrainConfig::parse_recorded(&text, &source)?;
        if !rl_env::is_bridged(&recorded.env) && rl_env::spec(&recorded.env).is_err() {
            return Err(Error::config(
                source,
                format!(
                    "env {} is not registered in this program: load the checkpoint with the program that \
                     registers it, the binary of the crate that trained the run (`cargo run -- evaluate ...` there)",
                    recorded.env
                ),
            ));
        }
        let config = TrainConfig::parse(&text, &source, &[])?;
        let norm_path = dir.join(ObservationNormalization::FILE);
        let observation_normalization = match std::fs::read(&norm_path) {
            Ok(bytes) => Some(ObservationNormalization::from_json(&bytes, &norm_path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &norm_path)(e)),
        };
        if observation_normalization.is_none() && config.normalizes_observations() {
            return Err(Error::Format {
                path: norm_path,
                line: None,
                message: "missing: the run normalized observations, and its policy needs those statistics to act"
                    .into(),
            });
        }
        Ok(Self { metadata, config, policy: read("policy.safetensors")?, observation_normalization })
    }
}

fn read_metadata(dir: &Path) -> Result<CheckpointMetadata> {
    read_json(&dir.join("metadata.json"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        line: Some(e.line()),
        message: e.to_string(),
    })
}

fn parse_pair(p: &[String; 2], path: &Path, what: &str) -> Result<(u128, u128)> {
    let parse = |s: &String| {
        s.parse::<u128>().map_err(|_| Error::Format {
            path: path.to_path_buf(),
            line: None,
            message: format!("{what}: {s:?} is not a 128-bit generator word"),
        })
    };
    Ok((parse(&p[0])?, parse(&p[1])?))
}

impl ResumePoint {
    /// The newest complete checkpoint of the run directory `run`, by iteration, or `None`.
    /// Temporary directories of interrupted writes (`.NAME.tmp`) are not checkpoints.
    pub fn latest(run: &RunDir) -> Result<Option<PathBuf>> {
        let dir = run.file(CHECKPOINTS_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(None) };
        let mut best: Option<(u64, PathBuf)> = None;
        for entry in entries {
            let path = entry.map_err(Error::io("read", &dir))?.path();
            let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
            if hidden || !path.join("metadata.json").is_file() {
                continue;
            }
            let meta = read_metadata(&path)?;
            if best.as_ref().is_none_or(|(it, _)| meta.training_iteration > *it) {
                best = Some((meta.training_iteration, path));
            }
        }
        Ok(best.map(|(_, p)| p))
    }

    /// Reads everything a resume needs from checkpoint `dir`. Each file is checked; an error
    /// names the file and what is wrong. A checkpoint of format version 1 is refused (it holds
    /// no env runner or loop state), naming both versions.
    pub fn load(dir: &Path) -> Result<Self> {
        let metadata = read_metadata(dir)?;
        if metadata.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(Error::Format {
                path: dir.join("metadata.json"),
                line: None,
                message: format!(
                    "checkpoint format version {} cannot be resumed by this build, which resumes version \
                     {CHECKPOINT_FORMAT_VERSION} (version 1 holds no env runner or loop state; its policy can still \
                     be evaluated)",
                    metadata.format_version
                ),
            });
        }
        let policy_path = dir.join("policy.safetensors");
        let policy = std::fs::read(&policy_path).map_err(Error::io("read", &policy_path))?;
        let version = rl_policies::weights_version(&policy).map_err(|e| Error::Format {
            path: policy_path.clone(),
            line: None,
            message: e.to_string(),
        })?;
        let opt_path = dir.join("optimizer.safetensors");
        let optimizer = read_optimizer(&std::fs::read(&opt_path).map_err(Error::io("read", &opt_path))?, &opt_path)?;
        let rng_path = dir.join("rng_state.json");
        let rngs: RngStates = read_json(&rng_path)?;
        let runners_path = dir.join("env_runners.json");
        let runners: Vec<EnvRunnerFile> = read_json(&runners_path)?;
        let env_runners = runners
            .iter()
            .map(|r| {
                Ok(EnvRunnerState {
                    worker_index: r.worker_index,
                    restarts: r.restarts,
                    rng: parse_pair(&r.rng, &runners_path, &format!("env runner {} rng", r.worker_index))?,
                    steps: r.steps,
                    envs: r.envs.as_ref().map(|v| v.to_string()),
                    normalizers: r.normalizers.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let training_path = dir.join("training_state.json");
        let t: TrainingFile = read_json(&training_path)?;
        let mismatch = |path: &Path, message: String| Error::Format { path: path.to_path_buf(), line: None, message };
        if t.training.training_iteration != metadata.training_iteration {
            return Err(mismatch(
                &training_path,
                format!(
                    "training_iteration {} but metadata.json says {}",
                    t.training.training_iteration, metadata.training_iteration
                ),
            ));
        }
        if version != metadata.policy_version {
            return Err(mismatch(
                &policy_path,
                format!("policy version {version} but metadata.json says {}", metadata.policy_version),
            ));
        }
        let mut extra_files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
            let path = entry.map_err(Error::io("read", dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if !FILES.contains(&name.as_str()) && path.is_file() {
                extra_files.push((name, std::fs::read(&path).map_err(Error::io("read", &path))?));
            }
        }
        extra_files.sort();
        let state = AlgorithmState {
            policy,
            policy_version: metadata.policy_version,
            optimizer,
            learner_rng: parse_pair(&rngs.learner, &rng_path, "learner")?,
            env_runners,
            num_sub_env_restarts: t.num_sub_env_restarts,
            extra_files,
        };
        Ok(Self { dir: dir.to_path_buf(), metadata, state, training: t.training })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_round_trips() {
        let opt =
            OptimizerState { step: 42, moments: vec![("m.0".into(), vec![1.0, 2.0]), ("v.0".into(), vec![0.5, 0.25])] };
        let mut back = read_optimizer(&optimizer_bytes(&opt), Path::new("o.safetensors")).unwrap();
        back.moments.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, opt);
        let err = read_optimizer(b"junk", Path::new("o.safetensors")).unwrap_err().to_string();
        assert!(err.starts_with("o.safetensors: "), "{err}");
    }

    #[test]
    fn missing_checkpoint_is_a_clear_error() {
        let err = Checkpoint::load(Path::new("/nonexistent/ckpt")).unwrap_err().to_string();
        assert_eq!(err, "cannot open checkpoint /nonexistent/ckpt: not a directory");
    }

    #[test]
    fn extra_files_are_written_beside_the_standard_ones() {
        let dir = std::env::temp_dir().join(format!("rllib-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = TrainConfig::parse("env: CartPole-v1\nstop: {training_iteration: 1}\n", "t.yaml", &[]).unwrap();
        let meta = CheckpointMetadata {
            format_version: CHECKPOINT_FORMAT_VERSION,
            algorithm: "PPO".into(),
            env: "CartPole-v1".into(),
            training_iteration: 1,
            num_env_steps_sampled_lifetime: 512,
            policy_version: 1,
            library_version: "test".into(),
        };
        let state = AlgorithmState {
            extra_files: vec![("replay_buffer.safetensors".into(), b"buffer".to_vec())],
            ..Default::default()
        };
        let ckpt = write_checkpoint(&dir.join("final"), &meta, &config, &state, &TrainingState::default()).unwrap();
        for f in FILES {
            assert!(ckpt.join(f).is_file(), "{f}");
        }
        assert_eq!(std::fs::read(ckpt.join("replay_buffer.safetensors")).unwrap(), b"buffer");
        // Rewriting replaces it whole.
        write_checkpoint(&ckpt, &meta, &config, &AlgorithmState::default(), &TrainingState::default()).unwrap();
        assert!(!ckpt.join("replay_buffer.safetensors").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
