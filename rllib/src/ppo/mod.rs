//! PPO (Schulman et al. 2017), clipped surrogate objective: hyperparameters, driver step and
//! learner, top to bottom, laid out like CleanRL's `ppo.py`.
//!
//! ```text
//! for iteration = 1, 2, ...                                    Ppo::training_step
//!     anneal lr (and clip_param)                               PpoHyperparams::at
//!     learner publishes its weights once; every worker loads them
//!     every worker runs its policy rollout_fragment_length steps in each of its envs
//!     learner: GAE per worker batch, flatten                    RolloutBuffer::from_batches
//!         for num_epochs epochs, for shuffled minibatches:      Learner::update
//!             clipped surrogate + value + entropy loss          loss::ppo_loss
//!             backward, global-norm clip, Adam
//!         stop the epochs early once approx_kl > target_kl
//!     report the learner metrics
//! ```
//!
//! Everything that is not PPO (run directory, metrics, evaluation, checkpoints, stop
//! conditions) is the shared loop of [`crate::algorithm`]. The iteration is synchronous and
//! every random stream has its own seed ([`crate::seeding`]), so a config and seed give the same
//! numbers on every run, whatever the thread timing.

pub mod loss;

use std::collections::BTreeMap;

use bytes::Bytes;
use candle_core::{Device, Tensor};
use rl_env::rng::Pcg64;
use rl_env::{Kwargs, Space};
use rl_policies::{ActorCritic, PolicyConfig};
use rl_runtime::cluster::PlacementGroup;
use rl_runtime::{
    Actor, ActorContext, ActorHandle, ActorLocation, ActorOptions, BoxError, ObjectRef, Placement, Runtime,
};
use serde::{Deserialize, Serialize};

use self::loss::{LossCoeffs, LossInputs, ppo_loss};
use crate::acting::Exploration;
use crate::algorithm::{Algorithm, StepReport};
use crate::batch::{BatchActions, TrajectoryBatch};
use crate::checkpoint::{AlgorithmState, OptimizerState};
use crate::config::{Schedule, TrainConfig};
use crate::env_runners::EnvRunnerGroup;
use crate::error::{Error, Result};
use crate::gae::{GaeInput, compute_gae};
use crate::metrics::IterationResult;
use crate::normalization::ObservationNormalization;
use crate::observation::{ObservationEncoder, actor_critic};
use crate::optim::{Adam, AdamStep};
use crate::seeding::{LEARNER_STREAM, stream_rng};

// === 1. Hyperparameters ===

/// PPO's hyperparameters for one iteration, schedules applied. The driver computes them from
/// the config ([`PpoHyperparams::at`]) and sends them with every update: the only way
/// hyperparameters reach the learner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PpoHyperparams {
    /// Adam learning rate (after `lr_schedule`).
    pub lr: f64,
    /// Adam epsilon.
    pub adam_epsilon: f64,
    /// Discount factor.
    pub gamma: f64,
    /// GAE lambda.
    pub lambda: f64,
    /// Bootstrap time-limit truncations from the final observation (else treat them as
    /// terminations, as CleanRL does).
    pub bootstrap_truncated: bool,
    /// Ratio clip (after `clip_param_schedule`).
    pub clip_param: f64,
    /// CleanRL's value clipping, with `clip_param`.
    pub clip_vloss: bool,
    /// RLlib's cap on each squared value error, or `None`.
    pub vf_clip_param: Option<f64>,
    /// Entropy bonus weight.
    pub entropy_coeff: f64,
    /// Value loss weight.
    pub vf_loss_coeff: f64,
    /// Global gradient-norm clip, or `None`.
    pub grad_clip: Option<f64>,
    /// SGD epochs over the batch.
    pub num_epochs: usize,
    /// Minibatch size.
    pub minibatch_size: usize,
    /// Normalize advantages per minibatch.
    pub normalize_advantages: bool,
    /// Stop the epochs early once the approximate KL exceeds this.
    pub target_kl: Option<f64>,
}

impl PpoHyperparams {
    /// The hyperparameters of 1-based `iteration`.
    pub fn at(c: &TrainConfig, iteration: u64) -> Self {
        Self {
            lr: learning_rate(c, iteration),
            adam_epsilon: c.adam_epsilon,
            gamma: c.gamma,
            lambda: c.lambda,
            bootstrap_truncated: c.bootstrap_truncated,
            clip_param: clip_param(c, iteration),
            clip_vloss: c.clip_vloss,
            vf_clip_param: c.vf_clip_param,
            entropy_coeff: c.entropy_coeff,
            vf_loss_coeff: c.vf_loss_coeff,
            grad_clip: c.grad_clip,
            num_epochs: c.num_epochs,
            minibatch_size: c.minibatch_size,
            normalize_advantages: c.normalize_advantages,
            target_kl: c.target_kl,
        }
    }
}

/// The learning rate at 1-based `iteration` (CleanRL: `lr * (1 - (iteration - 1) / num_iterations)`).
pub fn learning_rate(config: &TrainConfig, iteration: u64) -> f64 {
    scheduled(config.lr, config.lr_schedule, config, iteration)
}

/// The PPO clip parameter at 1-based `iteration`, annealed like the learning rate when
/// `clip_param_schedule` is linear.
pub fn clip_param(config: &TrainConfig, iteration: u64) -> f64 {
    scheduled(config.clip_param, config.clip_param_schedule, config, iteration)
}

fn scheduled(value: f64, schedule: Schedule, config: &TrainConfig, iteration: u64) -> f64 {
    match (schedule, config.planned_iterations()) {
        (Schedule::Linear, Some(total)) => value * (1.0 - (iteration - 1) as f64 / total as f64),
        _ => value,
    }
}

// === 2. The driver: one training step ===

/// PPO's `progress.csv` columns (RLlib's learner metric names).
pub const METRIC_COLUMNS: &[&str] = &[
    "learners/policy_loss",
    "learners/vf_loss",
    "learners/entropy",
    "learners/approx_kl",
    "learners/clip_fraction",
    "learners/explained_variance",
    "learners/grad_norm",
    "learners/lr",
    "learners/clip_param",
    "learners/num_minibatch_updates",
    "learners/policy_version",
];

/// PPO on a runtime: one learner actor and `num_env_runners` rollout-worker actors, supervised
/// per the config's `fault_tolerance` ([`EnvRunnerGroup`]).
#[derive(Debug)]
pub struct Ppo {
    config: TrainConfig,
    learner: ActorHandle<Learner>,
    runners: EnvRunnerGroup,
}

/// On a cluster, the placement group of the rollout workers: a bundle of
/// `num_cpus_per_env_runner` CPUs per worker under `placement_strategy` (after a first bundle of
/// [`LEARNER_CPUS`] for the learner with `learner_in_placement_group`), placed before any actor
/// starts (gang scheduling: all or none). `None` on the embedded runtime.
pub(crate) fn env_runner_group(rt: &Runtime, config: &TrainConfig) -> Result<Option<PlacementGroup>> {
    if rt.address().is_empty() {
        return Ok(None);
    }
    let strategy = rl_runtime::cluster::placement_group::parse_strategy(&config.placement_strategy)?;
    let cpus = |n: f64| BTreeMap::from([("CPU".to_string(), n)]);
    let mut bundles = vec![cpus(config.num_cpus_per_env_runner); config.num_env_runners];
    if config.learner_in_placement_group {
        bundles.insert(0, cpus(LEARNER_CPUS));
    }
    let group = rt.create_placement_group("env_runners", strategy, bundles)?;
    let timeout = ActorOptions::default().placement_timeout;
    if let Err(e) = group.wait(timeout) {
        let _ = group.remove();
        return Err(e.into());
    }
    Ok(Some(group))
}

/// CPUs the learner's bundle holds when it runs in the placement group.
pub const LEARNER_CPUS: f64 = 1.0;

impl Ppo {
    /// Registers PPO's actor types on `rt` and spawns the learner and the rollout workers.
    pub fn new(rt: &Runtime, config: &TrainConfig) -> Result<Self> {
        crate::register_actors(rt);
        // The learner and the workers take turns in a synchronous iteration, so the learner
        // reserves no CPU of its own; each worker reserves num_cpus_per_env_runner. On a
        // cluster the workers run on worker nodes through one placement group, and the learner
        // in the driver's process (or, with learner_in_placement_group, in the group's first
        // bundle, holding a CPU there).
        let learner_init = LearnerInit {
            env: config.env.clone(),
            env_config: config.env_config.clone(),
            model: config.model.clone(),
            seed: config.seed,
        };
        let group = env_runner_group(rt, config)?;
        // Bundle 0 is the learner's when it runs in the group; the workers' follow.
        let (learner_placement, first_worker_bundle) = match &group {
            Some(g) if config.learner_in_placement_group => (g.bundle(Some(0)), 1),
            _ => (Placement::Local, 0),
        };
        let in_group = first_worker_bundle == 1;
        let learner_opts = ActorOptions {
            name: Some("learner".into()),
            num_cpus: if in_group { LEARNER_CPUS } else { 0.0 },
            placement: learner_placement,
            ..Default::default()
        };
        // The runners own the group (they remove it when dropped, on any error below too).
        let runners = EnvRunnerGroup::new(rt, config, group, first_worker_bundle)?;
        let learner = rt.spawn::<Learner>(learner_init, learner_opts)?;
        Ok(Self { config: config.clone(), learner, runners })
    }

    fn learner_state(&self) -> Result<LearnerState> {
        let LearnerReply::State(state) = self.learner.call(LearnerMsg::State).wait()? else {
            unreachable!("State answers State")
        };
        Ok(*state)
    }
}

impl Algorithm for Ppo {
    fn metric_columns(&self) -> &'static [&'static str] {
        METRIC_COLUMNS
    }

    fn training_step(&mut self, iteration: u64, r: &mut IterationResult) -> Result<StepReport> {
        let hp = PpoHyperparams::at(&self.config, iteration);

        // 1. Broadcast the learner's weights: one object, loaded by every healthy runner; then
        //    sample (failed runners are restarted or dropped per fault_tolerance).
        let LearnerReply::Weights(weights, _) = self.learner.call(LearnerMsg::PublishWeights).wait()? else {
            unreachable!("PublishWeights answers Weights")
        };
        // 2. Learn: GAE and the PPO epochs on the learner (sampling again when batches were lost
        //    with their node).
        let (mut sample_s, mut learn_s) = (0.0, 0.0);
        let (learner, timers) = (&self.learner, (&mut sample_s, &mut learn_s));
        let stats = self.runners.sample_and_learn(&weights, Exploration::Policy, timers, |batches| {
            match learner.call(LearnerMsg::Update { batches, hyperparams: hp }).wait()? {
                LearnerReply::Updated(stats) => Ok(Ok(stats)),
                LearnerReply::BatchesLost(why) => Ok(Err(why)),
                other => unreachable!("Update answers Updated or BatchesLost, got {other:?}"),
            }
        })?;

        // 3. Report.
        r.set("learners/policy_loss", stats.policy_loss);
        r.set("learners/vf_loss", stats.vf_loss);
        r.set("learners/entropy", stats.entropy);
        r.set("learners/approx_kl", stats.approx_kl);
        r.set("learners/clip_fraction", stats.clip_fraction);
        r.set("learners/explained_variance", stats.explained_variance);
        r.set("learners/grad_norm", stats.grad_norm);
        r.set("learners/lr", hp.lr);
        r.set("learners/clip_param", hp.clip_param);
        r.set("learners/num_minibatch_updates", stats.num_minibatch_updates);
        r.set("learners/policy_version", stats.policy_version);
        r.set("fault_tolerance/num_healthy_workers", self.runners.num_healthy());
        r.set("fault_tolerance/num_remote_worker_restarts", self.runners.num_restarts());
        r.set("fault_tolerance/num_sub_env_restarts", self.runners.num_sub_env_restarts());
        Ok(StepReport {
            num_env_steps: stats.num_env_steps,
            episode_returns: stats.episode_returns,
            episode_lengths: stats.episode_lengths,
            sample_s,
            learn_s,
        })
    }

    fn policy_weights(&mut self) -> Result<Vec<u8>> {
        Ok(self.learner_state()?.policy)
    }

    fn state(&mut self) -> Result<AlgorithmState> {
        let learner = self.learner_state()?;
        Ok(AlgorithmState {
            policy: learner.policy,
            policy_version: learner.policy_version,
            optimizer: learner.optimizer,
            learner_rng: learner.rng,
            env_runners: self.runners.states()?,
            num_sub_env_restarts: self.runners.num_sub_env_restarts(),
            extra_files: self.runners.normalization_file()?.into_iter().collect(),
        })
    }

    fn restore(&mut self, state: &AlgorithmState) -> Result<bool> {
        let learner = LearnerState {
            policy: state.policy.clone(),
            policy_version: state.policy_version,
            optimizer: state.optimizer.clone(),
            rng: state.learner_rng,
        };
        self.learner.call(LearnerMsg::Restore(Box::new(learner))).wait()?;
        self.runners.restore_from_checkpoint(state.num_sub_env_restarts, &state.extra_files, &state.env_runners)
    }

    fn observation_normalization(&self) -> Option<ObservationNormalization> {
        self.runners.observation_normalization()
    }

    fn actor_locations(&self) -> Vec<(String, ActorLocation)> {
        self.runners.locations_with(&self.learner)
    }
}

// === 3. The learner actor ===

/// What the learner is built from: the env (for its spaces), the model and the seed of its
/// initial weights. Hyperparameters come with each update ([`PpoHyperparams`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerInit {
    /// Env id.
    pub env: String,
    /// Env keyword arguments.
    #[serde(with = "rl_env::kwargs_serde")]
    pub env_config: Kwargs,
    /// The policy network.
    pub model: PolicyConfig,
    /// Seed of the initial weights and of the shuffling stream.
    pub seed: u64,
}

/// Messages the learner handles.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum LearnerMsg {
    /// Put the current weights into the object store.
    PublishWeights,
    /// Train on these batches (refs in worker order) with these hyperparameters.
    Update {
        /// Batch refs, in worker order.
        batches: Vec<ObjectRef>,
        /// This iteration's hyperparameters.
        hyperparams: PpoHyperparams,
    },
    /// The weights, optimizer and shuffle-generator state, for checkpoints and evaluation.
    State,
    /// Continue from a saved state (a resume).
    Restore(Box<LearnerState>),
}

/// Replies of the learner.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum LearnerReply {
    /// Weights object and its version.
    Weights(ObjectRef, u64),
    /// Statistics of an update.
    Updated(UpdateStats),
    /// The learner's state.
    State(Box<LearnerState>),
    /// Some batches could not be fetched (their node died): nothing was trained; sample again.
    BatchesLost(String),
    /// Restored.
    Restored,
}

/// Everything needed to continue training exactly: weights, Adam moments, shuffle generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerState {
    /// Policy weights (safetensors).
    pub policy: Vec<u8>,
    /// Their version (one per update).
    pub policy_version: u64,
    /// Adam's step count and moments.
    pub optimizer: OptimizerState,
    /// Shuffle generator `(state, increment)`.
    pub rng: (u128, u128),
}

/// Means over the minibatch updates of one iteration, plus batch-level figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Clipped surrogate loss.
    pub policy_loss: f64,
    /// Half the mean squared value error (CleanRL's `losses/value_loss`), whatever the
    /// weighting in the loss.
    pub vf_loss: f64,
    /// Policy entropy.
    pub entropy: f64,
    /// Approximate KL of the last minibatch (CleanRL reports the last one).
    pub approx_kl: f64,
    /// Fraction of clipped ratios.
    pub clip_fraction: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// `1 - Var(returns - values) / Var(returns)` over the batch (NaN when `Var(returns)` is 0).
    pub explained_variance: f64,
    /// Minibatch updates done.
    pub num_minibatch_updates: u64,
    /// Env steps trained on.
    pub num_env_steps: u64,
    /// Finished episodes' returns, in worker order.
    pub episode_returns: Vec<f64>,
    /// Their lengths.
    pub episode_lengths: Vec<i64>,
    /// The policy version after the update.
    pub policy_version: u64,
}

/// The learner actor: the candle policy, its optimizer and the shuffle generator.
pub struct Learner {
    policy: ActorCritic,
    adam: Adam,
    rng: Pcg64,
    version: u64,
    discrete: bool,
    device: Device,
    encoder: ObservationEncoder,
}

impl Actor for Learner {
    const TYPE_NAME: &'static str = "PpoLearner";
    type Init = LearnerInit;
    type Msg = LearnerMsg;
    type Reply = LearnerReply;

    fn new(init: LearnerInit, _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        let env = rl_env::make(&init.env, &init.env_config)?;
        let (policy, encoder) = actor_critic(&init.model, env.observation_space(), env.action_space(), init.seed)?;
        Ok(Self {
            adam: Adam::new(policy.vars()),
            policy,
            rng: stream_rng(init.seed, LEARNER_STREAM),
            version: 0,
            discrete: matches!(env.action_space(), Space::Discrete { .. }),
            device: Device::Cpu,
            encoder,
        })
    }

    fn handle(&mut self, msg: LearnerMsg, ctx: &ActorContext) -> std::result::Result<LearnerReply, BoxError> {
        match msg {
            LearnerMsg::PublishWeights => {
                let bytes = self.policy.to_safetensors(self.version)?;
                Ok(LearnerReply::Weights(ctx.runtime().put(Bytes::from(bytes))?, self.version))
            }
            LearnerMsg::Update { batches, hyperparams } => {
                let mut decoded = Vec::with_capacity(batches.len());
                for r in &batches {
                    let bytes = match ctx.runtime().get_blocking(r, None) {
                        Ok(bytes) => bytes,
                        Err(e) if lost_with_node(&e) => return Ok(LearnerReply::BatchesLost(e.to_string())),
                        Err(e) => return Err(e.into()),
                    };
                    decoded.push(TrajectoryBatch::from_bytes(&bytes)?);
                }
                Ok(LearnerReply::Updated(self.update(&decoded, &hyperparams).map_err(Error::into_actor_error)?))
            }
            LearnerMsg::State => {
                let (step, moments) = self.adam.state();
                Ok(LearnerReply::State(Box::new(LearnerState {
                    policy: self.policy.to_safetensors(self.version)?,
                    policy_version: self.version,
                    optimizer: OptimizerState { step, moments },
                    rng: self.rng.state(),
                })))
            }
            LearnerMsg::Restore(state) => {
                self.restore(&state).map_err(Error::into_actor_error)?;
                Ok(LearnerReply::Restored)
            }
        }
    }
}

/// True for a failed fetch of an object whose node (its owner or the one holding it) is gone.
pub(crate) fn lost_with_node(e: &rl_runtime::RuntimeError) -> bool {
    use rl_runtime::RuntimeError as R;
    matches!(e, R::OwnerDied { .. } | R::NodeUnreachable { .. } | R::ObjectFreed(_))
}

impl Learner {
    /// Takes over a saved state: weights (names and shapes checked), Adam, generator, version.
    fn restore(&mut self, state: &LearnerState) -> Result<()> {
        self.policy.load_safetensors(&state.policy)?;
        self.adam
            .restore(state.optimizer.step, &state.optimizer.moments)
            .map_err(|m| Error::Resume(format!("the optimizer state does not fit the model: {m}")))?;
        self.rng = Pcg64::from_raw_state(state.rng.0, state.rng.1);
        self.version = state.policy_version;
        Ok(())
    }

    /// One PPO training phase over `batches` (CleanRL's "optimizing the policy and value network").
    fn update(&mut self, batches: &[TrajectoryBatch], hp: &PpoHyperparams) -> Result<UpdateStats> {
        // GAE per worker batch, then flatten (CleanRL's b_obs, b_logprobs, b_advantages, ...).
        let mut buffer = RolloutBuffer::from_batches(
            batches,
            hp.gamma as f32,
            hp.lambda as f32,
            hp.bootstrap_truncated,
            self.discrete,
        );
        buffer.encode_observations(&self.encoder)?;
        let n = buffer.len();
        let coeffs = LossCoeffs {
            clip_param: hp.clip_param,
            clip_vloss: hp.clip_vloss,
            vf_clip_param: hp.vf_clip_param,
            entropy_coeff: hp.entropy_coeff,
            vf_loss_coeff: hp.vf_loss_coeff,
        };
        let adam_step = AdamStep { lr: hp.lr, eps: hp.adam_epsilon, max_grad_norm: hp.grad_clip };
        let mut stats = UpdateStats { num_env_steps: n as u64, ..Default::default() };
        let mut sums = LossSums::default();
        for epoch in 1..=hp.num_epochs {
            let order = self.permutation(n);
            for (minibatch, mb_inds) in (1..).zip(order.chunks(hp.minibatch_size)) {
                let mb = buffer.minibatch(mb_inds, hp.normalize_advantages, &self.device)?;
                let (logp, entropy, values) = self.policy.evaluate_actions(&mb.obs, &mb.actions)?;
                let inputs = LossInputs {
                    logp: &logp,
                    entropy: &entropy,
                    values: &values,
                    old_logp: &mb.old_logp,
                    old_values: &mb.old_values,
                    advantages: &mb.advantages,
                    returns: &mb.returns,
                };
                let loss = ppo_loss(&inputs, &coeffs)?;
                // Guard: a non-finite loss or gradient stops the run before any weight changes.
                let non_finite = |quantity, value: f64| Error::NonFiniteUpdate {
                    quantity,
                    value,
                    version: self.version + 1,
                    epoch,
                    minibatch,
                };
                if let Some(bad) = [loss.policy_loss, loss.vf_loss, loss.entropy].into_iter().find(|v| !v.is_finite()) {
                    return Err(non_finite("loss", f64::from(bad)));
                }
                let grads = loss.total.backward()?;
                let step = self.adam.step(&grads, &adam_step)?;
                if !step.grad_norm.is_finite() {
                    return Err(non_finite("gradient norm", step.grad_norm));
                }
                sums.add(&loss, step.grad_norm);
                stats.approx_kl = f64::from(loss.approx_kl);
                stats.num_minibatch_updates += 1;
            }
            if hp.target_kl.is_some_and(|t| stats.approx_kl > t) {
                break;
            }
        }
        let k = stats.num_minibatch_updates.max(1) as f64;
        stats.policy_loss = sums.policy_loss / k;
        stats.vf_loss = sums.vf_loss / k;
        stats.entropy = sums.entropy / k;
        stats.clip_fraction = sums.clip_fraction / k;
        stats.grad_norm = sums.grad_norm / k;
        stats.explained_variance = buffer.explained_variance();
        for b in batches {
            stats.episode_returns.extend_from_slice(&b.episode_returns);
            stats.episode_lengths.extend_from_slice(&b.episode_lengths);
        }
        self.version += 1;
        stats.policy_version = self.version;
        Ok(stats)
    }

    /// Fisher-Yates shuffle of `0..n` with the learner's generator.
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
            idx.swap(i, j);
        }
        idx
    }
}

/// Running sums of the loss terms over an iteration's minibatch updates.
#[derive(Debug, Default)]
struct LossSums {
    policy_loss: f64,
    vf_loss: f64,
    entropy: f64,
    clip_fraction: f64,
    grad_norm: f64,
}

impl LossSums {
    fn add(&mut self, loss: &loss::LossOutput, grad_norm: f64) {
        self.policy_loss += f64::from(loss.policy_loss);
        self.vf_loss += f64::from(loss.vf_loss * 0.5);
        self.entropy += f64::from(loss.entropy);
        self.clip_fraction += f64::from(loss.clip_fraction);
        self.grad_norm += grad_norm;
    }
}

// === 4. The rollout buffer and its minibatches ===

/// One iteration's training data: every worker's batch with its advantages and returns,
/// concatenated in worker order. Row `i` of every field is one env step.
struct RolloutBuffer {
    obs: Vec<f32>,
    obs_dim: usize,
    actions: BatchActions,
    act_dim: usize,
    logp: Vec<f32>,
    values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

/// The tensors of one minibatch, `[B]` each (`obs` is `[B, obs_dim]`, Box actions `[B, act_dim]`).
#[derive(Debug)]
pub struct Minibatch {
    /// Observations.
    pub obs: Tensor,
    /// Actions taken (`u32` indices or `f32` values).
    pub actions: Tensor,
    /// Log-probabilities at sampling time.
    pub old_logp: Tensor,
    /// Values at sampling time.
    pub old_values: Tensor,
    /// Advantages, normalized per minibatch if configured.
    pub advantages: Tensor,
    /// Value targets (advantages + values).
    pub returns: Tensor,
}

impl RolloutBuffer {
    /// GAE per worker batch, then concatenation in worker order. Without `bootstrap_truncated`,
    /// a time-limit truncation counts as a termination (CleanRL's `next_done = terminations |
    /// truncations`).
    fn from_batches(
        batches: &[TrajectoryBatch],
        gamma: f32,
        lambda: f32,
        bootstrap_truncated: bool,
        discrete: bool,
    ) -> Self {
        let mut buf = Self {
            obs: Vec::new(),
            obs_dim: batches[0].obs_dim,
            actions: if discrete { BatchActions::Discrete(Vec::new()) } else { BatchActions::Continuous(Vec::new()) },
            act_dim: 1,
            logp: Vec::new(),
            values: Vec::new(),
            advantages: Vec::new(),
            returns: Vec::new(),
        };
        let never = vec![false; batches.iter().map(TrajectoryBatch::len).max().unwrap_or(0)];
        for b in batches {
            let ended: Vec<bool>;
            let (terminated, truncated) = if bootstrap_truncated {
                (b.terminated.as_slice(), b.truncated.as_slice())
            } else {
                ended = b.terminated.iter().zip(&b.truncated).map(|(a, b)| a | b).collect();
                (ended.as_slice(), &never[..b.len()])
            };
            let gae = GaeInput {
                n_envs: b.n_envs,
                rewards: &b.rewards,
                values: &b.values,
                terminated,
                truncated,
                bootstrap_values: &b.bootstrap_values,
                last_values: &b.last_values,
            };
            let (adv, ret) = compute_gae(&gae, gamma, lambda);
            buf.obs.extend_from_slice(&b.obs);
            match (&mut buf.actions, &b.actions) {
                (BatchActions::Discrete(all), BatchActions::Discrete(a)) => all.extend_from_slice(a),
                (BatchActions::Continuous(all), BatchActions::Continuous(a)) => {
                    buf.act_dim = a.len() / b.len().max(1);
                    all.extend_from_slice(a)
                }
                _ => unreachable!("all workers share the action space"),
            }
            buf.logp.extend_from_slice(&b.logp);
            buf.values.extend_from_slice(&b.values);
            buf.advantages.extend(adv);
            buf.returns.extend(ret);
        }
        buf
    }

    fn len(&self) -> usize {
        self.logp.len()
    }

    /// Replaces the raw observations by the policy's inputs (one-hot for Discrete spaces).
    fn encode_observations(&mut self, encoder: &ObservationEncoder) -> Result<()> {
        if !matches!(encoder, ObservationEncoder::Identity { .. }) {
            let mut encoded = Vec::new();
            encoder.encode(&self.obs, &mut encoded)?;
            self.obs = encoded;
            self.obs_dim = encoder.dim();
        }
        Ok(())
    }

    /// The rows `mb` as tensors; advantages normalized like CleanRL when `normalize`.
    fn minibatch(&self, mb: &[usize], normalize: bool, d: &Device) -> candle_core::Result<Minibatch> {
        let b = mb.len();
        let rows = |v: &[f32], dim: usize| -> Vec<f32> {
            mb.iter().flat_map(|&i| v[i * dim..(i + 1) * dim].iter().copied()).collect()
        };
        let pick = |v: &[f32]| Tensor::from_vec(mb.iter().map(|&i| v[i]).collect::<Vec<f32>>(), b, d);
        let actions = match &self.actions {
            BatchActions::Discrete(a) => Tensor::from_vec(mb.iter().map(|&i| a[i] as u32).collect::<Vec<u32>>(), b, d)?,
            BatchActions::Continuous(a) => Tensor::from_vec(rows(a, self.act_dim), (b, self.act_dim), d)?,
        };
        let mut adv: Vec<f32> = mb.iter().map(|&i| self.advantages[i]).collect();
        if normalize && b > 1 {
            // CleanRL: (adv - mean) / (std + 1e-8) with the unbiased std of torch.
            let mean = adv.iter().sum::<f32>() / b as f32;
            let var = adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (b - 1) as f32;
            let std = var.sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        Ok(Minibatch {
            obs: Tensor::from_vec(rows(&self.obs, self.obs_dim), (b, self.obs_dim), d)?,
            actions,
            old_logp: pick(&self.logp)?,
            old_values: pick(&self.values)?,
            advantages: Tensor::from_vec(adv, b, d)?,
            returns: pick(&self.returns)?,
        })
    }

    /// `1 - Var(returns - values) / Var(returns)` (population variances, as NumPy's `np.var`);
    /// NaN when the returns do not vary.
    fn explained_variance(&self) -> f64 {
        let residual: Vec<f32> = self.returns.iter().zip(&self.values).map(|(r, v)| r - v).collect();
        let var_y = crate::stats::variance(&self.returns);
        if var_y == 0.0 { f64::NAN } else { 1.0 - crate::stats::variance(&residual) / var_y }
    }
}

#[cfg(test)]
mod tests;
