//! A database of its own for each test, on the throwaway PostgreSQL that
//! `.ci/run` starts (`. .ci/postgres-for-tests` by hand). Without it (no
//! `HITOSYNC_TEST_PG_URL`) each PostgreSQL test says on stderr that it is
//! skipped and how to run it; `.ci/run` always sets it, so CI runs them.

use std::sync::Arc;

use hitosync_config::{Backend, StateConfig};
use hitosync_state::{Lease, StateStore};
use hitosync_state_postgres::PgState;

pub const HOW: &str = "HITOSYNC_TEST_PG_URL is not set, so the PostgreSQL tests cannot run. They need a throwaway PostgreSQL server: run `bash .ci/run` (which starts one), or as root `. .ci/postgres-for-tests` (it starts one on a private port and exports HITOSYNC_TEST_PG_URL), then `cargo test`, then `pg_for_tests_stop`";

/// Whether a PostgreSQL test must skip: no test server was given. Says so
/// on stderr directly (the harness swallows `eprintln!` of a passing
/// test), naming the test and how to run it.
pub fn skip(test: &str) -> bool {
    if std::env::var("HITOSYNC_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
        return false;
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {HOW}");
    true
}

/// The admin URL of the test server.
pub fn admin_url() -> String {
    match std::env::var("HITOSYNC_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("{HOW}"),
    }
}

/// A fresh, empty database.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn fresh() -> PgDb {
        let admin = admin_url();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "hs_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}; {HOW}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        PgDb {
            name,
            url: url.to_string(),
        }
    }

    pub fn state_config(&self) -> StateConfig {
        StateConfig {
            backend: Backend::Postgres,
            url: Some(self.url.clone()),
            ..StateConfig::default()
        }
    }

    pub async fn open(&self) -> PgState {
        PgState::open(&self.state_config()).await.unwrap()
    }

    /// The `[state]` table of a config file using this database.
    pub fn toml(&self, lease_secs: u64, renew_secs: u64) -> String {
        format!(
            "[state]\nbackend = \"postgres\"\nurl = \"{}\"\nlease_secs = {lease_secs}\nlease_renew_secs = {renew_secs}\n",
            self.url
        )
    }

    /// Runs one SQL statement and returns the first column of each row
    /// as text.
    pub async fn query(&self, sql: &str) -> Vec<String> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let rows = client.simple_query(sql).await.unwrap();
        drop(client);
        let _ = task.await;
        rows.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    }
}

/// The database goes when the test is done with it: a property test
/// makes one per history, and thousands of leftover databases filled the
/// CI machine's disk. `WITH (FORCE)` ends the pool's connections that may
/// still be open. On its own thread with its own runtime, so that it works
/// whether or not the test's runtime is still running.
impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = admin_url();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let task = tokio::spawn(conn);
                let result = client.batch_execute(&sql).await.map_err(|e| e.to_string());
                drop(client);
                let _ = task.await;
                result
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_string()) {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// A link's store on PostgreSQL under a lease this test holds.
pub async fn leased_store(pg: &PgState, link: &str) -> (Arc<dyn StateStore>, Arc<Lease>) {
    let lease_for = std::time::Duration::from_secs(3600);
    let sent = std::time::Instant::now();
    let token = pg
        .try_acquire(link, "test", lease_for)
        .await
        .unwrap()
        .expect("the link's lease is free");
    let lease = Arc::new(Lease::new(link, "test", token, sent, lease_for));
    (Arc::new(pg.store(link, Some(lease.clone()))), lease)
}

/// Where a test's state lives: sled in a temp dir, or a fresh database.
pub enum Backing {
    /// One database for every link, as the daemon opens it.
    Sled(tempfile::TempDir, hitosync_state::SledDb),
    Postgres(PgDb, PgState),
}

impl Backing {
    pub async fn new(postgres: bool) -> Backing {
        if postgres {
            let db = PgDb::fresh().await;
            let pg = db.open().await;
            Backing::Postgres(db, pg)
        } else {
            let dir = tempfile::tempdir().unwrap();
            let db = hitosync_state::SledDb::open(dir.path()).unwrap();
            Backing::Sled(dir, db)
        }
    }

    /// The link's store, writable.
    pub async fn store(&self, link: &str) -> Arc<dyn StateStore> {
        match self {
            Backing::Sled(_, db) => Arc::new(db.store(link).unwrap()),
            Backing::Postgres(_, pg) => leased_store(pg, link).await.0,
        }
    }
}
