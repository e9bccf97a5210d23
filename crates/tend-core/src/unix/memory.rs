//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a program frees for its next allocations:
//! after starting 10,000 processes (the config's tables, the spawn batches)
//! or answering a status of 10,000 (a 4.5 MB answer, its 10,000 rows), a
//! daemon that needs 40 MiB held 60-68 MiB. Two settings fix that, both
//! glibc's (other allocators are left as they are):
//!
//! - [`tune_allocator`]: allocations of 256 KiB or more are their own
//!   mappings, returned to the system when freed (glibc otherwise raises that
//!   threshold to the largest block freed so far, up to 32 MiB, after which
//!   a status answer's buffer stays in the heap);
//! - [`trim_heap`] (`malloc_trim(0)`): after a burst of allocation (the
//!   start-up, a reload), the free pages inside the heap go back too.

/// Allocations of this size or more are mappings of their own.
pub const MMAP_THRESHOLD: usize = 256 * 1024;

/// Sets the allocator up for a long-running daemon (see the module docs).
/// Call once, early.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let t = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers; a refused setting changes nothing.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, t) };
    }
}

/// Returns the heap's free pages to the system (after a burst of
/// allocation; it walks the heap, about a millisecond for 50 MiB).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both are safe to call at any time, any number of times.
    #[test]
    fn tuning_and_trimming_keep_allocation_working() {
        tune_allocator();
        let big = vec![1u8; MMAP_THRESHOLD * 4];
        let small: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
        drop(big);
        trim_heap();
        assert_eq!(small[999][0], (999 % 256) as u8);
        assert_eq!(
            vec![2u8; MMAP_THRESHOLD]
                .iter()
                .map(|&b| b as usize)
                .sum::<usize>(),
            2 * MMAP_THRESHOLD
        );
    }
}
