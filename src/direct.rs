//! I/O around the page cache (O_DIRECT): block-aligned buffers drawn from a
//! shared pool, and switching O_DIRECT on an open file.
//!
//! Filling fresh page-cache pages can cost more CPU than the disk write
//! itself, and packs a backup writes or a restore reads once would only
//! push the user's working set out of memory; the local store moves them
//! this way.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// O_DIRECT wants buffers, offsets and lengths aligned to the block size.
pub const DIRECT_ALIGN: usize = 4096;

/// A block-aligned buffer; back to the pool when its [`Spare`] (or the last
/// `Bytes` reading from it) is dropped, so that moving many packs does not
/// keep faulting in fresh memory.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A spare buffer of at least `cap` bytes, or a new one.
    pub fn take(cap: usize) -> Self {
        if let Some(b) = SPARE_ALIGNED.take(|b| (b.cap >= cap).then_some(b.cap)) {
            return b;
        }
        let cap = cap.max(1).next_multiple_of(1 << 20);
        // Anonymous pages: page-aligned and zero until first touched, so a
        // fresh buffer costs no pass over its memory before it is read into
        // (an aligned `alloc_zeroed` writes every byte of it).
        let ptr = crate::util::map_anonymous(cap).unwrap_or_else(|| {
            let layout = std::alloc::Layout::from_size_align(cap, DIRECT_ALIGN);
            std::alloc::handle_alloc_error(layout.expect("valid layout"))
        });
        AlignedBuf { ptr, cap, len: 0 }
    }

    /// The whole allocation (`capacity` bytes), whatever the length.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        // SAFETY: `cap` initialised (zero-mapped) bytes from `take`, borrowed
        // mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Sets the length `as_ref` shows.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap, "length past the allocation");
        self.len = len;
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` <= `cap` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: mapped in `take` with this length, not used after.
            unsafe { crate::util::unmap(self.ptr, self.cap) };
        }
    }
}

/// An [`AlignedBuf`] that goes back to the pool when dropped.
pub struct Spare(pub AlignedBuf);

impl Spare {
    pub fn take(cap: usize) -> Self {
        Spare(AlignedBuf::take(cap))
    }

    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.0.spare_mut()
    }
}

impl AsRef<[u8]> for Spare {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let buf = std::mem::replace(
            &mut self.0,
            AlignedBuf {
                ptr: std::ptr::NonNull::dangling(),
                cap: 0,
                len: 0,
            },
        );
        SPARE_ALIGNED.keep(buf);
    }
}

static SPARE_ALIGNED: crate::util::Spares<AlignedBuf> = crate::util::Spares::new(8);

/// Turns O_DIRECT on or off for an open file. Fails (EINVAL) where the
/// filesystem does not take O_DIRECT.
pub fn set_direct(f: &File, on: bool) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor `f` owns; only its status flags change.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let want = match on {
        true => flags | libc::O_DIRECT,
        false => flags & !libc::O_DIRECT,
    };
    // SAFETY: as above.
    if want != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
