//! n-step returns per env stream: consecutive 1-step transitions of one sub-env become n-step
//! transitions before they enter the replay buffer.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ReplayBuffer;
use super::io::format_error;
use crate::error::Result;

/// The n-step state format written by this version.
const NSTEP_FORMAT_VERSION: u32 = 1;

/// One queued 1-step transition; its next observation is the next one's observation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Queued {
    pub(super) obs: Vec<f32>,
    pub(super) action: Vec<f32>,
    pub(super) reward: f32,
}

/// n-step returns per stream (one stream = one sub-env of one rollout worker): turns consecutive
/// 1-step transitions into n-step ones.
///
/// Each stream queues up to `n - 1` transitions waiting for the rewards that follow them. A
/// transition leaves the queue as `(obs_0, action_0, sum_k gamma^k r_k, next_obs, discount)`: after
/// `n` steps with `discount = gamma^n`, or when its episode ends with the rewards it has seen and
/// the final observation, `discount = 0` if the episode terminated and `gamma^k` (k the steps
/// summed) if it was truncated, so a time limit bootstraps from the final observation, never the
/// reset one. Sums and powers are computed in f64 and stored as f32.
///
/// ```
/// use rllib::replay::{NStepAccumulator, ReplayBuffer};
///
/// let mut buffer = ReplayBuffer::new(10, 1, 1, None);
/// let mut nstep = NStepAccumulator::new(2, 0.5, 1);
/// nstep.add(&mut buffer, 0, &[0.0], &[0.0], 1.0, &[1.0], false, false);
/// assert_eq!((buffer.len(), nstep.pending()), (0, 1));
/// nstep.add(&mut buffer, 0, &[1.0], &[0.0], 2.0, &[2.0], false, false);
/// // (obs 0, reward 1 + 0.5 * 2, next_obs 2, discount 0.25) is in the buffer.
/// assert_eq!((buffer.len(), nstep.pending()), (1, 1));
/// nstep.add(&mut buffer, 0, &[2.0], &[0.0], 4.0, &[3.0], true, false);
/// assert_eq!((buffer.len(), nstep.pending()), (3, 0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NStepAccumulator {
    n: usize,
    gamma: f64,
    /// One queue per stream, oldest first, at most `n - 1` long between calls.
    pub(super) queues: Vec<VecDeque<Queued>>,
}

impl NStepAccumulator {
    /// An accumulator of `streams` parallel streams; `n >= 1`, `gamma` in `[0, 1]`.
    ///
    /// # Panics
    ///
    /// On `n == 0`, `streams == 0` or `gamma` outside `[0, 1]` (the config is validated when read).
    pub fn new(n: usize, gamma: f64, streams: usize) -> Self {
        assert!(n >= 1, "n-step returns need n >= 1");
        assert!(streams >= 1, "n-step returns need at least one stream");
        assert!((0.0..=1.0).contains(&gamma), "n-step gamma must be in [0, 1], got {gamma}");
        Self { n, gamma, queues: vec![VecDeque::with_capacity(n); streams] }
    }

    /// The number of steps summed.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The discount factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The number of streams.
    pub fn streams(&self) -> usize {
        self.queues.len()
    }

    /// Adds stream `s`'s next 1-step transition and pushes every n-step transition that became
    /// complete into `buffer`.
    ///
    /// With `n = 1` that is exactly `(obs, action, reward, next_obs, discount)` with
    /// `discount = 0` if `terminated`, else `gamma`. With `n > 1`, once `n` transitions are queued
    /// the oldest leaves with the discounted sum of the `n` rewards, this `next_obs` and
    /// `gamma^n`. When the episode ends (`terminated` or `truncated`) every queued transition
    /// leaves with the rewards that remain, `next_obs` (the final observation) and 0 if
    /// terminated, else `gamma^k` for its `k` remaining steps.
    ///
    /// # Panics
    ///
    /// If `s` is not a stream or a slice length does not match `buffer` (caller bugs).
    #[allow(clippy::too_many_arguments)] // One argument per field of a Gymnasium step.
    pub fn add(
        &mut self,
        buffer: &mut ReplayBuffer,
        s: usize,
        obs: &[f32],
        action: &[f32],
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) {
        assert!(s < self.queues.len(), "n-step stream {s} out of range ({} streams)", self.queues.len());
        assert_eq!(obs.len(), buffer.obs_dim(), "n-step add: obs length");
        assert_eq!(action.len(), buffer.act_dim(), "n-step add: action length");
        assert_eq!(next_obs.len(), buffer.obs_dim(), "n-step add: next_obs length");
        let gamma = self.gamma;
        let queue = &mut self.queues[s];
        queue.push_back(Queued { obs: obs.to_vec(), action: action.to_vec(), reward });
        if terminated || truncated {
            while !queue.is_empty() {
                let discount = if terminated { 0.0 } else { power(gamma, queue.len()) };
                push_oldest(queue, gamma, buffer, next_obs, discount);
            }
        } else if queue.len() == self.n {
            push_oldest(queue, gamma, buffer, next_obs, power(gamma, self.n));
        }
    }

    /// Drops stream `s`'s queued partial transitions (its runner restarted: the continuation is
    /// gone).
    pub fn clear_stream(&mut self, s: usize) {
        assert!(s < self.queues.len(), "n-step stream {s} out of range ({} streams)", self.queues.len());
        self.queues[s].clear();
    }

    /// Queued transitions across streams (0 when `n = 1`).
    pub fn pending(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// The state for checkpoints (`n`, `gamma` and every stream's queue) as JSON, floats of the
    /// queue as their f32 bit patterns; [`NStepAccumulator::from_bytes`] restores it bit for bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect();
        let state = State {
            format_version: NSTEP_FORMAT_VERSION,
            n: self.n,
            gamma: self.gamma,
            streams: self
                .queues
                .iter()
                .map(|q| {
                    q.iter()
                        .map(|t| QueuedBits { obs: bits(&t.obs), action: bits(&t.action), reward: t.reward.to_bits() })
                        .collect()
                })
                .collect(),
        };
        serde_json::to_vec(&state).expect("serializing plain numbers to JSON cannot fail")
    }

    /// Reads [`NStepAccumulator::to_bytes`] output; errors are [`crate::Error::Format`] naming
    /// `what` (a file name) and the field that is wrong.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let bad = |message: String| format_error(what, message);
        let state: State = serde_json::from_slice(bytes).map_err(|e| bad(format!("not an n-step state: {e}")))?;
        if state.format_version != NSTEP_FORMAT_VERSION {
            return Err(bad(format!(
                "format version {}, this build reads {NSTEP_FORMAT_VERSION}",
                state.format_version
            )));
        }
        if state.n == 0 || state.streams.is_empty() || !(0.0..=1.0).contains(&state.gamma) {
            return Err(bad(format!(
                "n {} must be at least 1, gamma {} in [0, 1], and there must be at least one stream",
                state.n, state.gamma
            )));
        }
        let first = state.streams.iter().flatten().next();
        let (obs_dim, act_dim) = first.map_or((0, 0), |t| (t.obs.len(), t.action.len()));
        let mut queues = Vec::with_capacity(state.streams.len());
        for (s, stream) in state.streams.into_iter().enumerate() {
            if stream.len() >= state.n {
                return Err(bad(format!(
                    "stream {s} queues {} transitions; at most n - 1 = {} can wait",
                    stream.len(),
                    state.n - 1
                )));
            }
            let mut queue = VecDeque::with_capacity(state.n);
            for (j, t) in stream.into_iter().enumerate() {
                if t.obs.len() != obs_dim || t.action.len() != act_dim {
                    return Err(bad(format!(
                        "stream {s} transition {j} has obs length {} and action length {}, \
                         the first queued one {obs_dim} and {act_dim}",
                        t.obs.len(),
                        t.action.len()
                    )));
                }
                let floats = |v: Vec<u32>| v.into_iter().map(f32::from_bits).collect();
                queue.push_back(Queued {
                    obs: floats(t.obs),
                    action: floats(t.action),
                    reward: f32::from_bits(t.reward),
                });
            }
            queues.push(queue);
        }
        Ok(Self { n: state.n, gamma: state.gamma, queues })
    }
}

/// `gamma^k` in f64.
fn power(gamma: f64, k: usize) -> f64 {
    gamma.powi(i32::try_from(k).expect("n-step counts are small"))
}

/// Pushes the oldest queued transition with the discounted sum of every queued reward, then
/// removes it.
fn push_oldest(queue: &mut VecDeque<Queued>, gamma: f64, buffer: &mut ReplayBuffer, next_obs: &[f32], discount: f64) {
    let mut ret = 0.0_f64;
    let mut factor = 1.0_f64;
    for t in queue.iter() {
        ret += factor * f64::from(t.reward);
        factor *= gamma;
    }
    let oldest = queue.pop_front().expect("called with a non-empty queue");
    buffer.push(&oldest.obs, &oldest.action, ret as f32, next_obs, discount as f32);
}

/// The serialized state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format_version: u32,
    n: usize,
    gamma: f64,
    /// Each stream's queue, oldest first.
    streams: Vec<Vec<QueuedBits>>,
}

/// A queued transition with its floats as bit patterns.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuedBits {
    obs: Vec<u32>,
    action: Vec<u32>,
    reward: u32,
}
