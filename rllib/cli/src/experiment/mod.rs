//! Reproduction runs: a YAML spec of configs x seeds, trained in parallel, compared with published numbers.
//!
//! A spec lists rows; each row is one config trained with several seeds. [`run_experiment`]
//! trains every (row, seed) as a separate `rl train` child process, so runs share nothing (each
//! has its own runtime, and a crash ends one run, not the experiment), with at most `jobs` at a
//! time. A run directory is complete once `rl train` has written its `summary.json` (it writes
//! that file last), so a rerun reuses complete runs and retrains the rest: an interrupted
//! experiment resumes where it stopped.
//!
//! The result is a markdown table comparing each row with its reference, plus learning-curve
//! plots. A row's number is one of two [`Metric`]s: the final training return averaged over
//! seeds, or the final deterministic evaluation episodes of all seeds pooled (how
//! rl-baselines3-zoo reports its benchmark). `±` is always the population standard deviation.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::plot;
use rllib::run_dir::{RunDir, SUMMARY_FILE, TrainSummary};

/// Lines of a failed run's log shown in its error.
const LOG_TAIL_LINES: usize = 15;

/// Why an experiment spec could not be used; names the file and, where known, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// Which result of a run a row reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Per seed, the mean return of the last 100 training episodes at the end of training; the
    /// row reports mean and population std over seeds.
    Train,
    /// The final deterministic evaluation episodes of all seeds pooled; the row reports mean and
    /// population std over those episodes.
    Evaluation,
}

impl Metric {
    /// The name used in specs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Train => "train",
            Metric::Evaluation => "evaluation",
        }
    }
}

/// A published result to compare a row with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Mean return.
    pub mean: f64,
    /// Standard deviation of the return (at least 0).
    pub std: f64,
    /// Where the numbers come from.
    pub source: String,
}

/// One row of a spec: a config trained with several seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSpec {
    /// The row's name in tables and plots (unique within the spec).
    pub label: String,
    /// The label as a lowercase file name (unique within the spec).
    pub slug: String,
    /// The training config, resolved relative to the spec file's directory.
    pub config: PathBuf,
    /// The seeds (at least one, distinct).
    pub seeds: Vec<u64>,
    /// Extra `--set key=value` overrides for `rl train`.
    pub set: Vec<String>,
    /// The result this row reports.
    pub metric: Metric,
    /// The published result, if any.
    pub reference: Option<Reference>,
    /// Free text printed under the table (e.g. why a setting deviates from the reference).
    pub note: Option<String>,
}

/// A parsed and validated experiment spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec {
    /// The experiment's name, used for output file names (default: the spec file's stem).
    pub name: String,
    /// What the experiment reproduces.
    pub description: String,
    /// The rows (at least one).
    pub rows: Vec<RowSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    rows: Spanned<Vec<RawRow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    label: Spanned<String>,
    config: Spanned<PathBuf>,
    seeds: Spanned<Vec<u64>>,
    #[serde(default)]
    set: Vec<Spanned<String>>,
    metric: Metric,
    #[serde(default)]
    reference: Option<RawReference>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    mean: Spanned<f64>,
    std: Spanned<f64>,
    source: String,
}

impl ExperimentSpec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = fs::read_to_string(path)
            .map_err(|e| SpecError(format!("cannot read experiment spec {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parses spec `text` read from `path`, which names the spec in errors, gives the default
    /// name (its stem) and the directory that row configs are relative to.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        let source = path.display().to_string();
        let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e.to_string(), &source))?;
        let at = |loc: &Location, msg: String| match loc.line() {
            0 => SpecError(format!("{source}: {msg}")),
            line => SpecError(format!("{source}:{line}: {msg}")),
        };
        let name = match raw.name {
            Some(n) => check_name(&n.value).map_err(|m| at(&n.referenced, format!("name: {m}")))?,
            None => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                check_name(&stem).map_err(|m| SpecError(format!("{source}: the file name {m}; set `name:`")))?
            }
        };
        if raw.rows.value.is_empty() {
            return Err(at(&raw.rows.referenced, "rows: must list at least one row".into()));
        }
        let base = path.parent().unwrap_or(Path::new(""));
        let mut rows: Vec<RowSpec> = Vec::new();
        let mut label_lines = Vec::new();
        for raw_row in raw.rows.value {
            let line = raw_row.label.referenced.line();
            let row = check_row(raw_row, base, &rows, &label_lines).map_err(|(loc, m)| at(&loc, m))?;
            rows.push(row);
            label_lines.push(line);
        }
        Ok(Self { name, description: raw.description.trim().to_string(), rows })
    }
}

/// Validates one row against the rows before it; errors carry the offending value's location.
fn check_row(raw: RawRow, base: &Path, earlier: &[RowSpec], lines: &[u64]) -> Result<RowSpec, (Location, String)> {
    let label = raw.label.value.trim().to_string();
    let fail = |loc: Location, m: String| Err((loc, format!("row {label:?}: {m}")));
    let slug = slug(&label);
    if slug.is_empty() {
        return Err((raw.label.referenced, "label: must contain a letter or digit".into()));
    }
    if let Some(i) = earlier.iter().position(|r| r.slug == slug) {
        let what = if earlier[i].label == label {
            "is already the label of".into()
        } else {
            format!("gives the same file name {slug:?} as")
        };
        return Err((raw.label.referenced, format!("label: {label:?} {what} the row on line {}", lines[i])));
    }
    let seeds = &raw.seeds.value;
    if seeds.is_empty() {
        return fail(raw.seeds.referenced, "seeds: must list at least one seed".into());
    }
    if let Some(s) = seeds.iter().enumerate().find(|(i, s)| seeds[..*i].contains(s)).map(|(_, s)| s) {
        return fail(raw.seeds.referenced, format!("seeds: seed {s} is listed twice"));
    }
    if let Some(bad) = raw.set.iter().find(|s| !s.value.contains('=')) {
        return fail(bad.referenced, format!("set: expected key=value, got {:?}", bad.value));
    }
    let config = base.join(&raw.config.value);
    if !config.is_file() {
        return fail(raw.config.referenced, format!("config: no such file {}", config.display()));
    }
    let reference = match raw.reference {
        None => None,
        Some(r) => {
            if !r.mean.value.is_finite() {
                return fail(
                    r.mean.referenced,
                    format!("reference.mean: must be a finite number, got {}", r.mean.value),
                );
            }
            if !(r.std.value >= 0.0 && r.std.value.is_finite()) {
                return fail(
                    r.std.referenced,
                    format!("reference.std: must be a non-negative number, got {}", r.std.value),
                );
            }
            Some(Reference { mean: r.mean.value, std: r.std.value, source: r.source })
        }
    };
    Ok(RowSpec {
        label,
        slug,
        config,
        seeds: raw.seeds.value,
        set: raw.set.into_iter().map(|s| s.value).collect(),
        metric: raw.metric,
        reference,
        note: raw.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
    })
}

/// Accepts names usable as file names: letters, digits, `-`, `_` and `.`.
fn check_name(name: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(ok) {
        return Err(format!("{name:?} must be non-empty and consist of letters, digits, '-', '_' and '.'"));
    }
    Ok(name.to_string())
}

/// A label as a file name: lowercase ASCII letters and digits, other runs of characters as one `-`.
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Rewrites a serde-saphyr error for `source`, adding a suggestion for unknown keys.
fn yaml_error(message: &str, source: &str) -> SpecError {
    SpecError(format!("{source}: {}", rllib::config::yaml_error_message(message, source)))
}

/// A mean and a population standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The population standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Mean and population std of `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        Some(Self { mean: rllib::stats::mean(values), std: rllib::stats::std(values) })
    }
}

/// A row's result over the successful runs of its seeds (see [`Metric`]); `None` if no run has
/// a value for the metric.
pub fn aggregate(metric: Metric, runs: &[&TrainSummary]) -> Option<MeanStd> {
    let values: Vec<f64> = match metric {
        Metric::Train => runs.iter().filter_map(|r| r.train_episode_return_mean).collect(),
        Metric::Evaluation => runs.iter().flat_map(|r| r.final_evaluation.returns.iter().copied()).collect(),
    };
    MeanStd::of(&values)
}

/// Whether `mean` is within two reference standard deviations of the reference mean (with a
/// 1e-9 tolerance). A reference with std 0 (a perfect score such as CartPole's 500 +- 0) has no
/// spread to compare with: there the result must reach 97.5% of it, i.e. lie within 2.5% of
/// its magnitude.
pub fn within_two_std(mean: f64, reference: &Reference) -> bool {
    let band = if reference.std == 0.0 { 0.025 * reference.mean.abs() } else { 2.0 * reference.std };
    (mean - reference.mean).abs() <= band + 1e-9
}

/// The outcome of one row: its result and how its runs went.
#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    /// The row's label.
    pub label: String,
    /// The metric reported.
    pub metric: Metric,
    /// The result over the successful runs; `None` if none has a value.
    pub result: Option<MeanStd>,
    /// The published result, if any.
    pub reference: Option<Reference>,
    /// All seeds of the row.
    pub seeds: Vec<u64>,
    /// Seeds whose run failed.
    pub failed_seeds: Vec<u64>,
    /// Seeds whose run succeeded without a value for the metric (no finished training episode).
    pub seeds_without_value: Vec<u64>,
    /// Env steps of each successful run.
    pub env_steps: Vec<u64>,
    /// Training wall-clock seconds of each successful run.
    pub train_seconds: Vec<f64>,
    /// The row's note.
    pub note: Option<String>,
    /// How the runs treated time-limit truncation (`bootstrap_truncated` of their recorded
    /// config); `None` when unknown (no successful run).
    pub bootstrap_truncated: Option<bool>,
}

impl RowResult {
    /// Builds a row's result from its seeds' summaries (`None` for a failed run), in seed order.
    pub fn new(row: &RowSpec, runs: &[Option<&TrainSummary>]) -> Self {
        let ok: Vec<(u64, &TrainSummary)> =
            row.seeds.iter().zip(runs).filter_map(|(s, r)| r.map(|r| (*s, r))).collect();
        let summaries: Vec<&TrainSummary> = ok.iter().map(|(_, r)| *r).collect();
        let has_value = |r: &TrainSummary| match row.metric {
            Metric::Train => r.train_episode_return_mean.is_some(),
            Metric::Evaluation => !r.final_evaluation.returns.is_empty(),
        };
        Self {
            label: row.label.clone(),
            metric: row.metric,
            result: aggregate(row.metric, &summaries),
            reference: row.reference.clone(),
            seeds: row.seeds.clone(),
            failed_seeds: row.seeds.iter().zip(runs).filter(|(_, r)| r.is_none()).map(|(s, _)| *s).collect(),
            seeds_without_value: ok.iter().filter(|(_, r)| !has_value(r)).map(|(s, _)| *s).collect(),
            env_steps: summaries.iter().map(|r| r.env_steps).collect(),
            train_seconds: summaries.iter().map(|r| r.train_seconds).collect(),
            note: row.note.clone(),
            bootstrap_truncated: None,
        }
    }
}

/// How a results table was produced, printed under its title.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// The command that produced it.
    pub command: String,
    /// The date, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// CPU cores available (`std::thread::available_parallelism`).
    pub cores: usize,
    /// Runs trained in parallel.
    pub jobs: usize,
    /// The library version.
    pub version: String,
}

/// The markdown results page: title, description, provenance, the table, sources and notes.
pub fn render_table(spec: &ExperimentSpec, provenance: &Provenance, rows: &[RowResult]) -> String {
    let p = provenance;
    let mut out = format!("# {}\n\n", spec.name);
    if !spec.description.is_empty() {
        out += &format!("{}\n\n", spec.description);
    }
    let _ = writeln!(
        out,
        "Produced by `{}` on {} (UTC) with rllib {}, {} on {} cores.\n",
        p.command,
        p.date,
        p.version,
        if p.jobs == 1 { "one run at a time".to_string() } else { format!("{} runs in parallel", p.jobs) },
        p.cores
    );
    out += "| Environment | Metric | Result (mean ± std) | Reference (mean ± std) | Within 2 std | Seeds | Env steps \
            | Truncation | Wall-clock per run (s) |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let _ = writeln!(out, "| {} |", table_cells(r).join(" | "));
    }
    out += "\n*train*: per seed, the mean return of the last 100 training episodes, then mean ± std over seeds. \
            *evaluation*: the final deterministic evaluation episodes of all seeds pooled, mean ± std over \
            episodes. ± is the population standard deviation; *Within 2 std* compares the result's mean with \
            the reference mean ± 2 reference std (with a reference std of 0, it must reach 97.5% of the \
            reference). *Truncation*: a time-limit truncation is *bootstrapped* from the \
            value of the final observation (`bootstrap_truncated: true`, as SB3) or *terminal* (value 0, as \
            CleanRL's ppo.py; `bootstrap_truncated: false`).\n";
    let mut sources: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in rows {
        let Some(reference) = &r.reference else { continue };
        match sources.iter_mut().find(|(s, _)| *s == reference.source) {
            Some((_, labels)) => labels.push(&r.label),
            None => sources.push((&reference.source, vec![&r.label])),
        }
    }
    if !sources.is_empty() {
        out += "\n## Sources\n\n";
        for (source, labels) in sources {
            let _ = writeln!(out, "- {}: {source}", labels.join(", "));
        }
    }
    if rows.iter().any(|r| r.note.is_some()) {
        out += "\n## Notes\n\n";
        for r in rows {
            if let Some(note) = &r.note {
                let _ = writeln!(out, "- {}: {note}", r.label);
            }
        }
    }
    out
}

/// The cells of one table row, escaped for markdown.
fn table_cells(r: &RowResult) -> Vec<String> {
    let pm = |m: f64, s: f64| format!("{m:.2} ± {s:.2}");
    let n_ok = r.seeds.len() - r.failed_seeds.len();
    let result = match r.result {
        Some(m) => pm(m.mean, m.std),
        None if n_ok == 0 => format!("failed ({})", seed_list(&r.failed_seeds)),
        None => "no value".into(),
    };
    let reference = r.reference.as_ref().map_or("–".into(), |x| pm(x.mean, x.std));
    let within = match (&r.result, &r.reference) {
        (Some(m), Some(x)) => if within_two_std(m.mean, x) { "yes" } else { "no" }.to_string(),
        _ => "–".into(),
    };
    let mut seeds = if r.failed_seeds.is_empty() { n_ok.to_string() } else { format!("{n_ok} of {}", r.seeds.len()) };
    if !r.failed_seeds.is_empty() {
        seeds += &format!("; failed: {}", seed_list(&r.failed_seeds));
    }
    if !r.seeds_without_value.is_empty() {
        seeds += &format!("; no finished episode: {}", seed_list(&r.seeds_without_value));
    }
    let env_steps = match r.env_steps.as_slice() {
        [] => "–".into(),
        [first, rest @ ..] if rest.iter().all(|s| s == first) => first.to_string(),
        steps => format!("{:.0} (mean)", steps.iter().sum::<u64>() as f64 / steps.len() as f64),
    };
    let wall = MeanStd::of(&r.train_seconds).map_or("–".into(), |m| format!("{:.2}", m.mean));
    let truncation = match r.bootstrap_truncated {
        Some(true) => "bootstrapped",
        Some(false) => "terminal",
        None => "–",
    };
    [r.label.clone(), r.metric.name().into(), result, reference, within, seeds, env_steps, truncation.into(), wall]
        .iter()
        .map(|c| c.replace('|', "\\|"))
        .collect()
}

/// `seed 3` or `seeds 1, 2`.
fn seed_list(seeds: &[u64]) -> String {
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    format!("seed{} {}", if seeds.len() == 1 { "" } else { "s" }, list.join(", "))
}

/// How [`run_experiment`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentOptions {
    /// The `rl` binary that trains each run (`PROGRAM train --config ...`).
    pub program: PathBuf,
    /// Where run directories go (default: `runs/experiments/<name>`).
    pub output: Option<PathBuf>,
    /// Where the table and plots go (default: the output directory, beside the runs; the
    /// committed tables are `results/` next to the spec file, see [`committed_results_dir`]).
    pub results: Option<PathBuf>,
    /// Runs trained at once (default: `std::thread::available_parallelism`).
    pub jobs: Option<usize>,
}

/// What [`run_experiment`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentReport {
    /// The markdown table, `<results>/<name>.md`.
    pub table_path: PathBuf,
    /// The overlay plot of all rows, `<results>/<name>.png` (one more per row: `<name>-<slug>.png`).
    pub plot_path: PathBuf,
    /// One result per spec row.
    pub rows: Vec<RowResult>,
    /// Runs trained now.
    pub trained: usize,
    /// Finished runs found on disk and reused.
    pub reused: usize,
    /// The failed runs, as `<label> seed <N>`.
    pub failed: Vec<String>,
}

/// One (row, seed) to train.
#[derive(Debug)]
struct Run {
    row: usize,
    seed: u64,
    dir: PathBuf,
    log: PathBuf,
}

/// How a run went.
#[derive(Debug)]
enum RunOutcome {
    Trained(TrainSummary),
    Reused(TrainSummary),
    Failed(String),
}

impl RunOutcome {
    fn summary(&self) -> Option<&TrainSummary> {
        match self {
            RunOutcome::Trained(s) | RunOutcome::Reused(s) => Some(s),
            RunOutcome::Failed(_) => None,
        }
    }
}

/// The directory of the committed results tables of the spec at `spec_path`: `results/` beside
/// it (`rl experiment run --update-results` writes there).
pub fn committed_results_dir(spec_path: &Path) -> PathBuf {
    spec_path.parent().unwrap_or(Path::new("")).join("results")
}

/// Trains every (row, seed) of the spec at `spec_path` that has no finished run directory yet,
/// then writes the results table and plots (see the module docs).
///
/// Run directories are `<output>/<slug>/seed<N>`, each with the child's output in
/// `<output>/<slug>/seed<N>.log`. One progress line per finished run goes to stderr. A failed
/// run does not stop the others; once the table is written, the call returns an error naming
/// every failed run.
pub fn run_experiment(spec_path: &Path, options: &ExperimentOptions) -> Result<ExperimentReport> {
    let spec = ExperimentSpec::load(spec_path)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = match options.jobs {
        Some(0) => bail!("jobs must be at least 1"),
        Some(n) => n,
        None => cores,
    };
    let output = options.output.clone().unwrap_or_else(|| Path::new("runs/experiments").join(&spec.name));
    let results = options.results.clone().unwrap_or_else(|| output.clone());
    let runs = plan_runs(&spec, &output);
    let outcomes = execute(&spec, &runs, &options.program, jobs);

    let rows: Vec<RowResult> = (0..spec.rows.len())
        .map(|i| {
            let row_runs = || runs.iter().zip(&outcomes).filter(move |(run, _)| run.row == i);
            let summaries: Vec<Option<&TrainSummary>> = row_runs().map(|(_, o)| o.summary()).collect();
            let mut result = RowResult::new(&spec.rows[i], &summaries);
            result.bootstrap_truncated = row_runs()
                .filter(|(_, o)| o.summary().is_some())
                .find_map(|(run, _)| RunDir::open(&run.dir).and_then(|d| d.read_config()).ok())
                .map(|c| c.bootstrap_truncated);
            result
        })
        .collect();
    fs::create_dir_all(&results).with_context(|| format!("cannot create {}", results.display()))?;
    let provenance = Provenance {
        command: format!("rl experiment run {}", spec_path.display()),
        date: today_utc(),
        cores,
        jobs,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let table_path = results.join(format!("{}.md", spec.name));
    fs::write(&table_path, render_table(&spec, &provenance, &rows))
        .with_context(|| format!("cannot write {}", table_path.display()))?;
    let plot_path = write_plots(&spec, &runs, &outcomes, &results);

    let failed: Vec<String> = runs
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, RunOutcome::Failed(_)))
        .map(|(run, _)| format!("{} seed {}", spec.rows[run.row].label, run.seed))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} runs failed: {} (logs under {}); the table was still written to {}",
            failed.len(),
            runs.len(),
            failed.join(", "),
            output.display(),
            table_path.display()
        );
    }
    let trained = outcomes.iter().filter(|o| matches!(o, RunOutcome::Trained(_))).count();
    let reused = outcomes.iter().filter(|o| matches!(o, RunOutcome::Reused(_))).count();
    Ok(ExperimentReport { table_path, plot_path, rows, trained, reused, failed })
}

/// Every (row, seed) in spec order, with its run directory and log under `output`.
fn plan_runs(spec: &ExperimentSpec, output: &Path) -> Vec<Run> {
    let mut runs = Vec::new();
    for (row, r) in spec.rows.iter().enumerate() {
        let base = output.join(&r.slug);
        for &seed in &r.seeds {
            let (dir, log) = (base.join(format!("seed{seed}")), base.join(format!("seed{seed}.log")));
            runs.push(Run { row, seed, dir, log });
        }
    }
    runs
}

/// Reuses finished runs and trains the others on `jobs` worker threads, each running one child
/// process at a time. Returns one outcome per run, in order.
fn execute(spec: &ExperimentSpec, runs: &[Run], program: &Path, jobs: usize) -> Vec<RunOutcome> {
    let total = runs.len();
    let mut outcomes: Vec<Option<RunOutcome>> = (0..total).map(|_| None).collect();
    let mut done = 0;
    let mut pending = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if !run.dir.join(SUMMARY_FILE).is_file() {
            pending.push(i);
            continue;
        }
        let outcome = match RunDir::open(&run.dir).and_then(|r| r.read_summary()) {
            Ok(s) => RunOutcome::Reused(s),
            Err(e) => RunOutcome::Failed(format!("{e:#}; remove {} to retrain it", run.dir.display())),
        };
        done += 1;
        report_progress(done, total, &spec.rows[run.row].label, run, &outcome);
        outcomes[i] = Some(outcome);
    }
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(pending.len()) {
            let (tx, next, pending) = (tx.clone(), &next, &pending);
            scope.spawn(move || {
                while let Some(&i) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = match train_run(program, &spec.rows[runs[i].row], &runs[i]) {
                        Ok(s) => RunOutcome::Trained(s),
                        Err(e) => RunOutcome::Failed(e),
                    };
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, outcome) in rx {
            done += 1;
            report_progress(done, total, &spec.rows[runs[i].row].label, &runs[i], &outcome);
            outcomes[i] = Some(outcome);
        }
    });
    outcomes.into_iter().map(|o| o.expect("every run reports an outcome")).collect()
}

/// Trains one run as a child process, after removing what an unfinished earlier attempt left.
fn train_run(program: &Path, row: &RowSpec, run: &Run) -> Result<TrainSummary, String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    if run.dir.exists() {
        fs::remove_dir_all(&run.dir).map_err(|e| io("remove the unfinished run", &run.dir, e))?;
    }
    let parent = run.dir.parent().unwrap_or(Path::new(""));
    fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    let mut cmd = Command::new(program);
    cmd.arg("train").arg("--config").arg(&row.config).arg("--seed").arg(run.seed.to_string());
    cmd.arg("--output").arg(&run.dir).arg("--quiet");
    cmd.args(row.set.iter().map(|s| format!("--set={s}")));
    let mut log = fs::File::create(&run.log).map_err(|e| io("create", &run.log, e))?;
    let _ = std::io::Write::write_all(&mut log, format!("$ {cmd:?}\n").as_bytes());
    let log_err = log.try_clone().map_err(|e| io("open", &run.log, e))?;
    let status = cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).status().map_err(|e| io("start", program, e))?;
    if !status.success() {
        return Err(format!("`{} train` failed ({status}){}", program.display(), log_tail(&run.log)));
    }
    RunDir::open(&run.dir).and_then(|r| r.read_summary()).map_err(|e| format!("{e:#}{}", log_tail(&run.log)))
}

/// The last lines of a log, indented, after a line naming it.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    let mut out = format!("; last lines of {}:", log.display());
    for line in tail {
        out += &format!("\n    {line}");
    }
    out
}

/// Prints `[done/total] LABEL seed N: ...` to stderr.
fn report_progress(done: usize, total: usize, label: &str, run: &Run, outcome: &RunOutcome) {
    let head = format!("[{done}/{total}] {label} seed {}", run.seed);
    let (s, reused) = match outcome {
        RunOutcome::Failed(e) => return eprintln!("{head}: FAILED: {e}"),
        RunOutcome::Trained(s) => (s, ""),
        RunOutcome::Reused(s) => (s, "reused, "),
    };
    // Two decimals, as in the table: returns of sparse-reward envs live below 1.
    let train = s.train_episode_return_mean.map_or("none".into(), |m| format!("{m:.2}"));
    let eval =
        MeanStd::of(&s.final_evaluation.returns).map_or("none".into(), |m| format!("{:.2} +- {:.2}", m.mean, m.std));
    eprintln!("{head}: {reused}{:.1} s, train return {train}, eval {eval}", s.train_seconds);
}

/// Draws the overlay plot of all rows and one plot per row (training return, mean ± std over
/// seeds); returns the overlay's path. Drawing problems are warnings: the table is the result.
fn write_plots(spec: &ExperimentSpec, runs: &[Run], outcomes: &[RunOutcome], results: &Path) -> PathBuf {
    let mut bands = Vec::new();
    for (i, row) in spec.rows.iter().enumerate() {
        let curves: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .zip(outcomes)
            .filter(|(run, o)| run.row == i && o.summary().is_some())
            .filter_map(|(run, _)| match plot::train_curve(&run.dir) {
                Ok(curve) => Some(curve),
                Err(e) => {
                    eprintln!("warning: {e}");
                    None
                }
            })
            .collect();
        let band = plot::Band { label: row.label.clone(), points: plot::mean_std_band(&curves) };
        if band.points.is_empty() {
            continue;
        }
        let seeds = if curves.len() == 1 { "1 seed".to_string() } else { format!("{} seeds", curves.len()) };
        let title = format!("{}: {} ({seeds})", spec.name, row.label);
        draw(&results.join(format!("{}-{}.png", spec.name, row.slug)), &title, std::slice::from_ref(&band));
        bands.push(band);
    }
    let path = results.join(format!("{}.png", spec.name));
    draw(&path, &format!("{}: training return", spec.name), &bands);
    path
}

/// Draws `bands` into `path`, printing a warning instead of failing.
fn draw(path: &Path, title: &str, bands: &[plot::Band]) {
    let spec = plot::PlotSpec { title, curves: &[], bands, markers: &[] };
    if let Err(e) = plot::draw_learning_curves(path, &spec) {
        eprintln!("warning: cannot draw {}: {e}", path.display());
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today_utc() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests;
