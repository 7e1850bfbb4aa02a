//! The per-worker record ring: single producer (a worker), single consumer (the
//! analysis core), records written in one batch per burst. A full ring drops the
//! records that do not fit and counts them; the producer never waits.
//!
//! The slots are eight atomic words each, so both ends are safe Rust: the producer's
//! stores and the consumer's loads compile to plain moves (`Relaxed`), and the tail's
//! release store orders them. The slots live in 2 MiB-aligned pages (`Page`), so that
//! the dataplane can put them on huge pages (`RecordProducer::memory`): a worker
//! streams a record into a new slot every few nanoseconds, and with 4 KiB pages it
//! takes a TLB miss every 64 records (in a VM, a two-level walk); on huge pages
//! monitoring costs the switch about 2 points less at 64 B (bench/README.md).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::record::{Record, RecordWords};

/// One record's place in a ring: the record's eight words (`Record::to_words`).
#[derive(bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Slot([AtomicU64; 8]);

impl Slot {
    /// Writes `words` with ordinary stores (the dataplane streams them instead, through
    /// `words`).
    #[inline(always)]
    pub fn store(&self, words: &RecordWords) {
        for (slot, &w) in self.0.iter().zip(words) {
            slot.store(w, Ordering::Relaxed);
        }
    }

    /// The slot's words, for a producer that writes them its own way.
    #[inline(always)]
    pub fn words(&self) -> &[AtomicU64; 8] {
        &self.0
    }

    #[inline(always)]
    fn load(&self) -> Record {
        Record::from_words(core::array::from_fn(|k| self.0[k].load(Ordering::Relaxed)))
    }
}

/// The size of a huge page on x86-64 (and of a ring's allocation unit).
pub const HUGE_PAGE: usize = 2 << 20;
const SLOTS_PER_PAGE: usize = HUGE_PAGE / std::mem::size_of::<Slot>();

#[derive(bytemuck::Zeroable)]
#[repr(C, align(2097152))]
struct Page([Slot; SLOTS_PER_PAGE]);

const _: () = assert!(std::mem::size_of::<Page>() == HUGE_PAGE);
const _: () = assert!(std::mem::align_of::<Page>() == HUGE_PAGE);

/// A position's cache line of its own: the producer writes `tail`, the consumer
/// `head`, and neither should take the other's line with its own.
#[repr(align(128))]
struct Padded<T>(T);

struct Shared {
    pages: Box<[Page]>,
    capacity: usize,
    /// Records the consumer has taken, ever.
    head: Padded<AtomicUsize>,
    /// Records the producer has published, ever.
    tail: Padded<AtomicUsize>,
}

impl Shared {
    /// The run of slots from ring position `at` on, at most `max` long and ending at
    /// the end of a page or of the ring, whichever comes first.
    #[inline(always)]
    fn run(&self, at: usize, max: usize) -> &[Slot] {
        let (page, first) = (at / SLOTS_PER_PAGE, at % SLOTS_PER_PAGE);
        let end = (self.capacity - page * SLOTS_PER_PAGE).min(SLOTS_PER_PAGE);
        let len = max.min(end.saturating_sub(first));
        self.pages
            .get(page)
            .and_then(|p| p.0.get(first..first + len))
            .unwrap_or(&[])
    }

    #[inline(always)]
    fn advance(&self, at: usize, by: usize) -> usize {
        let next = at + by;
        if next >= self.capacity {
            next - self.capacity
        } else {
            next
        }
    }
}

/// Counters of one ring, written by its producer only, readable by anyone.
#[derive(Debug, Default)]
pub struct RingCounters {
    pushed: AtomicU64,
    dropped: AtomicU64,
}

impl RingCounters {
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Records lost because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    // One writer: load + store, no locked instruction on the hot path.
    #[inline(always)]
    fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// The worker's end.
pub struct RecordProducer {
    shared: Arc<Shared>,
    /// Records published (the shared tail's value).
    tail: usize,
    /// `tail`'s slot.
    at: usize,
    /// The consumer's head as last read: the producer reads the consumer's line only
    /// when this leaves too little room (mostly once per drain, not per burst).
    head_seen: usize,
    counters: Arc<RingCounters>,
}

/// The analysis core's end.
pub struct RecordConsumer {
    shared: Arc<Shared>,
    head: usize,
    at: usize,
    /// The records of one run, copied out of the slots for the engines.
    batch: Vec<Record>,
    counters: Arc<RingCounters>,
}

/// Records handed to a drain's callback at a time (one run of slots at most).
const DRAIN_BATCH: usize = 1024;

/// A ring holding `capacity` records (at least one), its memory written through once
/// so that every page of it is in place before a worker writes it (a page the worker
/// touched first would fault in its forwarding loop: a page fault per 64 records, which
/// makes a large ring cost more than a small one). Its memory is a whole number of
/// 2 MiB pages.
#[cold]
pub fn record_ring(capacity: usize) -> (RecordProducer, RecordConsumer) {
    let capacity = capacity.max(1);
    let pages = bytemuck::allocation::zeroed_slice_box::<Page>(capacity.div_ceil(SLOTS_PER_PAGE));
    let shared = Arc::new(Shared {
        pages,
        capacity,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
    });
    for page in shared.pages.iter() {
        for slot in &page.0 {
            slot.store(&[0; 8]);
        }
    }
    let counters = Arc::new(RingCounters::default());
    (
        RecordProducer {
            shared: Arc::clone(&shared),
            tail: 0,
            at: 0,
            head_seen: 0,
            counters: Arc::clone(&counters),
        },
        RecordConsumer {
            shared,
            head: 0,
            at: 0,
            batch: Vec::with_capacity(DRAIN_BATCH),
            counters,
        },
    )
}

impl RecordProducer {
    /// Free slots past the `staged` ones, reading the consumer's head only if the head
    /// last read leaves fewer than `want`.
    #[inline(always)]
    fn room_after(&mut self, staged: usize, want: usize) -> usize {
        let cap = self.shared.capacity;
        let mut free = cap - (self.tail - self.head_seen);
        if free < staged + want {
            self.head_seen = self.shared.head.0.load(Ordering::Acquire);
            free = cap - (self.tail - self.head_seen);
        }
        free.saturating_sub(staged)
    }

    /// Hands `write(k, slot)` the slots for up to `n` more records after `staged` ones
    /// already written past the tail and not yet committed (the producers that write
    /// slots themselves and publish later: the workers stream records past their cache,
    /// see dataplane's `stream`). Counts what fits as pushed and the rest as dropped;
    /// returns how many slots it handed out. The caller must write each and commit
    /// them eventually.
    #[inline]
    pub fn write_after(
        &mut self,
        staged: usize,
        n: usize,
        write: impl FnMut(usize, &Slot),
    ) -> usize {
        let fit = n.min(self.room_after(staged, n));
        RingCounters::add(&self.counters.pushed, fit as u64);
        if fit < n {
            RingCounters::add(&self.counters.dropped, (n - fit) as u64);
        }
        self.fill(staged, fit, write)
    }

    /// Hands `write(k, slot)` the `n` slots after the `staged` ones past the tail, run
    /// by run (the caller checked the room); returns how many it handed out.
    #[inline(always)]
    fn fill(&self, staged: usize, n: usize, mut write: impl FnMut(usize, &Slot)) -> usize {
        let shared = &*self.shared;
        let mut at = shared.advance(self.at, staged);
        let mut k = 0;
        while k < n {
            let run = shared.run(at, n - k);
            if run.is_empty() {
                break;
            }
            for slot in run {
                write(k, slot);
                k += 1;
            }
            at = shared.advance(at, run.len());
        }
        k
    }

    /// Makes the first `staged` slots past the tail visible to the consumer. Whatever
    /// they hold is a record (any bits are), so a slot left unwritten would only be a
    /// wrong record, never undefined behaviour.
    #[inline]
    pub fn commit(&mut self, staged: usize) {
        let staged = staged.min(self.shared.capacity - (self.tail - self.head_seen));
        if staged == 0 {
            return;
        }
        self.tail += staged;
        self.at = self.shared.advance(self.at, staged);
        self.shared.tail.0.store(self.tail, Ordering::Release);
    }

    /// Writes up to `n` records made by `make(i)` straight into the ring (no staging
    /// copy); those that do not fit are not made at all, and are counted as dropped.
    #[inline]
    pub fn push_with(&mut self, n: usize, mut make: impl FnMut(usize) -> Record) -> usize {
        let fit = self.write_after(0, n, |k, slot| slot.store(&make(k).to_words()));
        self.commit(fit);
        fit
    }

    /// Writes as many of `records` as fit, in one batch; the rest are dropped and
    /// counted. Returns how many were written.
    #[inline]
    pub fn push_batch(&mut self, records: &[Record]) -> usize {
        self.push_with(records.len(), |i| records[i])
    }

    pub fn counters(&self) -> Arc<RingCounters> {
        Arc::clone(&self.counters)
    }

    /// Writes as many of `records` as fit and returns how many, counting nothing as
    /// dropped: for producers that retry (benchmarks, offline replay), not for workers.
    pub fn push_batch_retry(&mut self, records: &[Record]) -> usize {
        let n = records.len().min(self.room_after(0, records.len()));
        let k = self.fill(0, n, |k, slot| slot.store(&records[k].to_words()));
        self.commit(k);
        RingCounters::add(&self.counters.pushed, k as u64);
        k
    }

    /// The addresses of the ring's memory: whole 2 MiB-aligned pages, for the caller
    /// to advise the kernel about (huge pages).
    #[cold]
    pub fn memory(&self) -> Range<*const u8> {
        let pages = self.shared.pages.as_ptr_range();
        pages.start.cast()..pages.end.cast()
    }
}

impl RecordConsumer {
    /// Hands every waiting record to `f`, a run at a time (at most `DRAIN_BATCH`
    /// records, copied out of the ring), freeing each run's slots once `f` returns.
    /// Returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&[Record])) -> usize {
        let waiting = self.shared.tail.0.load(Ordering::Acquire) - self.head;
        let mut left = waiting;
        while left > 0 {
            let run = self.shared.run(self.at, left.min(DRAIN_BATCH));
            if run.is_empty() {
                break;
            }
            self.batch.clear();
            self.batch.extend(run.iter().map(Slot::load));
            f(&self.batch);
            left -= run.len();
            self.head += run.len();
            self.at = self.shared.advance(self.at, run.len());
            self.shared.head.0.store(self.head, Ordering::Release);
        }
        waiting - left
    }

    pub fn counters(&self) -> Arc<RingCounters> {
        Arc::clone(&self.counters)
    }

    /// Whether the producer is gone (its worker ended).
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> Record {
        Record {
            time: i,
            ..Default::default()
        }
    }

    #[test]
    fn batches_go_through_in_order_and_overflow_is_counted() {
        let (mut p, mut c) = record_ring(100);
        let batch: Vec<Record> = (0..64).map(rec).collect();
        assert_eq!(p.push_batch(&batch), 64);
        assert_eq!(p.push_batch(&batch), 36, "only 36 slots were left");
        let counters = p.counters();
        assert_eq!((counters.pushed(), counters.dropped()), (100, 28));
        let mut seen = Vec::new();
        assert_eq!(c.drain(|rs| seen.extend(rs.iter().map(|r| r.time))), 100);
        let expect: Vec<u64> = (0..64).chain(0..36).collect();
        assert_eq!(seen, expect);
        assert_eq!(c.drain(|_| panic!("empty")), 0);
        // Wrap-around: the consumer sees both halves.
        assert_eq!(p.push_batch(&batch), 64);
        let mut n = 0;
        c.drain(|rs| n += rs.len());
        assert_eq!(n, 64);
        drop(p);
        assert!(c.is_abandoned());
    }

    /// Runs of slots end at each 2 MiB page and at the ring's end; records go on in
    /// order across both, whatever the batch sizes.
    #[test]
    fn records_keep_their_order_across_pages_and_the_wrap() {
        let capacity = SLOTS_PER_PAGE + 1000;
        let (mut p, mut c) = record_ring(capacity);
        let (mut next, mut expect) = (0u64, 0u64);
        for batch in [1usize, 31, 32, 997, 4096, 30_000].iter().cycle().take(60) {
            let records: Vec<Record> = (next..next + *batch as u64).map(rec).collect();
            assert_eq!(p.push_batch(&records), *batch, "room for {batch}");
            next += *batch as u64;
            c.drain(|rs| {
                assert!(rs.len() <= DRAIN_BATCH);
                for r in rs {
                    assert_eq!(r.time, expect);
                    expect += 1;
                }
            });
        }
        assert_eq!(expect, next);
        assert!(next > 3 * capacity as u64, "wrapped several times");
        assert_eq!(p.counters().dropped(), 0);
    }

    /// A producer and a consumer on two threads: every record arrives once, whole and
    /// in order (the tail's release store publishes the slots' plain stores).
    #[test]
    fn a_concurrent_consumer_sees_every_record_whole_and_in_order() {
        const N: u64 = 2_000_000;
        let (mut p, mut c) = record_ring(4096);
        let producer = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                let batch: Vec<Record> = (i..(i + 32).min(N))
                    .map(|t| Record {
                        time: t,
                        seq: !(t as u32),
                        tsecr: t as u32,
                        ..Default::default()
                    })
                    .collect();
                let mut sent = 0;
                while sent < batch.len() {
                    sent += p.push_batch_retry(&batch[sent..]);
                }
                i += batch.len() as u64;
            }
        });
        let mut expect = 0u64;
        while expect < N {
            c.drain(|rs| {
                for r in rs {
                    assert_eq!(
                        (r.time, r.seq, r.tsecr),
                        (expect, !(expect as u32), expect as u32)
                    );
                    expect += 1;
                }
            });
        }
        producer.join().unwrap();
        assert_eq!(c.drain(|_| panic!("nothing more")), 0);
    }
}
