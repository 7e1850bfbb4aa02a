//! IPv6 headers (RFC 8200), with the common extension headers skipped.

use super::{be16, Error, Result};

pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet whose fixed header and payload length were checked.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < HEADER_LEN + be16(b, 4) as usize {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn payload_len(&self) -> usize {
        be16(self.buffer.as_ref(), 4) as usize
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    pub fn src(&self) -> [u8; 16] {
        self.buffer.as_ref()[8..24].try_into().unwrap_or_default()
    }

    pub fn dst(&self) -> [u8; 16] {
        self.buffer.as_ref()[24..40].try_into().unwrap_or_default()
    }

    /// The upper-layer protocol and the range of its bytes in the packet, after
    /// hop-by-hop, routing, fragment and destination-options headers. A non-first
    /// fragment yields protocol 44 (fragment) so callers can count it as one.
    pub fn upper_layer(&self) -> Result<(u8, std::ops::Range<usize>)> {
        let end = HEADER_LEN + self.payload_len();
        let (p, at) = self.upper_layer_offset()?;
        Ok((p, HEADER_LEN + at..end))
    }

    fn upper_layer_offset(&self) -> Result<(u8, usize)> {
        let b = &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()];
        let mut next = self.next_header();
        let mut at = 0usize;
        for _ in 0..8 {
            match next {
                0 | 43 | 60 => {
                    if b.len() < at + 8 {
                        return Err(Error::Truncated);
                    }
                    let len = (b[at + 1] as usize + 1) * 8;
                    next = b[at];
                    at += len;
                    if at > b.len() {
                        return Err(Error::Truncated);
                    }
                }
                44 => {
                    if b.len() < at + 8 {
                        return Err(Error::Truncated);
                    }
                    let offset = be16(b, at + 2) >> 3;
                    if offset != 0 {
                        return Ok((44, at));
                    }
                    next = b[at];
                    at += 8;
                }
                _ => return Ok((next, at)),
            }
        }
        Err(Error::Malformed)
    }
}
