//! The supervisor's heap. glibc keeps freed memory in its arenas (and raises its
//! mmap threshold after large frees, so that later large buffers come from the
//! arenas too); after a burst of large buffers (a big device config, a script
//! that printed megabytes) the freed pages are handed back explicitly, so the
//! runtime's RSS shows what it actually holds.

/// Returns free heap pages to the kernel. Takes the allocator's locks for a
/// moment: call it after rare events, not per request.
pub fn give_back_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
