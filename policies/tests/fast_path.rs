//! The fast inference path computes the same network as the candle forward pass.

use candle_core::{Device, Tensor};
use rl_env::Space;
use rl_env::rng::NpRandom;
use rl_policies::{
    Activation, ActorCritic, FAST_BLOCK_ROWS, FastPolicy, PolicyConfig, PolicyError, Result, test_device,
};

fn obs_batch(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = NpRandom::from_seed(seed);
    (0..n * dim).map(|_| rng.uniform(-2.0, 2.0) as f32).collect()
}

fn close(fast: &[f32], candle: &[f32], what: &str) {
    assert_eq!(fast.len(), candle.len(), "{what}");
    for (i, (x, y)) in fast.iter().zip(candle).enumerate() {
        assert!((x - y).abs() < 1e-5, "{what}[{i}]: fast {x} vs candle {y}");
    }
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Default 64-64 tanh with separate trunks, a one-layer relu shared trunk, and a narrow
/// three-layer net whose widths exercise the kernel's 8-, 4- and 1-column tiles.
fn configs() -> Vec<PolicyConfig> {
    vec![
        PolicyConfig::default(),
        PolicyConfig {
            fcnet_hiddens: vec![32],
            fcnet_activation: Activation::Relu,
            vf_share_layers: true,
            log_std_init: 0.0,
        },
        PolicyConfig {
            fcnet_hiddens: vec![16, 13, 5],
            fcnet_activation: Activation::Tanh,
            vf_share_layers: false,
            log_std_init: -1.0,
        },
    ]
}

/// A policy whose head gives confident, non-uniform outputs: the 0.01-gain init would leave
/// every logit near 0 and hide disagreements.
fn sharpened(cfg: &PolicyConfig, obs: &Space, act: &Space, seed: u64, device: &Device) -> Result<ActorCritic> {
    let policy = ActorCritic::new_on(cfg, obs, act, seed, device)?;
    for (name, var) in policy.named_vars() {
        if name == "pi.weight" {
            var.set(&(var.as_tensor() * 100.0)?)?;
        }
        if name == "log_std" {
            var.set(&Tensor::new(&[-0.5f32, 0.3], device)?)?;
        }
    }
    Ok(policy)
}

/// Batch sizes below, at and across the block size.
const BATCHES: [usize; 4] = [1, 5, FAST_BLOCK_ROWS, 2 * FAST_BLOCK_ROWS + 7];

fn discrete_fast_path_matches_candle(device: &Device) -> Result<()> {
    let obs_space = Space::boxed(vec![-5.0; 6], vec![5.0; 6], vec![6]).unwrap();
    let act_space = Space::discrete(3).unwrap();
    for (k, cfg) in configs().iter().enumerate() {
        let policy = sharpened(cfg, &obs_space, &act_space, k as u64, device)?;
        let fast = policy.fast_policy()?;
        for n in BATCHES {
            let obs = obs_batch(n, 6, k as u64 + n as u64);
            let x = Tensor::from_slice(&obs, (n, 6), device)?;
            let (logits, values) = policy.forward(&x)?;

            let (mut head, mut v) = (vec![0.0f32; 3 * n], vec![0.0f32; n]);
            fast.forward(&obs, &mut head, &mut v)?;
            close(&head, &to_vec(&logits), "logits");
            close(&v, &to_vec(&values), "values");

            let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
            fast.act_discrete(&obs, NpRandom::from_seed(3).bits_mut(), false, &mut a, &mut lp, &mut v)?;
            assert!(a.iter().all(|a| (0..3).contains(a)));
            let actions = Tensor::from_vec(a.iter().map(|x| *x as u32).collect::<Vec<_>>(), n, device)?;
            let (logp, _, values) = policy.evaluate_actions(&x, &actions)?;
            close(&lp, &to_vec(&logp), "log-probs");
            close(&v, &to_vec(&values), "values");

            let mut v2 = vec![0.0f32; n];
            fast.values(&obs, &mut v2)?;
            assert_eq!(v, v2, "values() and act_discrete() compute the same values");

            // Deterministic mode is the argmax of the candle logits.
            fast.act_discrete(&obs, NpRandom::from_seed(0).bits_mut(), true, &mut a, &mut lp, &mut v)?;
            let argmax = logits.argmax(1)?.to_vec1::<u32>()?;
            assert_eq!(a, argmax.iter().map(|x| i64::from(*x)).collect::<Vec<_>>());
        }
    }
    Ok(())
}

fn continuous_fast_path_matches_candle(device: &Device) -> Result<()> {
    let obs_space = Space::boxed(vec![-5.0; 3], vec![5.0; 3], vec![3]).unwrap();
    let act_space = Space::boxed(vec![-2.0; 2], vec![2.0; 2], vec![2]).unwrap();
    for (k, cfg) in configs().iter().enumerate() {
        let policy = sharpened(cfg, &obs_space, &act_space, k as u64, device)?;
        let fast = policy.fast_policy()?;
        assert_eq!(fast.log_std(), [-0.5, 0.3]);
        for n in BATCHES {
            let obs = obs_batch(n, 3, 10 + k as u64 + n as u64);
            let x = Tensor::from_slice(&obs, (n, 3), device)?;
            let (mean, values) = policy.forward(&x)?;

            let (mut head, mut v) = (vec![0.0f32; 2 * n], vec![0.0f32; n]);
            fast.forward(&obs, &mut head, &mut v)?;
            close(&head, &to_vec(&mean), "means");
            close(&v, &to_vec(&values), "values");

            let (mut a, mut lp, mut v) = (vec![0.0f32; 2 * n], vec![0.0f32; n], vec![0.0f32; n]);
            fast.act_continuous(&obs, NpRandom::from_seed(4).bits_mut(), false, &mut a, &mut lp, &mut v)?;
            let actions = Tensor::from_slice(&a, (n, 2), device)?;
            let (logp, _, values) = policy.evaluate_actions(&x, &actions)?;
            close(&lp, &to_vec(&logp), "log-probs");
            close(&v, &to_vec(&values), "values");

            fast.act_continuous(&obs, NpRandom::from_seed(4).bits_mut(), true, &mut a, &mut lp, &mut v)?;
            close(&a, &to_vec(&mean), "deterministic actions");
        }
    }
    Ok(())
}

test_device!(discrete_fast_path_matches_candle, discrete_cpu, discrete_cuda);
test_device!(continuous_fast_path_matches_candle, continuous_cpu, continuous_cuda);

fn cartpole_policy() -> FastPolicy {
    let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
    let act_space = Space::discrete(2).unwrap();
    let policy = sharpened(&PolicyConfig::default(), &obs_space, &act_space, 0, &Device::Cpu).unwrap();
    policy.fast_policy().unwrap()
}

/// One call on 100 observations draws the same actions, bit for bit, as 100 calls on one
/// observation each with the same RNG: blocks and tiles do not change the arithmetic.
#[test]
fn results_do_not_depend_on_the_batch_split() {
    let fast = cartpole_policy();
    let n = 100;
    let obs = obs_batch(n, 4, 1);
    let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
    fast.act_discrete(&obs, NpRandom::from_seed(9).bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
    let mut rng = NpRandom::from_seed(9);
    for i in 0..n {
        let (mut a1, mut lp1, mut v1) = ([0i64], [0.0f32], [0.0f32]);
        fast.act_discrete(&obs[4 * i..4 * i + 4], rng.bits_mut(), false, &mut a1, &mut lp1, &mut v1).unwrap();
        assert_eq!((a1[0], lp1[0].to_bits(), v1[0].to_bits()), (a[i], lp[i].to_bits(), v[i].to_bits()), "row {i}");
    }
}

#[test]
fn sampling_is_reproducible_and_follows_the_seed() {
    let fast = cartpole_policy();
    let obs = obs_batch(64, 4, 1);
    let run = |seed| {
        let (mut a, mut lp, mut v) = (vec![0i64; 64], vec![0.0f32; 64], vec![0.0f32; 64]);
        fast.act_discrete(&obs, NpRandom::from_seed(seed).bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
        a
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn buffer_sizes_and_action_kinds_are_checked() {
    let fast = cartpole_policy();
    let obs = obs_batch(4, 4, 1);
    let mut rng = NpRandom::from_seed(0);
    let (mut a, mut lp, mut v) = (vec![0i64; 3], vec![0.0f32; 3], vec![0.0f32; 3]);
    let err = fast.act_discrete(&obs[..8], rng.bits_mut(), false, &mut a, &mut lp, &mut v).unwrap_err();
    assert_eq!(err.to_string(), "observations: expected 12 values, got 8");
    let err = fast.act_discrete(&obs[..12], rng.bits_mut(), false, &mut a, &mut lp[..2], &mut v).unwrap_err();
    assert_eq!(err.to_string(), "log-probabilities: expected 3 values, got 2");
    let err = fast.forward(&obs[..12], &mut [0.0; 5], &mut v).unwrap_err();
    assert_eq!(err.to_string(), "policy head: expected 6 values, got 5");
    let mut af = vec![0.0f32; 3];
    let err = fast.act_continuous(&obs[..12], rng.bits_mut(), false, &mut af, &mut lp, &mut v).unwrap_err();
    assert!(matches!(err, PolicyError::WrongActionKind { op: "act_continuous", .. }));
    assert_eq!(err.to_string(), "act_continuous needs a Box policy, this one has Discrete(2)");
    // An empty batch is fine.
    fast.act_discrete(&[], rng.bits_mut(), false, &mut [], &mut [], &mut []).unwrap();
}

/// Rollout workers and learners move policies to their own threads.
#[test]
fn policies_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FastPolicy>();
    assert_send_sync::<ActorCritic>();
}
