//! Replays the golden Gymnasium trajectories in `env/fixtures/*.jsonl` through `rl_env::make` and
//! checks every observation and reward bitwise, and every `terminated` / `truncated` flag.
//!
//! The fixtures come from `env/fixtures/generate.py` (Gymnasium 1.4.0, NumPy 2.4.6); its docstring
//! describes the format. No Python is needed here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rl_env::{Action, Env, Kwargs, make, spec};
use serde_json::Value;

const BUILTIN_IDS: [&str; 5] =
    ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"];

#[test]
fn cartpole_matches_gymnasium() {
    replay_env("CartPole-v1");
}

#[test]
fn acrobot_matches_gymnasium() {
    replay_env("Acrobot-v1");
}

#[test]
fn mountain_car_matches_gymnasium() {
    replay_env("MountainCar-v0");
}

#[test]
fn mountain_car_continuous_matches_gymnasium() {
    replay_env("MountainCarContinuous-v0");
}

#[test]
fn pendulum_matches_gymnasium() {
    replay_env("Pendulum-v1");
}

/// Every fixture file is for a built-in env, so none is silently skipped.
#[test]
fn every_fixture_is_replayed() {
    for path in fixture_files() {
        let (header, _) = read_fixture(&path);
        let id = header["env"].as_str().unwrap_or_default();
        assert!(BUILTIN_IDS.contains(&id), "{}: unknown env {id:?}", path.display());
    }
}

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The header and the remaining lines (with their 1-based line numbers) of one fixture file.
fn read_fixture(path: &Path) -> (Value, Vec<(usize, Value)>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().enumerate().map(|(i, line)| {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: bad JSON: {e}", path.display(), i + 1));
        (i + 1, value)
    });
    let (_, header) = lines.next().unwrap_or_else(|| panic!("{} is empty", path.display()));
    (header, lines.collect())
}

/// Replays every fixture file of `id`; panics listing the first mismatch of each file.
fn replay_env(id: &str) {
    let mut replayed = 0;
    let mut failures = String::new();
    for path in fixture_files() {
        let (header, records) = read_fixture(&path);
        if header["env"] != id {
            continue;
        }
        replayed += 1;
        if let Err(e) = replay(&path, &header, &records) {
            let _ = writeln!(failures, "{e}");
        }
    }
    assert!(replayed > 0, "no fixture for {id} in env/fixtures");
    assert!(failures.is_empty(), "{id} differs from Gymnasium:\n{failures}");
}

/// Where the replay is, for failure messages.
struct Position<'a> {
    file: &'a str,
    env: &'a str,
    line: usize,
    /// The seed of the last seeded reset.
    seed: Option<u64>,
    /// Steps since the last seeded reset.
    step: usize,
    /// Steps since the last reset of any kind.
    episode_step: usize,
}

impl std::fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seed = self.seed.map_or("none".to_string(), |s| s.to_string());
        write!(
            f,
            "{} line {}: {} seed {seed}, step {} (episode step {})",
            self.file, self.line, self.env, self.step, self.episode_step
        )
    }
}

fn replay(path: &Path, header: &Value, records: &[(usize, Value)]) -> Result<(), String> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let id = header["env"].as_str().ok_or_else(|| format!("{file}: header has no env id"))?;
    let kwargs: Kwargs = header["kwargs"].as_object().cloned().unwrap_or_default();
    let limit = header["max_episode_steps"].as_u64();
    let registered = spec(id).map_err(|e| format!("{file}: {e}"))?.default_max_episode_steps();
    if limit != registered {
        return Err(format!("{file}: Gymnasium's time limit is {limit:?}, ours is {registered:?}"));
    }
    let mut env = make(id, &kwargs).map_err(|e| format!("{file}: make({id}, {kwargs:?}): {e}"))?;
    let mut obs = vec![0.0f32; env.observation_space().flat_dim()];
    let mut at = Position { file, env: id, line: 1, seed: None, step: 0, episode_step: 0 };
    for (line, record) in records {
        at.line = *line;
        if let Some(reset) = record.get("reset") {
            let seed = reset["seed"].as_u64();
            if seed.is_some() {
                at.seed = seed;
                at.step = 0;
            }
            at.episode_step = 0;
            let options = reset.get("options").and_then(Value::as_object);
            env.reset_into(seed, options, &mut obs).map_err(|e| format!("{at}: reset failed: {e}"))?;
            compare_obs(&at, "reset", &obs, &record["obs"])?;
            continue;
        }
        at.step += 1;
        at.episode_step += 1;
        let discrete;
        let continuous: Vec<f32>;
        let action = match &record["action"] {
            Value::Array(a) => {
                continuous = a.iter().map(|v| exact_f32(&at, v)).collect::<Result<_, _>>()?;
                Action::Continuous(&continuous)
            }
            v => {
                discrete = v.as_i64().ok_or_else(|| format!("{at}: bad action {v}"))?;
                Action::Discrete(discrete)
            }
        };
        let result = env.step_into(action, &mut obs).map_err(|e| format!("{at}: step({action}) failed: {e}"))?;
        compare_obs(&at, &format!("step({action})"), &obs, &record["obs"])?;
        let want_reward = record["reward"].as_f64().ok_or_else(|| format!("{at}: bad reward"))?;
        if result.reward.to_bits() != want_reward.to_bits() {
            return Err(format!(
                "{at}: step({action}) reward {:?} (bits {:#018x}) but Gymnasium gave {want_reward:?} (bits {:#018x})",
                result.reward,
                result.reward.to_bits(),
                want_reward.to_bits()
            ));
        }
        for (name, got) in [("terminated", result.terminated), ("truncated", result.truncated)] {
            let want = record[name].as_bool().ok_or_else(|| format!("{at}: bad {name}"))?;
            if got != want {
                return Err(format!("{at}: step({action}) {name} = {got} but Gymnasium gave {want}"));
            }
        }
    }
    Ok(())
}

/// A fixture number that must be a float32 value (written as the float64 that equals it).
fn exact_f32(at: &Position<'_>, v: &Value) -> Result<f32, String> {
    let x = v.as_f64().ok_or_else(|| format!("{at}: expected a number, got {v}"))?;
    let f = x as f32;
    if f64::from(f) == x { Ok(f) } else { Err(format!("{at}: fixture value {x:?} is not a float32")) }
}

fn compare_obs(at: &Position<'_>, what: &str, got: &[f32], want: &Value) -> Result<(), String> {
    let want = want.as_array().ok_or_else(|| format!("{at}: {what}: fixture obs is not a list"))?;
    let want: Vec<f32> = want.iter().map(|v| exact_f32(at, v)).collect::<Result<_, _>>()?;
    if want.len() != got.len() {
        return Err(format!("{at}: {what}: obs has {} values, Gymnasium's has {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g.to_bits() != w.to_bits() {
            return Err(format!(
                "{at}: {what}: obs[{i}] = {g:?} (bits {:#010x}) but Gymnasium gave {w:?} (bits {:#010x}); \
                 obs {got:?} vs {want:?}",
                g.to_bits(),
                w.to_bits()
            ));
        }
    }
    Ok(())
}
