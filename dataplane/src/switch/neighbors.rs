//! Peer MACs learned by one worker, shared with the others. With several workers an
//! ARP reply or a peer's VXLAN frames reach only the worker whose queue RSS chose, yet
//! every worker encapsulates towards every peer. Lock-free: a fixed table of (address,
//! MAC) slots, each address claimed once by compare-and-swap and its MAC overwritten in
//! place when it changes. Read on the cold paths only (a peer not yet resolved by this
//! worker, and once a second to follow a peer whose MAC changed).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::fib::MAX_PEERS;
use crate::port::MacAddr;

/// Slots: twice the most links a daemon can have, so probing stays short.
const SLOTS: usize = 2 * MAX_PEERS;
/// Set in a stored MAC word: the 48 bits below it are a MAC.
const VALID: u64 = 1 << 63;

/// Underlay address → MAC, for every worker of a daemon.
#[derive(Debug)]
pub struct Neighbors {
    ips: Box<[AtomicU32]>,
    macs: Box<[AtomicU64]>,
}

impl Default for Neighbors {
    fn default() -> Self {
        Self {
            ips: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            macs: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn pack(mac: MacAddr) -> u64 {
    let mut w = [0u8; 8];
    w[2..].copy_from_slice(&mac.0);
    u64::from_be_bytes(w) | VALID
}

fn unpack(w: u64) -> Option<MacAddr> {
    (w & VALID != 0).then(|| {
        let b = (w & !VALID).to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// The probe sequence of an address (0.0.0.0 marks a free slot and is never stored).
fn probe(ip: u32) -> impl Iterator<Item = usize> {
    let start = (ip.wrapping_mul(0x9e37_79b1) >> 16) as usize % SLOTS;
    (0..SLOTS).map(move |k| (start + k) % SLOTS)
}

impl Neighbors {
    /// Records that `ip` is at `mac`. Returns false when the table is full (the MAC is
    /// then known to the learning worker only).
    #[cold]
    pub fn learn(&self, ip: [u8; 4], mac: MacAddr) -> bool {
        let key = u32::from_be_bytes(ip);
        if key == 0 {
            return false;
        }
        for i in probe(key) {
            let slot = &self.ips[i];
            let owner = match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => key,
                Err(current) => current,
            };
            if owner == key {
                self.macs[i].store(pack(mac), Ordering::Release);
                return true;
            }
        }
        false
    }

    /// The MAC last learned for `ip`, by any worker.
    #[cold]
    pub fn lookup(&self, ip: [u8; 4]) -> Option<MacAddr> {
        let key = u32::from_be_bytes(ip);
        for i in probe(key) {
            match self.ips[i].load(Ordering::Acquire) {
                0 => return None,
                k if k == key => return unpack(self.macs[i].load(Ordering::Acquire)),
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_macs_are_seen_by_every_reader_and_follow_changes() {
        let n = Neighbors::default();
        assert_eq!(n.lookup([198, 18, 0, 1]), None);
        assert!(n.learn([198, 18, 0, 1], MacAddr([2, 0, 0, 0, 0, 1])));
        assert!(n.learn([198, 18, 0, 2], MacAddr([2, 0, 0, 0, 0, 2])));
        assert_eq!(n.lookup([198, 18, 0, 1]), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert!(n.learn([198, 18, 0, 1], MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(n.lookup([198, 18, 0, 1]), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(n.lookup([198, 18, 0, 2]), Some(MacAddr([2, 0, 0, 0, 0, 2])));
        assert!(
            !n.learn([0, 0, 0, 0], MacAddr([2, 0, 0, 0, 0, 3])),
            "0.0.0.0 marks free slots"
        );
    }

    #[test]
    fn a_full_table_refuses_new_addresses_but_keeps_updating_known_ones() {
        let n = Neighbors::default();
        for i in 0..SLOTS as u32 {
            assert!(n.learn((i + 1).to_be_bytes(), MacAddr([2, 0, 0, 0, 0, 1])));
        }
        assert!(!n.learn([10, 0, 0, 1], MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(n.lookup([10, 0, 0, 1]), None);
        assert!(n.learn(7u32.to_be_bytes(), MacAddr([2, 0, 0, 0, 0, 7])));
        assert_eq!(
            n.lookup(7u32.to_be_bytes()),
            Some(MacAddr([2, 0, 0, 0, 0, 7]))
        );
    }

    #[test]
    fn concurrent_learners_never_lose_an_address() {
        let n = std::sync::Arc::new(Neighbors::default());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let n = std::sync::Arc::clone(&n);
                std::thread::spawn(move || {
                    for i in 0..100u8 {
                        n.learn([198, 18, t, i + 1], MacAddr([2, 0, 0, 0, t, i]));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for t in 0..4u8 {
            for i in 0..100u8 {
                assert_eq!(
                    n.lookup([198, 18, t, i + 1]),
                    Some(MacAddr([2, 0, 0, 0, t, i]))
                );
            }
        }
    }
}
