//! The HITO-Link interview API (HITOLINK-API.md) as a state machine.
//!
//! One change feed orders every record by its latest change, so a cursor is
//! a position in that order: a record changed while pages are read moves
//! behind the cursor and is read again later, never skipped. Tombstones stay
//! in the feed. The HTTP layer (`super::http`) wraps this type; property
//! tests drive it directly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use hitosync_core::model::{DeclineRecord, InterviewRecord, InterviewerRecord, Named, Person};

/// An error answer: status and `{"error", "message"}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, error: &str, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": error, "message": message}),
            retry_after: None,
        }
    }
    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "invalid", &message.into())
    }
    fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "not_found", &format!("{what} not found"))
    }
}

/// A success answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, body }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    ServerError,
    Unavailable,
    TooManyRequests { retry_after_secs: u64 },
    Latency { millis: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub candidate: Person,
    pub job: Named,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// The `--seed` file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub applications: Vec<Application>,
    #[serde(default)]
    pub interviews: Vec<InterviewRecord>,
    /// Interviewers who may be named by email in bookings; the interviewers
    /// of seeded interviews are added too.
    #[serde(default)]
    pub users: Vec<User>,
    /// Selection steps (選考ステップ) a booking may name.
    #[serde(default)]
    pub selection_steps: Vec<Named>,
}

#[derive(Debug)]
struct RateWindow {
    per_minute: u32,
    recent: VecDeque<Instant>,
}

#[derive(Debug)]
struct State {
    token: String,
    applications: BTreeMap<String, Application>,
    users: BTreeMap<String, User>,
    steps: BTreeMap<String, Named>,
    interviews: BTreeMap<String, InterviewRecord>,
    /// Change feed: position -> record id; each record sits at its latest change.
    feed: BTreeMap<u64, String>,
    position: HashMap<String, u64>,
    seq: u64,
    cursor_epoch: u64,
    /// (call, key) -> the first successful answer.
    idempotency: HashMap<(String, String), Answer>,
    faults: VecDeque<Fault>,
    counters: BTreeMap<String, u64>,
    rate: Option<RateWindow>,
    next_id: u64,
}

#[derive(Debug)]
pub struct HitolinkEmulator {
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every mutation is applied whole after validation, so a poisoned lock
    // holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn jst() -> FixedOffset {
    // +09:00 is within FixedOffset's ±24h range, so the fallback never runs.
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| Utc.fix())
}

fn now_jst() -> String {
    Utc::now()
        .with_timezone(&jst())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Times as the server answers them: in +09:00, whatever offset was sent.
fn to_jst(field: &str, value: &str) -> Result<String, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&jst())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .map_err(|_| ApiError::invalid(format!("{field} must be an RFC 3339 time with an offset")))
}

fn instant(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

const RESPONSES: &[&str] = &["needs_action", "accepted", "tentative", "declined"];

impl HitolinkEmulator {
    pub fn new(token: &str, seed: Seed) -> HitolinkEmulator {
        let mut st = State {
            token: token.to_string(),
            applications: BTreeMap::new(),
            users: BTreeMap::new(),
            steps: BTreeMap::new(),
            interviews: BTreeMap::new(),
            feed: BTreeMap::new(),
            position: HashMap::new(),
            seq: 0,
            cursor_epoch: 1,
            idempotency: HashMap::new(),
            faults: VecDeque::new(),
            counters: BTreeMap::new(),
            rate: Some(RateWindow {
                per_minute: 100,
                recent: VecDeque::new(),
            }),
            next_id: 1,
        };
        for a in seed.applications {
            st.applications.insert(a.id.clone(), a);
        }
        for u in seed.users {
            st.users.insert(u.email.to_ascii_lowercase(), u);
        }
        for s in seed.selection_steps {
            st.steps.insert(s.id.clone(), s);
        }
        for r in seed.interviews {
            for i in &r.interviewers {
                st.users
                    .entry(i.email.to_ascii_lowercase())
                    .or_insert(User {
                        id: i.id.clone(),
                        name: i.name.clone(),
                        email: i.email.clone(),
                    });
            }
            if let Some(s) = &r.selection_step {
                st.steps.entry(s.id.clone()).or_insert(s.clone());
            }
            st.applications
                .entry(r.application_id.clone())
                .or_insert(Application {
                    id: r.application_id.clone(),
                    candidate: r.candidate.clone(),
                    job: r.job.clone(),
                });
            if let Some(n) = r.id.strip_prefix("iv_").and_then(|n| n.parse::<u64>().ok()) {
                st.next_id = st.next_id.max(n + 1);
            }
            st.store(r);
        }
        HitolinkEmulator {
            state: Mutex::new(st),
        }
    }

    /// Checks the bearer token, the rate limit and injected faults, and
    /// counts the call. Returns an injected latency, if any.
    pub fn begin(&self, call: &str, bearer: Option<&str>) -> Result<Option<Duration>, ApiError> {
        let mut st = lock(&self.state);
        *st.counters.entry(call.to_string()).or_default() += 1;
        if bearer != Some(st.token.as_str()) {
            return Err(ApiError::new(
                401,
                "unauthorized",
                "missing or invalid bearer token",
            ));
        }
        if let Some(rate) = st.rate.as_mut() {
            let now = Instant::now();
            let minute = Duration::from_secs(60);
            while rate
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= minute)
            {
                rate.recent.pop_front();
            }
            if rate.recent.len() as u32 >= rate.per_minute {
                let oldest = rate.recent.front().copied().unwrap_or(now);
                let wait = minute
                    .saturating_sub(now.duration_since(oldest))
                    .as_secs()
                    .max(1);
                *st.counters.entry("rate_limited".into()).or_default() += 1;
                let mut e = ApiError::new(429, "rate_limited", "too many requests");
                e.retry_after = Some(wait);
                return Err(e);
            }
            rate.recent.push_back(now);
        }
        match st.faults.pop_front() {
            None => Ok(None),
            Some(Fault::Latency { millis }) => Ok(Some(Duration::from_millis(millis))),
            Some(f) => {
                *st.counters.entry("faults".into()).or_default() += 1;
                Err(match f {
                    Fault::ServerError => ApiError::new(500, "internal", "internal server error"),
                    Fault::Unavailable => ApiError::new(503, "unavailable", "service unavailable"),
                    Fault::TooManyRequests { retry_after_secs } => {
                        let mut e = ApiError::new(429, "rate_limited", "too many requests");
                        e.retry_after = Some(retry_after_secs);
                        e
                    }
                    Fault::Latency { .. } => {
                        ApiError::new(500, "internal", "internal server error")
                    }
                })
            }
        }
    }

    // -----------------------------------------------------------------
    // The documented endpoints
    // -----------------------------------------------------------------

    /// `GET /v1/interviews/changes`.
    pub fn changes(&self, cursor: Option<&str>, limit: Option<&str>) -> Result<Answer, ApiError> {
        let st = lock(&self.state);
        let limit = match limit {
            None => 200,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => return Err(ApiError::invalid("limit must be between 1 and 500")),
            },
        };
        let after = match cursor {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some((epoch, seq)) if epoch == st.cursor_epoch && seq <= st.seq => seq,
                _ => {
                    return Err(ApiError::new(
                        410,
                        "cursor_expired",
                        "the cursor is unknown or expired; start again without a cursor",
                    ));
                }
            },
        };
        let mut items = Vec::new();
        let mut last = after;
        let mut rest = st.feed.range(after + 1..);
        for (seq, id) in rest.by_ref().take(limit) {
            if let Some(r) = st.interviews.get(id) {
                items.push(serde_json::to_value(r).unwrap_or(Value::Null));
            }
            last = *seq;
        }
        let has_more = rest.next().is_some();
        Ok(ok(json!({
            "items": items,
            "next_cursor": encode_cursor(st.cursor_epoch, last),
            "has_more": has_more,
        })))
    }

    /// `GET /v1/interviews/{id}`: tombstones too.
    pub fn get(&self, id: &str) -> Result<Answer, ApiError> {
        let st = lock(&self.state);
        st.interviews
            .get(id)
            .map(|r| ok(to_json(r)))
            .ok_or_else(|| ApiError::not_found("interview"))
    }

    /// `GET /v1/applications/{id}`.
    pub fn application(&self, id: &str) -> Result<Answer, ApiError> {
        let st = lock(&self.state);
        st.applications
            .get(id)
            .map(|a| ok(json!(a)))
            .ok_or_else(|| ApiError::not_found("application"))
    }

    /// `POST /v1/interviews`: a booking made in the calendar.
    pub fn create(&self, idempotency_key: Option<&str>, body: &Value) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let key = required_key(idempotency_key)?;
        if let Some(first) = st.idempotency.get(&("create".into(), key.to_string())) {
            return Ok(Answer {
                status: 200,
                body: first.body.clone(),
            });
        }
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
        const FIELDS: &[&str] = &[
            "application_id",
            "selection_step_id",
            "start",
            "end",
            "time_zone",
            "interviewers",
            "external_event_id",
            "location",
            "video_conferencing_url",
        ];
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ApiError::invalid(format!("unknown field {k}")));
        }
        let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let app_id = text("application_id")
            .ok_or_else(|| ApiError::invalid("application_id is required"))?;
        let app = st
            .applications
            .get(&app_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("application"))?;
        let step = match obj.get("selection_step_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                st.steps
                    .get(s)
                    .cloned()
                    .ok_or_else(|| ApiError::invalid(format!("unknown selection_step_id {s}")))?,
            ),
            Some(_) => return Err(ApiError::invalid("selection_step_id must be a string")),
        };
        let start = to_jst(
            "start",
            &text("start").ok_or_else(|| ApiError::invalid("start is required"))?,
        )?;
        let end = to_jst(
            "end",
            &text("end").ok_or_else(|| ApiError::invalid("end is required"))?,
        )?;
        if instant(&end) <= instant(&start) {
            return Err(ApiError::invalid("end must be after start"));
        }
        let time_zone = text("time_zone").unwrap_or_else(|| "Asia/Tokyo".into());
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::invalid(format!("unknown time_zone {time_zone}")));
        }
        let mut interviewers = vec![];
        for e in obj
            .get("interviewers")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
        {
            let email = e
                .as_str()
                .ok_or_else(|| ApiError::invalid("interviewers must be emails"))?;
            let u = st
                .users
                .get(&email.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {email}")))?;
            interviewers.push(InterviewerRecord {
                id: u.id.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                response_status: "needs_action".into(),
            });
        }
        let url = text("video_conferencing_url");
        let now = now_jst();
        let id = format!("iv_{:06}", st.next_id);
        st.next_id += 1;
        let record = InterviewRecord {
            id,
            version: 1,
            application_id: app.id.clone(),
            candidate: app.candidate.clone(),
            job: app.job.clone(),
            selection_step: step,
            status: "scheduled".into(),
            start: Some(start),
            end: Some(end),
            time_zone,
            format: if url.is_some() {
                "online".into()
            } else {
                "in_person".into()
            },
            location: text("location"),
            video_conferencing_url: url,
            interviewers,
            candidate_response: "needs_action".into(),
            decline: None,
            external_event_id: text("external_event_id"),
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
        };
        let body = to_json(&record);
        st.store(record);
        st.idempotency.insert(
            ("create".into(), key.to_string()),
            Answer {
                status: 201,
                body: body.clone(),
            },
        );
        Ok(Answer { status: 201, body })
    }

    /// `PATCH /v1/interviews/{id}` with `If-Match: <version>`.
    pub fn patch(
        &self,
        id: &str,
        if_match: Option<&str>,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let current = st.live(id)?.clone();
        check_version(&current, if_match)?;
        let next = apply_patch(&current, body, &st.users, false)?;
        Ok(ok(st.commit(current, next)))
    }

    /// `POST /v1/interviews/{id}/decline`.
    pub fn decline(
        &self,
        id: &str,
        if_match: Option<&str>,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let key = required_key(idempotency_key)?;
        let scope = (format!("decline:{id}"), key.to_string());
        if let Some(first) = st.idempotency.get(&scope) {
            return Ok(first.clone());
        }
        let current = st.live(id)?.clone();
        check_version(&current, if_match)?;
        let next = apply_decline(&current, body)?;
        let answer = ok(st.commit(current, next));
        st.idempotency.insert(scope, answer.clone());
        Ok(answer)
    }

    // -----------------------------------------------------------------
    // Admin: a recruiter in HITO-Link's UI, and the test harness
    // -----------------------------------------------------------------

    /// A recruiter creates an interview. `fields` may set anything of the
    /// record but the server's own fields; application and step default to
    /// the first known ones.
    pub fn admin_create(&self, fields: &Value) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let app_id = fields
            .get("application_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| st.applications.keys().next().cloned())
            .ok_or_else(|| ApiError::invalid("no application to attach the interview to"))?;
        let app = st
            .applications
            .get(&app_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("application"))?;
        let now = now_jst();
        let id = format!("iv_{:06}", st.next_id);
        st.next_id += 1;
        let blank = InterviewRecord {
            id,
            version: 1,
            application_id: app.id,
            candidate: app.candidate,
            job: app.job,
            selection_step: st.steps.values().next().cloned(),
            status: "needs_scheduling".into(),
            start: None,
            end: None,
            time_zone: "Asia/Tokyo".into(),
            format: "in_person".into(),
            location: None,
            video_conferencing_url: None,
            interviewers: vec![],
            candidate_response: "needs_action".into(),
            decline: None,
            external_event_id: None,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
        };
        let mut fields = fields.clone();
        if let Some(o) = fields.as_object_mut() {
            o.remove("application_id");
        }
        let record = apply_patch(&blank, &fields, &st.users, true)?;
        let record = InterviewRecord {
            version: 1,
            ..record
        };
        let body = to_json(&record);
        st.store(record);
        Ok(Answer { status: 201, body })
    }

    /// A recruiter edits, reschedules or cancels an interview (any field).
    pub fn admin_edit(&self, id: &str, fields: &Value) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let current = st.live(id)?.clone();
        let next = apply_patch(&current, fields, &st.users, true)?;
        Ok(ok(st.commit(current, next)))
    }

    /// A recruiter records a decline (辞退) in HITO-Link.
    pub fn admin_decline(&self, id: &str, body: &Value) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let current = st.live(id)?.clone();
        let next = apply_decline(&current, body)?;
        Ok(ok(st.commit(current, next)))
    }

    /// A recruiter deletes an interview: it stays in the feed as a tombstone.
    pub fn admin_delete(&self, id: &str) -> Result<Answer, ApiError> {
        let mut st = lock(&self.state);
        let current = st.live(id)?.clone();
        let mut next = current.clone();
        next.deleted_at = Some(now_jst());
        Ok(ok(st.commit(current, next)))
    }

    pub fn add_application(&self, app: Application) {
        lock(&self.state).applications.insert(app.id.clone(), app);
    }

    pub fn add_user(&self, user: User) {
        lock(&self.state)
            .users
            .insert(user.email.to_ascii_lowercase(), user);
    }

    /// Every cursor handed out so far answers `410` from now on.
    pub fn invalidate_cursors(&self) {
        lock(&self.state).cursor_epoch += 1;
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

    /// `None` lifts the rate limit (tests and benchmarks that are not about it).
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        lock(&self.state).rate = per_minute.map(|n| RateWindow {
            per_minute: n,
            recent: VecDeque::new(),
        });
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.state).counters.clone()
    }

    pub fn reset_counters(&self) {
        lock(&self.state).counters.clear();
    }

    /// Every record, tombstones included (for assertions).
    pub fn interviews(&self) -> Vec<InterviewRecord> {
        lock(&self.state).interviews.values().cloned().collect()
    }
}

impl State {
    /// Puts a record at the end of the change feed.
    fn store(&mut self, r: InterviewRecord) {
        self.seq += 1;
        if let Some(old) = self.position.insert(r.id.clone(), self.seq) {
            self.feed.remove(&old);
        }
        self.feed.insert(self.seq, r.id.clone());
        self.interviews.insert(r.id.clone(), r);
    }

    /// A record that may be written: it exists and is not deleted.
    fn live(&self, id: &str) -> Result<&InterviewRecord, ApiError> {
        match self.interviews.get(id) {
            Some(r) if r.deleted_at.is_none() => Ok(r),
            _ => Err(ApiError::not_found("interview")),
        }
    }

    /// Stores `next` if it differs from `current` (new version, new feed
    /// position); a write that changes nothing keeps the version.
    fn commit(&mut self, current: InterviewRecord, mut next: InterviewRecord) -> Value {
        let same = InterviewRecord {
            updated_at: current.updated_at.clone(),
            version: current.version,
            ..next.clone()
        } == current;
        if same {
            return to_json(&current);
        }
        next.version = current.version + 1;
        next.updated_at = now_jst();
        let body = to_json(&next);
        self.store(next);
        body
    }
}

fn to_json(r: &InterviewRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Writes that must not happen twice carry an `Idempotency-Key`.
fn required_key(key: Option<&str>) -> Result<&str, ApiError> {
    key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        ApiError::new(
            400,
            "idempotency_key_required",
            "Idempotency-Key header is required",
        )
    })
}

fn check_version(current: &InterviewRecord, if_match: Option<&str>) -> Result<(), ApiError> {
    let Some(tag) = if_match else {
        return Err(ApiError::new(
            428,
            "precondition_required",
            "If-Match with the record's version is required",
        ));
    };
    let tag = tag.trim().trim_matches('"');
    if tag.parse::<u64>().ok() != Some(current.version) {
        let mut e = ApiError::new(
            412,
            "precondition_failed",
            "the record changed since that version",
        );
        e.body["current"] = to_json(current);
        return Err(e);
    }
    Ok(())
}

/// Applies the writable fields of a PATCH. `admin` lifts the API's limits
/// (a recruiter in the UI may set any status, the interviewers, the format).
fn apply_patch(
    current: &InterviewRecord,
    body: &Value,
    users: &BTreeMap<String, User>,
    admin: bool,
) -> Result<InterviewRecord, ApiError> {
    let obj: &Map<String, Value> = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    const API_FIELDS: &[&str] = &[
        "start",
        "end",
        "location",
        "video_conferencing_url",
        "external_event_id",
        "status",
        "interviewers",
    ];
    const ADMIN_FIELDS: &[&str] = &[
        "format",
        "candidate_response",
        "selection_step",
        "time_zone",
    ];
    let mut r = current.clone();
    for (k, v) in obj {
        let opt_text = || -> Result<Option<String>, ApiError> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(ApiError::invalid(format!("{k} must be a string or null"))),
            }
        };
        match k.as_str() {
            "start" => r.start = opt_text()?.map(|t| to_jst("start", &t)).transpose()?,
            "end" => r.end = opt_text()?.map(|t| to_jst("end", &t)).transpose()?,
            "location" => r.location = opt_text()?,
            "video_conferencing_url" => r.video_conferencing_url = opt_text()?,
            "external_event_id" => r.external_event_id = opt_text()?,
            "status" => {
                let s = opt_text()?.ok_or_else(|| ApiError::invalid("status cannot be null"))?;
                let allowed: &[&str] = if admin {
                    &[
                        "needs_scheduling",
                        "scheduled",
                        "candidate_declined",
                        "canceled",
                        "complete",
                    ]
                } else {
                    &["scheduled", "canceled"]
                };
                if !allowed.contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!(
                        "unknown or read-only status {s}"
                    )));
                }
                r.status = s;
            }
            "interviewers" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| ApiError::invalid("interviewers must be a list"))?;
                r.interviewers = patch_interviewers(&r.interviewers, list, users, admin)?;
            }
            "format" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if !["online", "in_person", "phone"].contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!("unknown format {s}")));
                }
                r.format = s;
            }
            "candidate_response" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if !RESPONSES.contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!("unknown candidate_response {s}")));
                }
                r.candidate_response = s;
            }
            "time_zone" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if s.parse::<chrono_tz::Tz>().is_err() {
                    return Err(ApiError::invalid(format!("unknown time_zone {s}")));
                }
                r.time_zone = s;
            }
            "selection_step" if admin => {
                r.selection_step = serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::invalid("selection_step must be {id, name}"))?;
            }
            other if API_FIELDS.contains(&other) || ADMIN_FIELDS.contains(&other) => {
                return Err(ApiError::invalid(format!("{other} is read-only")));
            }
            other => return Err(ApiError::invalid(format!("unknown field {other}"))),
        }
    }
    match (&r.start, &r.end) {
        (Some(s), Some(e)) => {
            if instant(e) <= instant(s) {
                return Err(ApiError::invalid("end must be after start"));
            }
            if r.status == "needs_scheduling" {
                r.status = "scheduled".into();
            }
        }
        (None, None) => {
            if r.status != "needs_scheduling"
                && (obj.contains_key("start") || obj.contains_key("end"))
            {
                return Err(ApiError::invalid(
                    "start and end may be cleared only with status needs_scheduling",
                ));
            }
            if r.status == "scheduled" {
                return Err(ApiError::invalid(
                    "a scheduled interview needs start and end",
                ));
            }
        }
        _ => return Err(ApiError::invalid("start and end are set together")),
    }
    Ok(r)
}

/// `interviewers[]` in a PATCH: the API changes the answers of the listed
/// interviewers (by `id` or `email`); a recruiter may also replace the list.
fn patch_interviewers(
    current: &[InterviewerRecord],
    list: &[Value],
    users: &BTreeMap<String, User>,
    admin: bool,
) -> Result<Vec<InterviewerRecord>, ApiError> {
    let replace = admin && list.iter().all(|v| v.is_string());
    if replace {
        let mut out = vec![];
        for v in list {
            let email = v.as_str().unwrap_or_default();
            let u = users
                .get(&email.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {email}")))?;
            let response = current
                .iter()
                .find(|i| i.id == u.id)
                .map(|i| i.response_status.clone())
                .unwrap_or_else(|| "needs_action".into());
            out.push(InterviewerRecord {
                id: u.id.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                response_status: response,
            });
        }
        return Ok(out);
    }
    let mut out = current.to_vec();
    for v in list {
        let id = v.get("id").and_then(|x| x.as_str());
        let email = v.get("email").and_then(|x| x.as_str());
        let status = v
            .get("response_status")
            .and_then(|x| x.as_str())
            .ok_or_else(|| ApiError::invalid("interviewers[].response_status is required"))?;
        if !RESPONSES.contains(&status) {
            return Err(ApiError::invalid(format!(
                "unknown response_status {status}"
            )));
        }
        let target = out
            .iter_mut()
            .find(|i| {
                Some(i.id.as_str()) == id || email.is_some_and(|e| e.eq_ignore_ascii_case(&i.email))
            })
            .ok_or_else(|| ApiError::invalid("unknown interviewer"))?;
        target.response_status = status.to_string();
    }
    Ok(out)
}

fn apply_decline(current: &InterviewRecord, body: &Value) -> Result<InterviewRecord, ApiError> {
    let by = body
        .get("by")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::invalid("by is required"))?;
    let reason = body
        .get("reason")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let mut r = current.clone();
    match by {
        "candidate" => {
            r.status = "candidate_declined".into();
            r.candidate_response = "declined".into();
            r.decline = Some(DeclineRecord {
                by: "candidate".into(),
                interviewer_id: None,
                reason,
                declined_at: now_jst(),
            });
        }
        "interviewer" => {
            let iid = body
                .get("interviewer_id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    ApiError::invalid("interviewer_id is required when by is interviewer")
                })?;
            let i = r
                .interviewers
                .iter_mut()
                .find(|i| i.id == iid)
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {iid}")))?;
            if i.response_status == "declined" {
                return Ok(r);
            }
            i.response_status = "declined".into();
            r.decline = Some(DeclineRecord {
                by: "interviewer".into(),
                interviewer_id: Some(iid.to_string()),
                reason,
                declined_at: now_jst(),
            });
        }
        other => return Err(ApiError::invalid(format!("unknown by {other}"))),
    }
    Ok(r)
}

fn encode_cursor(epoch: u64, seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c.{epoch}.{seq}"))
}

fn decode_cursor(s: &str) -> Option<(u64, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (epoch, seq) = raw.strip_prefix("c.")?.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn seeded() -> HitolinkEmulator {
        let seed: Seed = serde_json::from_value(json!({
            "applications": [{"id": "ap_1", "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"}, "job": {"id": "jb_1", "name": "営業"}}],
            "users": [{"id": "us_1", "name": "鈴木 一郎", "email": "suzuki@example.co.jp"}],
            "selection_steps": [{"id": "st_1", "name": "一次面接"}],
        }))
        .unwrap();
        let emu = HitolinkEmulator::new("tok", seed);
        emu.set_rate_limit(None);
        emu
    }

    fn scheduled(emu: &HitolinkEmulator) -> Value {
        emu.admin_create(&json!({
            "start": "2026-12-01T10:00:00+09:00", "end": "2026-12-01T11:00:00+09:00",
            "interviewers": ["suzuki@example.co.jp"],
        }))
        .unwrap()
        .body
    }

    #[test]
    fn feed_moves_changed_records_behind_the_cursor() {
        let emu = seeded();
        for _ in 0..3 {
            scheduled(&emu);
        }
        let p1 = emu.changes(None, Some("2")).unwrap().body;
        assert_eq!(p1["has_more"], json!(true));
        let ids: Vec<_> = p1["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(ids, [json!("iv_000001"), json!("iv_000002")]);
        // iv_000001 changes while we page: it shows up again, later
        emu.admin_edit("iv_000001", &json!({"location": "本社"}))
            .unwrap();
        let p2 = emu
            .changes(p1["next_cursor"].as_str(), Some("2"))
            .unwrap()
            .body;
        let ids: Vec<_> = p2["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id"].clone(), i["version"].clone()))
            .collect();
        assert_eq!(
            ids,
            [
                (json!("iv_000003"), json!(1)),
                (json!("iv_000001"), json!(2))
            ]
        );
        assert_eq!(p2["has_more"], json!(false));
        let quiet = emu.changes(p2["next_cursor"].as_str(), None).unwrap().body;
        assert_eq!(quiet["items"], json!([]));
        assert_eq!(quiet["next_cursor"], p2["next_cursor"]);
    }

    #[test]
    fn patch_needs_the_current_version() {
        let emu = seeded();
        let r = scheduled(&emu);
        let body = json!({"location": "会議室A"});
        assert_eq!(emu.patch("iv_000001", None, &body).unwrap_err().status, 428);
        let stale = emu.patch("iv_000001", Some("0"), &body).unwrap_err();
        assert_eq!(stale.status, 412);
        assert_eq!(stale.body["current"]["version"], r["version"]);
        let ok = emu.patch("iv_000001", Some("1"), &body).unwrap().body;
        assert_eq!(ok["version"], json!(2));
        // a PATCH that changes nothing keeps the version
        let same = emu.patch("iv_000001", Some("2"), &body).unwrap().body;
        assert_eq!(same["version"], json!(2));
    }

    #[test]
    fn invalid_writes_change_nothing() {
        let emu = seeded();
        scheduled(&emu);
        let cases = [
            json!({"end": "2026-12-01T09:00:00+09:00"}),
            json!({"status": "complete"}),
            json!({"status": "postponed"}),
            json!({"candidate": {}}),
            json!({"version": 9}),
            json!({"interviewers": [{"id": "us_9", "response_status": "accepted"}]}),
            json!({"start": "10am"}),
        ];
        for body in cases {
            let e = emu.patch("iv_000001", Some("1"), &body).unwrap_err();
            assert_eq!(e.status, 422, "{body}");
        }
        assert_eq!(emu.get("iv_000001").unwrap().body["version"], json!(1));
        assert_eq!(emu.changes(None, Some("0")).unwrap_err().status, 422);
        assert_eq!(emu.changes(None, Some("501")).unwrap_err().status, 422);
    }

    #[test]
    fn answers_come_back_in_jst() {
        let emu = seeded();
        let r = emu
            .admin_create(&json!({"start": "2026-12-01T01:00:00Z", "end": "2026-12-01T02:00:00Z"}))
            .unwrap()
            .body;
        assert_eq!(r["start"], json!("2026-12-01T10:00:00+09:00"));
        assert_eq!(r["status"], json!("scheduled"));
    }

    #[test]
    fn deletions_stay_as_tombstones() {
        let emu = seeded();
        scheduled(&emu);
        emu.admin_delete("iv_000001").unwrap();
        let r = emu.get("iv_000001").unwrap().body;
        assert!(r["deleted_at"].is_string());
        assert_eq!(
            emu.patch("iv_000001", Some("2"), &json!({"location": "x"}))
                .unwrap_err()
                .status,
            404
        );
        let feed = emu.changes(None, None).unwrap().body;
        assert_eq!(feed["items"][0]["deleted_at"], r["deleted_at"]);
        assert_eq!(emu.get("iv_999999").unwrap_err().status, 404);
    }

    #[test]
    fn cursors_expire() {
        let emu = seeded();
        let c = emu.changes(None, None).unwrap().body["next_cursor"].clone();
        emu.invalidate_cursors();
        assert_eq!(emu.changes(c.as_str(), None).unwrap_err().status, 410);
        assert_eq!(emu.changes(Some("garbage"), None).unwrap_err().status, 410);
    }

    #[test]
    fn rate_limit_answers_429_with_retry_after() {
        let emu = seeded();
        emu.set_rate_limit(Some(2));
        assert!(emu.begin("get", Some("tok")).is_ok());
        assert!(emu.begin("get", Some("tok")).is_ok());
        let e = emu.begin("get", Some("tok")).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.unwrap() >= 1);
        assert_eq!(emu.begin("get", Some("wrong")).unwrap_err().status, 401);
    }
}
