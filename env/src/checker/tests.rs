//! Tests of the env checker: the built-in envs pass, and each deliberately broken env is reported.

use std::cell::Cell;

use serde_json::json;

use super::*;
use crate::env::{Info, check_obs_len, seeded_rng};
use crate::registry::{EnvSpec, Registry};

/// One broken behaviour of [`Walk`] at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    PanicInReset,
    PanicInStep,
    ErrorInStep,
    StepBeforeResetSucceeds,
    StepBeforeResetPanics,
    ClampsActions,
    PanicsOnInvalidAction,
    IgnoresSeed,
    CountsResets,
    ObsOutsideSpace,
    NanReward,
    LeavesObsUnwritten,
    NeverEnds,
    PanicAfterEnd,
    EmptyActionSpace,
}

/// A walk on the cells 0..=10: action -1, 0 or +1 moves; cell 10 terminates, 20 steps truncate.
/// Observation `[cell / 10, steps / 20]`.
#[derive(Debug)]
struct Walk {
    fault: Fault,
    cell: Option<i64>,
    steps: u64,
    resets: i64,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Walk {
    fn new(fault: Fault) -> Self {
        let n = if fault == Fault::EmptyActionSpace { 0 } else { 3 };
        Self {
            fault,
            cell: None,
            steps: 0,
            resets: 0,
            rng: None,
            observation_space: Space::boxed(vec![0.0; 2], vec![1.0; 2], vec![2]).unwrap(),
            action_space: Space::Discrete { n, start: -1 },
        }
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs[0] = self.cell.unwrap_or(0) as f32 / 10.0;
        if self.fault != Fault::LeavesObsUnwritten {
            obs[1] = (self.steps as f32 / 20.0).min(1.0);
        }
    }
}

impl Env for Walk {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, _options: Option<&Kwargs>, obs: &mut [f32]) -> Result<Info> {
        check_obs_len(2, obs)?;
        assert!(self.fault != Fault::PanicInReset, "reset is broken");
        let start = seeded_rng(&mut self.rng, seed).integers(2, 9)?;
        self.cell = Some(match self.fault {
            Fault::IgnoresSeed => 5,
            Fault::CountsResets => 2 + self.resets.min(6),
            _ => start,
        });
        self.resets += 1;
        self.steps = 0;
        self.write_obs(obs);
        if self.fault == Fault::ObsOutsideSpace {
            obs[0] += 1.5;
        }
        Ok(Info::new())
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepResult> {
        check_obs_len(2, obs)?;
        let cell = match (self.cell, self.fault) {
            (Some(c), _) => c,
            (None, Fault::StepBeforeResetSucceeds) => 0,
            (None, Fault::StepBeforeResetPanics) => panic!("no state: reset first"),
            (None, _) => return Err(EnvError::StepBeforeReset { env: self.id().to_string() }),
        };
        let moves = [-1, 0, 1];
        let delta = match (action, self.fault) {
            (Action::Discrete(a), Fault::ClampsActions) => a.clamp(-1, 1),
            (_, Fault::ClampsActions) => 0,
            (Action::Discrete(a), Fault::PanicsOnInvalidAction) => moves[(a + 1) as usize],
            (_, Fault::PanicsOnInvalidAction) => panic!("not a discrete action"),
            _ => {
                self.action_space.check(self.id(), action)?;
                let Action::Discrete(a) = action else { unreachable!("checked") };
                a
            }
        };
        let over = self.cell == Some(10) || self.steps >= 20;
        assert!(!(over && self.fault == Fault::PanicAfterEnd), "the episode is over");
        self.steps += 1;
        if self.fault == Fault::PanicInStep && self.steps == 5 {
            panic!("step 5 is broken");
        }
        if self.fault == Fault::ErrorInStep && self.steps == 7 {
            return Err(EnvError::custom(self.id(), "the simulator diverged at step 7"));
        }
        let cell = (cell + delta).clamp(0, 10);
        self.cell = Some(cell);
        self.write_obs(obs);
        let terminated = cell == 10 && self.fault != Fault::NeverEnds;
        let truncated = self.steps >= 20 && self.fault != Fault::NeverEnds;
        let reward = if self.fault == Fault::NanReward && self.steps == 3 {
            f64::NAN
        } else if terminated {
            1.0
        } else {
            -0.1
        };
        Ok(StepResult { reward, terminated, truncated, info: Info::new() })
    }
}

/// Checks `Walk` with `fault`, made through a registry as `Walk-v0`.
fn check(fault: Fault) -> CheckReport {
    let mut registry = Registry::empty();
    registry.register(EnvSpec::new("Walk-v0", move |_| Ok(Box::new(Walk::new(fault))))).unwrap();
    check_env_with("Walk-v0", || registry.make("Walk-v0", &Kwargs::new())).unwrap()
}

fn outcomes(report: &CheckReport, check: Check) -> Vec<(Outcome, &str)> {
    report.findings().iter().filter(|f| f.check == check).map(|f| (f.outcome, f.message.as_str())).collect()
}

/// Asserts that `check` failed with a message containing every one of `needles`.
fn assert_fails(report: &CheckReport, check: Check, needles: &[&str]) {
    let found = report.failures().any(|f| f.check == check && needles.iter().all(|n| f.message.contains(n)));
    assert!(found, "expected a {check} failure mentioning {needles:?} in\n{report}");
    assert!(!report.is_ok());
}

#[test]
fn builtin_envs_pass_every_check() {
    for id in Registry::with_builtins().ids() {
        let report = check_env(&id, &Kwargs::new()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.warnings().count(), 0, "{report}");
        assert_eq!(report.passed(), Check::ALL, "{report}");
        assert_eq!(report.env(), id);
    }
}

#[test]
fn kwargs_reach_the_env_and_make_errors_are_returned() {
    let kwargs = json!({"g": 9.81, "max_episode_steps": 50}).as_object().unwrap().clone();
    let report = check_env("Pendulum-v1", &kwargs).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(report.to_string().contains("episode truncated at step 50"), "{report}");
    assert!(matches!(check_env("Walk-v9", &Kwargs::new()), Err(EnvError::UnknownEnv { .. })));
    let bad = json!({"gravity": 1.0}).as_object().unwrap().clone();
    assert!(matches!(check_env("CartPole-v1", &bad), Err(EnvError::InvalidKwarg { .. })));
}

#[test]
fn a_correct_user_env_passes_and_the_report_prints_every_check() {
    let report = check(Fault::None);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings().count(), 0, "{report}");
    let text = report.to_string();
    assert!(text.starts_with("Walk-v0: 10 of 10 checks passed, 0 failed, 0 warnings\n"), "{text}");
    for check in Check::ALL {
        assert!(text.contains(&format!("\n  ok    {check}: ")), "{check} missing from\n{text}");
    }
    assert!(text.contains("ok    id: Env::id() is \"Walk-v0\""), "{text}");
    assert!(
        text.contains("-2, 2, [-1.0] are rejected with EnvError::InvalidAction (outside Discrete(3, start=-1))"),
        "{text}"
    );
}

#[test]
fn wrong_id_is_reported() {
    // Not made through a registry: `id()` is the default, the type name.
    let report = check_env_with("Walk-v0", || Ok(Box::new(Walk::new(Fault::None)))).unwrap();
    assert_fails(&report, Check::Id, &["Env::id() is \"rl_env::checker::tests::Walk\"", "expected", "\"Walk-v0\""]);
    assert_eq!(report.failures().count(), 1, "{report}");
}

#[test]
fn a_panicking_reset_is_reported_and_later_checks_skipped() {
    let report = check(Fault::PanicInReset);
    assert_fails(&report, Check::Reset, &["reset(seed=0) panicked: reset is broken"]);
    for c in [Check::Step, Check::Determinism, Check::InvalidAction, Check::EpisodeEnd] {
        assert_eq!(outcomes(&report, c), [(Outcome::Skipped, "not run: reset does not work")]);
    }
    assert_eq!(report.passed(), [Check::Make, Check::Id, Check::Spaces, Check::StepBeforeReset]);
}

#[test]
fn a_panicking_step_is_reported_with_its_step_and_action() {
    let report = check(Fault::PanicInStep);
    assert_fails(&report, Check::Step, &["step 5 (action ", ") panicked: step 5 is broken"]);
    // The panic repeats exactly, so the runs are still deterministic.
    assert!(report.passed().contains(&Check::Determinism), "{report}");
    assert_eq!(outcomes(&report, Check::EpisodeEnd)[0].0, Outcome::Skipped);
}

#[test]
fn an_error_for_a_valid_action_is_reported() {
    let report = check(Fault::ErrorInStep);
    assert_fails(
        &report,
        Check::Step,
        &["step 7 (action", "returned an error: Walk-v0: the simulator diverged at step 7"],
    );
}

#[test]
fn stepping_before_reset_must_be_an_error() {
    let report = check(Fault::StepBeforeResetSucceeds);
    assert_fails(&report, Check::StepBeforeReset, &["returned a step (reward -0.1)", "expected an error"]);
    let report = check(Fault::StepBeforeResetPanics);
    assert_fails(&report, Check::StepBeforeReset, &["panicked: no state: reset first", "expected an error"]);
    assert_eq!(report.failures().count(), 1, "{report}");
}

#[test]
fn clamped_and_panicking_invalid_actions_are_reported() {
    let report = check(Fault::ClampsActions);
    assert_fails(
        &report,
        Check::InvalidAction,
        &["action -2 (below the first value -1) returned a step", "not a clamp"],
    );
    assert_fails(&report, Check::InvalidAction, &["action 2 (past the last value 1) returned a step"]);
    assert_fails(&report, Check::InvalidAction, &["action [-1.0] (a Box action for a Discrete space) returned a step"]);
    let report = check(Fault::PanicsOnInvalidAction);
    assert_fails(&report, Check::InvalidAction, &["action 2 (past the last value 1) panicked: index out of bounds"]);
    assert_fails(
        &report,
        Check::InvalidAction,
        &["action [-1.0] (a Box action for a Discrete space) panicked: not a discrete"],
    );
    assert!(report.passed().contains(&Check::EpisodeEnd), "{report}");
}

#[test]
fn a_seed_that_changes_nothing_is_only_a_warning() {
    let report = check(Fault::IgnoresSeed);
    assert!(report.is_ok(), "{report}");
    let warnings: Vec<_> = report.warnings().collect();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0].check, Check::SeedsDiffer);
    assert!(warnings[0].message.contains("seeds 0 and 1 give identical runs"), "{report}");
}

#[test]
fn state_kept_across_resets_breaks_determinism() {
    let report = check(Fault::CountsResets);
    assert_fails(
        &report,
        Check::Determinism,
        &["on the same env, a second run", "differs at reset(seed=0): observation element 0"],
    );
    assert_fails(&report, Check::Determinism, &["on a fresh env"]);
    assert_eq!(outcomes(&report, Check::EpisodeEnd)[0].0, Outcome::Skipped);
}

#[test]
fn observations_outside_the_space_are_reported() {
    let report = check(Fault::ObsOutsideSpace);
    assert_fails(&report, Check::Reset, &["reset(seed=0): observation element 0 is", "outside [0.0, 1.0]"]);
    assert_fails(&report, Check::Step, &["reset(seed=0): observation element 0", "later resets or steps"]);
}

#[test]
fn nan_rewards_and_unwritten_observations_are_reported() {
    let report = check(Fault::NanReward);
    assert_fails(&report, Check::Step, &["step 3 (action", "reward is NaN; expected a finite number", "later steps"]);
    let report = check(Fault::LeavesObsUnwritten);
    assert_fails(&report, Check::Reset, &["observation element 1 is NaN", "was the element written?"]);
}

#[test]
fn an_env_that_never_ends_gets_a_warning() {
    let report = check(Fault::NeverEnds);
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        outcomes(&report, Check::EpisodeEnd),
        [(
            Outcome::Warning,
            "no episode ended in 10000 steps of random actions, so the end of an episode was not checked"
        )]
    );
}

#[test]
fn a_panic_when_stepping_a_finished_episode_is_reported() {
    let report = check(Fault::PanicAfterEnd);
    assert_fails(
        &report,
        Check::EpisodeEnd,
        &["one more step (action", "after the episode", "panicked: the episode is over"],
    );
    assert_eq!(report.failures().count(), 1, "{report}");
}

#[test]
fn bad_spaces_are_reported_and_nothing_is_stepped() {
    let report = check(Fault::EmptyActionSpace);
    assert_fails(&report, Check::Spaces, &["action space Discrete(0) has no values; expected n >= 1"]);
    assert_eq!(
        outcomes(&report, Check::InvalidAction),
        [(Outcome::Skipped, "not run: the spaces are not well formed")]
    );
}

#[test]
fn space_problems_cover_box_and_multi_discrete() {
    // Deserializing skips `BoxSpace::new`'s validation, as a hand-written space might.
    let boxed = |low: Vec<f32>, high: Vec<f32>, shape: Vec<usize>| -> Space {
        serde_json::from_value(json!({"Box": {"low": low, "high": high, "shape": shape}})).unwrap()
    };
    let fails = |what: &str, space: &Space| space_problems(what, space).0.join("; ");
    let warns = |what: &str, space: &Space| space_problems(what, space).1.join("; ");
    assert_eq!(
        fails("observation", &boxed(vec![1.0], vec![0.0], vec![1])),
        "observation space Box element 0 has bounds [1.0, 0.0]: low > high; expected finite values with low <= high"
    );
    assert!(fails("action", &boxed(vec![0.0], vec![1.0], vec![2])).contains("needs 2 bounds on each side; got 1 low"));
    assert!(fails("action", &boxed(vec![], vec![], vec![0])).contains("has no elements"));
    let inf = f32::INFINITY;
    let only_inf = Space::boxed(vec![inf], vec![inf], vec![1]).unwrap();
    assert!(fails("observation", &only_inf).contains("no finite value between the bounds"));
    let unbounded = Space::boxed(vec![-inf, 0.0], vec![inf, 0.0], vec![2]).unwrap();
    assert_eq!(fails("observation", &unbounded), "");
    assert_eq!(
        warns("observation", &unbounded),
        "observation space Box element 1 has equal bounds [0.0, 0.0]: it can take one value only"
    );
    assert!(warns("action", &unbounded).contains("action space Box element 0 has an infinite bound [-inf, inf]"));
    let md = Space::MultiDiscrete { nvec: vec![3, 0] };
    assert!(fails("action", &md).contains("element 1 has n = 0"));
    assert!(fails("action", &Space::MultiDiscrete { nvec: vec![] }).contains("has no elements"));
    assert!(fails("action", &Space::Discrete { n: 2, start: i64::MAX }).contains("does not fit an i64"));
}

#[test]
fn invalid_actions_lie_outside_their_space() {
    let spaces = [
        Space::Discrete { n: 3, start: -1 },
        Space::boxed(vec![-2.0, 0.0], vec![2.0, f32::INFINITY], vec![2]).unwrap(),
        Space::boxed(vec![f32::MIN], vec![f32::MAX], vec![1]).unwrap(),
        Space::MultiDiscrete { nvec: vec![2, 5] },
    ];
    for space in spaces {
        let valid = space.sample(NpRandom::from_seed(0).bits_mut());
        let invalid = invalid_actions(&space, &valid);
        assert!(invalid.len() >= 3, "{space}");
        for (action, why) in invalid {
            assert!(!space.contains(action.as_action()), "{space}: {action:?} ({why})");
        }
    }
}

#[test]
fn a_panicking_or_failing_make_is_reported() {
    let report = check_env_with("Walk-v0", || -> Result<Box<dyn Env>> { panic!("no such map") }).unwrap();
    assert_fails(&report, Check::Make, &["making the env panicked: no such map"]);
    assert_eq!(outcomes(&report, Check::Id), [(Outcome::Skipped, "not run: the env could not be made")]);
    assert!(report.passed().is_empty());

    // The first make succeeds, every later one fails.
    let made = Cell::new(0);
    let report = check_env_with("Walk-v0", || {
        made.set(made.get() + 1);
        if made.get() == 1 {
            Ok(Box::new(Walk::new(Fault::None)) as Box<dyn Env>)
        } else {
            Err(EnvError::custom("Walk-v0", "out of maps"))
        }
    })
    .unwrap();
    assert_fails(
        &report,
        Check::Make,
        &["making the env again (for step before reset) returned an error: Walk-v0: out of maps"],
    );
    assert_eq!(outcomes(&report, Check::StepBeforeReset), [(Outcome::Skipped, "not run: no fresh env")]);
}
