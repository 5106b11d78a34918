//! The fast inference path must compute the same network as the candle forward pass.

use candle_core::{Device, Tensor};
use rl_env::Space;
use rl_env::rng::NpRandom;
use rl_policies::{Activation, ActorCritic, PolicyConfig};

fn obs_batch(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = NpRandom::from_seed(seed);
    (0..n * dim).map(|_| rng.uniform(-2.0, 2.0) as f32).collect()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-5, "{what}[{i}]: fast {x} vs candle {y}");
    }
}

fn configs() -> Vec<PolicyConfig> {
    vec![
        PolicyConfig::default(),
        PolicyConfig { fcnet_hiddens: vec![32], fcnet_activation: Activation::Relu, vf_share_layers: true },
        PolicyConfig { fcnet_hiddens: vec![16, 8, 4], fcnet_activation: Activation::Tanh, vf_share_layers: false },
    ]
}

#[test]
fn discrete_fast_path_matches_candle() {
    let obs_space = Space::boxed(vec![-5.0; 6], vec![5.0; 6], vec![6]).unwrap();
    for (k, cfg) in configs().into_iter().enumerate() {
        let mut policy = ActorCritic::new(&cfg, &obs_space, &Space::discrete(3).unwrap(), k as u64).unwrap();
        // Make the logits non-trivial: the 0.01-gain head would give near-uniform probabilities.
        let bytes = policy.to_safetensors(0).unwrap();
        let mut scaled = ActorCritic::new(&cfg, &obs_space, &Space::discrete(3).unwrap(), 99).unwrap();
        scaled.load_safetensors(&bytes).unwrap();
        for (name, var) in scaled.named_vars() {
            if name == "pi.weight" {
                var.set(&(var.as_tensor() * 100.0).unwrap()).unwrap();
            }
        }
        policy = scaled;
        let n = 17;
        let obs = obs_batch(n, 6, k as u64);
        let fast = policy.fast_policy().unwrap();
        let (mut a, mut lp, mut v) = (vec![0i64; n], vec![0.0f32; n], vec![0.0f32; n]);
        fast.act_discrete(&obs, NpRandom::from_seed(3).bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();

        let x = Tensor::from_vec(obs.clone(), (n, 6), &Device::Cpu).unwrap();
        let actions = Tensor::from_vec(a.iter().map(|x| *x as u32).collect::<Vec<_>>(), n, &Device::Cpu).unwrap();
        let (logp, _, values) = policy.evaluate_actions(&x, &actions).unwrap();
        close(&lp, &logp.to_vec1::<f32>().unwrap(), "logp");
        close(&v, &values.to_vec1::<f32>().unwrap(), "values");
        let mut v2 = vec![0.0f32; n];
        fast.values(&obs, &mut v2).unwrap();
        assert_eq!(v, v2);

        // Deterministic mode is the argmax of the candle logits.
        fast.act_discrete(&obs, NpRandom::from_seed(0).bits_mut(), true, &mut a, &mut lp, &mut v).unwrap();
        let (logits, _) = policy.forward(&x).unwrap();
        let argmax: Vec<i64> = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap().iter().map(|x| *x as i64).collect();
        assert_eq!(a, argmax);
    }
}

#[test]
fn continuous_fast_path_matches_candle() {
    let obs_space = Space::boxed(vec![-5.0; 3], vec![5.0; 3], vec![3]).unwrap();
    let act_space = Space::boxed(vec![-2.0; 2], vec![2.0; 2], vec![2]).unwrap();
    for (k, cfg) in configs().into_iter().enumerate() {
        let policy = ActorCritic::new(&cfg, &obs_space, &act_space, k as u64).unwrap();
        let n = 9;
        let obs = obs_batch(n, 3, 10 + k as u64);
        let fast = policy.fast_policy().unwrap();
        let (mut a, mut lp, mut v) = (vec![0.0f32; 2 * n], vec![0.0f32; n], vec![0.0f32; n]);
        fast.act_continuous(&obs, NpRandom::from_seed(4).bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
        let x = Tensor::from_vec(obs.clone(), (n, 3), &Device::Cpu).unwrap();
        let actions = Tensor::from_vec(a.clone(), (n, 2), &Device::Cpu).unwrap();
        let (logp, _, values) = policy.evaluate_actions(&x, &actions).unwrap();
        close(&lp, &logp.to_vec1::<f32>().unwrap(), "logp");
        close(&v, &values.to_vec1::<f32>().unwrap(), "values");
        let (mean, _) = policy.forward(&x).unwrap();
        fast.act_continuous(&obs, NpRandom::from_seed(4).bits_mut(), true, &mut a, &mut lp, &mut v).unwrap();
        close(&a, &mean.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "mode");
    }
}

#[test]
fn sampling_is_reproducible_and_buffers_are_checked() {
    let obs_space = Space::boxed(vec![-1.0; 4], vec![1.0; 4], vec![4]).unwrap();
    let policy = ActorCritic::new(&PolicyConfig::default(), &obs_space, &Space::discrete(2).unwrap(), 0).unwrap();
    let fast = policy.fast_policy().unwrap();
    let obs = obs_batch(64, 4, 1);
    let run = |seed| {
        let (mut a, mut lp, mut v) = (vec![0i64; 64], vec![0.0f32; 64], vec![0.0f32; 64]);
        fast.act_discrete(&obs, NpRandom::from_seed(seed).bits_mut(), false, &mut a, &mut lp, &mut v).unwrap();
        a
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
    let (mut a, mut lp, mut v) = (vec![0i64; 3], vec![0.0f32; 3], vec![0.0f32; 3]);
    let err = fast.act_discrete(&obs[..8], NpRandom::from_seed(0).bits_mut(), false, &mut a, &mut lp, &mut v);
    assert_eq!(err.unwrap_err().to_string(), "observations: expected 12 values, got 8");
}
