//! The HITO-Link emulator over HTTP: `/v1/...` as HITOLINK-API.md documents
//! it, and `/_admin/...` for a recruiter's actions and the test harness.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::gate::Fault;
use super::state::{Answer, ApiError, Application, HitolinkEmulator, User};
use crate::faults::Phase;

type Emu = Arc<HitolinkEmulator>;

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

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        (status, axum::Json(self.body)).into_response()
    }
}

pub fn router(emu: Emu) -> Router {
    Router::new()
        .route("/v1/interviews/changes", get(changes))
        .route("/v1/interviews", post(create))
        .route("/v1/interviews/{id}", get(get_one).patch(patch_one))
        .route("/v1/interviews/{id}/decline", post(decline))
        .route("/v1/applications/{id}", get(application))
        .route("/_admin/interviews", get(admin_list).post(admin_create))
        .route(
            "/_admin/interviews/{id}",
            patch(admin_edit).delete(admin_delete),
        )
        .route("/_admin/interviews/{id}/decline", post(admin_decline))
        .route("/_admin/applications", post(admin_application))
        .route("/_admin/users", post(admin_user))
        .route("/_admin/invalidate-cursors", post(invalidate))
        .route("/_admin/faults", post(inject).delete(clear_faults))
        .route("/_admin/rate-limit", post(rate_limit))
        .route("/_admin/counters", get(counters))
        .route("/_admin/counters/reset", post(reset_counters))
        .with_state(emu)
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok()
}

async fn gate(emu: &HitolinkEmulator, call: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = header_str(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(d) = emu.begin(call, bearer)? {
        tokio::time::sleep(d).await;
    }
    Ok(())
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "bad_request", &format!("the body is not JSON: {e}")))
}

async fn changes(
    State(emu): State<Emu>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Answer, ApiError> {
    gate(&emu, "changes", &headers).await?;
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    emu.changes(get("cursor"), get("limit"))
}

async fn get_one(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Answer, ApiError> {
    gate(&emu, "get", &headers).await?;
    emu.get(&id)
}

async fn create(
    State(emu): State<Emu>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    gate(&emu, "create", &headers).await?;
    emu.create(header_str(&headers, "idempotency-key"), &json_body(&body)?)
}

async fn patch_one(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    gate(&emu, "patch", &headers).await?;
    emu.patch(
        &id,
        header_str(&headers, header::IF_MATCH),
        &json_body(&body)?,
    )
}

async fn decline(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    gate(&emu, "decline", &headers).await?;
    emu.decline(
        &id,
        header_str(&headers, header::IF_MATCH),
        header_str(&headers, "idempotency-key"),
        &json_body(&body)?,
    )
}

async fn application(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Answer, ApiError> {
    gate(&emu, "application", &headers).await?;
    emu.application(&id)
}

// --- admin -----------------------------------------------------------------

async fn admin_list(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!(emu.interviews()))
}

async fn admin_create(State(emu): State<Emu>, body: Bytes) -> Result<Answer, ApiError> {
    emu.admin_create(&json_body(&body)?)
}

async fn admin_edit(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Answer, ApiError> {
    emu.admin_edit(&id, &json_body(&body)?)
}

async fn admin_delete(State(emu): State<Emu>, Path(id): Path<String>) -> Result<Answer, ApiError> {
    emu.admin_delete(&id)
}

async fn admin_decline(
    State(emu): State<Emu>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Answer, ApiError> {
    emu.admin_decline(&id, &json_body(&body)?)
}

async fn admin_application(
    State(emu): State<Emu>,
    axum::Json(a): axum::Json<Application>,
) -> StatusCode {
    emu.add_application(a);
    StatusCode::NO_CONTENT
}

async fn admin_user(State(emu): State<Emu>, axum::Json(u): axum::Json<User>) -> StatusCode {
    emu.add_user(u);
    StatusCode::NO_CONTENT
}

async fn invalidate(State(emu): State<Emu>) -> StatusCode {
    emu.invalidate_cursors();
    StatusCode::NO_CONTENT
}

/// `{"fault": {"kind": ...}, "count": 1, "on": "any", "phase": "before"}`;
/// `on` is `any`, `writes` or a call (`create`, `patch`, `decline`, ...),
/// `phase` is `before` (nothing applied) or `after` (applied, answer lost).
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
        Err(e) => ApiError::new(400, "bad_fault", &e.to_string()).into_response(),
    }
}

async fn clear_faults(State(emu): State<Emu>) -> StatusCode {
    emu.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct RateLimit {
    per_minute: Option<u32>,
}

async fn rate_limit(State(emu): State<Emu>, axum::Json(r): axum::Json<RateLimit>) -> StatusCode {
    emu.set_rate_limit(r.per_minute);
    StatusCode::NO_CONTENT
}

async fn counters(State(emu): State<Emu>) -> axum::Json<Value> {
    axum::Json(json!(emu.counters()))
}

async fn reset_counters(State(emu): State<Emu>) -> StatusCode {
    emu.reset_counters();
    StatusCode::NO_CONTENT
}
