//! The inference-only fast path: the policy's weights copied into plain `f32` buffers.
//!
//! Rollouts call the policy once per env step on a handful of observations, where candle's
//! per-op overhead (microseconds per op) dwarfs the arithmetic. [`FastPolicy`] runs the same
//! network as [`ActorCritic::forward`] with row-by-row dense loops over a snapshot of the
//! weights: it reads the observations straight from the caller's `[n, obs_dim]` slice (no copy,
//! no tensor) and writes actions, log-probabilities and values into caller buffers.
//! Take a new snapshot ([`ActorCritic::fast_policy`]) after the weights change.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::config::Activation;
use crate::distributions::{argmax_row, gaussian_log_prob_row, log_softmax_row, sample_categorical_row};
use crate::error::{PolicyError, Result};
use crate::model::{ActionKind, ActorCritic, Dense};

/// A dense layer with its weight stored transposed, `[n_in, n_out]`, so that the inner loop of
/// the matrix-vector product runs over independent outputs and vectorizes.
#[derive(Debug, Clone)]
struct Layer {
    wt: Vec<f32>,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

impl Layer {
    fn from_dense(d: &Dense) -> Result<Self> {
        let (n_out, n_in) = d.w.as_tensor().dims2()?;
        Ok(Self {
            wt: d.w.as_tensor().t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?,
            b: d.b.as_tensor().to_vec1::<f32>()?,
            n_in,
            n_out,
        })
    }

    /// `out = W x + b`, then the activation if given.
    #[inline]
    fn forward(&self, x: &[f32], out: &mut Vec<f32>, act: Option<Activation>) {
        out.clear();
        out.extend_from_slice(&self.b);
        for (xi, col) in x.iter().zip(self.wt.chunks_exact(self.n_out)) {
            for (o, w) in out.iter_mut().zip(col) {
                *o += w * xi;
            }
        }
        if let Some(a) = act {
            out.iter_mut().for_each(|o| *o = a.apply(*o));
        }
        debug_assert_eq!(out.len(), self.n_out);
        debug_assert_eq!(x.len(), self.n_in);
    }
}

/// A snapshot of an [`ActorCritic`] for fast batched inference on the CPU.
#[derive(Debug, Clone)]
pub struct FastPolicy {
    actor: Vec<Layer>,
    critic: Vec<Layer>,
    pi: Layer,
    vf: Layer,
    log_std: Vec<f32>,
    activation: Activation,
    obs_dim: usize,
    kind: ActionKind,
}

/// Scratch buffers for one row.
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    head: Vec<f32>,
}

impl ActorCritic {
    /// Copies the current weights into a [`FastPolicy`].
    pub fn fast_policy(&self) -> Result<FastPolicy> {
        let layers = |ls: &[Dense]| ls.iter().map(Layer::from_dense).collect::<Result<Vec<_>>>();
        Ok(FastPolicy {
            actor: layers(&self.actor)?,
            critic: layers(&self.critic)?,
            pi: Layer::from_dense(&self.pi)?,
            vf: Layer::from_dense(&self.vf)?,
            log_std: match &self.log_std {
                Some(v) => v.as_tensor().to_vec1::<f32>()?,
                None => Vec::new(),
            },
            activation: self.arch.config.fcnet_activation,
            obs_dim: self.arch.obs_dim,
            kind: self.arch.action,
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

    fn scratch(&self) -> Scratch {
        let width = self.actor.iter().map(|l| l.n_out).max().unwrap_or(0).max(self.obs_dim);
        Scratch { a: Vec::with_capacity(width), b: Vec::with_capacity(width), head: Vec::with_capacity(self.pi.n_out) }
    }

    /// Runs `layers` on `x`; the result is left in `s.a`.
    fn trunk(layers: &[Layer], act: Activation, x: &[f32], s: &mut Scratch) {
        s.a.clear();
        s.a.extend_from_slice(x);
        for l in layers {
            l.forward(&s.a, &mut s.b, Some(act));
            std::mem::swap(&mut s.a, &mut s.b);
        }
    }

    /// Policy head into `s.head` and the value of one observation.
    fn row(&self, x: &[f32], s: &mut Scratch) -> f32 {
        Self::trunk(&self.actor, self.activation, x, s);
        self.pi.forward(&s.a, &mut s.head, None);
        let mut v = Vec::with_capacity(1);
        if self.critic.is_empty() {
            self.vf.forward(&s.a, &mut v, None);
        } else {
            Self::trunk(&self.critic, self.activation, x, s);
            self.vf.forward(&s.a, &mut v, None);
        }
        v[0]
    }

    /// For a Discrete policy: acts on `obs` (`[n, obs_dim]`, `n = actions.len()`), sampling
    /// with `rng` or taking the argmax when `deterministic`, and writes each action, its
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
        if !matches!(self.kind, ActionKind::Discrete { .. }) {
            return Err(PolicyError::UnsupportedSpace("act_discrete on a Box policy".into()));
        }
        let n = actions.len();
        check("observations", n * self.obs_dim, obs.len())?;
        check("log-probabilities", n, logp.len())?;
        check("values", n, values.len())?;
        let mut s = self.scratch();
        for (i, x) in obs.chunks_exact(self.obs_dim).enumerate() {
            values[i] = self.row(x, &mut s);
            log_softmax_row(&mut s.head);
            let a = if deterministic { argmax_row(&s.head) } else { sample_categorical_row(&s.head, rng) };
            actions[i] = a as i64;
            logp[i] = s.head[a];
        }
        Ok(())
    }

    /// For a Box policy: like [`FastPolicy::act_discrete`], with `actions` `[n, act_dim]`
    /// (the Gaussian mean when `deterministic`). Actions are not clipped to the space.
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
            return Err(PolicyError::UnsupportedSpace("act_continuous on a Discrete policy".into()));
        };
        let n = values.len();
        check("observations", n * self.obs_dim, obs.len())?;
        check("actions", n * dim, actions.len())?;
        check("log-probabilities", n, logp.len())?;
        let mut s = self.scratch();
        for (i, x) in obs.chunks_exact(self.obs_dim).enumerate() {
            values[i] = self.row(x, &mut s);
            let a = &mut actions[i * dim..(i + 1) * dim];
            for ((ai, m), ls) in a.iter_mut().zip(&s.head).zip(&self.log_std) {
                *ai = if deterministic {
                    *m
                } else {
                    let eps: f32 = rng.sample(StandardNormal);
                    m + ls.exp() * eps
                };
            }
            logp[i] = gaussian_log_prob_row(a, &s.head, &self.log_std);
        }
        Ok(())
    }

    /// Values of observations `[n, obs_dim]`, `n = out.len()`.
    pub fn values(&self, obs: &[f32], out: &mut [f32]) -> Result<()> {
        check("observations", out.len() * self.obs_dim, obs.len())?;
        let mut s = self.scratch();
        let mut v = Vec::with_capacity(1);
        for (i, x) in obs.chunks_exact(self.obs_dim).enumerate() {
            let trunk = if self.critic.is_empty() { &self.actor } else { &self.critic };
            Self::trunk(trunk, self.activation, x, &mut s);
            self.vf.forward(&s.a, &mut v, None);
            out[i] = v[0];
        }
        Ok(())
    }
}
