//! The policy network config, with RLlib's key names (`fcnet_hiddens`, `fcnet_activation`, `vf_share_layers`).

use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};
use crate::fastmath::tanh_f32;

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Hyperbolic tangent (CleanRL's and SB3's default for PPO).
    Tanh,
    /// Rectified linear unit.
    Relu,
}

impl Activation {
    /// Applies the activation to one value. Tanh is [`tanh_f32`], the same function the candle
    /// model uses on the CPU, within 2e-7 of `f32::tanh`.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => tanh_f32(x),
            Activation::Relu => x.max(0.0),
        }
    }
}

/// The actor-critic network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Hidden layer sizes of the MLP trunk(s).
    pub fcnet_hiddens: Vec<usize>,
    /// Hidden-layer activation.
    pub fcnet_activation: Activation,
    /// One trunk for policy and value (true) or one trunk each (false).
    pub vf_share_layers: bool,
}

impl Default for PolicyConfig {
    /// 64-64 tanh with separate trunks (CleanRL `ppo.py`).
    fn default() -> Self {
        Self { fcnet_hiddens: vec![64, 64], fcnet_activation: Activation::Tanh, vf_share_layers: false }
    }
}

impl PolicyConfig {
    /// Checks the sizes: at least one hidden layer, none of size 0.
    pub fn validate(&self) -> Result<()> {
        if self.fcnet_hiddens.is_empty() {
            return Err(PolicyError::Config("fcnet_hiddens needs at least one layer".into()));
        }
        if let Some(i) = self.fcnet_hiddens.iter().position(|h| *h == 0) {
            return Err(PolicyError::Config(format!("fcnet_hiddens[{i}] is 0; every layer needs at least 1 unit")));
        }
        Ok(())
    }
}
