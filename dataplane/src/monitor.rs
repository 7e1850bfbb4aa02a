//! The free measurement path on a worker: for every packet of a burst, a 64-byte
//! record (parsed headers, the burst's rx TSC stamp, direction, port), written in one
//! batch onto the worker's SPSC ring. A full ring drops records and counts them; the
//! packets themselves are never delayed or dropped for measurement.

use analysis::record::{Direction, Record};
use analysis::ring::RecordProducer;

use crate::mbuf::Burst;

/// A worker's measurement state.
pub struct Monitor {
    ring: RecordProducer,
}

impl Monitor {
    pub fn new(ring: RecordProducer) -> Self {
        Self { ring }
    }

    /// Records every packet of `burst`, stamped `tsc`, written straight into the ring.
    #[inline]
    pub fn record_burst(&mut self, burst: &Burst<'_>, tsc: u64, direction: Direction, port: u8) {
        burst.prefetch_data();
        self.ring
            .push_with_hint(burst.len(), crate::mbuf::prefetch_for_write, |i| {
                Record::from_frame(burst.data(i), tsc, direction, port)
            });
    }
}
