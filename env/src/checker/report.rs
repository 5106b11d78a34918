//! What the env checker found: [`CheckReport`], its [`Finding`]s, and their printed form.

use std::fmt;

/// One check the env checker runs, in the order it runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    /// The env can be made (again) without panicking.
    Make,
    /// [`Env::id`](crate::Env::id) is the id the env was made under.
    Id,
    /// The observation and action spaces are well formed: Box bounds of the right length, no NaN,
    /// `low <= high`; Discrete `n > 0`; MultiDiscrete every `n > 0`.
    Spaces,
    /// `step` before the first `reset` is an error, not a step and not a panic.
    StepBeforeReset,
    /// `reset` returns an observation inside the observation space, with and without a seed.
    Reset,
    /// Every step with a valid action succeeds with a finite reward and a finite observation
    /// inside the observation space.
    Step,
    /// A seeded reset followed by seeded actions gives bit-identical trajectories, twice on one
    /// env and once on a fresh one.
    Determinism,
    /// Different seeds give different trajectories (a warning only: some envs start in one state).
    SeedsDiffer,
    /// Actions outside the action space (out of range, NaN, wrong length, wrong kind) are errors.
    InvalidAction,
    /// At the end of an episode, one more step does not panic, and `reset` starts a new episode.
    EpisodeEnd,
}

impl Check {
    /// Every check, in the order the checker runs them.
    pub const ALL: [Check; 10] = [
        Check::Make,
        Check::Id,
        Check::Spaces,
        Check::StepBeforeReset,
        Check::Reset,
        Check::Step,
        Check::Determinism,
        Check::SeedsDiffer,
        Check::InvalidAction,
        Check::EpisodeEnd,
    ];

    /// The check's short name, as printed: `"step-before-reset"`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Make => "make",
            Check::Id => "id",
            Check::Spaces => "spaces",
            Check::StepBeforeReset => "step-before-reset",
            Check::Reset => "reset",
            Check::Step => "step",
            Check::Determinism => "determinism",
            Check::SeedsDiffer => "seeds-differ",
            Check::InvalidAction => "invalid-action",
            Check::EpisodeEnd => "episode-end",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The check passed; the message says what was verified.
    Pass,
    /// Suspicious but allowed; the env still passes.
    Warning,
    /// The env breaks the contract; the message says where, what was expected and what was found.
    Failure,
    /// The check could not run because an earlier one failed.
    Skipped,
}

impl Outcome {
    /// The outcome as printed in a report: `ok`, `warn`, `FAIL` or `skip`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "ok",
            Outcome::Warning => "warn",
            Outcome::Failure => "FAIL",
            Outcome::Skipped => "skip",
        }
    }
}

/// One line of a report: a check, how it came out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check that produced this finding.
    pub check: Check,
    /// Pass, warning, failure or skipped.
    pub outcome: Outcome,
    /// What was verified, or where the env went wrong with what was expected and what was found.
    pub message: String,
}

/// Everything the env checker found for one env, in the order of [`Check::ALL`].
///
/// Every check has at least one finding: a pass, failures (possibly with warnings), warnings
/// alone (the check passed with reservations), or a skip. [`CheckReport::is_ok`] is true when
/// nothing failed or was skipped. `Display` prints a summary line and one line per finding:
///
/// ```text
/// Corridor-v0: 9 of 10 checks passed, 1 failed, 0 warnings
///   ok    make: made twice more without panicking
///   ...
///   FAIL  invalid-action: step with action 2 (outside Discrete(3, start=-1)) returned a step (reward 1); expected an error
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    env: String,
    findings: Vec<Finding>,
}

impl CheckReport {
    pub(crate) fn new(env: &str) -> Self {
        Self { env: env.to_string(), findings: Vec::new() }
    }

    pub(crate) fn push(&mut self, check: Check, outcome: Outcome, message: impl Into<String>) {
        self.findings.push(Finding { check, outcome, message: message.into() });
    }

    /// True when `check` has a failure so far.
    pub(crate) fn failed(&self, check: Check) -> bool {
        self.findings.iter().any(|f| f.check == check && f.outcome == Outcome::Failure)
    }

    /// Orders the findings by check (stable, so each check keeps its own order).
    pub(crate) fn sort(&mut self) {
        self.findings.sort_by_key(|f| f.check);
    }

    /// The env id the report is about.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Every finding, grouped by check in the order of [`Check::ALL`].
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings that are failures.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.with(Outcome::Failure)
    }

    /// The findings that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.with(Outcome::Warning)
    }

    /// The checks that passed: no failure and not skipped, in the order of [`Check::ALL`].
    pub fn passed(&self) -> Vec<Check> {
        Check::ALL
            .into_iter()
            .filter(|c| {
                let mut of_check = self.findings.iter().filter(|f| f.check == *c).peekable();
                of_check.peek().is_some() && of_check.all(|f| matches!(f.outcome, Outcome::Pass | Outcome::Warning))
            })
            .collect()
    }

    /// True when no check failed or was skipped (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.findings.iter().all(|f| matches!(f.outcome, Outcome::Pass | Outcome::Warning))
    }

    fn with(&self, outcome: Outcome) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.outcome == outcome)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = Check::ALL.len();
        let passed = self.passed().len();
        let failed = Check::ALL.iter().filter(|c| self.failed(**c)).count();
        let skipped = Check::ALL
            .iter()
            .filter(|c| self.findings.iter().any(|x| x.check == **c && x.outcome == Outcome::Skipped))
            .count();
        let warnings = self.warnings().count();
        write!(f, "{}: {passed} of {total} checks passed, {failed} failed", self.env)?;
        if skipped > 0 {
            write!(f, ", {skipped} skipped")?;
        }
        writeln!(f, ", {warnings} warning{}", if warnings == 1 { "" } else { "s" })?;
        for x in &self.findings {
            writeln!(f, "  {:<4}  {}: {}", x.outcome.label(), x.check, x.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_checks_and_lists_findings() {
        let mut r = CheckReport::new("Grid-v0");
        for c in Check::ALL {
            r.push(c, Outcome::Pass, "fine");
        }
        assert!(r.is_ok());
        r.findings.retain(|f| f.check != Check::Step && f.check != Check::EpisodeEnd);
        r.push(Check::Step, Outcome::Failure, "step 3: reward is NaN; expected a finite number");
        r.push(Check::Step, Outcome::Warning, "odd");
        r.push(Check::EpisodeEnd, Outcome::Skipped, "needs a working step");
        r.sort();
        assert!(!r.is_ok());
        assert_eq!(r.passed().len(), 8);
        assert_eq!(r.failures().count(), 1);
        let text = r.to_string();
        assert!(text.starts_with("Grid-v0: 8 of 10 checks passed, 1 failed, 1 skipped, 1 warning\n"), "{text}");
        assert!(text.contains("\n  FAIL  step: step 3: reward is NaN; expected a finite number\n"), "{text}");
        assert!(text.ends_with("  skip  episode-end: needs a working step\n"), "{text}");
        let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), 10);
    }
}
