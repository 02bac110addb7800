//! hitosync's plans in the Calendar API's words. Every event body hitosync
//! sends is built here: the insert (as google-calendar3's typed `Event`)
//! and the PATCH bodies (JSON, because google-calendar3 cannot send
//! `If-Match`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use google_calendar3::api::{Event, EventAttendee, EventDateTime, EventExtendedProperties};
use serde_json::{Value, json};

use hitosync_core::model::{Attendee, EventStatus};
use hitosync_core::reconcile::{EventChange, EventDraft, Notify};

/// The `sendUpdates` word for whom a write tells.
pub fn send_updates(notify: Notify) -> &'static str {
    match notify {
        Notify::Attendees => "all",
        Notify::Nobody => "none",
    }
}

/// The new event of an insert.
pub fn insert_body(event_id: &str, draft: &EventDraft) -> Event {
    let time = |t: DateTime<Utc>| EventDateTime {
        date_time: Some(t),
        time_zone: Some(draft.time_zone.clone()),
        date: None,
    };
    Event {
        id: Some(event_id.to_string()),
        summary: Some(draft.summary.clone()),
        description: Some(draft.description.clone()),
        location: draft.location.clone(),
        start: Some(time(draft.slot.start)),
        end: Some(time(draft.slot.end)),
        attendees: Some(
            draft
                .attendees
                .iter()
                .map(|a| EventAttendee {
                    email: Some(a.email.clone()),
                    display_name: a.display_name.clone(),
                    response_status: Some(a.response.google().to_string()),
                    resource: a.resource.then_some(true),
                    ..Default::default()
                })
                .collect(),
        ),
        extended_properties: Some(EventExtendedProperties {
            private: Some(draft.private.clone().into_iter().collect::<HashMap<_, _>>()),
            shared: None,
        }),
        ..Default::default()
    }
}

/// A PATCH body: `status` set for cancellations and restores.
///
/// Google's patch merges objects field by field and replaces arrays whole
/// (Calendar API, "Performance tips: patch"). So a time is sent with
/// `date: null`, which clears the date an all-day event had, and the
/// attendee list is always sent whole.
pub fn patch_body(status: Option<EventStatus>, change: &EventChange) -> Value {
    let mut v = json!({});
    if let Some(s) = status {
        v["status"] = json!(s.google());
    }
    if let Some(s) = &change.summary {
        v["summary"] = json!(s);
    }
    if let Some(d) = &change.description {
        v["description"] = json!(d);
    }
    if let Some(l) = &change.location {
        // null clears the place
        v["location"] = l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
    }
    if let Some((slot, zone)) = &change.time {
        v["start"] = time(slot.start, zone);
        v["end"] = time(slot.end, zone);
    }
    if change.single {
        v["recurrence"] = json!([]);
    }
    if let Some(a) = &change.attendees {
        v["attendees"] = attendees(a);
    }
    if !change.private.is_empty() {
        v["extendedProperties"] = json!({"private": change.private});
    }
    v
}

fn time(t: DateTime<Utc>, zone: &str) -> Value {
    json!({
        "dateTime": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "timeZone": zone,
        "date": null,
    })
}

fn attendees(attendees: &[Attendee]) -> Value {
    Value::Array(
        attendees
            .iter()
            .map(|a| {
                let mut v = json!({"email": a.email, "responseStatus": a.response.google()});
                if let Some(name) = &a.display_name {
                    v["displayName"] = Value::from(name.as_str());
                }
                if a.resource {
                    v["resource"] = Value::Bool(true);
                }
                if a.organizer {
                    v["organizer"] = Value::Bool(true);
                }
                v
            })
            .collect(),
    )
}
