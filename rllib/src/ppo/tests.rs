//! Unit tests of PPO's schedules, minibatches and GAE inputs.

use super::*;

fn config(extra: &str) -> TrainConfig {
    let text = format!("env: CartPole-v1\nrollout_fragment_length: 32\nminibatch_size: 32\n{extra}");
    TrainConfig::parse(&text, "test.yaml", &[]).unwrap()
}

#[test]
fn schedules_anneal_linearly_to_zero_over_the_planned_iterations() {
    // 4 envs x 32 steps = 128 steps per iteration; 512 steps = 4 iterations.
    let c = config(
        "lr: 1.0e-3\nclip_param: 0.2\nclip_param_schedule: linear\nstop: {num_env_steps_sampled_lifetime: 512}\n",
    );
    let lrs: Vec<f64> = (1..=4).map(|i| PpoHyperparams::at(&c, i).lr).collect();
    let clips: Vec<f64> = (1..=4).map(|i| PpoHyperparams::at(&c, i).clip_param).collect();
    assert_eq!(lrs, [1.0e-3, 0.75e-3, 0.5e-3, 0.25e-3]);
    assert_eq!(clips, [0.2, 0.15000000000000002, 0.1, 0.05]);
    // The default clip schedule is constant.
    let c = config("stop: {training_iteration: 4}\n");
    assert!((1..=4).all(|i| clip_param(&c, i) == c.clip_param));
}

#[test]
fn linear_clip_schedule_needs_a_budget() {
    let text = "env: CartPole-v1\nlr_schedule: constant\nclip_param_schedule: linear\nstop: {time_total_s: 10}\n";
    let err = TrainConfig::parse(text, "t.yaml", &[]).unwrap_err().to_string();
    assert!(err.starts_with("t.yaml:3: clip_param_schedule: linear annealing needs"), "{err}");
}

#[test]
fn minibatches_gather_rows_and_normalize_advantages_like_cleanrl() {
    let buf = RolloutBuffer {
        obs: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
        obs_dim: 2,
        actions: BatchActions::Discrete(vec![0, 1, 1]),
        act_dim: 1,
        logp: vec![-0.1, -0.2, -0.3],
        values: vec![1.0, 2.0, 3.0],
        advantages: vec![1.0, 3.0, 5.0],
        returns: vec![2.0, 5.0, 8.0],
    };
    let mb = buf.minibatch(&[2, 0], true, &Device::Cpu).unwrap();
    assert_eq!(mb.obs.to_vec2::<f32>().unwrap(), [[2.0, 2.5], [0.0, 0.5]]);
    assert_eq!(mb.actions.to_vec1::<u32>().unwrap(), [1, 0]);
    assert_eq!(mb.old_logp.to_vec1::<f32>().unwrap(), [-0.3, -0.1]);
    assert_eq!(mb.returns.to_vec1::<f32>().unwrap(), [8.0, 2.0]);
    // (5, 1): mean 3, unbiased std sqrt(8) = 2.828.
    let adv = mb.advantages.to_vec1::<f32>().unwrap();
    assert!((adv[0] - 2.0 / 8f32.sqrt()).abs() < 1e-6 && (adv[1] + 2.0 / 8f32.sqrt()).abs() < 1e-6, "{adv:?}");
    // Returns 2, 5, 8 against values 1, 2, 3: residuals 1, 3, 5; Var 8/3 vs 6.
    assert!((buf.explained_variance() - (1.0 - (8.0 / 3.0) / 6.0)).abs() < 1e-12);
}

/// A time-limit truncation bootstraps from the final observation's value, or (CleanRL's
/// way, `bootstrap_truncated: false`) counts as a termination.
#[test]
fn truncation_bootstraps_or_terminates() {
    let batch = TrajectoryBatch {
        policy_version: 0,
        worker_index: 0,
        n_envs: 1,
        obs_dim: 1,
        obs: vec![0.0, 0.0],
        next_obs: Vec::new(),
        actions: BatchActions::Discrete(vec![0, 0]),
        logp: vec![0.0, 0.0],
        values: vec![0.0, 0.0],
        rewards: vec![1.0, 1.0],
        terminated: vec![false, false],
        truncated: vec![true, false],
        bootstrap_values: vec![10.0, 0.0],
        last_values: vec![0.0],
        episode_returns: vec![],
        episode_lengths: vec![],
    };
    let batches = std::slice::from_ref(&batch);
    // gamma 0.5: 1 + 0.5 * 10 with bootstrapping, 1 without; the last step bootstraps from
    // last_values (0) either way.
    assert_eq!(RolloutBuffer::from_batches(batches, 0.5, 1.0, true, true).advantages, [6.0, 1.0]);
    assert_eq!(RolloutBuffer::from_batches(batches, 0.5, 1.0, false, true).advantages, [1.0, 1.0]);
}
