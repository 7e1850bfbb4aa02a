//! Packet buffer pools. A pool lives as long as the EAL (as in DPDK applications,
//! whose pools are freed by `rte_eal_cleanup`), so mbufs from it can never outlive it.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{dpdk_error, Error, Result};

/// A handle to an mbuf pool; cheap to copy and to share between lcores.
#[derive(Debug, Clone, Copy)]
pub struct Mempool<'e> {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: rte_mempool is designed for concurrent use from many lcores (per-lcore
// caches plus a lock-free ring); the handle is only a pointer to it.
unsafe impl Send for Mempool<'_> {}
// SAFETY: as above; every method takes &self and DPDK synchronises internally.
unsafe impl Sync for Mempool<'_> {}

impl<'e> Mempool<'e> {
    /// Creates a pool of `mbufs` packet buffers with `data_room` bytes each (headroom
    /// included; `None` for DPDK's default, 2048 + 128) and a per-lcore cache.
    #[cold]
    pub fn create(
        _eal: &'e Eal,
        name: &str,
        mbufs: u32,
        cache: u32,
        data_room: Option<u16>,
    ) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| Error::Invalid(format!("mempool name {name:?} contains a NUL byte")))?;
        // SAFETY: a constant from the C shim.
        let room =
            data_room.unwrap_or_else(|| unsafe { dpdk_sys::wrenvnet_mbuf_default_buf_size() });
        // SAFETY: valid NUL-terminated name; EAL is up (borrowed); SOCKET_ID_ANY (-1)
        // because vdevs report no NUMA socket.
        let raw =
            unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), mbufs, cache, 0, room, -1) };
        let raw = NonNull::new(raw).ok_or_else(|| {
            dpdk_error(
                "rte_pktmbuf_pool_create",
                format!("pool {name} ({mbufs} mbufs)"),
                0,
            )
        })?;
        Ok(Self {
            raw,
            size: mbufs,
            _eal: PhantomData,
        })
    }

    /// How many mbufs the pool was made with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs in the pool now (in its ring and in the lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool (the EAL is borrowed).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs taken out of the pool and not yet returned.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as above.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Takes one mbuf from the pool, or `None` when it is empty.
    pub fn alloc(&self) -> Option<crate::mbuf::Mbuf<'e>> {
        // SAFETY: raw is a live pktmbuf pool; the returned mbuf (if any) is reset and
        // exclusively ours.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(|m| {
            // SAFETY: a freshly allocated mbuf, owned by nobody else.
            unsafe { crate::mbuf::Mbuf::from_raw(m) }
        })
    }
}
