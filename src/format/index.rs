//! Index objects: which blobs live in which packs. Written only after every
//! pack they name is durable.

use super::blob::{BlobEntry, ENTRY_LEN};
use super::error::DecodeError;
use super::id::PackId;

const MAGIC: &[u8; 4] = b"FRYI";
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<BlobEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out = Vec::with_capacity(9 + self.packs.len() * 44 + blobs * ENTRY_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(p.id.as_bytes());
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                b.encode(&mut out);
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < 9 || &b[..4] != MAGIC {
            return Err(DecodeError::malformed("not an index"));
        }
        if b[4] != VERSION {
            return Err(DecodeError::Unknown {
                what: "index version",
                value: b[4].to_string(),
            });
        }
        let mut r = Reader { b, pos: 5 };
        let count = r.u32()? as usize;
        let mut packs = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let id = PackId::from_slice(r.take(32)?).unwrap();
            let size = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
            let n = r.u32()? as usize;
            let mut blobs = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let e = BlobEntry::decode(r.take(ENTRY_LEN)?)?;
                if e.end().is_none_or(|end| end > size) {
                    return Err(DecodeError::OutOfBounds {
                        what: "index entry",
                        detail: format!("blob {} lies outside pack {}", e.id, id),
                    });
                }
                blobs.push(e);
            }
            packs.push(IndexPack { id, size, blobs });
        }
        if r.pos != b.len() {
            return Err(DecodeError::malformed("trailing bytes after the last pack"));
        }
        Ok(IndexFile { packs })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.b.get(self.pos..end))
            .ok_or(DecodeError::Truncated("index"))?;
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
}
