//! Instructions per record in Wren (run under callgrind): a bulk TCP flow with ACKs.
//! `cargo build --release -p analysis --example wren_cost && valgrind --tool=callgrind target/release/examples/wren_cost`
use analysis::engine::Engine;
use analysis::record::{Record, Timebase, FLAG_TCP, FLAG_TCP_TS};
use analysis::wren::Wren;

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut recs = Vec::with_capacity(n);
    let mut seq = 1u32;
    for i in 0..n / 3 {
        let t = i as u64 * 1200;
        let d = Record {
            time: t,
            src_ip: 1,
            dst_ip: 2,
            src_port: 40000,
            dst_port: 5201,
            seq,
            ack: 1,
            tsval: (t / 1_000_000) as u32,
            payload_len: 1448,
            frame_len: 1514,
            protocol: 6,
            tcp_flags: 0x10,
            flags: FLAG_TCP | FLAG_TCP_TS,
            ..Default::default()
        };
        seq = seq.wrapping_add(1448);
        recs.push(d);
        recs.push(Record {
            time: t + 600,
            seq: seq.wrapping_add(1448),
            ..d
        });
        seq = seq.wrapping_add(1448);
        recs.push(Record {
            time: t + 200_000,
            src_ip: 2,
            dst_ip: 1,
            src_port: 5201,
            dst_port: 40000,
            seq: 1,
            ack: seq,
            tsecr: d.tsval,
            tsval: 9,
            payload_len: 0,
            frame_len: 66,
            ..d
        });
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(Default::default());
    for c in recs.chunks(32) {
        w.on_batch(c, Timebase::NANOS);
    }
    println!("{:?}", w.counters());
}
