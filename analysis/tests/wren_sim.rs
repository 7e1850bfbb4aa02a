//! Wren against the physics it rests on: a sender emits trains of segments at rates
//! below and above the available bandwidth A = C − X of a FIFO bottleneck (capacity C,
//! constant cross traffic X); each segment's RTT is the base RTT plus the queueing
//! delay it met; the receiver ACKs every second segment. Wren must find A within 15%
//! and the base RTT, from the records alone.

use analysis::engine::Engine;
use analysis::record::{Record, Timebase, FLAG_TCP, FLAG_TCP_TS};
use analysis::vadapt::rng::Rng;
use analysis::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH};
use analysis::wren::{AvailKind, Config, PathView, Wren};

const SRC: u32 = 0xc612_0001; // 198.18.0.1
const DST: u32 = 0xc612_0102; // 198.18.1.2
const MSS: u32 = 1448;
const FRAME: u32 = MSS + 66;

fn data(t: u64, seq: u32) -> Record {
    Record {
        time: t,
        src_ip: SRC,
        dst_ip: DST,
        src_port: 40000,
        dst_port: 5201,
        seq,
        ack: 1,
        payload_len: MSS as u16,
        frame_len: FRAME,
        protocol: 6,
        tcp_flags: FLAG_ACK | FLAG_PSH,
        flags: FLAG_TCP,
        ..Default::default()
    }
}

fn ack(t: u64, ack: u32) -> Record {
    Record {
        time: t,
        src_ip: DST,
        dst_ip: SRC,
        src_port: 5201,
        dst_port: 40000,
        seq: 1,
        ack,
        frame_len: 66,
        protocol: 6,
        tcp_flags: FLAG_ACK,
        flags: FLAG_TCP,
        ..Default::default()
    }
}

/// Wren's view of the path from the simulated sender.
fn sender_view(w: &Wren) -> PathView {
    let views = w.views(|ip| format!("{ip:08x}"));
    let src = format!("{SRC:08x}");
    views
        .into_iter()
        .find(|p| p.src == src)
        .expect("the sender's path")
}

/// `r` with the TCP timestamp option (TSval, TSecr).
fn ts(mut r: Record, tsval: u32, tsecr: u32) -> Record {
    r.flags |= FLAG_TCP_TS;
    r.tsval = tsval;
    r.tsecr = tsecr;
    r
}

/// Simulates `seconds` of trains and returns the records in time order.
fn simulate(c_bps: f64, x_bps: f64, base_rtt_ns: u64, seconds: f64, rng: &mut Rng) -> Vec<Record> {
    simulate_rates(c_bps, x_bps, base_rtt_ns, seconds, (0.4, 2.0), rng)
}

/// As `simulate`, with train rates uniform in `rates` (multiples of A).
fn simulate_rates(
    c_bps: f64,
    x_bps: f64,
    base_rtt_ns: u64,
    seconds: f64,
    rates: (f64, f64),
    rng: &mut Rng,
) -> Vec<Record> {
    let a = c_bps - x_bps;
    let mut events: Vec<Record> = Vec::new();
    let mut t = 0u64;
    let mut seq = 1u32;
    let mut backlog_bits = 0.0f64; // our bits waiting at the bottleneck (served at A)
    let mut last_arrival = 0u64;
    let end = (seconds * 1e9) as u64;
    while t < end {
        // A train at a random rate in the given range (multiples of A), of 32 segments.
        let rate = a * (rates.0 + (rates.1 - rates.0) * rng.unit());
        let spacing = (FRAME as f64 * 8.0 / rate * 1e9) as u64;
        for k in 0..32u32 {
            let ts = t + k as u64 * spacing;
            let dt = (ts - last_arrival) as f64 / 1e9;
            backlog_bits = (backlog_bits - a * dt).max(0.0) + FRAME as f64 * 8.0;
            last_arrival = ts;
            let queue_ns = (backlog_bits / a * 1e9) as u64;
            let jitter = (rng.unit() * 30_000.0) as u64;
            let rtt = base_rtt_ns + queue_ns + jitter;
            events.push(data(ts, seq));
            seq = seq.wrapping_add(MSS);
            if k % 2 == 1 || k == 31 {
                events.push(ack(ts + rtt, seq));
            }
        }
        // Idle long enough for the queue to drain and the ACKs to return.
        let drain = (backlog_bits / a * 1e9) as u64;
        t += 32 * spacing + drain + 2 * base_rtt_ns + (rng.unit() * base_rtt_ns as f64) as u64;
    }
    events.sort_by_key(|r| r.time);
    events
}

#[test]
fn available_bandwidth_within_15_percent_across_capacity_cross_traffic_and_rtt() {
    let mut rng = Rng::new(20060425);
    let mut errors = Vec::new();
    for &c in &[20e6, 50e6, 100e6] {
        for &xf in &[0.0, 0.3, 0.7] {
            for &rtt_ms in &[4u64, 20, 80] {
                let rtt = rtt_ms * 1_000_000;
                let recs = simulate(c, c * xf, rtt, 20.0, &mut rng);
                let mut w = Wren::new(Config::default());
                w.on_batch(&recs, Timebase::NANOS);
                let v = w.views(|ip| format!("{ip:08x}"));
                let p = v
                    .iter()
                    .find(|p| p.src == format!("{SRC:08x}"))
                    .expect("path");
                let a = c * (1.0 - xf) / 1e6;
                assert_eq!(
                    p.avail_bw_kind,
                    AvailKind::Estimate,
                    "C={c} X={xf} RTT={rtt_ms}: {p:?}"
                );
                let est = p.avail_bw_mbps.unwrap();
                let err = (est - a).abs() / a;
                println!("C {:>5.0} X {:>3.0}% RTT {:>2} ms: A {:>6.1} estimate {:>6.1} ({:+.1}%) range {:.1}..{:.1} trains {}",
                    c / 1e6, xf * 100.0, rtt_ms, a, est, (est - a) / a * 100.0,
                    p.avail_bw_low_mbps.unwrap(), p.avail_bw_high_mbps.unwrap(), p.trains);
                errors.push(err);
                // The range says what the evidence supports: the truth is in it.
                let (lo, hi) = (p.avail_bw_low_mbps.unwrap(), p.avail_bw_high_mbps.unwrap());
                assert!(lo <= a && a <= hi, "A {a} outside {lo}..{hi}");
                // Base RTT: the least-queued segment saw the base, its own serialization
                // at A, and up to 30 us of jitter.
                let min_us = p.rtt_min_us.unwrap();
                let serialization_us = FRAME as f64 * 8.0 / (a * 1e6) * 1e6;
                let floor = rtt as f64 / 1e3;
                assert!(
                    min_us >= floor && min_us <= floor + serialization_us + 50.0,
                    "rtt_min {min_us} vs {rtt_ms} ms"
                );
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    let worst = *errors.last().unwrap();
    println!(
        "median error {:.1}%, worst {:.1}%",
        median * 100.0,
        worst * 100.0
    );
    assert!(
        median <= 0.15,
        "median relative error {:.1}%",
        median * 100.0
    );
    assert!(worst <= 0.30, "worst relative error {:.1}%", worst * 100.0);
}

#[test]
fn one_sided_evidence_gives_bounds_and_no_trains_give_none() {
    let mut rng = Rng::new(3);
    let view = |recs: &[Record]| {
        let mut w = Wren::new(Config::default());
        w.on_batch(recs, Timebase::NANOS);
        w.views(|ip| format!("{ip:08x}"))
            .into_iter()
            .find(|p| p.src == format!("{SRC:08x}"))
            .unwrap()
    };
    // Every train slower than A (50 Mb/s): A is at least the fastest of them.
    let p = view(&simulate_rates(
        50e6,
        0.0,
        10_000_000,
        10.0,
        (0.3, 0.8),
        &mut rng,
    ));
    assert_eq!(p.avail_bw_kind, AvailKind::LowerBound, "{p:?}");
    let lo = p.avail_bw_low_mbps.unwrap();
    assert!((0.7 * 50.0..=50.0).contains(&lo), "{lo}");
    assert!(p.avail_bw_high_mbps.is_none());
    // Every train faster than A: A is at most the slowest of them.
    let p = view(&simulate_rates(
        50e6,
        0.0,
        10_000_000,
        10.0,
        (1.5, 3.0),
        &mut rng,
    ));
    assert_eq!(p.avail_bw_kind, AvailKind::UpperBound, "{p:?}");
    let hi = p.avail_bw_high_mbps.unwrap();
    assert!((50.0..=1.6 * 50.0).contains(&hi), "{hi}");
    // A flow of pure ACKs (no data) has no trains: "none", and no number.
    let acks_only: Vec<Record> = (0..100).map(|i| ack(i * 1_000_000, 1)).collect();
    let mut w = Wren::new(Config::default());
    w.on_batch(&acks_only, Timebase::NANOS);
    assert!(w
        .views(|ip| format!("{ip:08x}"))
        .iter()
        .all(|p| p.avail_bw_kind == AvailKind::None && p.avail_bw_mbps.is_none()));
}

#[test]
fn retransmitted_segments_give_no_rtt_sample() {
    // A segment sent at 0, retransmitted at 500 ms, ACKed at 510 ms: Karn says no sample.
    let recs = vec![data(0, 1), data(500_000_000, 1), ack(510_000_000, 1 + MSS)];
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.rtt_samples, 0, "{p:?}");
    // Without the retransmission the same ACK gives one 510 ms sample.
    let recs = vec![data(0, 1), ack(510_000_000, 1 + MSS)];
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.rtt_samples, 1);
    assert!((p.rtt_min_us.unwrap() - 510_000.0).abs() < 1.0);
}

#[test]
fn an_echo_of_a_pure_acks_timestamp_after_idle_time_is_no_rtt_sample() {
    // Both ends use TCP timestamps. A sends data (TSval 10), B ACKs it at 1 ms echoing
    // 10: one 1 ms sample. A's pure ACK of B's data carries TSval 11; nobody answers a
    // pure ACK, so B's next segment, 5 s later, echoes 11: that is idle time, not a
    // round trip, and must give no sample.
    let mut b_data = ack(1_000_000, 1 + MSS);
    b_data.payload_len = 100;
    let mut a_pure_ack = data(2_000_000, 1 + MSS);
    a_pure_ack.payload_len = 0;
    a_pure_ack.ack = 101;
    let recs = vec![
        ts(data(0, 1), 10, 500),
        ts(b_data, 501, 10),
        ts(a_pure_ack, 11, 501),
        ts(ack(5_002_000_000, 1 + MSS), 502, 11),
    ];
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.rtt_samples, 1, "{p:?}");
    assert!((p.rtt_p99_us.unwrap() - 1000.0).abs() < 10.0, "{p:?}");
}

#[test]
fn with_timestamps_every_ack_still_times_the_segment_it_answers() {
    // Linux's TSval ticks once a millisecond; at 100 Mbit/s eight segments share one.
    // The receiver ACKs every second segment (echoing the first's TSval) after an RTT
    // that grows from 20 to 60 ms as a queue builds. Like tcptrace, Wren must take one
    // sample per ACK, timed from the newest segment it covers: the timestamps' first
    // occurrence would time the ACK from up to a millisecond earlier, and one sample per
    // millisecond would weigh the path's RTT by time instead of by packet.
    let spacing = 125_000u64; // 8 segments a millisecond
    let n = 16_000u32;
    let rtt = |i: u32| 20_000_000 + (40_000_000 * i as u64) / n as u64;
    let mut recs = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let t = i as u64 * spacing;
        let tsval = (t / 1_000_000) as u32;
        recs.push(ts(data(t, 1 + i * MSS), tsval, 1));
        if i % 2 == 1 {
            let first_tsval = ((t - spacing) / 1_000_000) as u32;
            recs.push(ts(ack(t + rtt(i), 1 + (i + 1) * MSS), 7, first_tsval));
            expected.push(rtt(i) as f64 / 1e3);
        }
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.rtt_samples, expected.len() as u64, "{p:?}");
    let mean = expected.iter().sum::<f64>() / expected.len() as f64;
    let got = p.rtt_mean_us.unwrap();
    assert!(
        (got - mean).abs() / mean < 0.01,
        "mean {got} us, per ACK {mean} us"
    );
}

#[test]
fn a_retransmission_timed_by_its_timestamp_is_still_no_sample() {
    // Segment 1 (TSval 10) is lost, segment 2 (TSval 11) follows; segment 1 is sent
    // again at 300 ms (TSval 310) into a full queue and the ACK of both, echoing 310,
    // comes at 480 ms. The timestamp makes that 180 ms unambiguous, but a retransmission
    // is sent when the queue is full: Karn (and tcptrace) leave it out, so must Wren.
    let recs = vec![
        ts(data(0, 1), 10, 1),
        ts(data(1_000_000, 1 + MSS), 11, 1),
        ts(data(300_000_000, 1), 310, 1),
        ts(ack(480_000_000, 1 + 2 * MSS), 2, 310),
        // A segment sent after the retransmission times the path again: 80 ms.
        ts(data(481_000_000, 1 + 2 * MSS), 481, 2),
        ts(ack(561_000_000, 1 + 3 * MSS), 3, 481),
    ];
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.rtt_samples, 1, "{p:?}");
    assert!((p.rtt_p99_us.unwrap() - 80_000.0).abs() < 100.0, "{p:?}");
}

#[test]
fn timestamps_time_a_path_with_more_in_flight_than_the_cap() {
    // Sequence numbers cannot time this flow (no room to track its segments: as when a
    // capture starts mid-flow), so its timestamps must. One segment a millisecond, each
    // with a new TSval; the receiver ACKs every second one 60 ms later, echoing the
    // first of the two (RFC 7323), so half the TSvals are never echoed; 60 TSvals are
    // in flight, more than the 32 kept per flow. Every sample taken is 60 ms, and samples
    // keep coming to the end (values never echoed must not clog the queue).
    let cfg = Config {
        max_outstanding: 0,
        ..Config::default()
    };
    let n = 2000u32;
    let mut recs = Vec::new();
    for i in 0..n {
        let mut d = data(i as u64 * 1_000_000, 1 + i * MSS);
        d.flags |= FLAG_TCP_TS;
        d.tsval = 1000 + i;
        recs.push(d);
    }
    for i in (1..n).step_by(2) {
        let mut a = ack(i as u64 * 1_000_000 + 60_000_000, 1 + (i + 1) * MSS);
        a.flags |= FLAG_TCP_TS;
        a.tsval = 5000 + i;
        a.tsecr = 1000 + i - 1;
        recs.push(a);
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(cfg);
    let (head, tail) = recs.split_at(recs.len() / 2);
    w.on_batch(head, Timebase::NANOS);
    let at_half = w.views(|ip| format!("{ip:08x}"))[0].rtt_samples;
    w.on_batch(tail, Timebase::NANOS);
    let p = sender_view(&w);
    assert!(p.rtt_samples >= 200, "{p:?}");
    assert!(
        p.rtt_samples - at_half >= 100,
        "sampling stopped: {at_half} then {p:?}"
    );
    // An echo of the first of two segments sent 1 ms apart, ACKed after the second.
    assert!((p.rtt_min_us.unwrap() - 61_000.0).abs() < 100.0, "{p:?}");
    assert!((p.rtt_p99_us.unwrap() - 61_000.0).abs() < 100.0, "{p:?}");
}

#[test]
fn min_rtt_follows_a_path_whose_base_delay_grows() {
    // 5 s at 1 ms RTT, then 30 s at 10 ms (the path got longer): the minimum reported
    // is the new one, as the old minimum ages out of the two-window filter.
    let mut recs = Vec::new();
    let mut seq = 1u32;
    let mut t = 0u64;
    while t < 35_000_000_000 {
        let rtt = if t < 5_000_000_000 {
            1_000_000
        } else {
            10_000_000
        };
        recs.push(data(t, seq));
        recs.push(ack(t + rtt, seq + MSS));
        seq += MSS;
        t += 50_000_000;
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert!((p.rtt_min_us.unwrap() - 10_000.0).abs() < 10.0, "{p:?}");
}

#[test]
fn a_continuous_sender_with_hundreds_of_segments_in_flight_gets_an_estimate() {
    // A bulk sender that never pauses (as TCP on a long path does): its rate swings
    // between 1.2 and 0.7 of A, one base RTT each, over an 80 ms path at 100 Mbit/s
    // with 30 Mbit/s cross traffic, so ~500 segments are in flight at once; and at
    // 200 Mbit/s with 50 of cross traffic, ~1000 in flight: eight maximal trains wait
    // for their ACKs at once. Wren must time them all and find A.
    continuous_sender(100e6, 30e6, 80_000_000);
    continuous_sender(200e6, 50e6, 80_000_000);
}

fn continuous_sender(c: f64, x: f64, base: u64) {
    estimate_is_within_15_percent(c - x, continuous_records(c - x, base, base, 1));
}

/// A bulk sender's records, as `continuous_sender` describes, its rate changing every
/// `phase` ns, each record carrying `mss_per` MSS of payload (more than one: a guest's TSO segment, cut into MSS-sized frames
/// only on the wire; the receiver ACKs every second frame, and the ACK that covers a
/// whole segment comes when its last frame has crossed the bottleneck).
fn continuous_records(a: f64, base: u64, phase: u64, mss_per: u32) -> Vec<Record> {
    let mut rng = Rng::new(77);
    let mut recs = Vec::new();
    let (mut t, mut seq, mut backlog, mut last) = (0u64, 1u32, 0.0f64, 0u64);
    let mut k = 0u32;
    let wire_bits = (mss_per * FRAME) as f64 * 8.0;
    while t < 12_000_000_000 {
        let rate = if (t / phase).is_multiple_of(2) {
            1.2 * a
        } else {
            0.7 * a
        };
        let dt = (t - last) as f64 / 1e9;
        backlog = (backlog - a * dt).max(0.0) + wire_bits;
        last = t;
        let rtt = base + (backlog / a * 1e9) as u64 + (rng.unit() * 30_000.0) as u64;
        let mut r = data(t, seq);
        r.payload_len = (mss_per * MSS) as u16;
        r.frame_len = mss_per * MSS + 66;
        recs.push(r);
        if mss_per > 1 {
            // The ACK of its first half, while the rest still waits in the queue.
            let half = (wire_bits / 2.0 / a * 1e9) as u64;
            recs.push(ack(t + rtt - half, seq.wrapping_add(mss_per / 2 * MSS)));
        }
        seq = seq.wrapping_add(mss_per * MSS);
        if k % 2 == 1 || mss_per > 1 {
            recs.push(ack(t + rtt, seq));
        }
        k += 1;
        t += (wire_bits / rate * 1e9) as u64;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

fn estimate_is_within_15_percent(a: f64, recs: Vec<Record>) {
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.avail_bw_kind, AvailKind::Estimate, "{p:?}");
    let err = (p.avail_bw_mbps.unwrap() - a / 1e6).abs() / (a / 1e6);
    assert!(
        err <= 0.15,
        "estimate {:?} for A = {} ({p:?})",
        p.avail_bw_mbps,
        a / 1e6
    );
}

#[test]
fn a_guests_tso_segments_are_timed_and_trained_whole() {
    // A vhost-user guest with TSO hands the daemon 64 KB segments (45 MSS), cut into
    // frames only by the NIC: each is one record, timed by the ACK that covers all of
    // it, and a train's rate counts its whole bytes. 100 Mbit/s with 30 of cross
    // traffic, 20 and 80 ms. A train of 16 such records lasts over 100 ms, so a sender
    // whose rate swings every 2 s gets an estimate; one that swings every round trip
    // averages out within each train, and the answer may only be a bound, but on the
    // right side.
    for base in [20_000_000, 80_000_000] {
        estimate_is_within_15_percent(70e6, continuous_records(70e6, base, 2_000_000_000, 45));
        let mut w = Wren::new(Config::default());
        w.on_batch(&continuous_records(70e6, base, base, 45), Timebase::NANOS);
        let p = sender_view(&w);
        assert!(answer_is_consistent(&p, 70e6), "{p:?}");
    }
}

#[test]
fn reordered_segments_and_acks_give_no_bogus_answer() {
    // One data segment in 50 overtakes its predecessor before the capture point (a
    // multi-queue NIC, a guest's two vCPUs) and one ACK in 50 arrives after the next.
    // The late segment is no retransmission (it fills a range no segment covered yet):
    // it is not timed, and the trains go on. The stale ACK covers nothing new. Taken
    // for retransmissions, such segments emptied every train: no answer at all.
    let a = 70e6;
    let mut recs = continuous_records(a, 20_000_000, 20_000_000, 1);
    let data_at: Vec<usize> = (0..recs.len())
        .filter(|&i| recs[i].payload_len > 0)
        .collect();
    for w in data_at.chunks(2).step_by(25) {
        if let [i, j] = *w {
            let (si, sj) = (recs[i].seq, recs[j].seq);
            recs[i].seq = sj;
            recs[j].seq = si;
        }
    }
    let acks_at: Vec<usize> = (0..recs.len())
        .filter(|&i| recs[i].payload_len == 0)
        .collect();
    for w in acks_at.chunks(2).step_by(25) {
        if let [i, j] = *w {
            recs[i].time = recs[j].time + 1_000;
        }
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    assert!(w.counters().reordered_segments > 100, "{:?}", w.counters());
    let p = sender_view(&w);
    assert!(p.rtt_min_us.is_some_and(|m| m >= 20_000.0), "{p:?}");
    estimate_is_within_15_percent(a, recs);
}

/// Whether `p`'s answer is consistent with the truth `a` (bits/s): an estimate within
/// 30%, a lower bound not above it or an upper bound not below it (5% of slack for the
/// rates' own measurement), or none.
fn answer_is_consistent(p: &PathView, a: f64) -> bool {
    let a = a / 1e6;
    match p.avail_bw_kind {
        AvailKind::None | AvailKind::LowerBound => p.avail_bw_mbps.is_none_or(|v| v <= a * 1.05),
        AvailKind::UpperBound => p.avail_bw_mbps.is_some_and(|v| v >= a * 0.95),
        AvailKind::Estimate => p.avail_bw_mbps.is_some_and(|v| (v - a).abs() <= 0.3 * a),
    }
}

#[test]
fn memory_is_accounted_and_released_when_flows_expire() {
    let mut rng = Rng::new(9);
    let recs = simulate(50e6, 10e6, 20_000_000, 5.0, &mut rng);
    let mut w = Wren::new(Config::default());
    // Drop every third ACK so some segments and trains stay unfinished.
    let thinned: Vec<Record> = recs
        .iter()
        .enumerate()
        .filter(|(i, r)| r.payload_len > 0 || i % 3 != 0)
        .map(|(_, r)| *r)
        .collect();
    w.on_batch(&thinned, Timebase::NANOS);
    let (flows, out, train) = w.held();
    assert_eq!(flows, 2);
    assert!(
        out <= Config::default().max_outstanding && train <= 4 * 128 + 128,
        "{out} {train}"
    );
    let end = thinned.last().unwrap().time;
    w.expire(end + Config::default().flow_idle_ns + 1);
    assert_eq!(w.held(), (0, 0, 0));
    // Caps hold for many flows: 100k one-packet flows stay within max_flows and the totals.
    let cfg = Config {
        max_flows: 50_000,
        ..Config::default()
    };
    let mut w = Wren::new(cfg);
    let many: Vec<Record> = (0..100_000u32)
        .map(|i| Record {
            src_port: (i % 60_000) as u16,
            src_ip: SRC + i / 60_000,
            ..data(i as u64 * 1000, 1)
        })
        .collect();
    w.on_batch(&many, Timebase::NANOS);
    let (flows, out, _) = w.held();
    assert_eq!(flows, 50_000);
    assert_eq!(out, 50_000);
    assert_eq!(w.counters().flows_not_tracked, 50_000);
}

#[test]
fn a_syn_flood_neither_grows_the_flow_table_nor_keeps_data_flows_from_being_tracked() {
    let cfg = Config {
        max_flows: 10_000,
        ..Config::default()
    };
    let mut w = Wren::new(cfg);
    // 100k SYNs to new ports within one second (a guest flooding).
    let syns: Vec<Record> = (0..100_000u32)
        .map(|i| Record {
            dst_port: (i % 60_000) as u16,
            src_port: 1000 + (i / 60_000) as u16,
            payload_len: 0,
            frame_len: 54,
            tcp_flags: analysis::wire::tcp::FLAG_SYN,
            ..data(i as u64 * 10_000, 1)
        })
        .collect();
    w.on_batch(&syns, Timebase::NANOS);
    assert_eq!(w.held().0, cfg.max_flows / 2, "SYN-only flows fill half");
    assert_eq!(
        w.counters().flows_not_tracked,
        100_000 - cfg.max_flows as u64 / 2
    );
    // A transfer that starts during the flood is tracked and measured.
    let t0 = 1_000_000_000;
    let transfer: Vec<Record> = (0..200u32)
        .flat_map(|k| {
            let t = t0 + k as u64 * 100_000;
            [data(t, 1 + k * MSS), ack(t + 1_000_000, 1 + (k + 1) * MSS)]
        })
        .collect();
    w.on_batch(&transfer, Timebase::NANOS);
    assert_eq!(w.held().0, cfg.max_flows / 2 + 1);
    // Flows that never carried data are forgotten after `embryonic_idle_ns`, the
    // transfer's only after `flow_idle_ns`.
    w.expire(cfg.embryonic_idle_ns + t0 + 1);
    assert_eq!(w.held().0, 1);
}

/// Loss episodes at the given sending rates: per episode 40 segments, the 20th lost at
/// a full queue; duplicate ACKs for the rest; the lost one sent again one RTT later and
/// the ACK of everything follows one RTT after that, echoing the retransmission's TSval
/// (`real`) or, when the original had only been delayed, the original's (spurious).
fn loss_episodes(rates_bps: &[f64], real: bool) -> Vec<Record> {
    loss_episodes_in_bursts(rates_bps, real, 1)
}

/// As `loss_episodes`, the segments sent in bursts of `burst` at 1 Gbit/s, each burst
/// followed by the idle time that keeps the average rate (a slow start's ACK-clocked
/// bursts).
fn loss_episodes_in_bursts(rates_bps: &[f64], real: bool, burst: u32) -> Vec<Record> {
    let rtt = 40_000_000u64;
    let ms = |t: u64| (t / 1_000_000) as u32;
    let mut recs = Vec::new();
    let (mut t0, mut seq) = (0u64, 1u32);
    for &rate in rates_bps {
        let spacing = (FRAME as f64 * 8.0 / rate * 1e9) as u64;
        let lost_seq = seq + 19 * MSS;
        let line_spacing = (FRAME as f64 * 8.0 / 1e9 * 1e9) as u64;
        for k in 0..40u32 {
            let t = t0 + (k / burst * burst) as u64 * spacing + (k % burst) as u64 * line_spacing;
            recs.push(ts(data(t, seq + k * MSS), ms(t), 1));
            let acked = if k < 19 {
                seq + (k + 1) * MSS
            } else {
                lost_seq
            };
            if k == 19 && !real {
                continue;
            }
            recs.push(ts(ack(t + rtt, acked), 9, ms(t)));
        }
        let t_re = t0 + 40 * spacing + rtt;
        recs.push(ts(data(t_re, lost_seq), ms(t_re), 1));
        let echo = if real {
            ms(t_re)
        } else {
            ms(t0 + 19 * spacing)
        };
        recs.push(ts(ack(t_re + rtt, seq + 40 * MSS), 9, echo));
        seq += 40 * MSS;
        t0 = t_re + 3 * rtt;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

#[test]
fn a_real_loss_says_its_segments_were_sent_faster_than_the_path_allows() {
    // A drop-tail queue that overflows gives flat delays, so no train shows a rising
    // trend; the losses are the evidence. Three episodes at 30, 40 and 50 Mbit/s: each
    // loss says the segments sent up to it went too fast; one train is noise, so the
    // bound is the second slowest (and a real bound: the path had less room than 40),
    // with one segment of its 16 allowed (the queue may have been full before it).
    let recs = loss_episodes(&[30e6, 40e6, 50e6], true);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.avail_bw_kind, AvailKind::UpperBound, "{p:?}");
    let hi = p.avail_bw_high_mbps.unwrap();
    assert!((hi - 40.0 * (1.0 + 1.0 / 15.0)).abs() < 1.0, "{p:?}");
    assert_eq!(w.counters().spurious_retransmissions, 0);
    // Without timestamps a spurious retransmission cannot be told from a loss: no verdict.
    let plain: Vec<Record> = recs
        .iter()
        .map(|r| Record {
            flags: r.flags & !FLAG_TCP_TS,
            ..*r
        })
        .collect();
    let mut w = Wren::new(Config::default());
    w.on_batch(&plain, Timebase::NANOS);
    let v = w.views(|ip| format!("{ip:08x}"));
    assert_eq!(v[0].avail_bw_kind, AvailKind::None, "{:?}", v[0]);
}

#[test]
fn a_loss_among_bursts_says_nothing_of_their_average_pace() {
    // A slow start sends bursts at line rate, ACK-clocked, idle between them; the queue
    // overflows with the whole window. The 16 segments before the lost one, two bursts
    // and a gap, were no stream at any one rate: their average (30-50 Mbit/s here) is no
    // bound on A. Taken as one stream, they gave an upper bound of 73 Mbit/s on a path
    // that took bursts at line rate.
    let recs = loss_episodes_in_bursts(&[30e6, 40e6, 50e6], true, 10);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.avail_bw_kind, AvailKind::None, "{p:?}");
}

#[test]
fn a_spurious_retransmission_is_no_loss() {
    // The same episodes, but the "lost" segments were only delayed: the ACK that covers
    // each echoes the original's TSval (Eifel), so no verdict is drawn.
    let recs = loss_episodes(&[30e6, 40e6, 50e6], false);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert_eq!(p.trains, 0, "{p:?}");
    assert_eq!(w.counters().spurious_retransmissions, 3);
}

/// An application-limited sender: bursts of 1 to 2 `burst` − 1 segments at `line_bps`,
/// each followed by the idle time that makes its average `avg_bps`, through a
/// bottleneck with available bandwidth `a_bps` and base RTT `base`; the queue drains
/// in each idle gap.
fn bursty_sender(
    a_bps: f64,
    line_bps: f64,
    avg_bps: f64,
    burst: u32,
    base: u64,
    seed: u64,
) -> Vec<Record> {
    let mut rng = Rng::new(seed);
    let frame_bits = FRAME as f64 * 8.0;
    let spacing = (frame_bits / line_bps * 1e9) as u64;
    let mut recs = Vec::new();
    let (mut seq, mut backlog, mut last) = (1u32, 0.0f64, 0u64);
    let mut k = 0u32;
    let mut start = 0u64;
    while start < 12_000_000_000 {
        // Ragged bursts, `burst` segments on average (a daemon's or a NIC's batching,
        // TSO, the application's writes).
        let size = 1 + (rng.unit() * (2 * burst - 1) as f64) as u64;
        for i in 0..size {
            let t = start + i * spacing;
            backlog = (backlog - a_bps * (t - last) as f64 / 1e9).max(0.0) + frame_bits;
            last = t;
            let rtt = base + (backlog / a_bps * 1e9) as u64 + (rng.unit() * 30_000.0) as u64;
            recs.push(data(t, seq));
            seq = seq.wrapping_add(MSS);
            if k % 2 == 1 {
                recs.push(ack(t + rtt, seq));
            }
            k += 1;
        }
        // The application's pace, with the jitter of its timer.
        let period = size as f64 * frame_bits / avg_bps * 1e9;
        start += (period * (1.0 + 0.1 * rng.unit())) as u64;
    }
    recs.sort_by_key(|r| r.time);
    recs
}

#[test]
fn an_application_limited_sender_whose_bursts_outrun_the_path_proves_no_bound_below_its_average() {
    // iperf3 -b and other applications that idle between writes send bursts, at line
    // rate or paced a little above A, with gaps in which the bottleneck's queue drains;
    // the bursts are ragged (the application's writes, TSO, a daemon's batching). The
    // delays rise in each burst and fall in each gap, which says nothing about the
    // average rate: judged as streams at their average rate, such trains gave verdicts
    // scattered around it and an estimate of 49 for an A of 100. The bursts are the
    // streams; an upper bound at their rate is an honest answer, a bound or estimate
    // below A is not.
    let a = 100e6;
    for (burst, burst_share, avg_share, base_ms, seed) in [
        (16, 10.0, 0.5, 20, 1),
        (24, 10.0, 0.5, 20, 2),
        (32, 10.0, 0.3, 20, 3),
        (48, 10.0, 0.7, 20, 4),
        (90, 1.25, 0.5, 40, 5),
        (90, 1.25, 0.5, 80, 6),
        (45, 1.5, 0.6, 40, 7),
        (64, 2.0, 0.6, 80, 8),
    ] {
        let recs = bursty_sender(
            a,
            burst_share * a,
            avg_share * a,
            burst,
            base_ms * 1_000_000,
            seed,
        );
        let mut w = Wren::new(Config::default());
        w.on_batch(&recs, Timebase::NANOS);
        let p = sender_view(&w);
        assert!(
            answer_is_consistent(&p, a),
            "bursts of {burst} at {avg_share} of A on average: {p:?}"
        );
    }
}

// Application-limited senders through a FIFO bottleneck shared with cross traffic: the
// senders' bursts, the bottleneck's queue, delayed ACKs and a reverse path that
// compresses ACKs, all simulated per packet; the answers are judged against the truth.

/// The host's line rate: an unpaced burst leaves at it.
const LINE_BPS: f64 = 10e9;
/// A receiver ACKs every second segment, or a lone one after this (Linux's delayed ACK).
const DELACK_NS: f64 = 40e6;

/// How a sender spaces the segments of its bursts.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// At the line rate: no pacing.
    Line,
    /// Each burst at a rate of its own, log-uniform between these multiples of A (a
    /// pacing rate that follows the congestion window and the RTT).
    Paced(f64, f64),
    /// Evenly at the flow's average rate, never idle.
    Even,
    /// Each burst at a rate of its own as in `Paced`, in quanta of this many segments
    /// at the line rate (a pacer that releases a TSO-sized chunk at a time, as Linux's
    /// TCP pacing does with BBR: ~13 segments a millisecond at ~170 Mbit/s).
    Quanta(f64, f64, u32),
}

#[derive(Debug, Clone, Copy)]
struct AppCase {
    c: f64,
    /// Cross traffic as a share of C.
    x_share: f64,
    /// The flows' average rate together, as a share of A.
    avg_share: f64,
    burst: u32,
    pace: Pace,
    flows: u16,
    rtt_ms: u64,
    seed: u64,
}

impl AppCase {
    fn a(&self) -> f64 {
        self.c * (1.0 - self.x_share)
    }
}

/// A FIFO of capacity `c` (bits/s) that Poisson cross traffic of 1500-byte packets
/// also feeds, at `x` on average; times in ns.
struct Fifo {
    c: f64,
    x: f64,
    free_at: f64,
    next_cross: f64,
}

impl Fifo {
    /// When a packet of `bits` arriving at `t` has left.
    fn depart(&mut self, t: f64, bits: f64, rng: &mut Rng) -> f64 {
        let cross_bits = 1500.0 * 8.0;
        while self.x > 0.0 && self.next_cross < t {
            self.free_at = self.free_at.max(self.next_cross) + cross_bits / self.c * 1e9;
            self.next_cross += -(1.0 - rng.unit()).ln() * cross_bits / self.x * 1e9;
        }
        self.free_at = self.free_at.max(t) + bits / self.c * 1e9;
        self.free_at
    }
}

fn flow_data(t: u64, seq: u32, f: u16) -> Record {
    Record {
        src_port: 40000 + f,
        ..data(t, seq)
    }
}

fn flow_ack(t: u64, a: u32, f: u16) -> Record {
    Record {
        dst_port: 40000 + f,
        ..ack(t, a)
    }
}

/// When each flow sends its segments (ns), in bursts as `case` says, for `secs`.
fn app_sends(case: &AppCase, secs: f64, rng: &mut Rng) -> Vec<(f64, u16)> {
    let frame_bits = FRAME as f64 * 8.0;
    let per_flow = case.avg_share * case.a() / case.flows as f64;
    let mut sends = Vec::new();
    for f in 0..case.flows {
        let mut start = rng.unit() * 20e6;
        while start < secs * 1e9 {
            let rate = match case.pace {
                Pace::Line => LINE_BPS,
                Pace::Paced(lo, hi) | Pace::Quanta(lo, hi, _) => {
                    case.a() * lo * (hi / lo).powf(rng.unit())
                }
                Pace::Even => per_flow,
            };
            let spacing = frame_bits / rate * 1e9;
            let line = frame_bits / LINE_BPS * 1e9;
            for i in 0..case.burst {
                let t = match case.pace {
                    Pace::Quanta(_, _, q) => (i / q * q) as f64 * spacing + (i % q) as f64 * line,
                    _ => i as f64 * spacing,
                };
                sends.push((start + t, f));
            }
            let period = case.burst as f64 * frame_bits / per_flow * 1e9;
            let jitter = match case.pace {
                Pace::Even => 1.0,
                _ => 0.9 + 0.2 * rng.unit(),
            };
            start += (period * jitter).max(case.burst as f64 * spacing);
        }
    }
    sends.sort_by(|a, b| a.0.total_cmp(&b.0));
    sends
}

/// The ACK times (ns) of one flow's segments, which reach the receiver at `arrivals`:
/// every second segment is ACKed at once, a lone one after `DELACK_NS`; `None` for a
/// segment a later ACK covers.
fn delayed_acks(arrivals: &[f64]) -> Vec<Option<f64>> {
    let mut out = vec![None; arrivals.len()];
    let mut unacked = 0;
    for (i, &t) in arrivals.iter().enumerate() {
        unacked += 1;
        let next_gap = arrivals.get(i + 1).map_or(f64::INFINITY, |n| n - t);
        if unacked == 2 {
            out[i] = Some(t);
            unacked = 0;
        } else if next_gap > DELACK_NS {
            out[i] = Some(t + DELACK_NS);
            unacked = 0;
        }
    }
    out
}

/// A reverse path that holds ACKs now and then (a busy queue or a NIC's interrupt
/// moderation) and releases them together: ACK compression. `acks` are (time, flow,
/// ACK number) leaving the receiver; returns them at the sender, in order.
fn compress(mut acks: Vec<(f64, u16, u32)>, one_way: f64, rng: &mut Rng) -> Vec<(f64, u16, u32)> {
    acks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut stall_at, mut stall_len) = (0.0f64, 0.0f64);
    let mut last = 0.0f64;
    for a in &mut acks {
        let mut t = a.0 + one_way;
        while stall_at + stall_len < t {
            stall_at += -(1.0 - rng.unit()).ln() * 10e6; // 100 a second
            stall_len = rng.unit() * 300e3;
        }
        if t >= stall_at {
            t = stall_at + stall_len;
        }
        t = t.max(last + 100.0);
        last = t;
        a.0 = t;
    }
    acks
}

/// The records of `case` over `secs` as a capture at the senders' host (µs timestamps)
/// shows them, and the wire rate the flows delivered together (bits/s).
fn app_records(case: &AppCase, secs: f64) -> (Vec<Record>, f64) {
    let mut rng = Rng::new(case.seed);
    let sends = app_sends(case, secs, &mut rng);
    let mut fifo = Fifo {
        c: case.c,
        x: case.x_share * case.c,
        free_at: 0.0,
        next_cross: 0.0,
    };
    let one_way = case.rtt_ms as f64 * 1e6 / 2.0;
    let us = |t: f64| ((t / 1e3).round() * 1e3) as u64;
    let mut recs = Vec::new();
    let mut per_flow: Vec<Vec<(f64, u32)>> = vec![Vec::new(); case.flows as usize];
    let mut seqs = vec![1u32; case.flows as usize];
    for &(t, f) in &sends {
        let seq = seqs[f as usize];
        recs.push(flow_data(us(t), seq, f));
        seqs[f as usize] = seq.wrapping_add(MSS);
        let out = fifo.depart(t, FRAME as f64 * 8.0, &mut rng);
        per_flow[f as usize].push((out + one_way, seq.wrapping_add(MSS)));
    }
    let mut acks = Vec::new();
    for (f, arr) in per_flow.iter().enumerate() {
        let times: Vec<f64> = arr.iter().map(|a| a.0).collect();
        for (i, at) in delayed_acks(&times).into_iter().enumerate() {
            if let Some(at) = at {
                acks.push((at, f as u16, arr[i].1));
            }
        }
    }
    for (t, f, a) in compress(acks, one_way, &mut rng) {
        recs.push(flow_ack(us(t), a, f));
    }
    recs.sort_by_key(|r| r.time);
    let delivered = sends.len() as f64 * FRAME as f64 * 8.0 / secs;
    (recs, delivered)
}

/// Wren's view of `case` after `secs`, and the rate its flows delivered.
fn app_view(case: &AppCase, secs: f64) -> (PathView, f64) {
    let (recs, delivered) = app_records(case, secs);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    (sender_view(&w), delivered)
}

/// One line for the figures: the case, the truth and the answer.
fn app_line(case: &AppCase, p: &PathView, delivered: f64) -> String {
    let a = case.a() / 1e6;
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    format!(
        "C {:>3.0} X {:>2.0}% avg {:.2}A burst {:>3} {:<16} flows {} rtt {:>2}: A {:>5.1} delivered {:>5.1} | {:?} {} ({}..{}) floor {} err {}",
        case.c / 1e6,
        case.x_share * 100.0,
        case.avg_share,
        case.burst,
        format!("{:?}", case.pace),
        case.flows,
        case.rtt_ms,
        a,
        delivered / 1e6,
        p.avail_bw_kind,
        f(p.avail_bw_mbps),
        f(p.avail_bw_low_mbps),
        f(p.avail_bw_high_mbps),
        f(p.delivered_floor_mbps),
        p.avail_bw_mbps
            .map_or("-".into(), |v| format!("{:+.1}%", (v - a) / a * 100.0)),
    )
}

/// The answer is on the right side of the truth `a` (bits/s) and not below the
/// flows' own delivered rate: a lower bound or estimate no less than 0.9 of it, a
/// lower bound no more than A (5% for the rates' own measurement), an upper bound no
/// less than A.
fn app_answer_holds(p: &PathView, a: f64, delivered: f64) -> bool {
    let (a, d) = (a / 1e6, delivered / 1e6);
    let v = p.avail_bw_mbps;
    let above_floor = v.is_some_and(|v| v >= 0.9 * d);
    match p.avail_bw_kind {
        AvailKind::None => false,
        AvailKind::LowerBound => above_floor && v.is_some_and(|v| v <= 1.05 * a),
        AvailKind::UpperBound => {
            v.is_some_and(|v| v >= 0.95 * a) && p.avail_bw_low_mbps.is_some_and(|l| l >= 0.9 * d)
        }
        AvailKind::Estimate => above_floor && v.is_some_and(|v| (v - a).abs() <= 0.3 * a),
    }
}

#[test]
fn parallel_flows_answer_no_lower_than_what_they_delivered_together() {
    // Two and four flows on one path, each well below A but together 0.8 of it (paced
    // evenly) or 0.5 of it (bursts at line rate, or paced below A): the path's answer
    // is one, and it is no lower than 0.9 of what the flows delivered together.
    let mut failed = Vec::new();
    for (i, &(flows, pace, avg_share, x_share)) in [
        (2, Pace::Even, 0.8, 0.0),
        (4, Pace::Even, 0.8, 0.3),
        (2, Pace::Line, 0.5, 0.3),
        (4, Pace::Line, 0.5, 0.7),
        (4, Pace::Even, 0.8, 0.7),
        (2, Pace::Paced(0.3, 0.9), 0.5, 0.3),
    ]
    .iter()
    .enumerate()
    {
        let case = AppCase {
            c: 100e6,
            x_share,
            avg_share,
            burst: 32,
            pace,
            flows,
            rtt_ms: 20,
            seed: 100 + i as u64,
        };
        let (p, delivered) = app_view(&case, 12.0);
        println!("{}", app_line(&case, &p, delivered));
        // The floor itself stays: the flows' trains, interleaved, prove no change of A.
        let floor_holds = p
            .delivered_floor_mbps
            .is_some_and(|f| f >= 0.9 * delivered / 1e6);
        if !app_answer_holds(&p, case.a(), delivered) || !floor_holds {
            failed.push(app_line(&case, &p, delivered));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn application_limited_bursts_give_estimates_where_they_outrun_the_path_and_bounds_elsewhere() {
    // Senders at 1/2 to 1/10 of A in bursts of 16-256 segments, paced at rates of their
    // own around and above A, paced below A, or unpaced (line rate), with cross
    // traffic of 0-70% of C, delayed ACKs and ACK compression. Every answer is on the
    // right side of A and no lower than what the sender delivered. Bursts paced across
    // A's rates fix TOPP's line: an estimate, within 15% in most cases, or where short
    // bursts meet heavy packet cross traffic (their verdicts near A disagree: A's grey
    // region, left out) a bound within 30% of A. Bursts below A, or all at line rate
    // (one point of the line), give bounds.
    let (mut i, mut failed, mut errs) = (0u64, Vec::new(), Vec::new());
    let (mut within, mut outrun) = (0usize, 0usize);
    for pace in [Pace::Paced(0.5, 4.0), Pace::Paced(0.3, 0.9), Pace::Line] {
        for x_share in [0.0, 0.3, 0.7] {
            for (avg_share, burst) in [(0.5, 16), (0.2, 64), (0.1, 256)] {
                i += 1;
                let case = AppCase {
                    c: 100e6,
                    x_share,
                    avg_share,
                    burst,
                    pace,
                    flows: 1,
                    rtt_ms: 20,
                    seed: 200 + i,
                };
                let (p, delivered) = app_view(&case, 20.0);
                println!("{}", app_line(&case, &p, delivered));
                let a = case.a();
                let exceeds = matches!(pace, Pace::Paced(_, hi) if hi > 1.0);
                let close = p.avail_bw_kind == AvailKind::Estimate
                    && p.avail_bw_mbps
                        .is_some_and(|v| (v - a / 1e6).abs() <= 0.15 * a / 1e6);
                if exceeds {
                    within += close as usize;
                    outrun += 1;
                }
                let close_bound = p.avail_bw_kind != AvailKind::Estimate
                    && p.avail_bw_mbps
                        .is_some_and(|v| (v - a / 1e6).abs() <= 0.3 * a / 1e6);
                let estimated = !exceeds || p.avail_bw_kind == AvailKind::Estimate || close_bound;
                let ok = app_answer_holds(&p, a, delivered) && estimated;
                if let Some(v) = p.avail_bw_mbps {
                    errs.push((format!("{pace:?}"), (v - a / 1e6).abs() / (a / 1e6)));
                }
                if !ok {
                    failed.push(app_line(&case, &p, delivered));
                }
            }
        }
    }
    for class in ["Paced(0.5, 4.0)", "Paced(0.3, 0.9)", "Line"] {
        let mut e: Vec<f64> = errs
            .iter()
            .filter(|(c, _)| c == class)
            .map(|x| x.1)
            .collect();
        e.sort_by(f64::total_cmp);
        if let (Some(m), Some(w)) = (e.get(e.len() / 2), e.last()) {
            println!(
                "{class}: median error {:.1}%, worst {:.1}%",
                m * 100.0,
                w * 100.0
            );
        }
    }
    println!("bursts that outrun A: {within} of {outrun} estimates within 15%");
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(2 * within > outrun, "{within} of {outrun} within 15%");
}

#[test]
fn a_pacers_quanta_are_judged_cycle_by_cycle() {
    // Bursts of 181 segments (256 KB writes) paced in quanta of 13 segments at the line
    // rate, each burst at a rate of its own: above A (as BBR paces a write at 1.25-2x
    // its bandwidth estimate) or below it, with cross traffic of 0-50% of C. No quantum
    // is long enough to be judged alone; the cycles are. Above A every answer is on the
    // right side and within 15% of A; below it, a consistent lower bound.
    let mut failed = Vec::new();
    for (i, &(pace, x_share)) in [
        (Pace::Quanta(1.3, 2.0, 13), 0.0),
        (Pace::Quanta(1.3, 2.0, 13), 0.3),
        (Pace::Quanta(1.2, 3.0, 13), 0.5),
        (Pace::Quanta(0.3, 0.8, 13), 0.0),
        (Pace::Quanta(0.3, 0.8, 13), 0.5),
    ]
    .iter()
    .enumerate()
    {
        let case = AppCase {
            c: 100e6,
            x_share,
            avg_share: 0.2,
            burst: 181,
            pace,
            flows: 1,
            rtt_ms: 20,
            seed: 300 + i as u64,
        };
        let (p, delivered) = app_view(&case, 12.0);
        println!("{}", app_line(&case, &p, delivered));
        let a = case.a() / 1e6;
        let above = matches!(pace, Pace::Quanta(lo, ..) if lo > 1.0);
        let close = p.avail_bw_kind != AvailKind::LowerBound
            && p.avail_bw_mbps.is_some_and(|v| (v - a).abs() <= 0.15 * a);
        let judged = if above {
            close
        } else {
            p.avail_bw_kind == AvailKind::LowerBound
        };
        if !app_answer_holds(&p, case.a(), delivered) || !judged {
            failed.push(app_line(&case, &p, delivered));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn short_connections_are_judged_to_their_fin() {
    // Connections of 40 segments back to back, each its own flow, each sent at 1.5 A
    // and ending with its FIN: no later data ends a connection's train, its FIN does.
    // Every train rose, so A is at most about what they proved.
    let (c, base) = (50e6, 20_000_000u64);
    let tx = FRAME as f64 * 8.0 / c * 1e9;
    let mut recs = Vec::new();
    for k in 0..40u16 {
        let start = k as u64 * 100_000_000;
        let mut free = 0.0f64;
        for i in 0..40u32 {
            let sent = start as f64 + i as f64 * tx / 1.5;
            free = free.max(sent) + tx;
            let mut d = data(sent as u64, 1 + i * MSS);
            d.src_port = 40000 + k;
            if i == 39 {
                d.tcp_flags |= FLAG_FIN;
            }
            recs.push(d);
            if i % 2 == 1 {
                let mut a = ack(free as u64 + base, 1 + (i + 1) * MSS);
                a.dst_port = 40000 + k;
                recs.push(a);
            }
        }
    }
    recs.sort_by_key(|r| r.time);
    let mut w = Wren::new(Config::default());
    w.on_batch(&recs, Timebase::NANOS);
    let p = sender_view(&w);
    assert!(p.trains >= 20, "{p:?}");
    assert_eq!(p.avail_bw_kind, AvailKind::UpperBound, "{p:?}");
    let hi = p.avail_bw_high_mbps.unwrap();
    assert!((50.0..=1.6 * 50.0).contains(&hi), "{hi}");
}
