//! SAC (Haarnoja et al. 2018), laid out like CleanRL's `sac_continuous_action.py`: the learner
//! actor and its gradient step, top to bottom. The rounds that feed it (sampling, the replay
//! buffer) are the off-policy driver's ([`crate::off_policy`]).
//!
//! ```text
//! every round (after its transitions entered the replay buffer):         SacLearner::round
//!     once more than learning_starts env steps were sampled, gradient_steps times:
//!         sample batch_size transitions (uniform, or prioritized with weights w)
//!         a', log pi(a'|s') = actor(s') with fresh noise
//!         y = r + discount * (min(Q1'(s', a'), Q2'(s', a')) - alpha * log pi(a'|s'))
//!         critic loss = mean(w (Q1(s, a) - y)^2) + mean(w (Q2(s, a) - y)^2); Adam(critic_lr)
//!         every policy_frequency gradient steps, policy_frequency times:
//!             a~, log pi(a~|s) = actor(s) with fresh noise (reparameterized)
//!             actor loss = mean(alpha * log pi(a~|s) - min(Q1(s, a~), Q2(s, a~))); Adam(actor_lr)
//!             autotune: alpha loss = mean(-alpha * (log pi(a^|s) + target_entropy)), a^ a fresh
//!                       sample outside the graph, on log alpha; Adam(alpha_lr); alpha = exp(log alpha)
//!         every target_update_interval gradient steps: Q' <- tau * Q + (1 - tau) * Q'
//! ```
//!
//! The actor is a tanh-squashed Gaussian ([`rl_policies::SquashedGaussianActor`]): `a = tanh(u)`
//! scaled into the action bounds, `log pi(a|s) = log N(u) - sum log(scale (1 - tanh(u)^2) + 1e-6)`.
//! `discount` is `gamma^k` for a k-step transition and 0 where the episode terminated; a
//! truncated episode bootstraps from its final observation.

use candle_core::{Device, Tensor, Var};
use rl_env::Space;
use rl_policies::{QCritic, SquashedGaussianActor, load_vars_safetensors, vars_to_safetensors};
use rl_runtime::{Actor, ActorContext, BoxError};

use crate::checkpoint::{OptimizerState, optimizer_bytes, read_optimizer};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::observation::ObservationEncoder;
use crate::off_policy::{
    OffPolicyLearner, OffPolicyLearnerState, OffPolicyMsg, OffPolicyReply, ReplaySide, find_file, standard_normal,
};
use crate::optim::{Adam, AdamStep};
use crate::replay::ReplaySample;
use crate::seeding::{LEARNER_STREAM, stream_rng};

/// SAC's `progress.csv` columns.
pub const METRIC_COLUMNS: &[&str] = &[
    "learners/qf_loss",
    "learners/qf1_values",
    "learners/actor_loss",
    "learners/alpha",
    "learners/alpha_loss",
    "learners/entropy",
    "learners/replay_buffer_size",
    "learners/num_gradient_steps_lifetime",
    "learners/num_target_updates_lifetime",
    "learners/policy_version",
];

/// The critics, their targets and log alpha.
const CRITICS_FILE: &str = "critics.safetensors";
/// The critics' Adam.
const CRITIC_OPTIMIZER_FILE: &str = "critic_optimizer.safetensors";
/// Log alpha's Adam.
const ALPHA_OPTIMIZER_FILE: &str = "alpha_optimizer.safetensors";

/// The SAC learner actor: actor, twin critics and their targets, log alpha, three Adams and the
/// replay side.
pub struct SacLearner {
    config: TrainConfig,
    actor: SquashedGaussianActor,
    qf1: QCritic,
    qf2: QCritic,
    qf1_target: QCritic,
    qf2_target: QCritic,
    log_alpha: Var,
    actor_adam: Adam,
    critic_adam: Adam,
    alpha_adam: Adam,
    target_entropy: f64,
    replay: ReplaySide,
    version: u64,
    device: Device,
}

impl OffPolicyLearner for SacLearner {
    const METRIC_COLUMNS: &'static [&'static str] = METRIC_COLUMNS;

    fn replay(&mut self) -> &mut ReplaySide {
        &mut self.replay
    }

    fn acting_weights(&self) -> Result<Vec<u8>> {
        Ok(self.actor.to_safetensors(self.version)?)
    }

    fn version(&self) -> u64 {
        self.version
    }

    /// The round's gradient steps, once more than `learning_starts` env steps were sampled.
    fn round(&mut self, _new_steps: u64) -> Result<()> {
        let c = self.config.clone();
        let steps = self.replay.counters.env_steps;
        if steps <= c.learning_starts || self.replay.buffer.is_empty() {
            return Ok(());
        }
        for _ in 0..c.gradient_steps_per_round() {
            let batch = self.replay.sample(c.batch_size, ReplaySide::beta(&c, steps));
            self.gradient_step(&batch)?;
        }
        self.version += 1;
        Ok(())
    }

    fn gauges(&self) -> Result<Vec<(String, f64)>> {
        Ok(vec![("learners/alpha".into(), f64::from(self.alpha()?))])
    }

    fn state(&self) -> Result<OffPolicyLearnerState> {
        let adam = |a: &Adam| {
            let (step, moments) = a.state();
            OptimizerState { step, moments }
        };
        let mut extra_files = self.replay.files()?;
        extra_files.push((CRITICS_FILE.into(), vars_to_safetensors(&self.critic_vars(), &[])?));
        extra_files.push((CRITIC_OPTIMIZER_FILE.into(), optimizer_bytes(&adam(&self.critic_adam))));
        extra_files.push((ALPHA_OPTIMIZER_FILE.into(), optimizer_bytes(&adam(&self.alpha_adam))));
        Ok(OffPolicyLearnerState {
            policy: self.actor.to_safetensors(self.version)?,
            policy_version: self.version,
            optimizer: adam(&self.actor_adam),
            rng: self.replay.rng.state(),
            extra_files,
        })
    }

    fn restore(&mut self, state: &OffPolicyLearnerState) -> Result<()> {
        self.actor.load_safetensors(&state.policy)?;
        load_vars_safetensors(&self.critic_vars(), find_file(&state.extra_files, CRITICS_FILE)?)?;
        let restore = |adam: &mut Adam, opt: &OptimizerState, what: &str| {
            adam.restore(opt.step, &opt.moments)
                .map_err(|m| Error::Resume(format!("the {what} optimizer state does not fit: {m}")))
        };
        restore(&mut self.actor_adam, &state.optimizer, "actor")?;
        for (file, adam, what) in [
            (CRITIC_OPTIMIZER_FILE, &mut self.critic_adam, "critic"),
            (ALPHA_OPTIMIZER_FILE, &mut self.alpha_adam, "alpha"),
        ] {
            let opt = read_optimizer(find_file(&state.extra_files, file)?, std::path::Path::new(file))?;
            restore(adam, &opt, what)?;
        }
        self.replay.restore(&state.extra_files, state.rng)?;
        self.version = state.policy_version;
        Ok(())
    }
}

impl Actor for SacLearner {
    const TYPE_NAME: &'static str = "SacLearner";
    type Init = TrainConfig;
    type Msg = OffPolicyMsg;
    type Reply = OffPolicyReply;

    fn new(config: TrainConfig, _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        let env = rl_env::make(&config.env, &config.env_config)?;
        let Space::Box(bounds) = env.action_space() else {
            return Err(Error::config("algorithm", format!("SAC needs Box actions, {} has others", config.env)).into());
        };
        let encoder = ObservationEncoder::new(env.observation_space());
        let device = Device::Cpu;
        let (m, obs_dim, act_dim) = (&config.model, encoder.dim(), bounds.len());
        // The actor as the runners build it (crate::acting); each critic from a seed of its own.
        let actor = crate::acting::squashed_actor(&config, obs_dim, bounds)?;
        let critic = |name: &str, k: u64| {
            let seed = rl_env::rng::mix_seed(config.seed, k);
            QCritic::new(name, obs_dim, act_dim, &m.fcnet_hiddens, m.fcnet_activation, seed, &device)
        };
        let (qf1, qf2) = (critic("qf1", 1)?, critic("qf2", 2)?);
        let (qf1_target, qf2_target) = (qf1.duplicate()?, qf2.duplicate()?);
        let log_alpha = Var::from_vec(vec![config.initial_alpha.ln() as f32], 1, &device)?;
        let rng = stream_rng(config.seed, LEARNER_STREAM);
        Ok(Self {
            actor_adam: Adam::new(actor.vars()),
            critic_adam: Adam::new(qf1.vars().into_iter().chain(qf2.vars()).collect()),
            alpha_adam: Adam::new(vec![log_alpha.clone()]),
            target_entropy: config.target_entropy.resolve(act_dim),
            replay: ReplaySide::new(&config, encoder, act_dim, rng),
            actor,
            qf1,
            qf2,
            qf1_target,
            qf2_target,
            log_alpha,
            config,
            version: 0,
            device,
        })
    }

    fn handle(&mut self, msg: OffPolicyMsg, ctx: &ActorContext) -> std::result::Result<OffPolicyReply, BoxError> {
        crate::off_policy::handle(self, msg, ctx)
    }
}

impl SacLearner {
    fn alpha(&self) -> Result<f32> {
        Ok(self.log_alpha.as_tensor().exp()?.to_vec1::<f32>()?[0])
    }

    /// One gradient step on `batch` (see the module docs).
    fn gradient_step(&mut self, batch: &ReplaySample) -> Result<()> {
        let c = &self.config;
        let critic_step = AdamStep { lr: c.critic_lr, eps: c.adam_epsilon, max_grad_norm: None };
        let (prioritized, policy_frequency) = (c.prioritized_replay.is_some(), c.policy_frequency);
        let (target_update_interval, tau) = (c.target_update_interval, c.tau);
        let (b, dim, act_dim) = (batch.rewards.len(), self.replay.buffer.obs_dim(), self.actor.act_dim());
        let d = self.device.clone();
        let obs = Tensor::from_slice(&batch.obs, (b, dim), &d)?;
        let next_obs = Tensor::from_slice(&batch.next_obs, (b, dim), &d)?;
        let actions = Tensor::from_slice(&batch.actions, (b, act_dim), &d)?;
        let rewards = Tensor::from_slice(&batch.rewards, b, &d)?;
        let discounts = Tensor::from_slice(&batch.discounts, b, &d)?;
        let weights = Tensor::from_slice(&batch.weights, b, &d)?;
        let alpha = f64::from(self.alpha()?);
        let step = self.replay.counters.gradient_steps + 1;

        // 1. Critics: the soft TD target, outside the graph.
        let noise = self.noise(b)?;
        let (next_actions, next_logp) = self.actor.sample(&next_obs, &noise)?;
        let next_q = self
            .qf1_target
            .forward(&next_obs, &next_actions)?
            .minimum(&self.qf2_target.forward(&next_obs, &next_actions)?)?;
        let soft = (next_q - (next_logp * alpha)?)?;
        let y = (rewards + (discounts * soft)?)?.detach();
        let q1 = self.qf1.forward(&obs, &actions)?;
        let q2 = self.qf2.forward(&obs, &actions)?;
        let td1 = (&q1 - &y)?;
        let td2 = (&q2 - &y)?;
        let qf_loss = ((td1.sqr()? * &weights)?.mean_all()? + (td2.sqr()? * &weights)?.mean_all()?)?;
        let qf_loss_value = self.finite("critic loss", &qf_loss, step)?;
        let grads = qf_loss.backward()?;
        let stats = self.critic_adam.step(&grads, &critic_step)?;
        if !stats.grad_norm.is_finite() {
            return Err(self.non_finite("critic gradient norm", stats.grad_norm, step));
        }
        if prioritized {
            let td1: Vec<f32> = td1.detach().to_vec1()?;
            let td2: Vec<f32> = td2.detach().to_vec1()?;
            let td: Vec<f32> = td1.iter().zip(&td2).map(|(a, b)| 0.5 * (a.abs() + b.abs())).collect();
            self.replay.buffer.update_priorities(&batch.indices, &td);
        }
        self.replay.record("learners/qf_loss", f64::from(qf_loss_value));
        self.replay.record("learners/qf1_values", f64::from(q1.detach().mean_all()?.to_scalar::<f32>()?));

        // 2. Actor and alpha, every policy_frequency steps, that many times (CleanRL's delayed
        //    update that keeps one actor update per gradient step on average).
        if step.is_multiple_of(policy_frequency as u64) {
            for _ in 0..policy_frequency {
                self.actor_step(&obs, b, step)?;
            }
        }

        // 3. Targets.
        if step.is_multiple_of(target_update_interval) {
            self.qf1_target.soft_update_from(&self.qf1, tau)?;
            self.qf2_target.soft_update_from(&self.qf2, tau)?;
            self.replay.counters.target_updates += 1;
        }
        self.replay.counters.gradient_steps += 1;
        Ok(())
    }

    /// One actor update (and, with `autotune`, one alpha update) on the observations `obs`.
    fn actor_step(&mut self, obs: &Tensor, b: usize, step: u64) -> Result<()> {
        let (actor_lr, alpha_lr, eps, autotune) =
            (self.config.actor_lr, self.config.alpha_lr, self.config.adam_epsilon, self.config.autotune);
        let alpha = f64::from(self.alpha()?);
        let noise = self.noise(b)?;
        let (pi, logp) = self.actor.sample(obs, &noise)?;
        let min_q = self.qf1.forward_frozen(obs, &pi)?.minimum(&self.qf2.forward_frozen(obs, &pi)?)?;
        let actor_loss = ((logp.clone() * alpha)? - min_q)?.mean_all()?;
        let actor_loss_value = self.finite("actor loss", &actor_loss, step)?;
        let grads = actor_loss.backward()?;
        let actor_step = AdamStep { lr: actor_lr, eps, max_grad_norm: None };
        let stats = self.actor_adam.step(&grads, &actor_step)?;
        if !stats.grad_norm.is_finite() {
            return Err(self.non_finite("actor gradient norm", stats.grad_norm, step));
        }
        self.replay.record("learners/actor_loss", f64::from(actor_loss_value));
        self.replay.record("learners/entropy", -f64::from(logp.detach().mean_all()?.to_scalar::<f32>()?));
        if autotune {
            let noise = self.noise(b)?;
            let (_, logp) = self.actor.sample(obs, &noise)?;
            let shifted = (logp.detach() + self.target_entropy)?;
            let alpha_loss = (self.log_alpha.as_tensor().exp()?.broadcast_mul(&shifted)? * -1.0)?.mean_all()?;
            let alpha_loss_value = self.finite("alpha loss", &alpha_loss, step)?;
            let grads = alpha_loss.backward()?;
            let alpha_step = AdamStep { lr: alpha_lr, eps, max_grad_norm: None };
            self.alpha_adam.step(&grads, &alpha_step)?;
            self.replay.record("learners/alpha_loss", f64::from(alpha_loss_value));
        }
        Ok(())
    }

    /// Standard-normal noise `[b, act_dim]` from the learner's generator.
    fn noise(&mut self, b: usize) -> Result<Tensor> {
        let act_dim = self.actor.act_dim();
        Ok(Tensor::from_vec(standard_normal(&mut self.replay.rng, b, act_dim), (b, act_dim), &self.device)?)
    }

    fn non_finite(&self, quantity: &'static str, value: f64, step: u64) -> Error {
        Error::NonFiniteGradientStep { algorithm: "SAC", quantity, value, gradient_step: step }
    }

    /// The scalar value of `loss`, or the error that stops the run before any weight changes.
    fn finite(&self, quantity: &'static str, loss: &Tensor, step: u64) -> Result<f32> {
        let v = loss.to_scalar::<f32>()?;
        if v.is_finite() { Ok(v) } else { Err(self.non_finite(quantity, f64::from(v), step)) }
    }

    fn critic_vars(&self) -> Vec<(String, Var)> {
        let mut vars = self.qf1.named_vars();
        vars.extend(self.qf2.named_vars());
        for (name, var) in self.qf1_target.named_vars().into_iter().chain(self.qf2_target.named_vars()) {
            vars.push((format!("target.{name}"), var));
        }
        vars.push(("log_alpha".into(), self.log_alpha.clone()));
        vars
    }
}
