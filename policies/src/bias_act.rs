//! A fused candle op: add a bias row to every row of a matrix, then apply an activation.
//!
//! `BiasAct(x [batch, out], b [out]) = act(x + b)`. As primitive ops this is a broadcast add
//! (whose backward reduces the bias gradient with candle's slow strided reduction) plus the
//! activation; fused, the forward is one pass and the backward one pass that also sums the bias
//! gradient over rows:
//! - `g' = g * act'(y)` with `act' = 1 - y^2` for tanh, `1[y > 0]` for relu, 1 for none;
//! - `grad_x = g'`, `grad_b = sum over rows of g'`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::config::Activation;
use crate::fastmath::tanh_f32;

/// `act(x + b)` with `act` one of [`Activation`] or the identity.
#[derive(Debug, Clone, Copy)]
pub struct BiasAct(pub Option<Activation>);

fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else { candle_core::bail!("bias-act: {what} must be f32") };
    let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("bias-act: {what} must be contiguous") };
    Ok(&data[start..end])
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, "input")?;
        let b = f32s(s2, l2, "bias")?;
        let (_, n) = l1.shape().dims2()?;
        if b.len() != n {
            candle_core::bail!("bias-act: bias of {} for rows of {n}", b.len());
        }
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(n) {
            out.extend(row.iter().zip(b).map(|(v, bi)| v + bi));
        }
        match self.0 {
            Some(Activation::Tanh) => out.iter_mut().for_each(|v| *v = tanh_f32(*v)),
            Some(Activation::Relu) => out.iter_mut().for_each(|v| *v = v.max(0.0)),
            None => {}
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _b: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, n) = res.dims2()?;
        let mut g = grad.flatten_all()?.to_vec1::<f32>()?;
        if let Some(act) = self.0 {
            let y = res.flatten_all()?.to_vec1::<f32>()?;
            match act {
                Activation::Tanh => g.iter_mut().zip(&y).for_each(|(gi, yi)| *gi *= 1.0 - yi * yi),
                Activation::Relu => g.iter_mut().zip(&y).for_each(|(gi, yi)| *gi = if *yi > 0.0 { *gi } else { 0.0 }),
            }
        }
        let mut gb = vec![0.0f32; n];
        for row in g.chunks_exact(n) {
            gb.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        let device = res.device();
        Ok((Some(Tensor::from_vec(g, (rows, n), device)?), Some(Tensor::from_vec(gb, n, device)?)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// Values and gradients equal those of `act(x.broadcast_add(b))` built from primitive ops.
    #[test]
    fn matches_primitive_ops() -> Result<()> {
        let d = Device::Cpu;
        let xs: Vec<f32> = (0..12).map(|i| ((i * 5) % 7) as f32 * 0.4 - 1.2).collect();
        let w = Tensor::new(&[[1.0f32, -2.0, 0.5], [0.3, 0.7, -1.1], [2.0, 0.1, 0.4], [-0.6, 1.3, 0.9]], &d)?;
        for act in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
            let run = |fused: bool| -> Result<Vec<Vec<f32>>> {
                let x = Var::from_vec(xs.clone(), (4, 3), &d)?;
                let b = Var::new(&[0.2f32, -0.3, 0.1], &d)?;
                let y = if fused {
                    x.as_tensor().apply_op2(b.as_tensor(), BiasAct(act))?
                } else {
                    let z = x.as_tensor().broadcast_add(b.as_tensor())?;
                    match act {
                        Some(Activation::Tanh) => z.tanh()?,
                        Some(Activation::Relu) => z.relu()?,
                        None => z,
                    }
                };
                let grads = (&y * &w)?.sum_all()?.backward()?;
                Ok(vec![
                    y.flatten_all()?.to_vec1()?,
                    grads.get(x.as_tensor()).unwrap().flatten_all()?.to_vec1()?,
                    grads.get(b.as_tensor()).unwrap().to_vec1()?,
                ])
            };
            for (p, q) in run(true)?.iter().zip(run(false)?.iter()) {
                for (u, v) in p.iter().zip(q) {
                    assert!((u - v).abs() < 1e-5, "{act:?}: {p:?} vs {q:?}");
                }
            }
        }
        Ok(())
    }
}
