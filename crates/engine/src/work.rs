//! The work of a cycle: per record, the newest observation of each side,
//! kept in the store between reading the feeds and applying them (or in
//! memory for a dry run), in the order they are applied.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hitosync_core::model::{CalendarEvent, Interview};
use hitosync_core::reconcile::{Decision, Seen};
use hitosync_state::{StateError, StateStore, StateStoreExt, WorkKey};
use parking_lot::Mutex;

/// One record's pending work.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkItem {
    /// What HITO-Link showed of the interview. (`h` and `g` are the names
    /// work sets written before 0.2 used: a cycle interrupted across an
    /// upgrade resumes.)
    #[serde(rename = "h")]
    pub hitolink: Seen<Interview>,
    /// The event at the mapped ID (or, unmapped, the derived one).
    #[serde(rename = "g")]
    pub calendar: Seen<CalendarEvent>,
    /// Other events that carry this interview's ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimants: Vec<CalendarEvent>,
    /// Read both sides again before deciding (after a crash, a parking).
    #[serde(default)]
    pub refetch: bool,
    /// HITO-Link sent a record that does not validate: parked, not decided.
    #[serde(default)]
    pub invalid: Option<String>,
    /// Other keys whose intent or parking this work settles (a booking's
    /// event key once the event is mapped to its interview).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_settle: Vec<WorkKey>,
    /// The record's decision, made once in this cycle's first pass and
    /// kept for a later pass (bookkeeping waits behind what people see; a
    /// cancellation waits until the breaker knows it cannot trip). Only
    /// the cycle that made it uses it; a new reading of either side drops
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub later: Option<Later>,
}

/// A decision kept for a later pass of the cycle that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Later {
    /// The cycle's start, which names it.
    pub cycle: DateTime<Utc>,
    pub decision: Decision,
}

impl WorkItem {
    /// The decision kept by the cycle that started at `cycle`, if any.
    pub(crate) fn later_of(&self, cycle: DateTime<Utc>) -> Option<&Decision> {
        self.later
            .as_ref()
            .filter(|l| l.cycle == cycle)
            .map(|l| &l.decision)
    }
}

/// A HITO-Link record replaces what is known only if it is newer: a page
/// may hold one record twice, or a stale copy after a fresh one, and the
/// highest version is the truth whatever the order.
pub(crate) fn newer_interview(old: &Seen<Interview>, new: &Interview) -> bool {
    match old {
        Seen::Now(o) => new.version >= o.version,
        Seen::NoNews | Seen::Gone => true,
    }
}

/// The same for events: the latest `updated`, then the higher `sequence`,
/// then the ETag, so the choice never depends on where in a page an event
/// stood.
pub(crate) fn newer_event(old: &CalendarEvent, new: &CalendarEvent) -> bool {
    (new.updated, new.sequence, &new.etag) >= (old.updated, old.sequence, &old.etag)
}

/// Where a record stands in the order of work: bookings made in the
/// calendar first (they make the interviews others may refer to); then
/// interviews still to come, soonest first; then those without a time;
/// then past ones, latest first. Fixed when the record is read, so an
/// interrupted cycle resumes in the same order.
pub(crate) fn order_key(key: &WorkKey, item: &WorkItem, now: DateTime<Utc>) -> Vec<u8> {
    let start = item
        .hitolink
        .now()
        .and_then(|iv| iv.slot)
        .or_else(|| item.calendar.now().and_then(|e| e.slot))
        .or_else(|| item.claimants.iter().find_map(|e| e.slot))
        .map(|s| s.start);
    let (class, rank): (u8, u64) = match (key, start) {
        (WorkKey::Event(_), t) => (0, t.map(|t| t.timestamp().max(0) as u64).unwrap_or(0)),
        (WorkKey::Interview(_), Some(t)) if t >= now => (1, t.timestamp().max(0) as u64),
        (WorkKey::Interview(_), None) => (2, 0),
        (WorkKey::Interview(_), Some(t)) => (3, u64::MAX - t.timestamp().max(0) as u64),
    };
    let mut k = Vec::with_capacity(9);
    k.push(class);
    k.extend_from_slice(&rank.to_be_bytes());
    k
}

/// Where a cycle keeps its work: in the store (a real cycle), or in memory
/// (a dry run, which must change nothing).
pub(crate) enum WorkSet<'a> {
    Store(&'a dyn StateStore),
    Memory(Mutex<MemoryWork>),
}

#[derive(Default)]
pub(crate) struct MemoryWork {
    items: HashMap<WorkKey, (Vec<u8>, WorkItem)>,
    order: BTreeMap<Vec<u8>, WorkKey>,
}

fn index_key(order: &[u8], key: &WorkKey) -> Vec<u8> {
    let mut k = order.to_vec();
    k.push(0);
    k.extend_from_slice(key.to_string().as_bytes());
    k
}

impl<'a> WorkSet<'a> {
    /// A dry run's work: what the store holds, plus what it reads.
    pub(crate) async fn memory_from(store: &dyn StateStore) -> Result<WorkSet<'a>, StateError> {
        let mut mem = MemoryWork::default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = store.work_batch(after.as_deref(), 500).await?;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            for (_, key) in batch {
                if let Some(item) = store.work::<WorkItem>(&key).await? {
                    let order = order_key(&key, &item, Utc::now());
                    mem.order.insert(index_key(&order, &key), key.clone());
                    mem.items.insert(key, (order, item));
                }
            }
        }
        Ok(WorkSet::Memory(Mutex::new(mem)))
    }

    pub(crate) async fn get(&self, key: &WorkKey) -> Result<Option<WorkItem>, StateError> {
        match self {
            WorkSet::Store(s) => s.work(key).await,
            WorkSet::Memory(m) => Ok(m.lock().items.get(key).map(|(_, i)| i.clone())),
        }
    }

    /// Stores what was read of a record. A decision kept from an earlier
    /// reading is dropped: it was made from what is no longer the news.
    pub(crate) async fn put(
        &self,
        key: &WorkKey,
        item: &WorkItem,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let order = order_key(key, item, now);
        if item.later.is_some() {
            let mut fresh = item.clone();
            fresh.later = None;
            return self.put_at(key, &fresh, &order).await;
        }
        self.put_at(key, item, &order).await
    }

    /// Stores the item where it stood: a pass that keeps a decision for
    /// later must not meet the record again further on.
    pub(crate) async fn put_at(
        &self,
        key: &WorkKey,
        item: &WorkItem,
        order: &[u8],
    ) -> Result<(), StateError> {
        let order = order.to_vec();
        match self {
            WorkSet::Store(s) => s.put_work(key, &order, item).await,
            WorkSet::Memory(m) => {
                let mut m = m.lock();
                if let Some((old, _)) = m.items.get(key) {
                    let old = index_key(old, key);
                    m.order.remove(&old);
                }
                m.order.insert(index_key(&order, key), key.clone());
                m.items.insert(key.clone(), (order, item.clone()));
                Ok(())
            }
        }
    }

    /// Up to `limit` keys in order after `after`.
    pub(crate) async fn batch(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError> {
        match self {
            WorkSet::Store(s) => s.work_batch(after, limit).await,
            WorkSet::Memory(m) => {
                let m = m.lock();
                let range = match after {
                    Some(a) => m.order.range::<[u8], _>((
                        std::ops::Bound::Excluded(a),
                        std::ops::Bound::Unbounded,
                    )),
                    None => m.order.range::<[u8], _>(..),
                };
                Ok(range
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect())
            }
        }
    }

    pub(crate) async fn len(&self) -> Result<usize, StateError> {
        match self {
            WorkSet::Store(s) => s.work_count().await,
            WorkSet::Memory(m) => Ok(m.lock().items.len()),
        }
    }

    pub(crate) async fn flush(&self) -> Result<(), StateError> {
        match self {
            WorkSet::Store(s) => s.flush_work().await,
            WorkSet::Memory(_) => Ok(()),
        }
    }
}
