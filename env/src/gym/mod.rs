//! The Gymnasium bridge: any env in Gymnasium's registry by the id `gym:<GymnasiumId>`, run by
//! Python and seen from Rust as an ordinary [`Env`].
//!
//! `make("gym:HalfCheetah-v4", &kwargs)` calls `gymnasium.make("HalfCheetah-v4", **kwargs)`;
//! Gymnasium's `module:Id` form (`gym:my_pkg.envs:MyEnv-v0`) imports the module first, as
//! Gymnasium does. Gymnasium applies the time limit of its own registry (pass
//! `max_episode_steps` to change it); the Rust registry adds none.
//!
//! # Spaces and values
//!
//! `Discrete(n, start)` becomes [`Space::Discrete`], a `Box` of any dtype and shape a flat `f32`
//! [`Space::Box`] (bounds cast to `f32`, infinities kept), a one-dimensional `MultiDiscrete`
//! starting at 0 a [`Space::MultiDiscrete`]; any other space is an error naming the env and the
//! space. Actions reach Python as an `int` (Discrete), a NumPy array of the space's dtype and
//! shape (Box) or an `int64` array (MultiDiscrete). `reset` passes seed and options through,
//! rewards arrive as `f64`, `terminated` and `truncated` as they are, and `info` as JSON: numbers,
//! booleans, strings, lists and numeric arrays, skipping what JSON cannot hold.
//!
//! # Two designs
//!
//! Keyword arguments whose keys start with `rl_` are the bridge's own; every other one goes to
//! `gymnasium.make`. `rl_bridge` picks where Python runs:
//!
//! - `"process"` (the default): one Python child process per env, over pipes with a compact
//!   binary protocol. Envs step in parallel, and an env that crashes its interpreter (a
//!   segfault in a simulator) fails with an error naming the child's pid and signal instead of
//!   taking the program down. The child dies with its parent.
//! - `"in_process"`: the interpreter embedded through pyo3, called in the calling thread. No
//!   copies through a pipe, but every env in the process shares one interpreter lock, so envs
//!   in several threads take turns.
//!
//! On the project's 2-vCPU machine, one thread stepping CartPole-v1 in-process reaches 81% of
//! Gymnasium's own Python loop (HalfCheetah-v4: 71%) and beats one process env several times
//! over; two threads stepping their own envs are fastest with `process` (1.2x to 1.7x
//! `in_process`). Several env runners in one process are the common case, hence the default;
//! pick `in_process` when one thread steps all bridged envs. `experiments/results/gym-bridge.md`
//! has the measurements.
//!
//! # Which Python
//!
//! The child process runs `$RL_PYTHON`, else `$VIRTUAL_ENV/bin/python`, else `python3`. The
//! embedded interpreter is the libpython the binary was built against; it adds the module search
//! path of `$RL_PYTHON` (which must be the same Python version) or the site-packages of
//! `$VIRTUAL_ENV`. The packages are pinned in `requirements-gym.txt`:
//! `pip install -r requirements-gym.txt`.
//!
//! # Examples
//!
//! ```no_run
//! use rl_env::{Action, Env, Kwargs, make};
//!
//! let kwargs: Kwargs = serde_json::from_str(r#"{"g": 9.81, "rl_bridge": "in_process"}"#).unwrap();
//! let mut env = make("gym:Pendulum-v1", &kwargs)?;
//! env.reset(Some(0), None)?;
//! let step = env.step(Action::Continuous(&[0.5]))?;
//! assert!(step.reward <= 0.0);
//! # Ok::<(), rl_env::EnvError>(())
//! ```

mod in_process;
mod interpreter;
mod process;
mod spaces;

use serde_json::Value;

use crate::env::{Env, EnvContext, Info, Kwargs, StepResult};
use crate::error::{EnvError, Result};
use crate::space::{Action, Space};

/// The prefix of bridged env ids.
pub const PREFIX: &str = crate::registry::GYM_PREFIX;

/// Where a bridged env's Python runs (the `rl_bridge` keyword argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeKind {
    /// One Python child process per env (`"process"`).
    #[default]
    Process,
    /// The embedded interpreter, in the calling thread (`"in_process"`).
    InProcess,
}

/// The bridge's own keyword arguments; all start with `rl_`.
const OPTIONS: [&str; 1] = ["rl_bridge"];

/// Every id in Gymnasium's registry, prefixed with `gym:`, sorted. Runs the Python the process
/// design would run (see the module docs).
pub fn list_ids() -> Result<Vec<String>> {
    let ids = process::list_ids()?;
    Ok(ids.into_iter().map(|id| format!("{PREFIX}{id}")).collect())
}

/// Makes the bridged env `id` (`gym:<GymnasiumId>`): what the registry calls for such ids.
pub(crate) fn make(id: &str, kwargs: &Kwargs, _ctx: &EnvContext) -> Result<Box<dyn Env>> {
    let gym_id = id.strip_prefix(PREFIX).unwrap_or(id);
    if gym_id.is_empty() {
        return Err(EnvError::custom(id, "no Gymnasium id after \"gym:\" (e.g. gym:CartPole-v1)"));
    }
    let (kind, gym_kwargs) = split_kwargs(id, kwargs)?;
    let setup = Setup { id: id.to_string(), gym_id: gym_id.to_string(), kwargs: Value::Object(gym_kwargs) };
    let (backend, describe): (Box<dyn Backend>, Vec<u8>) = match kind {
        BridgeKind::Process => {
            let (b, d) = process::ProcessBackend::start(&setup)?;
            (Box::new(b), d)
        }
        BridgeKind::InProcess => {
            let (b, d) = in_process::InProcessBackend::start(&setup)?;
            (Box::new(b), d)
        }
    };
    let spaces = spaces::parse_spaces(id, &describe)?;
    Ok(Box::new(GymEnv {
        id: setup.id,
        observation_space: spaces.observation,
        action_space: spaces.action,
        action_buf: Vec::new(),
        was_reset: false,
        backend,
    }))
}

/// Splits the bridge's `rl_*` options from the keyword arguments for `gymnasium.make`.
fn split_kwargs(id: &str, kwargs: &Kwargs) -> Result<(BridgeKind, Kwargs)> {
    let mut kind = BridgeKind::default();
    let mut rest = Kwargs::new();
    for (key, value) in kwargs {
        if !key.starts_with("rl_") {
            rest.insert(key.clone(), value.clone());
            continue;
        }
        match key.as_str() {
            "rl_bridge" => {
                kind = match value.as_str() {
                    Some("process") => BridgeKind::Process,
                    Some("in_process") => BridgeKind::InProcess,
                    _ => {
                        return Err(EnvError::InvalidKwarg {
                            env: id.to_string(),
                            message: format!("rl_bridge must be \"process\" or \"in_process\", got {value}"),
                        });
                    }
                }
            }
            _ => {
                let closest = OPTIONS.iter().min_by_key(|o| strsim::levenshtein(o, key)).expect("OPTIONS is not empty");
                let hint = if strsim::levenshtein(closest, key) <= 4 {
                    format!("; did you mean {closest}?")
                } else {
                    String::new()
                };
                return Err(EnvError::InvalidKwarg {
                    env: id.to_string(),
                    message: format!(
                        "unknown bridge option {key:?}{hint} (keys starting with rl_ are the bridge's own; \
                         allowed: {})",
                        OPTIONS.join(", ")
                    ),
                });
            }
        }
    }
    Ok((kind, rest))
}

/// What both designs need to make an env.
struct Setup {
    /// Our id, `gym:<GymnasiumId>`, for errors.
    id: String,
    /// The id for `gymnasium.make`.
    gym_id: String,
    /// The keyword arguments for `gymnasium.make`, a JSON object.
    kwargs: Value,
}

/// A backend's result: errors are messages that [`GymEnv`] turns into errors naming the env.
type BridgeResult<T> = std::result::Result<T, String>;

/// One design's way of running the Python half. Errors are messages; [`GymEnv`] names the env.
trait Backend: Send {
    /// `env.reset(seed=seed, options=options)`, the observation written into `obs`.
    fn reset(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> BridgeResult<Info>;

    /// `env.step(action)` with the action's bytes (see `spaces::encode_action`).
    fn step(&mut self, action: &[u8], obs: &mut [f32]) -> BridgeResult<StepResult>;
}

/// A Gymnasium env seen through a [`Backend`].
struct GymEnv {
    id: String,
    observation_space: Space,
    action_space: Space,
    action_buf: Vec<u8>,
    was_reset: bool,
    backend: Box<dyn Backend>,
}

impl Env for GymEnv {
    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        crate::env::check_obs_len(self.observation_space.flat_dim(), obs)?;
        let info = self.backend.reset(seed, options, obs).map_err(|m| EnvError::custom(&self.id, m))?;
        self.was_reset = true;
        Ok(info)
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        crate::env::check_obs_len(self.observation_space.flat_dim(), obs)?;
        if !self.was_reset {
            return Err(EnvError::StepBeforeReset { env: self.id.clone() });
        }
        self.action_space.check(&self.id, action)?;
        spaces::encode_action(action, &mut self.action_buf);
        self.backend.step(&self.action_buf, obs).map_err(|m| EnvError::custom(&self.id, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kwargs(json: &str) -> Kwargs {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bridge_options_are_split_from_gymnasium_kwargs() {
        let (kind, rest) = split_kwargs("gym:P-v1", &kwargs(r#"{"g": 9.81, "rl_bridge": "in_process"}"#)).unwrap();
        assert_eq!(kind, BridgeKind::InProcess);
        assert_eq!(rest, kwargs(r#"{"g": 9.81}"#));
        let (kind, _) = split_kwargs("gym:P-v1", &kwargs("{}")).unwrap();
        assert_eq!(kind, BridgeKind::default());
    }

    #[test]
    fn bad_bridge_options_are_errors() {
        let err = split_kwargs("gym:P-v1", &kwargs(r#"{"rl_brige": "process"}"#)).unwrap_err().to_string();
        assert!(err.starts_with("gym:P-v1: unknown bridge option \"rl_brige\"; did you mean rl_bridge?"), "{err}");
        let err = split_kwargs("gym:P-v1", &kwargs(r#"{"rl_bridge": "thread"}"#)).unwrap_err().to_string();
        assert_eq!(err, "gym:P-v1: rl_bridge must be \"process\" or \"in_process\", got \"thread\"");
    }
}
