//! An item of a listing page that did not decode, as both connectors
//! report it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An item of a page that did not decode, reported instead of failing the
/// page. With an `id` the record can be named (and, on the HITO-Link side,
/// parked); without one, `position` and `hash` say which item it was so an
/// admin can find it in the server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableItem {
    /// The item's `id` as it was sent (a number shows as its digits), when
    /// there was one.
    pub id: Option<String>,
    /// Its index in the page's `items`, from 0.
    pub position: usize,
    /// The first 12 hex digits of the SHA-256 of its JSON text.
    pub hash: String,
    pub reason: String,
}

impl UnreadableItem {
    pub fn new(id: Option<String>, position: usize, raw: &[u8], reason: String) -> UnreadableItem {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(raw);
        let hash = data_encoding::HEXLOWER.encode(&digest[..6]);
        UnreadableItem {
            id,
            position,
            hash,
            reason,
        }
    }
}

impl fmt::Display for UnreadableItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(
                f,
                "item {} (id {id:?}, sha256 {})",
                self.position, self.hash
            )?,
            None => write!(f, "item {} (no id, sha256 {})", self.position, self.hash)?,
        }
        write!(f, ": {}", self.reason)
    }
}
