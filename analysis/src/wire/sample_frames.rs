//! Frame builders on top of the `Repr::emit`s: plain TCP/IPv4 frames and VXLAN
//! encapsulation. Used by tests, the fuzzer's seeds and benchmarks; the switch writes
//! the same headers in place with the same `emit`s.

use super::{ethernet, ipv4, tcp, udp, vxlan};

/// A TCP/IPv4 frame with `payload_len` bytes of payload (pattern-filled) and correct checksums.
pub fn tcp_frame(
    eth: ethernet::Repr,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    seg: &tcp::Repr,
    payload_len: usize,
) -> Vec<u8> {
    let tl = seg.header_len() + payload_len;
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + tl];
    let ip = ipv4::Repr {
        src: src_ip,
        dst: dst_ip,
        protocol: ipv4::PROTO_TCP,
        payload_len: tl,
        ttl: 64,
        ident: (seg.seq & 0xffff) as u16,
        dont_fragment: true,
    };
    let eth = ethernet::Repr {
        ethertype: ethernet::ETHERTYPE_IPV4,
        ..eth
    };
    eth.emit(&mut f).expect("room");
    ip.emit(&mut f[ethernet::HEADER_LEN..]).expect("room");
    let l4 = &mut f[ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN..];
    seg.emit(l4).expect("room");
    for (i, b) in l4[seg.header_len()..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7);
    }
    tcp::Repr::fill_checksum(l4, ip.pseudo_header_sum(tl));
    f
}

/// Wraps `inner` in outer Ethernet/IPv4/UDP/VXLAN headers (RFC 7348). The UDP source
/// port comes from `entropy` (a hash of the inner flow), as RFC 7348 §5 recommends.
pub fn vxlan_encap(
    inner: &[u8],
    outer_eth: ethernet::Repr,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    vni: u32,
    entropy: u16,
) -> Vec<u8> {
    let udp_len = udp::HEADER_LEN + vxlan::HEADER_LEN + inner.len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp_len];
    let eth = ethernet::Repr {
        ethertype: ethernet::ETHERTYPE_IPV4,
        ..outer_eth
    };
    eth.emit(&mut f).expect("room");
    let ip = ipv4::Repr {
        src: src_ip,
        dst: dst_ip,
        protocol: ipv4::PROTO_UDP,
        payload_len: udp_len,
        ttl: 64,
        ident: 0,
        dont_fragment: true,
    };
    ip.emit(&mut f[ethernet::HEADER_LEN..]).expect("room");
    let u = &mut f[ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN..];
    udp::Repr {
        src_port: 49152 | (entropy & 0x3fff),
        dst_port: vxlan::UDP_PORT,
        payload_len: udp_len - udp::HEADER_LEN,
    }
    .emit(u)
    .expect("room");
    vxlan::Repr { vni }
        .emit(&mut u[udp::HEADER_LEN..])
        .expect("room");
    u[udp::HEADER_LEN + vxlan::HEADER_LEN..].copy_from_slice(inner);
    f
}

/// The segment of the sample frames: ports 40000 -> 5201, seq 0xdeadbeef, ack 12345,
/// ACK|PSH, window 502, timestamps (111, 222) when `ts`.
pub fn sample_segment(ts: bool) -> tcp::Repr {
    tcp::Repr {
        src_port: 40000,
        dst_port: 5201,
        seq: 0xdead_beef,
        ack: 12345,
        flags: tcp::FLAG_ACK | tcp::FLAG_PSH,
        window: 502,
        timestamps: ts.then_some((111, 222)),
    }
}

/// A sample TCP/IPv4 frame: 02:00:00:00:00:01 (198.18.0.1) to 02:00:00:00:00:02
/// (198.18.0.2), `sample_segment(ts)` with `payload` bytes.
pub fn sample_frame(ts: bool, payload: usize) -> Vec<u8> {
    let eth = ethernet::Repr {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        ethertype: 0,
    };
    tcp_frame(
        eth,
        [198, 18, 0, 1],
        [198, 18, 0, 2],
        &sample_segment(ts),
        payload,
    )
}

/// The fuzzer's seed frames: TCP/IPv4 with and without timestamps (54 to 1514 bytes),
/// VXLAN around TCP with and without timestamps, VLAN-tagged, and IPv6.
pub fn fuzz_seeds() -> Vec<Vec<u8>> {
    let plain = sample_frame;
    let outer = ethernet::Repr {
        dst: [1; 6],
        src: [2; 6],
        ethertype: 0,
    };
    let mut seeds = vec![plain(true, 0), plain(false, 64), plain(true, 1448)];
    seeds.push(vxlan_encap(&seeds[1], outer, [1; 4], [2; 4], 7, 3));
    seeds.push(vxlan_encap(&plain(true, 10), outer, [1; 4], [2; 4], 7, 4));
    let mut tagged = seeds[1].clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    seeds.push(tagged);
    let mut v6 = vec![0u8; 14 + 40 + 20];
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    v6[14] = 0x60;
    v6[14 + 4..14 + 6].copy_from_slice(&20u16.to_be_bytes());
    v6[14 + 6] = 6;
    v6[14 + 40 + 12] = 0x50;
    seeds.push(v6);
    seeds
}

/// `n` fuzz inputs from `seed`: a quarter random bytes (up to 200), the rest seed
/// frames (`fuzz_seeds`) with one to four bit flips, byte overwrites or truncations.
pub fn fuzz_inputs(seed: u64, n: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = crate::vadapt::rng::Rng::new(seed);
    let seeds = fuzz_seeds();
    (0..n).map(move |i| {
        if i % 4 == 0 {
            let len = rng.below(200);
            return (0..len).map(|_| rng.next_u64() as u8).collect();
        }
        let mut buf = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(buf.len().max(1));
            match rng.below(3) {
                0 => buf[at] ^= 1 << rng.below(8),
                1 => buf[at] = rng.next_u64() as u8,
                _ => buf.truncate(at),
            }
            if buf.is_empty() {
                break;
            }
        }
        buf
    })
}
