//! analysis: wrenvnet's measurement and adaptation engines, in pure Rust with no DPDK,
//! so they build and test anywhere and run the same online (in the daemon) and offline
//! (on captures and problem files).
//!
//! - `wire`: zero-copy header views and the frame dissector (one parser for all).
//! - `record`: the 64-byte packet record the workers produce.
//! - `ring`: the per-worker single-producer single-consumer record ring.
//! - `engine`: the trait the engines implement, and the analysis loop that feeds them.
//! - `pcap`: captures (pcap, pcapng) into the same records.
//! - `vadapt`: VM mapping, overlay topology and paths from demands and measurements.

// Pure Rust: unsafe code belongs to the DPDK layer, never here.
#![forbid(unsafe_code)]
// Dense host-by-host matrices read best with explicit indices.
#![allow(clippy::needless_range_loop)]

pub mod engine;
pub mod fasthash;
pub mod pcap;
pub mod record;
pub mod ring;
pub mod vadapt;
pub mod vttif;
pub mod wire;
pub mod wren;
