//! The algorithms a config can name, which config keys each reads, and their per-algorithm
//! defaults.
//!
//! A config is flat, as RLlib's is, so one key set serves every algorithm. Three rules keep that
//! honest:
//! - a key set in a config must be one the configured algorithm reads (`clip_param` in a DQN
//!   config is refused, naming the line), so nothing is silently ignored;
//! - a shared key the user leaves out gets its default *for that algorithm* (`grad_clip` is 0.5
//!   for PPO as in CleanRL's `ppo.py`, 10 for DQN as in SB3); see [`algorithm_defaults`];
//! - a recorded config (`config.yaml` of a run or checkpoint) holds exactly the keys its
//!   algorithm reads, each with its value (`TrainConfig::to_yaml`).
//!
//! Nothing here knows the config struct: it works on the config as a tree of values.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// The algorithm to train (the config's `algorithm` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlgorithmId {
    /// Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate objective.
    #[serde(rename = "PPO")]
    Ppo,
    /// Deep Q-Network (Mnih et al. 2015), with double Q-learning, dueling heads, n-step returns
    /// and prioritized replay as options.
    #[serde(rename = "DQN")]
    Dqn,
    /// Soft Actor-Critic (Haarnoja et al. 2018), twin critics and automatic entropy tuning.
    #[serde(rename = "SAC")]
    Sac,
}

impl AlgorithmId {
    /// The name used in configs, run directories and checkpoints (`"PPO"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ppo => "PPO",
            Self::Dqn => "DQN",
            Self::Sac => "SAC",
        }
    }
}

/// The loss on DQN's TD errors (RLlib's `td_error_loss_fn`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TdErrorLossFn {
    /// Huber loss with delta 1 (PyTorch's `smooth_l1_loss`, SB3's DQN loss and RLlib's default):
    /// `0.5 x^2` for `|x| < 1`, else `|x| - 0.5`.
    #[default]
    Huber,
    /// Mean squared error (CleanRL's `dqn.py`).
    Mse,
}

/// SAC's target entropy: `auto` (`-dim(A)`, as RLlib, SB3 and CleanRL) or a number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum TargetEntropy {
    /// Minus the action dimension.
    #[default]
    Auto,
    /// This value.
    Value(f64),
}

impl TargetEntropy {
    /// The target for an action space of `act_dim` dimensions.
    pub fn resolve(self, act_dim: usize) -> f64 {
        match self {
            Self::Auto => -(act_dim as f64),
            Self::Value(v) => v,
        }
    }
}

/// `auto` or a number in YAML and JSON; `Option<f64>` (`None` for `auto`) in binary codecs,
/// which cannot tell a string from a number without a schema.
impl Serialize for TargetEntropy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match (self, s.is_human_readable()) {
            (Self::Auto, true) => s.serialize_str("auto"),
            (Self::Value(v), true) => s.serialize_f64(*v),
            (Self::Auto, false) => s.serialize_none(),
            (Self::Value(v), false) => s.serialize_some(v),
        }
    }
}

impl<'de> Deserialize<'de> for TargetEntropy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        if !d.is_human_readable() {
            return Ok(Option::<f64>::deserialize(d)?.map_or(Self::Auto, Self::Value));
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(Self::Value(v)),
            Raw::Text(t) if t == "auto" => Ok(Self::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!("expected `auto` or a number, got {t:?}"))),
        }
    }
}

/// Keys every algorithm reads.
const SHARED: &[&str] = &[
    "algorithm",
    "env",
    "env_config",
    "seed",
    "num_env_runners",
    "num_cpus_per_env_runner",
    "placement_strategy",
    "learner_in_placement_group",
    "env_runner_isolation",
    "num_envs_per_env_runner",
    "gamma",
    "bootstrap_truncated",
    "model",
    "stop",
    "evaluation",
    "checkpoint",
    "fault_tolerance",
    "normalize_observation",
    "normalize_reward",
    "observation_filter",
    "adam_epsilon",
];

/// Keys only PPO reads.
const PPO_ONLY: &[&str] = &[
    "rollout_fragment_length",
    "lr_schedule",
    "lambda",
    "clip_param",
    "clip_param_schedule",
    "clip_vloss",
    "vf_clip_param",
    "entropy_coeff",
    "vf_loss_coeff",
    "num_epochs",
    "minibatch_size",
    "normalize_advantages",
    "target_kl",
];

/// Keys PPO and DQN read (SAC has a learning rate per network and no gradient clip).
const PPO_AND_DQN: &[&str] = &["lr", "grad_clip"];

/// Keys both off-policy algorithms read: the replay buffer and the update cadence.
const OFF_POLICY: &[&str] = &[
    "buffer_size",
    "learning_starts",
    "batch_size",
    "tau",
    "train_freq",
    "gradient_steps",
    "target_update_interval",
    "n_step",
    "prioritized_replay",
    "min_sample_timesteps_per_iteration",
];

/// Keys only DQN reads.
const DQN_ONLY: &[&str] = &[
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
    "double_q",
    "dueling",
    "td_error_loss_fn",
];

/// Keys only SAC reads.
const SAC_ONLY: &[&str] =
    &["actor_lr", "critic_lr", "alpha_lr", "initial_alpha", "autotune", "target_entropy", "policy_frequency"];

/// `model` keys only PPO's actor-critic reads.
const PPO_MODEL_ONLY: &[&str] = &["vf_share_layers", "log_std_init"];

/// True when `algorithm` reads the top-level config key `key`.
pub fn reads_key(algorithm: AlgorithmId, key: &str) -> bool {
    let off_policy = matches!(algorithm, AlgorithmId::Dqn | AlgorithmId::Sac);
    SHARED.contains(&key)
        || (algorithm == AlgorithmId::Ppo && PPO_ONLY.contains(&key))
        || (matches!(algorithm, AlgorithmId::Ppo | AlgorithmId::Dqn) && PPO_AND_DQN.contains(&key))
        || (off_policy && OFF_POLICY.contains(&key))
        || (algorithm == AlgorithmId::Dqn && DQN_ONLY.contains(&key))
        || (algorithm == AlgorithmId::Sac && SAC_ONLY.contains(&key))
}

/// True when `algorithm` reads `model.key`.
pub fn reads_model_key(algorithm: AlgorithmId, key: &str) -> bool {
    algorithm == AlgorithmId::Ppo || !PPO_MODEL_ONLY.contains(&key)
}

/// The algorithms that read `key`, for an error message (`"PPO and DQN"`).
fn readers(key: &str) -> String {
    let names: Vec<&str> = [AlgorithmId::Ppo, AlgorithmId::Dqn, AlgorithmId::Sac]
        .into_iter()
        .filter(|a| reads_key(*a, key))
        .map(AlgorithmId::name)
        .collect();
    names.join(" and ")
}

/// The first key in a user's config tree (top level, and `model`) that `algorithm` does not
/// read, as `(dotted key, message)`.
pub fn unread_key(algorithm: AlgorithmId, tree: &Value) -> Option<(String, String)> {
    let map = tree.as_object()?;
    for key in map.keys() {
        if !reads_key(algorithm, key) {
            let hint = match (algorithm, key.as_str()) {
                (AlgorithmId::Sac, "lr") => "; SAC has one learning rate per network: actor_lr, critic_lr, alpha_lr",
                (_, "rollout_fragment_length") => "; the off-policy algorithms sample train_freq steps per round",
                _ => "",
            };
            return Some((
                key.clone(),
                format!("{key} is a {} setting; {} does not read it{hint}", readers(key), algorithm.name()),
            ));
        }
    }
    let model = map.get("model").and_then(Value::as_object)?;
    model.keys().find(|k| !reads_model_key(algorithm, k)).map(|k| {
        (
            format!("model.{k}"),
            format!("model.{k} is a setting of PPO's actor-critic; {} does not read it", algorithm.name()),
        )
    })
}

/// The defaults of the keys whose default depends on the algorithm, as `(key, value)`; `model`
/// is given as a map of its own keys.
///
/// Sources: PPO from CleanRL's `ppo.py` (the serde defaults of `TrainConfig`); DQN from SB3's
/// `DQN` (1 env, `learning_rate` 1e-4, `batch_size` 32, `tau` 1.0, `train_freq` 4,
/// `target_update_interval` 10000, `max_grad_norm` 10, `net_arch` [64, 64] with ReLU, Adam's
/// PyTorch epsilon 1e-8); SAC from SB3's `SAC` (1 env, `batch_size` 256, `tau` 0.005,
/// `train_freq` 1, `target_update_interval` 1, `net_arch` [256, 256] with ReLU) and CleanRL's
/// `sac_continuous_action.py` for the learning rates (policy 3e-4, q and alpha 1e-3).
pub fn algorithm_defaults(algorithm: AlgorithmId) -> Vec<(&'static str, Value)> {
    match algorithm {
        AlgorithmId::Ppo => Vec::new(),
        AlgorithmId::Dqn => vec![
            ("num_env_runners", json!(1)),
            ("num_envs_per_env_runner", json!(1)),
            ("lr", json!(1e-4)),
            ("adam_epsilon", json!(1e-8)),
            ("grad_clip", json!(10.0)),
            ("batch_size", json!(32)),
            ("tau", json!(1.0)),
            ("train_freq", json!(4)),
            ("target_update_interval", json!(10_000)),
            ("model", json!({"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"})),
        ],
        AlgorithmId::Sac => vec![
            ("num_env_runners", json!(1)),
            ("num_envs_per_env_runner", json!(1)),
            ("adam_epsilon", json!(1e-8)),
            ("batch_size", json!(256)),
            ("tau", json!(0.005)),
            ("train_freq", json!(1)),
            ("target_update_interval", json!(1)),
            ("model", json!({"fcnet_hiddens": [256, 256], "fcnet_activation": "relu"})),
        ],
    }
}

/// Fills `config` (as a tree) with `algorithm`'s defaults for every key that `given` (the user's
/// own tree) does not set; inside `model`, key by key.
pub fn apply_defaults(algorithm: AlgorithmId, config: &mut Value, given: &Value) {
    let given = given.as_object();
    let is_given = |k: &str| given.is_some_and(|g| g.contains_key(k));
    let Some(map) = config.as_object_mut() else { return };
    for (key, default) in algorithm_defaults(algorithm) {
        if key == "model" {
            let given_model = given.and_then(|g| g.get("model")).and_then(Value::as_object);
            let (Some(model), Some(defaults)) =
                (map.get_mut("model").and_then(Value::as_object_mut), default.as_object())
            else {
                continue;
            };
            for (k, v) in defaults {
                if !given_model.is_some_and(|m| m.contains_key(k)) {
                    model.insert(k.clone(), v.clone());
                }
            }
        } else if !is_given(key) {
            map.insert(key.to_string(), default);
        }
    }
}
