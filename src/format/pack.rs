//! Packs: many sealed blobs, then a sealed header listing them, then the
//! header's length (u32 little-endian). A pack is named by the BLAKE3 of its
//! bytes, so it can be verified by name alone.

use super::blob::{BlobEntry, BlobType, SealedBlob, ENTRY_LEN};
use super::crypto::{aad, Cipher};
use super::error::DecodeError;
use super::id::{BlobId, PackId};

const HEADER_MAGIC: &[u8; 4] = b"FRYP";
const HEADER_VERSION: u8 = 1;

/// Accumulates sealed blobs into one pack.
#[derive(Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    /// Where the pack starts in `buf`: at a block boundary of memory, so
    /// that a store can write it with O_DIRECT without copying it first.
    start: usize,
    entries: Vec<BlobEntry>,
}

/// Packs start at this alignment in memory.
const ALIGN: usize = 4096;

/// A finished pack: its id, bytes and the entries of its header.
pub struct FinishedPack {
    pub id: PackId,
    pub data: bytes::Bytes,
    pub entries: Vec<BlobEntry>,
}

/// Buffers of stored packs, kept for the next packs: a fresh buffer of a
/// pack's size is new memory that the kernel has to fault in page by page.
static SPARE_BUFFERS: crate::util::Spares<Vec<u8>> = crate::util::Spares::new(2);

/// A finished pack's bytes; its buffer goes back to the spares when the
/// last reference is dropped.
struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        SPARE_BUFFERS.keep(buf);
    }
}

impl PackWriter {
    pub fn with_capacity(cap: usize) -> Self {
        let spare = SPARE_BUFFERS.take(|_| Some(0));
        let mut buf = spare.unwrap_or_default();
        buf.reserve(cap + ALIGN);
        let start = buf.as_ptr().align_offset(ALIGN);
        buf.resize(start, 0);
        PackWriter {
            buf,
            start,
            entries: Vec::new(),
        }
    }

    pub fn add(&mut self, blob: SealedBlob) {
        self.add_sealed(blob.kind, blob.id, blob.codec, blob.raw_length, &blob.data);
    }

    /// Appends a sealed blob as it is (copied from another pack by a
    /// repack): its entry is `from`'s but for the offset.
    pub fn add_copy(&mut self, from: &BlobEntry, sealed: &[u8]) {
        self.add_sealed(from.kind, from.id, from.codec, from.raw_length, sealed);
    }

    fn add_sealed(
        &mut self,
        kind: BlobType,
        id: BlobId,
        codec: u8,
        raw_length: u32,
        sealed: &[u8],
    ) {
        self.entries.push(BlobEntry {
            kind,
            codec,
            id,
            offset: (self.buf.len() - self.start) as u64,
            length: sealed.len() as u32,
            raw_length,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether the pack is to be finished: `target` bytes long, or holding
    /// [`MAX_PACK_BLOBS`] blobs.
    pub fn is_full(&self, target: usize) -> bool {
        self.len() >= target || self.entries.len() >= MAX_PACK_BLOBS
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn finish(mut self, cipher: &Cipher) -> FinishedPack {
        let header = encode_header(&self.entries);
        let sealed = cipher.seal(&header, aad::PACK_HEADER);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        FinishedPack {
            id: PackId::of_bytes(&self.buf[self.start..]),
            data: bytes::Bytes::from_owner(Recycled(self.buf)).slice(self.start..),
            entries: self.entries,
        }
    }
}

/// Blobs a pack holds at most. A pack of tiny blobs is finished at this
/// count before it reaches its size, which bounds what one pack's blobs
/// cost in memory until the index object naming them is written (their
/// entries, the stored blobs not yet indexed, the claimed ids), whatever
/// the size of the blobs (32,768 blobs of 160 bytes are 5 MiB; a 16 MiB
/// pack of them held about 100,000).
pub const MAX_PACK_BLOBS: usize = 1 << 15;

pub fn encode_header(entries: &[BlobEntry]) -> Vec<u8> {
    let mut h = Vec::with_capacity(9 + entries.len() * ENTRY_LEN);
    h.extend_from_slice(HEADER_MAGIC);
    h.push(HEADER_VERSION);
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.encode(&mut h);
    }
    h
}

/// Decodes a header's plaintext and checks that its entries lie inside the
/// `data_len` bytes of blobs that precede the header, without overlapping.
pub fn decode_header(h: &[u8], data_len: u64) -> Result<Vec<BlobEntry>, DecodeError> {
    if h.len() < 9 || &h[..4] != HEADER_MAGIC {
        return Err(DecodeError::malformed("not a pack header"));
    }
    if h[4] != HEADER_VERSION {
        return Err(DecodeError::Unknown {
            what: "pack header version",
            value: h[4].to_string(),
        });
    }
    let count = u32::from_le_bytes(h[5..9].try_into().unwrap()) as usize;
    let body = &h[9..];
    if Some(body.len()) != count.checked_mul(ENTRY_LEN) {
        return Err(DecodeError::malformed(format!(
            "header claims {count} entries but holds {} bytes",
            body.len()
        )));
    }
    let mut entries = body
        .chunks_exact(ENTRY_LEN)
        .map(BlobEntry::decode)
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.offset);
    let mut end = 0u64;
    for e in &entries {
        match e.end() {
            Some(e_end) if e.offset >= end && e_end <= data_len => end = e_end,
            _ => {
                return Err(DecodeError::OutOfBounds {
                    what: "pack entry",
                    detail: format!("blob {} lies outside the pack or overlaps another", e.id),
                })
            }
        }
    }
    Ok(entries)
}

/// Splits a whole pack into its header entries, after checking its name.
pub fn read_pack_header(
    id: &PackId,
    pack: &[u8],
    cipher: &Cipher,
) -> Result<Vec<BlobEntry>, DecodeError> {
    if PackId::of_bytes(pack) != *id {
        return Err(DecodeError::malformed(
            "content does not match its name (BLAKE3)",
        ));
    }
    if pack.len() < 4 {
        return Err(DecodeError::Truncated("pack shorter than a header length"));
    }
    let hlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().unwrap()) as usize;
    let data_len = pack
        .len()
        .checked_sub(4 + hlen)
        .ok_or_else(|| DecodeError::OutOfBounds {
            what: "pack header length",
            detail: format!("{hlen} exceeds the pack size {}", pack.len()),
        })?;
    let header = cipher
        .open(&pack[data_len..pack.len() - 4], aad::PACK_HEADER)
        .map_err(|e| DecodeError::malformed(format!("header: {e}")))?;
    decode_header(&header, data_len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobType;
    use crate::format::id::BlobId;

    #[test]
    fn a_pack_is_full_at_its_size_or_at_its_blob_count() {
        let mut w = PackWriter::with_capacity(1 << 20);
        let sealed = [7u8; 40];
        for n in 0..MAX_PACK_BLOBS {
            assert!(!w.is_full(16 << 20), "full after {n} blobs of 40 bytes");
            let e = BlobEntry {
                kind: BlobType::Data,
                codec: 0,
                id: BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes()),
                offset: 0,
                length: 40,
                raw_length: 40,
            };
            w.add_copy(&e, &sealed);
        }
        assert!(w.is_full(16 << 20));
        assert!(w.is_full(1 << 20), "and at its size");
    }
}
