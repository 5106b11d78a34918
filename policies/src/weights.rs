//! Policy weights as safetensors bytes with a format version, a policy version and the architecture.
//!
//! Metadata keys: `format_version` (this layout, currently 1), `policy_version` (bumped by the
//! learner on every update), `architecture` (JSON of [`Architecture`]). Tensors are F32, named
//! as in [`crate::ActorCritic`]'s module (`actor.0.weight`, `pi.bias`, `log_std`, ...), with
//! PyTorch's `[out, in]` weight layout, so `safetensors.torch.load` reads them too.
//!
//! Loading checks the format version, the architecture, then every name, dtype and shape, and
//! fails on the first mismatch with an error naming it; the policy is unchanged on failure.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{PolicyError, Result};
use crate::model::{ActorCritic, Architecture};

/// The weights layout written by this version.
pub const WEIGHTS_FORMAT_VERSION: u32 = 1;

pub(crate) fn metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| PolicyError::Weights(e.to_string()))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The policy version stored in safetensors weights.
pub fn weights_version(bytes: &[u8]) -> Result<u64> {
    metadata(bytes)?
        .get("policy_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| PolicyError::Weights("metadata lacks a numeric policy_version".into()))
}

/// The architecture stored in safetensors weights, if any.
pub fn weights_architecture(bytes: &[u8]) -> Result<Option<Architecture>> {
    match metadata(bytes)?.get("architecture") {
        None => Ok(None),
        Some(a) => serde_json::from_str(a)
            .map(Some)
            .map_err(|e| PolicyError::Weights(format!("architecture metadata is invalid: {e}"))),
    }
}

impl ActorCritic {
    /// Serializes every parameter to safetensors bytes tagged with `policy_version`. The same
    /// weights and version always give the same bytes.
    pub fn to_safetensors(&self, policy_version: u64) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        for (name, var) in self.named_vars() {
            let t = var.as_tensor();
            tensors.push((name, t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
        }
        let arch = serde_json::to_string(self.architecture()).map_err(|e| PolicyError::Weights(e.to_string()))?;
        let meta = [
            ("format_version", WEIGHTS_FORMAT_VERSION.to_string()),
            ("policy_version", policy_version.to_string()),
            ("architecture", arch),
        ];
        Ok(encode_f32(&tensors, &meta))
    }

    /// Builds a policy on `device` from weights written by [`ActorCritic::to_safetensors`],
    /// using the architecture stored with them; returns it with its policy version.
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<(Self, u64)> {
        check_format(&metadata(bytes)?)?;
        let arch = weights_architecture(bytes)?
            .ok_or_else(|| PolicyError::Weights("metadata lacks the architecture".into()))?;
        // The architecture is only a claim: check that the tensors hold every parameter it
        // names before building it, so a policy is never larger than the bytes it comes from.
        arch.config.validate()?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Weights(e.to_string()))?;
        for (name, shape) in arch.param_shapes() {
            check_tensor(&st, &name, &shape)?;
        }
        let mut policy = Self::from_architecture(&arch, 0, device)?;
        let version = policy.load_safetensors(bytes)?;
        Ok((policy, version))
    }

    /// Loads weights written by [`ActorCritic::to_safetensors`] and returns their policy version.
    ///
    /// Checks, in this order, and fails on the first mismatch without changing the policy: the
    /// format version; the stored architecture, when there is one; then that every parameter is
    /// present as an F32 tensor of its shape and that no other tensor is.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<u64> {
        let meta = metadata(bytes)?;
        check_format(&meta)?;
        if let Some(arch) = weights_architecture(bytes)?
            && &arch != self.architecture()
        {
            return Err(PolicyError::ArchitectureMismatch {
                found: Box::new(arch),
                expected: Box::new(self.architecture().clone()),
            });
        }
        let version = weights_version(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Weights(e.to_string()))?;
        // Check everything before changing anything.
        let named = self.named_vars();
        let mut values = Vec::with_capacity(named.len());
        for (name, var) in &named {
            let view = check_tensor(&st, name, var.dims())?;
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            values.push(Tensor::from_vec(data, var.dims(), var.device())?);
        }
        // `names()` is in hash order: report the alphabetically first extra tensor.
        if let Some(name) = st.names().into_iter().filter(|n| !named.iter().any(|(m, _)| m == n)).min() {
            return Err(PolicyError::UnexpectedTensor { name: name.to_string() });
        }
        for ((_, var), value) in named.iter().zip(values) {
            var.set(&value)?;
        }
        Ok(version)
    }
}

/// Writes F32 tensors `(name, shape, data)` and string metadata in the safetensors layout: an
/// 8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8 bytes,
/// then the tensor data. The `safetensors` crate's writer takes the metadata as a `HashMap` and
/// so emits its keys in a different order on every call; this writer keeps `meta` in the given
/// order and the tensors sorted by name (as that writer does), so its output is reproducible.
pub(crate) fn encode_f32(tensors: &[(String, Vec<usize>, Vec<f32>)], meta: &[(&str, String)]) -> Vec<u8> {
    let json = |s: &str| serde_json::to_string(s).expect("a string always serializes");
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|a, b| tensors[*a].0.cmp(&tensors[*b].0));
    let mut header = String::from("{");
    if !meta.is_empty() {
        let entries: Vec<String> = meta.iter().map(|(k, v)| format!("{}:{}", json(k), json(v))).collect();
        header += &format!("\"__metadata__\":{{{}}}", entries.join(","));
    }
    let mut offset = 0;
    for &i in &order {
        let (name, shape, data) = &tensors[i];
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let end = offset + 4 * data.len();
        let sep = if header.len() > 1 { "," } else { "" };
        header += &format!(
            "{sep}{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            dims.join(",")
        );
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &i in &order {
        out.extend(tensors[i].2.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// Tensor `name` of `st`, checked to be F32 of `shape`.
pub(crate) fn check_tensor<'a>(st: &'a SafeTensors<'a>, name: &str, shape: &[usize]) -> Result<TensorView<'a>> {
    let view = st.tensor(name).map_err(|_| PolicyError::MissingTensor { name: name.to_string() })?;
    if view.dtype() != Dtype::F32 {
        return Err(PolicyError::TensorDtype { name: name.to_string(), actual: format!("{:?}", view.dtype()) });
    }
    if view.shape() != shape {
        return Err(PolicyError::TensorShape {
            name: name.to_string(),
            expected: shape.to_vec(),
            actual: view.shape().to_vec(),
        });
    }
    Ok(view)
}

pub(crate) fn check_format(meta: &HashMap<String, String>) -> Result<()> {
    match meta.get("format_version") {
        Some(v) if *v == WEIGHTS_FORMAT_VERSION.to_string() => Ok(()),
        Some(v) => Err(PolicyError::FormatVersion { found: v.clone(), supported: WEIGHTS_FORMAT_VERSION }),
        None => Err(PolicyError::Weights("metadata lacks format_version".into())),
    }
}

#[cfg(test)]
mod tests {
    use rl_env::Space;

    use super::*;
    use crate::config::PolicyConfig;
    use crate::test_device;

    fn policy(hiddens: Vec<usize>, seed: u64, device: &Device) -> Result<ActorCritic> {
        let obs = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
        let cfg = PolicyConfig { fcnet_hiddens: hiddens, ..Default::default() };
        ActorCritic::new_on(&cfg, &obs, &Space::discrete(2).unwrap(), seed, device)
    }

    fn values(p: &ActorCritic) -> Vec<Vec<f32>> {
        p.named_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    /// Writes tensors `(name, shape)` filled with zeros and the given metadata.
    fn write(tensors: &[(String, Vec<usize>)], meta: &[(&str, &str)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .zip(&data)
            .map(|((n, s), d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
            .collect();
        let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        safetensors::serialize(views, Some(meta)).unwrap()
    }

    fn shapes(p: &ActorCritic) -> Vec<(String, Vec<usize>)> {
        p.named_vars().iter().map(|(n, v)| (n.clone(), v.dims().to_vec())).collect()
    }

    const META: [(&str, &str); 2] = [("format_version", "1"), ("policy_version", "0")];

    fn round_trip_restores_weights_and_version(device: &Device) -> Result<()> {
        let a = policy(vec![8, 8], 1, device)?;
        let mut b = policy(vec![8, 8], 2, device)?;
        let bytes = a.to_safetensors(17)?;
        assert_eq!(weights_version(&bytes)?, 17);
        // The same weights give the same bytes (metadata is written in a fixed order).
        for _ in 0..8 {
            assert_eq!(a.to_safetensors(17)?, bytes);
        }
        assert_eq!(weights_architecture(&bytes)?.as_ref(), Some(a.architecture()));
        assert_ne!(values(&a), values(&b));
        assert_eq!(b.load_safetensors(&bytes)?, 17);
        assert_eq!(values(&a), values(&b));
        let (c, version) = ActorCritic::from_safetensors(&bytes, device)?;
        assert_eq!((values(&c), version, c.architecture()), (values(&a), 17, a.architecture()));
        Ok(())
    }

    fn mismatched_architecture_is_a_clear_error_and_changes_nothing(device: &Device) -> Result<()> {
        let a = policy(vec![8, 8], 1, device)?;
        let mut b = policy(vec![16], 2, device)?;
        let before = values(&b);
        let err = b.load_safetensors(&a.to_safetensors(3)?).unwrap_err();
        assert!(matches!(err, PolicyError::ArchitectureMismatch { .. }));
        assert_eq!(
            err.to_string(),
            "cannot load weights: they are for a policy (obs_dim 4, fcnet_hiddens [8, 8], tanh, separate trunks, \
             actions Discrete(2)), this policy is (obs_dim 4, fcnet_hiddens [16], tanh, separate trunks, actions \
             Discrete(2))"
        );
        assert_eq!(values(&b), before);
        Ok(())
    }

    /// Without architecture metadata, names and shapes are checked one by one.
    fn wrong_shapes_and_names_are_named(device: &Device) -> Result<()> {
        let mut b = policy(vec![8, 8], 2, device)?;
        let before = values(&b);
        let mut tensors = shapes(&b);
        tensors[0].1 = vec![8, 5];
        let err = b.load_safetensors(&write(&tensors, &META)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot load weights: tensor \"actor.0.weight\" has shape [8, 5], the policy expects [8, 4]"
        );
        assert!(matches!(&err, PolicyError::TensorShape { name, expected, actual }
            if name == "actor.0.weight" && expected == &[8, 4] && actual == &[8, 5]));

        tensors.remove(0);
        let err = b.load_safetensors(&write(&tensors, &META)).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"actor.0.weight\" is missing");

        let mut tensors = shapes(&b);
        tensors.push(("actor.2.weight".into(), vec![8, 8]));
        tensors.push(("log_std".into(), vec![2]));
        let err = b.load_safetensors(&write(&tensors, &META)).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: unexpected tensor \"actor.2.weight\"");
        assert_eq!(values(&b), before);

        // The same tensors with the right names and shapes load.
        assert_eq!(b.load_safetensors(&write(&shapes(&b), &META))?, 0);
        assert!(values(&b).iter().flatten().all(|v| *v == 0.0));
        Ok(())
    }

    fn bad_metadata_and_bytes_are_errors(device: &Device) -> Result<()> {
        let mut b = policy(vec![8], 2, device)?;
        let t = shapes(&b);
        let err = b.load_safetensors(&write(&t, &[("format_version", "2"), ("policy_version", "0")])).unwrap_err();
        assert_eq!(err.to_string(), "cannot load weights: format version 2, this build reads version 1");
        let err = b.load_safetensors(&write(&t, &[("policy_version", "0")])).unwrap_err();
        assert_eq!(err.to_string(), "cannot load weights: metadata lacks format_version");
        let err = b.load_safetensors(&write(&t, &[("format_version", "1")])).unwrap_err();
        assert_eq!(err.to_string(), "cannot load weights: metadata lacks a numeric policy_version");
        let err = ActorCritic::from_safetensors(&write(&t, &META), device).unwrap_err();
        assert_eq!(err.to_string(), "cannot load weights: metadata lacks the architecture");
        assert!(matches!(b.load_safetensors(b"garbage"), Err(PolicyError::Weights(_))));
        Ok(())
    }

    /// With a single metadata key (so no ordering question) the writer gives bitwise the bytes
    /// of the `safetensors` crate's own writer.
    #[test]
    fn writer_matches_the_safetensors_crate() {
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
            ("b".into(), vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]),
            ("a.x\"q".into(), vec![1], vec![4.0]),
            ("scalar".into(), vec![], vec![2.5]),
        ];
        let meta = [("k\u{e9}y", "v\"al\\ue".to_string())];
        let ours = encode_f32(&tensors, &meta);
        let bytes: Vec<Vec<u8>> =
            tensors.iter().map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .zip(&bytes)
            .map(|((n, s, _), d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
            .collect();
        let meta = HashMap::from([(meta[0].0.to_string(), meta[0].1.clone())]);
        assert_eq!(ours, safetensors::serialize(views, Some(meta)).unwrap());
        assert_eq!(
            encode_f32(&tensors, &[]),
            safetensors::serialize(
                tensors
                    .iter()
                    .zip(&bytes)
                    .map(|((n, s, _), d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())),
                None,
            )
            .unwrap()
        );
    }

    /// Found by the weights fuzz target: `from_safetensors` built whatever architecture the
    /// metadata claimed (a layer of 2^60 units) before looking at the tensors.
    #[test]
    fn a_claimed_architecture_must_match_the_tensors_before_anything_is_built() {
        let p = policy(vec![8], 1, &Device::Cpu).unwrap();
        let mut arch = p.architecture().clone();
        arch.config.fcnet_hiddens = vec![1 << 60];
        let meta = [
            ("format_version", "1".to_string()),
            ("policy_version", "3".to_string()),
            ("architecture", serde_json::to_string(&arch).unwrap()),
        ];
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
            shapes(&p).into_iter().map(|(n, s)| (n, s.clone(), vec![0.0; s.iter().product()])).collect();
        let err = ActorCritic::from_safetensors(&encode_f32(&tensors, &meta), &Device::Cpu).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot load weights: tensor \"actor.0.weight\" has shape [8, 4], the policy expects [{}, 4]",
                1u64 << 60
            )
        );
    }

    #[test]
    fn param_shapes_are_the_shapes_of_the_built_policy() {
        let box2 = Space::boxed(vec![-1.0; 2], vec![1.0; 2], vec![2]).unwrap();
        let obs = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
        for (action, shared) in [(Space::discrete(3).unwrap(), false), (box2.clone(), false), (box2, true)] {
            let cfg = PolicyConfig { fcnet_hiddens: vec![5, 6], vf_share_layers: shared, ..Default::default() };
            let p = ActorCritic::new(&cfg, &obs, &action, 1).unwrap();
            assert_eq!(p.architecture().param_shapes(), shapes(&p));
        }
    }

    test_device!(round_trip_restores_weights_and_version, round_trip_cpu, round_trip_cuda);
    test_device!(mismatched_architecture_is_a_clear_error_and_changes_nothing, arch_cpu, arch_cuda);
    test_device!(wrong_shapes_and_names_are_named, names_cpu, names_cuda);
    test_device!(bad_metadata_and_bytes_are_errors, metadata_cpu, metadata_cuda);
}
