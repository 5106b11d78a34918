//! The [`Env`] trait: Gymnasium 1.x `reset` / `step` semantics over flat `f32` observations, the
//! [`EnvContext`] an env is built in, and saving and restoring an env's full state.

use serde_json::Value;

use crate::error::{EnvError, Result};
use crate::rng::NpRandom;
use crate::space::{Action, Space};

/// Extra information returned by `reset` and `step`, like Gymnasium's `info` dict.
/// An empty map does not allocate.
pub type Info = serde_json::Map<String, Value>;

/// Keyword arguments: env constructor arguments and `reset` options, as from a YAML or JSON config.
pub type Kwargs = serde_json::Map<String, Value>;

/// What one `step` returns besides the observation.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The reward for this transition, as Gymnasium returns it (float64).
    pub reward: f64,
    /// The episode reached a terminal state of the MDP: do not bootstrap.
    pub terminated: bool,
    /// The episode was cut short (time limit): bootstrap from the final observation.
    pub truncated: bool,
    /// Extra information.
    pub info: Info,
}

impl StepResult {
    /// `terminated || truncated`: the episode is over and the env must be reset.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// Where an env instance runs: which rollout worker, which sub-env of its vector env, and how many
/// times it was rebuilt.
///
/// Constructors registered with [`EnvSpec::with_context`](crate::EnvSpec::with_context) receive it
/// (RLlib's `EnvContext`), so an env can behave differently per worker or sub-env, for example
/// inject faults on one worker only. [`make`](crate::make) builds with the default: worker 0,
/// sub-env 0, no restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EnvContext {
    /// The rollout worker the env runs in (0 for a local or single worker).
    pub worker_index: u32,
    /// The env's index in its worker's vector env.
    pub vector_index: u32,
    /// How many times this env (or the worker holding it) was rebuilt after a failure.
    pub restarts: u32,
}

/// One full step with an owned observation, as returned by [`Env::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub obs: Vec<f32>,
    /// See [`StepResult::reward`].
    pub reward: f64,
    /// See [`StepResult::terminated`].
    pub terminated: bool,
    /// See [`StepResult::truncated`].
    pub truncated: bool,
    /// See [`StepResult::info`].
    pub info: Info,
}

/// An environment with Gymnasium 1.x semantics.
///
/// Observations are flat `f32` slices of length `observation_space().flat_dim()`. The two
/// required methods write the observation into a caller-owned buffer so that vector envs can
/// step every sub-env straight into one contiguous `[n_envs, obs_dim]` batch;
/// [`Env::reset`] and [`Env::step`] are the owned, Gymnasium-shaped conveniences.
///
/// Seeding follows Gymnasium: `reset(Some(seed))` reseeds the env's generator, `reset(None)`
/// continues with the current one (seeding from OS entropy the first time).
///
/// # Examples
///
/// ```
/// use rl_env::{Action, Env, make};
///
/// let mut env = make("CartPole-v1", &Default::default())?;
/// let (obs, _info) = env.reset(Some(42), None)?;
/// assert_eq!(obs.len(), 4);
/// let step = env.step(Action::Discrete(1))?;
/// assert_eq!(step.reward, 1.0);
/// # Ok::<(), rl_env::EnvError>(())
/// ```
pub trait Env: Send {
    /// The env's id, e.g. `"CartPole-v1"`; used in error messages.
    ///
    /// An env made by [`make`](crate::make) returns the id it was registered under, whatever its own
    /// implementation says, so an env that is only ever made through the registry need not
    /// implement this: the default, for an env used directly, is its Rust type name.
    fn id(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// The space observations come from.
    fn observation_space(&self) -> &Space;

    /// The space actions must lie in; anything else is [`EnvError::InvalidAction`].
    fn action_space(&self) -> &Space;

    /// Starts a new episode and writes its first observation into `obs`.
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info>;

    /// Applies `action` and writes the next observation into `obs`.
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult>;

    /// The env's full state (physics, generator, counters), for exact resume mid-episode: an env
    /// made with the same id and keyword arguments and given this state by
    /// [`Env::restore_state`] continues bit for bit as this one would. `None` when the env cannot
    /// save it (the default).
    ///
    /// The value round-trips through JSON text exactly (floats are stored as their bit patterns;
    /// see [`state`](crate::state)). Constructor arguments are not part of it.
    ///
    /// ```
    /// use rl_env::{Action, Env, Kwargs, make};
    ///
    /// let mut env = make("CartPole-v1", &Kwargs::new())?;
    /// env.reset(Some(0), None)?;
    /// env.step(Action::Discrete(1))?;
    /// let saved = serde_json::to_string(&env.save_state().unwrap()).unwrap();
    /// let next = env.step(Action::Discrete(0))?;
    ///
    /// let mut resumed = make("CartPole-v1", &Kwargs::new())?;
    /// resumed.restore_state(&serde_json::from_str(&saved).unwrap())?;
    /// assert_eq!(resumed.step(Action::Discrete(0))?, next);
    /// # Ok::<(), rl_env::EnvError>(())
    /// ```
    fn save_state(&self) -> Option<Value> {
        None
    }

    /// Restores a state [`Env::save_state`] returned. A malformed state, or one saved by another env
    /// or wrapper, is [`EnvError::InvalidState`]; the default, for envs that cannot save their
    /// state, refuses with that error naming the env.
    fn restore_state(&mut self, state: &Value) -> Result<()> {
        let _ = state;
        Err(EnvError::InvalidState {
            env: self.id().to_string(),
            message: "this env does not support saving and restoring its state".to_string(),
        })
    }

    /// Gymnasium's `reset(seed, options) -> (obs, info)`.
    fn reset(&mut self, seed: Option<u64>, options: Option<&Kwargs>) -> Result<(Vec<f32>, Info)> {
        let mut obs = vec![0.0; self.observation_space().flat_dim()];
        let info = self.reset_into(seed, options, &mut obs)?;
        Ok((obs, info))
    }

    /// Gymnasium's `step(action) -> (obs, reward, terminated, truncated, info)`.
    fn step(&mut self, action: Action<'_>) -> Result<Step> {
        let mut obs = vec![0.0; self.observation_space().flat_dim()];
        let r = self.step_into(action, &mut obs)?;
        Ok(Step { obs, reward: r.reward, terminated: r.terminated, truncated: r.truncated, info: r.info })
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        (**self).reset_into(seed, options, obs)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        (**self).step_into(action, obs)
    }
    fn save_state(&self) -> Option<Value> {
        (**self).save_state()
    }
    fn restore_state(&mut self, state: &Value) -> Result<()> {
        (**self).restore_state(state)
    }
}

/// Gymnasium's `self.np_random` handling for `reset`: reseeds on `Some(seed)`, seeds from OS
/// entropy if the env was never seeded, else keeps the current generator.
pub fn seeded_rng(rng: &mut Option<NpRandom>, seed: Option<u64>) -> &mut NpRandom {
    match seed {
        Some(s) => rng.insert(NpRandom::from_seed(s)),
        None => rng.get_or_insert_with(NpRandom::from_entropy),
    }
}

/// Checks that an observation buffer has the length the env's observation space needs.
pub fn check_obs_len(expected: usize, obs: &[f32]) -> Result<()> {
    if obs.len() == expected {
        Ok(())
    } else {
        Err(EnvError::LengthMismatch { what: "observation buffer", expected, got: obs.len() })
    }
}

/// Gymnasium's `utils.maybe_parse_reset_bounds(options, default_low, default_high)`: reads the
/// optional `low` and `high` reset options, which must be numbers with `low <= high`.
pub fn reset_bounds(env: &str, options: Option<&Kwargs>, default_low: f64, default_high: f64) -> Result<(f64, f64)> {
    let get = |key: &str, default: f64| -> Result<f64> {
        match options.and_then(|o| o.get(key)) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| EnvError::InvalidKwarg {
                env: env.to_string(),
                message: format!("reset option {key:?} must be a number, got {v}"),
            }),
        }
    };
    if let Some(o) = options
        && let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "low" | "high"))
    {
        return Err(EnvError::InvalidKwarg {
            env: env.to_string(),
            message: format!("unknown reset option {k:?}; allowed: \"low\", \"high\""),
        });
    }
    let (low, high) = (get("low", default_low)?, get("high", default_high)?);
    if low > high {
        return Err(EnvError::InvalidKwarg {
            env: env.to_string(),
            message: format!("reset option low ({low}) must not exceed high ({high})"),
        });
    }
    Ok((low, high))
}
