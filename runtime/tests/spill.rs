//! Object spilling: a store past its memory cap writes idle objects to disk and reads them back
//! intact, never spills what is being read, deletes files of freed objects, and removes its spill
//! directory when dropped; another node can pull an object its owner had spilled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rl_runtime::cluster::{ClusterOptions, Token};
use rl_runtime::{ObjectRef, ObjectStore, Runtime, RuntimeError, RuntimeOptions, StoreOptions, decode, encode};

const MIB: usize = 1 << 20;

/// A directory for one test, removed on drop (even when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rl-spill-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Every file under the scratch directory, at any depth.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() { walk(&e.path(), out) } else { out.push(e.path()) }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out);
        out
    }

    /// The entries directly under the scratch directory (the stores' spill directories).
    fn entries(&self) -> usize {
        std::fs::read_dir(&self.0).unwrap().count()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(cap: usize, scratch: &Scratch) -> StoreOptions {
    StoreOptions { memory_cap: cap, put_timeout: Duration::ZERO, spill_dir: Some(scratch.0.clone()) }
}

/// `len` pseudo-random bytes (xorshift64*, seeded), a multiple of 8 long.
fn data(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len / 8 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.into()
}

/// 64-bit FNV-1a over 8-byte words (the lengths here are multiples of 8), plus the length.
fn hash(b: &[u8]) -> u64 {
    let words = b.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap()));
    words.fold(0xcbf2_9ce4_8422_2325 ^ b.len() as u64, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Puts `n` objects of `len` bytes (seeds `seed0..`) and returns each ref with its hash; the
/// store keeps the only handle on each object's bytes.
fn put_all(store: &ObjectStore, seed0: u64, n: usize, len: usize) -> Vec<(ObjectRef, u64)> {
    (0..n as u64)
        .map(|i| {
            let d = data(seed0 + i, len);
            let h = hash(&d);
            (store.put(d).unwrap(), h)
        })
        .collect()
}

#[test]
fn a_64_mib_runtime_holds_256_mib_of_live_objects_and_reads_all_back_intact() {
    let scratch = Scratch::new("256");
    let rt =
        Runtime::local(RuntimeOptions { store: options(64 * MIB, &scratch), ..RuntimeOptions::default() }).unwrap();
    let mut objects = Vec::new();
    for i in 0..64u64 {
        let d = data(i, 4 * MIB);
        let h = hash(&d);
        objects.push((rt.put(d).unwrap(), h));
    }
    let s = rt.store_stats();
    assert_eq!(s.num_objects, 64, "every object is alive");
    assert!(s.used_bytes <= 64 * MIB && s.peak_bytes <= 64 * MIB, "{s:?}");
    assert_eq!(s.spilled_objects, 48, "192 MiB past the cap went to disk: {s:?}");
    assert_eq!(s.spilled_bytes, 192 * MIB);
    assert_eq!((s.total_spilled_objects, s.total_restored_objects), (48, 0));
    assert_eq!(scratch.files().len(), 48, "one file per spilled object");
    for (i, (r, h)) in objects.iter().enumerate() {
        let got = rt.get_blocking(r, None).unwrap();
        assert_eq!((got.len(), hash(&got)), (4 * MIB, *h), "object {i}");
    }
    // A scan in put order is LRU's worst case: each read spills the object that the scan reaches
    // next, so every one of the 64 comes back from disk.
    let s = rt.store_stats();
    assert_eq!((s.total_restored_objects, s.total_restored_bytes), (64, 256 * MIB as u64), "{s:?}");
    assert_eq!(s.total_spilled_objects, 48 + 64, "{s:?}");
    assert!(s.peak_bytes <= 64 * MIB && s.spilled_objects + s.used_bytes / (4 * MIB) == 64, "{s:?}");
    // Read again in reverse: still intact, whichever are on disk now.
    for (r, h) in objects.iter().rev() {
        assert_eq!(hash(&rt.get_blocking(r, None).unwrap()), *h);
    }
    drop(objects);
    let s = rt.store_stats();
    assert_eq!((s.num_objects, s.used_bytes, s.spilled_objects, s.spilled_bytes), (0, 0, 0, 0));
    assert!(scratch.files().is_empty(), "freed objects leave no files");
    assert_eq!(scratch.entries(), 1, "the runtime's spill directory");
    rt.shutdown();
    drop(rt);
    assert_eq!(scratch.entries(), 0, "the spill directory goes with the runtime");
}

#[test]
fn objects_being_read_are_never_spilled_and_a_pinned_store_is_still_full() {
    let scratch = Scratch::new("pinned");
    let store = ObjectStore::new(options(10 * MIB, &scratch));
    let objs = put_all(&store, 100, 2, 4 * MIB);
    let held = store.get_blocking(&objs[0].0, None).unwrap();
    drop(store.get_blocking(&objs[1].0, None).unwrap());
    // The least recently used object is being read, so the other one goes to disk instead.
    let more = put_all(&store, 200, 1, 4 * MIB);
    let s = store.stats();
    assert_eq!((s.spilled_objects, s.used_bytes), (1, 8 * MIB));
    let again = store.get_blocking(&objs[0].0, None).unwrap();
    assert_eq!(again.as_ptr(), held.as_ptr(), "the read object stayed in memory (zero-copy get)");
    assert_eq!(store.stats().total_restored_objects, 0);
    // Hold the other in-memory object too: nothing can spill, and a put fails as without spilling.
    let held_more = store.get_blocking(&more[0].0, None).unwrap();
    let err = store.put(data(300, 4 * MIB)).unwrap_err();
    assert_eq!(err, RuntimeError::StoreFull { requested: 4 * MIB, used: 8 * MIB, cap: 10 * MIB });
    // The spilled object can still be read, from disk, without evicting the pinned ones.
    let from_disk = store.get_blocking(&objs[1].0, None).unwrap();
    assert_eq!(hash(&from_disk), objs[1].1);
    let s = store.stats();
    assert_eq!((s.spilled_objects, s.total_restored_objects, s.used_bytes), (1, 1, 8 * MIB), "{s:?}");
    // Once the reads are dropped, reading it again re-admits it and spills the oldest unread one.
    drop((held, again, held_more, from_disk));
    assert_eq!(hash(&store.get_blocking(&objs[1].0, None).unwrap()), objs[1].1);
    let s = store.stats();
    assert_eq!((s.spilled_objects, s.total_restored_objects, s.total_spilled_objects), (1, 2, 2), "{s:?}");
    assert_eq!(store.get_blocking(&objs[1].0, None).unwrap().len(), 4 * MIB);
    assert_eq!(store.stats().total_restored_objects, 2, "it is in memory now");
}

#[test]
fn freeing_spilled_objects_deletes_their_files() {
    let scratch = Scratch::new("free");
    let store = ObjectStore::new(options(4 * MIB, &scratch));
    let mut objs = put_all(&store, 1, 8, MIB);
    assert_eq!(store.stats().spilled_objects, 4);
    let dir = store.spill_dir().unwrap();
    assert!(dir.starts_with(&scratch.0));
    let on_disk = |d: &Path| std::fs::read_dir(d).unwrap().count();
    assert_eq!(on_disk(&dir), 4);
    // An explicit free of two spilled objects, then the last ref of another dropping.
    let freed: Vec<ObjectRef> = objs.drain(..2).map(|(r, _)| r).collect();
    store.free(&freed);
    assert_eq!(store.get_blocking(&freed[0], None), Err(RuntimeError::ObjectFreed(freed[0].id())));
    assert_eq!(on_disk(&dir), 2);
    drop(objs.remove(0));
    let s = store.stats();
    assert_eq!((s.num_objects, s.spilled_objects, s.spilled_bytes, s.used_bytes), (5, 1, MIB, 4 * MIB), "{s:?}");
    assert_eq!(on_disk(&dir), 1);
    for (r, h) in &objs {
        assert_eq!(hash(&store.get_blocking(r, None).unwrap()), *h);
    }
    drop(objs);
    assert_eq!(on_disk(&dir), 0);
    assert!(dir.exists(), "the directory lives as long as the store");
    let clone = store.clone();
    drop(store);
    assert!(dir.exists(), "a clone still holds the store");
    drop(clone);
    assert!(!dir.exists(), "the spill directory goes with the store");
}

#[test]
fn spilling_off_keeps_the_old_behaviour_and_a_store_that_never_spills_makes_no_directory() {
    let scratch = Scratch::new("off");
    let off = ObjectStore::new(StoreOptions { spill_dir: None, ..options(4 * MIB, &scratch) });
    let _a = put_all(&off, 1, 4, MIB);
    assert!(matches!(off.put(data(9, MIB)), Err(RuntimeError::StoreFull { .. })));
    assert_eq!(off.spill_dir(), None);
    let on = ObjectStore::new(options(4 * MIB, &scratch));
    let _b = put_all(&on, 1, 4, MIB);
    assert_eq!(scratch.entries(), 0, "made only on the first spill");
    assert_eq!(StoreOptions::default().spill_dir, Some(std::env::temp_dir()));
}

#[tokio::test]
async fn an_async_get_restores_a_spilled_object() {
    let scratch = Scratch::new("async");
    let store = ObjectStore::new(options(2 * MIB, &scratch));
    let objs = put_all(&store, 5, 3, MIB);
    assert_eq!(store.stats().spilled_objects, 1);
    assert_eq!(hash(&store.get(&objs[0].0).await.unwrap()), objs[0].1);
    assert_eq!(store.stats().total_restored_objects, 1);
    assert_eq!(hash(&store.try_get_id(objs[1].0.id()).unwrap().unwrap()), objs[1].1);
}

#[test]
fn gets_under_concurrent_puts_frees_and_reads_return_intact_data() {
    let scratch = Scratch::new("concurrent");
    let store = ObjectStore::new(StoreOptions { put_timeout: Duration::from_secs(60), ..options(6 * MIB, &scratch) });
    let shared = Arc::new(store.clone());
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let store = shared.clone();
            std::thread::spawn(move || {
                let mut live: Vec<(ObjectRef, u64)> = Vec::new();
                for i in 0..40u64 {
                    let len = MIB / 2 + (i as usize % 4) * 64 * 1024;
                    let d = data(w * 1000 + i, len);
                    let h = hash(&d);
                    live.push((store.put(d).unwrap(), h));
                    // Read an older object of this thread (likely spilled by another thread).
                    let (r, h) = &live[(i as usize * 7) % live.len()];
                    let got = store.get_blocking(r, None).unwrap();
                    assert_eq!(hash(&got), *h, "worker {w} object {i}");
                    if i % 3 == 0 {
                        let (r, _) = live.remove(0);
                        if i % 2 == 0 { store.free(&[r]) } else { drop(r) }
                    }
                }
                for (r, h) in &live {
                    assert_eq!(hash(&store.get_blocking(r, None).unwrap()), *h, "worker {w}");
                }
                live.len()
            })
        })
        .collect();
    let kept: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let s = store.stats();
    assert!(s.total_spilled_objects > 0 && s.total_restored_objects > 0, "{s:?}");
    assert!(s.peak_bytes <= 6 * MIB, "{s:?}");
    assert_eq!(s.num_objects, 0, "every worker dropped its refs ({kept} kept until the end)");
    assert_eq!((s.used_bytes, s.spilled_objects, s.spilled_bytes), (0, 0, 0));
    assert!(scratch.files().is_empty(), "no file outlives its object");
}

#[test]
fn another_node_pulls_an_object_its_owner_had_spilled() {
    let scratch = Scratch::new("cluster");
    let token = Token::generate();
    let opts = |cpus: f64| {
        let mut o = ClusterOptions::new(token.clone());
        o.num_cpus = cpus;
        o.store = options(8 * MIB, &scratch);
        o.heartbeat_interval = Duration::from_millis(100);
        o
    };
    let head = Runtime::start_head(opts(0.0)).unwrap();
    let node = Runtime::join(&head.address(), opts(1.0)).unwrap();
    let mut objs = Vec::new();
    for i in 0..4u64 {
        let d = data(i + 40, 4 * MIB);
        let h = hash(&d);
        objs.push((head.put(d).unwrap(), h));
    }
    assert_eq!(head.store_stats().spilled_objects, 2, "{:?}", head.store_stats());
    // A plain round trip gives the node a ref by id; the head's own refs keep the objects.
    for (r, h) in &objs {
        let by_id: ObjectRef = decode(&encode(r).unwrap()).unwrap();
        let got = node.get_blocking(&by_id, Some(Duration::from_secs(30))).unwrap();
        assert_eq!((got.len(), hash(&got)), (4 * MIB, *h));
    }
    assert_eq!(node.transfer_stats().objects_pulled, 4);
    let s = head.store_stats();
    assert!(s.total_restored_objects >= 2, "the owner read its spilled objects back to serve them: {s:?}");
    node.shutdown();
    head.shutdown();
    drop(objs);
    drop((node, head));
    assert_eq!(scratch.entries(), 0, "both nodes removed their spill directories");
}
