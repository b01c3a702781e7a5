//! Progress counters shared between an operation and whoever renders them
//! (the CLI's progress bar, a test). The library only counts; it never prints.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Totals, as far as known (a scan may still be counting).
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub totals_final: AtomicBool,
}

impl Progress {
    pub fn add_done(&self, files: u64, bytes: u64) {
        self.files_done.fetch_add(files, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> (u64, u64, u64, u64, bool) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.bytes_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed),
            self.totals_final.load(Ordering::Relaxed),
        )
    }
}
