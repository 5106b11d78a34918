//! Generalized Advantage Estimation (Schulman et al. 2016) with bootstrapping on truncation.
//!
//! Inputs are laid out time-major, `[T, N]` flattened (index `t * n_envs + env`), as a rollout
//! worker records them. At a step that ends an episode:
//! - terminated: the next state has value 0, nothing is bootstrapped;
//! - truncated (time limit): the episode would have gone on, so the return is bootstrapped
//!   from the value of the final observation: `delta = r + gamma * V(final_obs) - V(s)`.
//!
//! Either way the advantage recursion stops there, since the next row holds a new episode.

/// One rollout fragment of a vector env, time-major `[T, N]`.
#[derive(Debug, Clone, Copy)]
pub struct GaeInput<'a> {
    /// Sub-envs per step.
    pub n_envs: usize,
    /// `r_t`, `[T, N]`.
    pub rewards: &'a [f32],
    /// `V(s_t)` from the policy that acted, `[T, N]`.
    pub values: &'a [f32],
    /// Episode ended in a terminal state at step t, `[T, N]`.
    pub terminated: &'a [bool],
    /// Episode was cut by a time limit at step t, `[T, N]`.
    pub truncated: &'a [bool],
    /// `V(final_obs_t)` where `truncated[t]`, anything elsewhere, `[T, N]`.
    pub bootstrap_values: &'a [f32],
    /// `V(s_T)`: the value of the observation after the last step, `[N]`.
    pub last_values: &'a [f32],
}

/// Advantages and value targets (`returns = advantages + values`), both `[T, N]`.
pub fn compute_gae(input: &GaeInput<'_>, gamma: f32, lambda: f32) -> (Vec<f32>, Vec<f32>) {
    let n = input.n_envs;
    let len = input.rewards.len();
    assert!(n > 0 && len.is_multiple_of(n), "rewards must be [T, {n}]");
    for (name, l) in [
        ("values", input.values.len()),
        ("terminated", input.terminated.len()),
        ("truncated", input.truncated.len()),
        ("bootstrap_values", input.bootstrap_values.len()),
    ] {
        assert_eq!(l, len, "{name} must have the same [T, N] shape as rewards");
    }
    assert_eq!(input.last_values.len(), n, "last_values must be [N]");
    let steps = len / n;
    let mut advantages = vec![0.0f32; len];
    for env in 0..n {
        let mut last_gae = 0.0f32;
        for t in (0..steps).rev() {
            let i = t * n + env;
            // `continues` is 0 where the next row belongs to a new episode.
            let (next_value, continues) = if input.terminated[i] {
                (0.0, 0.0)
            } else if input.truncated[i] {
                (input.bootstrap_values[i], 0.0)
            } else if t + 1 == steps {
                (input.last_values[env], 1.0)
            } else {
                (input.values[i + n], 1.0)
            };
            let delta = input.rewards[i] + gamma * next_value - input.values[i];
            last_gae = delta + gamma * lambda * continues * last_gae;
            advantages[i] = last_gae;
        }
    }
    let returns = advantages.iter().zip(input.values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-5, "index {i}: {x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    /// An env that pays 1 only on its last step, with a constant value estimate: the SB3-style
    /// hand-checkable case. With V = 0 and lambda = 1, the advantage at step t of an episode of
    /// length L is gamma^(L-1-t).
    #[test]
    fn reward_at_the_end_with_zero_values() {
        for gamma in [0.5f32, 0.9, 0.99] {
            let len = 4;
            let mut rewards = vec![0.0; len];
            rewards[len - 1] = 1.0;
            let mut terminated = vec![false; len];
            terminated[len - 1] = true;
            let zeros = vec![0.0; len];
            let input = GaeInput {
                n_envs: 1,
                rewards: &rewards,
                values: &zeros,
                terminated: &terminated,
                truncated: &[false; 4],
                bootstrap_values: &zeros,
                last_values: &[123.0], // Must be ignored: the episode terminated.
            };
            let (adv, ret) = compute_gae(&input, gamma, 1.0);
            let want: Vec<f32> = (0..len).map(|t| gamma.powi((len - 1 - t) as i32)).collect();
            close(&adv, &want);
            close(&ret, &want);
        }
    }

    /// Hand computation, one env, gamma 0.9, lambda 0.8, values 0.5 everywhere, rewards 1:
    /// delta at a step with a live successor = 1 + 0.9 * 0.5 - 0.5 = 0.95.
    #[test]
    fn hand_computed_across_termination_and_cutoff() {
        let v = [0.5f32; 3];
        let input = GaeInput {
            n_envs: 1,
            rewards: &[1.0, 1.0, 1.0],
            values: &v,
            terminated: &[false, true, false],
            truncated: &[false; 3],
            bootstrap_values: &[0.0; 3],
            last_values: &[2.0],
        };
        let (adv, _) = compute_gae(&input, 0.9, 0.8);
        // t=2: fragment cut, bootstrap V(s_3) = 2: 1 + 0.9 * 2 - 0.5 = 2.3
        // t=1: terminated: 1 - 0.5 = 0.5
        // t=0: 0.95 + 0.72 * 0.5 = 1.31
        close(&adv, &[1.31, 0.5, 2.3]);
    }

    #[test]
    fn truncation_bootstraps_from_final_observation() {
        let input = GaeInput {
            n_envs: 1,
            rewards: &[1.0, 1.0, 1.0],
            values: &[0.5, 0.5, 0.7],
            terminated: &[false; 3],
            truncated: &[false, true, false],
            bootstrap_values: &[9.0, 3.0, 9.0],
            last_values: &[1.0],
        };
        let (adv, ret) = compute_gae(&input, 0.9, 0.8);
        // t=2: 1 + 0.9 * 1.0 - 0.7 = 1.2
        // t=1: truncated: 1 + 0.9 * 3.0 - 0.5 = 3.2, no recursion into the new episode
        // t=0: delta = 1 + 0.9 * 0.5 - 0.5 = 0.95; adv = 0.95 + 0.72 * 3.2 = 3.254
        close(&adv, &[3.254, 3.2, 1.2]);
        close(&ret, &[3.754, 3.7, 1.9]);
    }

    #[test]
    fn envs_are_independent_in_time_major_layout() {
        // Two envs interleaved: env 0 terminates at t=0, env 1 never ends.
        let input = GaeInput {
            n_envs: 2,
            rewards: &[1.0, 0.0, 1.0, 0.0],
            values: &[0.0, 0.0, 0.0, 0.0],
            terminated: &[true, false, false, false],
            truncated: &[false; 4],
            bootstrap_values: &[0.0; 4],
            last_values: &[0.0, 10.0],
        };
        let (adv, _) = compute_gae(&input, 0.5, 1.0);
        // env 0: t=1 -> 1 + 0 = 1; t=0 -> 1 (terminated). env 1: t=1 -> 0.5 * 10 = 5; t=0 -> 0.5 * 5 = 2.5
        close(&adv, &[1.0, 2.5, 1.0, 5.0]);
    }
}
