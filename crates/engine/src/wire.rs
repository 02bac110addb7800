//! Decisions in the two APIs' words: event bodies for the Calendar API and
//! PATCH bodies for HITO-Link.

use serde_json::{Value, json};

use hitosync_core::reconcile::{CalendarWrite, EventBody, InterviewPatch};
use hitosync_google::client::{api_attendees, api_time};
use hitosync_google::{NewEvent, SendUpdates};

/// The PATCH body and whom it notifies, for every write but a create.
pub fn patch_for(write: &CalendarWrite) -> Option<(Value, SendUpdates)> {
    Some(match write {
        CalendarWrite::Create(_) => return None,
        CalendarWrite::Update { body, notify } => (
            event_patch(body, None),
            if *notify {
                SendUpdates::All
            } else {
                SendUpdates::None
            },
        ),
        CalendarWrite::Cancel { body } => (event_patch(body, Some("cancelled")), SendUpdates::All),
        CalendarWrite::Restore { body } => (event_patch(body, Some("confirmed")), SendUpdates::All),
        CalendarWrite::Stamp { body } => (event_patch(body, None), SendUpdates::None),
    })
}

/// A Calendar PATCH body; `status` is set for cancellations and restores.
pub fn event_patch(body: &EventBody, status: Option<&str>) -> Value {
    let mut v = json!({});
    if let Some(s) = status {
        v["status"] = json!(s);
    }
    if let Some(s) = &body.summary {
        v["summary"] = json!(s);
    }
    if let Some(d) = &body.description {
        v["description"] = json!(d);
    }
    if let Some(l) = &body.location {
        // null clears the place
        v["location"] = l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
    }
    if let Some(slot) = body.slot {
        let zone = body.time_zone.as_deref().unwrap_or("Asia/Tokyo");
        v["start"] = api_time(slot.start, zone);
        v["end"] = api_time(slot.end, zone);
    }
    if let Some(a) = &body.attendees {
        v["attendees"] = api_attendees(a);
    }
    if !body.private.is_empty() {
        v["extendedProperties"] = json!({"private": body.private});
    }
    v
}

/// The insert form of a full body; `None` when the body lacks what an event
/// needs (a time), which `reconcile` never plans.
pub fn new_event(id: &str, body: &EventBody) -> Option<NewEvent> {
    Some(NewEvent {
        id: id.to_string(),
        summary: body.summary.clone().unwrap_or_default(),
        description: body.description.clone(),
        location: body.location.clone().flatten(),
        slot: body.slot?,
        time_zone: body
            .time_zone
            .clone()
            .unwrap_or_else(|| "Asia/Tokyo".into()),
        attendees: body.attendees.clone().unwrap_or_default(),
        private_properties: body.private.clone(),
    })
}

/// A HITO-Link PATCH body.
pub fn interview_patch(p: &InterviewPatch) -> Value {
    let t = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut v = json!({});
    if let Some(slot) = p.slot {
        v["start"] = json!(t(slot.start));
        v["end"] = json!(t(slot.end));
    }
    if let Some(l) = &p.location {
        v["location"] = l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
    }
    if let Some(l) = &p.link {
        v["video_conferencing_url"] = l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
    }
    if let Some(s) = p.status {
        v["status"] = json!(s.as_str());
    }
    if !p.responses.is_empty() {
        v["interviewers"] = Value::Array(
            p.responses
                .iter()
                .map(|(id, r)| json!({"id": id, "response_status": r.hitolink()}))
                .collect(),
        );
    }
    if let Some(e) = &p.external_event_id {
        v["external_event_id"] = json!(e);
    }
    v
}
