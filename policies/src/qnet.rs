//! DQN's Q-network ([`QNetwork`]), plain or dueling, its target-network helpers, weights and
//! plain-`f32` fast path ([`FastQNetwork`]).
//!
//! Parameters and their safetensors names:
//! - plain: an MLP `obs_dim -> hiddens... -> n_actions` named `q.{i}.weight|bias`, the
//!   activation between layers (CleanRL's `dqn.py` `QNetwork`);
//! - dueling (Wang et al. 2016): a trunk `trunk.{i}` with the activation after every layer, then
//!   a value head `value` (1 output) and an advantage head `advantage` (`n_actions`), combined as
//!   `Q = V + A - mean_a A`.
//!
//! Init: PyTorch's default `nn.Linear` init from `NpRandom::from_seed(seed)` (see [`crate::Mlp`]),
//! layers drawn in the order above.
//!
//! Weights metadata: `format_version`, `policy_version` (read by [`crate::weights_version`]),
//! `kind` (`q_network`), `obs_dim`, `n_actions`, `dueling`, `hiddens` (JSON list), `activation`.

use candle_core::{D, Device, Tensor, Var};
use rl_env::rng::NpRandom;

use crate::config::Activation;
use crate::distributions::argmax_row;
use crate::error::{PolicyError, Result};
use crate::mlp::{
    FastTrunkHeads, Mlp, activation_name, check_meta, check_sizes, dense_vars, duplicate_dense, linear_stack,
    read_checked, run_layers, soft_update_vars, torch_linear, vars_to_safetensors,
};
use crate::model::Dense;
use crate::weights::{WEIGHTS_FORMAT_VERSION, check_format, metadata, weights_version};

/// The `kind` metadata of Q-network weights.
const KIND: &str = "q_network";

/// The layers of a plain or dueling Q-network.
#[derive(Debug)]
enum Body {
    Plain(Mlp),
    Dueling { trunk: Vec<Dense>, value: Dense, advantage: Dense },
}

/// DQN's Q-network: observations `[B, obs_dim]` to Q-values `[B, n_actions]`, plain or dueling
/// (see the module docs).
#[derive(Debug)]
pub struct QNetwork {
    obs_dim: usize,
    n_actions: usize,
    hiddens: Vec<usize>,
    act: Activation,
    body: Body,
}

impl QNetwork {
    /// A freshly initialized network on `device`; `seed` fixes the init (the same on every
    /// device). Errors: `obs_dim`, `n_actions` or a hidden size of 0; a dueling network without
    /// hidden layers.
    pub fn new(
        obs_dim: usize,
        n_actions: usize,
        hiddens: &[usize],
        act: Activation,
        dueling: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        check_sizes("q_network", obs_dim, hiddens, &[n_actions])?;
        let mut rng = NpRandom::from_seed(seed);
        let body = if dueling {
            let Some(&last) = hiddens.last() else {
                return Err(PolicyError::Config("q_network: a dueling network needs at least one hidden layer".into()));
            };
            let trunk = linear_stack("trunk", obs_dim, hiddens, &mut rng, device)?;
            let value = torch_linear("value".into(), last, 1, &mut rng, device)?;
            let advantage = torch_linear("advantage".into(), last, n_actions, &mut rng, device)?;
            Body::Dueling { trunk, value, advantage }
        } else {
            Body::Plain(Mlp::new("q", obs_dim, hiddens, n_actions, act, &mut rng, device)?)
        };
        Ok(Self { obs_dim, n_actions, hiddens: hiddens.to_vec(), act, body })
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// Whether the network is dueling.
    pub fn dueling(&self) -> bool {
        matches!(self.body, Body::Dueling { .. })
    }

    /// Q-values `[B, n_actions]` of observations `[B, obs_dim]`.
    pub fn forward(&self, obs: &Tensor) -> Result<Tensor> {
        match &self.body {
            Body::Plain(mlp) => mlp.forward(obs),
            Body::Dueling { trunk, value, advantage } => {
                let h = run_layers(trunk, self.act, obs)?;
                let v = value.forward(&h, None)?;
                let a = advantage.forward(&h, None)?;
                let centered = a.broadcast_sub(&a.mean_keepdim(D::Minus1)?)?;
                Ok(centered.broadcast_add(&v)?)
            }
        }
    }

    /// Every parameter with its name, in the order of the module docs.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match &self.body {
            Body::Plain(mlp) => mlp.named_vars(),
            Body::Dueling { trunk, value, advantage } => dense_vars(trunk.iter().chain([value, advantage])),
        }
    }

    /// Every parameter, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// `self <- tau * source + (1 - tau) * self` for every parameter (`tau = 1`: a hard copy, as
    /// DQN's target network takes every `target_network_frequency` steps). The architectures must
    /// match.
    pub fn soft_update_from(&self, source: &QNetwork, tau: f64) -> Result<()> {
        soft_update_vars(&self.named_vars(), &source.named_vars(), tau)
    }

    /// A second network with the same architecture and a copy of the weights (the target
    /// network), in its own storage.
    pub fn duplicate(&self) -> Result<QNetwork> {
        let body = match &self.body {
            Body::Plain(mlp) => Body::Plain(mlp.duplicate()?),
            Body::Dueling { trunk, value, advantage } => Body::Dueling {
                trunk: trunk.iter().map(duplicate_dense).collect::<Result<_>>()?,
                value: duplicate_dense(value)?,
                advantage: duplicate_dense(advantage)?,
            },
        };
        Ok(Self { hiddens: self.hiddens.clone(), body, ..*self })
    }

    /// The metadata that describes the architecture.
    fn arch_meta(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", KIND.to_string()),
            ("obs_dim", self.obs_dim.to_string()),
            ("n_actions", self.n_actions.to_string()),
            ("dueling", self.dueling().to_string()),
            ("hiddens", serde_json::to_string(&self.hiddens).expect("a list of numbers serializes")),
            ("activation", activation_name(self.act).to_string()),
        ]
    }

    /// The weights as safetensors bytes tagged with `version` and the architecture (see the
    /// module docs); the same weights and version always give the same bytes.
    pub fn to_safetensors(&self, version: u64) -> Result<Vec<u8>> {
        let mut meta =
            vec![("format_version", WEIGHTS_FORMAT_VERSION.to_string()), ("policy_version", version.to_string())];
        meta.extend(self.arch_meta());
        vars_to_safetensors(&self.named_vars(), &meta)
    }

    /// Loads weights written by [`QNetwork::to_safetensors`] and returns their version.
    ///
    /// Checks, failing on the first mismatch without changing anything: the format version and
    /// `kind`; every tensor's name, dtype and shape (errors name the tensor); then the rest of
    /// the architecture metadata (e.g. the activation, which no shape shows).
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<u64> {
        let meta = metadata(bytes)?;
        check_format(&meta)?;
        check_kind(&meta, KIND)?;
        let version = weights_version(bytes)?;
        let named = self.named_vars();
        let checked = read_checked(&named, bytes, &[])?;
        check_meta(&checked.meta, &self.arch_meta())?;
        checked.apply(&named)?;
        Ok(version)
    }

    /// A plain-`f32` snapshot of the current weights for rollout workers.
    pub fn fast(&self) -> Result<FastQNetwork> {
        let net = match &self.body {
            Body::Plain(mlp) => return Ok(FastQNetwork { net: mlp.fast()?.into_inner(), dueling: false }),
            Body::Dueling { trunk, value, advantage } => FastTrunkHeads::new(trunk, &[value, advantage], self.act)?,
        };
        Ok(FastQNetwork { net, dueling: true })
    }
}

/// Checks the `kind` metadata of weights.
pub(crate) fn check_kind(meta: &std::collections::HashMap<String, String>, want: &str) -> Result<()> {
    match meta.get("kind") {
        Some(k) if k == want => Ok(()),
        Some(k) => Err(PolicyError::Weights(format!("they are {k} weights, this network is a {want}"))),
        None => Err(PolicyError::Weights(format!("metadata lacks kind; expected {want}"))),
    }
}

/// A [`QNetwork`] in plain `f32` for rollout workers (epsilon-greedy acting); within 1e-5 of
/// [`QNetwork::forward`]. A snapshot does not follow later weight changes.
#[derive(Debug, Clone)]
pub struct FastQNetwork {
    net: FastTrunkHeads,
    dueling: bool,
}

impl FastQNetwork {
    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        if self.dueling { self.net.head_width(1) } else { self.net.head_width(0) }
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.net.n_in()
    }

    /// Q-values `[rows, n_actions]` row-major into `out` (resized) for observations
    /// `[rows, obs_dim]`.
    ///
    /// # Panics
    ///
    /// When `obs.len() != rows * obs_dim`.
    pub fn q_values(&self, obs: &[f32], rows: usize, out: &mut Vec<f32>) {
        let n = self.n_actions();
        out.resize(rows * n, 0.0);
        self.net.run(obs, rows, |start, block, heads| {
            let out = &mut out[start * n..(start + block) * n];
            if !self.dueling {
                out.copy_from_slice(heads[0]);
                return;
            }
            for ((q, v), a) in out.chunks_exact_mut(n).zip(heads[0]).zip(heads[1].chunks_exact(n)) {
                let mean = a.iter().sum::<f32>() / n as f32;
                for (qi, ai) in q.iter_mut().zip(a) {
                    *qi = (ai - mean) + v;
                }
            }
        });
    }

    /// Greedy actions (the largest Q-value, the first index on ties) of observations
    /// `[rows, obs_dim]` into `actions` (`rows` long).
    ///
    /// # Panics
    ///
    /// When `obs.len() != rows * obs_dim` or `actions.len() != rows`.
    pub fn greedy(&self, obs: &[f32], rows: usize, actions: &mut [usize]) {
        assert_eq!(actions.len(), rows, "actions: expected {rows} slots");
        let mut q = Vec::new();
        self.q_values(obs, rows, &mut q);
        for (a, row) in actions.iter_mut().zip(q.chunks_exact(self.n_actions())) {
            *a = argmax_row(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyError;

    fn obs(rows: usize, dim: usize) -> Vec<f32> {
        (0..rows * dim).map(|i| ((i * 29 % 41) as f32 - 20.0) * 0.1).collect()
    }

    fn values(net: &QNetwork) -> Vec<Vec<f32>> {
        net.vars().iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    fn net(dueling: bool, seed: u64) -> QNetwork {
        QNetwork::new(4, 3, &[16, 8], Activation::Relu, dueling, seed, &Device::Cpu).unwrap()
    }

    #[test]
    fn shapes_and_names() {
        let names = |n: &QNetwork| -> Vec<(String, Vec<usize>)> {
            n.named_vars().into_iter().map(|(k, v)| (k, v.dims().to_vec())).collect()
        };
        let plain = net(false, 0);
        assert_eq!(names(&plain)[4..], [("q.2.weight".into(), vec![3, 8]), ("q.2.bias".into(), vec![3])]);
        let dueling = net(true, 0);
        let got = names(&dueling);
        assert_eq!(got[0], ("trunk.0.weight".into(), vec![16, 4]));
        assert_eq!(
            got[4..],
            [
                ("value.weight".into(), vec![1, 8]),
                ("value.bias".into(), vec![1]),
                ("advantage.weight".into(), vec![3, 8]),
                ("advantage.bias".into(), vec![3])
            ]
        );
        let x = Tensor::from_slice(&obs(5, 4), (5, 4), &Device::Cpu).unwrap();
        assert_eq!(plain.forward(&x).unwrap().dims(), [5, 3]);
        assert_eq!(dueling.forward(&x).unwrap().dims(), [5, 3]);
        let err = QNetwork::new(4, 3, &[], Activation::Relu, true, 0, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: q_network: a dueling network needs at least one hidden layer");
        let err = QNetwork::new(4, 0, &[8], Activation::Relu, false, 0, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: q_network: the output has no elements");
    }

    /// On hand-set weights: trunk h = relu(x) (identity weight, zero bias), V = 2 h_0 + 1,
    /// A = [h_0, h_1, -h_0 - 3 h_1] (so mean A = -h_1), hence Q = V + A - mean A.
    #[test]
    fn dueling_combines_value_and_centered_advantage() {
        let d = Device::Cpu;
        let n = QNetwork::new(2, 3, &[2], Activation::Relu, true, 0, &d).unwrap();
        let set = |name: &str, t: Tensor| {
            let (_, v) = n.named_vars().into_iter().find(|(k, _)| k == name).unwrap();
            v.set(&t).unwrap();
        };
        set("trunk.0.weight", Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &d).unwrap());
        set("trunk.0.bias", Tensor::new(&[0.0f32, 0.0], &d).unwrap());
        set("value.weight", Tensor::new(&[[2.0f32, 0.0]], &d).unwrap());
        set("value.bias", Tensor::new(&[1.0f32], &d).unwrap());
        set("advantage.weight", Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [-1.0, -3.0]], &d).unwrap());
        set("advantage.bias", Tensor::new(&[0.0f32, 0.0, 0.0], &d).unwrap());
        let x = Tensor::new(&[[0.5f32, 2.0], [3.0, -1.0]], &d).unwrap();
        let q = n.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        // Row 0: h = [0.5, 2], V = 2, A = [0.5, 2, -6.5], mean A = -4/3.
        // Row 1: h = [3, 0], V = 7, A = [3, 0, -3], mean A = 0.
        let want = [[2.0 + 0.5 + 4.0 / 3.0, 2.0 + 2.0 + 4.0 / 3.0, 2.0 - 6.5 + 4.0 / 3.0], [10.0, 7.0, 4.0]];
        for (row, w) in q.iter().zip(want) {
            for (a, b) in row.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{q:?}");
            }
            // mean_a Q = V, and Q - mean_a Q = A - mean_a A.
        }
        let mean_q: Vec<f32> = q.iter().map(|r| r.iter().sum::<f32>() / 3.0).collect();
        assert!((mean_q[0] - 2.0).abs() < 1e-6 && (mean_q[1] - 7.0).abs() < 1e-6, "{mean_q:?}");
    }

    #[test]
    fn fast_q_values_and_greedy_match_candle() {
        for dueling in [false, true] {
            let n = net(dueling, 2);
            let fast = n.fast().unwrap();
            assert_eq!((fast.n_actions(), fast.obs_dim()), (3, 4));
            for rows in [1, 3, 7, 70] {
                let o = obs(rows, 4);
                let want = n.forward(&Tensor::from_slice(&o, (rows, 4), &Device::Cpu).unwrap()).unwrap();
                let greedy_want: Vec<usize> =
                    want.argmax(1).unwrap().to_vec1::<u32>().unwrap().into_iter().map(|a| a as usize).collect();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let mut q = Vec::new();
                fast.q_values(&o, rows, &mut q);
                assert_eq!(q.len(), want.len());
                for (a, b) in q.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "dueling {dueling}, {rows} rows: {a} vs {b}");
                }
                let mut greedy = vec![usize::MAX; rows];
                fast.greedy(&o, rows, &mut greedy);
                assert_eq!(greedy, greedy_want, "dueling {dueling}, {rows} rows");
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_of_tied_actions() {
        let n = QNetwork::new(1, 3, &[], Activation::Relu, false, 0, &Device::Cpu).unwrap();
        for (_, v) in n.named_vars() {
            v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        }
        let mut a = [9usize; 2];
        n.fast().unwrap().greedy(&[1.0, -1.0], 2, &mut a);
        assert_eq!(a, [0, 0]);
    }

    #[test]
    fn same_seed_same_weights_and_pytorch_bounds() {
        assert_eq!(values(&net(true, 7)), values(&net(true, 7)));
        assert_ne!(values(&net(true, 7)), values(&net(true, 8)));
        for dueling in [false, true] {
            crate::test_utils::assert_pytorch_default_bounds(&net(dueling, 1).named_vars());
        }
    }

    #[test]
    fn duplicate_and_soft_update() {
        let online = net(true, 3);
        let target = online.duplicate().unwrap();
        assert_eq!(values(&online), values(&target));
        let other = net(true, 4);
        let before = values(&target);
        target.soft_update_from(&other, 0.005).unwrap();
        for ((t, s), new) in before.iter().zip(values(&other)).zip(values(&target)) {
            for ((t, s), x) in t.iter().zip(s).zip(new) {
                let want = f64::from(*t) + 0.005 * (f64::from(s) - f64::from(*t));
                assert!((f64::from(x) - want).abs() < 1e-7);
            }
        }
        // The online network is untouched: the duplicate has its own storage.
        assert_eq!(values(&online), before);
        target.soft_update_from(&other, 1.0).unwrap();
        assert_eq!(values(&target), values(&other));
        let err = target.soft_update_from(&net(false, 0), 1.0).unwrap_err().to_string();
        assert!(err.contains("\"trunk.0.weight\" [16, 4] does not match source parameter \"q.0.weight\""), "{err}");
    }

    #[test]
    fn safetensors_round_trip_and_mismatches() {
        let a = net(true, 5);
        let bytes = a.to_safetensors(42).unwrap();
        assert_eq!(bytes, a.to_safetensors(42).unwrap());
        assert_eq!(crate::weights_version(&bytes).unwrap(), 42);
        let mut b = net(true, 6);
        assert_eq!(b.load_safetensors(&bytes).unwrap(), 42);
        assert_eq!(values(&a), values(&b));

        let mut wider = QNetwork::new(4, 3, &[16, 9], Activation::Relu, true, 0, &Device::Cpu).unwrap();
        let before = values(&wider);
        let err = wider.load_safetensors(&bytes).unwrap_err();
        assert!(matches!(&err, PolicyError::TensorShape { name, .. } if name == "trunk.1.weight"), "{err}");
        assert_eq!(values(&wider), before, "a failed load changes nothing");
        let mut more_actions = QNetwork::new(4, 5, &[16, 8], Activation::Relu, true, 0, &Device::Cpu).unwrap();
        let err = more_actions.load_safetensors(&bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"advantage.weight\" has shape [3, 8], the policy expects [5, 8]");
        let err = net(false, 0).load_safetensors(&bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"q.0.weight\" is missing");
        let mut tanh = QNetwork::new(4, 3, &[16, 8], Activation::Tanh, true, 0, &Device::Cpu).unwrap();
        let err = tanh.load_safetensors(&bytes).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot load weights: they are for a network with activation relu, this one has activation tanh"
        );
        let actor = crate::ActorCritic::new(
            &crate::PolicyConfig::default(),
            &rl_env::Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap(),
            &rl_env::Space::discrete(3).unwrap(),
            0,
        )
        .unwrap();
        let err = net(true, 0).load_safetensors(&actor.to_safetensors(1).unwrap()).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: metadata lacks kind; expected q_network");
        let mut meta = vec![("format_version", "1".to_string()), ("policy_version", "3".to_string())];
        meta.extend(a.arch_meta());
        meta[2].1 = "squashed_gaussian".into();
        let err = b.load_safetensors(&vars_to_safetensors(&a.named_vars(), &meta).unwrap()).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: they are squashed_gaussian weights, this network is a q_network");
    }
}
