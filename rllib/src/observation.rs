//! Env observations to policy inputs: Box observations as they are, Discrete and MultiDiscrete
//! ones one-hot encoded (as SB3's `preprocess_obs` does), shared by rollout workers, the learner
//! and evaluation.
//!
//! A Discrete observation is one number, the state's value `start + index`; fed raw, a network
//! would read state 7 as "more" than state 6. One-hot, each state gets its own input. Trajectory
//! batches keep the raw observation (one number); the learner encodes when it trains.

use rl_env::{BoxSpace, Space};
use rl_policies::{ActorCritic, PolicyConfig};

use crate::error::{Error, Result};

/// The actor-critic for observations from `obs_space` and actions in `act_space`, its inputs
/// sized for the encoded observations, and the encoder that feeds it. Rollout workers, the
/// learner and evaluation all build their policy here, so they agree on its inputs.
pub fn actor_critic(
    model: &PolicyConfig,
    obs_space: &Space,
    act_space: &Space,
    seed: u64,
) -> Result<(ActorCritic, ObservationEncoder)> {
    let encoder = ObservationEncoder::new(obs_space);
    let policy = ActorCritic::new(model, &encoder.policy_space(obs_space), act_space, seed)?;
    Ok((policy, encoder))
}

/// How observations of one space become policy inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationEncoder {
    /// Box observations, passed through.
    Identity {
        /// Floats per observation.
        dim: usize,
    },
    /// Discrete or MultiDiscrete observations: one one-hot block per element.
    OneHot {
        /// Choices per element (`[n]` for Discrete).
        nvec: Vec<u64>,
        /// The value of each element's first choice (Discrete's `start`; 0 for MultiDiscrete).
        start: i64,
    },
}

impl ObservationEncoder {
    /// The encoder for observations from `space`.
    pub fn new(space: &Space) -> Self {
        match space {
            Space::Box(b) => Self::Identity { dim: b.len() },
            Space::Discrete { n, start } => Self::OneHot { nvec: vec![*n], start: *start },
            Space::MultiDiscrete { nvec } => Self::OneHot { nvec: nvec.clone(), start: 0 },
        }
    }

    /// Floats per raw observation.
    pub fn raw_dim(&self) -> usize {
        match self {
            Self::Identity { dim } => *dim,
            Self::OneHot { nvec, .. } => nvec.len(),
        }
    }

    /// Floats per encoded observation.
    pub fn dim(&self) -> usize {
        match self {
            Self::Identity { dim } => *dim,
            Self::OneHot { nvec, .. } => nvec.iter().sum::<u64>() as usize,
        }
    }

    /// The space the policy sees: `space` itself for Box, else `Box([0, 1]^dim)`.
    pub fn policy_space(&self, space: &Space) -> Space {
        match self {
            Self::Identity { .. } => space.clone(),
            Self::OneHot { .. } => {
                let d = self.dim();
                Space::Box(BoxSpace::new(vec![0.0; d], vec![1.0; d], vec![d]).expect("bounds of the right length"))
            }
        }
    }

    /// Encodes `raw` (`[rows, raw_dim]`) into `out` (replacing what it held), as
    /// [`ObservationEncoder::encode`] does.
    pub fn encode_into(&self, raw: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if matches!(self, Self::Identity { .. }) {
            out.clear();
            out.extend_from_slice(raw);
            return Ok(());
        }
        let mut buf = std::mem::take(out);
        self.encode(raw, &mut buf)?;
        *out = buf;
        Ok(())
    }

    /// Encodes `raw` (`[rows, raw_dim]`) into policy inputs (`[rows, dim]`): `raw` itself for
    /// Box observations, else one-hot rows written into `buf`. A value outside the space is an
    /// error naming it.
    pub fn encode<'a>(&self, raw: &'a [f32], buf: &'a mut Vec<f32>) -> Result<&'a [f32]> {
        let Self::OneHot { nvec, start } = self else { return Ok(raw) };
        let rows = raw.len() / nvec.len().max(1);
        buf.clear();
        buf.resize(rows * self.dim(), 0.0);
        let mut out = buf.iter_mut();
        for (i, &v) in raw.iter().enumerate() {
            let n = nvec[i % nvec.len()];
            let index = v as i64 - start;
            if v.fract() != 0.0 || !(0..n as i64).contains(&index) {
                return Err(Error::ObservationOutsideSpace {
                    value: v,
                    element: i % nvec.len(),
                    choices: n,
                    start: *start,
                });
            }
            for (k, slot) in out.by_ref().take(n as usize).enumerate() {
                *slot = if k as i64 == index { 1.0 } else { 0.0 };
            }
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_observations_become_one_hot_rows() {
        let space = Space::Discrete { n: 3, start: -1 };
        let enc = ObservationEncoder::new(&space);
        assert_eq!((enc.raw_dim(), enc.dim()), (1, 3));
        let mut buf = Vec::new();
        assert_eq!(enc.encode(&[-1.0, 1.0, 0.0], &mut buf).unwrap(), [1., 0., 0., 0., 0., 1., 0., 1., 0.]);
        let err = enc.encode(&[2.0], &mut buf).unwrap_err().to_string();
        assert!(err.starts_with("observation value 2 of element 0 is not one of the space's 3 choices from -1: a bug"));
        assert!(enc.encode(&[0.5], &mut buf).is_err());
        assert_eq!(enc.policy_space(&space).flat_dim(), 3);
    }

    #[test]
    fn multi_discrete_observations_concatenate_one_hot_blocks() {
        let enc = ObservationEncoder::new(&Space::MultiDiscrete { nvec: vec![2, 3] });
        let mut buf = Vec::new();
        assert_eq!(enc.encode(&[1.0, 2.0, 0.0, 0.0], &mut buf).unwrap(), [0., 1., 0., 0., 1., 1., 0., 1., 0., 0.]);
    }

    #[test]
    fn box_observations_pass_through_without_a_copy() {
        let space = Space::Box(BoxSpace::new(vec![-1.0; 2], vec![1.0; 2], vec![2]).unwrap());
        let enc = ObservationEncoder::new(&space);
        let raw = [0.25f32, -0.5];
        let mut buf = Vec::new();
        assert!(std::ptr::eq(enc.encode(&raw, &mut buf).unwrap(), &raw[..]));
        assert_eq!(enc.policy_space(&space), space);
    }
}
