//! How records are spelled in either store: JSON, the same bytes in sled
//! and in PostgreSQL's text columns, so a record reads the same wherever it
//! was written.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StateError;

pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(v).map_err(|e| StateError::Io(format!("cannot encode a state record: {e}")))
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

/// A value as the trait carries opaque items (work, meta).
pub fn encode_value<T: Serialize + ?Sized>(v: &T) -> Result<serde_json::Value, StateError> {
    serde_json::to_value(v)
        .map_err(|e| StateError::Io(format!("cannot encode a state record: {e}")))
}

pub fn decode_value<T: DeserializeOwned>(key: &str, v: serde_json::Value) -> Result<T, StateError> {
    serde_json::from_value(v).map_err(|e| StateError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// Separates an order key from the record key after it.
const SEP: u8 = 0;

/// Where an entry stands in an ordered queue (the work set, the write-back
/// queue): its order, then its key, so equal orders keep a stable order.
/// Batches resume after the last such key they returned.
pub fn order_index_key(order: &[u8], key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(order.len() + 1 + key.len());
    k.extend_from_slice(order);
    k.push(SEP);
    k.extend_from_slice(key.as_bytes());
    k
}
