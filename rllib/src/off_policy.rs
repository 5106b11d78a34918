//! What DQN and SAC share: the driver's sampling rounds, the learner's replay side (buffer,
//! n-step returns, counters) and the messages between them. Each algorithm's learner (its
//! networks and its gradient step) is in its own file, [`crate::dqn`] and [`crate::sac`].
//!
//! ```text
//! training_step (one iteration):                                   OffPolicy::training_step
//!     repeat rounds until min_sample_timesteps_per_iteration env steps (or the stop budget):
//!         exploration: random actions until learning_starts env steps, then the policy's
//!                      (DQN: epsilon-greedy, epsilon linear in the lifetime env steps)
//!         the learner publishes its acting network's weights once; every runner loads them
//!         every runner steps each sub-env train_freq times               (EnvRunnerGroup)
//!         learner: transitions into the replay buffer (n-step per sub-env)  ReplaySide::insert
//!                  the algorithm's round: target updates and gradient steps
//!     the learner reports the iteration's means
//! ```
//!
//! Where things live: the replay buffer belongs to the learner actor, in the driver's process
//! (on a cluster too, unless `learner_in_placement_group` puts the learner on a worker node);
//! runners on any node send their transitions through the object store, as PPO's batches go.
//! Units: `train_freq` counts steps of each sub-env, so a round adds
//! `num_env_runners x num_envs_per_env_runner x train_freq` transitions (SB3's `train_freq` on one
//! vector env made of all the runners' sub-envs); `gradient_steps` counts gradient steps per
//! round; `learning_starts`, DQN's `target_update_interval` and the schedules count env steps
//! over all runners. Rounds are synchronous and batches enter the buffer in worker order, so a
//! config and seed give the same run on one machine or a cluster.

use std::collections::BTreeMap;

use bytes::Bytes;
use rl_env::rng::Pcg64;
use rl_runtime::{
    Actor, ActorContext, ActorHandle, ActorLocation, ActorOptions, BoxError, ObjectRef, Placement, Runtime,
};
use serde::{Deserialize, Serialize};

use crate::acting::Exploration;
use crate::algorithm::{Algorithm, StepReport};
use crate::batch::{BatchActions, TrajectoryBatch};
use crate::checkpoint::{AlgorithmState, OptimizerState};
use crate::config::{AlgorithmId, TrainConfig};
use crate::env_runners::EnvRunnerGroup;
use crate::error::{Error, Result};
use crate::metrics::IterationResult;
use crate::normalization::ObservationNormalization;
use crate::observation::ObservationEncoder;
use crate::replay::{NStepAccumulator, ReplayBuffer, ReplaySample};

// === 1. Messages ===

/// What the driver asks of an off-policy learner.
#[derive(Debug, Serialize, Deserialize)]
pub enum OffPolicyMsg {
    /// Put the acting network's weights into the object store (once per version).
    PublishWeights,
    /// One round: store these batches' transitions, then update the target networks and take
    /// the gradient steps that are due.
    Round {
        /// The runners' batches, in worker order.
        batches: Vec<ObjectRef>,
    },
    /// The iteration's learner metrics (means over its gradient steps); starts a new iteration.
    Report,
    /// The learner's state, for checkpoints.
    State,
    /// Continue from a saved state.
    Restore(Box<OffPolicyLearnerState>),
}

/// Replies of an off-policy learner.
#[derive(Debug, Serialize, Deserialize)]
pub enum OffPolicyReply {
    /// The weights object and its version.
    Weights(ObjectRef, u64),
    /// What a round did.
    Round(Box<RoundStats>),
    /// A batch's node died before the learner read it: nothing was stored; sample again.
    BatchesLost(String),
    /// The iteration's metrics, by column name.
    Report(Vec<(String, f64)>),
    /// The learner's state.
    State(Box<OffPolicyLearnerState>),
    /// Restored; the counters it continues from.
    Restored(Counters),
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    /// Env steps the round's batches held.
    pub num_env_steps: u64,
    /// Finished episodes' returns, in worker order.
    pub episode_returns: Vec<f64>,
    /// Their lengths.
    pub episode_lengths: Vec<i64>,
    /// The learner's counters after the round.
    pub counters: Counters,
}

/// The learner's lifetime counters (checkpointed with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Env steps sampled (every transition of every batch, stored or not).
    pub env_steps: u64,
    /// Gradient steps taken.
    pub gradient_steps: u64,
    /// Target-network updates.
    pub target_updates: u64,
    /// Transitions not stored: those of rebuilt sub-environments, which have no next observation.
    pub transitions_skipped: u64,
}

/// An off-policy learner's state for a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OffPolicyLearnerState {
    /// The acting network's weights (safetensors with their version).
    pub policy: Vec<u8>,
    /// Their version.
    pub policy_version: u64,
    /// The optimizer of the acting network.
    pub optimizer: OptimizerState,
    /// The learner's generator (replay sampling, SAC's noise).
    pub rng: (u128, u128),
    /// Everything else, as checkpoint files: the replay buffer, the n-step queues, target
    /// networks, further optimizers, counters.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

// === 2. The driver ===

/// What an off-policy learner actor is to the shared driver: its algorithm's part of each
/// message; [`handle`] does the rest.
pub trait OffPolicyLearner: Actor<Msg = OffPolicyMsg, Reply = OffPolicyReply, Init = TrainConfig> {
    /// Its `progress.csv` columns (RLlib-style `learners/...` names), in order.
    const METRIC_COLUMNS: &'static [&'static str];
    /// Its replay side.
    fn replay(&mut self) -> &mut ReplaySide;
    /// The acting network's weights (safetensors with `version`), to publish.
    fn acting_weights(&self) -> Result<Vec<u8>>;
    /// The version of those weights: the rounds that took gradient steps.
    fn version(&self) -> u64;
    /// The round's target updates and gradient steps, after `new_steps` env steps were stored.
    fn round(&mut self, new_steps: u64) -> Result<()>;
    /// Its metrics that are values now rather than means over gradient steps.
    fn gauges(&self) -> Result<Vec<(String, f64)>>;
    /// Its state, for a checkpoint.
    fn state(&self) -> Result<OffPolicyLearnerState>;
    /// Continues from a checkpoint's state.
    fn restore(&mut self, state: &OffPolicyLearnerState) -> Result<()>;
}

/// Handles `msg` for learner `l`: the message protocol every off-policy learner shares.
pub fn handle<L: OffPolicyLearner>(
    l: &mut L,
    msg: OffPolicyMsg,
    ctx: &ActorContext,
) -> std::result::Result<OffPolicyReply, BoxError> {
    match msg {
        OffPolicyMsg::PublishWeights => {
            let version = l.version();
            if l.replay().published.as_ref().is_none_or(|(v, _)| *v != version) {
                let weights = ctx.runtime().put(Bytes::from(l.acting_weights()?))?;
                l.replay().published = Some((version, weights));
            }
            let (version, weights) = l.replay().published.clone().expect("published above");
            Ok(OffPolicyReply::Weights(weights, version))
        }
        OffPolicyMsg::Round { batches } => {
            let mut stats = match l.replay().insert(ctx.runtime(), &batches)? {
                Ok(stats) => stats,
                Err(lost) => return Ok(OffPolicyReply::BatchesLost(lost)),
            };
            l.round(stats.num_env_steps).map_err(Error::into_actor_error)?;
            stats.counters = l.replay().counters;
            Ok(OffPolicyReply::Round(Box::new(stats)))
        }
        OffPolicyMsg::Report => {
            let mut metrics = l.replay().take_report();
            metrics.extend(l.gauges()?);
            metrics.push(("learners/replay_buffer_size".into(), l.replay().buffer.len() as f64));
            metrics.push(("learners/policy_version".into(), l.version() as f64));
            Ok(OffPolicyReply::Report(metrics))
        }
        OffPolicyMsg::State => Ok(OffPolicyReply::State(Box::new(l.state()?))),
        OffPolicyMsg::Restore(state) => {
            l.restore(&state).map_err(Error::into_actor_error)?;
            // The restored weights may carry the version of an object published before.
            l.replay().published = None;
            Ok(OffPolicyReply::Restored(l.replay().counters))
        }
    }
}

/// DQN or SAC on a runtime: the learner actor `L` and the env runners.
#[derive(Debug)]
pub struct OffPolicy<L: OffPolicyLearner> {
    rt: Runtime,
    config: TrainConfig,
    learner: ActorHandle<L>,
    runners: EnvRunnerGroup,
    counters: Counters,
}

impl<L: OffPolicyLearner> OffPolicy<L> {
    /// Registers the actor types and spawns the learner and the env runners (on a cluster the
    /// runners go through one placement group, as PPO's).
    pub fn new(rt: &Runtime, config: &TrainConfig) -> Result<Self> {
        crate::register_actors(rt);
        let group = crate::ppo::env_runner_group(rt, config)?;
        let (placement, first_worker_bundle) = match &group {
            Some(g) if config.learner_in_placement_group => (g.bundle(Some(0)), 1),
            _ => (Placement::Local, 0),
        };
        let opts = ActorOptions {
            name: Some("learner".into()),
            num_cpus: if first_worker_bundle == 1 { crate::ppo::LEARNER_CPUS } else { 0.0 },
            placement,
            ..Default::default()
        };
        let runners = EnvRunnerGroup::new(rt, config, group, first_worker_bundle)?;
        let learner = rt.spawn::<L>(config.clone(), opts)?;
        Ok(Self { rt: rt.clone(), config: config.clone(), learner, runners, counters: Counters::default() })
    }

    /// The exploration of the next round (SB3's: random before `learning_starts`; DQN's
    /// epsilon falls linearly over `exploration_fraction` of the planned env steps).
    fn exploration(&self) -> Exploration {
        let c = &self.config;
        if self.counters.env_steps < c.learning_starts {
            return Exploration::Random;
        }
        match c.algorithm {
            AlgorithmId::Dqn => Exploration::EpsilonGreedy(epsilon(c, self.counters.env_steps)),
            _ => Exploration::Policy,
        }
    }

    /// One round: publish, sample, learn. Returns what it sampled.
    fn round(&mut self, sample_s: &mut f64, learn_s: &mut f64) -> Result<RoundStats> {
        let OffPolicyReply::Weights(weights, _) = self.learner.call(OffPolicyMsg::PublishWeights).wait()? else {
            unreachable!("PublishWeights answers Weights")
        };
        let exploration = self.exploration();
        let learner = &self.learner;
        let stats =
            self.runners.sample_and_learn(&weights, exploration, (sample_s, learn_s), |batches| {
                match learner.call(OffPolicyMsg::Round { batches }).wait()? {
                    OffPolicyReply::Round(stats) => Ok(Ok(stats)),
                    OffPolicyReply::BatchesLost(why) => Ok(Err(why)),
                    other => unreachable!("Round answers Round or BatchesLost, got {other:?}"),
                }
            })?;
        self.counters = stats.counters;
        Ok(*stats)
    }

    fn learner_state(&self) -> Result<OffPolicyLearnerState> {
        let OffPolicyReply::State(state) = self.learner.call(OffPolicyMsg::State).wait()? else {
            unreachable!("State answers State")
        };
        Ok(*state)
    }
}

/// DQN's epsilon after `env_steps` env steps: linear from `exploration_initial_eps` to
/// `exploration_final_eps` over `exploration_fraction` of the planned env steps, then constant
/// (SB3's `get_linear_fn`, with its progress measured in env steps).
pub fn epsilon(c: &TrainConfig, env_steps: u64) -> f64 {
    let span = c.exploration_fraction * c.planned_env_steps().unwrap_or(0) as f64;
    linear_schedule(c.exploration_initial_eps, c.exploration_final_eps, env_steps, span)
}

/// `start` moving linearly to `end` over the first `span` env steps, then `end` (SB3's
/// `get_linear_fn`); a span of 0 is `end` from the start.
fn linear_schedule(start: f64, end: f64, env_steps: u64, span: f64) -> f64 {
    if span <= 0.0 {
        return end;
    }
    start + (env_steps as f64 / span).min(1.0) * (end - start)
}

impl<L: OffPolicyLearner> Algorithm for OffPolicy<L> {
    fn metric_columns(&self) -> &'static [&'static str] {
        L::METRIC_COLUMNS
    }

    fn training_step(&mut self, _iteration: u64, r: &mut IterationResult) -> Result<StepReport> {
        let budget = self.config.stop.num_env_steps_sampled_lifetime.unwrap_or(u64::MAX);
        let min_steps = self.config.min_sample_timesteps_per_iteration;
        let mut report = StepReport::default();
        while report.num_env_steps < min_steps && self.counters.env_steps < budget {
            let stats = self.round(&mut report.sample_s, &mut report.learn_s)?;
            report.num_env_steps += stats.num_env_steps;
            report.episode_returns.extend(stats.episode_returns);
            report.episode_lengths.extend(stats.episode_lengths);
        }
        let OffPolicyReply::Report(metrics) = self.learner.call(OffPolicyMsg::Report).wait()? else {
            unreachable!("Report answers Report")
        };
        for (name, value) in metrics {
            r.set(&name, value);
        }
        if let Exploration::EpsilonGreedy(e) = self.exploration() {
            r.set("learners/epsilon", e);
        }
        r.set("learners/num_gradient_steps_lifetime", self.counters.gradient_steps);
        r.set("learners/num_target_updates_lifetime", self.counters.target_updates);
        r.set("fault_tolerance/num_healthy_workers", self.runners.num_healthy());
        r.set("fault_tolerance/num_remote_worker_restarts", self.runners.num_restarts());
        r.set("fault_tolerance/num_sub_env_restarts", self.runners.num_sub_env_restarts());
        Ok(report)
    }

    fn policy_weights(&mut self) -> Result<Vec<u8>> {
        // The published object, not the learner's whole state (which holds the replay buffer).
        let OffPolicyReply::Weights(weights, _) = self.learner.call(OffPolicyMsg::PublishWeights).wait()? else {
            unreachable!("PublishWeights answers Weights")
        };
        Ok(self.rt.get_blocking(&weights, None)?.to_vec())
    }

    fn state(&mut self) -> Result<AlgorithmState> {
        let learner = self.learner_state()?;
        let mut extra_files = learner.extra_files;
        extra_files.extend(self.runners.normalization_file()?);
        Ok(AlgorithmState {
            policy: learner.policy,
            policy_version: learner.policy_version,
            optimizer: learner.optimizer,
            learner_rng: learner.rng,
            env_runners: self.runners.states()?,
            num_sub_env_restarts: self.runners.num_sub_env_restarts(),
            extra_files,
        })
    }

    fn restore(&mut self, state: &AlgorithmState) -> Result<bool> {
        let extra_files =
            state.extra_files.iter().filter(|(name, _)| name != ObservationNormalization::FILE).cloned().collect();
        let learner = OffPolicyLearnerState {
            policy: state.policy.clone(),
            policy_version: state.policy_version,
            optimizer: state.optimizer.clone(),
            rng: state.learner_rng,
            extra_files,
        };
        let OffPolicyReply::Restored(counters) = self.learner.call(OffPolicyMsg::Restore(Box::new(learner))).wait()?
        else {
            unreachable!("Restore answers Restored")
        };
        self.counters = counters;
        self.runners.restore_from_checkpoint(state.num_sub_env_restarts, &state.extra_files, &state.env_runners)
    }

    fn observation_normalization(&self) -> Option<ObservationNormalization> {
        self.runners.observation_normalization()
    }

    fn actor_locations(&self) -> Vec<(String, ActorLocation)> {
        self.runners.locations_with(&self.learner)
    }
}

// === 3. The learner's replay side ===

/// The replay buffer and everything around it that a learner keeps: n-step queues per sub-env,
/// the counters, the generator, and the iteration's metric sums.
#[derive(Debug)]
pub struct ReplaySide {
    /// The buffer (observations stored encoded, as the networks read them).
    pub buffer: ReplayBuffer,
    nstep: NStepAccumulator,
    /// Lifetime counters.
    pub counters: Counters,
    /// The learner's generator.
    pub rng: Pcg64,
    /// The acting network's weights object and its version, put into the store once per
    /// version.
    pub published: Option<(u64, ObjectRef)>,
    encoder: ObservationEncoder,
    bootstrap_truncated: bool,
    n_envs: usize,
    runners: usize,
    sums: BTreeMap<&'static str, (f64, u64)>,
    encoded: Vec<f32>,
    encoded_next: Vec<f32>,
}

/// The replay buffer's checkpoint file.
pub const REPLAY_FILE: &str = "replay_buffer.safetensors";
/// The n-step queues' checkpoint file.
pub const NSTEP_FILE: &str = "n_step_queues.bin";
/// The counters' checkpoint file.
pub const COUNTERS_FILE: &str = "learner_counters.json";

impl ReplaySide {
    /// An empty buffer for `config` (sized `buffer_size`), observations encoded by `encoder`,
    /// actions of `act_dim` values (1 for a Discrete index).
    pub fn new(config: &TrainConfig, encoder: ObservationEncoder, act_dim: usize, rng: Pcg64) -> Self {
        let streams = config.num_env_runners * config.num_envs_per_env_runner;
        Self {
            buffer: ReplayBuffer::new(config.buffer_size, encoder.dim(), act_dim, config.prioritized_replay),
            nstep: NStepAccumulator::new(config.n_step, config.gamma, streams),
            counters: Counters::default(),
            rng,
            published: None,
            encoder,
            bootstrap_truncated: config.bootstrap_truncated,
            n_envs: config.num_envs_per_env_runner,
            runners: config.num_env_runners,
            sums: BTreeMap::new(),
            encoded: Vec::new(),
            encoded_next: Vec::new(),
        }
    }

    /// Reads the round's batches (a lost one fails the round, storing nothing) and stores their
    /// transitions; returns the round's stats so far.
    pub fn insert(&mut self, rt: &Runtime, refs: &[ObjectRef]) -> Result<std::result::Result<RoundStats, String>> {
        let mut batches = Vec::with_capacity(refs.len());
        for r in refs {
            match rt.get_blocking(r, None) {
                Ok(bytes) => batches.push(TrajectoryBatch::from_bytes(&bytes)?),
                Err(e) if crate::ppo::lost_with_node(&e) => return Ok(Err(e.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
        let mut stats = RoundStats::default();
        let mut present = vec![false; self.runners];
        for b in &batches {
            if let Some(p) = present.get_mut(b.worker_index as usize) {
                *p = true;
            }
            self.insert_batch(b)?;
            stats.num_env_steps += b.len() as u64;
            stats.episode_returns.extend_from_slice(&b.episode_returns);
            stats.episode_lengths.extend_from_slice(&b.episode_lengths);
        }
        // A runner that sent nothing failed: its episodes start over, so its partial n-step
        // transitions have no continuation.
        for (worker, _) in present.iter().enumerate().filter(|(_, p)| !**p) {
            for i in 0..self.n_envs {
                self.nstep.clear_stream(worker * self.n_envs + i);
            }
        }
        self.counters.env_steps += stats.num_env_steps;
        Ok(Ok(stats))
    }

    /// Stores one batch's transitions (time-major rows; stream = worker x n_envs + sub-env).
    fn insert_batch(&mut self, b: &TrajectoryBatch) -> Result<()> {
        let (n, dim) = (b.n_envs, b.obs_dim);
        if b.next_obs.len() != b.obs.len() || n != self.n_envs {
            return Err(Error::Batch {
                message: format!(
                    "worker {}: an off-policy batch needs next_obs for every row and {} sub-envs, got {} values \
                     and {n} sub-envs",
                    b.worker_index,
                    self.n_envs,
                    b.next_obs.len()
                ),
            });
        }
        let mut action = [0.0f32; 1];
        for row in 0..b.len() {
            let stream = b.worker_index as usize * n + row % n;
            let next = &b.next_obs[row * dim..(row + 1) * dim];
            if next.iter().any(|v| v.is_nan()) {
                self.counters.transitions_skipped += 1;
                self.nstep.clear_stream(stream);
                continue;
            }
            self.encoder.encode_into(&b.obs[row * dim..(row + 1) * dim], &mut self.encoded)?;
            self.encoder.encode_into(next, &mut self.encoded_next)?;
            let a: &[f32] = match &b.actions {
                BatchActions::Discrete(a) => {
                    action[0] = a[row] as f32;
                    &action
                }
                BatchActions::Continuous(a) => {
                    let d = a.len() / b.len();
                    &a[row * d..(row + 1) * d]
                }
            };
            let truncated = b.truncated[row];
            let terminated = b.terminated[row] || (truncated && !self.bootstrap_truncated);
            self.nstep.add(
                &mut self.buffer,
                stream,
                &self.encoded,
                a,
                b.rewards[row],
                &self.encoded_next,
                terminated,
                truncated && !terminated,
            );
        }
        Ok(())
    }

    /// A minibatch of `batch_size` transitions; `beta` is the importance-sampling exponent now.
    pub fn sample(&mut self, batch_size: usize, beta: f64) -> ReplaySample {
        self.buffer.sample(batch_size, &mut self.rng, beta)
    }

    /// The importance-sampling exponent after `env_steps` (linear from `beta` to `beta_final`
    /// over the planned env steps, Schaul et al.); 0 without prioritized replay.
    pub fn beta(config: &TrainConfig, env_steps: u64) -> f64 {
        let Some(p) = &config.prioritized_replay else { return 0.0 };
        let planned = config.planned_env_steps().unwrap_or(1).max(1) as f64;
        linear_schedule(p.beta, p.beta_final, env_steps, planned)
    }

    /// Adds one gradient step's value of metric `name` to the iteration's mean.
    pub fn record(&mut self, name: &'static str, value: f64) {
        let e = self.sums.entry(name).or_insert((0.0, 0));
        e.0 += value;
        e.1 += 1;
    }

    /// The iteration's means (NaN-free: a metric with no gradient step yet is left out), and a
    /// fresh start.
    pub fn take_report(&mut self) -> Vec<(String, f64)> {
        let out = self.sums.iter().map(|(k, (sum, n))| (k.to_string(), sum / *n as f64)).collect();
        self.sums.clear();
        out
    }

    /// The checkpoint files of the replay side.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let counters = serde_json::to_vec_pretty(&self.counters)
            .map_err(|e| Error::Serialize { what: "the learner counters", message: e.to_string() })?;
        Ok(vec![
            (REPLAY_FILE.into(), self.buffer.to_bytes()),
            (NSTEP_FILE.into(), self.nstep.to_bytes()),
            (COUNTERS_FILE.into(), counters),
        ])
    }

    /// Takes the replay side back from checkpoint files (the buffer's shape checked against the
    /// config's).
    pub fn restore(&mut self, files: &[(String, Vec<u8>)], rng: (u128, u128)) -> Result<()> {
        let buffer = ReplayBuffer::from_bytes(find_file(files, REPLAY_FILE)?, REPLAY_FILE)?;
        if (buffer.capacity(), buffer.obs_dim(), buffer.act_dim())
            != (self.buffer.capacity(), self.buffer.obs_dim(), self.buffer.act_dim())
        {
            return Err(Error::Resume(format!(
                "{REPLAY_FILE} holds a buffer of {} transitions of {} + {} values, the config one of {} of {} + {}",
                buffer.capacity(),
                buffer.obs_dim(),
                buffer.act_dim(),
                self.buffer.capacity(),
                self.buffer.obs_dim(),
                self.buffer.act_dim()
            )));
        }
        self.buffer = buffer;
        self.nstep = NStepAccumulator::from_bytes(find_file(files, NSTEP_FILE)?, NSTEP_FILE)?;
        self.counters = serde_json::from_slice(find_file(files, COUNTERS_FILE)?)
            .map_err(|e| Error::Resume(format!("{COUNTERS_FILE}: {e}")))?;
        self.rng = Pcg64::from_raw_state(rng.0, rng.1);
        Ok(())
    }
}

/// The bytes of checkpoint file `name` among `files`, or an error naming it.
pub fn find_file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> Result<&'a [u8]> {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
        .ok_or_else(|| Error::Resume(format!("the checkpoint has no {name}")))
}

/// The standard-normal noise `[rows, dim]` of a reparameterized sample, from `rng`.
pub fn standard_normal(rng: &mut Pcg64, rows: usize, dim: usize) -> Vec<f32> {
    use rand::Rng;
    (0..rows * dim).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect()
}
