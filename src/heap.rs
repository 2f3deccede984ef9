//! Keeping the exporter's resident size near what it holds. glibc's allocator keeps what a
//! program frees in its heap for later, and moves large buffers into that heap once one has
//! been freed: without the two calls here, the resident size of `run` grows with every listing
//! and stays at the highest it ever was.

/// The size from which glibc maps a buffer of its own instead of taking it from the heap: its
/// default starting value, kept fixed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Keeps large buffers (a page of the listing's JSON, a request's body: hundreds of kilobytes)
/// out of the heap, each mapped on its own and unmapped when freed. By default glibc raises
/// this threshold to the size of each such buffer freed (up to 32 MB), after which the next
/// ones come from the heap, where the small long-lived allocations made meanwhile pin the
/// pages they leave: in the cluster bench at 100,000 rows, 8 MiB of the peak.
///
/// # Safety
///
/// Call it while the program has one thread (before the runtime is built): glibc's `mallopt`
/// is not thread-safe.
pub unsafe fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes no pointer, and setting the mmap threshold only changes where
    // later allocations come from; the caller promises that no other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns the free pages of the allocator's heap to the system, after a full listing: it
/// replaces a page of allocations at a time, and what the old ones leave free is scattered
/// through the heap, which glibc trims only from its top. Costs a walk of the heap
/// (milliseconds at 100,000 allocations): for after rare phases, not for every change.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and frees no live allocation; it only gives free
    // pages of glibc's heap back to the kernel, and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
