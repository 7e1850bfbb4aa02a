//! Logical cores: listing the EAL's worker lcores, launching work on them with scoped
//! lifetimes (like `std::thread::scope`), and pinning non-EAL threads.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eal::Eal;
use crate::error::{dpdk_error, Error, Result};

/// An EAL logical core id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

/// A job for one worker lcore.
pub type LcoreJob<'env> = Box<dyn FnOnce() + Send + 'env>;

impl Eal {
    /// The lcore this thread runs on, or `None` for a thread the EAL does not know.
    pub fn current_lcore(&self) -> Option<LcoreId> {
        // SAFETY: rte_lcore_id reads a thread-local; valid on any thread.
        let id = unsafe { dpdk_sys::rte_lcore_id() };
        (id != u32::MAX).then_some(LcoreId(id))
    }

    /// The main lcore.
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: valid after EAL init, which `self` proves.
        LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// The worker lcores (every enabled lcore but the main one), in order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut id: u32 = u32::MAX;
        loop {
            // SAFETY: rte_get_next_lcore walks the EAL's lcore table; starting from
            // u32::MAX (-1) gives the first; skip_main=1, wrap=0.
            id = unsafe { dpdk_sys::rte_get_next_lcore(id, 1, 0) };
            if id >= dpdk_sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId(id));
        }
        out
    }

    /// The CPUs `lcore` may run on (its EAL cpuset: `-l`, or `--lcores` mappings).
    pub fn lcore_cpus(&self, lcore: LcoreId) -> Vec<usize> {
        // SAFETY: valid after EAL init, which `self` proves; returns a copy of the
        // lcore's cpuset (empty for an lcore the EAL does not use).
        let set = unsafe { dpdk_sys::rte_lcore_cpuset(lcore.0) };
        let word_bits = 8 * std::mem::size_of_val(&set.__bits[0]);
        (0..set.__bits.len() * word_bits)
            .filter(|&cpu| set.__bits[cpu / word_bits] >> (cpu % word_bits) & 1 == 1)
            .collect()
    }

    /// Whether `lcore` shares a CPU with another lcore in use (the main one included):
    /// more lcores than CPUs, so its thread can be preempted by another poller.
    pub fn shares_cpu(&self, lcore: LcoreId) -> bool {
        let mine = self.lcore_cpus(lcore);
        std::iter::once(self.main_lcore())
            .chain(self.worker_lcores())
            .filter(|&other| other != lcore)
            .any(|other| self.lcore_cpus(other).iter().any(|c| mine.contains(c)))
    }

    /// Runs each job on its worker lcore and `on_main` on this (the main) thread, then
    /// waits for every job to return. Jobs may borrow from the caller's stack: like
    /// `std::thread::scope`, nothing launched outlives this call, even if `on_main`
    /// panics. Returns an error if a job panicked or could not be launched.
    #[cold]
    pub fn run_on_lcores<'env, R>(
        &self,
        jobs: Vec<(LcoreId, LcoreJob<'env>)>,
        on_main: impl FnOnce() -> R,
    ) -> Result<R> {
        struct WaitAll(Vec<LcoreId>);
        impl WaitAll {
            fn wait(&mut self) -> Vec<(LcoreId, c_int)> {
                self.0
                    .drain(..)
                    // SAFETY: the lcore was launched by us; waiting blocks until its
                    // job returned, after which its borrows are over.
                    .map(|l| (l, unsafe { dpdk_sys::rte_eal_wait_lcore(l.0) }))
                    .collect()
            }
        }
        impl Drop for WaitAll {
            fn drop(&mut self) {
                self.wait();
            }
        }

        let mut launched = WaitAll(Vec::new());
        for (lcore, job) in jobs {
            let boxed: Box<LcoreJob<'env>> = Box::new(job);
            let arg = Box::into_raw(boxed) as *mut c_void;
            // SAFETY: `trampoline` takes back ownership of `arg` exactly once. The job
            // may borrow data living for 'env; `launched` waits for the lcore before
            // this function returns or unwinds, so the borrow outlives the job.
            let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
            if ret < 0 {
                // SAFETY: the launch failed, so the trampoline never ran and we still
                // own the job: reclaim it to free it.
                drop(unsafe { Box::from_raw(arg as *mut LcoreJob<'env>) });
                return Err(dpdk_error("rte_eal_remote_launch", lcore.to_string(), ret));
            }
            launched.0.push(lcore);
        }
        let result = on_main();
        let failed: Vec<String> = launched
            .wait()
            .into_iter()
            .filter(|(_, rc)| *rc != 0)
            .map(|(l, _)| l.to_string())
            .collect();
        if failed.is_empty() {
            Ok(result)
        } else {
            Err(Error::Invalid(format!(
                "worker job panicked on {}",
                failed.join(", ")
            )))
        }
    }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the pointer Box::into_raw made in run_on_lcores, handed to
    // exactly one lcore.
    let job = unsafe { Box::from_raw(arg as *mut LcoreJob<'static>) };
    // A panic must not unwind into C.
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Pins the calling (non-EAL) thread to `cpu`. Returns false when the OS refused.
pub fn pin_current_thread(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// The timer slack of a thread whose short sleeps must end when asked (a backing-off
/// worker, the analysis loop, the lab's delay line): Linux lets a sleep overrun by its
/// thread's slack, 50 µs by default, which more than doubles a 20 µs sleep.
pub const SHORT_TIMER_SLACK_NS: u64 = 1_000;

/// Sets the calling thread's timer slack (how far the kernel may delay its timed
/// wake-ups to batch them); whether the kernel took it.
#[cold]
fn set_timer_slack_ns(ns: u64) -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes the slack by value and touches only the calling
    // thread's scheduling attributes; the trailing arguments are unused.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) == 0 }
}

/// Gives the calling thread `SHORT_TIMER_SLACK_NS`; when the kernel refuses, warns that
/// `thread`'s sleeps may overrun, and what that costs (`consequence`).
#[cold]
pub fn shorten_timer_slack(thread: &str, consequence: &str) {
    if !set_timer_slack_ns(SHORT_TIMER_SLACK_NS) {
        log::warn!("could not shorten the {thread}'s timer slack: {consequence}");
    }
}
