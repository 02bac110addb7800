//! Calendar API v3 as a state machine, without HTTP: what it holds.
//!
//! It follows the behaviour Google documents for the calls hitosync and a
//! person in the Calendar UI make. The work is spread by seam:
//! `auth` (OAuth JWT grant, bearer tokens), `gate` (per-call checks,
//! request quota, faults), `store` and `validate` (the event store and its
//! write rules), `events` (the documented event methods), `recurrence`
//! (series and their instances), `listing` (`events.list`, sync tokens,
//! paging), `invitations` (Calendar's limit on external invitations) and
//! `admin` (a person in the Calendar UI, and the test harness). The HTTP
//! layer (`super::http`) is a thin wrapper, and property tests drive this
//! type directly.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::{AuthSetup, Grant};
use super::error::ApiError;
use super::gate::{CALLS, Fault, Quota};
use super::invitations::InvitationQuota;
use crate::faults::FaultPlan;

/// Requests (bodies) as the API sees them; answers as JSON.
pub type Json = Value;

#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub(super) body: Map<String, Value>,
    /// Its position in the change sequence (its latest change).
    pub(super) seq: u64,
    /// Moved to another calendar: listed as a bare tombstone, gone for
    /// `get` and writes ("Events: move").
    pub(super) moved_out: bool,
}

/// One calendar: a user's primary calendar (its id is the user's address)
/// or a secondary calendar some users may write to.
#[derive(Debug, Default)]
pub(super) struct Calendar {
    pub(super) summary: String,
    /// Users with write access (the owner of a primary calendar).
    pub(super) writers: BTreeSet<String>,
    pub(super) events: BTreeMap<String, StoredEvent>,
    /// Each event at its latest change: what makes a delta cost its size,
    /// not the calendar's, as with Google.
    pub(super) by_seq: BTreeMap<u64, String>,
}

/// One write, as recorded for tests that check who was notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteRecord {
    pub method: &'static str,
    pub calendar: String,
    pub event_id: String,
    pub send_updates: String,
    /// The top-level fields the write changed.
    pub changed: Vec<String>,
}

/// Behaviour switches a test turns on to meet the shapes real calendars
/// have. All off by default: the emulator then answers as a calendar that
/// only API clients touch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Switches {
    /// Descriptions written through the admin UI are stored the way the
    /// Calendar web editor stores them (HTML: `<br>`, `<a href>`).
    pub html_descriptions: bool,
    /// A change of start or end resets the guests' answers to
    /// `needsAction`. Google may do this (it is observed behaviour, not a
    /// documented rule), so it is a switch.
    pub reset_answers_on_time_change: bool,
    /// Page sizes served in turn, each capped by `maxResults`, instead of
    /// full pages. `0` is an empty page that still carries a
    /// `nextPageToken`. "Events: list", `maxResults`: "The number of events
    /// in the resulting page may be less than this value, or none at all,
    /// even if there are more events matching the query."
    pub page_sizes: Option<Vec<usize>>,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) auth: AuthSetup,
    pub(super) grants: HashMap<String, Grant>,
    pub(super) calendars: BTreeMap<String, Calendar>,
    pub(super) seq: u64,
    pub(super) token_epoch: u64,
    pub(super) faults: FaultPlan<Fault>,
    pub(super) counters: BTreeMap<String, u64>,
    pub(super) writes: Vec<WriteRecord>,
    pub(super) quota: Option<Quota>,
    pub(super) invitations: InvitationQuota,
    pub(super) switches: Switches,
    /// Added to the machine's clock: event stamps and the invitation
    /// window follow it, so a test can let a day pass at once.
    pub(super) clock_offset: chrono::Duration,
    pub(super) next_random_id: u64,
}

/// The emulator. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct GoogleEmulator {
    // parking_lot's lock does not poison: a panic while it is held cannot
    // leave the state half-written in a way later calls would misread
    // (every mutation is a single insert or field update).
    pub(super) state: Mutex<State>,
}

/// Who is calling, once the bearer token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(super) subject: Option<String>,
}

impl GoogleEmulator {
    pub fn new(auth: AuthSetup) -> GoogleEmulator {
        let mut st = State {
            auth,
            grants: HashMap::new(),
            calendars: BTreeMap::new(),
            seq: 0,
            token_epoch: 1,
            faults: FaultPlan::new(CALLS),
            counters: BTreeMap::new(),
            writes: Vec::new(),
            quota: None,
            invitations: InvitationQuota::default(),
            switches: Switches::default(),
            clock_offset: chrono::Duration::zero(),
            next_random_id: 1,
        };
        let users: Vec<String> = st.auth.users.iter().cloned().collect();
        for u in users {
            st.ensure_primary(&u);
        }
        GoogleEmulator {
            state: Mutex::new(st),
        }
    }
}

impl State {
    /// The emulator's clock.
    pub(super) fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// A user's primary calendar exists once the user does.
    pub(super) fn ensure_primary(&mut self, user: &str) {
        let cal = self.calendars.entry(user.to_string()).or_default();
        if cal.summary.is_empty() {
            cal.summary = user.to_string();
        }
        cal.writers.insert(user.to_string());
    }

    /// Which calendar a call means: `primary` is the caller's own; another
    /// id must be a calendar the caller may write to. Google answers `404`
    /// for a calendar the caller cannot see.
    pub(super) fn resolve(&self, who: &Principal, calendar_id: &str) -> Result<String, ApiError> {
        let Some(subject) = &who.subject else {
            // The service account itself has no access to users' calendars.
            return Err(ApiError::not_found());
        };
        let id = calendar_id.to_ascii_lowercase();
        let id = if id == "primary" { subject.clone() } else { id };
        match self.calendars.get(&id) {
            Some(c) if c.writers.contains(subject) => Ok(id),
            _ => Err(ApiError::not_found()),
        }
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores `body` as the latest change of `id` in `calendar`.
    pub(super) fn put(
        &mut self,
        calendar: &str,
        id: &str,
        body: Map<String, Value>,
        moved_out: bool,
    ) {
        let seq = self.next_seq();
        let Some(cal) = self.calendars.get_mut(calendar) else {
            return;
        };
        if let Some(old) = cal.events.get(id) {
            cal.by_seq.remove(&old.seq);
        }
        cal.by_seq.insert(seq, id.to_string());
        let mut body = body;
        super::store::stamp(&mut body, seq, Utc::now() + self.clock_offset);
        cal.events.insert(
            id.to_string(),
            StoredEvent {
                body,
                seq,
                moved_out,
            },
        );
    }

    pub(super) fn stored(&self, calendar: &str, id: &str) -> Option<&StoredEvent> {
        self.calendars.get(calendar)?.events.get(id)
    }

    pub(super) fn count(&mut self, name: &str) {
        *self.counters.entry(name.to_string()).or_default() += 1;
    }
}
