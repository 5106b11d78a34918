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
    /// Initial value of the state-independent log standard deviation of Gaussian policies (Box
    /// actions), SB3's `log_std_init`: 0.0 (std 1) as in SB3 and CleanRL.
    pub log_std_init: f64,
}

impl Default for PolicyConfig {
    /// 64-64 tanh with separate trunks (CleanRL `ppo.py`).
    fn default() -> Self {
        Self {
            fcnet_hiddens: vec![64, 64],
            fcnet_activation: Activation::Tanh,
            vf_share_layers: false,
            log_std_init: 0.0,
        }
    }
}

impl PolicyConfig {
    /// Checks the sizes (at least one hidden layer, none of size 0) and that `log_std_init` is
    /// a finite number.
    pub fn validate(&self) -> Result<()> {
        if !self.log_std_init.is_finite() {
            return Err(PolicyError::Config(format!(
                "log_std_init must be a finite number, got {}",
                self.log_std_init
            )));
        }
        if self.fcnet_hiddens.is_empty() {
            return Err(PolicyError::Config("fcnet_hiddens needs at least one layer".into()));
        }
        if let Some(i) = self.fcnet_hiddens.iter().position(|h| *h == 0) {
            return Err(PolicyError::Config(format!("fcnet_hiddens[{i}] is 0; every layer needs at least 1 unit")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<PolicyConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn missing_keys_take_the_defaults() {
        assert_eq!(parse("{}").unwrap(), PolicyConfig::default());
        let c = parse(r#"{"fcnet_hiddens": [32], "fcnet_activation": "relu", "vf_share_layers": true}"#).unwrap();
        assert_eq!(
            c,
            PolicyConfig {
                fcnet_hiddens: vec![32],
                fcnet_activation: Activation::Relu,
                vf_share_layers: true,
                log_std_init: 0.0
            }
        );
    }

    #[test]
    fn unknown_keys_and_activations_are_errors() {
        let err = parse(r#"{"fcnet_hidden": [32]}"#).unwrap_err().to_string();
        assert!(err.starts_with("unknown field `fcnet_hidden`, expected one of `fcnet_hiddens`"), "{err}");
        let err = parse(r#"{"fcnet_activation": "swish"}"#).unwrap_err().to_string();
        assert!(err.starts_with("unknown variant `swish`, expected `tanh` or `relu`"), "{err}");
    }

    #[test]
    fn log_std_init_sets_the_initial_std_of_gaussian_policies() {
        let config = PolicyConfig { log_std_init: -0.5, ..Default::default() };
        let obs = rl_env::Space::Box(rl_env::BoxSpace::new(vec![-1.0; 3], vec![1.0; 3], vec![3]).unwrap());
        let act = rl_env::Space::Box(rl_env::BoxSpace::new(vec![-2.0; 2], vec![2.0; 2], vec![2]).unwrap());
        let policy = crate::ActorCritic::new(&config, &obs, &act, 0).unwrap();
        assert_eq!(policy.log_std().unwrap().as_tensor().to_vec1::<f32>().unwrap(), [-0.5, -0.5]);
        let err = PolicyConfig { log_std_init: f64::NAN, ..Default::default() }.validate().unwrap_err().to_string();
        assert_eq!(err, "invalid model config: log_std_init must be a finite number, got NaN");
    }

    #[test]
    fn validation_names_the_bad_size() {
        let empty = PolicyConfig { fcnet_hiddens: vec![], ..Default::default() };
        assert_eq!(
            empty.validate().unwrap_err().to_string(),
            "invalid model config: fcnet_hiddens needs at least one layer"
        );
        let zero = PolicyConfig { fcnet_hiddens: vec![64, 0], ..Default::default() };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "invalid model config: fcnet_hiddens[1] is 0; every layer needs at least 1 unit"
        );
        assert!(PolicyConfig::default().validate().is_ok());
    }
}
