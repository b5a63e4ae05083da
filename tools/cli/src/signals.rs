//! Signal handling: Ctrl-C stops an acquisition cleanly; a closed pipe ends output quietly.

use nix::sys::signal::{sigaction, signal, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM; the pipeline polls it.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CANCEL.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`CANCEL`] instead of killing the process, so an interrupted
/// acquisition still seals its image and writes an `incomplete` manifest.
pub fn catch_interrupts() {
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe, and
        // touches no state that a signal could interrupt half-way.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            tracing::warn!("cannot catch {sig}: {e}");
        }
    }
}

/// Restores the default SIGPIPE action so `vestige ... | head` ends quietly instead of
/// panicking on a failed write (Rust ignores SIGPIPE by default).
pub fn quiet_broken_pipe() {
    // SAFETY: SIG_DFL installs no handler code of ours; it is called once at start-up,
    // before any thread exists.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
