//! Ethernet II frames, with up to two VLAN tags (802.1Q, 802.1ad).

use super::{be16, Error, Result};

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn dst(&self) -> [u8; 6] {
        self.buffer.as_ref()[0..6].try_into().unwrap_or_default()
    }

    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[6..12].try_into().unwrap_or_default()
    }

    /// The EtherType in the untagged header position (may be a VLAN TPID).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 12)
    }

    /// Skips up to two VLAN tags: the inner EtherType, the payload offset and the outer
    /// VLAN id if any.
    pub fn inner(&self) -> Result<(u16, usize, Option<u16>)> {
        let b = self.buffer.as_ref();
        let mut ethertype = self.ethertype();
        let mut offset = HEADER_LEN;
        let mut vlan = None;
        for _ in 0..2 {
            if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
                break;
            }
            if b.len() < offset + 4 {
                return Err(Error::Truncated);
            }
            vlan.get_or_insert(be16(b, offset) & 0x0fff);
            ethertype = be16(b, offset + 2);
            offset += 4;
        }
        Ok((ethertype, offset, vlan))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// An untagged Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            dst: p.dst(),
            src: p.src(),
            ethertype: p.ethertype(),
        }
    }

    /// Writes the header into the first 14 bytes of `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        out[0..6].copy_from_slice(&self.dst);
        out[6..12].copy_from_slice(&self.src);
        out[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        Ok(())
    }
}
