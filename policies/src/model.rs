//! The candle actor-critic: MLP trunk(s), a policy head and a value head, with orthogonal init.
//!
//! Parameters, in the fixed order of [`ActorCritic::vars`] and with these safetensors names:
//! - separate trunks (`vf_share_layers: false`): `actor.{i}.weight|bias`, `pi.weight|bias`,
//!   `critic.{i}.weight|bias`, `vf.weight|bias`;
//! - shared trunk: `trunk.{i}.weight|bias`, `pi.*`, `vf.*`;
//! - Box actions add `log_std` (`[act_dim]`, initialized to 0 as in CleanRL's continuous PPO).
//!
//! Weights are `[out, in]` like PyTorch's `nn.Linear`, so a layer computes `x W^T + b`.
//! Init (CleanRL's `layer_init`): orthogonal with gain `sqrt(2)` for hidden layers, `0.01` for the
//! policy head, `1.0` for the value head; biases 0.

use candle_core::{DType, Device, Tensor, Var};
use rl_env::Space;
use rl_env::rng::NpRandom;
use serde::{Deserialize, Serialize};

use crate::bias_act::BiasAct;
use crate::categorical_ops::{CategoricalEntropy, CategoricalLogProb};
use crate::config::{Activation, PolicyConfig};
use crate::distributions::{Categorical, DiagGaussian};
use crate::error::{PolicyError, Result};
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
    fn forward(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        let z = x.matmul(&self.w.as_tensor().t()?)?;
        if z.device().is_cpu() {
            return Ok(z.contiguous()?.apply_op2(self.b.as_tensor(), BiasAct(act))?);
        }
        let z = z.broadcast_add(self.b.as_tensor())?;
        Ok(match act {
            Some(Activation::Tanh) => z.tanh()?,
            Some(Activation::Relu) => z.relu()?,
            None => z,
        })
    }
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
    pub fn new(config: &PolicyConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self> {
        Self::new_on(config, obs_space, action_space, seed, &Device::Cpu)
    }

    /// [`ActorCritic::new`] on a chosen device.
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
        let mut rng = NpRandom::from_seed(seed);
        let hiddens = &arch.config.fcnet_hiddens;
        let last = *hiddens.last().expect("validated: at least one hidden layer");
        let shared = arch.config.vf_share_layers;
        let actor = mlp(if shared { "trunk" } else { "actor" }, arch.obs_dim, hiddens, &mut rng, device)?;
        let pi = Dense::new("pi".into(), last, arch.action.head_size(), 0.01, &mut rng, device)?;
        let critic = if shared { Vec::new() } else { mlp("critic", arch.obs_dim, hiddens, &mut rng, device)? };
        let vf = Dense::new("vf".into(), last, 1, 1.0, &mut rng, device)?;
        let log_std = match arch.action {
            ActionKind::Continuous { dim } => Some(Var::zeros(dim, DType::F32, device)?),
            ActionKind::Discrete { .. } => None,
        };
        Ok(Self { arch: arch.clone(), actor, critic, pi, vf, log_std, device: device.clone() })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
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

    /// Every parameter, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// Policy-head output (`[batch, n]` logits or `[batch, act_dim]` means) and values `[batch]`
    /// for observations `[batch, obs_dim]`.
    pub fn forward(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let act = self.arch.config.fcnet_activation;
        let h = run_trunk(&self.actor, act, obs)?;
        let head = self.pi.forward(&h, None)?;
        let hv = if self.critic.is_empty() { h } else { run_trunk(&self.critic, act, obs)? };
        let value = self.vf.forward(&hv, None)?.squeeze(1)?;
        Ok((head, value))
    }

    /// Values `[batch]` of observations `[batch, obs_dim]`.
    pub fn value(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.forward(obs)?.1)
    }

    /// For PPO's update: log-probabilities and entropies of `actions` (`[batch]` indices for
    /// Discrete, `[batch, act_dim]` for Box) and values, each `[batch]`.
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

    fn spaces() -> (Space, Space, Space) {
        let obs = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
        let disc = Space::discrete(2).unwrap();
        let cont = Space::boxed(vec![-2.0; 3], vec![2.0; 3], vec![3]).unwrap();
        (obs, disc, cont)
    }

    #[test]
    fn shapes_and_names() -> Result<()> {
        let (obs, disc, cont) = spaces();
        let ac = ActorCritic::new(&PolicyConfig::default(), &obs, &disc, 0)?;
        let names: Vec<String> = ac.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names[..6],
            ["actor.0.weight", "actor.0.bias", "actor.1.weight", "actor.1.bias", "pi.weight", "pi.bias"]
        );
        assert_eq!(names.len(), 12);
        let x = Tensor::zeros((5, 4), DType::F32, &Device::Cpu)?;
        let (logits, v) = ac.forward(&x)?;
        assert_eq!((logits.dims(), v.dims()), (&[5usize, 2][..], &[5usize][..]));

        let shared = PolicyConfig { vf_share_layers: true, ..Default::default() };
        let ac = ActorCritic::new(&shared, &obs, &cont, 0)?;
        let names: Vec<String> = ac.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
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
        let (lp, ent, v) = ac.evaluate_actions(&x, &Tensor::zeros((5, 3), DType::F32, &Device::Cpu)?)?;
        assert_eq!((lp.dims(), ent.dims(), v.dims()), (&[5usize][..], &[5usize][..], &[5usize][..]));
        Ok(())
    }

    #[test]
    fn init_gains_follow_cleanrl() -> Result<()> {
        let (obs, disc, _) = spaces();
        let ac = ActorCritic::new(&PolicyConfig::default(), &obs, &disc, 3)?;
        // An orthogonal [out, in] weight with out <= in has rows of norm = gain.
        let row_norm = |v: &Var| -> f32 {
            v.as_tensor().get(0).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt()
        };
        assert!((row_norm(&ac.pi.w) - 0.01).abs() < 1e-6);
        assert!((row_norm(&ac.vf.w) - 1.0).abs() < 1e-5);
        assert!((row_norm(&ac.actor[1].w) - 2.0f32.sqrt()).abs() < 1e-5);
        assert_eq!(ac.pi.b.as_tensor().to_vec1::<f32>()?, vec![0.0; 2]);
        Ok(())
    }

    #[test]
    fn bad_config_and_spaces_are_errors() {
        let (obs, disc, _) = spaces();
        let bad = PolicyConfig { fcnet_hiddens: vec![64, 0], ..Default::default() };
        let err = ActorCritic::new(&bad, &obs, &disc, 0).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: fcnet_hiddens[1] is 0; every layer needs at least 1 unit");
        let md = Space::multi_discrete(vec![2, 3]).unwrap();
        assert!(matches!(
            ActorCritic::new(&PolicyConfig::default(), &obs, &md, 0),
            Err(PolicyError::UnsupportedSpace(_))
        ));
    }
}
