//! The conflict log and small named values (the last cycle, the breaker).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

impl Store {
    // --- conflicts and meta ------------------------------------------------

    /// The newest conflicts first.
    pub fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, StateError> {
        self.conflicts
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn conflict_count(&self) -> usize {
        self.conflicts.len()
    }

    pub fn put_meta<T: Serialize>(&self, key: MetaKey<T>, value: &T) -> Result<(), StateError> {
        self.put_meta_raw(key.name(), value)
    }

    pub fn meta<T: DeserializeOwned>(&self, key: MetaKey<T>) -> Result<Option<T>, StateError> {
        self.meta_raw(key.name())
    }

    /// By name, for the trait's JSON values.
    pub(super) fn put_meta_raw<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StateError> {
        self.meta.insert(key, encode(value)?)?;
        self.flush()
    }

    pub(super) fn meta_raw<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.meta.get(key)? {
            Some(v) => Ok(Some(decode(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }
}
