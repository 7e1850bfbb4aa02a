//! Records written into the ring with non-temporal stores, published once per loop.
//!
//! A worker's ring slots were last read by the analysis core; an ordinary store first
//! fetches each slot's cache line back for ownership (a cross-core transfer per
//! record). A streaming store of a whole 64-byte line goes through a write-combining
//! buffer with no fetch: the record is built as eight words in registers
//! (`analysis::record::record_words`) and written with eight `movnti`.
//! Streaming stores are weakly ordered, so an `sfence` must come before the ring's
//! tail moves; and an `sfence` stalls every later store until the write-combining
//! buffers have drained, which right after a burst's records costs the next stage
//! about 10 cycles a packet at 64 B. So a worker on a core of its own may stage
//! records past the tail and publish them at the top of its next loop, when the
//! buffers have long drained and the fence is nearly free (records reach the analysis
//! core one loop later; `monitor.publish_per_loop`). Nothing staged is lost
//! (`publish` on drop).
//!
//! The ring's memory is put on huge pages when the ring is taken (`memory`), so the
//! stores do not take a TLB miss every 64 records.

use analysis::record::RecordWords;
use analysis::ring::{RecordProducer, RingCounters, Slot};

/// A worker's end of its record ring, written with streaming stores.
pub struct StreamedRing {
    ring: RecordProducer,
    /// Records written past the tail, not yet published.
    staged: usize,
}

impl StreamedRing {
    /// Takes a worker's ring, putting its memory on huge pages where the kernel can
    /// (`memory::back_with_huge_pages`).
    #[cold]
    pub fn new(ring: RecordProducer) -> Self {
        match crate::memory::back_with_huge_pages(ring.memory()) {
            Ok(bytes) => log::debug!("record ring: {} MiB on huge pages", bytes >> 20),
            Err(e) => log::warn!(
                "record ring stays on 4 KiB pages ({e}): monitoring costs the workers more \
                 (a TLB miss every 64 records); see /sys/kernel/mm/transparent_hugepage"
            ),
        }
        Self { ring, staged: 0 }
    }

    /// Stages up to `n` records made by `make(i)`; those that do not fit are not made
    /// and are counted as dropped.
    #[inline]
    pub fn stage(&mut self, n: usize, mut make: impl FnMut(usize) -> RecordWords) {
        let staged = self.staged;
        self.staged += self
            .ring
            .write_after(staged, n, |i, slot| store_line(slot, &make(i)));
    }

    /// Makes every staged record visible to the consumer.
    #[inline]
    pub fn publish(&mut self) {
        if self.staged == 0 {
            return;
        }
        // The streamed stores must be visible before the tail that publishes them.
        store_fence();
        self.ring.commit(std::mem::take(&mut self.staged));
    }

    pub fn counters(&self) -> std::sync::Arc<RingCounters> {
        self.ring.counters()
    }
}

impl Drop for StreamedRing {
    fn drop(&mut self) {
        self.publish();
    }
}

/// Writes `words` as the record in `slot`, bypassing the cache where the CPU can.
#[inline(always)]
fn store_line(slot: &Slot, words: &RecordWords) {
    #[cfg(target_arch = "x86_64")]
    for (word, &w) in slot.words().iter().zip(words) {
        // SAFETY: `word.as_ptr()` is a valid, aligned 8-byte location inside the slot.
        // The ring hands this slot to this producer alone until it commits it, and the
        // consumer reads it only after that commit's release store (which `publish`
        // fences these stores before), so this plain store races with no access.
        // movnti is SSE2, which every x86-64 CPU has.
        unsafe { core::arch::x86_64::_mm_stream_si64(word.as_ptr() as *mut i64, w as i64) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    slot.store(words);
}

/// Orders the streaming stores before any later store (the ring's tail).
#[inline(always)]
fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sfence has no operands and no effect besides ordering stores.
    unsafe {
        core::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::record::{Direction, Record};
    use analysis::ring::record_ring;

    fn words(i: usize) -> RecordWords {
        core::array::from_fn(|k| (i as u64) << 8 | k as u64)
    }

    #[test]
    fn staged_records_arrive_whole_and_in_order_across_the_wrap_only_when_published() {
        let (p, mut c) = record_ring(48);
        let mut s = StreamedRing::new(p);
        let mut seen = Vec::new();
        // Bursts of 10 and 10 staged, then published; three times into 48 slots, so
        // the later ones wrap.
        for round in 0..3 {
            s.stage(10, |i| words(round * 20 + i));
            s.stage(10, |i| words(round * 20 + 10 + i));
            assert_eq!(c.drain(|_| {}), 0, "nothing visible before publish");
            s.publish();
            c.drain(|rs| seen.extend_from_slice(rs));
        }
        let expect: Vec<Record> = (0..60).map(|i| Record::from_words(words(i))).collect();
        assert_eq!(seen, expect);
        assert_eq!((s.counters().pushed(), s.counters().dropped()), (60, 0));
        // A record built from a frame goes through unchanged; dropping publishes.
        let r = Record::from_frame(&[0u8; 60], 7, Direction::ToNic, 1);
        s.stage(1, |_| r.to_words());
        drop(s);
        let mut got = Vec::new();
        c.drain(|rs| got.extend_from_slice(rs));
        assert_eq!(got, vec![r]);
    }

    #[test]
    fn a_full_ring_drops_and_counts_the_records_that_do_not_fit() {
        let (p, mut c) = record_ring(16);
        let mut s = StreamedRing::new(p);
        s.stage(10, words);
        s.stage(10, |i| words(10 + i)); // 6 fit, staged behind the first 10
        s.publish();
        s.stage(5, words); // ring full, not drained: all dropped
        s.publish();
        assert_eq!((s.counters().pushed(), s.counters().dropped()), (16, 9));
        let mut n = 0;
        c.drain(|rs| {
            for r in rs {
                assert_eq!(*r, Record::from_words(words(n)));
                n += 1;
            }
        });
        assert_eq!(n, 16);
    }
}
