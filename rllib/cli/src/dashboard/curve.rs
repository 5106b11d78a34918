//! Learning curves for the dashboard, read from a `progress.csv` that a job is still appending to.
//!
//! Unlike [`rllib::run_dir::Progress::read`], which checks a finished file strictly, this reader
//! is lenient: the text after the last newline is a row being written and is ignored, and a
//! complete row that does not parse is skipped and counted, so a live job never breaks the page.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::plot::{EVAL_COLUMN, TRAIN_COLUMN, X_COLUMN};

/// The curves of one `progress.csv`: `(x, y)` points per y column, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Curves {
    /// Complete data rows read (the header and a torn last line not counted).
    pub rows: usize,
    /// Complete rows skipped: a cell count that differs from the header's, or an x or y cell
    /// that is neither empty nor a number.
    pub skipped_rows: usize,
    /// For [`TRAIN_COLUMN`], and [`EVAL_COLUMN`] when the header has it: the rows where both x
    /// and y are finite numbers.
    pub series: BTreeMap<&'static str, Vec<[f64; 2]>>,
}

impl Curves {
    /// Reads `path`; a file that does not exist yet (a job that has not started) has no rows.
    pub(crate) fn read(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Self::parse(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Parses the complete lines of `bytes` (everything up to the last newline).
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..end],
            None => return Self::default(),
        };
        let text = String::from_utf8_lossy(complete);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let columns: Vec<&str> = lines.next().unwrap_or_default().split(',').map(str::trim).collect();
        let position = |name: &str| columns.iter().position(|c| *c == name);
        let mut curves = Self::default();
        let Some(x_col) = position(X_COLUMN) else {
            // Without the x column there is no curve; rows are still counted.
            curves.rows = lines.filter(|l| !l.trim().is_empty()).count();
            return curves;
        };
        let mut y_cols = vec![];
        for name in [TRAIN_COLUMN, EVAL_COLUMN] {
            if let Some(i) = position(name) {
                y_cols.push((name, i));
                curves.series.insert(name, Vec::new());
            }
        }
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != columns.len() {
                curves.skipped_rows += 1;
                continue;
            }
            let (Ok(x), Ok(ys)) =
                (cell(cells[x_col]), y_cols.iter().map(|&(_, i)| cell(cells[i])).collect::<Result<Vec<_>, _>>())
            else {
                curves.skipped_rows += 1;
                continue;
            };
            curves.rows += 1;
            for (&(name, _), y) in y_cols.iter().zip(ys) {
                if let (Some(x), Some(y)) = (x, y) {
                    curves.series.get_mut(name).expect("inserted above").push([x, y]);
                }
            }
        }
        curves
    }

    /// The JSON the progress route answers with.
    pub(crate) fn to_json(&self, job: &str) -> Value {
        json!({
            "job": job,
            "x": X_COLUMN,
            "rows": self.rows,
            "skipped_rows": self.skipped_rows,
            "series": self.series,
        })
    }
}

/// An empty cell is `None`; a number is `Some` if finite and `None` otherwise (NaN before the
/// first episode ends); anything else is an error.
fn cell(text: &str) -> Result<Option<f64>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    let v: f64 = text.parse().map_err(|_| ())?;
    Ok(v.is_finite().then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "training_iteration,num_env_steps_sampled_lifetime,env_runners/episode_return_mean,evaluation/episode_return_mean\n";

    #[test]
    fn empty_cells_and_nan_leave_gaps_and_a_torn_line_is_ignored() {
        let text = format!("{HEADER}1,500,,\n2,1000,21.5,\n3,1500,nan,40\n4,2000,30,\n5,25");
        let c = Curves::parse(text.as_bytes());
        assert_eq!(c.rows, 4);
        assert_eq!(c.skipped_rows, 0);
        assert_eq!(c.series[TRAIN_COLUMN], vec![[1000.0, 21.5], [2000.0, 30.0]]);
        assert_eq!(c.series[EVAL_COLUMN], vec![[1500.0, 40.0]]);
    }

    #[test]
    fn bad_complete_rows_are_counted_and_skipped() {
        let text = format!("{HEADER}1,500,10,\n2,1000\n3,x,12,\n4,2000,13,\r\n");
        let c = Curves::parse(text.as_bytes());
        assert_eq!((c.rows, c.skipped_rows), (2, 2));
        assert_eq!(c.series[TRAIN_COLUMN], vec![[500.0, 10.0], [2000.0, 13.0]]);
    }

    #[test]
    fn missing_columns_files_and_headers() {
        let c = Curves::parse(b"a,num_env_steps_sampled_lifetime,env_runners/episode_return_mean\n1,2,3\n");
        assert_eq!(c.series.keys().copied().collect::<Vec<_>>(), vec![TRAIN_COLUMN]);
        let c = Curves::parse(b"a,b\n1,2\n3,4\n");
        assert!(c.series.is_empty());
        assert_eq!(c.rows, 2);
        assert_eq!(Curves::parse(b"training_iteration,num_env"), Curves::default());
        let missing = std::env::temp_dir().join("rl-dashboard-no-such-dir/progress.csv");
        assert_eq!(Curves::read(&missing).unwrap(), Curves::default());
    }

    #[test]
    fn json_names_the_x_column_and_series() {
        let text = format!("{HEADER}1,500,10,\n");
        let v = Curves::parse(text.as_bytes()).to_json("job-1");
        assert_eq!(v["job"], "job-1");
        assert_eq!(v["x"], X_COLUMN);
        assert_eq!(v["series"][TRAIN_COLUMN], json!([[500.0, 10.0]]));
        assert_eq!(v["series"][EVAL_COLUMN], json!([]));
    }
}
