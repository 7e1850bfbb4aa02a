//! The packet record: the contract between the dataplane (producer) and the analysis
//! engines (consumers). Fixed size, `repr(C)`, 64 bytes — one cache line per packet.
//!
//! IPv4 addresses are stored whole. IPv6 addresses do not fit beside everything else
//! in 64 bytes, so they are stored as a 32-bit fold (XOR of the four words) with
//! `FLAG_IPV6` set: flows stay distinct with high probability, and the records say so.

use crate::wire::be16;
use crate::wire::frame::{dissect, Dissection, Verdict};

/// Which way the packet crossed the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    /// Unknown (offline captures).
    Unknown = 0,
    /// From a local VM towards the NIC (leaving the host).
    ToNic = 1,
    /// From the NIC towards a local VM (entering the host).
    FromNic = 2,
}

/// "No host" in `outer_src`/`outer_dst`.
pub const NO_HOST: u8 = u8::MAX;

pub const FLAG_IPV6: u8 = 0x01;
pub const FLAG_TCP_TS: u8 = 0x02;
pub const FLAG_VXLAN: u8 = 0x04;
pub const FLAG_FRAGMENT: u8 = 0x08;
pub const FLAG_TCP: u8 = 0x10;
/// The parser stopped at a truncated or malformed header.
pub const FLAG_BROKEN: u8 = 0x20;

/// Field order follows the wire where it can (MACs as on the wire, address and
/// sequence pairs side by side), so the workers' fast path builds the record as eight
/// 64-bit words straight from the frame's bytes (`record_words`) and stores each slot
/// with one write per word. Aligned to its cache line: a record never straddles two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Record {
    /// TSC ticks (online) or nanoseconds since the epoch (offline); see `Timebase`.
    pub time: u64,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Bytes of the inner Ethernet frame.
    pub frame_len: u32,
    /// IPv4 address, or the 32-bit fold of an IPv6 address (`FLAG_IPV6`).
    pub src_ip: u32,
    pub dst_ip: u32,
    pub seq: u32,
    pub ack: u32,
    pub tsval: u32,
    pub tsecr: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP payload bytes (a TSO segment can hold up to 64 KiB).
    pub payload_len: u16,
    pub window: u16,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub flags: u8,
    pub direction: u8,
    /// The switch port the packet came in on (online).
    pub port: u8,
    /// Underlay hosts (indices in the daemon's or the capture's host table), `NO_HOST` if none.
    pub outer_src: u8,
    pub outer_dst: u8,
    pub _reserved: u8,
}

/// A record as the eight little-endian words it is stored as.
pub type RecordWords = [u64; 8];

const _: () = assert!(std::mem::size_of::<Record>() == 64);
// `record_words` lays the fields out as little-endian words.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "records are built as little-endian words"
);

fn fold(ip: &[u8; 16], v6: bool) -> u32 {
    if v6 {
        (0..4).fold(0u32, |a, i| {
            a ^ u32::from_be_bytes([ip[4 * i], ip[4 * i + 1], ip[4 * i + 2], ip[4 * i + 3]])
        })
    } else {
        u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]])
    }
}

impl Record {
    /// Fills a record from a dissection. `outer` gives the host indices of the
    /// underlay addresses (the caller's table).
    #[inline]
    pub fn from_dissection(
        time: u64,
        d: &Dissection,
        verdict: Verdict,
        direction: Direction,
        port: u8,
        outer: (u8, u8),
    ) -> Self {
        let v6 = d.ip_version == 6;
        let mut flags = 0;
        if v6 {
            flags |= FLAG_IPV6;
        }
        if d.underlay.is_some() {
            flags |= FLAG_VXLAN;
        }
        if d.fragment {
            flags |= FLAG_FRAGMENT;
        }
        if matches!(verdict, Verdict::Broken(..)) {
            flags |= FLAG_BROKEN;
        }
        let mut r = Record {
            time,
            src_mac: d.src_mac,
            dst_mac: d.dst_mac,
            src_ip: fold(&d.src_ip, v6),
            dst_ip: fold(&d.dst_ip, v6),
            frame_len: d.frame_len,
            src_port: d.src_port,
            dst_port: d.dst_port,
            protocol: d.protocol,
            direction: direction as u8,
            port,
            outer_src: outer.0,
            outer_dst: outer.1,
            ..Default::default()
        };
        if let Some(t) = d.tcp {
            r.flags = flags | FLAG_TCP;
            r.seq = t.seq;
            r.ack = t.ack;
            r.tcp_flags = t.flags;
            r.window = t.window;
            r.payload_len = t.payload_len.min(u16::MAX as u32) as u16;
            if let Some((val, ecr)) = t.timestamps {
                r.flags |= FLAG_TCP_TS;
                r.tsval = val;
                r.tsecr = ecr;
            }
        } else {
            r.flags = flags;
        }
        r
    }

    /// The record of a frame as the workers see it. The common case — untagged IPv4
    /// without options or fragments, TCP or UDP, optionally inside VXLAN — is read
    /// directly; everything else goes through the full dissector. Both give the same
    /// record (a test checks it on a million mutated frames).
    ///
    /// VXLAN is decapsulated only in frames from the NIC (or of unknown direction, in
    /// captures): a frame a VM sends is the tenant's, and a VXLAN header inside it is the
    /// guest's own, not the overlay's. Read through, it would let a guest put traffic
    /// between any MACs it names into the traffic matrix.
    #[inline]
    pub fn from_frame(frame: &[u8], time: u64, direction: Direction, port: u8) -> Record {
        if let Some(w) = record_words(frame, time, direction, port) {
            let r = Record::from_words(w);
            if !(direction == Direction::ToNic && r.flags & FLAG_VXLAN != 0) {
                return r;
            }
        }
        Record::from_frame_dissected(frame, time, direction, port)
    }

    /// The record of a frame the fast path does not take (`record_words` gave `None`,
    /// or read a VM's frame as VXLAN), through the full dissector. Out of line: the
    /// workers' loop stays small.
    #[cold]
    #[inline(never)]
    pub fn from_frame_dissected(frame: &[u8], time: u64, direction: Direction, port: u8) -> Record {
        let (d, v) = dissect(frame, direction != Direction::ToNic);
        Record::from_dissection(time, &d, v, direction, port, (NO_HOST, NO_HOST))
    }

    /// The record stored as `words`.
    #[inline]
    pub fn from_words(words: RecordWords) -> Record {
        bytemuck::cast(words)
    }

    /// The words `self` is stored as.
    #[inline]
    pub fn to_words(self) -> RecordWords {
        bytemuck::cast(self)
    }

    pub fn is_tcp(&self) -> bool {
        self.flags & FLAG_TCP != 0
    }

    pub fn has_timestamps(&self) -> bool {
        self.flags & FLAG_TCP_TS != 0
    }
}

/// Little-endian loads that read nothing (zero) past the end of `b`; callers have
/// checked the length, so the zero never shows, and the loop has no panic path.
#[inline(always)]
fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// A little-endian 32-bit load, zero past the end of `b` (as `le64`).
#[inline(always)]
pub fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Two adjacent big-endian 32-bit fields at `at` (addresses, seq/ack, TSval/TSecr) as
/// the record stores them: the first in the low half, each in host order.
#[inline(always)]
pub fn be32_pair(b: &[u8], at: usize) -> u64 {
    le64(b, at).swap_bytes().rotate_left(32)
}

/// The inner Ethernet frame's offset in a VXLAN frame (outer Ethernet, IPv4 without
/// options, UDP, VXLAN).
pub const VXLAN_INNER: usize = 50;

/// The TCP option layout that starts with the timestamps (NOP, NOP, kind 8, length
/// 10), as a little-endian word.
pub const TCP_TS_FIRST: u32 = u32::from_le_bytes([1, 1, 8, 10]);

/// The fast path of `Record::from_frame`, as the record's eight words: untagged
/// Ethernet + IPv4 (IHL 5, not a fragment) + whole TCP or UDP header, with the IP
/// total length inside the frame, or Ethernet with an ethertype the dissector does not
/// look past (ARP, ...); VXLAN to port 4789 is looked through once. `None`
/// for anything else (the caller falls back to the full dissector). Both paths give
/// the same record (a test checks it on a million mutated frames).
#[inline]
pub fn record_words(
    frame: &[u8],
    time: u64,
    direction: Direction,
    port: u8,
) -> Option<RecordWords> {
    let (f, vxlan) = if frame.len() >= VXLAN_INNER + 54
        && be16(frame, 12) == 0x0800
        && frame[14] == 0x45
        && frame[23] == 17
        && be16(frame, 36) == crate::wire::vxlan::UDP_PORT
    {
        // Outer IPv4/UDP/VXLAN must be whole and consistent, the I flag set.
        let total = be16(frame, 16) as usize;
        let udp_len = be16(frame, 38) as usize;
        if total > frame.len() - 14
            || total < 20 + 8 + 8
            || udp_len != total - 20
            || be16(frame, 20) & 0x3fff != 0
            || frame[42] & 0x08 == 0
        {
            return None;
        }
        (frame.get(VXLAN_INNER..14 + total)?, true)
    } else {
        (frame, false)
    };
    if f.len() < 34 || be16(f, 12) != 0x0800 || f[14] != 0x45 || be16(f, 20) & 0x3fff != 0 {
        if f.len() >= 14 && !is_ip_or_vlan(be16(f, 12)) {
            // ARP, LLDP and the like: the record has their MACs and length, nothing more.
            let flags = if vxlan { FLAG_VXLAN } else { 0 };
            return Some(words(
                f,
                time,
                0,
                [0; 3],
                tail(0, 0, flags, direction, port),
            ));
        }
        return None;
    }
    let total = be16(f, 16) as usize;
    if total < 20 || total > f.len() - 14 {
        return None;
    }
    let l4 = f.get(34..14 + total)?;
    let protocol = f[23];
    let mut flags = if vxlan { FLAG_VXLAN } else { 0 };
    // Words 4-6 and the TCP flags: seq/ack, TSval/TSecr, ports/payload/window.
    let (seq_ack, timestamps, ports_etc, tcp_flags) = match protocol {
        6 => {
            if l4.len() < 20 {
                return None;
            }
            let hl = ((l4[12] >> 4) as usize) * 4;
            if hl < 20 || hl > l4.len() {
                return None;
            }
            flags |= FLAG_TCP;
            let timestamps = if hl >= 32 && le32(l4, 20) == TCP_TS_FIRST {
                flags |= FLAG_TCP_TS;
                be32_pair(l4, 24)
            } else if hl > 20 {
                return None; // other option layouts: the full option parser decides
            } else {
                0
            };
            let payload = (l4.len() - hl).min(u16::MAX as usize) as u64;
            let window = be16(l4, 14) as u64;
            let ports = le32(l4, 0).swap_bytes().rotate_left(16) as u64;
            (
                be32_pair(l4, 4),
                timestamps,
                ports | payload << 32 | window << 48,
                l4[13],
            )
        }
        17 => {
            if l4.len() < 8 {
                return None;
            }
            let ulen = be16(l4, 4) as usize;
            if ulen < 8
                || ulen > l4.len()
                || (!vxlan && be16(l4, 2) == crate::wire::vxlan::UDP_PORT)
            {
                return None;
            }
            (0, 0, le32(l4, 0).swap_bytes().rotate_left(16) as u64, 0)
        }
        _ => return None,
    };
    Some(words(
        f,
        time,
        be32_pair(f, 26),
        [seq_ack, timestamps, ports_etc],
        tail(protocol, tcp_flags, flags, direction, port),
    ))
}

/// Ethertypes the full dissector looks past the Ethernet header for.
#[inline(always)]
fn is_ip_or_vlan(ethertype: u16) -> bool {
    use crate::wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN};
    matches!(
        ethertype,
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | ETHERTYPE_VLAN | ETHERTYPE_QINQ
    )
}

/// The record's last word: protocol, flags, direction, port, no underlay hosts.
#[inline(always)]
pub fn tail(protocol: u8, tcp_flags: u8, flags: u8, direction: Direction, port: u8) -> u64 {
    protocol as u64
        | (tcp_flags as u64) << 8
        | (flags as u64) << 16
        | (direction as u64) << 24
        | (port as u64) << 32
        | (NO_HOST as u64) << 40
        | (NO_HOST as u64) << 48
}

/// The eight words of frame `f`'s record: time, MACs and length from `f`, then the
/// addresses, the three transport words and the tail.
#[inline(always)]
fn words(f: &[u8], time: u64, addresses: u64, transport: [u64; 3], tail: u64) -> RecordWords {
    [
        time,
        le64(f, 0),
        le32(f, 8) as u64 | (f.len() as u64) << 32,
        addresses,
        transport[0],
        transport[1],
        transport[2],
        tail,
    ]
}

/// Converts record times to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timebase {
    /// Ticks per second: the TSC rate online, 1e9 offline.
    pub hz: u64,
}

impl Timebase {
    pub const NANOS: Timebase = Timebase { hz: 1_000_000_000 };

    #[inline]
    pub fn to_ns(&self, ticks: u64) -> u64 {
        if self.hz == 1_000_000_000 {
            ticks
        } else {
            ((ticks as u128 * 1_000_000_000u128) / self.hz.max(1) as u128) as u64
        }
    }
}
