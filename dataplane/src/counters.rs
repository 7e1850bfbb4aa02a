//! Counters written by exactly one worker thread and read by any thread.
//!
//! A single writer needs no atomic read-modify-write: a relaxed load and store keep the
//! hot path free of locked instructions, while readers still see whole values.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter with one writer.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Must be called from the counter's single writer only: concurrent
    /// writers would lose updates (never memory-unsafe, just wrong counts).
    #[inline(always)]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
