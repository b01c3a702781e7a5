//! The `Repository` handle: opens, reads and writes the repository format
//! (see [`crate::format`]) through an object store, with the local catalog
//! as its cache.

mod delete;
mod drills;
pub mod error;
pub mod locations;
pub mod lock;
mod plans;
mod sealer;
mod usage;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

pub use crate::format::{BlobEntry, BlobType, ObjectKind};
pub use crate::format::{BlobId, DrillId, IndexId, KeyId, PackId, SnapshotId};
pub use error::{RepoError, RepoResult};
pub use sealer::Sealer;

use crate::catalog::Catalog;
use crate::format::config::{ChunkerParams, ConfigBody, CONFIG_KEY, FORMAT_VERSION};
use crate::format::crypto::{aad, Cipher, MasterKey};
use crate::format::index::IndexFile;
use crate::format::keys::{KdfParams, KeyFile};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::store::DynStore;
use locations::{BlobIndex, EXACT_LIMIT};

/// Parameters fixed when a repository is created.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
    /// Object lock for every object written (S3 buckets only).
    pub object_lock: Option<crate::format::config::ObjectLock>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_size: 16 << 20,
            kdf: KdfParams::default(),
            object_lock: None,
        }
    }
}

/// A tree asked of [`Repository::fetch_trees`]: the tree, and its encoding
/// when it was read from its pack.
pub type FetchedTree = (BlobId, RepoResult<(Tree, Option<Vec<u8>>)>);

/// An unlocked repository.
pub struct Repository {
    store: DynStore,
    key: MasterKey,
    cipher: Cipher,
    sealer: Sealer,
    config: ConfigBody,
    key_id: KeyId,
    catalog: Arc<Mutex<Catalog>>,
    index: RwLock<BlobIndex>,
    /// Index objects that could not be read while syncing the catalog.
    damaged_indexes: Mutex<Vec<(IndexId, String)>>,
    /// The stored config's format version (raised by [`lock`]).
    version: std::sync::atomic::AtomicU64,
    /// Why the store cannot lock the writes of an object-locked repository.
    lock_refused: Option<String>,
    /// Whether the blob index keeps the catalog's ids in memory.
    blob_ids: BlobIds,
}

/// What the blob index keeps in memory of the catalog's blob ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobIds {
    /// The ids (or their prefixes): a writer's deduplication answers most
    /// lookups without the catalog.
    Loaded,
    /// None: every lookup asks the catalog. For a prune, which writes no
    /// blob it must deduplicate and has the catalog's memory to spare.
    Unloaded,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.store.location())
    }
}

const PARALLEL_LOADS: usize = 8;

/// Read-only catalog connections for blob lookups: one per core of a
/// small machine, so that restore and backup workers rarely wait.
const LOOKUP_CONNECTIONS: usize = 4;

impl Repository {
    /// Creates a repository in an empty store, then opens it.
    pub async fn init(
        store: DynStore,
        password: &[u8],
        opts: &InitOptions,
        catalog: Option<PathBuf>,
    ) -> RepoResult<Self> {
        if store.head(CONFIG_KEY).await?.is_some() {
            return Err(RepoError::AlreadyExists {
                location: store.location(),
            });
        }
        let mut config =
            ConfigBody::new(opts.chunker.clone(), opts.compression_level, opts.pack_size)?;
        config.object_lock = opts.object_lock;
        config.validate().map_err(RepoError::Invalid)?;
        if let Some(l) = &config.object_lock {
            store.lock_writes(&lock::policy(l))?;
        }
        let master = MasterKey::generate();
        let key = KeyFile::create(&master, password, opts.kdf)?.encode();
        store.put(&KeyId::of_bytes(&key).key(), key.into()).await?;
        if !store
            .put_if_absent(CONFIG_KEY, config.encode(&master).into())
            .await?
        {
            return Err(RepoError::AlreadyExists {
                location: store.location(),
            });
        }
        Self::open(store, password, catalog).await
    }

    /// Seeds `to`, a catalog of this process alone, from the repository's
    /// shared catalog (`shared`, or the default one of the id its config
    /// names), when there is one: a command that must decide from its own
    /// listings (prune) then syncs that copy instead of reading every
    /// index object and tree again. Best effort: without a copy the sync
    /// reads everything.
    pub async fn seed_catalog(store: &DynStore, shared: Option<PathBuf>, to: PathBuf) {
        let shared = match shared {
            Some(p) => p,
            None => match store.get(CONFIG_KEY).await {
                Ok(raw) => match crate::format::config::peek_id(&raw) {
                    Ok(id) => crate::catalog::default_path(&id),
                    Err(_) => return,
                },
                Err(_) => return,
            },
        };
        if !shared.exists() {
            return;
        }
        let copied = tokio::task::spawn_blocking(move || Catalog::seed(&shared, &to)).await;
        match copied {
            Ok(Ok(())) => tracing::debug!("private catalog seeded from the shared one"),
            Ok(Err(e)) => tracing::debug!(error = %e, "private catalog not seeded"),
            Err(e) => tracing::debug!(error = %e, "private catalog not seeded"),
        }
    }

    /// Unlocks a repository with a password and brings its catalog up to date.
    pub async fn open(
        store: DynStore,
        password: &[u8],
        catalog: Option<PathBuf>,
    ) -> RepoResult<Self> {
        Self::open_with(store, password, catalog, BlobIds::Loaded).await
    }

    /// [`Repository::open`], keeping `blob_ids` of the catalog in memory.
    pub async fn open_with(
        store: DynStore,
        password: &[u8],
        catalog: Option<PathBuf>,
        blob_ids: BlobIds,
    ) -> RepoResult<Self> {
        let location = store.location();
        let raw = match store.get(CONFIG_KEY).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(RepoError::NotFound { location }),
            Err(e) => return Err(e.into()),
        };
        let found = crate::format::config::peek_version(&raw)?;
        if found > FORMAT_VERSION {
            return Err(RepoError::NewerFormat {
                location,
                found,
                supported: FORMAT_VERSION,
            });
        }
        // The catalog and its blob index load while the key is derived:
        // the repository id is readable before the config is verified, and
        // what was loaded is kept only if the verified id is the same.
        let peeked = crate::format::config::peek_id(&raw)?;
        let preload = {
            let (path, id) = (catalog.clone(), peeked.clone());
            tokio::task::spawn_blocking(move || preload_catalog(path, &id, blob_ids))
        };
        let (key_id, key) = unlock(&store, password).await?;
        tracing::debug!(key = %key_id, "repository key unlocked");
        let config = crate::format::config::decode(&raw, &key)?;
        let (cat, prefixes) = match preload.await {
            Ok(Ok((cat, prefixes))) if peeked == config.id => (cat, prefixes),
            _ => {
                let path = catalog.unwrap_or_else(|| crate::catalog::default_path(&config.id));
                (Catalog::open(&path)?, None)
            }
        };
        let lock_refused = match &config.object_lock {
            Some(l) => store.lock_writes(&lock::policy(l)).err().map(|e| e.message),
            None => None,
        };
        let readers = (0..LOOKUP_CONNECTIONS)
            .map(|_| cat.reader())
            .collect::<Result<Vec<_>, _>>()?;
        let cipher = key.cipher();
        let repo = Repository {
            version: config.version.into(),
            lock_refused,
            sealer: Sealer::new(&key, &cipher),
            cipher,
            store,
            key,
            config,
            key_id,
            catalog: Arc::new(Mutex::new(cat)),
            index: RwLock::new(BlobIndex::new(readers)),
            damaged_indexes: Mutex::new(Vec::new()),
            blob_ids,
        };
        repo.sync_catalog_with(prefixes).await?;
        Ok(repo)
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn config(&self) -> &ConfigBody {
        &self.config
    }

    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Names, seals and opens blobs and packs with this repository's keys.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn location(&self) -> String {
        self.store.location()
    }

    fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs catalog work on a blocking thread, off the async workers:
    /// writes and whole-table reads, which take milliseconds to seconds.
    /// (Point reads such as a cached tree stay inline.)
    async fn on_catalog<T, F>(&self, f: F) -> RepoResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Catalog) -> crate::catalog::CatalogResult<T> + Send + 'static,
    {
        let cat = self.catalog.clone();
        let run = move || f(&mut cat.lock().unwrap_or_else(|e| e.into_inner()));
        match tokio::task::spawn_blocking(run).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(RepoError::Invalid(format!("catalog task failed: {e}"))),
        }
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, BlobIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, BlobIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a writer may reuse the stored blob `kind`/`id` instead of
    /// storing it again (false for blobs only in packs a deletion plan
    /// names). A blob is named by its type and its id: bytes stored as a
    /// tree are stored again when a file holds them, and the other way.
    pub fn has_blob(&self, kind: BlobType, id: &BlobId) -> bool {
        self.index().contains(kind, id)
    }

    /// [`Repository::has_blob`] for every data blob of a file's content,
    /// under one lock.
    pub fn has_blobs(&self, content: &[BlobId]) -> bool {
        self.index().contains_all(BlobType::Data, content)
    }

    /// Whether the blob can be read at all (in a planned pack or not).
    pub fn locates_blob(&self, kind: BlobType, id: &BlobId) -> bool {
        self.index().locates(kind, id)
    }

    /// Where blob `kind`/`id` lives: its pack and its entry there. An id
    /// stored only as the other type gives that entry, whose `kind` then
    /// tells the caller of the mismatch.
    pub fn locate_blob(&self, kind: BlobType, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        self.index().get(kind, id)
    }

    /// [`Repository::locate_blob`] for every data blob of a file's
    /// content, under one lock.
    pub fn locate_blobs(&self, content: &[BlobId]) -> Vec<Option<(PackId, BlobEntry)>> {
        self.index().get_all(BlobType::Data, content)
    }

    /// The type and length before compression of each content blob, as
    /// [`Repository::locate_blobs`] finds it (`None`: not in the index).
    pub fn blob_sizes(&self, content: &[BlobId]) -> Vec<Option<(BlobType, u32)>> {
        self.index().sizes_all(content)
    }

    /// Records the blobs of a pack this process has stored, so that later
    /// writers reuse them. (The index object that names them comes later.)
    pub fn record_pack(&self, pack: PackId, entries: &[BlobEntry]) {
        let mut idx = self.index_mut();
        for e in entries {
            idx.insert(pack, *e);
        }
    }

    pub fn damaged_indexes(&self) -> Vec<(IndexId, String)> {
        self.damaged_indexes.lock().unwrap().clone()
    }

    /// Makes the catalog match the index and snapshot objects in the store,
    /// then loads the blob index from it.
    pub async fn sync_catalog(&self) -> RepoResult<()> {
        self.sync_catalog_with(None).await
    }

    /// [`Repository::sync_catalog`], given the blob id prefixes the
    /// catalog held before (used when the sync changes nothing).
    ///
    /// Snapshots are listed before index objects: a backup that finishes
    /// between the two listings then adds at most index objects whose
    /// snapshot this sync does not see, never a snapshot whose index
    /// objects it missed (writers store packs, then index, then snapshots).
    async fn sync_catalog_with(&self, mut preloaded: Option<locations::Known>) -> RepoResult<()> {
        if self.claim_catalog().await? {
            preloaded = None;
        }
        let snapshots: HashSet<SnapshotId> = self.list_ids(ObjectKind::Snapshot).await?;
        if self.sync_listed_indexes().await? {
            preloaded = None;
        }
        self.sync_snapshots(snapshots).await?;
        tracing::debug!("catalog in step with the repository");
        let doomed = self.planned_packs().await?;
        let known = match (preloaded, self.blob_ids) {
            (_, BlobIds::Unloaded) => locations::Known::Unloaded,
            (Some(k), BlobIds::Loaded) => k,
            (None, BlobIds::Loaded) => {
                self.on_catalog(|c| locations::load_known(c, EXACT_LIMIT))
                    .await?
            }
        };
        let planned = doomed.clone();
        let doomed_prefixes = self
            .on_catalog(move |c| locations::pack_prefixes(c, &planned))
            .await?;
        let mut index = self.index_mut();
        index.reload(known, doomed, doomed_prefixes);
        tracing::debug!(bytes = index.memory_bytes(), "blob index loaded");
        Ok(())
    }

    /// Claims the catalog for this repository; true when it held another's
    /// (or nothing) and was cleared.
    async fn claim_catalog(&self) -> RepoResult<bool> {
        let id = self.config.id.clone();
        self.on_catalog(move |c| c.claim(&id)).await
    }

    /// Brings the catalog's index objects in step with `stored`; true when
    /// anything changed.
    /// Lists the index objects and brings the catalog in step with them.
    /// A prune may rewrite index objects while this runs: one that vanishes
    /// between the listing and its read was replaced by a newer one written
    /// before it was deleted, so the listing is taken again (a few times).
    async fn sync_listed_indexes(&self) -> RepoResult<bool> {
        let mut changed = false;
        for _ in 0..4 {
            let indexes: HashSet<IndexId> = self.list_ids(ObjectKind::Index).await?;
            let (c, vanished) = self.sync_indexes(indexes).await?;
            changed |= c;
            if !vanished {
                return Ok(changed);
            }
            tracing::debug!("an index object vanished while it was read; listing again");
        }
        Err(RepoError::Invalid(
            "index objects kept vanishing while they were read (a prune rewriting them?): run the command again".into(),
        ))
    }

    /// Brings the catalog's index objects in step with `stored`; returns
    /// whether anything changed and whether a listed object had vanished.
    async fn sync_indexes(&self, stored: HashSet<IndexId>) -> RepoResult<(bool, bool)> {
        let known = self.catalog().index_ids()?;
        let gone: Vec<IndexId> = known.difference(&stored).copied().collect();
        self.on_catalog(move |c| gone.iter().try_for_each(|id| c.remove_index(id)))
            .await?;
        let new: Vec<IndexId> = stored.difference(&known).copied().collect();
        let mut loads = std::pin::pin!(self.load_indexes(new));
        let mut damaged = Vec::new();
        let mut vanished = false;
        while let Some((id, res)) = loads.next().await {
            match res {
                Ok(idx) => self.on_catalog(move |c| c.add_index(&id, &idx)).await?,
                Err(RepoError::Store(e)) if e.is_not_found() => vanished = true,
                Err(RepoError::Corrupt { reason, .. }) => {
                    tracing::warn!(index = %id, error = %reason, "skipping damaged index object");
                    damaged.push((id, reason));
                }
                Err(e) => return Err(e),
            }
        }
        *self.damaged_indexes.lock().unwrap() = damaged;
        Ok((stored != known, vanished))
    }

    /// Brings the catalog's snapshots in step with `stored`.
    async fn sync_snapshots(&self, stored: HashSet<SnapshotId>) -> RepoResult<()> {
        let known = self.catalog().snapshot_ids()?;
        let gone: Vec<SnapshotId> = known.difference(&stored).copied().collect();
        self.on_catalog(move |c| gone.iter().try_for_each(|id| c.remove_snapshot(id)))
            .await?;
        let new: Vec<SnapshotId> = stored.difference(&known).copied().collect();
        let mut loads = futures::stream::iter(new)
            .map(|id| async move { (id, self.load_snapshot(&id).await) })
            .buffer_unordered(PARALLEL_LOADS);
        while let Some((id, res)) = loads.next().await {
            match res {
                Ok(s) => self.on_catalog(move |c| c.add_snapshot(&id, &s)).await?,
                Err(RepoError::Corrupt { reason, .. }) => {
                    tracing::warn!(snapshot = %id, error = %reason, "skipping damaged snapshot object");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The ids of the objects of one kind.
    pub async fn list_ids<T: std::str::FromStr + Eq + std::hash::Hash>(
        &self,
        kind: ObjectKind,
    ) -> RepoResult<HashSet<T>> {
        Ok(self.list_sizes(kind).await?.into_keys().collect())
    }

    /// The objects of one kind, by id, with their stored sizes.
    pub async fn list_sizes<T: std::str::FromStr + Eq + std::hash::Hash>(
        &self,
        kind: ObjectKind,
    ) -> RepoResult<HashMap<T, u64>> {
        Ok(self
            .store
            .list(kind.prefix())
            .await?
            .into_iter()
            .filter_map(|m| Some((crate::format::kind::id_from_key(&m.key)?, m.size)))
            .collect())
    }

    /// Reads an object and checks that its bytes match the id it is named by.
    async fn get_verified(&self, key: &str, expected: &[u8; 32]) -> RepoResult<Bytes> {
        let data = self.store.get(key).await?;
        if blake3::hash(&data).as_bytes() != expected {
            return Err(RepoError::corrupt(
                key,
                "content does not match its name (BLAKE3)",
            ));
        }
        Ok(data)
    }

    /// Reads a sealed object named by its BLAKE3, verifies and opens it.
    async fn open_object(&self, key: &str, id: &[u8; 32], aad: &[u8]) -> RepoResult<Vec<u8>> {
        let data = self.get_verified(key, id).await?;
        self.cipher
            .open(&data, aad)
            .map_err(|e| RepoError::corrupt(key, e))
    }

    /// Seals `plain`, names it by the BLAKE3 of the result, and stores it
    /// under the key `key_of` gives for that name.
    async fn seal_object(
        &self,
        plain: &[u8],
        aad: &[u8],
        key_of: impl Fn([u8; 32]) -> String,
    ) -> RepoResult<[u8; 32]> {
        self.check_writable()?;
        let sealed = self.cipher.seal(plain, aad);
        let id = *blake3::hash(&sealed).as_bytes();
        self.store.put(&key_of(id), sealed.into()).await?;
        Ok(id)
    }

    pub async fn load_index(&self, id: &IndexId) -> RepoResult<IndexFile> {
        let key = id.key();
        let plain = self.open_object(&key, id.as_bytes(), aad::INDEX).await?;
        IndexFile::decode(&plain).map_err(|e| RepoError::corrupt(&key, e))
    }

    /// Loads index objects, several at a time, yielding each with its
    /// outcome as it completes.
    pub fn load_indexes(
        &self,
        ids: Vec<IndexId>,
    ) -> impl futures::Stream<Item = (IndexId, RepoResult<IndexFile>)> + '_ {
        futures::stream::iter(ids)
            .map(move |id| async move { (id, self.load_index(&id).await) })
            .buffer_unordered(PARALLEL_LOADS)
    }

    /// Writes an index object. Call only once every pack it names is durable.
    pub async fn save_index(&self, index: &IndexFile) -> RepoResult<IndexId> {
        let id = IndexId(
            self.seal_object(&index.encode(), aad::INDEX, |id| IndexId(id).key())
                .await?,
        );
        let blobs: usize = index.packs.iter().map(|p| p.blobs.len()).sum();
        tracing::debug!(index = %id, packs = index.packs.len(), blobs, "index object stored");
        let copy = index.clone();
        self.on_catalog(move |c| c.add_index(&id, &copy)).await?;
        self.index_mut().indexed(index);
        Ok(id)
    }

    pub async fn load_snapshot(&self, id: &SnapshotId) -> RepoResult<Snapshot> {
        let key = id.key();
        let plain = self.open_object(&key, id.as_bytes(), aad::SNAPSHOT).await?;
        serde_json::from_slice(&plain).map_err(|e| RepoError::corrupt(&key, e))
    }

    /// Writes a snapshot object. Call only once its trees and data are
    /// named by durable index objects.
    pub async fn save_snapshot(&self, snap: &Snapshot) -> RepoResult<SnapshotId> {
        let plain = serde_json::to_vec(snap).expect("snapshot serializes");
        let id = SnapshotId(
            self.seal_object(&plain, aad::SNAPSHOT, |id| SnapshotId(id).key())
                .await?,
        );
        let snap = snap.clone();
        self.on_catalog(move |c| c.add_snapshot(&id, &snap)).await?;
        Ok(id)
    }

    /// Snapshots known to the catalog, oldest first.
    pub fn snapshots(&self) -> RepoResult<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.catalog().snapshots()?)
    }

    /// Reads one blob's sealed bytes from its pack.
    pub async fn read_sealed(&self, kind: BlobType, id: &BlobId) -> RepoResult<(BlobEntry, Bytes)> {
        let (pack, entry) = self
            .index()
            .get(kind, id)
            .ok_or(RepoError::UnknownBlob(*id))?;
        let data = self
            .store
            .get_range(&pack.key(), entry.offset, entry.length as u64)
            .await?;
        Ok((entry, data))
    }

    /// Reads, opens and verifies one blob.
    pub async fn read_blob(&self, kind: BlobType, id: &BlobId) -> RepoResult<Vec<u8>> {
        let (entry, sealed) = self.read_sealed(kind, id).await?;
        Ok(crate::format::blob::open_blob(
            &self.key,
            &self.cipher,
            &entry,
            &sealed,
        )?)
    }

    /// Loads a tree, from the catalog's cache when it has it.
    pub async fn load_tree(&self, id: &BlobId) -> RepoResult<Tree> {
        let (tree, fetched) = self.fetch_tree(id).await?;
        if let Some(data) = fetched {
            self.cache_trees(vec![(*id, data)]).await?;
        }
        Ok(tree)
    }

    /// Caches encoded trees in the catalog (a cache: failures only cost
    /// speed later), e.g. those [`Repository::fetch_tree`] read.
    pub async fn cache_trees(&self, trees: Vec<(BlobId, Vec<u8>)>) -> RepoResult<()> {
        if trees.is_empty() {
            return Ok(());
        }
        self.on_catalog(move |c| c.put_trees(&trees)).await
    }

    /// A tree, from the catalog's cache or else from its pack; in the
    /// second case also its encoding, for [`Repository::cache_trees`]
    /// (walks that read many trees cache them in batches).
    pub async fn fetch_tree(&self, id: &BlobId) -> RepoResult<(Tree, Option<Vec<u8>>)> {
        let cached = self.cached_trees(vec![*id]).await.pop().flatten();
        let open = |data: Vec<u8>| Tree::decode(&crate::catalog::unpack_tree(data)?).ok();
        match cached.and_then(open) {
            Some(t) => Ok((t, None)),
            None => self.read_tree(id).await,
        }
    }

    /// [`Repository::fetch_tree`] for a batch of trees, in the order
    /// asked: those the catalog caches in one trip to it, decompressed and
    /// decoded on two blocking threads; the others read from their packs,
    /// several at a time.
    pub async fn fetch_trees(&self, ids: Vec<BlobId>) -> Vec<FetchedTree> {
        let mut decoded = self.cached_trees(ids.clone()).await;
        let second = decoded.split_off(decoded.len() / 2);
        let decode = |half: Vec<Option<Vec<u8>>>| {
            let n = half.len();
            let task = tokio::task::spawn_blocking(move || {
                let open =
                    |d: Option<Vec<u8>>| Tree::decode(&crate::catalog::unpack_tree(d?)?).ok();
                half.into_iter().map(open).collect::<Vec<_>>()
            });
            // A decoding thread that failed leaves its trees to be read.
            async move {
                task.await
                    .unwrap_or_else(|_| (0..n).map(|_| None).collect())
            }
        };
        let (a, b) = tokio::join!(decode(decoded), decode(second));
        let decoded = a.into_iter().chain(b);
        futures::stream::iter(ids.into_iter().zip(decoded))
            .map(|(id, tree)| async move {
                match tree {
                    Some(t) => (id, Ok((t, None))),
                    None => (id, self.read_tree(&id).await),
                }
            })
            .buffered(PARALLEL_LOADS)
            .collect()
            .await
    }

    /// The catalog's cached rows of `ids` (see [`crate::catalog::unpack_tree`]),
    /// in the order asked. The
    /// cache may hold trees whose pack never became durable (an
    /// interrupted backup), so it is trusted only for ids the index
    /// locates as tree blobs; a failing catalog counts as an empty cache.
    async fn cached_trees(&self, ids: Vec<BlobId>) -> Vec<Option<Vec<u8>>> {
        let trusted = self.index().locates_all(BlobType::Tree, &ids);
        let n = ids.len();
        let asked: Vec<(BlobId, bool)> = ids.into_iter().zip(trusted).collect();
        self.on_catalog(move |c| {
            asked
                .iter()
                .map(|(id, trusted)| match trusted {
                    true => c.tree_stored(id),
                    false => Ok(None),
                })
                .collect::<crate::catalog::CatalogResult<Vec<_>>>()
        })
        .await
        .unwrap_or_else(|_| vec![None; n])
    }

    /// A tree read from its pack, with its encoding.
    async fn read_tree(&self, id: &BlobId) -> RepoResult<(Tree, Option<Vec<u8>>)> {
        let object = || format!("tree {id}");
        if let Some((_, e)) = self.locate_blob(BlobType::Tree, id) {
            if e.kind != BlobType::Tree {
                return Err(RepoError::corrupt(
                    object(),
                    "names a data blob, not a tree",
                ));
            }
        }
        let data = self.read_blob(BlobType::Tree, id).await?;
        let tree = Tree::decode(&data).map_err(|e| RepoError::corrupt(object(), e))?;
        Ok((tree, Some(data)))
    }

    /// Stores a finished pack (the caller records its blobs afterwards).
    pub async fn put_pack(&self, id: &PackId, data: Bytes) -> RepoResult<()> {
        self.check_writable()?;
        Ok(self.store.put(&id.key(), data).await?)
    }

    /// Adds a key that opens this repository with another password.
    pub async fn add_key(&self, password: &[u8], params: KdfParams) -> RepoResult<KeyId> {
        self.check_writable()?;
        let data = KeyFile::create(&self.key, password, params)?.encode();
        let id = KeyId::of_bytes(&data);
        self.store.put(&id.key(), data.into()).await?;
        Ok(id)
    }

    pub async fn list_keys(&self) -> RepoResult<Vec<(KeyId, KeyFile)>> {
        let ids: HashSet<KeyId> = self.list_ids(ObjectKind::Key).await?;
        let mut out: Vec<_> = futures::stream::iter(ids)
            .map(|id| async move {
                let data = self.get_verified(&id.key(), id.as_bytes()).await?;
                Ok::<_, RepoError>((id, KeyFile::parse(&id.key(), &data)?))
            })
            .buffer_unordered(PARALLEL_LOADS)
            .try_collect()
            .await?;
        out.sort_by_key(|(id, k)| (k.created, *id));
        Ok(out)
    }

    /// The key whose id starts with `prefix` (hex, any case).
    pub async fn find_key(&self, prefix: &str) -> RepoResult<KeyId> {
        let prefix = prefix.to_ascii_lowercase();
        let keys = self.list_keys().await?;
        let hits: Vec<KeyId> = keys
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.to_hex().starts_with(&prefix))
            .collect();
        match hits.as_slice() {
            [k] => Ok(*k),
            [] => Err(RepoError::Usage(format!(
                "no key with id {prefix}; `ferry key list` shows them"
            ))),
            _ => Err(RepoError::Usage(format!(
                "several keys start with {prefix}; give more digits"
            ))),
        }
    }

    /// Recreates the catalog from the repository alone.
    pub async fn rebuild_catalog(&self) -> RepoResult<CatalogStats> {
        self.on_catalog(|c| c.clear()).await?;
        self.sync_catalog().await?;
        let path = self.catalog().path().to_path_buf();
        let snapshots = self.snapshots()?.len();
        let blobs = self.on_catalog(|c| c.distinct_blobs()).await? as usize;
        Ok(CatalogStats {
            path,
            snapshots,
            blobs,
        })
    }

    /// The key objects readers skip (see docs/format.md), with why.
    pub async fn refused_keys(&self) -> RepoResult<Vec<(String, String)>> {
        Ok(usable_keys(&self.store).await?.1)
    }

    /// Removes a key; refuses the key in use (and so never the last one).
    pub async fn remove_key(&self, id: &KeyId) -> RepoResult<()> {
        if *id == self.key_id {
            return Err(RepoError::Invalid(format!(
                "key {} is the one this command was unlocked with; unlock with another password to remove it",
                id.short()
            )));
        }
        Ok(self.store.delete(&id.key()).await?)
    }
}

/// What a rebuilt catalog holds.
#[derive(Debug, Clone)]
pub struct CatalogStats {
    pub path: PathBuf,
    pub snapshots: usize,
    pub blobs: usize,
}

/// Opens the catalog of repository `id` and reads its blob ids (see
/// [`locations`]), if it is that repository's.
fn preload_catalog(
    path: Option<PathBuf>,
    id: &str,
    blob_ids: BlobIds,
) -> RepoResult<(Catalog, Option<locations::Known>)> {
    let path = path.unwrap_or_else(|| crate::catalog::default_path(id));
    let cat = Catalog::open(&path)?;
    let ours = cat.meta("repository")?.as_deref() == Some(id);
    let prefixes = match ours && blob_ids == BlobIds::Loaded {
        true => Some(locations::load_known(&cat, EXACT_LIMIT)?),
        false => None,
    };
    Ok((cat, prefixes))
}

/// Tries every key object with the password; the first that opens wins.
/// Keys this process has unlocked, by key object and password hash: a key
/// object is named by the hash of its bytes, so the same object opened with
/// the same password gives the same key, and a command that opens a
/// repository twice (`forget --prune`, every region of a config) derives
/// it once.
static UNLOCKED: Mutex<Vec<(KeyId, [u8; 32], MasterKey)>> = Mutex::new(Vec::new());

fn unlocked(id: &KeyId, pw_hash: &[u8; 32]) -> Option<(KeyId, MasterKey)> {
    let known = UNLOCKED.lock().unwrap();
    known
        .iter()
        .find(|(k, p, _)| k == id && p == pw_hash)
        .map(|(k, _, key)| (*k, key.clone()))
}

async fn unlock(store: &DynStore, password: &[u8]) -> RepoResult<(KeyId, MasterKey)> {
    let (mut usable, refused) = usable_keys(store).await?;
    // The cheapest derivations first: a key object asking for the most
    // work the limits allow is tried only when the others do not open.
    usable.sort_by_key(|(id, f)| {
        (
            u64::from(f.params.memory_kib) * u64::from(f.params.iterations),
            *id,
        )
    });
    if usable.is_empty() {
        if let Some((object, reason)) = refused.into_iter().next() {
            return Err(RepoError::Corrupt {
                object,
                reason: format!(
                    "{reason}; no other key object is usable (`ferry key list` shows them)"
                ),
            });
        }
    }
    let tried = usable.len();
    let pw_hash = *blake3::hash(password).as_bytes();
    if let Some(hit) = usable.iter().find_map(|(id, _)| unlocked(id, &pw_hash)) {
        return Ok(hit);
    }
    for (id, file) in usable {
        let pw = password.to_vec();
        let opened = tokio::task::spawn_blocking(move || file.unwrap_key(&pw))
            .await
            .map_err(|e| RepoError::Invalid(format!("key derivation failed: {e}")))??;
        if let Some(k) = opened {
            UNLOCKED.lock().unwrap().push((id, pw_hash, k.clone()));
            return Ok((id, k));
        }
    }
    Err(RepoError::WrongPassword {
        location: store.location(),
        keys: tried,
    })
}

/// The key objects that may be tried: named by the BLAKE3 of their bytes
/// and with fields within the limits of docs/format.md. The others are
/// skipped with a warning and returned as (object, reason).
async fn usable_keys(
    store: &DynStore,
) -> RepoResult<(Vec<(KeyId, KeyFile)>, Vec<(String, String)>)> {
    let keys = store.list(ObjectKind::Key.prefix()).await?;
    let (mut usable, mut refused) = (Vec::new(), Vec::new());
    for meta in &keys {
        let Some(id) = crate::format::kind::id_from_key::<KeyId>(&meta.key) else {
            continue;
        };
        if meta.size > crate::format::keys::MAX_KEY_OBJECT_SIZE as u64 {
            refused.push((
                meta.key.clone(),
                format!("{} bytes, more than a key object holds", meta.size),
            ));
            continue;
        }
        let data = store.get(&meta.key).await?;
        let checked = if blake3::hash(&data).as_bytes() != id.as_bytes() {
            Err("content does not match its name (BLAKE3)".to_string())
        } else {
            KeyFile::decode(&meta.key, &data).map_err(|e| match e {
                crate::format::FormatError::Corrupt { reason, .. } => reason,
                e => e.to_string(),
            })
        };
        match checked {
            Ok(file) => usable.push((id, file)),
            Err(reason) => {
                tracing::warn!(key = %meta.key, %reason, "skipping key object");
                refused.push((meta.key.clone(), reason));
            }
        }
    }
    Ok((usable, refused))
}
