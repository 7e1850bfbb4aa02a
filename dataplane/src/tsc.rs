//! The time-stamp counter: read once per burst by the workers (a read costs ~25-35
//! cycles, so per packet it would eat the budget), and converted with DPDK's rate.

/// Reads the TSC. Inlined on x86_64; elsewhere through DPDK's `rte_rdtsc`.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions and touches no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc has no preconditions.
        unsafe { dpdk_sys::wrenvnet_rdtsc() }
    }
}

/// TSC ticks per second as DPDK calibrated it at EAL init (0 before init).
pub fn hz() -> u64 {
    // SAFETY: rte_get_tsc_hz reads a value set during EAL init; it is safe to call at
    // any time (it returns 0 before init).
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// Whether /proc/cpuinfo says the TSC is invariant (constant and non-stop). Without
/// both, TSC deltas do not measure wall time across frequency changes or idle states.
#[cold]
pub fn cpu_has_invariant_tsc() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.contains(" constant_tsc") && info.contains(" nonstop_tsc"))
        .unwrap_or(false)
}
