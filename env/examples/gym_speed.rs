//! Env steps per second through the Gymnasium bridge, per design and thread count.
//!
//! Each thread makes its own env, resets it with a fixed seed and steps it with a fixed,
//! pre-drawn sequence of random actions, resetting when an episode ends. The Python baseline
//! with the same loop is `env/benches/gym_speed.py`.
//!
//! ```text
//! VIRTUAL_ENV=/path/to/venv cargo run --release -p rl-env --features gym --example gym_speed -- \
//!     [STEPS_PER_THREAD] [ENV_ID...]
//! ```

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rl_env::{Env, Kwargs, OwnedAction, make};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let mut ids: Vec<String> = args.collect();
    if ids.is_empty() {
        ids = vec!["CartPole-v1".into(), "HalfCheetah-v4".into()];
    }
    println!("| env | design | threads | steps/s (all threads) | steps/s per thread |");
    println!("| --- | --- | --- | ---: | ---: |");
    for id in &ids {
        for design in ["in_process", "process"] {
            for threads in [1, 2] {
                let rate = measure(id, design, threads, steps)?;
                println!("| {id} | {design} | {threads} | {rate:.0} | {:.0} |", rate / threads as f64);
            }
        }
    }
    Ok(())
}

/// Steps per second of `threads` threads, each stepping its own `gym:<id>` env `steps` times.
fn measure(id: &str, design: &str, threads: usize, steps: usize) -> Result<f64, rl_env::EnvError> {
    let kwargs: Kwargs = serde_json::from_value(serde_json::json!({"rl_bridge": design})).expect("an object");
    let envs: Vec<Box<dyn Env>> =
        (0..threads).map(|_| make(&format!("gym:{id}"), &kwargs)).collect::<Result<_, _>>()?;
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> =
            envs.into_iter().enumerate().map(|(i, env)| s.spawn(move || run(env, i as u64, steps))).collect();
        handles.into_iter().try_for_each(|h| h.join().expect("stepping thread panicked"))
    })?;
    Ok((threads * steps) as f64 / start.elapsed().as_secs_f64())
}

/// Steps `env` `steps` times with 1,000 pre-drawn random actions, cycled.
fn run(mut env: Box<dyn Env>, seed: u64, steps: usize) -> Result<(), rl_env::EnvError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let actions: Vec<OwnedAction> = (0..1000).map(|_| env.action_space().sample(&mut rng)).collect();
    let mut obs = vec![0.0; env.observation_space().flat_dim()];
    env.reset_into(Some(seed), None, &mut obs)?;
    for t in 0..steps {
        let r = env.step_into(actions[t % actions.len()].as_action(), &mut obs)?;
        if r.terminated || r.truncated {
            env.reset_into(None, None, &mut obs)?;
        }
    }
    Ok(())
}
