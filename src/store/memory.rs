//! A store in memory: for benchmarks and tests of the layers above the store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn missing(&self, op: &'static str, key: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::NotFound,
            self.location(),
            op,
            key,
            "no such object",
        )
    }

    /// Total bytes held.
    pub fn size(&self) -> u64 {
        self.objects
            .lock()
            .unwrap()
            .values()
            .map(|b| b.len() as u64)
            .sum()
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| self.missing("get", key))
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        let obj = self.get(key).await?;
        let end = offset
            .checked_add(length)
            .filter(|e| *e <= obj.len() as u64)
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::Permanent,
                    self.location(),
                    "get",
                    key,
                    "range past the end",
                )
            })?;
        Ok(obj.slice(offset as usize..end as usize))
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.objects.lock().unwrap().insert(key.to_string(), data);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        let mut m = self.objects.lock().unwrap();
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.to_string(), data);
        Ok(true)
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        Ok(self.objects.lock().unwrap().get(key).map(|b| ObjectMeta {
            key: key.to_string(),
            size: b.len() as u64,
        }))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let m = self.objects.lock().unwrap();
        Ok(m.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.objects
            .lock()
            .unwrap()
            .remove(key)
            .map(drop)
            .ok_or_else(|| self.missing("delete", key))
    }
}
