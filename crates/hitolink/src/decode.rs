//! A change page and single records, decoded item by item: one record
//! that does not decode is parked by its id, or reported by position and
//! hash when it has none, and never fails the rest of the page.

use serde_json::Value;

use hitosync_core::model::{Interview, UnreadableItem, Unsyncable};
use hitosync_net::page::{self, RawItem};

use crate::error::HitolinkError;

/// One page of the change feed.
#[derive(Debug, Clone)]
pub struct ChangePage {
    /// Each record validated on its own; one that does not decode but has
    /// an `id` comes as `Unsyncable`, to be parked under that id.
    pub items: Vec<Result<Interview, Unsyncable>>,
    /// Items without a usable `id` (none, a number, not UTF-8): reported
    /// by position and hash, since nothing can be parked for them.
    pub unreadable: Vec<UnreadableItem>,
    pub next_cursor: String,
    pub has_more: bool,
}

/// One item of a change page, decided on its own.
pub(crate) fn change_item(item: &RawItem) -> Result<Result<Interview, Unsyncable>, UnreadableItem> {
    let unreadable = |reason: String| {
        UnreadableItem::new(item.id_text(), item.position, item.text.as_bytes(), reason)
    };
    let usable = item.usable_id();
    if item.damaged {
        let reason =
            "the record holds bytes that are not UTF-8 text; correct the record in HITO-Link"
                .to_string();
        return match usable {
            Some(id) => Ok(Err(Unsyncable {
                id: id.into(),
                reason,
            })),
            None => Err(unreadable(reason)),
        };
    }
    match (Interview::from_json(&item.value), usable) {
        (Ok(iv), _) => Ok(Ok(iv)),
        (Err(u), Some(id)) => Ok(Err(Unsyncable {
            id: id.into(),
            reason: u.reason,
        })),
        (Err(u), None) => Err(unreadable(match item.value.get("id") {
            None | Some(Value::Null) => format!("a record without an `id`: {}", u.reason),
            Some(other) => format!(
                "a record whose `id` is not a string ({other}): {}",
                u.reason
            ),
        })),
    }
}

/// A single record's answer: decoded like a change item, so that a record
/// with bytes that are not UTF-8 is parked, not a failed cycle.
pub(crate) fn decode_record(bytes: &[u8], what: &str) -> Result<Interview, HitolinkError> {
    let page = page::split(
        &[b"{\"items\": [".as_slice(), bytes, b"]}".as_slice()].concat(),
        "items",
    )
    .map_err(|e| HitolinkError::Protocol(format!("undecodable answer for {what}: {e}")))?;
    let Some(item) = page.items.first() else {
        return Err(HitolinkError::Protocol(format!(
            "an empty answer for {what}"
        )));
    };
    match change_item(item) {
        Ok(Ok(iv)) => Ok(iv),
        Ok(Err(u)) => Err(HitolinkError::Unsyncable(u)),
        Err(bad) => Err(HitolinkError::Unsyncable(Unsyncable {
            id: what.into(),
            reason: bad.reason,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: Value) -> Value {
        json!({
            "id": id, "version": 1, "application_id": "ap_1",
            "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"},
            "job": {"id": "jb_1", "name": "CS"}, "selection_step": null,
            "status": "scheduled", "start": "2026-12-01T10:00:00+09:00", "end": "2026-12-01T11:00:00+09:00",
            "time_zone": "Asia/Tokyo", "format": "online", "location": null, "video_conferencing_url": null,
            "interviewers": [], "candidate_response": "needs_action", "decline": null, "external_event_id": null,
            "created_at": "2026-11-19T10:00:00+09:00", "updated_at": "2026-11-20T09:00:00+09:00", "deleted_at": null
        })
    }

    fn page_of(items: &[Vec<u8>]) -> page::RawPage {
        let mut body = b"{\"items\": [".to_vec();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"], \"next_cursor\": \"c\", \"has_more\": false}");
        page::split(&body, "items").unwrap()
    }

    #[test]
    fn each_item_is_decided_on_its_own() {
        let good = record(json!("iv_1")).to_string().into_bytes();
        let numeric = record(json!(12345)).to_string().into_bytes();
        let mut wrong_type = record(json!("iv_3"));
        wrong_type["version"] = json!("three");
        let wrong_type = wrong_type.to_string().into_bytes();
        // invalid UTF-8 (Latin-1 é) in the location of a record with a good id
        let latin1 = {
            let mut v = record(json!("iv_4"));
            v["location"] = json!("cafMARK");
            let text = v.to_string().into_bytes();
            let at = text.windows(4).position(|w| w == b"MARK").unwrap();
            [&text[..at], &[0xE9u8][..], &text[at + 4..]].concat()
        };
        let no_id = {
            let mut v = record(json!(null));
            v.as_object_mut().unwrap().remove("id");
            v.to_string().into_bytes()
        };
        let page = page_of(&[good, numeric, wrong_type, latin1, no_id]);
        let decided: Vec<_> = page.items.iter().map(change_item).collect();
        assert!(matches!(&decided[0], Ok(Ok(iv)) if iv.id == "iv_1"));
        match &decided[1] {
            Err(bad) => {
                assert_eq!(bad.id.as_deref(), Some("12345"));
                assert_eq!(bad.position, 1);
                assert_eq!(bad.hash.len(), 12);
                assert!(bad.reason.contains("not a string"), "{}", bad.reason);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&decided[2], Ok(Err(u)) if u.id == "iv_3"),
            "{:?}",
            decided[2]
        );
        assert!(
            matches!(&decided[3], Ok(Err(u)) if u.id == "iv_4" && u.reason.contains("UTF-8")),
            "{:?}",
            decided[3]
        );
        assert!(
            matches!(&decided[4], Err(bad) if bad.id.is_none() && bad.position == 4),
            "{:?}",
            decided[4]
        );
    }
}
