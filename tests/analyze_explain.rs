//! `wrenvnet analyze --explain` on a capture of known trains and bursts: a sender
//! emits trains of 32 segments and pairs of 24-segment bursts at rates from 0.4 to 2
//! times the available bandwidth A of a FIFO bottleneck (wren_sim's physics: each
//! segment's RTT is the base RTT plus the queue it met, the receiver ACKs every second
//! segment), written as a pcap. The explanation must list exactly those trains and
//! bursts, and give the answer the paths table gives; the plot must label its time
//! axis and draw one point per train or burst the answer weighed. Needs no root.

mod common;

use common::*;
use serde_json::Value;

const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 18, 1, 2];
const MSS: u32 = 1448;
/// Ethernet, IPv4 and TCP headers without options.
const HEADERS: u32 = 54;
const FRAME: u32 = MSS + HEADERS;

/// xorshift64*: the test's only randomness, seeded.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A TCP segment's headers (the payload is left out of the capture, as a snap length
/// would): `(time ns, frame bytes, orig len)`.
fn segment(
    t: u64,
    from: [u8; 4],
    to: [u8; 4],
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    payload: u32,
) -> (u64, Vec<u8>, u32) {
    let mut f = Vec::with_capacity(HEADERS as usize);
    f.extend([2, 0, 0, 0, 0, to[3], 2, 0, 0, 0, 0, from[3], 0x08, 0x00]);
    let total = (20 + 20 + payload) as u16;
    f.extend([0x45, 0]);
    f.extend(total.to_be_bytes());
    f.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend(from);
    f.extend(to);
    f.extend(ports.0.to_be_bytes());
    f.extend(ports.1.to_be_bytes());
    f.extend(seq.to_be_bytes());
    f.extend(ack.to_be_bytes());
    f.extend([0x50, 0x18]); // 20-byte header; ACK, PSH
    f.extend(65535u16.to_be_bytes());
    f.extend([0, 0, 0, 0]);
    (t, f, HEADERS + payload)
}

/// A frame as captured: its time (ns), its bytes and its original length.
type Frame = (u64, Vec<u8>, u32);

/// A nanosecond pcap of `frames`.
fn pcap(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_3c4du32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for (t, f, orig) in frames {
        out.extend(((t / 1_000_000_000) as u32).to_le_bytes());
        out.extend(((t % 1_000_000_000) as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(orig.to_le_bytes());
        out.extend(f);
    }
    out
}

/// What was sent: a train or one burst of a pair, its first segment's time, its
/// segments and its rate (bits/s of frames).
#[derive(Debug)]
struct Sent {
    t0: u64,
    segments: usize,
    burst: bool,
    rate_bps: f64,
}

/// `seconds` of trains and burst pairs through a bottleneck with `a_bps` available,
/// starting 1 s into the epoch; the frames in time order and what was sent.
fn simulate(a_bps: f64, base_rtt_ns: u64, seconds: f64) -> (Vec<Frame>, Vec<Sent>) {
    let mut rng = Rng(0x5eed_2026);
    let mut frames = Vec::new();
    let mut sent = Vec::new();
    let mut t = 1_000_000_000u64;
    let end = t + (seconds * 1e9) as u64;
    let mut seq = 1u32;
    let mut backlog_bits = 0.0f64;
    let mut last_arrival = 0u64;
    let mut k_total = 0u64;
    let ports = (40000, 5201);
    while t < end {
        let rate = a_bps * (0.4 + 1.6 * rng.unit());
        let spacing = (FRAME as f64 * 8.0 / rate * 1e9) as u64;
        // Every other round, two bursts of 24 with a 5-ms pause: bursts of a train.
        let bursts: &[u32] = if k_total.is_multiple_of(2) {
            &[32]
        } else {
            &[24, 24]
        };
        k_total += 1;
        let mut ts = t;
        for &n in bursts {
            sent.push(Sent {
                t0: ts,
                segments: n as usize,
                burst: bursts.len() > 1,
                rate_bps: rate,
            });
            for k in 0..n {
                let dt = ts.saturating_sub(last_arrival) as f64 / 1e9;
                backlog_bits = (backlog_bits - a_bps * dt).max(0.0) + FRAME as f64 * 8.0;
                last_arrival = ts;
                let queue_ns = (backlog_bits / a_bps * 1e9) as u64;
                let rtt = base_rtt_ns + queue_ns + (rng.unit() * 30_000.0) as u64;
                frames.push(segment(ts, SRC, DST, ports, seq, 1, MSS));
                seq = seq.wrapping_add(MSS);
                if k % 2 == 1 || k == n - 1 {
                    frames.push(segment(ts + rtt, DST, SRC, (ports.1, ports.0), 1, seq, 0));
                }
                ts += spacing;
            }
            ts += 5_000_000;
        }
        let drain = (backlog_bits / a_bps * 1e9) as u64;
        t = ts + drain + 2 * base_rtt_ns + (rng.unit() * base_rtt_ns as f64) as u64;
    }
    frames.sort_by_key(|f| f.0);
    (frames, sent)
}

fn ip(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

#[test]
fn explain_lists_the_trains_used_and_gives_the_answer_analyze_reports() {
    let a_mbps = 30.0;
    let (frames, sent) = simulate(a_mbps * 1e6, 20_000_000, 12.0);
    let dir = TempDir::new("explain");
    let file = dir.0.join("trains.pcap");
    std::fs::write(&file, pcap(&frames)).unwrap();
    // To look at it: WRENVNET_KEEP=DIR keeps the capture there.
    if let Some(keep) = std::env::var_os("WRENVNET_KEEP") {
        std::fs::copy(&file, std::path::Path::new(&keep).join("trains.pcap")).unwrap();
    }
    let (src, dst) = (ip(SRC), ip(DST));
    let out = wrenvnet_ok([
        "analyze".as_ref(),
        "--pcap".as_ref(),
        file.as_os_str(),
        "--json".as_ref(),
        "--explain".as_ref(),
        src.as_ref(),
        dst.as_ref(),
    ]);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let path = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["src"] == src.as_str() && p["dst"] == dst.as_str())
        .expect("the sender's path");
    let ex = &report["explain"];
    // The explained answer is the one the paths table reports.
    let ans = &ex["answer"];
    assert_eq!(ans["kind"], path["avail_bw_kind"], "{ans} {path}");
    assert_eq!(ans["mbps"], path["avail_bw_mbps"]);
    assert_eq!(ans["low_mbps"], path["avail_bw_low_mbps"]);
    assert_eq!(ans["high_mbps"], path["avail_bw_high_mbps"]);
    assert_eq!(ex["floor_mbps"], path["delivered_floor_mbps"]);
    assert_eq!(ans["kind"], "estimate", "{ans}");
    let est = ans["mbps"].as_f64().unwrap();
    assert!((est - a_mbps).abs() <= 0.15 * a_mbps, "estimate {est}");

    // The listed trains are the ones sent (each train and each burst, by its first
    // segment's time, its length and its rate), and those in the window are the ones
    // the path's view counts.
    let trains = ex["trains"].as_array().unwrap();
    let in_window: Vec<&Value> = trains
        .iter()
        .filter(|t| t["excluded"] != "outside_window")
        .collect();
    assert_eq!(in_window.len() as u64, path["trains"].as_u64().unwrap());
    assert!(in_window.len() >= 40, "{} trains", in_window.len());
    for t in trains {
        let t0 = t["t0_ns"].as_u64().unwrap();
        let s = sent
            .iter()
            .find(|s| s.t0 == t0)
            .unwrap_or_else(|| panic!("listed train at {t0} was not sent: {t}"));
        assert_eq!(t["segments"].as_u64().unwrap() as usize, s.segments, "{t}");
        assert_eq!(t["burst"].as_bool().unwrap(), s.burst, "{t}");
        let r_in = t["rate_in_mbps"].as_f64().unwrap();
        assert!(
            (r_in - s.rate_bps / 1e6).abs() <= 0.02 * r_in,
            "{t} vs {s:?}"
        );
        // Above A the bottleneck let through about A; below it, what was sent.
        if let Some(r_out) = t["rate_out_mbps"].as_f64() {
            let expect = (s.rate_bps / 1e6).min(a_mbps);
            assert!((r_out - expect).abs() <= 0.15 * expect, "{t}");
        }
    }
    assert!(trains.iter().any(|t| t["burst"] == true));
    // The answer follows from the trains it names: the edges' bounds, their middle.
    let role = |r: &str| {
        in_window
            .iter()
            .find(|t| t["roles"].as_array().unwrap().iter().any(|x| x == r))
            .unwrap_or_else(|| panic!("no {r}"))["bound_mbps"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(ex["rule"], "edges_close");
    let mid = (role("lower_edge") + role("upper_edge")) / 2.0;
    assert!((ex["from_verdicts"]["mbps"].as_f64().unwrap() - mid).abs() < 1e-9);
    let used: Vec<&&Value> = in_window
        .iter()
        .filter(|t| t["excluded"].is_null())
        .collect();
    let split = &ex["split"];
    assert_eq!(
        split["below"].as_u64().unwrap() + split["above"].as_u64().unwrap(),
        used.len() as u64
    );

    // The text says the same.
    let text = String::from_utf8(wrenvnet_ok([
        "analyze".as_ref(),
        "--pcap".as_ref(),
        file.as_os_str(),
        "--explain".as_ref(),
        src.as_ref(),
        dst.as_ref(),
    ]))
    .unwrap();
    assert!(
        text.contains(&format!("answer: estimate {est:.1}")),
        "{text}"
    );
    assert_eq!(
        text.matches(" burst ").count(),
        trains.iter().filter(|t| t["burst"] == true).count()
    );

    // The plot: tick labels on the time axis, one point per train or burst weighed.
    let svg = dir.0.join("plot.svg");
    wrenvnet_ok([
        "analyze".as_ref(),
        "--pcap".as_ref(),
        file.as_os_str(),
        "--plot".as_ref(),
        svg.as_os_str(),
        "--truth-mbps".as_ref(),
        "30".as_ref(),
    ]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    for tick in ["0", "2", "4", "6", "8", "10"] {
        assert!(
            svg.contains(r#"class="tick""#)
                && svg.contains(&format!(r#"text-anchor="middle">{tick}</text>"#)),
            "no tick {tick}"
        );
    }
    let with_out = used.iter().filter(|t| t["rate_out_mbps"].is_f64()).count();
    assert!(
        with_out >= used.len() * 3 / 4,
        "{with_out} of {}",
        used.len()
    );
    assert_eq!(svg.matches(r#"class="burst""#).count(), with_out);
    assert_eq!(svg.matches(r#"class="answer""#).count(), 1);
}
