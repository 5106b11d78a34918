//! The runtime under the RL library: actors, an object store and tasks.
//!
//! - [`Runtime`]: `Runtime::local` starts everything in-process (the embedded default).
//! - [`actor`]: stateful workers on their own OS threads with bounded mailboxes;
//!   [`ActorHandle::call`] returns a reply you can `.await`, or `.wait()` for from any thread (with
//!   a deadline: [`Reply::wait_timeout`]); panics are caught and reported, and errors say what is
//!   safe to retry ([`RuntimeError::is_retryable_anywhere`]).
//! - [`object_store`]: immutable `Bytes` objects behind reference-counted [`ObjectRef`]s, with a
//!   memory cap; zero-copy inside a process; past the cap, idle objects spill to local disk.
//! - Tasks: [`Runtime::register_task`] and [`Runtime::submit`] run a named function on a thread
//!   pool and hand back the [`ObjectRef`] of its result.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use rl_runtime::{Runtime, RuntimeOptions, decode, encode};
//!
//! let rt = Runtime::local(RuntimeOptions::default())?;
//! rt.register_task("square", |args: Bytes| {
//!     let x: u64 = decode(&args)?;
//!     Ok(encode(&(x * x))?)
//! });
//! let r = rt.submit("square", encode(&12u64)?)?;
//! let out: u64 = decode(&rt.get_blocking(&r, None)?)?;
//! assert_eq!(out, 144);
//! rt.shutdown();
//! # Ok::<(), rl_runtime::RuntimeError>(())
//! ```
#![deny(missing_docs)]

pub mod actor;
pub mod cluster;
mod error;
mod mailbox;
pub mod object_store;
mod reply;
mod runtime;
mod spill;
mod wire;

/// The fuzz harness shared with the other crates' `tests/fuzz.rs`, for the unit-test fuzz
/// targets of this crate's private decoders.
#[cfg(test)]
#[path = "../../fuzz/harness.rs"]
pub(crate) mod fuzz_harness;

pub use actor::{
    Actor, ActorContext, ActorHandle, ActorLocation, ActorOptions, BoxError, DEFAULT_MAILBOX_CAPACITY, Isolation,
    Placement, Reply, TryTellError, Unrecoverable,
};
pub use error::{Result, RuntimeError};
pub use object_store::{ObjectRef, ObjectStore, StoreOptions, StoreStats};
pub use runtime::{Runtime, RuntimeOptions, decode, encode};
