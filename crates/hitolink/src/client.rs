//! The HITO-Link interview API client (HITOLINK-API.md).
//!
//! Reads stream the change feed page by page; every record is validated on
//! its own, so one bad record is reported, not fatal to its page. Writes
//! carry `If-Match` (the record's version) and, where the API asks for it,
//! an `Idempotency-Key`, so a retry after a lost answer cannot act twice.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tracing::{debug, warn};
use url::Url;

use hitosync_config::Config;
use hitosync_core::model::{Interview, UnreadableItem, Unsyncable};
use hitosync_net::http::{self as nethttp, Client};
use hitosync_net::page::{self, RawItem};
use hitosync_net::ratelimit::RateLimiter;
use hitosync_net::redact;
use hitosync_net::retry::{Backoff, Bounds, CancellationToken, InFlight, Interrupted};

/// A cursor longer than this is not a cursor: HITO-Link's are short
/// opaque tokens, and whatever is accepted here is stored and sent back.
pub const MAX_CURSOR_BYTES: usize = 16 * 1024;

/// Why the API token could not be read. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the HITO-Link token file {path} does not exist: put the API token in it and set hitolink.api_token_file"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the HITO-Link token file {path}: {source} (check that hitosync's user may read it)"
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HITO-Link token file {path} is empty: put the API token on its first line")]
    Empty { path: PathBuf },
    /// A token with a control character cannot go into a header; left in,
    /// every request would fail as if the network were down.
    #[error(
        "the HITO-Link token file {path} holds a control character in its first line (an editor's stray byte, a Windows line end inside the token?): put the API token alone on the first line"
    )]
    ControlCharacter { path: PathBuf },
    #[error(
        "the HITO-Link token file {path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`, or set hitolink.allow_insecure_token_permissions = true to accept it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
}

/// Reads the bearer token: the first line of the file, trimmed.
pub fn read_token(path: &Path, allow_insecure: bool) -> Result<SecretString, TokenError> {
    use hitosync_net::private_file::{self, PrivateFileError as E};
    let bytes = private_file::read(path, allow_insecure).map_err(|e| match e {
        E::Missing => TokenError::Missing {
            path: path.to_path_buf(),
        },
        E::Unreadable(source) => TokenError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        E::Insecure { mode } => TokenError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|_| TokenError::Unreadable {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    if token.chars().any(char::is_control) {
        return Err(TokenError::ControlCharacter {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretString::from(token.to_string()))
}

/// Why a client could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("hitolink.base_url {url:?}: expected {expected}")]
    BaseUrl { url: String, expected: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HitolinkError {
    /// `410`: the cursor is unknown or expired; read the feed from the start.
    #[error("the HITO-Link change cursor expired (410); a full resync is needed")]
    CursorExpired,
    /// `412`: the record changed since the version the write was based on.
    #[error(
        "interview {id} changed since version it was read at (412); read it again and decide again"
    )]
    PreconditionFailed {
        id: String,
        current: Option<Box<Interview>>,
    },
    #[error("HITO-Link asked for If-Match on {id} (428)")]
    PreconditionRequired { id: String },
    /// `422`: the server does not accept the write; nothing changed.
    #[error("HITO-Link rejected the write to {what} (422): {message}")]
    Invalid { what: String, message: String },
    #[error("{what} not found in HITO-Link (404)")]
    NotFound { what: String },
    #[error(
        "HITO-Link refused the API token (401): check the token in hitolink.api_token_file with the HITO-Link administrator"
    )]
    Unauthorized,
    #[error("HITO-Link's rate limit was hit and retries ran out; the next cycle goes on")]
    RateLimited { retry_after: Option<Duration> },
    /// `Retry-After` longer than `hitolink.max_retry_after_secs`: not waited for.
    #[error(
        "HITO-Link asked to wait {asked_secs} s before the next request (Retry-After), more than hitolink.max_retry_after_secs = {cap_secs} s; not waiting: the cycle fails and is tried again later"
    )]
    RetryAfterTooLong { asked_secs: u64, cap_secs: u64 },
    /// The cancellation token fired (shutdown or the cycle's deadline).
    #[error("stopped while waiting for HITO-Link")]
    Stopped,
    /// One call ran out of its time, retries included.
    #[error(
        "HITO-Link did not answer usefully within {spent_secs} s ({attempts} attempts); last: {last}"
    )]
    OutOfTime {
        spent_secs: u64,
        attempts: u32,
        last: String,
    },
    /// An answer over the body cap; reading stopped there.
    #[error("HITO-Link's answer to {what} is too big: {detail}")]
    TooLarge { what: String, detail: String },
    #[error("HITO-Link API failed: {0}")]
    Transient(String),
    #[error("HITO-Link rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error(transparent)]
    Unsyncable(#[from] Unsyncable),
    #[error("unexpected answer from HITO-Link: {0}")]
    Protocol(String),
}

impl hitosync_net::retry::Retryable for HitolinkError {
    fn is_retryable(&self) -> bool {
        HitolinkError::is_retryable(self)
    }
    fn is_rate_limit(&self) -> bool {
        matches!(self, HitolinkError::RateLimited { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            HitolinkError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
    fn interrupted(why: Interrupted) -> Self {
        match why {
            Interrupted::Stopped => HitolinkError::Stopped,
            Interrupted::RetryAfterTooLong { asked, cap } => HitolinkError::RetryAfterTooLong {
                asked_secs: asked.as_secs(),
                cap_secs: cap.as_secs(),
            },
            Interrupted::OutOfTime {
                spent,
                attempts,
                last,
            } => HitolinkError::OutOfTime {
                spent_secs: spent.as_secs(),
                attempts,
                last,
            },
        }
    }
}

impl HitolinkError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HitolinkError::RateLimited { .. } | HitolinkError::Transient(_)
        )
    }

    /// The same error with `secrets` (and anything shaped like a
    /// credential) removed from the server's words it carries.
    pub fn scrubbed(self, secrets: &[&str]) -> HitolinkError {
        let s = |m: String| redact::scrub(&m, secrets);
        match self {
            HitolinkError::Invalid { what, message } => HitolinkError::Invalid {
                what,
                message: s(message),
            },
            HitolinkError::Transient(m) => HitolinkError::Transient(s(m)),
            HitolinkError::Rejected { status, message } => HitolinkError::Rejected {
                status,
                message: s(message),
            },
            HitolinkError::Protocol(m) => HitolinkError::Protocol(s(m)),
            HitolinkError::OutOfTime {
                spent_secs,
                attempts,
                last,
            } => HitolinkError::OutOfTime {
                spent_secs,
                attempts,
                last: s(last),
            },
            HitolinkError::Unsyncable(u) => HitolinkError::Unsyncable(Unsyncable {
                id: u.id,
                reason: s(u.reason),
            }),
            other => other,
        }
    }

    fn from_send(e: nethttp::SendError, what: &str) -> HitolinkError {
        if e.is_transient() {
            HitolinkError::Transient(e.to_string())
        } else {
            HitolinkError::TooLarge {
                what: what.to_string(),
                detail: e.to_string(),
            }
        }
    }

    fn from_response(resp: &nethttp::Response, what: &str) -> HitolinkError {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        HitolinkError::from_parts(
            resp.status,
            &body,
            what,
            nethttp::retry_after(&resp.headers),
        )
    }

    /// Sorts an error answer by status; `body` is the `{"error", "message"}` JSON.
    pub fn from_parts(
        status: http::StatusCode,
        body: &Value,
        what: &str,
        retry_after: Option<Duration>,
    ) -> HitolinkError {
        let message = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
            .to_string();
        match status.as_u16() {
            410 => HitolinkError::CursorExpired,
            412 => HitolinkError::PreconditionFailed {
                id: what.to_string(),
                current: body
                    .get("current")
                    .and_then(|c| Interview::from_json(c).ok())
                    .map(Box::new),
            },
            428 => HitolinkError::PreconditionRequired {
                id: what.to_string(),
            },
            422 => HitolinkError::Invalid {
                what: what.to_string(),
                message,
            },
            404 => HitolinkError::NotFound {
                what: what.to_string(),
            },
            401 => HitolinkError::Unauthorized,
            429 => HitolinkError::RateLimited { retry_after },
            s if s >= 500 => HitolinkError::Transient(format!("{status}: {message}")),
            s => HitolinkError::Rejected { status: s, message },
        }
    }
}

/// One page of the change feed.
#[derive(Debug, Clone)]
pub struct ChangePage {
    /// Each record validated on its own; one that does not decode but has
    /// an `id` comes as `Unsyncable`, to be parked under that id.
    pub items: Vec<Result<Interview, Unsyncable>>,
    /// Items without a usable `id` (none, a number, not UTF-8): reported
    /// by position and hash, since nothing can be parked for them.
    pub unreadable: Vec<UnreadableItem>,
    pub next_cursor: String,
    pub has_more: bool,
}

/// One item of a change page, decided on its own.
fn change_item(item: &RawItem) -> Result<Result<Interview, Unsyncable>, UnreadableItem> {
    let unreadable = |reason: String| {
        UnreadableItem::new(item.id_text(), item.position, item.text.as_bytes(), reason)
    };
    let usable = item.usable_id();
    if item.damaged {
        let reason =
            "the record holds bytes that are not UTF-8 text; correct the record in HITO-Link"
                .to_string();
        return match usable {
            Some(id) => Ok(Err(Unsyncable {
                id: id.to_string(),
                reason,
            })),
            None => Err(unreadable(reason)),
        };
    }
    match (Interview::from_json(&item.value), usable) {
        (Ok(iv), _) => Ok(Ok(iv)),
        (Err(u), Some(id)) => Ok(Err(Unsyncable {
            id: id.to_string(),
            reason: u.reason,
        })),
        (Err(u), None) => Err(unreadable(match item.value.get("id") {
            None | Some(Value::Null) => format!("a record without an `id`: {}", u.reason),
            Some(other) => format!(
                "a record whose `id` is not a string ({other}): {}",
                u.reason
            ),
        })),
    }
}

/// A single record's answer: decoded like a change item, so that a record
/// with bytes that are not UTF-8 is parked, not a failed cycle.
fn decode_record(bytes: &[u8], what: &str) -> Result<Interview, HitolinkError> {
    let page = page::split(
        &[b"{\"items\": [".as_slice(), bytes, b"]}".as_slice()].concat(),
        "items",
    )
    .map_err(|e| HitolinkError::Protocol(format!("undecodable answer for {what}: {e}")))?;
    let Some(item) = page.items.first() else {
        return Err(HitolinkError::Protocol(format!(
            "an empty answer for {what}"
        )));
    };
    match change_item(item) {
        Ok(Ok(iv)) => Ok(iv),
        Ok(Err(u)) => Err(HitolinkError::Unsyncable(u)),
        Err(bad) => Err(HitolinkError::Unsyncable(Unsyncable {
            id: what.to_string(),
            reason: bad.reason,
        })),
    }
}

/// A booking made in the calendar, to become an interview.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInterview {
    pub application_id: String,
    pub selection_step_id: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub time_zone: String,
    pub interviewers: Vec<String>,
    pub external_event_id: String,
    pub location: Option<String>,
    pub video_conferencing_url: Option<String>,
}

impl NewInterview {
    /// The body of `POST /v1/interviews`.
    pub fn to_json(&self) -> Value {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut body = json!({
            "application_id": self.application_id,
            "start": t(self.start),
            "end": t(self.end),
            "time_zone": self.time_zone,
            "interviewers": self.interviewers,
            "external_event_id": self.external_event_id,
        });
        if let Some(s) = &self.selection_step_id {
            body["selection_step_id"] = json!(s);
        }
        if let Some(l) = &self.location {
            body["location"] = json!(l);
        }
        if let Some(u) = &self.video_conferencing_url {
            body["video_conferencing_url"] = json!(u);
        }
        body
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclineBy {
    Candidate,
    Interviewer { interviewer_id: String },
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ApplicationInfo {
    pub id: String,
    pub candidate: hitosync_core::model::Person,
    pub job: hitosync_core::model::Named,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub changes: AtomicU64,
    pub get: AtomicU64,
    pub writes: AtomicU64,
    /// Every attempt by result, retries, time waiting on the budget.
    pub calls: hitosync_net::retry::CallStats,
}

pub struct HitolinkClient {
    http: Client,
    base: Url,
    token: SecretString,
    limiter: RateLimiter,
    backoff: Backoff,
    bounds: Bounds,
    pub counters: Arc<Counters>,
}

impl fmt::Debug for HitolinkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HitolinkClient")
            .field("base", &self.base.as_str())
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl HitolinkClient {
    pub fn from_config(config: &Config) -> Result<HitolinkClient, SetupError> {
        let h = &config.hitolink;
        let token = read_token(&h.api_token_file, h.allow_insecure_token_permissions)?;
        let base =
            hitosync_config::check_url(&h.base_url).map_err(|expected| SetupError::BaseUrl {
                url: h.base_url.clone(),
                expected,
            })?;
        let mut client =
            HitolinkClient::new(base, token, h.max_requests_per_minute, Backoff::default());
        client.bounds = Bounds::new(Duration::from_secs(h.max_retry_after_secs));
        Ok(client)
    }

    pub fn new(
        base: Url,
        token: SecretString,
        per_minute: u32,
        backoff: Backoff,
    ) -> HitolinkClient {
        HitolinkClient {
            http: nethttp::client(),
            base,
            token,
            limiter: RateLimiter::new(per_minute, 5),
            backoff,
            bounds: Bounds::default(),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Every wait of every later call ends at once when `token` fires, and
    /// the call returns [`HitolinkError::Stopped`]. The daemon hands each
    /// cycle a fresh one.
    pub fn set_cancel(&mut self, token: CancellationToken) {
        self.bounds.cancel = token;
    }

    /// Replaces the limits on waiting (tests shorten them).
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    fn url(&self, segments: &[&str]) -> Result<Url, HitolinkError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| HitolinkError::Protocol("hitolink.base_url cannot take a path".into()))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    /// Runs `op` under the limiter, retrying what is worth retrying, within
    /// the client's bounds; whatever the server said is scrubbed of the token.
    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        in_flight: InFlight,
        op: F,
    ) -> Result<T, HitolinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HitolinkError>>,
    {
        hitosync_net::retry::with_retries(
            &self.limiter,
            &self.backoff,
            &self.bounds,
            &self.counters.calls,
            what,
            in_flight,
            op,
        )
        .await
        .map_err(|e| e.scrubbed(&[self.token.expose_secret()]))
    }

    /// One request; the answer's bytes on success, errors sorted.
    async fn call_raw(
        &self,
        method: Method,
        url: &Url,
        what: &str,
        body: Option<&Value>,
        extra: &[(http::HeaderName, String)],
    ) -> Result<hitosync_net::http::Response, HitolinkError> {
        let mut headers = vec![(
            http::header::AUTHORIZATION,
            format!("Bearer {}", self.token.expose_secret()),
        )];
        headers.extend(extra.iter().cloned());
        let resp = nethttp::send(
            &self.http,
            method,
            url.as_str(),
            &headers,
            body.map(|b| b.to_string()),
        )
        .await
        .map_err(|e| HitolinkError::from_send(e, what))?;
        if !resp.status.is_success() {
            return Err(
                HitolinkError::from_response(&resp, what).scrubbed(&[self.token.expose_secret()])
            );
        }
        Ok(resp)
    }

    /// One request answered by one interview record.
    async fn call_record(
        &self,
        method: Method,
        url: &Url,
        what: &str,
        body: Option<&Value>,
        extra: &[(http::HeaderName, String)],
    ) -> Result<Interview, HitolinkError> {
        let resp = self.call_raw(method, url, what, body, extra).await?;
        decode_record(&resp.body, what)
    }

    /// One page of the change feed after `cursor` (from the start without).
    pub async fn changes(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ChangePage, HitolinkError> {
        let mut url = self.url(&["interviews", "changes"])?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
            q.append_pair("limit", &limit.clamp(1, 500).to_string());
        }
        let resp = self
            .with_retries("changes", InFlight::Abandon, || {
                self.counters.changes.fetch_add(1, Ordering::Relaxed);
                self.call_raw(Method::GET, &url, "the change feed", None, &[])
            })
            .await?;
        let raw = page::split(&resp.body, "items")
            .map_err(|e| HitolinkError::Protocol(format!("an undecodable change page: {e}")))?;
        if !raw.has_items {
            return Err(HitolinkError::Protocol(
                "a change page without items".into(),
            ));
        }
        let next_cursor = match raw.fields.get("next_cursor") {
            Some(Value::String(c)) if c.contains('\u{FFFD}') => {
                return Err(HitolinkError::Protocol(
                    "a change page whose next_cursor is not UTF-8 text".into(),
                ));
            }
            Some(Value::String(c)) if c.len() > MAX_CURSOR_BYTES => {
                return Err(HitolinkError::Protocol(format!(
                    "a change page whose next_cursor is {} bytes long; a cursor is a short token (at most {MAX_CURSOR_BYTES} bytes are accepted)",
                    c.len()
                )));
            }
            Some(Value::String(c)) => c.clone(),
            _ => {
                return Err(HitolinkError::Protocol(
                    "a change page without next_cursor".into(),
                ));
            }
        };
        let has_more = raw
            .fields
            .get("has_more")
            .and_then(|h| h.as_bool())
            .unwrap_or(false);
        let mut items = Vec::with_capacity(raw.items.len());
        let mut unreadable = Vec::new();
        for item in &raw.items {
            match change_item(item) {
                Ok(r) => items.push(r),
                Err(bad) => {
                    warn!(position = bad.position, hash = %bad.hash, id = ?bad.id, reason = %bad.reason, "HITO-Link sent a record that cannot be read; the rest of the page goes on");
                    unreadable.push(bad);
                }
            }
        }
        debug!(
            items = items.len(),
            unreadable = unreadable.len(),
            has_more,
            "read a change page"
        );
        Ok(ChangePage {
            items,
            unreadable,
            next_cursor,
            has_more,
        })
    }

    /// One interview, tombstones included.
    pub async fn get(&self, id: &str) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews", id])?;
        self.with_retries("get", InFlight::Abandon, || {
            self.counters.get.fetch_add(1, Ordering::Relaxed);
            self.call_record(Method::GET, &url, id, None, &[])
        })
        .await
    }

    /// Creates an interview from a calendar booking. The key makes a retry
    /// (or a replay after a crash) return the first result.
    pub async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews"])?;
        let body = new.to_json();
        let headers = [(
            http::HeaderName::from_static("idempotency-key"),
            idempotency_key.to_string(),
        )];
        let what = format!("booking {idempotency_key}");
        self.with_retries("create", InFlight::Finish, || {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
            self.call_record(Method::POST, &url, &what, Some(&body), &headers)
        })
        .await
    }

    /// Patches the writable fields, conditionally on `version`.
    pub async fn patch(
        &self,
        id: &str,
        fields: &Value,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews", id])?;
        let headers = [(http::header::IF_MATCH, version.to_string())];
        self.with_retries("patch", InFlight::Finish, || {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
            self.call_record(Method::PATCH, &url, id, Some(fields), &headers)
        })
        .await
    }

    /// Records a decline seen in the calendar.
    pub async fn decline(
        &self,
        id: &str,
        by: &DeclineBy,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews", id, "decline"])?;
        let mut body = match by {
            DeclineBy::Candidate => json!({"by": "candidate"}),
            DeclineBy::Interviewer { interviewer_id } => {
                json!({"by": "interviewer", "interviewer_id": interviewer_id})
            }
        };
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        let headers = [
            (http::header::IF_MATCH, version.to_string()),
            (
                http::HeaderName::from_static("idempotency-key"),
                idempotency_key.to_string(),
            ),
        ];
        self.with_retries("decline", InFlight::Finish, || {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
            self.call_record(Method::POST, &url, id, Some(&body), &headers)
        })
        .await
    }

    /// Looks up an application (to check a booking made in the calendar).
    pub async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        let url = self.url(&["applications", id])?;
        let what = format!("application {id}");
        let resp = self
            .with_retries("application", InFlight::Abandon, || {
                self.counters.get.fetch_add(1, Ordering::Relaxed);
                self.call_raw(Method::GET, &url, &what, None, &[])
            })
            .await?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| HitolinkError::Protocol(format!("undecodable application: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: Value) -> Value {
        json!({
            "id": id, "version": 1, "application_id": "ap_1",
            "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"},
            "job": {"id": "jb_1", "name": "CS"}, "selection_step": null,
            "status": "scheduled", "start": "2026-12-01T10:00:00+09:00", "end": "2026-12-01T11:00:00+09:00",
            "time_zone": "Asia/Tokyo", "format": "online", "location": null, "video_conferencing_url": null,
            "interviewers": [], "candidate_response": "needs_action", "decline": null, "external_event_id": null,
            "created_at": "2026-11-19T10:00:00+09:00", "updated_at": "2026-11-20T09:00:00+09:00", "deleted_at": null
        })
    }

    fn page_of(items: &[Vec<u8>]) -> page::RawPage {
        let mut body = b"{\"items\": [".to_vec();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"], \"next_cursor\": \"c\", \"has_more\": false}");
        page::split(&body, "items").unwrap()
    }

    #[test]
    fn each_item_is_decided_on_its_own() {
        let good = record(json!("iv_1")).to_string().into_bytes();
        let numeric = record(json!(12345)).to_string().into_bytes();
        let mut wrong_type = record(json!("iv_3"));
        wrong_type["version"] = json!("three");
        let wrong_type = wrong_type.to_string().into_bytes();
        // invalid UTF-8 (Latin-1 é) in the location of a record with a good id
        let latin1 = {
            let mut v = record(json!("iv_4"));
            v["location"] = json!("cafMARK");
            let text = v.to_string().into_bytes();
            let at = text.windows(4).position(|w| w == b"MARK").unwrap();
            [&text[..at], &[0xE9u8][..], &text[at + 4..]].concat()
        };
        let no_id = {
            let mut v = record(json!(null));
            v.as_object_mut().unwrap().remove("id");
            v.to_string().into_bytes()
        };
        let page = page_of(&[good, numeric, wrong_type, latin1, no_id]);
        let decided: Vec<_> = page.items.iter().map(change_item).collect();
        assert!(matches!(&decided[0], Ok(Ok(iv)) if iv.id == "iv_1"));
        match &decided[1] {
            Err(bad) => {
                assert_eq!(bad.id.as_deref(), Some("12345"));
                assert_eq!(bad.position, 1);
                assert_eq!(bad.hash.len(), 12);
                assert!(bad.reason.contains("not a string"), "{}", bad.reason);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&decided[2], Ok(Err(u)) if u.id == "iv_3"),
            "{:?}",
            decided[2]
        );
        assert!(
            matches!(&decided[3], Ok(Err(u)) if u.id == "iv_4" && u.reason.contains("UTF-8")),
            "{:?}",
            decided[3]
        );
        assert!(
            matches!(&decided[4], Err(bad) if bad.id.is_none() && bad.position == 4),
            "{:?}",
            decided[4]
        );
    }

    #[test]
    fn a_token_with_a_control_character_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "abc\u{7}def\n").unwrap();
        assert!(matches!(
            read_token(&path, true).unwrap_err(),
            TokenError::ControlCharacter { .. }
        ));
        std::fs::write(&path, "abcdef\r\n").unwrap();
        assert!(read_token(&path, true).is_ok(), "a CRLF line end is fine");
    }

    #[test]
    fn server_words_lose_the_token() {
        let e = HitolinkError::Rejected {
            status: 400,
            message: "bad header Authorization: Bearer tok-123456789".into(),
        }
        .scrubbed(&["tok-123456789"]);
        assert!(!e.to_string().contains("tok-123456789"), "{e}");
    }
}
