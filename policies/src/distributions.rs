//! Action distributions: Categorical (from logits) and diagonal Gaussian (mean, log-std).
//!
//! The tensor types carry gradients for the learner; the `*_row` functions are their plain-`f32`
//! twins for one observation, used by the inference fast path. Both compute the same formulas:
//! - Categorical: `log p = log_softmax(logits)`, entropy `-sum p log p`, mode `argmax`.
//! - Diagonal Gaussian: `log p(a) = sum_i -(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log(2 pi) / 2`,
//!   entropy `sum_i 1/2 + log(2 pi) / 2 + log sigma_i`, mode `mu`.

use candle_core::{D, DType, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::Result;

/// `log(2 pi) / 2`.
const HALF_LOG_2PI: f32 = 0.918_938_5;

/// A batch of categorical distributions.
#[derive(Debug, Clone)]
pub struct Categorical {
    log_probs: Tensor,
}

impl Categorical {
    /// From unnormalized logits `[batch, n]`.
    pub fn from_logits(logits: &Tensor) -> Result<Self> {
        Ok(Self { log_probs: candle_nn::ops::log_softmax(logits, D::Minus1)? })
    }

    /// Normalized log-probabilities `[batch, n]`.
    pub fn log_probs(&self) -> &Tensor {
        &self.log_probs
    }

    /// Log-probability of `actions` (`[batch]`, u32 indices): `[batch]`.
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        let idx = actions.to_dtype(DType::U32)?.unsqueeze(1)?;
        Ok(self.log_probs.gather(&idx, 1)?.squeeze(1)?)
    }

    /// Entropy `[batch]`.
    pub fn entropy(&self) -> Result<Tensor> {
        Ok((self.log_probs.exp()? * &self.log_probs)?.sum(D::Minus1)?.neg()?)
    }

    /// The most likely action of each row, `[batch]` u32.
    pub fn mode(&self) -> Result<Tensor> {
        Ok(self.log_probs.argmax(D::Minus1)?)
    }

    /// One sampled action per row.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Vec<u32>> {
        let rows = self.log_probs.to_vec2::<f32>()?;
        Ok(rows.iter().map(|lp| sample_categorical_row(lp, rng) as u32).collect())
    }
}

/// A batch of diagonal Gaussians sharing one log-std vector.
#[derive(Debug, Clone)]
pub struct DiagGaussian {
    mean: Tensor,
    log_std: Tensor,
}

impl DiagGaussian {
    /// From means `[batch, d]` and log standard deviations `[d]` (broadcast over the batch).
    pub fn new(mean: &Tensor, log_std: &Tensor) -> Result<Self> {
        Ok(Self { mean: mean.clone(), log_std: log_std.broadcast_as(mean.shape())?.contiguous()? })
    }

    /// Log-density of `actions` `[batch, d]`: `[batch]`.
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        let z = ((actions - &self.mean)? / self.log_std.exp()?)?;
        let per_dim = ((z.sqr()? * -0.5)? - &self.log_std)?;
        Ok((per_dim.sum(D::Minus1)? - HALF_LOG_2PI as f64 * self.mean.dim(D::Minus1)? as f64)?)
    }

    /// Entropy `[batch]`.
    pub fn entropy(&self) -> Result<Tensor> {
        let d = self.mean.dim(D::Minus1)? as f64;
        Ok((self.log_std.sum(D::Minus1)? + d * (0.5 + HALF_LOG_2PI as f64))?)
    }

    /// The mean `[batch, d]`.
    pub fn mode(&self) -> &Tensor {
        &self.mean
    }

    /// One sample per row, `[batch, d]` row-major.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Vec<f32>> {
        let mean = self.mean.flatten_all()?.to_vec1::<f32>()?;
        let log_std = self.log_std.flatten_all()?.to_vec1::<f32>()?;
        Ok(mean
            .iter()
            .zip(&log_std)
            .map(|(m, ls)| {
                let eps: f32 = rng.sample(StandardNormal);
                m + ls.exp() * eps
            })
            .collect())
    }
}

/// Normalizes one row of logits into log-probabilities in place (stable log-softmax).
pub fn log_softmax_row(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    logits.iter_mut().for_each(|l| *l -= lse);
}

/// Draws an index from normalized log-probabilities by inverting the CDF with one uniform draw.
pub fn sample_categorical_row<R: Rng + ?Sized>(log_probs: &[f32], rng: &mut R) -> usize {
    let u: f32 = rng.random();
    let mut acc = 0.0f32;
    for (i, lp) in log_probs.iter().enumerate() {
        acc += lp.exp();
        if u < acc {
            return i;
        }
    }
    // Rounding left the total just under 1: take the last action with nonzero probability.
    log_probs.iter().rposition(|lp| lp.is_finite()).unwrap_or(0)
}

/// Index of the largest value (the first one on ties).
pub fn argmax_row(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Log-density of `action` under a diagonal Gaussian.
pub fn gaussian_log_prob_row(action: &[f32], mean: &[f32], log_std: &[f32]) -> f32 {
    action
        .iter()
        .zip(mean)
        .zip(log_std)
        .map(|((a, m), ls)| {
            let z = (a - m) / ls.exp();
            -0.5 * z * z - ls - HALF_LOG_2PI
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rl_env::rng::NpRandom;

    use super::*;

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    /// logits (0, ln 3): p = (1/4, 3/4); log p = (ln 1/4, ln 3/4);
    /// entropy = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335.
    #[test]
    fn categorical_closed_form() -> Result<()> {
        let logits = Tensor::new(&[[0.0f32, 3.0f32.ln()], [2.0, 2.0]], &Device::Cpu)?;
        let d = Categorical::from_logits(&logits)?;
        let lp = d.log_prob(&Tensor::new(&[1u32, 0], &Device::Cpu)?)?.to_vec1::<f32>()?;
        close(lp[0], 0.75f32.ln());
        close(lp[1], 0.5f32.ln());
        let h = d.entropy()?.to_vec1::<f32>()?;
        close(h[0], 0.562_335);
        close(h[1], 2.0f32.ln());
        assert_eq!(d.mode()?.to_vec1::<u32>()?, [1, 0]);
        Ok(())
    }

    /// mean 1, log-std ln 2 (sigma 2), action 3: z = 1, log p = -0.5 - ln 2 - 0.918939 = -2.112086.
    /// Entropy of one dimension: 0.5 + 0.918939 + ln 2 = 2.112086.
    #[test]
    fn gaussian_closed_form() -> Result<()> {
        let mean = Tensor::new(&[[1.0f32, 0.0]], &Device::Cpu)?;
        let log_std = Tensor::new(&[2.0f32.ln(), 0.0], &Device::Cpu)?;
        let d = DiagGaussian::new(&mean, &log_std)?;
        let lp = d.log_prob(&Tensor::new(&[[3.0f32, 0.0]], &Device::Cpu)?)?.to_vec1::<f32>()?;
        // Second dimension: standard normal at 0: -0.918939.
        close(lp[0], -2.112_086 - 0.918_939);
        close(d.entropy()?.to_vec1::<f32>()?[0], 2.112_086 + 1.418_939);
        close(gaussian_log_prob_row(&[3.0, 0.0], &[1.0, 0.0], &[2.0f32.ln(), 0.0]), lp[0]);
        Ok(())
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_probabilities() -> Result<()> {
        let logits = Tensor::new(&[[0.0f32, 3.0f32.ln()]], &Device::Cpu)?.repeat((4000, 1))?;
        let d = Categorical::from_logits(&logits)?;
        let a = d.sample(NpRandom::from_seed(1).bits_mut())?;
        assert_eq!(a, d.sample(NpRandom::from_seed(1).bits_mut())?);
        let ones = a.iter().filter(|x| **x == 1).count() as f32 / a.len() as f32;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");

        let g = DiagGaussian::new(
            &Tensor::zeros((4000, 1), DType::F32, &Device::Cpu)?,
            &Tensor::new(&[0.5f32.ln()], &Device::Cpu)?,
        )?;
        let s = g.sample(NpRandom::from_seed(2).bits_mut())?;
        let var = s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32;
        assert!((var - 0.25).abs() < 0.02, "{var}");
        Ok(())
    }

    #[test]
    fn row_helpers_match_tensor_versions() {
        let mut row = [0.0f32, 3.0f32.ln()];
        log_softmax_row(&mut row);
        close(row[1], 0.75f32.ln());
        assert_eq!(argmax_row(&[0.1, 0.5, 0.5]), 1);
        assert_eq!(sample_categorical_row(&[0.0, f32::NEG_INFINITY], NpRandom::from_seed(0).bits_mut()), 0);
    }
}
