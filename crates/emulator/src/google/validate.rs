//! What a written event must look like (Google's 400s), patch semantics,
//! attendees' defaults, and what a guest may change on its copy.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::state::Json;

pub(super) const STATUSES: &[&str] = &["confirmed", "tentative", "cancelled"];
const RESPONSES: &[&str] = &["needsAction", "declined", "tentative", "accepted"];

/// Google's rule for client-chosen IDs: base32hex characters (a-v, 0-9),
/// 5 to 1024 of them.
pub fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'))
}

/// Patch semantics ("Events: patch", and the Calendar API's "Performance
/// tips", patch): the fields sent replace the stored ones; objects merge
/// key by key (so `start: {dateTime}` keeps the stored `timeZone`), arrays
/// replace the stored array whole, `null` clears. Merging is also why a
/// patch that turns an all-day event into a timed one must send
/// `"date": null`: otherwise the result has both `date` and `dateTime`,
/// which Google refuses.
pub(super) fn merge(target: &mut Map<String, Value>, patch: Json) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad("The request body must be an event."));
    };
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(sub) => {
                let entry = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(existing) => merge(existing, Value::Object(sub))?,
                    other => *other = Value::Object(sub),
                }
            }
            other => {
                target.insert(k, other);
            }
        }
    }
    Ok(())
}

/// A start or end as an instant (`date` as midnight UTC), and whether it is
/// a date.
fn time_of(
    body: &Map<String, Value>,
    key: &str,
) -> Result<Option<(DateTime<Utc>, bool)>, ApiError> {
    let Some(t) = body.get(key) else {
        return Ok(None);
    };
    let Some(t) = t.as_object() else {
        return Err(ApiError::bad(&format!("Invalid {key} time.")));
    };
    let zone = match t.get("timeZone") {
        None | Some(Value::Null) => None,
        Some(z) => Some(
            z.as_str()
                .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
                .ok_or_else(|| {
                    ApiError::bad(&format!("Invalid time zone definition for {key} time."))
                })?,
        ),
    };
    let date = t.get("date").filter(|d| !d.is_null());
    let date_time = t.get("dateTime").filter(|d| !d.is_null());
    match (date, date_time) {
        (Some(_), Some(_)) => Err(ApiError::bad(&format!("Invalid {key} time."))),
        (None, None) => Err(ApiError::required(&format!("Missing {key} time."))),
        (Some(d), None) => d
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| Some((n.and_utc(), true)))
            .ok_or_else(|| ApiError::bad(&format!("Invalid {key} date."))),
        (None, Some(dt)) => {
            let s = dt
                .as_str()
                .ok_or_else(|| ApiError::bad(&format!("Invalid {key} time.")))?;
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(Some((t.with_timezone(&Utc), false)));
            }
            // "A time zone offset is required unless a time zone is
            // explicitly specified in timeZone."
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .map_err(|_| ApiError::bad(&format!("Invalid {key} time.")))?;
            let zone = zone.ok_or_else(|| {
                ApiError::bad(&format!("Missing time zone definition for {key} time."))
            })?;
            zone.from_local_datetime(&naive)
                .earliest()
                .map(|t| Some((t.with_timezone(&Utc), false)))
                .ok_or_else(|| ApiError::bad(&format!("Invalid {key} time.")))
        }
    }
}

pub(super) fn event_start(body: &Map<String, Value>) -> Option<DateTime<Utc>> {
    time_of(body, "start").ok().flatten().map(|(t, _)| t)
}

pub(super) fn event_end(body: &Map<String, Value>) -> Option<DateTime<Utc>> {
    time_of(body, "end").ok().flatten().map(|(t, _)| t)
}

pub(super) fn status(body: &Map<String, Value>) -> &str {
    body.get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("confirmed")
}

pub(super) fn is_cancelled(body: &Map<String, Value>) -> bool {
    status(body) == "cancelled"
}

/// A plausible mailbox: one `@`, something on both sides, a dot in the
/// domain, no spaces. Google's own check is not documented; these are the
/// addresses it is seen to refuse.
pub(super) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
}

fn check_attendees(body: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(list) = body.get("attendees") else {
        return Ok(());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::bad("Invalid value for: attendees"))?;
    for a in list {
        let email = a.get("email").and_then(|e| e.as_str()).unwrap_or_default();
        if !valid_email(email) {
            return Err(ApiError::bad("Invalid attendee email."));
        }
        if a.get("responseStatus")
            .is_some_and(|r| !r.as_str().is_some_and(|r| RESPONSES.contains(&r)))
        {
            return Err(ApiError::bad("Invalid attendee responseStatus."));
        }
    }
    Ok(())
}

/// Everything Google checks on an event it is about to store.
pub(super) fn check_event(body: &Map<String, Value>) -> Result<(), ApiError> {
    if !body
        .get("status")
        .and_then(|s| s.as_str())
        .is_some_and(|s| STATUSES.contains(&s))
    {
        return Err(ApiError::bad("Invalid value for: status"));
    }
    check_attendees(body)?;
    if is_cancelled(body) && !body.contains_key("start") {
        return Ok(());
    }
    let (start, start_is_date) =
        time_of(body, "start")?.ok_or_else(|| ApiError::required("Missing start time."))?;
    let (end, end_is_date) =
        time_of(body, "end")?.ok_or_else(|| ApiError::required("Missing end time."))?;
    if start_is_date != end_is_date {
        return Err(ApiError::bad(
            "Start and end times must either both be date or both be dateTime.",
        ));
    }
    if end < start {
        return Err(ApiError::google(
            400,
            "calendar",
            "timeRangeEmpty",
            "The specified time range is empty.",
        ));
    }
    super::recurrence::validate(body)
}

fn email_of(a: &Value) -> String {
    a.get("email")
        .and_then(|e| e.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Attendees as Google stores them: one inserted without an answer is
/// `needsAction` (an attendee sent again without one keeps the answer it
/// had); the entry of the calendar's own user carries `self: true`.
pub(super) fn normalise_attendees(
    body: &mut Map<String, Value>,
    before: Option<&Map<String, Value>>,
    calendar: &str,
) {
    let previous: Vec<Value> = before
        .and_then(|b| b.get("attendees"))
        .and_then(|a| a.as_array())
        .cloned()
        .unwrap_or_default();
    let Some(list) = body.get_mut("attendees").and_then(|a| a.as_array_mut()) else {
        return;
    };
    for a in list.iter_mut() {
        let email = email_of(a);
        let Some(obj) = a.as_object_mut() else {
            continue;
        };
        if !obj.contains_key("responseStatus") {
            let kept = previous
                .iter()
                .find(|p| email_of(p) == email)
                .and_then(|p| p.get("responseStatus"))
                .cloned();
            obj.insert(
                "responseStatus".into(),
                kept.unwrap_or_else(|| json!("needsAction")),
            );
        }
        if email == calendar {
            obj.insert("self".into(), json!(true));
        } else {
            obj.remove("self");
        }
    }
}

/// Top-level fields that differ.
pub(super) fn changed_fields(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect()
}

/// This copy belongs to the event's organizer (the usual case), rather than
/// to a guest.
pub(super) fn organizer_copy(body: &Map<String, Value>) -> bool {
    body.get("organizer")
        .and_then(|o| o.get("self"))
        .and_then(|s| s.as_bool())
        .unwrap_or(false)
}

/// What a guest may change on its own copy without being the organizer:
/// its private extended properties, reminders, colour, transparency, and
/// its own answer. Everything else is shared with the other copies and
/// answers `403 forbiddenForNonOrganizer` (Events resource, `organizer`:
/// read-only; `guestsCanModify`: "Whether attendees other than the
/// organizer can modify the event").
pub(super) fn guest_may_write(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    calendar: &str,
) -> bool {
    if before
        .get("guestsCanModify")
        .and_then(|g| g.as_bool())
        .unwrap_or(false)
    {
        return true;
    }
    changed_fields(before, after)
        .iter()
        .all(|k| match k.as_str() {
            "reminders" | "colorId" | "transparency" => true,
            "extendedProperties" => {
                before
                    .get("extendedProperties")
                    .and_then(|p| p.get("shared"))
                    == after
                        .get("extendedProperties")
                        .and_then(|p| p.get("shared"))
            }
            "attendees" => only_own_answer_changed(before, after, calendar),
            _ => false,
        })
}

fn only_own_answer_changed(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    calendar: &str,
) -> bool {
    let list = |b: &Map<String, Value>| {
        b.get("attendees")
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let (old, new) = (list(before), list(after));
    if old.len() != new.len() {
        return false;
    }
    old.iter().zip(new.iter()).all(|(o, n)| {
        if o == n {
            return true;
        }
        if email_of(o) != email_of(n) || email_of(o) != calendar {
            return false;
        }
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in ["responseStatus", "comment", "additionalGuests"] {
                    m.remove(k);
                }
            }
            v
        };
        strip(o) == strip(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn event_ids_follow_base32hex_rules() {
        assert!(valid_event_id("abcde"));
        assert!(valid_event_id("0123456789abcdefghijklmnopqrstuv"));
        assert!(!valid_event_id("abcd"));
        assert!(!valid_event_id("abcdw"));
        assert!(!valid_event_id("ABCDE"));
        assert!(!valid_event_id(&"a".repeat(1025)));
    }

    #[test]
    fn patch_merges_start_and_end() {
        let mut ev = obj(
            json!({"start": {"dateTime": "2026-12-01T10:00:00+09:00", "timeZone": "Asia/Tokyo"}}),
        );
        merge(
            &mut ev,
            json!({"start": {"dateTime": "2026-12-01T11:00:00+09:00"}}),
        )
        .unwrap();
        assert_eq!(ev["start"]["timeZone"], json!("Asia/Tokyo"));
        assert_eq!(ev["start"]["dateTime"], json!("2026-12-01T11:00:00+09:00"));
        merge(&mut ev, json!({"start": {"date": "2026-12-01"}})).unwrap();
        assert_eq!(time_of(&ev, "start").unwrap_err().status, 400);
    }

    #[test]
    fn google_refuses_what_it_cannot_store() {
        let base = json!({
            "status": "confirmed",
            "start": {"dateTime": "2026-12-01T10:00:00+09:00"},
            "end": {"dateTime": "2026-12-01T11:00:00+09:00"},
        });
        assert!(check_event(&obj(base.clone())).is_ok());
        let mut bad = vec![];
        let mut with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            bad.push(b);
        };
        with("status", json!("postponed"));
        with("end", json!({"date": "2026-12-02"}));
        with(
            "start",
            json!({"date": "2026-12-01", "dateTime": "2026-12-01T10:00:00+09:00"}),
        );
        with("attendees", json!([{"email": "not-an-address"}]));
        with("attendees", json!([{"email": "a b@example.com"}]));
        with(
            "start",
            json!({"dateTime": "2026-12-01T10:00:00", "timeZone": "Mars/Olympus"}),
        );
        with("start", json!({"dateTime": "2026-12-01T10:00:00"}));
        with("end", json!({"dateTime": "2026-12-01T09:00:00+09:00"}));
        for b in bad {
            assert_eq!(check_event(&obj(b.clone())).unwrap_err().status, 400, "{b}");
        }
    }

    #[test]
    fn attendees_default_to_needs_action_and_keep_their_answers() {
        let before = obj(json!({"attendees": [{"email": "a@x.jp", "responseStatus": "accepted"}]}));
        let mut after = obj(json!({"attendees": [{"email": "A@x.jp"}, {"email": "me@x.jp"}]}));
        normalise_attendees(&mut after, Some(&before), "me@x.jp");
        assert_eq!(after["attendees"][0]["responseStatus"], json!("accepted"));
        assert_eq!(
            after["attendees"][1]["responseStatus"],
            json!("needsAction")
        );
        assert_eq!(after["attendees"][1]["self"], json!(true));
    }

    #[test]
    fn a_guest_may_change_only_its_own_things() {
        let before = obj(json!({
            "summary": "Their meeting",
            "attendees": [{"email": "boss@x.jp", "organizer": true, "responseStatus": "accepted"},
                          {"email": "me@x.jp", "self": true, "responseStatus": "needsAction"}],
        }));
        let mut ok = before.clone();
        ok["attendees"][1]["responseStatus"] = json!("accepted");
        ok.insert("extendedProperties".into(), json!({"private": {"k": "v"}}));
        assert!(guest_may_write(&before, &ok, "me@x.jp"));
        let mut other = before.clone();
        other["attendees"][0]["responseStatus"] = json!("declined");
        assert!(!guest_may_write(&before, &other, "me@x.jp"));
        let mut title = before.clone();
        title["summary"] = json!("Mine now");
        assert!(!guest_may_write(&before, &title, "me@x.jp"));
        let mut shared = before.clone();
        shared.insert("extendedProperties".into(), json!({"shared": {"k": "v"}}));
        assert!(!guest_may_write(&before, &shared, "me@x.jp"));
        title.insert("guestsCanModify".into(), json!(true));
        let mut open = before.clone();
        open.insert("guestsCanModify".into(), json!(true));
        assert!(guest_may_write(&open, &title, "me@x.jp"));
    }
}
