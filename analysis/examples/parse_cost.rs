//! Time to dissect a TCP/IPv4 frame and build its record, warm cache (nanoseconds per
//! frame; for instruction counts run it under `valgrind --tool=callgrind` with N=20000):
//! `cargo run --release -p analysis --example parse_cost`.
use analysis::record::{Direction, Record, NO_HOST};
use analysis::wire::frame::dissect;
use analysis::wire::sample_frames::{tcp_frame, vxlan_encap};
use analysis::wire::{ethernet, tcp};

fn main() {
    let seg = tcp::Repr {
        src_port: 1,
        dst_port: 2,
        seq: 3,
        ack: 4,
        flags: 0x10,
        window: 5,
        timestamps: Some((6, 7)),
    };
    let plain = tcp_frame(
        ethernet::Repr {
            dst: [2; 6],
            src: [4; 6],
            ethertype: 0,
        },
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        &seg,
        1448,
    );
    let vx = vxlan_encap(
        &plain,
        ethernet::Repr {
            dst: [2; 6],
            src: [4; 6],
            ethertype: 0,
        },
        [9; 4],
        [8; 4],
        5,
        6,
    );
    let mut out = vec![Record::default(); 64];
    for (name, f) in [("plain TCP", &plain), ("VXLAN TCP", &vx)] {
        for _ in 0..3 {
            let n: u64 = std::env::var("N")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(4_000_000);
            let t0 = std::time::Instant::now();
            for i in 0..n as usize {
                let (d, v) = dissect(std::hint::black_box(f), true);
                out[i & 63] = Record::from_dissection(
                    i as u64,
                    &d,
                    v,
                    Direction::ToNic,
                    0,
                    (NO_HOST, NO_HOST),
                );
            }
            let t1 = std::time::Instant::now();
            for i in 0..n as usize {
                out[i & 63] =
                    Record::from_frame(std::hint::black_box(f), i as u64, Direction::ToNic, 0);
            }
            let t2 = std::time::Instant::now();
            std::hint::black_box(&out);
            println!(
                "{name}: full dissector {:.1} ns/frame, worker fast path {:.1} ns/frame",
                (t1 - t0).as_nanos() as f64 / n as f64,
                (t2 - t1).as_nanos() as f64 / n as f64
            );
        }
    }
}
