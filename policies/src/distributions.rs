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
    use crate::test_device;

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    /// Row 0, logits (0, ln 3): p = (1/4, 3/4), log p(1) = ln 3/4 = -0.287682,
    /// entropy = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335, mode 1.
    /// Row 1, logits (2, 2): uniform, log p(0) = ln 1/2 = -0.693147, entropy ln 2, mode 0 (first).
    /// Row 2, logits (5, 5 + ln 3): row 0 shifted by 5, the same distribution.
    fn categorical_closed_form(device: &Device) -> Result<()> {
        let logits = Tensor::new(&[[0.0f32, 3.0f32.ln()], [2.0, 2.0], [5.0, 5.0 + 3.0f32.ln()]], device)?;
        let d = Categorical::from_logits(&logits)?;
        let lp = d.log_prob(&Tensor::new(&[1u32, 0, 1], device)?)?.to_vec1::<f32>()?;
        close(lp[0], -0.287_682);
        close(lp[1], -std::f32::consts::LN_2);
        close(lp[2], -0.287_682);
        let h = d.entropy()?.to_vec1::<f32>()?;
        close(h[0], 0.562_335);
        close(h[1], std::f32::consts::LN_2);
        close(h[2], 0.562_335);
        assert_eq!(d.mode()?.to_vec1::<u32>()?, [1, 0, 1]);
        let p: Vec<Vec<f32>> = d.log_probs().exp()?.to_vec2()?;
        close(p[0][0], 0.25);
        close(p[0][1], 0.75);
        Ok(())
    }

    /// Dimension 0: mean 1, log-std ln 2 (sigma 2), action 3: z = 1,
    /// log p = -1/2 - ln 2 - ln(2 pi)/2 = -0.5 - 0.693147 - 0.918939 = -2.112086.
    /// Dimension 1: standard normal at 0: -0.918939. Sum: -3.031024.
    /// Entropy: (0.5 + 0.918939 + ln 2) + (0.5 + 0.918939) = 2.112086 + 1.418939 = 3.531024.
    fn gaussian_closed_form(device: &Device) -> Result<()> {
        let mean = Tensor::new(&[[1.0f32, 0.0], [-1.0, 0.5]], device)?;
        let log_std = Tensor::new(&[2.0f32.ln(), 0.0], device)?;
        let d = DiagGaussian::new(&mean, &log_std)?;
        let lp = d.log_prob(&Tensor::new(&[[3.0f32, 0.0], [-1.0, 0.5]], device)?)?.to_vec1::<f32>()?;
        close(lp[0], -3.031_024);
        // Row 1 at its mean: -ln 2 - 2 * 0.918939 = -2.531024.
        close(lp[1], -2.531_024);
        let h = d.entropy()?.to_vec1::<f32>()?;
        close(h[0], 3.531_024);
        close(h[1], 3.531_024);
        assert_eq!(d.mode().to_vec2::<f32>()?, [[1.0, 0.0], [-1.0, 0.5]]);
        close(gaussian_log_prob_row(&[3.0, 0.0], &[1.0, 0.0], &[2.0f32.ln(), 0.0]), -3.031_024);
        Ok(())
    }

    /// Same seed, same samples; frequencies and variance follow the distribution.
    fn sampling_is_seeded_and_follows_the_probabilities(device: &Device) -> Result<()> {
        let logits = Tensor::new(&[[0.0f32, 3.0f32.ln()]], device)?.repeat((4000, 1))?;
        let d = Categorical::from_logits(&logits)?;
        let a = d.sample(NpRandom::from_seed(1).bits_mut())?;
        assert_eq!(a, d.sample(NpRandom::from_seed(1).bits_mut())?);
        assert_ne!(a, d.sample(NpRandom::from_seed(2).bits_mut())?);
        let ones = a.iter().filter(|x| **x == 1).count() as f32 / a.len() as f32;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");

        let g =
            DiagGaussian::new(&Tensor::ones((4000, 1), DType::F32, device)?, &Tensor::new(&[0.5f32.ln()], device)?)?;
        let s = g.sample(NpRandom::from_seed(2).bits_mut())?;
        assert_eq!(s, g.sample(NpRandom::from_seed(2).bits_mut())?);
        let mean = s.iter().sum::<f32>() / s.len() as f32;
        let var = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / s.len() as f32;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        assert!((var - 0.25).abs() < 0.02, "{var}");
        Ok(())
    }

    test_device!(categorical_closed_form, categorical_cpu, categorical_cuda);
    test_device!(gaussian_closed_form, gaussian_cpu, gaussian_cuda);
    test_device!(sampling_is_seeded_and_follows_the_probabilities, sampling_cpu, sampling_cuda);

    #[test]
    fn row_helpers_match_the_closed_forms() {
        let mut row = [0.0f32, 3.0f32.ln()];
        log_softmax_row(&mut row);
        close(row[0], 0.25f32.ln());
        close(row[1], 0.75f32.ln());
        assert_eq!(argmax_row(&[0.1, 0.5, 0.5]), 1);
        // A zero-probability action is never drawn.
        let mut rng = NpRandom::from_seed(0);
        for _ in 0..100 {
            assert_eq!(sample_categorical_row(&[0.0, f32::NEG_INFINITY], rng.bits_mut()), 0);
            assert_eq!(sample_categorical_row(&[f32::NEG_INFINITY, 0.0], rng.bits_mut()), 1);
        }
    }
}
