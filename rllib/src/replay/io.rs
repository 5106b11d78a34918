//! The replay buffer as safetensors bytes, for checkpoints (`replay_buffer.safetensors`).
//!
//! The format is described on [`ReplayBuffer::to_bytes`].

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::str::FromStr;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{Priorities, PrioritizedReplayConfig, ReplayBuffer, SumTree};
use crate::error::{Error, Result};

/// The replay buffer format written by this version.
const REPLAY_FORMAT_VERSION: u32 = 1;

const UNIFORM: &str = "uniform";
const PRIORITIZED: &str = "prioritized";

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("chunks of 4 bytes"))).collect()
}

/// An [`Error::Format`] about `what`.
pub(super) fn format_error(what: &str, message: String) -> Error {
    Error::Format { path: PathBuf::from(what), line: None, message }
}

impl ReplayBuffer {
    /// Serializes everything (the filled rows, the write position, the leaf priorities, the
    /// maximum priority and the config) as safetensors; [`ReplayBuffer::from_bytes`] restores it
    /// bit for bit.
    ///
    /// Tensors (little-endian), `len` rows in slot order:
    ///
    /// | name         | dtype | shape            | meaning                                      |
    /// |--------------|-------|------------------|----------------------------------------------|
    /// | `obs`        | F32   | `[len, obs_dim]` | observation the action was taken in          |
    /// | `actions`    | F32   | `[len, act_dim]` | the action (a Discrete index as f32)         |
    /// | `rewards`    | F32   | `[len]`          | (n-step) reward                              |
    /// | `next_obs`   | F32   | `[len, obs_dim]` | observation to bootstrap from                |
    /// | `discounts`  | F32   | `[len]`          | `gamma^k`, or 0 after a terminal state       |
    /// | `priorities` | F64   | `[len]`          | `p_i` of each slot (prioritized buffers only) |
    ///
    /// Metadata: `format_version`, `kind` (`uniform` or `prioritized`), `capacity`, `obs_dim`,
    /// `act_dim`, `len`, `pos` (the next slot written); prioritized buffers add `alpha`, `beta`,
    /// `beta_final`, `eps` and `max_priority`, written in Rust's shortest round-trip decimal form.
    /// The sum tree is rebuilt from the leaf priorities, which gives the same tree bit for bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = self.len();
        let mut owned: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            ("obs", Dtype::F32, vec![len, self.obs_dim], f32_bytes(&self.obs)),
            ("actions", Dtype::F32, vec![len, self.act_dim], f32_bytes(&self.actions)),
            ("rewards", Dtype::F32, vec![len], f32_bytes(&self.rewards)),
            ("next_obs", Dtype::F32, vec![len, self.obs_dim], f32_bytes(&self.next_obs)),
            ("discounts", Dtype::F32, vec![len], f32_bytes(&self.discounts)),
        ];
        let mut meta = HashMap::from([
            ("format_version".to_string(), REPLAY_FORMAT_VERSION.to_string()),
            ("kind".to_string(), if self.priorities.is_some() { PRIORITIZED } else { UNIFORM }.to_string()),
            ("capacity".to_string(), self.capacity.to_string()),
            ("obs_dim".to_string(), self.obs_dim.to_string()),
            ("act_dim".to_string(), self.act_dim.to_string()),
            ("len".to_string(), len.to_string()),
            ("pos".to_string(), self.pos.to_string()),
        ]);
        if let Some(p) = &self.priorities {
            let leaves: Vec<u8> = (0..len).flat_map(|i| p.tree.get(i).to_le_bytes()).collect();
            owned.push(("priorities", Dtype::F64, vec![len], leaves));
            let c = &p.config;
            for (key, value) in [
                ("alpha", c.alpha),
                ("beta", c.beta),
                ("beta_final", c.beta_final),
                ("eps", c.eps),
                ("max_priority", p.max_priority),
            ] {
                meta.insert(key.to_string(), value.to_string());
            }
        }
        let views = owned.iter().map(|(name, dtype, shape, data)| {
            (*name, TensorView::new(*dtype, shape.clone(), data).expect("each shape is derived from its own data"))
        });
        safetensors::serialize(views, Some(meta)).expect("in-memory serialization of valid views cannot fail")
    }

    /// Reads [`ReplayBuffer::to_bytes`] output. Every tensor (name, dtype, shape) and metadata
    /// field is checked; errors are [`Error::Format`] naming `what` (a file name) and the field.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let bad = |message: String| format_error(what, message);
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a replay buffer: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a replay buffer: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| -> Result<&str> {
            meta.get(key).map(String::as_str).ok_or_else(|| bad(format!("metadata {key:?} is missing")))
        };
        let number = |key: &str| -> Result<usize> { parse(field(key)?, key, what) };
        let version: u32 = parse(field("format_version")?, "format_version", what)?;
        if version != REPLAY_FORMAT_VERSION {
            return Err(bad(format!("format version {version}, this build reads {REPLAY_FORMAT_VERSION}")));
        }
        let prioritized = match field("kind")? {
            UNIFORM => false,
            PRIORITIZED => true,
            other => return Err(bad(format!("metadata kind {other:?}, expected {UNIFORM:?} or {PRIORITIZED:?}"))),
        };
        let mut keys = vec!["format_version", "kind", "capacity", "obs_dim", "act_dim", "len", "pos"];
        if prioritized {
            keys.extend(["alpha", "beta", "beta_final", "eps", "max_priority"]);
        }
        check_names("metadata", meta.keys().map(String::as_str), &keys, what)?;
        let mut names = vec!["obs", "actions", "rewards", "next_obs", "discounts"];
        if prioritized {
            names.push("priorities");
        }
        check_names("tensors", st.names().into_iter(), &names, what)?;

        let (capacity, obs_dim, act_dim) = (number("capacity")?, number("obs_dim")?, number("act_dim")?);
        let (len, pos) = (number("len")?, number("pos")?);
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(bad(format!(
                "capacity {capacity}, obs_dim {obs_dim} and act_dim {act_dim} must all be at least 1"
            )));
        }
        let expected_pos = if len < capacity { len } else { pos };
        if len > capacity || pos >= capacity || pos != expected_pos {
            return Err(bad(format!(
                "len {len} and pos {pos} do not fit capacity {capacity} (pos is len until the buffer is full)"
            )));
        }
        let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<&[u8]> {
            let t = st.tensor(name).map_err(|e| bad(format!("tensor {name}: {e}")))?;
            if t.dtype() != dtype || t.shape() != shape {
                return Err(bad(format!(
                    "tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data())
        };
        let mut buffer = Self::new(capacity, obs_dim, act_dim, None);
        buffer.obs = f32s(tensor("obs", Dtype::F32, &[len, obs_dim])?);
        buffer.actions = f32s(tensor("actions", Dtype::F32, &[len, act_dim])?);
        buffer.rewards = f32s(tensor("rewards", Dtype::F32, &[len])?);
        buffer.next_obs = f32s(tensor("next_obs", Dtype::F32, &[len, obs_dim])?);
        buffer.discounts = f32s(tensor("discounts", Dtype::F32, &[len])?);
        buffer.pos = pos;
        if prioritized {
            let float = |key: &str| -> Result<f64> { parse(field(key)?, key, what) };
            let config = PrioritizedReplayConfig {
                alpha: float("alpha")?,
                beta: float("beta")?,
                beta_final: float("beta_final")?,
                eps: float("eps")?,
            };
            config.validate().map_err(|message| bad(format!("metadata {message}")))?;
            let max_priority = float("max_priority")?;
            if !(max_priority.is_finite() && max_priority > 0.0) {
                return Err(bad(format!("metadata max_priority must be finite and > 0, got {max_priority}")));
            }
            let mut tree = SumTree::new(capacity);
            let leaves = tensor("priorities", Dtype::F64, &[len])?;
            for (i, chunk) in leaves.chunks_exact(8).enumerate() {
                let p = f64::from_le_bytes(chunk.try_into().expect("chunks of 8 bytes"));
                if !(p.is_finite() && p > 0.0 && p <= max_priority) {
                    return Err(bad(format!("priority {p} of slot {i} is not in (0, max_priority {max_priority}]")));
                }
                tree.set(i, p);
            }
            buffer.priorities = Some(Priorities { config, tree, max_priority });
        }
        Ok(buffer)
    }
}

/// Parses the metadata value `text` of `key`.
pub(super) fn parse<T: FromStr>(text: &str, key: &str, what: &str) -> Result<T> {
    text.parse().map_err(|_| format_error(what, format!("metadata {key} {text:?} is not a valid {}", type_name::<T>())))
}

fn type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Checks that `found` holds exactly the names `expected` (`kind`: `metadata` or `tensors`).
pub(super) fn check_names<'a>(
    kind: &str,
    found: impl Iterator<Item = &'a str>,
    expected: &[&str],
    what: &str,
) -> Result<()> {
    let found: BTreeSet<&str> = found.collect();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    let missing: Vec<&str> = expected.difference(&found).copied().collect();
    let unknown: Vec<&str> = found.difference(&expected).copied().collect();
    if missing.is_empty() && unknown.is_empty() {
        return Ok(());
    }
    Err(format_error(what, format!("{kind}: missing {missing:?}, unknown {unknown:?}")))
}
