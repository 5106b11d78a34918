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
//!   ...                   further files an algorithm keeps (a replay buffer, normalizer
//!                         statistics), named by the algorithm: see `AlgorithmState::extra_files`
//! ```
//!
//! A checkpoint is written to a temporary sibling directory and renamed into place, so a crash
//! never leaves a half-written checkpoint under the final name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run_dir::{CHECKPOINTS_DIR, RunDir};

/// Flat `f32` tensors by name.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// The checkpoint layout written by this version.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

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
    /// Each rollout worker's sampling generator, by worker index.
    pub worker_rngs: Vec<(u128, u128)>,
    /// Further files of algorithm state, by file name (a replay buffer, normalizer statistics).
    /// Names must be plain file names that differ from the files above.
    pub extra_files: Vec<(String, Vec<u8>)>,
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
}

/// The files a checkpoint always has; `extra_files` may not reuse these names.
const FILES: [&str; 5] =
    ["metadata.json", "config.yaml", "policy.safetensors", "optimizer.safetensors", "rng_state.json"];

fn pair(x: (u128, u128)) -> [String; 2] {
    [x.0.to_string(), x.1.to_string()]
}

/// Writes a checkpoint to `dir`, replacing one of the same name atomically.
pub fn write_checkpoint(
    dir: &Path,
    metadata: &CheckpointMetadata,
    config: &TrainConfig,
    state: &AlgorithmState,
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
    let write =
        |name: &str, bytes: &[u8]| std::fs::write(tmp.join(name), bytes).map_err(Error::io("write", tmp.join(name)));
    write("metadata.json", (pretty_json("checkpoint metadata", metadata)? + "\n").as_bytes())?;
    let yaml =
        serde_saphyr::to_string(config).map_err(|e| Error::Serialize { what: "the config", message: e.to_string() })?;
    write("config.yaml", yaml.as_bytes())?;
    write("policy.safetensors", &state.policy)?;
    write("optimizer.safetensors", &optimizer_bytes(&state.optimizer))?;
    let rngs =
        RngStates { learner: pair(state.learner_rng), workers: state.worker_rngs.iter().copied().map(pair).collect() };
    write("rng_state.json", (pretty_json("generator states", &rngs)? + "\n").as_bytes())?;
    for (name, bytes) in &state.extra_files {
        write(name, bytes)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io("remove", dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(Error::io("move a checkpoint into", dir))?;
    Ok(dir.to_path_buf())
}

fn pretty_json<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Serialize { what, message: e.to_string() })
}

fn optimizer_bytes(opt: &OptimizerState) -> Vec<u8> {
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
        let metadata: CheckpointMetadata = serde_json::from_slice(&read("metadata.json")?)
            .map_err(|e| Error::Format { path: meta_path.clone(), line: Some(e.line()), message: e.to_string() })?;
        if metadata.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(Error::Format {
                path: meta_path,
                line: None,
                message: format!(
                    "checkpoint format version {}, this build reads version {CHECKPOINT_FORMAT_VERSION}",
                    metadata.format_version
                ),
            });
        }
        let config_path = dir.join("config.yaml");
        let text = std::fs::read_to_string(&config_path).map_err(Error::io("read config", &config_path))?;
        let source = config_path.display().to_string();
        let recorded = TrainConfig::parse_recorded(&text, &source)?;
        if rl_env::spec(&recorded.env).is_err() {
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
        Ok(Self { metadata, config, policy: read("policy.safetensors")? })
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
        let ckpt = write_checkpoint(&dir.join("final"), &meta, &config, &state).unwrap();
        for f in FILES {
            assert!(ckpt.join(f).is_file(), "{f}");
        }
        assert_eq!(std::fs::read(ckpt.join("replay_buffer.safetensors")).unwrap(), b"buffer");
        // Rewriting replaces it whole.
        write_checkpoint(&ckpt, &meta, &config, &AlgorithmState::default()).unwrap();
        assert!(!ckpt.join("replay_buffer.safetensors").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
