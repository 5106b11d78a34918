//! Policy weights as safetensors bytes with a format version, a policy version and the architecture.
//!
//! Metadata keys: `format_version` (this layout, currently 1), `policy_version` (bumped by the
//! learner on every update), `architecture` (JSON of [`Architecture`]). Tensors are F32, named
//! as in [`crate::model`]. Loading checks the architecture, then every name and shape, and
//! fails with the first mismatch, naming it; the policy is left unchanged on failure.

use std::collections::HashMap;

use candle_core::Tensor;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{PolicyError, Result};
use crate::model::{ActorCritic, Architecture};

/// The weights layout written by this version.
pub const WEIGHTS_FORMAT_VERSION: u32 = 1;

fn metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
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
    /// Serializes every parameter to safetensors bytes tagged with `policy_version`.
    pub fn to_safetensors(&self, policy_version: u64) -> Result<Vec<u8>> {
        let named = self.named_vars();
        let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(named.len());
        for (name, var) in named {
            let t = var.as_tensor();
            let data: Vec<u8> = t.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect();
            raw.push((name, t.dims().to_vec(), data));
        }
        let views: Vec<(&str, TensorView<'_>)> = raw
            .iter()
            .map(|(n, s, d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).expect("shape matches data")))
            .collect();
        let arch = serde_json::to_string(self.architecture()).map_err(|e| PolicyError::Weights(e.to_string()))?;
        let meta = HashMap::from([
            ("format_version".to_string(), WEIGHTS_FORMAT_VERSION.to_string()),
            ("policy_version".to_string(), policy_version.to_string()),
            ("architecture".to_string(), arch),
        ]);
        safetensors::serialize(views, Some(meta)).map_err(|e| PolicyError::Weights(e.to_string()))
    }

    /// Loads weights written by [`ActorCritic::to_safetensors`] and returns their policy version.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<u64> {
        let meta = metadata(bytes)?;
        match meta.get("format_version").map(String::as_str) {
            Some(v) if v == WEIGHTS_FORMAT_VERSION.to_string() => {}
            Some(v) => {
                return Err(PolicyError::Weights(format!(
                    "format version {v}, this build reads {WEIGHTS_FORMAT_VERSION}"
                )));
            }
            None => return Err(PolicyError::Weights("metadata lacks format_version".into())),
        }
        if let Some(arch) = weights_architecture(bytes)?
            && &arch != self.architecture()
        {
            return Err(PolicyError::Weights(format!(
                "architecture {arch:?} does not match the policy's {:?}",
                self.architecture()
            )));
        }
        let version = weights_version(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Weights(e.to_string()))?;
        // Check everything before changing anything.
        let named = self.named_vars();
        let mut values = Vec::with_capacity(named.len());
        for (name, var) in &named {
            let view = st.tensor(name).map_err(|_| PolicyError::Weights(format!("tensor {name:?} is missing")))?;
            if view.dtype() != Dtype::F32 {
                return Err(PolicyError::Weights(format!("tensor {name:?} is {:?}, expected F32", view.dtype())));
            }
            if view.shape() != var.dims() {
                return Err(PolicyError::Weights(format!(
                    "tensor {name:?} has shape {:?}, the policy expects {:?}",
                    view.shape(),
                    var.dims()
                )));
            }
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            values.push(Tensor::from_vec(data, var.dims(), var.device())?);
        }
        if let Some(extra) = st.names().into_iter().find(|n| !named.iter().any(|(m, _)| m == n)) {
            return Err(PolicyError::Weights(format!("unexpected tensor {extra:?}")));
        }
        for ((_, var), value) in named.iter().zip(values) {
            var.set(&value)?;
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use rl_env::Space;

    use super::*;
    use crate::config::PolicyConfig;

    fn policy(hiddens: Vec<usize>, seed: u64) -> ActorCritic {
        let obs = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
        let cfg = PolicyConfig { fcnet_hiddens: hiddens, ..Default::default() };
        ActorCritic::new(&cfg, &obs, &Space::discrete(2).unwrap(), seed).unwrap()
    }

    fn values(p: &ActorCritic) -> Vec<Vec<f32>> {
        p.named_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    #[test]
    fn round_trip_restores_weights_and_version() {
        let a = policy(vec![8, 8], 1);
        let mut b = policy(vec![8, 8], 2);
        let bytes = a.to_safetensors(17).unwrap();
        assert_eq!(weights_version(&bytes).unwrap(), 17);
        assert_ne!(values(&a), values(&b));
        assert_eq!(b.load_safetensors(&bytes).unwrap(), 17);
        assert_eq!(values(&a), values(&b));
    }

    #[test]
    fn mismatched_architecture_is_a_clear_error_and_changes_nothing() {
        let a = policy(vec![8, 8], 1);
        let mut b = policy(vec![16], 2);
        let before = values(&b);
        let err = b.load_safetensors(&a.to_safetensors(3).unwrap()).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert_eq!(values(&b), before);
    }

    #[test]
    fn wrong_shapes_and_names_are_named() {
        let mut b = policy(vec![8, 8], 2);
        // Same names, one shape off, and no architecture metadata.
        let w = vec![0u8; 4 * 8 * 5];
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
            b.named_vars().iter().map(|(n, v)| (n.clone(), v.dims().to_vec(), vec![0u8; 4 * v.elem_count()])).collect();
        tensors[0] = ("actor.0.weight".into(), vec![8, 5], w);
        let write = |t: &[(String, Vec<usize>, Vec<u8>)]| {
            let views: Vec<(&str, TensorView<'_>)> =
                t.iter().map(|(n, s, d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
            let meta = HashMap::from([("format_version".into(), "1".into()), ("policy_version".into(), "0".into())]);
            safetensors::serialize(views, Some(meta)).unwrap()
        };
        let err = b.load_safetensors(&write(&tensors)).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"actor.0.weight\" has shape [8, 5], the policy expects [8, 4]");
        tensors.remove(0);
        let err = b.load_safetensors(&write(&tensors)).unwrap_err().to_string();
        assert_eq!(err, "cannot load weights: tensor \"actor.0.weight\" is missing");
        assert!(b.load_safetensors(b"garbage").is_err());
    }
}
