//! What hitosync remembers between cycles, in sled.
//!
//! Per interview: the agreed snapshot and a short history of decisions.
//! Per link: the Google sync token and the HITO-Link cursor, the intent
//! journal, parked records, the conflict log and the last cycle's report.
//! Every tree is named after the link (`default` for now), so one daemon can
//! later serve several organizer / HITO-Link pairs without a migration.
//!
//! sled makes writes durable only on flush; every commit point here flushes
//! before it returns, so "applied" in the engine means "on disk".

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use hitosync_core::reconcile::{Case, Conflict, Snapshot};

pub const SCHEMA_VERSION: u64 = 1;
pub const DEFAULT_LINK: &str = "default";
const HISTORY_LEN: usize = 20;
const CONFLICT_LOG_LEN: usize = 1000;
const RECORD_COUNT: &str = "record_count";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the state dir {dir} is in use by another hitosync process (the daemon?): stop it, or run the command through it"
    )]
    Locked { dir: PathBuf },
    #[error(
        "cannot open the state dir {dir}: {detail} (check daemon.state_dir and its permissions)"
    )]
    Open { dir: PathBuf, detail: String },
    #[error(
        "the state dir {dir} was written by another hitosync version (schema {found}, this one reads {SCHEMA_VERSION}); use the matching version or move the dir away to rebuild it from the calendar"
    )]
    Schema { dir: PathBuf, found: u64 },
    /// The store's files are there but do not open as a hitosync store.
    /// Never treated as empty: that would forget every mapping.
    #[error(
        "the state dir {dir} holds no readable hitosync store ({detail}); nothing in it was changed. To rebuild the mappings from both sides: stop the daemon, move the dir aside (mv {dir} {dir}.broken), then run `hitosync sync --full`"
    )]
    NotAStore { dir: PathBuf, detail: String },
    #[error(
        "the store does not open because an interrupted write left an unfinished snapshot that hitosync could not remove: remove {files} (as the daemon's user), then start again; nothing else needs to change"
    )]
    UnfinishedSnapshot { files: String },
    #[error("the state store failed: {0}")]
    Io(String),
    #[error("a state record is unreadable ({key}): {detail}")]
    Corrupt { key: String, detail: String },
}

impl From<sled::Error> for StateError {
    fn from(e: sled::Error) -> Self {
        StateError::Io(io_text(&e))
    }
}

/// The sled folder inside the state dir.
const SLED_DIR: &str = "sled";

mod open;
use open::{io_text, make_private, remove_unfinished_snapshots};

/// One decision as kept in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub case: Case,
    pub summary: String,
}

/// A mapped interview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub snapshot: Snapshot,
    pub synced_at: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

/// A sync token or cursor, with when it was saved (for `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub value: String,
    pub saved_at: DateTime<Utc>,
}

/// A remote write that was about to happen. Left behind only by a crash;
/// the next cycle reads both sides of that record again before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub key: WorkKey,
    pub summary: String,
    pub at: DateTime<Utc>,
}

/// What a unit of work is about: a mapped (or to-be-mapped) interview, or
/// an unmanaged event that books one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum WorkKey {
    Interview(String),
    Event(String),
}

impl WorkKey {
    fn db_key(&self) -> String {
        match self {
            WorkKey::Interview(id) => format!("iv:{id}"),
            WorkKey::Event(id) => format!("ev:{id}"),
        }
    }
}

impl std::fmt::Display for WorkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkKey::Interview(id) => write!(f, "interview {id}"),
            WorkKey::Event(id) => write!(f, "event {id}"),
        }
    }
}

/// A record that could not be synced; retried with backoff, shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub key: WorkKey,
    pub reason: String,
    pub attempts: u32,
    pub first_at: DateTime<Utc>,
    pub next_retry: DateTime<Utc>,
    /// Held by the mass-deletion breaker: retried only with
    /// `--allow-mass-delete`.
    #[serde(default)]
    pub held: bool,
}

/// A conflict, with the loser's value, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictEntry {
    pub at: DateTime<Utc>,
    pub interview_id: String,
    pub conflict: Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Google,
    Hitolink,
}

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Google => "google",
            Side::Hitolink => "hitolink",
        }
    }
}

pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    records: sled::Tree,
    by_event: sled::Tree,
    cursors: sled::Tree,
    intents: sled::Tree,
    parked: sled::Tree,
    conflicts: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(v).map_err(|e| StateError::Io(format!("cannot encode a state record: {e}")))
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

impl Store {
    /// Opens (or creates) the store in `dir` for the `default` link.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        Store::open_link(dir, DEFAULT_LINK)
    }

    pub fn open_link(dir: &Path, link: &str) -> Result<Store, StateError> {
        let open_err = |detail: String| StateError::Open {
            dir: dir.to_path_buf(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let sled_dir = dir.join(SLED_DIR);
        // Was there a store before this open? Then it must read as one.
        let existed = std::fs::read_dir(&sled_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        make_private(dir, &sled_dir).map_err(|e| open_err(format!("setting permissions: {e}")))?;
        let unfinished = remove_unfinished_snapshots(&sled_dir);
        // A process that just exited (or a handle this process just dropped,
        // whose sled flusher thread still holds the lock for a moment)
        // releases the lock shortly: wait up to two seconds before calling
        // the store taken.
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new().path(&sled_dir).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    attempts += 1;
                    if attempts >= 200 {
                        return Err(StateError::Locked {
                            dir: dir.to_path_buf(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(sled::Error::Corruption { .. }) if !unfinished.is_empty() => {
                    return Err(StateError::UnfinishedSnapshot {
                        files: unfinished
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                Err(e @ (sled::Error::Corruption { .. } | sled::Error::Unsupported(_))) => {
                    return Err(StateError::NotAStore {
                        dir: dir.to_path_buf(),
                        detail: format!("sled reports: {}", io_text(&e)),
                    });
                }
                Err(other) => return Err(open_err(io_text(&other))),
            }
        };
        if existed && db.get("schema_version")?.is_none() {
            return Err(StateError::NotAStore {
                dir: dir.to_path_buf(),
                detail: "a sled database without hitosync's schema version".into(),
            });
        }
        let tree = |name: &str| db.open_tree(format!("{link}/{name}"));
        let store = Store {
            dir: dir.to_path_buf(),
            records: tree("records")?,
            by_event: tree("by_event")?,
            cursors: tree("cursors")?,
            intents: tree("intents")?,
            parked: tree("parked")?,
            conflicts: tree("conflicts")?,
            meta: tree("meta")?,
            db,
        };
        if store.meta.get(RECORD_COUNT)?.is_none() {
            let n = store.records.len() as u64;
            store.meta.insert(RECORD_COUNT, &n.to_be_bytes())?;
        }
        match store.db.get("schema_version")? {
            None => {
                store
                    .db
                    .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                store.db.flush()?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StateError::Schema {
                        dir: dir.to_path_buf(),
                        found,
                    });
                }
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the store still takes writes. sled stops taking any after an
    /// I/O error (a full disk, EIO) until it is opened again, even once the
    /// cause is gone: a caller that sees this fail drops the store and
    /// opens it anew.
    pub fn check_writable(&self) -> Result<(), StateError> {
        self.meta.insert("probe", &[1u8])?;
        self.flush()
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }

    // --- records ---------------------------------------------------------

    pub fn record(&self, interview_id: &str) -> Result<Option<Record>, StateError> {
        match self.records.get(interview_id)? {
            Some(v) => Ok(Some(decode(interview_id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    pub fn interview_for_event(&self, event_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .by_event
            .get(event_id)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Stores a decision's outcome: the new snapshot (or its removal), one
    /// history line, the conflicts, and clears the intent and any parking.
    /// One flush makes it all durable together.
    pub fn commit(
        &self,
        key: &WorkKey,
        interview_id: &str,
        snapshot: Option<&Snapshot>,
        entry: HistoryEntry,
        conflicts: &[Conflict],
    ) -> Result<(), StateError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let old: Option<Record> = self.record(interview_id)?;
        // Encoded before the transaction, which may run more than once.
        let new_record = match snapshot {
            Some(s) => {
                let mut history = old.as_ref().map(|r| r.history.clone()).unwrap_or_default();
                history.push(entry.clone());
                if history.len() > HISTORY_LEN {
                    history.drain(..history.len() - HISTORY_LEN);
                }
                Some((
                    s.event_id.clone(),
                    encode(&Record {
                        snapshot: s.clone(),
                        synced_at: entry.at,
                        history,
                    })?,
                ))
            }
            None => None,
        };
        let old_event = old.map(|r| r.snapshot.event_id);
        let conflict_values: Vec<Vec<u8>> = conflicts
            .iter()
            .map(|c| {
                encode(&ConflictEntry {
                    at: entry.at,
                    interview_id: interview_id.to_string(),
                    conflict: c.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        let settled: Vec<String> = match key {
            // a booking that became an interview is settled under both keys
            WorkKey::Event(_) => vec![
                key.db_key(),
                WorkKey::Interview(interview_id.to_string()).db_key(),
            ],
            WorkKey::Interview(_) => vec![key.db_key()],
        };
        // One transaction: a crash leaves either the old state or the new.
        (
            &self.records,
            &self.by_event,
            &self.intents,
            &self.parked,
            &self.conflicts,
            &self.meta,
        )
            .transaction(|(records, by_event, intents, parked, log, meta)| {
                let existed = match &new_record {
                    Some((event_id, bytes)) => {
                        if let Some(old) = &old_event
                            && old != event_id
                        {
                            by_event.remove(old.as_str())?;
                        }
                        by_event.insert(event_id.as_str(), interview_id.as_bytes())?;
                        records.insert(interview_id, bytes.as_slice())?.is_some()
                    }
                    None => {
                        if let Some(old) = &old_event {
                            by_event.remove(old.as_str())?;
                        }
                        records.remove(interview_id)?.is_some()
                    }
                };
                // The count of records is kept beside them: sled's len()
                // walks the whole tree, and status and metrics ask often.
                let exists = new_record.is_some();
                if existed != exists {
                    let count = meta
                        .get(RECORD_COUNT)?
                        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok().map(u64::from_be_bytes))
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
                for k in &settled {
                    intents.remove(k.as_str())?;
                    parked.remove(k.as_str())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
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

    /// Mapped interviews, in constant time (a counter kept by `commit`).
    pub fn record_count(&self) -> usize {
        self.meta
            .get(RECORD_COUNT)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0) as usize
    }

    // --- cursors -----------------------------------------------------------

    pub fn cursor(&self, side: Side) -> Result<Option<Cursor>, StateError> {
        match self.cursors.get(side.key())? {
            Some(v) => Ok(Some(decode(side.key().as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Saves both positions at once, after what they cover is durable.
    pub fn set_cursors(
        &self,
        google: Option<&str>,
        hitolink: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        for (side, value) in [(Side::Google, google), (Side::Hitolink, hitolink)] {
            if let Some(v) = value {
                let c = Cursor {
                    value: v.to_string(),
                    saved_at: at,
                };
                self.cursors.insert(side.key(), encode(&c)?)?;
            }
        }
        self.flush()
    }

    /// `sync --full` and SIGUSR2: the next cycle lists everything.
    pub fn clear_cursors(&self) -> Result<(), StateError> {
        self.cursors.clear()?;
        self.flush()
    }

    // --- intents -------------------------------------------------------

    /// Written and flushed before a remote write.
    pub fn put_intent(&self, intent: &Intent) -> Result<(), StateError> {
        self.intents.insert(intent.key.db_key(), encode(intent)?)?;
        self.flush()
    }

    /// An intent or a parking is open for `key`.
    pub fn is_pending(&self, key: &WorkKey) -> Result<bool, StateError> {
        Ok(self.intents.contains_key(key.db_key())? || self.parked.contains_key(key.db_key())?)
    }

    /// Closes any intent and parking for `key` (the record needs nothing).
    pub fn settle(&self, key: &WorkKey) -> Result<(), StateError> {
        self.intents.remove(key.db_key())?;
        self.parked.remove(key.db_key())?;
        self.flush()
    }

    pub fn intents(&self) -> Result<Vec<Intent>, StateError> {
        self.intents
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    // --- parked ---------------------------------------------------------

    /// Parks (or parks again) a record: attempts grow, and so does the wait
    /// before the next try (1 min doubling, at most 6 h).
    pub fn park(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_as(key, reason, now, false)
    }

    /// Parks a cancellation the mass-deletion breaker held back.
    pub fn park_held(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_as(
            key,
            &format!("held by the mass-deletion breaker: {reason}"),
            now,
            true,
        )
    }

    fn park_as(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
    ) -> Result<Parked, StateError> {
        let old: Option<Parked> = match self.parked.get(key.db_key())? {
            Some(v) => Some(decode(key.db_key().as_bytes(), &v)?),
            None => None,
        };
        let attempts = old.as_ref().map(|p| p.attempts + 1).unwrap_or(1);
        let wait_min = (1i64 << (attempts - 1).min(9)).min(360);
        let p = Parked {
            key: key.clone(),
            reason: reason.to_string(),
            attempts,
            first_at: old.map(|p| p.first_at).unwrap_or(now),
            next_retry: now + chrono::Duration::minutes(wait_min),
            held,
        };
        self.parked.insert(key.db_key(), encode(&p)?)?;
        self.intents.remove(key.db_key())?;
        self.flush()?;
        Ok(p)
    }

    pub fn parked(&self) -> Result<Vec<Parked>, StateError> {
        self.parked
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    // --- conflicts and meta ------------------------------------------------

    /// The newest conflicts first.
    pub fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, StateError> {
        self.conflicts
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn conflict_count(&self) -> usize {
        self.conflicts.len()
    }

    pub fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.meta.insert(key, encode(value)?)?;
        self.flush()
    }

    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.meta.get(key)? {
            Some(v) => Ok(Some(decode(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitosync_core::reconcile::{Fields, Presentation};
    use std::collections::{BTreeMap, BTreeSet};

    fn snapshot(id: &str) -> Snapshot {
        Snapshot {
            interview_id: id.into(),
            event_id: format!("ev{id}"),
            fields: Fields {
                cancelled: false,
                slot: None,
                location: None,
                link: None,
                candidate_declined: false,
                responses: BTreeMap::new(),
            },
            presentation: Presentation {
                title: "t".into(),
                description: "d".into(),
                invitees: BTreeSet::new(),
                time_zone: "Asia/Tokyo".into(),
            },
            candidate_email: None,
            interviewer_ids: BTreeMap::new(),
            hl_version: 1,
            event_etag: "\"1\"".into(),
            event_attendees: vec![],
            retired: false,
        }
    }

    fn entry(n: u32) -> HistoryEntry {
        HistoryEntry {
            at: Utc::now(),
            case: Case::Merge,
            summary: format!("step {n}"),
        }
    }

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let key = WorkKey::Interview("iv_1".into());
            s.put_intent(&Intent {
                key: key.clone(),
                summary: "x".into(),
                at: Utc::now(),
            })
            .unwrap();
            s.commit(&key, "iv_1", Some(&snapshot("iv_1")), entry(1), &[])
                .unwrap();
            s.set_cursors(Some("gtok"), Some("hcur"), Utc::now())
                .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.record("iv_1").unwrap().unwrap().snapshot,
            snapshot("iv_1")
        );
        assert_eq!(
            s.interview_for_event("eviv_1").unwrap().as_deref(),
            Some("iv_1")
        );
        assert_eq!(s.cursor(Side::Google).unwrap().unwrap().value, "gtok");
        assert!(s.intents().unwrap().is_empty(), "commit clears the intent");
        s.clear_cursors().unwrap();
        assert!(s.cursor(Side::Hitolink).unwrap().is_none());
    }

    #[test]
    fn history_is_bounded_and_forgetting_drops_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let key = WorkKey::Interview("iv_1".into());
        for n in 0..30 {
            s.commit(&key, "iv_1", Some(&snapshot("iv_1")), entry(n), &[])
                .unwrap();
        }
        let r = s.record("iv_1").unwrap().unwrap();
        assert_eq!(r.history.len(), HISTORY_LEN);
        assert_eq!(s.record_count(), 1);
        assert_eq!(r.history.last().unwrap().summary, "step 29");
        s.commit(&key, "iv_1", None, entry(99), &[]).unwrap();
        assert!(s.record("iv_1").unwrap().is_none());
        assert_eq!(s.record_count(), 0);
        assert!(s.interview_for_event("eviv_1").unwrap().is_none());
    }

    #[test]
    fn parking_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let key = WorkKey::Event("ui1".into());
        let now = Utc::now();
        let p1 = s.park(&key, "unknown application", now).unwrap();
        let p2 = s.park(&key, "unknown application", now).unwrap();
        assert_eq!(p2.attempts, 2);
        assert!(p2.next_retry > p1.next_retry);
        assert_eq!(p2.first_at, p1.first_at);
        assert_eq!(s.parked().unwrap().len(), 1);
        s.settle(&key).unwrap();
        assert!(s.parked().unwrap().is_empty());
    }

    #[test]
    fn another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("sled")).unwrap();
            db.insert("schema_version", &99u64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StateError::Schema { found: 99, .. }), "{err}");
    }

    #[test]
    fn conflict_log_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let c = Conflict {
            field: "time".into(),
            hitolink: "a".into(),
            google: "b".into(),
            winner: "hitolink".into(),
        };
        s.commit(
            &WorkKey::Interview("iv_1".into()),
            "iv_1",
            Some(&snapshot("iv_1")),
            entry(1),
            std::slice::from_ref(&c),
        )
        .unwrap();
        let log = s.conflicts(10).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].conflict, c);
    }
}
