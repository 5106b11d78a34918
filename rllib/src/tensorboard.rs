//! TensorBoard event files: scalar summaries as protobuf `Event`s in TFRecord framing.
//!
//! This module owns the on-disk format TensorBoard reads, with no TensorFlow dependency:
//!
//! - [`Event`], [`Summary`] and [`summary::Value`] are hand-derived `prost` messages with the
//!   field numbers of TensorFlow's `event.proto` and `summary.proto`, reduced to what scalars
//!   need. `simple_value` is modelled inside a oneof, as in the original schema, so that a
//!   value of `0.0` is still encoded (a plain proto3 `float` field drops zeros, and the point
//!   would vanish from the plot).
//! - Every event is one TFRecord:
//!   `u64 length (LE) | u32 masked_crc32c(length bytes) (LE) | data | u32 masked_crc32c(data) (LE)`,
//!   with CRC-32C (Castagnoli) from the `crc32c` crate (hardware-accelerated where available).
//! - [`EventWriter`] creates `events.out.tfevents.{unix_secs}.{hostname}` in a run directory,
//!   starting with the `file_version: "brain.Event:2"` event TensorBoard expects.
//! - [`read_events`] parses a file back, verifying both CRCs of every record; the tests use it,
//!   and `experiments/check_tensorboard.py` checks the same files with the real `tensorboard`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// The `file_version` of the first event of every file, as TensorFlow writes it.
pub const FILE_VERSION: &str = "brain.Event:2";

/// One record of an event file (`tensorflow.Event`, reduced to scalars).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step the event belongs to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries: the file version header or a summary.
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
}

/// Nested types of [`Event`].
pub mod event {
    /// The `what` oneof of [`Event`](super::Event).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// File format version; only in the first event of a file.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// A summary: one or more tagged values at the event's step.
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// A set of tagged values (`tensorflow.Summary`, reduced to scalars).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values, one per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

/// Nested types of [`Summary`].
pub mod summary {
    /// One tagged value (`tensorflow.Summary.Value`, reduced to scalars).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        /// The series name, e.g. `env_runners/episode_return_mean`.
        #[prost(string, tag = "1")]
        pub tag: String,
        /// The value; a oneof so that `0.0` is still written.
        #[prost(oneof = "value::Value", tags = "2")]
        pub value: Option<value::Value>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// The `value` oneof of [`Value`](super::Value).
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A scalar point.
            #[prost(float, tag = "2")]
            SimpleValue(f32),
        }
    }
}

impl Event {
    /// The `(tag, simple_value)` pairs of this event's summary, in order; empty for other events.
    pub fn scalars(&self) -> Vec<(&str, f32)> {
        match &self.what {
            Some(event::What::Summary(summary)) => summary
                .value
                .iter()
                .filter_map(|v| v.value.as_ref().map(|summary::value::Value::SimpleValue(x)| (v.tag.as_str(), *x)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The masked CRC-32C TFRecord stores: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping).
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `data` to `out`.
fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// Seconds since the Unix epoch, as a float (0 if the clock is before 1970).
fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's host name for the file name, or `localhost` if it has none usable.
fn hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    // Keep the name a single, portable path component.
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}

/// Writes scalar summaries to a TensorBoard event file.
///
/// Events are buffered; call [`flush`](Self::flush) to make them visible to a running
/// TensorBoard. The writer also flushes when dropped (ignoring errors there).
/// Non-finite values (NaN, ±inf) are skipped, not written: TensorBoard cannot plot them and
/// they would distort the axis range.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file
    /// `events.out.tfevents.{unix_secs}.{hostname}` in it, starting with the
    /// `file_version: "brain.Event:2"` event.
    ///
    /// An existing file is never overwritten: if the name is taken (two writers in the same
    /// second), `.1`, `.2`, ... is appended; TensorBoard reads any file whose name contains
    /// `tfevents`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let wall_time = now_secs();
        let base = format!("events.out.tfevents.{}.{}", wall_time as u64, hostname());
        let mut suffix = 0u32;
        let (file, path) = loop {
            let name = if suffix == 0 { base.clone() } else { format!("{base}.{suffix}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => suffix += 1,
                Err(e) => return Err(e),
            }
        };
        let mut writer = Self { out: BufWriter::new(file), path };
        writer.write_event(&Event {
            wall_time,
            step: 0,
            what: Some(event::What::FileVersion(FILE_VERSION.to_owned())),
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The path of the event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar point `tag = value` at `step`, stamped with the current time.
    /// A non-finite `value` is skipped and nothing is written.
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> io::Result<()> {
        self.add_scalars(&[(tag, value)], step)
    }

    /// Writes one event at `step`, stamped with the current time, holding every finite
    /// `(tag, value)` of `scalars`. Non-finite values are skipped; if none is left, nothing
    /// is written.
    pub fn add_scalars(&mut self, scalars: &[(&str, f32)], step: i64) -> io::Result<()> {
        let value: Vec<summary::Value> = scalars
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|&(tag, v)| summary::Value { tag: tag.to_owned(), value: Some(summary::value::Value::SimpleValue(v)) })
            .collect();
        if value.is_empty() {
            return Ok(());
        }
        self.write_event(&Event { wall_time: now_secs(), step, what: Some(event::What::Summary(Summary { value })) })
    }

    /// Writes an arbitrary event as one record (buffered).
    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        write_record(&mut self.out, &event.encode_to_vec())
    }

    /// Flushes buffered events to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// Reads every event of a TFRecord event file, verifying the length and data CRCs of each
/// record.
///
/// Fails with [`io::ErrorKind::InvalidData`] naming the record index on a CRC mismatch, a
/// truncated record (including a partly written last one) or an undecodable event.
pub fn read_events(path: &Path) -> io::Result<Vec<Event>> {
    parse_events(&std::fs::read(path)?, path, false)
}

/// Keeps only the events at `step <= max_step` (and the file-version event) in every event file
/// of `dir`, each rewritten atomically: what a resumed run does with the events its killed
/// predecessor wrote after the checkpoint it resumes from. A torn last record (the process was
/// killed while writing it) is dropped.
pub fn retain_events(dir: &Path, max_step: i64) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_events = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("tfevents"));
        if !is_events || !path.is_file() {
            continue;
        }
        let events = parse_events(&std::fs::read(&path)?, &path, true)?;
        let tmp = path.with_extension("retain.tmp");
        {
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            for e in events.iter().filter(|e| e.step <= max_step || matches!(e.what, Some(event::What::FileVersion(_))))
            {
                write_record(&mut out, &e.encode_to_vec())?;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// The events of TFRecord `bytes`; with `torn_tail_ok`, a truncated last record ends the list
/// instead of failing.
fn parse_events(bytes: &[u8], path: &Path, torn_tail_ok: bool) -> io::Result<Vec<Event>> {
    let bad = |index: usize, what: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: record {index}: {what}", path.display()))
    };
    let mut events = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let index = events.len();
        let torn = rest.len() < 12
            || usize::try_from(u64::from_le_bytes(rest[..8].try_into().unwrap())).is_ok_and(|n| n + 16 > rest.len());
        if torn && torn_tail_ok {
            break;
        }
        if rest.len() < 12 {
            return Err(bad(index, format!("truncated header ({} bytes)", rest.len())));
        }
        let (len_bytes, tail) = rest.split_at(8);
        let (len_crc, tail) = tail.split_at(4);
        if masked_crc32c(len_bytes) != u32::from_le_bytes(len_crc.try_into().unwrap()) {
            return Err(bad(index, "length CRC mismatch".to_owned()));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap());
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= tail.len().saturating_sub(4))
            .ok_or_else(|| bad(index, format!("truncated data (length {len})")))?;
        let (data, tail) = tail.split_at(len);
        let (data_crc, tail) = tail.split_at(4);
        if masked_crc32c(data) != u32::from_le_bytes(data_crc.try_into().unwrap()) {
            return Err(bad(index, "data CRC mismatch".to_owned()));
        }
        let event = Event::decode(data).map_err(|e| bad(index, format!("bad event: {e}")))?;
        events.push(event);
        rest = tail;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory under the system temp dir, removed by the caller.
    fn temp_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("rllib-tensorboard-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(b""), 0);
    }

    #[test]
    fn masked_crc_matches_formula_and_tensorboard() {
        let crc = crc32c::crc32c(b"123456789");
        #[allow(clippy::manual_rotate)] // the formula as TFRecord states it
        let expected = ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), expected);
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        // Computed independently with the `tensorboard` package:
        // `tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(b"brain.Event:2"), 0x7c06_01ee);
    }

    #[test]
    fn round_trip_scalars() {
        let dir = temp_dir("roundtrip");
        let path = {
            let mut w = EventWriter::create(&dir).unwrap();
            w.add_scalar("loss", 0.0, 0).unwrap();
            w.add_scalar("loss", -1.5, 1).unwrap();
            w.add_scalars(&[("a", 0.0), ("b", -0.25), ("c", 3.0e6)], 2).unwrap();
            w.add_scalars(&[("a", f32::NAN), ("b", f32::INFINITY)], 3).unwrap(); // all skipped
            w.add_scalars(&[("a", f32::NEG_INFINITY), ("b", 7.0)], -4).unwrap();
            w.path().to_owned()
        }; // dropped: flushed
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents."), "{name}");

        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].what, Some(event::What::FileVersion(FILE_VERSION.to_owned())));
        assert!(events[0].scalars().is_empty());
        let got: Vec<(i64, Vec<(&str, f32)>)> = events[1..].iter().map(|e| (e.step, e.scalars())).collect();
        assert_eq!(
            got,
            vec![
                (0, vec![("loss", 0.0)]),
                (1, vec![("loss", -1.5)]),
                (2, vec![("a", 0.0), ("b", -0.25), ("c", 3.0e6)]),
                (-4, vec![("b", 7.0)]),
            ]
        );
        for e in &events {
            assert!(e.wall_time > 1.0e9, "wall_time {}", e.wall_time);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zero_is_encoded() {
        let value = summary::Value { tag: "z".to_owned(), value: Some(summary::value::Value::SimpleValue(0.0)) };
        // tag (1: "z") then simple_value (field 2, fixed32) = 0.0, present despite being zero.
        assert_eq!(value.encode_to_vec(), [0x0a, 0x01, b'z', 0x15, 0, 0, 0, 0]);
    }

    #[test]
    fn two_writers_in_one_second_do_not_clobber() {
        let dir = temp_dir("twice");
        let a = EventWriter::create(&dir).unwrap();
        let b = EventWriter::create(&dir).unwrap();
        assert_ne!(a.path(), b.path());
        drop((a, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corruption_is_detected() {
        let dir = temp_dir("corrupt");
        let path = {
            let mut w = EventWriter::create(&dir).unwrap();
            w.add_scalar("x", 1.0, 1).unwrap();
            w.add_scalar("x", 2.0, 2).unwrap();
            w.path().to_owned()
        };
        let clean = std::fs::read(&path).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 3);

        // Flip one bit in the data of the last record (just before its trailing CRC).
        let mut bytes = clean.clone();
        let at = bytes.len() - 6;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("record 2: data CRC mismatch"), "{err}");

        // Flip one bit in the length of the first record.
        let mut bytes = clean.clone();
        bytes[0] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err();
        assert!(err.to_string().contains("record 0: length CRC mismatch"), "{err}");

        // A partly written last record.
        std::fs::write(&path, &clean[..clean.len() - 3]).unwrap();
        let err = read_events(&path).unwrap_err();
        assert!(err.to_string().contains("record 2: truncated data"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
