//! The parser: what it reads from well-formed frames (plain and VXLAN), how it stops
//! on broken ones, and a fuzz run of a million inputs that must never panic.

use analysis::record::{
    record_words, Direction, Record, FLAG_BROKEN, FLAG_TCP_TS, FLAG_VXLAN, NO_HOST,
};
use analysis::wire::frame::{dissect, dissect_snapped, Layer, Verdict};
use analysis::wire::sample_frames::{fuzz_inputs, fuzz_seeds, sample_frame, vxlan_encap};
use analysis::wire::{ethernet, ipv4, Error};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[test]
fn plain_tcp_frame_reads_back_exactly() {
    let f = sample_frame(true, 1448);
    let (d, v) = dissect(&f, true);
    assert_eq!(v, Verdict::Complete);
    assert_eq!((d.src_mac, d.dst_mac), (A, B));
    assert_eq!(&d.src_ip[..4], &[198, 18, 0, 1]);
    assert_eq!((d.src_port, d.dst_port, d.protocol), (40000, 5201, 6));
    let t = d.tcp.unwrap();
    assert_eq!(
        (t.seq, t.ack, t.window, t.payload_len),
        (0xdead_beef, 12345, 502, 1448)
    );
    assert_eq!(t.timestamps, Some((111, 222)));
    assert!(d.underlay.is_none());
    // Checksums are right: the IPv4 header verifies.
    let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.checksum_ok());
    let r = Record::from_dissection(7, &d, v, Direction::ToNic, 3, (NO_HOST, NO_HOST));
    assert_eq!(r.src_ip, u32::from_be_bytes([198, 18, 0, 1]));
    assert_eq!(r.payload_len, 1448);
    assert_eq!(r.flags & FLAG_TCP_TS, FLAG_TCP_TS);
    assert_eq!(r.frame_len as usize, f.len());
}

#[test]
fn vxlan_frames_are_read_through_to_the_inner_flow() {
    let inner = sample_frame(false, 100);
    let outer = vxlan_encap(
        &inner,
        ethernet::Repr {
            dst: [0xa; 6],
            src: [0xb; 6],
            ethertype: 0,
        },
        [198, 19, 0, 1],
        [198, 19, 0, 2],
        42,
        999,
    );
    let (d, v) = dissect(&outer, true);
    assert_eq!(v, Verdict::Complete);
    let u = d.underlay.unwrap();
    assert_eq!(
        (u.src_ip, u.dst_ip, u.vni),
        ([198, 19, 0, 1], [198, 19, 0, 2], 42)
    );
    assert_eq!((d.src_mac, d.dst_mac), (A, B));
    assert_eq!(d.tcp.unwrap().payload_len, 100);
    assert_eq!(d.frame_len as usize, inner.len());
    let r = Record::from_dissection(0, &d, v, Direction::FromNic, 0, (0, 1));
    assert_eq!(r.flags & FLAG_VXLAN, FLAG_VXLAN);
    // Without decapsulation the same bytes are just UDP.
    let (d, _) = dissect(&outer, false);
    assert!(d.underlay.is_none() && d.tcp.is_none());
    assert_eq!(d.dst_port, 4789);
    // Cut by a capture's snap length (tcpdump -s 120), the inner frame keeps its real
    // length and payload, from the headers and the original length.
    let (d, v) = dissect_snapped(&outer[..120], outer.len(), true);
    assert_eq!(v, Verdict::Complete);
    assert_eq!(d.frame_len as usize, inner.len());
    assert_eq!(d.tcp.unwrap().payload_len, 100);
    // A plain frame cut the same way keeps its original length too.
    let (d, _) = dissect_snapped(&inner[..80], inner.len(), true);
    assert_eq!(d.frame_len as usize, inner.len());
}

#[test]
fn broken_frames_stop_at_the_broken_layer() {
    let f = sample_frame(true, 10);
    for cut in 0..f.len() {
        let (d, v) = dissect(&f[..cut], true);
        let expect_layer = if cut < 14 {
            Some(Layer::Ethernet)
        } else if cut < f.len() {
            // Truncated IP (total length beyond the buffer) is caught at the IP layer.
            Some(Layer::Ip)
        } else {
            None
        };
        match expect_layer {
            Some(l) => assert_eq!(v, Verdict::Broken(l, Error::Truncated), "cut at {cut}"),
            None => assert_eq!(v, Verdict::Complete),
        }
        assert!(d.tcp.is_none() || cut == f.len());
    }
    // A bad IHL, a TCP data offset below 5, a bad VXLAN flag.
    let mut bad = f.clone();
    bad[14] = 0x43;
    assert_eq!(
        dissect(&bad, true).1,
        Verdict::Broken(Layer::Ip, Error::Malformed)
    );
    let mut bad = f.clone();
    bad[14 + 20 + 12] = 0x40;
    assert_eq!(
        dissect(&bad, true).1,
        Verdict::Broken(Layer::Tcp, Error::Malformed)
    );
    let mut vx = vxlan_encap(
        &f,
        ethernet::Repr {
            dst: [0; 6],
            src: [0; 6],
            ethertype: 0,
        },
        [1; 4],
        [2; 4],
        1,
        1,
    );
    vx[14 + 20 + 8] = 0;
    assert_eq!(
        dissect(&vx, true).1,
        Verdict::Broken(Layer::Vxlan, Error::Malformed)
    );
    let (d, v) = dissect(&vx, true);
    let r = Record::from_dissection(0, &d, v, Direction::Unknown, 0, (NO_HOST, NO_HOST));
    assert_eq!(r.flags & FLAG_BROKEN, FLAG_BROKEN);
}

/// A million inputs: random bytes, and valid frames (plain, VXLAN, VLAN-tagged, IPv6)
/// with random bit flips, byte overwrites and truncations. The parser must not panic,
/// and what it reports must lie inside the input.
#[test]
fn fuzz_a_million_inputs_without_a_panic() {
    // The seeds are the frame fuzz target's corpus (bench/fuzz.sh); kept up to date.
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/frame");
    if corpus.is_dir() {
        for (i, s) in fuzz_seeds().iter().enumerate() {
            let _ = std::fs::write(corpus.join(format!("seed-{i}")), s);
        }
    }
    let mut complete = 0u32;
    let mut fast = 0u32;
    for (i, buf) in fuzz_inputs(0x5eed, 1_000_000).enumerate() {
        let (d, v) = dissect(&buf, true);
        if v == Verdict::Complete {
            complete += 1;
        }
        // The workers' fast path must give exactly the full dissector's record.
        let full =
            Record::from_dissection(i as u64, &d, v, Direction::ToNic, 2, (NO_HOST, NO_HOST));
        if let Some(words) = record_words(&buf, i as u64, Direction::ToNic, 2) {
            fast += 1;
            assert_eq!(
                Record::from_words(words),
                full,
                "fast path, input {i}: {buf:02x?}"
            );
        }
        assert_eq!(
            Record::from_frame(&buf, i as u64, Direction::FromNic, 2),
            Record {
                direction: Direction::FromNic as u8,
                ..full
            },
            "input {i}: {buf:02x?}"
        );
        // A VM's frame is never decapsulated: its record is the dissector's without.
        let (d, v) = dissect(&buf, false);
        assert_eq!(
            Record::from_frame(&buf, i as u64, Direction::ToNic, 2),
            Record::from_dissection(i as u64, &d, v, Direction::ToNic, 2, (NO_HOST, NO_HOST)),
            "input {i}: {buf:02x?}"
        );
        if let Some(t) = d.tcp {
            assert!(t.payload_len as usize <= buf.len());
        }
        assert!(d.frame_len as usize <= buf.len());
    }
    assert!(
        complete > 10_000,
        "the mutations never produced a parseable frame: {complete}"
    );
    assert!(fast > 10_000, "the fast path was taken only {fast} times");
}
