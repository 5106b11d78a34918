//! CrashingCartPole-v1: CartPole-v1 plus injected faults, for testing fault tolerance (like
//! RLlib's `CartPoleCrashing`).

use std::time::Duration;

use crate::env::{Env, EnvContext, Info, Kwargs, StepResult};
use crate::error::{EnvError, Result};
use crate::registry::KwargReader;
use crate::rng::{NpRandom, mix_seed};
use crate::space::{Action, Space};
use crate::state::{self, StateReader};

use super::CartPole;

const ID: &str = "CrashingCartPole-v1";

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    /// `step` panics with a message naming the env, worker, sub-env and step.
    Panic,
    /// `step` returns an [`EnvError::Custom`] with that message.
    Error,
    /// The process aborts: only for workers that run in their own process.
    Abort,
    /// `step` sleeps `stall_s` seconds, then continues normally.
    Stall,
}

impl CrashKind {
    const ALL: [CrashKind; 4] = [CrashKind::Panic, CrashKind::Error, CrashKind::Abort, CrashKind::Stall];

    /// The kind's name in the `crash_kinds` keyword argument.
    pub fn name(self) -> &'static str {
        match self {
            CrashKind::Panic => "panic",
            CrashKind::Error => "error",
            CrashKind::Abort => "abort",
            CrashKind::Stall => "stall",
        }
    }
}

/// CartPole-v1 (same observations, rewards and seeding) that injects faults into `step`.
///
/// Keyword arguments:
/// - `p_crash` (number in [0, 1], default 0): probability of a fault at each step, drawn from a
///   generator of its own, seeded from `crash_seed` and the [`EnvContext`], so the physics
///   trajectory is CartPole's whatever faults are drawn.
/// - `crash_after_n_steps` (integer, default 0 = never): a fault at the N-th call to `step` since
///   the instance was built, counted across episodes; it fires once per instance.
/// - `crash_on_worker_indices`, `crash_on_vector_indices` (integer lists, default `[]` = all):
///   only instances whose context matches inject faults.
/// - `crash_kinds` (string list, default `["panic"]`): one of `panic`, `error`, `abort`, `stall`
///   for every faulty worker, or one per entry of `crash_on_worker_indices`.
/// - `stall_s` (number, default 10): how long a `stall` sleeps.
/// - `crash_until_restart` (integer, default 0 = always): inject faults only while the context's
///   `restarts` is below it, so a restarted env eventually runs clean.
/// - `crash_seed` (integer, default 0): seeds the fault generator.
///
/// A faulted `step` (panic or error) leaves the physics untouched: the next step continues from
/// the same state.
///
/// # Examples
///
/// ```
/// use rl_env::{Action, Env, EnvContext, Kwargs, make_with_context};
///
/// let kwargs: Kwargs = serde_json::from_str(
///     r#"{"crash_after_n_steps": 2, "crash_on_worker_indices": [1], "crash_kinds": ["error"]}"#,
/// ).unwrap();
/// let ctx = EnvContext { worker_index: 1, ..EnvContext::default() };
/// let mut env = make_with_context("CrashingCartPole-v1", &kwargs, &ctx)?;
/// env.reset(Some(0), None)?;
/// env.step(Action::Discrete(0))?;
/// let err = env.step(Action::Discrete(0)).unwrap_err();
/// assert_eq!(err.to_string(), "CrashingCartPole-v1: injected error at step 2 (worker 1, sub-env 0, restarts 0)");
/// env.step(Action::Discrete(0))?;
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CrashingCartPole {
    cartpole: CartPole,
    ctx: EnvContext,
    p_crash: f64,
    crash_after_n_steps: u64,
    crash_on_worker_indices: Vec<u32>,
    crash_on_vector_indices: Vec<u32>,
    crash_kinds: Vec<CrashKind>,
    stall_s: f64,
    crash_until_restart: u64,
    /// Calls to `step` since the instance was built (or the count restored).
    steps: u64,
    /// Whether the `crash_after_n_steps` fault has fired.
    fired: bool,
    fault_rng: NpRandom,
}

impl CrashingCartPole {
    /// The env from its keyword arguments (see the type docs), in the context `ctx`.
    pub fn from_kwargs(kwargs: &Kwargs, ctx: &EnvContext) -> Result<Self> {
        let mut kw = KwargReader::new(ID, kwargs);
        let p_crash = kw.f64("p_crash", 0.0)?;
        if !(0.0..=1.0).contains(&p_crash) {
            return Err(kw.invalid("p_crash", "a probability in [0, 1]", p_crash));
        }
        let crash_after_n_steps = kw.u64("crash_after_n_steps", 0)?;
        let indices = |kw: &mut KwargReader, key: &'static str| -> Result<Vec<u32>> {
            let list = kw.i64_list(key, &[])?;
            list.iter()
                .map(|i| u32::try_from(*i).map_err(|_| kw.invalid(key, "a list of indices from 0 to 4294967295", i)))
                .collect()
        };
        let crash_on_worker_indices = indices(&mut kw, "crash_on_worker_indices")?;
        let crash_on_vector_indices = indices(&mut kw, "crash_on_vector_indices")?;
        let names = kw.string_list("crash_kinds", &["panic"])?;
        let crash_kinds = names
            .iter()
            .map(|n| {
                CrashKind::ALL.into_iter().find(|k| k.name() == n).ok_or_else(|| {
                    kw.invalid(
                        "crash_kinds",
                        "a list of \"panic\", \"error\", \"abort\" or \"stall\"",
                        format!("{n:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let n_workers = crash_on_worker_indices.len();
        if crash_kinds.len() != 1 && (n_workers == 0 || crash_kinds.len() != n_workers) {
            let expected = format!("one kind, or one per entry of crash_on_worker_indices ({n_workers})");
            return Err(kw.invalid("crash_kinds", &expected, format!("{} kinds", crash_kinds.len())));
        }
        let stall_s = kw.f64("stall_s", 10.0)?;
        if !(stall_s >= 0.0 && Duration::try_from_secs_f64(stall_s).is_ok()) {
            return Err(kw.invalid("stall_s", "a non-negative number of seconds", stall_s));
        }
        let crash_until_restart = kw.u64("crash_until_restart", 0)?;
        let crash_seed = kw.u64("crash_seed", 0)?;
        kw.finish()?;
        let seed = [ctx.worker_index, ctx.vector_index, ctx.restarts]
            .into_iter()
            .fold(crash_seed, |s, v| mix_seed(s, u64::from(v)));
        Ok(Self {
            cartpole: CartPole::new(),
            ctx: *ctx,
            p_crash,
            crash_after_n_steps,
            crash_on_worker_indices,
            crash_on_vector_indices,
            crash_kinds,
            stall_s,
            crash_until_restart,
            steps: 0,
            fired: false,
            fault_rng: NpRandom::from_seed(seed),
        })
    }

    /// The kind of fault this instance injects, or `None` when its context is not a faulty one.
    pub fn fault_kind(&self) -> Option<CrashKind> {
        let ctx = &self.ctx;
        if self.crash_until_restart > 0 && u64::from(ctx.restarts) >= self.crash_until_restart {
            return None;
        }
        if !self.crash_on_vector_indices.is_empty() && !self.crash_on_vector_indices.contains(&ctx.vector_index) {
            return None;
        }
        if self.crash_on_worker_indices.is_empty() {
            return Some(self.crash_kinds[0]);
        }
        let pos = self.crash_on_worker_indices.iter().position(|w| *w == ctx.worker_index)?;
        Some(if self.crash_kinds.len() == 1 { self.crash_kinds[0] } else { self.crash_kinds[pos] })
    }

    /// Carries out a fault of `kind` at the current step.
    fn inject(&self, kind: CrashKind) -> Result<()> {
        let ctx = &self.ctx;
        let what = format!(
            "injected {} at step {} (worker {}, sub-env {}, restarts {})",
            kind.name(),
            self.steps,
            ctx.worker_index,
            ctx.vector_index,
            ctx.restarts
        );
        match kind {
            CrashKind::Panic => panic!("{ID}: {what}"),
            CrashKind::Error => Err(EnvError::custom(ID, what)),
            CrashKind::Abort => std::process::abort(),
            CrashKind::Stall => {
                std::thread::sleep(Duration::from_secs_f64(self.stall_s));
                Ok(())
            }
        }
    }
}

impl Env for CrashingCartPole {
    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> &Space {
        self.cartpole.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.cartpole.action_space()
    }

    /// The CartPole state, the context, the step count, whether the one-off fault fired, and the
    /// fault generator. Restoring sets the context too, so faults follow the saved instance's.
    fn save_state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "type": ID,
            "cartpole": self.cartpole.save_state()?,
            "worker_index": self.ctx.worker_index,
            "vector_index": self.ctx.vector_index,
            "restarts": self.ctx.restarts,
            "steps": self.steps,
            "fired": self.fired,
            "fault_rng": state::rng_state(Some(&self.fault_rng)),
        }))
    }

    fn restore_state(&mut self, saved: &serde_json::Value) -> Result<()> {
        let r = StateReader::new(ID, saved, ID)?;
        let ctx = EnvContext {
            worker_index: r.u32("worker_index")?,
            vector_index: r.u32("vector_index")?,
            restarts: r.u32("restarts")?,
        };
        let (steps, fired) = (r.u64("steps")?, r.bool("fired")?);
        let fault_rng = r.rng("fault_rng")?.ok_or_else(|| r.invalid("fault_rng", "a generator state"))?;
        self.cartpole.restore_state(r.value("cartpole")?)?;
        (self.ctx, self.steps, self.fired, self.fault_rng) = (ctx, steps, fired, fault_rng);
        Ok(())
    }

    fn reset_into(&mut self, seed: Option<u64>, options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        self.cartpole.reset_into(seed, options, obs)
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        self.steps += 1;
        if let Some(kind) = self.fault_kind() {
            let after = self.crash_after_n_steps > 0 && !self.fired && self.steps >= self.crash_after_n_steps;
            // Drawn at every step whatever else happens, so the fault stream depends on the step count only.
            let random = self.p_crash > 0.0 && self.fault_rng.random() < self.p_crash;
            self.fired |= after;
            if after || random {
                self.inject(kind)?;
            }
        }
        self.cartpole.step_into(action, obs)
    }
}

#[cfg(test)]
mod tests;
