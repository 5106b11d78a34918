//! The `rl` binary: bad input gets one clear error, a non-zero exit and no run directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rl")).args(args).output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rl-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const GOOD: &str = "env: CartPole-v1\nstop:\n  training_iteration: 2\n";

/// Writes `yaml`, runs `rl train` on it and returns (exit code, stderr), asserting that no
/// run directory was created.
fn train_fails(name: &str, yaml: &str, extra: &[&str]) -> (i32, String) {
    let dir = scratch(name);
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out_dir = dir.join("run");
    let mut args = vec!["train", "--config", cfg.to_str().unwrap(), "--output", out_dir.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let out = rl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{name}: should fail");
    assert!(!out_dir.exists(), "{name}: left a run directory behind");
    assert!(stderr.starts_with("error: "), "{name}: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
    (out.status.code().unwrap(), stderr.replace(&cfg.display().to_string(), "CONFIG"))
}

#[test]
fn missing_config_file() {
    let out = rl(&["train", "--config", "/nonexistent/ppo.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot read config /nonexistent/ppo.yaml: "), "{err}");
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let (code, err) = train_fails("syntax", "env: CartPole-v1\nstop: [training_iteration: 2\n", &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: CONFIG: line 2"), "{err}");
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let (_, err) = train_fails("unknown", &format!("{GOOD}entropy_coef: 0.01\n"), &[]);
    assert!(err.contains("line 4 column 1: unknown field `entropy_coef`"), "{err}");
    assert!(err.contains("did you mean `entropy_coeff`?"), "{err}");
}

#[test]
fn wrong_type_names_the_line() {
    let (_, err) = train_fails("type", &format!("{GOOD}num_epochs: four\n"), &[]);
    assert!(err.contains("line 4 column 13"), "{err}");
}

#[test]
fn out_of_range_values() {
    let (_, err) = train_fails("lr", &format!("{GOOD}lr: -0.001\n"), &[]);
    assert_eq!(err.trim(), "error: CONFIG:4: lr: must be a positive number, got -0.001");
    let (_, err) = train_fails("mb", &format!("{GOOD}minibatch_size: 4096\n"), &[]);
    assert!(err.starts_with("error: CONFIG:4: minibatch_size: 4096 is larger than the batch of 512"), "{err}");
    let (_, err) = train_fails("set", GOOD, &["--set", "gamma=1.5"]);
    assert_eq!(err.trim(), "error: --set gamma=1.5: gamma: must be within [0, 1], got 1.5");
}

#[test]
fn unknown_env_id() {
    let (_, err) = train_fails("env", &GOOD.replace("CartPole-v1", "Cartpole-v1"), &[]);
    assert!(err.contains("CONFIG:1: env: unknown env id \"Cartpole-v1\"; did you mean CartPole-v1"), "{err}");
}

#[test]
fn bad_env_config_fails_before_the_run_directory() {
    let (_, err) = train_fails("kwarg", &format!("{GOOD}env_config:\n  gravity: 3\n"), &[]);
    assert!(err.contains("unknown keyword argument \"gravity\""), "{err}");
}

#[test]
fn existing_output_is_not_overwritten() {
    let dir = scratch("exists");
    std::fs::write(dir.join("keep.txt"), "precious").unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, GOOD).unwrap();
    let out = rl(&["train", "--config", cfg.to_str().unwrap(), "--output", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "precious");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_then_evaluate_a_checkpoint() {
    let dir = scratch("roundtrip");
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, GOOD).unwrap();
    let run = dir.join("run");
    let out = rl(&["train", "--config", cfg.to_str().unwrap(), "--output", run.to_str().unwrap(), "--seed", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Not a terminal: a status line (every 10 s, the first at iteration 1), then the summary.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("PPO CartPole-v1 seed 3 | 512/1024 env steps | iter 1 | return "), "{stdout}");
    assert!(lines.last().unwrap().starts_with("final evaluation: episode_return_mean "), "{stdout}");
    assert!(Path::new(&run).join("checkpoints/final/policy.safetensors").is_file());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["iterations"], 2);
    assert_eq!(summary["env_steps"], 1024);
    assert_eq!(summary["final_evaluation"]["returns"].as_array().unwrap().len(), 20);
    assert!(is_png(&run.join("learning_curve.png")));
    let ckpt = run.join("checkpoints/final");
    let out = rl(&["evaluate", "--checkpoint", ckpt.to_str().unwrap(), "--episodes", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by_checkpoint = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(by_checkpoint.contains(": 3 episodes  return mean "));
    // A run directory stands for its final checkpoint.
    let out = rl(&["evaluate", "--checkpoint", run.to_str().unwrap(), "--episodes", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by_run = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(by_run.split_once(':').unwrap().1, by_checkpoint.split_once(':').unwrap().1);
    // The seed is given once.
    let out = rl(&["train", "--config", cfg.to_str().unwrap(), "--seed", "2", "--set", "seed=3"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: --seed 2 and --set seed=3 both set the seed; give it once"
    );

    // A rollout writes one JSON line per step plus one per reset, and is reproducible.
    let traj = dir.join("traj.jsonl");
    let args = ["rollout", "--checkpoint", ckpt.to_str().unwrap(), "--steps", "50", "--out", traj.to_str().unwrap()];
    assert!(rl(&args).status.success());
    let text = std::fs::read_to_string(&traj).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let steps = lines.iter().filter(|l| l.get("action").is_some()).count();
    let resets = lines.iter().filter(|l| l.get("reset").is_some()).count();
    let dones = lines.iter().filter(|l| l["terminated"] == true || l["truncated"] == true).count();
    // A reset opens every episode that has a step; the file ends with a step.
    let last_done = lines.last().is_some_and(|l| l["terminated"] == true || l["truncated"] == true);
    assert_eq!((steps, resets), (50, 1 + dones - usize::from(last_done)));
    assert!(lines.last().unwrap().get("action").is_some());
    assert_eq!(lines[0]["reset"]["seed"], 0);
    assert!(rl(&args).status.success());
    assert_eq!(std::fs::read_to_string(&traj).unwrap(), text);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn plot_overlays_seeds_of_one_config() {
    let dir = scratch("plot");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "env: CartPole-v1\nrollout_fragment_length: 64\nminibatch_size: 64\nstop:\n  training_iteration: 3\n",
    )
    .unwrap();
    let mut runs = Vec::new();
    for seed in ["1", "2"] {
        let run = dir.join(format!("seed{seed}"));
        let args = ["train", "--config", cfg.to_str().unwrap(), "--output", run.to_str().unwrap(), "--seed", seed];
        assert!(rl(&[&args[..], &["--quiet"]].concat()).status.success());
        runs.push(run.to_str().unwrap().to_string());
    }
    let out = dir.join("both.png");
    let out_s = out.to_str().unwrap();
    let res = rl(&["plot", &runs[0], &runs[1], "--out", out_s]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(is_png(&out));

    // Not a run directory, and not a PNG path: one clear error each, nothing written.
    let res = rl(&["plot", dir.to_str().unwrap(), "--out", out_s]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && err.contains("is not a run directory (it has no config.yaml)"), "{err}");
    let jpg = dir.join("x.jpg");
    let res = rl(&["plot", &runs[0], "--out", jpg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("must end in .png") && !jpg.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `rl plot` reads a run as recorded: a run of an env this binary has never heard of (registered
/// only inside this test process, trained through the library) plots like any other.
#[test]
fn plot_works_on_runs_of_envs_the_binary_does_not_know() {
    let dir = scratch("plot-custom");
    rl_env::register(rl_env::EnvSpec::new("OnlyInThisTest-v0", |kw| rl_env::make("CartPole-v1", kw))).unwrap();
    let yaml =
        "env: OnlyInThisTest-v0\nrollout_fragment_length: 64\nminibatch_size: 64\nstop:\n  training_iteration: 3\n";
    let config = rllib::TrainConfig::parse(yaml, "custom.yaml", &[]).unwrap();
    let run = dir.join("run");
    rllib::train(&config, &run, &mut ()).unwrap();
    // The binary does not know the env: training on it fails, plotting its run works.
    let cfg = dir.join("custom.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let res = rl(&["train", "--config", cfg.to_str().unwrap(), "--output", dir.join("x").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("unknown env id \"OnlyInThisTest-v0\""));
    let out = dir.join("custom.png");
    let res = rl(&["plot", run.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(is_png(&out));
    // Evaluating needs the env: the binary says which program has it.
    let res = rl(&["evaluate", "--checkpoint", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("env OnlyInThisTest-v0 is not registered in this program: load the checkpoint with the program"),
        "{err}"
    );
    // With one run and no --out, the picture goes into the run directory.
    let res = rl(&["plot", run.to_str().unwrap()]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(is_png(&run.join("learning_curve.png")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `rl check-env`: the built-in envs pass, env arguments reach the env, and a broken env fails
/// with a report naming the check.
#[test]
fn check_env_reports_on_the_env_contract() {
    let out = rl(&["check-env", "CartPole-v1", "--set", "env_config.max_episode_steps=50"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("CartPole-v1: 10 of 10 checks passed"), "{text}");
    let out = rl(&["check-env", "CartPole-v1", "--set", "env_config.gravity=9.8"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown keyword argument \"gravity\""));
    let out = rl(&["check-env", "CartPole-v1", "--set", "gravity=9.8"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("takes env arguments only, as env_config.KEY=VALUE"));
    // An env whose observations turn NaN at once fails the checker.
    rl_env::register(rl_env::EnvSpec::new("NanAtOnce-v0", |kw| {
        Ok(Box::new(NanAfter { inner: rl_env::make("CartPole-v1", kw)?, steps: 0, after: 0 }))
    }))
    .unwrap();
    assert!(is_failure(rl_cli::run(["rl", "check-env", "NanAtOnce-v0"].map(std::ffi::OsString::from))));
    let report = rl_env::check_env("NanAtOnce-v0", &rl_env::Kwargs::new()).unwrap();
    assert!(!report.is_ok() && report.to_string().contains("FAIL"), "{report}");
}

/// The README's copy-paste Cargo.toml for a crate outside the workspace is the one `.ci/run`
/// builds (`experiments/out-of-tree/check.sh`).
#[test]
fn readme_shows_the_tested_out_of_tree_manifest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let manifest = std::fs::read_to_string(root.join("experiments/out-of-tree/Cargo.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{manifest}```")),
        "README.md must show experiments/out-of-tree/Cargo.toml"
    );
    assert!(manifest.contains("[profile.dev.package.\"*\"]\nopt-level = 3"));
}

/// `RL_LOG` output piped to a file is plain text, without terminal colour codes.
#[test]
fn piped_logs_have_no_colour_codes() {
    let dir = scratch("logs");
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rl"))
        .args(["train", "--quiet", "--config", cfg.to_str().unwrap(), "--output", dir.join("run").to_str().unwrap()])
        .env("RL_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("training started"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn envs_lists_builtins_and_help_has_examples() {
    let out = rl(&["envs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CartPole-v1") && text.contains("Pendulum-v1"), "{text}");
    let help = String::from_utf8_lossy(&rl(&["--help"]).stdout).to_string();
    assert!(help.contains("Examples:") && help.contains("rl train --config configs/ppo.yaml"), "{help}");
}

/// CartPole whose observations turn NaN after `after` steps of each sub-env: a buggy user env.
struct NanAfter {
    inner: Box<dyn rl_env::Env>,
    steps: u64,
    after: u64,
}

impl rl_env::Env for NanAfter {
    fn id(&self) -> &str {
        "NanAfter-v0"
    }
    fn observation_space(&self) -> &rl_env::Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &rl_env::Space {
        self.inner.action_space()
    }
    fn reset_into(
        &mut self,
        seed: Option<u64>,
        options: Option<&rl_env::Kwargs>,
        obs: &mut [f32],
    ) -> rl_env::Result<rl_env::Info> {
        self.inner.reset_into(seed, options, obs)
    }
    fn step_into(&mut self, action: rl_env::Action<'_>, obs: &mut [f32]) -> rl_env::Result<rl_env::StepResult> {
        let r = self.inner.step_into(action, obs)?;
        self.steps += 1;
        if self.steps > self.after {
            obs[2] = f32::NAN;
        }
        Ok(r)
    }
}

fn is_failure(code: std::process::ExitCode) -> bool {
    format!("{code:?}") == format!("{:?}", std::process::ExitCode::FAILURE)
}

/// Every tensor of a safetensors file as f32 values.
fn tensors(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .flat_map(|(_, v)| {
            v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()
        })
        .collect()
}

/// An env that turns NaN stops the run with an error naming env, runner, sub-env and step; the
/// checkpoints written before stay, no final one is written, and the exit code says failure.
#[test]
fn a_nan_observation_stops_the_run_with_a_clear_error() {
    let dir = scratch("nan-env");
    rl_env::register(rl_env::EnvSpec::new("NanAfter-v0", |kw| {
        Ok(Box::new(NanAfter { inner: rl_env::make("CartPole-v1", kw)?, steps: 0, after: 1000 }))
    }))
    .unwrap();
    let yaml = "env: NanAfter-v0\nstop:\n  training_iteration: 20\ncheckpoint:\n  frequency: 2\n";
    let config = rllib::TrainConfig::parse(yaml, "nan.yaml", &[]).unwrap();
    let run = dir.join("lib");
    let err = rllib::train(&config, &run, &mut ()).unwrap_err();
    let text = err.to_string();
    // 1001 vector steps = iteration 8 of 128-step fragments.
    assert_eq!(
        text,
        "actor env_runner_0 failed: env NanAfter-v0 returned a non-finite observation (NaN at element 2) in \
         env runner 0, sub-env 0, at that runner's step 1001: a bug in the env or its env_config"
    );
    assert!(
        matches!(&err, rllib::Error::Runtime(e) if matches!(**e, rl_runtime::RuntimeError::ActorFailed { recoverable: false, .. }))
    );
    let ckpts: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ckpts, ["iter_000002", "iter_000004", "iter_000006"]);
    assert!(tensors(&run.join("checkpoints/iter_000006/policy.safetensors")).iter().all(|v| v.is_finite()));
    assert!(!run.join("summary.json").exists());
    // Evaluating the unfinished run points at the checkpoints it has.
    let res = rl(&["evaluate", "--checkpoint", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("this run directory has no final checkpoint (the run did not finish)"), "{err}");
    assert!(err.contains("checkpoints/iter_000006"), "{err}");

    // Through the command line: the same error and a failure exit code.
    let cfg = dir.join("nan.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = dir.join("cli");
    let code = rl_cli::run(
        ["rl", "train", "--quiet", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()]
            .map(std::ffi::OsString::from),
    );
    assert!(is_failure(code));
    assert!(!out.join("checkpoints/final").exists() && !out.join("summary.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An absurd learning rate makes the loss non-finite: the learner's guard stops the run before
/// the weights change, and `rl train` fails.
#[test]
fn a_non_finite_loss_stops_the_run_before_the_weights_change() {
    let dir = scratch("nan-loss");
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, "env: CartPole-v1\nlr: 1.0e30\nstop:\n  training_iteration: 5\ncheckpoint:\n  frequency: 1\n")
        .unwrap();
    let run = dir.join("run");
    let res = rl(&["train", "--quiet", "--config", cfg.to_str().unwrap(), "--output", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: actor learner failed: non-finite "), "{err}");
    assert!(err.contains("the weights were left unchanged. Lower the learning rate (lr)"), "{err}");
    assert!(!run.join("checkpoints/final").exists());
    for ckpt in std::fs::read_dir(run.join("checkpoints")).into_iter().flatten() {
        let policy = ckpt.unwrap().path().join("policy.safetensors");
        assert!(tensors(&policy).iter().all(|v| v.is_finite()), "{}", policy.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// More env runners than the runtime has CPUs: they share the cores, with a warning.
#[test]
fn more_env_runners_than_cores_train_with_a_warning() {
    let dir = scratch("oversubscribe");
    let run = dir.join("run");
    let out = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_rl"), "train", "--quiet", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/ppo.yaml"))
        .args(["--set", "num_env_runners=4", "--set", "stop.num_env_steps_sampled_lifetime=2048", "--output"])
        .arg(&run)
        .output()
        .expect("taskset (util-linux) runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reserve 4 logical CPUs and this machine has 1"), "{err}");
    assert!(run.join("summary.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
