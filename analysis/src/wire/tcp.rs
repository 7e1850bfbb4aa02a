//! TCP headers (RFC 9293) and the options Wren uses (timestamps, RFC 7323).

use super::{be16, be32, checksum_accumulate, checksum_finish, Error, Result};

pub const MIN_HEADER_LEN: usize = 20;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;

/// A view of a TCP segment whose header (options included) lies inside the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let off = ((b[12] >> 4) as usize) * 4;
        if off < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if off > b.len() {
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
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[12] >> 4) as usize) * 4
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), 14)
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// TSval and TSecr of the timestamp option, if present and well formed.
    #[inline]
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        let o = self.options();
        // Fast path: the layout Linux and most stacks send (NOP, NOP, TS).
        if o.len() >= 12 && o[..4] == [1, 1, 8, 10] {
            return Some((be32(o, 4), be32(o, 8)));
        }
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                0 => return None,
                1 => i += 1,
                kind => {
                    let len = *o.get(i + 1)? as usize;
                    if len < 2 || i + len > o.len() {
                        return None;
                    }
                    if kind == 8 && len == 10 {
                        return Some((be32(o, i + 2), be32(o, i + 6)));
                    }
                    i += len;
                }
            }
        }
        None
    }
}

/// A TCP header (options: timestamps only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub timestamps: Option<(u32, u32)>,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            timestamps: p.timestamps(),
        }
    }

    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + if self.timestamps.is_some() { 12 } else { 0 }
    }

    /// Writes the header (checksum zero; see `fill_checksum`).
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let hl = self.header_len();
        if out.len() < hl {
            return Err(Error::Truncated);
        }
        out[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..12].copy_from_slice(&self.ack.to_be_bytes());
        out[12] = ((hl / 4) as u8) << 4;
        out[13] = self.flags;
        out[14..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..20].copy_from_slice(&[0, 0, 0, 0]);
        if let Some((val, ecr)) = self.timestamps {
            out[20..22].copy_from_slice(&[1, 1]);
            out[22..24].copy_from_slice(&[8, 10]);
            out[24..28].copy_from_slice(&val.to_be_bytes());
            out[28..32].copy_from_slice(&ecr.to_be_bytes());
        }
        Ok(())
    }

    /// Fills in the checksum of an emitted segment (header + payload).
    pub fn fill_checksum(segment: &mut [u8], pseudo_sum: u32) {
        if segment.len() < MIN_HEADER_LEN {
            return;
        }
        segment[16..18].copy_from_slice(&[0, 0]);
        let c = checksum_finish(checksum_accumulate(pseudo_sum, segment));
        segment[16..18].copy_from_slice(&c.to_be_bytes());
    }
}
