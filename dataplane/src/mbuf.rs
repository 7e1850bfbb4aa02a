//! Owned packet buffers and bursts of them. An `Mbuf` frees itself when dropped; a
//! `Burst` frees whatever it still holds, so no path can leak a buffer: every mbuf is
//! either handed to a tx queue or returned to its pool, and the layers above count it.

use std::marker::PhantomData;
use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::eal::Eal;

/// The largest burst the workers move at once.
pub const MAX_BURST: usize = 64;

/// One packet buffer, owned.
#[derive(Debug)]
pub struct Mbuf<'e> {
    raw: NonNull<rte_mbuf>,
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: an owned mbuf may move between lcores; freeing it from any lcore is allowed.
unsafe impl Send for Mbuf<'_> {}

impl<'e> Mbuf<'e> {
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns.
    pub(crate) unsafe fn from_raw(raw: NonNull<rte_mbuf>) -> Self {
        Self {
            raw,
            _eal: PhantomData,
        }
    }

    pub(crate) fn into_raw(self) -> *mut rte_mbuf {
        let p = self.raw.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: we own the mbuf; see `segment_bytes`.
        unsafe { segment_bytes(self.raw.as_ptr()) }
    }

    /// The bytes of the first segment, writable (the mbuf is ours alone).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw.as_ptr();
        // SAFETY: we own the mbuf, and &mut self makes this the only view of it; the
        // data region lies inside the buffer (data_off + data_len <= buf_len).
        unsafe {
            let base = ((*m).buf_addr as *mut u8).add((*m).data_off as usize);
            std::slice::from_raw_parts_mut(base, (*m).data_len as usize)
        }
    }

    /// Total packet length over all segments.
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: reading a field of an mbuf we own.
        unsafe { (*self.raw.as_ptr()).pkt_len }
    }

    /// Number of segments.
    pub fn segments(&self) -> u16 {
        // SAFETY: reading a field of an mbuf we own.
        unsafe { (*self.raw.as_ptr()).nb_segs }
    }

    /// Appends `len` bytes at the end (single-segment) and returns them, or `None` when
    /// the buffer has no room.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: rte_pktmbuf_append only writes within the mbuf we own.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.raw.as_ptr(), len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK returned `len` writable bytes inside the buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len as usize) })
    }

    /// Makes room for `len` bytes in front of the data (headroom) and returns the
    /// whole data, new bytes first; `None` when the headroom is too small. What
    /// `rte_pktmbuf_prepend` does, inline (it is a static-inline C function: called
    /// through its wrapper it cost a call per encapsulated packet).
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        let m = self.raw.as_ptr();
        // SAFETY: we own the mbuf (&mut self); moving data_off back by at most the
        // headroom (data_off itself) keeps the data inside the buffer, and the lengths
        // grow by what the data gained.
        unsafe {
            if len > (*m).data_off {
                return None;
            }
            (*m).data_off -= len;
            (*m).data_len += len;
            (*m).pkt_len += len as u32;
        }
        Some(self.data_mut())
    }

    /// Removes `len` bytes from the front of the data; false when there are fewer.
    /// `rte_pktmbuf_adj`, inline.
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        let m = self.raw.as_ptr();
        // SAFETY: we own the mbuf; the first segment keeps at least zero bytes, so the
        // data stays inside the buffer, and the packet length shrinks by as much.
        unsafe {
            if len > (*m).data_len {
                return false;
            }
            (*m).data_off += len;
            (*m).data_len -= len;
            (*m).pkt_len -= len as u32;
        }
        true
    }

    /// A deep copy from `pool` (for flooding: each copy is then modified on its own).
    pub fn copy(&self, pool: &crate::mempool::Mempool<'e>) -> Option<Mbuf<'e>> {
        // SAFETY: reads the mbuf we own; the copy (if any) is new and exclusively ours.
        let c =
            unsafe { dpdk_sys::rte_pktmbuf_copy(self.raw.as_ptr(), pool.as_ptr(), 0, u32::MAX) };
        // SAFETY: a fresh mbuf nobody else owns.
        NonNull::new(c).map(|c| unsafe { Mbuf::from_raw(c) })
    }

    /// Builds an mbuf holding `bytes` from `pool`; `None` when the pool is empty or the
    /// bytes do not fit one segment.
    pub fn from_bytes(pool: &crate::mempool::Mempool<'e>, bytes: &[u8]) -> Option<Self> {
        let len = u16::try_from(bytes.len()).ok()?;
        let mut m = pool.alloc()?;
        m.append(len)?.copy_from_slice(bytes);
        Some(m)
    }
}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// # Safety
/// `m` must point to a valid mbuf that stays alive and unmodified for the returned
/// borrow. DPDK keeps data_off + data_len within buf_len.
#[inline(always)]
unsafe fn segment_bytes<'a>(m: *const rte_mbuf) -> &'a [u8] {
    let base = ((*m).buf_addr as *const u8).add((*m).data_off as usize);
    std::slice::from_raw_parts(base, (*m).data_len as usize)
}

/// Up to `MAX_BURST` owned mbufs, filled by an rx queue or by hand and emptied by a tx
/// queue. Dropping a burst frees what is left in it.
pub struct Burst<'e> {
    mbufs: [*mut rte_mbuf; MAX_BURST],
    len: usize,
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: the burst owns its mbufs; owned mbufs may move between lcores.
unsafe impl Send for Burst<'_> {}

impl Default for Burst<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Burst<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).finish()
    }
}

impl<'e> Burst<'e> {
    /// An empty burst.
    pub const fn new() -> Self {
        Self {
            mbufs: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
            _eal: PhantomData,
        }
    }

    /// Packets held.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    #[inline(always)]
    pub fn room(&self) -> usize {
        MAX_BURST - self.len
    }

    /// The bytes of packet `i`'s first segment.
    #[inline(always)]
    pub fn data(&self, i: usize) -> &[u8] {
        let m = self.mbufs[..self.len][i];
        // SAFETY: every pointer below len is a valid mbuf owned by this burst; the
        // borrow of self keeps it alive and unfreed.
        unsafe { segment_bytes(m) }
    }

    /// Asks the CPU to bring the first cache line of every packet's data into cache
    /// (the parser reads it next; on devices that do not write the data, such as
    /// net_null, or with DMA to memory, it is otherwise a cache miss per packet).
    #[inline(always)]
    pub fn prefetch_data(&self) {
        #[cfg(target_arch = "x86_64")]
        for &m in &self.mbufs[..self.len] {
            // SAFETY: every pointer below len is a valid owned mbuf; prefetching any
            // address is harmless (no fault, no architectural effect).
            unsafe {
                let base = ((*m).buf_addr as *const i8).add((*m).data_off as usize);
                core::arch::x86_64::_mm_prefetch(base, core::arch::x86_64::_MM_HINT_T0);
            }
        }
    }

    /// Adds an owned mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf<'e>) -> Result<(), Mbuf<'e>> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.mbufs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last packet.
    pub fn pop(&mut self) -> Option<Mbuf<'e>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let m = self.mbufs[self.len];
        // SAFETY: the pointer was owned by the burst and is no longer counted in it.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(m)) })
    }

    /// Takes every packet out, in order.
    pub fn drain(&mut self) -> BurstDrain<'_, 'e> {
        let len = self.len;
        self.len = 0;
        BurstDrain {
            burst: self,
            next: 0,
            end: len,
        }
    }

    /// Frees every packet held and returns how many were freed.
    #[inline]
    pub fn free_all(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            // SAFETY: the first n pointers are valid mbufs owned by the burst; after
            // this they are forgotten (len = 0), so never freed twice.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
            self.len = 0;
        }
        n
    }

    /// Keeps the packets for which `keep` returns true (in order) and frees the others;
    /// returns how many were freed.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let mut kept = 0;
        let mut dropped = 0;
        for i in 0..self.len {
            let m = self.mbufs[i];
            // SAFETY: valid owned mbuf, see `data`.
            if keep(unsafe { segment_bytes(m) }) {
                self.mbufs[kept] = m;
                kept += 1;
            } else {
                // SAFETY: owned mbuf, removed from the burst right here.
                unsafe { dpdk_sys::rte_pktmbuf_free(m) };
                dropped += 1;
            }
        }
        self.len = kept;
        dropped
    }

    /// Raw access for the rx/tx queues of this crate: the slot array and the count.
    pub(crate) fn raw_parts(&mut self) -> (&mut [*mut rte_mbuf; MAX_BURST], &mut usize) {
        (&mut self.mbufs, &mut self.len)
    }
}

impl Drop for Burst<'_> {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// The packets of a burst, in order, each handed out owned. Packets not taken are
/// freed when the drain is dropped.
pub struct BurstDrain<'b, 'e> {
    burst: &'b mut Burst<'e>,
    next: usize,
    end: usize,
}

impl<'e> Iterator for BurstDrain<'_, 'e> {
    type Item = Mbuf<'e>;

    #[inline]
    fn next(&mut self) -> Option<Mbuf<'e>> {
        if self.next == self.end {
            return None;
        }
        let m = self.burst.mbufs[self.next];
        self.next += 1;
        // SAFETY: slots below `end` held owned mbufs; each is handed out once (the burst's
        // len was set to 0, so it will not free them again).
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(m)) })
    }
}

impl Drop for BurstDrain<'_, '_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
