//! The PPO loss: clipped surrogate, value loss and entropy bonus.
//!
//! With `ratio = exp(logp_new - logp_old)`, advantages `A`, value targets `R`, clip `c`
//! (`clip_param`):
//! - policy loss `mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)))`;
//! - per-sample squared value error `e = (V - R)^2`; with `clip_vloss` (CleanRL's value
//!   clipping) `e = max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)`; with
//!   `vf_clip_param = v` (RLlib's) `e = min(e, v)`;
//! - value loss `mean(e)`;
//! - total `policy - entropy_coeff * mean(entropy) + vf_loss_coeff * value`.
//!
//! `vf_loss_coeff` multiplies the plain mean squared error, as RLlib's `vf_loss_coeff` and SB3's
//! `vf_coef` do; CleanRL's `0.5 * vf_coef` with `vf_coef = 0.5` is `vf_loss_coeff = 0.25`.
//!
//! Diagnostics follow CleanRL: `approx_kl = mean((ratio - 1) - log ratio)` (Schulman's k3
//! estimator) and the fraction of clipped ratios.

use candle_core::{Result, Tensor};

/// Per-sample tensors of one minibatch, all `[B]`.
#[derive(Debug)]
pub struct LossInputs<'a> {
    /// Log-probabilities of the taken actions under the current policy (with gradient).
    pub logp: &'a Tensor,
    /// Policy entropy per sample (with gradient).
    pub entropy: &'a Tensor,
    /// Value estimates under the current parameters (with gradient).
    pub values: &'a Tensor,
    /// Log-probabilities recorded at sampling time.
    pub old_logp: &'a Tensor,
    /// Value estimates recorded at sampling time.
    pub old_values: &'a Tensor,
    /// Advantages (already normalized if configured).
    pub advantages: &'a Tensor,
    /// Value targets.
    pub returns: &'a Tensor,
}

/// Coefficients of the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossCoeffs {
    /// Ratio clip `c`.
    pub clip_param: f64,
    /// CleanRL's value clipping: the value may move at most `c` from its old value, and the
    /// larger of the clipped and unclipped squared errors counts.
    pub clip_vloss: bool,
    /// RLlib's cap on each sample's squared value error, or `None`.
    pub vf_clip_param: Option<f64>,
    /// Entropy bonus weight.
    pub entropy_coeff: f64,
    /// Value loss weight.
    pub vf_loss_coeff: f64,
}

/// The loss tensor to differentiate and its parts as numbers.
#[derive(Debug)]
pub struct LossOutput {
    /// The scalar total loss.
    pub total: Tensor,
    /// Clipped surrogate policy loss.
    pub policy_loss: f32,
    /// Value loss: the mean of the (clipped) squared value errors.
    pub vf_loss: f32,
    /// Mean entropy.
    pub entropy: f32,
    /// k3 estimate of KL(old || new).
    pub approx_kl: f32,
    /// Fraction of samples whose ratio left `[1 - c, 1 + c]`.
    pub clip_fraction: f32,
}

/// Computes the PPO loss of one minibatch.
pub fn ppo_loss(x: &LossInputs<'_>, c: &LossCoeffs) -> Result<LossOutput> {
    let log_ratio = (x.logp - x.old_logp)?;
    let ratio = log_ratio.exp()?;
    let pg1 = (x.advantages.neg()? * &ratio)?;
    let pg2 = (x.advantages.neg()? * ratio.clamp(1.0 - c.clip_param, 1.0 + c.clip_param)?)?;
    let policy_loss = pg1.maximum(&pg2)?.mean_all()?;

    let mut sq_err = (x.values - x.returns)?.sqr()?;
    if c.clip_vloss {
        let cv = c.clip_param;
        let clipped = (x.old_values + (x.values - x.old_values)?.clamp(-cv, cv)?)?;
        sq_err = sq_err.maximum(&(clipped - x.returns)?.sqr()?)?;
    }
    if let Some(cap) = c.vf_clip_param {
        sq_err = sq_err.clamp(0.0, cap)?;
    }
    let vf_loss = sq_err.mean_all()?;
    let entropy = x.entropy.mean_all()?;
    let total = ((&policy_loss - (&entropy * c.entropy_coeff)?)? + (&vf_loss * c.vf_loss_coeff)?)?;

    // Diagnostics, outside the graph.
    let ratio_d = ratio.detach();
    let approx_kl = ((&ratio_d - 1.0)? - log_ratio.detach())?.mean_all()?.to_scalar::<f32>()?;
    let clip_fraction = ((&ratio_d - 1.0)?.abs()?.gt(c.clip_param)?.to_dtype(candle_core::DType::F32)?)
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(LossOutput {
        policy_loss: policy_loss.to_scalar::<f32>()?,
        vf_loss: vf_loss.to_scalar::<f32>()?,
        entropy: entropy.to_scalar::<f32>()?,
        total,
        approx_kl,
        clip_fraction,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    /// Two samples worked by hand, clip 0.5 (policy and CleanRL value clipping), entropy 0.01,
    /// vf_loss_coeff 0.25.
    ///
    /// Sample 0: ratio e^0.5 = 1.6487 (A = 1): -A * ratio = -1.6487, clipped -1.5; max = -1.5.
    /// Sample 1: ratio e^-0.5 = 0.6065 (A = -2): 2 * 0.6065 = 1.2131, clipped 2 * 0.6065 (inside
    /// [0.5, 1.5]); max = 1.2131. Policy loss = (-1.5 + 1.2131) / 2 = -0.14347.
    /// Values: V = (1, 3), V_old = (0, 3), R = (2, 2).
    ///   Sample 0: unclipped (1-2)^2 = 1; clipped V = 0 + 0.5 = 0.5, (0.5-2)^2 = 2.25; max 2.25.
    ///   Sample 1: unclipped 1; clipped 3 + 0 = 3, 1; max 1.
    /// Value loss = (2.25 + 1) / 2 = 1.625 (without clip_vloss: (1 + 1) / 2 = 1). Entropy 0.6.
    /// Total = -0.14347 - 0.01 * 0.6 + 0.25 * 1.625.
    #[test]
    fn hand_computed_minibatch() -> Result<()> {
        let inputs = LossInputs {
            logp: &t(&[-0.5, -1.5]),
            entropy: &t(&[0.5, 0.7]),
            values: &t(&[1.0, 3.0]),
            old_logp: &t(&[-1.0, -1.0]),
            old_values: &t(&[0.0, 3.0]),
            advantages: &t(&[1.0, -2.0]),
            returns: &t(&[2.0, 2.0]),
        };
        let coeffs = LossCoeffs {
            clip_param: 0.5,
            clip_vloss: true,
            vf_clip_param: None,
            entropy_coeff: 0.01,
            vf_loss_coeff: 0.25,
        };
        let out = ppo_loss(&inputs, &coeffs)?;
        let policy = (-1.5 + 2.0 * (-0.5f32).exp()) / 2.0;
        close(out.policy_loss, policy);
        close(out.vf_loss, 1.625);
        close(out.entropy, 0.6);
        close(out.total.to_scalar::<f32>()?, policy - 0.01 * 0.6 + 0.25 * 1.625);
        close(out.clip_fraction, 0.5);
        // k3: ((e^0.5 - 1) - 0.5 + (e^-0.5 - 1) + 0.5) / 2
        close(out.approx_kl, ((0.5f32.exp() - 1.0 - 0.5) + ((-0.5f32).exp() - 1.0 + 0.5)) / 2.0);

        // vf_loss_coeff multiplies the plain mean squared error.
        let plain = LossCoeffs { clip_vloss: false, ..coeffs };
        let out = ppo_loss(&inputs, &plain)?;
        close(out.vf_loss, 1.0);
        close(out.total.to_scalar::<f32>()?, policy - 0.01 * 0.6 + 0.25 * 1.0);
        Ok(())
    }

    /// RLlib's `vf_clip_param` caps each sample's squared error: errors (1 - 5)^2 = 16 and
    /// (2 - 1)^2 = 1 capped at 4 give (4 + 1) / 2 = 2.5, and the capped sample has no gradient.
    #[test]
    fn vf_clip_param_caps_each_squared_error() -> Result<()> {
        let values = candle_core::Var::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu)?;
        let zeros = t(&[0.0, 0.0]);
        let inputs = LossInputs {
            logp: &zeros,
            entropy: &zeros,
            values: values.as_tensor(),
            old_logp: &zeros,
            old_values: &zeros,
            advantages: &zeros,
            returns: &t(&[5.0, 1.0]),
        };
        let coeffs = LossCoeffs {
            clip_param: 0.2,
            clip_vloss: false,
            vf_clip_param: Some(4.0),
            entropy_coeff: 0.0,
            vf_loss_coeff: 1.0,
        };
        let out = ppo_loss(&inputs, &coeffs)?;
        close(out.vf_loss, 2.5);
        let g = out.total.backward()?.get(values.as_tensor()).unwrap().to_vec1::<f32>()?;
        // d/dV of 0.5 * (V - R)^2 for the uncapped sample: (2 - 1) = 1; the capped one: 0.
        close(g[0], 0.0);
        close(g[1], 1.0);
        let uncapped = ppo_loss(&inputs, &LossCoeffs { vf_clip_param: None, ..coeffs })?;
        close(uncapped.vf_loss, 8.5);
        Ok(())
    }

    /// At ratio 1 the gradient of the policy loss w.r.t. logp is -A / B.
    #[test]
    fn gradient_at_ratio_one() -> Result<()> {
        let logp = candle_core::Var::from_slice(&[-1.0f32, -2.0], 2, &Device::Cpu)?;
        let zeros = t(&[0.0, 0.0]);
        let inputs = LossInputs {
            logp: logp.as_tensor(),
            entropy: &zeros,
            values: &zeros,
            old_logp: &t(&[-1.0, -2.0]),
            old_values: &zeros,
            advantages: &t(&[3.0, -1.0]),
            returns: &zeros,
        };
        let coeffs = LossCoeffs {
            clip_param: 0.2,
            clip_vloss: false,
            vf_clip_param: None,
            entropy_coeff: 0.0,
            vf_loss_coeff: 0.0,
        };
        let grads = ppo_loss(&inputs, &coeffs)?.total.backward()?;
        let g = grads.get(logp.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((g[0] + 1.5).abs() < 1e-6 && (g[1] - 0.5).abs() < 1e-6, "{g:?}");
        Ok(())
    }
}
