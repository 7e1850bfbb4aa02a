//! `wrenvnet analyze` end to end on any bytes: the pcap/pcapng reader, then the
//! engines behind it (Wren, VTTIF) on whatever records it made. However a capture's
//! lengths and timestamps lie, nothing may panic, and the analysis must end quickly
//! (libFuzzer's -timeout catches one that does not).
#![no_main]

use analysis::engine::Engine;
use analysis::pcap::read_capture_from;
use analysis::record::Timebase;
use analysis::vttif::{Config, Vttif};
use analysis::wren::Wren;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(cap) = read_capture_from(bytes, "fuzz") else {
        return;
    };
    let mut wren = Wren::new(Default::default());
    wren.set_hosts(
        cap.hosts
            .addrs
            .iter()
            .map(|a| u32::from_be_bytes(*a))
            .collect(),
    );
    for chunk in cap.records.chunks(1024) {
        wren.on_batch(chunk, Timebase::NANOS);
    }
    let _ = wren.views(|ip| ip.to_string());
    let mut vttif = Vttif::new(Config {
        by_ip: cap.hosts.addrs.is_empty(),
        ..Config::default()
    });
    vttif.on_batch(&cap.records, Timebase::NANOS);
    vttif.finish();
    let _ = vttif.view();
});
