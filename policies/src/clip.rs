//! Global-norm gradient clipping over candle's `GradStore` (candle has none).
//!
//! Same semantics as `torch.nn.utils.clip_grad_norm_(params, max_norm)` with its default L2
//! norm: the norm is taken over all gradients together, and when the clip coefficient
//! `max_norm / (norm + 1e-6)` is below 1 every gradient is multiplied by it.
//!
//! The norm is one pass over the gradients: on the CPU each `f32` gradient is read in place and
//! its squares summed in `f64` (no tensor ops, no copies); elsewhere the squared sums are
//! reduced on the device and read back with one host transfer. Scaling is one candle op per
//! gradient, and happens only when clipping.

use candle_core::backprop::GradStore;
use candle_core::{DType, Storage, Tensor, Var};

use crate::error::{PolicyError, Result};

/// torch's `clip_grad_norm_` adds this to the norm before dividing.
const EPS: f64 = 1e-6;

/// Scales the gradients of `vars` in `grads` so that their global L2 norm is at most
/// `max_norm`, like `torch.nn.utils.clip_grad_norm_`, and returns the norm before clipping.
///
/// Variables without a gradient are skipped. A non-finite norm (a NaN or infinite gradient) is
/// returned as is and the gradients are left unchanged, so the caller can decide to skip the
/// step. `max_norm` must be a non-negative number.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(PolicyError::InvalidArgument {
            op: "clip_grad_norm",
            msg: format!("max_norm must be a non-negative number, got {max_norm}"),
        });
    }
    let norm = global_norm(grads, vars)?;
    let coef = max_norm / (norm + EPS);
    if norm.is_finite() && coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = g.affine(coef, 0.0)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

/// The L2 norm of all gradients of `vars` taken together.
pub fn global_norm(grads: &GradStore, vars: &[Var]) -> Result<f64> {
    let mut sq = 0.0f64;
    let mut on_device: Vec<Tensor> = Vec::new();
    for g in vars.iter().filter_map(|v| grads.get(v.as_tensor())) {
        match host_sum_of_squares(g)? {
            Some(s) => sq += s,
            None => on_device.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?),
        }
    }
    if !on_device.is_empty() {
        let partial = Tensor::stack(&on_device, 0)?.to_dtype(DType::F64)?.sum_all()?;
        sq += partial.to_scalar::<f64>()?;
    }
    Ok(sq.sqrt())
}

/// The sum of squares of a contiguous `f32` CPU tensor, read in place; `None` for other tensors.
fn host_sum_of_squares(t: &Tensor) -> Result<Option<f64>> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { return Ok(None) };
    if t.dtype() != DType::F32 {
        return Ok(None);
    }
    let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
    let data = &cpu.as_slice::<f32>()?[start..end];
    // Four running sums in f64: exact enough for any gradient, and they pipeline.
    let mut acc = [0.0f64; 4];
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            let x = f64::from(*x);
            *a += x * x;
        }
    }
    let tail: f64 = tail.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    Ok(Some(acc.iter().sum::<f64>() + tail))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::test_device;

    /// `loss = 3 a0 + 4 a1 + 12 b` has gradients (3, 4) and (12): global norm
    /// sqrt(9 + 16 + 144) = 13.
    fn grads_3_4_12(device: &Device) -> Result<(GradStore, [Var; 2])> {
        let a = Var::new(&[1.0f32, 1.0], device)?;
        let b = Var::new(&[1.0f32], device)?;
        let loss = ((a.as_tensor() * Tensor::new(&[3.0f32, 4.0], device)?)?.sum_all()?
            + (b.as_tensor() * 12.0)?.sum_all()?)?;
        Ok((loss.backward()?, [a, b]))
    }

    fn grad(grads: &GradStore, v: &Var) -> Vec<f32> {
        grads.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap()
    }

    /// Clipped to 1, the gradients become (3, 4, 12) / (13 + 1e-6): 0.23076922, 0.3076923,
    /// 0.92307687 (to f32 precision).
    fn clips_to_max_norm_and_reports_the_norm(device: &Device) -> Result<()> {
        let (mut grads, [a, b]) = grads_3_4_12(device)?;
        let norm = clip_grad_norm(&mut grads, &[a.clone(), b.clone()], 1.0)?;
        assert!((norm - 13.0).abs() < 1e-9, "{norm}");
        let got: Vec<f32> = [grad(&grads, &a), grad(&grads, &b)].concat();
        for (g, want) in got.iter().zip([0.230_769_22f32, 0.307_692_3, 0.923_076_87]) {
            assert!((g - want).abs() < 1e-7, "{got:?}");
        }
        // The clipped gradients have norm max_norm (up to the 1e-6 of the coefficient).
        let after = clip_grad_norm(&mut grads, &[a, b], 1.0)?;
        assert!((after - 1.0).abs() < 1e-6, "{after}");
        Ok(())
    }

    /// Norm 13 with max_norm 100 (or exactly 13 + 1e-6): coefficient >= 1, nothing changes.
    fn leaves_small_gradients_alone(device: &Device) -> Result<()> {
        for max_norm in [100.0, 13.0 + 1e-6] {
            let (mut grads, [a, b]) = grads_3_4_12(device)?;
            assert!((clip_grad_norm(&mut grads, &[a.clone(), b.clone()], max_norm)? - 13.0).abs() < 1e-9);
            assert_eq!(grad(&grads, &a), [3.0, 4.0]);
            assert_eq!(grad(&grads, &b), [12.0]);
        }
        Ok(())
    }

    /// Variables without gradients are skipped; bad `max_norm` is an error.
    fn skips_missing_gradients_and_checks_max_norm(device: &Device) -> Result<()> {
        let (mut grads, [a, b]) = grads_3_4_12(device)?;
        let unused = Var::new(&[5.0f32], device)?;
        let norm = clip_grad_norm(&mut grads, &[a.clone(), unused.clone()], 10.0)?;
        // Only a's gradient (3, 4) counts: norm 5, under 10.
        assert!((norm - 5.0).abs() < 1e-9);
        assert!(grads.get(unused.as_tensor()).is_none());
        for bad in [-1.0, f64::NAN] {
            let err = clip_grad_norm(&mut grads, &[a.clone(), b.clone()], bad).unwrap_err();
            assert!(matches!(err, PolicyError::InvalidArgument { op: "clip_grad_norm", .. }), "{err}");
        }
        Ok(())
    }

    /// A NaN gradient gives a NaN norm and leaves the gradients as they are.
    fn non_finite_norm_is_reported_not_applied(device: &Device) -> Result<()> {
        let a = Var::new(&[1.0f32, 2.0], device)?;
        let loss = (a.as_tensor() * Tensor::new(&[f32::NAN, 1.0], device)?)?.sum_all()?;
        let mut grads = loss.backward()?;
        assert!(clip_grad_norm(&mut grads, std::slice::from_ref(&a), 1.0)?.is_nan());
        assert_eq!(grad(&grads, &a)[1], 1.0);
        Ok(())
    }

    /// A non-contiguous gradient takes the device path and gives the same norm.
    fn non_contiguous_gradients_are_summed_on_the_device(device: &Device) -> Result<()> {
        let a = Var::new(&[[1.0f32, 2.0], [3.0, 4.0]], device)?;
        let mut grads = a.as_tensor().sum_all()?.backward()?;
        let g = Tensor::new(&[[2.0f32, 0.0], [1.0, 2.0]], device)?.t()?;
        assert!(!g.is_contiguous());
        grads.insert(a.as_tensor(), g);
        assert!((global_norm(&grads, std::slice::from_ref(&a))? - 3.0).abs() < 1e-9);
        Ok(())
    }

    test_device!(clips_to_max_norm_and_reports_the_norm, clips_cpu, clips_cuda);
    test_device!(leaves_small_gradients_alone, small_cpu, small_cuda);
    test_device!(skips_missing_gradients_and_checks_max_norm, missing_cpu, missing_cuda);
    test_device!(non_finite_norm_is_reported_not_applied, nan_cpu, nan_cuda);
    test_device!(non_contiguous_gradients_are_summed_on_the_device, strided_cpu, strided_cuda);
}
