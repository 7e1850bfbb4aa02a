//! VXLAN encapsulation and decapsulation in place (RFC 7348), and ARP for the daemon's
//! underlay address. Headers are written with the `analysis::wire` reprs.

use analysis::wire::{ethernet, ipv4, udp, vxlan};

use super::counters::DropCause;
use crate::port::MacAddr;

/// Outer headers: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
pub const ENCAP_LEN: usize = 50;

/// The daemon's identity on the underlay.
#[derive(Debug, Clone, Copy)]
pub struct Underlay {
    pub ip: [u8; 4],
    pub mac: [u8; 6],
    pub vni: u32,
    /// Largest outer frame the NIC sends (MTU + Ethernet header).
    pub max_frame: usize,
}

/// Outer IPv4 TTL of frames this daemon originates. A transit hop sends on with the
/// TTL it received minus one, so the outer TTL counts overlay hops.
pub const ORIGIN_TTL: u8 = 64;
/// Overlay hops a frame may take before it is taken for a loop and dropped.
pub const HOP_LIMIT: u8 = 8;

/// A hash of the inner frame's flow (RFC 7348 §5): MACs, and for IPv4 the addresses
/// and TCP/UDP ports, so the receiver's RSS keeps a flow on one worker and spreads
/// flows between the same two VMs over several. Word loads and one multiply: it runs
/// once per encapsulated packet.
#[inline]
fn flow_entropy(inner: &[u8]) -> u16 {
    let word = |at: usize| -> u64 {
        inner
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    // MACs (bytes 0-11), and for untagged IPv4 without options the addresses (26-33)
    // and the first four bytes after them: TCP/UDP ports.
    let mut h = word(0) ^ (word(4) >> 32).rotate_left(17);
    if inner.len() >= 38 && inner[12..14] == [0x08, 0x00] && inner[14] == 0x45 {
        h ^= word(26).rotate_left(29);
        if matches!(inner[23], 6 | 17) {
            h ^= word(30) >> 32;
        }
    }
    let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 48) as u16
}

/// The outer headers towards one peer, built once when its MAC is known (as VPP's
/// rewrite strings): per packet only the IPv4 total length, TTL and checksum, and the
/// UDP source port and length change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapTemplate {
    header: [u8; ENCAP_LEN],
    /// One's-complement sum of the outer IPv4 header with total length, TTL and
    /// checksum zero (the protocol, in the TTL's 16-bit word, is included).
    ip_sum: u32,
}

/// Adds the 16-bit big-endian words of `b` (even length) to `sum`.
fn sum_words(sum: u32, b: &[u8]) -> u32 {
    b.chunks_exact(2)
        .fold(sum, |s, w| s + u16::from_be_bytes([w[0], w[1]]) as u32)
}

impl EncapTemplate {
    /// The headers `write_encap` would write towards `peer_ip` at `peer_mac`.
    pub fn new(u: &Underlay, peer_ip: [u8; 4], peer_mac: [u8; 6]) -> Self {
        let mut frame = [0u8; ENCAP_LEN + ethernet::HEADER_LEN];
        // A frame of exactly this size always fits: write_encap cannot fail here.
        let _ = write_encap(&mut frame, u, peer_ip, peer_mac, 0);
        let mut header = [0u8; ENCAP_LEN];
        header.copy_from_slice(&frame[..ENCAP_LEN]);
        for range in [16..18, 22..23, 24..26, 34..36, 38..40] {
            header[range].fill(0);
        }
        Self {
            header,
            ip_sum: sum_words(0, &header[14..34]),
        }
    }

    /// Writes the outer headers into the first `ENCAP_LEN` bytes of `frame` (the inner
    /// frame follows), with outer TTL `ttl`. False when `frame` is too short or too
    /// long for IPv4.
    #[inline]
    pub fn write(&self, frame: &mut [u8], ttl: u8) -> bool {
        if frame.len() < ENCAP_LEN + ethernet::HEADER_LEN || frame.len() - 14 > u16::MAX as usize {
            return false;
        }
        let entropy = flow_entropy(&frame[ENCAP_LEN..]);
        let total = (frame.len() - 14) as u16;
        let out = &mut frame[..ENCAP_LEN];
        out.copy_from_slice(&self.header);
        out[16..18].copy_from_slice(&total.to_be_bytes());
        out[22] = ttl;
        let mut sum = self.ip_sum + total as u32 + ((ttl as u32) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        out[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        out[34..36].copy_from_slice(&(49152 | (entropy & 0x3fff)).to_be_bytes());
        out[38..40].copy_from_slice(&(total - 20).to_be_bytes());
        true
    }
}

/// Writes the outer headers into the first `ENCAP_LEN` bytes of `frame` (the inner
/// frame follows). The UDP source port hashes the inner flow, for ECMP and RSS.
pub fn write_encap(
    frame: &mut [u8],
    u: &Underlay,
    peer_ip: [u8; 4],
    peer_mac: [u8; 6],
    ttl: u8,
) -> Result<(), DropCause> {
    if frame.len() < ENCAP_LEN + ethernet::HEADER_LEN {
        return Err(DropCause::Malformed);
    }
    let inner_len = frame.len() - ENCAP_LEN;
    let entropy = flow_entropy(&frame[ENCAP_LEN..]);
    ethernet::Repr {
        dst: peer_mac,
        src: u.mac,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(frame)
    .map_err(|_| DropCause::Malformed)?;
    let udp_len = udp::HEADER_LEN + vxlan::HEADER_LEN + inner_len;
    ipv4::Repr {
        src: u.ip,
        dst: peer_ip,
        protocol: ipv4::PROTO_UDP,
        payload_len: udp_len,
        ttl,
        ident: 0,
        dont_fragment: true,
    }
    .emit(&mut frame[14..])
    .map_err(|_| DropCause::Oversize)?;
    udp::Repr {
        src_port: 49152 | (entropy & 0x3fff),
        dst_port: vxlan::UDP_PORT,
        payload_len: udp_len - udp::HEADER_LEN,
    }
    .emit(&mut frame[34..])
    .map_err(|_| DropCause::Oversize)?;
    vxlan::Repr { vni: u.vni }
        .emit(&mut frame[42..])
        .map_err(|_| DropCause::Malformed)?;
    Ok(())
}

/// What a frame from the NIC is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromNic {
    /// VXLAN for us from `peer_ip` (outer source MAC `peer_mac`, outer TTL `ttl`), inner
    /// frame after `ENCAP_LEN`.
    Vxlan {
        peer_ip: [u8; 4],
        peer_mac: MacAddr,
        ttl: u8,
    },
    /// An ARP request for our address: answer it.
    ArpRequest,
    /// An ARP reply (or request) from `ip` at `mac`: learn it.
    ArpFrom { ip: [u8; 4], mac: MacAddr },
    /// Not for us, or broken.
    Drop(DropCause),
}

/// Classifies a frame received on the NIC.
#[inline]
pub fn classify(frame: &[u8], u: &Underlay) -> FromNic {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "ssse3",
        target_feature = "sse4.1"
    ))]
    if crate::record_sse::is_whole_vxlan(frame) {
        return classify_whole_vxlan(frame, u);
    }
    classify_parsed(frame, u)
}

/// `classify` by the checked views, for any frame.
fn classify_parsed(frame: &[u8], u: &Underlay) -> FromNic {
    let Ok(eth) = ethernet::Packet::new_checked(frame) else {
        return FromNic::Drop(DropCause::Malformed);
    };
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => classify_arp(&frame[14..], u),
        ethernet::ETHERTYPE_IPV4 => {
            let Ok(ip) = ipv4::Packet::new_checked(&frame[14..]) else {
                return FromNic::Drop(DropCause::Malformed);
            };
            if ip.dst() != u.ip {
                return FromNic::Drop(DropCause::NotForUs);
            }
            if ip.protocol() != ipv4::PROTO_UDP || ip.frag_offset() != 0 || ip.more_fragments() {
                return FromNic::Drop(DropCause::NotForUs);
            }
            let Ok(udp) = udp::Packet::new_checked(ip.payload()) else {
                return FromNic::Drop(DropCause::Malformed);
            };
            if udp.dst_port() != vxlan::UDP_PORT || ip.header_len() != 20 {
                return FromNic::Drop(DropCause::NotForUs);
            }
            let Ok(vx) = vxlan::Packet::new_checked(udp.payload()) else {
                return FromNic::Drop(DropCause::Malformed);
            };
            if vx.vni() != u.vni {
                return FromNic::Drop(DropCause::WrongVni);
            }
            if vx.payload().len() < ethernet::HEADER_LEN {
                return FromNic::Drop(DropCause::Malformed);
            }
            FromNic::Vxlan {
                peer_ip: ip.src(),
                peer_mac: MacAddr(eth.src()),
                ttl: ip.ttl(),
            }
        }
        _ => FromNic::Drop(DropCause::NotForUs),
    }
}

/// `classify` for a frame already found to be a whole VXLAN datagram, by
/// `record_sse::is_whole_vxlan` or by the record stage (`Monitor::record_burst`'s
/// `WholeVxlan`): the outer headers are known good, so only whether it is ours is left
/// (address, then VNI, in `classify`'s order). With monitoring on, the record stage's
/// verdict makes the outer parse one for both the record and the switch.
#[inline]
pub fn classify_whole_vxlan(frame: &[u8], u: &Underlay) -> FromNic {
    let Some(h) = frame.first_chunk::<ENCAP_LEN>() else {
        return classify_parsed(frame, u);
    };
    if h[30..34] != u.ip {
        return FromNic::Drop(DropCause::NotForUs);
    }
    if u32::from_be_bytes([0, h[46], h[47], h[48]]) != u.vni {
        return FromNic::Drop(DropCause::WrongVni);
    }
    FromNic::Vxlan {
        peer_ip: [h[26], h[27], h[28], h[29]],
        peer_mac: MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]),
        ttl: h[22],
    }
}

const ARP_LEN: usize = 28;

fn classify_arp(a: &[u8], u: &Underlay) -> FromNic {
    if a.len() < ARP_LEN || a[0..2] != [0, 1] || a[2..4] != [8, 0] || a[4] != 6 || a[5] != 4 {
        return FromNic::Drop(DropCause::Malformed);
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    let sha: [u8; 6] = a[8..14].try_into().unwrap_or_default();
    let spa: [u8; 4] = a[14..18].try_into().unwrap_or_default();
    let tpa: [u8; 4] = a[24..28].try_into().unwrap_or_default();
    if op == 1 && tpa == u.ip {
        FromNic::ArpRequest
    } else if op == 2 && tpa == u.ip {
        FromNic::ArpFrom {
            ip: spa,
            mac: MacAddr(sha),
        }
    } else {
        FromNic::Drop(DropCause::NotForUs)
    }
}

/// Turns an ARP request for our address into the reply, in place. Returns the
/// requester's (IP, MAC), which we learn too.
pub fn arp_reply_in_place(frame: &mut [u8], u: &Underlay) -> Option<([u8; 4], MacAddr)> {
    if frame.len() < 14 + ARP_LEN {
        return None;
    }
    let sha: [u8; 6] = frame[22..28].try_into().ok()?;
    let spa: [u8; 4] = frame[28..32].try_into().ok()?;
    frame[0..6].copy_from_slice(&sha);
    frame[6..12].copy_from_slice(&u.mac);
    frame[20..22].copy_from_slice(&2u16.to_be_bytes());
    frame[22..28].copy_from_slice(&u.mac);
    frame[28..32].copy_from_slice(&u.ip);
    frame[32..38].copy_from_slice(&sha);
    frame[38..42].copy_from_slice(&spa);
    Some((spa, MacAddr(sha)))
}

/// An ARP request for `target` (a peer whose MAC we do not know yet).
pub fn arp_request(u: &Underlay, target: [u8; 4]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&u.mac);
    f[12..14].copy_from_slice(&ethernet::ETHERTYPE_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&u.mac);
    f[28..32].copy_from_slice(&u.ip);
    f[38..42].copy_from_slice(&target);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::wire::frame::dissect;

    const U: Underlay = Underlay {
        ip: [198, 18, 100, 1],
        mac: [2, 0, 0, 0, 0, 0xa],
        vni: 42,
        max_frame: 1514,
    };

    /// The shortcuts (the vector outer check in `classify`, and the record stage's
    /// verdict that lets the switch skip it) classify every frame as the checked views
    /// do: on mutated frames, for our underlay, for the address and VNI each frame is
    /// sent to (so that its VXLAN is ours and the whole verdict is compared), and for
    /// that address with another VNI.
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "ssse3",
        target_feature = "sse4.1"
    ))]
    #[test]
    fn the_shortcuts_classify_as_the_checked_views_do() {
        use crate::record_sse::record_words;
        use analysis::record::Direction;
        use analysis::wire::sample_frames::{fuzz_inputs, fuzz_seeds};
        // VXLAN frames whose inner frame is cut at 0..20 bytes, lengths kept consistent,
        // padded to the 64-byte minimum: the inner Ethernet header's bound.
        let vxlan = fuzz_seeds()
            .into_iter()
            .find(|f| f.get(23) == Some(&17))
            .unwrap();
        let cut = (0..20).map(|inner: usize| {
            let mut f = vxlan[..ENCAP_LEN + inner].to_vec();
            f.resize(f.len().max(64), 0);
            f[16..18].copy_from_slice(&(36 + inner as u16).to_be_bytes());
            f[38..40].copy_from_slice(&(16 + inner as u16).to_be_bytes());
            f
        });
        let (mut whole, mut ours) = (0u32, 0u32);
        let inputs = fuzz_seeds()
            .into_iter()
            .chain(cut)
            .chain(fuzz_inputs(0xc1a55, 300_000));
        for (i, f) in inputs.enumerate() {
            let addressed = Underlay {
                ip: f.get(30..34).map_or(U.ip, |b| b.try_into().unwrap()),
                vni: f
                    .get(46..49)
                    .map_or(U.vni, |b| u32::from_be_bytes([0, b[0], b[1], b[2]])),
                ..U
            };
            let recorded_vxlan =
                matches!(record_words(&f, 0, Direction::FromNic, 0), Some((_, true)));
            let other_vni = Underlay {
                vni: addressed.vni ^ 1,
                ..addressed
            };
            for u in [&U, &addressed, &other_vni] {
                let checked = classify_parsed(&f, u);
                assert_eq!(classify(&f, u), checked, "input {i}: {f:02x?}");
                if recorded_vxlan {
                    assert_eq!(classify_whole_vxlan(&f, u), checked, "input {i}: {f:02x?}");
                    whole += 1;
                    ours += matches!(checked, FromNic::Vxlan { .. }) as u32;
                }
            }
        }
        assert!(
            whole > 1000 && ours > 500,
            "recorded VXLAN {whole}, of it ours {ours}"
        );
    }

    #[test]
    fn encapsulated_frames_decode_and_classify_at_the_peer() {
        let inner: Vec<u8> = (0..100u8).collect();
        let mut f = vec![0u8; ENCAP_LEN];
        f.extend_from_slice(&inner);
        write_encap(
            &mut f,
            &U,
            [198, 18, 100, 2],
            [2, 0, 0, 0, 0, 0xb],
            ORIGIN_TTL,
        )
        .unwrap();
        let peer = Underlay {
            ip: [198, 18, 100, 2],
            mac: [2, 0, 0, 0, 0, 0xb],
            ..U
        };
        assert_eq!(
            classify(&f, &peer),
            FromNic::Vxlan {
                peer_ip: U.ip,
                peer_mac: MacAddr(U.mac),
                ttl: ORIGIN_TTL
            }
        );
        let (d, _) = dissect(&f, true);
        assert_eq!(d.underlay.unwrap().vni, 42);
        assert_eq!(&f[ENCAP_LEN..], &inner[..]);
        assert!(analysis::wire::ipv4::Packet::new_checked(&f[14..])
            .unwrap()
            .checksum_ok());
        // Wrong VNI and strangers' traffic are refused.
        let other = Underlay { vni: 7, ..peer };
        assert_eq!(classify(&f, &other), FromNic::Drop(DropCause::WrongVni));
        assert_eq!(classify(&f, &U), FromNic::Drop(DropCause::NotForUs));
        assert_eq!(
            classify(&f[..30], &peer),
            FromNic::Drop(DropCause::Malformed)
        );
    }

    #[test]
    fn the_template_writes_what_write_encap_writes() {
        let peer_ip = [198, 18, 100, 2];
        let peer_mac = [2, 0, 0, 0, 0, 0xb];
        let t = EncapTemplate::new(&U, peer_ip, peer_mac);
        let mut seed = 0x1234_5678u32;
        for len in [14usize, 15, 60, 64, 100, 1464, 9000] {
            for ttl in [ORIGIN_TTL, 63, 57, 1] {
                let mut inner = vec![0u8; len];
                for b in inner.iter_mut() {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    *b = (seed >> 16) as u8;
                }
                // Some inner frames are IPv4/TCP, so the ports enter the entropy.
                if len >= 38 && ttl == 63 {
                    inner[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
                    inner[23] = 6;
                }
                let mut a = vec![0u8; ENCAP_LEN];
                a.extend_from_slice(&inner);
                let mut b = a.clone();
                write_encap(&mut a, &U, peer_ip, peer_mac, ttl).unwrap();
                assert!(t.write(&mut b, ttl));
                assert_eq!(a, b, "inner length {len}, ttl {ttl}");
                assert!(analysis::wire::ipv4::Packet::new_checked(&b[14..])
                    .unwrap()
                    .checksum_ok());
            }
        }
        assert!(!t.write(&mut [0u8; ENCAP_LEN + 13], ORIGIN_TTL));
    }

    #[test]
    fn entropy_follows_the_inner_flow() {
        let mut f = vec![0u8; 60];
        f[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
        f[23] = 17;
        let base = flow_entropy(&f);
        f[35] = 1; // another UDP source port: another outer port, most of the time
        let other_port = flow_entropy(&f);
        f[35] = 0;
        f[40] = 9; // payload: same flow
        assert_eq!(flow_entropy(&f), base);
        let spread: std::collections::HashSet<u16> = (0..64u8)
            .map(|p| {
                f[35] = p;
                flow_entropy(&f) & 0x3fff
            })
            .collect();
        assert!(
            spread.len() > 48 && other_port != base,
            "{} source ports",
            spread.len()
        );
    }

    #[test]
    fn arp_request_and_reply() {
        let mut req = arp_request(&U, [198, 18, 100, 2]);
        let peer = Underlay {
            ip: [198, 18, 100, 2],
            mac: [2, 0, 0, 0, 0, 0xb],
            ..U
        };
        assert_eq!(classify(&req, &peer), FromNic::ArpRequest);
        assert_eq!(
            arp_reply_in_place(&mut req, &peer),
            Some((U.ip, MacAddr(U.mac)))
        );
        assert_eq!(
            classify(&req, &U),
            FromNic::ArpFrom {
                ip: peer.ip,
                mac: MacAddr(peer.mac)
            }
        );
    }
}
