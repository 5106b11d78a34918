//! The env registry: make an env by id with keyword arguments, list ids, register your own.
//!
//! A process-wide registry starts with the built-in classic-control envs. User crates add their
//! own constructors with [`register`]; configs then name them by id exactly like built-ins.
//!
//! The registry is the one place an env's id is written: an env made by [`make`] reports the id it
//! was registered under from [`Env::id`], and every error it returns names that id, whatever the
//! env's own code says.
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

use crate::env::{Env, EnvContext, Info, Kwargs, StepResult};
use crate::error::{EnvError, Result};
use crate::space::{Action, Space};
use crate::wrappers::TimeLimit;

/// Builds an env from its keyword arguments (without `max_episode_steps`, which the registry handles).
pub type Constructor = Arc<dyn Fn(&Kwargs) -> Result<Box<dyn Env>> + Send + Sync>;

/// What a spec stores: a constructor that also sees the [`EnvContext`] (one registered with
/// [`EnvSpec::new`] ignores it).
type ContextConstructor = Arc<dyn Fn(&Kwargs, &EnvContext) -> Result<Box<dyn Env>> + Send + Sync>;

/// How to make one env id: its constructor and the wrappers `make` adds.
#[derive(Clone)]
pub struct EnvSpec {
    id: String,
    constructor: ContextConstructor,
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
    /// reject unknown ones (see [`KwargReader`]). Envs made from the spec report `id` from
    /// [`Env::id`] and in their errors, so the env need not repeat it.
    pub fn new<F>(id: &str, constructor: F) -> Self
    where
        F: Fn(&Kwargs) -> Result<Box<dyn Env>> + Send + Sync + 'static,
    {
        Self::with_context(id, move |kwargs: &Kwargs, _: &EnvContext| constructor(kwargs))
    }

    /// Like [`EnvSpec::new`], for a constructor that also receives the [`EnvContext`] the env is
    /// made in (which worker, which sub-env, how many restarts), as RLlib's env creators do.
    ///
    /// ```
    /// use rl_env::envs::CartPole;
    /// use rl_env::{EnvContext, EnvSpec, Kwargs, Registry};
    ///
    /// let mut registry = Registry::empty();
    /// registry.register(EnvSpec::with_context("PerWorker-v0", |kw: &Kwargs, ctx: &EnvContext| {
    ///     // Only worker 0 may build this env, say because it holds the one license.
    ///     if ctx.worker_index != 0 {
    ///         return Err(rl_env::EnvError::custom("PerWorker-v0", format!("worker {} has no license", ctx.worker_index)));
    ///     }
    ///     Ok(Box::new(CartPole::from_kwargs(kw)?))
    /// }))?;
    /// assert!(registry.make("PerWorker-v0", &Kwargs::new()).is_ok());
    /// let ctx = EnvContext { worker_index: 2, ..EnvContext::default() };
    /// let err = registry.make_with_context("PerWorker-v0", &Kwargs::new(), &ctx).err().unwrap();
    /// assert_eq!(err.to_string(), "PerWorker-v0: worker 2 has no license");
    /// # Ok::<(), rl_env::EnvError>(())
    /// ```
    pub fn with_context<F>(id: &str, constructor: F) -> Self
    where
        F: Fn(&Kwargs, &EnvContext) -> Result<Box<dyn Env>> + Send + Sync + 'static,
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
    /// (`null` removes it); every other keyword goes to the env's constructor. The env is made in
    /// the default [`EnvContext`] (worker 0, sub-env 0, no restarts).
    ///
    /// Ids starting with `gym:` are Gymnasium envs run by Python (`gym:HalfCheetah-v4`), made
    /// through the bridge of the `gym` feature whatever the registry holds; without the feature
    /// they are an error saying how to build it.
    pub fn make(&self, id: &str, kwargs: &Kwargs) -> Result<Box<dyn Env>> {
        self.make_with_context(id, kwargs, &EnvContext::default())
    }

    /// [`Registry::make`] in the context `ctx`, which constructors registered with
    /// [`EnvSpec::with_context`] receive.
    pub fn make_with_context(&self, id: &str, kwargs: &Kwargs, ctx: &EnvContext) -> Result<Box<dyn Env>> {
        if id.starts_with(GYM_PREFIX) {
            return make_gym(id, kwargs, ctx);
        }
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
        let env = (spec.constructor)(&kwargs, ctx).map_err(|e| e.for_env(&spec.id))?;
        Ok(match limit {
            Some(n) => Box::new(Registered { id: spec.id.clone(), inner: TimeLimit::new(env, n) }),
            None => Box::new(Registered { id: spec.id.clone(), inner: env }),
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

/// Ids that name a Gymnasium env through the bridge (see the `gym` feature); Gymnasium applies
/// its own time limit, so the registry adds none.
pub(crate) const GYM_PREFIX: &str = "gym:";

/// True for ids that name a Gymnasium env through the bridge (`gym:HalfCheetah-v4`): they have
/// no [`EnvSpec`] in the registry, and [`make`] hands them to the bridge (an error naming the
/// feature when the build has none).
pub fn is_bridged(id: &str) -> bool {
    id.starts_with(GYM_PREFIX)
}

#[cfg(feature = "gym")]
fn make_gym(id: &str, kwargs: &Kwargs, ctx: &EnvContext) -> Result<Box<dyn Env>> {
    crate::gym::make(id, kwargs, ctx)
}

#[cfg(not(feature = "gym"))]
fn make_gym(id: &str, _kwargs: &Kwargs, _ctx: &EnvContext) -> Result<Box<dyn Env>> {
    Err(EnvError::custom(
        id,
        "this binary was built without the Gymnasium bridge; rebuild it with the `gym` feature \
         (`cargo build --release -p rl-cli --features gym` for the `rl` command, `--features \
         rl-env/gym` in a crate of your own) and install the Python packages with \
         `pip install -r requirements-gym.txt`",
    ))
}

/// What [`Registry::make`] returns: the env under its registered id. Only the id and the env names
/// in errors change; everything else is the inner env's.
struct Registered<E> {
    id: String,
    inner: E,
}

impl<E: Env> Env for Registered<E> {
    fn id(&self) -> &str {
        &self.id
    }
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        self.inner.reset_into(seed, options, obs).map_err(|e| e.for_env(&self.id))
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        self.inner.step_into(action, obs).map_err(|e| e.for_env(&self.id))
    }
    fn save_state(&self) -> Option<Value> {
        self.inner.save_state()
    }
    fn restore_state(&mut self, state: &Value) -> Result<()> {
        self.inner.restore_state(state).map_err(|e| e.for_env(&self.id))
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

/// Makes an env from the process-wide registry in the context `ctx`; see
/// [`Registry::make_with_context`].
pub fn make_with_context(id: &str, kwargs: &Kwargs, ctx: &EnvContext) -> Result<Box<dyn Env>> {
    global().read().unwrap_or_else(|e| e.into_inner()).make_with_context(id, kwargs, ctx)
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
/// Each reader takes the key and the value to use when the key is absent, and fails with
/// [`EnvError::InvalidKwarg`] naming the env, the key, what it must be and what was given. Numbers
/// are strict: an integer reader rejects `8.0` and `8.5` alike, a float reader accepts integers.
///
/// ```
/// use rl_env::{KwargReader, Kwargs};
///
/// let kwargs: Kwargs = serde_json::from_str(r#"{"g": 9.81, "size": 8, "map": "maze", "goal": [3, -2]}"#).unwrap();
/// let mut kw = KwargReader::new("Maze-v0", &kwargs);
/// assert_eq!(kw.f64("g", 10.0)?, 9.81);
/// assert_eq!(kw.u64("size", 5)?, 8);
/// assert_eq!(kw.string("map", "open")?, "maze");
/// assert_eq!(kw.i64_list("goal", &[0, 0])?, [3, -2]);
/// assert_eq!(kw.bool("slippery", false)?, false);
/// kw.finish()?;
///
/// let bad: Kwargs = serde_json::from_str(r#"{"size": -1}"#).unwrap();
/// let err = KwargReader::new("Maze-v0", &bad).u64("size", 5).unwrap_err();
/// assert_eq!(err.to_string(), "Maze-v0: size must be a non-negative integer, got -1");
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

    /// An [`EnvError::InvalidKwarg`] saying that `key` must be `expected` and was `found`, for the
    /// checks a constructor makes itself (`kw.invalid("size", "at least 3", size)`).
    pub fn invalid(&self, key: &str, expected: &str, found: impl std::fmt::Display) -> EnvError {
        EnvError::InvalidKwarg { env: self.env.to_string(), message: format!("{key} must be {expected}, got {found}") }
    }

    /// Marks `key` as read and returns its value, if given.
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.kwargs.get(key)
    }

    /// Reads `key` with `parse`, which returns `None` for a value that is not `expected`.
    fn read<T>(
        &mut self,
        key: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&Value) -> Option<T>,
    ) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse(v).ok_or_else(|| self.invalid(key, expected, v)),
        }
    }

    /// A number, or `default` when absent.
    pub fn f64(&mut self, key: &'static str, default: f64) -> Result<f64> {
        self.read(key, default, "a number", Value::as_f64)
    }

    /// A boolean, or `default` when absent.
    pub fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        self.read(key, default, "true or false", Value::as_bool)
    }

    /// An integer that fits an `i64`, or `default` when absent.
    pub fn i64(&mut self, key: &'static str, default: i64) -> Result<i64> {
        let expected = format!("an integer from {} to {}", i64::MIN, i64::MAX);
        self.read(key, default, &expected, Value::as_i64)
    }

    /// A non-negative integer that fits a `u64`, or `default` when absent.
    pub fn u64(&mut self, key: &'static str, default: u64) -> Result<u64> {
        let expected = if self.kwargs.get(key).is_some_and(|v| v.as_i64().is_some()) {
            // An integer that is not a u64 is negative.
            "a non-negative integer".to_string()
        } else {
            format!("an integer from 0 to {}", u64::MAX)
        };
        self.read(key, default, &expected, Value::as_u64)
    }

    /// A string, or `default` when absent.
    pub fn string(&mut self, key: &'static str, default: &str) -> Result<String> {
        self.read(key, default.to_string(), "a string", |v| v.as_str().map(str::to_string))
    }

    /// A list of numbers, or `default` when absent.
    pub fn f64_list(&mut self, key: &'static str, default: &[f64]) -> Result<Vec<f64>> {
        self.list(key, default, "a list of numbers", Value::as_f64)
    }

    /// A list of integers that fit an `i64`, or `default` when absent.
    pub fn i64_list(&mut self, key: &'static str, default: &[i64]) -> Result<Vec<i64>> {
        self.list(key, default, "a list of integers", Value::as_i64)
    }

    /// A list of strings, or `default` when absent.
    pub fn string_list(&mut self, key: &'static str, default: &[&str]) -> Result<Vec<String>> {
        let default: Vec<String> = default.iter().map(|s| s.to_string()).collect();
        self.list(key, &default, "a list of strings", |v| v.as_str().map(str::to_string))
    }

    fn list<T: Clone>(
        &mut self,
        key: &'static str,
        default: &[T],
        expected: &str,
        parse: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>> {
        let Some(v) = self.get(key) else { return Ok(default.to_vec()) };
        let Some(items) = v.as_array() else { return Err(self.invalid(key, expected, v)) };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                parse(item).ok_or_else(|| self.invalid(key, expected, format!("{v} (element {i} is {item})")))
            })
            .collect()
    }

    /// Fails on any key that was not read, listing the accepted ones.
    pub fn finish(self) -> Result<()> {
        if let Some(k) = self.kwargs.keys().find(|k| !self.known.contains(&k.as_str())) {
            let allowed = if self.known.is_empty() {
                "it takes no keyword arguments".to_string()
            } else {
                format!("allowed: {}", self.known.join(", "))
            };
            return Err(EnvError::InvalidKwarg {
                env: self.env.to_string(),
                message: format!("unknown keyword argument {k:?}; {allowed} (and max_episode_steps)"),
            });
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
        for id in [
            "Acrobot-v1",
            "CartPole-v1",
            "CrashingCartPole-v1",
            "MountainCar-v0",
            "MountainCarContinuous-v0",
            "Pendulum-v1",
        ] {
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

    fn kwargs(json: &str) -> Kwargs {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn integer_readers_take_integers_in_range_only() {
        let kw = kwargs(r#"{"a": 8, "b": -3, "c": 8.0, "d": 8.5, "e": 18446744073709551615, "f": "8", "g": 1e30}"#);
        let mut r = KwargReader::new("Grid-v0", &kw);
        assert_eq!(r.i64("a", 0).unwrap(), 8);
        assert_eq!(r.u64("a", 0).unwrap(), 8);
        assert_eq!(r.i64("b", 0).unwrap(), -3);
        assert_eq!(r.u64("e", 0).unwrap(), u64::MAX);
        assert_eq!(r.i64("absent", 7).unwrap(), 7);
        assert_eq!(r.u64("absent", 7).unwrap(), 7);
        let msg = |e: EnvError| e.to_string();
        let range = "an integer from -9223372036854775808 to 9223372036854775807";
        assert_eq!(msg(r.u64("b", 0).unwrap_err()), "Grid-v0: b must be a non-negative integer, got -3");
        assert_eq!(msg(r.i64("c", 0).unwrap_err()), format!("Grid-v0: c must be {range}, got 8.0"));
        assert_eq!(
            msg(r.u64("d", 0).unwrap_err()),
            "Grid-v0: d must be an integer from 0 to 18446744073709551615, got 8.5"
        );
        assert_eq!(msg(r.i64("e", 0).unwrap_err()), format!("Grid-v0: e must be {range}, got 18446744073709551615"));
        assert_eq!(msg(r.i64("f", 0).unwrap_err()), format!("Grid-v0: f must be {range}, got \"8\""));
        assert_eq!(
            msg(r.u64("g", 0).unwrap_err()),
            "Grid-v0: g must be an integer from 0 to 18446744073709551615, got 1e+30"
        );
        r.finish().unwrap();
    }

    #[test]
    fn string_and_list_readers() {
        let kw = kwargs(r#"{"map": "maze", "goal": [1, 2.5], "cells": [3, -4], "bad": [1, "x"], "n": 3}"#);
        let mut r = KwargReader::new("Grid-v0", &kw);
        assert_eq!(r.string("map", "open").unwrap(), "maze");
        assert_eq!(r.string("absent", "open").unwrap(), "open");
        assert_eq!(r.f64_list("goal", &[]).unwrap(), [1.0, 2.5]);
        assert_eq!(r.f64_list("absent", &[0.5]).unwrap(), [0.5]);
        assert_eq!(r.i64_list("cells", &[]).unwrap(), [3, -4]);
        assert_eq!(r.string_list("absent", &["a"]).unwrap(), ["a"]);
        assert!(r.string_list("cells", &[]).is_err());
        assert_eq!(r.f64_list("cells", &[]).unwrap(), [3.0, -4.0]);
        let msg = |e: EnvError| e.to_string();
        assert_eq!(msg(r.string("n", "").unwrap_err()), "Grid-v0: n must be a string, got 3");
        assert_eq!(msg(r.i64_list("n", &[]).unwrap_err()), "Grid-v0: n must be a list of integers, got 3");
        assert_eq!(
            msg(r.i64_list("goal", &[]).unwrap_err()),
            "Grid-v0: goal must be a list of integers, got [1,2.5] (element 1 is 2.5)"
        );
        assert_eq!(
            msg(r.f64_list("bad", &[]).unwrap_err()),
            "Grid-v0: bad must be a list of numbers, got [1,\"x\"] (element 1 is \"x\")"
        );
        r.finish().unwrap();
    }

    #[test]
    fn unread_keys_are_rejected_after_typed_reads() {
        let kw = kwargs(r#"{"size": 4, "sise": 5}"#);
        let mut r = KwargReader::new("Grid-v0", &kw);
        let size = r.u64("size", 3).unwrap();
        assert_eq!(r.invalid("size", "at least 5", size).to_string(), "Grid-v0: size must be at least 5, got 4");
        let err = r.finish().unwrap_err().to_string();
        assert_eq!(err, "Grid-v0: unknown keyword argument \"sise\"; allowed: size (and max_episode_steps)");
    }

    /// A made env names its registered id, even when its own code names another.
    #[test]
    fn made_envs_carry_the_registered_id_in_id_and_errors() {
        let mut r = Registry::with_builtins();
        r.register(EnvSpec::new("Alias-v0", |kw| Registry::with_builtins().make("CartPole-v1", kw))).unwrap();
        for limit in ["{}", r#"{"max_episode_steps": null}"#] {
            let mut env = r.make("Alias-v0", &kwargs(limit)).unwrap();
            assert_eq!(env.id(), "Alias-v0");
            let err = env.step(Action::Discrete(0)).unwrap_err();
            assert_eq!(err.to_string(), "Alias-v0: step called before reset");
            env.reset(Some(0), None).unwrap();
            let err = env.step(Action::Discrete(7)).unwrap_err();
            assert_eq!(err.to_string(), "Alias-v0: action 7 is not in the action space Discrete(2)");
        }
        let err = r.make("Alias-v0", &kwargs(r#"{"gravity": 1}"#)).err().unwrap().to_string();
        assert!(err.starts_with("Alias-v0: unknown keyword argument \"gravity\""), "{err}");
    }

    #[cfg(not(feature = "gym"))]
    #[test]
    fn gym_ids_without_the_feature_say_how_to_build_it() {
        let err = Registry::with_builtins().make("gym:CartPole-v1", &Kwargs::new()).err().unwrap().to_string();
        assert!(err.starts_with("gym:CartPole-v1: this binary was built without the Gymnasium bridge"), "{err}");
        assert!(err.contains("--features rl-env/gym") && err.contains("requirements-gym.txt"), "{err}");
    }

    #[test]
    fn unknown_kwarg_lists_allowed_ones() {
        let kw: Kwargs = serde_json::from_str(r#"{"gravity": 9.8}"#).unwrap();
        let err = Registry::with_builtins().make("Pendulum-v1", &kw).err().unwrap().to_string();
        assert!(err.contains("\"gravity\"") && err.contains("allowed: g"), "{err}");
    }
}
