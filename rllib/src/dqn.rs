//! DQN (Mnih et al. 2015) with its common options, laid out like CleanRL's `dqn.py`: the
//! learner actor and its gradient step, top to bottom. The rounds that feed it (sampling,
//! exploration, the replay buffer) are the off-policy driver's ([`crate::off_policy`]).
//!
//! ```text
//! every round (after its transitions entered the replay buffer):        DqnLearner::round
//!     for each target_update_interval env steps crossed:  target <- tau*q + (1-tau)*target
//!     once more than learning_starts env steps were sampled, gradient_steps times:
//!         sample batch_size transitions (uniform, or prioritized with weights w)
//!         y = r + discount * max_a target(s', a)            (discount = gamma^k, 0 if terminal)
//!             double_q: y = r + discount * target(s', argmax_a q(s', a))
//!         loss = mean(w * l(q(s, a) - y)),  l = Huber (delta 1) or squared error
//!         backward, global-norm clip (grad_clip), Adam(lr)
//!         prioritized: priorities <- |q(s, a) - y| + eps
//! ```
//!
//! Loss terms: with TD error `d = q(s, a) - y`, Huber is `0.5 d^2` for `|d| < 1` and
//! `|d| - 0.5` otherwise (SB3's `smooth_l1_loss`), MSE is `d^2` (CleanRL's `mse_loss`); each
//! is averaged over the batch, weighted by the importance weights `w` (all 1 without
//! prioritized replay).

use candle_core::{D, Device, Tensor};
use rl_env::Space;
use rl_policies::{QNetwork, load_vars_safetensors, vars_to_safetensors};
use rl_runtime::{Actor, ActorContext, BoxError};

use crate::checkpoint::OptimizerState;
use crate::config::{TdErrorLossFn, TrainConfig};
use crate::error::{Error, Result};
use crate::observation::ObservationEncoder;
use crate::off_policy::{OffPolicyLearner, OffPolicyLearnerState, OffPolicyMsg, OffPolicyReply, ReplaySide, find_file};
use crate::optim::{Adam, AdamStep};
use crate::replay::ReplaySample;
use crate::seeding::{LEARNER_STREAM, stream_rng};

/// DQN's `progress.csv` columns.
pub const METRIC_COLUMNS: &[&str] = &[
    "learners/td_loss",
    "learners/q_values",
    "learners/grad_norm",
    "learners/epsilon",
    "learners/lr",
    "learners/replay_buffer_size",
    "learners/num_gradient_steps_lifetime",
    "learners/num_target_updates_lifetime",
    "learners/policy_version",
];

/// The target network's checkpoint file.
const TARGET_FILE: &str = "target_network.safetensors";

/// The DQN learner actor: the Q-network, its target, Adam and the replay side.
pub struct DqnLearner {
    config: TrainConfig,
    q: QNetwork,
    target: QNetwork,
    adam: Adam,
    replay: ReplaySide,
    version: u64,
    device: Device,
}

impl OffPolicyLearner for DqnLearner {
    const METRIC_COLUMNS: &'static [&'static str] = METRIC_COLUMNS;

    fn replay(&mut self) -> &mut ReplaySide {
        &mut self.replay
    }

    fn acting_weights(&self) -> Result<Vec<u8>> {
        Ok(self.q.to_safetensors(self.version)?)
    }

    fn version(&self) -> u64 {
        self.version
    }

    /// The round's target updates and gradient steps, after `new_steps` env steps were stored.
    fn round(&mut self, new_steps: u64) -> Result<()> {
        let c = self.config.clone();
        // SB3 updates the target every target_update_interval env steps, as they are sampled
        // (before the round's gradient steps).
        let after = self.replay.counters.env_steps;
        let crossed = after / c.target_update_interval - (after - new_steps) / c.target_update_interval;
        for _ in 0..crossed {
            self.target.soft_update_from(&self.q, c.tau)?;
            self.replay.counters.target_updates += 1;
        }
        if after <= c.learning_starts || self.replay.buffer.is_empty() {
            return Ok(());
        }
        for _ in 0..c.gradient_steps_per_round() {
            let beta = ReplaySide::beta(&c, after);
            let batch = self.replay.sample(c.batch_size, beta);
            self.gradient_step(&batch)?;
        }
        self.version += 1;
        Ok(())
    }

    fn gauges(&self) -> Result<Vec<(String, f64)>> {
        Ok(vec![("learners/lr".into(), self.config.lr)])
    }

    fn state(&self) -> Result<OffPolicyLearnerState> {
        let (step, moments) = self.adam.state();
        let mut extra_files = self.replay.files()?;
        extra_files.push((TARGET_FILE.into(), vars_to_safetensors(&self.target.named_vars(), &[])?));
        Ok(OffPolicyLearnerState {
            policy: self.q.to_safetensors(self.version)?,
            policy_version: self.version,
            optimizer: OptimizerState { step, moments },
            rng: self.replay.rng.state(),
            extra_files,
        })
    }

    fn restore(&mut self, state: &OffPolicyLearnerState) -> Result<()> {
        self.q.load_safetensors(&state.policy)?;
        load_vars_safetensors(&self.target.named_vars(), find_file(&state.extra_files, TARGET_FILE)?)?;
        self.adam
            .restore(state.optimizer.step, &state.optimizer.moments)
            .map_err(|m| Error::Resume(format!("the optimizer state does not fit the Q-network: {m}")))?;
        self.replay.restore(&state.extra_files, state.rng)?;
        self.version = state.policy_version;
        Ok(())
    }
}

impl Actor for DqnLearner {
    const TYPE_NAME: &'static str = "DqnLearner";
    type Init = TrainConfig;
    type Msg = OffPolicyMsg;
    type Reply = OffPolicyReply;

    fn new(config: TrainConfig, _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        let env = rl_env::make(&config.env, &config.env_config)?;
        let Space::Discrete { n, .. } = env.action_space() else {
            return Err(
                Error::config("algorithm", format!("DQN needs Discrete actions, {} has others", config.env)).into()
            );
        };
        let encoder = ObservationEncoder::new(env.observation_space());
        let device = Device::Cpu;
        // The same network, seed and all, as the runners build (crate::acting).
        let q = crate::acting::q_network(&config, encoder.dim(), *n as usize)?;
        let target = q.duplicate()?;
        let rng = stream_rng(config.seed, LEARNER_STREAM);
        Ok(Self {
            adam: Adam::new(q.vars()),
            replay: ReplaySide::new(&config, encoder, 1, rng),
            q,
            target,
            config,
            version: 0,
            device,
        })
    }

    fn handle(&mut self, msg: OffPolicyMsg, ctx: &ActorContext) -> std::result::Result<OffPolicyReply, BoxError> {
        crate::off_policy::handle(self, msg, ctx)
    }
}

impl DqnLearner {
    /// One gradient step on `batch` (see the module docs).
    fn gradient_step(&mut self, batch: &ReplaySample) -> Result<()> {
        let c = &self.config;
        let (b, dim) = (batch.rewards.len(), self.replay.buffer.obs_dim());
        let d = &self.device;
        let obs = Tensor::from_slice(&batch.obs, (b, dim), d)?;
        let next_obs = Tensor::from_slice(&batch.next_obs, (b, dim), d)?;
        let actions: Vec<u32> = batch.actions.iter().map(|a| *a as u32).collect();
        let actions = Tensor::from_vec(actions, (b, 1), d)?;
        let rewards = Tensor::from_slice(&batch.rewards, b, d)?;
        let discounts = Tensor::from_slice(&batch.discounts, b, d)?;

        // The TD target, outside the graph.
        let next_target = self.target.forward(&next_obs)?.detach();
        let next_q = if c.double_q {
            let best = self.q.forward(&next_obs)?.detach().argmax_keepdim(D::Minus1)?;
            next_target.gather(&best, 1)?.squeeze(1)?
        } else {
            next_target.max(D::Minus1)?
        };
        let y = (rewards + (discounts * next_q)?)?.detach();

        let q = self.q.forward(&obs)?.gather(&actions, 1)?.squeeze(1)?;
        let td = (&q - &y)?;
        let weights = Tensor::from_slice(&batch.weights, b, d)?;
        let loss = td_loss(&td, &weights, c.td_error_loss_fn)?;
        let loss_value = loss.to_scalar::<f32>()?;
        let step = self.replay.counters.gradient_steps + 1;
        let non_finite = |quantity, value: f64| Error::NonFiniteGradientStep {
            algorithm: "DQN",
            quantity,
            value,
            gradient_step: step,
        };
        if !loss_value.is_finite() {
            return Err(non_finite("loss", f64::from(loss_value)));
        }
        let grads = loss.backward()?;
        let settings = AdamStep { lr: c.lr, eps: c.adam_epsilon, max_grad_norm: c.grad_clip };
        let stats = self.adam.step(&grads, &settings)?;
        if !stats.grad_norm.is_finite() {
            return Err(non_finite("gradient norm", stats.grad_norm));
        }
        if c.prioritized_replay.is_some() {
            let td: Vec<f32> = td.detach().to_vec1()?;
            self.replay.buffer.update_priorities(&batch.indices, &td);
        }
        self.replay.counters.gradient_steps += 1;
        self.replay.record("learners/td_loss", f64::from(loss_value));
        self.replay.record("learners/q_values", f64::from(q.detach().mean_all()?.to_scalar::<f32>()?));
        self.replay.record("learners/grad_norm", stats.grad_norm);
        Ok(())
    }
}

/// The loss on TD errors `td` `[B]`, weighted by `weights` `[B]` and averaged (see the module
/// docs): Huber with delta 1, or the squared error.
pub fn td_loss(td: &Tensor, weights: &Tensor, kind: TdErrorLossFn) -> candle_core::Result<Tensor> {
    let per_sample = match kind {
        TdErrorLossFn::Huber => {
            // 0.5 q^2 + (|td| - |q|) with q = clip(td, -1, 1): 0.5 td^2 inside, |td| - 0.5
            // outside; written on td itself so the gradient at td = 0 is 0.
            let inner = td.clamp(-1.0f32, 1.0f32)?;
            let linear = (td.abs()? - inner.abs()?)?;
            ((inner.sqr()? * 0.5)? + linear)?
        }
        TdErrorLossFn::Mse => td.sqr()?,
    };
    (per_sample * weights)?.mean_all()
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;

    /// Both losses and their gradients against the formulas: Huber's gradient is the TD error
    /// clipped to [-1, 1], the squared error's twice the TD error, each times w / B.
    #[test]
    fn td_losses_and_their_gradients_follow_the_formulas() {
        let d = Device::Cpu;
        let values = [-3.0f32, -1.0, -0.25, 0.0, 0.5, 0.999, 2.0];
        let w = [1.0f32, 0.5, 2.0, 1.0, 1.0, 0.25, 3.0];
        let b = values.len() as f32;
        let td = Var::from_slice(&values, values.len(), &d).unwrap();
        let weights = Tensor::from_slice(&w, w.len(), &d).unwrap();
        for kind in [TdErrorLossFn::Huber, TdErrorLossFn::Mse] {
            let loss = td_loss(td.as_tensor(), &weights, kind).unwrap();
            let grad: Vec<f32> = loss.backward().unwrap().get(td.as_tensor()).unwrap().to_vec1().unwrap();
            let (mut expected_loss, mut expected_grad) = (0.0f32, Vec::new());
            for (x, w) in values.iter().zip(&w) {
                let (l, g) = match kind {
                    TdErrorLossFn::Huber if x.abs() < 1.0 => (0.5 * x * x, *x),
                    TdErrorLossFn::Huber => (x.abs() - 0.5, x.signum()),
                    TdErrorLossFn::Mse => (x * x, 2.0 * x),
                };
                expected_loss += w * l / b;
                expected_grad.push(w * g / b);
            }
            assert!((loss.to_scalar::<f32>().unwrap() - expected_loss).abs() < 1e-6, "{kind:?} loss");
            for (g, e) in grad.iter().zip(&expected_grad) {
                assert!((g - e).abs() < 1e-6, "{kind:?}: gradient {grad:?}, expected {expected_grad:?}");
            }
        }
    }
}
