//! Training configs: the YAML schema (RLlib key names, SB3's for the replay keys), `--set`
//! overrides, per-algorithm defaults and validation.
//!
//! A config is read from YAML with unknown keys rejected, then `--set key=value` overrides are
//! applied (dotted paths reach nested keys: `--set model.fcnet_hiddens=[32,32]`), then every
//! value is range-checked. Each error names where the bad value came from (`file:line` or the
//! `--set` argument), the key, and what is allowed.

use std::path::Path;

use rl_env::{Kwargs, Space};
use rl_policies::PolicyConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

mod algorithms;
mod off_policy;
mod validate;

pub use self::algorithms::{AlgorithmId, TargetEntropy, TdErrorLossFn, algorithm_defaults, reads_key};
pub use crate::replay::PrioritizedReplayConfig;

/// How a scheduled value (`lr`, `clip_param`) changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The configured value throughout.
    Constant,
    /// From the configured value at the first iteration down to 0 at the last one (CleanRL's
    /// `anneal_lr`). Needs `stop.num_env_steps_sampled_lifetime` or `stop.training_iteration`.
    Linear,
}

/// When to stop training; the first criterion met ends the run. At least one is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopConfig {
    /// Total env steps sampled.
    pub num_env_steps_sampled_lifetime: Option<u64>,
    /// Number of training iterations.
    pub training_iteration: Option<u64>,
    /// Mean return of the recent training episodes (over the last 100 episodes).
    #[serde(rename = "env_runners/episode_return_mean")]
    pub episode_return_mean: Option<f64>,
    /// Wall-clock seconds.
    pub time_total_s: Option<f64>,
}

/// Deterministic evaluation on separate envs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// Evaluate every this many iterations; 0 evaluates only at the end.
    pub interval: u64,
    /// Episodes per evaluation.
    pub duration: u64,
    /// Seed of the evaluation envs (episode `i` resets with `seed + i`).
    pub seed: u64,
    /// An evaluation episode is cut after this many steps, so an env without a time limit
    /// cannot make evaluation run forever (the env's own time limit applies first).
    pub max_episode_steps: u64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self { interval: 0, duration: 20, seed: 1_000_000, max_episode_steps: 100_000 }
    }
}

/// Checkpoint cadence and retention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Write a checkpoint every this many iterations; 0 writes only the final one.
    pub frequency: u64,
    /// Keep at most this many iteration checkpoints (`iter_*`, periodic or written on a
    /// signal) on disk: once a new one is complete, the oldest beyond this count are deleted
    /// (Ray Tune's `CheckpointConfig.num_to_keep`, ordered by recency). `None` keeps them all;
    /// `final` is never deleted. At least 1.
    pub num_to_keep: Option<usize>,
}

/// What happens when an env runner (rollout worker) fails: RLlib's `fault_tolerance` settings,
/// with RLlib's key names and meanings (`sample_timeout_s` is set through `env_runners()` in
/// RLlib; here it sits with the rest).
///
/// A runner *fails* when its env panics or returns an error, when a sample takes longer than
/// `sample_timeout_s`, when its process dies (`env_runner_isolation: process`) or when its node
/// is declared dead. A restarted runner is rebuilt from its constructor (at-most-once calls, as
/// in Ray: a message in flight when the runner failed is not replayed): same worker index, envs
/// re-seeded from the index and the restart count, and the current weights before it samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultToleranceConfig {
    /// Restart a failed runner as an identical copy (same worker index). When true,
    /// `ignore_env_runner_failures` does not matter (RLlib's default: true).
    pub restart_failed_env_runners: bool,
    /// Without restarts, go on with the healthy runners instead of failing the run (RLlib's
    /// default: false). The run fails once no runner is left.
    pub ignore_env_runner_failures: bool,
    /// How many times each runner may be restarted; one more failure fails the run, or, with
    /// `ignore_env_runner_failures`, drops the runner (RLlib's default: 1000).
    pub max_num_env_runner_restarts: u32,
    /// Seconds between a runner's failure and its restart (RLlib's default is 60; ours is 1,
    /// so a short run does not idle for a minute). Iterations in between use the healthy
    /// runners.
    pub delay_between_env_runner_restarts_s: f64,
    /// Seconds a runner may take for one sample (the weights it loads included) before it
    /// counts as failed (RLlib's `sample_timeout_s`, default 60). Keep it well above a loaded
    /// machine's sample time, so slow is not taken for stuck.
    pub sample_timeout_s: f64,
    /// When a sub-environment of a runner's vector env fails (error or panic), rebuild and
    /// reset only that sub-environment and go on: the runner does not fail and its other
    /// sub-environments keep their episodes (RLlib's default: false).
    pub restart_failed_sub_environments: bool,
}

impl Default for FaultToleranceConfig {
    fn default() -> Self {
        Self {
            restart_failed_env_runners: true,
            ignore_env_runner_failures: false,
            max_num_env_runner_restarts: 1000,
            delay_between_env_runner_restarts_s: 1.0,
            sample_timeout_s: 60.0,
            restart_failed_sub_environments: false,
        }
    }
}

/// Gymnasium's `NormalizeObservation` on every sub-env, then a clip (the config's
/// `normalize_observation`; `{}` takes the defaults, which are CleanRL's). Each sub-env keeps its
/// own running mean and variance (Gymnasium's `RunningMeanStd`: mean 0, variance 1 and count
/// 1e-4 to start), updated with every observation it returns; the policy sees
/// `clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeObservationConfig {
    /// Added to the variance under the square root (Gymnasium's default: 1e-8).
    pub epsilon: f64,
    /// Normalized observations are clipped to `[-clip, clip]`, or not at all with null
    /// (CleanRL: 10).
    pub clip: Option<f64>,
}

impl Default for NormalizeObservationConfig {
    fn default() -> Self {
        Self { epsilon: 1e-8, clip: Some(10.0) }
    }
}

/// Gymnasium's `NormalizeReward` on every sub-env, then a clip (the config's `normalize_reward`;
/// `{}` takes the defaults, which are CleanRL's). Each sub-env keeps a discounted return
/// `G = G * gamma * (1 - terminated) + reward` and the running variance of `G`; the learner sees
/// `clip(reward / sqrt(var + epsilon), -clip, clip)`. Episode returns in metrics stay the env's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeRewardConfig {
    /// Discount of the return whose variance scales rewards; null takes the config's `gamma`
    /// (as CleanRL passes its `gamma`).
    pub gamma: Option<f64>,
    /// Added to the variance under the square root (Gymnasium's default: 1e-8).
    pub epsilon: f64,
    /// Normalized rewards are clipped to `[-clip, clip]`, or not at all with null (CleanRL: 10).
    pub clip: Option<f64>,
}

impl Default for NormalizeRewardConfig {
    fn default() -> Self {
        Self { gamma: None, epsilon: 1e-8, clip: Some(10.0) }
    }
}

/// RLlib's `observation_filter`: `NoFilter` (default) or `MeanStdFilter`, one running mean and
/// standard deviation per runner, merged across runners by the driver every iteration and handed
/// back to every runner; the policy sees `(obs - mean) / (std + 1e-6)`, not clipped (RLlib's
/// `MeanStdFilter(shape, clip=None)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObservationFilter {
    /// Observations pass through.
    #[default]
    NoFilter,
    /// Normalize with statistics merged across runners each iteration.
    MeanStdFilter,
}

/// Where each env runner runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvRunnerIsolation {
    /// A thread of a node's process (the default): cheapest; an abort in env code (a native
    /// library's crash) takes the whole node down.
    #[default]
    Thread,
    /// A process of its own on its node (needs a cluster, `rl train --address`): an abort kills
    /// only that runner, and a stalled runner can be killed at once.
    Process,
}

/// A full training config. Key names follow RLlib where RLlib has one; defaults follow
/// CleanRL's `ppo.py` (cited per field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The algorithm.
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmId,
    /// Env id from the registry (`rl envs` lists them).
    pub env: String,
    /// Keyword arguments for the env constructor (and `max_episode_steps`).
    #[serde(default, with = "rl_env::kwargs_serde")]
    pub env_config: Kwargs,
    /// Seed of everything: env resets, policy init, action sampling, minibatch shuffling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Rollout-worker actors.
    #[serde(default = "default_num_env_runners")]
    pub num_env_runners: usize,
    /// CPUs each rollout worker reserves on the runtime (RLlib's `num_cpus_per_env_runner`).
    #[serde(default = "default_num_cpus_per_env_runner")]
    pub num_cpus_per_env_runner: f64,
    /// How a cluster places the rollout workers: one placement group with a bundle of
    /// `num_cpus_per_env_runner` CPUs per worker, under this strategy (`PACK`, `SPREAD`,
    /// `STRICT_PACK` or `STRICT_SPREAD`, Ray's meanings). RLlib's key of the same name; its
    /// default there is `PACK`, ours `SPREAD`, so workers use every node's cores. Ignored by the
    /// embedded runtime.
    #[serde(default = "default_placement_strategy")]
    pub placement_strategy: String,
    /// On a cluster, run the learner in the first bundle (1 CPU) of that placement group, on a
    /// worker node, instead of in the driver's process (where `rl train --address` runs). Our own
    /// key; RLlib places its learners through its trial's group too. Ignored by the embedded
    /// runtime.
    #[serde(default)]
    pub learner_in_placement_group: bool,
    /// Whether each env runner is a thread (default) or a process of its own on its node. Our
    /// own key (RLlib runs every runner as a Ray actor process).
    #[serde(default)]
    pub env_runner_isolation: EnvRunnerIsolation,
    /// Sub-envs per rollout worker (CleanRL: 4 envs in total).
    #[serde(default = "default_num_envs_per_env_runner")]
    pub num_envs_per_env_runner: usize,
    /// Steps each sub-env takes per iteration (CleanRL `num_steps` = 128).
    #[serde(default = "default_rollout_fragment_length")]
    pub rollout_fragment_length: usize,
    /// Adam learning rate (CleanRL 2.5e-4).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Learning-rate schedule (CleanRL anneals linearly).
    #[serde(default = "default_lr_schedule")]
    pub lr_schedule: Schedule,
    /// Adam epsilon (CleanRL 1e-5).
    #[serde(default = "default_adam_epsilon")]
    pub adam_epsilon: f64,
    /// Discount factor (0.99).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Bootstrap the return of a time-limit truncation from the value of the final observation
    /// (true, as SB3 does), or treat truncation as termination (false, as CleanRL's `ppo.py`).
    #[serde(default = "default_true")]
    pub bootstrap_truncated: bool,
    /// GAE lambda (0.95).
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// PPO ratio clip (0.2).
    #[serde(default = "default_clip_param")]
    pub clip_param: f64,
    /// Schedule of `clip_param`: `constant` (default, CleanRL) or `linear` down to 0 over the
    /// planned iterations, like `lr_schedule` (rl-baselines3-zoo's `clip_range: lin_0.2`).
    #[serde(default = "default_clip_param_schedule")]
    pub clip_param_schedule: Schedule,
    /// CleanRL's value clipping (`clip_vloss`, default true): the new value may move at most
    /// `clip_param` from the value at sampling time, and the larger of the clipped and
    /// unclipped squared errors counts.
    #[serde(default = "default_true")]
    pub clip_vloss: bool,
    /// RLlib's `vf_clip_param`: each sample's squared value error is capped at this value, or
    /// null for no cap (RLlib's default is 10.0; CleanRL and SB3 have no cap, hence null here).
    #[serde(default)]
    pub vf_clip_param: Option<f64>,
    /// Entropy bonus coefficient (0.01).
    #[serde(default = "default_entropy_coeff")]
    pub entropy_coeff: f64,
    /// Weight of the value loss, the plain mean squared value error (RLlib's `vf_loss_coeff`,
    /// SB3's `vf_coef`). CleanRL's `0.5 * MSE` with `vf_coef` 0.5 is 0.25, the default.
    #[serde(default = "default_vf_loss_coeff")]
    pub vf_loss_coeff: f64,
    /// Global gradient-norm clip, or null for none (0.5).
    #[serde(default = "default_grad_clip")]
    pub grad_clip: Option<f64>,
    /// SGD epochs per iteration (4).
    #[serde(default = "default_num_epochs")]
    pub num_epochs: usize,
    /// Minibatch size (CleanRL: 512 / 4 minibatches = 128).
    #[serde(default = "default_minibatch_size")]
    pub minibatch_size: usize,
    /// Normalize advantages per minibatch (true).
    #[serde(default = "default_true")]
    pub normalize_advantages: bool,
    /// Stop the epochs of an iteration early once the approximate KL exceeds this (null: never).
    #[serde(default)]
    pub target_kl: Option<f64>,
    /// The policy network.
    #[serde(default)]
    pub model: PolicyConfig,
    /// Stop conditions.
    #[serde(default)]
    pub stop: StopConfig,
    /// Evaluation settings.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Checkpoint settings.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// What happens when env runners fail.
    #[serde(default)]
    pub fault_tolerance: FaultToleranceConfig,
    /// Gymnasium's `NormalizeObservation` per sub-env, as CleanRL applies it (null: off).
    #[serde(default)]
    pub normalize_observation: Option<NormalizeObservationConfig>,
    /// Gymnasium's `NormalizeReward` per sub-env, as CleanRL applies it (null: off).
    #[serde(default)]
    pub normalize_reward: Option<NormalizeRewardConfig>,
    /// RLlib's `observation_filter` (`NoFilter` or `MeanStdFilter`).
    #[serde(default)]
    pub observation_filter: ObservationFilter,

    // --- DQN and SAC: the replay buffer and the update cadence (SB3's names and meanings) ---
    /// Transitions the replay buffer holds; the oldest are overwritten (SB3: 1,000,000).
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
    /// Env steps sampled with uniformly random actions before learning starts; gradient steps
    /// begin once more than this many were sampled (SB3: 100).
    #[serde(default = "default_learning_starts")]
    pub learning_starts: u64,
    /// Transitions per gradient step (SB3: 32 for DQN, 256 for SAC).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Polyak coefficient of the target networks: `target = tau * online + (1 - tau) * target`
    /// (1 is a hard copy; SB3: 1.0 for DQN, 0.005 for SAC).
    #[serde(default = "default_tau")]
    pub tau: f64,
    /// Steps every sub-env of every runner takes per round before the round's gradient steps
    /// (SB3's `train_freq` in steps, counting one step of the vector env made of all the
    /// runners' sub-envs; SB3: 4 for DQN, 1 for SAC).
    #[serde(default = "default_train_freq")]
    pub train_freq: usize,
    /// Gradient steps after each round, or -1 for as many as the round's env steps (SB3: 1).
    #[serde(default = "default_gradient_steps")]
    pub gradient_steps: i64,
    /// How often the target networks are updated: every this many env steps for DQN (SB3's
    /// DQN), every this many gradient steps for SAC (SB3's SAC; 10000 and 1 by default).
    #[serde(default = "default_target_update_interval")]
    pub target_update_interval: u64,
    /// Steps per return: transitions store `sum_k gamma^k r_k` over up to `n_step` steps and
    /// bootstrap from the observation after them (RLlib's `n_step`; 1 is plain TD).
    #[serde(default = "default_one")]
    pub n_step: usize,
    /// Prioritized replay (Schaul et al. 2016) instead of uniform sampling (null: uniform).
    #[serde(default)]
    pub prioritized_replay: Option<PrioritizedReplayConfig>,
    /// An iteration runs whole rounds until it sampled at least this many env steps (RLlib's
    /// `min_sample_timesteps_per_iteration`; one row of `progress.csv` per iteration).
    #[serde(default = "default_min_sample_timesteps_per_iteration")]
    pub min_sample_timesteps_per_iteration: u64,

    // --- DQN (SB3's exploration names, RLlib's option names) ---
    /// Fraction of the planned env steps over which epsilon falls linearly from
    /// `exploration_initial_eps` to `exploration_final_eps` (SB3: 0.1).
    #[serde(default = "default_exploration_fraction")]
    pub exploration_fraction: f64,
    /// Epsilon at the start (SB3: 1.0).
    #[serde(default = "default_exploration_initial_eps")]
    pub exploration_initial_eps: f64,
    /// Epsilon after the schedule (SB3: 0.05).
    #[serde(default = "default_exploration_final_eps")]
    pub exploration_final_eps: f64,
    /// Double Q-learning (van Hasselt et al. 2016): the online network picks the next action,
    /// the target network values it (RLlib's `double_q`; false here, as SB3 and CleanRL).
    #[serde(default)]
    pub double_q: bool,
    /// Dueling heads (Wang et al. 2016): `Q = V + A - mean(A)` (RLlib's `dueling`; false here, as
    /// SB3 and CleanRL).
    #[serde(default)]
    pub dueling: bool,
    /// The loss on TD errors (RLlib's `td_error_loss_fn`: `huber`, SB3's, or `mse`, CleanRL's).
    #[serde(default)]
    pub td_error_loss_fn: TdErrorLossFn,

    // --- SAC (RLlib's learning-rate names, CleanRL's `autotune` and `policy_frequency`) ---
    /// Actor learning rate (CleanRL's `policy_lr` 3e-4).
    #[serde(default = "default_actor_lr")]
    pub actor_lr: f64,
    /// Critics' learning rate (CleanRL's `q_lr` 1e-3).
    #[serde(default = "default_critic_lr")]
    pub critic_lr: f64,
    /// Entropy coefficient's learning rate (CleanRL: `q_lr`, 1e-3).
    #[serde(default = "default_critic_lr")]
    pub alpha_lr: f64,
    /// The entropy coefficient alpha at the start, or throughout without `autotune` (RLlib's
    /// `initial_alpha`, 1.0, SB3's `ent_coef: auto` start).
    #[serde(default = "default_initial_alpha")]
    pub initial_alpha: f64,
    /// Tune alpha so the policy's entropy tracks `target_entropy` (CleanRL's `autotune`: true).
    #[serde(default = "default_true")]
    pub autotune: bool,
    /// The entropy alpha is tuned towards: `auto` is `-dim(A)`.
    #[serde(default)]
    pub target_entropy: TargetEntropy,
    /// Actor (and alpha) updates happen every this many gradient steps, that many at once
    /// (CleanRL's `policy_frequency`, 2 there; 1 updates every step, as SB3).
    #[serde(default = "default_one")]
    pub policy_frequency: usize,
}

fn default_algorithm() -> AlgorithmId {
    AlgorithmId::Ppo
}
fn default_seed() -> u64 {
    1
}
fn default_num_env_runners() -> usize {
    2
}
fn default_num_cpus_per_env_runner() -> f64 {
    1.0
}
fn default_placement_strategy() -> String {
    "SPREAD".into()
}
fn default_num_envs_per_env_runner() -> usize {
    2
}
fn default_rollout_fragment_length() -> usize {
    128
}
fn default_lr() -> f64 {
    2.5e-4
}
fn default_lr_schedule() -> Schedule {
    Schedule::Linear
}
fn default_adam_epsilon() -> f64 {
    1e-5
}
fn default_gamma() -> f64 {
    0.99
}
fn default_lambda() -> f64 {
    0.95
}
fn default_clip_param_schedule() -> Schedule {
    Schedule::Constant
}
fn default_clip_param() -> f64 {
    0.2
}
fn default_entropy_coeff() -> f64 {
    0.01
}
fn default_vf_loss_coeff() -> f64 {
    0.25
}
fn default_grad_clip() -> Option<f64> {
    Some(0.5)
}
fn default_num_epochs() -> usize {
    4
}
fn default_minibatch_size() -> usize {
    128
}
fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn default_buffer_size() -> usize {
    1_000_000
}
fn default_learning_starts() -> u64 {
    100
}
fn default_batch_size() -> usize {
    32
}
fn default_tau() -> f64 {
    1.0
}
fn default_train_freq() -> usize {
    4
}
fn default_gradient_steps() -> i64 {
    1
}
fn default_target_update_interval() -> u64 {
    10_000
}
fn default_min_sample_timesteps_per_iteration() -> u64 {
    1000
}
fn default_exploration_fraction() -> f64 {
    0.1
}
fn default_exploration_initial_eps() -> f64 {
    1.0
}
fn default_exploration_final_eps() -> f64 {
    0.05
}
fn default_actor_lr() -> f64 {
    3e-4
}
fn default_critic_lr() -> f64 {
    1e-3
}
fn default_initial_alpha() -> f64 {
    1.0
}

impl TrainConfig {
    /// Env steps per iteration: runners x envs per runner x fragment length.
    pub fn train_batch_size(&self) -> usize {
        // Saturating: `validate` refuses a product that overflows.
        self.num_env_runners.saturating_mul(self.num_envs_per_env_runner).saturating_mul(self.rollout_fragment_length)
    }

    /// Iterations the run is planned for, from the step or iteration budget (the smaller).
    pub fn planned_iterations(&self) -> Option<u64> {
        let by_steps =
            self.stop.num_env_steps_sampled_lifetime.map(|s| s.div_ceil(self.steps_per_iteration().max(1) as u64));
        match (by_steps, self.stop.training_iteration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The observation and action spaces of the env, made once with `env_config`.
    pub fn env_spaces(&self) -> Result<(Space, Space)> {
        let e = rl_env::make(&self.env, &self.env_config)?;
        Ok((e.observation_space().clone(), e.action_space().clone()))
    }

    /// Reads and validates a config file, then applies and validates `overrides` (`key=value`).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Reads a config recorded by a run (a run directory's or checkpoint's `config.yaml`) as it
    /// is: its keys are checked, its values are not validated against this build, so it reads
    /// even where the env it names is not registered.
    pub fn load_recorded(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        Self::parse_recorded(&text, &path.display().to_string())
    }

    /// Parses a recorded config's YAML `text` (named `source` in errors) as it is; see
    /// [`TrainConfig::load_recorded`].
    pub fn parse_recorded(text: &str, source: &str) -> Result<Self> {
        Ok(Self::from_text(text, source)?.0)
    }

    /// The config in `text` with its algorithm's defaults for the keys it leaves out, and the
    /// keys as written (a tree).
    fn from_text(text: &str, source: &str) -> Result<(Self, Value)> {
        let config: TrainConfig = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e.to_string(), source))?;
        // It parsed as a config, so it parses as a tree.
        let given: Value = serde_saphyr::from_str(text).unwrap_or(Value::Null);
        if config.algorithm == AlgorithmId::Ppo {
            return Ok((config, given));
        }
        let mut tree = serde_json::to_value(&config)
            .map_err(|e| Error::Serialize { what: "the config", message: e.to_string() })?;
        algorithms::apply_defaults(config.algorithm, &mut tree, &given);
        let config = serde_json::from_value(tree).map_err(|e| Error::config(source, e.to_string()))?;
        Ok((config, given))
    }

    /// Parses YAML `text` (named `source` in errors) and applies `overrides`.
    pub fn parse(text: &str, source: &str, overrides: &[String]) -> Result<Self> {
        let (mut config, given) = Self::from_text(text, source)?;
        let origin = |key: &str| match find_key_line(text, key) {
            Some(line) => format!("{source}:{line}"),
            None => source.to_string(),
        };
        if let Some((key, msg)) = algorithms::unread_key(config.algorithm, &given) {
            return Err(Error::config(origin(&key), msg));
        }
        config.validate().map_err(|(key, msg)| Error::config(origin(&key), format!("{key}: {msg}")))?;
        for o in overrides {
            config = config.with_override(o)?;
        }
        Ok(config)
    }

    /// Applies one `key=value` override (value in YAML syntax) and validates the result.
    pub fn with_override(&self, arg: &str) -> Result<Self> {
        let err = |msg: String| Error::config(format!("--set {arg}"), msg);
        let (key, raw) = arg.split_once('=').ok_or_else(|| err("expected key=value".into()))?;
        let key = key.trim();
        if key == "algorithm" {
            return Err(err("the algorithm sets the defaults of other keys: set it in the config file".into()));
        }
        let top = key.split('.').next().unwrap_or(key);
        if !reads_key(self.algorithm, top)
            && serde_json::to_value(self).is_ok_and(|t| t.as_object().is_some_and(|m| m.contains_key(top)))
        {
            return Err(err(format!("{top} is not a setting of {}", self.algorithm.name())));
        }
        let value = override_value(raw).map_err(err)?;
        let mut tree = serde_json::to_value(self).map_err(|e| err(e.to_string()))?;
        let mut node = &mut tree;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let map = node.as_object_mut().ok_or_else(|| err(format!("{} is not a section", parts[..i].join("."))))?;
            let last = i + 1 == parts.len();
            // `env_config` takes any keys; everywhere else the key must already exist.
            let free_form = i > 0 && parts[i - 1] == "env_config";
            if !map.contains_key(*part) && !free_form {
                let known: Vec<String> = map.keys().cloned().collect();
                let hint = closest(part, &known).map(|k| format!("; did you mean {k}?")).unwrap_or_default();
                return Err(err(format!("unknown key {part:?}{hint}")));
            }
            if last {
                map.insert(part.to_string(), value.clone());
                break;
            }
            // A free-form key that is not set yet has no section to descend into.
            node = map.get_mut(*part).ok_or_else(|| err(format!("{} is not a section", parts[..=i].join("."))))?;
        }
        let config: TrainConfig = serde_json::from_value(tree).map_err(|e| err(e.to_string()))?;
        config.validate().map_err(|(k, msg)| err(format!("{k}: {msg}")))?;
        Ok(config)
    }

    /// True when the policy sees normalized observations (`normalize_observation` or
    /// `observation_filter: MeanStdFilter`).
    pub fn normalizes_observations(&self) -> bool {
        self.normalize_observation.is_some() || self.observation_filter == ObservationFilter::MeanStdFilter
    }
}

/// Rewrites a serde-saphyr error for `source`, adding a suggestion for unknown keys.
fn yaml_error(message: &str, source: &str) -> Error {
    Error::config(source, yaml_error_message(message, source))
}

/// A serde-saphyr error `message` rewritten for `source` (`line L column C: ...`, to follow
/// `source: `), with a suggestion when it rejects an unknown key close to a known one.
pub fn yaml_error_message(message: &str, source: &str) -> String {
    let mut out = plain_yaml_message(&message.replace("<input>", source));
    if let Some(rest) = message.split("unknown field `").nth(1)
        && let Some((field, tail)) = rest.split_once('`')
        && let Some(list) = tail.split("expected one of ").nth(1)
    {
        let known: Vec<String> =
            list.lines().next().unwrap_or("").split(',').map(|s| s.trim().trim_matches('`').to_string()).collect();
        if let Some(k) = closest(field, &known) {
            out.push_str(&format!("\nhelp: did you mean `{k}`?"));
        }
    }
    out.trim_start_matches("error: ").to_string()
}

/// The YAML parser's wording for users: what was expected, without the parser's internals.
fn plain_yaml_message(message: &str) -> String {
    let mut out = message.replace(
        "expected string scalar",
        "expected a single value (a number, string or boolean) here, found a list or map (is a bracket unclosed?)",
    );
    while let Some(start) = out.find("duplicate mapping key: ") {
        let rest = &out[start + "duplicate mapping key: ".len()..];
        let key: String = rest.chars().take_while(|c| *c != ',' && *c != '\n').collect();
        let tail = ", set DuplicateKeyPolicy in Options if acceptable";
        let end = start + "duplicate mapping key: ".len() + key.len();
        let end = if out[end..].starts_with(tail) { end + tail.len() } else { end };
        out.replace_range(start..end, &format!("the key `{key}` is given twice; keep one"));
    }
    out
}

/// The value of a `--set KEY=VALUE` argument, read as YAML (`--set k=` is null); the error says
/// what could not be read.
pub fn override_value(raw: &str) -> std::result::Result<Value, String> {
    if raw.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str(raw).map_err(|e| format!("cannot read the value: {}", first_line(&e.to_string())))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The known key closest to `key` by edit distance, if it is close enough to be a typo.
fn closest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, _)| *d <= (key.len() / 3).max(2))
        .min()
        .map(|(_, k)| k.clone())
}

/// The 1-based line of a dotted key (`evaluation.duration`) in block-style YAML, if found.
fn find_key_line(text: &str, dotted: &str) -> Option<usize> {
    let mut parts = dotted.split('.').peekable();
    let mut want = parts.next()?;
    let mut min_indent = 0;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('#') || indent < min_indent {
            continue;
        }
        let key = trimmed.split(':').next().unwrap_or("").trim().trim_matches('"').trim_matches('\'');
        if key == want && trimmed.contains(':') {
            match parts.next() {
                None => return Some(i + 1),
                Some(next) => {
                    want = next;
                    min_indent = indent + 1;
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
