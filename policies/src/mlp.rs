//! Plain MLPs with PyTorch's default `nn.Linear` init, target-network updates, their plain-`f32`
//! fast path, and named-tensor safetensors I/O: the building blocks of the DQN and SAC networks.
//!
//! Init: like PyTorch's `nn.Linear` (what CleanRL's `dqn.py` and `sac_continuous_action.py` and
//! SB3 use), every weight and every bias of a layer with `fan_in` inputs is uniform in
//! `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (PyTorch's `kaiming_uniform_(a = sqrt(5))` on the weight
//! gives exactly that bound). The values come from [`NpRandom::uniform`] in a fixed order: per
//! layer, the `[out, in]` weight row-major, then the bias; layers in the order of `named_vars`.
//! So a seed gives the same weights on every device and every run.
//!
//! Weights are `[out, in]` like PyTorch's, so a layer computes `x W^T + b` and `named_vars` can be
//! written with [`vars_to_safetensors`] for `safetensors.torch.load`.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rl_env::rng::NpRandom;
use safetensors::SafeTensors;

use crate::config::Activation;
use crate::error::{PolicyError, Result};
use crate::fast::{FAST_BLOCK_ROWS, Isa, blocks, dense_to_f32, run_trunk};
use crate::kernel::{DenseF32, TILE_ROWS};
use crate::model::Dense;
use crate::weights::{check_tensor, encode_f32, metadata};

/// A plain MLP: Linear layers with `act` between them, none after the last.
///
/// Parameters are named `prefix.{i}.weight|bias` for layer `i` (`0` takes the input); see the
/// module docs for the init.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Dense>,
    act: Activation,
}

impl Mlp {
    /// An MLP `n_in -> hiddens... -> n_out` (a single Linear layer when `hiddens` is empty), with
    /// PyTorch's default init drawn from `rng`.
    ///
    /// Errors: a size of 0 anywhere.
    pub fn new(
        prefix: &str,
        n_in: usize,
        hiddens: &[usize],
        n_out: usize,
        act: Activation,
        rng: &mut NpRandom,
        device: &Device,
    ) -> Result<Self> {
        check_sizes(prefix, n_in, hiddens, &[n_out])?;
        let mut layers = linear_stack(prefix, n_in, hiddens, rng, device)?;
        let last = hiddens.last().copied().unwrap_or(n_in);
        layers.push(torch_linear(format!("{prefix}.{}", hiddens.len()), last, n_out, rng, device)?);
        Ok(Self { layers, act })
    }

    /// Input width.
    pub fn n_in(&self) -> usize {
        self.layers[0].w.dims()[1]
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].w.dims()[0]
    }

    /// `[batch, n_in]` to `[batch, n_out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (last, hidden) = self.layers.split_last().expect("an MLP has at least one layer");
        last.forward(&run_layers(hidden, self.act, x)?, None)
    }

    /// [`Mlp::forward`] with every parameter a constant: the output's gradient reaches `x` and
    /// whatever `x` came from, never this MLP's vars (see [`crate::FrozenMatmul`]).
    pub fn forward_frozen(&self, x: &Tensor) -> Result<Tensor> {
        let (last, hidden) = self.layers.split_last().expect("an MLP has at least one layer");
        let mut h = x.clone();
        for l in hidden {
            h = l.forward_frozen(&h, Some(self.act))?;
        }
        last.forward_frozen(&h, None)
    }

    /// Every parameter with its name, layer by layer (weight, then bias).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        dense_vars(&self.layers)
    }

    /// Every parameter, in the order of [`Mlp::named_vars`], for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// `target <- tau * source + (1 - tau) * target` for every parameter of `self` (the target),
    /// computed as `target + tau * (source - target)`; `tau = 1` copies exactly. The two MLPs must
    /// have the same layer names and shapes.
    pub fn soft_update_from(&self, source: &Mlp, tau: f64) -> Result<()> {
        soft_update_vars(&self.named_vars(), &source.named_vars(), tau)
    }

    /// A second MLP with the same names and a copy of the current weights.
    pub fn duplicate(&self) -> Result<Mlp> {
        Ok(Self { layers: self.layers.iter().map(duplicate_dense).collect::<Result<_>>()?, act: self.act })
    }

    /// A plain-`f32` snapshot of the current weights for rollout workers.
    pub fn fast(&self) -> Result<FastMlp> {
        let (last, hidden) = self.layers.split_last().expect("an MLP has at least one layer");
        Ok(FastMlp { net: FastTrunkHeads::new(hidden, &[last], self.act)? })
    }
}

/// An [`Mlp`] in plain `f32` for rollout workers: the same network on slices, without candle.
///
/// It runs the fast kernel of [`crate::FastPolicy`] (blocks of [`FAST_BLOCK_ROWS`] rows, the
/// widest instruction set the CPU has), within 1e-5 of [`Mlp::forward`] for ordinary inputs and
/// bitwise the same whatever the batch size. A snapshot does not follow later weight changes.
#[derive(Debug, Clone)]
pub struct FastMlp {
    net: FastTrunkHeads,
}

impl FastMlp {
    /// The network, for the Q-network's fast path.
    pub(crate) fn into_inner(self) -> FastTrunkHeads {
        self.net
    }

    /// Input width.
    pub fn n_in(&self) -> usize {
        self.net.n_in
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.net.heads[0].n_out()
    }

    /// Outputs `[rows, n_out]` row-major into `out` (resized) for inputs `x` `[rows, n_in]`.
    ///
    /// # Panics
    ///
    /// When `x.len() != rows * n_in`.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        let n_out = self.n_out();
        out.resize(rows * n_out, 0.0);
        self.net.run(x, rows, |start, n, heads| {
            out[start * n_out..(start + n) * n_out].copy_from_slice(heads[0]);
        });
    }
}

// === Shared building blocks (crate-internal) ===

/// A Linear layer `n_in -> n_out` with PyTorch's default init (see the module docs).
pub(crate) fn torch_linear(
    name: String,
    n_in: usize,
    n_out: usize,
    rng: &mut NpRandom,
    device: &Device,
) -> Result<Dense> {
    let bound = 1.0 / (n_in as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect() };
    let w = draw(n_out * n_in);
    let b = draw(n_out);
    Ok(Dense { name, w: Var::from_vec(w, (n_out, n_in), device)?, b: Var::from_vec(b, n_out, device)? })
}

/// The hidden layers `n_in -> hiddens...` named `prefix.{i}`, PyTorch's default init.
pub(crate) fn linear_stack(
    prefix: &str,
    n_in: usize,
    hiddens: &[usize],
    rng: &mut NpRandom,
    device: &Device,
) -> Result<Vec<Dense>> {
    let mut layers = Vec::with_capacity(hiddens.len());
    let mut d = n_in;
    for (i, &h) in hiddens.iter().enumerate() {
        layers.push(torch_linear(format!("{prefix}.{i}"), d, h, rng, device)?);
        d = h;
    }
    Ok(layers)
}

/// Checks that the input, every hidden layer and every output of network `what` has at least one
/// unit.
pub(crate) fn check_sizes(what: &str, n_in: usize, hiddens: &[usize], n_outs: &[usize]) -> Result<()> {
    if n_in == 0 {
        return Err(PolicyError::Config(format!("{what}: the input has no elements")));
    }
    if let Some(i) = hiddens.iter().position(|h| *h == 0) {
        return Err(PolicyError::Config(format!("{what}: hiddens[{i}] is 0; every layer needs at least 1 unit")));
    }
    if n_outs.contains(&0) {
        return Err(PolicyError::Config(format!("{what}: the output has no elements")));
    }
    Ok(())
}

/// `act` after every layer.
pub(crate) fn run_layers(layers: &[Dense], act: Activation, x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for l in layers {
        h = l.forward(&h, Some(act))?;
    }
    Ok(h)
}

/// `(name.weight, w), (name.bias, b)` for every layer.
pub(crate) fn dense_vars<'a>(layers: impl IntoIterator<Item = &'a Dense>) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    for l in layers {
        out.push((format!("{}.weight", l.name), l.w.clone()));
        out.push((format!("{}.bias", l.name), l.b.clone()));
    }
    out
}

/// A layer with the same name and fresh copies of the parameters.
pub(crate) fn duplicate_dense(d: &Dense) -> Result<Dense> {
    let copy = |v: &Var| -> Result<Var> { Ok(Var::from_tensor(&v.as_tensor().detach().copy()?)?) };
    Ok(Dense { name: d.name.clone(), w: copy(&d.w)?, b: copy(&d.b)? })
}

/// `t <- t + tau * (s - t)` for every pair; `tau = 1` copies `s`. Checks every name and shape
/// before changing anything.
pub(crate) fn soft_update_vars(target: &[(String, Var)], source: &[(String, Var)], tau: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&tau) {
        return Err(PolicyError::Config(format!("soft update: tau must be in [0, 1], got {tau}")));
    }
    for ((tn, t), (sn, s)) in target.iter().zip(source) {
        if tn != sn || t.dims() != s.dims() {
            return Err(PolicyError::Config(format!(
                "soft update: target parameter {tn:?} {:?} does not match source parameter {sn:?} {:?}",
                t.dims(),
                s.dims()
            )));
        }
    }
    if target.len() != source.len() {
        return Err(PolicyError::Config(format!(
            "soft update: the target has {} parameters, the source {}",
            target.len(),
            source.len()
        )));
    }
    for ((_, t), (_, s)) in target.iter().zip(source) {
        let (tt, st) = (t.as_tensor().detach(), s.as_tensor().detach());
        let new = if tau == 1.0 { st.copy()? } else { (&tt + ((&st - &tt)? * tau)?)? };
        t.set(&new)?;
    }
    Ok(())
}

/// The activation's name in metadata: `tanh` or `relu`, as in configs.
pub(crate) fn activation_name(act: Activation) -> &'static str {
    match act {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
    }
}

// === Fast path (crate-internal) ===

/// A trunk with the activation after every layer, then heads without one, all on the same
/// trunk output: the shape of every network in this module and in `qnet` / `squashed`.
#[derive(Debug, Clone)]
pub(crate) struct FastTrunkHeads {
    trunk: Vec<DenseF32>,
    heads: Vec<DenseF32>,
    act: Activation,
    n_in: usize,
    /// The widest trunk layer.
    width: usize,
    /// The heads' outputs together.
    head_total: usize,
    /// The widest layer input.
    max_in: usize,
    isa: Isa,
}

impl FastTrunkHeads {
    pub(crate) fn new(trunk: &[Dense], heads: &[&Dense], act: Activation) -> Result<Self> {
        let trunk = trunk.iter().map(dense_to_f32).collect::<Result<Vec<_>>>()?;
        let heads = heads.iter().map(|d| dense_to_f32(d)).collect::<Result<Vec<_>>>()?;
        let n_in = trunk.first().unwrap_or(&heads[0]).n_in();
        Ok(Self {
            width: trunk.iter().map(DenseF32::n_out).max().unwrap_or(0),
            head_total: heads.iter().map(DenseF32::n_out).sum(),
            max_in: trunk.iter().chain(&heads).map(DenseF32::n_in).max().unwrap_or(0),
            trunk,
            heads,
            act,
            n_in,
            isa: Isa::detect(),
        })
    }

    pub(crate) fn n_in(&self) -> usize {
        self.n_in
    }

    /// Head `h`'s output width.
    pub(crate) fn head_width(&self, h: usize) -> usize {
        self.heads[h].n_out()
    }

    /// Runs inputs `x` `[rows, n_in]` block by block; after each block calls
    /// `f(start, block_rows, heads)` with each head's outputs `[block_rows, n_h]` row-major.
    ///
    /// # Panics
    ///
    /// When `x.len() != rows * n_in`.
    pub(crate) fn run(&self, x: &[f32], rows: usize, mut f: impl FnMut(usize, usize, &[&[f32]])) {
        assert_eq!(x.len(), rows * self.n_in, "inputs: expected {rows} rows of {} values", self.n_in);
        let b = rows.min(FAST_BLOCK_ROWS);
        let mut buf = vec![0.0f32; b * (2 * self.width + self.head_total) + TILE_ROWS * self.max_in];
        for (start, n) in blocks(rows) {
            let (hidden, rest) = buf.split_at_mut(2 * b * self.width);
            let (heads, pack) = rest.split_at_mut(b * self.head_total);
            self.block(&x[start * self.n_in..(start + n) * self.n_in], n, hidden, heads, pack);
            let mut outs: Vec<&[f32]> = Vec::with_capacity(self.heads.len());
            let mut rest: &[f32] = heads;
            for h in &self.heads {
                let (this, tail) = rest.split_at(n * h.n_out());
                outs.push(this);
                rest = tail;
            }
            f(start, n, &outs);
        }
    }

    fn block(&self, x: &[f32], rows: usize, hidden: &mut [f32], heads: &mut [f32], pack: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` chose this variant because the CPU supports AVX-512F.
            Isa::Avx512 => unsafe { self.block_avx512(x, rows, hidden, heads, pack) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` chose this variant because the CPU supports AVX2.
            Isa::Avx2 => unsafe { self.block_avx2(x, rows, hidden, heads, pack) },
            Isa::Portable => self.block_portable(x, rows, hidden, heads, pack),
        }
    }

    /// [`FastTrunkHeads::block_portable`] compiled with AVX-512F enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn block_avx512(&self, x: &[f32], rows: usize, hidden: &mut [f32], heads: &mut [f32], pack: &mut [f32]) {
        self.block_portable(x, rows, hidden, heads, pack);
    }

    /// [`FastTrunkHeads::block_portable`] compiled with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn block_avx2(&self, x: &[f32], rows: usize, hidden: &mut [f32], heads: &mut [f32], pack: &mut [f32]) {
        self.block_portable(x, rows, hidden, heads, pack);
    }

    /// One block of `rows` inputs: the trunk in `hidden` (two ping-pong halves), then every head
    /// into consecutive `[rows, n_h]` pieces of `heads`.
    #[inline(always)]
    fn block_portable(&self, x: &[f32], rows: usize, hidden: &mut [f32], heads: &mut [f32], pack: &mut [f32]) {
        let (h0, h1) = hidden.split_at_mut(hidden.len() / 2);
        let h: &[f32] =
            if self.trunk.is_empty() { x } else { run_trunk(&self.trunk, x, rows, Some(self.act), h0, h1, pack) };
        let mut offset = 0;
        for head in &self.heads {
            head.forward(h, rows, None, &mut heads[offset..], pack);
            offset += rows * head.n_out();
        }
    }
}

// === Named tensors as safetensors ===

/// Writes named tensors (any network's `named_vars`, e.g. critics and their targets together for
/// a checkpoint) and string metadata as safetensors bytes: F32, PyTorch layout, tensors sorted by
/// name, metadata in the given order, so the same inputs always give the same bytes.
///
/// Errors: two tensors with the same name.
pub fn vars_to_safetensors(vars: &[(String, Var)], metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        if tensors.iter().any(|(n, _, _): &(String, _, _)| n == name) {
            return Err(PolicyError::Config(format!("vars_to_safetensors: tensor {name:?} is given twice")));
        }
        let t = var.as_tensor();
        tensors.push((name.clone(), t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
    }
    Ok(encode_f32(&tensors, metadata))
}

/// Loads safetensors bytes into named tensors and returns the bytes' metadata.
///
/// Checks that every name of `vars` is present as an F32 tensor of its shape and that no other
/// tensor is; fails on the first mismatch, naming the tensor, without changing anything.
pub fn load_vars_safetensors(vars: &[(String, Var)], bytes: &[u8]) -> Result<HashMap<String, String>> {
    let checked = read_checked(vars, bytes, &[])?;
    checked.apply(vars)?;
    Ok(checked.meta)
}

/// Weights read and checked, not yet applied.
pub(crate) struct Checked {
    pub(crate) meta: HashMap<String, String>,
    values: Vec<Tensor>,
}

impl Checked {
    /// Sets every var to its loaded value.
    pub(crate) fn apply(&self, vars: &[(String, Var)]) -> Result<()> {
        for ((_, var), value) in vars.iter().zip(&self.values) {
            var.set(value)?;
        }
        Ok(())
    }
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reads a value for every var (present, F32, of the var's shape) and checks the `fixed` tensors
/// (present, `[len]`, equal to the given values); any other tensor is an error.
pub(crate) fn read_checked(vars: &[(String, Var)], bytes: &[u8], fixed: &[(&str, &[f32])]) -> Result<Checked> {
    let meta = metadata(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Weights(e.to_string()))?;
    let mut values = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let view = check_tensor(&st, name, var.dims())?;
        values.push(Tensor::from_vec(f32s(view.data()), var.dims(), var.device())?);
    }
    for (name, want) in fixed {
        let found = f32s(check_tensor(&st, name, &[want.len()])?.data());
        if found != *want {
            return Err(PolicyError::Weights(format!("tensor {name:?} is {found:?}, this network has {want:?}")));
        }
    }
    let known = |n: &str| vars.iter().any(|(m, _)| m == n) || fixed.iter().any(|(m, _)| *m == n);
    // `names()` is in hash order: report the alphabetically first extra tensor.
    if let Some(name) = st.names().into_iter().filter(|n| !known(n)).min() {
        return Err(PolicyError::UnexpectedTensor { name: name.to_string() });
    }
    Ok(Checked { meta, values })
}

/// Checks that `meta` holds every `(key, value)` of `expected`, naming the first key that is
/// missing or different.
pub(crate) fn check_meta(meta: &HashMap<String, String>, expected: &[(&str, String)]) -> Result<()> {
    for (key, want) in expected {
        match meta.get(*key) {
            None => return Err(PolicyError::Weights(format!("metadata lacks {key}"))),
            Some(found) if found != want => {
                return Err(PolicyError::Weights(format!(
                    "they are for a network with {key} {found}, this one has {key} {want}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(vars: &[Var]) -> Vec<Vec<f32>> {
        vars.iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    fn mlp(seed: u64) -> Mlp {
        Mlp::new("q", 5, &[7, 6], 3, Activation::Relu, &mut NpRandom::from_seed(seed), &Device::Cpu).unwrap()
    }

    fn inputs(rows: usize, n_in: usize) -> Vec<f32> {
        (0..rows * n_in).map(|i| ((i * 29 % 41) as f32 - 20.0) * 0.1).collect()
    }

    #[test]
    fn names_shapes_and_pytorch_default_init() {
        let m = mlp(0);
        let named = m.named_vars();
        let got: Vec<(&str, Vec<usize>)> = named.iter().map(|(n, v)| (n.as_str(), v.dims().to_vec())).collect();
        assert_eq!(
            got,
            [
                ("q.0.weight", vec![7, 5]),
                ("q.0.bias", vec![7]),
                ("q.1.weight", vec![6, 7]),
                ("q.1.bias", vec![6]),
                ("q.2.weight", vec![3, 6]),
                ("q.2.bias", vec![3])
            ]
        );
        // Each layer's weight and bias share the weight's fan-in.
        for layer in named.chunks(2) {
            let bound = 1.0 / (layer[0].1.dims()[1] as f32).sqrt();
            for (name, v) in layer {
                let xs = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(xs.iter().all(|x| x.abs() <= bound), "{name} outside +-{bound}");
                // Uniform over the whole range, not a narrower one: some value is past half the bound.
                assert!(xs.iter().any(|x| x.abs() > 0.5 * bound), "{name}");
            }
        }
        assert_eq!(values(&m.vars()), values(&mlp(0).vars()));
        assert_ne!(values(&m.vars()), values(&mlp(1).vars()));
        // The first draw of seed 0 is the first weight: -b + 2b * U with U NumPy's first double.
        let u = NpRandom::from_seed(0).random();
        let b = 1.0 / 5f64.sqrt();
        assert_eq!(values(&m.vars())[0][0], (-b + 2.0 * b * u) as f32);
    }

    #[test]
    fn forward_is_relu_between_layers_and_none_after_the_last() {
        let m = Mlp::new("m", 2, &[2], 1, Activation::Relu, &mut NpRandom::from_seed(0), &Device::Cpu).unwrap();
        let d = Device::Cpu;
        m.layers[0].w.set(&Tensor::new(&[[1.0f32, 0.0], [0.0, -1.0]], &d).unwrap()).unwrap();
        m.layers[0].b.set(&Tensor::new(&[0.5f32, 0.0], &d).unwrap()).unwrap();
        m.layers[1].w.set(&Tensor::new(&[[2.0f32, 3.0]], &d).unwrap()).unwrap();
        m.layers[1].b.set(&Tensor::new(&[-10.0f32], &d).unwrap()).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [-1.0, -2.0]], &d).unwrap();
        // Row 0: h = relu([1.5, -2]) = [1.5, 0], y = 3 - 10. Row 1: h = relu([-0.5, 2]) = [0, 2], y = 6 - 10.
        assert_eq!(m.forward(&x).unwrap().to_vec2::<f32>().unwrap(), [[-7.0], [-4.0]]);
    }

    #[test]
    fn soft_update_tau_one_copies_and_small_tau_moves_by_tau() {
        let (target, source) = (mlp(1), mlp(2));
        let before = values(&target.vars());
        let src = values(&source.vars());
        target.soft_update_from(&source, 0.005).unwrap();
        for ((t, s), new) in before.iter().zip(&src).zip(values(&target.vars())) {
            for ((t, s), n) in t.iter().zip(s).zip(new) {
                let want = f64::from(*t) + 0.005 * (f64::from(*s) - f64::from(*t));
                assert!((f64::from(n) - want).abs() < 1e-7, "{n} vs {want}");
            }
        }
        target.soft_update_from(&source, 1.0).unwrap();
        assert_eq!(values(&target.vars()), src);
        // The target stays its own storage: changing the source later leaves it alone.
        source.layers[0].b.set(&source.layers[0].b.as_tensor().zeros_like().unwrap()).unwrap();
        assert_eq!(values(&target.vars()), src);
    }

    #[test]
    fn soft_update_rejects_other_shapes_and_bad_tau() {
        let other = Mlp::new("q", 5, &[8, 6], 3, Activation::Relu, &mut NpRandom::from_seed(0), &Device::Cpu).unwrap();
        let err = mlp(0).soft_update_from(&other, 0.5).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid model config: soft update: target parameter \"q.0.weight\" [7, 5] does not match source \
             parameter \"q.0.weight\" [8, 5]"
        );
        let err = mlp(0).soft_update_from(&mlp(1), 1.5).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: soft update: tau must be in [0, 1], got 1.5");
    }

    #[test]
    fn duplicate_copies_weights_into_new_storage() {
        let m = mlp(3);
        let d = m.duplicate().unwrap();
        assert_eq!(values(&m.vars()), values(&d.vars()));
        m.layers[0].w.set(&m.layers[0].w.as_tensor().ones_like().unwrap()).unwrap();
        assert_ne!(values(&m.vars()), values(&d.vars()));
    }

    #[test]
    fn fast_forward_matches_candle_for_every_tile_remainder() {
        for (hiddens, act) in
            [(vec![7, 6], Activation::Relu), (vec![64, 64], Activation::Tanh), (vec![], Activation::Tanh)]
        {
            let m = Mlp::new("m", 5, &hiddens, 3, act, &mut NpRandom::from_seed(4), &Device::Cpu).unwrap();
            let fast = m.fast().unwrap();
            assert_eq!((fast.n_in(), fast.n_out()), (5, 3));
            for rows in [1, 3, 7, 2 * FAST_BLOCK_ROWS + 5] {
                let x = inputs(rows, 5);
                let want = m.forward(&Tensor::from_slice(&x, (rows, 5), &Device::Cpu).unwrap()).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let mut out = vec![f32::NAN; 1];
                fast.forward(&x, rows, &mut out);
                assert_eq!(out.len(), want.len());
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{hiddens:?} {rows} rows: {a} vs {b}");
                }
            }
        }
    }

    /// Every compiled variant that this CPU can run gives bitwise the portable variant's outputs.
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let m = Mlp::new("m", 5, &[64, 37], 3, Activation::Tanh, &mut NpRandom::from_seed(1), &Device::Cpu).unwrap();
        let base = m.fast().unwrap();
        let rows = 2 * FAST_BLOCK_ROWS + 5;
        let x = inputs(rows, 5);
        let run = |isa| {
            let fast = FastMlp { net: FastTrunkHeads { isa, ..base.net.clone() } };
            let mut out = Vec::new();
            fast.forward(&x, rows, &mut out);
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let want = run(Isa::Portable);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_eq!(run(Isa::Avx2), want);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                assert_eq!(run(Isa::Avx512), want);
            }
        }
        // Batch size does not change any row's bits either.
        let mut one = Vec::new();
        base.forward(&x[5 * 6..5 * 7], 1, &mut one);
        assert_eq!(one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want[3 * 6..3 * 7]);
    }

    #[test]
    fn bad_sizes_are_named() {
        let mut rng = NpRandom::from_seed(0);
        let err = Mlp::new("q", 4, &[3, 0], 2, Activation::Relu, &mut rng, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: q: hiddens[1] is 0; every layer needs at least 1 unit");
        let err = Mlp::new("q", 0, &[3], 2, Activation::Relu, &mut rng, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: q: the input has no elements");
    }

    #[test]
    fn named_vars_round_trip_and_mismatches_are_named() {
        let (a, b) = (mlp(5), mlp(6));
        let bytes = vars_to_safetensors(&a.named_vars(), &[("step", "12".into())]).unwrap();
        let meta = load_vars_safetensors(&b.named_vars(), &bytes).unwrap();
        assert_eq!(meta.get("step").map(String::as_str), Some("12"));
        assert_eq!(values(&a.vars()), values(&b.vars()));

        let other = Mlp::new("q", 5, &[7, 4], 3, Activation::Relu, &mut NpRandom::from_seed(0), &Device::Cpu).unwrap();
        let err = load_vars_safetensors(&other.named_vars(), &bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"q.1.weight\" has shape [6, 7], the policy expects [4, 7]");
        let mut fewer = a.named_vars();
        fewer.pop();
        let err = load_vars_safetensors(&fewer, &bytes).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: unexpected tensor \"q.2.bias\"");
        let mut twice = a.named_vars();
        twice.push(twice[0].clone());
        let err = vars_to_safetensors(&twice, &[]).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: vars_to_safetensors: tensor \"q.0.weight\" is given twice");
    }
}
