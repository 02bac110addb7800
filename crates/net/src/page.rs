//! A listing page split into its items before any item is decoded.
//!
//! Both APIs list in pages shaped `{"items": [...], ...}`. Decoding such a
//! page into typed records in one go fails the whole page for one bad item;
//! then nothing in the page syncs and, since the cursor cannot move past
//! it, nothing after it either. So the page is split first: the envelope
//! must be sound, each item is handed over as its own JSON value, and the
//! caller decides per item.
//!
//! Bytes that are not UTF-8 are replaced (U+FFFD) rather than failing the
//! page, and the items they fell into are marked `damaged`: their text is
//! not what the server meant, so they must not be synced as read.

use serde_json::Value;
use serde_json::value::RawValue;

/// One item of a page.
#[derive(Debug, Clone)]
pub struct RawItem {
    /// Index in `items`, from 0.
    pub position: usize,
    pub value: Value,
    /// Its JSON text, for a hash in reports.
    pub text: String,
    /// Held bytes that were not UTF-8 (replaced by U+FFFD in `value`).
    pub damaged: bool,
}

impl RawItem {
    /// The item's `id` as text: a string as is, a number as its digits.
    pub fn id_text(&self) -> Option<String> {
        match self.value.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The item's `id` when it is a usable one: a non-empty string without
    /// a replaced byte in it.
    pub fn usable_id(&self) -> Option<&str> {
        match self.value.get("id")? {
            Value::String(s) if !s.trim().is_empty() && !s.contains('\u{FFFD}') => Some(s),
            _ => None,
        }
    }
}

/// A page: its top-level fields (without `items`) and its items.
#[derive(Debug, Clone)]
pub struct RawPage {
    pub fields: serde_json::Map<String, Value>,
    pub items: Vec<RawItem>,
    /// `items_key` was there (an empty list, or even `null`, counts).
    pub has_items: bool,
    /// Bytes that were not UTF-8 somewhere outside every item.
    pub damaged_outside_items: bool,
}

/// Splits `body` into its envelope fields and the items under `items_key`
/// (missing or `null` reads as no items). Fails only when the envelope is
/// not a JSON object or `items_key` is not an array.
pub fn split(body: &[u8], items_key: &str) -> Result<RawPage, String> {
    let (text, replaced) = lossy(body);
    let top: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_str(&text).map_err(|e| format!("not a JSON object: {e}"))?;
    let base = text.as_ptr() as usize;
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - base;
        start..start + raw.get().len()
    };
    let mut fields = serde_json::Map::new();
    let mut items = Vec::new();
    let mut damaged_outside_items = false;
    let has_items = top.contains_key(items_key);
    for (key, raw) in &top {
        if key == items_key {
            if raw.get() == "null" {
                continue;
            }
            let list: Vec<&RawValue> = serde_json::from_str(raw.get())
                .map_err(|e| format!("`{items_key}` is not an array: {e}"))?;
            for (position, item) in list.into_iter().enumerate() {
                let range = span(item);
                let damaged = replaced.iter().any(|at| range.contains(at));
                // A RawValue is valid JSON by construction.
                let value = serde_json::from_str(item.get())
                    .map_err(|e| format!("item {position}: {e}"))?;
                items.push(RawItem {
                    position,
                    value,
                    text: item.get().to_string(),
                    damaged,
                });
            }
        } else {
            let range = span(raw);
            if replaced.iter().any(|at| range.contains(at)) {
                damaged_outside_items = true;
            }
            let value = serde_json::from_str(raw.get()).map_err(|e| format!("`{key}`: {e}"))?;
            fields.insert(key.clone(), value);
        }
    }
    Ok(RawPage {
        fields,
        items,
        has_items,
        damaged_outside_items,
    })
}

/// UTF-8 text with every invalid sequence replaced by U+FFFD, and the byte
/// offsets (in the text) where replacements were put.
fn lossy(bytes: &[u8]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(bytes.len());
    let mut replaced = Vec::new();
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            replaced.push(text.len());
            text.push('\u{FFFD}');
        }
    }
    (text, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_apart_and_bad_bytes_mark_only_their_item() {
        let mut body = br#"{"items": [{"id": "a", "x": 1}, {"id": "b", "name": "#.to_vec();
        body.extend_from_slice(b"\"caf\xff\"");
        body.extend_from_slice(br#"}, {"id": 12345}], "next_cursor": "c2", "has_more": true}"#);
        let page = split(&body, "items").unwrap();
        assert_eq!(page.items.len(), 3);
        assert!(!page.items[0].damaged);
        assert!(page.items[1].damaged);
        assert_eq!(page.items[1].value["name"], "caf\u{FFFD}");
        assert!(!page.items[2].damaged);
        assert_eq!(page.items[2].usable_id(), None);
        assert_eq!(page.items[2].id_text().as_deref(), Some("12345"));
        assert_eq!(page.items[0].usable_id(), Some("a"));
        assert_eq!(page.fields["next_cursor"], "c2");
        assert!(!page.damaged_outside_items);
    }

    #[test]
    fn a_broken_envelope_is_an_error() {
        assert!(split(b"[1, 2]", "items").is_err());
        assert!(split(br#"{"items": 5}"#, "items").is_err());
        assert!(split(br#"{"items": [1, }"#, "items").is_err());
        assert!(
            split(br#"{"items": null}"#, "items")
                .unwrap()
                .items
                .is_empty()
        );
        assert!(!split(br#"{}"#, "items").unwrap().has_items);
        let page = split(b"{\"items\": [], \"next_cursor\": \"\xfe\"}", "items").unwrap();
        assert!(page.damaged_outside_items);
    }
}
