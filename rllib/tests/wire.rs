//! Wire readiness: every actor `Init`, `Msg` and `Reply` of the library round-trips through the
//! runtime's codec (`rl_runtime::encode` / `decode`, postcard) unchanged.
//!
//! Values are non-trivial (every kind of env kwarg, nested maps, every enum variant of the
//! messages and of what they carry), and each message enum is matched exhaustively, so a new
//! variant does not compile until it is added here. `ObjectRef` equality compares ids only, so
//! refs are also checked for what they still own after the trip.

use std::collections::BTreeSet;

use bytes::Bytes;
use rl_runtime::{Actor, ObjectRef, ObjectStore, RuntimeError, StoreOptions, decode, encode};
use rllib::TrainConfig;
use rllib::checkpoint::OptimizerState;
use rllib::normalization::ObservationStats;
use rllib::ppo::{Learner, LearnerInit, LearnerMsg, LearnerReply, LearnerState, PpoHyperparams, UpdateStats};
use rllib::rollout::{EnvRunnerState, RolloutMsg, RolloutReply, RolloutWorker, RolloutWorkerInit};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes and decodes `value` as the runtime does for remote calls, asserting equality.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> T {
    let bytes = encode(value).unwrap_or_else(|e| panic!("encode {value:?}: {e}"));
    let back: T = decode(&bytes).unwrap_or_else(|e| panic!("decode {value:?}: {e}"));
    assert_eq!(&back, value);
    back
}

/// Env kwargs with every kind of JSON value, nested lists and maps.
fn kwargs() -> rl_env::Kwargs {
    serde_json::from_str(
        r#"{"null": null, "flag": true, "off": false, "count": 18446744073709551615, "offset": -7,
            "g": 9.81, "tiny": 5e-324, "name": "ü-corridor ✓", "sizes": [1, -2, 3.5, "x", [], {}],
            "nested": {"walls": [[0, 1], [2, 3]], "mode": {"hard": true, "level": null}}}"#,
    )
    .unwrap()
}

/// Two configs that together take every enum variant and both `Option` states of the config.
fn configs() -> [TrainConfig; 2] {
    let plain =
        TrainConfig::parse("env: CartPole-v1\nstop: {num_env_steps_sampled_lifetime: 4096}\n", "a.yaml", &[]).unwrap();
    let text = "env: Pendulum-v1
seed: 18446744073709551615
lr_schedule: constant
clip_param_schedule: linear
bootstrap_truncated: false
clip_vloss: false
vf_clip_param: 10.0
grad_clip: null
target_kl: 0.015
normalize_advantages: false
model: {fcnet_hiddens: [32, 16, 8], fcnet_activation: relu, vf_share_layers: true, log_std_init: -0.5}
stop: {num_env_steps_sampled_lifetime: 10000, training_iteration: 9, env_runners/episode_return_mean: -150.5, time_total_s: 60.0}
evaluation: {interval: 3, duration: 7, seed: 99, max_episode_steps: 1000}
checkpoint: {frequency: 2}
";
    let mut other = TrainConfig::parse(text, "b.yaml", &[]).unwrap();
    other.env_config = kwargs();
    [plain, other]
}

/// DQN and SAC configs that take every off-policy option and both `target_entropy` forms.
fn off_policy_configs() -> [TrainConfig; 3] {
    let dqn = "algorithm: DQN
env: CartPole-v1
n_step: 3
double_q: true
dueling: true
td_error_loss_fn: mse
gradient_steps: -1
prioritized_replay: {alpha: 0.7, beta: 0.5, beta_final: 0.9, eps: 1.0e-5}
stop: {num_env_steps_sampled_lifetime: 5000}
";
    let sac = "algorithm: SAC\nenv: Pendulum-v1\nstop: {training_iteration: 3}\n";
    let sac_fixed =
        "algorithm: SAC\nenv: Pendulum-v1\ntarget_entropy: -2.5\nautotune: false\nstop: {training_iteration: 3}\n";
    [dqn, sac, sac_fixed].map(|t| TrainConfig::parse(t, "c.yaml", &[]).unwrap())
}

#[test]
fn off_policy_learner_messages_round_trip() {
    use rllib::off_policy::{Counters, OffPolicyLearnerState, OffPolicyMsg, OffPolicyReply, RoundStats};
    for config in off_policy_configs().iter().chain(&configs()) {
        round_trip(config);
        round_trip(&RolloutWorkerInit { config: config.clone(), worker_index: 1, restarts: 0 });
    }
    let (store, weights, batch) = refs();
    let counters = Counters { env_steps: 1 << 40, gradient_steps: 7, target_updates: 3, transitions_skipped: 1 };
    let state = OffPolicyLearnerState {
        policy: vec![1, 2, 3],
        policy_version: 9,
        optimizer: OptimizerState { step: 4, moments: vec![("m.0".into(), vec![0.25])] },
        rng: (u128::MAX, 3),
        extra_files: vec![("replay_buffer.safetensors".into(), vec![0; 17])],
    };
    let msgs = vec![
        OffPolicyMsg::PublishWeights,
        OffPolicyMsg::Round { batches: vec![batch.clone()] },
        OffPolicyMsg::Report,
        OffPolicyMsg::State,
        OffPolicyMsg::Restore(Box::new(state.clone())),
    ];
    let stats = RoundStats { num_env_steps: 4, episode_returns: vec![-1.5], episode_lengths: vec![200], counters };
    let replies = vec![
        OffPolicyReply::Weights(weights.clone(), 3),
        OffPolicyReply::Round(Box::new(stats)),
        OffPolicyReply::BatchesLost("gone".into()),
        OffPolicyReply::Report(vec![("learners/td_loss".into(), 0.5)]),
        OffPolicyReply::State(Box::new(state)),
        OffPolicyReply::Restored(counters),
    ];
    // The enums have no PartialEq (they hold refs): compare their debug forms, in which a
    // decoded ref shows that it is borrowed (see check_borrowed).
    let same = |back: String, original: String| assert_eq!(back.replace(", borrowed", ""), original);
    for m in &msgs {
        let back: OffPolicyMsg = decode(&encode(m).unwrap()).unwrap();
        same(format!("{back:?}"), format!("{m:?}"));
    }
    for r in &replies {
        let back: OffPolicyReply = decode(&encode(r).unwrap()).unwrap();
        same(format!("{back:?}"), format!("{r:?}"));
    }
    drop((msgs, replies, store));
    assert_eq!(<rllib::dqn::DqnLearner as rl_runtime::Actor>::TYPE_NAME, "DqnLearner");
    assert_eq!(<rllib::sac::SacLearner as rl_runtime::Actor>::TYPE_NAME, "SacLearner");
}

/// Refs to two objects of `store`, owning, plus the store.
fn refs() -> (ObjectStore, ObjectRef, ObjectRef) {
    let store = ObjectStore::new(StoreOptions::default());
    let a = store.put(Bytes::from_static(b"weights")).unwrap();
    let b = store.put(Bytes::from_static(b"batch")).unwrap();
    (store, a, b)
}

/// What a round-tripped ref owns: it names the same object, owns nothing, and reads the object
/// only while an owning ref lives (a serialized ref is borrowed; see `rl_runtime::ObjectRef`).
fn check_borrowed(store: &ObjectStore, original: ObjectRef, back: ObjectRef) {
    assert!(original.is_owning());
    assert_eq!(back.id(), original.id());
    assert!(!back.is_owning(), "a decoded ref must not own its object");
    assert!(store.get_blocking(&back, None).is_ok());
    drop(original);
    assert!(matches!(store.get_blocking(&back, None), Err(RuntimeError::ObjectFreed(_))));
}

#[test]
fn rollout_worker_messages_round_trip() {
    for config in configs() {
        round_trip(&RolloutWorkerInit { config, worker_index: u32::MAX, restarts: u32::MAX });
    }
    let (store, weights, batch) = refs();
    // Env state travels as JSON text (postcard cannot carry a self-describing JSON value).
    let state = EnvRunnerState {
        worker_index: 3,
        restarts: 2,
        rng: (u128::MAX - 3, 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        steps: 1 << 40,
        envs: Some(r#"{"envs":[{"x":"0x3ff0000000000000"}]}"#.into()),
        normalizers: None,
    };
    let msgs = vec![
        RolloutMsg::SetWeights(weights.clone()),
        RolloutMsg::Sample(
            Some(Box::new(rl_env::MeanStdFilter::new(3, None))),
            rllib::acting::Exploration::EpsilonGreedy(0.25),
        ),
        RolloutMsg::State,
        RolloutMsg::Restore(Box::new(EnvRunnerState { envs: None, ..state.clone() })),
    ];
    let replies = vec![
        RolloutReply::Weights(u64::MAX),
        RolloutReply::Batch {
            batch: batch.clone(),
            sub_env_restarts: 7,
            observation_stats: Some(Box::new(ObservationStats::Gymnasium(rl_env::RunningMeanStd::new(3)))),
        },
        RolloutReply::State(Box::new(state)),
        RolloutReply::Restored(false),
    ];
    let msg_variant = |m: &RolloutMsg| match m {
        RolloutMsg::SetWeights(_) => 0,
        RolloutMsg::Sample(..) => 1,
        RolloutMsg::State => 2,
        RolloutMsg::Restore(_) => 3,
    };
    let reply_variant = |r: &RolloutReply| match r {
        RolloutReply::Weights(_) => 0,
        RolloutReply::Batch { .. } => 1,
        RolloutReply::State(_) => 2,
        RolloutReply::Restored(_) => 3,
    };
    assert_eq!(msgs.iter().map(msg_variant).collect::<BTreeSet<_>>().len(), 4, "every RolloutMsg variant");
    assert_eq!(replies.iter().map(reply_variant).collect::<BTreeSet<_>>().len(), 4, "every RolloutReply variant");
    let mut backs = msgs.iter().map(round_trip).collect::<Vec<_>>().into_iter();
    let mut reply_backs = replies.iter().map(round_trip).collect::<Vec<_>>().into_iter();
    drop((msgs, replies));
    let Some(RolloutMsg::SetWeights(w)) = backs.next() else { unreachable!() };
    check_borrowed(&store, weights, w);
    let Some(RolloutReply::Batch { batch: b, sub_env_restarts: 7, .. }) = reply_backs.nth(1) else { unreachable!() };
    check_borrowed(&store, batch, b);
    assert_eq!(RolloutWorker::TYPE_NAME, "RolloutWorker");
}

#[test]
fn learner_messages_round_trip() {
    for config in configs() {
        round_trip(&LearnerInit {
            env: config.env.clone(),
            env_config: config.env_config.clone(),
            model: config.model.clone(),
            seed: config.seed,
        });
    }
    let [a, b] = configs();
    let (store, weights, batch) = refs();
    let state = LearnerState {
        policy: (0..=255).collect(),
        policy_version: 41,
        optimizer: OptimizerState {
            step: 1 << 40,
            moments: vec![("m.0".into(), vec![0.5, -0.0, f32::MIN_POSITIVE]), ("v.0".into(), vec![1e-30, 3.0])],
        },
        rng: (u128::MAX, 1),
    };
    let stats = UpdateStats {
        policy_loss: -0.012,
        vf_loss: 36.5,
        entropy: 0.69,
        approx_kl: 1e-4,
        clip_fraction: 0.125,
        grad_norm: 7.25,
        explained_variance: -0.5,
        num_minibatch_updates: 16,
        num_env_steps: 512,
        episode_returns: vec![19.0, -200.0, 0.5],
        episode_lengths: vec![19, 200, 1],
        policy_version: 42,
    };
    let msgs = vec![
        LearnerMsg::PublishWeights,
        LearnerMsg::Update { batches: vec![batch.clone(), batch.clone()], hyperparams: PpoHyperparams::at(&a, 1) },
        LearnerMsg::Update { batches: vec![], hyperparams: PpoHyperparams::at(&b, 2) },
        LearnerMsg::State,
        LearnerMsg::Restore(Box::new(state.clone())),
    ];
    let replies = vec![
        LearnerReply::Weights(weights.clone(), 7),
        LearnerReply::Updated(stats),
        LearnerReply::State(Box::new(state)),
        LearnerReply::BatchesLost("object 7 is lost: its owner, node 3, died".into()),
        LearnerReply::Restored,
    ];
    let msg_variant = |m: &LearnerMsg| match m {
        LearnerMsg::PublishWeights => 0,
        LearnerMsg::Update { .. } => 1,
        LearnerMsg::State => 2,
        LearnerMsg::Restore(_) => 3,
    };
    let reply_variant = |r: &LearnerReply| match r {
        LearnerReply::Weights(..) => 0,
        LearnerReply::Updated(_) => 1,
        LearnerReply::State(_) => 2,
        LearnerReply::BatchesLost(_) => 3,
        LearnerReply::Restored => 4,
    };
    assert_eq!(msgs.iter().map(msg_variant).collect::<BTreeSet<_>>().len(), 4, "every LearnerMsg variant");
    assert_eq!(replies.iter().map(reply_variant).collect::<BTreeSet<_>>().len(), 5, "every LearnerReply variant");
    // The two hyperparameter sets differ in every optional and scheduled field.
    let (ha, hb) = (PpoHyperparams::at(&a, 1), PpoHyperparams::at(&b, 2));
    assert!(
        ha.vf_clip_param.is_none() && hb.vf_clip_param.is_some() && ha.target_kl.is_none() && hb.target_kl.is_some()
    );
    assert!(ha.clip_vloss && !hb.clip_vloss && ha.bootstrap_truncated && !hb.bootstrap_truncated);
    let msg_backs: Vec<LearnerMsg> = msgs.iter().map(round_trip).collect();
    let reply_backs: Vec<LearnerReply> = replies.iter().map(round_trip).collect();
    drop((msgs, replies));
    let LearnerReply::Weights(w, 7) = &reply_backs[0] else { unreachable!() };
    check_borrowed(&store, weights, w.clone());
    let LearnerMsg::Update { batches, .. } = &msg_backs[1] else { unreachable!() };
    assert!(batches.iter().all(|r| r.id() == batch.id() && !r.is_owning()));
    check_borrowed(&store, batch, batches[0].clone());
    assert_eq!(Learner::TYPE_NAME, "PpoLearner");
}
