//! dataplane: wrenvnet's safe layer over DPDK and the forwarding workers built on it.
//!
//! `unsafe` lives in these modules only, every block with a `// SAFETY:` comment
//! (enforced: `clippy::undocumented_unsafe_blocks` is denied below):
//! - calls into DPDK through `dpdk-sys`: `eal`, `error` (`rte_errno`, error texts),
//!   `lcore` (launching closures on lcores, and `prctl` for a worker's timer slack),
//!   `mbuf`, `mempool`, `port`, `tsc` (the TSC, by intrinsic or through DPDK);
//! - `record_sse`: SSE vector intrinsics of the record path;
//! - `stream`: streaming stores into the record ring, and their fence;
//! - `memory`: `madvise` on the record ring's pages;
//! - `process`: restoring SIGPIPE's default action;
//! - `xconnect`'s tests: reading the thread's timer slack.
//!
//! Everything else (`switch`, `monitor`, `counters`, `vhost_socket`, `xconnect`'s
//! loop, and the crates that use this one) is safe Rust.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod counters;
pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod monitor;
pub mod port;
pub mod process;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "ssse3",
    target_feature = "sse4.1"
))]
pub mod record_sse;
pub mod stream;
pub mod switch;
pub mod tsc;
pub mod vhost_socket;
pub mod xconnect;

pub use eal::{Eal, EalArgs};
pub use error::{Error, Result};
pub use lcore::LcoreId;
pub use mbuf::{Burst, Mbuf, MAX_BURST};
pub use mempool::Mempool;
pub use port::{
    LinkStatus, MacAddr, Port, PortConfig, PortId, PortStats, QueueId, RxQueue, TxQueue,
};

/// The DPDK version the project was built against (from pkg-config).
pub fn dpdk_build_version() -> &'static str {
    dpdk_sys::DPDK_PKG_VERSION
}
