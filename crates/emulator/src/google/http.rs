//! The Calendar API emulator over HTTP: the routes Google serves, plus an
//! admin API under `/_admin/` that acts as a person in the Calendar UI and
//! as the test harness (faults, counters, console switches).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{ApiError, Fault, GoogleEmulator, ListQuery};

type Emu = Arc<GoogleEmulator>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The router; serve it with `axum::serve`.
pub fn router(emu: Emu) -> Router {
    Router::new()
        .route("/token", post(token))
        .route(
            "/calendar/v3/calendars/{cal}/events",
            get(list).post(insert),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}",
            get(get_event)
                .patch(patch_event)
                .put(put_event)
                .delete(delete_event),
        )
        .route("/_admin/ui/{owner}/events", post(ui_create))
        .route(
            "/_admin/ui/{owner}/events/{id}",
            patch(ui_edit).delete(ui_delete),
        )
        .route("/_admin/ui/{owner}/events/{id}/reply", post(ui_reply))
        .route("/_admin/events/{owner}", get(admin_events))
        .route("/_admin/invalidate-sync-tokens", post(invalidate))
        .route("/_admin/expire-tokens", post(expire_tokens))
        .route("/_admin/faults", post(inject).delete(clear_faults))
        .route("/_admin/counters", get(counters))
        .route("/_admin/counters/reset", post(reset_counters))
        .route("/_admin/writes", get(writes))
        .route("/_admin/auth", post(set_auth))
        .route("/_admin/quota", post(set_quota))
        .with_state(emu)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok()
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn send_updates(raw: &Option<String>) -> Option<String> {
    query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "sendUpdates")
        .map(|(_, v)| v)
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::google(400, "global", "parseError", "Parse Error"))
}

async fn gate(
    emu: &GoogleEmulator,
    call: &str,
    headers: &HeaderMap,
) -> Result<super::state::Principal, ApiError> {
    let (who, latency) = emu.begin(call, bearer(headers))?;
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    Ok(who)
}

async fn token(
    State(emu): State<Emu>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let host = header_str(&headers, header::HOST).unwrap_or("localhost");
    let audience = format!("http://{host}/token");
    emu.token(field("grant_type"), field("assertion"), &audience)
        .map(axum::Json)
}

async fn list(
    State(emu): State<Emu>,
    Path(cal): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.list", &headers).await?;
    let mut q = ListQuery::default();
    for (k, v) in query_pairs(&raw) {
        let bad = || ApiError::google(400, "global", "invalid", &format!("Invalid value for {k}"));
        match k.as_str() {
            "syncToken" => q.sync_token = Some(v),
            "pageToken" => q.page_token = Some(v),
            "maxResults" => q.max_results = Some(v.parse().map_err(|_| bad())?),
            "showDeleted" => q.show_deleted = Some(v.parse().map_err(|_| bad())?),
            "privateExtendedProperty" => q.private_extended_property.push(v),
            "timeMin" => q.time_min = Some(v),
            "timeMax" => q.time_max = Some(v),
            "updatedMin" => q.updated_min = Some(v),
            "q" => q.q = Some(v),
            "orderBy" => q.order_by = Some(v),
            "iCalUID" => q.i_cal_uid = Some(v),
            _ => {}
        }
    }
    emu.list(&who, &cal, &q).map(axum::Json)
}

async fn insert(
    State(emu): State<Emu>,
    Path(cal): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.insert", &headers).await?;
    emu.insert(
        &who,
        &cal,
        parse_body(&body)?,
        send_updates(&raw).as_deref(),
    )
    .map(axum::Json)
}

async fn get_event(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.get", &headers).await?;
    emu.get(&who, &cal, &id).map(axum::Json)
}

async fn patch_event(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.patch", &headers).await?;
    let if_match = header_str(&headers, header::IF_MATCH);
    emu.patch(
        &who,
        &cal,
        &id,
        parse_body(&body)?,
        if_match,
        send_updates(&raw).as_deref(),
    )
    .map(axum::Json)
}

async fn put_event(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.update", &headers).await?;
    let if_match = header_str(&headers, header::IF_MATCH);
    emu.update(
        &who,
        &cal,
        &id,
        parse_body(&body)?,
        if_match,
        send_updates(&raw).as_deref(),
    )
    .map(axum::Json)
}

async fn delete_event(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = gate(&emu, "events.delete", &headers).await?;
    let if_match = header_str(&headers, header::IF_MATCH);
    emu.delete(&who, &cal, &id, if_match, send_updates(&raw).as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

// --- admin -----------------------------------------------------------------

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
struct Inject {
    fault: Fault,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

async fn inject(State(emu): State<Emu>, axum::Json(i): axum::Json<Inject>) -> StatusCode {
    emu.inject(i.fault, i.count);
    StatusCode::NO_CONTENT
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
