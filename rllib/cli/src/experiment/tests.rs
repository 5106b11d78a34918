//! Unit tests of spec parsing, aggregation and table rendering.

use super::*;
use rllib::evaluation::EvalStats;

/// A directory under the system temp dir holding `ppo.yaml`, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rllib-experiment-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ppo.yaml"), "env: CartPole-v1\n").unwrap();
        Self(dir)
    }
    fn parse(&self, text: &str) -> Result<ExperimentSpec, String> {
        let path = self.0.join("spec.yaml");
        ExperimentSpec::parse(text, &path).map_err(|e| e.to_string().replace(&self.0.display().to_string(), "DIR"))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const ROW: &str = "  - label: CartPole-v1\n    config: ppo.yaml\n    seeds: [1, 2]\n    metric: train\n";

fn summary(train: Option<f64>, returns: &[f64], env_steps: u64, secs: f64) -> TrainSummary {
    TrainSummary {
        run_dir: PathBuf::from("runs/x/seed1"),
        iterations: 2,
        env_steps,
        train_seconds: secs,
        stop_reason: "training_iteration >= 2".into(),
        train_episode_return_mean: train,
        final_evaluation: EvalStats { returns: returns.to_vec(), lengths: vec![1; returns.len()] },
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn parses_spec_and_resolves_configs() {
    let dir = TempDir::new("parse");
    let text = "description: PPO, 3 seeds.\nrows:\n  - label: Acrobot v1 (ours)\n    config: ppo.yaml\n    \
                seeds: [3]\n    set: [\"lr=1e-3\"]\n    metric: evaluation\n    reference:\n      mean: -86\n      \
                std: 0\n      source: SB3 zoo\n    note: \" fewer steps \"\n";
    let spec = dir.parse(text).unwrap();
    assert_eq!((spec.name.as_str(), spec.description.as_str()), ("spec", "PPO, 3 seeds."));
    let row = &spec.rows[0];
    assert_eq!((row.label.as_str(), row.slug.as_str()), ("Acrobot v1 (ours)", "acrobot-v1-ours"));
    assert_eq!(row.config, dir.0.join("ppo.yaml"));
    assert_eq!((row.seeds.clone(), row.set.clone(), row.metric), (vec![3], vec!["lr=1e-3".into()], Metric::Evaluation));
    assert_eq!(row.reference, Some(Reference { mean: -86.0, std: 0.0, source: "SB3 zoo".into() }));
    assert_eq!(row.note.as_deref(), Some("fewer steps"));
    assert_eq!(dir.parse(&format!("name: classic-v1.2\nrows:\n{ROW}")).unwrap().name, "classic-v1.2");
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let dir = TempDir::new("unknown");
    let err = dir.parse(&format!("rows:\n{ROW}    seed: [1]\n")).unwrap_err();
    assert!(err.starts_with("DIR/spec.yaml: line 6 column 5: unknown field `seed`"), "{err}");
    assert!(err.contains("did you mean `seeds`?"), "{err}");
    let err = dir.parse("rows:\n  - label: x\n    config: ppo.yaml\n    seeds: [1]\n    metric: best\n").unwrap_err();
    assert!(err.starts_with("DIR/spec.yaml: line 5") && err.contains("best"), "{err}");
}

#[test]
fn invalid_values_name_file_line_and_row() {
    let dir = TempDir::new("invalid");
    let cases = [
        ("rows: []\n", "DIR/spec.yaml:1: rows: must list at least one row"),
        (
            &format!("rows:\n{ROW}{ROW}"),
            "DIR/spec.yaml:6: label: \"CartPole-v1\" is already the label of the row on line 2",
        ),
        (
            &format!("rows:\n{}", ROW.replace("[1, 2]", "[]")),
            "DIR/spec.yaml:4: row \"CartPole-v1\": seeds: must list at least one seed",
        ),
        (
            &format!("rows:\n{}", ROW.replace("[1, 2]", "[2, 1, 2]")),
            "DIR/spec.yaml:4: row \"CartPole-v1\": seeds: seed 2 is listed twice",
        ),
        (
            &format!("rows:\n{}", ROW.replace("ppo.yaml", "../missing.yaml")),
            "DIR/spec.yaml:3: row \"CartPole-v1\": config: no such file DIR/../missing.yaml",
        ),
        (
            &format!("rows:\n{ROW}    reference: {{mean: 1, std: -0.5, source: x}}\n"),
            "DIR/spec.yaml:6: row \"CartPole-v1\": reference.std: must be a non-negative number, got -0.5",
        ),
        (&format!("rows:\n{ROW}    set: [lr]\n"), "DIR/spec.yaml:6: row \"CartPole-v1\": set: expected key=value"),
        (&format!("name: a/b\nrows:\n{ROW}"), "DIR/spec.yaml:1: name: \"a/b\" must be non-empty"),
    ];
    for (text, want) in cases {
        let err = dir.parse(text).unwrap_err();
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
    let duplicate = dir.parse(&format!("rows:\n{ROW}{}", ROW.replace("CartPole-v1", "cartpole v1"))).unwrap_err();
    assert!(
        duplicate.ends_with("\"cartpole v1\" gives the same file name \"cartpole-v1\" as the row on line 2"),
        "{duplicate}"
    );
    let missing = ExperimentSpec::load(&dir.0.join("nope.yaml")).unwrap_err().to_string();
    assert!(missing.starts_with("cannot read experiment spec ") && missing.contains("nope.yaml"), "{missing}");
}

#[test]
fn train_metric_averages_seeds_and_evaluation_pools_episodes() {
    let (a, b) = (summary(Some(10.0), &[1.0, 3.0], 100, 2.0), summary(Some(20.0), &[5.0], 100, 4.0));
    let train = aggregate(Metric::Train, &[&a, &b]).unwrap();
    assert!(close(train.mean, 15.0) && close(train.std, 5.0), "{train:?}");
    // Pooled episodes 1, 3, 5 (not the mean of per-seed means 2 and 5): mean 3, var 8/3.
    let eval = aggregate(Metric::Evaluation, &[&a, &b]).unwrap();
    assert!(close(eval.mean, 3.0) && close(eval.std, (8.0f64 / 3.0).sqrt()), "{eval:?}");
    let none = summary(None, &[], 100, 1.0);
    assert_eq!(aggregate(Metric::Train, &[&none]), None);
    assert_eq!(aggregate(Metric::Train, &[&none, &a]), Some(MeanStd { mean: 10.0, std: 0.0 }));
    assert_eq!(aggregate(Metric::Evaluation, &[]), None);
}

#[test]
fn within_two_std_includes_the_boundary_and_handles_std_zero() {
    let r = Reference { mean: 100.0, std: 5.0, source: String::new() };
    assert!(within_two_std(110.0, &r) && within_two_std(90.0, &r) && within_two_std(100.0, &r));
    assert!(!within_two_std(110.01, &r) && !within_two_std(89.99, &r));
    // A reference with std 0 accepts 97.5% of it and more (up to the same distance above).
    let exact = Reference { mean: 500.0, std: 0.0, source: String::new() };
    assert!(within_two_std(500.0, &exact) && within_two_std(487.5, &exact));
    assert!(!within_two_std(487.4, &exact) && !within_two_std(236.67, &exact));
    let negative = Reference { mean: -200.0, std: 0.0, source: String::new() };
    assert!(within_two_std(-195.0, &negative) && !within_two_std(-194.9, &negative));
}

#[test]
fn table_shows_results_references_failures_sources_and_notes() {
    let row = |label: &str, metric, reference: Option<Reference>, note: Option<&str>| RowSpec {
        label: label.into(),
        slug: slug(label),
        config: PathBuf::from("ppo.yaml"),
        seeds: vec![1, 2, 3],
        set: vec![],
        metric,
        reference,
        note: note.map(str::to_string),
    };
    let cleanrl = Reference { mean: 490.04, std: 6.12, source: "CleanRL | openrlbenchmark".into() };
    let zoo = Reference { mean: -80.0, std: 1.0, source: "SB3 zoo".into() };
    let spec = ExperimentSpec {
        name: "classic".into(),
        description: "PPO on classic control.".into(),
        rows: vec![
            row("CartPole-v1", Metric::Train, Some(cleanrl), Some("500k steps")),
            row("Acrobot-v1", Metric::Evaluation, Some(zoo), None),
            row("Pendulum | v1", Metric::Train, None, None),
            row("MountainCar-v0", Metric::Train, None, None),
        ],
    };
    let (a, b) = (summary(Some(489.0), &[500.0], 500_224, 7.0), summary(Some(491.0), &[500.0], 500_224, 8.0));
    let (c, d) = (summary(None, &[-90.0, -88.0], 500_000, 9.0), summary(Some(-80.0), &[-86.0], 499_000, 3.0));
    let mut rows = [
        RowResult::new(&spec.rows[0], &[Some(&a), Some(&b), None]),
        RowResult::new(&spec.rows[1], &[Some(&c), Some(&d), Some(&d)]),
        RowResult::new(&spec.rows[2], &[None, Some(&c), None]),
        RowResult::new(&spec.rows[3], &[None, None, None]),
    ];
    rows[0].bootstrap_truncated = Some(true);
    rows[1].bootstrap_truncated = Some(false);
    let provenance = Provenance {
        command: "rl experiment run x.yaml".into(),
        date: "2026-11-28".into(),
        cores: 16,
        jobs: 4,
        version: "0.1.0".into(),
    };
    let md = render_table(&spec, &provenance, &rows);
    let head = "# classic\n\nPPO on classic control.\n\nProduced by `rl experiment run x.yaml` on 2026-11-28 (UTC) \
                with rllib 0.1.0, 4 runs in parallel on 16 cores.\n";
    assert!(md.starts_with(head), "{md}");
    // Acrobot pools -90, -88, -86, -86: mean -87.5, std sqrt(2.75); 7.5 away from -80 is over 2 std.
    for line in [
        "| CartPole-v1 | train | 490.00 ± 1.00 | 490.04 ± 6.12 | yes | 2 of 3; failed: seed 3 | 500224 | bootstrapped | 7.50 |",
        "| Acrobot-v1 | evaluation | -87.50 ± 1.66 | -80.00 ± 1.00 | no | 3 | 499333 (mean) | terminal | 5.00 |",
        "| Pendulum \\| v1 | train | no value | – | – | 1 of 3; failed: seeds 1, 3; no finished episode: seed 2 | 500000 | – | 9.00 |",
        "| MountainCar-v0 | train | failed (seeds 1, 2, 3) | – | – | 0 of 3; failed: seeds 1, 2, 3 | – | – | – |",
    ] {
        assert!(md.contains(&format!("\n{line}\n")), "{line}\n{md}");
    }
    assert!(md.contains("## Sources\n\n- CartPole-v1: CleanRL | openrlbenchmark\n- Acrobot-v1: SB3 zoo\n"), "{md}");
    assert!(md.contains("## Notes\n\n- CartPole-v1: 500k steps\n"), "{md}");
}

#[test]
fn slugs_and_dates() {
    assert_eq!(slug("CartPole-v1"), "cartpole-v1");
    assert_eq!(slug("  MountainCar / continuous (v0) "), "mountaincar-continuous-v0");
    assert_eq!(slug("???"), "");
    assert_eq!(today_utc().len(), 10);
}

#[test]
fn committed_results_sit_beside_the_spec() {
    assert_eq!(
        committed_results_dir(Path::new("experiments/cleanrl-classic-control.yaml")),
        Path::new("experiments/results")
    );
    assert_eq!(committed_results_dir(Path::new("spec.yaml")), Path::new("results"));
}

/// Every committed spec parses, and each row's config file exists.
#[test]
fn committed_specs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut specs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    specs.sort();
    assert!(specs.len() >= 6, "found {specs:?}");
    for path in specs {
        let spec = ExperimentSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for row in &spec.rows {
            assert!(row.config.is_file(), "{}: {} has no config {}", path.display(), row.label, row.config.display());
        }
    }
}
