//! The run directory: its file names, its writers and its readers, in one place.
//!
//! ```text
//! runs/PPO_CartPole-v1_seed1_20261129-120000/
//!   config.yaml              the resolved config (every default filled in)
//!   progress.csv             one row per iteration, RLlib metric names (see `metrics`)
//!   result.jsonl             the same rows as JSON objects
//!   events.out.tfevents.*    TensorBoard scalars of every numeric metric, step = env steps
//!   checkpoints/NAME/        see `checkpoint`
//!   learning_curve.png       drawn by the `rl` application when a run ends
//!   summary.txt              the final summary line
//!   summary.json             the final summary; written last, so it marks a finished run
//! ```
//!
//! Training writes through [`RunDir::create`], [`ResultWriter`] and [`RunDir::write_summary`];
//! `rl plot`, `rl evaluate` and the experiment runner read through [`RunDir::open`]. Readers take
//! the recorded config as it is ([`TrainConfig::load_recorded`]), so they work on runs of envs
//! that the reading program does not have.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::evaluation::EvalStats;
use crate::metrics::IterationResult;

/// The resolved config.
pub const CONFIG_FILE: &str = "config.yaml";
/// Per-iteration metrics as CSV.
pub const PROGRESS_FILE: &str = "progress.csv";
/// Per-iteration metrics as JSON lines.
pub const RESULT_FILE: &str = "result.jsonl";
/// The directory of checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The learning-curve picture the `rl` application draws when a run ends.
pub const PLOT_FILE: &str = "learning_curve.png";
/// The final summary as one line of text.
pub const SUMMARY_TEXT_FILE: &str = "summary.txt";
/// The final summary as JSON, written last: its presence marks a finished run.
pub const SUMMARY_FILE: &str = "summary.json";
/// Where a run on a cluster ran: every actor's node and process, every node's transfer counters.
pub const CLUSTER_FILE: &str = "cluster.json";

/// What a finished run reports; written to [`SUMMARY_TEXT_FILE`] (this type's `Display`) and
/// [`SUMMARY_FILE`] (serde).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Iterations done.
    pub iterations: u64,
    /// Env steps sampled.
    pub env_steps: u64,
    /// Wall-clock seconds of training (without the final evaluation).
    pub train_seconds: f64,
    /// Mean return of the last 100 training episodes (`None` if none finished).
    pub train_episode_return_mean: Option<f64>,
    /// The final deterministic evaluation.
    pub final_evaluation: EvalStats,
    /// Why training stopped.
    pub stop_reason: String,
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.final_evaluation;
        write!(
            f,
            "final evaluation: episode_return_mean {:.2} +- {:.2} over {} episodes (min {:.2}, max {:.2}) | \
             {} iterations, {} env steps in {:.1}s ({}) | run dir {}",
            e.return_mean(),
            e.return_std(),
            e.returns.len(),
            e.return_min(),
            e.return_max(),
            self.iterations,
            self.env_steps,
            self.train_seconds,
            self.stop_reason,
            self.run_dir.display()
        )
    }
}

/// A run directory on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Fails unless `path` can become a new run directory: it must not exist or be empty.
    /// Callers check this before any expensive setup, so bad input leaves nothing behind.
    pub fn check_new(path: &Path) -> Result<()> {
        if path.exists() {
            let mut entries = path.read_dir().map_err(Error::io("read", path))?;
            if entries.next().is_some() {
                return Err(Error::OutputExists { path: path.to_path_buf() });
            }
        }
        Ok(())
    }

    /// Creates the run directory at `path` and writes the resolved `config` into it.
    pub fn create(path: &Path, config: &TrainConfig) -> Result<Self> {
        Self::check_new(path)?;
        std::fs::create_dir_all(path).map_err(Error::io("create run directory", path))?;
        let yaml = config.to_yaml().map_err(|e| Error::Serialize { what: "the config", message: e.to_string() })?;
        let dir = Self { path: path.to_path_buf() };
        write_file(&dir.file(CONFIG_FILE), yaml.as_bytes())?;
        Ok(dir)
    }

    /// Opens an existing run directory (finished or not): one that holds a [`CONFIG_FILE`].
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join(CONFIG_FILE).is_file() {
            return Err(Error::NotARunDir { path: path.to_path_buf(), file: CONFIG_FILE });
        }
        Ok(Self { path: path.to_path_buf() })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file of the run directory, e.g. `run.file(PROGRESS_FILE)`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory of the checkpoint called `name` (`iter_000100`, `final`).
    pub fn checkpoint_dir(&self, name: &str) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR).join(name)
    }

    /// True once the run has finished (its [`SUMMARY_FILE`] exists).
    pub fn is_finished(&self) -> bool {
        self.file(SUMMARY_FILE).is_file()
    }

    /// The recorded config, read as it is (see [`TrainConfig::load_recorded`]).
    pub fn read_config(&self) -> Result<TrainConfig> {
        TrainConfig::load_recorded(&self.file(CONFIG_FILE))
    }

    /// The per-iteration metrics of [`PROGRESS_FILE`].
    pub fn read_progress(&self) -> Result<Progress> {
        Progress::read(&self.file(PROGRESS_FILE))
    }

    /// The summary of a finished run.
    pub fn read_summary(&self) -> Result<TrainSummary> {
        let path = self.file(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            path,
            line: Some(e.line()),
            message: format!("not a run summary: {e}"),
        })
    }

    /// Writes [`SUMMARY_TEXT_FILE`], then [`SUMMARY_FILE`] last: the run is then finished.
    pub fn write_summary(&self, summary: &TrainSummary) -> Result<()> {
        write_file(&self.file(SUMMARY_TEXT_FILE), format!("{summary}\n").as_bytes())?;
        let json = serde_json::to_string_pretty(summary)
            .map_err(|e| Error::Serialize { what: "the run summary", message: e.to_string() })?;
        write_file(&self.file(SUMMARY_FILE), (json + "\n").as_bytes())
    }
}

/// Replaces `path` with `text` atomically (a synced temporary file renamed over it).
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(Error::io("write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io("replace", path))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io("write", path))
}

/// Appends iteration results to [`PROGRESS_FILE`] and [`RESULT_FILE`], flushing after every
/// iteration so a crash loses nothing already reported.
#[derive(Debug)]
pub struct ResultWriter {
    columns: Vec<&'static str>,
    csv: BufWriter<File>,
    jsonl: BufWriter<File>,
    dir: PathBuf,
}

impl ResultWriter {
    /// Creates both files in `run` (the CSV with the header `columns`).
    pub fn create(run: &RunDir, columns: Vec<&'static str>) -> Result<Self> {
        let open = |name: &str| {
            let path = run.file(name);
            File::create(&path).map(BufWriter::new).map_err(Error::io("create", path))
        };
        let mut csv = open(PROGRESS_FILE)?;
        let header = columns.join(",");
        writeln!(csv, "{header}").and_then(|()| csv.flush()).map_err(Error::io("write", run.file(PROGRESS_FILE)))?;
        Ok(Self { columns, csv, jsonl: open(RESULT_FILE)?, dir: run.path.clone() })
    }

    /// Reopens both files of `run` to continue after iteration `keep`: rows of later iterations
    /// (written by a run that was killed after its last checkpoint) are removed first, each file
    /// rewritten atomically. Fails if the CSV's header is not `columns`.
    pub fn resume(run: &RunDir, columns: Vec<&'static str>, keep: u64) -> Result<Self> {
        let csv_path = run.file(PROGRESS_FILE);
        let text = std::fs::read_to_string(&csv_path).map_err(Error::io("read", &csv_path))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        if header != columns.join(",") {
            return Err(Error::Format {
                path: csv_path,
                line: Some(1),
                message: "its columns are not this build's: the run was written by another version".into(),
            });
        }
        // A row torn by a kill mid-write has too few cells and is dropped.
        let iteration_of = |line: &str| {
            (line.split(',').count() == columns.len()).then(|| line.split(',').next()?.parse::<u64>().ok()).flatten()
        };
        let mut kept: Vec<&str> = vec![header];
        kept.extend(lines.filter(|l| iteration_of(l).is_some_and(|i| i <= keep)));
        if (kept.len() as u64) < keep + 1 {
            return Err(Error::Format {
                path: csv_path,
                line: None,
                message: format!("has {} rows, the checkpoint is at iteration {keep}", kept.len() - 1),
            });
        }
        replace_file(&csv_path, &(kept.join("\n") + "\n"))?;
        let jsonl_path = run.file(RESULT_FILE);
        let text = std::fs::read_to_string(&jsonl_path).map_err(Error::io("read", &jsonl_path))?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("training_iteration").and_then(serde_json::Value::as_u64))
                    .is_some_and(|i| i <= keep)
            })
            .collect();
        replace_file(&jsonl_path, &kept.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        let open = |path: &Path| {
            OpenOptions::new().append(true).open(path).map(BufWriter::new).map_err(Error::io("open", path))
        };
        Ok(Self { columns, csv: open(&csv_path)?, jsonl: open(&jsonl_path)?, dir: run.path.clone() })
    }

    /// The CSV columns, in order.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// Records one iteration. Every metric of `result` must be one of the columns.
    pub fn write(&mut self, result: &IterationResult) -> Result<()> {
        debug_assert!(
            result.names().all(|n| self.columns.contains(&n)),
            "metric not in the columns: {:?}",
            result.names().filter(|n| !self.columns.contains(n)).collect::<Vec<_>>()
        );
        writeln!(self.csv, "{}", result.csv_row(&self.columns))
            .and_then(|()| self.csv.flush())
            .map_err(Error::io("write", self.dir.join(PROGRESS_FILE)))?;
        writeln!(self.jsonl, "{}", result.to_json())
            .and_then(|()| self.jsonl.flush())
            .map_err(Error::io("write", self.dir.join(RESULT_FILE)))
    }
}

/// The metrics of a [`PROGRESS_FILE`]: its header and, per row, each cell as a number (empty
/// cells are `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    path: PathBuf,
    columns: Vec<String>,
    rows: Vec<Vec<Option<f64>>>,
}

impl Progress {
    /// Reads and checks a progress file: a header, then rows of as many cells, each empty or a
    /// number. Errors name the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        let err = |line: usize, message: String| Error::Format { path: path.to_path_buf(), line: Some(line), message };
        let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
        let columns: Vec<String> = match lines.next() {
            Some(h) if !h.trim().is_empty() => h.split(',').map(|c| c.trim().to_string()).collect(),
            _ => return Err(err(1, "empty file, expected a header line".into())),
        };
        let mut rows = Vec::new();
        for (i, row) in lines.enumerate() {
            let line = i + 2;
            if row.trim().is_empty() {
                continue;
            }
            let cells: Vec<&str> = row.split(',').map(str::trim).collect();
            if cells.len() != columns.len() {
                return Err(err(line, format!("{} cells, but the header has {} columns", cells.len(), columns.len())));
            }
            let parsed = cells
                .iter()
                .zip(&columns)
                .map(|(s, c)| match *s {
                    "" => Ok(None),
                    s => s
                        .parse::<f64>()
                        .map(Some)
                        .map_err(|_| err(line, format!("column {c:?}: {s:?} is not a number"))),
                })
                .collect::<Result<Vec<_>>>()?;
            rows.push(parsed);
        }
        Ok(Self { path: path.to_path_buf(), columns, rows })
    }

    /// The header.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True without data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every value of column `name`, one per row.
    pub fn column(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let i = self.columns.iter().position(|c| c == name).ok_or_else(|| Error::Format {
            path: self.path.clone(),
            line: Some(1),
            message: format!("header has no column {name:?}"),
        })?;
        Ok(self.rows.iter().map(|r| r[i]).collect())
    }

    /// `(x, y)` for every row where both columns have a value.
    pub fn series(&self, x: &str, y: &str) -> Result<Vec<(f64, f64)>> {
        let (xs, ys) = (self.column(x)?, self.column(y)?);
        Ok(xs.into_iter().zip(ys).filter_map(|(x, y)| Some((x?, y?))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rllib-run-dir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn progress_round_trips_through_the_writer_and_reader() {
        let dir = scratch("progress");
        let config = TrainConfig::parse("env: CartPole-v1\nstop: {training_iteration: 1}\n", "t.yaml", &[]).unwrap();
        let run = RunDir::create(&dir, &config).unwrap();
        let mut w = ResultWriter::create(&run, vec!["a", "b", "c"]).unwrap();
        let mut r = IterationResult::default();
        r.set("a", 1);
        r.set("c", 0.5);
        w.write(&r).unwrap();
        drop(w);
        let p = RunDir::open(&dir).unwrap().read_progress().unwrap();
        assert_eq!(p.columns(), ["a", "b", "c"]);
        assert_eq!(p.column("b").unwrap(), vec![None]);
        assert_eq!(p.series("a", "c").unwrap(), vec![(1.0, 0.5)]);
        let err = p.column("d").unwrap_err().to_string();
        assert!(err.ends_with("progress.csv:1: header has no column \"d\""), "{err}");
        assert_eq!(run.read_config().unwrap(), config);
        assert!(!run.is_finished());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_progress_names_file_and_line() {
        let dir = scratch("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(PROGRESS_FILE);
        std::fs::write(&path, "a,b\n1,2\n3\n").unwrap();
        let err = Progress::read(&path).unwrap_err().to_string();
        assert!(err.ends_with("progress.csv:3: 1 cells, but the header has 2 columns"), "{err}");
        std::fs::write(&path, "a,b\n1,x\n").unwrap();
        let err = Progress::read(&path).unwrap_err().to_string();
        assert!(err.ends_with("progress.csv:2: column \"b\": \"x\" is not a number"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(
            Progress::read(&path)
                .unwrap_err()
                .to_string()
                .ends_with("progress.csv:1: empty file, expected a header line")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_dir_is_never_overwritten_and_must_hold_a_config() {
        let dir = scratch("exists");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(RunDir::check_new(&dir).is_ok());
        let err = RunDir::open(&dir).unwrap_err().to_string();
        assert!(err.ends_with("is not a run directory (it has no config.yaml)"), "{err}");
        std::fs::write(dir.join("keep.txt"), "precious").unwrap();
        assert!(matches!(RunDir::check_new(&dir), Err(Error::OutputExists { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
