//! Trajectory batches: what a rollout worker samples, as safetensors bytes in the object store.
//!
//! One batch is one rollout fragment of one worker's vector env, time-major: row
//! `t * n_envs + env`. Tensors (all little-endian):
//!
//! | name               | dtype | shape                | meaning                                        |
//! |--------------------|-------|----------------------|------------------------------------------------|
//! | `obs`              | F32   | `[T*N, obs_dim]`     | observation the action was taken in            |
//! | `next_obs`         | F32   | `[T*N, obs_dim]` or `[0, obs_dim]` | observation after the action (see below) |
//! | `actions`          | I64 / F32 | `[T*N]` / `[T*N, act_dim]` | the action (Discrete / Box)          |
//! | `logp`             | F32   | `[T*N]`              | log-probability of the action when sampled     |
//! | `values`           | F32   | `[T*N]`              | value estimate of `obs`                        |
//! | `rewards`          | F32   | `[T*N]`              | reward                                         |
//! | `terminated`       | U8    | `[T*N]`              | episode reached a terminal state               |
//! | `truncated`        | U8    | `[T*N]`              | episode was cut by the time limit              |
//! | `bootstrap_values` | F32   | `[T*N]`              | value of the final observation where truncated |
//! | `last_values`      | F32   | `[N]`                | value of the observation after the last step   |
//! | `episode_returns`  | F64   | `[E]`                | returns of episodes that ended in the fragment |
//! | `episode_lengths`  | I64   | `[E]`                | their lengths                                  |
//!
//! Metadata: `format_version`, `policy_version`, `n_envs`, `worker_index`.
//!
//! `next_obs` is filled only for the off-policy algorithms, whose replay buffer stores whole
//! transitions (PPO batches leave it empty: consecutive rows already hold it). Where an episode
//! ended it is the final observation, never the reset one, so a truncated transition bootstraps
//! from where the episode was cut. A sub-environment rebuilt after a failure has no final
//! observation: its row is NaN, and the learner does not store that transition.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// The batch format written by this version.
pub const BATCH_FORMAT_VERSION: u32 = 1;

/// Sampled actions of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchActions {
    /// Discrete indices, `[T*N]`.
    Discrete(Vec<i64>),
    /// Continuous actions, `[T*N, act_dim]` row-major.
    Continuous(Vec<f32>),
}

/// One rollout fragment; see the module docs for the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryBatch {
    /// Policy version that sampled it.
    pub policy_version: u64,
    /// Index of the rollout worker.
    pub worker_index: u32,
    /// Sub-envs per time step.
    pub n_envs: usize,
    /// Observation length.
    pub obs_dim: usize,
    /// `[T*N, obs_dim]`.
    pub obs: Vec<f32>,
    /// `[T*N, obs_dim]` for the off-policy algorithms, empty for PPO (see the module docs).
    pub next_obs: Vec<f32>,
    /// Actions.
    pub actions: BatchActions,
    /// `[T*N]`.
    pub logp: Vec<f32>,
    /// `[T*N]`.
    pub values: Vec<f32>,
    /// `[T*N]`.
    pub rewards: Vec<f32>,
    /// `[T*N]`.
    pub terminated: Vec<bool>,
    /// `[T*N]`.
    pub truncated: Vec<bool>,
    /// `[T*N]`.
    pub bootstrap_values: Vec<f32>,
    /// `[N]`.
    pub last_values: Vec<f32>,
    /// `[E]`.
    pub episode_returns: Vec<f64>,
    /// `[E]`.
    pub episode_lengths: Vec<i64>,
}

fn le_bytes<T: Copy, const W: usize>(v: &[T], to: impl Fn(T) -> [u8; W]) -> Vec<u8> {
    v.iter().flat_map(|x| to(*x)).collect()
}

fn from_le<T, const W: usize>(data: &[u8], from: impl Fn([u8; W]) -> T) -> Vec<T> {
    data.chunks_exact(W).map(|c| from(c.try_into().expect("chunks_exact yields W bytes"))).collect()
}

impl TrajectoryBatch {
    /// Env steps in the batch (`T * N`).
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// True for a batch with no steps.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Serializes to safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let rows = self.len();
        let flags = |v: &[bool]| v.iter().map(|b| u8::from(*b)).collect::<Vec<u8>>();
        let mut owned: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "obs",
                Dtype::F32,
                vec![self.obs.len() / self.obs_dim.max(1), self.obs_dim],
                le_bytes(&self.obs, f32::to_le_bytes),
            ),
            (
                "next_obs",
                Dtype::F32,
                vec![self.next_obs.len() / self.obs_dim.max(1), self.obs_dim],
                le_bytes(&self.next_obs, f32::to_le_bytes),
            ),
            ("logp", Dtype::F32, vec![self.logp.len()], le_bytes(&self.logp, f32::to_le_bytes)),
            ("values", Dtype::F32, vec![self.values.len()], le_bytes(&self.values, f32::to_le_bytes)),
            ("rewards", Dtype::F32, vec![self.rewards.len()], le_bytes(&self.rewards, f32::to_le_bytes)),
            ("terminated", Dtype::U8, vec![self.terminated.len()], flags(&self.terminated)),
            ("truncated", Dtype::U8, vec![self.truncated.len()], flags(&self.truncated)),
            (
                "bootstrap_values",
                Dtype::F32,
                vec![self.bootstrap_values.len()],
                le_bytes(&self.bootstrap_values, f32::to_le_bytes),
            ),
            ("last_values", Dtype::F32, vec![self.n_envs], le_bytes(&self.last_values, f32::to_le_bytes)),
            (
                "episode_returns",
                Dtype::F64,
                vec![self.episode_returns.len()],
                le_bytes(&self.episode_returns, f64::to_le_bytes),
            ),
            (
                "episode_lengths",
                Dtype::I64,
                vec![self.episode_lengths.len()],
                le_bytes(&self.episode_lengths, i64::to_le_bytes),
            ),
        ];
        match &self.actions {
            BatchActions::Discrete(a) => {
                owned.push(("actions", Dtype::I64, vec![a.len()], le_bytes(a, i64::to_le_bytes)))
            }
            BatchActions::Continuous(a) => {
                let dim = a.len().checked_div(rows).unwrap_or(0);
                owned.push(("actions", Dtype::F32, vec![a.len() / dim.max(1), dim], le_bytes(a, f32::to_le_bytes)))
            }
        }
        let views: Vec<(&str, TensorView<'_>)> = owned
            .iter()
            .map(|(n, d, s, b)| {
                (*n, TensorView::new(*d, s.clone(), b).expect("each shape is derived from its own data"))
            })
            .collect();
        let metadata = HashMap::from([
            ("format_version".to_string(), BATCH_FORMAT_VERSION.to_string()),
            ("policy_version".to_string(), self.policy_version.to_string()),
            ("n_envs".to_string(), self.n_envs.to_string()),
            ("worker_index".to_string(), self.worker_index.to_string()),
        ]);
        safetensors::serialize(views, Some(metadata)).expect("in-memory serialization of valid views cannot fail")
    }

    /// Parses bytes written by [`TrajectoryBatch::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |message: String| Error::Batch { message };
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |k: &str| -> Result<u64> {
            meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("metadata {k:?} missing or invalid")))
        };
        let version = field("format_version")?;
        if version != u64::from(BATCH_FORMAT_VERSION) {
            return Err(bad(format!("format version {version}, this build reads {BATCH_FORMAT_VERSION}")));
        }
        let tensor = |name: &str, dtype: Dtype| -> Result<TensorView<'_>> {
            let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if t.dtype() != dtype {
                return Err(bad(format!("{name}: dtype {:?}, expected {dtype:?}", t.dtype())));
            }
            Ok(t)
        };
        let f32s = |name: &str| tensor(name, Dtype::F32).map(|t| from_le(t.data(), f32::from_le_bytes));
        let flags = |name: &str| tensor(name, Dtype::U8).map(|t| t.data().iter().map(|b| *b != 0).collect::<Vec<_>>());
        let obs_t = tensor("obs", Dtype::F32)?;
        let [obs_rows, obs_dim] = obs_t.shape()[..] else {
            return Err(bad(format!("obs: shape {:?}, expected [rows, obs_dim]", obs_t.shape())));
        };
        let next_obs_t = tensor("next_obs", Dtype::F32)?;
        let next_obs_rows = match next_obs_t.shape()[..] {
            [rows, dim] if dim == obs_dim => rows,
            _ => return Err(bad(format!("next_obs: shape {:?}, expected [rows, {obs_dim}]", next_obs_t.shape()))),
        };
        let actions_t = st.tensor("actions").map_err(|e| bad(format!("actions: {e}")))?;
        let (actions, actions_rows) = match (actions_t.dtype(), actions_t.shape()) {
            (Dtype::I64, &[rows]) => (BatchActions::Discrete(from_le(actions_t.data(), i64::from_le_bytes)), rows),
            (Dtype::F32, &[rows, _]) => (BatchActions::Continuous(from_le(actions_t.data(), f32::from_le_bytes)), rows),
            (Dtype::I64 | Dtype::F32, shape) => {
                return Err(bad(format!("actions: shape {shape:?}, expected [rows] (I64) or [rows, act_dim] (F32)")));
            }
            (d, _) => return Err(bad(format!("actions: unsupported dtype {d:?}"))),
        };
        let worker_index = field("worker_index")?;
        let worker_index = u32::try_from(worker_index)
            .map_err(|_| bad(format!("metadata worker_index {worker_index} is too large")))?;
        let batch = Self {
            policy_version: field("policy_version")?,
            worker_index,
            n_envs: field("n_envs")? as usize,
            obs_dim,
            obs: from_le(obs_t.data(), f32::from_le_bytes),
            next_obs: from_le(next_obs_t.data(), f32::from_le_bytes),
            actions,
            logp: f32s("logp")?,
            values: f32s("values")?,
            rewards: f32s("rewards")?,
            terminated: flags("terminated")?,
            truncated: flags("truncated")?,
            bootstrap_values: f32s("bootstrap_values")?,
            last_values: f32s("last_values")?,
            episode_returns: tensor("episode_returns", Dtype::F64).map(|t| from_le(t.data(), f64::from_le_bytes))?,
            episode_lengths: tensor("episode_lengths", Dtype::I64).map(|t| from_le(t.data(), i64::from_le_bytes))?,
        };
        let rows = batch.len();
        if batch.n_envs == 0 || !rows.is_multiple_of(batch.n_envs) || batch.last_values.len() != batch.n_envs {
            return Err(bad(format!("{rows} rows do not fit n_envs {}", batch.n_envs)));
        }
        for (name, len) in [
            ("logp", batch.logp.len()),
            ("values", batch.values.len()),
            ("terminated", batch.terminated.len()),
            ("truncated", batch.truncated.len()),
            ("bootstrap_values", batch.bootstrap_values.len()),
            ("obs", obs_rows),
            ("actions", actions_rows),
        ] {
            if len != rows {
                return Err(bad(format!("{name} has {len} rows, rewards has {rows}")));
            }
        }
        if next_obs_rows != 0 && next_obs_rows != rows {
            return Err(bad(format!("next_obs has {next_obs_rows} rows, rewards has {rows} (or 0)")));
        }
        let (returns, lengths) = (batch.episode_returns.len(), batch.episode_lengths.len());
        if returns != lengths {
            return Err(bad(format!("episode_returns has {returns} episodes, episode_lengths has {lengths}")));
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrajectoryBatch {
        TrajectoryBatch {
            policy_version: 7,
            worker_index: 1,
            n_envs: 2,
            obs_dim: 3,
            obs: (0..12).map(|i| i as f32 * 0.5).collect(),
            next_obs: Vec::new(),
            actions: BatchActions::Discrete(vec![0, 1, 1, 0]),
            logp: vec![-0.1, -0.2, -0.3, -0.4],
            values: vec![1.0, 2.0, 3.0, 4.0],
            rewards: vec![1.0; 4],
            terminated: vec![false, true, false, false],
            truncated: vec![false, false, false, true],
            bootstrap_values: vec![0.0, 0.0, 0.0, 5.5],
            last_values: vec![0.25, -0.25],
            episode_returns: vec![12.0, 3.5],
            episode_lengths: vec![12, 4],
        }
    }

    #[test]
    fn round_trips() {
        let b = sample();
        assert_eq!(TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap(), b);
        let mut c = sample();
        c.actions = BatchActions::Continuous(vec![0.5, -0.5, 1.0, 2.0]);
        c.obs_dim = 3;
        assert_eq!(TrajectoryBatch::from_bytes(&c.to_bytes()).unwrap(), c);
        c.next_obs = (0..12).map(|i| i as f32 * -0.25).collect();
        c.next_obs[4] = f32::NAN;
        let back = TrajectoryBatch::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(
            back.next_obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            c.next_obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        c.next_obs.truncate(9);
        let err = TrajectoryBatch::from_bytes(&c.to_bytes()).unwrap_err().to_string();
        assert!(err.contains("next_obs has 3 rows"), "{err}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(TrajectoryBatch::from_bytes(b"not a batch").is_err());
        let mut b = sample();
        b.logp.pop();
        let err = TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap_err().to_string();
        assert!(err.contains("logp has 3 rows"), "{err}");
    }

    /// Found by the batch fuzz target: a batch with fewer actions than rows (or episode returns
    /// without their lengths) was accepted, and the learner would index past its end.
    #[test]
    fn every_tensor_must_have_the_batch_rows() {
        let mut b = sample();
        b.actions = BatchActions::Discrete(vec![0]);
        let err = TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap_err().to_string();
        assert_eq!(err, "trajectory batch: actions has 1 rows, rewards has 4");
        let mut b = sample();
        b.actions = BatchActions::Continuous(vec![0.5; 12]);
        assert_eq!(TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap(), b);
        let mut b = sample();
        b.episode_lengths.pop();
        let err = TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap_err().to_string();
        assert_eq!(err, "trajectory batch: episode_returns has 2 episodes, episode_lengths has 1");
    }
}
