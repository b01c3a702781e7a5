fn main() {
    tune_allocator();
    std::process::exit(ferry::cli::main());
}

/// glibc's allocator raises its mmap threshold each time a large buffer is
/// freed, after which multi-megabyte chunk and pack buffers stay in its
/// per-thread heaps and the resident size creeps up. A fixed threshold
/// returns them to the system on free, and fewer arenas bound the rest.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}
