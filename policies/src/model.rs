//! The candle actor-critic: MLP trunk(s), a policy head and a value head, with orthogonal init.
//!
//! Parameters, in the fixed order of [`ActorCritic::vars`] and with these safetensors names:
//! - separate trunks (`vf_share_layers: false`): `actor.{i}.weight|bias`, `pi.weight|bias`,
//!   `critic.{i}.weight|bias`, `vf.weight|bias`;
//! - shared trunk: `trunk.{i}.weight|bias`, `pi.*`, `vf.*`;
//! - Box actions add `log_std` (`[act_dim]`, initialized to `log_std_init`, 0 by default as in
//!   CleanRL's continuous PPO and SB3).
//!
//! Weights are `[out, in]` like PyTorch's `nn.Linear`, so a layer computes `x W^T + b`.
//! Init (CleanRL's `layer_init`): orthogonal with gain `sqrt(2)` for hidden layers, `0.01` for the
//! policy head, `1.0` for the value head; biases 0.

use std::fmt;

use candle_core::{DType, Device, Tensor, Var};
use rl_env::Space;
use rl_env::rng::NpRandom;
use serde::{Deserialize, Serialize};

use crate::bias_act::BiasAct;
use crate::categorical_ops::{CategoricalEntropy, CategoricalLogProb};
use crate::config::{Activation, PolicyConfig};
use crate::distributions::{Categorical, DiagGaussian};
use crate::error::{PolicyError, Result};
use crate::frozen::FrozenMatmul;
use crate::init::orthogonal;

/// What the policy head produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    /// Logits over `n` actions.
    Discrete {
        /// Number of actions.
        n: usize,
    },
    /// Means of a `dim`-dimensional diagonal Gaussian.
    Continuous {
        /// Action dimension.
        dim: usize,
    },
}

impl ActionKind {
    /// Policy-head outputs.
    pub fn head_size(self) -> usize {
        match self {
            ActionKind::Discrete { n } => n,
            ActionKind::Continuous { dim } => dim,
        }
    }
}

impl fmt::Display for ActionKind {
    /// `Discrete(n)` or `Box(dim)`, like the spaces they come from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKind::Discrete { n } => write!(f, "Discrete({n})"),
            ActionKind::Continuous { dim } => write!(f, "Box({dim})"),
        }
    }
}

/// The shape of a policy: enough to rebuild it and to check that weights fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// The network config.
    pub config: PolicyConfig,
    /// Flat observation length.
    pub obs_dim: usize,
    /// Action head.
    pub action: ActionKind,
}

impl fmt::Display for Architecture {
    /// One line with every field, e.g.
    /// `(obs_dim 4, fcnet_hiddens [64, 64], tanh, separate trunks, actions Discrete(2))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let act = match c.fcnet_activation {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        };
        let trunks = if c.vf_share_layers { "shared trunk" } else { "separate trunks" };
        write!(
            f,
            "(obs_dim {}, fcnet_hiddens {:?}, {act}, {trunks}, actions {})",
            self.obs_dim, c.fcnet_hiddens, self.action
        )
    }
}

impl Architecture {
    /// Every parameter's name and shape, in the order of [`ActorCritic::named_vars`], computed
    /// without building anything (so a claimed architecture can be checked against the tensors
    /// that come with it before any memory is spent on it).
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let hiddens = &self.config.fcnet_hiddens;
        let mut out = Vec::new();
        let mut dense = |name: String, n_in: usize, n_out: usize| {
            out.push((format!("{name}.weight"), vec![n_out, n_in]));
            out.push((format!("{name}.bias"), vec![n_out]));
        };
        let last = hiddens.last().copied().unwrap_or(self.obs_dim);
        let trunk = |prefix: &str, dense: &mut dyn FnMut(String, usize, usize)| {
            let mut d = self.obs_dim;
            for (i, &h) in hiddens.iter().enumerate() {
                dense(format!("{prefix}.{i}"), d, h);
                d = h;
            }
        };
        let shared = self.config.vf_share_layers;
        trunk(if shared { "trunk" } else { "actor" }, &mut dense);
        dense("pi".into(), last, self.action.head_size());
        if !shared {
            trunk("critic", &mut dense);
        }
        dense("vf".into(), last, 1);
        if let ActionKind::Continuous { dim } = self.action {
            out.push(("log_std".into(), vec![dim]));
        }
        out
    }
}

/// One dense layer's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub(crate) name: String,
    pub(crate) w: Var,
    pub(crate) b: Var,
}

impl Dense {
    fn new(name: String, n_in: usize, n_out: usize, gain: f32, rng: &mut NpRandom, device: &Device) -> Result<Self> {
        let w = Var::from_vec(orthogonal(n_out, n_in, gain, rng.bits_mut()), (n_out, n_in), device)?;
        let b = Var::zeros(n_out, DType::F32, device)?;
        Ok(Self { name, w, b })
    }

    /// `act(x W^T + b)` for `x` `[batch, in]`; on the CPU the bias and activation are one fused
    /// op ([`BiasAct`]), elsewhere primitive candle ops.
    pub(crate) fn forward(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        bias_act(x.matmul(&self.w.as_tensor().t()?)?, self.b.as_tensor(), act)
    }

    /// [`Dense::forward`] with the layer's parameters as constants: gradients flow to `x` only
    /// ([`FrozenMatmul`] on the CPU, detached parameters elsewhere).
    pub(crate) fn forward_frozen(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        let w = self.w.as_tensor();
        let z = if x.device().is_cpu() {
            x.contiguous()?.apply_op1(FrozenMatmul::new(w))?
        } else {
            x.matmul(&w.detach().t()?)?
        };
        bias_act(z, &self.b.as_tensor().detach(), act)
    }
}

/// `act(z + b)` for `z` `[batch, out]`: the part of a Linear layer after its matrix product.
fn bias_act(z: Tensor, b: &Tensor, act: Option<Activation>) -> Result<Tensor> {
    if z.device().is_cpu() {
        return Ok(z.contiguous()?.apply_op2(b, BiasAct(act))?);
    }
    let z = z.broadcast_add(b)?;
    Ok(match act {
        Some(Activation::Tanh) => z.tanh()?,
        Some(Activation::Relu) => z.relu()?,
        None => z,
    })
}

fn mlp(prefix: &str, n_in: usize, hiddens: &[usize], rng: &mut NpRandom, device: &Device) -> Result<Vec<Dense>> {
    let mut layers = Vec::with_capacity(hiddens.len());
    let mut d = n_in;
    for (i, &h) in hiddens.iter().enumerate() {
        layers.push(Dense::new(format!("{prefix}.{i}"), d, h, 2.0f32.sqrt(), rng, device)?);
        d = h;
    }
    Ok(layers)
}

fn run_trunk(layers: &[Dense], act: Activation, x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for l in layers {
        h = l.forward(&h, Some(act))?;
    }
    Ok(h)
}

/// A candle actor-critic for Discrete or Box action spaces.
///
/// Observations are the env's flat `f32` observations, `[batch, obs_dim]` with
/// `obs_dim = obs_space.flat_dim()` (a Discrete observation is its index as one value; no
/// one-hot encoding). Discrete actions are indices `0..n` into the action space, to which a
/// caller adds the space's `start` before stepping the env. Box actions are unclipped Gaussian
/// samples.
#[derive(Debug)]
pub struct ActorCritic {
    pub(crate) arch: Architecture,
    /// The policy trunk, or the shared trunk.
    pub(crate) actor: Vec<Dense>,
    /// The value trunk; empty when shared.
    pub(crate) critic: Vec<Dense>,
    pub(crate) pi: Dense,
    pub(crate) vf: Dense,
    pub(crate) log_std: Option<Var>,
    device: Device,
}

impl ActorCritic {
    /// Builds a freshly initialized policy on the CPU for the given spaces; `seed` fixes the init.
    ///
    /// Errors: an invalid `config`, a MultiDiscrete action space (not supported yet), or a
    /// space with no elements to observe or act on.
    pub fn new(config: &PolicyConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self> {
        Self::new_on(config, obs_space, action_space, seed, &Device::Cpu)
    }

    /// [`ActorCritic::new`] on a chosen device. The init is drawn on the host, so a seed gives
    /// the same weights on every device.
    pub fn new_on(
        config: &PolicyConfig,
        obs_space: &Space,
        action_space: &Space,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let action = match action_space {
            Space::Discrete { n, .. } => ActionKind::Discrete { n: *n as usize },
            Space::Box(b) => ActionKind::Continuous { dim: b.len() },
            other => {
                return Err(PolicyError::UnsupportedSpace(format!(
                    "action space {other} is not supported yet; use Discrete or Box"
                )));
            }
        };
        let arch = Architecture { config: config.clone(), obs_dim: obs_space.flat_dim(), action };
        Self::from_architecture(&arch, seed, device)
    }

    /// Builds a freshly initialized policy of a known architecture.
    pub fn from_architecture(arch: &Architecture, seed: u64, device: &Device) -> Result<Self> {
        arch.config.validate()?;
        if arch.obs_dim == 0 {
            return Err(PolicyError::UnsupportedSpace("observation space has no elements".into()));
        }
        if arch.action.head_size() == 0 {
            return Err(PolicyError::UnsupportedSpace(format!("action space {} has no elements", arch.action)));
        }
        let mut rng = NpRandom::from_seed(seed);
        let hiddens = &arch.config.fcnet_hiddens;
        let last = *hiddens.last().expect("validated: at least one hidden layer");
        let shared = arch.config.vf_share_layers;
        let actor = mlp(if shared { "trunk" } else { "actor" }, arch.obs_dim, hiddens, &mut rng, device)?;
        let pi = Dense::new("pi".into(), last, arch.action.head_size(), 0.01, &mut rng, device)?;
        let critic = if shared { Vec::new() } else { mlp("critic", arch.obs_dim, hiddens, &mut rng, device)? };
        let vf = Dense::new("vf".into(), last, 1, 1.0, &mut rng, device)?;
        let log_std = match arch.action {
            ActionKind::Continuous { dim } => {
                Some(Var::from_vec(vec![arch.config.log_std_init as f32; dim], dim, device)?)
            }
            ActionKind::Discrete { .. } => None,
        };
        Ok(Self { arch: arch.clone(), actor, critic, pi, vf, log_std, device: device.clone() })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The action head: Discrete with `n` logits or Box with `dim` means.
    pub fn action_kind(&self) -> ActionKind {
        self.arch.action
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter, in a fixed order (see the module docs), with its name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        let mut push = |l: &Dense| {
            out.push((format!("{}.weight", l.name), l.w.clone()));
            out.push((format!("{}.bias", l.name), l.b.clone()));
        };
        self.actor.iter().for_each(&mut push);
        push(&self.pi);
        self.critic.iter().for_each(&mut push);
        push(&self.vf);
        if let Some(ls) = &self.log_std {
            out.push(("log_std".into(), ls.clone()));
        }
        out
    }

    /// Every parameter, for an optimizer (`candle_nn::AdamW::new(policy.vars(), params)`); the
    /// `Var`s share storage with the policy, so an optimizer step updates it.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The state-independent log standard deviations `[act_dim]` of a Box policy.
    pub fn log_std(&self) -> Option<&Var> {
        self.log_std.as_ref()
    }

    /// For observations `[batch, obs_dim]`: the policy-head output (`[batch, n]` logits for
    /// Discrete, `[batch, act_dim]` Gaussian means for Box) and the values `[batch]`.
    pub fn forward(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let act = self.arch.config.fcnet_activation;
        let h = run_trunk(&self.actor, act, obs)?;
        let head = self.pi.forward(&h, None)?;
        let hv = if self.critic.is_empty() { h } else { run_trunk(&self.critic, act, obs)? };
        let value = self.vf.forward(&hv, None)?.squeeze(1)?;
        Ok((head, value))
    }

    /// Values `[batch]` of observations `[batch, obs_dim]`. With separate trunks this skips the
    /// policy trunk and head.
    pub fn value(&self, obs: &Tensor) -> Result<Tensor> {
        let trunk = if self.critic.is_empty() { &self.actor } else { &self.critic };
        let h = run_trunk(trunk, self.arch.config.fcnet_activation, obs)?;
        Ok(self.vf.forward(&h, None)?.squeeze(1)?)
    }

    /// For PPO's update, given observations `[batch, obs_dim]` and the actions taken: the
    /// log-probabilities `[batch]` of the actions, the entropies `[batch]` of the action
    /// distributions and the values `[batch]`, all differentiable.
    ///
    /// Discrete actions are `[batch]` indices of any integer or float dtype (converted to
    /// `u32`); an index out of range is an error. Box actions are `[batch, act_dim]` `f32`.
    pub fn evaluate_actions(&self, obs: &Tensor, actions: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (head, value) = self.forward(obs)?;
        match &self.log_std {
            None if head.device().is_cpu() => {
                let actions = actions.to_dtype(DType::U32)?;
                let logp = head.apply_op2(&actions, CategoricalLogProb)?;
                Ok((logp, head.apply_op1(CategoricalEntropy)?, value))
            }
            None => {
                let d = Categorical::from_logits(&head)?;
                Ok((d.log_prob(actions)?, d.entropy()?, value))
            }
            Some(ls) => {
                let d = DiagGaussian::new(&head, ls.as_tensor())?;
                Ok((d.log_prob(actions)?, d.entropy()?, value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_device;

    fn spaces() -> (Space, Space, Space) {
        let obs = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
        let disc = Space::discrete(2).unwrap();
        let cont = Space::boxed(vec![-2.0; 3], vec![2.0; 3], vec![3]).unwrap();
        (obs, disc, cont)
    }

    fn names(ac: &ActorCritic) -> Vec<String> {
        ac.named_vars().into_iter().map(|(n, _)| n).collect()
    }

    fn shapes_and_names(device: &Device) -> Result<()> {
        let (obs, disc, cont) = spaces();
        let ac = ActorCritic::new_on(&PolicyConfig::default(), &obs, &disc, 0, device)?;
        assert_eq!(ac.action_kind(), ActionKind::Discrete { n: 2 });
        assert_eq!(
            names(&ac),
            [
                "actor.0.weight",
                "actor.0.bias",
                "actor.1.weight",
                "actor.1.bias",
                "pi.weight",
                "pi.bias",
                "critic.0.weight",
                "critic.0.bias",
                "critic.1.weight",
                "critic.1.bias",
                "vf.weight",
                "vf.bias"
            ]
        );
        let dims: Vec<Vec<usize>> = ac.vars().iter().map(|v| v.dims().to_vec()).collect();
        assert_eq!(dims[..6], [vec![64, 4], vec![64], vec![64, 64], vec![64], vec![2, 64], vec![2]]);
        assert_eq!(dims[10..], [vec![1, 64], vec![1]]);
        let x = Tensor::zeros((5, 4), DType::F32, device)?;
        let (logits, v) = ac.forward(&x)?;
        assert_eq!((logits.dims(), v.dims()), (&[5usize, 2][..], &[5usize][..]));
        let (lp, ent, v) = ac.evaluate_actions(&x, &Tensor::new(&[0u32, 1, 1, 0, 1], device)?)?;
        assert_eq!((lp.dims(), ent.dims(), v.dims()), (&[5usize][..], &[5usize][..], &[5usize][..]));

        let shared = PolicyConfig { vf_share_layers: true, ..Default::default() };
        let ac = ActorCritic::new_on(&shared, &obs, &cont, 0, device)?;
        assert_eq!(ac.action_kind(), ActionKind::Continuous { dim: 3 });
        assert_eq!(
            names(&ac),
            [
                "trunk.0.weight",
                "trunk.0.bias",
                "trunk.1.weight",
                "trunk.1.bias",
                "pi.weight",
                "pi.bias",
                "vf.weight",
                "vf.bias",
                "log_std"
            ]
        );
        assert_eq!(ac.log_std().unwrap().as_tensor().to_vec1::<f32>()?, [0.0; 3]);
        let (lp, ent, v) = ac.evaluate_actions(&x, &Tensor::zeros((5, 3), DType::F32, device)?)?;
        assert_eq!((lp.dims(), ent.dims(), v.dims()), (&[5usize][..], &[5usize][..], &[5usize][..]));
        Ok(())
    }

    /// CleanRL's `layer_init`: orthogonal weights with gain sqrt(2) (hidden), 0.01 (policy head),
    /// 1 (value head), zero biases. An orthogonal `[out, in]` weight with `out <= in` has rows of
    /// norm `gain`; with `out > in` (the first layer, 64 x 4) columns of norm `gain`.
    fn init_gains_follow_cleanrl(device: &Device) -> Result<()> {
        let (obs, disc, _) = spaces();
        let ac = ActorCritic::new_on(&PolicyConfig::default(), &obs, &disc, 3, device)?;
        let row_norms = |v: &Var| -> Vec<f32> {
            v.as_tensor().sqr().unwrap().sum(1).unwrap().sqrt().unwrap().to_vec1::<f32>().unwrap()
        };
        let col_norms = |v: &Var| -> Vec<f32> {
            v.as_tensor().sqr().unwrap().sum(0).unwrap().sqrt().unwrap().to_vec1::<f32>().unwrap()
        };
        let all_near = |xs: Vec<f32>, want: f32| xs.iter().all(|x| (x - want).abs() < 1e-5 * want.max(1.0));
        assert!(all_near(row_norms(&ac.pi.w), 0.01));
        assert!(all_near(row_norms(&ac.vf.w), 1.0));
        assert!(all_near(row_norms(&ac.actor[1].w), 2.0f32.sqrt()));
        assert!(all_near(row_norms(&ac.critic[1].w), 2.0f32.sqrt()));
        assert!(all_near(col_norms(&ac.actor[0].w), 2.0f32.sqrt()));
        for (name, v) in ac.named_vars() {
            if name.ends_with(".bias") {
                assert!(v.as_tensor().flatten_all()?.to_vec1::<f32>()?.iter().all(|b| *b == 0.0), "{name}");
            }
        }
        Ok(())
    }

    /// The init is drawn on the host from the seed alone.
    fn same_seed_same_weights_different_seed_different(device: &Device) -> Result<()> {
        let (obs, disc, _) = spaces();
        let weights = |seed| -> Result<Vec<Vec<f32>>> {
            let ac = ActorCritic::new_on(&PolicyConfig::default(), &obs, &disc, seed, device)?;
            ac.vars().iter().map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)).collect()
        };
        assert_eq!(weights(7)?, weights(7)?);
        assert_ne!(weights(7)?[0], weights(8)?[0]);
        if !device.is_cpu() {
            let cpu = ActorCritic::new(&PolicyConfig::default(), &obs, &disc, 7)?;
            let host: Vec<Vec<f32>> =
                cpu.vars().iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
            assert_eq!(weights(7)?, host);
        }
        Ok(())
    }

    /// `value` agrees with the value output of `forward`, for both trunk layouts.
    fn value_matches_forward(device: &Device) -> Result<()> {
        let (obs, disc, _) = spaces();
        let x = Tensor::new(&[[0.5f32, -1.0, 0.25, 2.0], [0.0, 0.1, -0.3, 0.7]], device)?;
        for shared in [false, true] {
            let cfg = PolicyConfig { vf_share_layers: shared, ..Default::default() };
            let ac = ActorCritic::new_on(&cfg, &obs, &disc, 1, device)?;
            assert_eq!(ac.value(&x)?.to_vec1::<f32>()?, ac.forward(&x)?.1.to_vec1::<f32>()?);
        }
        Ok(())
    }

    test_device!(shapes_and_names, shapes_and_names_cpu, shapes_and_names_cuda);
    test_device!(init_gains_follow_cleanrl, init_gains_cpu, init_gains_cuda);
    test_device!(same_seed_same_weights_different_seed_different, seeded_init_cpu, seeded_init_cuda);
    test_device!(value_matches_forward, value_cpu, value_cuda);

    #[test]
    fn bad_configs_and_spaces_are_clear_errors() {
        let (obs, disc, _) = spaces();
        let bad = PolicyConfig { fcnet_hiddens: vec![64, 0], ..Default::default() };
        let err = ActorCritic::new(&bad, &obs, &disc, 0).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: fcnet_hiddens[1] is 0; every layer needs at least 1 unit");
        let md = Space::multi_discrete(vec![2, 3]).unwrap();
        let err = ActorCritic::new(&PolicyConfig::default(), &obs, &md, 0).unwrap_err();
        assert!(matches!(err, PolicyError::UnsupportedSpace(_)));
        assert_eq!(
            err.to_string(),
            "unsupported space: action space MultiDiscrete([2, 3]) is not supported yet; use Discrete or Box"
        );
        let empty = Space::boxed(vec![], vec![], vec![0]).unwrap();
        let err = ActorCritic::new(&PolicyConfig::default(), &obs, &empty, 0).unwrap_err().to_string();
        assert_eq!(err, "unsupported space: action space Box(0) has no elements");
        let err = ActorCritic::new(&PolicyConfig::default(), &empty, &disc, 0).unwrap_err().to_string();
        assert_eq!(err, "unsupported space: observation space has no elements");
    }

    #[test]
    fn architecture_displays_every_field() {
        let arch = Architecture {
            config: PolicyConfig {
                fcnet_hiddens: vec![32],
                fcnet_activation: Activation::Relu,
                vf_share_layers: true,
                log_std_init: 0.0,
            },
            obs_dim: 3,
            action: ActionKind::Continuous { dim: 1 },
        };
        assert_eq!(arch.to_string(), "(obs_dim 3, fcnet_hiddens [32], relu, shared trunk, actions Box(1))");
    }
}
