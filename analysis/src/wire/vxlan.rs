//! VXLAN headers (RFC 7348): 8 bytes after UDP port 4789.

use super::{be32, Error, Result};

pub const HEADER_LEN: usize = 8;
pub const UDP_PORT: u16 = 4789;
const FLAG_VNI_VALID: u8 = 0x08;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the header is there and its I flag (VNI valid) is set.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] & FLAG_VNI_VALID == 0 {
            return Err(Error::Malformed);
        }
        Ok(Self { buffer })
    }

    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), 4) >> 8
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub vni: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self { vni: p.vni() }
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < HEADER_LEN || self.vni >= 1 << 24 {
            return Err(if out.len() < HEADER_LEN {
                Error::Truncated
            } else {
                Error::Malformed
            });
        }
        out[0..4].copy_from_slice(&[FLAG_VNI_VALID, 0, 0, 0]);
        out[4..8].copy_from_slice(&(self.vni << 8).to_be_bytes());
        Ok(())
    }
}
