//! The organizer calendar, through google-calendar3 where it can, and
//! through the same HTTP client where it cannot (conditional writes).
//!
//! Every call goes through the rate limiter and the retry policy; callers
//! see one typed [`GoogleError`] after retries are spent.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use google_calendar3::CalendarHub;
use google_calendar3::api::{Event, Scope};
use http::Method;
use serde_json::Value;
use tracing::debug;
use url::Url;

use super::auth::{ServiceAccount, TokenSource};
use super::error::GoogleError;
use hitosync_config::Config;
use hitosync_core::model::{Attendee, CalendarEvent, EventStatus, Organizer, Response, Slot};
use hitosync_core::reconcile::{EventChange, EventDraft, Notify};

use crate::wire;
use hitosync_net::http::{self as nethttp, Client};
use hitosync_net::ratelimit::RateLimiter;
use hitosync_net::retry::Backoff;

/// One page of a listing. `next_sync_token` is set on the last page only,
/// as Google documents.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<CalendarEvent>,
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
    hub: CalendarHub<nethttp::Connector>,
    http: Client,
    tokens: TokenSource,
    base_url: Url,
    calendar_id: String,
    limiter: RateLimiter,
    backoff: Backoff,
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
        Ok(CalendarClient::new(&account, ClientOptions::from_config(config)).await?)
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
        let mut hub = CalendarHub::new(http.clone(), tokens.clone());
        hub.base_url(base.clone());
        hub.root_url(base.clone());
        hub.user_agent(format!("hitosync/{}", env!("CARGO_PKG_VERSION")));
        Ok(CalendarClient {
            hub,
            http,
            tokens,
            base_url,
            calendar_id: opts.calendar_id,
            // Google meters per minute; a burst of 10 keeps short cycles snappy
            // without ever running ahead of the minute's budget for long.
            limiter: RateLimiter::new(opts.max_requests_per_minute, 10),
            backoff: opts.backoff,
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

    /// Runs `op` under the limiter, retrying what is worth retrying.
    async fn with_retries<T, F, Fut>(&self, what: &str, op: F) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
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

    /// One page of the calendar: a full listing without `sync_token`, the
    /// changes since it with one. Deleted events come back as tombstones
    /// (`status: cancelled`), which is how deletions are seen at all.
    pub async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError> {
        let events = self
            .with_retries("events.list", || async {
                self.counters.list.fetch_add(1, Ordering::Relaxed);
                let mut call = self
                    .hub
                    .events()
                    .list(&self.calendar_id)
                    .show_deleted(true)
                    .max_results(self.page_size as i32)
                    .add_scope(Scope::Full);
                if let Some(t) = sync_token {
                    call = call.sync_token(t);
                }
                if let Some(p) = page_token {
                    call = call.page_token(p);
                }
                call.doit()
                    .await
                    .map(|(_, ev)| ev)
                    .map_err(|e| GoogleError::from_hub(e, ""))
            })
            .await?;
        let items = events.items.unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for ev in items {
            out.push(event_from_api(ev)?);
        }
        debug!(
            events = out.len(),
            more = events.next_page_token.is_some(),
            "listed a page"
        );
        Ok(EventPage {
            events: out,
            next_page_token: events.next_page_token,
            next_sync_token: events.next_sync_token,
        })
    }

    /// Reads one event (tombstones included).
    pub async fn get(&self, id: &str) -> Result<CalendarEvent, GoogleError> {
        let ev = self
            .with_retries("events.get", || async {
                self.counters.get.fetch_add(1, Ordering::Relaxed);
                self.hub
                    .events()
                    .get(&self.calendar_id, id)
                    .add_scope(Scope::Full)
                    .doit()
                    .await
                    .map(|(_, ev)| ev)
                    .map_err(|e| GoogleError::from_hub(e, id))
            })
            .await?;
        event_from_api(ev)
    }

    /// Creates an event under a client-chosen ID. A retry of an insert
    /// whose answer was lost gets `409`, which callers treat as "adopt".
    pub async fn insert(
        &self,
        event_id: &str,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        let body = wire::insert_body(event_id, draft);
        let ev = self
            .with_retries("events.insert", || async {
                self.counters.insert.fetch_add(1, Ordering::Relaxed);
                self.hub
                    .events()
                    .insert(body.clone(), &self.calendar_id)
                    .send_updates(wire::send_updates(notify))
                    .add_scope(Scope::Full)
                    .doit()
                    .await
                    .map(|(_, ev)| ev)
                    .map_err(|e| GoogleError::from_hub(e, event_id))
            })
            .await?;
        event_from_api(ev)
    }

    /// Patches an event, conditionally on `if_match` (its ETag) when given;
    /// `status` cancels or restores it. google-calendar3 cannot send
    /// `If-Match`, so this goes through the shared HTTP client with a token
    /// from the same source.
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
        let value: Value = self
            .with_retries("events.patch", || async {
                self.counters.patch.fetch_add(1, Ordering::Relaxed);
                let token = self.tokens.token().await?;
                let mut headers = vec![(http::header::AUTHORIZATION, token.bearer())];
                if let Some(etag) = if_match {
                    headers.push((http::header::IF_MATCH, etag.to_string()));
                }
                let resp = nethttp::send(
                    &self.http,
                    Method::PATCH,
                    url.as_str(),
                    &headers,
                    Some(body.clone()),
                )
                .await
                .map_err(|e| GoogleError::Transient(e.to_string()))?;
                if !resp.status.is_success() {
                    return Err(GoogleError::from_response(
                        resp.status,
                        &resp.body,
                        id,
                        nethttp::retry_after(&resp.headers),
                    ));
                }
                serde_json::from_slice(&resp.body)
                    .map_err(|e| GoogleError::Protocol(format!("undecodable event: {e}")))
            })
            .await?;
        let ev: Event = serde_json::from_value(value)
            .map_err(|e| GoogleError::Protocol(format!("undecodable event: {e}")))?;
        event_from_api(ev)
    }

    fn event_url(&self, id: &str) -> Result<Url, GoogleError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| GoogleError::Protocol("api_base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(["calendars", &self.calendar_id, "events", id]);
        Ok(url)
    }
}

/// The API's event in hitosync's terms. An event without an ID or ETag is
/// not something the API sends; treat it as a protocol error, not a panic.
pub fn event_from_api(ev: Event) -> Result<CalendarEvent, GoogleError> {
    let id = ev
        .id
        .ok_or_else(|| GoogleError::Protocol("an event without an id".into()))?;
    let slot = match (
        ev.start.as_ref().and_then(|s| s.date_time),
        ev.end.as_ref().and_then(|e| e.date_time),
    ) {
        (Some(start), Some(end)) => Some(Slot { start, end }),
        _ => None,
    };
    let all_day = ev.start.as_ref().is_some_and(|s| s.date.is_some());
    let attendees = ev
        .attendees
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            Some(Attendee {
                email: a.email?.to_ascii_lowercase(),
                display_name: a.display_name,
                response: a
                    .response_status
                    .as_deref()
                    .and_then(Response::from_google)
                    .unwrap_or(Response::NeedsAction),
                organizer: a.organizer.unwrap_or(false),
                resource: a.resource.unwrap_or(false),
                is_self: a.self_.unwrap_or(false),
            })
        })
        .collect();
    Ok(CalendarEvent {
        etag: ev.etag.unwrap_or_default(),
        status: EventStatus::parse(ev.status.as_deref().unwrap_or("confirmed")),
        summary: ev.summary,
        description: ev.description,
        location: ev.location,
        slot,
        time_zone: ev.start.and_then(|s| s.time_zone),
        attendees,
        private_properties: ev
            .extended_properties
            .and_then(|p| p.private)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        sequence: ev.sequence.unwrap_or(0) as i64,
        updated: ev.updated,
        created: ev.created,
        organizer: ev.organizer.map(|o| Organizer {
            email: o.email.map(|e| e.to_ascii_lowercase()),
            is_self: o.self_.unwrap_or(false),
        }),
        all_day,
        recurring: ev.recurrence.is_some_and(|r| !r.is_empty()),
        recurring_event_id: ev.recurring_event_id,
        id,
    })
}
