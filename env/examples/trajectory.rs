//! Prints a trajectory of any registered env as JSON lines, with random actions.
//!
//! ```text
//! cargo run -p rl-env --example trajectory -- --env CartPole-v1 --seed 0 --steps 20 --action-seed 1
//! cargo run -p rl-env --example trajectory -- --list
//! # Gymnasium's own envs through the bridge (needs Python with requirements-gym.txt):
//! cargo run -p rl-env --features gym --example trajectory -- --env gym:Hopper-v4 --steps 5
//! ```
//!
//! The first line is the reset (`{"reset":{"seed":S},"obs":[..]}`); then one line per step:
//! `{"action":..,"obs":[..],"reward":..,"terminated":..,"truncated":..}`. When an episode ends the
//! env is reset without a seed (its generator continues) and a reset line is printed.
//! Actions are drawn from the action space with a generator seeded by `--action-seed`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use rl_env::rng::NpRandom;
use rl_env::{Kwargs, OwnedAction, make};
use serde_json::json;

const USAGE: &str = "usage: trajectory --env ID [--seed S] [--steps N] [--action-seed K] | --list
  --list            print every env id (with the gym feature, Gymnasium's as gym:ID too)
  --env ID          env id, e.g. CartPole-v1 or gym:Hopper-v4 (see --list)
  --seed S          reset seed (default 0)
  --steps N         number of steps (default 100)
  --action-seed K   seed of the random actions (default 0)";

struct Args {
    list: bool,
    env: String,
    seed: u64,
    steps: u64,
    action_seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { list: false, env: String::new(), seed: 0, steps: 100, action_seed: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--list" {
            args.list = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number =
            |v: &str| v.parse::<u64>().map_err(|_| format!("{flag} expects a non-negative integer, got {v:?}"));
        match flag.as_str() {
            "--env" => args.env = value,
            "--seed" => args.seed = number(&value)?,
            "--steps" => args.steps = number(&value)?,
            "--action-seed" => args.action_seed = number(&value)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.env.is_empty() && !args.list {
        return Err("--env is required".into());
    }
    Ok(args)
}

/// Every id `make` takes: the registry's, then (with the `gym` feature) Gymnasium's.
fn list() -> Result<(), Box<dyn std::error::Error>> {
    for id in rl_env::ids() {
        println!("{id}");
    }
    #[cfg(feature = "gym")]
    for id in rl_env::gym::list_ids()? {
        println!("{id}");
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.list {
        return list();
    }
    let mut env = make(&args.env, &Kwargs::new())?;
    let mut action_rng = NpRandom::from_seed(args.action_seed);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (obs, _) = env.reset(Some(args.seed), None)?;
    writeln!(out, "{}", json!({"reset": {"seed": args.seed}, "obs": obs}))?;
    for _ in 0..args.steps {
        let action = env.action_space().sample(action_rng.bits_mut());
        let step = env.step(action.as_action())?;
        let action_json = match &action {
            OwnedAction::Discrete(a) => json!(a),
            OwnedAction::Continuous(a) => json!(a),
            OwnedAction::MultiDiscrete(a) => json!(a),
        };
        writeln!(
            out,
            "{}",
            json!({"action": action_json, "obs": step.obs, "reward": step.reward,
                   "terminated": step.terminated, "truncated": step.truncated})
        )?;
        if step.terminated || step.truncated {
            let (obs, _) = env.reset(None, None)?;
            writeln!(out, "{}", json!({"reset": {"seed": null}, "obs": obs}))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
