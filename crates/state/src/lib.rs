//! What hitosync remembers between cycles, per link.
//!
//! Per interview: the agreed snapshot and a short history of decisions.
//! Per link: the Google sync token and the HITO-Link cursor, the intent
//! journal, parked records, the conflict log, the work set, the write-back
//! queue and the last cycle's report.
//!
//! The engine sees one link's state through [`StateStore`], a trait with
//! two implementations: sled ([`Store`], here: one process, no database)
//! and PostgreSQL (the `hitosync-state-postgres` crate: replicas sharing
//! links under leases). Each commit point is durable when the call
//! returns, so "applied" in the engine means "on disk".

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hitosync_core::reconcile::{Case, Conflict, Snapshot};

mod codec;
mod meta_key;
mod sledstore;
mod store;

pub use codec::{decode, decode_value, encode, encode_value, order_index_key};
pub use hitosync_core::ids::{EventId, InterviewId};
pub use meta_key::{BREAKER, MetaKey};
pub use sledstore::{SledDb, Store};
pub use store::{StateStore, StateStoreExt, park_wait};

/// 2: the work set, the pending-link index and reports were added, and
/// snapshots remember the interview's half of the link (a version-1
/// snapshot reads it as unknown). A version-1 store is migrated on open.
pub const SCHEMA_VERSION: u64 = 2;
pub const DEFAULT_LINK: &str = "default";
/// Decisions kept per record.
pub const HISTORY_LEN: usize = 20;
/// Conflicts kept per link.
pub const CONFLICT_LOG_LEN: usize = 1000;

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
    /// The lease was lost: another replica took the link over, or this
    /// process was paused or cut off past the lease's expiry. Checked in
    /// the same transaction as the write, which was not made.
    #[error(
        "link {link:?}: this daemon no longer holds the link's lease (another replica took it over, or this one was paused or cut off past its expiry); nothing was written, and the link's worker stops"
    )]
    Fenced { link: String },
    #[error(
        "cannot use the database {target}: {detail} (check state.url, the password in state.password_file or the credential, and that PostgreSQL is running and reachable)"
    )]
    Database { target: String, detail: String },
    #[error(
        "the database {target} was migrated by a newer hitosync (schema {found}, this one knows up to {reads}); run the newer version, or a matching one"
    )]
    DatabaseSchema {
        target: String,
        found: i64,
        reads: i64,
    },
    /// A command that writes (a one-shot `sync`) found the link leased by
    /// a running daemon.
    #[error(
        "link {link:?} is held by the replica {owner} until {until}: run the command through that daemon (its control socket), or wait until it lets the link go"
    )]
    Leased {
        link: String,
        owner: String,
        until: String,
    },
}

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
    Interview(InterviewId),
    Event(EventId),
}

impl WorkKey {
    /// The key as both stores spell it: `iv:ID` or `ev:ID`.
    pub fn db_key(&self) -> String {
        match self {
            WorkKey::Interview(id) => format!("iv:{id}"),
            WorkKey::Event(id) => format!("ev:{id}"),
        }
    }

    pub fn from_db_key(s: &str) -> Option<WorkKey> {
        if let Some(id) = s.strip_prefix("iv:") {
            Some(WorkKey::Interview(id.into()))
        } else {
            s.strip_prefix("ev:").map(|id| WorkKey::Event(id.into()))
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

/// An event reported instead of written: a look-alike of a managed event,
/// or a booking on a shape that cannot book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub event_id: EventId,
    pub interview_id: Option<InterviewId>,
    pub reason: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One record's outcome, as [`StateStore::commit`] stores it.
#[derive(Debug)]
pub struct Commit<'a> {
    /// The work that came to this outcome (an interview, or the event of a
    /// booking); its intent, parking and pending work are settled.
    pub key: &'a WorkKey,
    pub interview_id: &'a InterviewId,
    /// `None` drops the mapping.
    pub snapshot: Option<&'a Snapshot>,
    pub entry: HistoryEntry,
    pub conflicts: &'a [Conflict],
    /// Where the interview waits in the write-back queue when its snapshot
    /// says the link's half is pending.
    pub pending_link_at: Option<&'a [u8]>,
}

impl Commit<'_> {
    /// The keys whose intent, parking and work the commit settles: a
    /// booking that became an interview is settled under both.
    pub fn settled_keys(&self) -> Vec<WorkKey> {
        match self.key {
            WorkKey::Event(_) => vec![
                self.key.clone(),
                WorkKey::Interview(self.interview_id.clone()),
            ],
            WorkKey::Interview(_) => vec![self.key.clone()],
        }
    }

    /// The record as stored after this commit, given the one before:
    /// history grows by one line, bounded.
    pub fn new_record(&self, old: Option<&Record>) -> Option<Record> {
        let s = self.snapshot?;
        let mut history = old.map(|r| r.history.clone()).unwrap_or_default();
        history.push(self.entry.clone());
        if history.len() > HISTORY_LEN {
            history.drain(..history.len() - HISTORY_LEN);
        }
        Some(Record {
            snapshot: s.clone(),
            synced_at: self.entry.at,
            history,
        })
    }

    /// Whether the interview joins the write-back queue with this commit.
    pub fn queues_link(&self) -> Option<&[u8]> {
        let pending = self
            .snapshot
            .is_some_and(|s| s.event_ref == hitosync_core::reconcile::EventRef::Pending);
        self.pending_link_at.filter(|_| pending)
    }
}

impl Record {
    /// The interview's half of the link was written back at `version`: the
    /// snapshot says so and the history has a line for it.
    pub fn mark_link_written(&mut self, event_id: &EventId, version: u64, at: DateTime<Utc>) {
        self.snapshot.event_ref = hitosync_core::reconcile::EventRef::Written;
        self.snapshot.hl_version = self.snapshot.hl_version.max(version);
        self.history.push(HistoryEntry {
            at,
            case: Case::Merge,
            summary: format!("external_event_id = {event_id} written back"),
        });
        if self.history.len() > HISTORY_LEN {
            self.history.drain(..self.history.len() - HISTORY_LEN);
        }
    }
}

/// A conflict, with the loser's value, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictEntry {
    pub at: DateTime<Utc>,
    pub interview_id: InterviewId,
    pub conflict: Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Google,
    Hitolink,
}

impl Side {
    pub fn key(self) -> &'static str {
        match self {
            Side::Google => "google",
            Side::Hitolink => "hitolink",
        }
    }
}

mod lease;
pub use lease::Lease;
