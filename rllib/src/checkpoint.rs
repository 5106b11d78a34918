//! Checkpoint directories: weights, optimizer, generator states, config and metadata.
//!
//! ```text
//! checkpoints/iter_000100/
//!   metadata.json         format_version, algorithm, env, iteration, env steps, policy version
//!   config.yaml           the resolved training config
//!   policy.safetensors    the policy weights (loadable by candle or PyTorch)
//!   optimizer.safetensors Adam moments (m.i, v.i) with the step count in the metadata
//!   rng_state.json        learner shuffle generator and each rollout worker's sampling generator
//! ```
//!
//! A checkpoint is written to a temporary sibling directory and renamed into place, so a crash
//! never leaves a half-written checkpoint under the final name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::learner::LearnerState;

/// Flat `f32` tensors by name.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// The checkpoint layout written by this version.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// Layout version; see [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// `"PPO"`.
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

fn pair(x: (u128, u128)) -> [String; 2] {
    [x.0.to_string(), x.1.to_string()]
}

/// Writes a checkpoint to `dir` (which must not exist yet).
pub fn write_checkpoint(
    dir: &Path,
    metadata: &CheckpointMetadata,
    config: &TrainConfig,
    learner: &LearnerState,
    worker_rngs: &[(u128, u128)],
) -> Result<PathBuf> {
    let parent = dir.parent().context("checkpoint directory has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{}.tmp", dir.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    std::fs::write(tmp.join("metadata.json"), serde_json::to_string_pretty(metadata)? + "\n")?;
    std::fs::write(tmp.join("config.yaml"), serde_saphyr::to_string(config)?)?;
    std::fs::write(tmp.join("policy.safetensors"), &learner.policy)?;
    std::fs::write(tmp.join("optimizer.safetensors"), optimizer_bytes(learner)?)?;
    let rngs = RngStates { learner: pair(learner.rng), workers: worker_rngs.iter().copied().map(pair).collect() };
    std::fs::write(tmp.join("rng_state.json"), serde_json::to_string_pretty(&rngs)? + "\n")?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot move checkpoint into {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

fn optimizer_bytes(learner: &LearnerState) -> Result<Vec<u8>> {
    let raw: Vec<(String, Vec<u8>, usize)> = learner
        .adam_moments
        .iter()
        .map(|(n, v)| (n.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len()))
        .collect();
    let views = raw
        .iter()
        .map(|(n, b, len)| Ok((n.as_str(), TensorView::new(Dtype::F32, vec![*len], b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let meta = HashMap::from([("adam_step".to_string(), learner.adam_step.to_string())]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Reads the Adam step and moments back from `optimizer.safetensors` bytes.
pub fn read_optimizer(bytes: &[u8]) -> Result<(u64, NamedTensors)> {
    let st = SafeTensors::deserialize(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let step = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adam_step"))
        .and_then(|s| s.parse().ok())
        .context("optimizer.safetensors lacks adam_step")?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("optimizer tensor {name} is {:?}, expected F32", view.dtype());
        }
        out.push((name, view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()));
    }
    Ok((step, out))
}

impl Checkpoint {
    /// Loads the parts needed to act: metadata, config and weights.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("checkpoint {} is not a directory", dir.display());
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name)).with_context(|| format!("cannot read {}", dir.join(name).display()))
        };
        let metadata: CheckpointMetadata = serde_json::from_slice(&read("metadata.json")?)
            .with_context(|| format!("invalid {}", dir.join("metadata.json").display()))?;
        if metadata.format_version != CHECKPOINT_FORMAT_VERSION {
            bail!(
                "checkpoint {} has format version {}, this build reads version {CHECKPOINT_FORMAT_VERSION}",
                dir.display(),
                metadata.format_version
            );
        }
        let config_path = dir.join("config.yaml");
        let config = TrainConfig::load(&config_path, &[])?;
        Ok(Self { metadata, config, policy: read("policy.safetensors")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_round_trips() {
        let state = LearnerState {
            policy: vec![],
            adam_step: 42,
            adam_moments: vec![("m.0".into(), vec![1.0, 2.0]), ("v.0".into(), vec![0.5, 0.25])],
            rng: (1, 3),
        };
        let (step, mut moments) = read_optimizer(&optimizer_bytes(&state).unwrap()).unwrap();
        moments.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(step, 42);
        assert_eq!(moments, state.adam_moments);
    }

    #[test]
    fn missing_checkpoint_is_a_clear_error() {
        let err = Checkpoint::load(Path::new("/nonexistent/ckpt")).unwrap_err().to_string();
        assert_eq!(err, "checkpoint /nonexistent/ckpt is not a directory");
    }
}
