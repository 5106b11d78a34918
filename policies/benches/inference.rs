//! Policy inference time per batch: the fast `f32` path against candle's forward pass.
//!
//! CartPole-sized policy (obs 4, 64-64 tanh, separate trunks, 2 actions), batches of 1, 8, 64
//! and 256 observations. Both paths do what a rollout worker needs per env step: from a
//! `[n, 4]` observation slice to sampled actions, their log-probabilities and the values on the
//! host. `fast` is `FastPolicy::act_discrete`; `candle` builds the input tensor, runs
//! `ActorCritic::forward`, normalizes the logits and samples on the host.
//!
//! Threads: like the `rl` binary, the bench pins candle to one thread (`RAYON_NUM_THREADS=1`)
//! unless the variable is set. Without it candle uses one thread per physical core and looks
//! the count up again on every matmul, which costs more than these tiny products. Other
//! settings: `RAYON_NUM_THREADS=2 cargo bench -p rl-policies -- candle`; `RAYON_NUM_THREADS=0`
//! is candle's default (0 means "unset" to candle and rayon). The fast path is single-threaded.
//!
//! Medians on the 2-core development machine (AMD EPYC, AVX-512), in microseconds:
//!
//! | batch | fast | candle, 1 thread | candle, 2 threads | candle, default |
//! |------:|-----:|-----------------:|------------------:|----------------:|
//! |     1 | 0.75 |              6.5 |               6.4 |             185 |
//! |     8 | 4.4  |             15.8 |              15.9 |             195 |
//! |    64 | 32   |               54 |                55 |             233 |
//! |   256 | 128  |              189 |               439 |             502 |
//!
//! `cargo bench -p rl-policies` takes about 20 s (1 s of measurement per case).

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rl_env::Space;
use rl_env::rng::NpRandom;
use rl_policies::{ActorCritic, Categorical, PolicyConfig};

fn bench(c: &mut Criterion) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: set before the first candle op and before criterion starts any thread, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
    let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2).unwrap(), 0).unwrap();
    let fast = policy.fast_policy().unwrap();
    let mut g = c.benchmark_group("policy_inference");
    for n in [1usize, 8, 64, 256] {
        g.throughput(Throughput::Elements(n as u64));
        let mut rng = NpRandom::from_seed(0);
        let obs: Vec<f32> = (0..n * 4).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        g.bench_with_input(BenchmarkId::new("fast", n), &n, |b, &n| {
            let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
            b.iter(|| {
                fast.act_discrete(black_box(&obs), rng.bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
                black_box((&a, &lp, &v));
            })
        });
        g.bench_with_input(BenchmarkId::new("candle", n), &n, |b, &n| {
            b.iter(|| {
                let x = Tensor::from_slice(black_box(&obs), (n, 4), &Device::Cpu).unwrap();
                let (logits, values) = policy.forward(&x).unwrap();
                let d = Categorical::from_logits(&logits).unwrap();
                let a = d.sample(rng.bits_mut()).unwrap();
                let lp = d.log_probs().to_vec2::<f32>().unwrap();
                black_box((a, lp, values.to_vec1::<f32>().unwrap()));
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(1)).warm_up_time(Duration::from_millis(300));
    targets = bench
}
criterion_main!(benches);
