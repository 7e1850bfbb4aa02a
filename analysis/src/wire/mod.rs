//! Zero-copy header views and parsed representations, smoltcp style: a `Packet<T>`
//! wraps a buffer, `new_checked` verifies once that every fixed field lies inside it
//! (so accessors cannot fail or read past the end), and a `Repr` is the parsed form
//! with `parse` and `emit`. One parser serves the workers (on mbuf bytes) and the
//! offline reader (on capture bytes), and never panics, whatever the bytes.

pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod sample_frames;
pub mod tcp;
pub mod udp;
pub mod vxlan;

/// Why a header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header (or the length the header claims).
    #[error("truncated")]
    Truncated,
    /// A field holds a value the protocol forbids (bad version, length below minimum, ...).
    #[error("malformed")]
    Malformed,
}

pub type Result<T> = core::result::Result<T, Error>;

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The Internet checksum (RFC 1071) of `data`, folded, not complemented, starting from `sum`.
pub fn checksum_accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

/// Folds and complements an accumulated checksum.
pub fn checksum_finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
