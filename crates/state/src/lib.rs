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

/// 2: the work set, the pending-link index and reports were added, and
/// snapshots remember the interview's half of the link (a version-1
/// snapshot reads it as unknown). A version-1 store is migrated on open.
pub const SCHEMA_VERSION: u64 = 2;
pub const DEFAULT_LINK: &str = "default";
const HISTORY_LEN: usize = 20;
const CONFLICT_LOG_LEN: usize = 1000;
const RECORD_COUNT: &str = "record_count";
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

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

    fn from_db_key(s: &str) -> Option<WorkKey> {
        if let Some(id) = s.strip_prefix("iv:") {
            Some(WorkKey::Interview(id.to_string()))
        } else {
            s.strip_prefix("ev:")
                .map(|id| WorkKey::Event(id.to_string()))
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
    /// Waiting for a limit to lift at `next_retry` (Google's invitation
    /// limit), not failing: alerts on records stuck for hours leave these
    /// out, an alert of their own covers the limit.
    #[serde(default)]
    pub waits_for_limit: bool,
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
    work: sled::Tree,
    work_order: sled::Tree,
    pending_links: sled::Tree,
    pending_link_of: sled::Tree,
    reports: sled::Tree,
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
            match sled::Config::new()
                .path(&sled_dir)
                // sled caches up to 1 GiB of pages by default; a daemon
                // that must stay under 100 MB keeps a small cache and
                // lets the OS page cache do the rest.
                .cache_capacity(CACHE_BYTES)
                .open()
            {
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
            work: tree("work")?,
            work_order: tree("work_order")?,
            pending_links: tree("pending_links")?,
            pending_link_of: tree("pending_link_of")?,
            reports: tree("reports")?,
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
                if found == 1 {
                    // Version 1 lacks only what version 2 adds empty.
                    store
                        .db
                        .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                    store.db.flush()?;
                } else if found != SCHEMA_VERSION {
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
}

mod journal;
mod meta;
mod records;
mod work;

pub use records::Commit;
pub use work::Report;

#[cfg(test)]
mod tests;
