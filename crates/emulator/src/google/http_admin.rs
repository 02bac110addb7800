//! The admin API under `/_admin/`: a person in the Calendar UI (the
//! organizer, a colleague inviting the organizer, a guest answering) and
//! the test harness (faults, switches, the clock, quotas, counters, console
//! switches). Standalone `hitosync emulate google` is driven through it.
//!
//! Every route and its body is listed in `router`'s doc.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::gate::Fault;
use super::http::{Emu, parse_body};
use super::invitations::InvitationLimit;
use super::state::Switches;
use crate::faults::Phase;

/// The admin routes (JSON bodies; `{owner}` is a calendar id, the
/// organizer's address for a primary calendar):
///
/// - `POST /_admin/ui/{owner}/events` (an event): the organizer creates an
///   event in the UI; with guests, the organizer is listed among them.
/// - `PATCH /_admin/ui/{owner}/events/{id}` (fields): the organizer edits
///   (patch semantics).
/// - `DELETE /_admin/ui/{owner}/events/{id}`: the organizer deletes.
/// - `POST /_admin/ui/{owner}/events/{id}/reply` `{"guest", "response"}`.
/// - `POST /_admin/ui/{owner}/events/{id}/web-edit`: the organizer saves the
///   event in the browser; the description becomes the editor's HTML.
/// - `POST /_admin/ui/{owner}/events/{id}/move` `{"destination"}`.
/// - `POST /_admin/ui/{owner}/invitations` (an event with
///   `"organizer": "colleague@..."`): a colleague's invitation lands on
///   `owner`'s calendar.
/// - `POST /_admin/calendars` `{"id", "summary", "writers": [..]}`: a
///   secondary calendar.
/// - `GET /_admin/events/{owner}`: every stored event, tombstones too.
/// - `POST /_admin/faults` `{"fault": {"kind": "server_error" |
///   "unavailable" | "too_many_requests", "retry_after_secs" |
///   "rate_limit403" | "latency", "millis" | "disconnect"}, "count": 1,
///   "on": "any" | "writes" | "events.insert" | "events.patch" | ...,
///   "phase": "before" | "after"}`; `DELETE /_admin/faults` clears them.
/// - `GET|POST /_admin/switches` `{"html_descriptions",
///   "reset_answers_on_time_change", "page_sizes": [..] | null}` (absent
///   keys stay as they are).
/// - `POST /_admin/invitation-limit` `{"per_day", "window_secs",
///   "internal_domains"}` or `null`; `GET
///   /_admin/invitation-limit/{user}` says how many were sent.
/// - `GET /_admin/clock`; `POST /_admin/clock` `{"advance_secs"}`.
/// - `POST /_admin/invalidate-sync-tokens`, `POST /_admin/expire-tokens`.
/// - `GET /_admin/counters`, `POST /_admin/counters/reset`, `GET
///   /_admin/writes`.
/// - `POST /_admin/auth` (console switches), `POST /_admin/quota`
///   `{"per_minute", "time_scale"}`.
pub(super) fn router() -> Router<Emu> {
    Router::new()
        .route("/_admin/ui/{owner}/events", post(ui_create))
        .route(
            "/_admin/ui/{owner}/events/{id}",
            patch(ui_edit).delete(ui_delete),
        )
        .route("/_admin/ui/{owner}/events/{id}/reply", post(ui_reply))
        .route("/_admin/ui/{owner}/events/{id}/web-edit", post(web_edit))
        .route("/_admin/ui/{owner}/events/{id}/move", post(ui_move))
        .route("/_admin/ui/{owner}/invitations", post(ui_invite))
        .route("/_admin/calendars", post(add_calendar))
        .route("/_admin/events/{owner}", get(admin_events))
        .route("/_admin/invalidate-sync-tokens", post(invalidate))
        .route("/_admin/expire-tokens", post(expire_tokens))
        .route("/_admin/faults", post(inject).delete(clear_faults))
        .route("/_admin/switches", get(get_switches).post(set_switches))
        .route("/_admin/invitation-limit", post(set_invitation_limit))
        .route("/_admin/invitation-limit/{user}", get(invitations_sent))
        .route("/_admin/clock", get(get_clock).post(set_clock))
        .route("/_admin/counters", get(counters))
        .route("/_admin/counters/reset", post(reset_counters))
        .route("/_admin/writes", get(writes))
        .route("/_admin/auth", post(set_auth))
        .route("/_admin/quota", post(set_quota))
}

fn admin_error(message: &str) -> Response {
    ApiError::google(400, "admin", "badRequest", message).into_response()
}

async fn ui_create(
    State(emu): State<Emu>,
    Path(owner): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    emu.ui_create(&owner, parse_body(&body)?).map(axum::Json)
}

async fn ui_edit(
    State(emu): State<Emu>,
    Path((owner, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    emu.ui_edit(&owner, &id, parse_body(&body)?).map(axum::Json)
}

async fn ui_delete(
    State(emu): State<Emu>,
    Path((owner, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    emu.ui_delete(&owner, &id).map(axum::Json)
}

#[derive(Deserialize)]
struct Reply {
    guest: String,
    response: String,
}

async fn ui_reply(
    State(emu): State<Emu>,
    Path((owner, id)): Path<(String, String)>,
    axum::Json(r): axum::Json<Reply>,
) -> Result<axum::Json<Value>, ApiError> {
    emu.guest_reply(&owner, &id, &r.guest, &r.response)
        .map(axum::Json)
}

async fn admin_events(State(emu): State<Emu>, Path(owner): Path<String>) -> axum::Json<Value> {
    axum::Json(Value::Array(emu.events(&owner)))
}

async fn invalidate(State(emu): State<Emu>) -> StatusCode {
    emu.invalidate_sync_tokens();
    StatusCode::NO_CONTENT
}

async fn expire_tokens(State(emu): State<Emu>) -> StatusCode {
    emu.expire_access_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inject {
    fault: Fault,
    #[serde(default = "one")]
    count: usize,
    #[serde(default = "any")]
    on: String,
    #[serde(default)]
    phase: Phase,
}

fn one() -> usize {
    1
}

fn any() -> String {
    crate::faults::ANY.into()
}

async fn inject(State(emu): State<Emu>, axum::Json(i): axum::Json<Inject>) -> Response {
    match emu.inject_on(&i.on, i.phase, i.fault, i.count) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => admin_error(&e.to_string()),
    }
}

async fn clear_faults(State(emu): State<Emu>) -> StatusCode {
    emu.clear_faults();
    StatusCode::NO_CONTENT
}

async fn counters(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!(emu.counters()))
}

async fn reset_counters(State(emu): State<Emu>) -> StatusCode {
    emu.reset_counters();
    StatusCode::NO_CONTENT
}

async fn writes(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!(emu.writes()))
}

/// The console switches of the setup guide. Absent keys stay as they are;
/// `delegated_scopes: null` removes the delegation.
#[derive(Deserialize)]
struct AuthSwitches {
    #[serde(default, with = "double_option")]
    delegated_scopes: Option<Option<BTreeSet<String>>>,
    api_enabled: Option<bool>,
    clock_skew_secs: Option<i64>,
    #[serde(default)]
    add_users: Vec<String>,
    #[serde(default)]
    remove_users: Vec<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

async fn set_auth(State(emu): State<Emu>, axum::Json(s): axum::Json<AuthSwitches>) -> StatusCode {
    emu.with_auth(|a| {
        if let Some(scopes) = s.delegated_scopes {
            a.delegated_scopes = scopes;
        }
        if let Some(on) = s.api_enabled {
            a.api_enabled = on;
        }
        if let Some(skew) = s.clock_skew_secs {
            a.clock_skew_secs = skew;
        }
        for u in s.add_users {
            a.users.insert(u.to_ascii_lowercase());
        }
        for u in s.remove_users {
            a.users.remove(&u.to_ascii_lowercase());
        }
    });
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct QuotaSwitch {
    per_minute: Option<u32>,
    #[serde(default = "unit_scale")]
    time_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

async fn set_quota(State(emu): State<Emu>, axum::Json(q): axum::Json<QuotaSwitch>) -> StatusCode {
    emu.set_quota(q.per_minute, q.time_scale);
    StatusCode::NO_CONTENT
}

async fn web_edit(
    State(emu): State<Emu>,
    Path((owner, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    emu.web_editor_roundtrip(&owner, &id).map(axum::Json)
}

#[derive(Deserialize)]
struct Move {
    destination: String,
}

async fn ui_move(
    State(emu): State<Emu>,
    Path((owner, id)): Path<(String, String)>,
    axum::Json(m): axum::Json<Move>,
) -> Result<axum::Json<Value>, ApiError> {
    emu.ui_move(&owner, &id, &m.destination).map(axum::Json)
}

async fn ui_invite(
    State(emu): State<Emu>,
    Path(owner): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    emu.ui_invite(&owner, parse_body(&body)?).map(axum::Json)
}

#[derive(Deserialize)]
struct NewCalendar {
    id: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    writers: Vec<String>,
}

async fn add_calendar(
    State(emu): State<Emu>,
    axum::Json(c): axum::Json<NewCalendar>,
) -> StatusCode {
    let summary = c.summary.unwrap_or_else(|| c.id.clone());
    emu.add_calendar(&c.id, &summary, &c.writers);
    StatusCode::NO_CONTENT
}

async fn get_switches(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!(emu.switches()))
}

/// Absent keys keep their value.
async fn set_switches(State(emu): State<Emu>, body: Bytes) -> Response {
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return admin_error("the body must be a JSON object of switches");
    };
    let mut current = json!(emu.switches());
    for (k, v) in patch {
        current[k] = v;
    }
    match serde_json::from_value::<Switches>(current) {
        Ok(s) => match emu.set_switches(s) {
            Ok(()) => axum::Json(json!(emu.switches())).into_response(),
            Err(e) => admin_error(&e),
        },
        Err(e) => admin_error(&format!("bad switches: {e}")),
    }
}

async fn set_invitation_limit(State(emu): State<Emu>, body: Bytes) -> Response {
    match serde_json::from_slice::<Option<InvitationLimit>>(&body) {
        Ok(limit) => {
            emu.set_invitation_limit(limit);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(&format!("bad invitation limit: {e}")),
    }
}

async fn invitations_sent(State(emu): State<Emu>, Path(user): Path<String>) -> axum::Json<Value> {
    axum::Json(json!({"user": user, "sent": emu.invitations_sent(&user)}))
}

async fn get_clock(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!({"now": super::store::rfc3339(emu.clock())}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    advance_secs: i64,
}

async fn set_clock(State(emu): State<Emu>, axum::Json(c): axum::Json<Clock>) -> axum::Json<Value> {
    emu.advance_clock(c.advance_secs);
    axum::Json(json!({"now": super::store::rfc3339(emu.clock())}))
}
