//! Where the links' state lives, as the daemon and the one-shot commands
//! open it: sled in `daemon.state_dir` (one process; the default) or
//! PostgreSQL (`[state] backend = "postgres"`: replicas under leases).

use std::sync::Arc;

use parking_lot::RwLock;

use hitosync_config::{Backend as Kind, ConfigFile, StateConfig};
use hitosync_state::{Lease, SledDb, StateError, StateStore};
use hitosync_state_postgres::{LeaseRow, PgState, ReplicaRow};

#[derive(Debug, Clone)]
pub enum StateDb {
    Sled(SledDb),
    Postgres(PgState),
}

impl StateDb {
    /// Opens the store the file names. sled's open waits for its lock and
    /// replays its log: on a blocking thread.
    pub async fn open(file: &ConfigFile) -> Result<StateDb, StateError> {
        open(&file.daemon.state_dir, &file.state).await
    }

    /// One link's state; with PostgreSQL, writes are fenced by `lease`
    /// (none: read only).
    pub fn store(
        &self,
        link: &str,
        lease: Option<Arc<Lease>>,
    ) -> Result<Arc<dyn StateStore>, StateError> {
        Ok(match self {
            StateDb::Sled(db) => Arc::new(db.store(link)?),
            StateDb::Postgres(pg) => Arc::new(pg.store(link, lease)),
        })
    }

    pub fn postgres(&self) -> Option<&PgState> {
        match self {
            StateDb::Postgres(pg) => Some(pg),
            StateDb::Sled(_) => None,
        }
    }

    pub async fn check_writable(&self) -> Result<(), StateError> {
        match self {
            StateDb::Sled(db) => db.check_writable(),
            StateDb::Postgres(pg) => pg.store("", None).check_writable().await,
        }
    }

    /// Leases and replicas, for `status` (PostgreSQL only).
    pub async fn leases(&self, ttl: std::time::Duration) -> Result<Option<Leases>, StateError> {
        match self {
            StateDb::Sled(_) => Ok(None),
            StateDb::Postgres(pg) => Ok(Some(Leases {
                leases: pg.leases().await?,
                replicas: pg.replicas(ttl).await?,
            })),
        }
    }
}

async fn open(dir: &std::path::Path, state: &StateConfig) -> Result<StateDb, StateError> {
    match state.backend {
        Kind::Sled => {
            let dir = dir.to_path_buf();
            let db = tokio::task::spawn_blocking(move || SledDb::open(&dir))
                .await
                .map_err(|e| StateError::Io(format!("opening the store: {e}")))??;
            Ok(StateDb::Sled(db))
        }
        Kind::Postgres => Ok(StateDb::Postgres(PgState::open(state).await?)),
    }
}

/// Who holds what, as the database says.
#[derive(Debug, Clone)]
pub struct Leases {
    pub leases: Vec<LeaseRow>,
    pub replicas: Vec<ReplicaRow>,
}

/// The open backend, shared by the supervisor (for `status`) and the
/// workers, which open it anew after an I/O error: sled takes no write
/// after one until it is opened again, even once the cause is gone.
#[derive(Debug)]
pub struct StateDbSlot {
    dir: std::path::PathBuf,
    state: StateConfig,
    current: RwLock<Option<(u64, Arc<StateDb>)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl StateDbSlot {
    pub fn new(file: &ConfigFile, backend: StateDb) -> StateDbSlot {
        StateDbSlot {
            dir: file.daemon.state_dir.clone(),
            state: file.state.clone(),
            current: RwLock::new(Some((0, Arc::new(backend)))),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The open backend and its generation (which changes when reopened).
    pub fn get(&self) -> Option<(u64, Arc<StateDb>)> {
        self.current.read().clone()
    }

    pub async fn get_or_open(&self) -> Result<(u64, Arc<StateDb>), StateError> {
        if let Some(b) = self.get() {
            return Ok(b);
        }
        self.open().await
    }

    /// Drops this handle and opens the backend again. sled holds its lock
    /// until every handle is gone: while another link's cycle still holds
    /// one, the open fails as locked and is tried at the next cycle.
    pub async fn reopen(&self) -> Result<(u64, Arc<StateDb>), StateError> {
        self.current.write().take();
        self.open().await
    }

    async fn open(&self) -> Result<(u64, Arc<StateDb>), StateError> {
        let b = Arc::new(open(&self.dir, &self.state).await?);
        let g = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        *self.current.write() = Some((g, b.clone()));
        Ok((g, b))
    }
}
