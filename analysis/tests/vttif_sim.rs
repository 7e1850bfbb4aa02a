//! VTTIF on synthetic application traffic with known patterns: the inferred topology
//! names the pattern, a switch from ring to all-to-all is detected within k+2 windows,
//! and steady phases (with noisy volumes) produce no change events.

use analysis::engine::Engine;
use analysis::record::{Direction, Record, Timebase, FLAG_VXLAN};
use analysis::vadapt::rng::Rng;
use analysis::vttif::{Config, Vttif};

fn mac(i: u32) -> [u8; 6] {
    [2, 0, 0, 0, 0, i as u8]
}

fn frame(t: u64, s: u32, d: u32, len: u32) -> Record {
    Record {
        time: t,
        src_mac: mac(s),
        dst_mac: mac(d),
        frame_len: len,
        protocol: 6,
        ..Default::default()
    }
}

/// `secs` seconds of traffic among `n` VMs along `pairs`, 100 frames per pair per
/// second of 1000-1500 bytes, plus small background noise on every other pair.
fn traffic(start_s: u64, secs: u64, n: u32, pairs: &[(u32, u32)], rng: &mut Rng) -> Vec<Record> {
    let mut out = Vec::new();
    for sec in start_s..start_s + secs {
        for &(s, d) in pairs {
            for k in 0..100u64 {
                out.push(frame(
                    sec * 1_000_000_000 + k * 9_000_000 + rng.below(1000) as u64,
                    s,
                    d,
                    1000 + rng.below(500) as u32,
                ));
            }
        }
        // Noise: an occasional small frame between any two VMs (well under 10%).
        for _ in 0..20 {
            let (s, d) = (rng.below(n as usize) as u32, rng.below(n as usize) as u32);
            if s != d {
                out.push(frame(
                    sec * 1_000_000_000 + rng.below(999_000_000) as u64,
                    s,
                    d,
                    100,
                ));
            }
        }
    }
    out.sort_by_key(|r| r.time);
    out
}

fn ring(n: u32) -> Vec<(u32, u32)> {
    (0..n).map(|i| (i, (i + 1) % n)).collect()
}

fn all_to_all(n: u32) -> Vec<(u32, u32)> {
    (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .collect()
}

#[test]
fn patterns_are_named_and_a_switch_is_detected_without_flapping() {
    let mut rng = Rng::new(11);
    let n = 8;
    let k = 3;
    let mut recs = traffic(0, 10, n, &ring(n), &mut rng);
    recs.extend(traffic(10, 10, n, &all_to_all(n), &mut rng));
    let mut v = Vttif::new(Config {
        persist_windows: k,
        ..Default::default()
    });
    v.on_batch(&recs, Timebase::NANOS);
    v.finish();
    let changes = v.changes();
    assert_eq!(
        changes.len(),
        2,
        "exactly two reported topologies: {changes:?}"
    );
    assert_eq!(changes[0].shape, "ring");
    assert!(
        changes[0].window < 5,
        "ring found in window {}",
        changes[0].window
    );
    assert_eq!(changes[1].shape, "all-to-all");
    assert!(
        changes[1].window >= 10 && changes[1].window <= 10 + k as u64 + 2,
        "switch found in window {}",
        changes[1].window
    );
}

#[test]
fn each_pattern_is_recognised_from_its_traffic() {
    let mut rng = Rng::new(5);
    let grid: Vec<(u32, u32)> = (0..9u32)
        .flat_map(|v| {
            let (r, c) = (v / 3, v % 3);
            let mut e = Vec::new();
            if c < 2 {
                e.push((v, v + 1));
                e.push((v + 1, v));
            }
            if r < 2 {
                e.push((v, v + 3));
                e.push((v + 3, v));
            }
            e
        })
        .collect();
    let star: Vec<(u32, u32)> = (1..6).flat_map(|w| [(0, w), (w, 0)]).collect();
    let pairs = vec![(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4)];
    for (name, n, edges) in [
        ("ring", 6, ring(6)),
        ("all-to-all", 5, all_to_all(5)),
        ("2-D mesh", 9, grid),
        ("star", 6, star),
        ("pairs", 6, pairs),
    ] {
        let recs = traffic(0, 5, n, &edges, &mut rng);
        let mut v = Vttif::new(Config::default());
        v.on_batch(&recs, Timebase::NANOS);
        v.finish();
        assert_eq!(v.topology().shape, name);
        assert_eq!(v.topology().edges.len(), edges.len(), "{name}");
        assert!(
            v.changes()
                .first()
                .is_some_and(|c| c.shape == name && c.window < 5),
            "{name}: {:?}",
            v.changes()
        );
    }
}

#[test]
fn memory_is_bounded_by_the_pair_and_vm_caps() {
    let cfg = Config {
        max_pairs: 10,
        max_vms: 8,
        ..Config::default()
    };
    let mut v = Vttif::new(cfg);
    // 100 distinct pairs among 20 VMs: only the first pairs up to either cap are kept,
    // everything else is counted, not stored.
    let recs: Vec<Record> = (0..100u32)
        .map(|i| frame(i as u64 * 1000, i % 20, (i * 7 + 1) % 20, 1000))
        .filter(|r| r.src_mac != r.dst_mac)
        .collect();
    v.on_batch(&recs, Timebase::NANOS);
    let m = v.matrix();
    let vms: std::collections::BTreeSet<&String> =
        m.iter().flat_map(|e| [&e.src, &e.dst]).collect();
    assert!(m.len() <= 10, "{} pairs kept", m.len());
    assert!(vms.len() <= 8, "{} VMs kept", vms.len());
    assert_eq!(
        v.untracked_records as usize + m.iter().map(|e| e.packets as usize).sum::<usize>(),
        recs.len()
    );
}

#[test]
fn underlay_frames_on_the_nic_are_not_vm_traffic() {
    // On a daemon, a plain frame arriving on the NIC is the underlay's (ARP, a stranger);
    // the same frame inside VXLAN, or sent by a VM, is VM traffic.
    let mut v = Vttif::new(Config::default());
    let mut underlay = frame(0, 1, 2, 60);
    underlay.direction = Direction::FromNic as u8;
    let mut overlay = frame(1, 1, 2, 100);
    overlay.direction = Direction::FromNic as u8;
    overlay.flags |= FLAG_VXLAN;
    let mut from_vm = frame(2, 3, 4, 100);
    from_vm.direction = Direction::ToNic as u8;
    v.on_batch(&[underlay, overlay, from_vm], Timebase::NANOS);
    let m = v.matrix();
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m.iter().all(|e| e.bytes == 100), "{m:?}");
}
