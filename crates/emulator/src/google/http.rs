//! The Calendar API emulator over HTTP: the routes Google serves. The
//! admin API under `/_admin/` (a person in the Calendar UI, and the test
//! harness) is in `http_admin`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::error::ApiError;
use super::listing::ListQuery;
use super::state::GoogleEmulator;

pub(super) type Emu = Arc<GoogleEmulator>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.disconnect {
            return crate::dropped_connection();
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|secs| secs.to_string().parse().ok())
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
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}/instances",
            get(instances),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}/move",
            post(move_event),
        )
        .merge(super::http_admin::router())
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

fn param(raw: &Option<String>, name: &str) -> Option<String> {
    query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn send_updates(raw: &Option<String>) -> Option<String> {
    param(raw, "sendUpdates")
}

fn list_query(raw: &Option<String>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    for (k, v) in query_pairs(raw) {
        let bad = || ApiError::google(400, "global", "invalid", &format!("Invalid value for {k}"));
        match k.as_str() {
            "syncToken" => q.sync_token = Some(v),
            "pageToken" => q.page_token = Some(v),
            "maxResults" => q.max_results = Some(v.parse().map_err(|_| bad())?),
            "showDeleted" => q.show_deleted = Some(v.parse().map_err(|_| bad())?),
            "singleEvents" => q.single_events = Some(v.parse().map_err(|_| bad())?),
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
    Ok(q)
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
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
    let q = list_query(&raw)?;
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

async fn instances(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.instances", &headers).await?;
    let q = list_query(&raw)?;
    emu.instances(&who, &cal, &id, &q).map(axum::Json)
}

async fn move_event(
    State(emu): State<Emu>,
    Path((cal, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = gate(&emu, "events.move", &headers).await?;
    let destination = param(&raw, "destination").unwrap_or_default();
    emu.move_event(&who, &cal, &id, &destination, send_updates(&raw).as_deref())
        .map(axum::Json)
}
