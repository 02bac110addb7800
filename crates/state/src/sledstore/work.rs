//! Work that a cycle has read but not yet applied, in the order it is to
//! be applied, and the write-backs of the interviews' half of the link.
//!
//! A cycle first reads both change feeds page by page into the work set
//! (one entry per record, the newest observation of each side), so memory
//! holds a page, not the feed. Once the feeds are read the cursors move:
//! what they covered is durably here. The work set is then applied in its
//! order (the soonest interviews first); an entry is removed in the same
//! transaction that commits or parks its record, so a crash or a stop
//! leaves exactly the unapplied entries, and the next cycle resumes them
//! in the same order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// A work entry as stored: where it stands in the order, and the engine's
/// observations (opaque here).
#[derive(Serialize, serde::Deserialize)]
struct Entry<T> {
    order: Vec<u8>,
    item: T,
}

impl Store {
    /// One record's pending work.
    pub fn work<T: DeserializeOwned>(&self, key: &WorkKey) -> Result<Option<T>, StateError> {
        match self.work.get(key.db_key())? {
            Some(v) => Ok(Some(decode::<Entry<T>>(key.db_key().as_bytes(), &v)?.item)),
            None => Ok(None),
        }
    }

    /// Stores a record's pending work at `order` (lexicographic: the
    /// engine encodes urgency in it). Not flushed: the feed reader flushes
    /// once per page, before the cursors move.
    pub fn put_work<T: Serialize>(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: &T,
    ) -> Result<(), StateError> {
        let db_key = key.db_key();
        let old_order = match self.work.get(&db_key)? {
            Some(v) => Some(decode::<Entry<serde::de::IgnoredAny>>(db_key.as_bytes(), &v)?.order),
            None => None,
        };
        if let Some(old) = old_order.as_ref().filter(|old| old.as_slice() != order) {
            self.work_order.remove(order_index_key(old, &db_key))?;
        }
        self.work.insert(
            db_key.as_bytes(),
            encode(&Entry {
                order: order.to_vec(),
                item,
            })?,
        )?;
        self.work_order
            .insert(order_index_key(order, &db_key), db_key.as_bytes())?;
        Ok(())
    }

    /// Up to `limit` keys of pending work in order, after `after` (the
    /// index key the previous batch ended with). Batches keep memory to a
    /// page while the set is applied and shrinks under the reader.
    pub fn work_batch(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError> {
        let range = match after {
            Some(a) => self
                .work_order
                .range::<&[u8], _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.work_order.iter(),
        };
        let mut out = Vec::with_capacity(limit);
        for kv in range.take(limit) {
            let (k, v) = kv?;
            let key = WorkKey::from_db_key(&String::from_utf8_lossy(&v)).ok_or_else(|| {
                StateError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    detail: "not a work key".into(),
                }
            })?;
            out.push((k.to_vec(), key));
        }
        Ok(out)
    }

    pub fn work_count(&self) -> usize {
        self.work.len()
    }

    /// Drops a record's pending work (it needs nothing more).
    pub fn drop_work(&self, key: &WorkKey) -> Result<(), StateError> {
        let db_key = key.db_key();
        if let Some(v) = self.work.remove(&db_key)? {
            let order = decode::<Entry<serde::de::IgnoredAny>>(db_key.as_bytes(), &v)?.order;
            self.work_order.remove(order_index_key(&order, &db_key))?;
        }
        Ok(())
    }

    /// Makes what was put durable (before the cursors move past it).
    pub fn flush_work(&self) -> Result<(), StateError> {
        self.flush()
    }

    // --- the interviews' half of the link --------------------------------

    /// Interviews whose `external_event_id` waits to be written, in order,
    /// after `after`.
    pub fn pending_links(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, InterviewId)>, StateError> {
        let range = match after {
            Some(a) => self
                .pending_links
                .range::<&[u8], _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.pending_links.iter(),
        };
        range
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    k.to_vec(),
                    InterviewId::new(String::from_utf8_lossy(&v).into_owned()),
                ))
            })
            .collect()
    }

    pub fn pending_link_count(&self) -> usize {
        self.pending_link_of.len()
    }

    // --- reports -----------------------------------------------------------

    /// Records a report; returns whether it is new (logged once).
    pub fn report(
        &self,
        event_id: &EventId,
        interview_id: Option<&InterviewId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let old: Option<Report> = match self.reports.get(event_id)? {
            Some(v) => Some(decode(event_id.as_bytes(), &v)?),
            None => None,
        };
        let new = old.is_none() || old.as_ref().is_some_and(|o| o.reason != reason);
        let r = Report {
            event_id: event_id.clone(),
            interview_id: interview_id.cloned(),
            reason: reason.to_string(),
            first_seen: old.map(|o| o.first_seen).unwrap_or(now),
            last_seen: now,
        };
        self.reports.insert(event_id, encode(&r)?)?;
        Ok(new)
    }

    /// The event is no longer reported (gone, or now fine).
    pub fn clear_report(&self, event_id: &EventId) -> Result<(), StateError> {
        self.reports.remove(event_id)?;
        Ok(())
    }

    pub fn reports(&self) -> Result<Vec<Report>, StateError> {
        self.reports
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }
}

/// Index entries that a commit writes or removes with the record.
pub(crate) struct LinkIndex {
    pub(crate) remove: Option<Vec<u8>>,
    pub(crate) insert: Option<Vec<u8>>,
}

impl Store {
    /// How a commit of `interview_id` changes the pending-link index: an
    /// entry at `order` while its snapshot waits for the write-back.
    pub(crate) fn link_index(
        &self,
        interview_id: &InterviewId,
        pending_at: Option<&[u8]>,
    ) -> Result<LinkIndex, StateError> {
        let old = self.pending_link_of.get(interview_id)?.map(|v| v.to_vec());
        let insert = pending_at.map(|o| order_index_key(o, interview_id));
        Ok(LinkIndex {
            remove: old.filter(|o| Some(o) != insert.as_ref()),
            insert,
        })
    }

    /// The order index key of a work entry, to remove it with a commit.
    pub(crate) fn work_index_key(&self, key: &WorkKey) -> Result<Option<Vec<u8>>, StateError> {
        let db_key = key.db_key();
        Ok(match self.work.get(&db_key)? {
            Some(v) => Some(order_index_key(
                &decode::<Entry<serde::de::IgnoredAny>>(db_key.as_bytes(), &v)?.order,
                &db_key,
            )),
            None => None,
        })
    }
}
