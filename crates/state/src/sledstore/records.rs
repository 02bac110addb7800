//! The mapped interviews: snapshots, histories, the event index, and the
//! commit that stores a record's outcome in one transaction.

use chrono::{DateTime, Utc};

use super::*;

impl Store {
    // --- records ---------------------------------------------------------

    pub fn record(&self, interview_id: &InterviewId) -> Result<Option<Record>, StateError> {
        match self.records.get(interview_id)? {
            Some(v) => Ok(Some(decode(interview_id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    pub fn interview_for_event(
        &self,
        event_id: &EventId,
    ) -> Result<Option<InterviewId>, StateError> {
        Ok(self
            .by_event
            .get(event_id)?
            .map(|v| InterviewId::new(String::from_utf8_lossy(&v).into_owned())))
    }

    /// Stores a decision's outcome in one transaction: the new snapshot (or
    /// its removal), one history line, the conflicts, the pending-link
    /// index; and settles the record's intent, parking and work. A crash
    /// leaves either the old state or the new, never half of it.
    pub fn commit(&self, c: Commit<'_>) -> Result<(), StateError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let Commit {
            interview_id,
            entry,
            conflicts,
            ..
        } = &c;
        let interview_id: &InterviewId = interview_id;
        let old: Option<Record> = self.record(interview_id)?;
        // Encoded before the transaction, which may run more than once.
        let new_record = match c.new_record(old.as_ref()) {
            Some(r) => Some((r.snapshot.event_id.clone(), encode(&r)?)),
            None => None,
        };
        let old_event = old.map(|r| r.snapshot.event_id);
        let conflict_values: Vec<Vec<u8>> = conflicts
            .iter()
            .map(|c| {
                encode(&ConflictEntry {
                    at: entry.at,
                    interview_id: interview_id.clone(),
                    conflict: c.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        let settled_keys = c.settled_keys();
        let mut settled = vec![];
        for k in &settled_keys {
            settled.push((k.db_key(), self.work_index_key(k)?));
        }
        let link = self.link_index(interview_id, c.queues_link())?;
        (
            &self.records,
            &self.by_event,
            &self.intents,
            &self.parked,
            &self.conflicts,
            &self.meta,
            &self.work,
            &self.work_order,
            &self.pending_links,
            &self.pending_link_of,
        )
            .transaction(
                |(
                    records,
                    by_event,
                    intents,
                    parked,
                    log,
                    meta,
                    work,
                    work_order,
                    links,
                    link_of,
                )| {
                    let existed = match &new_record {
                        Some((event_id, bytes)) => {
                            if let Some(old) = old_event.as_ref().filter(|old| *old != event_id) {
                                by_event.remove(old.as_str())?;
                            }
                            by_event.insert(event_id.as_str(), interview_id.as_bytes())?;
                            records
                                .insert(interview_id.as_bytes(), bytes.as_slice())?
                                .is_some()
                        }
                        None => {
                            if let Some(old) = &old_event {
                                by_event.remove(old.as_str())?;
                            }
                            records.remove(interview_id.as_bytes())?.is_some()
                        }
                    };
                    // The count of records is kept beside them: sled's len()
                    // walks the whole tree, and status and metrics ask often.
                    let exists = new_record.is_some();
                    if existed != exists {
                        let count = meta
                            .get(RECORD_COUNT)?
                            .and_then(|v| {
                                <[u8; 8]>::try_from(v.as_ref()).ok().map(u64::from_be_bytes)
                            })
                            .unwrap_or(0);
                        let count = if exists {
                            count + 1
                        } else {
                            count.saturating_sub(1)
                        };
                        meta.insert(RECORD_COUNT, &count.to_be_bytes())?;
                    }
                    for v in &conflict_values {
                        let id = log.generate_id()?;
                        log.insert(&id.to_be_bytes(), v.as_slice())?;
                    }
                    for (k, order_key) in &settled {
                        intents.remove(k.as_str())?;
                        parked.remove(k.as_str())?;
                        work.remove(k.as_str())?;
                        if let Some(o) = order_key {
                            work_order.remove(o.as_slice())?;
                        }
                    }
                    if let Some(old) = &link.remove {
                        links.remove(old.as_slice())?;
                    }
                    match &link.insert {
                        Some(k) if exists => {
                            links.insert(k.as_slice(), interview_id.as_bytes())?;
                            link_of.insert(interview_id.as_bytes(), k.as_slice())?;
                        }
                        _ => {
                            link_of.remove(interview_id.as_bytes())?;
                        }
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            )
            .map_err(|e: TransactionError<()>| {
                StateError::Io(format!("committing {interview_id}: {e:?}"))
            })?;
        // len() walks the log (at most a thousand entries): only when it grew
        while !conflicts.is_empty() && self.conflicts.len() > CONFLICT_LOG_LEN {
            if self.conflicts.pop_min()?.is_none() {
                break;
            }
        }
        self.flush()
    }

    /// Every mapped interview, in ID order.
    pub fn records(&self) -> impl Iterator<Item = Result<Record, StateError>> + '_ {
        self.records.iter().map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        })
    }

    /// Up to `limit` mapped interviews in ID order after `after`.
    pub fn records_after(
        &self,
        after: Option<&InterviewId>,
        limit: usize,
    ) -> Result<Vec<Record>, StateError> {
        let range = match after {
            Some(a) => self.records.range::<&[u8], _>((
                std::ops::Bound::Excluded(a.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.records.iter(),
        };
        range
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    /// Mapped interviews, in constant time (a counter kept by `commit`).
    pub fn record_count(&self) -> usize {
        self.meta
            .get(RECORD_COUNT)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0) as usize
    }
}

impl Store {
    /// The interview's half of the link was written back (at `version`):
    /// the snapshot says so and the interview leaves the write-back queue.
    /// The record's other pending work is left alone.
    pub fn link_written(
        &self,
        interview_id: &InterviewId,
        event_id: &EventId,
        version: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let Some(mut rec) = self.record(interview_id)? else {
            return Ok(false);
        };
        if rec.snapshot.event_id != *event_id {
            return Ok(false);
        }
        rec.mark_link_written(event_id, version, at);
        let bytes = encode(&rec)?;
        let index = self.link_index(interview_id, None)?;
        (&self.records, &self.pending_links, &self.pending_link_of)
            .transaction(|(records, links, link_of)| {
                records.insert(interview_id.as_bytes(), bytes.as_slice())?;
                if let Some(k) = &index.remove {
                    links.remove(k.as_slice())?;
                }
                link_of.remove(interview_id.as_bytes())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| {
                StateError::Io(format!("recording the link of {interview_id}: {e:?}"))
            })?;
        self.flush()?;
        Ok(true)
    }

    /// The interview left the write-back queue without a write (gone, or
    /// already right).
    pub fn drop_pending_link(&self, interview_id: &InterviewId) -> Result<(), StateError> {
        if let Some(k) = self.pending_link_of.remove(interview_id.as_bytes())? {
            self.pending_links.remove(k)?;
        }
        Ok(())
    }
}
