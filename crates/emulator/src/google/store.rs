//! The event store's two write paths, shared by the API and the admin UI:
//! a new event, and a change to an existing one (or to an instance of a
//! series, which becomes an exception). Validation, guests' rights, the
//! invitation limit, ETags, `sequence` and the change sequence all happen
//! here, so every way of writing obeys them alike.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::invitations::invites_externals;
use super::recurrence;
use super::state::{Json, State, WriteRecord};
use super::validate::{
    changed_fields, check_event, guest_may_write, is_cancelled, normalise_attendees,
    organizer_copy, valid_event_id,
};

/// Fields the server sets; a client's values for them are ignored.
pub(super) const SERVER_FIELDS: &[&str] = &[
    "id",
    "etag",
    "kind",
    "created",
    "updated",
    "htmlLink",
    "iCalUID",
    "sequence",
    "organizer",
    "creator",
    "recurringEventId",
    "originalStartTime",
];

/// Who writes, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct Write<'a> {
    /// The name the write is recorded under (`insert`, `patch`, `ui_edit`...).
    pub(super) method: &'static str,
    pub(super) send_updates: &'a str,
    /// The user acting (the token's subject, or the UI's user).
    pub(super) user: &'a str,
    /// An API call: guests' rights and the invitation limit apply. The
    /// admin UI acts as the calendar's owner in Google's own UI.
    pub(super) by_api: bool,
}

pub(super) fn stamp(body: &mut Map<String, Value>, seq: u64, now: DateTime<Utc>) {
    body.insert(
        "etag".into(),
        json!(format!("\"{}\"", 3_100_000_000_000_000u64 + seq)),
    );
    body.insert("updated".into(), json!(rfc3339(now)));
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl State {
    /// The organizer entry of an event made on `calendar`.
    fn organizer_of(&self, calendar: &str) -> Value {
        let mut o = json!({"email": calendar, "self": true});
        if let Some(c) = self
            .calendars
            .get(calendar)
            .filter(|c| c.summary != calendar)
        {
            o["displayName"] = json!(c.summary);
        }
        o
    }

    /// A new event. `organizer` names someone else's event (an invitation
    /// on this calendar); by default the calendar organizes it.
    pub(super) fn insert_event(
        &mut self,
        calendar: &str,
        body: Json,
        w: Write<'_>,
        organizer: Option<Value>,
    ) -> Result<Json, ApiError> {
        let Value::Object(mut body) = body else {
            return Err(ApiError::bad("The request body must be an event."));
        };
        let id = match body.get("id").and_then(|v| v.as_str()) {
            Some(id) => {
                if !valid_event_id(id) {
                    return Err(ApiError::bad("Invalid resource id value."));
                }
                id.to_string()
            }
            None => {
                let id = format!("emu{:010}", self.next_random_id);
                self.next_random_id += 1;
                id
            }
        };
        let cal = self
            .calendars
            .get(calendar)
            .ok_or_else(ApiError::not_found)?;
        // Ids stay taken after a delete or a move, as Google keeps them.
        if cal.events.contains_key(&id) {
            return Err(ApiError::duplicate());
        }
        for k in SERVER_FIELDS {
            body.remove(*k);
        }
        body.entry("status").or_insert(json!("confirmed"));
        normalise_attendees(&mut body, None, calendar);
        check_event(&body)?;
        if w.by_api && invites_externals(w.send_updates) {
            let n = self.invitations.external_guests(&body, w.user).len();
            let now = self.now();
            self.invitations.charge(w.user, n, now)?;
        }
        let now = self.now();
        let (organizer, creator) = match organizer {
            Some(o) => (o.clone(), o),
            None if w.user == calendar => (
                self.organizer_of(calendar),
                json!({"email": w.user, "self": true}),
            ),
            None => (self.organizer_of(calendar), json!({"email": w.user})),
        };
        body.insert("id".into(), json!(id));
        body.insert("kind".into(), json!("calendar#event"));
        body.insert("created".into(), json!(rfc3339(now)));
        body.insert("iCalUID".into(), json!(format!("{id}@google.com")));
        body.insert(
            "htmlLink".into(),
            json!(format!("https://www.google.com/calendar/event?eid={id}")),
        );
        body.insert("sequence".into(), json!(0));
        body.insert("organizer".into(), organizer);
        body.insert("creator".into(), creator);
        let changed = body.keys().cloned().collect();
        self.put(calendar, &id, body, false);
        self.record(w, calendar, &id, changed);
        self.current(calendar, &id).map(Value::Object)
    }

    /// The event as stored, or an instance of a stored series computed from
    /// it. Moved-away events are gone.
    pub(super) fn current(&self, calendar: &str, id: &str) -> Result<Map<String, Value>, ApiError> {
        if let Some(e) = self.stored(calendar, id) {
            return if e.moved_out {
                Err(ApiError::not_found())
            } else {
                Ok(e.body.clone())
            };
        }
        let (master_id, occ) = recurrence::parse_instance_id(id).ok_or_else(ApiError::not_found)?;
        let master = self
            .stored(calendar, master_id)
            .filter(|m| !m.moved_out && recurrence::is_master(&m.body))
            .ok_or_else(ApiError::not_found)?;
        let until = occ.instant() + chrono::Duration::seconds(1);
        if !recurrence::occurrences(&master.body, until)?.contains(&occ) {
            return Err(ApiError::not_found());
        }
        Ok(recurrence::instance_body(&master.body, occ))
    }

    /// Changes an event (or makes an instance an exception). `edit` gets the
    /// current body and changes it; the rest is the server's.
    pub(super) fn modify(
        &mut self,
        calendar: &str,
        event_id: &str,
        if_match: Option<&str>,
        w: Write<'_>,
        edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), ApiError>,
    ) -> Result<Json, ApiError> {
        let before = self.current(calendar, event_id)?;
        if if_match.is_some_and(|tag| {
            tag != "*" && Some(tag) != before.get("etag").and_then(|e| e.as_str())
        }) {
            return Err(ApiError::precondition_failed());
        }
        let mut after = before.clone();
        edit(&mut after)?;
        for k in SERVER_FIELDS {
            match before.get(*k) {
                Some(v) => after.insert(k.to_string(), v.clone()),
                None => after.remove(*k),
            };
        }
        if after.get("status").is_none_or(|s| s.is_null()) {
            after.insert("status".into(), json!("confirmed"));
        }
        normalise_attendees(&mut after, Some(&before), calendar);
        check_event(&after)?;
        let mut changed = changed_fields(&before, &after);
        if changed.is_empty() {
            // Google answers an empty change with the event as it is.
            return Ok(Value::Object(before));
        }
        if w.by_api && !organizer_copy(&before) && !guest_may_write(&before, &after, calendar) {
            return Err(ApiError::forbidden_for_non_organizer());
        }
        let moved = changed.iter().any(|k| k == "start" || k == "end");
        if moved && self.switches.reset_answers_on_time_change {
            reset_answers(&mut after);
            if !changed.iter().any(|k| k == "attendees")
                && after.get("attendees") != before.get("attendees")
            {
                changed.push("attendees".into());
            }
        }
        // Attendees see a new version when what they see moves.
        if changed
            .iter()
            .any(|k| matches!(k.as_str(), "start" | "end" | "location" | "status"))
        {
            let s = after.get("sequence").and_then(|s| s.as_i64()).unwrap_or(0);
            after.insert("sequence".into(), json!(s + 1));
        }
        if w.by_api && invites_externals(w.send_updates) && !is_cancelled(&after) {
            let new = self.invitations.external_guests(&after, w.user);
            let had = if is_cancelled(&before) {
                Default::default()
            } else {
                self.invitations.external_guests(&before, w.user)
            };
            let now = self.now();
            self.invitations
                .charge(w.user, new.difference(&had).count(), now)?;
        }
        let cancels_series =
            recurrence::is_master(&after) && is_cancelled(&after) && !is_cancelled(&before);
        self.put(calendar, event_id, after, false);
        self.record(w, calendar, event_id, changed);
        if cancels_series {
            self.cancel_exceptions(calendar, event_id);
        }
        self.current(calendar, event_id).map(Value::Object)
    }

    /// Deleting a series deletes its changed instances too.
    fn cancel_exceptions(&mut self, calendar: &str, master_id: &str) {
        let ids: Vec<String> = self
            .calendars
            .get(calendar)
            .map(|c| {
                c.events
                    .values()
                    .filter(|e| {
                        e.body.get("recurringEventId").and_then(|r| r.as_str()) == Some(master_id)
                            && !is_cancelled(&e.body)
                    })
                    .filter_map(|e| {
                        e.body
                            .get("id")
                            .and_then(|i| i.as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            if let Some(mut body) = self.stored(calendar, &id).map(|e| e.body.clone()) {
                body.insert("status".into(), json!("cancelled"));
                self.put(calendar, &id, body, false);
            }
        }
    }

    pub(super) fn record(
        &mut self,
        w: Write<'_>,
        calendar: &str,
        event_id: &str,
        changed: Vec<String>,
    ) {
        self.writes.push(WriteRecord {
            method: w.method,
            calendar: calendar.to_string(),
            event_id: event_id.to_string(),
            send_updates: w.send_updates.to_string(),
            changed,
        });
    }
}

/// Guests answer again after a time change: everyone but the organizer and
/// rooms goes back to `needsAction`.
fn reset_answers(body: &mut Map<String, Value>) {
    let Some(list) = body.get_mut("attendees").and_then(|a| a.as_array_mut()) else {
        return;
    };
    for a in list {
        let keeps = a
            .get("organizer")
            .and_then(|o| o.as_bool())
            .unwrap_or(false)
            || a.get("resource").and_then(|r| r.as_bool()).unwrap_or(false);
        if !keeps {
            a["responseStatus"] = json!("needsAction");
        }
    }
}
