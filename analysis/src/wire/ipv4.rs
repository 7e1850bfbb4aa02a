//! IPv4 headers (RFC 791).

use super::{be16, checksum_accumulate, checksum_finish, Error, Result};

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A view of an IPv4 packet whose header (options included) and total length were
/// checked against the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 4, IHL ≥ 5, header and total length inside the buffer, and total
    /// length ≥ header length. Trailing bytes past the total length (Ethernet padding)
    /// are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let ihl = ((b[0] & 0x0f) as usize) * 4;
        let total = be16(b, 2) as usize;
        if ihl < MIN_HEADER_LEN || total < ihl {
            return Err(Error::Malformed);
        }
        if b.len() < ihl || b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Like `new_checked`, for a packet cut short by a capture's snap length: the
    /// header must be whole, the total length may exceed the buffer.
    pub fn new_snapped(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let ihl = ((b[0] & 0x0f) as usize) * 4;
        if ihl < MIN_HEADER_LEN || (be16(b, 2) as usize) < ihl {
            return Err(Error::Malformed);
        }
        if b.len() < ihl {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[0] & 0x0f) as usize) * 4
    }

    pub fn total_len(&self) -> usize {
        be16(self.buffer.as_ref(), 2) as usize
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        ((be16(self.buffer.as_ref(), 6) & 0x1fff) as usize) * 8
    }

    pub fn more_fragments(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & 0x2000 != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    pub fn src(&self) -> [u8; 4] {
        self.buffer.as_ref()[12..16].try_into().unwrap_or_default()
    }

    pub fn dst(&self) -> [u8; 4] {
        self.buffer.as_ref()[16..20].try_into().unwrap_or_default()
    }

    /// Whether the header checksum verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum_finish(checksum_accumulate(
            0,
            &self.buffer.as_ref()[..self.header_len()],
        )) == 0
    }

    /// The payload, up to the total length (padding excluded) or the end of a
    /// snapped buffer.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..self.total_len().min(b.len())]
    }
}

/// An IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        if !p.checksum_ok() {
            return Err(Error::Malformed);
        }
        Ok(Self {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_fragment: be16(p.buffer.as_ref(), 6) & 0x4000 != 0,
        })
    }

    /// Writes the 20-byte header, checksum included, into `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let total = MIN_HEADER_LEN + self.payload_len;
        if total > u16::MAX as usize {
            return Err(Error::Malformed);
        }
        out[0] = 0x45;
        out[1] = 0;
        out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        out[4..6].copy_from_slice(&self.ident.to_be_bytes());
        out[6..8].copy_from_slice(&(if self.dont_fragment { 0x4000u16 } else { 0 }).to_be_bytes());
        out[8] = self.ttl;
        out[9] = self.protocol;
        out[10..12].copy_from_slice(&[0, 0]);
        out[12..16].copy_from_slice(&self.src);
        out[16..20].copy_from_slice(&self.dst);
        let c = checksum_finish(checksum_accumulate(0, &out[..MIN_HEADER_LEN]));
        out[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }

    /// The TCP/UDP pseudo-header sum for this header and an L4 length.
    pub fn pseudo_header_sum(&self, l4_len: usize) -> u32 {
        let mut s = checksum_accumulate(0, &self.src);
        s = checksum_accumulate(s, &self.dst);
        s + self.protocol as u32 + l4_len as u32
    }
}
