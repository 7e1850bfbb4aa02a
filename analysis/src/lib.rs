//! analysis: wrenvnet's measurement and adaptation engines, in pure Rust with no DPDK,
//! so they build and test anywhere and run the same online (in the daemon) and offline
//! (on captures and problem files).
//!
//! - `vadapt`: VM mapping, overlay topology and paths from demands and measurements.

// Dense host-by-host matrices read best with explicit indices.
#![allow(clippy::needless_range_loop)]

pub mod vadapt;
