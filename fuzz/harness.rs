//! The shared harness of the fuzz targets (each crate's `tests/fuzz.rs`, and the unit-test
//! targets of crate-private decoders, which include this file by path): a seeded proptest
//! runner whose budget comes from the environment, byte-level mutations of valid encodings, and
//! an allocator that records the largest single allocation a decoder asks for.
//!
//! Budget and reproduction, read from the environment:
//! - `RL_FUZZ_CASES`: cases per target (default 256, so `cargo test` stays quick);
//! - `RL_FUZZ_SECONDS`: a time budget per target; with it, the target runs rounds of cases until
//!   the budget or `RL_FUZZ_CASES` is spent, whichever comes first;
//! - `RL_FUZZ_SEED`: the base seed (default 0); each target derives its own stream from it and
//!   its name, so a failure reruns exactly with the same seed;
//! - `RL_FUZZ_REPORT`: a file to which each target appends `name<TAB>cases<TAB>seconds`.
//!
//! Failures are never persisted to files: the seed reproduces them.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// Cases per round when a time budget is set.
const ROUND: u32 = 1000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The 32-byte ChaCha seed of round `round` of target `name`.
fn seed(name: &str, round: u64) -> [u8; 32] {
    let base = env_u64("RL_FUZZ_SEED").unwrap_or(0);
    // FNV-1a over the name, then the base seed and round spread over the rest.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&h.to_le_bytes());
    out[8..16].copy_from_slice(&base.to_le_bytes());
    out[16..24].copy_from_slice(&round.to_le_bytes());
    out[24..].copy_from_slice(b"rl-fuzz!");
    out
}

/// Runs target `name`: `test` on inputs drawn from `strategy` until the budget is spent. A
/// failing input is shrunk and the test panics with it and the seed that found it.
pub fn run<S>(name: &str, strategy: S, test: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let max_cases = env_u64("RL_FUZZ_CASES").unwrap_or(256).max(1);
    let budget = env_u64("RL_FUZZ_SECONDS").map(Duration::from_secs);
    let start = Instant::now();
    let (mut done, mut round) = (0u64, 0u64);
    while done < max_cases {
        let cases = match budget {
            Some(_) => (max_cases - done).min(u64::from(ROUND)) as u32,
            None => u32::try_from(max_cases).unwrap_or(u32::MAX),
        };
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 2048,
            rng_algorithm: RngAlgorithm::ChaCha,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed(name, round)));
        match runner.run(&strategy, |value| {
            test(value);
            Ok(())
        }) {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => panic!(
                "fuzz target {name} failed (RL_FUZZ_SEED={}, round {round}): {why}\nminimal input: {input:?}",
                env_u64("RL_FUZZ_SEED").unwrap_or(0)
            ),
            Err(e) => panic!("fuzz target {name}: {e}"),
        }
        done += u64::from(cases);
        round += 1;
        if budget.is_none_or(|b| start.elapsed() >= b) {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("fuzz {name}: {done} cases in {secs:.1} s");
    if let Ok(path) = std::env::var("RL_FUZZ_REPORT")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = f.write_all(format!("{name}\t{done}\t{secs:.1}\n").as_bytes());
    }
}

/// Arbitrary bytes, up to `max` long.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Numbers a decoder is most likely to mishandle: zero, one, powers of two and their
/// neighbours around every integer width, and the extremes.
pub fn odd_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u8::MAX)),
        Just(u64::from(u16::MAX)),
        Just(u64::from(u32::MAX)),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 60),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        Just(u64::MAX - 7),
        any::<u64>(),
    ]
}

/// One edit of an encoding.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Inserts a short pattern many times over (deep nesting in a tagged or length-prefixed
    /// encoding).
    Repeat(Index, Vec<u8>, usize),
    /// Flips bit `1` of the byte at the index.
    Flip(Index, u8),
    /// Overwrites one byte.
    Set(Index, u8),
    /// Inserts bytes.
    Insert(Index, Vec<u8>),
    /// Deletes up to that many bytes.
    Delete(Index, usize),
    /// Cuts the encoding at the index.
    Truncate(Index),
    /// Overwrites 8 bytes with a little-endian word (a length, a count, an offset).
    Word(Index, u64),
    /// Inserts a LEB128 varint (protobuf's and postcard's lengths and integers).
    Varint(Index, u64),
    /// Copies a run of the encoding to another place (a repeated field, a duplicate key).
    Duplicate(Index, Index, usize),
}

/// What [`Mutation::Repeat`] repeats: random bytes, or the start of a one-element list or map
/// in postcard's encoding of the runtime's tagged value trees (variant 6 or 7, length 1, a
/// one-byte key), which nests a value one level deeper each time.
fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 1..4), Just(vec![6u8, 1]), Just(vec![7u8, 1, 1, b'k']),]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), pattern(), 1usize..100_000)
            .prop_map(|(i, p, n)| Mutation::Repeat(i, p, n)),
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (any::<Index>(), bytes(16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        4 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        4 => any::<Index>().prop_map(Mutation::Truncate),
        4 => (any::<Index>(), odd_u64()).prop_map(|(i, w)| Mutation::Word(i, w)),
        4 => (any::<Index>(), odd_u64()).prop_map(|(i, w)| Mutation::Varint(i, w)),
        4 => (any::<Index>(), any::<Index>(), 1usize..32).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
    ]
}

/// `value` as a LEB128 varint.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `bytes` with `edits` applied in order.
pub fn apply(bytes: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for m in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, bit) if !b.is_empty() => {
                let k = at(i, b.len());
                b[k] ^= 1 << bit;
            }
            Mutation::Set(i, v) if !b.is_empty() => {
                let k = at(i, b.len());
                b[k] = *v;
            }
            Mutation::Insert(i, v) => {
                let k = at(i, b.len() + 1);
                b.splice(k..k, v.iter().copied());
            }
            Mutation::Delete(i, n) if !b.is_empty() => {
                let k = at(i, b.len());
                let end = (k + n).min(b.len());
                b.drain(k..end);
            }
            Mutation::Truncate(i) => {
                let k = at(i, b.len() + 1);
                b.truncate(k);
            }
            Mutation::Word(i, w) if !b.is_empty() => {
                let k = at(i, b.len());
                for (j, x) in w.to_le_bytes().into_iter().enumerate() {
                    if let Some(slot) = b.get_mut(k + j) {
                        *slot = x;
                    }
                }
            }
            Mutation::Repeat(i, pattern, n) => {
                let k = at(i, b.len() + 1);
                b.splice(k..k, pattern.iter().copied().cycle().take(pattern.len() * n));
            }
            Mutation::Varint(i, w) => {
                let k = at(i, b.len() + 1);
                b.splice(k..k, varint(*w));
            }
            Mutation::Duplicate(from, to, n) if !b.is_empty() => {
                let k = at(from, b.len());
                let run: Vec<u8> = b[k..(k + n).min(b.len())].to_vec();
                let t = at(to, b.len() + 1);
                b.splice(t..t, run);
            }
            _ => {}
        }
    }
    b
}

/// Valid encodings with one to four byte-level edits each; `valid` must not be empty.
pub fn mutated(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len();
    (0..n, proptest::collection::vec(mutation(), 1..5)).prop_map(move |(k, edits)| apply(&valid[k], &edits))
}

/// Arbitrary bytes or mutations of `valid`, half and half.
pub fn hostile(valid: Vec<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(max), mutated(valid)]
}

/// A single allocation above this fails (and aborts the process), so a decoder that trusts a
/// claimed length cannot take the machine's memory even where the kernel would lend it.
pub const HARD_ALLOCATION_CAP: usize = 4 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size);
        }
    });
}

/// The system allocator, recording each thread's largest single request and refusing those
/// above [`HARD_ALLOCATION_CAP`]. A fuzz binary installs it with
/// `#[global_allocator] static ALLOC: fuzz_support::WatchedAlloc = fuzz_support::WatchedAlloc;`.
pub struct WatchedAlloc;

// SAFETY: every call forwards to `System` unchanged, except that requests above the cap return
// null, which `GlobalAlloc` allows (the caller then reports an allocation failure).
unsafe impl GlobalAlloc for WatchedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > HARD_ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made on this thread
/// (0 where [`WatchedAlloc`] is not the global allocator).
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// Asserts that decoding `input_len` bytes allocated at most a small multiple of them at once
/// (plus a fixed 16 MiB of slack): a decoder must not trust a claimed length.
pub fn assert_bounded(what: &str, input_len: usize, largest: usize) {
    let limit = (16 << 20) + 64 * input_len;
    assert!(largest <= limit, "{what}: one allocation of {largest} bytes for {input_len} bytes of input");
}
