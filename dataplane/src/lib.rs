//! dataplane: wrenvnet's safe layer over DPDK and the forwarding workers built on it.
//!
//! The modules `eal`, `mempool`, `mbuf`, `port`, `lcore` and `tsc` are the only places
//! in the project that call DPDK; each `unsafe` block there carries a `// SAFETY:`
//! comment. Besides them only `record_sse` (vector intrinsics), `stream` (streaming
//! stores into the record ring) and `memory` (huge-page advice) hold `unsafe` blocks,
//! each with its `// SAFETY:` comment too. Everything else (`switch`, the forwarding
//! code of `xconnect` and `counters`, and the binary) is safe Rust.

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
