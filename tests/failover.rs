//! Replicas on one PostgreSQL: two `hitosync run` processes share six
//! links (each its own calendar and HITO-Link tenant), three each. One is
//! killed (SIGKILL): within one lease period the other holds all six, and
//! every edit made meanwhile is synced exactly once. A replica paused past
//! its lease (SIGSTOP, then SIGCONT) writes nothing after it wakes: its
//! lease is gone, by the database's token and by its own clock.
//!
//! Needs the test PostgreSQL (crates/testkit/src/pg.rs says how to start one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, HANG};
use crate::common::links::{Links, organizer};
use crate::common::pg::PgDb;
use serde_json::json;

const LEASE: u64 = 6;
const RENEW: u64 = 2;
const N: usize = 6;

/// Who holds each link, by the database.
async fn holders(db: &PgDb) -> BTreeMap<String, String> {
    db.query(
        "SELECT link || '=' || owner FROM hitosync_leases WHERE expires_at > now() ORDER BY link",
    )
    .await
    .into_iter()
    .filter_map(|r| {
        r.split_once('=')
            .map(|(l, o)| (l.to_string(), o.to_string()))
    })
    .collect()
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + HANG * 2;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replica ids by the pid in them (`host:pid:tag`).
fn owner_pid(owner: &str) -> Option<u32> {
    owner.split(':').nth(1).and_then(|p| p.parse().ok())
}

fn per_owner(h: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in h.values() {
        *m.entry(o.clone()).or_insert(0) += 1;
    }
    m
}

/// Every interview of every link has exactly one event, carrying the
/// interview's time, and names it.
fn all_synced(l: &Links) -> bool {
    (0..N).all(|i| {
        l.tenants[i].emu.interviews().iter().all(|iv| {
            let events = l.event_of(i, &iv.id);
            events.len() == 1
                && iv.external_event_id.as_deref() == events[0]["id"].as_str()
                && events[0]["start"]["dateTime"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    == iv
                        .start
                        .as_deref()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&chrono::Utc))
        })
    })
}

/// Calendar writes and HITO-Link writes so far, over all links.
fn write_counts(l: &Links) -> (usize, u64) {
    let g = l.google.emu.writes().len();
    let h = l
        .tenants
        .iter()
        .map(|t| {
            let c = t.emu.counters();
            ["create", "patch", "decline"]
                .iter()
                .map(|k| c.get(*k).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    (g, h)
}

/// (link, interview) moved, (link, interview) made, (link, event) booked.
type Edits = (
    Vec<(usize, String)>,
    Vec<(usize, String)>,
    Vec<(usize, String)>,
);

/// Edits on every link: one interview moved, one made; on every other
/// link, a booking made in the calendar.
fn edit_everything(l: &Links, round: u32) -> Edits {
    let mut moved = vec![];
    let mut made = vec![];
    let mut booked = vec![];
    for i in 0..N {
        let first = l.tenants[i].emu.interviews()[0].id.clone();
        l.tenants[i]
            .emu
            .admin_edit(
                &first,
                &json!({
                    "start": format!("2099-11-{:02}T13:00:00+09:00", round),
                    "end": format!("2099-11-{:02}T13:30:00+09:00", round),
                }),
            )
            .unwrap();
        moved.push((i, first));
        made.push((i, l.schedule(i, round, 15)));
        if i % 2 == 0 {
            let id = format!("b{round:02}00k{i}");
            l.google
                .emu
                .ui_create(
                    &organizer(i),
                    json!({
                        "id": id,
                        "summary": "面接 HL:ap_2",
                        "start": {"dateTime": format!("2099-10-{round:02}T10:00:00+09:00"), "timeZone": "Asia/Tokyo"},
                        "end": {"dateTime": format!("2099-10-{round:02}T11:00:00+09:00"), "timeZone": "Asia/Tokyo"},
                    }),
                )
                .unwrap();
            booked.push((i, id));
        }
    }
    (moved, made, booked)
}

/// Each edit was written exactly once: one patch of each moved interview's
/// event, one insert of each new interview's event, one interview made in
/// HITO-Link for each booking, since `since` calendar writes. Event ids
/// repeat across calendars (every tenant numbers its interviews alike), so
/// a write counts for the link whose calendar it went to.
fn exactly_once(l: &Links, since: usize, edits: &Edits) {
    let writes: Vec<_> = l.google.emu.writes().into_iter().skip(since).collect();
    for (i, id) in &edits.0 {
        let ev = l.event_of(*i, id);
        let ev_id = ev[0]["id"].as_str().unwrap();
        let patches = writes
            .iter()
            .filter(|w| {
                w.calendar == organizer(*i)
                    && w.event_id == ev_id
                    && w.method == "patch"
                    && w.changed.iter().any(|c| c == "start")
            })
            .count();
        assert_eq!(
            patches, 1,
            "link {i}: the move of {id} written {patches} times: {writes:?}"
        );
    }
    for (i, id) in &edits.1 {
        let ev = l.event_of(*i, id);
        assert_eq!(ev.len(), 1, "link {i}: {id} has {} events", ev.len());
        let ev_id = ev[0]["id"].as_str().unwrap();
        let inserts = writes
            .iter()
            .filter(|w| w.calendar == organizer(*i) && w.event_id == ev_id && w.method == "insert")
            .count();
        assert_eq!(inserts, 1, "link {i}: {id} inserted {inserts} times");
    }
    for (i, ev_id) in &edits.2 {
        let booked: Vec<_> = l.tenants[*i]
            .emu
            .interviews()
            .into_iter()
            .filter(|iv| iv.external_event_id.as_deref() == Some(ev_id.as_str()))
            .collect();
        assert_eq!(
            booked.len(),
            1,
            "link {i}: booking {ev_id} made {} interviews",
            booked.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_replicas_links_are_taken_over_and_a_paused_one_writes_nothing() {
    if crate::common::pg::skip(
        "a_dead_replicas_links_are_taken_over_and_a_paused_one_writes_nothing",
    ) {
        return;
    }
    let db = PgDb::fresh().await;
    let l = Links::start(N).await;
    for i in 0..N {
        l.schedule(i, 1 + i as u32, 10);
    }
    let all: Vec<usize> = (0..N).collect();
    let daemon = "schedule = \"*/2 * * * * *\"\nfull_resync_schedule = \"0 0 0 1 1 *\"\ncycle_deadline_secs = 20";
    let state = db.toml(LEASE, RENEW);
    let ca = l.write_config("a.toml", daemon, &all, &state);
    let cb = l.write_config("b.toml", daemon, &all, &state);

    let mut a = Daemon::spawn_config(&ca, &[]);
    a.wait_log("daemon started").await;
    wait_until("replica A holds all six", || async {
        holders(&db).await.len() == N
    })
    .await;
    let mut b = Daemon::spawn_config(&cb, &[]);
    b.wait_log("daemon started").await;
    let b_pid = b.child.id().unwrap();
    wait_until("three links each", || async {
        let h = holders(&db).await;
        let m = per_owner(&h);
        h.len() == N && m.len() == 2 && m.values().all(|&n| n == 3)
    })
    .await;
    wait_until("the first interviews synced", || async { all_synced(&l) }).await;
    // `status` shows who holds what
    let (code, out, _) = crate::common::links::run(&ca, &["status"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("replicas alive: 2") && out.contains("(this daemon)"),
        "{out}"
    );

    // B dies
    let b_links: Vec<String> = holders(&db)
        .await
        .into_iter()
        .filter(|(_, o)| owner_pid(o) == Some(b_pid))
        .map(|(l, _)| l)
        .collect();
    assert_eq!(b_links.len(), 3);
    let since = l.google.emu.writes().len();
    b.child.start_kill().unwrap();
    let killed = Instant::now();
    let _ = b.child.wait().await;
    let edits = edit_everything(&l, 7);
    wait_until("A holds all six", || async {
        let h = holders(&db).await;
        h.len() == N && per_owner(&h).len() == 1
    })
    .await;
    let takeover = killed.elapsed();
    println!(
        "takeover of a killed replica's links: {:.1} s (lease {LEASE} s, renew {RENEW} s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE) + Duration::from_millis(1500),
        "took {takeover:?}, more than one lease period ({LEASE} s)"
    );
    wait_until("every edit synced", || async { all_synced(&l) }).await;
    exactly_once(&l, since, &edits);
    let tokens = db
        .query(&format!(
            "SELECT min(token)::text FROM hitosync_leases WHERE link IN ({})",
            b_links
                .iter()
                .map(|l| format!("'{l}'"))
                .collect::<Vec<_>>()
                .join(",")
        ))
        .await;
    assert!(
        tokens[0].parse::<i64>().unwrap() >= 2,
        "a takeover increments the token"
    );

    // C joins: the links spread again
    let mut c = Daemon::spawn_config(&cb, &[]);
    c.wait_log("daemon started").await;
    let c_pid = c.child.id().unwrap();
    wait_until("three links each again", || async {
        let h = holders(&db).await;
        let m = per_owner(&h);
        h.len() == N && m.len() == 2 && m.values().all(|&n| n == 3)
    })
    .await;
    wait_until("quiet", || async { all_synced(&l) }).await;

    // C pauses past its lease; A takes its links and syncs what changes
    c.signal(19); // SIGSTOP
    let since = l.google.emu.writes().len();
    let edits = edit_everything(&l, 8);
    wait_until("A holds all six while C sleeps", || async {
        let h = holders(&db).await;
        h.len() == N && h.values().all(|o| owner_pid(o) != Some(c_pid))
    })
    .await;
    wait_until("the edits synced by A", || async { all_synced(&l) }).await;
    // A settles: its idle cycles write nothing
    let mut settled = write_counts(&l);
    let mut quiet_for = 0;
    while quiet_for < 3 {
        tokio::time::sleep(Duration::from_secs(RENEW)).await;
        let now = write_counts(&l);
        quiet_for = if now == settled { quiet_for + 1 } else { 0 };
        settled = now;
    }
    let records = db.query("SELECT md5(string_agg(link || interview_id || body, ',' ORDER BY link, interview_id)) FROM hitosync_records").await;
    let before_wake = l.google.emu.writes().len();
    c.signal(18); // SIGCONT
    // two lease periods: C notices it lost everything, and writes nothing
    tokio::time::sleep(Duration::from_secs(LEASE * 2)).await;
    assert_eq!(
        write_counts(&l),
        settled,
        "a write after the paused replica woke: {:?}",
        l.google
            .emu
            .writes()
            .into_iter()
            .skip(before_wake)
            .collect::<Vec<_>>()
    );
    let after = db.query("SELECT md5(string_agg(link || interview_id || body, ',' ORDER BY link, interview_id)) FROM hitosync_records").await;
    assert_eq!(
        records, after,
        "the store changed after the paused replica woke"
    );
    let log = c.log();
    assert!(log.contains("lease lost"), "{log}");
    exactly_once(&l, since, &edits);
    // C takes its share back in time (fresh leases, new tokens)
    wait_until("C back with three", || async {
        let h = holders(&db).await;
        per_owner(&h).values().all(|&n| n == 3) && per_owner(&h).len() == 2
    })
    .await;
    assert_eq!(c.stop().await, 0);
    assert_eq!(a.stop().await, 0);
    // stopped cleanly: leases released, replicas gone (the killed one's
    // heartbeat only ages out: it could not say goodbye)
    assert!(holders(&db).await.is_empty());
    assert_eq!(
        db.query(&format!(
            "SELECT count(*) FROM hitosync_replicas WHERE pid <> {b_pid}"
        ))
        .await,
        ["0"]
    );
}

/// Runs `hitosync <args> --config <config>` with `CREDENTIALS_DIRECTORY`
/// set as systemd sets it for a unit with `LoadCredential=` (or unset).
async fn run_with_credentials(
    config: &std::path::Path,
    credentials: Option<&std::path::Path>,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hitosync"));
    cmd.args(args).arg("--config").arg(config);
    match credentials {
        Some(dir) => cmd.env("CREDENTIALS_DIRECTORY", dir),
        None => cmd.env_remove("CREDENTIALS_DIRECTORY"),
    };
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one-shot commands on PostgreSQL, as an admin runs them beside the
/// service: the password comes from a systemd credential
/// (`state.password_credential`), and `sync` refuses to write a link that
/// a daemon holds (naming the holder) while `plan` (which writes nothing)
/// still answers; once the lease is gone, `sync` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_sync_reads_its_password_from_a_credential_and_leaves_a_held_link_alone() {
    if crate::common::pg::skip(
        "a_one_shot_sync_reads_its_password_from_a_credential_and_leaves_a_held_link_alone",
    ) {
        return;
    }
    let user = std::env::var("HITOSYNC_TEST_PG_PASSWORD_USER").unwrap_or_else(|_| {
        panic!(
            "HITOSYNC_TEST_PG_PASSWORD_USER is not set; {}",
            crate::common::pg::HOW
        )
    });
    let db = PgDb::fresh().await;
    db.query(&format!("ALTER DATABASE {} OWNER TO {user}", db.name))
        .await;
    let l = Links::start(1).await;
    let first = l.schedule(0, 3, 10);

    let creds = tempfile::tempdir().unwrap();
    let secret = creds.path().join("pg-password");
    std::fs::write(&secret, "hitosync-test\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        // what systemd gives a service: readable by its user only
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&user).unwrap();
    let state = format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_credential = \"pg-password\"\n"
    );
    let config = l.write_config("hitosync.toml", "", &[0], &state);

    // outside the unit (no $CREDENTIALS_DIRECTORY): says what to add
    let (code, out, err) = run_with_credentials(&config, None, &["sync"]).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("LoadCredential=pg-password"), "{err}");
    assert!(!err.contains("hitosync-test"), "{err}");

    // with it: the password is read, the interview synced
    let (code, out, err) = run_with_credentials(&config, Some(creds.path()), &["sync"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(l.event_of(0, &first).len(), 1, "{out}{err}");

    // a daemon holds the link
    let pg = db.open().await;
    let token = pg
        .try_acquire("link-0", "replica-a:4242", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        token.is_some(),
        "the lease was free after the one-shot sync"
    );
    let second = l.schedule(0, 4, 11);
    let writes = l.google.emu.writes().len();
    let (code, out, err) = run_with_credentials(&config, Some(creds.path()), &["sync"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("replica-a:4242") && err.contains("link-0"),
        "the refusal names the link and its holder: {err}"
    );
    assert_eq!(l.google.emu.writes().len(), writes, "nothing was written");
    assert!(l.event_of(0, &second).is_empty());
    // plan writes nothing, so it needs no lease
    let (code, out, err) = run_with_credentials(&config, Some(creds.path()), &["plan"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&second),
        "the plan names the new interview: {out}"
    );

    // the daemon lets go: sync runs again
    db.query("DELETE FROM hitosync_leases").await;
    let (code, out, err) = run_with_credentials(&config, Some(creds.path()), &["sync"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(l.event_of(0, &second).len(), 1, "{out}{err}");
}
