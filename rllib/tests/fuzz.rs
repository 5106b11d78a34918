//! Fuzz targets of the library's decoders: the config parser and its `--set` overrides, the
//! trajectory batch, a checkpoint's optimizer state, and the actor messages that arrive from
//! other nodes. Each runs on arbitrary input and on mutations of valid input; none may panic,
//! allocate past a small multiple of its input, or answer an error that does not say where.
//!
//! A short run is part of `cargo test`; `experiments/fuzz.sh` runs them long. Budget and seed:
//! `RL_FUZZ_CASES`, `RL_FUZZ_SECONDS`, `RL_FUZZ_SEED` (see `fuzz/harness.rs`).

#[path = "../../fuzz/harness.rs"]
mod harness;
#[path = "../../fuzz/safetensors.rs"]
mod safetensors_edits;

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use rl_runtime::{ObjectRef, ObjectStore, StoreOptions, decode, encode};
use rllib::TrainConfig;
use rllib::batch::{BatchActions, TrajectoryBatch};
use rllib::checkpoint::{OptimizerState, read_optimizer};
use rllib::normalization::ObservationStats;
use rllib::ppo::{LearnerInit, LearnerMsg, LearnerReply, LearnerState, PpoHyperparams, UpdateStats};
use rllib::rollout::{EnvRunnerState, RolloutMsg, RolloutReply, RolloutWorkerInit};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;
use serde::de::DeserializeOwned;

use harness::{assert_bounded, largest_allocation};

#[global_allocator]
static ALLOC: harness::WatchedAlloc = harness::WatchedAlloc;

// === Config ===

/// Valid configs: the shipped ones and one that sets every section.
fn valid_configs() -> Vec<String> {
    vec![
        include_str!("../../configs/ppo.yaml").to_string(),
        include_str!("../../configs/ppo-pendulum.yaml").to_string(),
        include_str!("../../configs/ppo-cartpole-zoo.yaml").to_string(),
        "env: Pendulum-v1
env_config: {g: 9.81}
lr_schedule: constant
vf_clip_param: 10.0
target_kl: 0.015
model:
  fcnet_hiddens: [32, 16]
  fcnet_activation: relu
stop:
  num_env_steps_sampled_lifetime: 10000
  training_iteration: 9
evaluation: {interval: 3, duration: 7}
checkpoint:
  frequency: 2
"
        .to_string(),
    ]
}

/// Values of the wrong type or out of every range.
const ODD_VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "-1",
    "0",
    "-0.0",
    ".nan",
    "NaN",
    ".inf",
    "-.inf",
    "1e400",
    "-1e400",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "9223372036854775807",
    "4294967296",
    "0x10",
    "1_000",
    "true",
    "yes",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: 1, a: 2}",
    "'quoted'",
    "\"\\u0000\"",
    "!!binary aGVsbG8=",
    "!!float 1",
    "&a [*a]",
    "*undefined",
    "- x",
    "|\n  block",
    "CartPole-v1",
    "PPO",
];

/// One edit of a config's text, by line.
#[derive(Debug, Clone)]
enum YamlEdit {
    DropLine(Index),
    SetValue(Index, String),
    DuplicateLine(Index),
    /// Replaces a value with flow collections nested this deep.
    FlowNesting(Index, usize),
    /// Appends a block map nested this deep under a key.
    BlockNesting(String, usize),
    AddLine(String, String),
    Indent(Index, usize),
}

const KEYS: &[&str] = &[
    "env",
    "seed",
    "lr",
    "num_env_runners",
    "num_envs_per_env_runner",
    "rollout_fragment_length",
    "minibatch_size",
    "num_epochs",
    "gamma",
    "model",
    "stop",
    "env_config",
    "evaluation",
    "checkpoint",
    "placement_strategy",
    "num_cpus_per_env_runner",
    "grad_clip",
    "<<",
];

fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(ODD_VALUES).prop_map(str::to_string), 1 => "[ -~]{0,16}"]
}

fn yaml_edit() -> impl Strategy<Value = YamlEdit> {
    let key = proptest::sample::select(KEYS).prop_map(str::to_string);
    prop_oneof![
        any::<Index>().prop_map(YamlEdit::DropLine),
        (any::<Index>(), odd_value()).prop_map(|(i, v)| YamlEdit::SetValue(i, v)),
        any::<Index>().prop_map(YamlEdit::DuplicateLine),
        (any::<Index>(), prop_oneof![1usize..8, 100usize..20_000]).prop_map(|(i, d)| YamlEdit::FlowNesting(i, d)),
        (key.clone(), prop_oneof![1usize..8, 100usize..3_000]).prop_map(|(k, d)| YamlEdit::BlockNesting(k, d)),
        (key, odd_value()).prop_map(|(k, v)| YamlEdit::AddLine(k, v)),
        (any::<Index>(), 1usize..6).prop_map(|(i, n)| YamlEdit::Indent(i, n)),
    ]
}

fn edit_yaml(text: &str, edits: &[YamlEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        let n = lines.len();
        let at = |i: &Index| i.index(n.max(1));
        match e {
            YamlEdit::DropLine(i) if n > 0 => {
                lines.remove(at(i));
            }
            YamlEdit::SetValue(i, v) if n > 0 => {
                let k = at(i);
                lines[k] = match lines[k].split_once(':') {
                    Some((key, _)) => format!("{key}: {v}"),
                    None => v.clone(),
                };
            }
            YamlEdit::DuplicateLine(i) if n > 0 => {
                let k = at(i);
                let line = lines[k].clone();
                lines.insert(k, line);
            }
            YamlEdit::FlowNesting(i, depth) if n > 0 => {
                let k = at(i);
                let key = lines[k].split_once(':').map_or("env_config", |(key, _)| key).to_string();
                lines[k] = format!("{key}: {}{}", "[".repeat(*depth), "]".repeat(*depth));
            }
            YamlEdit::BlockNesting(key, depth) => {
                lines.push(format!("{key}:"));
                for d in 1..=*depth {
                    lines.push(format!("{}k{d}:", " ".repeat(d)));
                }
            }
            YamlEdit::AddLine(k, v) => lines.push(format!("{k}: {v}")),
            YamlEdit::Indent(i, by) if n > 0 => {
                let k = at(i);
                lines[k] = format!("{}{}", " ".repeat(*by), lines[k]);
            }
            _ => {}
        }
    }
    lines.join("\n") + "\n"
}

fn config_text() -> impl Strategy<Value = String> {
    let valid = valid_configs();
    let bytes: Vec<Vec<u8>> = valid.iter().map(|t| t.clone().into_bytes()).collect();
    prop_oneof![
        1 => "(?s).{0,400}",
        1 => harness::mutated(bytes).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        4 => (proptest::sample::select(valid), proptest::collection::vec(yaml_edit(), 1..5))
            .prop_map(|(t, edits)| edit_yaml(&t, &edits)),
    ]
}

fn override_arg() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        2 => proptest::sample::select(&[
            "model.fcnet_hiddens",
            "model.fcnet_activation",
            "stop.training_iteration",
            "stop.num_env_steps_sampled_lifetime",
            "evaluation.duration",
            "env_config.x",
            "env_config.sutton_barto_reward",
            "env_config.a.b",
            "lr.x",
            "stop.",
            ".",
            "",
        ][..])
        .prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ];
    prop_oneof![
        8 => (key, odd_value()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => "[ -~]{0,24}",
        1 => (1usize..20_000).prop_map(|d| format!("env_config.x={}{}", "[".repeat(d), "]".repeat(d))),
    ]
}

/// The config parser never panics, and every error says where: the file (with its line when
/// it knows one) or the `--set` argument.
#[test]
fn fuzz_config_parser() {
    let strategy = (config_text(), proptest::collection::vec(override_arg(), 0..3));
    harness::run("config_parser", strategy, |(text, overrides)| {
        match TrainConfig::parse(&text, "fuzz.yaml", &overrides) {
            Ok(c) => {
                assert_eq!(c.validate(), Ok(()), "an accepted config validates");
                let _ = (c.train_batch_size(), c.planned_iterations());
            }
            Err(e) => {
                let m = e.to_string();
                let from_set = overrides.iter().any(|o| m.starts_with(&format!("--set {o}")));
                assert!(m.starts_with("fuzz.yaml") || from_set, "error does not say where: {m}");
            }
        }
        if let Err(e) = TrainConfig::parse_recorded(&text, "fuzz.yaml") {
            assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
        }
    });
}

// === Trajectory batch ===

fn f32s(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-10.0f32..10.0, n)
}

/// Well-formed batches of every shape: discrete or continuous actions, empty or not.
fn valid_batch() -> impl Strategy<Value = TrajectoryBatch> {
    (1usize..4, 0usize..4, 1usize..4, prop_oneof![Just(0usize), 1usize..3], 0usize..3).prop_flat_map(
        |(n_envs, t, obs_dim, act_dim, episodes)| {
            let rows = n_envs * t;
            let actions = if act_dim == 0 {
                proptest::collection::vec(0i64..5, rows).prop_map(BatchActions::Discrete).boxed()
            } else {
                f32s(rows * act_dim).prop_map(BatchActions::Continuous).boxed()
            };
            (
                (any::<u64>(), any::<u32>(), f32s(rows * obs_dim), actions),
                (f32s(rows), f32s(rows), f32s(rows), proptest::collection::vec(any::<bool>(), 2 * rows)),
                (f32s(rows), f32s(n_envs), proptest::collection::vec((-1e3f64..1e3, 1i64..500), episodes)),
            )
                .prop_map(
                    move |((pv, wi, obs, actions), (logp, values, rewards, flags), (boot, last, eps))| {
                        TrajectoryBatch {
                            policy_version: pv,
                            worker_index: wi,
                            n_envs,
                            obs_dim,
                            next_obs: if pv % 2 == 0 { Vec::new() } else { obs.iter().map(|v| -v).collect() },
                            obs,
                            actions,
                            logp,
                            values,
                            rewards,
                            terminated: flags[..rows].to_vec(),
                            truncated: flags[rows..].to_vec(),
                            bootstrap_values: boot,
                            last_values: last,
                            episode_returns: eps.iter().map(|e| e.0).collect(),
                            episode_lengths: eps.iter().map(|e| e.1).collect(),
                        }
                    },
                )
        },
    )
}

/// A handful of valid encodings to mutate, from a fixed seed.
fn sample_encodings<T: std::fmt::Debug>(s: impl Strategy<Value = T>, encode: impl Fn(&T) -> Vec<u8>) -> Vec<Vec<u8>> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    (0..8).map(|_| encode(&s.new_tree(&mut runner).expect("a value").current())).collect()
}

/// The tensors of a batch and their dtypes.
const BATCH_TENSORS: &[(&str, Dtype)] = &[
    ("obs", Dtype::F32),
    ("actions", Dtype::I64),
    ("actions", Dtype::F32),
    ("logp", Dtype::F32),
    ("values", Dtype::F32),
    ("rewards", Dtype::F32),
    ("terminated", Dtype::U8),
    ("truncated", Dtype::U8),
    ("bootstrap_values", Dtype::F32),
    ("last_values", Dtype::F32),
    ("episode_returns", Dtype::F64),
    ("episode_lengths", Dtype::I64),
];

/// One lie about a batch: a field resized, or another `n_envs`, `obs_dim` or action width.
#[derive(Debug, Clone)]
enum BatchLie {
    Resize(usize, usize),
    NEnvs(usize),
    ObsDim(usize),
    ActDim(usize),
}

/// Safetensors bytes of `b` with `lies` told: every tensor is well-formed (its shape matches
/// its own data), but the tensors need not agree with each other or with the metadata.
fn lying_batch_bytes(b: &TrajectoryBatch, lies: &[BatchLie]) -> Vec<u8> {
    let mut b = b.clone();
    let mut act_dim = match &b.actions {
        BatchActions::Continuous(a) => a.len().checked_div(b.len()).unwrap_or(1),
        BatchActions::Discrete(_) => 0,
    };
    for lie in lies {
        match *lie {
            BatchLie::Resize(field, len) => match field {
                0 => b.obs.resize(len, 0.5),
                1 => match &mut b.actions {
                    BatchActions::Discrete(a) => a.resize(len, 1),
                    BatchActions::Continuous(a) => a.resize(len, 0.5),
                },
                2 => b.logp.resize(len, 0.0),
                3 => b.values.resize(len, 0.0),
                4 => b.rewards.resize(len, 1.0),
                5 => b.terminated.resize(len, true),
                6 => b.truncated.resize(len, false),
                7 => b.bootstrap_values.resize(len, 0.0),
                8 => b.last_values.resize(len, 0.0),
                9 => b.episode_returns.resize(len, 1.0),
                _ => b.episode_lengths.resize(len, 1),
            },
            BatchLie::NEnvs(n) => b.n_envs = n,
            BatchLie::ObsDim(d) => b.obs_dim = d,
            BatchLie::ActDim(d) => act_dim = d,
        }
    }
    let shape = |len: usize, width: usize| {
        if width > 0 && len.is_multiple_of(width) { vec![len / width, width] } else { vec![len] }
    };
    let le32 = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let flags = |v: &[bool]| v.iter().map(|x| u8::from(*x)).collect::<Vec<u8>>();
    let (actions_dtype, actions_shape, actions) = match &b.actions {
        BatchActions::Discrete(a) => (Dtype::I64, vec![a.len()], a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        BatchActions::Continuous(a) => (Dtype::F32, shape(a.len(), act_dim), le32(a)),
    };
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("obs", Dtype::F32, shape(b.obs.len(), b.obs_dim), le32(&b.obs)),
        ("actions", actions_dtype, actions_shape, actions),
        ("logp", Dtype::F32, vec![b.logp.len()], le32(&b.logp)),
        ("values", Dtype::F32, vec![b.values.len()], le32(&b.values)),
        ("rewards", Dtype::F32, vec![b.rewards.len()], le32(&b.rewards)),
        ("terminated", Dtype::U8, vec![b.terminated.len()], flags(&b.terminated)),
        ("truncated", Dtype::U8, vec![b.truncated.len()], flags(&b.truncated)),
        ("bootstrap_values", Dtype::F32, vec![b.bootstrap_values.len()], le32(&b.bootstrap_values)),
        ("last_values", Dtype::F32, vec![b.last_values.len()], le32(&b.last_values)),
        (
            "episode_returns",
            Dtype::F64,
            vec![b.episode_returns.len()],
            b.episode_returns.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        (
            "episode_lengths",
            Dtype::I64,
            vec![b.episode_lengths.len()],
            b.episode_lengths.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    ];
    let views = tensors.iter().map(|(n, d, s, data)| (*n, TensorView::new(*d, s.clone(), data).unwrap()));
    let meta = HashMap::from([
        ("format_version".to_string(), "1".to_string()),
        ("policy_version".to_string(), b.policy_version.to_string()),
        ("n_envs".to_string(), b.n_envs.to_string()),
        ("worker_index".to_string(), b.worker_index.to_string()),
    ]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn lying_batch() -> impl Strategy<Value = Vec<u8>> {
    let lie = prop_oneof![
        4 => (0usize..11, 0usize..10).prop_map(|(f, n)| BatchLie::Resize(f, n)),
        1 => (0usize..5).prop_map(BatchLie::NEnvs),
        1 => (0usize..5).prop_map(BatchLie::ObsDim),
        1 => (0usize..4).prop_map(BatchLie::ActDim),
    ];
    (valid_batch(), proptest::collection::vec(lie, 1..3)).prop_map(|(b, lies)| lying_batch_bytes(&b, &lies))
}

/// What every batch the decoder accepts satisfies, so the learner can index it freely.
fn assert_consistent(b: &TrajectoryBatch) {
    let rows = b.len();
    assert!(b.n_envs > 0 && rows.is_multiple_of(b.n_envs) && b.last_values.len() == b.n_envs, "{b:?}");
    for len in [b.logp.len(), b.values.len(), b.terminated.len(), b.truncated.len(), b.bootstrap_values.len()] {
        assert_eq!(len, rows, "{b:?}");
    }
    assert_eq!(Some(b.obs.len()), rows.checked_mul(b.obs_dim), "obs of {b:?}");
    match &b.actions {
        BatchActions::Discrete(a) => assert_eq!(a.len(), rows, "{b:?}"),
        BatchActions::Continuous(a) => {
            assert!(if rows == 0 { a.is_empty() } else { a.len().is_multiple_of(rows) && !a.is_empty() }, "{b:?}")
        }
    }
    assert_eq!(b.episode_returns.len(), b.episode_lengths.len(), "{b:?}");
}

/// Valid batches round-trip; hostile bytes are refused or decode to a consistent batch, without
/// a panic or an allocation the input does not justify.
#[test]
fn fuzz_batch_decoder() {
    harness::run("batch_round_trip", valid_batch(), |b| {
        assert_eq!(TrajectoryBatch::from_bytes(&b.to_bytes()).unwrap(), b);
    });
    let valid = sample_encodings(valid_batch(), TrajectoryBatch::to_bytes);
    let strategy = prop_oneof![
        harness::bytes(512),
        harness::mutated(valid.clone()),
        lying_batch(),
        safetensors_edits::well_formed(BATCH_TENSORS, &["format_version", "policy_version", "n_envs", "worker_index"]),
        safetensors_edits::edited(valid.clone()),
        safetensors_edits::edited(valid).prop_flat_map(|b| harness::mutated(vec![b])),
    ];
    harness::run("batch_decoder", strategy, |bytes| {
        let (result, largest) = largest_allocation(|| TrajectoryBatch::from_bytes(&bytes));
        assert_bounded("TrajectoryBatch::from_bytes", bytes.len(), largest);
        match result {
            Ok(b) => assert_consistent(&b),
            Err(e) => assert!(e.to_string().starts_with("trajectory batch: "), "{e}"),
        }
    });
}

// === Optimizer state ===

fn optimizer_file(step: &str, moments: &[(String, Vec<f32>)]) -> Vec<u8> {
    let raw: Vec<(String, Vec<u8>, usize)> =
        moments.iter().map(|(n, v)| (n.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())).collect();
    let views = raw.iter().map(|(n, b, len)| (n.as_str(), TensorView::new(Dtype::F32, vec![*len], b).unwrap()));
    safetensors::serialize(views, Some(HashMap::from([("adam_step".to_string(), step.to_string())]))).unwrap()
}

/// The optimizer reader never panics; every error names the file.
#[test]
fn fuzz_optimizer_reader() {
    let path = Path::new("fuzz/optimizer.safetensors");
    let moments = |n: usize| -> Vec<(String, Vec<f32>)> {
        (0..n).map(|i| (format!("{}.{}", if i % 2 == 0 { "m" } else { "v" }, i / 2), vec![0.5; i + 1])).collect()
    };
    let valid = vec![optimizer_file("0", &[]), optimizer_file("42", &moments(2)), optimizer_file("7", &moments(6))];
    let back = read_optimizer(&valid[1], path).unwrap();
    assert_eq!(back.step, 42);
    let strategy = prop_oneof![
        harness::bytes(512),
        harness::mutated(valid.clone()),
        safetensors_edits::well_formed(
            &[("m.0", Dtype::F32), ("v.0", Dtype::F32), ("m.1", Dtype::F32)],
            &["adam_step"]
        ),
        safetensors_edits::edited(valid),
    ];
    harness::run("optimizer_reader", strategy, |bytes| {
        let (result, largest) = largest_allocation(|| read_optimizer(&bytes, path));
        assert_bounded("read_optimizer", bytes.len(), largest);
        match result {
            Ok(OptimizerState { moments, .. }) => {
                let mut names: Vec<&String> = moments.iter().map(|(n, _)| n).collect();
                names.dedup();
                assert_eq!(names.len(), moments.len());
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz/optimizer.safetensors: "), "{e}"),
        }
    });
}

// === Actor messages ===

/// Decodes `bytes` as a `T` as a node does with a message from a peer, checking the error.
fn decode_as<T: DeserializeOwned>(bytes: &[u8]) {
    let (result, largest) = largest_allocation(|| decode::<T>(bytes));
    assert_bounded(std::any::type_name::<T>(), bytes.len(), largest);
    if let Err(e) = result {
        let m = e.to_string();
        assert!(m.starts_with("serialization of ") && m.contains(std::any::type_name::<T>()), "{m}");
    }
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    encode(v).unwrap().to_vec()
}

/// Valid encodings of every actor `Init`, `Msg` and `Reply` of the library, by type.
fn valid_messages(weights: &ObjectRef) -> [Vec<Vec<u8>>; 6] {
    let configs = valid_configs();
    let mut config = TrainConfig::parse(&configs[3], "a.yaml", &[]).unwrap();
    config.env_config =
        serde_json::from_str(r#"{"a": [1, -2, 3.5, "x", [[], {}]], "b": {"c": null, "d": true}}"#).unwrap();
    let hyper = PpoHyperparams::at(&config, 3);
    let stats = UpdateStats {
        policy_loss: -0.01,
        vf_loss: 3.0,
        entropy: 0.5,
        approx_kl: 1e-4,
        clip_fraction: 0.1,
        grad_norm: 1.0,
        explained_variance: 0.2,
        num_minibatch_updates: 4,
        num_env_steps: 512,
        episode_returns: vec![1.0, 2.0],
        episode_lengths: vec![3, 4],
        policy_version: 9,
    };
    let state = LearnerState {
        policy: vec![1, 2, 3],
        policy_version: 2,
        optimizer: OptimizerState { step: 3, moments: vec![("m.0".into(), vec![0.5, 1.5])] },
        rng: (5, 7),
    };
    let runner = EnvRunnerState {
        worker_index: 1,
        restarts: 2,
        rng: (u128::MAX, 1),
        steps: 640,
        envs: Some(r#"{"type":"SyncVectorEnv"}"#.into()),
        normalizers: None,
    };
    [
        vec![enc(&RolloutWorkerInit { config: config.clone(), worker_index: 3, restarts: 1 })],
        vec![
            enc(&RolloutMsg::SetWeights(weights.clone())),
            enc(&RolloutMsg::Sample(
                Some(Box::new(rl_env::MeanStdFilter::new(4, None))),
                rllib::acting::Exploration::Policy,
            )),
            enc(&RolloutMsg::State),
            enc(&RolloutMsg::Restore(Box::new(runner.clone()))),
        ],
        vec![
            enc(&RolloutReply::Weights(7)),
            enc(&RolloutReply::Batch {
                batch: weights.clone(),
                sub_env_restarts: 2,
                observation_stats: Some(Box::new(ObservationStats::FilterDelta(rl_env::RunningStat::new(4)))),
            }),
            enc(&RolloutReply::State(Box::new(runner))),
            enc(&RolloutReply::Restored(true)),
        ],
        vec![enc(&LearnerInit {
            env: config.env.clone(),
            env_config: config.env_config.clone(),
            model: config.model.clone(),
            seed: 1,
        })],
        vec![
            enc(&LearnerMsg::PublishWeights),
            enc(&LearnerMsg::Update { batches: vec![weights.clone(), weights.clone()], hyperparams: hyper }),
            enc(&LearnerMsg::State),
            enc(&LearnerMsg::Restore(Box::new(state.clone()))),
        ],
        vec![
            enc(&LearnerReply::Weights(weights.clone(), 7)),
            enc(&LearnerReply::Updated(stats)),
            enc(&LearnerReply::State(Box::new(state))),
            enc(&LearnerReply::BatchesLost("object 9 is lost".into())),
            enc(&LearnerReply::Restored),
        ],
    ]
}

/// Every actor message of the library, decoded from hostile bytes as a node decodes what a peer
/// sends: an error naming the type, never a panic, a stack overflow or a huge allocation.
#[test]
fn fuzz_actor_messages() {
    let store = ObjectStore::new(StoreOptions::default());
    let weights = store.put(Bytes::from_static(b"weights")).unwrap();
    let valid = valid_messages(&weights);
    let all: Vec<Vec<u8>> = valid.iter().flatten().cloned().collect();
    let strategy = (0usize..6, prop_oneof![harness::bytes(256), harness::mutated(all)]);
    harness::run("actor_messages", strategy, |(kind, bytes)| match kind {
        0 => decode_as::<RolloutWorkerInit>(&bytes),
        1 => decode_as::<RolloutMsg>(&bytes),
        2 => decode_as::<RolloutReply>(&bytes),
        3 => decode_as::<LearnerInit>(&bytes),
        4 => decode_as::<LearnerMsg>(&bytes),
        _ => decode_as::<LearnerReply>(&bytes),
    });
}
