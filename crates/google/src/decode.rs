//! Events as the Calendar API sends them, decoded one by one: an event
//! that does not decode is reported with its id (when it has one) and never
//! fails the rest of its page.

use google_calendar3::api::Event;
use serde_json::Value;

use hitosync_core::model::{
    Attendee, CalendarEvent, EventStatus, Organizer, Response, Slot, UnreadableItem,
};
use hitosync_net::page::RawItem;

use super::error::GoogleError;

/// One event of a listing page, decoded on its own.
pub(crate) fn decode_event(item: &RawItem) -> Result<CalendarEvent, UnreadableItem> {
    let unreadable = |reason: String| {
        UnreadableItem::new(item.id_text(), item.position, item.text.as_bytes(), reason)
    };
    if item.damaged {
        return Err(unreadable(
            "the event holds bytes that are not UTF-8 text".into(),
        ));
    }
    let ev = event_value(item.value.clone()).map_err(unreadable)?;
    event_from_api(ev).map_err(|e| unreadable(e.to_string()))
}

/// One event answered alone (get, insert, patch).
pub(crate) fn decode_one(bytes: &[u8], id: &str) -> Result<CalendarEvent, GoogleError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| GoogleError::Protocol(format!("event {id}: an undecodable answer: {e}")))?;
    let ev = event_value(value)
        .map_err(|reason| GoogleError::Protocol(format!("event {id} cannot be read: {reason}")))?;
    event_from_api(ev)
}

/// google-calendar3's `Event` from JSON. A `dateTime` without an offset is
/// valid when `timeZone` names the zone (Calendar API v3, `EventDateTime`:
/// "A time zone offset is required unless a time zone is explicitly
/// specified in timeZone"), which chrono's decoding does not accept: such
/// times are placed in their zone first.
fn event_value(mut value: Value) -> Result<Event, String> {
    match serde_json::from_value::<Event>(value.clone()) {
        Ok(ev) => Ok(ev),
        Err(first) => {
            let mut placed = false;
            for key in ["start", "end", "originalStartTime"] {
                if let Some(t) = value.get_mut(key) {
                    placed |= place_local_time(t).map_err(|why| format!("`{key}`: {why}"))?;
                }
            }
            if !placed {
                return Err(first.to_string());
            }
            serde_json::from_value::<Event>(value).map_err(|e| e.to_string())
        }
    }
}

/// Rewrites `{"dateTime": "2026-12-01T10:00:00", "timeZone": "Asia/Tokyo"}`
/// with the zone's offset. `Ok(true)` when it changed something.
fn place_local_time(t: &mut Value) -> Result<bool, String> {
    let Some(text) = t.get("dateTime").and_then(Value::as_str) else {
        return Ok(false);
    };
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(false);
    }
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| format!("`dateTime` {text:?} is not an RFC 3339 time"))?;
    let zone = t
        .get("timeZone")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`dateTime` {text:?} has no UTC offset and no `timeZone`"))?;
    let tz: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| format!("`timeZone` {zone:?} is not an IANA zone"))?;
    let placed = local
        .and_local_timezone(tz)
        .earliest()
        .ok_or_else(|| format!("`dateTime` {text:?} does not exist in {zone}"))?;
    t["dateTime"] = Value::from(placed.to_rfc3339());
    Ok(true)
}

/// The API's event in hitosync's terms. An event without an ID or ETag is
/// not something the API sends; treat it as a protocol error, not a panic.
pub fn event_from_api(ev: Event) -> Result<CalendarEvent, GoogleError> {
    let id = ev
        .id
        .ok_or_else(|| GoogleError::Protocol("an event without an id".into()))?;
    let slot = match (
        ev.start.as_ref().and_then(|s| s.date_time),
        ev.end.as_ref().and_then(|e| e.date_time),
    ) {
        (Some(start), Some(end)) => Some(Slot { start, end }),
        _ => None,
    };
    let all_day = ev.start.as_ref().is_some_and(|s| s.date.is_some());
    let attendees = ev
        .attendees
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            Some(Attendee {
                email: a.email?.to_ascii_lowercase(),
                display_name: a.display_name,
                response: a
                    .response_status
                    .as_deref()
                    .and_then(Response::from_google)
                    .unwrap_or(Response::NeedsAction),
                organizer: a.organizer.unwrap_or(false),
                resource: a.resource.unwrap_or(false),
                is_self: a.self_.unwrap_or(false),
            })
        })
        .collect();
    Ok(CalendarEvent {
        etag: ev.etag.unwrap_or_default(),
        status: EventStatus::parse(ev.status.as_deref().unwrap_or("confirmed")),
        summary: ev.summary,
        description: ev.description,
        location: ev.location,
        slot,
        time_zone: ev.start.and_then(|s| s.time_zone),
        attendees,
        private_properties: ev
            .extended_properties
            .and_then(|p| p.private)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        sequence: ev.sequence.unwrap_or(0) as i64,
        updated: ev.updated,
        created: ev.created,
        organizer: ev.organizer.map(|o| Organizer {
            email: o.email.map(|e| e.to_ascii_lowercase()),
            is_self: o.self_.unwrap_or(false),
        }),
        all_day,
        recurring: ev.recurrence.is_some_and(|r| !r.is_empty()),
        recurring_event_id: ev.recurring_event_id,
        id: id.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitosync_net::page;
    use serde_json::json;

    fn event(id: Value) -> Value {
        json!({
            "id": id, "etag": "\"1\"", "status": "confirmed", "summary": "x",
            "start": {"dateTime": "2026-12-01T10:00:00+09:00", "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": "2026-12-01T11:00:00+09:00", "timeZone": "Asia/Tokyo"}
        })
    }

    #[test]
    fn each_event_is_decoded_on_its_own() {
        let mut no_id = event(json!(null));
        no_id.as_object_mut().unwrap().remove("id");
        let mut wrong_type = event(json!("ev2"));
        wrong_type["summary"] = json!(5);
        let mut local = event(json!("ev3"));
        local["start"]["dateTime"] = json!("2026-12-01T10:00:00");
        local["end"]["dateTime"] = json!("2026-12-01T11:00:00");
        let mut unplaceable = event(json!("ev4"));
        unplaceable["start"] = json!({"dateTime": "2026-12-01T10:00:00"});
        let items = json!([event(json!("ev1")), no_id, wrong_type, local, unplaceable]);
        let body = json!({"items": items, "nextSyncToken": "s"}).to_string();
        let page = page::split(body.as_bytes(), "items").unwrap();
        let decoded: Vec<_> = page.items.iter().map(decode_event).collect();
        assert_eq!(decoded[0].as_ref().unwrap().id, "ev1");
        let bad = decoded[1].as_ref().unwrap_err();
        assert_eq!((bad.id.as_deref(), bad.position), (None, 1));
        let bad = decoded[2].as_ref().unwrap_err();
        assert_eq!(bad.id.as_deref(), Some("ev2"));
        // a local time with its zone is placed in it: 10:00 in Tokyo is 01:00 UTC
        let placed = decoded[3].as_ref().unwrap();
        assert_eq!(
            placed.slot.unwrap().start.to_rfc3339(),
            "2026-12-01T01:00:00+00:00"
        );
        let bad = decoded[4].as_ref().unwrap_err();
        assert_eq!(bad.id.as_deref(), Some("ev4"));
        assert!(bad.reason.contains("no UTC offset"), "{}", bad.reason);
    }
}
