//! The forwarding table (VNET style): destination MAC → a local VM port or an overlay
//! link to a peer host. Built on the control path; workers only read it.

use std::collections::HashMap;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A local VM, by its index in the switch's VM list.
    Vm(usize),
    /// A peer host over the overlay, by its index in the peer list.
    Peer(usize),
}

/// Destination MAC → destination.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    rules: HashMap<[u8; 6], Dest>,
}

impl Fib {
    pub fn insert(&mut self, mac: [u8; 6], dest: Dest) -> Option<Dest> {
        self.rules.insert(mac, dest)
    }

    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Dest> {
        self.rules.remove(mac)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 6], &Dest)> {
        self.rules.iter()
    }

    #[inline]
    pub fn lookup(&self, mac: &[u8; 6]) -> Option<Dest> {
        self.rules.get(mac).copied()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Whether a MAC is broadcast or multicast (the I/G bit).
#[inline]
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}
