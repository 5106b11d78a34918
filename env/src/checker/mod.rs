//! The env checker: runs an env through the reset/step contract and reports each thing it breaks.
//!
//! Like Gymnasium's `gymnasium.utils.env_checker.check_env`, [`check_env`] makes an env and calls
//! it the way trainers do, then reports what it saw. It runs these checks, in order ([`Check`]):
//!
//! | Check | What passes |
//! | --- | --- |
//! | `make` | Making the env again (up to four times) neither fails nor panics. |
//! | `id` | [`Env::id`] is the id the env was made under. |
//! | `spaces` | Box: bounds of the shape's length, no NaN, `low <= high`, a finite value between them, at least one element. Discrete: `n >= 1`, `start + n` fits an `i64`. MultiDiscrete: at least one element, every `n >= 1`. Warnings: a Box element with `low == high` (as Gymnasium's passive checker), an action Box with an infinite bound (as Gymnasium's `check_space_limit`). |
//! | `step-before-reset` | `step` on a fresh env is an error ([`EnvError::StepBeforeReset`]; another error is a warning). |
//! | `reset` | `reset(Some(0))`, and `reset(None)` on a fresh env, write a finite observation inside the observation space into every element of the buffer. |
//! | `step` | A run of seeded random actions (`reset(Some(0))`, `reset(None)`, then at least 200 steps and until an episode has ended, at most 10,000; `reset(None)` after each episode) gives finite rewards, finite observations inside the observation space, and no errors. |
//! | `determinism` | The same run again on the same env, and on a fresh env, is bit-identical: observations, rewards, flags, errors. |
//! | `seeds-differ` | The run with seed 1 differs from the run with seed 0 (a warning when not: some envs start in one state). |
//! | `invalid-action` | Each action outside the action space (below or above a bound, NaN, one element too many, the wrong kind) is an error, [`EnvError::InvalidAction`] (another error is a warning). |
//! | `episode-end` | When an episode ends, one more step does not panic (an error, or a step with finite values: Gymnasium leaves stepping a finished episode undefined, and the built-in envs keep stepping), and `reset(None)` then starts an episode that accepts a step. |
//!
//! A panic inside the env is caught (`std::panic::catch_unwind`) and reported as a failure of the
//! check that caused it; the checker then goes on with a fresh env. The default panic hook still
//! prints each caught panic to stderr: a command line that wants a quiet report can install its own
//! hook around the call. An env that loops forever hangs the checker.
//!
//! # Examples
//!
//! ```
//! use rl_env::{Kwargs, check_env};
//!
//! let report = check_env("CartPole-v1", &Kwargs::new())?;
//! assert!(report.is_ok(), "{report}");
//! assert!(report.to_string().starts_with("CartPole-v1: 10 of 10 checks passed, 0 failed, 0 warnings\n"));
//! # Ok::<(), rl_env::EnvError>(())
//! ```

mod report;
#[cfg(test)]
mod tests;

use crate::error::catch_panic;

pub use report::{Check, CheckReport, Finding, Outcome};

use crate::env::{Env, Kwargs, StepResult};
use crate::error::{EnvError, Result};
use crate::rng::NpRandom;
use crate::space::{Action, BoxSpace, OwnedAction, Space};

/// The seed of the runs compared for determinism.
const SEED: u64 = 0;
/// The seed of the run that should differ from the [`SEED`] run.
const OTHER_SEED: u64 = 1;
/// Seeds the generator the checker draws its random actions from.
const ACTION_SEED: u64 = 12345;
/// A run takes at least this many steps...
const MIN_STEPS: usize = 200;
/// ... and goes on until an episode has ended, but no further than this.
const MAX_STEPS: usize = 10_000;

/// Makes the env `id` from the process-wide registry with `kwargs` (as [`make`](crate::make) does)
/// and checks it; see the [module docs](self) for the checks.
///
/// Returns the error of the first `make` when the env cannot be made at all (unknown id, rejected
/// keyword arguments); everything that goes wrong after that, panics included, is a finding in the
/// report.
pub fn check_env(id: &str, kwargs: &Kwargs) -> Result<CheckReport> {
    check_env_with(id, || crate::make(id, kwargs))
}

/// Checks the env that `make` builds, expecting [`Env::id`] to be `id`. `make` is called once
/// more for each check that needs a fresh env, and after each panic. Use this to check an env
/// without registering it, or one from a [`Registry`](crate::Registry) of your own.
///
/// ```
/// use rl_env::check_env_with;
/// use rl_env::envs::Pendulum;
///
/// let report = check_env_with("Pendulum-v1", || Ok(Box::new(Pendulum::new())))?;
/// assert!(report.is_ok(), "{report}");
/// # Ok::<(), rl_env::EnvError>(())
/// ```
pub fn check_env_with<F>(id: &str, make: F) -> Result<CheckReport>
where
    F: FnMut() -> Result<Box<dyn Env>>,
{
    let mut checker = Checker { report: CheckReport::new(id), make, made: 0 };
    let env = match catch_panic(|| (checker.make)()) {
        Ok(Ok(env)) => env,
        Ok(Err(e)) => return Err(e),
        Err(panic) => {
            checker.fail(Check::Make, format!("making the env panicked: {panic}"));
            checker.skip_from(Check::Id, "the env could not be made");
            return Ok(checker.finish());
        }
    };
    checker.made = 1;
    checker.run(id, env);
    Ok(checker.finish())
}

/// The outcome of one guarded call into the env.
enum Called<T> {
    Done(T),
    Failed(EnvError),
    Panicked(String),
}

impl<T> Called<T> {
    fn from(r: std::result::Result<Result<T>, String>) -> Self {
        match r {
            Ok(Ok(v)) => Called::Done(v),
            Ok(Err(e)) => Called::Failed(e),
            Err(p) => Called::Panicked(p),
        }
    }

    /// The value of a call that returned one.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Called<U> {
        match self {
            Called::Done(v) => Called::Done(f(v)),
            Called::Failed(e) => Called::Failed(e),
            Called::Panicked(p) => Called::Panicked(p),
        }
    }

    /// The value, or what went wrong with the call `label` (`LABEL returned an error: ...` or
    /// `LABEL panicked: ...`, as [`Stop::describe`] words it).
    fn done(self, label: impl Into<String>) -> std::result::Result<T, String> {
        match self {
            Called::Done(v) => Ok(v),
            other => Err(Stop::of(label.into(), other).describe()),
        }
    }
}

/// One reset or step of a run, as the caller saw it.
#[derive(Debug, Clone)]
struct Event {
    /// `reset(seed=0)`, `step 12 (action 1)`, ...
    label: String,
    obs: Vec<f32>,
    /// `None` for a reset.
    reward: Option<f64>,
    terminated: bool,
    truncated: bool,
}

/// Where a run stopped early: a call that returned an error or panicked.
#[derive(Debug, Clone, PartialEq)]
struct Stop {
    label: String,
    panicked: bool,
    /// The error or the panic message.
    message: String,
}

impl Stop {
    /// The stop of a call labelled `label` that failed or panicked (`Done` is not a stop).
    fn of<T>(label: String, called: Called<T>) -> Self {
        let (panicked, message) = match called {
            Called::Panicked(p) => (true, p),
            Called::Failed(e) => (false, e.to_string()),
            Called::Done(_) => (false, String::new()),
        };
        Self { label, panicked, message }
    }

    fn describe(&self) -> String {
        let verb = if self.panicked { "panicked" } else { "returned an error" };
        format!("{} {verb}: {}", self.label, self.message)
    }
}

/// A run: a seeded reset, `reset(None)`, then seeded random actions with `reset(None)` after each
/// finished episode.
#[derive(Debug, Clone)]
struct Run {
    events: Vec<Event>,
    stop: Option<Stop>,
    steps: usize,
    episodes: usize,
}

impl Run {
    fn panicked(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.panicked)
    }

    /// Resets `env` and records the observation; false (with `stop` set) if the reset failed.
    fn record_reset(&mut self, env: &mut dyn Env, seed: Option<u64>, dim: usize, label: String) -> bool {
        match reset(env, seed, dim) {
            Called::Done(obs) => {
                self.events.push(Event { label, obs, reward: None, terminated: false, truncated: false });
                true
            }
            other => {
                self.stop = Some(Stop::of(label, other));
                false
            }
        }
    }
}

/// The two spaces, read once after the `spaces` check passed.
struct Spaces {
    obs: Space,
    act: Space,
}

struct Checker<F> {
    report: CheckReport,
    make: F,
    /// How many envs were made.
    made: usize,
}

impl<F: FnMut() -> Result<Box<dyn Env>>> Checker<F> {
    fn pass(&mut self, check: Check, message: impl Into<String>) {
        self.report.push(check, Outcome::Pass, message);
    }

    fn warn(&mut self, check: Check, message: impl Into<String>) {
        self.report.push(check, Outcome::Warning, message);
    }

    fn fail(&mut self, check: Check, message: impl Into<String>) {
        self.report.push(check, Outcome::Failure, message);
    }

    /// Marks `from` and every later check as skipped.
    fn skip_from(&mut self, from: Check, why: &str) {
        for c in Check::ALL.into_iter().filter(|c| *c >= from) {
            self.report.push(c, Outcome::Skipped, format!("not run: {why}"));
        }
    }

    /// The number of failures and warnings so far, to tell whether a check added any.
    fn problems(&self) -> usize {
        self.report.failures().count() + self.report.warnings().count()
    }

    fn finish(mut self) -> CheckReport {
        if !self.report.failed(Check::Make) && self.made > 0 {
            let times = if self.made == 1 { "once".to_string() } else { format!("{} times", self.made) };
            self.pass(Check::Make, format!("made {times} without an error or a panic"));
        }
        self.report.sort();
        self.report
    }

    /// A fresh env for `purpose`, or `None` (a `make` failure) when making it failed.
    fn fresh(&mut self, purpose: &str) -> Option<Box<dyn Env>> {
        match Called::from(catch_panic(|| (self.make)())).done(format!("making the env again ({purpose})")) {
            Ok(env) => {
                self.made += 1;
                Some(env)
            }
            Err(why) => {
                self.fail(Check::Make, why);
                None
            }
        }
    }

    /// Replaces `env` by a fresh one after a panic; false when none could be made.
    fn replace(&mut self, env: &mut Box<dyn Env>) -> bool {
        match self.fresh("after a panic") {
            Some(e) => {
                *env = e;
                true
            }
            None => false,
        }
    }

    fn run(&mut self, id: &str, mut env: Box<dyn Env>) {
        self.check_id(id, &*env);
        let Some(spaces) = self.check_spaces(&*env) else {
            self.skip_from(Check::StepBeforeReset, "the spaces are not well formed");
            return;
        };
        self.check_step_before_reset(&spaces);
        if !self.check_reset(&mut env, &spaces) {
            self.skip_from(Check::Step, "reset does not work");
            return;
        }
        let first = run(&mut *env, SEED, &spaces);
        self.check_steps(&first, &spaces);
        if first.panicked() && !self.replace(&mut env) {
            self.skip_from(Check::Determinism, "no fresh env after a panic");
            return;
        }
        self.check_determinism(&mut env, &first, &spaces);
        self.check_seeds_differ(&mut env, &first, &spaces);
        self.check_invalid_actions(&mut env, &spaces);
        self.check_episode_end(&mut env, &first, &spaces);
    }

    fn check_id(&mut self, id: &str, env: &dyn Env) {
        match catch_panic(|| env.id().to_string()) {
            Ok(got) if got == id => self.pass(Check::Id, format!("Env::id() is {got:?}")),
            Ok(got) => {
                self.fail(Check::Id, format!("Env::id() is {got:?}; expected the id the env was made under, {id:?}"))
            }
            Err(p) => self.fail(Check::Id, format!("Env::id() panicked: {p}")),
        }
    }

    fn check_spaces(&mut self, env: &dyn Env) -> Option<Spaces> {
        let (obs, act) = match catch_panic(|| (env.observation_space().clone(), env.action_space().clone())) {
            Ok(s) => s,
            Err(p) => {
                self.fail(Check::Spaces, format!("reading the spaces panicked: {p}"));
                return None;
            }
        };
        let mut ok = true;
        for (what, space) in [("observation", &obs), ("action", &act)] {
            let (failures, warnings) = space_problems(what, space);
            ok &= failures.is_empty();
            for f in failures {
                self.fail(Check::Spaces, f);
            }
            for w in warnings {
                self.warn(Check::Spaces, w);
            }
        }
        if !ok {
            return None;
        }
        self.pass(Check::Spaces, format!("observation space {obs}, action space {act}"));
        Some(Spaces { obs, act })
    }

    fn check_step_before_reset(&mut self, spaces: &Spaces) {
        let Some(mut env) = self.fresh("for step before reset") else {
            self.report.push(Check::StepBeforeReset, Outcome::Skipped, "not run: no fresh env");
            return;
        };
        let action = spaces.act.sample(NpRandom::from_seed(ACTION_SEED).bits_mut());
        let label = format!("step (action {}) on a fresh env, before any reset,", action.as_action());
        match step(&mut *env, action.as_action(), spaces.obs.flat_dim()) {
            Called::Failed(e @ EnvError::StepBeforeReset { .. }) => {
                self.pass(Check::StepBeforeReset, format!("{label} returns an error: {e}"))
            }
            Called::Failed(e) => self.warn(
                Check::StepBeforeReset,
                format!("{label} returns an error, but not EnvError::StepBeforeReset: {e}"),
            ),
            Called::Done((_, r)) => self.fail(
                Check::StepBeforeReset,
                format!("{label} returned a step (reward {}); expected an error (EnvError::StepBeforeReset)", r.reward),
            ),
            Called::Panicked(p) => self.fail(
                Check::StepBeforeReset,
                format!("{label} panicked: {p}; expected an error (EnvError::StepBeforeReset)"),
            ),
        }
    }

    /// Returns false when reset itself does not work (an error or a panic).
    fn check_reset(&mut self, env: &mut Box<dyn Env>, spaces: &Spaces) -> bool {
        let dim = spaces.obs.flat_dim();
        let before = self.problems();
        let mut works = true;
        let mut fresh = self.fresh("for reset(None)");
        let calls = [("reset(seed=0)", Some(env), Some(SEED)), ("reset(None) on a fresh env", fresh.as_mut(), None)];
        for (label, env, seed) in calls {
            let Some(env) = env else { continue };
            match reset(&mut **env, seed, dim).done(label) {
                Ok(obs) => {
                    if let Some(problem) = obs_problem(&spaces.obs, &obs) {
                        self.fail(Check::Reset, format!("{label}: {problem}"));
                    }
                }
                Err(why) => {
                    works = false;
                    self.fail(Check::Reset, why);
                }
            }
        }
        if self.problems() == before {
            let message = format!("reset(seed=0) and reset(None) write finite observations inside {}", spaces.obs);
            self.pass(Check::Reset, message);
        }
        works
    }

    fn check_steps(&mut self, first: &Run, spaces: &Spaces) {
        let before = self.problems();
        if let Some(stop) = &first.stop {
            self.fail(Check::Step, format!("{}; expected it to succeed (the actions are valid)", stop.describe()));
        }
        let mut bad_obs = first.events.iter().filter_map(|e| obs_problem(&spaces.obs, &e.obs).map(|p| (e, p)));
        if let Some((e, p)) = bad_obs.next() {
            let more = bad_obs.count();
            let more = if more > 0 { format!(" (and at {more} later resets or steps)") } else { String::new() };
            self.fail(Check::Step, format!("{}: {p}{more}", e.label));
        }
        let mut bad_rewards = first.events.iter().filter(|e| e.reward.is_some_and(|r| !r.is_finite()));
        if let Some(e) = bad_rewards.next() {
            let more = bad_rewards.count();
            let more = if more > 0 { format!(" (and at {more} later steps)") } else { String::new() };
            let reward = e.reward.unwrap_or_default();
            self.fail(Check::Step, format!("{}: reward is {reward}; expected a finite number{more}", e.label));
        }
        if self.problems() == before {
            let message = format!(
                "{} of seeded random actions, {} finished: finite rewards, finite observations inside the observation space",
                count(first.steps, "step"),
                count(first.episodes, "episode")
            );
            self.pass(Check::Step, message);
        }
    }

    fn check_determinism(&mut self, env: &mut Box<dyn Env>, first: &Run, spaces: &Spaces) {
        let before = self.problems();
        let again = run(&mut **env, SEED, spaces);
        if let Some(diff) = first_difference(first, &again) {
            self.fail(
                Check::Determinism,
                format!(
                    "on the same env, a second run (seed {SEED}, same actions) {diff}; expected bit-identical runs"
                ),
            );
        }
        let Some(mut other) = self.fresh("for determinism") else {
            self.report.push(Check::Determinism, Outcome::Skipped, "not run on a fresh env: none could be made");
            return;
        };
        if let Some(diff) = first_difference(first, &run(&mut *other, SEED, spaces)) {
            self.fail(
                Check::Determinism,
                format!("on a fresh env, the run (seed {SEED}, same actions) {diff}; expected bit-identical runs"),
            );
        }
        if again.panicked() {
            // Go on with the fresh env: the panicked one may be in any state.
            *env = other;
        }
        if self.problems() == before {
            let stop = first.stop.as_ref().map_or(String::new(), |s| format!(", each stopping where {}", s.describe()));
            let message = format!(
                "seed {SEED} and the same {} give bit-identical runs, twice on one env and once on a fresh env{stop}",
                count(first.steps, "action")
            );
            self.pass(Check::Determinism, message);
        }
    }

    fn check_seeds_differ(&mut self, env: &mut Box<dyn Env>, first: &Run, spaces: &Spaces) {
        let other = run(&mut **env, OTHER_SEED, spaces);
        if other.panicked() && !self.replace(env) {
            self.report.push(Check::SeedsDiffer, Outcome::Skipped, "not run: no fresh env after a panic");
            return;
        }
        match first_difference(first, &other) {
            Some(diff) => self
                .pass(Check::SeedsDiffer, format!("the run with seed {OTHER_SEED} {diff} of the run with seed {SEED}")),
            None => self.warn(
                Check::SeedsDiffer,
                format!(
                    "seeds {SEED} and {OTHER_SEED} give identical runs over {} steps: does reset use its seed?",
                    first.steps
                ),
            ),
        }
    }

    fn check_invalid_actions(&mut self, env: &mut Box<dyn Env>, spaces: &Spaces) {
        let dim = spaces.obs.flat_dim();
        let valid = spaces.act.sample(NpRandom::from_seed(ACTION_SEED).bits_mut());
        let before = self.problems();
        let mut rejected = Vec::new();
        for (action, why) in invalid_actions(&spaces.act, &valid) {
            let label = format!("step with action {} ({why})", action.as_action());
            if let Err(why) = reset(&mut **env, Some(SEED), dim).done(format!("reset(seed=0) before the {label}")) {
                self.fail(Check::InvalidAction, why);
                return;
            }
            match step(&mut **env, action.as_action(), dim) {
                Called::Failed(EnvError::InvalidAction { .. }) => rejected.push(action.as_action().to_string()),
                Called::Failed(e) => self.warn(
                    Check::InvalidAction,
                    format!("{label} returned an error, but not EnvError::InvalidAction: {e}"),
                ),
                Called::Done((_, r)) => self.fail(
                    Check::InvalidAction,
                    format!(
                        "{label} returned a step (reward {}); expected an error (EnvError::InvalidAction), not a clamp",
                        r.reward
                    ),
                ),
                Called::Panicked(p) => {
                    self.fail(
                        Check::InvalidAction,
                        format!("{label} panicked: {p}; expected an error (EnvError::InvalidAction)"),
                    );
                    if !self.replace(env) {
                        return;
                    }
                }
            }
        }
        if self.problems() == before {
            let message =
                format!("{} are rejected with EnvError::InvalidAction (outside {})", rejected.join(", "), spaces.act);
            self.pass(Check::InvalidAction, message);
        }
    }

    fn check_episode_end(&mut self, env: &mut Box<dyn Env>, first: &Run, spaces: &Spaces) {
        if self.report.failed(Check::Step) || self.report.failed(Check::Determinism) {
            self.report.push(Check::EpisodeEnd, Outcome::Skipped, "not run: needs steps that work and repeat");
            return;
        }
        if first.episodes == 0 {
            self.warn(
                Check::EpisodeEnd,
                format!(
                    "no episode ended in {MAX_STEPS} steps of random actions, so the end of an episode was not checked"
                ),
            );
            return;
        }
        // Replay the first run to the end of its first episode: it repeats, as determinism passed.
        let dim = spaces.obs.flat_dim();
        let mut actions = NpRandom::from_seed(ACTION_SEED);
        let seeded = reset(&mut **env, Some(SEED), dim);
        let unseeded = reset(&mut **env, None, dim);
        let (Called::Done(_), Called::Done(_)) = (seeded, unseeded) else {
            self.fail(Check::EpisodeEnd, "reset(seed=0) then reset(None) no longer work");
            return;
        };
        let mut end = None;
        for n in 1..=MAX_STEPS {
            let action = spaces.act.sample(actions.bits_mut());
            match step(&mut **env, action.as_action(), dim) {
                Called::Done((_, r)) if r.done() => {
                    end = Some((n, if r.terminated { "terminated" } else { "truncated" }));
                    break;
                }
                Called::Done(_) => {}
                _ => break,
            }
        }
        let Some((n, how)) = end else {
            self.fail(Check::EpisodeEnd, "replaying the first run did not reach the end of its first episode");
            return;
        };

        let action = spaces.act.sample(actions.bits_mut());
        let label = format!("one more step (action {}) after the episode {how} at step {n}", action.as_action());
        let mut panicked = false;
        let after = match step(&mut **env, action.as_action(), dim) {
            Called::Done((obs, r)) => {
                if !r.reward.is_finite() || obs.iter().any(|v| !v.is_finite()) {
                    self.fail(
                        Check::EpisodeEnd,
                        format!(
                            "{label} returned reward {} and observation {obs:?}; expected finite values or an error",
                            r.reward
                        ),
                    );
                }
                "returns a step (Gymnasium leaves this undefined)".to_string()
            }
            Called::Failed(e) => format!("returns an error ({e})"),
            Called::Panicked(p) => {
                self.fail(Check::EpisodeEnd, format!("{label} panicked: {p}; expected an error or a step"));
                if !self.replace(env) {
                    return;
                }
                panicked = true;
                "panics".to_string()
            }
        };

        // After the end a reset must start an episode that steps; a fresh env replacing a panicked
        // one has no generator yet, so it gets a seed.
        let (seed, reset_label) =
            if panicked { (Some(SEED), "reset(seed=0) on a fresh env") } else { (None, "reset(None) after it") };
        let problem = match reset(&mut **env, seed, dim).done(reset_label) {
            Ok(obs) => obs_problem(&spaces.obs, &obs).map(|problem| format!("{reset_label}: {problem}")),
            Err(why) => Some(why),
        };
        if let Some(problem) = problem {
            self.fail(Check::EpisodeEnd, problem);
            return;
        }
        let action = spaces.act.sample(actions.bits_mut());
        let label = format!("the first step (action {}) after {reset_label}", action.as_action());
        if let Err(why) = step(&mut **env, action.as_action(), dim).done(label) {
            self.fail(Check::EpisodeEnd, why);
        }
        if !self.report.failed(Check::EpisodeEnd) {
            let message = format!(
                "the episode {how} at step {n}; one more step {after}; reset then starts an episode that steps"
            );
            self.pass(Check::EpisodeEnd, message);
        }
    }
}

/// `"1 step"`, `"2 steps"`.
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// `reset_into` on a buffer filled with NaN, so elements the env leaves unwritten show up.
fn reset(env: &mut dyn Env, seed: Option<u64>, dim: usize) -> Called<Vec<f32>> {
    let mut obs = vec![f32::NAN; dim];
    Called::from(catch_panic(|| env.reset_into(seed, None, &mut obs))).map(|_info| obs)
}

/// `step_into` on a buffer filled with NaN, so elements the env leaves unwritten show up.
fn step(env: &mut dyn Env, action: Action<'_>, dim: usize) -> Called<(Vec<f32>, StepResult)> {
    let mut obs = vec![f32::NAN; dim];
    Called::from(catch_panic(|| env.step_into(action, &mut obs))).map(|r| (obs, r))
}

/// The run with seed `seed`: `reset(Some(seed))`, `reset(None)`, then at least [`MIN_STEPS`]
/// steps and until an episode has ended, at most [`MAX_STEPS`], stopping at the first error or
/// panic.
fn run(env: &mut dyn Env, seed: u64, spaces: &Spaces) -> Run {
    let dim = spaces.obs.flat_dim();
    let mut actions = NpRandom::from_seed(ACTION_SEED);
    let mut out = Run { events: Vec::new(), stop: None, steps: 0, episodes: 0 };
    let resets = [(Some(seed), format!("reset(seed={seed})")), (None, format!("reset(None) after reset(seed={seed})"))];
    for (seed, label) in resets {
        if !out.record_reset(env, seed, dim, label) {
            return out;
        }
    }
    while out.steps < MAX_STEPS && (out.steps < MIN_STEPS || out.episodes == 0) {
        let action = spaces.act.sample(actions.bits_mut());
        out.steps += 1;
        let label = format!("step {} (action {})", out.steps, action.as_action());
        let (obs, r) = match step(env, action.as_action(), dim) {
            Called::Done(v) => v,
            other => {
                out.stop = Some(Stop::of(label, other));
                return out;
            }
        };
        let (terminated, truncated) = (r.terminated, r.truncated);
        out.events.push(Event { label, obs, reward: Some(r.reward), terminated, truncated });
        if terminated || truncated {
            out.episodes += 1;
            let label = format!("reset(None) after step {}", out.steps);
            if !out.record_reset(env, None, dim, label) {
                return out;
            }
        }
    }
    out
}

/// Where run `b` first differs from run `a`, as a phrase ("differs at step 3 (action 1): ..."),
/// comparing observations and rewards bit for bit; `None` when the runs are the same.
fn first_difference(a: &Run, b: &Run) -> Option<String> {
    for (x, y) in a.events.iter().zip(&b.events) {
        let at = &y.label;
        let bits = |obs: &[f32], i: usize| obs.get(i).map(|v| v.to_bits());
        if let Some(i) = (0..x.obs.len().max(y.obs.len())).find(|i| bits(&x.obs, *i) != bits(&y.obs, *i)) {
            let (want, got) = (show_f32(x.obs.get(i)), show_f32(y.obs.get(i)));
            return Some(format!("differs at {at}: observation element {i} is {got} instead of {want}"));
        }
        if x.reward.map(f64::to_bits) != y.reward.map(f64::to_bits) {
            let show = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r:?}"));
            return Some(format!("differs at {at}: reward is {} instead of {}", show(y.reward), show(x.reward)));
        }
        if (x.terminated, x.truncated) != (y.terminated, y.truncated) {
            return Some(format!(
                "differs at {at}: terminated/truncated are {}/{} instead of {}/{}",
                y.terminated, y.truncated, x.terminated, x.truncated
            ));
        }
    }
    let same_length = a.events.len() == b.events.len();
    match (&a.stop, &b.stop) {
        (s, t) if same_length && s == t => None,
        (_, Some(t)) if a.events.len() >= b.events.len() => {
            Some(format!("stops where the first run did not: {}", t.describe()))
        }
        (Some(s), _) => Some(format!("goes on where the first run stopped ({})", s.describe())),
        _ => Some(format!("has {} resets and steps instead of {}", b.events.len(), a.events.len())),
    }
}

fn show_f32(v: Option<&f32>) -> String {
    v.map_or("missing".to_string(), |v| format!("{v:?} (bits {:#010x})", v.to_bits()))
}

/// What is wrong with an observation of `space`, if anything: the first non-finite element, or the
/// first element outside the space.
fn obs_problem(space: &Space, obs: &[f32]) -> Option<String> {
    if let Some((i, v)) = obs.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let note = if v.is_nan() { " (the checker fills the buffer with NaN: was the element written?)" } else { "" };
        return Some(format!("observation element {i} is {v}; expected a finite number{note}"));
    }
    let integer_in = |i: usize, v: f32, low: i128, n: u64| -> Option<String> {
        let high = low + i128::from(n);
        let ok = v.fract() == 0.0 && (low as f64..high as f64).contains(&f64::from(v));
        (!ok).then(|| format!("observation element {i} is {v:?}; expected an integer in {low}..{high} for {space}"))
    };
    match space {
        Space::Box(b) => obs.iter().zip(b.low().iter().zip(b.high())).enumerate().find_map(|(i, (v, (l, h)))| {
            (!(l..=h).contains(&v))
                .then(|| format!("observation element {i} is {v:?}, outside [{l:?}, {h:?}] of {space}"))
        }),
        Space::Discrete { n, start } => integer_in(0, obs[0], i128::from(*start), *n),
        Space::MultiDiscrete { nvec } => {
            obs.iter().zip(nvec).enumerate().find_map(|(i, (v, n))| integer_in(i, *v, 0, *n))
        }
    }
}

/// The failures and warnings for a space (`what` is "observation" or "action").
fn space_problems(what: &str, space: &Space) -> (Vec<String>, Vec<String>) {
    let (mut failures, mut warnings) = (Vec::new(), Vec::new());
    match space {
        Space::Discrete { n, start } => {
            if *n == 0 {
                failures.push(format!("{what} space Discrete(0) has no values; expected n >= 1"));
            } else if i64::try_from(*n).ok().and_then(|n| start.checked_add(n)).is_none() {
                failures.push(format!("{what} space Discrete(n={n}, start={start}): start + n does not fit an i64"));
            }
        }
        Space::MultiDiscrete { nvec } => {
            if nvec.is_empty() {
                failures.push(format!("{what} space MultiDiscrete([]) has no elements; expected at least one"));
            }
            if let Some(i) = nvec.iter().position(|n| *n == 0 || i64::try_from(*n).is_err()) {
                failures.push(format!(
                    "{what} space MultiDiscrete({nvec:?}): element {i} has n = {}; expected 1 <= n <= {}",
                    nvec[i],
                    i64::MAX
                ));
            }
        }
        Space::Box(b) => box_problems(what, b, &mut failures, &mut warnings),
    }
    (failures, warnings)
}

fn box_problems(what: &str, b: &BoxSpace, failures: &mut Vec<String>, warnings: &mut Vec<String>) {
    let n: usize = b.shape().iter().product();
    if b.low().len() != n || b.high().len() != n {
        failures.push(format!(
            "{what} space Box of shape {:?} needs {n} bounds on each side; got {} low and {} high",
            b.shape(),
            b.low().len(),
            b.high().len()
        ));
        return;
    }
    if n == 0 {
        failures.push(format!("{what} space Box of shape {:?} has no elements; expected at least one", b.shape()));
    }
    for (i, (&l, &h)) in b.low().iter().zip(b.high()).enumerate() {
        let problem = if l.is_nan() || h.is_nan() {
            "a NaN bound"
        } else if l > h {
            "low > high"
        } else if l == f32::INFINITY || h == f32::NEG_INFINITY {
            "no finite value between the bounds"
        } else {
            continue;
        };
        failures.push(format!(
            "{what} space Box element {i} has bounds [{l:?}, {h:?}]: {problem}; expected finite values with low <= high"
        ));
        return;
    }
    // Gymnasium's passive checker (`gymnasium/utils/passive_env_checker.py`, `_check_box_*_space`)
    // warns when a Box's low and high are equal, and `check_space_limit` (`env_checker.py`) when a
    // bound is infinite; the latter only matters for actions here, which policies keep in bounds.
    if let Some(i) = b.low().iter().zip(b.high()).position(|(l, h)| l == h) {
        let (l, h) = (b.low()[i], b.high()[i]);
        warnings
            .push(format!("{what} space Box element {i} has equal bounds [{l:?}, {h:?}]: it can take one value only"));
    }
    if what == "action"
        && let Some(i) = b.low().iter().zip(b.high()).position(|(l, h)| !l.is_finite() || !h.is_finite())
    {
        let (l, h) = (b.low()[i], b.high()[i]);
        warnings.push(format!(
            "action space Box element {i} has an infinite bound [{l:?}, {h:?}]: policies have no range to act in"
        ));
    }
}

/// Actions outside `space`, each with why, built around `valid`, a sample of the space.
fn invalid_actions(space: &Space, valid: &OwnedAction) -> Vec<(OwnedAction, String)> {
    let mut out = Vec::new();
    match (space, valid) {
        (Space::Discrete { n, start }, _) => {
            if let Some(v) = start.checked_sub(1) {
                out.push((OwnedAction::Discrete(v), format!("below the first value {start}")));
            }
            if let Some(v) = i64::try_from(*n).ok().and_then(|n| start.checked_add(n)) {
                out.push((OwnedAction::Discrete(v), format!("past the last value {}", v - 1)));
            }
            out.push((OwnedAction::Continuous(vec![*start as f32]), "a Box action for a Discrete space".to_string()));
        }
        (Space::Box(b), OwnedAction::Continuous(base)) => {
            let with = |v: f32| {
                let mut a = base.clone();
                a[0] = v;
                OwnedAction::Continuous(a)
            };
            let (l, h) = (b.low()[0], b.high()[0]);
            if h.is_finite() {
                // Far enough above to survive rounding; `inf` when that overflows.
                let above = h + h.abs().max(1.0);
                out.push((with(above), format!("element 0 above its high {h:?}")));
            }
            if l.is_finite() {
                let below = l - l.abs().max(1.0);
                out.push((with(below), format!("element 0 below its low {l:?}")));
            }
            out.push((with(f32::NAN), "element 0 is NaN".to_string()));
            let mut longer = base.clone();
            longer.push(base[0]);
            out.push((
                OwnedAction::Continuous(longer),
                format!("{} elements instead of {}", base.len() + 1, base.len()),
            ));
            out.push((OwnedAction::Discrete(0), "a Discrete action for a Box space".to_string()));
        }
        (Space::MultiDiscrete { nvec }, OwnedAction::MultiDiscrete(base)) => {
            let with = |v: i64| {
                let mut a = base.clone();
                a[0] = v;
                OwnedAction::MultiDiscrete(a)
            };
            // `nvec[0] <= i64::MAX`: the spaces check passed.
            out.push((with(nvec[0] as i64), format!("element 0 equals its n = {}", nvec[0])));
            out.push((with(-1), "element 0 is negative".to_string()));
            let mut longer = base.clone();
            longer.push(0);
            out.push((
                OwnedAction::MultiDiscrete(longer),
                format!("{} elements instead of {}", base.len() + 1, base.len()),
            ));
            out.push((OwnedAction::Discrete(0), "a Discrete action for a MultiDiscrete space".to_string()));
        }
        // `Space::sample` returns an action of the space's own kind; nothing else reaches here.
        _ => {}
    }
    out
}
