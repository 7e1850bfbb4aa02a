//! How the control path plugs VM ports into running workers and unplugs them: a
//! lock-free mailbox per worker. The control path opens a port and posts each worker
//! its queue pair (`Attach`); to unplug, it first publishes rules that no longer lead
//! to the port, then posts `Detach`, and each worker flushes what it queued for the
//! port and hands the queue pair back, after which the port can be stopped. The worker
//! looks at its mailbox once per loop (one atomic load when empty) and never waits.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::queue::ArrayQueue;

use super::VmPort;

/// VM port slots per daemon (`Dest::Vm(slot)`); the worker's per-slot state is sized
/// for all of them once, so plugging a port never allocates on the worker. At most 64:
/// the flood path keeps the plugged slots in one `u64`.
pub const MAX_VMS: usize = 64;
const _: () = assert!(MAX_VMS <= 64);

/// A change of VM ports, for one worker.
pub enum VmCommand<'p> {
    /// Start serving `port` (this worker's queue pair) as VM slot `slot`.
    Attach { slot: usize, port: VmPort<'p> },
    /// Stop serving slot `slot` and return its queue pair.
    Detach { slot: usize },
    /// Flood a RARP for `mac` over every overlay link: a VM that just arrived on a
    /// port here, announced to the peers at once (`announce`).
    Announce { mac: [u8; 6] },
}

/// One worker's mailbox.
pub struct Mailbox<'p> {
    commands: ArrayQueue<VmCommand<'p>>,
    returned: ArrayQueue<(usize, VmPort<'p>)>,
    /// Commands the worker has carried out.
    done: AtomicU64,
}

impl Default for Mailbox<'_> {
    fn default() -> Self {
        Self {
            commands: ArrayQueue::new(2 * MAX_VMS),
            returned: ArrayQueue::new(MAX_VMS),
            done: AtomicU64::new(0),
        }
    }
}

impl<'p> Mailbox<'p> {
    /// Control path: posts a command; gives it back if the mailbox is full.
    #[cold]
    pub fn post(&self, c: VmCommand<'p>) -> Result<(), VmCommand<'p>> {
        self.commands.push(c)
    }

    /// How many commands the worker has carried out so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// Control path: a queue pair the worker handed back, with its slot.
    #[cold]
    pub fn take_returned(&self) -> Option<(usize, VmPort<'p>)> {
        self.returned.pop()
    }

    /// Worker: whether anything waits (the per-loop check).
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub(crate) fn next(&self) -> Option<VmCommand<'p>> {
        self.commands.pop()
    }

    /// Worker: hands back a queue pair. The mailbox holds one per slot, and a slot is
    /// detached only while attached, so it cannot be full; if it were, the pair is
    /// given back to the caller.
    pub(crate) fn give_back(&self, slot: usize, port: VmPort<'p>) -> Result<(), VmPort<'p>> {
        self.returned.push((slot, port)).map_err(|(_, p)| p)
    }

    pub(crate) fn mark_done(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
    }
}
