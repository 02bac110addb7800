//! One reconcile cycle: fetch both change feeds, decide per record, apply,
//! persist, and only then move the cursors forward.
//!
//! Crash safety comes from three rules. Every remote write is idempotent
//! (derived event IDs, `Idempotency-Key`, `If-Match`). An intent is flushed
//! before a record's writes and cleared with its new snapshot, so a crash in
//! between makes the next cycle read that record again on both sides. The
//! sync token and cursor are saved last, after everything they cover is
//! committed or parked, so a crash anywhere re-reads the same changes.

pub mod link;
pub mod ports;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{Instrument, debug, info, info_span, warn};

pub use ports::{CalendarApi, HitolinkApi};

use hitosync_core::model::{CalendarEvent, Interview, Unsyncable};
use hitosync_core::reconcile::{
    self, Booking, CalendarWrite, Case, Decision, HitolinkWrite, Policy, Seen, Snapshot,
};
use hitosync_google::{GoogleError, SendUpdates};
use hitosync_hitolink::{DeclineBy, HitolinkError, NewInterview};
use hitosync_state::{HistoryEntry, Intent, Side, StateError, Store, WorkKey};

/// How many times one record is decided again in one cycle when the other
/// side moves under it (412) before it is parked until the next.
const MAX_ATTEMPTS: usize = 4;

/// Why a cycle stopped early. Nothing it had not committed is lost: the
/// cursors were not moved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("reading the calendar failed: {0}")]
    Google(#[source] GoogleError),
    #[error("reading HITO-Link failed: {0}")]
    Hitolink(#[source] HitolinkError),
    #[error(transparent)]
    State(#[from] StateError),
}

#[derive(Debug, Clone, Default)]
pub struct CycleOptions {
    /// Drop both cursors first and list everything.
    pub full: bool,
    /// Apply cancellations even past `sync.max_deletions`.
    pub allow_mass_delete: bool,
    /// Decide only: no remote write, nothing stored (`hitosync plan`).
    pub dry_run: bool,
    /// The cycle's clock, for tests that let parked records come due.
    pub now: Option<DateTime<Utc>>,
}

/// One record's line in a plan or report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanItem {
    pub key: WorkKey,
    pub case: Case,
    pub summary: String,
    pub destructive: bool,
    pub held: bool,
}

/// What a cycle did, for logs, `status` and the benchmarks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CycleReport {
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub full_google: bool,
    pub full_hitolink: bool,
    pub google_changes: usize,
    pub hitolink_changes: usize,
    pub decisions: usize,
    pub applied: usize,
    pub calendar_writes: usize,
    pub hitolink_writes: usize,
    pub parked: usize,
    pub conflicts: usize,
    /// Items of either side's pages that did not decode and had no usable
    /// id (the clients log each with its position and hash).
    #[serde(default)]
    pub unreadable: usize,
    /// Set when the mass-deletion breaker held cancellations back.
    pub breaker: Option<String>,
    /// Stopped early (shutdown); the cursors were not moved.
    pub interrupted: bool,
    pub plan: Vec<PlanItem>,
}

impl CycleReport {
    /// Everything was applied: nothing parked, nothing held.
    pub fn clean(&self) -> bool {
        self.parked == 0 && self.breaker.is_none()
    }
}

/// What is known of one side of a record, owned.
#[derive(Debug, Clone)]
enum Obs<T> {
    NoNews,
    Now(T),
    Gone,
}

impl<T> Obs<T> {
    fn seen(&self) -> Seen<'_, T> {
        match self {
            Obs::NoNews => Seen::NoNews,
            Obs::Now(t) => Seen::Now(t),
            Obs::Gone => Seen::Gone,
        }
    }
    fn now(&self) -> Option<&T> {
        match self {
            Obs::Now(t) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Work {
    h: Obs<Interview>,
    g: Obs<CalendarEvent>,
    /// Read both sides again before deciding (after a crash, a parking).
    refetch: bool,
    /// HITO-Link sent a record that does not validate: parked, not decided.
    invalid: Option<String>,
    /// Other keys whose intent or parking this work settles (a booking's
    /// event key once the event is mapped to its interview).
    also_settle: Vec<WorkKey>,
}

impl Default for Work {
    fn default() -> Self {
        Work {
            h: Obs::NoNews,
            g: Obs::NoNews,
            refetch: false,
            invalid: None,
            also_settle: vec![],
        }
    }
}

/// The result of applying one decision.
enum Step {
    Done {
        snapshot: Box<Option<Snapshot>>,
        calendar_writes: usize,
        hitolink_writes: usize,
    },
    /// Decide again with these observations (a 412, a 409 to adopt, a
    /// booking that now has its interview).
    Again {
        h: Box<Obs<Interview>>,
        g: Box<Obs<CalendarEvent>>,
        interview_id: Option<String>,
        calendar_writes: usize,
        hitolink_writes: usize,
    },
    Park(String),
}

pub struct Engine<'a> {
    pub calendar: &'a dyn CalendarApi,
    pub hitolink: &'a dyn HitolinkApi,
    pub store: &'a Store,
    pub policy: Policy,
    pub max_deletions: u32,
    pub hitolink_page_size: u32,
    /// Set by SIGTERM: finish the record in flight, then stop without
    /// moving the cursors (the rest is read again next time).
    pub stop: Option<&'a AtomicBool>,
}

struct Fetched {
    events: HashMap<String, CalendarEvent>,
    interviews: HashMap<String, Result<Interview, Unsyncable>>,
    full_google: bool,
    full_hitolink: bool,
    google_token: Option<String>,
    hitolink_cursor: Option<String>,
    unreadable: usize,
}

impl<'a> Engine<'a> {
    /// Runs one cycle.
    pub async fn cycle(&self, opts: &CycleOptions) -> Result<CycleReport, EngineError> {
        let span = info_span!("cycle", full = opts.full, dry_run = opts.dry_run);
        self.cycle_inner(opts).instrument(span).await
    }

    async fn cycle_inner(&self, opts: &CycleOptions) -> Result<CycleReport, EngineError> {
        let started = Instant::now();
        let now = opts.now.unwrap_or_else(Utc::now);
        let mut report = CycleReport {
            started_at: Some(now),
            ..Default::default()
        };
        let (g_cursor, h_cursor) = if opts.full {
            (None, None)
        } else {
            (
                self.store.cursor(Side::Google)?.map(|c| c.value),
                self.store.cursor(Side::Hitolink)?.map(|c| c.value),
            )
        };
        let fetched = self.fetch(g_cursor, h_cursor).await?;
        report.full_google = fetched.full_google;
        report.full_hitolink = fetched.full_hitolink;
        report.google_changes = fetched.events.len();
        report.hitolink_changes = fetched.interviews.len();
        report.unreadable = fetched.unreadable;

        let mut work = self.collect_work(&fetched, opts, now)?;
        let breaker = self.empty_side(&fetched);

        // Read again what a crash or a parking left open.
        for (key, w) in work.iter_mut() {
            if w.refetch {
                self.refetch(key, w).await?;
            }
        }

        // Decide everything first: the breaker needs the whole picture.
        let mut decided: Vec<(WorkKey, Work, Decision)> = Vec::with_capacity(work.len());
        for (key, w) in work {
            if let Some(reason) = &w.invalid {
                if !opts.dry_run {
                    let p = self.store.park(&key, reason, now)?;
                    warn!(%key, %reason, attempts = p.attempts, "record cannot be synced; parked");
                }
                report.parked += 1;
                report.plan.push(PlanItem {
                    key: key.clone(),
                    case: Case::NothingToDo,
                    summary: format!("parked: {reason}"),
                    destructive: false,
                    held: false,
                });
                continue;
            }
            let snapshot = self.snapshot_for(&key)?;
            let d = reconcile::decide(snapshot.as_ref(), w.h.seen(), w.g.seen(), &self.policy);
            decided.push((key, w, d));
        }
        let destructive = decided
            .iter()
            .filter(|(_, _, d)| d.is_destructive())
            .count();
        let trip = match breaker {
            Some(why) => Some(why),
            None if destructive > self.max_deletions as usize => Some(format!(
                "{destructive} cancellations in one cycle, more than sync.max_deletions = {}",
                self.max_deletions
            )),
            None => None,
        };
        let hold = trip.is_some() && !opts.allow_mass_delete;
        if let Some(why) = &trip {
            if hold {
                warn!(reason = %why, "mass-deletion breaker tripped: cancellations held until `hitosync sync --allow-mass-delete`");
                report.breaker = Some(why.clone());
            } else {
                info!(reason = %why, "mass deletion allowed by --allow-mass-delete");
            }
        }
        if !opts.dry_run && !hold {
            self.store.put_meta::<Option<String>>("breaker", &None)?;
        }

        for (key, w, d) in decided {
            if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                report.interrupted = true;
                info!("stopping: the rest of this cycle is read again next time");
                break;
            }
            // Settled once this key's work is done, whatever it came to: an
            // open intent or parking then lives on under this key.
            let also_settle = if opts.dry_run {
                vec![]
            } else {
                w.also_settle.clone()
            };
            let held = hold && d.is_destructive();
            if !matches!(d.case, Case::Unmanaged) {
                report.plan.push(PlanItem {
                    key: key.clone(),
                    case: d.case,
                    summary: d.summary.clone(),
                    destructive: d.is_destructive(),
                    held,
                });
            }
            if d.is_quiet() {
                // Agreement refreshed (echoes, new ETags/versions): stored,
                // nothing written remotely.
                if !opts.dry_run {
                    self.store_quiet(&key, &d, now)?;
                }
                self.settle_all(&also_settle)?;
                continue;
            }
            report.decisions += 1;
            if opts.dry_run {
                continue;
            }
            if held {
                self.store.park_held(
                    &key,
                    report.breaker.as_deref().unwrap_or("mass deletion"),
                    now,
                )?;
                report.parked += 1;
                continue;
            }
            let span = info_span!("record", key = %key, case = ?d.case);
            let outcome = self.apply_record(&key, w, d, now).instrument(span).await?;
            self.settle_all(&also_settle)?;
            report.calendar_writes += outcome.calendar_writes;
            report.hitolink_writes += outcome.hitolink_writes;
            report.conflicts += outcome.conflicts;
            if outcome.parked {
                report.parked += 1;
            } else {
                report.applied += 1;
            }
        }
        if let Some(why) = &report.breaker
            && !opts.dry_run
        {
            self.store.put_meta("breaker", &Some(why.clone()))?;
        }
        // Interrupted: what was not applied is read again from the old
        // positions next time.
        if !opts.dry_run && !report.interrupted {
            self.store.set_cursors(
                fetched.google_token.as_deref(),
                fetched.hitolink_cursor.as_deref(),
                Utc::now(),
            )?;
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        if !opts.dry_run {
            self.store.put_meta(
                "last_cycle",
                &CycleReport {
                    plan: vec![],
                    ..report.clone()
                },
            )?;
        }
        info!(
            google_changes = report.google_changes,
            hitolink_changes = report.hitolink_changes,
            applied = report.applied,
            parked = report.parked,
            calendar_writes = report.calendar_writes,
            hitolink_writes = report.hitolink_writes,
            ms = report.duration_ms,
            "cycle done"
        );
        Ok(report)
    }

    fn settle_all(&self, keys: &[WorkKey]) -> Result<(), StateError> {
        for k in keys {
            self.store.settle(k)?;
        }
        Ok(())
    }

    fn snapshot_for(&self, key: &WorkKey) -> Result<Option<Snapshot>, StateError> {
        match key {
            WorkKey::Interview(id) => Ok(self.store.record(id)?.map(|r| r.snapshot)),
            WorkKey::Event(_) => Ok(None),
        }
    }

    // --- fetching --------------------------------------------------------

    async fn fetch(
        &self,
        g_cursor: Option<String>,
        h_cursor: Option<String>,
    ) -> Result<Fetched, EngineError> {
        let unreadable = std::sync::atomic::AtomicUsize::new(0);
        let (events, full_google, google_token) = self.fetch_google(g_cursor, &unreadable).await?;
        let (interviews, full_hitolink, hitolink_cursor) =
            self.fetch_hitolink(h_cursor, &unreadable).await?;
        Ok(Fetched {
            events,
            interviews,
            full_google,
            full_hitolink,
            google_token,
            hitolink_cursor,
            unreadable: unreadable.into_inner(),
        })
    }

    async fn fetch_google(
        &self,
        mut token: Option<String>,
        unreadable: &std::sync::atomic::AtomicUsize,
    ) -> Result<(HashMap<String, CalendarEvent>, bool, Option<String>), EngineError> {
        'listing: loop {
            let full = token.is_none();
            let mut events = HashMap::new();
            let mut page: Option<String> = None;
            loop {
                match self
                    .calendar
                    .list_page(token.as_deref(), page.as_deref())
                    .await
                {
                    Ok(p) => {
                        unreadable.fetch_add(p.unreadable.len(), Ordering::Relaxed);
                        for ev in p.events {
                            if self.relevant(&ev)? {
                                events.insert(ev.id.clone(), ev);
                            }
                        }
                        match (p.next_page_token, p.next_sync_token) {
                            (Some(next), _) => page = Some(next),
                            (None, next_sync) => return Ok((events, full, next_sync.or(token))),
                        }
                    }
                    Err(GoogleError::FullSyncRequired) if !full => {
                        warn!("calendar sync token expired (410): listing everything again");
                        token = None;
                        continue 'listing;
                    }
                    Err(e) => return Err(EngineError::Google(e)),
                }
            }
        }
    }

    /// Managed events, events mapped in the store, and bookings. Everything
    /// else on the organizer calendar is none of hitosync's business.
    fn relevant(&self, ev: &CalendarEvent) -> Result<bool, StateError> {
        Ok(ev.interview_id().is_some()
            || reconcile::booking_of(ev, &self.policy).is_some()
            || self.store.interview_for_event(&ev.id)?.is_some())
    }

    async fn fetch_hitolink(
        &self,
        mut cursor: Option<String>,
        unreadable: &std::sync::atomic::AtomicUsize,
    ) -> Result<
        (
            HashMap<String, Result<Interview, Unsyncable>>,
            bool,
            Option<String>,
        ),
        EngineError,
    > {
        'feed: loop {
            let full = cursor.is_none();
            let mut items = HashMap::new();
            let mut at = cursor.clone();
            loop {
                match self
                    .hitolink
                    .changes(at.as_deref(), self.hitolink_page_size)
                    .await
                {
                    Ok(p) => {
                        unreadable.fetch_add(p.unreadable.len(), Ordering::Relaxed);
                        for item in p.items {
                            let id = match &item {
                                Ok(iv) => iv.id.clone(),
                                Err(u) => u.id.clone(),
                            };
                            items.insert(id, item);
                        }
                        at = Some(p.next_cursor);
                        if !p.has_more {
                            return Ok((items, full, at));
                        }
                    }
                    Err(HitolinkError::CursorExpired) if !full => {
                        warn!("HITO-Link cursor expired (410): reading the feed from the start");
                        cursor = None;
                        continue 'feed;
                    }
                    Err(e) => return Err(EngineError::Hitolink(e)),
                }
            }
        }
    }

    /// One side listed nothing where the store maps records: more likely a
    /// broken feed or a wrong calendar than everything deleted at once.
    fn empty_side(&self, f: &Fetched) -> Option<String> {
        if !f.full_google && !f.full_hitolink {
            return None;
        }
        let mapped = self.store.record_count();
        if mapped == 0 {
            return None;
        }
        if f.full_google && f.events.is_empty() {
            return Some(format!(
                "the calendar listed no managed event where {mapped} are mapped"
            ));
        }
        if f.full_hitolink && f.interviews.is_empty() {
            return Some(format!(
                "HITO-Link listed no interview where {mapped} are mapped"
            ));
        }
        None
    }

    fn collect_work(
        &self,
        f: &Fetched,
        opts: &CycleOptions,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<WorkKey, Work>, EngineError> {
        let mut work: BTreeMap<WorkKey, Work> = BTreeMap::new();
        for (id, item) in &f.interviews {
            let w = work.entry(WorkKey::Interview(id.clone())).or_default();
            match item {
                Ok(iv) => w.h = Obs::Now(iv.clone()),
                Err(bad) => w.invalid = Some(bad.reason.clone()),
            }
        }
        for ev in f.events.values() {
            let key = match self.store.interview_for_event(&ev.id)? {
                Some(iid) => WorkKey::Interview(iid),
                None => match ev.interview_id() {
                    Some(iid) => WorkKey::Interview(iid.to_string()),
                    None => WorkKey::Event(ev.id.clone()),
                },
            };
            work.entry(key).or_default().g = Obs::Now(ev.clone());
        }
        if f.full_google || f.full_hitolink {
            let listed_events: HashSet<&str> = f.events.keys().map(String::as_str).collect();
            for rec in self.store.records() {
                let rec = rec?;
                let s = &rec.snapshot;
                let key = WorkKey::Interview(s.interview_id.clone());
                let gone_g = f.full_google && !listed_events.contains(s.event_id.as_str());
                let gone_h = f.full_hitolink && !f.interviews.contains_key(&s.interview_id);
                if gone_g || gone_h {
                    let w = work.entry(key).or_default();
                    if gone_g {
                        w.g = Obs::Gone;
                    }
                    if gone_h {
                        w.h = Obs::Gone;
                    }
                }
            }
        }
        for intent in self.store.intents()? {
            debug!(key = %intent.key, "unfinished write from an earlier run: reading both sides again");
            work.entry(intent.key).or_default().refetch = true;
        }
        for p in self.store.parked()? {
            let due = if p.held {
                opts.allow_mass_delete
            } else {
                p.next_retry <= now
            };
            if due {
                work.entry(p.key).or_default().refetch = true;
            }
        }
        Ok(work)
    }

    /// Reads both sides of one record afresh.
    async fn refetch(&self, key: &WorkKey, w: &mut Work) -> Result<(), EngineError> {
        match key {
            WorkKey::Interview(id) => {
                let snap = self.store.record(id)?.map(|r| r.snapshot);
                w.invalid = None;
                w.h = match self.hitolink.get(id).await {
                    Ok(iv) => Obs::Now(iv),
                    Err(HitolinkError::NotFound { .. }) => Obs::Gone,
                    Err(HitolinkError::Unsyncable(u)) => {
                        w.invalid = Some(u.reason);
                        Obs::NoNews
                    }
                    Err(e) => return Err(EngineError::Hitolink(e)),
                };
                let event_id = snap
                    .map(|s| s.event_id)
                    .or_else(|| w.h.now().and_then(|iv| iv.external_event_id.clone()))
                    .unwrap_or_else(|| reconcile::derived_event_id(id));
                w.g = self.get_event(&event_id).await?;
            }
            WorkKey::Event(id) => {
                w.g = self.get_event(id).await?;
            }
        }
        Ok(())
    }

    async fn get_event(&self, id: &str) -> Result<Obs<CalendarEvent>, EngineError> {
        match self.calendar.get(id).await {
            Ok(ev) => Ok(Obs::Now(ev)),
            Err(GoogleError::NotFound { .. } | GoogleError::Gone { .. }) => Ok(Obs::Gone),
            Err(e) => Err(EngineError::Google(e)),
        }
    }

    // --- applying ----------------------------------------------------------

    /// A decision that writes nothing remotely: store the refreshed
    /// agreement if it changed, and settle an open intent or parking.
    fn store_quiet(
        &self,
        key: &WorkKey,
        d: &Decision,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let pending = self.store.is_pending(key)?;
        let old = match &d.interview_id {
            Some(iid) => self.store.record(iid)?.map(|r| r.snapshot),
            None => None,
        };
        // Only a decision that knows the record (or knows it is gone on
        // both sides) may change its mapping; an orphan or a booking seen
        // without the store's knowledge must not erase one.
        let changes_mapping = d.case == Case::Forget || (d.snapshot.is_some() && d.snapshot != old);
        match &d.interview_id {
            Some(iid) if changes_mapping => self.store.commit(
                key,
                iid,
                d.snapshot.as_ref(),
                HistoryEntry {
                    at: now,
                    case: d.case,
                    summary: d.summary.clone(),
                },
                &d.conflicts,
            ),
            _ if pending => self.store.settle(key),
            _ => Ok(()),
        }
    }

    async fn apply_record(
        &self,
        key: &WorkKey,
        w: Work,
        first: Decision,
        now: DateTime<Utc>,
    ) -> Result<Outcome, EngineError> {
        let mut h = w.h;
        let mut g = w.g;
        let mut decision = first;
        let mut outcome = Outcome::default();
        let mut interview_id = decision.interview_id.clone();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let snapshot = match &interview_id {
                    Some(id) => self.store.record(id)?.map(|r| r.snapshot),
                    None => None,
                };
                decision = reconcile::decide(snapshot.as_ref(), h.seen(), g.seen(), &self.policy);
                if decision.is_quiet() {
                    self.store_quiet(key, &decision, now)?;
                    self.store.settle(key)?;
                    return Ok(outcome);
                }
            }
            self.store.put_intent(&Intent {
                key: key.clone(),
                summary: decision.summary.clone(),
                at: now,
            })?;
            info!(summary = %decision.summary, "applying");
            match self.execute(&decision, &h, &g).await? {
                Step::Done {
                    snapshot,
                    calendar_writes,
                    hitolink_writes,
                } => {
                    outcome.calendar_writes += calendar_writes;
                    outcome.hitolink_writes += hitolink_writes;
                    outcome.conflicts += decision.conflicts.len();
                    for c in &decision.conflicts {
                        warn!(field = %c.field, hitolink = %c.hitolink, google = %c.google, winner = %c.winner, "conflict");
                    }
                    let iid = decision
                        .interview_id
                        .clone()
                        .or(interview_id.clone())
                        .unwrap_or_default();
                    self.store.commit(
                        key,
                        &iid,
                        snapshot.as_ref().as_ref(),
                        HistoryEntry {
                            at: now,
                            case: decision.case,
                            summary: decision.summary.clone(),
                        },
                        &decision.conflicts,
                    )?;
                    return Ok(outcome);
                }
                Step::Again {
                    h: nh,
                    g: ng,
                    interview_id: iid,
                    calendar_writes,
                    hitolink_writes,
                } => {
                    outcome.calendar_writes += calendar_writes;
                    outcome.hitolink_writes += hitolink_writes;
                    h = *nh;
                    g = *ng;
                    if iid.is_some() {
                        interview_id = iid;
                    }
                }
                Step::Park(reason) => {
                    let p = self.store.park(key, &reason, now)?;
                    warn!(%reason, attempts = p.attempts, "parked");
                    outcome.parked = true;
                    return Ok(outcome);
                }
            }
        }
        let p = self.store.park(
            key,
            "kept changing while being written; retried next cycle",
            now,
        )?;
        warn!(attempts = p.attempts, "parked after repeated conflicts");
        outcome.parked = true;
        Ok(outcome)
    }

    /// Carries out one decision. Cycle-ending failures (auth, a side down)
    /// come back as errors; per-record ones as `Park` or `Again`.
    async fn execute(
        &self,
        d: &Decision,
        h: &Obs<Interview>,
        g: &Obs<CalendarEvent>,
    ) -> Result<Step, EngineError> {
        let snapshot = d.snapshot.clone();
        let event_id = d.event_id.clone().unwrap_or_default();
        let interview_id = d.interview_id.clone().unwrap_or_default();
        let mut calendar_writes = 0;
        let mut hitolink_writes = 0;

        // A booking first needs its interview.
        if let Some(HitolinkWrite::Book(b)) = d.hitolink.first() {
            let Some(ev) = g.now() else {
                return Ok(Step::Park("booking without its event".into()));
            };
            return self.book(b, ev).await;
        }

        let etag = g
            .now()
            .map(|e| e.etag.clone())
            .or_else(|| snapshot.as_ref().map(|s| s.event_etag.clone()));
        let mut event_after: Option<CalendarEvent> = None;
        if let Some(write) = &d.calendar {
            let result = match (wire::patch_for(write), write) {
                (Some((json, send)), _) => {
                    self.calendar
                        .patch(&event_id, &json, etag.as_deref(), send)
                        .await
                }
                (None, CalendarWrite::Create(body)) => match wire::new_event(&event_id, body) {
                    Some(new) => self.calendar.insert(&new, SendUpdates::All).await,
                    None => {
                        return Ok(Step::Park(
                            "an event without a time cannot be created".into(),
                        ));
                    }
                },
                (None, _) => return Ok(Step::Park("a calendar write of no known form".into())),
            };
            match result {
                Ok(ev) => {
                    calendar_writes += 1;
                    event_after = Some(ev);
                }
                // 409: made before a crash, or by a store that was lost: adopt.
                // 412: changed under us. Either way: read it, decide again.
                Err(GoogleError::Duplicate { .. } | GoogleError::PreconditionFailed { .. }) => {
                    let g = self.get_event(&event_id).await?;
                    return Ok(Step::Again {
                        h: Box::new(h.clone()),
                        g: Box::new(g),
                        interview_id: Some(interview_id),
                        calendar_writes,
                        hitolink_writes,
                    });
                }
                Err(GoogleError::NotFound { .. } | GoogleError::Gone { .. }) => {
                    return Ok(Step::Again {
                        h: Box::new(h.clone()),
                        g: Box::new(Obs::Gone),
                        interview_id: Some(interview_id),
                        calendar_writes,
                        hitolink_writes,
                    });
                }
                Err(e @ (GoogleError::Rejected { .. } | GoogleError::Protocol(_))) => {
                    return Ok(Step::Park(format!("the calendar rejected the write: {e}")));
                }
                Err(e @ (GoogleError::Transient(_) | GoogleError::RateLimited { .. })) => {
                    return Ok(Step::Park(format!(
                        "calendar write failed, retried later: {e}"
                    )));
                }
                Err(e) => return Err(EngineError::Google(e)),
            }
        }

        let mut version = h
            .now()
            .map(|iv| iv.version)
            .or_else(|| snapshot.as_ref().map(|s| s.hl_version))
            .unwrap_or(0);
        let key_base = format!(
            "{}:{}",
            event_id,
            g.now()
                .map(|e| e.etag.as_str())
                .unwrap_or("-")
                .trim_matches('"')
        );
        let mut iv_after: Option<Interview> = None;
        for write in &d.hitolink {
            let result = match write {
                HitolinkWrite::Book(_) => continue,
                HitolinkWrite::DeclineCandidate => {
                    self.hitolink
                        .decline(
                            &interview_id,
                            &DeclineBy::Candidate,
                            None,
                            version,
                            &format!("{key_base}:candidate"),
                        )
                        .await
                }
                HitolinkWrite::DeclineInterviewer { interviewer_id } => {
                    self.hitolink
                        .decline(
                            &interview_id,
                            &DeclineBy::Interviewer {
                                interviewer_id: interviewer_id.clone(),
                            },
                            None,
                            version,
                            &format!("{key_base}:interviewer:{interviewer_id}"),
                        )
                        .await
                }
                HitolinkWrite::Patch(p) => {
                    self.hitolink
                        .patch(&interview_id, &wire::interview_patch(p), version)
                        .await
                }
            };
            match result {
                Ok(iv) => {
                    hitolink_writes += 1;
                    version = iv.version;
                    iv_after = Some(iv);
                }
                Err(HitolinkError::PreconditionFailed { current, .. }) => {
                    let h = match current {
                        Some(cur) => Obs::Now(*cur),
                        None => self.get_interview(&interview_id).await?,
                    };
                    let g = event_after.map(Obs::Now).unwrap_or_else(|| g.clone());
                    return Ok(Step::Again {
                        h: Box::new(h),
                        g: Box::new(g),
                        interview_id: Some(interview_id),
                        calendar_writes,
                        hitolink_writes,
                    });
                }
                Err(HitolinkError::NotFound { .. }) => {
                    let g = event_after.map(Obs::Now).unwrap_or_else(|| g.clone());
                    return Ok(Step::Again {
                        h: Box::new(Obs::Gone),
                        g: Box::new(g),
                        interview_id: Some(interview_id),
                        calendar_writes,
                        hitolink_writes,
                    });
                }
                Err(
                    e @ (HitolinkError::Invalid { .. }
                    | HitolinkError::Unsyncable(_)
                    | HitolinkError::Rejected { .. }),
                ) => {
                    return Ok(Step::Park(format!("HITO-Link rejected the write: {e}")));
                }
                Err(e @ (HitolinkError::Transient(_) | HitolinkError::RateLimited { .. })) => {
                    return Ok(Step::Park(format!(
                        "HITO-Link write failed, retried later: {e}"
                    )));
                }
                Err(e) => return Err(EngineError::Hitolink(e)),
            }
        }

        let snapshot = snapshot.map(|mut s| {
            if let Some(ev) = &event_after {
                s.event_etag = ev.etag.clone();
                s.event_attendees = ev.attendees.clone();
            }
            if let Some(iv) = &iv_after {
                s.hl_version = iv.version;
            }
            s
        });
        Ok(Step::Done {
            snapshot: Box::new(snapshot),
            calendar_writes,
            hitolink_writes,
        })
    }

    async fn get_interview(&self, id: &str) -> Result<Obs<Interview>, EngineError> {
        match self.hitolink.get(id).await {
            Ok(iv) => Ok(Obs::Now(iv)),
            Err(HitolinkError::NotFound { .. }) => Ok(Obs::Gone),
            Err(e) => Err(EngineError::Hitolink(e)),
        }
    }

    /// A booking: check the application, create the interview (the event
    /// ID is the idempotency key, so a replay returns the same interview),
    /// then decide again with both sides present, which stamps the event.
    async fn book(&self, b: &Booking, ev: &CalendarEvent) -> Result<Step, EngineError> {
        let app = match self.hitolink.application(&b.application_id).await {
            Ok(a) => a,
            Err(HitolinkError::NotFound { .. }) => {
                return Ok(Step::Park(format!(
                    "booking names application {} which HITO-Link does not know; fix the marker in the event",
                    b.application_id
                )));
            }
            Err(e @ (HitolinkError::Transient(_) | HitolinkError::RateLimited { .. })) => {
                return Ok(Step::Park(format!(
                    "HITO-Link lookup failed, retried later: {e}"
                )));
            }
            Err(e) => return Err(EngineError::Hitolink(e)),
        };
        let candidate = app.candidate.email.as_deref().map(str::to_ascii_lowercase);
        let new = NewInterview {
            application_id: b.application_id.clone(),
            selection_step_id: None,
            start: b.slot.start,
            end: b.slot.end,
            time_zone: b.time_zone.clone(),
            interviewers: b
                .guests
                .iter()
                .filter(|g| Some(g.as_str()) != candidate.as_deref())
                .cloned()
                .collect(),
            external_event_id: ev.id.clone(),
            location: b.location.clone(),
            video_conferencing_url: b.link.clone(),
        };
        match self.hitolink.create(&new, &ev.id).await {
            Ok(created) => {
                // A replayed key answers with the record as it was first
                // made; what counts is how it is now.
                let id = created.id.clone();
                let h = match self.get_interview(&id).await {
                    Ok(h) => h,
                    Err(e) => {
                        return Ok(Step::Park(format!(
                            "reading back the booked interview failed: {e}"
                        )));
                    }
                };
                Ok(Step::Again {
                    h: Box::new(h),
                    g: Box::new(Obs::Now(ev.clone())),
                    interview_id: Some(id),
                    calendar_writes: 0,
                    hitolink_writes: 1,
                })
            }
            Err(
                e @ (HitolinkError::Invalid { .. }
                | HitolinkError::NotFound { .. }
                | HitolinkError::Rejected { .. }),
            ) => Ok(Step::Park(format!("HITO-Link refused the booking: {e}"))),
            Err(e @ (HitolinkError::Transient(_) | HitolinkError::RateLimited { .. })) => {
                Ok(Step::Park(format!("booking failed, retried later: {e}")))
            }
            Err(e) => Err(EngineError::Hitolink(e)),
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    calendar_writes: usize,
    hitolink_writes: usize,
    conflicts: usize,
    parked: bool,
}
