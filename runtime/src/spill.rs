//! Object spilling: the store's spill directory, its file format, the last-use order of the
//! objects in memory, and the `Shared` methods that spill objects to disk and restore them.
//!
//! The rules callers see are in the [`crate::object_store`] docs (*Spilling*). How they hold:
//!
//! - **Who spills.** `Shared::make_room` calls `Shared::spill` whenever the new bytes do not fit.
//!   It picks objects from the least recently used on, taking only `Slot::Ready` ones whose
//!   `Bytes` is unique, marks them `Slot::Spilling` (still in memory, readable, counted) and
//!   writes their files *without* the lock. Then, under the lock again, each one becomes
//!   `Slot::Spilled(len)` and leaves `used` only if it is still `Spilling` and its `Bytes` is
//!   still unique; an object read in the meantime goes back to `Ready` (its file is deleted), one
//!   freed in the meantime only loses its file. So no reader ever holds bytes the store counts as
//!   gone, and no object is lost.
//! - **Concurrent puts.** Bytes being written count as `in_flight`; a put whose shortfall they
//!   already cover waits for those writes (a write always ends) instead of spilling more.
//! - **Restores.** `Shared::restore` reads the file without the lock, then re-admits the object
//!   under the lock if it is still `Spilled` and room can be made without waiting (which may
//!   spill others). A concurrent free deletes the file in the same step as the slot, so a
//!   restore that finds the slot gone reports `ObjectFreed` whatever its read saw.
//! - **Files.** `DIR/ID.obj`, written as `DIR/ID.obj.tmp` and renamed into place: a 24-byte
//!   header (the magic `RLSPILL1`, the object id and the length, little-endian) and the bytes.
//!   Nothing is synced to the device: spill files never outlive the process that wrote them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Result, RuntimeError};
use crate::object_store::{Shared, Slot, State, StoreStats};

/// The first bytes of every spill file.
const MAGIC: [u8; 8] = *b"RLSPILL1";

/// Magic, object id, object length.
const HEADER_BYTES: usize = 24;

/// Tells apart the spill directories of the stores of one process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A store's own spill directory: made on the first spill, removed with its files on drop.
pub(crate) struct SpillDir {
    path: PathBuf,
}

impl SpillDir {
    /// A fresh directory under `parent` for a store of node `node`: `rl-spill-PID-nodeN-SEQ`.
    pub(crate) fn under(parent: &Path, node: u32) -> Self {
        let seq = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        Self { path: parent.join(format!("rl-spill-{}-node{node}-{seq}", std::process::id())) }
    }

    fn file(&self, id: u64) -> PathBuf {
        file_path(&self.path, id)
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove the spill directory");
            }
            _ => {}
        }
    }
}

/// The spill part of the store's state: the directory, the in-memory objects by last use, the
/// writes under way and the counters.
#[derive(Default)]
pub(crate) struct Spill {
    dir: Option<SpillDir>,
    /// Ready objects by last use, oldest first: use tick -> object id.
    by_use: BTreeMap<u64, u64>,
    /// Object id -> its key in `by_use`.
    last_use: HashMap<u64, u64>,
    next_tick: u64,
    /// Bytes of objects whose files are being written (still in memory).
    in_flight: usize,
    /// The spill fields of `StoreStats`.
    counts: StoreStats,
}

impl Spill {
    /// Spilling to `dir`, or off for `None`.
    pub(crate) fn new(dir: Option<SpillDir>) -> Self {
        Self { dir, ..Self::default() }
    }

    /// The spill directory, if spilling is on.
    pub(crate) fn dir_path(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path.as_path())
    }

    /// Marks object `id` used now (a put, a completion, a read).
    pub(crate) fn touch(&mut self, id: u64) {
        if let Some(old) = self.last_use.insert(id, self.next_tick) {
            self.by_use.remove(&old);
        }
        self.by_use.insert(self.next_tick, id);
        self.next_tick += 1;
    }

    /// Drops object `id` from the last-use order (it left memory).
    pub(crate) fn forget(&mut self, id: u64) {
        if let Some(tick) = self.last_use.remove(&id) {
            self.by_use.remove(&tick);
        }
    }

    /// Deletes the file of spilled object `id` (`len` bytes), which is being freed.
    pub(crate) fn delete_file(&mut self, id: u64, len: usize) {
        self.counts.spilled_objects -= 1;
        self.counts.spilled_bytes -= len;
        if let Some(dir) = &self.dir {
            remove_quietly(&dir.file(id));
        }
    }

    /// The spill fields of `StoreStats` (the others are zero).
    pub(crate) fn stats(&self) -> StoreStats {
        self.counts
    }
}

impl Shared {
    /// Spills least-recently-used objects nobody reads until `need` more bytes are free in
    /// memory, or waits for spills under way that will free them. Returns the guard and whether
    /// anything changed (look again before waiting); `false` means nothing can be spilled.
    /// Fails only when every file it tried to write failed.
    pub(crate) fn spill<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        need: usize,
    ) -> Result<(MutexGuard<'a, State>, bool)> {
        let Some(dir) = st.spill.dir_path().map(Path::to_path_buf) else { return Ok((st, false)) };
        let in_flight = st.spill.in_flight;
        let victims = if need > in_flight { pick_victims(&mut st, need - in_flight) } else { Vec::new() };
        if victims.is_empty() {
            if in_flight == 0 {
                return Ok((st, false));
            }
            // Another put's writes will free the bytes: wait for them (they always end).
            return Ok((self.changed.wait(st).unwrap_or_else(|e| e.into_inner()), true));
        }
        drop(st);
        let written: Vec<(u64, usize, Result<()>)> =
            victims.into_iter().map(|(id, data)| (id, data.len(), write_file(&dir, id, &data))).collect();
        let mut st = self.lock();
        let (mut spilled, mut first_err) = (false, None);
        for (id, len, res) in written {
            match finish_spill(&mut st, &dir, id, len, res) {
                Ok(done) => spilled |= done,
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        self.wake();
        match first_err {
            Some(e) if !spilled => Err(e),
            _ => Ok((st, true)),
        }
    }

    /// [`Shared::restore`] on tokio's blocking pool when called inside a tokio runtime.
    pub(crate) async fn restore_async(self: Arc<Self>, id: u64, len: usize) -> Result<Bytes> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.restore(id, len);
        }
        match tokio::task::spawn_blocking(move || self.restore(id, len)).await {
            Ok(res) => res,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(RuntimeError::Shutdown),
        }
    }

    /// Reads spilled object `id` (`len` bytes) back from disk and re-admits it to memory if room
    /// can be made without waiting; returns its bytes either way. Call without the lock.
    pub(crate) fn restore(&self, id: u64, len: usize) -> Result<Bytes> {
        let (mut st, data) = loop {
            let (path, spills_before) = {
                let st = self.lock();
                let Some(dir) = &st.spill.dir else { return Err(RuntimeError::ObjectFreed(id)) };
                (dir.file(id), st.spill.counts.total_spilled_objects)
            };
            let read = read_file(&path, id, len);
            let st = self.lock();
            match st.objects.get(&id) {
                Some(Slot::Spilled(_)) => {}
                Some(Slot::Ready(b) | Slot::Spilling(b)) => return Ok(b.clone()),
                _ => return Err(RuntimeError::ObjectFreed(id)),
            }
            match read {
                Ok(data) => break (st, data),
                // Restored by another reader and spilled again while this one opened the file:
                // read the new file.
                Err(_) if st.spill.counts.total_spilled_objects != spills_before => continue,
                Err(e) => return Err(e),
            }
        };
        st.spill.counts.total_restored_objects += 1;
        st.spill.counts.total_restored_bytes += len as u64;
        let not_spilled = |st: &State| !matches!(st.objects.get(&id), Some(Slot::Spilled(_)));
        let Ok(mut st) = self.make_room(st, len, Duration::ZERO, not_spilled) else {
            // No room now: serve the bytes from disk and leave the object there.
            return Ok(data);
        };
        match st.objects.get(&id) {
            Some(Slot::Spilled(_)) => {}
            Some(Slot::Ready(b) | Slot::Spilling(b)) => return Ok(b.clone()),
            _ => return Err(RuntimeError::ObjectFreed(id)),
        }
        st.objects.insert(id, Slot::Ready(data.clone()));
        st.used += len;
        st.peak = st.peak.max(st.used);
        st.spill.delete_file(id, len);
        st.spill.touch(id);
        drop(st);
        self.wake();
        Ok(data)
    }
}

/// Ends the spill of object `id` (`len` bytes) whose file write gave `written`: the object
/// leaves memory if it is still being spilled and nobody took its bytes meanwhile. Returns whether
/// it did; a failed write is returned (the object stays in memory).
fn finish_spill(st: &mut State, dir: &Path, id: u64, len: usize, written: Result<()>) -> Result<bool> {
    st.spill.in_flight -= len;
    let unread = match st.objects.get(&id) {
        Some(Slot::Spilling(b)) => b.is_unique(),
        _ => {
            // Freed while its file was written.
            if written.is_ok() {
                remove_quietly(&file_path(dir, id));
            }
            return Ok(false);
        }
    };
    if written.is_ok() && unread {
        st.objects.insert(id, Slot::Spilled(len));
        st.used -= len;
        let c = &mut st.spill.counts;
        c.spilled_objects += 1;
        c.spilled_bytes += len;
        c.total_spilled_objects += 1;
        c.total_spilled_bytes += len as u64;
        return Ok(true);
    }
    // Read while its file was written, or the write failed: it stays in memory.
    if let Some(Slot::Spilling(b)) = st.objects.remove(&id) {
        st.objects.insert(id, Slot::Ready(b));
    }
    st.spill.touch(id);
    written?;
    remove_quietly(&file_path(dir, id));
    Ok(false)
}

/// Marks the least recently used unshared objects as being spilled until their bytes reach
/// `want` (or none is left), and returns them with a handle each for writing.
fn pick_victims(st: &mut State, want: usize) -> Vec<(u64, Bytes)> {
    let mut picked = Vec::new();
    let mut total = 0;
    for id in st.spill.by_use.values() {
        if total >= want {
            break;
        }
        if let Some(Slot::Ready(b)) = st.objects.get(id)
            && !b.is_empty()
            && b.is_unique()
        {
            total += b.len();
            picked.push((*id, b.clone()));
        }
    }
    for (id, b) in &picked {
        st.objects.insert(*id, Slot::Spilling(b.clone()));
        st.spill.forget(*id);
    }
    st.spill.in_flight += total;
    picked
}

fn file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.obj"))
}

fn file_error(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::SpillFile { path: path.display().to_string(), message: message.into() }
}

fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a spill file");
        }
        _ => {}
    }
}

/// Writes object `id` to `DIR/ID.obj` through a temporary file (making `dir` if needed).
fn write_file(dir: &Path, id: u64, data: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, format!("cannot create the spill directory: {e}")))?;
    let path = file_path(dir, id);
    let tmp = path.with_extension("obj.tmp");
    let mut header = [0u8; HEADER_BYTES];
    header[..8].copy_from_slice(&MAGIC);
    header[8..16].copy_from_slice(&id.to_le_bytes());
    header[16..].copy_from_slice(&(data.len() as u64).to_le_bytes());
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&header)?;
        f.write_all(data)
    });
    if let Err(e) = written {
        remove_quietly(&tmp);
        return Err(file_error(&tmp, format!("cannot write: {e}")));
    }
    std::fs::rename(&tmp, &path).map_err(|e| {
        remove_quietly(&tmp);
        file_error(&path, format!("cannot rename {} into place: {e}", tmp.display()))
    })
}

/// Reads object `id` of `len` bytes from `path`, checking the header and the length.
fn read_file(path: &Path, id: u64, len: usize) -> Result<Bytes> {
    let mut f = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let size = f.metadata().map_err(|e| file_error(path, format!("cannot stat: {e}")))?.len();
    let expected = (HEADER_BYTES + len) as u64;
    if size != expected {
        let what = if size < expected { "truncated" } else { "too long" };
        return Err(file_error(
            path,
            format!("{what}: {size} bytes, expected {expected} for object {id} of {len} bytes"),
        ));
    }
    let mut header = [0u8; HEADER_BYTES];
    f.read_exact(&mut header).map_err(|e| file_error(path, format!("cannot read the header: {e}")))?;
    let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
    if header[..8] != MAGIC {
        return Err(file_error(path, "not a spill file (bad magic)"));
    }
    if word(8) != id || word(16) != len as u64 {
        return Err(file_error(
            path,
            format!("holds object {} of {} bytes, expected object {id} of {len} bytes", word(8), word(16)),
        ));
    }
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if buf.len() != len {
        return Err(file_error(path, format!("truncated while reading: {} of {len} bytes", buf.len())));
    }
    Ok(buf.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed on drop.
    fn scratch() -> SpillDir {
        let dir = SpillDir::under(&std::env::temp_dir(), 9999);
        std::fs::create_dir_all(&dir.path).unwrap();
        dir
    }

    #[test]
    fn a_file_round_trips_and_leaves_no_temporary_behind() {
        let dir = scratch();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        write_file(&dir.path, 42, &data).unwrap();
        let names: Vec<String> =
            std::fs::read_dir(&dir.path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, vec!["42.obj".to_string()]);
        assert_eq!(std::fs::metadata(dir.file(42)).unwrap().len(), (HEADER_BYTES + data.len()) as u64);
        assert_eq!(read_file(&dir.file(42), 42, data.len()).unwrap(), Bytes::from(data));
        write_file(&dir.path, 43, &[]).unwrap();
        assert!(read_file(&dir.file(43), 43, 0).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_file_is_a_clear_error_naming_it() {
        let dir = scratch();
        write_file(&dir.path, 7, &[1u8; 1000]).unwrap();
        let path = dir.file(7);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(500).unwrap();
        let err = read_file(&path, 7, 1000).unwrap_err();
        let RuntimeError::SpillFile { path: p, message } = &err else { panic!("{err:?}") };
        assert_eq!(p, &path.display().to_string());
        assert!(message.starts_with("truncated: 500 bytes, expected 1024"), "{message}");
        assert!(err.to_string().contains("7.obj"), "{err}");
    }

    #[test]
    fn a_file_of_another_object_or_not_a_spill_file_is_refused() {
        let dir = scratch();
        write_file(&dir.path, 1, &[5u8; 64]).unwrap();
        std::fs::rename(dir.file(1), dir.file(2)).unwrap();
        let err = read_file(&dir.file(2), 2, 64).unwrap_err();
        assert!(err.to_string().contains("holds object 1 of 64 bytes, expected object 2"), "{err}");
        std::fs::write(dir.file(3), [0u8; HEADER_BYTES + 8]).unwrap();
        let err = read_file(&dir.file(3), 3, 8).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let err = read_file(&dir.file(4), 4, 8).unwrap_err();
        assert!(err.to_string().contains("4.obj: cannot open"), "{err}");
    }

    #[test]
    fn a_write_into_an_unusable_directory_names_it() {
        let dir = scratch();
        // A regular file where the directory should be.
        let blocker = dir.path.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_file(&blocker, 1, b"data").unwrap_err();
        assert!(err.to_string().contains("not-a-dir: cannot create the spill directory"), "{err}");
    }

    #[test]
    fn an_object_read_freed_or_failed_while_its_file_is_written_is_not_lost() {
        use crate::object_store::{ObjectStore, StoreOptions};
        let parent = scratch();
        let options =
            StoreOptions { memory_cap: 1 << 20, put_timeout: Duration::ZERO, spill_dir: Some(parent.path.clone()) };
        let store = ObjectStore::new(options);
        let a = store.put(Bytes::from(vec![1u8; 1000])).unwrap();
        let b = store.put(Bytes::from(vec![2u8; 1000])).unwrap();
        let shared = store.shared();
        let dir = store.spill_dir().unwrap();
        let write = |victims: Vec<(u64, Bytes)>, dir: &Path| -> Vec<(u64, usize, Result<()>)> {
            victims.into_iter().map(|(id, d)| (id, d.len(), write_file(dir, id, &d))).collect()
        };
        // Both start spilling, as `Shared::spill` does before it drops the lock; then a reader
        // takes `a`'s bytes and `b` is freed while the files are written.
        let victims = pick_victims(&mut shared.lock(), 2000);
        assert_eq!(victims.iter().map(|v| v.0).collect::<Vec<_>>(), vec![a.id(), b.id()]);
        let reading = store.try_get(&a).unwrap().unwrap();
        store.free(std::slice::from_ref(&b));
        for (id, len, res) in write(victims, &dir) {
            assert_eq!(finish_spill(&mut shared.lock(), &dir, id, len, res), Ok(false));
        }
        {
            let st = shared.lock();
            assert!(matches!(st.objects.get(&a.id()), Some(Slot::Ready(_))));
            assert_eq!((st.used, st.spill.in_flight, st.spill.counts.spilled_objects), (1000, 0, 0));
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file is left behind");
        assert_eq!(store.try_get(&a).unwrap().unwrap().as_ptr(), reading.as_ptr(), "still the same bytes");
        // A failed write leaves the object in memory and names the file.
        drop(reading);
        let blocker = parent.path.join("blocker");
        std::fs::write(&blocker, b"x").unwrap();
        let victims = pick_victims(&mut shared.lock(), 1000);
        for (id, len, res) in write(victims, &blocker) {
            let err = finish_spill(&mut shared.lock(), &blocker, id, len, res).unwrap_err();
            assert!(err.to_string().contains("blocker: cannot create the spill directory"), "{err}");
        }
        assert!(matches!(shared.lock().objects.get(&a.id()), Some(Slot::Ready(_))));
        // Unread, it spills.
        let victims = pick_victims(&mut shared.lock(), 1000);
        for (id, len, res) in write(victims, &dir) {
            assert_eq!(finish_spill(&mut shared.lock(), &dir, id, len, res), Ok(true));
        }
        let stats = store.stats();
        assert_eq!((stats.used_bytes, stats.spilled_objects, stats.spilled_bytes), (0, 1, 1000));
        assert_eq!(store.try_get(&a).unwrap().unwrap(), Bytes::from(vec![1u8; 1000]));
        assert_eq!(store.stats().total_restored_objects, 1);
    }

    #[test]
    fn the_directory_is_removed_on_drop_and_last_use_orders_victims() {
        let dir = scratch();
        let path = dir.path.clone();
        write_file(&path, 1, b"abc").unwrap();
        drop(dir);
        assert!(!path.exists());
        let mut s = Spill::new(None);
        for id in [1, 2, 3] {
            s.touch(id);
        }
        s.touch(1);
        s.forget(2);
        assert_eq!(s.by_use.values().copied().collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(s.last_use.len(), 2);
    }
}
