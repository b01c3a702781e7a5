//! Blobs: the unit of deduplication. Each is compressed (when it pays),
//! sealed with its type and id as associated data, and described by a
//! fixed-size entry in pack headers and index objects.

use super::crypto::{Cipher, MasterKey};
use super::error::{DecodeError, FormatError, FormatResult};
use super::id::BlobId;

/// Blob types. Stored as one byte; a retired value is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    Data = 0,
    Tree = 1,
}

impl BlobType {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// Compression codec ids. Stored as one byte; a retired id is never reused.
pub mod codec {
    pub const NONE: u8 = 0;
    pub const ZSTD: u8 = 1;
}

/// Where a blob lives inside its pack and how to read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobEntry {
    pub kind: BlobType,
    pub codec: u8,
    pub id: BlobId,
    /// Offset of the sealed blob in the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext after decompression.
    pub raw_length: u32,
}

/// Encoded size of a [`BlobEntry`]: type, codec, id, offset, length, raw length.
pub const ENTRY_LEN: usize = 1 + 1 + 32 + 8 + 4 + 4;

impl BlobEntry {
    /// The offset just past this blob in its pack; `None` when the
    /// recorded offset and length overflow (a damaged entry).
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length as u64)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.push(self.codec);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < ENTRY_LEN {
            return Err(DecodeError::Truncated("blob entry"));
        }
        let kind = BlobType::from_u8(b[0]).ok_or_else(|| DecodeError::Unknown {
            what: "blob type",
            value: b[0].to_string(),
        })?;
        let codec = b[1];
        if codec != codec::NONE && codec != codec::ZSTD {
            return Err(DecodeError::Unknown {
                what: "compression codec",
                value: codec.to_string(),
            });
        }
        let le32 = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        Ok(BlobEntry {
            kind,
            codec,
            id: BlobId::from_slice(&b[2..34]).unwrap(),
            offset: u64::from_le_bytes(b[34..42].try_into().unwrap()),
            length: le32(42),
            raw_length: le32(46),
        })
    }
}

/// A compressed-if-it-pays, sealed blob ready to be appended to a pack.
pub struct SealedBlob {
    pub kind: BlobType,
    pub id: BlobId,
    pub codec: u8,
    pub raw_length: u32,
    pub data: Vec<u8>,
}

fn blob_aad(kind: BlobType, id: &BlobId) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = kind as u8;
    a[1..].copy_from_slice(id.as_bytes());
    a
}

/// Large blobs are first tried on a sample this big from their middle.
const SAMPLE: usize = 16 << 10;

/// Whether compressing `plain` may pay: false when a sample of it does not
/// shrink (encrypted, compressed or random data), which spares compressing
/// the whole blob to find out.
fn worth_compressing(c: &mut zstd::bulk::Compressor<'static>, plain: &[u8]) -> bool {
    if plain.len() < 8 * SAMPLE {
        return true;
    }
    let mid = plain.len() / 2;
    let sample = &plain[mid - SAMPLE / 2..mid + SAMPLE / 2];
    c.compress(sample)
        .map_or(true, |s| s.len() < SAMPLE - SAMPLE / 32)
}

/// Compresses (keeping the result only when it saves at least 1/32 of the
/// size) and seals one blob. `compressor` is reused across calls: creating a
/// zstd context per blob would dominate the cost of small files.
pub fn seal_blob(
    cipher: &Cipher,
    compressor: Option<&mut zstd::bulk::Compressor<'static>>,
    kind: BlobType,
    id: BlobId,
    plain: &[u8],
) -> SealedBlob {
    let aad = blob_aad(kind, &id);
    let compressed = compressor
        .filter(|_| plain.len() >= 64)
        .and_then(|c| match worth_compressing(c, plain) {
            true => c.compress(plain).ok(),
            false => None,
        })
        .filter(|c| c.len() < plain.len() - plain.len() / 32);
    let (codec, body) = match &compressed {
        Some(c) => (codec::ZSTD, c.as_slice()),
        None => (codec::NONE, plain),
    };
    SealedBlob {
        kind,
        id,
        codec,
        raw_length: plain.len() as u32,
        data: cipher.seal(body, &aad),
    }
}

/// Opens a sealed blob read from its pack, decompresses it and checks that
/// its content matches its id.
pub fn open_blob(
    key: &MasterKey,
    cipher: &Cipher,
    entry: &BlobEntry,
    sealed: &[u8],
) -> FormatResult<Vec<u8>> {
    let mut bufs = BlobBuffers::default();
    open_blob_in(key, cipher, entry, sealed, &mut bufs)?;
    Ok(bufs.take())
}

/// Buffers reused from one blob to the next by [`open_blob_with`], so that
/// reading many blobs does not allocate (and fault in) fresh memory for
/// each.
#[derive(Default)]
pub struct BlobBuffers {
    body: Vec<u8>,
    plain: Vec<u8>,
    compressed: bool,
}

impl BlobBuffers {
    fn take(mut self) -> Vec<u8> {
        std::mem::take(match self.compressed {
            true => &mut self.plain,
            false => &mut self.body,
        })
    }
}

/// [`open_blob`] into reused buffers: the content, valid until the next use
/// of `bufs`.
pub fn open_blob_with<'a>(
    key: &MasterKey,
    cipher: &Cipher,
    entry: &BlobEntry,
    sealed: &[u8],
    bufs: &'a mut BlobBuffers,
) -> FormatResult<&'a [u8]> {
    open_blob_in(key, cipher, entry, sealed, bufs)?;
    Ok(match bufs.compressed {
        true => &bufs.plain,
        false => &bufs.body,
    })
}

fn open_blob_in(
    key: &MasterKey,
    cipher: &Cipher,
    entry: &BlobEntry,
    sealed: &[u8],
    bufs: &mut BlobBuffers,
) -> FormatResult<()> {
    let object = || format!("blob {} ({:?})", entry.id, entry.kind);
    cipher
        .open_into(sealed, &blob_aad(entry.kind, &entry.id), &mut bufs.body)
        .map_err(|e| FormatError::corrupt(object(), e))?;
    bufs.compressed = match entry.codec {
        codec::NONE => false,
        codec::ZSTD => {
            decompress_into(&bufs.body, entry.raw_length as usize, &mut bufs.plain).map_err(
                |e| FormatError::corrupt(object(), format!("decompression failed: {e}")),
            )?;
            true
        }
        c => return Err(FormatError::corrupt(object(), format!("unknown codec {c}"))),
    };
    let plain = match bufs.compressed {
        true => &bufs.plain,
        false => &bufs.body,
    };
    if plain.len() != entry.raw_length as usize || key.blob_id(plain) != entry.id {
        return Err(FormatError::corrupt(
            object(),
            "content does not match its id",
        ));
    }
    Ok(())
}

thread_local! {
    /// One zstd decompression context per thread: creating one per blob
    /// costs more than decompressing a small blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a zstd frame into `out` (replacing its contents), with a
/// per-thread context.
pub(crate) fn decompress_into(
    data: &[u8],
    capacity: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    out.clear();
    out.reserve(capacity);
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().unwrap().decompress_to_buffer(data, out)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypto::MasterKey;

    /// Random data is stored as it is (found from a sample), text
    /// compressed; both open to what went in.
    #[test]
    fn compression_is_kept_only_where_it_pays() {
        let key = MasterKey::generate();
        let cipher = key.cipher();
        let mut zstd = zstd::bulk::Compressor::new(3).unwrap();
        let random: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog. "
            .iter()
            .cycle()
            .take(1 << 20)
            .copied()
            .collect();
        for (data, codec) in [(&random, codec::NONE), (&text, codec::ZSTD)] {
            let id = key.blob_id(data);
            let sealed = seal_blob(&cipher, Some(&mut zstd), BlobType::Data, id, data);
            assert_eq!(sealed.codec, codec);
            let entry = BlobEntry {
                kind: BlobType::Data,
                codec: sealed.codec,
                id,
                offset: 0,
                length: sealed.data.len() as u32,
                raw_length: sealed.raw_length,
            };
            assert!(open_blob(&key, &cipher, &entry, &sealed.data).unwrap() == *data);
        }
    }
}
