//! Global-norm gradient clipping over candle's `GradStore` (candle has none).

use candle_core::Var;
use candle_core::backprop::GradStore;

use crate::error::Result;

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm`, like
/// `torch.nn.utils.clip_grad_norm_` (scale `max_norm / (norm + 1e-6)` when above). Variables
/// without a gradient are skipped. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// Gradients (3, 4) and (12): global norm sqrt(9 + 16 + 144) = 13. Clipped to 1 they become
    /// (3, 4, 12) / 13 (up to the 1e-6 of the scale).
    #[test]
    fn clips_to_max_norm_and_reports_the_norm() -> Result<()> {
        let a = Var::new(&[1.0f32, 1.0], &Device::Cpu)?;
        let b = Var::new(&[1.0f32], &Device::Cpu)?;
        let loss = ((a.as_tensor() * Tensor::new(&[3.0f32, 4.0], &Device::Cpu)?)?.sum_all()?
            + (b.as_tensor() * 12.0)?.sum_all()?)?;
        let vars = [a.clone(), b.clone()];
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &vars, 1.0)?;
        assert!((norm - 13.0).abs() < 1e-6);
        let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>()?;
        let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>()?;
        for (g, w) in ga.iter().chain(&gb).zip([3.0f32 / 13.0, 4.0 / 13.0, 12.0 / 13.0]) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Under the max norm nothing changes.
        let mut grads = loss.backward()?;
        assert!((clip_grad_norm(&mut grads, &vars, 100.0)? - 13.0).abs() < 1e-6);
        assert_eq!(grads.get(b.as_tensor()).unwrap().to_vec1::<f32>()?, [12.0]);
        Ok(())
    }
}
