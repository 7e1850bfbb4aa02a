//! Dissects a whole frame — Ethernet, VLAN, IPv4/IPv6, UDP, VXLAN and the inner frame,
//! TCP with options — into the fields a packet record needs. Used by the workers on
//! live mbufs and by the offline reader on captures.

use super::{ethernet, ipv4, ipv6, tcp, udp, vxlan, Error};

/// The outer (underlay) addresses of a VXLAN-encapsulated frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Underlay {
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub vni: u32,
}

/// What the parser found in a frame. Fields past the deepest parsed layer are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dissection {
    /// Set when the frame arrived in VXLAN; the rest describes the inner frame.
    pub underlay: Option<Underlay>,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub ethertype: u16,
    /// Bytes of the (inner) Ethernet frame.
    pub frame_len: u32,
    /// 4 or 6 when an IP header parsed, else 0.
    pub ip_version: u8,
    /// IPv4 addresses in the first 4 bytes; IPv6 in all 16.
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub protocol: u8,
    /// A non-first fragment: no L4 header to read.
    pub fragment: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp: Option<TcpFields>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFields {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload_len: u32,
    pub timestamps: Option<(u32, u32)>,
}

/// How far a frame could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every header present was read.
    Complete,
    /// A header was truncated or malformed at this layer; fields above it are unset.
    Broken(Layer, Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Ip,
    Udp,
    Vxlan,
    Tcp,
}

/// Dissects `frame`. `decap` says whether UDP to port 4789 is VXLAN to look inside.
/// Never panics and never reads past `frame`, whatever its bytes.
#[inline]
pub fn dissect(frame: &[u8], decap: bool) -> (Dissection, Verdict) {
    let mut d = Dissection::default();
    let v = dissect_into(frame, decap, &mut d, 0, false);
    (d, v)
}

/// Dissects a captured frame that may have been cut short by the capture's snap
/// length (`frame.len() < orig_len`): lengths then come from the IP header, and
/// `frame_len` is the original length.
pub fn dissect_snapped(frame: &[u8], orig_len: usize, decap: bool) -> (Dissection, Verdict) {
    let mut d = Dissection::default();
    let snapped = frame.len() < orig_len;
    let v = dissect_into(frame, decap, &mut d, 0, snapped);
    if snapped {
        // `frame_len` is the captured length of the (inner) frame, which runs to the end
        // of the capture: the original is longer by what the capture cut.
        let cut = orig_len.saturating_sub(frame.len());
        d.frame_len = (d.frame_len as usize + cut).min(u32::MAX as usize) as u32;
    }
    (d, v)
}

fn dissect_into(
    frame: &[u8],
    decap: bool,
    d: &mut Dissection,
    depth: u8,
    snapped: bool,
) -> Verdict {
    let eth = match ethernet::Packet::new_checked(frame) {
        Ok(e) => e,
        Err(e) => return Verdict::Broken(Layer::Ethernet, e),
    };
    d.src_mac = eth.src();
    d.dst_mac = eth.dst();
    d.frame_len = frame.len() as u32;
    let (ethertype, offset, _vlan) = match eth.inner() {
        Ok(x) => x,
        Err(e) => return Verdict::Broken(Layer::Ethernet, e),
    };
    d.ethertype = ethertype;
    let l3 = &frame[offset..];
    // TCP payload length from the IP header when the capture cut the packet short.
    let mut l4_claimed: Option<usize> = None;
    let (protocol, l4): (u8, &[u8]) = match ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let checked = if snapped {
                ipv4::Packet::new_snapped(l3)
            } else {
                ipv4::Packet::new_checked(l3)
            };
            let ip = match checked {
                Ok(p) => p,
                Err(e) => return Verdict::Broken(Layer::Ip, e),
            };
            d.ip_version = 4;
            d.src_ip[..4].copy_from_slice(&ip.src());
            d.dst_ip[..4].copy_from_slice(&ip.dst());
            d.protocol = ip.protocol();
            if ip.frag_offset() != 0 {
                d.fragment = true;
                return Verdict::Complete;
            }
            l4_claimed = Some(ip.total_len() - ip.header_len());
            (
                ip.protocol(),
                &l3[ip.header_len()..ip.total_len().min(l3.len())],
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = match ipv6::Packet::new_checked(l3) {
                Ok(p) => p,
                Err(e) => return Verdict::Broken(Layer::Ip, e),
            };
            d.ip_version = 6;
            d.src_ip = ip.src();
            d.dst_ip = ip.dst();
            match ip.upper_layer() {
                Ok((44, _)) => {
                    d.protocol = 44;
                    d.fragment = true;
                    return Verdict::Complete;
                }
                Ok((p, range)) => {
                    d.protocol = p;
                    (p, &l3[range])
                }
                Err(e) => return Verdict::Broken(Layer::Ip, e),
            }
        }
        _ => return Verdict::Complete,
    };
    match protocol {
        ipv4::PROTO_UDP => {
            let checked = if snapped
                && l4.len() >= udp::HEADER_LEN
                && l4_claimed.is_some_and(|c| c > l4.len())
            {
                udp::Packet::new_snapped(l4)
            } else {
                udp::Packet::new_checked(l4)
            };
            let u = match checked {
                Ok(u) => u,
                Err(e) => return Verdict::Broken(Layer::Udp, e),
            };
            d.src_port = u.src_port();
            d.dst_port = u.dst_port();
            if decap && depth == 0 && d.ip_version == 4 && u.dst_port() == vxlan::UDP_PORT {
                let vx = match vxlan::Packet::new_checked(u.payload()) {
                    Ok(v) => v,
                    Err(e) => return Verdict::Broken(Layer::Vxlan, e),
                };
                let mut outer = Underlay {
                    vni: vx.vni(),
                    ..Default::default()
                };
                outer.src_ip.copy_from_slice(&d.src_ip[..4]);
                outer.dst_ip.copy_from_slice(&d.dst_ip[..4]);
                *d = Dissection {
                    underlay: Some(outer),
                    ..Default::default()
                };
                return dissect_into(vx.payload(), decap, d, depth + 1, snapped);
            }
            Verdict::Complete
        }
        ipv4::PROTO_TCP => {
            let t = match tcp::Packet::new_checked(l4) {
                Ok(t) => t,
                Err(e) => return Verdict::Broken(Layer::Tcp, e),
            };
            d.src_port = t.src_port();
            d.dst_port = t.dst_port();
            d.tcp = Some(TcpFields {
                seq: t.seq(),
                ack: t.ack(),
                flags: t.flags(),
                window: t.window(),
                payload_len: match l4_claimed {
                    Some(c) if snapped => c.saturating_sub(t.header_len()) as u32,
                    _ => t.payload().len() as u32,
                },
                timestamps: t.timestamps(),
            });
            Verdict::Complete
        }
        _ => Verdict::Complete,
    }
}
