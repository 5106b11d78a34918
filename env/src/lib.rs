//! Environments with Gymnasium 1.x semantics.
//!
//! - [`Env`]: `reset(seed, options) -> (obs, info)`, `step(action) -> (obs, reward, terminated,
//!   truncated, info)`, with observation and action [`Space`]s.
//! - [`envs`]: CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1,
//!   matching Gymnasium bit for bit (checked against committed golden trajectories), and
//!   CrashingCartPole-v1, CartPole with injected faults for fault-tolerance tests.
//! - [`wrappers`]: [`TimeLimit`], [`RecordEpisodeStatistics`] and the wrapper pattern.
//! - [`normalize`]: Gymnasium's [`NormalizeObservation`] and [`NormalizeReward`] wrappers (with
//!   CleanRL's clips) and their transforms, and RLlib's [`MeanStdFilter`].
//! - [`SyncVectorEnv`]: many envs stepped in lockstep with autoreset, observations in one
//!   contiguous `[n_envs, obs_dim]` buffer.
//! - [`make`] / [`register`]: the registry of env ids; [`make_with_context`] and
//!   [`EnvSpec::with_context`] pass an [`EnvContext`] (worker, sub-env, restarts) to constructors.
//! - [`Env::save_state`] / [`Env::restore_state`] and [`SyncVectorEnv::save_state`]: exact resume
//!   mid-episode, as JSON that round-trips bit for bit ([`state`]).
//! - `gym` (feature `gym`, off by default): any Gymnasium env by the id `gym:<GymnasiumId>`,
//!   run by Python in a child process or in-process through pyo3.
//! - [`check_env`]: runs an env through the reset/step contract and reports what it breaks.
//!
//! # Examples
//!
//! ```
//! use rl_env::{Action, Env, Kwargs, make};
//!
//! let mut env = make("CartPole-v1", &Kwargs::new())?;
//! let (mut obs, _) = env.reset(Some(0), None)?;
//! let mut ret = 0.0;
//! loop {
//!     // Push the cart toward the side the pole leans to.
//!     let step = env.step(Action::Discrete(i64::from(obs[2] > 0.0)))?;
//!     ret += step.reward;
//!     obs = step.obs;
//!     if step.terminated || step.truncated {
//!         break;
//!     }
//! }
//! assert!(ret >= 1.0);
//! # Ok::<(), rl_env::EnvError>(())
//! ```
//!
//! # Write your own env
//!
//! An env is a struct that implements [`Env`]: two spaces, `reset_into` and `step_into`. Register a
//! constructor under an id and the env is made like a built-in: by [`make`], by configs that name
//! the id, and by the `rl` command line of a binary that registers it before handing over. The
//! rules the built-in envs follow, and [`check_env`] checks:
//!
//! - **Keyword arguments**: read them with a [`KwargReader`] (numbers, integers, booleans,
//!   strings, lists); its `finish` rejects the keys nobody read, and `invalid` reports a value
//!   that fails your own validation.
//! - **Seeding**: keep an `Option<NpRandom>` and get it with [`seeded_rng`] in `reset_into`, as
//!   Gymnasium's `self.np_random`. Draw from it only: [`NpRandom`](rng::NpRandom)'s `uniform`,
//!   `integers` and `random` give the numbers NumPy's `Generator` gives for the same seed.
//! - **Actions**: check them with [`Space::check`] before touching any state: an action outside
//!   the space is [`EnvError::InvalidAction`], never clamped. [`Action::Discrete`] carries a value
//!   of the space, `start + index`: `Discrete(3, start=-1)` receives -1, 0 and 1.
//! - **Order**: `step_into` before the first reset is [`EnvError::StepBeforeReset`]. After
//!   `terminated` or `truncated` the caller resets; stepping on is undefined in Gymnasium (the
//!   built-in envs keep stepping), but it must not panic.
//! - **Failures of your own** (a map with no free cell, a simulator that diverged) are
//!   [`EnvError::Custom`], made with [`EnvError::custom`]; panics are for bugs.
//! - **The id** is written once, in the [`EnvSpec`]: an env made by [`make`] reports it from
//!   [`Env::id`] and in every error it returns, so the env need not implement `id` (name the env
//!   with `self.id()` in errors).
//!
//! ```
//! use rl_env::rng::NpRandom;
//! use rl_env::{
//!     Action, Env, EnvError, EnvSpec, Info, KwargReader, Kwargs, Result, Space, StepResult, check_env, check_obs_len,
//!     make, register, seeded_rng,
//! };
//!
//! /// A corridor drawn as a string (`.` free, `#` wall). The agent starts on a random free cell of
//! /// the left half, moves with -1, 0, +1 (walls block) and ends the episode on the last cell.
//! /// Observation: `[cell / (length - 1)]`; reward 1.0 at the end, `-step_cost` before.
//! struct Corridor {
//!     walls: Vec<bool>,
//!     step_cost: f64,
//!     cell: Option<usize>,
//!     rng: Option<NpRandom>,
//!     observation_space: Space,
//!     action_space: Space,
//! }
//!
//! impl Corridor {
//!     fn from_kwargs(kwargs: &Kwargs) -> Result<Self> {
//!         // Errors name the registered id once the env is made by `make`.
//!         let mut kw = KwargReader::new("Corridor", kwargs);
//!         let map = kw.string("map", "........")?;
//!         let step_cost = kw.f64("step_cost", 0.01)?;
//!         if map.len() < 2 || !map.chars().all(|c| c == '.' || c == '#') || map.ends_with('#') {
//!             return Err(kw.invalid("map", "2+ cells of '.' and '#' ending in '.'", format!("{map:?}")));
//!         }
//!         kw.finish()?;
//!         Ok(Self {
//!             walls: map.chars().map(|c| c == '#').collect(),
//!             step_cost,
//!             cell: None,
//!             rng: None,
//!             observation_space: Space::boxed(vec![0.0], vec![1.0], vec![1])?,
//!             action_space: Space::discrete_from(3, -1)?,
//!         })
//!     }
//!
//!     fn write_obs(&self, cell: usize, obs: &mut [f32]) {
//!         obs[0] = cell as f32 / (self.walls.len() - 1) as f32;
//!     }
//! }
//!
//! impl Env for Corridor {
//!     fn observation_space(&self) -> &Space {
//!         &self.observation_space
//!     }
//!
//!     fn action_space(&self) -> &Space {
//!         &self.action_space
//!     }
//!
//!     fn reset_into(&mut self, seed: Option<u64>, _options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
//!         check_obs_len(1, obs)?;
//!         let free: Vec<usize> = (0..self.walls.len() / 2).filter(|c| !self.walls[*c]).collect();
//!         if free.is_empty() {
//!             return Err(EnvError::custom(self.id(), "no free cell in the left half to start on"));
//!         }
//!         // `self.np_random.integers(0, len(free))` in Gymnasium terms.
//!         let pick = seeded_rng(&mut self.rng, seed).integers(0, free.len() as i64)?;
//!         let cell = free[pick as usize];
//!         self.cell = Some(cell);
//!         self.write_obs(cell, obs);
//!         Ok(Info::new())
//!     }
//!
//!     fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
//!         check_obs_len(1, obs)?;
//!         let cell = self.cell.ok_or_else(|| EnvError::StepBeforeReset { env: self.id().to_string() })?;
//!         self.action_space.check(self.id(), action)?;
//!         let Action::Discrete(delta) = action else { unreachable!("checked against Discrete(3, start=-1)") };
//!         let next = cell.saturating_add_signed(delta as isize).min(self.walls.len() - 1);
//!         let cell = if self.walls[next] { cell } else { next };
//!         self.cell = Some(cell);
//!         self.write_obs(cell, obs);
//!         let terminated = cell == self.walls.len() - 1;
//!         let reward = if terminated { 1.0 } else { -self.step_cost };
//!         Ok(StepResult { reward, terminated, truncated: false, info: Info::new() })
//!     }
//! }
//!
//! register(EnvSpec::new("Corridor-v0", |kw| Ok(Box::new(Corridor::from_kwargs(kw)?))).max_episode_steps(50))?;
//!
//! let mut env = make("Corridor-v0", &Kwargs::new())?;
//! assert_eq!(env.id(), "Corridor-v0");
//! let (obs, _) = env.reset(Some(0), None)?;
//! let step = env.step(Action::Discrete(1))?;
//! assert!(step.obs[0] > obs[0] && step.reward == -0.01);
//! let err = env.step(Action::Discrete(2)).unwrap_err();
//! assert_eq!(err.to_string(), "Corridor-v0: action 2 is not in the action space Discrete(3, start=-1)");
//!
//! // Configuration errors and the env's own failures name the registered id too.
//! let kwargs = Kwargs::from_iter([("map".to_string(), "..#".into())]);
//! let err = make("Corridor-v0", &kwargs).err().unwrap();
//! assert_eq!(err.to_string(), r##"Corridor-v0: map must be 2+ cells of '.' and '#' ending in '.', got "..#""##);
//! let kwargs = Kwargs::from_iter([("map".to_string(), "##..".into())]);
//! let err = make("Corridor-v0", &kwargs)?.reset(Some(0), None).unwrap_err();
//! assert!(matches!(err, EnvError::Custom { .. }));
//! assert_eq!(err.to_string(), "Corridor-v0: no free cell in the left half to start on");
//!
//! // The checker runs it through the whole contract.
//! let report = check_env("Corridor-v0", &Kwargs::new())?;
//! assert!(report.is_ok(), "{report}");
//! # Ok::<(), rl_env::EnvError>(())
//! ```
#![deny(missing_docs)]

pub mod checker;
mod env;
pub mod envs;
mod error;
#[cfg(feature = "gym")]
pub mod gym;
pub mod kwargs_serde;
pub mod normalize;
mod registry;
pub mod rng;
mod space;
pub mod state;
pub mod vector;
pub mod wrappers;

pub use checker::{Check, CheckReport, Finding, Outcome, check_env, check_env_with};
pub use env::{Env, EnvContext, Info, Kwargs, Step, StepResult, check_obs_len, reset_bounds, seeded_rng};
pub use error::{EnvError, Result};
pub use normalize::{
    MeanStdFilter, NormalizeObservation, NormalizeReward, ObservationNormalizer, RewardNormalizer, RunningMeanStd,
    RunningStat,
};
pub use registry::{
    Constructor, EnvSpec, KwargReader, Registry, ids, is_bridged, make, make_with_context, register, spec,
};
pub use space::{Action, BoxSpace, OwnedAction, Space};
pub use vector::{Actions, FinishedEpisode, SubEnvRestart, SyncVectorEnv, seed_for_restart};
pub use wrappers::{EnvExt, EpisodeStats, RecordEpisodeStatistics, TimeLimit, Wrapper};
