//! Reading both change feeds, a page at a time, into the work set.
//!
//! Memory holds one page, not the feed: each item is merged into its
//! record's work entry as it arrives (the newest observation wins, so the
//! order within a page never matters). A full listing also remembers which
//! IDs it saw, and only the IDs, so that what the store maps but the
//! listing lacks is known to be gone.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use hitosync_core::ids::{EventId, InterviewId};
use hitosync_core::model::{CalendarEvent, Interview, Unsyncable};
use hitosync_core::reconcile::{booking_of, derived_event_id};
use hitosync_google::GoogleError;
use hitosync_hitolink::HitolinkError;
use hitosync_state::{Side, StateStoreExt, WorkKey};

use hitosync_core::reconcile::Seen;

use crate::work::{WorkItem, WorkSet, newer_event, newer_interview};
use crate::{CycleOptions, Engine, EngineError};

/// A feed that goes on past this many pages beyond what the store holds is
/// not a feed but a loop (a server repeating itself in a way the token
/// check cannot see): the cycle stops with an error that names the side.
const PAGE_SLACK: usize = 1_000;

/// What reading the feeds came to.
#[derive(Debug, Default)]
pub(crate) struct Ingested {
    pub full_google: bool,
    pub full_hitolink: bool,
    pub google_token: Option<String>,
    pub hitolink_cursor: Option<String>,
    pub google_changes: usize,
    pub hitolink_changes: usize,
    /// One side listed nothing where the store maps records.
    pub empty_side: Option<String>,
    /// Records to read again on both sides before deciding.
    pub refetch: Vec<WorkKey>,
    /// Items that did not decode.
    pub unreadable: usize,
    /// Cancellations the breaker held in an earlier cycle, still parked.
    pub held: usize,
}

impl Engine<'_> {
    pub(crate) async fn ingest(
        &self,
        work: &WorkSet<'_>,
        opts: &CycleOptions,
        now: DateTime<Utc>,
    ) -> Result<Ingested, EngineError> {
        let (g_cursor, h_cursor) = if opts.full {
            (None, None)
        } else {
            (
                self.store.cursor(Side::Google).await?.map(|c| c.value),
                self.store.cursor(Side::Hitolink).await?.map(|c| c.value),
            )
        };
        let mut out = Ingested::default();
        let listed_events = self
            .ingest_google(work, g_cursor, now, opts.dry_run, &mut out)
            .await?;
        let listed_interviews = self.ingest_hitolink(work, h_cursor, now, &mut out).await?;
        let mapped = self.store.record_count().await?;
        if mapped > 0 {
            if out.full_google && listed_events.as_ref().is_some_and(|l| l.managed == 0) {
                out.empty_side = Some(format!(
                    "the calendar listed no managed event where {mapped} are mapped"
                ));
            } else if out.full_hitolink && listed_interviews.as_ref().is_some_and(HashSet::is_empty)
            {
                out.empty_side = Some(format!(
                    "HITO-Link listed no interview where {mapped} are mapped"
                ));
            }
        }
        if listed_events.is_some() || listed_interviews.is_some() {
            self.mark_gone(
                work,
                listed_events.as_ref().map(|l| &l.ids),
                listed_interviews.as_ref(),
                now,
            )
            .await?;
        }
        // Read again what a crash or a parking left open.
        for intent in self.store.intents().await? {
            debug!(key = %intent.key, "unfinished write from an earlier run: reading both sides again");
            out.refetch.push(intent.key);
        }
        for p in self.store.parked().await? {
            out.held += usize::from(p.held);
            let due = if p.held {
                opts.allow_mass_delete
            } else {
                p.next_retry <= now || (opts.probe_invitations && p.waits_for_limit)
            };
            if due {
                out.refetch.push(p.key);
            }
        }
        out.refetch.sort();
        out.refetch.dedup();
        work.flush().await?;
        Ok(out)
    }

    /// The calendar's changes since `token` (everything without one). A
    /// full listing returns the IDs it saw.
    async fn ingest_google(
        &self,
        work: &WorkSet<'_>,
        mut token: Option<String>,
        now: DateTime<Utc>,
        dry: bool,
        out: &mut Ingested,
    ) -> Result<Option<Listed>, EngineError> {
        'listing: loop {
            let full = token.is_none();
            let mut listed = full.then(Listed::default);
            let mut page: Option<String> = None;
            let mut seen_pages: HashSet<String> = HashSet::new();
            let max_pages = self.store.record_count().await? / 250 + PAGE_SLACK;
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > max_pages {
                    return Err(EngineError::Paging {
                        side: "the calendar",
                        detail: format!(
                            "more than {max_pages} pages in one listing (page token {:?})",
                            page.as_deref().unwrap_or("")
                        ),
                    });
                }
                let p = match self
                    .calendar
                    .list_page(token.as_deref(), page.as_deref())
                    .await
                {
                    Ok(p) => p,
                    Err(GoogleError::FullSyncRequired) if !full => {
                        warn!("calendar sync token expired (410): listing everything again");
                        token = None;
                        continue 'listing;
                    }
                    Err(e) => return Err(EngineError::Google(e)),
                };
                for bad in &p.unreadable {
                    out.unreadable += 1;
                    if !dry {
                        self.unreadable_event(bad, now).await?;
                    }
                    if let (Some(l), Some(id)) = (listed.as_mut(), &bad.id) {
                        // listed, just not readable: not gone
                        l.ids.insert(id.clone().into());
                    }
                }
                for ev in p.events {
                    if let Some(l) = listed.as_mut() {
                        l.ids.insert(ev.id.clone());
                        if ev.interview_id().is_some() {
                            l.managed += 1;
                        }
                    }
                    if self.add_event(work, ev, now).await? {
                        out.google_changes += 1;
                    }
                }
                work.flush().await?;
                match (p.next_page_token, p.next_sync_token) {
                    (Some(next), _) => {
                        if !seen_pages.insert(next.clone()) {
                            return Err(EngineError::Paging {
                                side: "the calendar",
                                detail: format!("the page token {next:?} came back a second time"),
                            });
                        }
                        page = Some(next);
                    }
                    (None, next_sync) => {
                        out.full_google = full;
                        out.google_token = next_sync.or(token);
                        return Ok(listed);
                    }
                }
            }
        }
    }

    /// HITO-Link's changes since `cursor` (every record without one). A
    /// full read returns the IDs it saw.
    async fn ingest_hitolink(
        &self,
        work: &WorkSet<'_>,
        mut cursor: Option<String>,
        now: DateTime<Utc>,
        out: &mut Ingested,
    ) -> Result<Option<HashSet<InterviewId>>, EngineError> {
        'feed: loop {
            let full = cursor.is_none();
            let mut listed = full.then(HashSet::new);
            let mut at = cursor.clone();
            let mut seen: HashSet<String> = HashSet::new();
            let page_size = self.hitolink_page_size.max(1) as usize;
            let max_pages = self.store.record_count().await? / page_size + PAGE_SLACK;
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > max_pages {
                    return Err(EngineError::Paging {
                        side: "HITO-Link",
                        detail: format!(
                            "more than {max_pages} pages in one read of the change feed (cursor {:?})",
                            at.as_deref().unwrap_or("")
                        ),
                    });
                }
                let p = match self
                    .hitolink
                    .changes(at.as_deref(), self.hitolink_page_size)
                    .await
                {
                    Ok(p) => p,
                    Err(HitolinkError::CursorExpired) if !full => {
                        warn!("HITO-Link cursor expired (410): reading the feed from the start");
                        cursor = None;
                        continue 'feed;
                    }
                    Err(e) => return Err(EngineError::Hitolink(e)),
                };
                for bad in &p.unreadable {
                    out.unreadable += 1;
                    warn!(position = bad.position, hash = %bad.hash, reason = %bad.reason, "a HITO-Link record without a usable id does not decode; left out (see the server)");
                    if let (Some(l), Some(id)) = (listed.as_mut(), &bad.id) {
                        l.insert(InterviewId::from(id.as_str()));
                    }
                }
                for item in p.items {
                    if let Some(l) = listed.as_mut() {
                        l.insert(match &item {
                            Ok(iv) => iv.id.clone(),
                            Err(u) => u.id.clone(),
                        });
                    }
                    self.add_interview(work, item, now).await?;
                    out.hitolink_changes += 1;
                }
                work.flush().await?;
                if !p.has_more {
                    out.full_hitolink = full;
                    out.hitolink_cursor = Some(p.next_cursor);
                    return Ok(listed);
                }
                if !seen.insert(p.next_cursor.clone()) || at.as_deref() == Some(&p.next_cursor) {
                    return Err(EngineError::Paging {
                        side: "HITO-Link",
                        detail: format!(
                            "the change feed answered has_more with the cursor {:?} a second time",
                            p.next_cursor
                        ),
                    });
                }
                at = Some(p.next_cursor);
            }
        }
    }

    /// An event that does not decode: parked by its record when hitosync
    /// maps it (it is retried, and `status` shows why), else left alone.
    async fn unreadable_event(
        &self,
        bad: &hitosync_core::model::UnreadableItem,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mapped = match &bad.id {
            Some(id) => {
                self.store
                    .interview_for_event(&EventId::from(id.as_str()))
                    .await?
            }
            None => None,
        };
        match mapped {
            Some(iid) => {
                let key = WorkKey::Interview(iid);
                let reason = format!("its event does not decode: {}", bad.reason);
                warn!(%key, reason = %reason, "a managed event does not decode; parked");
                self.store.park(&key, &reason, now).await?;
            }
            None => {
                debug!(id = ?bad.id, position = bad.position, hash = %bad.hash, reason = %bad.reason, "an unmanaged event does not decode; left alone");
            }
        }
        Ok(())
    }

    /// Merges an event into its record's work. Only managed events, events
    /// the store maps, and bookings are hitosync's business; returns
    /// whether this was one.
    async fn add_event(
        &self,
        work: &WorkSet<'_>,
        ev: CalendarEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let (key, at_mapped_id) = match self.store.interview_for_event(&ev.id).await? {
            Some(iid) => (WorkKey::Interview(iid), true),
            None => match ev.interview_id() {
                Some(iid) => {
                    let iid = InterviewId::from(iid);
                    let mapped = self.store.record(&iid).await?.is_some();
                    let derived = ev.id == derived_event_id(&iid);
                    (WorkKey::Interview(iid), !mapped && derived)
                }
                None => match booking_of(&ev, &self.policy) {
                    Ok(None) => return Ok(false),
                    Ok(Some(_)) | Err(_) => (WorkKey::Event(ev.id.clone()), true),
                },
            },
        };
        let mut item: WorkItem = work.get(&key).await?.unwrap_or_default();
        if at_mapped_id {
            let newer = match &item.calendar {
                Seen::Now(old) => newer_event(old, &ev),
                Seen::NoNews | Seen::Gone => true,
            };
            if newer {
                item.calendar = Seen::Now(ev);
            }
        } else {
            match item.claimants.iter_mut().find(|c| c.id == ev.id) {
                Some(old) if newer_event(old, &ev) => *old = ev,
                Some(_) => {}
                None => item.claimants.push(ev),
            }
        }
        work.put(&key, &item, now).await?;
        Ok(true)
    }

    async fn add_interview(
        &self,
        work: &WorkSet<'_>,
        item: Result<Interview, Unsyncable>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let id = match &item {
            Ok(iv) => iv.id.clone(),
            Err(u) => u.id.clone(),
        };
        let key = WorkKey::Interview(id);
        let mut w: WorkItem = work.get(&key).await?.unwrap_or_default();
        match item {
            Ok(iv) => {
                if newer_interview(&w.hitolink, &iv) {
                    w.hitolink = Seen::Now(iv);
                    w.invalid = None;
                }
            }
            // The feed lists changes oldest first: a record that stopped
            // validating after a valid version is parked with its reason.
            Err(bad) => w.invalid = Some(bad.reason),
        }
        Ok(work.put(&key, &w, now).await?)
    }

    /// What the store maps but a full listing lacks is gone on that side.
    async fn mark_gone(
        &self,
        work: &WorkSet<'_>,
        events: Option<&HashSet<EventId>>,
        interviews: Option<&HashSet<InterviewId>>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        // In batches: memory holds a batch of records, not the store.
        let mut after: Option<InterviewId> = None;
        loop {
            let batch = self.store.records_after(after.as_ref(), 500).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = Some(last.snapshot.interview_id.clone());
            for rec in batch {
                let s = &rec.snapshot;
                let gone_g = events.is_some_and(|l| !l.contains(&s.event_id));
                let gone_h = interviews.is_some_and(|l| !l.contains(&s.interview_id));
                if gone_g || gone_h {
                    let key = WorkKey::Interview(s.interview_id.clone());
                    let mut w: WorkItem = work.get(&key).await?.unwrap_or_default();
                    if gone_g {
                        w.calendar = Seen::Gone;
                    }
                    if gone_h {
                        w.hitolink = Seen::Gone;
                    }
                    work.put(&key, &w, now).await?;
                }
            }
        }
    }

    /// Reads both sides of one record afresh, into its work.
    pub(crate) async fn refetch(
        &self,
        work: &WorkSet<'_>,
        key: &WorkKey,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut w: WorkItem = work.get(key).await?.unwrap_or_default();
        w.refetch = false;
        match key {
            WorkKey::Interview(id) => {
                let snap = self.store.record(id).await?.map(|r| r.snapshot);
                let mapped = snap.is_some();
                w.invalid = None;
                w.hitolink = match self.hitolink.get(id).await {
                    Ok(iv) => Seen::Now(iv),
                    Err(HitolinkError::NotFound { .. }) => Seen::Gone,
                    Err(HitolinkError::Unsyncable(u)) => {
                        w.invalid = Some(u.reason);
                        Seen::NoNews
                    }
                    Err(e) => return Err(EngineError::Hitolink(e)),
                };
                let event_id = snap
                    .map(|s| s.event_id)
                    .unwrap_or_else(|| derived_event_id(id));
                w.calendar = self.get_event(&event_id).await?;
                // Without a mapping, the event the interview names (a
                // booking's) is a candidate too.
                let named = w
                    .hitolink
                    .now()
                    .and_then(|iv| iv.external_event_id.clone())
                    .filter(|named| !mapped && *named != event_id);
                if let Some(named) = named {
                    if let Seen::Now(ev) = self.get_event(&named).await? {
                        w.claimants.retain(|c| c.id != ev.id);
                        w.claimants.push(ev);
                    }
                }
            }
            WorkKey::Event(id) => {
                w.calendar = self.get_event(id).await?;
            }
        }
        work.put(key, &w, now).await?;
        Ok(())
    }
}

/// What a full calendar listing saw.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub ids: HashSet<EventId>,
    /// Events carrying an interview ID among them.
    pub managed: usize,
}
