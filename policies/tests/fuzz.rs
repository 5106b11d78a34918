//! Fuzz targets of the weight decoders: `weights_version`, `weights_architecture`,
//! `ActorCritic::load_safetensors` and `ActorCritic::from_safetensors`, on arbitrary bytes,
//! byte-level mutations of real weights and edits of their safetensors header (wrong names,
//! shapes, dtypes, offsets, metadata, header length). None may panic or allocate past a small
//! multiple of its input; every error says it could not load weights, and a failed load leaves
//! the policy as it was.
//!
//! A short run is part of `cargo test`; `experiments/fuzz.sh` runs them long. Budget and seed:
//! `RL_FUZZ_CASES`, `RL_FUZZ_SECONDS`, `RL_FUZZ_SEED` (see `fuzz/harness.rs`).

#[path = "../../fuzz/harness.rs"]
mod harness;
#[path = "../../fuzz/safetensors.rs"]
mod safetensors_edits;

use candle_core::Device;
use proptest::prelude::*;
use rl_env::Space;
use rl_policies::{ActorCritic, PolicyConfig, weights_architecture, weights_version};
use safetensors::Dtype;

use harness::{assert_bounded, largest_allocation};

#[global_allocator]
static ALLOC: harness::WatchedAlloc = harness::WatchedAlloc;

/// A small policy: Discrete or Box actions, separate or shared trunks.
fn policy(continuous: bool, shared: bool, seed: u64) -> ActorCritic {
    let obs = Space::boxed(vec![-1.0; 3], vec![1.0; 3], vec![3]).unwrap();
    let action = if continuous {
        Space::boxed(vec![-1.0; 2], vec![1.0; 2], vec![2]).unwrap()
    } else {
        Space::discrete(2).unwrap()
    };
    let cfg = PolicyConfig { fcnet_hiddens: vec![4, 3], vf_share_layers: shared, ..Default::default() };
    ActorCritic::new(&cfg, &obs, &action, seed).unwrap()
}

fn values(p: &ActorCritic) -> Vec<Vec<f32>> {
    p.named_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

/// Real weights of every policy kind, with and without their architecture metadata.
fn valid_weights() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (continuous, shared) in [(false, false), (true, false), (false, true), (true, true)] {
        out.push(policy(continuous, shared, 1).to_safetensors(5).unwrap());
    }
    out
}

/// The parameters of the policies above (hidden sizes 4 and 3, obs 3), each with its dtype.
const POLICY_TENSORS: &[(&str, Dtype)] = &[
    ("actor.0.weight", Dtype::F32),
    ("actor.0.bias", Dtype::F32),
    ("actor.1.weight", Dtype::F32),
    ("actor.1.bias", Dtype::F32),
    ("trunk.0.weight", Dtype::F32),
    ("trunk.0.bias", Dtype::F32),
    ("critic.0.weight", Dtype::F32),
    ("critic.1.bias", Dtype::F32),
    ("pi.weight", Dtype::F32),
    ("pi.bias", Dtype::F32),
    ("vf.weight", Dtype::F32),
    ("vf.bias", Dtype::F32),
    ("log_std", Dtype::F32),
];

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let valid = valid_weights();
    prop_oneof![
        1 => harness::bytes(512),
        2 => safetensors_edits::well_formed(POLICY_TENSORS, &["format_version", "policy_version", "architecture"]),
        2 => harness::mutated(valid.clone()),
        4 => safetensors_edits::edited(valid.clone()),
        1 => safetensors_edits::edited(valid).prop_flat_map(|b| harness::mutated(vec![b])),
    ]
}

fn assert_weights_error(what: &str, e: &rl_policies::PolicyError) {
    let m = e.to_string();
    assert!(
        m.starts_with("cannot load weights: ")
            || m.starts_with("invalid model config: ")
            || m.starts_with("unsupported space: "),
        "{what}: {m}"
    );
}

/// The metadata readers never panic and never trust a length.
#[test]
fn fuzz_weights_metadata() {
    harness::run("weights_metadata", hostile(), |bytes| {
        let ((version, arch), largest) = largest_allocation(|| (weights_version(&bytes), weights_architecture(&bytes)));
        assert_bounded("weights metadata", bytes.len(), largest);
        if let Err(e) = version {
            assert_weights_error("weights_version", &e);
        }
        if let Err(e) = arch {
            assert_weights_error("weights_architecture", &e);
        }
    });
}

/// Loading into a policy either succeeds with the stored version or fails with a clear error
/// and leaves every parameter as it was.
#[test]
fn fuzz_weight_loader() {
    let targets: Vec<ActorCritic> = [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .map(|(c, s)| policy(c, s, 2))
        .collect();
    let strategy = (0..targets.len(), hostile());
    harness::run("weight_loader", strategy, |(k, bytes)| {
        // A fresh copy each case, so a failed load is compared with what it held before.
        let mut p = policy(k % 2 == 1, k >= 2, 2);
        let before = values(&p);
        assert_eq!(before, values(&targets[k]));
        let (result, largest) = largest_allocation(|| p.load_safetensors(&bytes));
        assert_bounded("load_safetensors", bytes.len(), largest);
        match result {
            Ok(version) => assert_eq!(weights_version(&bytes).unwrap(), version),
            Err(e) => {
                assert_weights_error("load_safetensors", &e);
                assert_eq!(values(&p), before, "a failed load changed the policy: {e}");
            }
        }
    });
}

/// Building a policy from weights alone never builds more than the weights hold.
#[test]
fn fuzz_policy_from_weights() {
    harness::run("policy_from_weights", hostile(), |bytes| {
        let (result, largest) = largest_allocation(|| ActorCritic::from_safetensors(&bytes, &Device::Cpu));
        assert_bounded("from_safetensors", bytes.len(), largest);
        match result {
            Ok((p, version)) => {
                assert_eq!(weights_version(&bytes).unwrap(), version);
                assert_eq!(weights_architecture(&bytes).unwrap().as_ref(), Some(p.architecture()));
            }
            Err(e) => assert_weights_error("from_safetensors", &e),
        }
    });
}
