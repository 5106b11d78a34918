//! Unit tests of the replay buffer, its sum tree, n-step returns and their checkpoint bytes.

use std::collections::HashMap;

use rl_env::rng::{Pcg64, SeedSequence};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::*;

fn rng(seed: u64) -> Pcg64 {
    Pcg64::from_seed_sequence(&SeedSequence::new(seed))
}

/// A stored transition: `(obs, action, reward, next_obs, discount)`.
type Stored = (Vec<f32>, Vec<f32>, f32, Vec<f32>, f32);

/// Slot `i` of `buffer`.
fn slot(buffer: &ReplayBuffer, i: usize) -> Stored {
    let (o, a) = (buffer.obs_dim, buffer.act_dim);
    (
        buffer.obs[i * o..(i + 1) * o].to_vec(),
        buffer.actions[i * a..(i + 1) * a].to_vec(),
        buffer.rewards[i],
        buffer.next_obs[i * o..(i + 1) * o].to_vec(),
        buffer.discounts[i],
    )
}

/// Every stored transition, oldest first.
fn transitions(buffer: &ReplayBuffer) -> Vec<Stored> {
    let start = if buffer.len() < buffer.capacity() { 0 } else { buffer.pos };
    (0..buffer.len()).map(|k| slot(buffer, (start + k) % buffer.len())).collect()
}

/// Transition `t` of a distinct sequence: obs `[t, -t]`, action `[t]`, reward `t`.
fn push_numbered(buffer: &mut ReplayBuffer, t: usize) {
    let x = t as f32;
    buffer.push(&[x, -x], &[x], x, &[x + 1.0, -x - 1.0], 0.5);
}

/// A panic's message.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("the call panics");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Pearson's chi-square statistic of `counts` against `probs` over `draws` draws.
fn chi_square(counts: &[u64], probs: &[f64], draws: u64) -> f64 {
    counts
        .iter()
        .zip(probs)
        .map(|(&c, &p)| {
            let expected = p * draws as f64;
            (c as f64 - expected).powi(2) / expected
        })
        .sum()
}

/// Asserts each count is within 3 binomial standard deviations of `draws * p`.
fn assert_within_3_sigma(counts: &[u64], probs: &[f64], draws: u64) {
    for (i, (&c, &p)) in counts.iter().zip(probs).enumerate() {
        let (mean, sigma) = (p * draws as f64, (draws as f64 * p * (1.0 - p)).sqrt());
        assert!(
            (c as f64 - mean).abs() <= 3.0 * sigma,
            "slot {i}: {c} draws, expected {mean:.0} +- {:.0}",
            3.0 * sigma
        );
    }
}

#[test]
fn the_ring_overwrites_the_oldest_slot_in_order() {
    let mut buffer = ReplayBuffer::new(5, 2, 1, None);
    for t in 0..8 {
        push_numbered(&mut buffer, t);
        assert_eq!(buffer.len(), (t + 1).min(5));
        // Transition t sits in slot t % 5; after wrapping, the next slot holds the oldest one left.
        assert_eq!(slot(&buffer, t % 5).2, t as f32);
        if t >= 5 {
            assert_eq!(slot(&buffer, (t + 1) % 5).2, (t - 4) as f32, "after push {t}");
        }
    }
    assert_eq!((buffer.len(), buffer.capacity(), buffer.is_empty()), (5, 5, false));
    let rewards: Vec<f32> = transitions(&buffer).iter().map(|t| t.2).collect();
    assert_eq!(rewards, [3.0, 4.0, 5.0, 6.0, 7.0], "the 5 newest, oldest first");
    assert_eq!(buffer.rewards, [5.0, 6.0, 7.0, 3.0, 4.0], "slots 0..3 were overwritten by 5, 6, 7");
    assert_eq!(slot(&buffer, 1), (vec![6.0, -6.0], vec![6.0], 6.0, vec![7.0, -7.0], 0.5));
    assert_eq!((buffer.obs.len(), buffer.obs.capacity()), (5 * 2, 5 * 2), "storage stops growing at capacity");
    // A larger buffer grows by doubling but never holds more rows than its capacity.
    let mut buffer = ReplayBuffer::new(3000, 2, 1, None);
    for t in 0..2500 {
        push_numbered(&mut buffer, t);
    }
    assert!(buffer.rewards.capacity() <= 3000 && buffer.obs.capacity() <= 3000 * 2, "{}", buffer.rewards.capacity());
}

#[test]
fn uniform_sampling_is_uniform_and_deterministic() {
    let mut buffer = ReplayBuffer::new(10, 2, 1, None);
    for t in 0..10 {
        push_numbered(&mut buffer, t);
    }
    let mut g = rng(11);
    let mut counts = [0u64; 10];
    let draws = 100_000;
    for _ in 0..100 {
        let sample = buffer.sample(1000, &mut g, 0.4);
        assert!(sample.weights.iter().all(|w| *w == 1.0));
        for (row, &i) in sample.indices.iter().enumerate() {
            counts[i] += 1;
            // Each row is the slot it names.
            assert_eq!(sample.rewards[row], i as f32);
            assert_eq!(sample.obs[2 * row..2 * row + 2], [i as f32, -(i as f32)]);
        }
    }
    let probs = [0.1; 10];
    assert_within_3_sigma(&counts, &probs, draws);
    // Under uniform draws the statistic follows chi-square with 9 degrees of freedom, whose 99.9th
    // percentile is 27.88: a correct sampler exceeds it for one seed in a thousand, while a sampler
    // biased by 1% towards any slot (about 100 extra draws there) pushes it past ~20 on its own.
    let chi2 = chi_square(&counts, &probs, draws);
    assert!(chi2 < 27.88, "chi-square {chi2} over counts {counts:?}");
    assert!((0..10).all(|i| buffer.probability(i) == 0.1));

    // Same generator state, same sample; the generator moves on.
    let (a, b) = (buffer.sample(64, &mut rng(5), 1.0), buffer.sample(64, &mut rng(5), 1.0));
    assert_eq!(a, b);
    let mut g = rng(5);
    buffer.sample(64, &mut g, 1.0);
    assert_ne!(buffer.sample(64, &mut g, 1.0).indices, a.indices);
}

#[test]
fn uniform_sampling_draws_only_filled_slots() {
    let mut buffer = ReplayBuffer::new(10, 2, 1, None);
    for t in 0..3 {
        push_numbered(&mut buffer, t);
    }
    let draws = 30_000;
    let mut counts = [0u64; 3];
    for i in buffer.sample(draws as usize, &mut rng(2), 0.4).indices {
        counts[i] += 1; // Out of bounds (a panic) for a slot that is not filled.
    }
    let probs = [1.0 / 3.0; 3];
    assert_within_3_sigma(&counts, &probs, draws);
    assert_eq!(buffer.probability(2), 1.0 / 3.0);
}

/// A full prioritized buffer of 4 slots with TD errors 0.1, 0.5, 1.0 and 3.0.
fn prioritized_buffer() -> (ReplayBuffer, [f64; 4]) {
    let mut buffer = ReplayBuffer::new(4, 2, 1, Some(PrioritizedReplayConfig::default()));
    for t in 0..4 {
        push_numbered(&mut buffer, t);
    }
    let td = [0.1_f32, -0.5, 1.0, 3.0];
    buffer.update_priorities(&[0, 1, 2, 3], &td);
    let p = td.map(|x| (f64::from(x.abs()) + 1e-6).powf(0.6));
    (buffer, p)
}

#[test]
fn prioritized_sampling_follows_the_priorities() {
    let (buffer, p) = prioritized_buffer();
    let total: f64 = p.iter().sum();
    let probs = p.map(|x| x / total);
    for (i, want) in probs.iter().enumerate() {
        assert!((buffer.probability(i) - want).abs() < 1e-12, "slot {i}: {} vs {want}", buffer.probability(i));
    }
    let mut g = rng(3);
    let mut counts = [0u64; 4];
    for _ in 0..5000 {
        for i in buffer.sample(32, &mut g, 0.4).indices {
            counts[i] += 1;
        }
    }
    let draws = 5000 * 32;
    // Stratified draws vary less than independent ones, so the binomial bounds are conservative.
    assert_within_3_sigma(&counts, &probs, draws);
    // 3 degrees of freedom: the 99.9th percentile is 16.27.
    let chi2 = chi_square(&counts, &probs, draws);
    assert!(chi2 < 16.27, "chi-square {chi2} over counts {counts:?}, expected probabilities {probs:?}");
}

#[test]
fn importance_weights_follow_the_formula() {
    // 5 of 6 slots filled: `len` (5), not the capacity, is the N of the formula.
    let mut buffer = ReplayBuffer::new(6, 2, 1, Some(PrioritizedReplayConfig { alpha: 0.7, ..Default::default() }));
    for t in 0..5 {
        push_numbered(&mut buffer, t);
    }
    let td = [0.2_f32, 1.5, 0.0, -4.0, 0.7];
    buffer.update_priorities(&[0, 1, 2, 3, 4], &td);
    let p = td.map(|x| (f64::from(x.abs()) + 1e-6).powf(0.7));
    let total: f64 = p.iter().sum();
    let len = 5.0;
    let beta = 0.5;
    let max_weight = (len * p[2] / total).powf(-beta);
    let sample = buffer.sample(200, &mut rng(8), beta);
    let mut seen = [false; 5];
    for (&i, &w) in sample.indices.iter().zip(&sample.weights) {
        seen[i] = true;
        let want = (len * p[i] / total).powf(-beta) / max_weight;
        assert!((f64::from(w) - want).abs() <= 1e-6 * want, "slot {i}: weight {w}, expected {want}");
        assert!(w > 0.0 && w <= 1.0);
    }
    assert!(seen[3] && seen[1], "the likely slots were drawn");
    // Hand-computed for slot 3: (p3 / p2)^-0.5 with p = (|td| + 1e-6)^0.7.
    let w3 = sample.weights[sample.indices.iter().position(|&i| i == 3).unwrap()];
    assert!((f64::from(w3) - ((4.000001_f64 / 1e-6).powf(0.7)).powf(-0.5)).abs() < 1e-9);
    // beta 0 weighs nothing.
    assert!(buffer.sample(20, &mut rng(8), 0.0).weights.iter().all(|w| *w == 1.0));
}

#[test]
fn new_transitions_get_the_largest_priority_so_far() {
    let mut buffer = ReplayBuffer::new(4, 2, 1, Some(PrioritizedReplayConfig::default()));
    push_numbered(&mut buffer, 0);
    push_numbered(&mut buffer, 1);
    assert_eq!([buffer.probability(0), buffer.probability(1)], [0.5, 0.5], "1.0 before any update");
    buffer.update_priorities(&[0, 1], &[3.0, 0.1]);
    let max = (3.0_f64 + 1e-6).powf(0.6);
    push_numbered(&mut buffer, 2);
    let tree = &buffer.priorities.as_ref().unwrap().tree;
    assert_eq!(tree.get(2), max);
    // Lowering the largest priority does not lower what new transitions get (the paper's p_max).
    buffer.update_priorities(&[0], &[0.0]);
    push_numbered(&mut buffer, 3);
    push_numbered(&mut buffer, 4); // Overwrites slot 0.
    let tree = &buffer.priorities.as_ref().unwrap().tree;
    assert_eq!([tree.get(3), tree.get(0)], [max, max]);
    let total = tree.get(0) + tree.get(1) + tree.get(2) + tree.get(3);
    assert!((buffer.probability(0) - max / total).abs() < 1e-15);
    // Uniform buffers ignore priority updates.
    let mut uniform = ReplayBuffer::new(4, 2, 1, None);
    push_numbered(&mut uniform, 0);
    let before = uniform.clone();
    uniform.update_priorities(&[0], &[5.0]);
    assert_eq!(uniform, before);
}

#[test]
fn sum_tree_totals_minimums_and_searches_match_naive_ones() {
    let capacity = 1000; // Not a power of two: the padding leaves take part.
    let mut tree = SumTree::new(capacity);
    let mut leaves = vec![0.0_f64; capacity];
    let mut set = vec![false; capacity];
    let mut g = rng(21);
    for step in 0..100_000 {
        let i = bounded(&mut g, capacity);
        // Priorities over six orders of magnitude, so a drifting sum would show.
        let p = if g.next_f64() < 0.05 { 0.0 } else { 10f64.powf(6.0 * g.next_f64() - 3.0) };
        tree.set(i, p);
        leaves[i] = p;
        set[i] = true;
        if step % 10_000 == 0 || step == 99_999 {
            let naive: f64 = leaves.iter().sum();
            assert!((tree.total() - naive).abs() <= 1e-9 * naive, "step {step}: {} vs {naive}", tree.total());
            let naive_min = (0..capacity).filter(|&i| set[i]).map(|i| leaves[i]).fold(f64::INFINITY, f64::min);
            assert_eq!(tree.min(), naive_min);
        }
    }
    assert!((0..capacity).all(|i| tree.get(i) == leaves[i]));
    // Every search lands on a non-zero leaf whose cumulative range holds the mass (up to rounding
    // between the tree's and the running sum's order of additions).
    let prefix: Vec<f64> = leaves
        .iter()
        .scan(0.0, |acc, p| {
            *acc += p;
            Some(*acc)
        })
        .collect();
    let tol = 1e-9 * tree.total();
    for _ in 0..10_000 {
        let mass = g.next_f64() * tree.total();
        let i = tree.find_prefix_sum(mass);
        let before = if i == 0 { 0.0 } else { prefix[i - 1] };
        assert!(leaves[i] > 0.0 && before <= mass + tol && mass < prefix[i] + tol, "mass {mass} gave leaf {i}");
    }
}

#[test]
fn find_prefix_sum_edge_cases() {
    let mut tree = SumTree::new(5);
    assert_eq!((tree.total(), tree.min()), (0.0, f64::INFINITY));
    tree.set(1, 2.0);
    tree.set(3, 3.0);
    assert_eq!((tree.total(), tree.min(), tree.capacity()), (5.0, 2.0, 5), "unset leaves are not the minimum");
    for (mass, leaf) in [
        (0.0, 1),           // Leaf 0 is empty.
        (1.999, 1),         //
        (2.0, 3),           // The cumulative sum through leaf 1 is 2.0, which does not exceed 2.0.
        (4.9, 3),           //
        (5.0, 3),           // At the total: the last non-zero leaf, not an empty one after it.
        (1e9, 3),           //
        (f64::INFINITY, 3), //
        (-1.0, 1),          // Below 0: the first non-zero leaf.
    ] {
        assert_eq!(tree.find_prefix_sum(mass), leaf, "mass {mass}");
    }
    tree.set(4, 1.0);
    assert_eq!(tree.find_prefix_sum(5.0), 4);
    assert_eq!(tree.find_prefix_sum(1e9), 4);
    let mut one = SumTree::new(1);
    one.set(0, 0.5);
    assert_eq!([one.find_prefix_sum(0.0), one.find_prefix_sum(0.5), one.find_prefix_sum(-3.0)], [0, 0, 0]);
    let empty = SumTree::new(4);
    assert!(
        panic_message(move || {
            empty.find_prefix_sum(0.0);
        })
        .contains("all 0")
    );
}

/// Transitions as `(obs[0], action[0], reward, next_obs[0], discount)`.
fn scalars(buffer: &ReplayBuffer) -> Vec<(f32, f32, f32, f32, f32)> {
    transitions(buffer).into_iter().map(|(o, a, r, n, d)| (o[0], a[0], r, n[0], d)).collect()
}

fn assert_transitions(got: &[(f32, f32, f32, f32, f32)], want: &[(f32, f32, f32, f32, f32)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5;
        assert!(g.0 == w.0 && g.1 == w.1 && g.3 == w.3, "got {g:?}, expected {w:?}");
        assert!(close(g.2, w.2) && close(g.4, w.4), "got {g:?}, expected {w:?}");
        assert_eq!(g.4 == 0.0, w.4 == 0.0, "terminal discounts are exactly 0: got {g:?}, expected {w:?}");
    }
}

#[test]
fn n_step_returns_match_a_hand_computed_example() {
    let mut buffer = ReplayBuffer::new(100, 1, 1, None);
    let mut nstep = NStepAccumulator::new(3, 0.9, 1);
    // Episode 1: obs t, action 10 + t, reward t + 1, terminated on its 5th step.
    for t in 0..5_usize {
        let x = t as f32;
        nstep.add(&mut buffer, 0, &[x], &[10.0 + x], x + 1.0, &[x + 1.0], t == 4, false);
        // The first transition leaves once 3 are queued, then one per step; the end flushes all.
        let want = if t < 4 { (t.saturating_sub(1), (t + 1).min(2)) } else { (5, 0) };
        assert_eq!((buffer.len(), nstep.pending()), want, "after step {t}");
    }
    assert_transitions(
        &scalars(&buffer),
        &[
            (0.0, 10.0, 1.0 + 0.9 * 2.0 + 0.81 * 3.0, 3.0, 0.729), // 5.23
            (1.0, 11.0, 2.0 + 0.9 * 3.0 + 0.81 * 4.0, 4.0, 0.729), // 7.94
            (2.0, 12.0, 3.0 + 0.9 * 4.0 + 0.81 * 5.0, 5.0, 0.0),   // 10.65, terminated
            (3.0, 13.0, 4.0 + 0.9 * 5.0, 5.0, 0.0),
            (4.0, 14.0, 5.0, 5.0, 0.0),
        ],
    );
    // Episode 2: obs 100 + t, reward 1 each step, truncated on its 4th step with final obs 777
    // (the reset obs that follows is never stored).
    let mut buffer = ReplayBuffer::new(100, 1, 1, None);
    for t in 0..4 {
        let x = 100.0 + t as f32;
        let next = if t == 3 { 777.0 } else { x + 1.0 };
        nstep.add(&mut buffer, 0, &[x], &[20.0 + t as f32], 1.0, &[next], false, t == 3);
    }
    assert_eq!(nstep.pending(), 0);
    assert_transitions(
        &scalars(&buffer),
        &[
            (100.0, 20.0, 2.71, 103.0, 0.729),
            (101.0, 21.0, 2.71, 777.0, 0.729),
            (102.0, 22.0, 1.9, 777.0, 0.81),
            (103.0, 23.0, 1.0, 777.0, 0.9),
        ],
    );
}

#[test]
fn n_step_streams_do_not_mix_and_clear_stream_drops_the_queue() {
    let mut buffer = ReplayBuffer::new(100, 1, 1, None);
    let mut nstep = NStepAccumulator::new(2, 0.5, 2);
    // Stream 0: obs t, reward 1; stream 1: obs 100 + t, reward 10; interleaved step by step.
    for t in 0..3 {
        let x = t as f32;
        nstep.add(&mut buffer, 0, &[x], &[0.0], 1.0, &[x + 1.0], false, false);
        nstep.add(&mut buffer, 1, &[100.0 + x], &[1.0], 10.0, &[101.0 + x], false, false);
    }
    assert_eq!(nstep.pending(), 2);
    assert_transitions(
        &scalars(&buffer),
        &[
            (0.0, 0.0, 1.5, 2.0, 0.25),
            (100.0, 1.0, 15.0, 102.0, 0.25),
            (1.0, 0.0, 1.5, 3.0, 0.25),
            (101.0, 1.0, 15.0, 103.0, 0.25),
        ],
    );
    // Stream 1's runner restarts: its queued step (obs 102) is gone, stream 0's stays.
    nstep.clear_stream(1);
    assert_eq!(nstep.pending(), 1);
    nstep.add(&mut buffer, 1, &[200.0], &[1.0], 10.0, &[201.0], false, false);
    nstep.add(&mut buffer, 1, &[201.0], &[1.0], 10.0, &[202.0], false, false);
    nstep.add(&mut buffer, 0, &[3.0], &[0.0], 1.0, &[4.0], false, false);
    let got = scalars(&buffer);
    assert_transitions(&got[4..], &[(200.0, 1.0, 15.0, 202.0, 0.25), (2.0, 0.0, 1.5, 4.0, 0.25)]);
    assert!(got.iter().all(|t| t.0 != 102.0), "the dropped step never reaches the buffer");
}

#[test]
fn one_step_truncation_bootstraps_from_the_final_observation() {
    let mut buffer = ReplayBuffer::new(10, 1, 1, None);
    let mut nstep = NStepAccumulator::new(1, 0.99, 1);
    nstep.add(&mut buffer, 0, &[1.0], &[0.0], 1.0, &[2.0], false, false);
    // Truncated: the env has already reset to obs 0; the final observation 3.5 is what is passed.
    nstep.add(&mut buffer, 0, &[2.0], &[1.0], 1.0, &[3.5], false, true);
    nstep.add(&mut buffer, 0, &[0.0], &[0.0], -1.0, &[9.0], true, false);
    nstep.add(&mut buffer, 0, &[5.0], &[0.0], 2.0, &[6.0], true, true);
    assert_eq!(nstep.pending(), 0);
    assert_eq!(
        scalars(&buffer),
        [(1.0, 0.0, 1.0, 2.0, 0.99), (2.0, 1.0, 1.0, 3.5, 0.99), (0.0, 0.0, -1.0, 9.0, 0.0), (5.0, 0.0, 2.0, 6.0, 0.0)]
    );
}

/// Every float of the buffer as bits (`-0.0` and `0.0` differ), with the leaf priorities.
fn bits(buffer: &ReplayBuffer) -> Vec<u64> {
    let floats = [&buffer.obs, &buffer.actions, &buffer.rewards, &buffer.next_obs, &buffer.discounts];
    let mut out: Vec<u64> = floats.iter().flat_map(|v| v.iter().map(|x| u64::from(x.to_bits()))).collect();
    if let Some(p) = &buffer.priorities {
        out.extend((0..buffer.len()).map(|i| p.tree.get(i).to_bits()));
        out.push(p.max_priority.to_bits());
    }
    out
}

fn filled(capacity: usize, pushes: usize, prioritized: bool) -> ReplayBuffer {
    let config = PrioritizedReplayConfig { alpha: 0.55, beta: 0.3, beta_final: 0.9, eps: 1e-5 };
    let mut buffer = ReplayBuffer::new(capacity, 2, 1, prioritized.then_some(config));
    let mut g = rng(4);
    for t in 0..pushes {
        // -0.0 and a subnormal must survive bit for bit.
        let odd = if t % 3 == 0 { -0.0 } else { 1e-40 };
        buffer.push(&[t as f32, odd], &[(t % 2) as f32], g.next_f64() as f32, &[odd, 0.1 * t as f32], 0.99);
    }
    if pushes > 0 {
        let sample = buffer.sample(8, &mut g, 0.3);
        let td: Vec<f32> = (0..8).map(|k| k as f32 * 0.37 - 1.0).collect();
        buffer.update_priorities(&sample.indices, &td);
    }
    buffer
}

#[test]
fn buffers_round_trip_bit_for_bit_and_sample_alike() {
    for (capacity, pushes, prioritized) in
        [(10, 0, false), (10, 4, false), (5, 12, false), (10, 0, true), (10, 4, true), (5, 12, true), (7, 7, true)]
    {
        let buffer = filled(capacity, pushes, prioritized);
        let back = ReplayBuffer::from_bytes(&buffer.to_bytes(), "rb.safetensors").unwrap();
        let case = format!("capacity {capacity}, {pushes} pushes, prioritized {prioritized}");
        assert_eq!(back, buffer, "{case}");
        assert_eq!(bits(&back), bits(&buffer), "{case}");
        assert_eq!(back.pos, buffer.pos, "{case}");
        if pushes > 0 {
            assert_eq!(back.sample(16, &mut rng(9), 0.6), buffer.sample(16, &mut rng(9), 0.6), "{case}");
        }
        // The restored buffer goes on like the original.
        let (mut a, mut b) = (buffer.clone(), back);
        push_numbered(&mut a, 99);
        push_numbered(&mut b, 99);
        assert_eq!(a, b, "{case}");
    }
}

/// `bytes` with its metadata and tensors passed through `edit`.
fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut meta = SafeTensors::read_metadata(bytes).unwrap().1.metadata().clone().unwrap();
    let mut tensors: Vec<_> =
        st.tensors().into_iter().map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec())).collect();
    edit(&mut meta, &mut tensors);
    let views = tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn malformed_buffer_bytes_are_errors_naming_the_file_and_field() {
    let good = filled(10, 4, true).to_bytes();
    let set = |key: &'static str, value: &'static str| {
        move |m: &mut HashMap<String, String>, _: &mut Vec<_>| drop(m.insert(key.into(), value.into()))
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"junk".to_vec(), "not a replay buffer"),
        (rewrite(&good, set("len", "3")), "len 3 and pos 4 do not fit capacity 10"),
        (rewrite(&good, set("len", "5")), "len 5 and pos 4"),
        (rewrite(&good, set("format_version", "2")), "format version 2"),
        (rewrite(&good, set("kind", "fancy")), "metadata kind \"fancy\""),
        (rewrite(&good, set("kind", "uniform")), "metadata: missing [], unknown [\"alpha\", \"beta\""),
        (rewrite(&good, set("capacity", "ten")), "metadata capacity \"ten\" is not a valid usize"),
        (rewrite(&good, set("capacity", "3")), "do not fit capacity 3"),
        (rewrite(&good, set("alpha", "-1")), "alpha: must be a finite number >= 0"),
        (rewrite(&good, set("max_priority", "0.5")), "is not in (0, max_priority 0.5]"),
        (rewrite(&good, set("extra", "1")), "metadata: missing [], unknown [\"extra\"]"),
        (rewrite(&good, |m, _| drop(m.remove("pos"))), "metadata: missing [\"pos\"]"),
        (rewrite(&good, |_, t| t.retain(|x| x.0 != "next_obs")), "tensors: missing [\"next_obs\"]"),
        (
            rewrite(&good, |_, t| t.iter_mut().filter(|x| x.0 == "obs").for_each(|x| x.2 = vec![2, 4])),
            "tensor obs is F32 [2, 4], expected F32 [4, 2]",
        ),
        (
            rewrite(&good, |_, t| {
                t.iter_mut()
                    .filter(|x| x.0 == "rewards")
                    .for_each(|x| (x.1, x.2, x.3) = (Dtype::I32, vec![4], vec![0; 16]))
            }),
            "tensor rewards is I32 [4], expected F32 [4]",
        ),
        (
            rewrite(&good, |_, t| {
                t.iter_mut()
                    .filter(|x| x.0 == "priorities")
                    .for_each(|x| x.3[..8].copy_from_slice(&(-1.0_f64).to_le_bytes()))
            }),
            "priority -1 of slot 0",
        ),
    ];
    for (bytes, want) in cases {
        let err = ReplayBuffer::from_bytes(&bytes, "ckpt/replay_buffer.safetensors").unwrap_err().to_string();
        assert!(err.starts_with("ckpt/replay_buffer.safetensors: "), "{err}");
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
}

#[test]
fn n_step_state_round_trips_and_resumes_exactly() {
    let mut buffer = ReplayBuffer::new(50, 1, 2, None);
    let mut nstep = NStepAccumulator::new(4, 0.97, 3);
    let mut g = rng(6);
    let step = |nstep: &mut NStepAccumulator, buffer: &mut ReplayBuffer, s: usize, t: usize, end: bool| {
        let x = (100 * s + t) as f32;
        nstep.add(buffer, s, &[x], &[-0.0, x], 0.1 * x + 1e-40, &[x + 1.0], end, false);
    };
    for t in 0..5 {
        step(&mut nstep, &mut buffer, 0, t, false);
    }
    step(&mut nstep, &mut buffer, 2, 0, false);
    assert_eq!(nstep.pending(), 4);
    let back = NStepAccumulator::from_bytes(&nstep.to_bytes(), "nstep.json").unwrap();
    assert_eq!(back, nstep);
    assert_eq!((back.n(), back.gamma(), back.streams()), (4, 0.97, 3));
    let queued = |a: &NStepAccumulator| -> Vec<u32> {
        a.queues
            .iter()
            .flatten()
            .flat_map(|t| t.obs.iter().chain(&t.action).chain([&t.reward]))
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(queued(&back), queued(&nstep), "bit for bit");
    // Both finish the episodes alike.
    let (mut a, mut b) = ((nstep, buffer.clone()), (back, buffer));
    for (acc, buf) in [(&mut a.0, &mut a.1), (&mut b.0, &mut b.1)] {
        step(acc, buf, 0, 5, true);
        step(acc, buf, 2, 1, g.next_f64() < 2.0);
    }
    assert_eq!(a, b);
    assert_eq!(a.0.pending(), 0);
}

#[test]
fn malformed_n_step_state_is_an_error_naming_the_file() {
    let mut buffer = ReplayBuffer::new(10, 1, 1, None);
    let mut nstep = NStepAccumulator::new(3, 0.9, 2);
    nstep.add(&mut buffer, 1, &[1.0], &[0.0], 1.0, &[2.0], false, false);
    let good: serde_json::Value = serde_json::from_slice(&nstep.to_bytes()).unwrap();
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "not an n-step state"),
        (edited(&|v| v["format_version"] = 9.into()), "format version 9"),
        (edited(&|v| v["n"] = 0.into()), "n 0 must be at least 1"),
        (edited(&|v| v["gamma"] = 1.5.into()), "gamma 1.5"),
        (edited(&|v| v["extra"] = 1.into()), "unknown field `extra`"),
        (
            edited(&|v| v["streams"][1] = serde_json::Value::Array(vec![v["streams"][1][0].clone(); 3])),
            "stream 1 queues 3 transitions",
        ),
        (
            edited(&|v| v["streams"][0] = serde_json::json!([{"obs": [1, 2], "action": [0], "reward": 0}])),
            "stream 1 transition 0 has obs length 1",
        ),
    ];
    for (bytes, want) in cases {
        let err = NStepAccumulator::from_bytes(&bytes, "ckpt/nstep.json").unwrap_err().to_string();
        assert!(err.starts_with("ckpt/nstep.json: "), "{err}");
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
}

#[test]
fn caller_bugs_panic_with_clear_messages() {
    let empty = ReplayBuffer::new(4, 2, 1, None);
    assert!(panic_message(move || drop(empty.sample(1, &mut rng(0), 0.4))).contains("empty replay buffer"));
    let (mut buffer, _) = prioritized_buffer();
    let msg = panic_message(move || buffer.update_priorities(&[1], &[f32::NAN]));
    assert!(msg.contains("non-finite TD error NaN for slot 1"), "{msg}");
    let mut buffer = ReplayBuffer::new(4, 2, 1, None);
    assert!(panic_message(move || buffer.push(&[1.0], &[0.0], 0.0, &[1.0, 2.0], 1.0)).contains("obs length"));
    let bad = PrioritizedReplayConfig { eps: 0.0, ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "eps: must be a finite number > 0, got 0");
    assert_eq!(PrioritizedReplayConfig::default().validate(), Ok(()));
}
