//! The learner actor: owns the candle policy and its optimizer, runs PPO updates on sampled
//! batches and publishes weights.
//!
//! One `Update` is CleanRL's training phase: GAE per worker batch, flatten, then `num_epochs`
//! passes over shuffled minibatches of the clipped PPO loss with per-minibatch advantage
//! normalization, global-norm gradient clipping and Adam, stopping early once the approximate
//! KL passes `target_kl`.

use bytes::Bytes;
use candle_core::{Device, Tensor};
use rl_env::rng::Pcg64;
use rl_env::{Kwargs, Space, make};
use rl_policies::ActorCritic;
use rl_runtime::{Actor, ActorContext, BoxError, ObjectRef};
use serde::{Deserialize, Serialize};

use crate::batch::{BatchActions, TrajectoryBatch};
use crate::config::TrainConfig;
use crate::gae::{GaeInput, compute_gae};
use crate::optim::Adam;
use crate::ppo::loss::{LossCoeffs, LossInputs, ppo_loss};
use crate::rollout::stream_rng;

/// Messages the learner handles.
#[derive(Debug, Serialize, Deserialize)]
pub enum LearnerMsg {
    /// Put the current weights into the object store.
    PublishWeights,
    /// Train on these batches with learning rate `lr`.
    Update {
        /// Batch refs, in worker order.
        batches: Vec<ObjectRef>,
        /// Learning rate for this update.
        lr: f64,
        /// PPO clip parameter for this update (`clip_param` after its schedule).
        clip_param: f64,
    },
    /// The optimizer state and shuffling-generator state, for checkpoints.
    State,
    /// Restore weights, optimizer and generator from a checkpoint's parts.
    Restore(Box<LearnerState>),
}

/// Everything needed to continue training exactly: weights, Adam moments, shuffle generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnerState {
    /// Policy weights (safetensors).
    pub policy: Vec<u8>,
    /// Adam step count.
    pub adam_step: u64,
    /// Adam moments, named `m.i` / `v.i`.
    pub adam_moments: Vec<(String, Vec<f32>)>,
    /// Shuffle generator `(state, increment)`.
    pub rng: (u128, u128),
}

/// Replies of the learner.
#[derive(Debug, Serialize, Deserialize)]
pub enum LearnerReply {
    /// Weights object and its version.
    Weights(ObjectRef, u64),
    /// Statistics of an update.
    Updated(UpdateStats),
    /// The learner's state.
    State(Box<LearnerState>),
    /// Restored.
    Restored,
}

/// Means over the minibatch updates of one iteration, plus batch-level figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Clipped surrogate loss.
    pub policy_loss: f64,
    /// Value loss.
    pub vf_loss: f64,
    /// Policy entropy.
    pub entropy: f64,
    /// Approximate KL of the last minibatch (CleanRL reports the last one).
    pub approx_kl: f64,
    /// Fraction of clipped ratios.
    pub clip_fraction: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// `1 - Var(returns - values) / Var(returns)` over the batch.
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

/// The learner actor.
pub struct Learner {
    config: TrainConfig,
    policy: ActorCritic,
    adam: Adam,
    rng: Pcg64,
    version: u64,
    discrete: bool,
    device: Device,
}

/// Flattened training data of one iteration.
struct Flat {
    obs: Vec<f32>,
    obs_dim: usize,
    actions: BatchActions,
    act_dim: usize,
    logp: Vec<f32>,
    values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

impl Actor for Learner {
    const TYPE_NAME: &'static str = "Learner";
    type Init = TrainConfig;
    type Msg = LearnerMsg;
    type Reply = LearnerReply;

    fn new(config: TrainConfig, _ctx: &ActorContext) -> Result<Self, BoxError> {
        let (obs_space, act_space) = env_spaces(&config.env, &config.env_config)?;
        let policy = ActorCritic::new(&config.model, &obs_space, &act_space, config.seed)?;
        let adam = Adam::new(policy.vars(), config.adam_epsilon);
        Ok(Self {
            rng: stream_rng(config.seed, 0),
            discrete: matches!(act_space, Space::Discrete { .. }),
            config,
            policy,
            adam,
            version: 0,
            device: Device::Cpu,
        })
    }

    fn handle(&mut self, msg: LearnerMsg, ctx: &ActorContext) -> Result<LearnerReply, BoxError> {
        match msg {
            LearnerMsg::PublishWeights => {
                let bytes = self.policy.to_safetensors(self.version)?;
                Ok(LearnerReply::Weights(ctx.runtime().put(Bytes::from(bytes))?, self.version))
            }
            LearnerMsg::Update { batches, lr, clip_param } => {
                let mut decoded = Vec::with_capacity(batches.len());
                for r in &batches {
                    decoded.push(TrajectoryBatch::from_bytes(&ctx.runtime().get_blocking(r, None)?)?);
                }
                Ok(LearnerReply::Updated(self.update(&decoded, lr, clip_param)?))
            }
            LearnerMsg::State => {
                let (adam_step, adam_moments) = self.adam.state();
                Ok(LearnerReply::State(Box::new(LearnerState {
                    policy: self.policy.to_safetensors(self.version)?,
                    adam_step,
                    adam_moments,
                    rng: self.rng.state(),
                })))
            }
            LearnerMsg::Restore(state) => {
                self.version = self.policy.load_safetensors(&state.policy)?;
                self.adam.load_state(state.adam_step, &state.adam_moments)?;
                self.rng = Pcg64::from_raw_state(state.rng.0, state.rng.1);
                Ok(LearnerReply::Restored)
            }
        }
    }
}

/// Unbiased-free (population) variance, as NumPy's `np.var`.
fn variance(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    x.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / n
}

impl Learner {
    /// GAE per worker batch, then concatenation in worker order.
    fn flatten(&self, batches: &[TrajectoryBatch]) -> Flat {
        let (gamma, lambda) = (self.config.gamma as f32, self.config.lambda as f32);
        let obs_dim = batches[0].obs_dim;
        let mut f = Flat {
            obs: Vec::new(),
            obs_dim,
            actions: if self.discrete {
                BatchActions::Discrete(Vec::new())
            } else {
                BatchActions::Continuous(Vec::new())
            },
            act_dim: 1,
            logp: Vec::new(),
            values: Vec::new(),
            advantages: Vec::new(),
            returns: Vec::new(),
        };
        for b in batches {
            let (adv, ret) = compute_gae(
                &GaeInput {
                    n_envs: b.n_envs,
                    rewards: &b.rewards,
                    values: &b.values,
                    terminated: &b.terminated,
                    truncated: &b.truncated,
                    bootstrap_values: &b.bootstrap_values,
                    last_values: &b.last_values,
                },
                gamma,
                lambda,
            );
            f.obs.extend_from_slice(&b.obs);
            match (&mut f.actions, &b.actions) {
                (BatchActions::Discrete(all), BatchActions::Discrete(a)) => all.extend_from_slice(a),
                (BatchActions::Continuous(all), BatchActions::Continuous(a)) => {
                    f.act_dim = a.len() / b.len().max(1);
                    all.extend_from_slice(a)
                }
                _ => unreachable!("all workers share the action space"),
            }
            f.logp.extend_from_slice(&b.logp);
            f.values.extend_from_slice(&b.values);
            f.advantages.extend(adv);
            f.returns.extend(ret);
        }
        f
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

    fn gather(&self, f: &Flat, mb: &[usize]) -> candle_core::Result<[Tensor; 6]> {
        let d = &self.device;
        let b = mb.len();
        let obs: Vec<f32> =
            mb.iter().flat_map(|&i| f.obs[i * f.obs_dim..(i + 1) * f.obs_dim].iter().copied()).collect();
        let pick = |v: &[f32]| Tensor::from_vec(mb.iter().map(|&i| v[i]).collect::<Vec<f32>>(), b, d);
        let actions = match &f.actions {
            BatchActions::Discrete(a) => Tensor::from_vec(mb.iter().map(|&i| a[i] as u32).collect::<Vec<u32>>(), b, d)?,
            BatchActions::Continuous(a) => Tensor::from_vec(
                mb.iter().flat_map(|&i| a[i * f.act_dim..(i + 1) * f.act_dim].iter().copied()).collect::<Vec<f32>>(),
                (b, f.act_dim),
                d,
            )?,
        };
        let mut adv: Vec<f32> = mb.iter().map(|&i| f.advantages[i]).collect();
        if self.config.normalize_advantages && b > 1 {
            // CleanRL: (adv - mean) / (std + 1e-8) with the unbiased std of torch.
            let mean = adv.iter().sum::<f32>() / b as f32;
            let var = adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (b - 1) as f32;
            let std = var.sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        Ok([
            Tensor::from_vec(obs, (b, f.obs_dim), d)?,
            actions,
            pick(&f.logp)?,
            pick(&f.values)?,
            Tensor::from_vec(adv, b, d)?,
            pick(&f.returns)?,
        ])
    }

    /// One PPO training phase over `batches`.
    fn update(&mut self, batches: &[TrajectoryBatch], lr: f64, clip_param: f64) -> Result<UpdateStats, BoxError> {
        let flat = self.flatten(batches);
        let n = flat.logp.len();
        let c = &self.config;
        let coeffs = LossCoeffs {
            clip_param,
            vf_clip_param: c.vf_clip_param,
            entropy_coeff: c.entropy_coeff,
            vf_loss_coeff: c.vf_loss_coeff,
        };
        let (mb_size, epochs, grad_clip, target_kl) = (c.minibatch_size, c.num_epochs, c.grad_clip, c.target_kl);
        let mut stats = UpdateStats { num_env_steps: n as u64, ..Default::default() };
        let mut sums = [0.0f64; 5];
        'epochs: for _ in 0..epochs {
            let order = self.permutation(n);
            for mb in order.chunks(mb_size) {
                let [obs, actions, old_logp, old_values, advantages, returns] = self.gather(&flat, mb)?;
                let (logp, entropy, values) = self.policy.evaluate_actions(&obs, &actions)?;
                let out = ppo_loss(
                    &LossInputs {
                        logp: &logp,
                        entropy: &entropy,
                        values: &values,
                        old_logp: &old_logp,
                        old_values: &old_values,
                        advantages: &advantages,
                        returns: &returns,
                    },
                    &coeffs,
                )?;
                let grads = out.total.backward()?;
                let step = self.adam.step(&grads, lr, grad_clip)?;
                for (s, v) in sums.iter_mut().zip([
                    out.policy_loss as f64,
                    out.vf_loss as f64,
                    out.entropy as f64,
                    out.clip_fraction as f64,
                    step.grad_norm,
                ]) {
                    *s += v;
                }
                stats.approx_kl = f64::from(out.approx_kl);
                stats.num_minibatch_updates += 1;
            }
            if target_kl.is_some_and(|t| stats.approx_kl > t) {
                break 'epochs;
            }
        }
        let k = stats.num_minibatch_updates.max(1) as f64;
        stats.policy_loss = sums[0] / k;
        stats.vf_loss = sums[1] / k;
        stats.entropy = sums[2] / k;
        stats.clip_fraction = sums[3] / k;
        stats.grad_norm = sums[4] / k;
        let residual: Vec<f32> = flat.returns.iter().zip(&flat.values).map(|(r, v)| r - v).collect();
        let var_y = variance(&flat.returns);
        stats.explained_variance = if var_y == 0.0 { f64::NAN } else { 1.0 - variance(&residual) / var_y };
        for b in batches {
            stats.episode_returns.extend_from_slice(&b.episode_returns);
            stats.episode_lengths.extend_from_slice(&b.episode_lengths);
        }
        self.version += 1;
        stats.policy_version = self.version;
        Ok(stats)
    }
}

/// The spaces of an env id, made once with `env_config`.
pub fn env_spaces(env: &str, env_config: &Kwargs) -> Result<(Space, Space), rl_env::EnvError> {
    let e = make(env, env_config)?;
    Ok((e.observation_space().clone(), e.action_space().clone()))
}
