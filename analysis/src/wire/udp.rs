//! UDP headers (RFC 768).

use super::{be16, checksum_accumulate, checksum_finish, Error, Result};

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the header and that the length field fits the buffer and is ≥ 8.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = be16(b, 4) as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// For a datagram cut short by a capture: only the 8-byte header must be there.
    pub fn new_snapped(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn len(&self) -> usize {
        be16(self.buffer.as_ref(), 4) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[HEADER_LEN..self.len().clamp(HEADER_LEN, b.len())]
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() - HEADER_LEN,
        }
    }

    /// Writes the header with a zero checksum (allowed for UDP over IPv4, and what
    /// VXLAN senders commonly do, RFC 7348 §5).
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = HEADER_LEN + self.payload_len;
        if len > u16::MAX as usize {
            return Err(Error::Malformed);
        }
        out[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        out[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        out[6..8].copy_from_slice(&[0, 0]);
        Ok(())
    }

    /// Fills in the checksum of an emitted datagram (`segment` = header + payload).
    pub fn fill_checksum(segment: &mut [u8], pseudo_sum: u32) {
        if segment.len() < HEADER_LEN {
            return;
        }
        segment[6..8].copy_from_slice(&[0, 0]);
        let c = checksum_finish(checksum_accumulate(pseudo_sum, segment));
        let c = if c == 0 { 0xffff } else { c };
        segment[6..8].copy_from_slice(&c.to_be_bytes());
    }
}
