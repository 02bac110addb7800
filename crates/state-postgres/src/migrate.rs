//! The schema, versioned. Each migration runs in one transaction with the
//! version it brings; `hitosync_schema` holds the version reached. A
//! database migrated by a newer hitosync is refused, never downgraded.

use hitosync_state::StateError;

use crate::PgState;

/// Every table carries the link's name first: one database serves every
/// link of every replica. Values are the same JSON as in sled, in text
/// columns an operator can read with psql.
const V1: &str = r#"
CREATE TABLE hitosync_records (
    link text NOT NULL,
    interview_id text NOT NULL,
    event_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, interview_id)
);
CREATE INDEX hitosync_records_by_event ON hitosync_records (link, event_id);
CREATE TABLE hitosync_cursors (
    link text NOT NULL,
    side text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, side)
);
CREATE TABLE hitosync_intents (
    link text NOT NULL,
    key text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, key)
);
CREATE TABLE hitosync_parked (
    link text NOT NULL,
    key text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, key)
);
CREATE TABLE hitosync_conflicts (
    link text NOT NULL,
    id bigserial NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, id)
);
CREATE TABLE hitosync_meta (
    link text NOT NULL,
    key text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, key)
);
CREATE TABLE hitosync_work (
    link text NOT NULL,
    key text NOT NULL,
    idx bytea NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, key)
);
CREATE INDEX hitosync_work_order ON hitosync_work (link, idx);
CREATE TABLE hitosync_pending_links (
    link text NOT NULL,
    interview_id text NOT NULL,
    idx bytea NOT NULL,
    PRIMARY KEY (link, interview_id)
);
CREATE INDEX hitosync_pending_links_order ON hitosync_pending_links (link, idx);
CREATE TABLE hitosync_reports (
    link text NOT NULL,
    event_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (link, event_id)
);
"#;

/// Replicas: one lease row per link (who runs it, until when, and the
/// fencing token every takeover increments), and one heartbeat row per
/// running daemon, from which each computes its fair share of the links.
const V2: &str = r#"
CREATE TABLE hitosync_leases (
    link text PRIMARY KEY,
    owner text NOT NULL,
    token bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);
CREATE TABLE hitosync_replicas (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
"#;

const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema this version reads and writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Any number: every hitosync migrates under the same advisory lock.
const MIGRATION_LOCK: i64 = 0x6869_746f_7379_6e63; // "hitosync"

/// Brings the schema to `target` (for tests: an older one).
pub async fn migrate_to(state: &PgState, target: i64) -> Result<i64, StateError> {
    run(state, target).await
}

pub(crate) async fn run(state: &PgState, target: i64) -> Result<i64, StateError> {
    let mut client = state.client().await?;
    let tx = client.transaction().await.map_err(|e| state.db_err(e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| state.db_err(e))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hitosync_schema (version bigint NOT NULL)")
        .await
        .map_err(|e| state.db_err(e))?;
    let found: i64 = match tx
        .query_opt("SELECT version FROM hitosync_schema", &[])
        .await
        .map_err(|e| state.db_err(e))?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO hitosync_schema (version) VALUES (0)", &[])
                .await
                .map_err(|e| state.db_err(e))?;
            0
        }
    };
    if found > LATEST {
        return Err(StateError::DatabaseSchema {
            target: state.target().to_string(),
            found,
            reads: LATEST,
        });
    }
    let mut version = found;
    while version < target {
        let sql = MIGRATIONS[version as usize];
        tx.batch_execute(sql).await.map_err(|e| state.db_err(e))?;
        version += 1;
        tx.execute("UPDATE hitosync_schema SET version = $1", &[&version])
            .await
            .map_err(|e| state.db_err(e))?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().await.map_err(|e| state.db_err(e))?;
    Ok(version)
}
