//! The repository's keys as operations: naming, sealing and opening blobs
//! and packs. The keys themselves never leave the repository module.

use std::sync::Arc;

use crate::format::blob::{self, BlobBuffers, SealedBlob};
use crate::format::crypto::{Cipher, MasterKey};
use crate::format::pack::{self, FinishedPack, PackWriter};
use crate::format::{BlobEntry, BlobId, BlobType, DecodeError, FormatResult, PackId};

/// A cheap handle (clone it into worker threads) that names, seals and
/// opens blobs and packs with one repository's keys.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<MasterKey>,
    cipher: Cipher,
}

impl Sealer {
    pub(super) fn new(key: &MasterKey, cipher: &Cipher) -> Self {
        Sealer {
            key: Arc::new(key.clone()),
            cipher: cipher.clone(),
        }
    }

    /// The id of a blob with this content.
    pub fn blob_id(&self, plain: &[u8]) -> BlobId {
        self.key.blob_id(plain)
    }

    /// Compresses (where worth it) and seals one blob.
    pub fn seal_blob(
        &self,
        compressor: Option<&mut zstd::bulk::Compressor<'static>>,
        kind: BlobType,
        id: BlobId,
        plain: &[u8],
    ) -> SealedBlob {
        blob::seal_blob(&self.cipher, compressor, kind, id, plain)
    }

    /// Opens a sealed blob and checks its content against its id.
    pub fn open_blob(&self, entry: &BlobEntry, sealed: &[u8]) -> FormatResult<Vec<u8>> {
        blob::open_blob(&self.key, &self.cipher, entry, sealed)
    }

    /// [`Sealer::open_blob`] into reused buffers.
    pub fn open_blob_with<'a>(
        &self,
        entry: &BlobEntry,
        sealed: &[u8],
        bufs: &'a mut BlobBuffers,
    ) -> FormatResult<&'a [u8]> {
        blob::open_blob_with(&self.key, &self.cipher, entry, sealed, bufs)
    }

    /// Seals a pack's header and names the pack.
    pub fn finish_pack(&self, writer: PackWriter) -> FinishedPack {
        writer.finish(&self.cipher)
    }

    /// The entries of a whole pack, after checking its name and header.
    pub fn read_pack_header(
        &self,
        id: &PackId,
        data: &[u8],
    ) -> Result<Vec<BlobEntry>, DecodeError> {
        pack::read_pack_header(id, data, &self.cipher)
    }
}
