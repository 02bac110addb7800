//! The embedded store: sled in `daemon.state_dir`, one process at a time
//! (sled locks its folder). One database holds every link; each link's
//! trees are named after it (`brand-b/records`), and [`SledDb::store`]
//! hands out one link's view, so the daemon's workers share the one open
//! database.
//!
//! sled makes writes durable only on flush; every commit point here flushes
//! before it returns.

use std::path::{Path, PathBuf};

use crate::*;
use hitosync_core::ids::{EventId, InterviewId};

mod journal;
mod meta;
mod open;
mod records;
mod trait_impl;
mod work;

pub(crate) use open::io_text;
use open::{make_private, remove_unfinished_snapshots};

const RECORD_COUNT: &str = "record_count";
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// The sled folder inside the state dir.
const SLED_DIR: &str = "sled";

impl From<sled::Error> for StateError {
    fn from(e: sled::Error) -> Self {
        StateError::Io(io_text(&e))
    }
}

/// The open sled database of a state dir, shared by its links.
#[derive(Clone)]
pub struct SledDb {
    dir: PathBuf,
    db: sled::Db,
}

impl std::fmt::Debug for SledDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledDb")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// One link's state in sled.
pub struct Store {
    dir: PathBuf,
    link: String,
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
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl SledDb {
    /// Opens (or creates) the database in `dir`: private permissions, an
    /// unfinished snapshot removed, the schema checked (and a version-1
    /// store migrated).
    pub fn open(dir: &Path) -> Result<SledDb, StateError> {
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
        match db.get("schema_version")? {
            None => {
                db.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                if found == 1 {
                    // Version 1 lacks only what version 2 adds empty.
                    db.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                } else if found != SCHEMA_VERSION {
                    return Err(StateError::Schema {
                        dir: dir.to_path_buf(),
                        found,
                    });
                }
            }
        }
        Ok(SledDb {
            dir: dir.to_path_buf(),
            db,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One link's view of the database: its trees, opened (or created).
    pub fn store(&self, link: &str) -> Result<Store, StateError> {
        let tree = |name: &str| self.db.open_tree(format!("{link}/{name}"));
        let store = Store {
            dir: self.dir.clone(),
            link: link.to_string(),
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
            db: self.db.clone(),
        };
        if store.meta.get(RECORD_COUNT)?.is_none() {
            let n = store.records.len() as u64;
            store.meta.insert(RECORD_COUNT, &n.to_be_bytes())?;
        }
        Ok(store)
    }

    /// Links that have state here, whether configured now or not.
    pub fn links(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .db
            .tree_names()
            .iter()
            .filter_map(|n| {
                let n = String::from_utf8_lossy(n);
                n.strip_suffix("/meta").map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the database still takes writes (see [`Store::check_writable`]).
    pub fn check_writable(&self) -> Result<(), StateError> {
        self.db.insert("probe", &[1u8])?;
        self.db.flush()?;
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` for the `default` link.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        Store::open_link(dir, DEFAULT_LINK)
    }

    /// Opens the database for one link. A process serving several links
    /// opens the database once ([`SledDb::open`]) and takes each link's
    /// [`SledDb::store`]: sled admits one open per folder.
    pub fn open_link(dir: &Path, link: &str) -> Result<Store, StateError> {
        SledDb::open(dir)?.store(link)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn link(&self) -> &str {
        &self.link
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

#[cfg(test)]
mod tests;
