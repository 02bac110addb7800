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
use tracing::debug;
use url::Url;

use hitosync_config::Config;
use hitosync_core::model::{Interview, InterviewStatus, Unsyncable};
use hitosync_core::reconcile::{Decliner, InterviewChange};
use hitosync_net::http::{self as nethttp, Client};
use hitosync_net::ratelimit::RateLimiter;
use hitosync_net::retry::Backoff;

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
}

impl HitolinkError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HitolinkError::RateLimited { .. } | HitolinkError::Transient(_)
        )
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
    /// Each record validated on its own.
    pub items: Vec<Result<Interview, Unsyncable>>,
    pub next_cursor: String,
    pub has_more: bool,
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

/// What one `PATCH /v1/interviews/{id}` writes: the synced fields, the
/// cancellation, or the link to the event. The JSON of each is built here
/// and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InterviewPatch<'a> {
    Change(&'a InterviewChange),
    Cancel,
    ExternalEventId(&'a str),
}

impl InterviewPatch<'_> {
    pub fn to_json(&self) -> Value {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match self {
            InterviewPatch::Cancel => json!({"status": InterviewStatus::Canceled.as_str()}),
            InterviewPatch::ExternalEventId(id) => json!({"external_event_id": id}),
            InterviewPatch::Change(c) => {
                let mut v = json!({});
                if let Some(slot) = c.slot {
                    v["start"] = json!(t(slot.start));
                    v["end"] = json!(t(slot.end));
                }
                if let Some(l) = &c.location {
                    v["location"] = l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
                }
                if let Some(l) = &c.link {
                    v["video_conferencing_url"] =
                        l.as_ref().map(|s| json!(s)).unwrap_or(Value::Null);
                }
                if c.reopen {
                    v["status"] = json!(InterviewStatus::Scheduled.as_str());
                }
                if !c.responses.is_empty() {
                    v["interviewers"] = Value::Array(
                        c.responses
                            .iter()
                            .map(|(id, r)| json!({"id": id, "response_status": r.hitolink()}))
                            .collect(),
                    );
                }
                v
            }
        }
    }
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
        Ok(HitolinkClient::new(
            base,
            token,
            h.max_requests_per_minute,
            Backoff::default(),
        ))
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
            counters: Arc::new(Counters::default()),
        }
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

    /// Runs `op` under the limiter, retrying what is worth retrying.
    async fn with_retries<T, F, Fut>(&self, what: &str, op: F) -> Result<T, HitolinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HitolinkError>>,
    {
        hitosync_net::retry::with_retries(
            &self.limiter,
            &self.backoff,
            &self.counters.calls,
            what,
            op,
        )
        .await
    }

    /// One request; JSON in, JSON out, errors sorted.
    async fn call(
        &self,
        method: Method,
        url: &Url,
        what: &str,
        body: Option<&Value>,
        extra: &[(http::HeaderName, String)],
    ) -> Result<Value, HitolinkError> {
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
        .map_err(|e| HitolinkError::Transient(e.to_string()))?;
        if !resp.status.is_success() {
            return Err(HitolinkError::from_response(&resp, what));
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| HitolinkError::Protocol(format!("undecodable answer: {e}")))
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
        let v = self
            .with_retries("changes", || {
                self.counters.changes.fetch_add(1, Ordering::Relaxed);
                self.call(Method::GET, &url, "the change feed", None, &[])
            })
            .await?;
        let items = v
            .get("items")
            .and_then(|i| i.as_array())
            .ok_or_else(|| HitolinkError::Protocol("a change page without items".into()))?
            .iter()
            .map(Interview::from_json)
            .collect::<Vec<_>>();
        let next_cursor = v
            .get("next_cursor")
            .and_then(|c| c.as_str())
            .ok_or_else(|| HitolinkError::Protocol("a change page without next_cursor".into()))?
            .to_string();
        let has_more = v.get("has_more").and_then(|h| h.as_bool()).unwrap_or(false);
        debug!(items = items.len(), has_more, "read a change page");
        Ok(ChangePage {
            items,
            next_cursor,
            has_more,
        })
    }

    /// One interview, tombstones included.
    pub async fn get(&self, id: &str) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews", id])?;
        let v = self
            .with_retries("get", || {
                self.counters.get.fetch_add(1, Ordering::Relaxed);
                self.call(Method::GET, &url, id, None, &[])
            })
            .await?;
        Ok(Interview::from_json(&v)?)
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
        let v = self
            .with_retries("create", || {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.call(Method::POST, &url, &what, Some(&body), &headers)
            })
            .await?;
        Ok(Interview::from_json(&v)?)
    }

    /// Patches the writable fields, conditionally on `version`.
    pub async fn patch(
        &self,
        id: &str,
        patch: InterviewPatch<'_>,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        let fields = &patch.to_json();
        let url = self.url(&["interviews", id])?;
        let headers = [(http::header::IF_MATCH, version.to_string())];
        let v = self
            .with_retries("patch", || {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.call(Method::PATCH, &url, id, Some(fields), &headers)
            })
            .await?;
        Ok(Interview::from_json(&v)?)
    }

    /// Records a decline seen in the calendar.
    pub async fn decline(
        &self,
        id: &str,
        by: &Decliner,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        let url = self.url(&["interviews", id, "decline"])?;
        let mut body = match by {
            Decliner::Candidate => json!({"by": "candidate"}),
            Decliner::Interviewer { interviewer_id } => {
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
        let v = self
            .with_retries("decline", || {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.call(Method::POST, &url, id, Some(&body), &headers)
            })
            .await?;
        Ok(Interview::from_json(&v)?)
    }

    /// Looks up an application (to check a booking made in the calendar).
    pub async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        let url = self.url(&["applications", id])?;
        let what = format!("application {id}");
        let v = self
            .with_retries("application", || {
                self.counters.get.fetch_add(1, Ordering::Relaxed);
                self.call(Method::GET, &url, &what, None, &[])
            })
            .await?;
        serde_json::from_value(v)
            .map_err(|e| HitolinkError::Protocol(format!("undecodable application: {e}")))
    }
}
