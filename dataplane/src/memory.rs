//! Memory that a worker writes at packet rate, put on huge pages: the record rings
//! (`analysis::ring`), through which each worker streams one 64-byte record per
//! packet. On 4 KiB pages that is a new page, and a TLB miss, every 64 records; in a
//! VM each miss walks two page tables. The rings' memory comes from the heap in whole
//! 2 MiB-aligned pages, so transparent huge pages can back all of it.

use std::io;
use std::ops::Range;

use analysis::ring::HUGE_PAGE;

/// Backs the 2 MiB-aligned pages inside `range` with huge pages at once: `MADV_HUGEPAGE`,
/// then `MADV_COLLAPSE` (Linux 6.1 or later), which moves pages already in place onto
/// huge ones during the call rather than whenever khugepaged gets to them. Returns the bytes
/// covered. Fails where the kernel has no `MADV_COLLAPSE` or transparent huge pages
/// are off (`/sys/kernel/mm/transparent_hugepage/enabled` is `never`); the memory
/// stays usable on ordinary pages then.
#[cold]
pub fn back_with_huge_pages(range: Range<*const u8>) -> io::Result<usize> {
    let start = (range.start as usize).next_multiple_of(HUGE_PAGE);
    let end = range.end as usize / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return Ok(0);
    }
    for (advice, name) in [
        (libc::MADV_HUGEPAGE, "MADV_HUGEPAGE"),
        (libc::MADV_COLLAPSE, "MADV_COLLAPSE"),
    ] {
        // SAFETY: these two pieces of advice change which physical pages back the
        // range, never its contents or whether it is mapped; on a range that is not
        // (all) mapped the call fails with ENOMEM and changes nothing we rely on.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("madvise({name}): {e}")));
        }
    }
    Ok(end - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::ring::record_ring;

    /// Bytes of the mapping that holds `at` backed by transparent huge pages
    /// (`AnonHugePages` in /proc/self/smaps); `None` if it cannot be read.
    fn huge_bytes_at(at: *const u8) -> Option<usize> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let at = at as usize;
        let mut inside = false;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next()?;
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&at);
                    continue;
                }
            }
            if inside && first == "AnonHugePages:" {
                return Some(fields.next()?.parse::<usize>().ok()? * 1024);
            }
        }
        None
    }

    /// A worker's ring ends up on huge pages wherever the kernel offers them (here
    /// they are `madvise`-only, as on Debian 12); with them off, the advice fails and
    /// says so.
    #[test]
    fn a_record_ring_is_put_on_huge_pages() {
        let (p, _c) = record_ring(65536);
        let memory = p.memory();
        let bytes = memory.end as usize - memory.start as usize;
        assert_eq!(
            bytes,
            2 * HUGE_PAGE,
            "64k records are two whole 2 MiB pages"
        );
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        match back_with_huge_pages(memory.clone()) {
            Ok(covered) => {
                assert_eq!(covered, bytes, "the ring's pages are 2 MiB-aligned");
                let huge = huge_bytes_at(memory.start).expect("/proc/self/smaps");
                assert!(huge >= bytes, "{huge} of {bytes} bytes on huge pages");
            }
            Err(e) => assert!(
                thp.is_empty() || thp.contains("[never]"),
                "transparent huge pages are on ({thp:?}) but: {e}"
            ),
        }
    }
}
