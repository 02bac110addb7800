//! The HITO-Link interview API (HITOLINK-API.md) as a state machine: the
//! records, their change feed and the harness state. The endpoints live
//! beside it: `feed` (reads and the cursor), `writes` (booking, PATCH,
//! decline), `admin` (a recruiter's actions and the test harness), `gate`
//! (token, rate limit, faults).
//!
//! One change feed orders every record by its latest change, so a cursor is
//! a position in that order: a record changed while pages are read moves
//! behind the cursor and is read again later, never skipped. Tombstones stay
//! in the feed. The HTTP layer (`super::http`) wraps this type; property
//! tests drive it directly.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use hitosync_core::model::{InterviewRecord, Named, Person};

use super::gate::{CALLS, Fault};
use crate::faults::FaultPlan;

/// An error answer: status and `{"error", "message"}` body, or no answer
/// at all (`disconnect`: the HTTP layer closes the connection).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
    /// The client gets no answer: the connection closes. Set only by an
    /// injected fault; `status` and `body` are then meaningless.
    pub disconnect: bool,
}

impl ApiError {
    pub fn new(status: u16, error: &str, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": error, "message": message}),
            retry_after: None,
            disconnect: false,
        }
    }
    /// No answer: the connection is closed.
    pub fn dropped() -> ApiError {
        ApiError {
            disconnect: true,
            ..ApiError::new(
                0,
                "disconnected",
                "the connection was closed without an answer",
            )
        }
    }
    pub(super) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "invalid", &message.into())
    }
    pub(super) fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "not_found", &format!("{what} not found"))
    }
}

/// A success answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub(super) fn ok(body: Value) -> Answer {
    Answer { status: 200, body }
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
pub(super) struct RateWindow {
    pub(super) per_minute: u32,
    pub(super) recent: VecDeque<Instant>,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) token: String,
    pub(super) applications: BTreeMap<String, Application>,
    pub(super) users: BTreeMap<String, User>,
    pub(super) steps: BTreeMap<String, Named>,
    pub(super) interviews: BTreeMap<String, InterviewRecord>,
    /// Change feed: position -> record id; each record sits at its latest change.
    pub(super) feed: BTreeMap<u64, String>,
    pub(super) position: HashMap<String, u64>,
    pub(super) seq: u64,
    pub(super) cursor_epoch: u64,
    /// (call, key) -> the first successful answer.
    pub(super) idempotency: HashMap<(String, String), Answer>,
    pub(super) faults: FaultPlan<Fault>,
    pub(super) counters: BTreeMap<String, u64>,
    pub(super) rate: Option<RateWindow>,
    pub(super) next_id: u64,
}

#[derive(Debug)]
pub struct HitolinkEmulator {
    // parking_lot's lock does not poison: every mutation is applied whole
    // after validation, so a panic while it is held leaves consistent data.
    pub(super) state: Mutex<State>,
}

pub(super) fn jst() -> FixedOffset {
    // +09:00 is within FixedOffset's ±24h range, so the fallback never runs.
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| Utc.fix())
}

pub(super) fn now_jst() -> String {
    Utc::now()
        .with_timezone(&jst())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Times as the server answers them: in +09:00, whatever offset was sent.
pub(super) fn to_jst(field: &str, value: &str) -> Result<String, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&jst())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .map_err(|_| ApiError::invalid(format!("{field} must be an RFC 3339 time with an offset")))
}

pub(super) fn instant(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) const RESPONSES: &[&str] = &["needs_action", "accepted", "tentative", "declined"];

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
            faults: FaultPlan::new(CALLS),
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
}

impl State {
    /// Puts a record at the end of the change feed.
    pub(super) fn store(&mut self, r: InterviewRecord) {
        self.seq += 1;
        if let Some(old) = self.position.insert(r.id.clone(), self.seq) {
            self.feed.remove(&old);
        }
        self.feed.insert(self.seq, r.id.clone());
        self.interviews.insert(r.id.clone(), r);
    }

    /// A record that may be written: it exists and is not deleted.
    pub(super) fn live(&self, id: &str) -> Result<&InterviewRecord, ApiError> {
        match self.interviews.get(id) {
            Some(r) if r.deleted_at.is_none() => Ok(r),
            _ => Err(ApiError::not_found("interview")),
        }
    }

    /// Stores `next` if it differs from `current` (new version, new feed
    /// position); a write that changes nothing keeps the version.
    pub(super) fn commit(&mut self, current: InterviewRecord, mut next: InterviewRecord) -> Value {
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

pub(super) fn to_json(r: &InterviewRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}
