//! A candle op for a Linear layer whose weight the backward pass treats as a constant.
//!
//! SAC's actor loss differentiates `Q(s, pi(s))` with respect to the actor only. Through
//! candle's own `matmul`, the backward pass of every critic layer computes both products,
//! `grad_x = g W` and `grad_W = x^T g`, whatever needs them; the second one (a third of a
//! critic's backward work) is thrown away. [`FrozenMatmul`] computes `y = x W^T` with the same
//! candle kernel and, backward, only `grad_x = g W`, so values and input gradients are
//! bit-identical to `x.matmul(&w.t())` and nothing flows to `W`.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};

/// `x [batch, in] -> x W^T [batch, out]` for a weight `W [out, in]` that gets no gradient.
#[derive(Debug, Clone)]
pub struct FrozenMatmul {
    /// `W`, `[out, in]`, detached from any var.
    w: Tensor,
}

impl FrozenMatmul {
    /// The op for the weight `w` (`[out, in]`, PyTorch's Linear layout). The detached copy
    /// shares the var's storage, so the op must be used before the var's next update: build it
    /// for each forward pass.
    pub fn new(w: &Tensor) -> Self {
        Self { w: w.detach() }
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = s else { candle_core::bail!("frozen-matmul: the input must be f32") };
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: the input must be contiguous")
        };
        let (rows, n_in) = l.shape().dims2()?;
        let x = Tensor::from_slice(&data[start..end], (rows, n_in), &Device::Cpu)?;
        let y = x.matmul(&self.w.t()?)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;

    /// Values and input gradients are bit-identical to candle's matmul; the weight gets none.
    #[test]
    fn matches_matmul_without_a_weight_gradient() -> Result<()> {
        let d = Device::Cpu;
        let xs: Vec<f32> = (0..15).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.4).collect();
        let ws: Vec<f32> = (0..12).map(|i| ((i * 5) % 9) as f32 * 0.25 - 0.9).collect();
        let x = Var::from_vec(xs, (5, 3), &d)?;
        let w = Var::from_vec(ws, (4, 3), &d)?;
        let g = Tensor::new(&[1.0f32, -0.5, 2.0, 0.25], &d)?;

        let plain = x.as_tensor().matmul(&w.as_tensor().t()?)?;
        let frozen = x.as_tensor().apply_op1(FrozenMatmul::new(w.as_tensor()))?;
        assert_eq!(plain.to_vec2::<f32>()?, frozen.to_vec2::<f32>()?);

        let plain_grads = plain.broadcast_mul(&g)?.sum_all()?.backward()?;
        let frozen_grads = frozen.broadcast_mul(&g)?.sum_all()?.backward()?;
        let gx = |grads: &candle_core::backprop::GradStore| grads.get(x.as_tensor()).unwrap().to_vec2::<f32>();
        assert_eq!(gx(&plain_grads)?, gx(&frozen_grads)?);
        assert!(plain_grads.get(w.as_tensor()).is_some());
        assert!(frozen_grads.get(w.as_tensor()).is_none(), "no gradient reaches the frozen weight");
        Ok(())
    }
}
