//! Admin: a person in the Calendar UI (the organizer, a colleague who
//! invites the organizer, a guest answering), and the test harness
//! (switches, the clock, calendars, counters). Faults are in `gate`.
//!
//! UI writes go through the same store as API writes (same validation,
//! ETags, change sequence), acting as the calendar's owner in Google's own
//! UI: no guest restrictions, no invitation limit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::ApiError;
use super::html;
use super::invitations::InvitationLimit;
use super::state::{GoogleEmulator, Json, Switches, WriteRecord};
use super::store::Write;
use super::validate::{merge, organizer_copy};

fn ui<'a>(method: &'static str, send_updates: &'a str, user: &'a str) -> Write<'a> {
    Write {
        method,
        send_updates,
        user,
        by_api: false,
    }
}

fn email_eq(a: &Value, email: &str) -> bool {
    a.get("email")
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(email))
}

/// What Google's UI adds to a guest list: the organizer itself, first and
/// accepted (Events resource, `organizer`: "If the organizer is also an
/// attendee, this is indicated with a separate entry in attendees with the
/// organizer field set to True"), and rooms that accept when booked free.
fn ui_guests(body: &mut Value, organizer: &str) {
    let Some(list) = body.get_mut("attendees").and_then(|a| a.as_array_mut()) else {
        return;
    };
    if list.is_empty() {
        return;
    }
    for a in list.iter_mut() {
        if a.get("resource").and_then(|r| r.as_bool()).unwrap_or(false)
            && a.get("responseStatus").is_none()
        {
            a["responseStatus"] = json!("accepted");
        }
    }
    match list.iter_mut().find(|a| email_eq(a, organizer)) {
        Some(me) => me["organizer"] = json!(true),
        None => list.insert(
            0,
            json!({"email": organizer, "organizer": true, "responseStatus": "accepted"}),
        ),
    }
}

impl GoogleEmulator {
    /// The organizer creates an event in the UI (a random ID, no extended
    /// properties unless given; with guests, the organizer is one of them).
    pub fn ui_create(&self, owner: &str, mut body: Json) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let mut st = self.state.lock();
        let id = format!("ui{:08}abc", st.next_random_id);
        st.next_random_id += 1;
        if body.get("id").is_none() {
            body["id"] = json!(id);
        }
        if st.switches.html_descriptions {
            if let Some(d) = body.get("description").and_then(|d| d.as_str()) {
                body["description"] = json!(html::as_web_editor_saves(d));
            }
        }
        ui_guests(&mut body, &owner);
        st.insert_event(&owner, body, ui("ui_create", "all", &owner), None)
    }

    /// The organizer edits an event in the UI (move, place, title, ...).
    pub fn ui_edit(&self, owner: &str, event_id: &str, mut fields: Json) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let mut st = self.state.lock();
        if st.switches.html_descriptions {
            if let Some(d) = fields.get("description").and_then(|d| d.as_str()) {
                fields["description"] = json!(html::as_web_editor_saves(d));
            }
        }
        let organizer = st
            .current(&owner, event_id)
            .is_ok_and(|b| organizer_copy(&b));
        if organizer {
            ui_guests(&mut fields, &owner);
        }
        st.modify(
            &owner,
            event_id,
            None,
            ui("ui_edit", "all", &owner),
            |stored| merge(stored, fields),
        )
    }

    /// The organizer deletes an event in the UI.
    pub fn ui_delete(&self, owner: &str, event_id: &str) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let mut st = self.state.lock();
        st.modify(
            &owner,
            event_id,
            None,
            ui("ui_delete", "all", &owner),
            |stored| {
                stored.insert("status".into(), json!("cancelled"));
                Ok(())
            },
        )
    }

    /// The organizer opens the event in the browser and saves it: the
    /// description comes back as the web editor stores it (see `html`).
    pub fn web_editor_roundtrip(&self, owner: &str, event_id: &str) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let mut st = self.state.lock();
        st.modify(
            &owner,
            event_id,
            None,
            ui("ui_edit", "none", &owner),
            |stored| {
                if let Some(d) = stored.get("description").and_then(|d| d.as_str()) {
                    let html = html::as_web_editor_saves(d);
                    stored.insert("description".into(), json!(html));
                }
                Ok(())
            },
        )
    }

    /// A colleague (`body.organizer`, an address or `{email,
    /// displayName}`) invites the calendar's user: the event lands on the
    /// user's calendar as a guest's copy, organized by someone else.
    pub fn ui_invite(&self, owner: &str, mut body: Json) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let organizer = match body.get("organizer") {
            Some(Value::String(e)) => json!({"email": e.to_ascii_lowercase()}),
            Some(Value::Object(o)) if o.get("email").is_some_and(|e| e.is_string()) => {
                let mut o = o.clone();
                o.remove("self");
                Value::Object(o)
            }
            _ => return Err(ApiError::bad("An invitation needs organizer.email.")),
        };
        let from = organizer["email"].as_str().unwrap_or_default().to_string();
        if from == owner {
            return Err(ApiError::bad(
                "The organizer of an invitation is someone else.",
            ));
        }
        let mut st = self.state.lock();
        if body.get("id").is_none() {
            body["id"] = json!(format!("inv{:08}abc", st.next_random_id));
            st.next_random_id += 1;
        }
        let list = body
            .get("attendees")
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default();
        let mut guests = list.clone();
        if !list.iter().any(|a| email_eq(a, &from)) {
            guests.insert(
                0,
                json!({"email": from, "organizer": true, "responseStatus": "accepted"}),
            );
        }
        if !list.iter().any(|a| email_eq(a, &owner)) {
            guests.push(json!({"email": owner}));
        }
        body["attendees"] = Value::Array(guests);
        st.insert_event(&owner, body, ui("ui_invite", "all", &from), Some(organizer))
    }

    /// The organizer moves an event to another calendar in the UI
    /// ("Change owner"), as `events.move` does.
    pub fn ui_move(
        &self,
        owner: &str,
        event_id: &str,
        destination: &str,
    ) -> Result<Json, ApiError> {
        let owner = owner.to_ascii_lowercase();
        let destination = destination.to_ascii_lowercase();
        let mut st = self.state.lock();
        if !st.calendars.contains_key(&destination) {
            return Err(ApiError::not_found());
        }
        st.move_between(&owner, event_id, &destination, ui("ui_move", "all", &owner))
    }

    /// A guest answers the invitation; the organizer's copy records it.
    pub fn guest_reply(
        &self,
        owner: &str,
        event_id: &str,
        guest: &str,
        response: &str,
    ) -> Result<Json, ApiError> {
        if !matches!(
            response,
            "needsAction" | "accepted" | "tentative" | "declined"
        ) {
            return Err(ApiError::bad("Invalid responseStatus"));
        }
        let guest = guest.to_ascii_lowercase();
        let owner = owner.to_ascii_lowercase();
        let mut st = self.state.lock();
        st.modify(
            &owner,
            event_id,
            None,
            ui("guest_reply", "none", &owner),
            |stored| {
                let attendees = stored
                    .get_mut("attendees")
                    .and_then(|a| a.as_array_mut())
                    .ok_or_else(|| ApiError::bad("The event has no attendees"))?;
                let a = attendees
                    .iter_mut()
                    .find(|a| email_eq(a, &guest))
                    .ok_or_else(|| ApiError::bad("That guest is not invited"))?;
                a["responseStatus"] = json!(response);
                Ok(())
            },
        )
    }

    /// A secondary calendar (`id` like `team@group.calendar.google.com`)
    /// that `writers` may write to, as a destination for moves.
    pub fn add_calendar(&self, id: &str, summary: &str, writers: &[String]) {
        let mut st = self.state.lock();
        let cal = st.calendars.entry(id.to_ascii_lowercase()).or_default();
        cal.summary = summary.to_string();
        cal.writers
            .extend(writers.iter().map(|w| w.to_ascii_lowercase()));
    }

    /// Every sync and page token issued so far stops working (`410`).
    pub fn invalidate_sync_tokens(&self) {
        self.state.lock().token_epoch += 1;
    }

    pub fn switches(&self) -> Switches {
        self.state.lock().switches.clone()
    }

    /// Sets the behaviour switches. Page sizes must let a listing end.
    pub fn set_switches(&self, switches: Switches) -> Result<(), String> {
        if switches
            .page_sizes
            .as_ref()
            .is_some_and(|sizes| !sizes.iter().any(|n| *n > 0))
        {
            return Err("page_sizes needs a size above 0, or a listing never ends".into());
        }
        self.state.lock().switches = switches;
        Ok(())
    }

    /// Sets (or, with `None`, lifts) the limit on external invitations;
    /// the count starts again.
    pub fn set_invitation_limit(&self, limit: Option<InvitationLimit>) {
        self.state.lock().invitations.set(limit);
    }

    /// External invitations `user` sent within the current window.
    pub fn invitations_sent(&self, user: &str) -> usize {
        let st = self.state.lock();
        st.invitations.sent(&user.to_ascii_lowercase(), st.now())
    }

    /// The emulator's clock (event stamps, the invitation window).
    pub fn clock(&self) -> DateTime<Utc> {
        self.state.lock().now()
    }

    /// Lets time pass at once (negative goes back).
    pub fn advance_clock(&self, secs: i64) {
        self.state.lock().clock_offset += chrono::Duration::seconds(secs);
    }

    /// Requests per call name (`events.list`, `events.patch`, `token`, ...).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.state.lock().counters.clone()
    }

    pub fn reset_counters(&self) {
        let mut st = self.state.lock();
        st.counters.clear();
        st.writes.clear();
    }

    /// The writes made so far, with whom they notified.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.state.lock().writes.clone()
    }

    /// Every event of a calendar, tombstones included (for assertions).
    /// Whether `owner`'s calendar holds a live (not cancelled) event `id`;
    /// for watching a benchmark without copying the calendar.
    pub fn has_live_event(&self, owner: &str, id: &str) -> bool {
        self.state
            .lock()
            .calendars
            .get(&owner.to_ascii_lowercase())
            .and_then(|c| c.events.get(id))
            .is_some_and(|e| e.body.get("status").and_then(|s| s.as_str()) != Some("cancelled"))
    }

    /// How many events `owner`'s calendar holds (tombstones included).
    pub fn event_count(&self, owner: &str) -> usize {
        self.state
            .lock()
            .calendars
            .get(&owner.to_ascii_lowercase())
            .map(|c| c.events.len())
            .unwrap_or(0)
    }

    pub fn events(&self, owner: &str) -> Vec<Json> {
        self.state
            .lock()
            .calendars
            .get(&owner.to_ascii_lowercase())
            .map(|c| {
                c.events
                    .values()
                    .map(|e| Value::Object(e.body.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
