//! The HITO-Link interview API client (HITOLINK-API.md).
//!
//! Reads stream the change feed page by page; every record is validated on
//! its own, so one bad record is reported, not fatal to its page. Writes
//! carry `If-Match` (the record's version) and, where the API asks for it,
//! an `Idempotency-Key`, so a retry after a lost answer cannot act twice.

use std::fmt;
use std::future::Future;
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
use hitosync_core::model::{Interview, InterviewStatus};
use hitosync_core::reconcile::{Decliner, InterviewChange};
use hitosync_net::http::{self as nethttp, Client};
use hitosync_net::page;
use hitosync_net::ratelimit::RateLimiter;
use hitosync_net::retry::{Backoff, Bounds, CancellationToken, InFlight};

pub use crate::decode::ChangePage;
use crate::decode::{change_item, decode_record};
pub use crate::error::{HitolinkError, SetupError};
pub use crate::token::{TokenError, read_token};

/// A cursor longer than this is not a cursor: HITO-Link's are short
/// opaque tokens, and whatever is accepted here is stored and sent back.
pub const MAX_CURSOR_BYTES: usize = 16 * 1024;

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
                if let Some(l) = &c.meeting_url {
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
        patch: InterviewPatch<'_>,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        let fields = &patch.to_json();
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
