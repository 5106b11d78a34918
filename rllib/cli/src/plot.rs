//! Learning-curve plots: PNG charts of episode return over env steps, from run directories.
//!
//! Text is rendered with a bundled DejaVu Sans font (see `assets/DejaVuSans-LICENSE.txt`), so
//! drawing needs no system font libraries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use rllib::run_dir::{PLOT_FILE, RunDir, TrainSummary};
use rllib::stats;

/// Width of the written PNG in pixels.
pub const WIDTH: u32 = 1000;
/// Height of the written PNG in pixels.
pub const HEIGHT: u32 = 600;

/// Column of `progress.csv` used as the x axis.
pub const X_COLUMN: &str = "num_env_steps_sampled_lifetime";
/// Column of `progress.csv` holding the training episode return.
pub const TRAIN_COLUMN: &str = "env_runners/episode_return_mean";
/// Column of `progress.csv` holding the evaluation episode return.
pub const EVAL_COLUMN: &str = "evaluation/episode_return_mean";

/// The family name the bundled font is registered under; it is plotters' default family.
const FONT_FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Series colours (colour-blind friendly, in the order series are drawn).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Errors from reading run directories or drawing plots.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A run directory could not be read.
    #[error(transparent)]
    Run(#[from] rllib::Error),
    /// There is no finite point to plot.
    #[error("nothing to plot: every curve, band and marker series is empty")]
    Empty,
    /// The output path does not end in `.png`.
    #[error("plot path {} must end in .png", path.display())]
    NotPng {
        /// The rejected path.
        path: PathBuf,
    },
    /// The bundled font could not be loaded.
    #[error("the bundled font DejaVuSans.ttf is invalid")]
    Font,
    /// Drawing or writing the image failed.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The output file.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// One named line: `(x, y)` points with x = env steps and y = episode return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    /// The legend entry.
    pub label: String,
    /// The points, in any order (they are drawn sorted by x).
    pub points: Vec<(f64, f64)>,
}

/// A mean ± std band (e.g. over seeds), drawn as a shaded area with its mean line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Band {
    /// The legend entry.
    pub label: String,
    /// `(x, mean, std)` points, as returned by [`mean_std_band`].
    pub points: Vec<(f64, f64, f64)>,
}

/// What [`draw_learning_curves`] draws.
#[derive(Debug, Clone, Copy)]
pub struct PlotSpec<'a> {
    /// The chart title.
    pub title: &'a str,
    /// Lines (e.g. the training return of single runs).
    pub curves: &'a [Curve],
    /// Shaded mean ± std areas with their mean lines.
    pub bands: &'a [Band],
    /// Series drawn as points only (e.g. evaluation results).
    pub markers: &'a [Curve],
}

/// The learning curves of one run, as `(env steps, return)` points.
struct RunCurves {
    /// The training return ([`TRAIN_COLUMN`]).
    train: Vec<(f64, f64)>,
    /// The periodic evaluations ([`EVAL_COLUMN`]).
    eval: Vec<(f64, f64)>,
}

fn read_curves(run: &RunDir) -> Result<RunCurves, PlotError> {
    let progress = run.read_progress()?;
    Ok(RunCurves { train: progress.series(X_COLUMN, TRAIN_COLUMN)?, eval: progress.series(X_COLUMN, EVAL_COLUMN)? })
}

/// Mean and population standard deviation over several runs of one config, as `(x, mean, std)`.
///
/// Each run is linearly interpolated onto the sorted union of all runs' x values that lie in the
/// common x range (from the largest first x to the smallest last x). Non-finite points are
/// ignored. Returns an empty vector if there are no runs, a run has no points, or the runs do
/// not overlap.
pub fn mean_std_band(runs: &[Vec<(f64, f64)>]) -> Vec<(f64, f64, f64)> {
    let runs: Vec<Vec<(f64, f64)>> = runs.iter().map(|r| sorted_finite(r)).collect();
    if runs.is_empty() || runs.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    let lo = runs.iter().map(|r| r[0].0).fold(f64::NEG_INFINITY, f64::max);
    let hi = runs.iter().map(|r| r[r.len() - 1].0).fold(f64::INFINITY, f64::min);
    if lo > hi {
        return Vec::new();
    }
    let mut xs: Vec<f64> = runs.iter().flatten().map(|p| p.0).filter(|x| (lo..=hi).contains(x)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.into_iter()
        .map(|x| {
            let ys: Vec<f64> = runs.iter().map(|r| interpolate(r, x)).collect();
            (x, stats::mean(&ys), stats::std(&ys))
        })
        .collect()
}

/// Draws the learning curve of one run directory into `RUN_DIR/`[`PLOT_FILE`]: the training
/// return (mean of the last 100 episodes) over env steps, the periodic evaluations as markers,
/// and the final evaluation of `summary` as a marker of its own. Returns the PNG's path.
pub fn plot_run(run: &RunDir, title: &str, summary: Option<&TrainSummary>) -> Result<PathBuf, PlotError> {
    let RunCurves { train, eval } = read_curves(run)?;
    let curves = [Curve { label: "training return (last 100 episodes)".into(), points: train }];
    let mut markers = vec![Curve { label: "evaluation (greedy)".into(), points: eval }];
    if let Some(s) = summary.filter(|s| !s.final_evaluation.returns.is_empty()) {
        let e = &s.final_evaluation;
        markers.push(Curve {
            label: format!("final evaluation ({} episodes)", e.returns.len()),
            points: vec![(s.env_steps as f64, e.return_mean())],
        });
    }
    markers.retain(|m| !m.points.is_empty());
    let path = run.file(PLOT_FILE);
    draw_learning_curves(&path, &PlotSpec { title, curves: &curves, bands: &[], markers: &markers })?;
    Ok(path)
}

/// One run directory to overlay in [`plot_runs`]: its progress and the key that groups it with
/// the other seeds of the same config.
struct RunCurve {
    algorithm: &'static str,
    env: String,
    seed: u64,
    group_key: String,
    train: Vec<(f64, f64)>,
}

/// The training-return curve `(env steps, return)` of the run directory `dir`.
pub fn train_curve(dir: &Path) -> Result<Vec<(f64, f64)>, PlotError> {
    Ok(read_curves(&RunDir::open(dir)?)?.train)
}

/// Reads a run as recorded: its env need not be known to this program.
fn read_run(dir: &Path) -> Result<RunCurve, PlotError> {
    let run = RunDir::open(dir)?;
    let mut config = run.read_config()?;
    let seed = config.seed;
    config.seed = 0;
    let group_key = serde_json::to_string(&config).unwrap_or_default();
    let train = read_curves(&run)?.train;
    Ok(RunCurve { algorithm: config.algorithm.name(), env: config.env, seed, group_key, train })
}

/// Overlays the training curves of several run directories in one PNG at `out`. Runs whose
/// resolved configs differ only in the seed form one group, drawn as a mean ± std band across
/// seeds; a group of one run is drawn as a line.
pub fn plot_runs(run_dirs: &[PathBuf], out: &Path) -> Result<(), PlotError> {
    let runs = run_dirs.iter().map(|d| read_run(d)).collect::<Result<Vec<_>, _>>()?;
    let mut groups: Vec<Vec<&RunCurve>> = Vec::new();
    for run in &runs {
        match groups.iter_mut().find(|g| g[0].group_key == run.group_key) {
            Some(g) => g.push(run),
            None => groups.push(vec![run]),
        }
    }
    let (mut curves, mut bands) = (Vec::new(), Vec::new());
    for (i, group) in groups.iter().enumerate() {
        let env = &group[0].env;
        let shared_env = groups.iter().filter(|g| g[0].env == *env).count() > 1;
        let name = if shared_env { format!("{env} config {}", i + 1) } else { env.clone() };
        if let [run] = group.as_slice() {
            curves.push(Curve { label: format!("{name} seed {}", run.seed), points: run.train.clone() });
        } else {
            let seeds: Vec<Vec<(f64, f64)>> = group.iter().map(|r| r.train.clone()).collect();
            bands.push(Band { label: format!("{name}, {} seeds", group.len()), points: mean_std_band(&seeds) });
        }
    }
    let envs: Vec<&str> = groups.iter().map(|g| g[0].env.as_str()).collect();
    let mut title_envs = envs.clone();
    title_envs.dedup();
    let mut algorithms: Vec<&str> = groups.iter().map(|g| g[0].algorithm).collect();
    algorithms.dedup();
    let title = format!("{} {} learning curves", algorithms.join(", "), title_envs.join(", "));
    draw_learning_curves(out, &PlotSpec { title: &title, curves: &curves, bands: &bands, markers: &[] })
}

/// The finite points of `points`, sorted by x.
fn sorted_finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Linear interpolation of a non-empty run sorted by x (clamped at the ends).
fn interpolate(run: &[(f64, f64)], x: f64) -> f64 {
    let i = run.partition_point(|p| p.0 < x);
    if i == run.len() {
        return run[i - 1].1;
    }
    if i == 0 || run[i].0 == x {
        return run[i].1;
    }
    let ((x0, y0), (x1, y1)) = (run[i - 1], run[i]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

/// Registers the bundled font once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// An axis range around `[min, max]` with a margin of `frac` of the span; a zero span (a single
/// point or a flat line) gets a margin relative to the value instead.
fn padded(min: f64, max: f64, frac: f64) -> (f64, f64) {
    let span = max - min;
    let pad = if span > 0.0 { span * frac } else { (min.abs() * 0.1).max(1.0) };
    (min - pad, max + pad)
}

/// Tick labels for env steps: `250k`, `1.5M`.
fn format_steps(x: &f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim_float(x / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim_float(x / 1e3))
    } else {
        trim_float(*x)
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Draws learning curves into a PNG of [`WIDTH`] x [`HEIGHT`] pixels at `path` (which must end in
/// `.png`): the title, x axis "env steps", y axis "episode return", every series of `spec`, and a
/// legend naming each series. Axis ranges come from the data with a small margin.
///
/// Non-finite points are skipped; it is an error ([`PlotError::Empty`]) if no point is left.
pub fn draw_learning_curves(path: &Path, spec: &PlotSpec) -> Result<(), PlotError> {
    let is_png = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(PlotError::NotPng { path: path.to_path_buf() });
    }
    let curves: Vec<Named<(f64, f64)>> =
        spec.curves.iter().map(|c| (c.label.as_str(), sorted_finite(&c.points))).collect();
    let markers: Vec<Named<(f64, f64)>> =
        spec.markers.iter().map(|c| (c.label.as_str(), sorted_finite(&c.points))).collect();
    let bands: Vec<Named<(f64, f64, f64)>> = spec
        .bands
        .iter()
        .map(|b| {
            let mut p: Vec<(f64, f64, f64)> =
                b.points.iter().copied().filter(|(x, m, s)| x.is_finite() && m.is_finite() && s.is_finite()).collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            (b.label.as_str(), p)
        })
        .collect();

    // Every (x, y) that must be visible, band edges included.
    let extent =
        curves.iter().chain(&markers).flat_map(|(_, p)| p.iter().copied()).chain(
            bands.iter().flat_map(|(_, p)| p.iter().flat_map(|&(x, m, s)| [(x, m - s.abs()), (x, m + s.abs())])),
        );
    let mut bounds: Option<(f64, f64, f64, f64)> = None;
    for (x, y) in extent {
        let b = bounds.get_or_insert((x, x, y, y));
        *b = (b.0.min(x), b.1.max(x), b.2.min(y), b.3.max(y));
    }
    let (x_min, x_max, y_min, y_max) = bounds.ok_or(PlotError::Empty)?;
    let x_range = padded(x_min, x_max, 0.02);
    let y_range = padded(y_min, y_max, 0.05);

    ensure_font()?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    render(&root, spec.title, x_range, y_range, &curves, &bands, &markers)
        .map_err(|message| PlotError::Draw { path: path.to_path_buf(), message })
}

/// A labelled series of points.
type Named<'s, T> = (&'s str, Vec<T>);
/// Labelled series of points.
type Series<'s, T> = [Named<'s, T>];

/// Draws the chart onto `root` and writes the file.
fn render(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    curves: &Series<(f64, f64)>,
    bands: &Series<(f64, f64, f64)>,
    markers: &Series<(f64, f64)>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("env steps")
        .y_desc("episode return")
        .axis_desc_style((FONT_FAMILY, 18))
        .label_style((FONT_FAMILY, 14))
        .x_label_formatter(&format_steps)
        .y_label_formatter(&|y: &f64| trim_float(*y))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;

    let mut colors = COLORS.iter().cycle().copied();
    for (label, points) in bands {
        let color = colors.next().unwrap_or(BLACK);
        let outline: Vec<(f64, f64)> = points
            .iter()
            .map(|&(x, m, s)| (x, m + s.abs()))
            .chain(points.iter().rev().map(|&(x, m, s)| (x, m - s.abs())))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.2).filled()))).map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|&(x, m, _)| (x, m)), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{label} (mean ± std)"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], color.mix(0.3).filled()));
    }
    for (label, points) in curves {
        let color = colors.next().unwrap_or(BLACK);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        if let [p] = points.as_slice() {
            // A line through one point is invisible; show the point itself.
            chart.draw_series(std::iter::once(Circle::new(*p, 3, color.filled()))).map_err(|e| err(&e))?;
        }
    }
    for (label, points) in markers {
        let color = colors.next().unwrap_or(BLACK);
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?
            .label(*label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT_FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rllib-plot-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn band_interpolates_onto_common_x_union() {
        // Run a: y = x on [0, 10]; run b: y = 2 at 2, 6 at 6, 14 at 12.
        let a = vec![(0.0, 0.0), (10.0, 10.0)];
        let b = vec![(6.0, 6.0), (2.0, 2.0), (12.0, 14.0)];
        let band = mean_std_band(&[a, b]);
        // Common range [2, 10]; x union within it: 2, 6, 10.
        // x=2: a=2, b=2 -> mean 2, std 0.
        // x=6: a=6, b=6 -> mean 6, std 0.
        // x=10: a=10, b=6 + 8*(4/6) = 11.333.. -> mean 10.666.., std 0.666..
        let expected = [(2.0, 2.0, 0.0), (6.0, 6.0, 0.0), (10.0, 32.0 / 3.0, 2.0 / 3.0)];
        assert_eq!(band.len(), expected.len(), "{band:?}");
        for (got, want) in band.iter().zip(expected) {
            assert!(close(got.0, want.0) && close(got.1, want.1) && close(got.2, want.2), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn band_population_std_and_edge_cases() {
        let runs = vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(0.0, 3.0), (1.0, 6.0)], vec![(0.0, 5.0), (1.0, 7.0)]];
        let band = mean_std_band(&runs);
        // x=0: 1,3,5 -> mean 3, var (4+0+4)/3; x=1: 2,6,7 -> mean 5, var (9+1+4)/3.
        assert!(close(band[0].1, 3.0) && close(band[0].2, (8.0f64 / 3.0).sqrt()));
        assert!(close(band[1].1, 5.0) && close(band[1].2, (14.0f64 / 3.0).sqrt()));
        assert!(mean_std_band(&[]).is_empty());
        assert!(mean_std_band(&[vec![(0.0, 1.0)], vec![]]).is_empty());
        assert!(mean_std_band(&[vec![(0.0, 1.0), (1.0, 1.0)], vec![(2.0, 1.0), (3.0, 1.0)]]).is_empty());
        assert_eq!(mean_std_band(&[vec![(4.0, 1.5)]]), vec![(4.0, 1.5, 0.0)]);
    }

    /// `(width, height)` from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.len() > 24, "too short for a PNG");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "first chunk is IHDR");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn draws_png_with_expected_size() {
        let dir = TempDir::new("draw");
        let path = dir.0.join("curves.png");
        let seeds: Vec<Vec<(f64, f64)>> = (0..3)
            .map(|s| {
                (0..=50)
                    .map(|i| {
                        let x = i as f64 * 4000.0;
                        (x, 200.0 * (1.0 - (-x / 60_000.0).exp()) + 10.0 * ((i + 7 * s) as f64).sin())
                    })
                    .collect()
            })
            .collect();
        let bands = [Band { label: "PPO CartPole (3 seeds)".into(), points: mean_std_band(&seeds) }];
        let curves = [Curve { label: "seed 0".into(), points: seeds[0].clone() }];
        let markers = [Curve {
            label: "evaluation".into(),
            points: (1..=5).map(|i| (i as f64 * 40_000.0, 40.0 * i as f64)).collect(),
        }];
        let spec = PlotSpec { title: "CartPole-v1 learning curves", curves: &curves, bands: &bands, markers: &markers };
        draw_learning_curves(&path, &spec).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(png_size(&bytes), (WIDTH, HEIGHT));
    }

    #[test]
    fn single_point_and_flat_line_draw() {
        let dir = TempDir::new("flat");
        let single = [Curve { label: "one".into(), points: vec![(0.0, 0.0)] }];
        let flat = [Curve { label: "flat".into(), points: vec![(0.0, 5.0), (100.0, 5.0)] }];
        for (name, curves) in [("single.png", &single), ("flat.png", &flat)] {
            let path = dir.0.join(name);
            let spec = PlotSpec { title: name, curves, bands: &[], markers: &[] };
            draw_learning_curves(&path, &spec).unwrap();
            assert_eq!(png_size(&fs::read(&path).unwrap()), (WIDTH, HEIGHT));
        }
    }

    #[test]
    fn empty_input_is_an_error() {
        let dir = TempDir::new("empty");
        let path = dir.0.join("empty.png");
        let none = PlotSpec { title: "empty", curves: &[], bands: &[], markers: &[] };
        assert!(matches!(draw_learning_curves(&path, &none), Err(PlotError::Empty)));
        let empty_series = [Curve { label: "no points".into(), points: vec![(f64::NAN, 1.0)] }];
        let spec = PlotSpec { curves: &empty_series, markers: &empty_series, ..none };
        assert!(matches!(draw_learning_curves(&path, &spec), Err(PlotError::Empty)));
        assert!(!path.exists());
        let bad_ext = dir.0.join("curves.jpg");
        let flat = [Curve { label: "x".into(), points: vec![(0.0, 1.0)] }];
        let spec = PlotSpec { curves: &flat, ..none };
        assert!(matches!(draw_learning_curves(&bad_ext, &spec), Err(PlotError::NotPng { .. })));
    }
}
