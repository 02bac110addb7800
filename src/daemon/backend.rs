//! Where the links' state lives, as the daemon and the one-shot commands
//! open it: sled in `daemon.state_dir` (one process; the default) or
//! PostgreSQL (`[state] backend = "postgres"`: replicas under leases).

use std::sync::Arc;

use parking_lot::RwLock;

use hitosync_config::{Backend as Kind, ConfigFile, StateConfig};
use hitosync_state::{Lease, SledDb, StateError, StateStore};
use hitosync_state_postgres::{LeaseRow, PgState, ReplicaRow};

#[derive(Debug, Clone)]
pub enum Backend {
    Sled(SledDb),
    Postgres(PgState),
}

impl Backend {
    /// Opens the store the file names. sled's open waits for its lock and
    /// replays its log: on a blocking thread.
    pub async fn open(file: &ConfigFile) -> Result<Backend, StateError> {
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
            Backend::Sled(db) => Arc::new(db.store(link)?),
            Backend::Postgres(pg) => Arc::new(pg.store(link, lease)),
        })
    }

    pub fn postgres(&self) -> Option<&PgState> {
        match self {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sled(_) => None,
        }
    }

    pub async fn check_writable(&self) -> Result<(), StateError> {
        match self {
            Backend::Sled(db) => db.check_writable(),
            Backend::Postgres(pg) => pg.store("", None).check_writable().await,
        }
    }

    /// Leases and replicas, for `status` (PostgreSQL only).
    pub async fn leases(&self, ttl: std::time::Duration) -> Result<Option<Leases>, StateError> {
        match self {
            Backend::Sled(_) => Ok(None),
            Backend::Postgres(pg) => Ok(Some(Leases {
                leases: pg.leases().await?,
                replicas: pg.replicas(ttl).await?,
            })),
        }
    }
}

async fn open(dir: &std::path::Path, state: &StateConfig) -> Result<Backend, StateError> {
    match state.backend {
        Kind::Sled => {
            let dir = dir.to_path_buf();
            let db = tokio::task::spawn_blocking(move || SledDb::open(&dir))
                .await
                .map_err(|e| StateError::Io(format!("opening the store: {e}")))??;
            Ok(Backend::Sled(db))
        }
        Kind::Postgres => Ok(Backend::Postgres(PgState::open(state).await?)),
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
pub struct BackendSlot {
    dir: std::path::PathBuf,
    state: StateConfig,
    current: RwLock<Option<(u64, Arc<Backend>)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl BackendSlot {
    pub fn new(file: &ConfigFile, backend: Backend) -> BackendSlot {
        BackendSlot {
            dir: file.daemon.state_dir.clone(),
            state: file.state.clone(),
            current: RwLock::new(Some((0, Arc::new(backend)))),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The open backend and its generation (which changes when reopened).
    pub fn get(&self) -> Option<(u64, Arc<Backend>)> {
        self.current.read().clone()
    }

    pub async fn get_or_open(&self) -> Result<(u64, Arc<Backend>), StateError> {
        if let Some(b) = self.get() {
            return Ok(b);
        }
        self.open().await
    }

    /// Drops this handle and opens the backend again. sled holds its lock
    /// until every handle is gone: while another link's cycle still holds
    /// one, the open fails as locked and is tried at the next cycle.
    pub async fn reopen(&self) -> Result<(u64, Arc<Backend>), StateError> {
        self.current.write().take();
        self.open().await
    }

    async fn open(&self) -> Result<(u64, Arc<Backend>), StateError> {
        let b = Arc::new(open(&self.dir, &self.state).await?);
        let g = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        *self.current.write() = Some((g, b.clone()));
        Ok((g, b))
    }
}
