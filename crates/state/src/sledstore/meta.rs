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

    pub fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.meta.insert(key, encode(value)?)?;
        self.flush()
    }

    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.meta.get(key)? {
            Some(v) => Ok(Some(decode(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }
}
