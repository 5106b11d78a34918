//! The rollout-worker actor: a vector env and a policy copy that sample trajectory batches.
//!
//! Each worker owns `num_envs_per_env_runner` sub-envs (seeded `seed + worker_index * n_envs + i`)
//! and an inference-only copy of the policy. `SetWeights` loads a published weight object
//! (ignoring versions older than the one it has); `Sample` steps every sub-env
//! `rollout_fragment_length` times with one batched forward pass per step, puts the
//! [`TrajectoryBatch`] into the object store and replies with its ref.

use rl_env::SyncVectorEnv;
use rl_env::rng::Pcg64;
use rl_policies::{ActorCritic, FastPolicy};
use rl_runtime::{Actor, ActorContext, BoxError, ObjectRef};
use serde::{Deserialize, Serialize};

use crate::action::PolicyActions;
use crate::batch::{BatchActions, TrajectoryBatch};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::observation::{ObservationEncoder, actor_critic};
use crate::seeding::{stream_rng, worker_stream};

/// What a rollout worker is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutWorkerInit {
    /// The training config (env, env_config, model, seed, sizes).
    pub config: TrainConfig,
    /// This worker's index, `0..num_env_runners`.
    pub worker_index: u32,
}

/// Messages a rollout worker handles.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum RolloutMsg {
    /// Load the weights in this object (safetensors from the learner) unless they are older
    /// than the current ones.
    SetWeights(ObjectRef),
    /// Sample one fragment and put it into the object store.
    Sample,
    /// The raw state of the action-sampling generator, for checkpoints.
    RngState,
}

/// Replies of a rollout worker.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum RolloutReply {
    /// The policy version now loaded.
    Weights(u64),
    /// The sampled batch.
    Batch(ObjectRef),
    /// `(state, increment)` of the sampling generator.
    RngState(u128, u128),
}

/// The rollout-worker actor.
pub struct RolloutWorker {
    index: u32,
    envs: SyncVectorEnv,
    policy: ActorCritic,
    fast: FastPolicy,
    version: u64,
    rng: Pcg64,
    fragment: usize,
    acting: PolicyActions,
    env_id: String,
    steps: u64,
    encoder: ObservationEncoder,
    encoded: Vec<f32>,
}

impl Actor for RolloutWorker {
    const TYPE_NAME: &'static str = "RolloutWorker";
    type Init = RolloutWorkerInit;
    type Msg = RolloutMsg;
    type Reply = RolloutReply;

    fn new(init: RolloutWorkerInit, _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        let c = &init.config;
        let n = c.num_envs_per_env_runner;
        let mut envs = SyncVectorEnv::make(&c.env, &c.env_config, n)?;
        envs.reset(Some(c.seed + u64::from(init.worker_index) * n as u64))?;
        let (policy, encoder) =
            actor_critic(&c.model, envs.single_observation_space(), envs.single_action_space(), c.seed)?;
        Ok(Self {
            index: init.worker_index,
            fast: policy.fast_policy()?,
            acting: PolicyActions::new(envs.single_action_space(), n),
            envs,
            policy,
            version: 0,
            rng: stream_rng(c.seed, worker_stream(init.worker_index)),
            fragment: c.rollout_fragment_length,
            env_id: c.env.clone(),
            steps: 0,
            encoder,
            encoded: Vec::new(),
        })
    }

    fn handle(&mut self, msg: RolloutMsg, ctx: &ActorContext) -> std::result::Result<RolloutReply, BoxError> {
        match msg {
            RolloutMsg::SetWeights(r) => {
                let bytes = ctx.runtime().get_blocking(&r, None)?;
                let version = rl_policies::weights_version(&bytes)?;
                if version >= self.version {
                    self.policy.load_safetensors(&bytes)?;
                    self.fast = self.policy.fast_policy()?;
                    self.version = version;
                }
                Ok(RolloutReply::Weights(self.version))
            }
            RolloutMsg::Sample => {
                let batch = self.sample().map_err(Error::into_actor_error)?;
                Ok(RolloutReply::Batch(ctx.runtime().put(batch.to_bytes().into())?))
            }
            RolloutMsg::RngState => {
                let (s, i) = self.rng.state();
                Ok(RolloutReply::RngState(s, i))
            }
        }
    }
}

impl RolloutWorker {
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
    fn sample(&mut self) -> Result<TrajectoryBatch> {
        let n = self.envs.n_envs();
        let obs_dim = self.envs.obs_dim();
        let rows = self.fragment * n;
        let mut b = TrajectoryBatch {
            policy_version: self.version,
            worker_index: self.index,
            n_envs: n,
            obs_dim,
            obs: Vec::with_capacity(rows * obs_dim),
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
            let obs = self.envs.observations();
            b.obs.extend_from_slice(obs);
            let inputs = self.encoder.encode(obs, &mut self.encoded)?;
            let actions = self.acting.act(&self.fast, inputs, &mut self.rng, false)?;
            self.envs.step(actions)?;
            self.steps += 1;
            self.check_finite()?;
            // The batch keeps what the policy chose (indices, unclipped values): the
            // log-probabilities refer to those.
            match &mut b.actions {
                BatchActions::Discrete(a) => a.extend_from_slice(&self.acting.indices),
                BatchActions::Continuous(a) => a.extend_from_slice(&self.acting.raw),
            }
            b.logp.extend_from_slice(&self.acting.logp);
            b.values.extend_from_slice(&self.acting.values);
            for i in 0..n {
                b.rewards.push(self.envs.rewards()[i] as f32);
                let (term, trunc) = (self.envs.terminated()[i], self.envs.truncated()[i]);
                b.terminated.push(term);
                b.truncated.push(trunc && !term);
                let bootstrap = match self.envs.final_observation(i) {
                    Some(final_obs) if trunc && !term => {
                        self.fast.values(self.encoder.encode(final_obs, &mut self.encoded)?, &mut final_value)?;
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
        self.fast.values(self.encoder.encode(self.envs.observations(), &mut self.encoded)?, &mut b.last_values)?;
        Ok(b)
    }
}
