//! Giving the memory freed after the exporter's largest, rare phase back to the system: a full
//! listing, which holds the new listing beside the old model. glibc's allocator keeps what a
//! program frees in its heap for later, so without this the resident size stays at the
//! highest it ever was, and the next large phase starts from there.

/// Returns the free pages of the allocator's heap to the system. Costs a walk of the heap
/// (milliseconds at 100,000 allocations): for after rare phases, not for every change.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and frees no live allocation; it only gives free
    // pages of glibc's heap back to the kernel, and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
