//! Unit tests of the normalizers, the RLlib filter and the wrappers' states. The comparison with
//! the real Gymnasium lives in `env/tests/normalize.rs`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::envs::{CartPole, Pendulum};
use crate::{Action, Env, EnvError, EnvExt, Space, Wrapper};

/// `n` samples of `dim` elements, seeded, with different scales and offsets per element.
fn samples(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|j| (j as f32 + 1.0) * rng.random_range(-3.0..3.0) + 10.0 * j as f32).collect())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs().max(1.0), "{what}[{i}]: {g} vs {w} (relative tolerance {rel})");
    }
}

/// The mean and sample variance of `xs`, computed directly.
fn direct_moments(xs: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>) {
    let n = xs.len() as f64;
    let dim = xs[0].len();
    let mean: Vec<f64> = (0..dim).map(|j| xs.iter().map(|x| f64::from(x[j])).sum::<f64>() / n).collect();
    let var =
        (0..dim).map(|j| xs.iter().map(|x| (f64::from(x[j]) - mean[j]).powi(2)).sum::<f64>() / (n - 1.0)).collect();
    (mean, var)
}

// === RLlib's RunningStat and MeanStdFilter ===

#[test]
fn running_stat_var_is_rllibs_for_zero_one_and_more_samples() {
    let mut rs = RunningStat::new(2);
    // n = 0: mean² = 0.
    assert_eq!((rs.var(), rs.std()), (vec![0.0, 0.0], vec![0.0, 0.0]));
    // n = 1: mean² (not 0, not NaN).
    rs.push(&[3.0, -2.0]);
    assert_eq!((rs.n, rs.var(), rs.std()), (1, vec![9.0, 4.0], vec![3.0, 2.0]));
    // n = 2: the sample variance, m2 / (n - 1).
    rs.push(&[5.0, -2.0]);
    assert_eq!((rs.mean.clone(), rs.m2.clone()), (vec![4.0, -2.0], vec![2.0, 0.0]));
    assert_eq!((rs.var(), rs.std()), (vec![2.0, 0.0], vec![2f64.sqrt(), 0.0]));
    let xs = samples(1, 50, 3);
    let mut rs = RunningStat::new(3);
    xs.iter().for_each(|x| rs.push(x));
    let (mean, var) = direct_moments(&xs);
    assert_close(&rs.mean, &mean, 1e-12, "mean");
    assert_close(&rs.var(), &var, 1e-12, "var");
}

#[test]
fn merging_running_stats_equals_pushing_everything_into_one() {
    let xs = samples(2, 101, 4);
    let mut all = RunningStat::new(4);
    xs.iter().for_each(|x| all.push(x));
    for split in [0, 1, 37, 100, 101] {
        let (mut a, mut b) = (RunningStat::new(4), RunningStat::new(4));
        xs[..split].iter().for_each(|x| a.push(x));
        xs[split..].iter().for_each(|x| b.push(x));
        a.merge(&b);
        assert_eq!(a.n, all.n, "split {split}");
        assert_close(&a.mean, &all.mean, 1e-12, &format!("mean, split {split}"));
        assert_close(&a.m2, &all.m2, 1e-12, &format!("m2, split {split}"));
    }
    // Two empty statistics stay empty (RLlib returns early instead of dividing by zero).
    let mut empty = RunningStat::new(2);
    empty.merge(&RunningStat::new(2));
    assert_eq!(empty, RunningStat::new(2));
}

#[test]
fn mean_std_filter_apply_changes_matches_rllibs_docstring() {
    // Ray's filter.py `apply_changes` example: a sees 1 and 2, b sees 10.
    let mut a = MeanStdFilter::new(1, None);
    a.apply(&mut [1.0]);
    a.apply(&mut [2.0]);
    assert_eq!((a.running().n, a.running().mean[0], a.buffer().n), (2, 1.5, 2));
    let mut b = MeanStdFilter::new(1, None);
    b.apply(&mut [10.0]);
    a.apply_changes(b.buffer());
    assert_eq!((a.running().n, a.running().mean[0], a.buffer().n), (3, 13.0 / 3.0, 2));
}

#[test]
fn driver_worker_sync_cycle_gives_the_statistics_of_all_samples() {
    let dim = 3;
    let mut driver = MeanStdFilter::new(dim, Some(5.0));
    let mut workers = [MeanStdFilter::new(dim, None), MeanStdFilter::new(dim, None)];
    let mut everything = RunningStat::new(dim);
    for round in 0..3u64 {
        for (w, worker) in workers.iter_mut().enumerate() {
            for x in samples(10 * round + w as u64, 20 + 7 * w, dim) {
                everything.push(&x);
                worker.apply(&mut x.clone());
            }
        }
        // The driver merges every worker's buffer, then the workers take the driver's filter.
        for worker in &mut workers {
            let delta = worker.take_buffer();
            assert_eq!(worker.buffer().n, 0);
            driver.apply_changes(&delta);
        }
        for worker in &mut workers {
            worker.sync_from(&driver);
        }
        for (w, worker) in workers.iter().enumerate() {
            let at = format!("round {round}, worker {w}");
            assert_eq!(worker.running().n, everything.n, "{at}");
            assert_close(&worker.running().mean, &everything.mean, 1e-12, &format!("{at}: mean"));
            assert_close(&worker.running().m2, &everything.m2, 1e-12, &format!("{at}: m2"));
            assert_eq!((worker.buffer().n, worker.clip()), (0, Some(5.0)), "{at}");
        }
    }
}

#[test]
fn mean_std_filter_normalizes_with_small_number_and_clips() {
    // n = 0: std 0, so x / 1e-6.
    let f = MeanStdFilter::new(2, None);
    let mut obs = [1e-6, -2e-6];
    f.apply_frozen(&mut obs);
    assert_eq!(obs, [((1e-6f32 as f64) / SMALL_NUMBER) as f32, ((-2e-6f32 as f64) / SMALL_NUMBER) as f32]);
    // n = 1: std = |x| and the mean is x, so x maps to 0.
    let mut f = MeanStdFilter::new(2, Some(10.0));
    let mut obs = [4.0, -1.0];
    f.apply(&mut obs);
    assert_eq!(obs, [0.0, 0.0]);
    // n = 2 over [4, -1] and [6, -1]: mean [5, -1], std [sqrt 2, 0].
    let mut obs = [6.0, -1.0];
    f.apply(&mut obs);
    assert_eq!(obs, [(1.0 / (2f64.sqrt() + SMALL_NUMBER)) as f32, 0.0]);
    // Far values are clipped to +-10; without a clip they are not.
    let mut far = [1e3, -1.0 + 1e-3];
    f.apply_frozen(&mut far);
    assert_eq!(far, [10.0, 10.0]);
    let mut unclipped = MeanStdFilter::new(1, None);
    unclipped.apply(&mut [0.0]);
    unclipped.apply(&mut [2.0]);
    let mut far = [100.0];
    unclipped.apply_frozen(&mut far);
    assert_eq!(far, [((100.0 - 1.0) / (2f64.sqrt() + SMALL_NUMBER)) as f32]);
}

// === Gymnasium's RunningMeanStd and normalizers ===

#[test]
fn running_mean_std_tracks_population_moments_with_a_pseudo_count() {
    let xs = samples(3, 200, 3);
    let mut rms = RunningMeanStd::new(3);
    xs.iter().for_each(|x| rms.update(x));
    assert_eq!(rms.count, 200.0 + RunningMeanStd::INITIAL_COUNT);
    let (mean, var) = direct_moments(&xs);
    let pop_var: Vec<f64> = var.iter().map(|v| v * 199.0 / 200.0).collect();
    // The prior (mean 0, var 1, count 1e-4) shifts the moments by O(1e-4 / 200) relative to their scale.
    assert_close(&rms.mean, &mean, 1e-5, "mean");
    assert_close(&rms.var, &pop_var, 1e-5, "var");
}

#[test]
fn merging_two_halves_approximates_updating_with_all() {
    let xs = samples(4, 300, 4);
    let mut all = RunningMeanStd::new(4);
    xs.iter().for_each(|x| all.update(x));
    let (mut a, mut b) = (RunningMeanStd::new(4), RunningMeanStd::new(4));
    xs[..120].iter().for_each(|x| a.update(x));
    xs[120..].iter().for_each(|x| b.update(x));
    a.merge(&b);
    // Each half carries the 1e-4 pseudo-count, so the merge counts it twice.
    assert!((a.count - (all.count + RunningMeanStd::INITIAL_COUNT)).abs() < 1e-9, "{} vs {}", a.count, all.count);
    // The extra pseudo-sample (mean 0, var 1, weight 1e-4) moves the mean by about
    // 1e-4 * mean / 300 and the variance by about 1e-4 * (1 + mean²) / 300; with means up to 30
    // and variances from 3 to 48 that is under 1e-5 relative (var[1], mean 10, is off by 2.5e-6).
    assert_close(&a.mean, &all.mean, 1e-5, "mean");
    assert_close(&a.var, &all.var, 1e-5, "var");
}

#[test]
fn update_from_moments_is_the_parallel_formula() {
    let mut rms = RunningMeanStd { mean: vec![1.0], var: vec![4.0], count: 2.0 };
    rms.update_from_moments(&[4.0], &[1.0], 1.0);
    // delta 3, total 3: mean 1 + 3 / 3, M2 = 8 + 1 + 9 * 2 / 3.
    assert_eq!((rms.mean[0], rms.var[0], rms.count), (2.0, 15.0 / 3.0, 3.0));
}

#[test]
fn observation_normalizer_updates_then_normalizes_and_clips_in_f32() {
    let mut norm = ObservationNormalizer::new(1, 1e-8, None);
    let mut obs = [2.0f32];
    norm.normalize(&mut obs);
    // After one sample: mean 2 / 1.0001, var (1e-4 + 4 * 1e-4 / 1.0001) / 1.0001.
    let mean = 2.0 * 1.0 / 1.0001;
    let var = (1e-4 + 2f64 * 2.0 * 1e-4 * 1.0 / 1.0001) / 1.0001;
    assert_eq!(obs[0], ((2.0 - mean) / (var + 1e-8).sqrt()) as f32);
    // That first value is about 0.0089; a clip of 0.001 (cast to f32, as NumPy does) cuts it.
    let mut clipped = ObservationNormalizer::new(1, 1e-8, Some(0.001));
    let mut obs = [2.0f32];
    clipped.normalize(&mut obs);
    assert_eq!(obs, [0.001f32]);
    let err = norm.set_stats(RunningMeanStd::new(2)).unwrap_err();
    assert_eq!(err.to_string(), "normalizer statistics mean: expected length 1, got 2");
    norm.set_stats(RunningMeanStd { mean: vec![1.0], var: vec![4.0], count: 9.0 }).unwrap();
    let mut obs = [5.0f32];
    norm.normalize_frozen(&mut obs);
    assert_eq!(obs[0], (4.0 / (4.0f64 + 1e-8).sqrt()) as f32);
}

#[test]
fn reward_normalizer_restarts_the_sum_only_on_termination() {
    let mut norm = RewardNormalizer::new(0.5, 1e-8, None);
    norm.normalize(2.0, false);
    norm.normalize(2.0, false);
    assert_eq!(norm.discounted_return(), 3.0);
    // Termination drops the sum before adding this step's reward.
    norm.normalize(1.0, true);
    assert_eq!(norm.discounted_return(), 1.0);
    norm.normalize(2.0, false);
    assert_eq!(norm.discounted_return(), 2.5);
    assert_eq!(norm.stats().count, 4.0 + RunningMeanStd::INITIAL_COUNT);
    let r = norm.normalize_frozen(3.0);
    assert_eq!(r, 3.0 / (norm.stats().var[0] + 1e-8).sqrt());
    assert_eq!(RewardNormalizer::new(0.5, 1e-8, Some(0.25)).normalize(2.0, false), 0.25);
}

#[test]
fn bad_arguments_are_errors_naming_the_argument() {
    let msg = |e: EnvError| {
        assert!(matches!(e, EnvError::InvalidArgument { .. }), "{e:?}");
        e.to_string()
    };
    assert_eq!(
        msg(ObservationNormalizer::try_new(2, 0.0, None).unwrap_err()),
        "NormalizeObservation: epsilon must be positive, got 0"
    );
    assert_eq!(
        msg(ObservationNormalizer::try_new(2, 1e-8, Some(-1.0)).unwrap_err()),
        "NormalizeObservation: clip must be positive (or none), got -1"
    );
    assert_eq!(
        msg(RewardNormalizer::try_new(1.5, 1e-8, None).unwrap_err()),
        "NormalizeReward: gamma must be in [0, 1], got 1.5"
    );
    assert!(msg(RewardNormalizer::try_new(f64::NAN, 1e-8, None).unwrap_err()).contains("gamma"));
    assert!(msg(RewardNormalizer::try_new(0.9, -1e-8, None).unwrap_err()).contains("epsilon"));
    assert!(msg(RewardNormalizer::try_new(0.9, 1e-8, Some(f64::NAN)).unwrap_err()).contains("clip"));
    assert!(msg(NormalizeReward::try_new(CartPole::new(), -0.1, 1e-8).err().unwrap()).contains("gamma"));
    assert!(msg(NormalizeObservation::try_new(CartPole::new(), f64::NAN).err().unwrap()).contains("epsilon"));
}

#[test]
#[should_panic(expected = "MeanStdFilter: clip must be positive (or none), got 0")]
fn mean_std_filter_refuses_a_zero_clip() {
    MeanStdFilter::new(3, Some(0.0));
}

#[test]
#[should_panic(expected = "RunningMeanStd: observation has 3 elements, the statistics have 4")]
fn normalizing_an_observation_of_the_wrong_size_panics() {
    ObservationNormalizer::new(4, 1e-8, None).normalize(&mut [0.0; 3]);
}

// === Wrappers ===

#[test]
fn normalize_observation_makes_the_space_unbounded() {
    let env = CartPole::new().normalize_observation(1e-8);
    let Space::Box(b) = env.observation_space() else { panic!("not a Box") };
    assert_eq!(b.shape(), [4]);
    assert!(b.low().iter().all(|l| *l == f32::NEG_INFINITY) && b.high().iter().all(|h| *h == f32::INFINITY));
    assert_eq!(env.action_space(), env.inner().action_space());
}

#[test]
fn wrapper_states_round_trip_and_resume_exactly() {
    let make = || Pendulum::new().time_limit(50).normalize_observation(1e-8).normalize_reward(0.99, 1e-8);
    let mut env = make();
    env.reset(Some(5), None).unwrap();
    for i in 0..70 {
        env.step(Action::Continuous(&[(i % 5) as f32 * 0.4 - 0.8])).unwrap();
    }
    let saved: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&env.save_state().unwrap()).unwrap()).unwrap();
    let mut resumed = make();
    resumed.restore_state(&saved).unwrap();
    assert_eq!(resumed.normalizer(), env.normalizer());
    assert_eq!(resumed.inner().normalizer(), env.inner().normalizer());
    for _ in 0..40 {
        let (a, b) = (env.step(Action::Continuous(&[0.3])).unwrap(), resumed.step(Action::Continuous(&[0.3])).unwrap());
        assert_eq!(a, b);
    }
    // A state for another observation size is refused, naming the key.
    let mut other = CartPole::new().normalize_observation(1e-8).normalize_reward(0.99, 1e-8);
    let mut state = saved.clone();
    state["inner"]["inner"] = other.inner().inner().save_state().unwrap();
    let err = other.restore_state(&state).unwrap_err().to_string();
    assert!(err.contains("mean must be a list of 4 float64 bit patterns"), "{err}");
    // A state saved by another wrapper is refused.
    let mut obs_only = Pendulum::new().time_limit(50).normalize_observation(1e-8);
    let err = obs_only.restore_state(&saved).unwrap_err().to_string();
    assert!(err.ends_with("expected a state saved by NormalizeObservation, got one saved by NormalizeReward"), "{err}");
}

#[test]
fn frozen_reward_wrapper_keeps_the_discounted_sum_running() {
    let mut env = CartPole::new().normalize_reward(0.9, 1e-8);
    env.reset(Some(0), None).unwrap();
    env.step(Action::Discrete(0)).unwrap();
    env.set_update_running_mean(false);
    let stats = env.normalizer().stats().clone();
    let step = env.step(Action::Discrete(0)).unwrap();
    assert_eq!(env.normalizer().stats(), &stats);
    assert_eq!(env.normalizer().discounted_return(), 1.9);
    assert_eq!(step.reward, 1.0 / (stats.var[0] + 1e-8).sqrt());
}
