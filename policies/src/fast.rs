//! The inference-only fast path: [`FastPolicy`], a plain-`f32` snapshot of an [`ActorCritic`] for rollouts.
//!
//! Rollouts call the policy once per env step on a handful of observations, where candle's
//! per-op overhead (microseconds per op) dwarfs the arithmetic. [`FastPolicy`] runs the same
//! network as [`ActorCritic::forward`] without candle:
//! - it reads observations straight from the caller's `[n, obs_dim]` slice (no copy, no tensor)
//!   and writes actions, log-probabilities and values into caller buffers;
//! - it processes the batch in blocks of up to [`FAST_BLOCK_ROWS`] rows, running the whole network
//!   on one block so that the activations stay in cache, with the register-tiled kernel
//!   of `kernel.rs`;
//! - on x86-64 the same code is also compiled with AVX2 and with AVX-512F enabled, and the
//!   widest the CPU supports is chosen at run time. All versions compute bitwise the same
//!   numbers (see `kernel.rs`), so the actions drawn for a seed do not depend on the batch
//!   size, the block size or the CPU.
//!
//! Sampling draws from the caller's RNG row by row, in row order: one uniform per row for a
//! Categorical, `act_dim` standard normals per row for a Gaussian.
//!
//! A snapshot does not follow later changes to the candle weights: take a new one
//! ([`ActorCritic::fast_policy`]) after every update.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::config::Activation;
use crate::distributions::{argmax_row, gaussian_log_prob_row, log_softmax_row, sample_categorical_row};
use crate::error::{PolicyError, Result};
use crate::kernel::{DenseF32, TILE_ROWS};
use crate::model::{ActionKind, ActorCritic, Dense};

/// Rows per block of the fast path: the network runs on this many observations at a time.
pub const FAST_BLOCK_ROWS: usize = 32;

/// A snapshot of an [`ActorCritic`] for fast batched inference on the CPU.
#[derive(Debug, Clone)]
pub struct FastPolicy {
    /// The policy trunk, or the shared trunk.
    actor: Vec<DenseF32>,
    /// The value trunk; empty when shared.
    critic: Vec<DenseF32>,
    pi: DenseF32,
    vf: DenseF32,
    /// `[act_dim]` for a Box policy, empty for a Discrete one.
    log_std: Vec<f32>,
    /// `exp(log_std)`.
    std: Vec<f32>,
    activation: Activation,
    obs_dim: usize,
    kind: ActionKind,
    /// The widest hidden layer.
    width: usize,
    isa: Isa,
}

/// The instruction set the block pass is compiled for, chosen once per snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The build's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// x86-64 with AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest variant this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// Which outputs a block pass computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outputs {
    HeadAndValue,
    ValueOnly,
}

/// Per-call working memory, one allocation split in five, sized for blocks of `rows` rows.
struct Scratch {
    buf: Vec<f32>,
    rows: usize,
    width: usize,
    head: usize,
}

/// Borrowed parts of a [`Scratch`].
struct Parts<'a> {
    /// Hidden activations `[block, width]`, two for ping-pong.
    h0: &'a mut [f32],
    h1: &'a mut [f32],
    /// Policy-head outputs `[block, head]`.
    head: &'a mut [f32],
    /// Values `[block]`.
    values: &'a mut [f32],
    /// The kernel's packed input tile.
    pack: &'a mut [f32],
}

impl Scratch {
    /// For blocks of up to `rows` rows, hidden layers up to `width` wide, a head of `head`
    /// outputs, layer inputs up to `max_in` wide.
    fn new(rows: usize, width: usize, head: usize, max_in: usize) -> Self {
        let len = rows * (2 * width + head + 1) + TILE_ROWS * max_in;
        Self { buf: vec![0.0; len], rows, width, head }
    }

    fn parts(&mut self) -> Parts<'_> {
        let (h0, rest) = self.buf.split_at_mut(self.rows * self.width);
        let (h1, rest) = rest.split_at_mut(self.rows * self.width);
        let (head, rest) = rest.split_at_mut(self.rows * self.head);
        let (values, pack) = rest.split_at_mut(self.rows);
        Parts { h0, h1, head, values, pack }
    }
}

pub(crate) fn dense_to_f32(d: &Dense) -> Result<DenseF32> {
    let (n_out, n_in) = d.w.as_tensor().dims2()?;
    let w = d.w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let b = d.b.as_tensor().to_vec1::<f32>()?;
    Ok(DenseF32::from_torch_layout(&w, &b, n_out, n_in))
}

impl ActorCritic {
    /// Copies the current weights into a [`FastPolicy`] (from any device).
    pub fn fast_policy(&self) -> Result<FastPolicy> {
        let layers = |ls: &[Dense]| ls.iter().map(dense_to_f32).collect::<Result<Vec<_>>>();
        let actor = layers(&self.actor)?;
        let log_std = match &self.log_std {
            Some(v) => v.as_tensor().to_vec1::<f32>()?,
            None => Vec::new(),
        };
        Ok(FastPolicy {
            width: actor.iter().map(DenseF32::n_out).max().unwrap_or(0),
            actor,
            critic: layers(&self.critic)?,
            pi: dense_to_f32(&self.pi)?,
            vf: dense_to_f32(&self.vf)?,
            std: log_std.iter().map(|ls| ls.exp()).collect(),
            log_std,
            activation: self.arch.config.fcnet_activation,
            obs_dim: self.arch.obs_dim,
            kind: self.arch.action,
            isa: Isa::detect(),
        })
    }
}

fn check(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(PolicyError::BufferSize { what, expected, got }) }
}

impl FastPolicy {
    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The action head.
    pub fn action_kind(&self) -> ActionKind {
        self.kind
    }

    /// The log standard deviations `[act_dim]` of a Box policy; empty for a Discrete one.
    pub fn log_std(&self) -> &[f32] {
        &self.log_std
    }

    /// Raw network outputs: for observations `[n, obs_dim]`, writes the policy head `[n, k]`
    /// (logits for Discrete, `k = n_actions`; Gaussian means for Box, `k = act_dim`) and the
    /// values `[n]`, with `n = values.len()`.
    pub fn forward(&self, obs: &[f32], head: &mut [f32], values: &mut [f32]) -> Result<()> {
        let (n, k) = (values.len(), self.kind.head_size());
        check("observations", n * self.obs_dim, obs.len())?;
        check("policy head", n * k, head.len())?;
        let mut s = self.scratch(n);
        for (start, rows) in blocks(n) {
            self.block(&obs[start * self.obs_dim..], rows, Outputs::HeadAndValue, &mut s);
            let p = s.parts();
            head[start * k..(start + rows) * k].copy_from_slice(&p.head[..rows * k]);
            values[start..start + rows].copy_from_slice(&p.values[..rows]);
        }
        Ok(())
    }

    /// For a Discrete policy: acts on `obs` (`[n, obs_dim]`, `n = actions.len()`), sampling
    /// with `rng` or taking the most likely action when `deterministic`, and writes each action
    /// (an index in `0..n_actions`, to which the caller adds the space's `start`), its
    /// log-probability and the observation's value.
    pub fn act_discrete<R: Rng + ?Sized>(
        &self,
        obs: &[f32],
        rng: &mut R,
        deterministic: bool,
        actions: &mut [i64],
        logp: &mut [f32],
        values: &mut [f32],
    ) -> Result<()> {
        let ActionKind::Discrete { n: n_actions } = self.kind else {
            return Err(PolicyError::WrongActionKind { op: "act_discrete", needs: "Discrete", kind: self.kind });
        };
        let n = actions.len();
        check("observations", n * self.obs_dim, obs.len())?;
        check("log-probabilities", n, logp.len())?;
        check("values", n, values.len())?;
        let mut s = self.scratch(n);
        for (start, rows) in blocks(n) {
            self.block(&obs[start * self.obs_dim..], rows, Outputs::HeadAndValue, &mut s);
            let p = s.parts();
            values[start..start + rows].copy_from_slice(&p.values[..rows]);
            for (i, lp) in p.head[..rows * n_actions].chunks_exact_mut(n_actions).enumerate() {
                log_softmax_row(lp);
                let a = if deterministic { argmax_row(lp) } else { sample_categorical_row(lp, rng) };
                actions[start + i] = a as i64;
                logp[start + i] = lp[a];
            }
        }
        Ok(())
    }

    /// For a Box policy: like [`FastPolicy::act_discrete`], with `actions` `[n, act_dim]` and
    /// `n = values.len()`; `deterministic` takes the Gaussian mean. Actions are not clipped to
    /// the space: the log-probability is that of the unclipped sample, as PPO needs.
    pub fn act_continuous<R: Rng + ?Sized>(
        &self,
        obs: &[f32],
        rng: &mut R,
        deterministic: bool,
        actions: &mut [f32],
        logp: &mut [f32],
        values: &mut [f32],
    ) -> Result<()> {
        let ActionKind::Continuous { dim } = self.kind else {
            return Err(PolicyError::WrongActionKind { op: "act_continuous", needs: "Box", kind: self.kind });
        };
        let n = values.len();
        check("observations", n * self.obs_dim, obs.len())?;
        check("actions", n * dim, actions.len())?;
        check("log-probabilities", n, logp.len())?;
        let mut s = self.scratch(n);
        for (start, rows) in blocks(n) {
            self.block(&obs[start * self.obs_dim..], rows, Outputs::HeadAndValue, &mut s);
            let p = s.parts();
            values[start..start + rows].copy_from_slice(&p.values[..rows]);
            for (i, mean) in p.head[..rows * dim].chunks_exact(dim).enumerate() {
                let a = &mut actions[(start + i) * dim..(start + i + 1) * dim];
                if deterministic {
                    a.copy_from_slice(mean);
                } else {
                    for ((ai, m), sd) in a.iter_mut().zip(mean).zip(&self.std) {
                        let eps: f32 = rng.sample(StandardNormal);
                        *ai = m + sd * eps;
                    }
                }
                logp[start + i] = gaussian_log_prob_row(a, mean, &self.log_std);
            }
        }
        Ok(())
    }

    /// Values of observations `[n, obs_dim]`, `n = out.len()`; skips the policy head (and the
    /// policy trunk when the trunks are separate).
    pub fn values(&self, obs: &[f32], out: &mut [f32]) -> Result<()> {
        let n = out.len();
        check("observations", n * self.obs_dim, obs.len())?;
        let mut s = self.scratch(n);
        for (start, rows) in blocks(n) {
            self.block(&obs[start * self.obs_dim..], rows, Outputs::ValueOnly, &mut s);
            out[start..start + rows].copy_from_slice(&s.parts().values[..rows]);
        }
        Ok(())
    }

    /// Working memory for a batch of `n` rows.
    fn scratch(&self, n: usize) -> Scratch {
        let layers = self.actor.iter().chain(&self.critic).chain([&self.pi, &self.vf]);
        let max_in = layers.map(DenseF32::n_in).max().unwrap_or(0);
        Scratch::new(n.min(FAST_BLOCK_ROWS), self.width, self.kind.head_size(), max_in)
    }

    /// One block of `rows <= FAST_BLOCK_ROWS` observations (the first `rows * obs_dim` values of
    /// `x`): the head into the scratch head buffer (unless `ValueOnly`), the values into the
    /// scratch values buffer.
    fn block(&self, x: &[f32], rows: usize, outputs: Outputs, s: &mut Scratch) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` chose this variant because the CPU supports AVX-512F.
            Isa::Avx512 => unsafe { self.block_avx512(x, rows, outputs, s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` chose this variant because the CPU supports AVX2.
            Isa::Avx2 => unsafe { self.block_avx2(x, rows, outputs, s) },
            Isa::Portable => self.block_portable(x, rows, outputs, s),
        }
    }

    /// [`FastPolicy::block_portable`] compiled with AVX-512F enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn block_avx512(&self, x: &[f32], rows: usize, outputs: Outputs, s: &mut Scratch) {
        self.block_portable(x, rows, outputs, s);
    }

    /// [`FastPolicy::block_portable`] compiled with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn block_avx2(&self, x: &[f32], rows: usize, outputs: Outputs, s: &mut Scratch) {
        self.block_portable(x, rows, outputs, s);
    }

    #[inline(always)]
    fn block_portable(&self, x: &[f32], rows: usize, outputs: Outputs, s: &mut Scratch) {
        let act = Some(self.activation);
        let Parts { h0, h1, head, values, pack } = s.parts();
        let shared = self.critic.is_empty();
        if outputs == Outputs::HeadAndValue || shared {
            let h = run_trunk(&self.actor, x, rows, act, h0, h1, pack);
            if outputs == Outputs::HeadAndValue {
                self.pi.forward(h, rows, None, head, pack);
            }
            if shared {
                self.vf.forward(h, rows, None, values, pack);
                return;
            }
        }
        let h = run_trunk(&self.critic, x, rows, act, h0, h1, pack);
        self.vf.forward(h, rows, None, values, pack);
    }
}

/// Runs an MLP trunk on `x` `[rows, in]`, ping-ponging between `h0` and `h1`; returns the slice
/// holding the last layer's output.
#[inline(always)]
pub(crate) fn run_trunk<'a>(
    layers: &[DenseF32],
    x: &[f32],
    rows: usize,
    act: Option<Activation>,
    h0: &'a mut [f32],
    h1: &'a mut [f32],
    pack: &mut [f32],
) -> &'a [f32] {
    let (mut cur, mut next) = (h0, h1);
    for (i, l) in layers.iter().enumerate() {
        if i == 0 {
            l.forward(x, rows, act, cur, pack);
        } else {
            l.forward(cur, rows, act, next, pack);
            std::mem::swap(&mut cur, &mut next);
        }
    }
    cur
}

/// `(start, rows)` of consecutive blocks covering `0..n`.
pub(crate) fn blocks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(FAST_BLOCK_ROWS).map(move |start| (start, FAST_BLOCK_ROWS.min(n - start)))
}

#[cfg(test)]
mod tests {
    use rl_env::Space;

    use super::*;
    use crate::config::PolicyConfig;

    /// Every compiled variant that this CPU can run gives bitwise the portable variant's outputs.
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                isas.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
        }
        let obs_space = Space::boxed(vec![-1.0; 5], vec![1.0; 5], vec![5]).unwrap();
        let n = 2 * FAST_BLOCK_ROWS + 5;
        let obs: Vec<f32> = (0..n * 5).map(|i| ((i * 29 % 41) as f32 - 20.0) * 0.1).collect();
        for (shared, act) in [(false, Activation::Tanh), (true, Activation::Relu)] {
            let cfg = PolicyConfig {
                fcnet_hiddens: vec![64, 37],
                fcnet_activation: act,
                vf_share_layers: shared,
                ..Default::default()
            };
            let policy = ActorCritic::new(&cfg, &obs_space, &Space::discrete(3).unwrap(), 1).unwrap();
            let base = policy.fast_policy().unwrap();
            let run = |isa| {
                let fast = FastPolicy { isa, ..base.clone() };
                let (mut head, mut values) = (vec![0.0f32; 3 * n], vec![0.0f32; n]);
                fast.forward(&obs, &mut head, &mut values).unwrap();
                head.iter().chain(&values).map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let want = run(Isa::Portable);
            for isa in &isas {
                assert_eq!(run(*isa), want, "{isa:?}, shared trunk {shared}");
            }
        }
    }
}
