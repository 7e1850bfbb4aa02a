//! Records per second the analysis side sustains on one core: the ring drained by a
//! consumer while a producer thread fills it, and each engine (flow table, Wren,
//! VTTIF) fed batches of realistic TCP records (a bulk transfer with ACKs).
//!
//!   cargo bench --bench engines        # writes bench/results/engines.{md,json}

use std::time::Instant;

use analysis::engine::{Engine, FlowTable};
use analysis::record::{Record, Timebase, FLAG_TCP, FLAG_TCP_TS};
use analysis::ring::record_ring;
use analysis::vttif::Vttif;
use analysis::wren::Wren;

/// `n` records of 64 concurrent TCP flows between 16 VMs: data segments every 1.2 us
/// (10 Gbit/s of 1500-byte frames), an ACK for every second one.
fn records(n: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(n);
    let mut seq = [1u32; 64];
    let mut t = 0u64;
    let mut i = 0usize;
    while out.len() < n {
        let f = i % 64;
        let (a, b) = ((f % 16) as u8, ((f + 1) % 16) as u8);
        let data = Record {
            time: t,
            src_mac: [2, 0, 0, 0, 0, a],
            dst_mac: [2, 0, 0, 0, 0, b],
            src_ip: 0xc613_0000 | a as u32,
            dst_ip: 0xc613_0000 | b as u32,
            src_port: 40000 + f as u16,
            dst_port: 5201,
            seq: seq[f],
            ack: 1,
            tsval: (t / 1_000_000) as u32,
            tsecr: 7,
            payload_len: 1448,
            frame_len: 1514,
            protocol: 6,
            tcp_flags: 0x10,
            flags: FLAG_TCP | FLAG_TCP_TS,
            ..Default::default()
        };
        seq[f] = seq[f].wrapping_add(1448);
        out.push(data);
        if i % 2 == 1 {
            out.push(Record {
                time: t + 200_000,
                src_mac: data.dst_mac,
                dst_mac: data.src_mac,
                src_ip: data.dst_ip,
                dst_ip: data.src_ip,
                src_port: 5201,
                dst_port: data.src_port,
                seq: 1,
                ack: seq[f],
                tsval: 7,
                tsecr: data.tsval,
                payload_len: 0,
                frame_len: 66,
                tcp_flags: 0x10,
                ..data
            });
        }
        t += 1200;
        i += 1;
    }
    out.truncate(n);
    out
}

fn rate(name: &str, recs: &[Record], e: &mut dyn Engine) -> f64 {
    let t = Instant::now();
    for chunk in recs.chunks(32) {
        e.on_batch(chunk, Timebase::NANOS);
    }
    let r = recs.len() as f64 / t.elapsed().as_secs_f64();
    println!("{name:<12} {:>8.1} M records/s", r / 1e6);
    r
}

fn main() {
    let n = 10_000_000;
    let recs = records(n);
    let mut md = String::from("# Analysis side: records per second on one core\n\n| what | M records/s | target |\n|---|---|---|\n");
    let mut json = serde_json::Map::new();

    // Ring: a producer thread pushes batches of 32, this thread drains.
    let (mut p, mut c) = record_ring(65536);
    let feed = recs.clone();
    let t = Instant::now();
    let producer = std::thread::spawn(move || {
        for chunk in feed.chunks(32) {
            let mut left = chunk;
            while !left.is_empty() {
                let k = p.push_batch_retry(left);
                left = &left[k..];
            }
        }
    });
    let mut got = 0usize;
    let mut sum = 0u64;
    while got < n {
        got += c.drain(|b| sum = sum.wrapping_add(b.iter().map(|r| r.seq as u64).sum::<u64>()));
    }
    producer.join().unwrap();
    let ring = n as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    println!("ring drain   {:>8.1} M records/s", ring / 1e6);
    md += &format!(
        "| ring: producer thread → consumer drain | {:.1} | — |\n",
        ring / 1e6
    );
    json.insert("ring_mrps".into(), (ring / 1e6).into());

    let flows = rate("flow table", &recs, &mut FlowTable::default());
    let wren = rate("wren", &recs, &mut Wren::new(Default::default()));
    let vttif = rate("vttif", &recs, &mut Vttif::new(Default::default()));
    md += &format!(
        "| flow table | {:.1} | — |\n| Wren | {:.1} | ≥ 15 |\n| VTTIF | {:.1} | ≥ 30 |\n",
        flows / 1e6,
        wren / 1e6,
        vttif / 1e6
    );
    json.insert("wren_mrps".into(), (wren / 1e6).into());
    json.insert("vttif_mrps".into(), (vttif / 1e6).into());
    json.insert("flowtable_mrps".into(), (flows / 1e6).into());
    md += "\n10 M records of 64 TCP flows among 16 VMs (data every 1.2 us, an ACK per two segments), batches of 32.\n\nReproduce: `cargo bench --bench engines`\n";
    println!("{md}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/engines.md"), &md).unwrap();
    std::fs::write(
        format!("{dir}/engines.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
