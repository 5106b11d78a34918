//! Stopping a run by signal: the first SIGINT or SIGTERM asks the training loop to stop after
//! the iteration in progress and write a checkpoint; a second one exits at once.
//!
//! The library installs no handler by itself (a program embedding it may want its own):
//! `rl train` calls [`install_signal_handlers`]; the loop polls [`requested`] after every
//! iteration.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

const FIRST: &[u8] = b"\nstopping after this iteration and writing a checkpoint (again to exit at once)\n";

extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    // SAFETY: write is async-signal-safe; the buffer is static.
    unsafe { libc::write(libc::STDERR_FILENO, FIRST.as_ptr().cast(), FIRST.len()) };
}

/// Installs the SIGINT and SIGTERM handlers described in the module docs.
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls async-signal-safe functions;
        // the sigaction struct is fully initialized before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the run to stop, by name, if one did.
pub fn requested() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("a signal"),
    }
}

/// The exit code a shell reports for a process ended by the signal `name` (128 + its number).
pub fn exit_code(name: &str) -> i32 {
    128 + match name {
        "SIGINT" => libc::SIGINT,
        "SIGTERM" => libc::SIGTERM,
        _ => 0,
    }
}
