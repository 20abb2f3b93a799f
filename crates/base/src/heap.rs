//! The supervisor's heap. glibc keeps freed memory in its arenas (and raises its
//! mmap threshold after large frees, so that later large buffers come from the
//! arenas too); after a burst of large buffers (a big device config, a script
//! that printed megabytes) the freed pages are handed back explicitly, so the
//! runtime's RSS shows what it actually holds.
//!
//! The raised thresholds would defeat that: `malloc_trim` returns free pages of
//! every arena except the top of a thread's arena, which glibc only shrinks when
//! more than its trim threshold (raised up to 64 MiB after large frees) is free
//! at the top. Where a burst landed in a thread's arena, tens of MiB stayed
//! resident after the script stopped. Fixed thresholds keep large buffers in
//! their own mappings and thread arenas trimmed.

/// Buffers from this size up get their own mapping, returned when freed.
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// Free memory at the top of an arena beyond this goes back to the kernel.
const TRIM_THRESHOLD: i32 = 1024 * 1024;

/// Fixes the allocator's thresholds (setting them turns off glibc's dynamic
/// raising). Called once at start in the supervisor.
pub fn fix_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns free heap pages to the kernel. Takes the allocator's locks for a
/// moment: call it after rare events, not per request.
pub fn give_back_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
