//! The state backends through the engine's trait: what one commit point
//! stores, the work set's order and batches, the write-back queue,
//! parking, reports and the conflict log, on sled and on PostgreSQL alike;
//! then what only PostgreSQL has: versioned migrations, fencing by lease,
//! TLS and passwords.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hitosync_core::reconcile::{Case, Conflict, EventRef, Fields, Presentation, Snapshot};
use hitosync_state::{
    Commit, HistoryEntry, Intent, Lease, Side, StateError, StateStore, StateStoreExt, WorkKey,
};
use hitosync_testkit::pg::{Backing, PgDb, leased_store};

fn snapshot(id: &str) -> Snapshot {
    Snapshot {
        interview_id: id.into(),
        event_id: format!("ev{id}").into(),
        fields: Fields {
            cancelled: false,
            slot: None,
            location: None,
            meeting_url: None,
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
        event_ref: EventRef::Written,
    }
}

fn entry(n: u32) -> HistoryEntry {
    HistoryEntry {
        at: Utc::now(),
        case: Case::Merge,
        summary: format!("step {n}"),
    }
}

async fn commit(
    s: &dyn StateStore,
    key: &WorkKey,
    snap: Option<&Snapshot>,
    n: u32,
    conflicts: &[Conflict],
    pending_at: Option<&[u8]>,
) -> Result<(), StateError> {
    let iid = match key {
        WorkKey::Interview(i) => i.clone(),
        WorkKey::Event(_) => snap.map(|s| s.interview_id.clone()).unwrap_or_default(),
    };
    s.commit(Commit {
        key,
        interview_id: &iid,
        snapshot: snap,
        entry: entry(n),
        conflicts,
        pending_link_at: pending_at,
    })
    .await
}

/// Everything a cycle stores, read back through the trait.
async fn conformance(postgres: bool) {
    let b = Backing::new(postgres).await;
    let s = b.store("brand-a").await;
    let s = s.as_ref();
    let key = WorkKey::Interview("iv_1".into());
    // an intent, then the commit that clears it with the work and parking
    s.put_intent(&Intent {
        key: key.clone(),
        summary: "x".into(),
        at: Utc::now(),
    })
    .await
    .unwrap();
    assert!(s.is_pending(&key).await.unwrap());
    s.put_work(&key, &[1], &"work").await.unwrap();
    s.flush_work().await.unwrap();
    commit(s, &key, Some(&snapshot("iv_1")), 1, &[], None)
        .await
        .unwrap();
    assert!(!s.is_pending(&key).await.unwrap());
    assert!(s.intents().await.unwrap().is_empty());
    assert_eq!(s.work_count().await.unwrap(), 0);
    assert_eq!(
        s.record(&"iv_1".into()).await.unwrap().unwrap().snapshot,
        snapshot("iv_1")
    );
    assert_eq!(
        s.interview_for_event(&"eviv_1".into())
            .await
            .unwrap()
            .as_deref(),
        Some("iv_1")
    );
    // history is bounded
    for n in 2..30 {
        commit(s, &key, Some(&snapshot("iv_1")), n, &[], None)
            .await
            .unwrap();
    }
    let r = s.record(&"iv_1".into()).await.unwrap().unwrap();
    assert_eq!(r.history.len(), hitosync_state::HISTORY_LEN);
    assert_eq!(r.history.last().unwrap().summary, "step 29");
    // cursors
    s.set_cursors(Some("gtok"), Some("hcur"), Utc::now())
        .await
        .unwrap();
    assert_eq!(s.cursor(Side::Google).await.unwrap().unwrap().value, "gtok");
    s.clear_cursors().await.unwrap();
    assert!(s.cursor(Side::Hitolink).await.unwrap().is_none());
    // records in batches, in ID order
    for i in 2..=5 {
        let k = WorkKey::Interview(format!("iv_{i}").into());
        commit(s, &k, Some(&snapshot(&format!("iv_{i}"))), 1, &[], None)
            .await
            .unwrap();
    }
    assert_eq!(s.record_count().await.unwrap(), 5);
    let first = s.records_after(None, 2).await.unwrap();
    let rest = s
        .records_after(Some(&first[1].snapshot.interview_id), 10)
        .await
        .unwrap();
    let ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|r| r.snapshot.interview_id.to_string())
        .collect();
    assert_eq!(ids, ["iv_1", "iv_2", "iv_3", "iv_4", "iv_5"]);
    // forgetting drops the mapping
    let k5 = WorkKey::Interview("iv_5".into());
    commit(s, &k5, None, 1, &[], None).await.unwrap();
    assert_eq!(s.record_count().await.unwrap(), 4);
    assert!(
        s.interview_for_event(&"eviv_5".into())
            .await
            .unwrap()
            .is_none()
    );
    // conflicts: newest first
    let c = Conflict {
        field: "time".into(),
        hitolink: "a".into(),
        google: "b".into(),
        winner: "hitolink".into(),
    };
    commit(
        s,
        &key,
        Some(&snapshot("iv_1")),
        99,
        std::slice::from_ref(&c),
        None,
    )
    .await
    .unwrap();
    assert_eq!(s.conflict_count().await.unwrap(), 1);
    assert_eq!(s.conflicts(10).await.unwrap()[0].conflict, c);
    // meta
    s.put_meta(hitosync_state::BREAKER, &Some("why".to_string()))
        .await
        .unwrap();
    assert_eq!(
        s.meta(hitosync_state::BREAKER)
            .await
            .unwrap()
            .flatten()
            .as_deref(),
        Some("why")
    );
    // reports, once
    let now = Utc::now();
    assert!(
        s.report(&"copy1".into(), Some(&"iv_1".into()), "a copy", now)
            .await
            .unwrap()
    );
    assert!(
        !s.report(&"copy1".into(), Some(&"iv_1".into()), "a copy", now)
            .await
            .unwrap()
    );
    assert_eq!(s.reports().await.unwrap().len(), 1);
    s.clear_report(&"copy1".into()).await.unwrap();
    assert!(s.reports().await.unwrap().is_empty());
    // another link's state is another's
    let other = b.store("brand-b").await;
    assert_eq!(other.record_count().await.unwrap(), 0);
    assert!(other.record(&"iv_1".into()).await.unwrap().is_none());
}

#[tokio::test]
async fn what_a_cycle_stores_reads_back_on_sled() {
    conformance(false).await;
}

#[tokio::test]
async fn what_a_cycle_stores_reads_back_on_postgres() {
    if hitosync_testkit::pg::skip("what_a_cycle_stores_reads_back_on_postgres") {
        return;
    }
    conformance(true).await;
}

async fn work_and_queues(postgres: bool) {
    let b = Backing::new(postgres).await;
    let s = b.store("default").await;
    let s = s.as_ref();
    let a = WorkKey::Interview("iv_a".into());
    let bk = WorkKey::Interview("iv_b".into());
    let c = WorkKey::Event("ev_c".into());
    s.put_work(&a, &[2], &"later").await.unwrap();
    s.put_work(&bk, &[0], &"soonest").await.unwrap();
    s.put_work(&c, &[1], &"booking").await.unwrap();
    // seen again: moves to its new place; read before any flush
    s.put_work(&a, &[0, 5], &"later, seen again").await.unwrap();
    assert_eq!(
        s.work::<String>(&a).await.unwrap().as_deref(),
        Some("later, seen again")
    );
    s.flush_work().await.unwrap();
    let order: Vec<WorkKey> = s
        .work_batch(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(order, [bk.clone(), a.clone(), c.clone()]);
    let first = s.work_batch(None, 1).await.unwrap();
    assert_eq!(s.work_batch(Some(&first[0].0), 10).await.unwrap().len(), 2);
    // a commit settles its work, a parking too (and backs off)
    commit(s, &a, Some(&snapshot("iv_a")), 1, &[], None)
        .await
        .unwrap();
    assert!(s.work::<String>(&a).await.unwrap().is_none());
    let now = Utc::now();
    let p1 = s.park(&c, "unknown application", now).await.unwrap();
    let p2 = s.park(&c, "unknown application", now).await.unwrap();
    assert_eq!(p2.attempts, 2);
    assert!(p2.next_retry > p1.next_retry);
    assert_eq!(s.work_count().await.unwrap(), 1, "parking drops the work");
    let held = s.park_held(&bk, "3 cancellations", now).await.unwrap();
    assert!(held.held && held.reason.contains("mass-deletion"));
    s.settle(&c).await.unwrap();
    assert_eq!(s.parked().await.unwrap().len(), 1);
    // the write-back queue
    let mut snap = snapshot("iv_q");
    snap.event_ref = EventRef::Pending;
    let q = WorkKey::Interview("iv_q".into());
    commit(s, &q, Some(&snap), 1, &[], Some(&[0, 1]))
        .await
        .unwrap();
    let queue = s.pending_links(None, 10).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].1, "iv_q");
    assert!(
        !s.link_written(&"iv_q".into(), &"not-its-event".into(), 7, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        s.link_written(&"iv_q".into(), &"eviv_q".into(), 7, Utc::now())
            .await
            .unwrap()
    );
    assert!(s.pending_links(None, 10).await.unwrap().is_empty());
    let r = s.record(&"iv_q".into()).await.unwrap().unwrap();
    assert_eq!(
        (r.snapshot.event_ref, r.snapshot.hl_version),
        (EventRef::Written, 7)
    );
    // and leaving it without a write
    commit(s, &q, Some(&snap), 2, &[], Some(&[0, 1]))
        .await
        .unwrap();
    assert_eq!(s.pending_link_count().await.unwrap(), 1);
    s.drop_pending_link(&"iv_q".into()).await.unwrap();
    assert_eq!(s.pending_link_count().await.unwrap(), 0);
}

#[tokio::test]
async fn the_work_set_and_queues_keep_their_order_on_sled() {
    work_and_queues(false).await;
}

#[tokio::test]
async fn the_work_set_and_queues_keep_their_order_on_postgres() {
    if hitosync_testkit::pg::skip("the_work_set_and_queues_keep_their_order_on_postgres") {
        return;
    }
    work_and_queues(true).await;
}

/// A page of work is one transaction: until `flush_work` it is only in
/// memory, and a process that dies loses it (and the cursors never moved
/// past it, so the next cycle reads it again).
#[tokio::test]
async fn a_page_of_work_is_written_in_one_transaction_on_postgres() {
    if hitosync_testkit::pg::skip("a_page_of_work_is_written_in_one_transaction_on_postgres") {
        return;
    }
    let db = PgDb::fresh().await;
    let pg = db.open().await;
    let (s, lease) = leased_store(&pg, "default").await;
    for i in 0..5 {
        s.put_work(&WorkKey::Interview(format!("iv_{i}").into()), &[i], &i)
            .await
            .unwrap();
    }
    assert_eq!(db.query("SELECT count(*) FROM hitosync_work").await, ["0"]);
    s.flush_work().await.unwrap();
    assert_eq!(db.query("SELECT count(*) FROM hitosync_work").await, ["5"]);
    s.put_work(&WorkKey::Interview("iv_9".into()), &[9], &9)
        .await
        .unwrap();
    drop(s);
    // "a new process"
    let s = pg.store("default", Some(lease));
    assert_eq!(s.work_count().await.unwrap(), 5);
}

/// A database at an older schema (version 1: before leases) is migrated
/// at start and keeps its records; one migrated by a newer hitosync is
/// refused, never written.
#[tokio::test]
async fn an_older_schema_is_migrated_and_a_newer_one_refused() {
    if hitosync_testkit::pg::skip("an_older_schema_is_migrated_and_a_newer_one_refused") {
        return;
    }
    use hitosync_state_postgres::{LATEST, PgState, migrate_to};
    let db = PgDb::fresh().await;
    let cfg = db.state_config();
    let old = PgState::connect_only(&cfg).unwrap();
    assert_eq!(migrate_to(&old, 1).await.unwrap(), 1);
    assert_eq!(db.query("SELECT version FROM hitosync_schema").await, ["1"]);
    assert!(
        db.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'hitosync_leases'"
        )
        .await
            == ["0"]
    );
    let body = serde_json::to_string(&hitosync_state::Record {
        snapshot: snapshot("iv_1"),
        synced_at: Utc::now(),
        history: vec![],
    })
    .unwrap()
    .replace('\'', "''");
    db.query(&format!(
        "INSERT INTO hitosync_records (link, interview_id, event_id, body) VALUES ('default', 'iv_1', 'eviv_1', '{body}')"
    ))
    .await;
    let pg = db.open().await;
    assert_eq!(
        db.query("SELECT version FROM hitosync_schema").await,
        [LATEST.to_string()]
    );
    let (s, _) = leased_store(&pg, "default").await;
    assert_eq!(
        s.record(&"iv_1".into()).await.unwrap().unwrap().snapshot,
        snapshot("iv_1")
    );
    // a newer schema
    db.query("UPDATE hitosync_schema SET version = 99").await;
    let err = PgState::open(&cfg).await.unwrap_err();
    assert!(
        matches!(err, StateError::DatabaseSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer hitosync"), "{err}");
}

/// Every write checks the fencing token in its own transaction: once
/// another replica took the link over, the old holder writes nothing.
#[tokio::test]
async fn a_replica_that_lost_its_lease_writes_nothing() {
    if hitosync_testkit::pg::skip("a_replica_that_lost_its_lease_writes_nothing") {
        return;
    }
    let db = PgDb::fresh().await;
    let pg = db.open().await;
    let lease_for = Duration::from_secs(3600);
    let t1 = pg
        .try_acquire("brand-a", "replica-1", lease_for)
        .await
        .unwrap();
    let t1 = t1.expect("free");
    // another replica cannot take it while it is held
    assert_eq!(
        pg.try_acquire("brand-a", "replica-2", lease_for)
            .await
            .unwrap(),
        None
    );
    let l1 = Arc::new(Lease::new(
        "brand-a",
        "replica-1",
        t1,
        Instant::now(),
        lease_for,
    ));
    let s1 = pg.store("brand-a", Some(l1.clone()));
    let k = WorkKey::Interview("iv_1".into());
    commit(&s1, &k, Some(&snapshot("iv_1")), 1, &[], None)
        .await
        .unwrap();
    assert!(
        pg.renew("brand-a", "replica-1", t1, lease_for)
            .await
            .unwrap()
    );
    // replica-1 pauses; its lease runs out and replica-2 takes over
    db.query("UPDATE hitosync_leases SET expires_at = now() - interval '1 second'")
        .await;
    let t2 = pg
        .try_acquire("brand-a", "replica-2", lease_for)
        .await
        .unwrap()
        .expect("expired: free to take");
    assert_eq!(t2, t1 + 1, "a takeover increments the token");
    assert!(
        !pg.renew("brand-a", "replica-1", t1, lease_for)
            .await
            .unwrap()
    );
    // replica-1 wakes: every kind of write is refused, and nothing changed
    let before = db
        .query("SELECT body FROM hitosync_records WHERE interview_id = 'iv_1'")
        .await;
    let err = commit(&s1, &k, Some(&snapshot("iv_1")), 2, &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Fenced { .. }), "{err}");
    assert!(err.to_string().contains("lease"), "{err}");
    assert!(!l1.is_valid(), "a fenced write revokes the local lease");
    assert!(matches!(
        s1.set_cursors(Some("g"), None, Utc::now()).await,
        Err(StateError::Fenced { .. })
    ));
    assert!(matches!(
        s1.park(&k, "x", Utc::now()).await,
        Err(StateError::Fenced { .. })
    ));
    s1.put_work(&k, &[1], &"w").await.unwrap();
    assert!(matches!(
        s1.flush_work().await,
        Err(StateError::Fenced { .. })
    ));
    assert_eq!(
        db.query("SELECT body FROM hitosync_records WHERE interview_id = 'iv_1'")
            .await,
        before
    );
    assert_eq!(db.query("SELECT count(*) FROM hitosync_work").await, ["0"]);
    assert_eq!(
        db.query("SELECT count(*) FROM hitosync_cursors").await,
        ["0"]
    );
    // the new holder writes
    let l2 = Arc::new(Lease::new(
        "brand-a",
        "replica-2",
        t2,
        Instant::now(),
        lease_for,
    ));
    let s2 = pg.store("brand-a", Some(l2));
    commit(&s2, &k, Some(&snapshot("iv_1")), 3, &[], None)
        .await
        .unwrap();
    // a store opened to read only writes nothing either
    let reader = pg.store("brand-a", None);
    assert!(
        reader
            .put_intent(&Intent {
                key: k.clone(),
                summary: "x".into(),
                at: Utc::now()
            })
            .await
            .is_err()
    );
    // a released lease is free at once
    pg.release("brand-a", "replica-2", t2).await.unwrap();
    assert_eq!(
        pg.try_acquire("brand-a", "replica-1", lease_for)
            .await
            .unwrap(),
        Some(t2 + 1)
    );
}

/// TLS when the URL says `sslmode=require`, the server's certificate
/// checked against `state.tls_ca_file`; the password from a file, which
/// must be private; errors name the database without the password.
#[tokio::test]
async fn tls_and_a_password_from_a_private_file() {
    if hitosync_testkit::pg::skip("tls_and_a_password_from_a_private_file") {
        return;
    }
    use hitosync_state_postgres::PgState;
    let db = PgDb::fresh().await;
    let user = std::env::var("HITOSYNC_TEST_PG_PASSWORD_USER").unwrap_or_else(|_| {
        panic!(
            "HITOSYNC_TEST_PG_PASSWORD_USER is not set; {}",
            hitosync_testkit::pg::HOW
        )
    });
    let ca = std::env::var("HITOSYNC_TEST_PG_CA").unwrap_or_else(|_| {
        panic!(
            "HITOSYNC_TEST_PG_CA is not set; {}",
            hitosync_testkit::pg::HOW
        )
    });
    db.query(&format!("GRANT ALL ON DATABASE {} TO {user}", db.name))
        .await;
    db.query(&format!("ALTER DATABASE {} OWNER TO {user}", db.name))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pg.password");
    std::fs::write(&pw, "hitosync-test\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&user).unwrap();
    url.set_host(Some("localhost")).unwrap();
    url.set_query(Some("sslmode=require"));
    let mut cfg = db.state_config();
    cfg.url = Some(url.to_string());
    cfg.password_file = Some(pw.clone());
    cfg.tls_ca_file = Some(ca.into());
    let pg = PgState::open(&cfg).await.unwrap();
    let (s, _) = leased_store(&pg, "default").await;
    commit(
        s.as_ref(),
        &WorkKey::Interview("iv_1".into()),
        Some(&snapshot("iv_1")),
        1,
        &[],
        None,
    )
    .await
    .unwrap();
    let ssl = db
        .query(&format!(
            "SELECT bool_or(ssl)::text FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = '{user}'"
        ))
        .await;
    assert_eq!(ssl, ["true"], "the connection is encrypted");
    // without the CA the server's certificate is not trusted
    let mut untrusted = cfg.clone();
    untrusted.tls_ca_file = None;
    let err = PgState::open(&untrusted).await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // a wrong password: the server's words, never the password
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let err = PgState::open(&cfg).await.unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // a password file others may read is refused
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = PgState::open(&cfg).await.unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
}
