//! Observation and action spaces (Discrete, Box, MultiDiscrete) and the [`Action`] values they hold.
//!
//! Spaces follow Gymnasium: `Discrete(n, start)` holds the integers `start..start + n`, `Box` holds
//! float32 arrays between per-element bounds (infinite bounds allowed), `MultiDiscrete(nvec)` holds
//! integer vectors with `0 <= a[i] < nvec[i]`. Observations are always flattened to `f32`
//! (see [`Space::flat_dim`]); actions travel as a borrowed [`Action`].

use std::fmt;

use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{EnvError, Result};

/// One action, borrowed from the caller's buffer so stepping never allocates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    /// A value of a [`Space::Discrete`]: one of `start..start + n`, so `start + index` for the
    /// `index`-th choice (see [`Space::discrete_value`]). With the default `start` of 0 the two
    /// coincide; `Discrete(3, start=-1)` takes -1, 0 and 1.
    Discrete(i64),
    /// A point of a [`Space::Box`], flattened in row-major order.
    Continuous(&'a [f32]),
    /// A point of a [`Space::MultiDiscrete`].
    MultiDiscrete(&'a [i64]),
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Discrete(a) => write!(f, "{a}"),
            Action::Continuous(a) => write!(f, "{a:?}"),
            Action::MultiDiscrete(a) => write!(f, "{a:?}"),
        }
    }
}

/// An owned action, for sampling and storage. Borrow it with [`OwnedAction::as_action`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OwnedAction {
    /// See [`Action::Discrete`].
    Discrete(i64),
    /// See [`Action::Continuous`].
    Continuous(Vec<f32>),
    /// See [`Action::MultiDiscrete`].
    MultiDiscrete(Vec<i64>),
}

impl OwnedAction {
    /// Borrows this action.
    pub fn as_action(&self) -> Action<'_> {
        match self {
            OwnedAction::Discrete(a) => Action::Discrete(*a),
            OwnedAction::Continuous(a) => Action::Continuous(a),
            OwnedAction::MultiDiscrete(a) => Action::MultiDiscrete(a),
        }
    }
}

/// A float32 box: per-element bounds over a fixed shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    low: Vec<f32>,
    high: Vec<f32>,
    shape: Vec<usize>,
}

impl BoxSpace {
    /// A box with per-element bounds. `low` and `high` are row-major and must hold
    /// `shape.iter().product()` values with `low[i] <= high[i]` and no NaN.
    pub fn new(low: Vec<f32>, high: Vec<f32>, shape: Vec<usize>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if low.len() != n || high.len() != n {
            return Err(EnvError::InvalidSpace(format!(
                "Box of shape {shape:?} needs {n} bounds, got low {} and high {}",
                low.len(),
                high.len()
            )));
        }
        for (i, (l, h)) in low.iter().zip(&high).enumerate() {
            if l.is_nan() || h.is_nan() || l > h {
                return Err(EnvError::InvalidSpace(format!("Box bound {i}: low {l} > high {h}")));
            }
        }
        Ok(Self { low, high, shape })
    }

    /// A box with the same bounds for every element.
    pub fn uniform(low: f32, high: f32, shape: Vec<usize>) -> Result<Self> {
        let n = shape.iter().product();
        Self::new(vec![low; n], vec![high; n], shape)
    }

    /// Lower bounds, row-major.
    pub fn low(&self) -> &[f32] {
        &self.low
    }

    /// Upper bounds, row-major.
    pub fn high(&self) -> &[f32] {
        &self.high
    }

    /// The shape of one point.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements of one point.
    pub fn len(&self) -> usize {
        self.low.len()
    }

    /// True for a box with zero elements.
    pub fn is_empty(&self) -> bool {
        self.low.is_empty()
    }

    /// True when `x` has the right length and every element lies within its bounds (NaN never does).
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.low.len()
            && x.iter().zip(self.low.iter().zip(&self.high)).all(|(v, (l, h))| *v >= *l && *v <= *h)
    }

    /// Gymnasium's sampling rule per element: uniform when bounded on both sides, shifted
    /// exponential when bounded on one side, standard normal when unbounded.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        self.low
            .iter()
            .zip(&self.high)
            .map(|(&l, &h)| {
                let (lb, hb) = (l.is_finite(), h.is_finite());
                let v: f64 = match (lb, hb) {
                    (true, true) => f64::from(l) + (f64::from(h) - f64::from(l)) * rng.random::<f64>(),
                    (true, false) => f64::from(l) + Distribution::<f64>::sample(&Exp1, rng),
                    (false, true) => f64::from(h) - Distribution::<f64>::sample(&Exp1, rng),
                    (false, false) => StandardNormal.sample(rng),
                };
                // Rounding to f32 may step just past a bound; keep the sample inside the space.
                (v as f32).clamp(l, h)
            })
            .collect()
    }
}

/// A space of observations or actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Space {
    /// The integers `start..start + n`.
    Discrete {
        /// Number of choices, at least 1.
        n: u64,
        /// The smallest value.
        start: i64,
    },
    /// float32 arrays within bounds.
    Box(BoxSpace),
    /// Integer vectors with `0 <= a[i] < nvec[i]`.
    MultiDiscrete {
        /// Number of choices per element, each at least 1.
        nvec: Vec<u64>,
    },
}

impl Space {
    /// `Discrete(n)` starting at 0.
    pub fn discrete(n: u64) -> Result<Self> {
        if n == 0 {
            return Err(EnvError::InvalidSpace("Discrete needs n >= 1".into()));
        }
        Ok(Space::Discrete { n, start: 0 })
    }

    /// `Discrete(n, start)`: the integers `start..start + n` (Gymnasium's `Discrete(n, start=...)`).
    pub fn discrete_from(n: u64, start: i64) -> Result<Self> {
        Space::discrete(n)?;
        Ok(Space::Discrete { n, start })
    }

    /// The value a policy's action index `i` stands for: `start + i` for `Discrete`, `i` for
    /// other spaces. Policies emit indices from 0; envs expect values of their space.
    pub fn discrete_value(&self, index: i64) -> i64 {
        match self {
            Space::Discrete { start, .. } => start + index,
            _ => index,
        }
    }

    /// `Box(low, high, shape)` with per-element bounds.
    pub fn boxed(low: Vec<f32>, high: Vec<f32>, shape: Vec<usize>) -> Result<Self> {
        BoxSpace::new(low, high, shape).map(Space::Box)
    }

    /// `MultiDiscrete(nvec)`.
    pub fn multi_discrete(nvec: Vec<u64>) -> Result<Self> {
        if nvec.contains(&0) {
            return Err(EnvError::InvalidSpace(format!("MultiDiscrete needs every n >= 1, got {nvec:?}")));
        }
        Ok(Space::MultiDiscrete { nvec })
    }

    /// Length of one element once flattened to `f32`: 1 for Discrete, the element count for
    /// Box, the vector length for MultiDiscrete.
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete { .. } => 1,
            Space::Box(b) => b.len(),
            Space::MultiDiscrete { nvec } => nvec.len(),
        }
    }

    /// True when `action` is of this space's kind and inside it.
    pub fn contains(&self, action: Action<'_>) -> bool {
        match (self, action) {
            (Space::Discrete { n, start }, Action::Discrete(a)) => a >= *start && ((a - start) as u64) < *n,
            (Space::Box(b), Action::Continuous(x)) => b.contains(x),
            (Space::MultiDiscrete { nvec }, Action::MultiDiscrete(a)) => {
                a.len() == nvec.len() && a.iter().zip(nvec).all(|(v, n)| *v >= 0 && (*v as u64) < *n)
            }
            _ => false,
        }
    }

    /// Returns `Ok(())` when `action` is inside the space, else [`EnvError::InvalidAction`] naming `env`.
    pub fn check(&self, env: &str, action: Action<'_>) -> Result<()> {
        if self.contains(action) {
            Ok(())
        } else {
            Err(EnvError::InvalidAction { env: env.to_string(), action: action.to_string(), space: self.clone() })
        }
    }

    /// A random element of the space.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> OwnedAction {
        match self {
            Space::Discrete { n, start } => OwnedAction::Discrete(start + rng.random_range(0..*n) as i64),
            Space::Box(b) => OwnedAction::Continuous(b.sample(rng)),
            Space::MultiDiscrete { nvec } => {
                OwnedAction::MultiDiscrete(nvec.iter().map(|n| rng.random_range(0..*n) as i64).collect())
            }
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete { n, start: 0 } => write!(f, "Discrete({n})"),
            Space::Discrete { n, start } => write!(f, "Discrete({n}, start={start})"),
            Space::Box(b) => {
                let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
                let shape =
                    if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
                let same = |v: &[f32]| v.windows(2).all(|w| w[0] == w[1]);
                if same(&b.low) && same(&b.high) && !b.low.is_empty() {
                    write!(f, "Box({:?}, {:?}, {shape}, float32)", b.low[0], b.high[0])
                } else {
                    write!(f, "Box({:?}, {:?}, {shape}, float32)", b.low, b.high)
                }
            }
            Space::MultiDiscrete { nvec } => write!(f, "MultiDiscrete({nvec:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn discrete_contains_respects_start() {
        let s = Space::Discrete { n: 3, start: -1 };
        assert!(s.contains(Action::Discrete(-1)));
        assert!(s.contains(Action::Discrete(1)));
        assert!(!s.contains(Action::Discrete(2)));
        assert!(!s.contains(Action::Discrete(-2)));
        assert!(!s.contains(Action::Continuous(&[0.0])));
        assert_eq!(Space::discrete_from(3, -1).unwrap(), s);
        assert!(Space::discrete_from(0, 5).is_err());
        assert_eq!((s.discrete_value(0), s.discrete_value(2)), (-1, 1));
        assert_eq!(Space::discrete(4).unwrap().discrete_value(3), 3);
    }

    #[test]
    fn box_rejects_nan_and_out_of_bounds() {
        let s = Space::boxed(vec![-2.0], vec![2.0], vec![1]).unwrap();
        assert!(s.contains(Action::Continuous(&[2.0])));
        assert!(!s.contains(Action::Continuous(&[2.0001])));
        assert!(!s.contains(Action::Continuous(&[f32::NAN])));
        assert!(!s.contains(Action::Continuous(&[0.0, 0.0])));
    }

    #[test]
    fn check_names_env_action_and_space() {
        let s = Space::discrete(2).unwrap();
        let err = s.check("CartPole-v1", Action::Discrete(5)).unwrap_err().to_string();
        assert_eq!(err, "CartPole-v1: action 5 is not in the action space Discrete(2)");
    }

    #[test]
    fn invalid_spaces_are_errors() {
        assert!(Space::discrete(0).is_err());
        assert!(Space::boxed(vec![1.0], vec![0.0], vec![1]).is_err());
        assert!(Space::boxed(vec![0.0], vec![1.0], vec![2]).is_err());
        assert!(Space::multi_discrete(vec![2, 0]).is_err());
    }

    #[test]
    fn samples_lie_in_the_space() {
        let mut rng = StdRng::seed_from_u64(3);
        let spaces = [
            Space::Discrete { n: 4, start: 2 },
            Space::boxed(
                vec![-1.0, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY],
                vec![1.0, 0.0, f32::INFINITY, f32::INFINITY],
                vec![2, 2],
            )
            .unwrap(),
            Space::multi_discrete(vec![3, 1, 5]).unwrap(),
        ];
        for s in &spaces {
            for _ in 0..1000 {
                let a = s.sample(&mut rng);
                assert!(s.contains(a.as_action()), "{s}: {a:?}");
            }
        }
    }

    #[test]
    fn display_matches_gymnasium_style() {
        assert_eq!(Space::discrete(2).unwrap().to_string(), "Discrete(2)");
        assert_eq!(Space::boxed(vec![-2.0], vec![2.0], vec![1]).unwrap().to_string(), "Box(-2.0, 2.0, (1,), float32)");
    }
}
