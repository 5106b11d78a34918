//! The rollout-worker actor: a vector env and a policy copy that sample trajectory batches.
//!
//! Each worker owns `num_envs_per_env_runner` sub-envs (seeded `seed + worker_index * n_envs + i`)
//! and an inference-only copy of the acting network of the algorithm ([`ActingPolicy`]: PPO's
//! actor-critic, DQN's Q-network, SAC's actor). `SetWeights` loads a published weight object
//! (ignoring versions older than the one it has); `Sample` steps every sub-env
//! [`TrainConfig::fragment_length`] times (`rollout_fragment_length`, or `train_freq` for DQN and
//! SAC) with one batched forward pass per step, exploring as the driver says ([`Exploration`]),
//! puts the [`TrajectoryBatch`] into the object store and replies with its ref. For DQN and SAC
//! the batch also holds every step's next observation (the final one where an episode ended).
//!
//! A worker restarted after a failure (`restarts > 0`, see [`crate::env_runners`]) re-seeds its
//! envs and its sampling generator from its index and restart count
//! ([`rl_env::seed_for_restart`]), so a restarted run is as reproducible as any other. `State`
//! and `Restore` carry everything a resume needs to continue mid-episode: the generator, the
//! step count, the vector env's state (when its envs can save theirs) and the normalizers'
//! statistics.
//!
//! With `normalize_observation`, `normalize_reward` or `observation_filter: MeanStdFilter` the
//! worker normalizes what its vector env returns before the policy and the batch see it (see
//! [`crate::normalization`]); batches hold normalized observations and rewards, while episode
//! returns stay the env's own.

use rl_env::rng::Pcg64;
use rl_env::{MeanStdFilter, SyncVectorEnv, seed_for_restart};
use rl_runtime::{Actor, ActorContext, BoxError, ObjectRef};
use serde::{Deserialize, Serialize};

use crate::acting::{ActMode, ActingPolicy, Exploration};
use crate::action::PolicyActions;
use crate::batch::{BatchActions, TrajectoryBatch};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::normalization::{ObservationStats, RunnerNormalizerState, RunnerNormalizers};
use crate::observation::ObservationEncoder;
use crate::seeding::{stream_rng, worker_stream};

/// What a rollout worker is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutWorkerInit {
    /// The training config (env, env_config, model, seed, sizes).
    pub config: TrainConfig,
    /// This worker's index, `0..num_env_runners`.
    pub worker_index: u32,
    /// How many times a worker of this index was restarted before this one (0 for the first).
    pub restarts: u32,
}

/// A rollout worker's state for a checkpoint: enough to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvRunnerState {
    /// The worker index.
    pub worker_index: u32,
    /// Its restart count.
    pub restarts: u32,
    /// `(state, increment)` of the sampling generator.
    pub rng: (u128, u128),
    /// Vector-env steps taken.
    pub steps: u64,
    /// The vector env's state as JSON text (see [`SyncVectorEnv::save_state`]), or `None` when
    /// its envs cannot save theirs: a restore then re-seeds them (not exact).
    pub envs: Option<String>,
    /// The observation and reward normalizers' statistics, when the config normalizes.
    #[serde(default)]
    pub normalizers: Option<RunnerNormalizerState>,
}

/// Messages a rollout worker handles.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum RolloutMsg {
    /// Load the weights in this object (safetensors from the learner) unless they are older
    /// than the current ones.
    SetWeights(ObjectRef),
    /// Sample one fragment, exploring as given, and put it into the object store; with
    /// `MeanStdFilter`, first take the driver's merged filter.
    Sample(Option<Box<MeanStdFilter>>, Exploration),
    /// The worker's state, for checkpoints.
    State,
    /// Continue from a saved state (same worker index).
    Restore(Box<EnvRunnerState>),
}

/// Replies of a rollout worker.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum RolloutReply {
    /// The policy version now loaded.
    Weights(u64),
    /// A sampled fragment.
    Batch {
        /// The trajectory batch in the object store.
        batch: ObjectRef,
        /// Sub-environments restarted while sampling it (`restart_failed_sub_environments`).
        sub_env_restarts: u32,
        /// The observation statistics for the driver, when observations are normalized.
        observation_stats: Option<Box<ObservationStats>>,
    },
    /// The worker's state.
    State(Box<EnvRunnerState>),
    /// Restored; `false` when the envs could not be restored exactly and were re-seeded.
    Restored(bool),
}

/// The rollout-worker actor.
pub struct RolloutWorker {
    index: u32,
    restarts: u32,
    env_seed: u64,
    envs: SyncVectorEnv,
    policy: ActingPolicy,
    version: u64,
    rng: Pcg64,
    fragment: usize,
    acting: PolicyActions,
    env_id: String,
    steps: u64,
    encoder: ObservationEncoder,
    encoded: Vec<f32>,
    normalizers: RunnerNormalizers,
    rewards: Vec<f32>,
}

impl Actor for RolloutWorker {
    const TYPE_NAME: &'static str = "RolloutWorker";
    type Init = RolloutWorkerInit;
    type Msg = RolloutMsg;
    type Reply = RolloutReply;

    fn new(init: RolloutWorkerInit, _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        let c = &init.config;
        let n = c.num_envs_per_env_runner;
        let mut envs = SyncVectorEnv::make_with_context(&c.env, &c.env_config, n, init.worker_index, init.restarts)?;
        if c.fault_tolerance.restart_failed_sub_environments {
            envs.set_restart_failed_sub_envs(true)?;
        }
        let env_seed = seed_for_restart(c.seed + u64::from(init.worker_index) * n as u64, init.restarts);
        envs.reset(Some(env_seed))?;
        let mut normalizers = RunnerNormalizers::new(c, n, envs.obs_dim());
        normalizers.on_reset(&envs);
        let (policy, encoder) = ActingPolicy::new(c, envs.single_observation_space(), envs.single_action_space())?;
        Ok(Self {
            index: init.worker_index,
            restarts: init.restarts,
            env_seed,
            acting: PolicyActions::new(envs.single_action_space(), n),
            envs,
            policy,
            version: 0,
            rng: stream_rng(seed_for_restart(c.seed, init.restarts), worker_stream(init.worker_index)),
            fragment: c.fragment_length(),
            env_id: c.env.clone(),
            steps: 0,
            encoder,
            encoded: Vec::new(),
            normalizers,
            rewards: Vec::with_capacity(n),
        })
    }

    fn handle(&mut self, msg: RolloutMsg, ctx: &ActorContext) -> std::result::Result<RolloutReply, BoxError> {
        match msg {
            RolloutMsg::SetWeights(r) => {
                let bytes = ctx.runtime().get_blocking(&r, None)?;
                let version = rl_policies::weights_version(&bytes)?;
                if version >= self.version {
                    self.policy.load(&bytes)?;
                    self.version = version;
                }
                Ok(RolloutReply::Weights(self.version))
            }
            RolloutMsg::Sample(filter, exploration) => {
                if let Some(f) = filter {
                    self.normalizers.sync_filter(&f);
                }
                let batch = self.sample(exploration).map_err(Error::into_actor_error)?;
                let sub_env_restarts = self.envs.drain_sub_env_restarts();
                for r in &sub_env_restarts {
                    tracing::warn!(worker = self.index, sub_env = r.env_idx, restarts = r.restarts, error = %r.error,
                        "sub-environment failed and was restarted");
                }
                let restarted = u32::try_from(sub_env_restarts.len()).unwrap_or(u32::MAX);
                Ok(RolloutReply::Batch {
                    batch: ctx.runtime().put(batch.to_bytes().into())?,
                    sub_env_restarts: restarted,
                    observation_stats: self.normalizers.take_stats().map(Box::new),
                })
            }
            RolloutMsg::State => Ok(RolloutReply::State(Box::new(self.state()?))),
            RolloutMsg::Restore(state) => Ok(RolloutReply::Restored(self.restore(&state)?)),
        }
    }
}

impl RolloutWorker {
    fn state(&self) -> Result<EnvRunnerState> {
        let envs = self.envs.save_state().map(|v| v.to_string());
        Ok(EnvRunnerState {
            worker_index: self.index,
            restarts: self.restarts,
            rng: self.rng.state(),
            steps: self.steps,
            envs,
            normalizers: self.normalizers.normalizes_anything().then(|| self.normalizers.state()),
        })
    }

    /// Takes over `state`; returns whether the envs were restored exactly.
    fn restore(&mut self, state: &EnvRunnerState) -> Result<bool> {
        if state.worker_index != self.index {
            return Err(Error::Resume(format!(
                "env runner {} was given the state of env runner {}",
                self.index, state.worker_index
            )));
        }
        self.rng = Pcg64::from_raw_state(state.rng.0, state.rng.1);
        self.steps = state.steps;
        self.restarts = state.restarts;
        if state.normalizers.is_none() && self.normalizers.normalizes_anything() {
            return Err(Error::Resume(format!(
                "env runner {}: the checkpoint has no normalization statistics, but the config normalizes",
                self.index
            )));
        }
        let exact = match &state.envs {
            Some(text) => {
                let value: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| Error::Resume(format!("env runner {}: env state is not JSON: {e}", self.index)))?;
                self.envs.restore_state(&value)?;
                match &state.normalizers {
                    Some(n) => self.normalizers.restore(n.clone())?,
                    // Nothing is normalized: the policy sees the restored observations as they are.
                    None => self.normalizers.on_reset(&self.envs),
                }
                true
            }
            None => {
                // The envs cannot save their state: start fresh episodes from seeds that depend
                // on where the run stopped, so a resume does not replay the first episodes.
                self.envs.reset(Some(self.env_seed.wrapping_add(state.steps.wrapping_mul(0x9e37_79b9))))?;
                if let Some(n) = &state.normalizers {
                    self.normalizers.restore(n.clone())?;
                }
                self.normalizers.on_reset(&self.envs);
                false
            }
        };
        Ok(exact)
    }

    /// Fails with [`Error::NonFiniteEnv`] unless the rewards and observations (including final
    /// observations) of the last step are finite.
    fn check_finite(&self) -> Result<()> {
        let obs_dim = self.envs.obs_dim();
        let fail = |quantity, value: f64, element, sub_env| Error::NonFiniteEnv {
            env: self.env_id.clone(),
            quantity,
            value,
            element,
            worker: self.index,
            sub_env,
            step: self.steps,
        };
        let first_bad = |obs: &[f32]| obs.iter().position(|v| !v.is_finite());
        for (i, &reward) in self.envs.rewards().iter().enumerate() {
            if !reward.is_finite() {
                return Err(fail("reward", reward, None, i));
            }
            let obs = &self.envs.observations()[i * obs_dim..(i + 1) * obs_dim];
            if let Some(e) = first_bad(obs) {
                return Err(fail("observation", f64::from(obs[e]), Some(e), i));
            }
            if let Some(final_obs) = self.envs.final_observation(i)
                && let Some(e) = first_bad(final_obs)
            {
                return Err(fail("final observation", f64::from(final_obs[e]), Some(e), i));
            }
        }
        Ok(())
    }

    /// Steps the vector env `fragment` times; see the module docs.
    fn sample(&mut self, exploration: Exploration) -> Result<TrajectoryBatch> {
        let n = self.envs.n_envs();
        let obs_dim = self.envs.obs_dim();
        let rows = self.fragment * n;
        let transitions = self.policy.actor_critic().is_none();
        let mut b = TrajectoryBatch {
            policy_version: self.version,
            worker_index: self.index,
            n_envs: n,
            obs_dim,
            obs: Vec::with_capacity(rows * obs_dim),
            next_obs: Vec::with_capacity(if transitions { rows * obs_dim } else { 0 }),
            actions: if self.acting.is_discrete() {
                BatchActions::Discrete(Vec::with_capacity(rows))
            } else {
                BatchActions::Continuous(Vec::with_capacity(rows * self.envs.act_dim()))
            },
            logp: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
            rewards: Vec::with_capacity(rows),
            terminated: Vec::with_capacity(rows),
            truncated: Vec::with_capacity(rows),
            bootstrap_values: Vec::with_capacity(rows),
            last_values: Vec::new(),
            episode_returns: Vec::new(),
            episode_lengths: Vec::new(),
        };
        if self.steps == 0 {
            // The observations of the first reset.
            self.check_finite()?;
        }
        let mut final_value = [0.0f32];
        for _ in 0..self.fragment {
            let obs = self.normalizers.observations();
            b.obs.extend_from_slice(obs);
            let inputs = self.encoder.encode(obs, &mut self.encoded)?;
            let actions = self.acting.act(&self.policy, inputs, &mut self.rng, ActMode::Explore(exploration))?;
            self.envs.step(actions)?;
            self.steps += 1;
            self.check_finite()?;
            self.normalizers.on_step(&self.envs, &mut self.rewards);
            // The batch keeps what the policy chose (indices, unclipped values): the
            // log-probabilities refer to those.
            match &mut b.actions {
                BatchActions::Discrete(a) => a.extend_from_slice(&self.acting.indices),
                BatchActions::Continuous(a) => a.extend_from_slice(&self.acting.raw),
            }
            b.logp.extend_from_slice(&self.acting.logp);
            b.values.extend_from_slice(&self.acting.values);
            for i in 0..n {
                b.rewards.push(self.rewards[i]);
                let (term, trunc) = (self.envs.terminated()[i], self.envs.truncated()[i]);
                b.terminated.push(term);
                b.truncated.push(trunc && !term);
                if transitions {
                    // The observation after the action: the final one where the episode ended.
                    match (term || trunc, self.envs.final_observation(i)) {
                        (false, _) => b
                            .next_obs
                            .extend_from_slice(&self.normalizers.observations()[i * obs_dim..(i + 1) * obs_dim]),
                        (true, Some(_)) => b.next_obs.extend_from_slice(self.normalizers.final_observation(i)),
                        // A rebuilt sub-environment: nothing to bootstrap from (see crate::batch).
                        (true, None) => b.next_obs.extend(std::iter::repeat_n(f32::NAN, obs_dim)),
                    }
                    b.bootstrap_values.push(0.0);
                    continue;
                }
                let bootstrap = match (self.envs.final_observation(i), self.policy.actor_critic()) {
                    (Some(_), Some(fast)) if trunc && !term => {
                        let final_obs = self.normalizers.final_observation(i);
                        fast.values(self.encoder.encode(final_obs, &mut self.encoded)?, &mut final_value)?;
                        final_value[0]
                    }
                    _ => 0.0,
                };
                b.bootstrap_values.push(bootstrap);
            }
            for ep in self.envs.drain_episodes() {
                b.episode_returns.push(ep.r);
                b.episode_lengths.push(ep.length as i64);
            }
        }
        b.last_values = vec![0.0; n];
        if let Some(fast) = self.policy.actor_critic() {
            fast.values(self.encoder.encode(self.normalizers.observations(), &mut self.encoded)?, &mut b.last_values)?;
        }
        Ok(b)
    }
}
