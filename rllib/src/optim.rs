//! Adam with global-norm gradient clipping fused into one host-side pass, and its checkpointable state.
//!
//! candle's optimizers keep their moments private (so they cannot be checkpointed) and spend
//! several tensor ops per parameter. For the small networks of classic RL the per-op overhead
//! dominates, so this optimizer reads every gradient once, computes the global norm, and applies
//! the clipped Adam update (PyTorch's `Adam` semantics, with `clip_grad_norm_`'s `1e-6`) in plain
//! `f32` loops, writing each parameter back with one `Var::set`.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// The settings of one Adam step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// Epsilon added to the denominator (CleanRL uses 1e-5, PyTorch's default is 1e-8).
    pub eps: f64,
    /// Clip the gradients to this global L2 norm first, if set.
    pub max_grad_norm: Option<f64>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
}

/// Adam (Kingma & Ba 2015) over a fixed list of candle variables.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: u64,
    beta1: f32,
    beta2: f32,
}

impl Adam {
    /// Adam with betas (0.9, 0.999) over `vars`; learning rate, epsilon and clipping come with
    /// each step.
    pub fn new(vars: Vec<Var>) -> Self {
        let zeros: Vec<Vec<f32>> = vars.iter().map(|v| vec![0.0; v.elem_count()]).collect();
        Self { vars, m: zeros.clone(), v: zeros, step: 0, beta1: 0.9, beta2: 0.999 }
    }

    /// Clips the gradients to global norm `max_grad_norm` (if set) and applies one Adam step.
    /// Variables without a gradient are left untouched. If the gradients' norm is not finite,
    /// nothing changes (parameters, moments, step count) and the returned `grad_norm` says so.
    pub fn step(&mut self, grads: &GradStore, settings: &AdamStep) -> Result<StepStats> {
        let AdamStep { lr, max_grad_norm, .. } = *settings;
        let mut flat: Vec<Option<Vec<f32>>> = Vec::with_capacity(self.vars.len());
        let mut sq = 0.0f64;
        for var in &self.vars {
            let g = match grads.get(var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                None => {
                    flat.push(None);
                    continue;
                }
            };
            sq += g.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>();
            flat.push(Some(g));
        }
        let grad_norm = sq.sqrt();
        if !grad_norm.is_finite() {
            // A NaN or infinite gradient would poison every parameter and moment it touches.
            return Ok(StepStats { grad_norm });
        }
        let scale = match max_grad_norm {
            Some(max) if grad_norm > max => (max / (grad_norm + 1e-6)) as f32,
            _ => 1.0,
        };
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = lr as f32 / bias1;
        for (i, g) in flat.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let var = &self.vars[i];
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let (b1, b2, eps) = (self.beta1, self.beta2, settings.eps as f32);
            // Zipped iterators (no indexing) let the compiler vectorize this loop.
            for (((pj, gj), mj), vj) in p.iter_mut().zip(&g).zip(self.m[i].iter_mut()).zip(self.v[i].iter_mut()) {
                let gj = gj * scale;
                *mj = b1 * *mj + (1.0 - b1) * gj;
                *vj = b2 * *vj + (1.0 - b2) * gj * gj;
                *pj -= step_size * *mj / (vj.sqrt() / bias2_sqrt + eps);
            }
            var.set(&Tensor::from_vec(p, var.shape(), var.device())?)?;
        }
        Ok(StepStats { grad_norm })
    }

    /// The optimizer state as named flat tensors (`m.{i}`, `v.{i}`) plus the step count, for
    /// checkpoints.
    pub fn state(&self) -> (u64, Vec<(String, Vec<f32>)>) {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            out.push((format!("m.{i}"), m.clone()));
            out.push((format!("v.{i}"), v.clone()));
        }
        (self.step, out)
    }

    /// Takes over a state from [`Adam::state`]; every moment must be present with its
    /// variable's element count, else nothing changes and the error names what is wrong.
    pub fn restore(&mut self, step: u64, moments: &[(String, Vec<f32>)]) -> std::result::Result<(), String> {
        let mut m = self.m.clone();
        let mut v = self.v.clone();
        let mut seen = vec![[false; 2]; self.vars.len()];
        for (name, values) in moments {
            let (kind, index) = name.split_once('.').ok_or_else(|| format!("unexpected tensor {name:?}"))?;
            let i: usize = index.parse().map_err(|_| format!("unexpected tensor {name:?}"))?;
            let (slot, which) = match kind {
                "m" => (m.get_mut(i), 0),
                "v" => (v.get_mut(i), 1),
                _ => (None, 0),
            };
            let slot = slot.ok_or_else(|| {
                format!("unexpected tensor {name:?} (the model has {} parameter tensors)", self.vars.len())
            })?;
            if values.len() != slot.len() {
                return Err(format!(
                    "tensor {name} has {} elements, the model's parameter has {}",
                    values.len(),
                    slot.len()
                ));
            }
            slot.copy_from_slice(values);
            seen[i][which] = true;
        }
        if let Some(i) = seen.iter().position(|s| !(s[0] && s[1])) {
            return Err(format!("tensors m.{i} and v.{i} are missing"));
        }
        (self.m, self.v, self.step) = (m, v, step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    /// One Adam step from zero moments moves each parameter by about `lr * sign(g)`:
    /// m = 0.1 g, v = 0.001 g^2, bias corrections 0.1 and 0.001, so the update is
    /// lr * g / (|g| + eps).
    #[test]
    fn first_step_moves_by_lr_times_sign() -> Result<()> {
        let x = Var::from_vec(vec![1.0f32, -2.0, 3.0], 3, &Device::Cpu)?;
        let loss = (x.as_tensor() * Tensor::new(&[2.0f32, -1.0, 0.5], &Device::Cpu)?)?.sum_all()?;
        let grads = loss.backward()?;
        let mut opt = Adam::new(vec![x.clone()]);
        let stats = opt.step(&grads, &AdamStep { lr: 0.1, eps: 1e-8, max_grad_norm: None })?;
        assert!((stats.grad_norm - (4.0f64 + 1.0 + 0.25).sqrt()).abs() < 1e-6);
        let got = x.as_tensor().to_vec1::<f32>()?;
        let want = [0.9f32, -1.9, 2.9];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        Ok(())
    }

    /// Clipping scales the gradient to the max norm before the moments see it: with a norm of 5
    /// clipped to 1, the second step differs from an unclipped run.
    #[test]
    fn clipping_reports_the_unclipped_norm_and_scales() -> Result<()> {
        let run = |clip: Option<f64>| -> Result<(f64, Vec<f32>)> {
            let x = Var::from_vec(vec![0.0f32, 0.0], 2, &Device::Cpu)?;
            let mut opt = Adam::new(vec![x.clone()]);
            let mut norm = 0.0;
            for k in [1.0f32, 0.1] {
                let w = Tensor::new(&[3.0f32 * k, 4.0 * k], &Device::Cpu)?;
                let grads = (x.as_tensor() * w)?.sum_all()?.backward()?;
                norm = opt.step(&grads, &AdamStep { lr: 0.01, eps: 1e-8, max_grad_norm: clip })?.grad_norm;
            }
            Ok((norm, x.as_tensor().to_vec1::<f32>()?))
        };
        let (n_clip, p_clip) = run(Some(1.0))?;
        let (n_free, p_free) = run(None)?;
        assert!((n_clip - 0.5).abs() < 1e-6 && (n_free - 0.5).abs() < 1e-6);
        // Step 1 is clipped from (3, 4) to (0.6, 0.8) and moves each element by -lr. Step 2's
        // gradient (0.3, 0.4) is under the max norm; the first element's moments are then
        // m2 = 0.9 * 0.06 + 0.1 * 0.3 and v2 = 0.999 * 0.00036 + 0.001 * 0.09.
        let m2 = 0.9f32 * 0.06 + 0.1 * 0.3;
        let v2 = 0.999f32 * (0.001 * 0.36) + 0.001 * 0.09;
        let step2 = 0.01 * (m2 / (1.0 - 0.81)) / ((v2 / (1.0 - 0.999f32.powi(2))).sqrt() + 1e-8);
        let want0 = -0.01 - step2;
        assert!((p_clip[0] - want0).abs() < 1e-6, "{p_clip:?} vs {want0}");
        assert!((p_clip[0] - p_free[0]).abs() > 1e-5, "clipping must change the trajectory");
        Ok(())
    }

    #[test]
    fn a_non_finite_gradient_changes_nothing() -> Result<()> {
        let x = Var::from_vec(vec![1.0f32, 2.0], 2, &Device::Cpu)?;
        let mut opt = Adam::new(vec![x.clone()]);
        let settings = AdamStep { lr: 0.1, eps: 1e-8, max_grad_norm: Some(0.5) };
        let grads = (x.as_tensor() * 3.0)?.sum_all()?.backward()?;
        opt.step(&grads, &settings)?;
        let (before, state) = (x.as_tensor().to_vec1::<f32>()?, opt.state());
        for bad in [f32::NAN, f32::INFINITY] {
            let w = Tensor::new(&[bad, 1.0f32], &Device::Cpu)?;
            let grads = (x.as_tensor() * w)?.sum_all()?.backward()?;
            let stats = opt.step(&grads, &settings)?;
            assert!(!stats.grad_norm.is_finite());
            assert_eq!(x.as_tensor().to_vec1::<f32>()?, before);
            assert_eq!(opt.state(), state);
        }
        Ok(())
    }

    #[test]
    fn state_names_each_variable_moment() -> Result<()> {
        let x = Var::zeros(4, DType::F32, &Device::Cpu)?;
        let y = Var::zeros(2, DType::F32, &Device::Cpu)?;
        let mut a = Adam::new(vec![x.clone(), y]);
        let grads = (x.as_tensor() * 2.0)?.sum_all()?.backward()?;
        a.step(&grads, &AdamStep { lr: 0.1, eps: 1e-5, max_grad_norm: None })?;
        let (step, tensors) = a.state();
        assert_eq!(step, 1);
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["m.0", "v.0", "m.1", "v.1"]);
        // m = 0.1 g and v = 0.001 g^2 after one step; y had no gradient and keeps zero moments.
        assert!(tensors[0].1.iter().all(|m| (m - 0.2).abs() < 1e-6), "{:?}", tensors[0].1);
        assert!(tensors[1].1.iter().all(|v| (v - 0.004).abs() < 1e-7), "{:?}", tensors[1].1);
        assert_eq!(tensors[2].1, vec![0.0; 2]);
        Ok(())
    }
}
