//! Env stepping throughput: CartPole-v1 as a single env and as a vector of 256 sub-envs.
//!
//! `cargo bench -p rl-env --bench cartpole`; criterion reports steps per second ("elem/s").
//! Actions are a fixed pseudo-random pattern so the bench measures the env, not a sampler.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rl_env::envs::CartPole;
use rl_env::{Action, Actions, Env, EnvExt, Kwargs, SyncVectorEnv};

const STEPS: u64 = 10_000;

fn actions(n: usize) -> Vec<i64> {
    // A fixed xorshift pattern: balanced 0/1 actions, identical in every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 1) as i64
        })
        .collect()
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("cartpole_single");
    g.throughput(Throughput::Elements(STEPS));
    let acts = actions(STEPS as usize);
    g.bench_function("step_into", |b| {
        let mut env = CartPole::new().time_limit(500);
        let mut obs = [0.0f32; 4];
        env.reset_into(Some(0), None, &mut obs).unwrap();
        b.iter(|| {
            for &a in &acts {
                let r = env.step_into(Action::Discrete(a), &mut obs).unwrap();
                if r.terminated || r.truncated {
                    env.reset_into(None, None, &mut obs).unwrap();
                }
            }
            black_box(&obs);
        })
    });
    g.finish();
}

fn vector(c: &mut Criterion) {
    const N: usize = 256;
    let mut g = c.benchmark_group("cartpole_vector256");
    g.throughput(Throughput::Elements(N as u64 * 100));
    let acts = actions(N * 100);
    g.bench_function("step", |b| {
        let mut envs = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), N).unwrap();
        envs.reset(Some(0)).unwrap();
        b.iter(|| {
            for chunk in acts.chunks_exact(N) {
                envs.step(Actions::Discrete(chunk)).unwrap();
            }
            black_box(envs.observations());
            black_box(envs.drain_episodes());
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = single, vector
}
criterion_main!(benches);
