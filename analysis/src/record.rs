//! The packet record: the contract between the dataplane (producer) and the analysis
//! engines (consumers). Fixed size, `repr(C)`, 64 bytes — one cache line per packet.
//!
//! IPv4 addresses are stored whole. IPv6 addresses do not fit beside everything else
//! in 64 bytes, so they are stored as a 32-bit fold (XOR of the four words) with
//! `FLAG_IPV6` set: flows stay distinct with high probability, and the records say so.

use crate::wire::frame::{dissect, Dissection, Verdict};
use crate::wire::{be16, be32};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Record {
    /// TSC ticks (online) or nanoseconds since the epoch (offline); see `Timebase`.
    pub time: u64,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// IPv4 address, or the 32-bit fold of an IPv6 address (`FLAG_IPV6`).
    pub src_ip: u32,
    pub dst_ip: u32,
    pub seq: u32,
    pub ack: u32,
    pub tsval: u32,
    pub tsecr: u32,
    /// Bytes of the inner Ethernet frame.
    pub frame_len: u32,
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

const _: () = assert!(std::mem::size_of::<Record>() == 64);

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

    /// The record of a frame as the workers see it (VXLAN decapsulated). The common
    /// case — untagged IPv4 without options or fragments, TCP or UDP, optionally inside
    /// VXLAN — is read directly; everything else goes through the full dissector. Both
    /// give the same record (a test checks it on a million mutated frames).
    #[inline]
    pub fn from_frame(frame: &[u8], time: u64, direction: Direction, port: u8) -> Record {
        if let Some(r) = fast_path(frame, time, direction, port) {
            return r;
        }
        let (d, v) = dissect(frame, true);
        Record::from_dissection(time, &d, v, direction, port, (NO_HOST, NO_HOST))
    }

    pub fn is_tcp(&self) -> bool {
        self.flags & FLAG_TCP != 0
    }

    pub fn has_timestamps(&self) -> bool {
        self.flags & FLAG_TCP_TS != 0
    }
}

/// Untagged Ethernet + IPv4 (IHL 5, not a fragment) + whole TCP or UDP header, with
/// the IP total length inside the frame; VXLAN to port 4789 is looked through once.
/// `None` for anything else (the caller falls back to the full dissector).
#[inline]
fn fast_path(frame: &[u8], time: u64, direction: Direction, port: u8) -> Option<Record> {
    let (inner, vxlan) = if frame.len() >= 50 + 54
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
        (&frame[50..14 + total], true)
    } else {
        (frame, false)
    };
    let f = inner;
    if f.len() < 34 || be16(f, 12) != 0x0800 || f[14] != 0x45 || be16(f, 20) & 0x3fff != 0 {
        return None;
    }
    let total = be16(f, 16) as usize;
    if total < 20 || total > f.len() - 14 {
        return None;
    }
    let l4 = &f[34..14 + total];
    let protocol = f[23];
    let mut r = Record {
        time,
        src_mac: [f[6], f[7], f[8], f[9], f[10], f[11]],
        dst_mac: [f[0], f[1], f[2], f[3], f[4], f[5]],
        src_ip: be32(f, 26),
        dst_ip: be32(f, 30),
        frame_len: f.len() as u32,
        protocol,
        direction: direction as u8,
        port,
        outer_src: NO_HOST,
        outer_dst: NO_HOST,
        flags: if vxlan { FLAG_VXLAN } else { 0 },
        ..Default::default()
    };
    match protocol {
        6 => {
            if l4.len() < 20 {
                return None;
            }
            let hl = ((l4[12] >> 4) as usize) * 4;
            if hl < 20 || hl > l4.len() {
                return None;
            }
            r.src_port = be16(l4, 0);
            r.dst_port = be16(l4, 2);
            r.seq = be32(l4, 4);
            r.ack = be32(l4, 8);
            r.tcp_flags = l4[13];
            r.window = be16(l4, 14);
            r.payload_len = (l4.len() - hl).min(u16::MAX as usize) as u16;
            r.flags |= FLAG_TCP;
            if hl >= 32 && l4[20..24] == [1, 1, 8, 10] {
                r.flags |= FLAG_TCP_TS;
                r.tsval = be32(l4, 24);
                r.tsecr = be32(l4, 28);
            } else if hl > 20 {
                return None; // other option layouts: the full option parser decides
            }
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
            r.src_port = be16(l4, 0);
            r.dst_port = be16(l4, 2);
        }
        _ => return None,
    }
    Some(r)
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
