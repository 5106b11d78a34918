//! NumPy-compatible random numbers: `SeedSequence` and the `PCG64` bit generator.
//!
//! Gymnasium seeds every environment with
//! `np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))` and draws its initial states
//! with `Generator.uniform`. [`NpRandom::from_seed`] reproduces that chain exactly, so a Rust env
//! reset with seed `s` starts from the same float64 state as its Gymnasium twin.
//! [`NpRandom::integers`] reproduces `Generator.integers(low, high)`, the other draw Gymnasium envs
//! make (`self.np_random.integers`).
//!
//! The algorithms follow NumPy's `bit_generator.pyx` (SeedSequence hashing), `pcg64.h` (128-bit
//! LCG with the XSL-RR output function, and the 32-bit draws that split one 64-bit output in two)
//! and `distributions.c` (`random_bounded_uint64_fill`: Lemire's bounded integers). Constants are
//! NumPy's.

use rand::RngCore;

use crate::error::{EnvError, Result};

// === SeedSequence constants (NumPy `bit_generator.pyx`) ===
const POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// The default 128-bit LCG multiplier of PCG (`PCG_DEFAULT_MULTIPLIER_128`).
const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// NumPy's `SeedSequence`: hashes an integer seed into a well-mixed entropy pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

impl SeedSequence {
    /// Builds the pool for the integer entropy `seed`, like `np.random.SeedSequence(seed)`.
    pub fn new(seed: u64) -> Self {
        // NumPy splits the integer into little-endian 32-bit words; 0 becomes `[0]`.
        let mut entropy = vec![seed as u32];
        if seed >> 32 != 0 {
            entropy.push((seed >> 32) as u32);
        }
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        let mut hashmix = |value: u32| -> u32 {
            let mut value = value ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_A);
            value = value.wrapping_mul(hash_const);
            value ^ (value >> XSHIFT)
        };
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0));
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    let h = hashmix(pool[i_src]);
                    pool[i_dst] = mix(pool[i_dst], h);
                }
            }
        }
        // Entropy words beyond the pool size (never more than 2 for a u64 seed) are folded in last.
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    /// The entropy pool after mixing.
    pub fn pool(&self) -> &[u32; POOL_SIZE] {
        &self.pool
    }

    /// `generate_state(n_words, np.uint64)`: `n_words` 64-bit words derived from the pool.
    pub fn generate_state_u64(&self, n_words: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let words32: Vec<u32> = (0..n_words * 2)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect();
        words32.chunks_exact(2).map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32)).collect()
    }
}

/// Mixes `value` into `seed`: the SplitMix64 finalizer applied to
/// `seed + (value + 1) * 0x9E3779B97F4A7C15` (wrapping). Distinct values give unrelated seeds, and
/// the result is never `seed` shifted by a small offset, so derived streams do not overlap the
/// `seed + i` seeds of a vector env's sub-envs by construction.
///
/// ```
/// use rl_env::rng::mix_seed;
///
/// assert_ne!(mix_seed(7, 0), mix_seed(7, 1));
/// assert_eq!(mix_seed(7, 1), mix_seed(7, 1));
/// ```
pub fn mix_seed(seed: u64, value: u64) -> u64 {
    let mut z = seed.wrapping_add(value.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// NumPy's `PCG64` bit generator (PCG XSL-RR 128/64), seeded through [`SeedSequence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

impl Pcg64 {
    /// Seeds like `np.random.PCG64(np.random.SeedSequence(seed))`.
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let w = seq.generate_state_u64(4);
        let initstate = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let initseq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        Self::from_state_seq(initstate, initseq)
    }

    /// `pcg_setseq_128_srandom_r`: the raw PCG seeding from a state and a stream selector.
    pub fn from_state_seq(initstate: u128, initseq: u128) -> Self {
        let mut rng = Self { state: 0, inc: (initseq << 1) | 1 };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    /// The raw generator state `(state, increment)`, for checkpoints.
    pub fn state(&self) -> (u128, u128) {
        (self.state, self.inc)
    }

    /// Restores a state returned by [`Pcg64::state`].
    pub fn from_raw_state(state: u128, inc: u128) -> Self {
        Self { state, inc }
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// Next 64 random bits: step, then XSL-RR of the new state (NumPy's order).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let xored = ((s >> 64) as u64) ^ (s as u64);
        xored.rotate_right((s >> 122) as u32)
    }

    /// A double in `[0, 1)` with 53 random bits, NumPy's `next_double`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

impl RngCore for Pcg64 {
    fn next_u32(&mut self) -> u32 {
        // NumPy buffers the upper half for the next call; this does not (it has no buffer), so
        // callers that need NumPy-exact 32-bit draws use `NpRandom`, which keeps NumPy's buffer.
        (Pcg64::next_u64(self) >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        Pcg64::next_u64(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = Pcg64::next_u64(self).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// An environment's own random generator, the Rust side of Gymnasium's `self.np_random`.
///
/// Every method draws exactly what its NumPy namesake draws, in the same order, so an env that
/// makes the same calls as its Python twin sees the same numbers.
///
/// ```
/// use rl_env::rng::NpRandom;
///
/// let mut rng = NpRandom::from_seed(0);
/// // NumPy 2.4.6: np.random.default_rng(0).integers(0, 1000) == 850
/// assert_eq!(rng.integers(0, 1000)?, 850);
/// assert!(rng.integers(3, 3).is_err());
/// # Ok::<(), rl_env::EnvError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpRandom {
    bits: Pcg64,
    /// The high half of the last 64-bit output split for a 32-bit draw, not yet used: NumPy's
    /// `has_uint32` / `uinteger` pair in the PCG64 state.
    buffered_u32: Option<u32>,
}

impl NpRandom {
    /// `gymnasium.utils.seeding.np_random(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        Self { bits: Pcg64::from_seed_sequence(&SeedSequence::new(seed)), buffered_u32: None }
    }

    /// A generator seeded from operating-system entropy, for `reset(None)` before any seed.
    pub fn from_entropy() -> Self {
        Self::from_seed(rand::random())
    }

    /// `Generator.uniform(low, high)` for one value: `low + (high - low) * next_double`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.bits.next_f64()
    }

    /// `Generator.uniform(low, high, size=N)`: `N` draws in order.
    pub fn uniform_array<const N: usize>(&mut self, low: f64, high: f64) -> [f64; N] {
        std::array::from_fn(|_| self.uniform(low, high))
    }

    /// `Generator.random()`: a double in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        self.bits.next_f64()
    }

    /// `Generator.integers(low, high)`: an `i64` in `low..high` (NumPy's defaults `dtype=np.int64`,
    /// `endpoint=False`), or [`EnvError::EmptyRange`] when `low >= high` (where NumPy raises
    /// `ValueError`).
    ///
    /// Like NumPy's `random_bounded_uint64_fill` (`use_masked=False`), the width of the range picks
    /// the draw: a range of one value draws nothing; one of at most `2**32` values uses 32-bit
    /// draws, each the low or else the buffered high half of a 64-bit output; a wider one uses
    /// whole 64-bit outputs. Both draw with Lemire's multiply-and-reject method
    /// (<https://arxiv.org/abs/1805.10941>).
    pub fn integers(&mut self, low: i64, high: i64) -> Result<i64> {
        if low >= high {
            return Err(EnvError::EmptyRange { low, high });
        }
        // NumPy draws from the closed range `[low, high - 1]`: `rng` is its width minus one, which
        // fits a u64 because `high - 1 - low <= 2**64 - 2`.
        let rng = (i128::from(high) - 1 - i128::from(low)) as u64;
        let offset = if rng == 0 {
            0
        } else if rng < u64::from(u32::MAX) {
            u64::from(self.bounded_u32(rng as u32))
        } else if rng == u64::from(u32::MAX) {
            // Lemire's method needs `rng + 1` to fit; a full 32-bit range is one raw draw.
            u64::from(self.next_u32())
        } else {
            // `rng < u64::MAX` always holds here (see above), which Lemire's 64-bit method needs.
            self.bounded_u64(rng)
        };
        Ok((low as u64).wrapping_add(offset) as i64)
    }

    /// The full generator state: PCG64's `(state, increment)` and the buffered high half of a
    /// 64-bit output not yet used by a 32-bit draw. [`NpRandom::from_raw_state`] restores it.
    pub fn raw_state(&self) -> (u128, u128, Option<u32>) {
        let (state, inc) = self.bits.state();
        (state, inc, self.buffered_u32)
    }

    /// The generator [`NpRandom::raw_state`] describes: it draws exactly what the saved one would.
    pub fn from_raw_state(state: u128, inc: u128, buffered_u32: Option<u32>) -> Self {
        Self { bits: Pcg64::from_raw_state(state, inc), buffered_u32 }
    }

    /// The underlying bit generator, usable with `rand` distributions.
    pub fn bits_mut(&mut self) -> &mut Pcg64 {
        &mut self.bits
    }

    /// NumPy's `pcg64_next32`: the low half of a fresh 64-bit output, keeping the high half for the
    /// next call.
    fn next_u32(&mut self) -> u32 {
        if let Some(high) = self.buffered_u32.take() {
            return high;
        }
        let x = self.bits.next_u64();
        self.buffered_u32 = Some((x >> 32) as u32);
        x as u32
    }

    /// NumPy's `buffered_bounded_lemire_uint32`: a value in `0..=rng`, for `rng < u32::MAX`.
    fn bounded_u32(&mut self, rng: u32) -> u32 {
        let rng_excl = rng + 1;
        let mut m = u64::from(self.next_u32()) * u64::from(rng_excl);
        let mut leftover = m as u32;
        if leftover < rng_excl {
            // `2**32 mod rng_excl`: the low products below it belong to an incomplete band.
            let threshold = (u32::MAX - rng) % rng_excl;
            while leftover < threshold {
                m = u64::from(self.next_u32()) * u64::from(rng_excl);
                leftover = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// NumPy's `bounded_lemire_uint64`: a value in `0..=rng`, for `rng < u64::MAX`.
    fn bounded_u64(&mut self, rng: u64) -> u64 {
        let rng_excl = rng + 1;
        let mut m = u128::from(self.bits.next_u64()) * u128::from(rng_excl);
        let mut leftover = m as u64;
        if leftover < rng_excl {
            let threshold = (u64::MAX - rng) % rng_excl;
            while leftover < threshold {
                m = u128::from(self.bits.next_u64()) * u128::from(rng_excl);
                leftover = m as u64;
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values printed by NumPy 2.4.6:
    //   ss = np.random.SeedSequence(S); ss.pool; ss.generate_state(4, np.uint64)
    //   g = np.random.Generator(np.random.PCG64(ss)); g.bit_generator.random_raw(3)
    //   np.random.Generator(np.random.PCG64(S)).uniform(-0.05, 0.05, size=4)
    // (see env/fixtures/rng_reference.py).
    include!("../fixtures/rng_reference.rs");

    // `Generator.integers` outputs printed by NumPy 2.4.6 (see env/fixtures/integers_reference.py).
    include!("../fixtures/integers_reference.rs");

    #[test]
    fn seed_sequence_pool_matches_numpy() {
        for r in RNG_REFERENCE {
            assert_eq!(SeedSequence::new(r.seed).pool(), &r.pool, "seed {}", r.seed);
        }
    }

    #[test]
    fn generate_state_matches_numpy() {
        for r in RNG_REFERENCE {
            assert_eq!(SeedSequence::new(r.seed).generate_state_u64(4), r.state.to_vec(), "seed {}", r.seed);
        }
    }

    #[test]
    fn pcg64_raw_output_matches_numpy() {
        for r in RNG_REFERENCE {
            let mut g = Pcg64::from_seed_sequence(&SeedSequence::new(r.seed));
            let raw: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
            assert_eq!(raw, r.raw.to_vec(), "seed {}", r.seed);
        }
    }

    #[test]
    fn uniform_matches_numpy_bitwise() {
        for r in RNG_REFERENCE {
            let mut g = NpRandom::from_seed(r.seed);
            let u: [f64; 4] = g.uniform_array(-0.05, 0.05);
            let bits: Vec<u64> = u.iter().map(|x| x.to_bits()).collect();
            let want: Vec<u64> = r.uniform.iter().map(|x| x.to_bits()).collect();
            assert_eq!(bits, want, "seed {}", r.seed);
        }
    }

    #[test]
    fn raw_state_round_trips() {
        let mut a = NpRandom::from_seed(7);
        a.random();
        let (s, i) = a.bits.state();
        let mut b = NpRandom { bits: Pcg64::from_raw_state(s, i), buffered_u32: None };
        assert_eq!(a.random().to_bits(), b.random().to_bits());
    }

    #[test]
    fn full_state_round_trips_with_the_buffered_half() {
        let mut a = NpRandom::from_seed(3);
        a.integers(0, 10).unwrap();
        let (s, i, buffered) = a.raw_state();
        assert!(buffered.is_some(), "a 32-bit draw leaves the high half buffered");
        let mut b = NpRandom::from_raw_state(s, i, buffered);
        assert_eq!(a, b);
        assert_eq!(a.integers(0, 10).unwrap(), b.integers(0, 10).unwrap());
        assert_eq!(a.random().to_bits(), b.random().to_bits());
    }

    #[test]
    fn integers_match_numpy() {
        for r in INTEGERS_REFERENCE {
            let mut g = NpRandom::from_seed(r.seed);
            let got: Vec<i64> = (0..r.values.len()).map(|_| g.integers(r.low, r.high).unwrap()).collect();
            assert_eq!(got, r.values.to_vec(), "seed {} integers({}, {})", r.seed, r.low, r.high);
        }
    }

    #[test]
    fn integers_share_numpys_32_bit_buffer_with_other_draws() {
        for (seed, draws) in MIXED_REFERENCE {
            let mut g = NpRandom::from_seed(*seed);
            for (i, draw) in draws.iter().enumerate() {
                match *draw {
                    Draw::Integers(low, high, want) => {
                        assert_eq!(g.integers(low, high).unwrap(), want, "seed {seed} draw {i}")
                    }
                    Draw::Random(want) => assert_eq!(g.random().to_bits(), want, "seed {seed} draw {i}"),
                    Draw::Uniform(low, high, want) => {
                        assert_eq!(g.uniform(low, high).to_bits(), want, "seed {seed} draw {i}")
                    }
                }
            }
        }
    }

    #[test]
    fn integers_reject_empty_ranges_and_draw_nothing_for_one_value() {
        let mut g = NpRandom::from_seed(5);
        let before = g.clone();
        for (low, high) in [(0, 0), (3, -3), (i64::MAX, i64::MIN)] {
            let err = g.integers(low, high).unwrap_err();
            assert!(matches!(err, EnvError::EmptyRange { .. }), "{err:?}");
            assert_eq!(err.to_string(), format!("random integers: low ({low}) must be less than high ({high})"));
        }
        assert_eq!(g.integers(i64::MAX - 1, i64::MAX).unwrap(), i64::MAX - 1);
        assert_eq!(g.integers(-4, -3).unwrap(), -4);
        assert_eq!(g, before, "no draw was made");
    }
}
