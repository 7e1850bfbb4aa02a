//! Errors of the safe DPDK layer: every failing DPDK call becomes an `Error` that names
//! the operation, the object it was acting on, and DPDK's own text for the errno.

use std::ffi::CStr;

/// A failed DPDK operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DPDK call returned an error code.
    #[error("{op} failed for {what}: {text} (errno {errno})")]
    Dpdk {
        op: &'static str,
        what: String,
        errno: i32,
        text: String,
    },
    /// The EAL was already initialised in this process (DPDK allows one per process).
    #[error("the DPDK EAL is already initialised in this process (one EAL per process)")]
    EalAlreadyInitialized,
    /// A request that cannot be met, found before calling DPDK.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// DPDK's text for an errno value (`rte_strerror` knows DPDK's own codes too).
#[cold]
pub fn errno_text(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static or
    // thread-local NUL-terminated string that stays valid until the next call on
    // this thread; we copy it out at once.
    unsafe {
        let ptr = dpdk_sys::rte_strerror(errno);
        if ptr.is_null() {
            return format!("unknown error {errno}");
        }
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Reads this thread's `rte_errno`.
#[cold]
pub fn last_errno() -> i32 {
    // SAFETY: reads a thread-local int through the C shim; no preconditions.
    unsafe { dpdk_sys::wrenvnet_rte_errno() }
}

/// Builds an `Error` from a DPDK return code: negative codes are `-errno`; other
/// failures (e.g. a null pointer) leave the cause in `rte_errno`.
#[cold]
pub fn dpdk_error(op: &'static str, what: impl Into<String>, ret: i32) -> Error {
    let errno = if ret < 0 { -ret } else { last_errno() };
    Error::Dpdk {
        op,
        what: what.into(),
        errno,
        text: errno_text(errno),
    }
}
