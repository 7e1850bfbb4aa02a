//! The packet record: the contract between the dataplane (producer) and the analysis
//! engines (consumers). Fixed size, `repr(C)`, 64 bytes — one cache line per packet.
//!
//! IPv4 addresses are stored whole. IPv6 addresses do not fit beside everything else
//! in 64 bytes, so they are stored as a 32-bit fold (XOR of the four words) with
//! `FLAG_IPV6` set: flows stay distinct with high probability, and the records say so.

use crate::wire::frame::{Dissection, Verdict};

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

    pub fn is_tcp(&self) -> bool {
        self.flags & FLAG_TCP != 0
    }

    pub fn has_timestamps(&self) -> bool {
        self.flags & FLAG_TCP_TS != 0
    }
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
