//! The random streams of a run, each derived from the run seed and a stream number.
//!
//! | stream | used by |
//! |---|---|
//! | [`LEARNER_STREAM`] | the learner's minibatch shuffling |
//! | [`worker_stream`]`(i)` | rollout worker `i`'s action sampling |
//! | [`ACTING_STREAM`] | sampling actions outside training (`rl rollout --sample`) |
//!
//! Env resets are seeded separately (`seed + worker_index * n_envs + i` per sub-env), and the
//! policy's initial weights come from the run seed itself.

use rl_env::rng::{Pcg64, SeedSequence};

/// The learner's shuffling stream.
pub const LEARNER_STREAM: u64 = 0;
/// The stream of actions sampled outside training.
pub const ACTING_STREAM: u64 = u64::MAX;

/// The sampling stream of rollout worker `worker_index`.
pub fn worker_stream(worker_index: u32) -> u64 {
    1 + u64::from(worker_index)
}

/// The generator of stream `stream` of a run seeded with `seed`.
pub fn stream_rng(seed: u64, stream: u64) -> Pcg64 {
    Pcg64::from_seed_sequence(&SeedSequence::new(seed.wrapping_mul(0x9e37_79b9).wrapping_add(stream)))
}
