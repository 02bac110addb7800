//! Calendar API v3 as a state machine, without HTTP.
//!
//! It follows the behaviour Google documents for the calls hitosync and a
//! person in the Calendar UI make: sync tokens and `410 fullSyncRequired`,
//! paging, tombstones, ETags and `If-Match`, client-chosen IDs and `409`,
//! extended properties, attendees' answers, and the OAuth JWT-bearer grant
//! with domain-wide delegation. The HTTP layer (`super::http`) is a thin
//! wrapper, and property tests drive this type directly.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Requests (bodies) as the API sees them; answers as JSON.
pub type Json = Value;

/// An error answer: status plus Google's JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Google's error envelope.
    pub fn google(status: u16, domain: &str, reason: &str, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": {
                "errors": [{"domain": domain, "reason": reason, "message": message}],
                "code": status,
                "message": message,
            }}),
            retry_after: None,
        }
    }
    /// The OAuth endpoint's flat error shape.
    pub fn oauth(status: u16, error: &str, description: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": error, "error_description": description}),
            retry_after: None,
        }
    }
    fn not_found() -> ApiError {
        ApiError::google(404, "global", "notFound", "Not Found")
    }
    fn bad(message: &str) -> ApiError {
        ApiError::google(400, "global", "invalid", message)
    }
}

/// A fault to inject into the next calendar API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// `500 backendError`.
    ServerError,
    /// `503 backendError`.
    Unavailable,
    /// `429 rateLimitExceeded` with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// `403 userRateLimitExceeded` (Google's older rate-limit answer).
    RateLimit403,
    /// The call succeeds after this delay.
    Latency { millis: u64 },
}

/// What the token endpoint knows: the service account, its public key, the
/// Workspace users, and the Admin-console switches of the setup guide.
#[derive(Debug, Clone)]
pub struct AuthSetup {
    pub service_account: String,
    /// PKCS#1 RSAPublicKey DER, from the P12's certificate.
    pub public_key: Vec<u8>,
    /// Users that exist in the Workspace (and so may be impersonated).
    pub users: BTreeSet<String>,
    /// Domain-wide delegation (setup guide 2.): the scopes granted to the
    /// service account's client ID, or `None` when it is not registered.
    pub delegated_scopes: Option<BTreeSet<String>>,
    /// Setup guide 1-②: the Calendar API is enabled in the project.
    pub api_enabled: bool,
    /// Added to this machine's clock when checking `iat`/`exp`, to act out a
    /// client whose clock is wrong.
    pub clock_skew_secs: i64,
}

#[derive(Debug, Clone)]
struct StoredEvent {
    body: Map<String, Value>,
    seq: u64,
}

#[derive(Debug, Default)]
struct Calendar {
    events: BTreeMap<String, StoredEvent>,
    /// Each event at its latest change: what makes a delta cost its size,
    /// not the calendar's, as with Google.
    by_seq: BTreeMap<u64, String>,
}

#[derive(Debug, Clone)]
struct Grant {
    subject: Option<String>,
    expires: Instant,
}

/// One write, as recorded for tests that check who was notified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteRecord {
    pub method: &'static str,
    pub calendar: String,
    pub event_id: String,
    pub send_updates: String,
    /// The top-level fields the write changed.
    pub changed: Vec<String>,
}

#[derive(Debug)]
struct State {
    auth: AuthSetup,
    grants: HashMap<String, Grant>,
    calendars: BTreeMap<String, Calendar>,
    seq: u64,
    token_epoch: u64,
    faults: VecDeque<Fault>,
    counters: BTreeMap<String, u64>,
    writes: Vec<WriteRecord>,
    quota: Option<Quota>,
    next_random_id: u64,
}

/// A per-minute request quota over all calendar calls, with a time scale so
/// a benchmark can act out a minute in less than one.
#[derive(Debug)]
struct Quota {
    per_window: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

/// The emulator. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct GoogleEmulator {
    state: Mutex<State>,
}

/// Who is calling, once the bearer token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    subject: Option<String>,
}

/// The query of `events.list`, as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub sync_token: Option<String>,
    pub page_token: Option<String>,
    pub max_results: Option<i64>,
    pub show_deleted: Option<bool>,
    #[serde(default)]
    pub private_extended_property: Vec<String>,
    pub time_min: Option<String>,
    pub time_max: Option<String>,
    pub updated_min: Option<String>,
    pub q: Option<String>,
    pub order_by: Option<String>,
    #[serde(rename = "iCalUID")]
    pub i_cal_uid: Option<String>,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state half-written in
    // a way later calls would misread (every mutation is a single insert or
    // field update), so recover the guard rather than poisoning forever.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GoogleEmulator {
    pub fn new(auth: AuthSetup) -> GoogleEmulator {
        let calendars = auth
            .users
            .iter()
            .map(|u| (u.clone(), Calendar::default()))
            .collect();
        GoogleEmulator {
            state: Mutex::new(State {
                auth,
                grants: HashMap::new(),
                calendars,
                seq: 0,
                token_epoch: 1,
                faults: VecDeque::new(),
                counters: BTreeMap::new(),
                writes: Vec::new(),
                quota: None,
                next_random_id: 1,
            }),
        }
    }

    // -----------------------------------------------------------------
    // OAuth token endpoint
    // -----------------------------------------------------------------

    /// `POST /token` with a JWT-bearer grant. `audience` is this endpoint's
    /// own URL, which the JWT's `aud` must name.
    pub fn token(
        &self,
        grant_type: &str,
        assertion: &str,
        audience: &str,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        *st.counters.entry("token".into()).or_default() += 1;
        if grant_type != JWT_BEARER {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ));
        }
        let claims = verify_jwt(assertion, &st.auth.public_key)?;
        let claim_str = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let iss = claim_str("iss").unwrap_or_default();
        if iss != st.auth.service_account {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid grant: account not found",
            ));
        }
        if claims.get("__bad_signature").is_some() {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid JWT Signature.",
            ));
        }
        let aud = claim_str("aud").unwrap_or_default();
        if aud != audience {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                &format!(
                    "Invalid JWT: Failed audience check. The audience in the JWT ('{aud}') does not match the expected audience ('{audience}')."
                ),
            ));
        }
        let now = Utc::now().timestamp() + st.auth.clock_skew_secs;
        let iat = claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(0);
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        // Google allows a little skew, and at most an hour of validity.
        if exp <= now || iat > now + 300 || exp - iat > 3600 || exp < iat {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            ));
        }
        let scopes: BTreeSet<String> = claim_str("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if scopes.is_empty() {
            return Err(ApiError::oauth(
                400,
                "invalid_scope",
                "Empty or missing scope not allowed.",
            ));
        }
        let subject = claim_str("sub");
        if let Some(sub) = &subject {
            let sub = sub.to_ascii_lowercase();
            if !st.auth.users.contains(&sub) {
                // Groups exist but have no calendar of their own: Google
                // answers them like unknown users.
                return Err(ApiError::oauth(
                    400,
                    "invalid_grant",
                    "Invalid email or User ID",
                ));
            }
            let granted = st.auth.delegated_scopes.as_ref();
            if granted.is_none_or(|g| !scopes.is_subset(g)) {
                return Err(ApiError::oauth(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                ));
            }
        }
        let token = format!("ya29.emu-{}", random_token());
        st.grants.insert(
            token.clone(),
            Grant {
                subject: subject.map(|s| s.to_ascii_lowercase()),
                expires: Instant::now() + Duration::from_secs(3599),
            },
        );
        Ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
    }

    // -----------------------------------------------------------------
    // Per-call gate: counters, bearer token, API switch, quota, faults
    // -----------------------------------------------------------------

    /// Checks the caller and applies what the admin injected. Returns a
    /// latency to wait before answering, if one was injected.
    pub fn begin(
        &self,
        call: &str,
        bearer: Option<&str>,
    ) -> Result<(Principal, Option<Duration>), ApiError> {
        let mut st = lock(&self.state);
        *st.counters.entry(call.to_string()).or_default() += 1;
        let Some(token) = bearer else {
            return Err(ApiError {
                status: 401,
                body: json!({"error": {
                    "code": 401,
                    "message": "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Login Required.", "domain": "global", "reason": "required", "location": "Authorization", "locationType": "header"}],
                    "status": "UNAUTHENTICATED"
                }}),
                retry_after: None,
            });
        };
        let principal = match st.grants.get(token) {
            Some(g) if g.expires > Instant::now() => Principal {
                subject: g.subject.clone(),
            },
            _ => {
                return Err(ApiError::google(
                    401,
                    "global",
                    "authError",
                    "Invalid Credentials",
                ));
            }
        };
        if !st.auth.api_enabled {
            let message = "Google Calendar API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/calendar-json.googleapis.com/overview?project=123456789012 then retry.";
            let mut e = ApiError::google(403, "usageLimits", "accessNotConfigured", message);
            e.body["error"]["status"] = json!("PERMISSION_DENIED");
            return Err(e);
        }
        if let Some(q) = st.quota.as_mut() {
            let now = Instant::now();
            while q
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= q.window)
            {
                q.recent.pop_front();
            }
            if q.recent.len() as u32 >= q.per_window {
                *st.counters.entry("rate_limited".into()).or_default() += 1;
                return Err(ApiError::google(
                    403,
                    "usageLimits",
                    "userRateLimitExceeded",
                    "Rate Limit Exceeded",
                ));
            }
            q.recent.push_back(now);
        }
        match st.faults.pop_front() {
            None => Ok((principal, None)),
            Some(Fault::Latency { millis }) => Ok((principal, Some(Duration::from_millis(millis)))),
            Some(fault) => {
                *st.counters.entry("faults".into()).or_default() += 1;
                Err(match fault {
                    Fault::ServerError => {
                        ApiError::google(500, "global", "backendError", "Backend Error")
                    }
                    Fault::Unavailable => {
                        ApiError::google(503, "global", "backendError", "Service Unavailable")
                    }
                    Fault::TooManyRequests { retry_after_secs } => {
                        let mut e = ApiError::google(
                            429,
                            "usageLimits",
                            "rateLimitExceeded",
                            "Rate Limit Exceeded",
                        );
                        e.retry_after = Some(retry_after_secs);
                        e
                    }
                    Fault::RateLimit403 => ApiError::google(
                        403,
                        "usageLimits",
                        "userRateLimitExceeded",
                        "Rate Limit Exceeded",
                    ),
                    Fault::Latency { .. } => {
                        ApiError::google(500, "global", "backendError", "Backend Error")
                    }
                })
            }
        }
    }

    // -----------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------

    pub fn list(
        &self,
        who: &Principal,
        calendar_id: &str,
        q: &ListQuery,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        if q.sync_token.is_some()
            && (q.time_min.is_some()
                || q.time_max.is_some()
                || q.updated_min.is_some()
                || q.q.is_some()
                || q.order_by.is_some()
                || q.i_cal_uid.is_some()
                || !q.private_extended_property.is_empty())
        {
            return Err(ApiError::bad(
                "Sync token cannot be used with timeMin, timeMax, updatedMin, q, orderBy, iCalUID or privateExtendedProperty.",
            ));
        }
        let max = match q.max_results {
            None => 250,
            Some(n) if n < 1 => return Err(ApiError::bad("Invalid value for maxResults")),
            Some(n) => n.min(2500) as usize,
        };
        let filters: Vec<(String, String)> = q
            .private_extended_property
            .iter()
            .map(|f| match f.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(ApiError::bad("Invalid privateExtendedProperty filter")),
            })
            .collect::<Result<_, _>>()?;
        // Where this listing starts and ends in the change sequence. A page
        // token carries both, so a listing read page by page is one
        // consistent cut: changes made meanwhile land in the next delta.
        let (since, upto, after_seq, show_deleted) = match &q.page_token {
            Some(pt) => {
                let p = PageToken::decode(pt).ok_or_else(|| ApiError::bad("Invalid page token"))?;
                if p.epoch != st.token_epoch {
                    return Err(full_sync_required());
                }
                (Some(p.since), p.upto, p.after, p.show_deleted)
            }
            None => {
                let since = match &q.sync_token {
                    Some(t) => {
                        let (epoch, seq) = decode_sync_token(t).ok_or_else(full_sync_required)?;
                        if epoch != st.token_epoch || seq > st.seq {
                            return Err(full_sync_required());
                        }
                        Some(seq)
                    }
                    None => None,
                };
                // A delta always includes deletions, as Google documents.
                let show_deleted = since.is_some() || q.show_deleted.unwrap_or(false);
                (since, st.seq, 0, show_deleted)
            }
        };
        let cal = st.calendars.get(&owner).ok_or_else(ApiError::not_found)?;
        let from = since.unwrap_or(0).max(after_seq);
        let mut matching: Vec<&StoredEvent> = cal
            .by_seq
            .range(from + 1..=upto.max(from + 1))
            .filter_map(|(_, id)| cal.events.get(id))
            .filter(|e| e.seq <= upto)
            .filter(|e| {
                show_deleted || e.body.get("status").and_then(|s| s.as_str()) != Some("cancelled")
            })
            .filter(|e| {
                filters.iter().all(|(k, v)| {
                    e.body
                        .get("extendedProperties")
                        .and_then(|p| p.get("private"))
                        .and_then(|p| p.get(k))
                        .and_then(|x| x.as_str())
                        == Some(v.as_str())
                })
            })
            .take(max + 1)
            .collect();
        matching.sort_by_key(|e| e.seq);
        let more = matching.len() > max;
        matching.truncate(max);
        let items: Vec<Value> = matching
            .iter()
            .map(|e| Value::Object(e.body.clone()))
            .collect();
        let mut out = json!({
            "kind": "calendar#events",
            "etag": format!("\"{upto}\""),
            "summary": owner,
            "timeZone": "Asia/Tokyo",
            "accessRole": "owner",
            "items": items,
        });
        if more {
            let last = matching.last().map(|e| e.seq).unwrap_or(after_seq);
            out["nextPageToken"] = json!(
                PageToken {
                    epoch: st.token_epoch,
                    since: since.unwrap_or(0),
                    upto,
                    after: last,
                    show_deleted,
                }
                .encode()
            );
        } else {
            out["nextSyncToken"] = json!(encode_sync_token(st.token_epoch, upto));
        }
        Ok(out)
    }

    pub fn get(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        st.calendars
            .get(&owner)
            .and_then(|c| c.events.get(event_id))
            .map(|e| Value::Object(e.body.clone()))
            .ok_or_else(ApiError::not_found)
    }

    pub fn insert(
        &self,
        who: &Principal,
        calendar_id: &str,
        body: Json,
        send_updates: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        st.insert_event(&owner, body, send_updates.unwrap_or("none"), "insert")
    }

    /// PATCH: the fields given replace the stored ones (objects merge,
    /// arrays are replaced, `null` clears).
    pub fn patch(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        body: Json,
        if_match: Option<&str>,
        send_updates: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        st.modify(
            &owner,
            event_id,
            if_match,
            send_updates.unwrap_or("none"),
            "patch",
            |stored| merge(stored, body),
        )
    }

    /// PUT: the body replaces the event, except what the server owns.
    pub fn update(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        body: Json,
        if_match: Option<&str>,
        send_updates: Option<&str>,
    ) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        st.modify(
            &owner,
            event_id,
            if_match,
            send_updates.unwrap_or("none"),
            "update",
            |stored| {
                let Value::Object(new) = body else {
                    return Err(ApiError::bad("The request body must be an event."));
                };
                let keep: Vec<(String, Value)> = SERVER_FIELDS
                    .iter()
                    .filter_map(|k| stored.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                *stored = new;
                for (k, v) in keep {
                    stored.insert(k, v);
                }
                Ok(())
            },
        )
    }

    /// DELETE: the event becomes a tombstone; deleting it again is `410`.
    pub fn delete(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        if_match: Option<&str>,
        send_updates: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut st = lock(&self.state);
        let owner = st.resolve(who, calendar_id)?;
        let cancelled = st
            .calendars
            .get(&owner)
            .and_then(|c| c.events.get(event_id))
            .map(|e| e.body.get("status").and_then(|s| s.as_str()) == Some("cancelled"));
        match cancelled {
            None => return Err(ApiError::not_found()),
            Some(true) => {
                return Err(ApiError::google(
                    410,
                    "global",
                    "deleted",
                    "Resource has been deleted",
                ));
            }
            Some(false) => {}
        }
        st.modify(
            &owner,
            event_id,
            if_match,
            send_updates.unwrap_or("none"),
            "delete",
            |stored| {
                stored.insert("status".into(), json!("cancelled"));
                Ok(())
            },
        )
        .map(|_| ())
    }

    // -----------------------------------------------------------------
    // Admin: a person in the Calendar UI, and the test harness
    // -----------------------------------------------------------------

    /// The organizer creates an event in the UI (a random ID, no extended
    /// properties unless given).
    pub fn ui_create(&self, owner: &str, mut body: Json) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        let id = format!("ui{:08}abc", st.next_random_id);
        st.next_random_id += 1;
        if body.get("id").is_none() {
            body["id"] = json!(id);
        }
        st.insert_event(&owner.to_ascii_lowercase(), body, "all", "ui_create")
    }

    /// The organizer edits an event in the UI (move, place, title, ...).
    pub fn ui_edit(&self, owner: &str, event_id: &str, fields: Json) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        st.modify(
            &owner.to_ascii_lowercase(),
            event_id,
            None,
            "all",
            "ui_edit",
            |stored| merge(stored, fields),
        )
    }

    /// The organizer deletes an event in the UI.
    pub fn ui_delete(&self, owner: &str, event_id: &str) -> Result<Json, ApiError> {
        let mut st = lock(&self.state);
        st.modify(
            &owner.to_ascii_lowercase(),
            event_id,
            None,
            "all",
            "ui_delete",
            |stored| {
                stored.insert("status".into(), json!("cancelled"));
                Ok(())
            },
        )
    }

    /// A guest answers the invitation; the organizer's copy records it.
    pub fn guest_reply(
        &self,
        owner: &str,
        event_id: &str,
        guest: &str,
        response: &str,
    ) -> Result<Json, ApiError> {
        if !matches!(
            response,
            "needsAction" | "accepted" | "tentative" | "declined"
        ) {
            return Err(ApiError::bad("Invalid responseStatus"));
        }
        let guest = guest.to_ascii_lowercase();
        let mut st = lock(&self.state);
        st.modify(
            &owner.to_ascii_lowercase(),
            event_id,
            None,
            "none",
            "guest_reply",
            |stored| {
                let attendees = stored
                    .get_mut("attendees")
                    .and_then(|a| a.as_array_mut())
                    .ok_or_else(|| ApiError::bad("The event has no attendees"))?;
                let a = attendees
                    .iter_mut()
                    .find(|a| {
                        a.get("email")
                            .and_then(|e| e.as_str())
                            .map(str::to_ascii_lowercase)
                            == Some(guest.clone())
                    })
                    .ok_or_else(|| ApiError::bad("That guest is not invited"))?;
                a["responseStatus"] = json!(response);
                Ok(())
            },
        )
    }

    /// Every sync and page token issued so far stops working (`410`).
    pub fn invalidate_sync_tokens(&self) {
        lock(&self.state).token_epoch += 1;
    }

    pub fn inject(&self, fault: Fault, count: usize) {
        let mut st = lock(&self.state);
        for _ in 0..count {
            st.faults.push_back(fault);
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Requests per call name (`events.list`, `events.patch`, `token`, ...).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.state).counters.clone()
    }

    pub fn reset_counters(&self) {
        let mut st = lock(&self.state);
        st.counters.clear();
        st.writes.clear();
    }

    /// The writes made so far, with whom they notified.
    pub fn writes(&self) -> Vec<WriteRecord> {
        lock(&self.state).writes.clone()
    }

    /// A quota over calendar calls: `per_minute` requests in every window
    /// of `60s / time_scale`. `None` lifts it.
    pub fn set_quota(&self, per_minute: Option<u32>, time_scale: f64) {
        let mut st = lock(&self.state);
        st.quota = per_minute.map(|n| Quota {
            per_window: n,
            window: Duration::from_secs_f64(60.0 / time_scale.max(0.001)),
            recent: VecDeque::new(),
        });
    }

    /// Changes the Admin/Cloud-console switches (delegation, API enabled,
    /// clock skew) in place.
    pub fn with_auth<R>(&self, f: impl FnOnce(&mut AuthSetup) -> R) -> R {
        let mut st = lock(&self.state);
        let r = f(&mut st.auth);
        let users: Vec<String> = st.auth.users.iter().cloned().collect();
        for u in users {
            st.calendars.entry(u).or_default();
        }
        r
    }

    /// Every event of a calendar, tombstones included (for assertions).
    pub fn events(&self, owner: &str) -> Vec<Json> {
        lock(&self.state)
            .calendars
            .get(&owner.to_ascii_lowercase())
            .map(|c| {
                c.events
                    .values()
                    .map(|e| Value::Object(e.body.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An access token for `subject` without the OAuth exchange, for callers
    /// in the same process (property tests) that still go through `begin`.
    pub fn issue_token(&self, subject: &str) -> String {
        let token = format!("ya29.inproc-{}", random_token());
        lock(&self.state).grants.insert(
            token.clone(),
            Grant {
                subject: Some(subject.to_ascii_lowercase()),
                expires: Instant::now() + Duration::from_secs(86_400),
            },
        );
        token
    }

    /// Forgets the issued access tokens, as if they all expired.
    pub fn expire_access_tokens(&self) {
        lock(&self.state).grants.clear();
    }
}

/// Fields the server sets; a client's values for them are ignored.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "etag",
    "kind",
    "created",
    "updated",
    "htmlLink",
    "iCalUID",
    "sequence",
    "organizer",
    "creator",
];

fn full_sync_required() -> ApiError {
    ApiError::google(
        410,
        "global",
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
    )
}

impl State {
    /// Which calendar a call means: `primary` is the caller's own.
    fn resolve(&mut self, who: &Principal, calendar_id: &str) -> Result<String, ApiError> {
        let Some(subject) = &who.subject else {
            // The service account itself has no access to users' calendars.
            return Err(ApiError::not_found());
        };
        let id = calendar_id.to_ascii_lowercase();
        if id == "primary" || id == *subject {
            Ok(subject.clone())
        } else {
            Err(ApiError::not_found())
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn insert_event(
        &mut self,
        owner: &str,
        body: Json,
        send_updates: &str,
        method: &'static str,
    ) -> Result<Json, ApiError> {
        let Value::Object(mut body) = body else {
            return Err(ApiError::bad("The request body must be an event."));
        };
        let id = match body.get("id").and_then(|v| v.as_str()) {
            Some(id) => {
                if !valid_event_id(id) {
                    return Err(ApiError::bad("Invalid resource id value."));
                }
                id.to_string()
            }
            None => {
                let id = format!("emu{:010}", self.next_random_id);
                self.next_random_id += 1;
                id
            }
        };
        let cal = self.calendars.get(owner).ok_or_else(ApiError::not_found)?;
        if cal.events.contains_key(&id) {
            return Err(ApiError::google(
                409,
                "global",
                "duplicate",
                "The requested identifier already exists.",
            ));
        }
        check_times(&body)?;
        for k in SERVER_FIELDS {
            body.remove(*k);
        }
        body.entry("status").or_insert(json!("confirmed"));
        let now = Utc::now();
        body.insert("id".into(), json!(id));
        body.insert("kind".into(), json!("calendar#event"));
        body.insert("created".into(), json!(rfc3339(now)));
        body.insert("iCalUID".into(), json!(format!("{id}@google.com")));
        body.insert(
            "htmlLink".into(),
            json!(format!("https://www.google.com/calendar/event?eid={id}")),
        );
        body.insert("sequence".into(), json!(0));
        body.insert("organizer".into(), json!({"email": owner, "self": true}));
        body.insert("creator".into(), json!({"email": owner, "self": true}));
        let seq = self.next_seq();
        stamp(&mut body, seq, now);
        let changed = body.keys().cloned().collect();
        self.writes.push(WriteRecord {
            method,
            calendar: owner.to_string(),
            event_id: id.clone(),
            send_updates: send_updates.to_string(),
            changed,
        });
        let out = Value::Object(body.clone());
        let cal = self
            .calendars
            .get_mut(owner)
            .ok_or_else(ApiError::not_found)?;
        cal.by_seq.insert(seq, id.clone());
        cal.events.insert(id, StoredEvent { body, seq });
        Ok(out)
    }

    fn modify(
        &mut self,
        owner: &str,
        event_id: &str,
        if_match: Option<&str>,
        send_updates: &str,
        method: &'static str,
        edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), ApiError>,
    ) -> Result<Json, ApiError> {
        let seq = self.seq + 1;
        let cal = self
            .calendars
            .get_mut(owner)
            .ok_or_else(ApiError::not_found)?;
        let stored = cal
            .events
            .get_mut(event_id)
            .ok_or_else(ApiError::not_found)?;
        if let Some(tag) = if_match
            && tag != "*"
            && Some(tag) != stored.body.get("etag").and_then(|e| e.as_str())
        {
            return Err(ApiError::google(
                412,
                "global",
                "conditionNotMet",
                "Precondition Failed",
            ));
        }
        let before = stored.body.clone();
        let mut after = before.clone();
        edit(&mut after)?;
        for k in SERVER_FIELDS {
            match before.get(*k) {
                Some(v) => after.insert(k.to_string(), v.clone()),
                None => after.remove(*k),
            };
        }
        if after.get("status").and_then(|s| s.as_str()).is_none() {
            after.insert("status".into(), json!("confirmed"));
        }
        if !matches!(
            after.get("status").and_then(|s| s.as_str()),
            Some("confirmed" | "tentative" | "cancelled")
        ) {
            return Err(ApiError::bad("Invalid value for: status"));
        }
        check_times(&after)?;
        let changed: Vec<String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
            .collect();
        if changed.is_empty() {
            // Google answers an empty change with the event as it is.
            return Ok(Value::Object(before));
        }
        // Attendees see a new version when what they see moves.
        if changed
            .iter()
            .any(|k| matches!(k.as_str(), "start" | "end" | "location" | "status"))
        {
            let s = after.get("sequence").and_then(|s| s.as_i64()).unwrap_or(0);
            after.insert("sequence".into(), json!(s + 1));
        }
        stamp(&mut after, seq, Utc::now());
        stored.body = after.clone();
        let old_seq = std::mem::replace(&mut stored.seq, seq);
        cal.by_seq.remove(&old_seq);
        cal.by_seq.insert(seq, event_id.to_string());
        self.seq = seq;
        self.writes.push(WriteRecord {
            method,
            calendar: owner.to_string(),
            event_id: event_id.to_string(),
            send_updates: send_updates.to_string(),
            changed,
        });
        Ok(Value::Object(after))
    }
}

fn stamp(body: &mut Map<String, Value>, seq: u64, now: DateTime<Utc>) {
    body.insert(
        "etag".into(),
        json!(format!("\"{}\"", 3_100_000_000_000_000u64 + seq)),
    );
    body.insert("updated".into(), json!(rfc3339(now)));
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Objects merge key by key, anything else replaces, `null` removes.
fn merge(target: &mut Map<String, Value>, patch: Json) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad("The request body must be an event."));
    };
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(sub) if k != "start" && k != "end" => {
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

fn event_time(body: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(t) = body.get(key) else {
        return Ok(None);
    };
    if let Some(dt) = t.get("dateTime").and_then(|d| d.as_str()) {
        return DateTime::parse_from_rfc3339(dt)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|_| ApiError::bad(&format!("Invalid {key} time.")));
    }
    if let Some(d) = t.get("date").and_then(|d| d.as_str()) {
        return chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).map(|n| n.and_utc()))
            .map_err(|_| ApiError::bad(&format!("Invalid {key} date.")));
    }
    Err(ApiError::bad(&format!("Missing {key} time.")))
}

fn check_times(body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.get("status").and_then(|s| s.as_str()) == Some("cancelled")
        && !body.contains_key("start")
    {
        return Ok(());
    }
    let start = event_time(body, "start")?.ok_or_else(|| ApiError::bad("Missing start time."))?;
    let end = event_time(body, "end")?.ok_or_else(|| ApiError::bad("Missing end time."))?;
    if end < start {
        return Err(ApiError::bad("The specified time range is empty."));
    }
    Ok(())
}

/// Google's rule for client-chosen IDs: base32hex characters (a-v, 0-9),
/// 5 to 1024 of them.
pub fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'))
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct PageToken {
    epoch: u64,
    since: u64,
    upto: u64,
    after: u64,
    show_deleted: bool,
}

impl PageToken {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "p.{}.{}.{}.{}.{}",
            self.epoch, self.since, self.upto, self.after, self.show_deleted as u8
        ))
    }
    fn decode(s: &str) -> Option<PageToken> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.strip_prefix("p.")?.split('.');
        let mut next = || parts.next()?.parse::<u64>().ok();
        Some(PageToken {
            epoch: next()?,
            since: next()?,
            upto: next()?,
            after: next()?,
            show_deleted: next()? == 1,
        })
    }
}

fn encode_sync_token(epoch: u64, seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("s.{epoch}.{seq}"))
}

fn decode_sync_token(s: &str) -> Option<(u64, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (epoch, seq) = raw.strip_prefix("s.")?.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// Decodes base64url with or without padding, as JWTs are seen in the wild.
fn b64url(s: &str) -> Option<Vec<u8>> {
    let trimmed = s.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
}

/// Checks an RS256 JWT and returns its claims. A bad signature is reported
/// after the issuer check (Google names an unknown account first), so it is
/// flagged in the claims rather than returned at once.
fn verify_jwt(jwt: &str, public_key: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let malformed = || ApiError::oauth(400, "invalid_grant", "Invalid JWT: malformed assertion.");
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: Value =
        serde_json::from_slice(&b64url(h).ok_or_else(malformed)?).map_err(|_| malformed())?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(ApiError::oauth(
            400,
            "invalid_grant",
            "Invalid JWT: unsupported algorithm.",
        ));
    }
    let claims: Value =
        serde_json::from_slice(&b64url(c).ok_or_else(malformed)?).map_err(|_| malformed())?;
    let Value::Object(mut claims) = claims else {
        return Err(malformed());
    };
    let signature = b64url(s).ok_or_else(malformed)?;
    let signed = &jwt[..h.len() + 1 + c.len()];
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    );
    if key.verify(signed.as_bytes(), &signature).is_err() {
        claims.insert("__bad_signature".into(), json!(true));
    }
    Ok(claims)
}

/// The RSA public key (PKCS#1 DER) inside an X.509 certificate.
pub fn public_key_of_certificate(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulator() -> (GoogleEmulator, Principal) {
        let emu = GoogleEmulator::new(AuthSetup {
            service_account: "sa@p.iam.gserviceaccount.com".into(),
            public_key: vec![],
            users: ["recruit@example.co.jp".to_string()].into(),
            delegated_scopes: None,
            api_enabled: true,
            clock_skew_secs: 0,
        });
        let who = Principal {
            subject: Some("recruit@example.co.jp".into()),
        };
        (emu, who)
    }

    fn event(id: &str, hour: u32) -> Json {
        json!({
            "id": id,
            "summary": "面接",
            "start": {"dateTime": format!("2026-12-01T{hour:02}:00:00+09:00"), "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": format!("2026-12-01T{:02}:00:00+09:00", hour + 1), "timeZone": "Asia/Tokyo"},
            "extendedProperties": {"private": {"hitolinkInterviewId": id}},
        })
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
    fn insert_conflicts_even_with_cancelled_ids() {
        let (emu, who) = emulator();
        emu.insert(&who, "primary", event("iv00001", 10), Some("all"))
            .unwrap();
        emu.delete(&who, "primary", "iv00001", None, None).unwrap();
        let e = emu
            .insert(&who, "primary", event("iv00001", 10), None)
            .unwrap_err();
        assert_eq!(e.status, 409);
        let e = emu
            .delete(&who, "primary", "iv00001", None, None)
            .unwrap_err();
        assert_eq!(e.status, 410);
        let e = emu
            .insert(&who, "primary", event("bad_id", 10), None)
            .unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn etags_guard_writes_and_sequence_follows_time() {
        let (emu, who) = emulator();
        let ev = emu
            .insert(&who, "primary", event("iv00001", 10), None)
            .unwrap();
        let etag = ev["etag"].as_str().unwrap().to_string();
        let moved = emu
            .patch(
                &who,
                "primary",
                "iv00001",
                json!({"start": event("x", 11)["start"], "end": event("x", 11)["end"]}),
                Some(&etag),
                Some("all"),
            )
            .unwrap();
        assert_eq!(moved["sequence"], json!(1));
        assert_ne!(moved["etag"], json!(etag));
        let stale = emu.patch(
            &who,
            "primary",
            "iv00001",
            json!({"location": "A"}),
            Some(&etag),
            None,
        );
        assert_eq!(stale.unwrap_err().status, 412);
        // bookkeeping does not bump the sequence
        let tagged = emu
            .patch(
                &who,
                "primary",
                "iv00001",
                json!({"extendedProperties": {"private": {"x": "1"}}}),
                None,
                None,
            )
            .unwrap();
        assert_eq!(tagged["sequence"], json!(1));
        assert_eq!(
            tagged["extendedProperties"]["private"]["hitolinkInterviewId"],
            json!("iv00001")
        );
        let e = emu.patch(
            &who,
            "primary",
            "iv00001",
            json!({"end": event("x", 8)["end"]}),
            None,
            None,
        );
        assert_eq!(e.unwrap_err().status, 400);
    }

    #[test]
    fn paging_and_deltas_form_one_consistent_cut() {
        let (emu, who) = emulator();
        for i in 0..5 {
            emu.insert(&who, "primary", event(&format!("iv0000{i}"), 10), None)
                .unwrap();
        }
        let q = ListQuery {
            max_results: Some(2),
            ..Default::default()
        };
        let p1 = emu.list(&who, "primary", &q).unwrap();
        assert_eq!(p1["items"].as_array().unwrap().len(), 2);
        assert!(p1.get("nextSyncToken").is_none());
        // a change while paging: not in this listing, in the next delta
        emu.ui_edit("recruit@example.co.jp", "iv00004", json!({"location": "B"}))
            .unwrap();
        emu.ui_edit("recruit@example.co.jp", "iv00000", json!({"location": "C"}))
            .unwrap();
        let mut seen: Vec<String> = vec![];
        let mut page = p1;
        let sync = loop {
            for it in page["items"].as_array().unwrap() {
                seen.push(it["id"].as_str().unwrap().into());
            }
            match page.get("nextPageToken").and_then(|t| t.as_str()) {
                Some(t) => {
                    page = emu
                        .list(
                            &who,
                            "primary",
                            &ListQuery {
                                page_token: Some(t.into()),
                                max_results: Some(2),
                                ..Default::default()
                            },
                        )
                        .unwrap()
                }
                None => break page["nextSyncToken"].as_str().unwrap().to_string(),
            }
        };
        assert_eq!(seen, ["iv00000", "iv00001", "iv00002", "iv00003"]);
        let delta = emu
            .list(
                &who,
                "primary",
                &ListQuery {
                    sync_token: Some(sync.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        let ids: Vec<&str> = delta["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["iv00004", "iv00000"]);
        // a quiet delta is empty, tombstones appear in deltas
        let next = delta["nextSyncToken"].as_str().unwrap().to_string();
        emu.ui_delete("recruit@example.co.jp", "iv00002").unwrap();
        let d2 = emu
            .list(
                &who,
                "primary",
                &ListQuery {
                    sync_token: Some(next),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(d2["items"][0]["status"], json!("cancelled"));
        emu.invalidate_sync_tokens();
        let gone = emu.list(
            &who,
            "primary",
            &ListQuery {
                sync_token: Some(sync),
                ..Default::default()
            },
        );
        assert_eq!(gone.unwrap_err().status, 410);
        let bad = emu.list(
            &who,
            "primary",
            &ListQuery {
                sync_token: Some("x".into()),
                q: Some("a".into()),
                ..Default::default()
            },
        );
        assert_eq!(bad.unwrap_err().status, 400);
    }

    #[test]
    fn filters_by_private_property() {
        let (emu, who) = emulator();
        emu.insert(&who, "primary", event("iv00001", 10), None)
            .unwrap();
        emu.insert(&who, "primary", event("iv00002", 10), None)
            .unwrap();
        let q = ListQuery {
            private_extended_property: vec!["hitolinkInterviewId=iv00002".into()],
            ..Default::default()
        };
        let out = emu.list(&who, "primary", &q).unwrap();
        assert_eq!(out["items"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn faults_come_in_order() {
        let (emu, _) = emulator();
        emu.inject(
            Fault::TooManyRequests {
                retry_after_secs: 2,
            },
            1,
        );
        emu.inject(Fault::ServerError, 1);
        emu.with_auth(|_| ());
        let mut st = lock(&emu.state);
        st.grants.insert(
            "t".into(),
            Grant {
                subject: Some("recruit@example.co.jp".into()),
                expires: Instant::now() + Duration::from_secs(60),
            },
        );
        drop(st);
        let e = emu.begin("events.list", Some("t")).unwrap_err();
        assert_eq!((e.status, e.retry_after), (429, Some(2)));
        assert_eq!(emu.begin("events.list", Some("t")).unwrap_err().status, 500);
        assert!(emu.begin("events.list", Some("t")).is_ok());
        assert_eq!(emu.begin("events.list", None).unwrap_err().status, 401);
        assert_eq!(
            emu.begin("events.list", Some("nope")).unwrap_err().status,
            401
        );
        assert_eq!(emu.counters()["events.list"], 5);
    }
}
