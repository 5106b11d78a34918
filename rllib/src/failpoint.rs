//! Failpoints: named places where a test can have this process killed, to test crash safety
//! at an exact point instead of by timing.
//!
//! `RL_FAILPOINT=NAME` kills the process with SIGKILL the first time it reaches failpoint
//! `NAME`; `RL_FAILPOINT=NAME@N` the `N`-th time. Without the variable a failpoint costs one
//! relaxed atomic load. The failpoints:
//!
//! | name | where |
//! |---|---|
//! | `checkpoint.write` | before each file of a checkpoint is written into its temporary directory |
//! | `checkpoint.rename` | after a checkpoint's files are synced, before its rename into place |

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that arms a failpoint.
pub const FAILPOINT_ENV: &str = "RL_FAILPOINT";

const UNREAD: u8 = 0;
const OFF: u8 = 1;
const ARMED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNREAD);
static ARMED_AT: Mutex<Option<(String, u64)>> = Mutex::new(None);

/// Parses `NAME` or `NAME@N` (N >= 1).
fn parse(spec: &str) -> Option<(String, u64)> {
    match spec.split_once('@') {
        Some((name, n)) => n.parse().ok().filter(|n| *n >= 1).map(|n| (name.to_string(), n)),
        None if !spec.is_empty() => Some((spec.to_string(), 1)),
        None => None,
    }
}

/// Reaches failpoint `name`: kills the process if it is armed for this hit.
pub fn hit(name: &str) {
    if STATE.load(Ordering::Relaxed) == OFF {
        return;
    }
    let mut armed = ARMED_AT.lock().unwrap_or_else(|e| e.into_inner());
    if STATE.load(Ordering::Relaxed) == UNREAD {
        let spec = std::env::var(FAILPOINT_ENV).unwrap_or_default();
        *armed = parse(&spec);
        if armed.is_none() && !spec.is_empty() {
            eprintln!("warning: ignoring {FAILPOINT_ENV}={spec:?}: expected NAME or NAME@N with N >= 1");
        }
        STATE.store(if armed.is_some() { ARMED } else { OFF }, Ordering::Relaxed);
    }
    if let Some((armed_name, left)) = armed.as_mut()
        && armed_name == name
    {
        *left -= 1;
        if *left == 0 {
            eprintln!("failpoint {name} reached: killing this process (SIGKILL)");
            kill_self();
        }
    }
}

fn kill_self() -> ! {
    // SAFETY: kill and getpid have no preconditions; SIGKILL cannot be caught, so this does not
    // return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(parse("checkpoint.write"), Some(("checkpoint.write".into(), 1)));
        assert_eq!(parse("checkpoint.write@3"), Some(("checkpoint.write".into(), 3)));
        assert_eq!(parse("checkpoint.write@0"), None);
        assert_eq!(parse("x@y"), None);
        assert_eq!(parse(""), None);
    }
}
