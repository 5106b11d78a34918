//! `rl bench`: one command that measures every layer of the stack on this machine.
//!
//! Each figure is the best of a few repetitions (the machines are shared and noisy), and where a
//! baseline exists it is measured in the same run and printed as a ratio: the candle forward
//! pass against the fast inference path, store `get` (a reference-count bump) against a plain
//! copy of the same bytes, and an actor call's round trip against a bare channel ping-pong
//! between two threads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use candle_core::{Device, Tensor};
use rl_env::rng::NpRandom;
use rl_env::{Action, Env, EnvExt, Space};
use rl_policies::{ActorCritic, Categorical, PolicyConfig};
use rl_runtime::{Actor, ActorContext, ActorOptions, BoxError, ObjectStore, Runtime, RuntimeOptions, StoreOptions};

use rllib::run_dir::RunDir;
use rllib::{TrainConfig, train};

/// Best wall-clock of `reps` runs of `f`.
fn best_of(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Runs every benchmark and prints one line per figure. `quick` shrinks the workloads (for tests).
pub fn run(quick: bool, out: &mut dyn std::io::Write) -> Result<()> {
    env_steps(if quick { 10_000 } else { 1_000_000 }, out)?;
    inference(if quick { 10 } else { 2_000 }, out)?;
    store(if quick { 10 } else { 500 }, out)?;
    actor_calls(if quick { 100 } else { 20_000 }, out)?;
    end_to_end(if quick { 2_048 } else { 100_000 }, out)?;
    Ok(())
}

fn env_steps(steps: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let mut env = rl_env::envs::CartPole::new().time_limit(500);
    let mut obs = [0.0f32; 4];
    env.reset_into(Some(0), None, &mut obs)?;
    let mut rng = NpRandom::from_seed(0);
    let actions: Vec<i64> = (0..steps).map(|_| i64::from(rng.random() < 0.5)).collect();
    let t = best_of(3, || {
        for &a in &actions {
            let r = env.step_into(Action::Discrete(a), &mut obs).expect("valid action");
            if r.terminated || r.truncated {
                env.reset_into(None, None, &mut obs).expect("reset");
            }
        }
    });
    writeln!(out, "env            CartPole-v1 single env: {:.1} M steps/s", steps as f64 / t.as_secs_f64() / 1e6)?;
    Ok(())
}

fn inference(reps: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4])?;
    let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2)?, 0)?;
    let fast = policy.fast_policy()?;
    let mut rng = NpRandom::from_seed(1);
    for n in [1usize, 8, 64, 256] {
        let obs: Vec<f32> = (0..n * 4).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
        let t_fast = best_of(3, || {
            for _ in 0..reps {
                fast.act_discrete(&obs, rng.bits_mut(), false, &mut a, &mut lp, &mut v).expect("sizes match");
            }
        });
        let t_candle = best_of(3, || {
            for _ in 0..reps {
                let x = Tensor::from_slice(&obs, (n, 4), &Device::Cpu).expect("shape");
                let (logits, values) = policy.forward(&x).expect("forward");
                let d = Categorical::from_logits(&logits).expect("logits");
                black_box((d.sample(rng.bits_mut()).expect("sample"), values.to_vec1::<f32>().expect("values")));
            }
        });
        let us = |t: Duration| t.as_secs_f64() / reps as f64 * 1e6;
        writeln!(
            out,
            "inference      batch {n:>3}: fast path {:>8.1} us, candle {:>8.1} us (candle / fast = {:.2})",
            us(t_fast),
            us(t_candle),
            us(t_candle) / us(t_fast)
        )?;
    }
    Ok(())
}

fn store(objects: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let store = ObjectStore::new(StoreOptions { memory_cap: 1 << 31, put_timeout: Duration::ZERO, spill_dir: None });
    let payload = Bytes::from(vec![7u8; 1 << 20]);
    let mut refs = Vec::with_capacity(objects);
    let t_put = best_of(3, || {
        refs.clear();
        for _ in 0..objects {
            refs.push(store.put(payload.clone()).expect("under the cap"));
        }
    });
    let t_get = best_of(3, || {
        for r in &refs {
            black_box(store.get_blocking(r, None).expect("present"));
        }
    });
    let t_copy = best_of(3, || {
        for _ in 0..objects {
            black_box(payload.to_vec());
        }
    });
    // In-process puts and gets move no bytes (a `Bytes` reference-count bump), so they are
    // reported in ops/s; only the copy baseline moves bytes and is reported in GiB/s.
    let gib = objects as f64 / 1024.0;
    writeln!(
        out,
        "object store   1 MiB objects in process: put {:.0} ops/s, get {:.0} ops/s (no bytes move); \
         a plain copy of the same bytes: {:.0} ops/s, {:.1} GiB/s",
        objects as f64 / t_put.as_secs_f64(),
        objects as f64 / t_get.as_secs_f64(),
        objects as f64 / t_copy.as_secs_f64(),
        gib / t_copy.as_secs_f64()
    )?;
    Ok(())
}

/// An actor that answers every call with its argument.
struct Echo;

impl Actor for Echo {
    const TYPE_NAME: &'static str = "BenchEcho";
    type Init = ();
    type Msg = u64;
    type Reply = u64;

    fn new(_init: (), _ctx: &ActorContext) -> std::result::Result<Self, BoxError> {
        Ok(Echo)
    }

    fn handle(&mut self, msg: u64, _ctx: &ActorContext) -> std::result::Result<u64, BoxError> {
        Ok(msg)
    }
}

/// The median and 99th percentile of `samples`, in microseconds.
fn median_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn actor_calls(calls: usize, out: &mut dyn std::io::Write) -> Result<()> {
    let rt = Runtime::local(RuntimeOptions { num_cpus: 1.0, ..RuntimeOptions::default() })?;
    rt.register_actor::<Echo>();
    let echo = rt.spawn::<Echo>((), ActorOptions { num_cpus: 0.0, ..ActorOptions::default() })?;
    let rtt: Vec<Duration> = (0..calls as u64)
        .map(|i| {
            let t = Instant::now();
            black_box(echo.call(i).wait().expect("echo answers"));
            t.elapsed()
        })
        .collect();
    rt.shutdown();
    // The floor: one message each way between two threads over crossbeam channels.
    let (to_tx, to_rx) = crossbeam_channel::bounded::<u64>(1);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<u64>(1);
    let peer = std::thread::spawn(move || {
        while let Ok(v) = to_rx.recv() {
            if back_tx.send(v).is_err() {
                break;
            }
        }
    });
    let floor: Vec<Duration> = (0..calls as u64)
        .map(|i| {
            let t = Instant::now();
            to_tx.send(i).expect("peer lives");
            black_box(back_rx.recv().expect("peer answers"));
            t.elapsed()
        })
        .collect();
    drop(to_tx);
    peer.join().expect("peer thread ends");
    let ((median, p99), (floor_median, _)) = (median_p99(rtt), median_p99(floor));
    writeln!(
        out,
        "actor call     in process: round trip median {median:.1} us, p99 {p99:.1} us over {calls} calls \
         (a bare channel ping-pong between two threads: median {floor_median:.1} us)"
    )?;
    Ok(())
}

fn end_to_end(steps: u64, out: &mut dyn std::io::Write) -> Result<()> {
    let yaml =
        format!("env: CartPole-v1\nstop:\n  num_env_steps_sampled_lifetime: {steps}\nevaluation:\n  duration: 1\n");
    let config = TrainConfig::parse(&yaml, "rl bench", &[])?;
    let dir = std::env::temp_dir().join(format!("rl-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = train(&config, &dir, &mut ())?;
    let learn_s: f64 = RunDir::open(&dir)?.read_progress()?.column("timers/learn_s")?.into_iter().flatten().sum();
    std::fs::remove_dir_all(&dir)?;
    let samples = summary.iterations * (config.num_epochs * config.train_batch_size()) as u64;
    writeln!(
        out,
        "training       PPO CartPole-v1 (configs/ppo.yaml settings): {:.0} env steps/s end to end over {} steps",
        summary.env_steps as f64 / summary.train_seconds,
        summary.env_steps
    )?;
    writeln!(
        out,
        "learner        {:.0} samples/s through the PPO update ({} samples x epochs in {:.2} s of learner time)",
        samples as f64 / learn_s,
        samples,
        learn_s
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_run_prints_every_figure() {
        let mut out = Vec::new();
        run(true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for what in [
            "env ",
            "inference      batch   1",
            "inference      batch 256",
            "object store",
            "actor call",
            "training ",
            "learner ",
        ] {
            assert!(text.contains(what), "{what} missing:\n{text}");
        }
    }
}
