//! Policy inference time per batch: the fast `f32` path against candle's forward pass.
//!
//! CartPole-sized policy (obs 4, 64-64 tanh, 2 actions), batches of 1, 8, 64 and 256
//! observations. `cargo bench -p rl-policies`. The candle path builds the input tensor and
//! samples on the host, as a rollout worker would have to.

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rl_env::Space;
use rl_env::rng::NpRandom;
use rl_policies::{ActorCritic, Categorical, PolicyConfig};

fn bench(c: &mut Criterion) {
    // Same thread setting as the `rl` binary: without it candle parses /proc/cpuinfo on every op.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: set before the first candle op; the benchmark runs on this one thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
    let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2).unwrap(), 0).unwrap();
    let fast = policy.fast_policy().unwrap();
    let mut g = c.benchmark_group("policy_inference");
    for n in [1usize, 8, 64, 256] {
        let mut rng = NpRandom::from_seed(0);
        let obs: Vec<f32> = (0..n * 4).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        g.bench_with_input(BenchmarkId::new("fast", n), &n, |b, &n| {
            let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
            b.iter(|| {
                fast.act_discrete(black_box(&obs), rng.bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
                black_box(&a);
            })
        });
        g.bench_with_input(BenchmarkId::new("candle", n), &n, |b, &n| {
            b.iter(|| {
                let x = Tensor::from_slice(black_box(&obs), (n, 4), &Device::Cpu).unwrap();
                let (logits, values) = policy.forward(&x).unwrap();
                let d = Categorical::from_logits(&logits).unwrap();
                let a = d.sample(rng.bits_mut()).unwrap();
                black_box((a, values.to_vec1::<f32>().unwrap()));
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
