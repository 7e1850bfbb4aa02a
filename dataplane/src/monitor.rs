//! The free measurement path on a worker: for every packet of a burst, a 64-byte
//! record (parsed headers, the burst's rx TSC stamp, direction, port), written in one
//! batch onto the worker's SPSC ring. A full ring drops records and counts them; the
//! packets themselves are never delayed or dropped for measurement.

use analysis::record::{Direction, Record};
use analysis::ring::RecordProducer;

use crate::mbuf::{Burst, MAX_BURST};

/// A worker's measurement state.
pub struct Monitor {
    ring: RecordProducer,
    batch: Box<[Record; MAX_BURST]>,
}

impl Monitor {
    pub fn new(ring: RecordProducer) -> Self {
        Self {
            ring,
            batch: Box::new([Record::default(); MAX_BURST]),
        }
    }

    /// Records every packet of `burst`, stamped `tsc`, and pushes them in one batch.
    #[inline]
    pub fn record_burst(&mut self, burst: &Burst<'_>, tsc: u64, direction: Direction, port: u8) {
        let n = burst.len();
        burst.prefetch_data();
        for (i, slot) in self.batch[..n].iter_mut().enumerate() {
            *slot = Record::from_frame(burst.data(i), tsc, direction, port);
        }
        self.ring.push_batch(&self.batch[..n]);
    }
}
