//! Process-wide settings a command-line tool needs from the OS.

/// Restores the default action of SIGPIPE (terminate quietly), which Rust's runtime
/// ignores: `wrenvnet adapt | head` should end like any Unix tool, not panic.
#[cold]
pub fn restore_default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL is async-signal-safe and has
    // no memory-safety preconditions; called once at start, before other threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
