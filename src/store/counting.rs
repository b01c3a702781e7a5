//! A store wrapper that records every request it passes on, so that tests
//! can assert how an operation uses the store ("an unchanged backup writes
//! only its snapshot", "check --read-data reads each pack once").

use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{DynStore, ObjectMeta, ObjectStore, StoreResult};

/// The kind of a recorded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Get,
    GetRange,
    Put,
    PutIfAbsent,
    Head,
    List,
    Delete,
}

/// One request: what, on which key (or list prefix), and for ranged reads
/// the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub key: String,
    pub range: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Counting {
    inner: DynStore,
    log: Mutex<Vec<Request>>,
}

impl Counting {
    pub fn new(inner: DynStore) -> Self {
        Counting {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every request since the last [`Counting::take`], oldest first; the
    /// log starts again.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn record(&self, op: Op, key: &str, range: Option<(u64, u64)>) {
        self.log.lock().unwrap().push(Request {
            op,
            key: key.to_string(),
            range,
        });
    }
}

#[async_trait]
impl ObjectStore for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.record(Op::Get, key, None);
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.record(Op::GetRange, key, Some((offset, length)));
        self.inner.get_range(key, offset, length).await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.record(Op::Put, key, None);
        self.inner.put(key, data).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        self.record(Op::PutIfAbsent, key, None);
        self.inner.put_if_absent(key, data).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.record(Op::Head, key, None);
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.record(Op::List, prefix, None);
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.record(Op::Delete, key, None);
        self.inner.delete(key).await
    }

    fn lock_target(&self) -> Option<&dyn ObjectStore> {
        Some(&*self.inner)
    }
}
