//! How soon Wren's online view of a path follows a throttle: the path's available
//! bandwidth drops from 100 to 30 Mbit/s (the lab's throttle scenario: tc on the A–C
//! link) while the application keeps sending, and records are fed to the engine in
//! time order as the daemon's analysis loop feeds them, its view read every 100 ms (the
//! daemon publishes one every second). Measured: the time from the throttle until the
//! view's answer falls below halfway (65 Mbit/s) for good, and until it is within 15%
//! of the new A, for trains that outrun the new path and for a bulk sender. Physics
//! as in wren_sim: a FIFO bottleneck serving the sender at A, RTT = base + the queue
//! met + up to 30 us of jitter, an ACK every second segment. And for an
//! application-limited sender's bursts through a FIFO that cross traffic comes to
//! (0 -> 70%) or grows on (30 -> 70%), as wren_sim simulates it.

use analysis::engine::Engine;
use analysis::record::{Record, Timebase, FLAG_TCP};
use analysis::vadapt::rng::Rng;
use analysis::wire::tcp::{FLAG_ACK, FLAG_PSH};
use analysis::wren::{Config, PathView, Wren};

const SRC: u32 = 0xc612_0001;
const DST: u32 = 0xc612_0102;
const MSS: u32 = 1448;
const FRAME: u32 = MSS + 66;
const BASE_RTT: u64 = 20_000_000;
const THROTTLE_NS: u64 = 15_000_000_000;
const END_NS: u64 = 32_000_000_000;
const BEFORE: f64 = 100e6;
const AFTER: f64 = 30e6;

fn rec(t: u64, from: u32, to: u32, seq: u32, ack: u32, payload: u32) -> Record {
    Record {
        time: t,
        src_ip: from,
        dst_ip: to,
        src_port: if from == SRC { 40000 } else { 5201 },
        dst_port: if from == SRC { 5201 } else { 40000 },
        seq,
        ack,
        payload_len: payload as u16,
        frame_len: payload + 66,
        protocol: 6,
        tcp_flags: FLAG_ACK | if payload > 0 { FLAG_PSH } else { 0 },
        flags: FLAG_TCP,
        ..Default::default()
    }
}

fn avail(t: u64) -> f64 {
    if t < THROTTLE_NS {
        BEFORE
    } else {
        AFTER
    }
}

/// The bottleneck: our bits queued, served at A(t); each segment's RTT.
struct Bottleneck {
    backlog_bits: f64,
    last: u64,
    rng: Rng,
}

impl Bottleneck {
    fn send(&mut self, t: u64) -> u64 {
        let a = avail(t);
        let dt = t.saturating_sub(self.last) as f64 / 1e9;
        self.backlog_bits = (self.backlog_bits - a * dt).max(0.0) + FRAME as f64 * 8.0;
        self.last = t;
        BASE_RTT + (self.backlog_bits / a * 1e9) as u64 + (self.rng.unit() * 30_000.0) as u64
    }
}

/// Trains of 32 segments at rates from 0.3 to 1.5 times the path's A before the
/// throttle (an application that does not know it happened), two RTTs apart.
fn trains() -> Vec<Record> {
    let mut b = Bottleneck {
        backlog_bits: 0.0,
        last: 0,
        rng: Rng::new(26),
    };
    let (mut recs, mut t, mut seq) = (Vec::new(), 0u64, 1u32);
    while t < END_NS {
        let rate = BEFORE * (0.3 + 1.2 * b.rng.unit());
        let spacing = (FRAME as f64 * 8.0 / rate * 1e9) as u64;
        for k in 0..32u64 {
            let ts = t + k * spacing;
            let rtt = b.send(ts);
            recs.push(rec(ts, SRC, DST, seq, 1, MSS));
            seq = seq.wrapping_add(MSS);
            if k % 2 == 1 {
                recs.push(rec(ts + rtt, DST, SRC, 1, seq, 0));
            }
        }
        t += 32 * spacing + (b.backlog_bits / avail(t) * 1e9) as u64 + 2 * BASE_RTT;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

/// A bulk sender that follows the path: 1.2 and 0.7 times the current A in turns of
/// one RTT (a congestion controller probing around it), segment by segment.
fn bulk() -> Vec<Record> {
    let mut b = Bottleneck {
        backlog_bits: 0.0,
        last: 0,
        rng: Rng::new(27),
    };
    let (mut recs, mut t, mut seq, mut k) = (Vec::new(), 0u64, 1u32, 0u64);
    while t < END_NS {
        let a = avail(t);
        let rate = if (t / BASE_RTT).is_multiple_of(2) {
            1.2 * a
        } else {
            0.7 * a
        };
        let rtt = b.send(t);
        recs.push(rec(t, SRC, DST, seq, 1, MSS));
        seq = seq.wrapping_add(MSS);
        if k % 2 == 1 {
            recs.push(rec(t + rtt, DST, SRC, 1, seq, 0));
        }
        k += 1;
        t += (FRAME as f64 * 8.0 / rate * 1e9) as u64;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

/// A congestion-controlled bulk sender through a drop-tail queue of 50 ms at the
/// current A, its records with TCP timestamps (TSval: ms of sending). Before the
/// throttle it probes around A (1.2 and 0.7 times A in turns of one RTT); after it, it
/// keeps its rate until its first loss shows (one RTT after the drop), then halves it
/// once per RTT with losses until it is below the new A, and probes around that. A
/// dropped segment gets no ACK; the receiver ACKs out-of-order segments at once with
/// the hole's start (duplicate ACKs); the sender sends the hole again one RTT after the
/// drop, and its ACK covers what arrived beyond it.
fn bulk_with_drops() -> Vec<Record> {
    let mut rng = Rng::new(28);
    let buffer_ns = 50_000_000.0;
    let ms = |t: u64| (t / 1_000_000) as u32;
    let with_ts = |mut r: Record, tsval: u32, tsecr: u32| {
        r.flags |= analysis::record::FLAG_TCP_TS;
        r.tsval = tsval;
        r.tsecr = tsecr;
        r
    };
    let (mut recs, mut t, mut seq) = (Vec::new(), 0u64, 1u32);
    let (mut backlog, mut last) = (0.0f64, 0u64);
    // Holes at the receiver (lost segments' starts), and retransmissions due (time, seq).
    let mut holes: std::collections::BTreeSet<u32> = Default::default();
    let mut due: std::collections::VecDeque<(u64, u32)> = Default::default();
    // The highest byte the receiver holds, and the segments since its last ACK.
    let (mut high, mut unacked) = (1u32, 0u32);
    let mut rate_cut_until = 0u64;
    let mut rate = 1.2 * BEFORE;
    while t < END_NS {
        let a = avail(t);
        let probe = if (t / BASE_RTT).is_multiple_of(2) {
            1.2
        } else {
            0.7
        };
        let (sent_seq, retransmit) = match due.front() {
            Some(&(when, s)) if when <= t => {
                due.pop_front();
                (s, true)
            }
            _ => (seq, false),
        };
        // Through the queue, or dropped at a full one.
        let dt = t.saturating_sub(last) as f64 / 1e9;
        backlog = (backlog - a * dt).max(0.0);
        last = t;
        let dropped = backlog / a * 1e9 > buffer_ns;
        recs.push(with_ts(rec(t, SRC, DST, sent_seq, 1, MSS), ms(t), 1));
        if !retransmit {
            seq = seq.wrapping_add(MSS);
        }
        if dropped {
            due.push_back((t + BASE_RTT, sent_seq));
            holes.insert(sent_seq);
            // Its loss shows one RTT on: halve then, and once per RTT while losing.
            if t >= rate_cut_until {
                rate_cut_until = t + BASE_RTT;
                rate = if a < BEFORE {
                    (rate / 2.0).max(0.7 * a)
                } else {
                    rate
                };
            }
        } else {
            backlog += FRAME as f64 * 8.0;
            let rtt = BASE_RTT + (backlog / a * 1e9) as u64 + (rng.unit() * 30_000.0) as u64;
            let end = sent_seq.wrapping_add(MSS);
            holes.remove(&sent_seq);
            if (end.wrapping_sub(high) as i32) > 0 {
                high = end;
            }
            unacked += 1;
            let out_of_order = !holes.is_empty() || retransmit;
            if out_of_order || unacked >= 2 {
                let ack_no = holes.iter().next().copied().unwrap_or(high);
                recs.push(with_ts(rec(t + rtt, DST, SRC, 1, ack_no, 0), 9, ms(t)));
                unacked = 0;
            }
        }
        if a == BEFORE || rate <= 1.2 * a {
            rate = probe * a;
        }
        t += (FRAME as f64 * 8.0 / rate * 1e9) as u64;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

/// An application-limited sender whose path gains cross traffic: bursts of 64 segments
/// paced at rates of their own, log-uniform from 0.5 to 4 times the A before (the
/// application knows nothing of the change), 20 Mbit/s on average, through a FIFO of
/// 100 Mbit/s that Poisson cross traffic of 1500-byte packets feeds at `x_before`
/// (bits/s) and from the throttle's time on at 70 Mbit/s (A: 100 - x_before -> 30
/// Mbit/s); an ACK every second segment.
fn bursts_meeting_cross_traffic(x_before: f64, seed: u64) -> Vec<Record> {
    let mut rng = Rng::new(seed);
    let c = BEFORE;
    let frame_bits = FRAME as f64 * 8.0;
    let cross_bits = 1500.0 * 8.0;
    let first_cross = if x_before > 0.0 {
        0.0
    } else {
        THROTTLE_NS as f64
    };
    let (mut free_at, mut next_cross) = (0.0f64, first_cross);
    let (mut recs, mut start, mut seq) = (Vec::new(), 0.0f64, 1u32);
    while start < END_NS as f64 {
        let rate = BEFORE * 0.5 * 8f64.powf(rng.unit());
        let spacing = frame_bits / rate * 1e9;
        for k in 0..64u32 {
            let t = start + k as f64 * spacing;
            while next_cross < t {
                free_at = free_at.max(next_cross) + cross_bits / c * 1e9;
                let x = if next_cross < THROTTLE_NS as f64 {
                    x_before
                } else {
                    c - AFTER
                };
                next_cross += -(1.0 - rng.unit()).ln() * cross_bits / x * 1e9;
            }
            free_at = free_at.max(t) + frame_bits / c * 1e9;
            recs.push(rec(t as u64, SRC, DST, seq, 1, MSS));
            seq = seq.wrapping_add(MSS);
            if k % 2 == 1 {
                let at = free_at as u64 + BASE_RTT;
                recs.push(rec(at, DST, SRC, 1, seq, 0));
            }
        }
        let period = 64.0 * frame_bits / 20e6 * 1e9;
        start += (period * (0.9 + 0.2 * rng.unit())).max(64.0 * spacing);
    }
    recs.sort_by_key(|r| r.time);
    recs
}

/// The sender's path's view every `step` ns of record time: (t, view).
fn timeline(recs: &[Record], step: u64) -> Vec<(u64, PathView)> {
    let mut w = Wren::new(Config::default());
    let mut out = Vec::new();
    let mut next = step;
    let mut rest = recs;
    while next <= END_NS {
        let i = rest.partition_point(|r| r.time < next);
        w.on_batch(&rest[..i], Timebase::NANOS);
        rest = &rest[i..];
        let src = format!("{SRC:08x}");
        if let Some(v) = w
            .views(|ip| format!("{ip:08x}"))
            .into_iter()
            .find(|p| p.src == src)
        {
            out.push((next, v));
        }
        next += step;
    }
    out
}

/// Seconds after the throttle until `ok` holds of the view for good (None: never).
fn settles(tl: &[(u64, PathView)], ok: impl Fn(&PathView) -> bool) -> Option<f64> {
    let last_bad = tl.iter().rposition(|(_, v)| !ok(v));
    let i = last_bad.map_or(0, |i| i + 1);
    let (t, _) = tl.get(i)?;
    Some(t.saturating_sub(THROTTLE_NS) as f64 / 1e9)
}

fn report(name: &str, recs: &[Record]) -> (Option<f64>, Option<f64>) {
    report_from(name, recs, BEFORE)
}

/// Seconds until the view is below halfway between `before` (the A before, bits/s) and
/// the new A for good, and until it is within 15% of the new A.
fn report_from(name: &str, recs: &[Record], before: f64) -> (Option<f64>, Option<f64>) {
    let tl = timeline(recs, 100_000_000);
    let after: Vec<(u64, PathView)> = tl
        .iter()
        .filter(|(t, _)| *t >= THROTTLE_NS)
        .cloned()
        .collect();
    let mbps = |v: &PathView| v.avail_bw_mbps.unwrap_or(f64::INFINITY);
    let half = settles(&after, |v| mbps(v) < (before + AFTER) / 2e6);
    let near = settles(&after, |v| {
        (mbps(v) - AFTER / 1e6).abs() <= 0.15 * AFTER / 1e6
    });
    for (t, v) in tl.iter().filter(|(t, _)| {
        (THROTTLE_NS - 1_000_000_000..=END_NS).contains(t) && (t / 100_000_000).is_multiple_of(10)
    }) {
        println!(
            "{name} {:>5.1} s: {:?} {:?} ({:?}..{:?}) floor {:?} trains {}",
            (*t as f64 - THROTTLE_NS as f64) / 1e9,
            v.avail_bw_kind,
            v.avail_bw_mbps.map(|x| x.round()),
            v.avail_bw_low_mbps.map(|x| x.round()),
            v.avail_bw_high_mbps.map(|x| x.round()),
            v.delivered_floor_mbps.map(|x| x.round()),
            v.trains
        );
    }
    println!(
        "{name}: below halfway for good after {half:?} s, within 15% of the new A after {near:?} s"
    );
    (half, near)
}

#[test]
fn a_throttle_moves_the_view_of_trains_that_outrun_the_new_path_within_3_s() {
    // Trains at 30 to 150 Mbit/s: after the throttle most of them rise, and the
    // delivered-rate floor is low (the trains are short and far apart).
    let (half, near) = report("trains", &trains());
    assert!(half.is_some_and(|s| s <= 3.0), "{half:?}");
    assert!(near.is_some_and(|s| s <= 6.0), "{near:?}");
}

#[test]
fn a_throttle_moves_the_view_of_a_bulk_sender_within_3_s() {
    // Its first losses after the throttle, at rates the trains before it proved the
    // path could carry, prove A fell: the older trains and what was delivered before
    // are not used from then on.
    let (half, near) = report("bulk with drops", &bulk_with_drops());
    assert!(half.is_some_and(|s| s <= 3.0), "{half:?}");
    assert!(near.is_some_and(|s| s <= 3.0), "{near:?}");
}

#[test]
fn cross_traffic_that_comes_moves_the_view_of_application_limited_bursts_within_3_s() {
    // Bursts that the path carried at up to 100 Mbit/s expand to what 70 Mbit/s of
    // cross traffic leaves them: their dispersion proves A fell, against a clean path
    // whose trains never contradicted it. Eight draws of the bursts.
    for seed in 29..37 {
        let recs = bursts_meeting_cross_traffic(0.0, seed);
        let (half, _) = report(
            &format!("bursts, cross traffic 0 -> 70%, seed {seed}"),
            &recs,
        );
        assert!(half.is_some_and(|s| s <= 3.0), "seed {seed}: {half:?}");
    }
}

/// Cross traffic that grows from 30 to 70 Mbit/s (A: 70 -> 30): few bursts prove A
/// below 1/1.5 of the old answer (a burst at r leaves the FIFO at 100·r/(r + 70), below
/// 47 only for r below about 60), but many prove it below the old answer's range at
/// all, far more often than the noise of 30% cross traffic made them before.
#[test]
fn cross_traffic_that_grows_moves_the_view_of_application_limited_bursts_within_3_s() {
    for seed in 29..37 {
        let recs = bursts_meeting_cross_traffic(30e6, seed);
        let name = format!("bursts, cross traffic 30 -> 70%, seed {seed}");
        let (half, _) = report_from(&name, &recs, 70e6);
        assert!(half.is_some_and(|s| s <= 3.0), "seed {seed}: {half:?}");
    }
}

/// A sender that follows the new A at once, with neither loss nor a growing queue: no
/// train proves the older ones wrong (none outran the new A), so the view follows as
/// the 10-s window passes, and the delivered-rate floor's spans, reaching up to 15
/// slots further back, hold it longer. Run with `--ignored --nocapture` for the figures.
#[test]
#[ignore = "no evidence of the change but the sender's slower trains: the view follows only as the window passes"]
fn a_throttle_a_sender_follows_at_once_moves_the_view_within_3_s() {
    let (half, _) = report("bulk", &bulk());
    assert!(half.is_some_and(|s| s <= 3.0), "{half:?}");
}
