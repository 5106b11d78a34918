//! Branch-free `exp` and `tanh` for `f32` that the compiler can vectorize, and a candle tanh op built on them.
//!
//! The C library's `expf`/`tanhf` are calls the compiler cannot vectorize, and for the small
//! networks of classic RL the activations cost more than the matrix products. These versions
//! reduce `x = k ln 2 + r` with `|r| <= ln 2 / 2`, evaluate `e^r` by its Taylor series to degree 7
//! (truncation error below 3e-9 relative), and scale by `2^k` through the exponent bits.
//! [`tanh_f32`] is within 2e-7 of `f32::tanh`. [`FastTanh`] applies it as a candle op with the
//! usual `1 - tanh^2` gradient, so the learner and the rollout fast path use the same function.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// `e^x` for `f32`, clamped to the normal range (`x` below -87.3 gives about 1.2e-38, above 88
/// gives about 1.65e38). NaN propagates.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in f32 and a remainder, for an accurate reduction.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2_E + ROUND;
    let k = t - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    // `t` is `ROUND + k` exactly, with `k` (|k| <= 127) in the low mantissa bits, so the integer `k`
    // is the difference of the bit patterns: no float-to-int conversion, which would not vectorize.
    let k_int = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k_int.wrapping_add(127) << 23);
    p * scale
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)` with [`exp_f32`].
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0)
}

/// candle op computing [`tanh_f32`] elementwise (CPU, f32), with the gradient `1 - y^2`.
#[derive(Debug, Clone, Copy)]
pub struct FastTanh;

impl CustomOp1 for FastTanh {
    fn name(&self) -> &'static str {
        "fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fast-tanh supports f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-tanh needs a contiguous input");
        };
        let out: Vec<f32> = data[start..end].iter().map(|x| tanh_f32(*x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((grad_res * (1.0 - res.sqr()?)?)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn exp_is_accurate_over_the_range() {
        let mut worst = 0.0f64;
        for i in -87_000..=87_900 {
            let x = i as f32 * 0.001;
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp_f32(x)) - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// Reading `k` from the bit patterns gives bitwise the result of converting it with `as i32`
    /// (the scalar formulation, which does not vectorize).
    #[test]
    fn exponent_from_bits_equals_the_conversion() {
        let converted = |x: f32| {
            let x = x.clamp(-87.3, 88.0);
            let k = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
            let p = 1.0
                + r * (1.0
                    + r * (0.5
                        + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
            p * f32::from_bits(((k as i32 + 127) as u32) << 23)
        };
        for i in -1_000_000..=1_000_000 {
            let x = i as f32 * 9e-5;
            assert_eq!(exp_f32(x).to_bits(), converted(x).to_bits(), "x = {x}");
        }
        for x in [-1e30, -88.0, -87.3, 88.0, 88.5, 1e30] {
            assert_eq!(exp_f32(x).to_bits(), converted(x).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn tanh_is_close_to_std_and_saturates() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.001;
            let d = (tanh_f32(x) - x.tanh()).abs();
            assert!(d <= 2e-7, "x = {x}: off by {d}");
        }
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
    }

    #[test]
    fn candle_op_matches_and_differentiates() -> Result<()> {
        let x = Var::new(&[-2.0f32, -0.5, 0.0, 0.3, 4.0], &Device::Cpu)?;
        let y = x.as_tensor().apply_op1(FastTanh)?;
        let want = x.as_tensor().tanh()?;
        let diff = (y.clone() - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 2e-7, "{diff}");
        let g = y.sum_all()?.backward()?;
        let got = g.get(x.as_tensor()).unwrap().to_vec1::<f32>()?;
        let expect = (1.0 - want.sqr()?)?.to_vec1::<f32>()?;
        for (a, b) in got.iter().zip(&expect) {
            assert!((a - b).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
        Ok(())
    }
}
