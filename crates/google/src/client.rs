//! The organizer calendar: Calendar API v3 in google-calendar3's types,
//! sent through the shared HTTP client.
//!
//! google-calendar3's own call builders read every answer whole (no size
//! cap), lose `Retry-After` on a JSON error body, cannot send `If-Match`,
//! and fail a whole listing page on one event they cannot decode. So the
//! requests are made here, on the one client that caps bodies and times
//! out, and a listing page is split into its events before any is decoded:
//! an event that does not decode is reported on its own and the rest of
//! the page syncs.
//!
//! Every call goes through the rate limiter and the retry policy within
//! the client's [`Bounds`]; callers see one typed [`GoogleError`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;
use serde_json::Value;
use tracing::{debug, warn};
use url::Url;

use super::auth::{AuthError, ServiceAccount, TokenSource};
use super::error::GoogleError;
use hitosync_config::Config;
use hitosync_core::model::{CalendarEvent, EventStatus, UnreadableItem};
use hitosync_core::reconcile::{EventChange, EventDraft, Notify};

use crate::wire;
use hitosync_net::http::{self as nethttp, Client};
use hitosync_net::page;

pub use super::decode::event_from_api;
use super::decode::{decode_event, decode_one};
use hitosync_net::ratelimit::RateLimiter;
use hitosync_net::retry::{Backoff, Bounds, CancellationToken, InFlight};

/// A page or sync token longer than this is not one (Google's are a few
/// hundred characters); a sync token is stored and sent back.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One page of a listing. `next_sync_token` is set on the last page only,
/// as Google documents.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<CalendarEvent>,
    /// Events that did not decode (no `id`, a field of the wrong type, a
    /// time that cannot be placed), each with its `id` when it had one.
    pub unreadable: Vec<UnreadableItem>,
    pub next_page_token: Option<String>,
    pub next_sync_token: Option<String>,
}

/// Request counts by kind, for metrics and for the benchmarks' "requests
/// per cycle" (the emulators count too; these are the client's view).
#[derive(Debug, Default)]
pub struct Counters {
    pub list: AtomicU64,
    pub get: AtomicU64,
    pub insert: AtomicU64,
    pub patch: AtomicU64,
    /// Every attempt by result, retries, time waiting on the budget.
    pub calls: hitosync_net::retry::CallStats,
}

pub struct CalendarClient {
    http: Client,
    tokens: TokenSource,
    base_url: Url,
    calendar_id: String,
    limiter: RateLimiter,
    backoff: Backoff,
    bounds: Bounds,
    page_size: u32,
    pub counters: Arc<Counters>,
}

impl std::fmt::Debug for CalendarClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarClient")
            .field("base_url", &self.base_url.as_str())
            .field("calendar_id", &self.calendar_id)
            .finish_non_exhaustive()
    }
}

/// What it takes to build a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub api_base_url: String,
    pub token_uri: String,
    pub organizer: String,
    pub calendar_id: String,
    pub max_requests_per_minute: u32,
    pub backoff: Backoff,
    pub page_size: u32,
}

impl ClientOptions {
    pub fn from_config(config: &Config) -> ClientOptions {
        ClientOptions {
            api_base_url: config.google.api_base_url.clone(),
            token_uri: config.google.token_uri.clone(),
            organizer: config.google.organizer_email.clone(),
            calendar_id: config.google.calendar_id.clone(),
            max_requests_per_minute: config.google.max_requests_per_minute,
            backoff: Backoff::default(),
            page_size: 250,
        }
    }
}

impl CalendarClient {
    /// Loads the key and builds the client; no request is made yet.
    pub async fn connect(config: &Config) -> Result<CalendarClient, super::SetupError> {
        let account = ServiceAccount::from_config(config)?;
        let mut client = CalendarClient::new(&account, ClientOptions::from_config(config)).await?;
        client.bounds = Bounds::new(std::time::Duration::from_secs(
            config.google.max_retry_after_secs,
        ));
        Ok(client)
    }

    pub async fn new(
        account: &ServiceAccount,
        opts: ClientOptions,
    ) -> Result<CalendarClient, GoogleError> {
        let http = nethttp::client();
        let tokens = TokenSource::new(
            account,
            &opts.organizer,
            &opts.token_uri,
            nethttp::connector(),
        )
        .await?;
        let mut base = opts.api_base_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let base_url =
            Url::parse(&base).map_err(|e| GoogleError::Protocol(format!("api_base_url: {e}")))?;
        Ok(CalendarClient {
            http,
            tokens,
            base_url,
            calendar_id: opts.calendar_id,
            // Google meters per minute; a burst of 10 keeps short cycles snappy
            // without ever running ahead of the minute's budget for long.
            limiter: RateLimiter::new(opts.max_requests_per_minute, 10),
            backoff: opts.backoff,
            bounds: Bounds::default(),
            page_size: opts.page_size.clamp(1, 2500),
            counters: Arc::new(Counters::default()),
        })
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Keeps counting on `old`'s counters, so that metrics stay monotonic
    /// across a config reload.
    pub fn share_counters(&mut self, old: &CalendarClient) {
        self.counters = old.counters.clone();
        self.tokens.share_counter(&old.tokens);
    }

    /// Every wait of every later call ends at once when `token` fires, and
    /// the call returns [`GoogleError::Stopped`]. The daemon hands each
    /// cycle a fresh one.
    pub fn set_cancel(&mut self, token: CancellationToken) {
        self.bounds.cancel = token;
    }

    /// Replaces the limits on waiting (tests shorten them).
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    /// Runs `op` under the limiter, retrying what is worth retrying.
    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        in_flight: InFlight,
        op: F,
    ) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
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
    }

    /// One request with a fresh (or cached) token; the answer on success,
    /// the error sorted and scrubbed of the token otherwise.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<String>,
        headers: &[(http::HeaderName, String)],
        id: &str,
    ) -> Result<nethttp::Response, GoogleError> {
        // yup-oauth2 sets no timeout of its own: a token endpoint that never
        // answers must not hold the call longer than a request may take.
        let token = tokio::time::timeout(nethttp::REQUEST_TIMEOUT, self.tokens.token())
            .await
            .map_err(|_| {
                GoogleError::Auth(AuthError::Unreachable {
                    uri: self.tokens.token_uri().to_string(),
                    detail: format!("no answer within {:?}", nethttp::REQUEST_TIMEOUT),
                })
            })??;
        let mut all = vec![
            (http::header::AUTHORIZATION, token.bearer()),
            (
                http::header::USER_AGENT,
                format!("hitosync/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        all.extend(headers.iter().cloned());
        let resp = nethttp::send(&self.http, method, url.as_str(), &all, body)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    GoogleError::Transient(e.to_string())
                } else {
                    GoogleError::TooLarge {
                        detail: e.to_string(),
                    }
                }
            })?;
        if !resp.status.is_success() {
            let e = GoogleError::from_response(
                resp.status,
                &resp.body,
                id,
                nethttp::retry_after(&resp.headers),
            );
            return Err(e.scrubbed(&[token.secret()]));
        }
        Ok(resp)
    }

    /// One page of the calendar: a full listing without `sync_token`, the
    /// changes since it with one. Deleted events come back as tombstones
    /// (`status: cancelled`), which is how deletions are seen at all.
    pub async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError> {
        let mut url = self.calendar_url(&["events"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("showDeleted", "true");
            q.append_pair("maxResults", &self.page_size.to_string());
            if let Some(t) = sync_token {
                q.append_pair("syncToken", t);
            }
            if let Some(p) = page_token {
                q.append_pair("pageToken", p);
            }
        }
        let resp = self
            .with_retries("events.list", InFlight::Abandon, || async {
                self.counters.list.fetch_add(1, Ordering::Relaxed);
                self.send(Method::GET, &url, None, &[], "")
                    .await
                    .map_err(|e| self.calendar_missing(e))
            })
            .await?;
        let raw = page::split(&resp.body, "items")
            .map_err(|e| GoogleError::Protocol(format!("an undecodable events page: {e}")))?;
        let token = |name: &str| -> Result<Option<String>, GoogleError> {
            match raw.fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(t)) if t.len() > MAX_TOKEN_BYTES || t.contains('\u{FFFD}') => {
                    Err(GoogleError::Protocol(format!(
                        "an events page whose {name} is {} bytes of {}; a token is a short string",
                        t.len(),
                        if t.contains('\u{FFFD}') {
                            "text that is not UTF-8"
                        } else {
                            "text"
                        }
                    )))
                }
                Some(Value::String(t)) => Ok(Some(t.clone())),
                Some(other) => Err(GoogleError::Protocol(format!(
                    "an events page whose {name} is not a string: {other}"
                ))),
            }
        };
        let next_page_token = token("nextPageToken")?;
        let next_sync_token = token("nextSyncToken")?;
        let mut events = Vec::with_capacity(raw.items.len());
        let mut unreadable = Vec::new();
        for item in &raw.items {
            match decode_event(item) {
                Ok(ev) => events.push(ev),
                Err(bad) => {
                    warn!(position = bad.position, hash = %bad.hash, id = ?bad.id, reason = %bad.reason, "the calendar listed an event that cannot be read; the rest of the page goes on");
                    unreadable.push(bad);
                }
            }
        }
        debug!(
            events = events.len(),
            unreadable = unreadable.len(),
            more = next_page_token.is_some(),
            "listed a page"
        );
        Ok(EventPage {
            events,
            unreadable,
            next_page_token,
            next_sync_token,
        })
    }

    /// Reads one event (tombstones included).
    pub async fn get(&self, id: &str) -> Result<CalendarEvent, GoogleError> {
        let url = self.event_url(id)?;
        let resp = self
            .with_retries("events.get", InFlight::Abandon, || async {
                self.counters.get.fetch_add(1, Ordering::Relaxed);
                self.send(Method::GET, &url, None, &[], id).await
            })
            .await?;
        decode_one(&resp.body, id)
    }

    /// Creates an event under a client-chosen ID. A retry of an insert
    /// whose answer was lost gets `409`, which callers treat as "adopt".
    pub async fn insert(
        &self,
        event_id: &str,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        let mut url = self.calendar_url(&["events"])?;
        url.query_pairs_mut()
            .append_pair("sendUpdates", wire::send_updates(notify));
        // The generated types serialize unset fields as null; Google reads a
        // null as "clear this field", so they are dropped, as the generated
        // calls do.
        let mut json = serde_json::to_value(wire::insert_body(event_id, draft))
            .map_err(|e| GoogleError::Protocol(format!("cannot encode event {event_id}: {e}")))?;
        google_calendar3::common::remove_json_null_values(&mut json);
        let body = json.to_string();
        let resp = self
            .with_retries("events.insert", InFlight::Finish, || async {
                self.counters.insert.fetch_add(1, Ordering::Relaxed);
                self.send(Method::POST, &url, Some(body.clone()), &[], event_id)
                    .await
                    .map_err(|e| match e {
                        // 404 on an insert: the calendar, not the event
                        GoogleError::NotFound { .. } => self.calendar_missing(e),
                        other => other,
                    })
            })
            .await?;
        decode_one(&resp.body, event_id)
    }

    /// Patches an event, conditionally on `if_match` (its ETag) when given;
    /// `status` cancels or restores it.
    pub async fn patch(
        &self,
        id: &str,
        status: Option<EventStatus>,
        change: &EventChange,
        if_match: Option<&str>,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        let mut url = self.event_url(id)?;
        url.query_pairs_mut()
            .append_pair("sendUpdates", wire::send_updates(notify));
        let body = wire::patch_body(status, change).to_string();
        let headers: Vec<_> = if_match
            .map(|etag| (http::header::IF_MATCH, etag.to_string()))
            .into_iter()
            .collect();
        let resp = self
            .with_retries("events.patch", InFlight::Finish, || async {
                self.counters.patch.fetch_add(1, Ordering::Relaxed);
                self.send(Method::PATCH, &url, Some(body.clone()), &headers, id)
                    .await
            })
            .await?;
        decode_one(&resp.body, id)
    }

    /// A 404 where no single event was named means the calendar itself.
    fn calendar_missing(&self, e: GoogleError) -> GoogleError {
        match e {
            GoogleError::NotFound { .. } => GoogleError::CalendarNotFound {
                calendar_id: self.calendar_id.clone(),
            },
            other => other,
        }
    }

    fn event_url(&self, id: &str) -> Result<Url, GoogleError> {
        self.calendar_url(&["events", id])
    }

    fn calendar_url(&self, rest: &[&str]) -> Result<Url, GoogleError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| GoogleError::Protocol("api_base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(["calendars", &self.calendar_id])
            .extend(rest);
        Ok(url)
    }
}
