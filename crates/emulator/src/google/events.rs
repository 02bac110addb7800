//! The documented event methods: get, insert, patch, update, delete, move.
//! Each write passes the after-apply fault hook once it was applied.

use serde_json::{Value, json};

use super::error::ApiError;
use super::recurrence;
use super::state::{GoogleEmulator, Json, Principal, State};
use super::store::{SERVER_FIELDS, Write};
use super::validate::{is_cancelled, merge, organizer_copy};

/// `sendUpdates`: "all", "externalOnly" or "none" (the default), as the
/// reference lists them; anything else is a `400 invalidParameter`.
pub(super) fn send_updates(value: Option<&str>) -> Result<&str, ApiError> {
    match value {
        None => Ok("none"),
        Some(v @ ("all" | "externalOnly" | "none")) => Ok(v),
        Some(v) => Err(ApiError::invalid_parameter(
            "sendUpdates",
            v,
            "(all|externalOnly|none)",
        )),
    }
}

fn subject(who: &Principal) -> &str {
    who.subject.as_deref().unwrap_or_default()
}

fn api<'a>(method: &'static str, send_updates: &'a str, user: &'a str) -> Write<'a> {
    Write {
        method,
        send_updates,
        user,
        by_api: true,
    }
}

impl GoogleEmulator {
    /// `events.get`: a stored event (a cancelled one too), or an instance of
    /// a series by its instance id.
    pub fn get(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
    ) -> Result<Json, ApiError> {
        let st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        st.current(&cal, event_id).map(Value::Object)
    }

    pub fn insert(
        &self,
        who: &Principal,
        calendar_id: &str,
        body: Json,
        send_updates_param: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        let send = send_updates(send_updates_param)?;
        let out = st.insert_event(&cal, body, api("insert", send, subject(who)), None)?;
        st.after_apply("events.insert", out)
    }

    /// PATCH: patch semantics (`validate::merge`). On an instance id the
    /// instance becomes an exception.
    pub fn patch(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        body: Json,
        if_match: Option<&str>,
        send_updates_param: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        let send = send_updates(send_updates_param)?;
        let out = st.modify(
            &cal,
            event_id,
            if_match,
            api("patch", send, subject(who)),
            |stored| merge(stored, body),
        )?;
        st.after_apply("events.patch", out)
    }

    /// PUT: the body replaces the event, except what the server owns.
    pub fn update(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        body: Json,
        if_match: Option<&str>,
        send_updates_param: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        let send = send_updates(send_updates_param)?;
        let out = st.modify(
            &cal,
            event_id,
            if_match,
            api("update", send, subject(who)),
            |stored| {
                let Value::Object(new) = body else {
                    return Err(ApiError::bad("The request body must be an event."));
                };
                let keep: Vec<(String, Value)> = SERVER_FIELDS
                    .iter()
                    .filter_map(|k| stored.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                *stored = new;
                for (k, v) in keep {
                    stored.insert(k, v);
                }
                Ok(())
            },
        )?;
        st.after_apply("events.update", out)
    }

    /// DELETE: the event becomes a tombstone; deleting it again is `410`.
    /// On a guest's copy it removes the event from this calendar and
    /// declines (what the Calendar UI does when a guest deletes an
    /// invitation).
    pub fn delete(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        if_match: Option<&str>,
        send_updates_param: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        let send = send_updates(send_updates_param)?;
        let current = st.current(&cal, event_id)?;
        if is_cancelled(&current) {
            return Err(ApiError::deleted());
        }
        let guest = !organizer_copy(&current);
        let mut w = api("delete", send, subject(who));
        // A guest deleting its copy changes no shared property.
        w.by_api = !guest;
        let me = cal.clone();
        st.modify(&cal, event_id, if_match, w, move |stored| {
            stored.insert("status".into(), json!("cancelled"));
            let list = stored
                .get_mut("attendees")
                .and_then(|a| a.as_array_mut())
                .filter(|_| guest);
            if let Some(list) = list {
                for a in list {
                    if a.get("email")
                        .and_then(|e| e.as_str())
                        .map(str::to_ascii_lowercase)
                        == Some(me.clone())
                    {
                        a["responseStatus"] = json!("declined");
                    }
                }
            }
            Ok(())
        })?;
        st.after_apply("events.delete", ())
    }

    /// `POST .../events/{id}/move?destination=...` ("Events: move"): the
    /// event changes organizer to the destination calendar. The source
    /// calendar keeps only a tombstone, which its incremental sync shows as
    /// `cancelled` with nothing but the id guaranteed.
    pub fn move_event(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        destination: &str,
        send_updates_param: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = self.state.lock();
        let cal = st.resolve(who, calendar_id)?;
        let send = send_updates(send_updates_param)?;
        if destination.is_empty() {
            return Err(ApiError::required("Required parameter: destination"));
        }
        let dest = st.resolve(who, destination)?;
        let out = st.move_between(&cal, event_id, &dest, api("move", send, subject(who)))?;
        st.after_apply("events.move", out)
    }
}

impl State {
    /// Moves an event (a series with its exceptions) from one calendar to
    /// another; shared by the API and the admin UI.
    pub(super) fn move_between(
        &mut self,
        from: &str,
        event_id: &str,
        to: &str,
        w: Write<'_>,
    ) -> Result<Json, ApiError> {
        let stored = self
            .stored(from, event_id)
            .filter(|e| !e.moved_out)
            .map(|e| e.body.clone());
        let Some(body) = stored else {
            // An instance can only move with its series.
            return Err(
                if recurrence::parse_instance_id(event_id).is_some()
                    && self.current(from, event_id).is_ok()
                {
                    ApiError::bad_reason(
                        "cannotChangeOrganizerOfInstance",
                        "Cannot change the organizer of an instance.",
                    )
                } else {
                    ApiError::not_found()
                },
            );
        };
        if body.contains_key("recurringEventId") {
            return Err(ApiError::bad_reason(
                "cannotChangeOrganizerOfInstance",
                "Cannot change the organizer of an instance.",
            ));
        }
        if w.by_api && !organizer_copy(&body) {
            return Err(ApiError::forbidden_for_non_organizer());
        }
        if is_cancelled(&body) {
            return Err(ApiError::deleted());
        }
        if from == to {
            return Ok(Value::Object(body));
        }
        if self
            .calendars
            .get(to)
            .is_some_and(|c| c.events.contains_key(event_id))
        {
            return Err(ApiError::duplicate());
        }
        let mut ids = vec![event_id.to_string()];
        if let Some(c) = self.calendars.get(from) {
            ids.extend(
                c.events
                    .values()
                    .filter(|e| {
                        !e.moved_out
                            && e.body.get("recurringEventId").and_then(|r| r.as_str())
                                == Some(event_id)
                    })
                    .filter_map(|e| {
                        e.body
                            .get("id")
                            .and_then(|i| i.as_str())
                            .map(str::to_string)
                    }),
            );
        }
        let organizer = {
            let mut o = json!({"email": to, "self": true});
            if let Some(c) = self.calendars.get(to).filter(|c| c.summary != to) {
                o["displayName"] = json!(c.summary);
            }
            o
        };
        for id in &ids {
            let Some(mut moved) = self.stored(from, id).map(|e| e.body.clone()) else {
                continue;
            };
            let gone = recurrence::tombstone(&moved);
            moved.insert("organizer".into(), organizer.clone());
            self.put(to, id, moved, false);
            self.put(from, id, gone, true);
        }
        self.record(w, from, event_id, vec!["organizer".into()]);
        self.current(to, event_id).map(Value::Object)
    }
}
