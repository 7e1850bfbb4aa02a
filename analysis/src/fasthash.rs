//! A fast keyed hash for the engines' tables (flows, paths, matrix cells): the
//! standard SipHash costs more than the rest of a record's processing. Keys come from
//! traffic, so the hash is seeded per table from the standard library's random keys,
//! which keeps an outsider from choosing colliding keys without seeing the seed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Multiply-rotate hashing in the style of rustc's FxHash, with a random seed.
#[derive(Debug, Clone, Copy)]
pub struct SeededFx {
    seed: u64,
}

impl Default for SeededFx {
    fn default() -> Self {
        use std::hash::BuildHasher as _;
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self { seed }
    }
}

pub struct FxHasher {
    hash: u64,
}

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final mix so the low bits (hashbrown's bucket index) depend on every input bit.
        let h = self.hash;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
}

impl BuildHasher for SeededFx {
    type Hasher = FxHasher;
    #[inline]
    fn build_hasher(&self) -> FxHasher {
        FxHasher { hash: self.seed }
    }
}

/// A HashMap with the fast seeded hash.
pub type FastMap<K, V> = HashMap<K, V, SeededFx>;
