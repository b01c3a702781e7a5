//! Reading a block volume: the device node (or, where there is none, a
//! regular file standing in for it) read from start to end in large
//! aligned reads, with all-zero regions left out of the stream and
//! recorded as holes.
//!
//! A device node reports no holes (`SEEK_DATA` sees it as all data), so
//! zeros are found by looking: every [`ZERO_BLOCK`] aligned block that is
//! all zeros is a hole. The data between holes is what the chunker sees,
//! so an unchanged region of the device yields the same chunks as in the
//! previous backup and deduplicates, wherever the zeros around it moved.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The granularity of holes: a region is stored as a hole when a whole
/// aligned block of this size is zeros. 64 KiB keeps the extent list of a
/// fragmented multi-terabyte volume to a few megabytes while still
/// catching the free space of file systems (allocated in 4 KiB blocks, but
/// in groups of megabytes).
pub const ZERO_BLOCK: usize = 64 << 10;
/// Size of one read; a multiple of [`ZERO_BLOCK`] and of every device's
/// logical block size.
pub const READ_SIZE: usize = 4 << 20;

/// An open block volume.
pub struct Device {
    file: File,
    /// The size of the device (or of the file standing in for it).
    pub size: u64,
    /// Whether it is a block special file (not a regular file).
    pub is_block: bool,
}

impl Device {
    /// Opens a device node or regular file for reading.
    pub fn open(path: &Path) -> io::Result<Device> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let ft = file.metadata()?.file_type();
        if !ft.is_block_device() && !ft.is_file() {
            return Err(io::Error::other(format!(
                "{} is neither a block device nor a regular file",
                path.display()
            )));
        }
        // A device node's metadata says size 0: its end is its size.
        let size = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Device {
            file,
            size,
            is_block: ft.is_block_device(),
        })
    }

    /// A reader of the device's non-zero data.
    pub fn data(self) -> ZeroSkipReader {
        ZeroSkipReader {
            file: self.file,
            size: self.size,
            buf: vec![0; READ_SIZE],
            buf_at: 0,
            buf_len: 0,
            pos: 0,
            extents: Vec::new(),
        }
    }
}

/// Whether `b` is all zeros.
pub fn is_zero(b: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u128.
    let (head, words, tail) = unsafe { b.align_to::<u128>() };
    head.iter().all(|&x| x == 0) && words.iter().all(|&x| x == 0) && tail.iter().all(|&x| x == 0)
}

/// Yields the non-zero blocks of a device in order; [`extents`]
/// (`(offset, length)` of the data, in device order) says where they go.
///
/// [`extents`]: ZeroSkipReader::extents
pub struct ZeroSkipReader {
    file: File,
    size: u64,
    buf: Vec<u8>,
    /// Device offset of `buf[0]`.
    buf_at: u64,
    buf_len: usize,
    /// Device offset of the next byte to consider.
    pos: u64,
    extents: Vec<(u64, u64)>,
}

impl ZeroSkipReader {
    /// How far into the device reading has come.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The data regions yielded so far.
    pub fn extents(&self) -> &[(u64, u64)] {
        &self.extents
    }

    /// Fills the buffer with the next read (at `pos`, which is aligned).
    fn fill(&mut self) -> io::Result<()> {
        let want = ((self.size - self.pos) as usize).min(READ_SIZE);
        let mut n = 0;
        while n < want {
            match self.file.read(&mut self.buf[n..want]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the device ended at {} of {} bytes",
                    self.pos + n as u64,
                    self.size
                ),
            ));
        }
        (self.buf_at, self.buf_len) = (self.pos, n);
        Ok(())
    }

    fn record(&mut self, at: u64, len: u64) {
        match self.extents.last_mut() {
            Some((o, l)) if *o + *l == at => *l += len,
            _ => self.extents.push((at, len)),
        }
    }
}

impl Read for ZeroSkipReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.size || out.is_empty() {
                return Ok(0);
            }
            if self.pos >= self.buf_at + self.buf_len as u64 {
                self.fill()?;
            }
            let i = (self.pos - self.buf_at) as usize;
            let block = (ZERO_BLOCK - i % ZERO_BLOCK).min(self.buf_len - i);
            // Whether a block is a hole is decided once, at its start, on the
            // whole block: a reader part-way through a block is in one that
            // holds data, whatever the rest of it is.
            if i.is_multiple_of(ZERO_BLOCK) && is_zero(&self.buf[i..i + block]) {
                self.pos += block as u64;
                continue;
            }
            let n = block.min(out.len());
            out[..n].copy_from_slice(&self.buf[i..i + n]);
            self.record(self.pos, n as u64);
            self.pos += n as u64;
            return Ok(n);
        }
    }
}

/// The regions of `0..size` not covered by `extents` (sorted, disjoint).
pub fn holes(extents: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(o, l) in extents {
        if o > at {
            out.push((at, o - at));
        }
        at = at.max(o + l);
    }
    if size > at {
        out.push((at, size - at));
    }
    out
}

/// `BLKZEROOUT`: `_IO(0x12, 127)`.
const BLKZEROOUT: libc::c_ulong = 0x127f;

/// Makes `off..off+len` of a restore target read as zeros, writing as
/// little as it can: a regular file gets a punched hole (it stays sparse);
/// a device is read first and only the parts that are not zero already
/// are zeroed, with `BLKZEROOUT` (which lets the device unmap them) or,
/// where the device refuses it, by writing zeros. So a new, zeroed volume
/// costs reads only, and a reused one is not left with stale data.
pub fn zero_range(file: &File, is_block: bool, off: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let fd = file.as_raw_fd();
    if !is_block {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on an open descriptor has no memory effects.
        if unsafe { libc::fallocate(fd, mode, off as i64, len as i64) } == 0 {
            return Ok(());
        }
    }
    let mut buf = vec![0u8; READ_SIZE];
    let mut at = off;
    while at < off + len {
        let n = ((off + len - at) as usize).min(READ_SIZE);
        file.read_exact_at(&mut buf[..n], at)?;
        if !is_zero(&buf[..n]) {
            let range = [at, n as u64];
            // SAFETY: BLKZEROOUT reads two u64 from the pointer given.
            let done = is_block && unsafe { libc::ioctl(fd, BLKZEROOUT as _, range.as_ptr()) } == 0;
            if !done {
                buf[..n].fill(0);
                file.write_all_at(&buf[..n], at)?;
            }
        }
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn zero_blocks_become_holes_and_the_rest_is_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        let mut f = File::create(&p).unwrap();
        let size = 3 * READ_SIZE + 1000;
        let mut data = vec![0u8; size];
        // A byte in the second zero block, a run across a read boundary,
        // and the unaligned tail.
        data[ZERO_BLOCK + 5] = 1;
        for b in &mut data[READ_SIZE - 10..READ_SIZE + 10] {
            *b = 7;
        }
        data[size - 1] = 9;
        f.write_all(&data).unwrap();
        drop(f);
        let dev = Device::open(&p).unwrap();
        assert_eq!((dev.size, dev.is_block), (size as u64, false));
        let mut r = dev.data();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        let z = ZERO_BLOCK as u64;
        let r4 = READ_SIZE as u64;
        let tail = 3 * r4;
        assert_eq!(
            r.extents(),
            &[(z, z), (r4 - z, 2 * z), (tail, 1000)][..],
            "holes where whole blocks are zero"
        );
        let mut expect = Vec::new();
        for (o, l) in r.extents() {
            expect.extend_from_slice(&data[*o as usize..(*o + *l) as usize]);
        }
        assert_eq!(got, expect);
    }

    #[test]
    fn holes_are_the_gaps_between_extents() {
        assert_eq!(
            holes(&[(10, 5), (20, 5)], 30),
            vec![(0, 10), (15, 5), (25, 5)]
        );
        assert_eq!(holes(&[(0, 30)], 30), vec![]);
        assert_eq!(holes(&[], 8), vec![(0, 8)]);
    }

    #[test]
    fn zero_range_clears_stale_data_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        std::fs::write(&p, vec![5u8; 3 * ZERO_BLOCK]).unwrap();
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        zero_range(&f, false, ZERO_BLOCK as u64, ZERO_BLOCK as u64).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert!(is_zero(&got[ZERO_BLOCK..2 * ZERO_BLOCK]));
        assert!(got[..ZERO_BLOCK]
            .iter()
            .chain(&got[2 * ZERO_BLOCK..])
            .all(|&b| b == 5));
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = Device::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("neither a block device"), "{e}");
    }
}
