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
