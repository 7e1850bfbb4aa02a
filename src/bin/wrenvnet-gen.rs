//! wrenvnet-gen: the benchmarks' traffic generator. It sends rate-controlled UDP frames,
//! each carrying a sequence number and the TSC at sending, out of one DPDK port, and
//! receives them on another after the device under test (testpmd, wrenvnet) forwarded
//! them. It finds the highest rate with no loss (NDR) and with less than 0.5% loss
//! (PDR) by binary search over trials (RFC 2544 style), and records every frame's
//! latency (hdrhistogram) in a trial at a fraction of the NDR. Generator and device run
//! on one machine, so stamp and receive time come from one TSC.
//!
//!   wrenvnet-gen --tx net_memif0,role=server,socket=/tmp/a.sock \
//!                --rx net_memif1,role=server,socket=/tmp/b.sock --json out.json \
//!                -- -l 0 --in-memory --no-pci --file-prefix gen
//!
//! Frames a device encapsulated (VXLAN) are recognised too: the payload is looked for
//! after the plain headers and after 50 more bytes of outer headers.
//!
//! PVP (physical-VM-physical) through the overlay switch: one port both ways (no
//! `--rx`), frames sent VXLAN-encapsulated as from a peer host (`--encap-src`,
//! `--encap-dst`, `--vni`); the switch decapsulates them to a VM whose guest sends them
//! back, and encapsulates them to the peer again:
//!
//!   wrenvnet-gen --tx net_memif0,role=server,socket=/tmp/nic.sock \
//!                --encap-src 198.18.100.2,02:00:00:00:ff:02 \
//!                --encap-dst 198.18.100.1,02:00:00:00:ff:01 --vni 42 -- -l 0 ...
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dataplane::switch::overlay::{EncapTemplate, Underlay, ENCAP_LEN, ORIGIN_TTL};
use dataplane::{tsc, Burst, Eal, EalArgs, Mbuf, Mempool, Port, PortConfig};
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "wrenvnet-gen",
    about = "Rate-controlled frames with TSC stamps: NDR/PDR search and latency percentiles"
)]
struct Args {
    /// Devargs of the port frames are sent on.
    #[arg(long)]
    tx: String,
    /// Devargs of the port the device under test sends them back on; without it, the
    /// frames come back on the tx port (one port both ways, as a NIC in a PVP test).
    #[arg(long)]
    rx: Option<String>,
    /// Send every frame VXLAN-encapsulated, from this underlay address and MAC
    /// ("IP,MAC": the peer host the generator plays)...
    #[arg(long, requires = "encap_dst")]
    encap_src: Option<String>,
    /// ... to this one (the switch's underlay address and NIC MAC).
    #[arg(long, requires = "encap_src")]
    encap_dst: Option<String>,
    /// VXLAN network identifier of encapsulated frames.
    #[arg(long, default_value_t = 42)]
    vni: u32,
    /// Frame length in bytes (without FCS), at least 62; with encapsulation, of the
    /// inner frame (the outer headers add 50).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Destination and source MAC of the frames.
    #[arg(long, default_value = "02:00:00:00:bb:01")]
    dst_mac: String,
    #[arg(long, default_value = "02:00:00:00:aa:01")]
    src_mac: String,
    /// Seconds per trial.
    #[arg(long, default_value_t = 1.0)]
    trial_s: f64,
    /// Loss ratio allowed at the partial drop rate.
    #[arg(long, default_value_t = 0.005)]
    pdr_loss: f64,
    /// The search stops when the bracket is narrower than this fraction of its top.
    #[arg(long, default_value_t = 0.03)]
    precision: f64,
    /// A trial that fails is run again up to this many times and passes if any run
    /// does: on a shared machine a preempted device loses a burst now and then, which
    /// would otherwise drag a binary search far below what the device sustains. Every
    /// run is in the report.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Latency is measured in a trial at this fraction of the NDR.
    #[arg(long, default_value_t = 0.9)]
    latency_at: f64,
    /// Seconds to wait for both ports' links (the device under test connecting).
    #[arg(long, default_value_t = 30.0)]
    wait_link_s: f64,
    /// Seconds to wait after the links are up before measuring (a guest behind the
    /// device under test may still be starting).
    #[arg(long, default_value_t = 0.3)]
    settle_s: f64,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// EAL arguments, after `--`.
    #[arg(last = true)]
    eal_args: Vec<String>,
}

/// "WRGN": marks the generator's payload.
const MAGIC: [u8; 4] = *b"WRGN";
/// Plain Ethernet + IPv4 + UDP headers: where the payload starts.
const PAYLOAD_AT: usize = 42;
/// Frames a burst sends at most.
const BURST: usize = 32;

#[derive(Debug, Clone, Serialize)]
struct Trial {
    /// 0 for the first run at a rate, 1.. for repeats of a failed one.
    attempt: u32,
    offered_mpps: f64,
    sent: u64,
    /// Frames the device's input queue refused (back-pressure): lost too.
    refused: u64,
    received: u64,
    loss_ratio: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    at_mpps: f64,
    samples: u64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    size: usize,
    max_offered_mpps: f64,
    ndr_mpps: f64,
    pdr_mpps: f64,
    latency: Option<Latency>,
    trials: Vec<Trial>,
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))
}

/// The frame every packet starts from: Ethernet, IPv4 (checksum set), UDP without
/// checksum, the magic, room for the sequence number and the stamp, zero padding.
fn template(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (size - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[198, 18, 0, 1]);
    f[30..34].copy_from_slice(&[198, 18, 0, 2]);
    let sum = f[14..34]
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&1234u16.to_be_bytes());
    f[36..38].copy_from_slice(&5678u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[PAYLOAD_AT..PAYLOAD_AT + 4].copy_from_slice(&MAGIC);
    f
}

/// (sequence, stamp) of one of our frames, plain or encapsulated once.
fn read_stamp(frame: &[u8]) -> Option<(u64, u64)> {
    [PAYLOAD_AT, PAYLOAD_AT + ENCAP_LEN].iter().find_map(|&at| {
        let p = frame.get(at..at + 20)?;
        (p[..4] == MAGIC).then(|| {
            let seq = u64::from_le_bytes(p[4..12].try_into().unwrap_or_default());
            let ts = u64::from_le_bytes(p[12..20].try_into().unwrap_or_default());
            (seq, ts)
        })
    })
}

struct Generator<'e, 'p> {
    pool: Mempool<'e>,
    tx: dataplane::TxQueue<'p>,
    rx: dataplane::RxQueue<'p>,
    frame: Vec<u8>,
    /// Where the magic, sequence number and stamp are in `frame`.
    payload_at: usize,
    hz: u64,
    next_seq: u64,
}

impl Generator<'_, '_> {
    /// Receives what is waiting; counts our frames of sequence >= `from` and records
    /// their latency when `hist` is given.
    fn receive(&mut self, from: u64, hist: &mut Option<Histogram<u64>>) -> u64 {
        let mut burst = Burst::new();
        let mut got = 0;
        let now = tsc::now();
        if self.rx.rx(&mut burst) == 0 {
            return 0;
        }
        for m in burst.drain() {
            if let Some((seq, ts)) = read_stamp(m.data()) {
                if seq >= from {
                    got += 1;
                    if let Some(h) = hist.as_mut() {
                        let ns = (now.saturating_sub(ts) as u128 * 1_000_000_000 / self.hz as u128)
                            as u64;
                        let _ = h.record(ns.max(1));
                    }
                }
            }
        }
        got
    }

    /// One trial at `pps` (None: as fast as the generator can) for `secs`.
    fn trial(
        &mut self,
        pps: Option<f64>,
        secs: f64,
        mut hist: Option<Histogram<u64>>,
    ) -> (Trial, Option<Histogram<u64>>) {
        // Leftovers of an earlier trial: drained and not counted.
        let quiet = Instant::now();
        while quiet.elapsed() < Duration::from_millis(20) {
            self.receive(u64::MAX, &mut None);
        }
        let first = self.next_seq;
        let (mut sent, mut refused, mut received) = (0u64, 0u64, 0u64);
        let t0 = tsc::now();
        let end = t0 + (secs * self.hz as f64) as u64;
        let mut burst = Burst::new();
        loop {
            let now = tsc::now();
            if now >= end {
                break;
            }
            let due = match pps {
                Some(r) => ((now - t0) as f64 / self.hz as f64 * r) as u64,
                None => u64::MAX,
            };
            let owed = due.saturating_sub(sent + refused).min(BURST as u64) as usize;
            for _ in 0..owed {
                let Some(mut m) = Mbuf::from_bytes(&self.pool, &self.frame) else {
                    break;
                };
                let d = m.data_mut();
                let p = self.payload_at;
                d[p + 4..p + 12].copy_from_slice(&self.next_seq.to_le_bytes());
                d[p + 12..p + 20].copy_from_slice(&now.to_le_bytes());
                self.next_seq += 1;
                if burst.push(m).is_err() {
                    break;
                }
            }
            if !burst.is_empty() {
                let r = self.tx.send(&mut burst);
                sent += r.sent as u64;
                refused += r.dropped as u64;
            }
            received += self.receive(first, &mut hist);
        }
        // What is still in flight arrives within a few milliseconds.
        let drain = Instant::now();
        while drain.elapsed() < Duration::from_millis(100) {
            received += self.receive(first, &mut hist);
        }
        let offered = sent + refused;
        let trial = Trial {
            attempt: 0,
            offered_mpps: offered as f64 / secs / 1e6,
            sent,
            refused,
            received,
            loss_ratio: if offered == 0 {
                0.0
            } else {
                offered.saturating_sub(received) as f64 / offered as f64
            },
        };
        (trial, hist)
    }
}

/// The highest rate (pps) in [0, top] whose trial loses at most `allowed`.
fn search(
    g: &mut Generator<'_, '_>,
    a: &Args,
    top: f64,
    allowed: f64,
    log: &mut Vec<Trial>,
) -> f64 {
    let (mut lo, mut hi) = (0.0, top);
    while hi - lo > a.precision * hi {
        let mid = (lo + hi) / 2.0;
        let mut passed = false;
        for attempt in 0..=a.retries {
            let (mut t, _) = g.trial(Some(mid), a.trial_s, None);
            t.attempt = attempt;
            eprintln!(
                "  {:.3} Mpps offered: loss {:.4}% (refused {}){}",
                t.offered_mpps,
                t.loss_ratio * 100.0,
                t.refused,
                if attempt > 0 { " (repeat)" } else { "" }
            );
            passed = t.loss_ratio <= allowed && t.offered_mpps * 1e6 >= mid * 0.98;
            log.push(t);
            if passed {
                break;
            }
        }
        if passed {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// "IP,MAC" of an underlay endpoint.
fn parse_endpoint(s: &str) -> Result<([u8; 4], [u8; 6])> {
    let (ip, mac) = s
        .split_once(',')
        .with_context(|| format!("{s:?}: want IP,MAC"))?;
    let ip: std::net::Ipv4Addr = ip.parse().with_context(|| format!("bad IPv4 {ip:?}"))?;
    Ok((ip.octets(), parse_mac(mac)?))
}

/// `inner` with VXLAN outer headers in front, from `src` to `dst` (the switch's own
/// encapsulation code, as a peer host would send).
fn encapsulate(
    inner: &[u8],
    src: ([u8; 4], [u8; 6]),
    dst: ([u8; 4], [u8; 6]),
    vni: u32,
) -> Result<Vec<u8>> {
    let underlay = Underlay {
        ip: src.0,
        mac: src.1,
        vni,
        max_frame: usize::MAX,
    };
    let mut frame = vec![0u8; ENCAP_LEN];
    frame.extend_from_slice(inner);
    if !EncapTemplate::new(&underlay, dst.0, dst.1).write(&mut frame, ORIGIN_TTL) {
        bail!("cannot encapsulate a {}-byte frame", inner.len());
    }
    Ok(frame)
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.size < PAYLOAD_AT + 20 {
        bail!("--size must be at least {}", PAYLOAD_AT + 20);
    }
    let eal = Eal::init(&EalArgs::new("wrenvnet-gen").passthrough(a.eal_args.iter().cloned()))
        .context("cannot start the EAL")?;
    let pool = Mempool::create(&eal, "gen_pool", 16383, 256, None).context("mbuf pool")?;
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        ..PortConfig::default()
    };
    let mut tx_port = Port::open(&eal, &a.tx, &pool, &cfg).context("tx port")?;
    let mut rx_port = match &a.rx {
        Some(rx) => Some(Port::open(&eal, rx, &pool, &cfg).context("rx port")?),
        None => None,
    };
    let inner = template(a.size, parse_mac(&a.dst_mac)?, parse_mac(&a.src_mac)?);
    let (frame, payload_at) = match (&a.encap_src, &a.encap_dst) {
        (Some(src), Some(dst)) => (
            encapsulate(&inner, parse_endpoint(src)?, parse_endpoint(dst)?, a.vni)?,
            PAYLOAD_AT + ENCAP_LEN,
        ),
        _ => (inner, PAYLOAD_AT),
    };
    let t0 = Instant::now();
    loop {
        let rx_up = match rx_port.as_mut() {
            Some(p) => p.link()?.up,
            None => true,
        };
        if tx_port.link()?.up && rx_up {
            break;
        }
        if t0.elapsed().as_secs_f64() > a.wait_link_s {
            bail!(
                "the device under test did not connect within {} s",
                a.wait_link_s
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("links up after {:.1} s", t0.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs_f64(a.settle_s.max(0.0)));
    let report = {
        let (mut tx_rxq, mut txq) = tx_port.queues();
        let rx = match rx_port.as_mut() {
            Some(p) => p.queues().0.remove(0),
            None => tx_rxq.remove(0),
        };
        let mut g = Generator {
            pool,
            tx: txq.remove(0),
            rx,
            frame,
            payload_at,
            hz: tsc::hz().max(1),
            next_seq: 0,
        };
        let mut trials = Vec::new();
        // Warm-up (ARP-free path, caches), then the generator's own ceiling.
        g.trial(Some(100_000.0), 0.2, None);
        let (max, _) = g.trial(None, a.trial_s, None);
        eprintln!(
            "ceiling: {:.3} Mpps offered, loss {:.2}%",
            max.offered_mpps,
            max.loss_ratio * 100.0
        );
        let top = max.offered_mpps * 1e6;
        trials.push(max.clone());
        eprintln!("NDR search");
        let ndr = search(&mut g, &a, top, 0.0, &mut trials);
        eprintln!("PDR search (loss <= {}%)", a.pdr_loss * 100.0);
        let pdr = search(&mut g, &a, top, a.pdr_loss, &mut trials).max(ndr);
        let latency = if ndr > 0.0 {
            let hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?;
            let (t, hist) = g.trial(Some(ndr * a.latency_at), a.trial_s, Some(hist));
            trials.push(t);
            hist.filter(|h| !h.is_empty()).map(|h| Latency {
                at_mpps: ndr * a.latency_at / 1e6,
                samples: h.len(),
                p50_ns: h.value_at_quantile(0.5),
                p99_ns: h.value_at_quantile(0.99),
                p999_ns: h.value_at_quantile(0.999),
                max_ns: h.max(),
            })
        } else {
            None
        };
        Report {
            size: a.size,
            max_offered_mpps: max.offered_mpps,
            ndr_mpps: ndr / 1e6,
            pdr_mpps: pdr / 1e6,
            latency,
            trials,
        }
    };
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = &a.json {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    drop(tx_port);
    drop(rx_port);
    Ok(())
}
