//! Replays `env/tests/fixtures/normalize/*.json`, recorded from the real Gymnasium 1.4.0 by
//! `make_fixtures.py` next to them, through `NormalizeObservation` and `NormalizeReward` over our
//! native CartPole-v1 and Pendulum-v1 (which match Gymnasium's bit for bit, see `fixtures.rs`).
//!
//! Tolerances:
//!
//! - **Rewards and the return statistics: exact** (bit for bit). Gymnasium keeps them in float64
//!   and ours follow its arithmetic operation by operation.
//! - **Observations: `|ours - gymnasium| <= OBS_ATOL + OBS_RTOL * |gymnasium|`.** Gymnasium keeps
//!   the observation statistics in float32 (the observation dtype; NumPy 2 casts the Python-float
//!   count and epsilon to float32 too) and normalizes in float32, while ours are float64 rounded
//!   to float32 once at the end. Each float32 operation rounds by up to 6e-8 relative and the
//!   running mean and variance carry those roundings along, so the results differ by a few
//!   float32 ulps of values that are mostly of order 1 to 10. Measured on these fixtures: at most
//!   1.2e-6 (CartPole-v1) and 2.3e-6 (Pendulum-v1) absolute, so the bound has a 4x margin; each
//!   test prints its largest difference (run with `--nocapture`).
//! - **Final observation statistics: relative `STATS_RTOL`**, for the same reason (measured: at
//!   most 3.1e-6); the count (a Python float in Gymnasium) is exact.

use std::path::Path;

use rl_env::{Action, Env, Kwargs, NormalizeObservation, NormalizeReward, RunningMeanStd, Wrapper, make};
use serde_json::Value;

/// Absolute part of the observation tolerance.
const OBS_ATOL: f64 = 1e-5;
/// Relative part of the observation tolerance.
const OBS_RTOL: f64 = 1e-5;
/// Relative tolerance on the final float32 observation mean and variance.
const STATS_RTOL: f64 = 2e-5;

#[test]
fn cartpole_normalization_matches_gymnasium() {
    replay_file("CartPole-v1");
}

#[test]
fn pendulum_normalization_matches_gymnasium() {
    replay_file("Pendulum-v1");
}

type Stack = NormalizeReward<NormalizeObservation<Box<dyn Env>>>;

/// The largest observation differences seen in one file.
#[derive(Default)]
struct Worst {
    abs: f64,
    rel: f64,
    stats_rel: f64,
}

fn replay_file(id: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/normalize/{id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()));
    assert_eq!(doc["env"], id);
    let actions = doc["actions"].as_array().expect("actions");
    let stacks = doc["stacks"].as_array().expect("stacks");
    assert!(stacks.len() >= 3, "{id}: expected at least 3 stacks");
    let mut worst = Worst::default();
    for stack in stacks {
        replay_stack(id, doc["seed"].as_u64().expect("seed"), actions, stack, &mut worst);
    }
    eprintln!(
        "{id}: largest observation difference {:.3e} absolute, {:.3e} relative; final statistics {:.3e} relative",
        worst.abs, worst.rel, worst.stats_rel
    );
}

fn build(id: &str, stack: &Value) -> Stack {
    let num = |k: &str| stack[k].as_f64().unwrap_or_else(|| panic!("{k} is not a number"));
    let env = make(id, &Kwargs::new()).expect("make");
    let env = NormalizeObservation::new(env, num("obs_epsilon")).with_clip(stack["obs_clip"].as_f64());
    NormalizeReward::new(env, num("gamma"), num("reward_epsilon")).with_clip(stack["reward_clip"].as_f64())
}

fn replay_stack(id: &str, seed: u64, actions: &[Value], stack: &Value, worst: &mut Worst) {
    let name = stack["name"].as_str().expect("name");
    let mut env = build(id, stack);
    let freeze_at = stack["freeze_at"].as_u64().map(|s| s as usize);
    let mut records = stack["records"].as_array().expect("records").iter().enumerate();
    let mut obs = vec![0.0f32; env.observation_space().flat_dim()];

    let mut next = |what: &str| records.next().unwrap_or_else(|| panic!("{id}/{name}: no record for {what}"));
    let (_, first) = next("the first reset");
    assert_eq!(first["reset"].as_u64(), Some(seed), "{id}/{name}: the first record is the seeded reset");
    env.reset_into(Some(seed), None, &mut obs).unwrap();
    compare_obs(&format!("{id}/{name} reset"), &obs, &first["obs"], worst);

    for (i, action) in actions.iter().enumerate() {
        if freeze_at == Some(i) {
            env.set_update_running_mean(false);
            env.inner_mut().set_update_running_mean(false);
        }
        let (line, record) = next("a step");
        let at = format!("{id}/{name} record {line} (step {i})");
        let continuous: Vec<f32>;
        let action = match action {
            Value::Array(a) => {
                continuous = a.iter().map(|v| v.as_f64().expect("action") as f32).collect();
                Action::Continuous(&continuous)
            }
            v => Action::Discrete(v.as_i64().expect("action")),
        };
        let step = env.step_into(action, &mut obs).unwrap_or_else(|e| panic!("{at}: {e}"));
        compare_obs(&at, &obs, &record["obs"], worst);
        let want = record["reward"].as_f64().expect("reward");
        assert_eq!(step.reward.to_bits(), want.to_bits(), "{at}: reward {} but Gymnasium gave {want}", step.reward);
        assert_eq!(Some(step.terminated), record["terminated"].as_bool(), "{at}: terminated");
        assert_eq!(Some(step.truncated), record["truncated"].as_bool(), "{at}: truncated");
        if step.terminated || step.truncated {
            let (_, reset) = next("a reset");
            assert!(reset["reset"].is_null(), "{at}: expected an unseeded reset next");
            env.reset_into(None, None, &mut obs).unwrap();
            compare_obs(&format!("{at}, then reset"), &obs, &reset["obs"], worst);
        }
    }
    assert!(next_is_none(records), "{id}/{name}: records left over");

    // The return statistics exactly, the observation statistics to float32 noise.
    let want_ret = read_rms(&stack["return_rms"]);
    let got_ret = env.normalizer().stats();
    assert_eq!(bits(&got_ret.mean), bits(&want_ret.mean), "{id}/{name}: return mean");
    assert_eq!(bits(&got_ret.var), bits(&want_ret.var), "{id}/{name}: return var");
    assert_eq!(got_ret.count.to_bits(), want_ret.count.to_bits(), "{id}/{name}: return count");
    let want_obs = read_rms(&stack["obs_rms"]);
    let got_obs = env.inner().normalizer().stats();
    assert_eq!(got_obs.count, want_obs.count, "{id}/{name}: observation count");
    for (what, got, want) in [("mean", &got_obs.mean, &want_obs.mean), ("var", &got_obs.var, &want_obs.var)] {
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            let rel = (g - w).abs() / w.abs().max(1e-6);
            worst.stats_rel = worst.stats_rel.max(rel);
            assert!(rel <= STATS_RTOL, "{id}/{name}: observation {what}[{j}] {g} vs Gymnasium's {w}");
        }
    }
}

fn next_is_none<I: Iterator>(mut it: I) -> bool {
    it.next().is_none()
}

fn compare_obs(at: &str, got: &[f32], want: &Value, worst: &mut Worst) {
    let want: Vec<f64> = want.as_array().expect("obs").iter().map(|v| v.as_f64().expect("obs value")).collect();
    assert_eq!(got.len(), want.len(), "{at}: obs length");
    for (j, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let diff = (f64::from(g) - w).abs();
        worst.abs = worst.abs.max(diff);
        if w != 0.0 {
            worst.rel = worst.rel.max(diff / w.abs());
        }
        assert!(
            diff <= OBS_ATOL + OBS_RTOL * w.abs(),
            "{at}: obs[{j}] = {g} but Gymnasium gave {w} (difference {diff:.3e}); obs {got:?} vs {want:?}"
        );
    }
}

fn read_rms(v: &Value) -> RunningMeanStd {
    let list = |k: &str| v[k].as_array().expect(k).iter().map(|x| x.as_f64().expect(k)).collect();
    RunningMeanStd { mean: list("mean"), var: list("var"), count: v["count"].as_f64().expect("count") }
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}
