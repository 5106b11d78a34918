//! The env registry: make an env by id with keyword arguments, list ids, register your own.
//!
//! A process-wide registry starts with the built-in classic-control envs. User crates add their
//! own constructors with [`register`]; configs then name them by id exactly like built-ins.
//!
//! # Examples
//!
//! ```
//! use rl_env::{EnvSpec, Kwargs, make, register};
//! use rl_env::envs::CartPole;
//!
//! // A user env: here CartPole under another id, with its own default time limit.
//! register(EnvSpec::new("MyCartPole-v0", |kw| Ok(Box::new(CartPole::from_kwargs(kw)?))).max_episode_steps(200))?;
//! let env = make("MyCartPole-v0", &Kwargs::new())?;
//! assert_eq!(env.observation_space().flat_dim(), 4);
//! # Ok::<(), rl_env::EnvError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;

use crate::env::{Env, Kwargs};
use crate::error::{EnvError, Result};
use crate::wrappers::TimeLimit;

/// Builds an env from its keyword arguments (without `max_episode_steps`, which the registry handles).
pub type Constructor = Arc<dyn Fn(&Kwargs) -> Result<Box<dyn Env>> + Send + Sync>;

/// How to make one env id: its constructor and the wrappers `make` adds.
#[derive(Clone)]
pub struct EnvSpec {
    id: String,
    constructor: Constructor,
    max_episode_steps: Option<u64>,
    reward_threshold: Option<f64>,
}

impl std::fmt::Debug for EnvSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSpec")
            .field("id", &self.id)
            .field("max_episode_steps", &self.max_episode_steps)
            .field("reward_threshold", &self.reward_threshold)
            .finish_non_exhaustive()
    }
}

impl EnvSpec {
    /// A spec with no time limit. The constructor receives the user's keyword arguments and must
    /// reject unknown ones (see [`KwargReader`]). It should set the env's [`Env::id`] to `id`.
    pub fn new<F>(id: &str, constructor: F) -> Self
    where
        F: Fn(&Kwargs) -> Result<Box<dyn Env>> + Send + Sync + 'static,
    {
        Self { id: id.to_string(), constructor: Arc::new(constructor), max_episode_steps: None, reward_threshold: None }
    }

    /// Wraps made envs in [`TimeLimit`] with this many steps (Gymnasium's `max_episode_steps`).
    pub fn max_episode_steps(mut self, steps: u64) -> Self {
        self.max_episode_steps = Some(steps);
        self
    }

    /// The return at which the env counts as solved (informational, as in Gymnasium).
    pub fn reward_threshold(mut self, threshold: f64) -> Self {
        self.reward_threshold = Some(threshold);
        self
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The default time limit, if any.
    pub fn default_max_episode_steps(&self) -> Option<u64> {
        self.max_episode_steps
    }

    /// The solved threshold, if any.
    pub fn default_reward_threshold(&self) -> Option<f64> {
        self.reward_threshold
    }
}

/// A set of env specs by id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    specs: BTreeMap<String, EnvSpec>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry holding the built-in envs.
    pub fn with_builtins() -> Self {
        let mut r = Self::empty();
        crate::envs::register_builtins(&mut r).expect("built-in ids are unique");
        r
    }

    /// Adds a spec; an id that is already present is an error.
    pub fn register(&mut self, spec: EnvSpec) -> Result<()> {
        if self.specs.contains_key(&spec.id) {
            return Err(EnvError::DuplicateId(spec.id));
        }
        self.specs.insert(spec.id.clone(), spec);
        Ok(())
    }

    /// The spec for `id`, or [`EnvError::UnknownEnv`] naming the closest ids.
    pub fn spec(&self, id: &str) -> Result<&EnvSpec> {
        self.specs.get(id).ok_or_else(|| EnvError::UnknownEnv { id: id.to_string(), suggestions: self.closest(id) })
    }

    /// Every registered id, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.specs.keys().cloned().collect()
    }

    /// Makes the env `id`. The keyword `max_episode_steps` overrides the spec's time limit
    /// (`null` removes it); every other keyword goes to the env's constructor.
    pub fn make(&self, id: &str, kwargs: &Kwargs) -> Result<Box<dyn Env>> {
        let spec = self.spec(id)?;
        let mut kwargs = kwargs.clone();
        let limit = match kwargs.remove("max_episode_steps") {
            None => spec.max_episode_steps,
            Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| EnvError::InvalidKwarg {
                env: id.to_string(),
                message: format!("max_episode_steps must be a positive integer or null, got {v}"),
            })?),
        };
        let env = (spec.constructor)(&kwargs)?;
        Ok(match limit {
            Some(n) => Box::new(TimeLimit::new(env, n)),
            None => env,
        })
    }

    /// Up to three registered ids closest to `id` by edit distance (case-insensitive).
    fn closest(&self, id: &str) -> Vec<String> {
        let target = id.to_lowercase();
        let mut scored: Vec<(usize, &String)> =
            self.specs.keys().map(|k| (strsim::levenshtein(&target, &k.to_lowercase()), k)).collect();
        scored.sort();
        let cutoff = (id.chars().count() / 2).max(3);
        scored.into_iter().filter(|(d, _)| *d <= cutoff).take(3).map(|(_, k)| k.clone()).collect()
    }
}

fn global() -> &'static RwLock<Registry> {
    static GLOBAL: OnceLock<RwLock<Registry>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Registry::with_builtins()))
}

/// Registers `spec` in the process-wide registry used by [`make`].
pub fn register(spec: EnvSpec) -> Result<()> {
    global().write().unwrap_or_else(|e| e.into_inner()).register(spec)
}

/// Makes an env from the process-wide registry; see [`Registry::make`].
pub fn make(id: &str, kwargs: &Kwargs) -> Result<Box<dyn Env>> {
    global().read().unwrap_or_else(|e| e.into_inner()).make(id, kwargs)
}

/// The ids in the process-wide registry, sorted.
pub fn ids() -> Vec<String> {
    global().read().unwrap_or_else(|e| e.into_inner()).ids()
}

/// A copy of the spec for `id` from the process-wide registry.
pub fn spec(id: &str) -> Result<EnvSpec> {
    global().read().unwrap_or_else(|e| e.into_inner()).spec(id).cloned()
}

/// Reads typed keyword arguments for a constructor and rejects the ones nobody read.
///
/// ```
/// use rl_env::{KwargReader, Kwargs};
///
/// let kwargs: Kwargs = serde_json::from_str(r#"{"g": 9.81}"#).unwrap();
/// let mut kw = KwargReader::new("Pendulum-v1", &kwargs);
/// assert_eq!(kw.f64("g", 10.0)?, 9.81);
/// kw.finish()?;
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug)]
pub struct KwargReader<'a> {
    env: &'a str,
    kwargs: &'a Kwargs,
    known: Vec<&'static str>,
}

impl<'a> KwargReader<'a> {
    /// Starts reading `kwargs` for the env `env`.
    pub fn new(env: &'a str, kwargs: &'a Kwargs) -> Self {
        Self { env, kwargs, known: Vec::new() }
    }

    fn error(&self, message: String) -> EnvError {
        EnvError::InvalidKwarg { env: self.env.to_string(), message }
    }

    /// A number, or `default` when absent.
    pub fn f64(&mut self, key: &'static str, default: f64) -> Result<f64> {
        self.known.push(key);
        match self.kwargs.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.error(format!("{key} must be a number, got {v}"))),
        }
    }

    /// A boolean, or `default` when absent.
    pub fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        self.known.push(key);
        match self.kwargs.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.error(format!("{key} must be true or false, got {v}"))),
        }
    }

    /// Fails on any key that was not read, listing the accepted ones.
    pub fn finish(self) -> Result<()> {
        if let Some(k) = self.kwargs.keys().find(|k| !self.known.contains(&k.as_str())) {
            let allowed = if self.known.is_empty() {
                "it takes no keyword arguments".to_string()
            } else {
                format!("allowed: {}", self.known.join(", "))
            };
            return Err(self.error(format!("unknown keyword argument {k:?}; {allowed} (and max_episode_steps)")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_suggests_close_ones() {
        let err = Registry::with_builtins().make("CartPole-v2", &Kwargs::new()).err().unwrap();
        match &err {
            EnvError::UnknownEnv { suggestions, .. } => assert_eq!(suggestions[0], "CartPole-v1"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("did you mean CartPole-v1"), "{err}");
    }

    #[test]
    fn far_ids_get_no_suggestion() {
        let err = Registry::with_builtins().spec("Humanoid-v4").unwrap_err();
        assert_eq!(err.to_string(), "unknown env id \"Humanoid-v4\"");
    }

    #[test]
    fn lists_builtin_ids() {
        let ids = Registry::with_builtins().ids();
        for id in ["Acrobot-v1", "CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"] {
            assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
        }
    }

    #[test]
    fn duplicate_registration_is_an_error() {
        let mut r = Registry::with_builtins();
        let spec = r.spec("CartPole-v1").unwrap().clone();
        assert!(matches!(r.register(spec), Err(EnvError::DuplicateId(_))));
    }

    #[test]
    fn max_episode_steps_kwarg_overrides_and_validates() {
        let r = Registry::with_builtins();
        let kw: Kwargs = serde_json::from_str(r#"{"max_episode_steps": 3}"#).unwrap();
        let mut env = r.make("MountainCar-v0", &kw).unwrap();
        env.reset(Some(0), None).unwrap();
        let dones: Vec<bool> = (0..3).map(|_| env.step(crate::Action::Discrete(1)).unwrap().truncated).collect();
        assert_eq!(dones, [false, false, true]);
        let bad: Kwargs = serde_json::from_str(r#"{"max_episode_steps": -1}"#).unwrap();
        assert!(r.make("MountainCar-v0", &bad).is_err());
    }

    #[test]
    fn unknown_kwarg_lists_allowed_ones() {
        let kw: Kwargs = serde_json::from_str(r#"{"gravity": 9.8}"#).unwrap();
        let err = Registry::with_builtins().make("Pendulum-v1", &kw).err().unwrap().to_string();
        assert!(err.contains("\"gravity\"") && err.contains("allowed: g"), "{err}");
    }
}
