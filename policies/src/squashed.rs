//! SAC's networks: the tanh-squashed Gaussian actor ([`SquashedGaussianActor`], with its
//! plain-`f32` fast path [`FastSquashedActor`]) and the Q-critic on `[obs, action]` ([`QCritic`]).
//!
//! The actor follows Haarnoja et al. 2018 laid out like CleanRL's `sac_continuous_action.py`:
//! a trunk `trunk.{i}` (the activation after every layer), then two heads on its output, `mean`
//! and `log_std` (named `mean.weight`, `log_std.bias`, ...). The raw log-std head output is
//! squashed into `[LOG_STD_MIN, LOG_STD_MAX]`:
//!
//! `log_std = LOG_STD_MIN + 0.5 (LOG_STD_MAX - LOG_STD_MIN) (tanh(raw) + 1)`.
//!
//! Sampling is reparameterized with caller-given standard-normal noise `eps`:
//! `u = mean + std * eps`, `action = tanh(u) * scale + bias` with `scale = (high - low) / 2` and
//! `bias = (high + low) / 2` per dimension, and
//!
//! `log pi(a|s) = sum_d [ log N(u_d; mean_d, std_d) - log(scale_d (1 - tanh(u_d)^2) + 1e-6) ]`,
//!
//! where `log N(u; mean, std) = -eps^2 / 2 - log std - log(2 pi) / 2` (as `(u - mean) / std = eps`).
//!
//! Init: PyTorch's default `nn.Linear` init from `NpRandom::from_seed(seed)` (see [`crate::Mlp`]),
//! in the order trunk, `mean`, `log_std`. Actor weights carry the metadata `format_version`,
//! `policy_version`, `kind` (`squashed_gaussian`), `obs_dim`, `act_dim`, `hiddens`,
//! `activation`, and the bounds as tensors `action_low` and `action_high`.

use candle_core::{D, Device, Tensor, Var};
use rl_env::rng::NpRandom;

use crate::config::Activation;
use crate::error::{PolicyError, Result};
use crate::fastmath::tanh_f32;
use crate::mlp::{
    FastTrunkHeads, Mlp, activation_name, check_meta, check_sizes, dense_vars, linear_stack, read_checked, run_layers,
    soft_update_vars, torch_linear, vars_to_safetensors,
};
use crate::model::Dense;
use crate::qnet::check_kind;
use crate::weights::{WEIGHTS_FORMAT_VERSION, check_format, metadata, weights_version};

/// The smallest log standard deviation of the actor.
pub const LOG_STD_MIN: f32 = -5.0;
/// The largest log standard deviation of the actor.
pub const LOG_STD_MAX: f32 = 2.0;

/// The `kind` metadata of actor weights.
const KIND: &str = "squashed_gaussian";
/// `log(2 pi) / 2`.
const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_7;

/// `log_std` from the tanh of the raw head output (see the module docs).
#[inline]
fn rescale_log_std(tanh_raw: f32) -> f32 {
    LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (tanh_raw + 1.0)
}

/// SAC's actor: a tanh-squashed diagonal Gaussian over a Box action space with finite bounds
/// (see the module docs for the layout and the formulas).
#[derive(Debug)]
pub struct SquashedGaussianActor {
    obs_dim: usize,
    hiddens: Vec<usize>,
    act: Activation,
    trunk: Vec<Dense>,
    mean: Dense,
    log_std: Dense,
    low: Vec<f32>,
    high: Vec<f32>,
    /// `(high - low) / 2`, `[act_dim]`.
    scale: Vec<f32>,
    /// `(high + low) / 2`, `[act_dim]`.
    bias: Vec<f32>,
    scale_t: Tensor,
    bias_t: Tensor,
}

impl SquashedGaussianActor {
    /// A freshly initialized actor for observations of `obs_dim` values and actions in
    /// `[low, high]` (one bound per dimension); `seed` fixes the init.
    ///
    /// Errors: bounds of different lengths or none; a bound that is not finite or `low >= high`
    /// (naming the dimension); `obs_dim` or a hidden size of 0.
    pub fn new(
        obs_dim: usize,
        low: &[f32],
        high: &[f32],
        hiddens: &[usize],
        act: Activation,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if low.len() != high.len() {
            return Err(PolicyError::UnsupportedSpace(format!(
                "action bounds: {} low values, {} high values",
                low.len(),
                high.len()
            )));
        }
        if low.is_empty() {
            return Err(PolicyError::UnsupportedSpace("action space Box(0) has no elements".into()));
        }
        let (scale, bias): (Vec<f32>, Vec<f32>) =
            low.iter().zip(high).map(|(l, h)| ((h - l) / 2.0, (h + l) / 2.0)).unzip();
        for (d, (l, h)) in low.iter().zip(high).enumerate() {
            if !(l.is_finite() && h.is_finite() && l < h && scale[d].is_finite() && bias[d].is_finite()) {
                return Err(PolicyError::UnsupportedSpace(format!(
                    "the squashed Gaussian actor needs finite action bounds with low < high; dimension {d} \
                     has low {l}, high {h}"
                )));
            }
        }
        let act_dim = low.len();
        check_sizes("squashed_gaussian", obs_dim, hiddens, &[act_dim])?;
        let mut rng = NpRandom::from_seed(seed);
        let trunk = linear_stack("trunk", obs_dim, hiddens, &mut rng, device)?;
        let last = hiddens.last().copied().unwrap_or(obs_dim);
        let mean = torch_linear("mean".into(), last, act_dim, &mut rng, device)?;
        let log_std = torch_linear("log_std".into(), last, act_dim, &mut rng, device)?;
        Ok(Self {
            obs_dim,
            hiddens: hiddens.to_vec(),
            act,
            trunk,
            mean,
            log_std,
            low: low.to_vec(),
            high: high.to_vec(),
            scale_t: Tensor::from_slice(&scale, act_dim, device)?,
            bias_t: Tensor::from_slice(&bias, act_dim, device)?,
            scale,
            bias,
        })
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.low.len()
    }

    /// The action bounds `(low, high)`.
    pub fn bounds(&self) -> (&[f32], &[f32]) {
        (&self.low, &self.high)
    }

    /// For observations `[B, obs_dim]`: the Gaussian means `[B, A]` and the log standard
    /// deviations `[B, A]` after the rescale into `[LOG_STD_MIN, LOG_STD_MAX]`.
    pub fn forward(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = run_layers(&self.trunk, self.act, obs)?;
        let mean = self.mean.forward(&h, None)?;
        let tanh_raw = self.log_std.forward(&h, Some(Activation::Tanh))?;
        let half = 0.5 * f64::from(LOG_STD_MAX - LOG_STD_MIN);
        let log_std = ((tanh_raw + 1.0)? * half)? + f64::from(LOG_STD_MIN);
        Ok((mean, log_std?))
    }

    /// A reparameterized sample for observations `[B, obs_dim]` with the standard-normal `noise`
    /// `[B, A]`: the actions `[B, A]` in env units and their log-probabilities `[B]` (with the
    /// tanh correction), both differentiable with respect to the actor's vars.
    pub fn sample(&self, obs: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor)> {
        let (mean, log_std) = self.forward(obs)?;
        if noise.dims() != mean.dims() {
            return Err(PolicyError::BufferSize {
                what: "noise",
                expected: mean.elem_count(),
                got: noise.elem_count(),
            });
        }
        let u = (&mean + (log_std.exp()? * noise)?)?;
        let y = u.tanh()?;
        let action = y.broadcast_mul(&self.scale_t)?.broadcast_add(&self.bias_t)?;
        let log_n = (((noise.sqr()? * -0.5)? - &log_std)? - HALF_LOG_2PI)?;
        let jacobian = (y.sqr()?.affine(-1.0, 1.0)?.broadcast_mul(&self.scale_t)? + 1e-6)?.log()?;
        let log_prob = (log_n - jacobian)?.sum(D::Minus1)?;
        Ok((action, log_prob))
    }

    /// The deterministic action `tanh(mean) * scale + bias`, `[B, A]`, for evaluation.
    pub fn deterministic(&self, obs: &Tensor) -> Result<Tensor> {
        let (mean, _) = self.forward(obs)?;
        Ok(mean.tanh()?.broadcast_mul(&self.scale_t)?.broadcast_add(&self.bias_t)?)
    }

    /// Every parameter with its name: the trunk, `mean`, `log_std`.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        dense_vars(self.trunk.iter().chain([&self.mean, &self.log_std]))
    }

    /// Every parameter, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    fn arch_meta(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", KIND.to_string()),
            ("obs_dim", self.obs_dim.to_string()),
            ("act_dim", self.act_dim().to_string()),
            ("hiddens", serde_json::to_string(&self.hiddens).expect("a list of numbers serializes")),
            ("activation", activation_name(self.act).to_string()),
        ]
    }

    /// The weights and bounds as safetensors bytes tagged with `version` and the architecture
    /// (see the module docs); the same weights and version always give the same bytes.
    pub fn to_safetensors(&self, version: u64) -> Result<Vec<u8>> {
        let mut tensors = self.named_vars();
        let cpu = Device::Cpu;
        tensors.push(("action_low".into(), Var::from_slice(&self.low, self.act_dim(), &cpu)?));
        tensors.push(("action_high".into(), Var::from_slice(&self.high, self.act_dim(), &cpu)?));
        let mut meta =
            vec![("format_version", WEIGHTS_FORMAT_VERSION.to_string()), ("policy_version", version.to_string())];
        meta.extend(self.arch_meta());
        vars_to_safetensors(&tensors, &meta)
    }

    /// Loads weights written by [`SquashedGaussianActor::to_safetensors`] and returns their
    /// version.
    ///
    /// Checks, failing on the first mismatch without changing anything: the format version and
    /// `kind`; every tensor's name, dtype and shape (errors name the tensor); that the stored
    /// bounds equal this actor's; then the rest of the architecture metadata.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<u64> {
        let meta = metadata(bytes)?;
        check_format(&meta)?;
        check_kind(&meta, KIND)?;
        let version = weights_version(bytes)?;
        let named = self.named_vars();
        let checked = read_checked(&named, bytes, &[("action_low", &self.low), ("action_high", &self.high)])?;
        check_meta(&checked.meta, &self.arch_meta())?;
        checked.apply(&named)?;
        Ok(version)
    }

    /// A plain-`f32` snapshot of the current weights for rollout workers.
    pub fn fast(&self) -> Result<FastSquashedActor> {
        Ok(FastSquashedActor {
            net: FastTrunkHeads::new(&self.trunk, &[&self.mean, &self.log_std], self.act)?,
            scale: self.scale.clone(),
            bias: self.bias.clone(),
        })
    }
}

/// A [`SquashedGaussianActor`] in plain `f32` for rollout workers; within 1e-5 of the candle
/// actor. A snapshot does not follow later weight changes.
#[derive(Debug, Clone)]
pub struct FastSquashedActor {
    net: FastTrunkHeads,
    scale: Vec<f32>,
    bias: Vec<f32>,
}

impl FastSquashedActor {
    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.scale.len()
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.net.n_in()
    }

    /// Actions `[rows, A]` in env units into `out` (resized) for observations
    /// `[rows, obs_dim]`: `tanh(mean) * scale + bias` when `noise` is `None`, else
    /// `tanh(mean + std * noise) * scale + bias` with the given standard-normal `noise`
    /// `[rows, A]`.
    ///
    /// # Panics
    ///
    /// When `obs.len() != rows * obs_dim` or `noise` is not `rows * A` long.
    pub fn act(&self, obs: &[f32], rows: usize, noise: Option<&[f32]>, out: &mut Vec<f32>) {
        let a = self.act_dim();
        if let Some(noise) = noise {
            assert_eq!(noise.len(), rows * a, "noise: expected {rows} rows of {a} values");
        }
        out.resize(rows * a, 0.0);
        self.net.run(obs, rows, |start, block, heads| {
            let range = start * a..(start + block) * a;
            let (mean, raw) = (heads[0], heads[1]);
            let noise = noise.map(|n| &n[range.clone()]);
            for (i, o) in out[range].iter_mut().enumerate() {
                let u = match noise {
                    None => mean[i],
                    Some(eps) => mean[i] + rescale_log_std(tanh_f32(raw[i])).exp() * eps[i],
                };
                let d = i % a;
                *o = u.tanh() * self.scale[d] + self.bias[d];
            }
        });
    }
}

/// SAC's critic: `Q(s, a)` from the concatenation `[obs, action]` through an [`Mlp`]
/// `obs_dim + act_dim -> hiddens... -> 1` named `prefix` (CleanRL's `SoftQNetwork`).
#[derive(Debug)]
pub struct QCritic {
    mlp: Mlp,
    obs_dim: usize,
    act_dim: usize,
}

impl QCritic {
    /// A freshly initialized critic; `seed` fixes the init. Errors: a size of 0.
    pub fn new(
        prefix: &str,
        obs_dim: usize,
        act_dim: usize,
        hiddens: &[usize],
        act: Activation,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        check_sizes(prefix, obs_dim, hiddens, &[act_dim])?;
        let mlp = Mlp::new(prefix, obs_dim + act_dim, hiddens, 1, act, &mut NpRandom::from_seed(seed), device)?;
        Ok(Self { mlp, obs_dim, act_dim })
    }

    /// Q-values `[B]` of observations `[B, obs_dim]` and actions `[B, act_dim]` (env units).
    pub fn forward(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        Ok(self.mlp.forward(&self.input(obs, actions)?)?.squeeze(1)?)
    }

    /// [`QCritic::forward`] for a loss that must not train this critic (SAC's actor loss): the
    /// gradient reaches the actions (and what they came from) but none of the critic's vars, and
    /// the backward pass skips the weight products it would throw away.
    pub fn forward_frozen(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        Ok(self.mlp.forward_frozen(&self.input(obs, actions)?)?.squeeze(1)?)
    }

    /// `[obs, actions]`, `[B, obs_dim + act_dim]`, after checking both shapes.
    fn input(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        let (b, od) = obs.dims2()?;
        let (ba, ad) = actions.dims2()?;
        if (od, ad, ba) != (self.obs_dim, self.act_dim, b) {
            return Err(PolicyError::Config(format!(
                "critic input: observations [{b}, {od}] and actions [{ba}, {ad}], expected [B, {}] and [B, {}]",
                self.obs_dim, self.act_dim
            )));
        }
        Ok(Tensor::cat(&[obs, actions], 1)?)
    }

    /// Every parameter with its name (`prefix.{i}.weight|bias`).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.mlp.named_vars()
    }

    /// Every parameter, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.mlp.vars()
    }

    /// `self <- tau * source + (1 - tau) * self` for every parameter (SAC's target critics,
    /// `tau = 0.005` in CleanRL); the names and shapes must match.
    pub fn soft_update_from(&self, source: &QCritic, tau: f64) -> Result<()> {
        soft_update_vars(&self.named_vars(), &source.named_vars(), tau)
    }

    /// A second critic with the same names and a copy of the weights (a target critic).
    pub fn duplicate(&self) -> Result<QCritic> {
        Ok(Self { mlp: self.mlp.duplicate()?, ..*self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(named: &[(String, Var)], name: &str, t: Tensor) {
        let (_, v) = named.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name}"));
        v.set(&t).unwrap();
    }

    fn obs(rows: usize, dim: usize) -> Vec<f32> {
        (0..rows * dim).map(|i| ((i * 29 % 41) as f32 - 20.0) * 0.1).collect()
    }

    fn noise(rows: usize, dim: usize) -> Vec<f32> {
        (0..rows * dim).map(|i| ((i * 17 % 13) as f32 - 6.0) * 0.4).collect()
    }

    fn values(vars: &[Var]) -> Vec<Vec<f32>> {
        vars.iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    /// obs_dim 2, one hidden relu layer of 2, act_dim 2 with bounds [-1, 1] and [0, 4]
    /// (scale [1, 2], bias [0, 2]), with hand-set weights.
    fn hand_set_actor() -> SquashedGaussianActor {
        let d = Device::Cpu;
        let a = SquashedGaussianActor::new(2, &[-1.0, 0.0], &[1.0, 4.0], &[2], Activation::Relu, 0, &d).unwrap();
        let n = a.named_vars();
        set(&n, "trunk.0.weight", Tensor::new(&[[1.0f32, 0.5], [-0.5, 1.0]], &d).unwrap());
        set(&n, "trunk.0.bias", Tensor::new(&[0.1f32, -0.2], &d).unwrap());
        set(&n, "mean.weight", Tensor::new(&[[1.0f32, 2.0], [-3.0, 0.5]], &d).unwrap());
        set(&n, "mean.bias", Tensor::new(&[0.05f32, -0.1], &d).unwrap());
        set(&n, "log_std.weight", Tensor::new(&[[2.0f32, 1.0], [0.5, -1.0]], &d).unwrap());
        set(&n, "log_std.bias", Tensor::new(&[-0.3f32, 0.1], &d).unwrap());
        a
    }

    /// The log-probability of a sample against arithmetic written out here in f64.
    #[test]
    fn log_prob_matches_a_hand_computation() {
        let a = hand_set_actor();
        let d = Device::Cpu;
        let (o, eps) = ([0.4f64, 0.6], [0.3f64, -1.2]);
        // Trunk: h = relu(W o + b).
        let h = [(1.0 * o[0] + 0.5 * o[1] + 0.1f64).max(0.0), (-0.5 * o[0] + 1.0 * o[1] - 0.2f64).max(0.0)];
        let mean = [1.0 * h[0] + 2.0 * h[1] + 0.05, -3.0 * h[0] + 0.5 * h[1] - 0.1];
        let raw = [2.0 * h[0] + 1.0 * h[1] - 0.3, 0.5 * h[0] - 1.0 * h[1] + 0.1];
        // log_std = MIN + 0.5 (MAX - MIN)(tanh(raw) + 1), MIN = -5, MAX = 2.
        let log_std = raw.map(|r| -5.0 + 0.5 * 7.0 * (r.tanh() + 1.0));
        let (scale, bias) = ([1.0f64, 2.0], [0.0f64, 2.0]);
        let mut want_logp = 0.0;
        let mut want_action = [0.0; 2];
        for i in 0..2 {
            // u = mean + std eps; log N(u; mean, std) = -((u - mean)/std)^2 / 2 - log std - log(2 pi) / 2;
            // correction = log(scale (1 - tanh(u)^2) + 1e-6).
            let std = log_std[i].exp();
            let u = mean[i] + std * eps[i];
            let z = (u - mean[i]) / std;
            let log_n = -0.5 * z * z - log_std[i] - 0.5 * (2.0 * std::f64::consts::PI).ln();
            want_logp += log_n - (scale[i] * (1.0 - u.tanh().powi(2)) + 1e-6).ln();
            want_action[i] = u.tanh() * scale[i] + bias[i];
        }
        let x = Tensor::new(&[[0.4f32, 0.6]], &d).unwrap();
        let (m, ls) = a.forward(&x).unwrap();
        let (m, ls) = (m.to_vec2::<f32>().unwrap()[0].clone(), ls.to_vec2::<f32>().unwrap()[0].clone());
        for i in 0..2 {
            assert!((f64::from(m[i]) - mean[i]).abs() < 1e-6, "mean {m:?} vs {mean:?}");
            assert!((f64::from(ls[i]) - log_std[i]).abs() < 1e-5, "log_std {ls:?} vs {log_std:?}");
        }
        let (action, logp) = a.sample(&x, &Tensor::new(&[[0.3f32, -1.2]], &d).unwrap()).unwrap();
        let logp = f64::from(logp.to_vec1::<f32>().unwrap()[0]);
        assert!((logp - want_logp).abs() < 1e-5, "{logp} vs {want_logp}");
        let action = action.to_vec2::<f32>().unwrap()[0].clone();
        for i in 0..2 {
            assert!((f64::from(action[i]) - want_action[i]).abs() < 1e-6, "{action:?} vs {want_action:?}");
        }
    }

    /// With scale 1 and a small u the correction is log(1 - tanh(u)^2) (the 1e-6 is negligible),
    /// itself about -u^2.
    #[test]
    fn correction_with_unit_scale_and_small_u_is_log_one_minus_tanh_squared() {
        let d = Device::Cpu;
        let a = SquashedGaussianActor::new(1, &[-1.0], &[1.0], &[1], Activation::Relu, 0, &d).unwrap();
        let n = a.named_vars();
        for (_, v) in &n {
            v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        }
        set(&n, "mean.bias", Tensor::new(&[0.01f32], &d).unwrap());
        set(&n, "log_std.bias", Tensor::new(&[-3.0f32], &d).unwrap());
        let log_std = -5.0 + 3.5 * ((-3.0f64).tanh() + 1.0);
        let eps = 0.5f64;
        let u = 0.01 + log_std.exp() * eps;
        let log_n = -0.5 * eps * eps - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let x = Tensor::new(&[[0.7f32]], &d).unwrap();
        let (_, logp) = a.sample(&x, &Tensor::new(&[[0.5f32]], &d).unwrap()).unwrap();
        let correction = log_n - f64::from(logp.to_vec1::<f32>().unwrap()[0]);
        let exact = (1.0 - u.tanh().powi(2)).ln();
        assert!((correction - exact).abs() < 2e-6, "{correction} vs {exact}");
        assert!((correction + u * u).abs() < 1e-6, "{correction} vs -u^2 = {}", -u * u);
    }

    #[test]
    fn sample_gradients_reach_both_heads_and_the_trunk() {
        let d = Device::Cpu;
        let a = SquashedGaussianActor::new(3, &[-2.0; 2], &[2.0; 2], &[8, 8], Activation::Relu, 1, &d).unwrap();
        let x = Tensor::from_slice(&obs(4, 3), (4, 3), &d).unwrap();
        let eps = Tensor::from_slice(&noise(4, 2), (4, 2), &d).unwrap();
        let (action, logp) = a.sample(&x, &eps).unwrap();
        // SAC's actor loss shape: alpha * log pi - Q, here with Q = sum of the actions.
        let loss = ((logp * 0.2).unwrap() - action.sum(1).unwrap()).unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        for (name, v) in a.named_vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            if name.starts_with("mean") || name.starts_with("log_std") {
                assert!(norm > 0.0, "zero gradient for {name}");
            }
        }
    }

    #[test]
    fn deterministic_is_tanh_mean_and_actions_stay_in_bounds() {
        let d = Device::Cpu;
        let (low, high) = ([-1.0f32, 0.5, -3.0], [1.0f32, 2.0, 0.1]);
        let a = SquashedGaussianActor::new(4, &low, &high, &[16], Activation::Tanh, 2, &d).unwrap();
        let x = Tensor::from_slice(&obs(5, 4), (5, 4), &d).unwrap();
        let (mean, _) = a.forward(&x).unwrap();
        let det = a.deterministic(&x).unwrap().to_vec2::<f32>().unwrap();
        for (row, m) in det.iter().zip(mean.to_vec2::<f32>().unwrap()) {
            for i in 0..3 {
                let scale = (high[i] - low[i]) / 2.0;
                let bias = (high[i] + low[i]) / 2.0;
                assert!((row[i] - (m[i].tanh() * scale + bias)).abs() < 1e-6);
            }
        }
        // Noise of +-50 standard deviations saturates the tanh: the actions sit at the bounds.
        let big: Vec<f32> = (0..15).map(|i| if i % 2 == 0 { 50.0 } else { -50.0 }).collect();
        let (actions, logp) = a.sample(&x, &Tensor::from_slice(&big, (5, 3), &d).unwrap()).unwrap();
        for row in actions.to_vec2::<f32>().unwrap() {
            for i in 0..3 {
                assert!(row[i] >= low[i] - 1e-6 && row[i] <= high[i] + 1e-6, "{row:?}");
            }
        }
        assert!(logp.to_vec1::<f32>().unwrap().iter().all(|l| l.is_finite()));
    }

    #[test]
    fn fast_actions_match_candle() {
        let d = Device::Cpu;
        let a = SquashedGaussianActor::new(5, &[-1.0, 0.0], &[1.0, 3.0], &[64, 64], Activation::Relu, 3, &d).unwrap();
        let fast = a.fast().unwrap();
        assert_eq!((fast.act_dim(), fast.obs_dim()), (2, 5));
        for rows in [1, 3, 7, 70] {
            let (o, eps) = (obs(rows, 5), noise(rows, 2));
            let x = Tensor::from_slice(&o, (rows, 5), &d).unwrap();
            let want_det = a.deterministic(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (want_noisy, _) = a.sample(&x, &Tensor::from_slice(&eps, (rows, 2), &d).unwrap()).unwrap();
            let want_noisy = want_noisy.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut out = Vec::new();
            fast.act(&o, rows, None, &mut out);
            for (p, q) in out.iter().zip(&want_det) {
                assert!((p - q).abs() < 1e-5, "{rows} rows deterministic: {p} vs {q}");
            }
            assert_eq!(out.len(), want_det.len());
            fast.act(&o, rows, Some(&eps), &mut out);
            for (p, q) in out.iter().zip(&want_noisy) {
                assert!((p - q).abs() < 1e-5, "{rows} rows noisy: {p} vs {q}");
            }
        }
    }

    #[test]
    fn bad_bounds_name_the_dimension() {
        let new = |low: &[f32], high: &[f32]| {
            SquashedGaussianActor::new(3, low, high, &[4], Activation::Relu, 0, &Device::Cpu).unwrap_err().to_string()
        };
        assert_eq!(
            new(&[-1.0, f32::NEG_INFINITY], &[1.0, 1.0]),
            "unsupported space: the squashed Gaussian actor needs finite action bounds with low < high; \
             dimension 1 has low -inf, high 1"
        );
        assert!(new(&[-1.0, 2.0], &[1.0, 2.0]).ends_with("dimension 1 has low 2, high 2"));
        assert!(new(&[f32::NAN], &[1.0]).ends_with("dimension 0 has low NaN, high 1"));
        assert!(new(&[-f32::MAX], &[f32::MAX]).ends_with(
            "dimension 0 has low -340282350000000000000000000000000000000, high 340282350000000000000000000000000000000"
        ));
        assert_eq!(new(&[-1.0], &[1.0, 2.0]), "unsupported space: action bounds: 1 low values, 2 high values");
        assert_eq!(new(&[], &[]), "unsupported space: action space Box(0) has no elements");
    }

    #[test]
    fn same_seed_same_weights_within_pytorch_bounds() {
        let make = |seed| {
            SquashedGaussianActor::new(3, &[-1.0; 2], &[1.0; 2], &[8, 8], Activation::Relu, seed, &Device::Cpu).unwrap()
        };
        assert_eq!(values(&make(4).vars()), values(&make(4).vars()));
        assert_ne!(values(&make(4).vars()), values(&make(5).vars()));
        crate::test_utils::assert_pytorch_default_bounds(&make(4).named_vars());
    }

    #[test]
    fn actor_safetensors_round_trip_and_bound_checks() {
        let d = Device::Cpu;
        let make = |seed, high: f32| {
            SquashedGaussianActor::new(3, &[-1.0; 2], &[high; 2], &[8], Activation::Relu, seed, &d).unwrap()
        };
        let a = make(1, 1.0);
        let bytes = a.to_safetensors(9).unwrap();
        let mut b = make(2, 1.0);
        assert_eq!(b.load_safetensors(&bytes).unwrap(), 9);
        assert_eq!(values(&a.vars()), values(&b.vars()));
        let mut wide = make(2, 2.0);
        let before = values(&wide.vars());
        let err = wide.load_safetensors(&bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"action_high\" is [1.0, 1.0], this network has [2.0, 2.0]");
        assert_eq!(values(&wide.vars()), before);
        let mut bigger = SquashedGaussianActor::new(3, &[-1.0; 2], &[1.0; 2], &[9], Activation::Relu, 0, &d).unwrap();
        let err = bigger.load_safetensors(&bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"trunk.0.weight\" has shape [8, 3], the policy expects [9, 3]");
        let q = crate::QNetwork::new(3, 2, &[8], Activation::Relu, false, 0, &d).unwrap();
        let err = b.load_safetensors(&q.to_safetensors(1).unwrap()).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: they are q_network weights, this network is a squashed_gaussian");
    }

    /// SAC's actor loss through a frozen critic: same Q-values and the same gradient at the
    /// actions, bit for bit, and no gradient for any critic var.
    #[test]
    fn frozen_critic_passes_gradients_to_the_actions_only() {
        let d = Device::Cpu;
        let c = QCritic::new("qf1", 3, 2, &[16, 16], Activation::Relu, 4, &d).unwrap();
        let o = Tensor::from_slice(&obs(6, 3), (6, 3), &d).unwrap();
        let a = Var::from_slice(&noise(6, 2), (6, 2), &d).unwrap();
        let (q, q_frozen) = (c.forward(&o, &a).unwrap(), c.forward_frozen(&o, &a).unwrap());
        assert_eq!(q.to_vec1::<f32>().unwrap(), q_frozen.to_vec1::<f32>().unwrap());
        let grads = q.sum_all().unwrap().backward().unwrap();
        let frozen = q_frozen.sum_all().unwrap().backward().unwrap();
        let at_actions = |g: &candle_core::backprop::GradStore| g.get(a.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(at_actions(&grads), at_actions(&frozen));
        for v in c.vars() {
            assert!(grads.get(v.as_tensor()).is_some());
            assert!(frozen.get(v.as_tensor()).is_none(), "a frozen critic var got a gradient");
        }
    }

    #[test]
    fn critic_reads_the_concatenation_and_updates_like_a_target() {
        let d = Device::Cpu;
        let c = QCritic::new("qf1", 3, 2, &[16, 16], Activation::Relu, 0, &d).unwrap();
        let names: Vec<String> = c.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "qf1.0.weight");
        assert_eq!(c.named_vars()[0].1.dims(), [16, 5]);
        let o = Tensor::from_slice(&obs(4, 3), (4, 3), &d).unwrap();
        let a = Tensor::from_slice(&noise(4, 2), (4, 2), &d).unwrap();
        let q = c.forward(&o, &a).unwrap();
        assert_eq!(q.dims(), [4]);
        let want = c.mlp.forward(&Tensor::cat(&[&o, &a], 1).unwrap()).unwrap().squeeze(1).unwrap();
        assert_eq!(q.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
        let err = c.forward(&a, &o).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid model config: critic input: observations [4, 2] and actions [4, 3], expected [B, 3] and [B, 2]"
        );

        let target = c.duplicate().unwrap();
        assert_eq!(values(&target.vars()), values(&c.vars()));
        let other = QCritic::new("qf1", 3, 2, &[16, 16], Activation::Relu, 1, &d).unwrap();
        let before = values(&target.vars());
        target.soft_update_from(&other, 0.005).unwrap();
        for ((t, s), new) in before.iter().zip(values(&other.vars())).zip(values(&target.vars())) {
            for ((t, s), x) in t.iter().zip(s).zip(new) {
                let want = f64::from(*t) + 0.005 * (f64::from(s) - f64::from(*t));
                assert!((f64::from(x) - want).abs() < 1e-7);
            }
        }
        assert_eq!(values(&c.vars()), before, "the online critic is untouched");
        target.soft_update_from(&other, 1.0).unwrap();
        assert_eq!(values(&target.vars()), values(&other.vars()));

        // Critics and their targets in one checkpoint.
        let mut all = c.named_vars();
        all.extend(target.named_vars().into_iter().map(|(n, v)| (format!("target.{n}"), v)));
        let bytes = crate::vars_to_safetensors(&all, &[("step", "5".into())]).unwrap();
        let (c2, t2) = (
            QCritic::new("qf1", 3, 2, &[16, 16], Activation::Relu, 7, &d).unwrap(),
            QCritic::new("qf1", 3, 2, &[16, 16], Activation::Relu, 8, &d).unwrap(),
        );
        let mut all2 = c2.named_vars();
        all2.extend(t2.named_vars().into_iter().map(|(n, v)| (format!("target.{n}"), v)));
        let meta = crate::load_vars_safetensors(&all2, &bytes).unwrap();
        assert_eq!(meta["step"], "5");
        assert_eq!(values(&c2.vars()), values(&c.vars()));
        assert_eq!(values(&t2.vars()), values(&target.vars()));
    }
}
