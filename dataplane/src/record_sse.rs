//! The workers' record of the common frame, built with SSSE3/SSE4.1 shuffles: TCP over
//! untagged IPv4 (IHL 5, not a fragment) with no options or the timestamps first,
//! plain or inside VXLAN. That is nearly every frame of the TCP traffic Wren measures,
//! and the record of each is built per packet on the forwarding core.
//!
//! Why: the scalar fast path spends most of its time on a frame moving bytes (byte
//! swaps, shifts, ors) and the rest in a chain of checks, each a branch. Here the
//! header checks are masked vector compares and the byte moves a few shuffles, which
//! makes monitoring cheaper for the switch at 64 B (figures in bench/README.md).
//!
//! The switch takes its outer VXLAN check from here too (`is_whole_vxlan`, cheaper
//! than the checked views in its forward stage), and with monitoring on it does not
//! repeat it for the frames this path recorded as VXLAN (`monitor::WholeVxlan`): one
//! outer parse for both.
//!
//! Compiled where the build enables SSSE3 and SSE4.1 (`.cargo/config.toml` does, as
//! DPDK 22.11 itself requires SSE4.2 and its EAL refuses to start without it);
//! anything this path does not take, and every frame on other builds, goes through
//! `analysis::record::record_words`. A test checks this path against the full
//! dissector on a million mutated frames. It lives here, not in `analysis`, because
//! the intrinsics are `unsafe` to call and `analysis` is safe Rust.

use core::arch::x86_64::{
    __m128i, _mm_alignr_epi8, _mm_and_si128, _mm_insert_epi32, _mm_or_si128, _mm_set_epi8,
    _mm_shuffle_epi8, _mm_testz_si128, _mm_xor_si128,
};

use analysis::record::{
    be32_pair, le32, tail, Direction, RecordWords, FLAG_TCP, FLAG_TCP_TS, FLAG_VXLAN, TCP_TS_FIRST,
    VXLAN_INNER,
};

// SAFETY (every `unsafe` block below): the blocks only call SSE2, SSSE3 and SSE4.1
// intrinsics on values (no pointers), and this module is compiled only when the
// build enables those features, so the CPU that runs it has them.

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
}

/// Bytes 0..64 of `f` as four vectors; `None` for a shorter frame.
#[inline(always)]
fn first_64(f: &[u8]) -> Option<[__m128i; 4]> {
    let head = f.get(..64)?.as_ptr();
    let (v0, v1, v2, v3): (__m128i, __m128i, __m128i, __m128i);
    // SAFETY: `head` points at 64 readable bytes (the slice above), read unaligned.
    // In asm, not as intrinsics: LLVM would read the frame's single bytes out of these
    // vectors (extracts and spills, which are slower than loading them again).
    unsafe {
        core::arch::asm!(
            "movdqu {v0}, xmmword ptr [{p}]",
            "movdqu {v1}, xmmword ptr [{p} + 16]",
            "movdqu {v2}, xmmword ptr [{p} + 32]",
            "movdqu {v3}, xmmword ptr [{p} + 48]",
            p = in(reg) head,
            v0 = out(xmm_reg) v0,
            v1 = out(xmm_reg) v1,
            v2 = out(xmm_reg) v2,
            v3 = out(xmm_reg) v3,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    Some([v0, v1, v2, v3])
}

/// The bytes of `v` under `mask` xor `want`: all zero where they match.
#[inline(always)]
fn mismatch(v: __m128i, mask: __m128i, want: __m128i) -> __m128i {
    // SAFETY: see the top of the module.
    unsafe { _mm_xor_si128(_mm_and_si128(v, mask), want) }
}

#[inline(always)]
fn or(a: __m128i, b: __m128i) -> __m128i {
    // SAFETY: see the top of the module.
    unsafe { _mm_or_si128(a, b) }
}

/// Whether a mismatch (`mismatch`, or several `or`ed) is all zero.
#[inline(always)]
fn matches(mismatch: __m128i) -> bool {
    // SAFETY: see the top of the module.
    unsafe { _mm_testz_si128(mismatch, mismatch) != 0 }
}

/// Bytes 12..15 of a frame (in its first vector): ethertype IPv4, version 4, IHL 5.
#[inline(always)]
fn ipv4_ihl5(v0: __m128i) -> __m128i {
    // SAFETY: see the top of the module.
    let (mask, want) = unsafe {
        (
            _mm_set_epi8(0, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            _mm_set_epi8(0, 0x45, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        )
    };
    mismatch(v0, mask, want)
}

/// Bytes 20..24 of a frame (its second vector's 4..8): no fragment bits, and the
/// protocol `protocol`.
#[inline(always)]
fn whole_datagram_of(v1: __m128i, protocol: i8) -> __m128i {
    // SAFETY: see the top of the module.
    let (mask, want) = unsafe {
        (
            _mm_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, -1, 0, -1, 0x3f, 0, 0, 0, 0),
            _mm_set_epi8(0, 0, 0, 0, 0, 0, 0, 0, protocol, 0, 0, 0, 0, 0, 0, 0),
        )
    };
    mismatch(v1, mask, want)
}

/// `record_words` for the shape this module takes, and whether the frame is VXLAN
/// (then a whole datagram as `switch::overlay::classify_whole_vxlan` relies on: IPv4
/// with IHL 5, not a fragment, UDP to port 4789 with the length the IP header gives,
/// the VNI flag set, and an inner frame of at least 64 bytes); `None` for any other
/// frame.
#[inline(always)]
pub fn record_words(
    frame: &[u8],
    time: u64,
    direction: Direction,
    port: u8,
) -> Option<(RecordWords, bool)> {
    if frame.get(23) == Some(&17) {
        let words = tcp_ipv4(vxlan_inner(frame)?, time, FLAG_VXLAN, direction, port)?;
        Some((words, true))
    } else {
        Some((tcp_ipv4(frame, time, 0, direction, port)?, false))
    }
}

/// Whether `frame` is a whole VXLAN datagram as `switch::overlay::classify` checks one
/// (`vxlan_inner`, and an inner Ethernet header): the switch's outer parse, without
/// the record.
#[inline(always)]
pub fn is_whole_vxlan(frame: &[u8]) -> bool {
    frame.get(23) == Some(&17) && vxlan_inner(frame).is_some_and(|inner| inner.len() >= 14)
}

/// The inner frame of a whole, consistent VXLAN frame (as the portable path checks it).
#[inline(always)]
fn vxlan_inner(frame: &[u8]) -> Option<&[u8]> {
    let [v0, v1, v2, _] = first_64(frame)?;
    // Bytes 36..38: UDP port 4789; byte 42: the VXLAN I flag.
    // SAFETY: see the top of the module.
    let (mask, want) = unsafe {
        (
            _mm_set_epi8(0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0),
            _mm_set_epi8(
                0,
                0,
                0,
                0,
                0,
                0x08,
                0,
                0,
                0,
                0,
                0xb5u8 as i8,
                0x12,
                0,
                0,
                0,
                0,
            ),
        )
    };
    let total = be16(frame, 16) as usize;
    let udp_len = be16(frame, 38) as usize;
    let headers_match = matches(or(
        or(ipv4_ihl5(v0), whole_datagram_of(v1, 17)),
        mismatch(v2, mask, want),
    ));
    let lengths_fit =
        (total >= 20 + 8 + 8) & (total <= frame.len() - 14) & (udp_len == total.wrapping_sub(20));
    if !(headers_match & lengths_fit) {
        return None;
    }
    frame.get(VXLAN_INNER..14 + total)
}

/// The record of `f` if it is TCP/IPv4 of this module's shape and at least 64 bytes.
#[inline(always)]
fn tcp_ipv4(f: &[u8], time: u64, flags: u8, direction: Direction, port: u8) -> Option<RecordWords> {
    let [v0, v1, v2, v3] = first_64(f)?;
    let total = be16(f, 16) as usize;
    let header = ((f[46] >> 4) as usize) * 4;
    let segment = total.wrapping_sub(20);
    // No branch on the options: whether the timestamps come first is a mask.
    let timestamps_first = (header >= 32) & (le32(f, 54) == TCP_TS_FIRST);
    let headers_match = matches(or(ipv4_ihl5(v0), whole_datagram_of(v1, 6)));
    let lengths_fit = (total >= 40)
        & (total <= f.len() - 14)
        & (header <= segment)
        & ((header == 20) | timestamps_first);
    if !(headers_match & lengths_fit) {
        return None;
    }
    // Bytes 58..66, inside the segment when the timestamps come first (checked above).
    let timestamps = be32_pair(f, 58) & (timestamps_first as u64).wrapping_neg();
    let ts_flag = FLAG_TCP_TS * timestamps_first as u8;
    // SAFETY: see the top of the module.
    let (macs_len, addresses_seq_ack, ports_window) = unsafe {
        // Bytes 26..42 (addresses, ports, seq) and 38..54 (seq, ack, offset, flags,
        // window).
        let addresses_ports = _mm_alignr_epi8::<10>(v2, v1);
        let sequence_window = _mm_alignr_epi8::<6>(v3, v2);
        (
            // Words 1 and 2: the MACs as on the wire, then the frame's length.
            _mm_insert_epi32::<3>(v0, f.len() as i32),
            // Words 3 and 4: the addresses, then seq and ack, each in host order.
            _mm_or_si128(
                _mm_shuffle_epi8(
                    addresses_ports,
                    _mm_set_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 4, 5, 6, 7, 0, 1, 2, 3),
                ),
                _mm_shuffle_epi8(
                    sequence_window,
                    _mm_set_epi8(4, 5, 6, 7, 0, 1, 2, 3, -1, -1, -1, -1, -1, -1, -1, -1),
                ),
            ),
            // Word 6 but the payload: ports in bytes 0..4, window in 6..8, host order.
            _mm_or_si128(
                _mm_shuffle_epi8(
                    addresses_ports,
                    _mm_set_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 10, 11, 8, 9),
                ),
                _mm_shuffle_epi8(
                    sequence_window,
                    _mm_set_epi8(
                        -1, -1, -1, -1, -1, -1, -1, -1, 10, 11, -1, -1, -1, -1, -1, -1,
                    ),
                ),
            ),
        )
    };
    let payload = (segment - header).min(u16::MAX as usize) as u64;
    let [w1, w2]: [u64; 2] = bytemuck::cast(macs_len);
    let [w3, w4]: [u64; 2] = bytemuck::cast(addresses_seq_ack);
    let [ports_window, _]: [u64; 2] = bytemuck::cast(ports_window);
    Some([
        time,
        w1,
        w2,
        w3,
        w4,
        timestamps,
        ports_window | payload << 32,
        tail(6, f[47], flags | FLAG_TCP | ts_flag, direction, port),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::record::{Record, NO_HOST};
    use analysis::wire::frame::dissect;
    use analysis::wire::sample_frames::{fuzz_inputs, fuzz_seeds};

    /// Every record this path makes is the full dissector's, on a million mutated
    /// frames; and it takes the shapes it is for (plain and VXLAN, with and without
    /// timestamps), or it would save nothing.
    #[test]
    fn the_vector_path_gives_the_dissectors_record() {
        let mut taken = [0u32; 4];
        let seeds = fuzz_seeds().into_iter();
        for (i, buf) in seeds.chain(fuzz_inputs(0x55e, 1_000_000)).enumerate() {
            let Some((words, vxlan)) = record_words(&buf, i as u64, Direction::FromNic, 3) else {
                continue;
            };
            let (d, v) = dissect(&buf, true);
            let full =
                Record::from_dissection(i as u64, &d, v, Direction::FromNic, 3, (NO_HOST, NO_HOST));
            let r = Record::from_words(words);
            assert_eq!(r, full, "input {i}: {buf:02x?}");
            assert_eq!(vxlan, r.flags & FLAG_VXLAN != 0, "input {i}: {buf:02x?}");
            taken[(r.flags & FLAG_VXLAN != 0) as usize * 2 + r.has_timestamps() as usize] += 1;
        }
        assert!(
            taken.iter().all(|&n| n > 1000),
            "plain, plain with timestamps, VXLAN, VXLAN with timestamps: {taken:?}"
        );
    }

    /// VXLAN frames whose outer IP length cuts the inner frame short anywhere, while
    /// the bytes after the cut still hold the whole inner frame (as a frame padded by
    /// the sender, or forged): the record is the dissector's, which sees only the
    /// inner bytes the outer headers bound.
    #[test]
    fn an_inner_frame_is_only_what_the_outer_length_bounds() {
        let seeds = fuzz_seeds();
        let mut taken = 0;
        for seed in seeds.iter().filter(|f| f.get(23) == Some(&17)) {
            for inner_len in 0..=seed.len() - VXLAN_INNER {
                let mut f = seed.clone();
                let total = (VXLAN_INNER - 14 + inner_len) as u16;
                f[16..18].copy_from_slice(&total.to_be_bytes());
                f[38..40].copy_from_slice(&(total - 20).to_be_bytes());
                let Some((words, _)) = record_words(&f, 1, Direction::FromNic, 0) else {
                    continue;
                };
                let (d, v) = dissect(&f, true);
                let full =
                    Record::from_dissection(1, &d, v, Direction::FromNic, 0, (NO_HOST, NO_HOST));
                assert_eq!(Record::from_words(words), full, "inner cut to {inner_len}");
                taken += 1;
            }
        }
        assert!(taken >= 2, "the uncut frames at least take the vector path");
    }
}
