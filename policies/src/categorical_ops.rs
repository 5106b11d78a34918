//! Fused candle ops for a categorical policy's log-probability and entropy, with hand-written gradients.
//!
//! Built from primitive ops, `log_softmax` + `gather` + entropy take about a dozen tensor ops and
//! twice that in the backward pass; on the small batches of PPO the per-op overhead dominates.
//! These two ops compute the same values in one pass over `logits` `[batch, n]` (f32, CPU):
//! - [`CategoricalLogProb`]: `log p(a_i)`; gradient `d/dl_j = 1[j = a_i] - p_j`.
//! - [`CategoricalEntropy`]: `H_i = -sum_j p_j log p_j`; gradient `d/dl_j = -p_j (log p_j + H_i)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

fn logits_of<'a>(s: &'a CpuStorage, l: &Layout) -> Result<(&'a [f32], usize, usize)> {
    let CpuStorage::F32(data) = s else { candle_core::bail!("categorical ops need f32 logits") };
    let (b, n) = l.shape().dims2()?;
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("categorical ops need contiguous logits")
    };
    Ok((&data[start..end], b, n))
}

/// Writes the log-softmax of `row` into `out`.
fn log_softmax_into(row: &[f32], out: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + row.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    for (o, l) in out.iter_mut().zip(row) {
        *o = l - lse;
    }
}

/// `log softmax(logits)[i, actions[i]]`, `[batch]`.
#[derive(Debug, Clone, Copy)]
pub struct CategoricalLogProb;

impl CustomOp2 for CategoricalLogProb {
    fn name(&self) -> &'static str {
        "categorical-log-prob"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, b, n) = logits_of(s1, l1)?;
        let CpuStorage::U32(actions) = s2 else { candle_core::bail!("categorical-log-prob needs u32 actions") };
        let Some((a0, a1)) = l2.contiguous_offsets() else { candle_core::bail!("actions must be contiguous") };
        let actions = &actions[a0..a1];
        if actions.len() != b {
            candle_core::bail!("{} actions for {b} rows of logits", actions.len());
        }
        let mut lp = vec![0.0f32; n];
        let mut out = Vec::with_capacity(b);
        for (row, &a) in logits.chunks_exact(n).zip(actions) {
            if a as usize >= n {
                candle_core::bail!("action {a} out of range for {n} logits");
            }
            log_softmax_into(row, &mut lp);
            out.push(lp[a as usize]);
        }
        Ok((CpuStorage::F32(out), Shape::from(b)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        actions: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, n) = logits.dims2()?;
        let l = logits.flatten_all()?.to_vec1::<f32>()?;
        let a = actions.to_vec1::<u32>()?;
        let g = grad.to_vec1::<f32>()?;
        let mut out = vec![0.0f32; b * n];
        let mut lp = vec![0.0f32; n];
        for i in 0..b {
            log_softmax_into(&l[i * n..(i + 1) * n], &mut lp);
            for j in 0..n {
                let onehot = if j == a[i] as usize { 1.0 } else { 0.0 };
                out[i * n + j] = g[i] * (onehot - lp[j].exp());
            }
        }
        Ok((Some(Tensor::from_vec(out, (b, n), logits.device())?), None))
    }
}

/// Entropy of `softmax(logits)` per row, `[batch]`.
#[derive(Debug, Clone, Copy)]
pub struct CategoricalEntropy;

fn entropy_row(lp: &[f32]) -> f32 {
    -lp.iter().map(|l| l.exp() * l).sum::<f32>()
}

impl CustomOp1 for CategoricalEntropy {
    fn name(&self) -> &'static str {
        "categorical-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, b, n) = logits_of(s, l)?;
        let mut lp = vec![0.0f32; n];
        let out: Vec<f32> = logits
            .chunks_exact(n)
            .map(|row| {
                log_softmax_into(row, &mut lp);
                entropy_row(&lp)
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(b)))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, n) = logits.dims2()?;
        let l = logits.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.to_vec1::<f32>()?;
        let mut out = vec![0.0f32; b * n];
        let mut lp = vec![0.0f32; n];
        for i in 0..b {
            log_softmax_into(&l[i * n..(i + 1) * n], &mut lp);
            let h = entropy_row(&lp);
            for j in 0..n {
                out[i * n + j] = -g[i] * lp[j].exp() * (lp[j] + h);
            }
        }
        Ok(Some(Tensor::from_vec(out, (b, n), logits.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::distributions::Categorical;

    /// The fused ops agree with the composition of primitive candle ops, in value and gradient.
    #[test]
    fn match_the_primitive_composition() -> Result<()> {
        let d = Device::Cpu;
        let data: Vec<f32> = (0..15).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.5).collect();
        let actions = Tensor::new(&[2u32, 0, 1, 2, 1], &d)?;
        let weights = Tensor::new(&[0.5f32, -1.0, 2.0, 0.25, 1.5], &d)?;
        let run = |fused: bool| -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
            let x = Var::from_vec(data.clone(), (5, 3), &d)?;
            let (lp, h) = if fused {
                (x.as_tensor().apply_op2(&actions, CategoricalLogProb)?, x.as_tensor().apply_op1(CategoricalEntropy)?)
            } else {
                let c = Categorical::from_logits(x.as_tensor()).unwrap();
                (c.log_prob(&actions).unwrap(), c.entropy().unwrap())
            };
            let loss = ((&lp * &weights)?.sum_all()? + (&h * &weights)?.sum_all()? * 0.3)?;
            let g = loss.backward()?.get(x.as_tensor()).unwrap().flatten_all()?.to_vec1::<f32>()?;
            Ok((lp.to_vec1()?, h.to_vec1()?, g))
        };
        let (a, b) = (run(true)?, run(false)?);
        for (x, y) in [(&a.0, &b.0), (&a.1, &b.1), (&a.2, &b.2)] {
            for (p, q) in x.iter().zip(y.iter()) {
                assert!((p - q).abs() < 1e-5, "{x:?} vs {y:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn out_of_range_action_is_an_error() {
        let d = Device::Cpu;
        let logits = Tensor::zeros((1, 2), candle_core::DType::F32, &d).unwrap();
        let actions = Tensor::new(&[2u32], &d).unwrap();
        assert!(logits.apply_op2(&actions, CategoricalLogProb).is_err());
    }
}
