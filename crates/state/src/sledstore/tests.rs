//! The store's own tests: what is committed survives, formats hold.

use super::*;
use hitosync_core::ids::InterviewId;
use hitosync_core::reconcile::{Conflict, EventRef, Fields, Presentation};
use std::collections::{BTreeMap, BTreeSet};

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
        commit(&s, &key, "iv_1", Some(&snapshot("iv_1")), entry(1), &[]).unwrap();
        s.set_cursors(Some("gtok"), Some("hcur"), Utc::now())
            .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(
        s.record(&"iv_1".into()).unwrap().unwrap().snapshot,
        snapshot("iv_1")
    );
    assert_eq!(
        s.interview_for_event(&"eviv_1".into()).unwrap().as_deref(),
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
        commit(&s, &key, "iv_1", Some(&snapshot("iv_1")), entry(n), &[]).unwrap();
    }
    let r = s.record(&"iv_1".into()).unwrap().unwrap();
    assert_eq!(r.history.len(), HISTORY_LEN);
    assert_eq!(s.record_count(), 1);
    assert_eq!(r.history.last().unwrap().summary, "step 29");
    commit(&s, &key, "iv_1", None, entry(99), &[]).unwrap();
    assert!(s.record(&"iv_1".into()).unwrap().is_none());
    assert_eq!(s.record_count(), 0);
    assert!(s.interview_for_event(&"eviv_1".into()).unwrap().is_none());
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
    commit(
        &s,
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

fn commit(
    s: &Store,
    key: &WorkKey,
    interview_id: &str,
    snapshot: Option<&Snapshot>,
    entry: HistoryEntry,
    conflicts: &[Conflict],
) -> Result<(), StateError> {
    s.commit(Commit {
        key,
        interview_id: &InterviewId::from(interview_id),
        snapshot,
        entry,
        conflicts,
        pending_link_at: None,
    })
}

#[test]
fn work_comes_back_in_order_and_a_commit_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let a = WorkKey::Interview("iv_a".into());
    let b = WorkKey::Interview("iv_b".into());
    let c = WorkKey::Event("ev_c".into());
    s.put_work(&a, &[2], &"later").unwrap();
    s.put_work(&b, &[0], &"soonest").unwrap();
    s.put_work(&c, &[1], &"booking").unwrap();
    // a record seen again moves to its new place
    s.put_work(&a, &[0, 5], &"later, seen again").unwrap();
    let order: Vec<WorkKey> = s
        .work_batch(None, 10)
        .unwrap()
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(order, [b.clone(), a.clone(), c.clone()]);
    // batches resume after the last key
    let first = s.work_batch(None, 1).unwrap();
    let rest = s.work_batch(Some(&first[0].0), 10).unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(
        s.work::<String>(&a).unwrap().as_deref(),
        Some("later, seen again")
    );
    commit(&s, &a, "iv_a", Some(&snapshot("iv_a")), entry(1), &[]).unwrap();
    assert!(s.work::<String>(&a).unwrap().is_none());
    s.park(&c, "unknown application", Utc::now()).unwrap();
    assert_eq!(s.work_count(), 1, "parking drops the work too");
    assert_eq!(s.work_batch(None, 10).unwrap().len(), 1);
}

#[test]
fn a_pending_link_waits_in_its_queue_until_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut snap = snapshot("iv_1");
    snap.event_ref = EventRef::Pending;
    let key = WorkKey::Interview("iv_1".into());
    s.commit(Commit {
        key: &key,
        interview_id: &"iv_1".into(),
        snapshot: Some(&snap),
        entry: entry(1),
        conflicts: &[],
        pending_link_at: Some(&[0, 1]),
    })
    .unwrap();
    let queue = s.pending_links(None, 10).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].1, "iv_1");
    assert_eq!(s.pending_link_count(), 1);
    assert!(
        s.link_written(&"iv_1".into(), &"eviv_1".into(), 7, Utc::now())
            .unwrap()
    );
    assert!(s.pending_links(None, 10).unwrap().is_empty());
    let r = s.record(&"iv_1".into()).unwrap().unwrap();
    assert_eq!(
        (r.snapshot.event_ref, r.snapshot.hl_version),
        (EventRef::Written, 7)
    );
}

/// A version-1 store (before the work set and the link's half) opens as
/// version 2, and its snapshots read with the link unknown.
#[test]
fn a_version_1_store_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.insert("schema_version", &1u64.to_be_bytes()).unwrap();
        let mut v1 = serde_json::to_value(Record {
            snapshot: snapshot("iv_1"),
            synced_at: Utc::now(),
            history: vec![],
        })
        .unwrap();
        v1["snapshot"].as_object_mut().unwrap().remove("link");
        let records = db.open_tree("default/records").unwrap();
        records
            .insert("iv_1", serde_json::to_vec(&v1).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let r = s.record(&"iv_1".into()).unwrap().unwrap();
    assert_eq!(r.snapshot.event_ref, EventRef::Unknown);
    drop(s);
    let db = sled::open(dir.path().join("sled")).unwrap();
    let v = db.get("schema_version").unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(v.as_ref().try_into().unwrap()),
        SCHEMA_VERSION
    );
}

#[test]
fn an_event_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let now = Utc::now();
    assert!(
        s.report(&"copy1".into(), Some(&"iv_1".into()), "a copy", now)
            .unwrap()
    );
    assert!(
        !s.report(&"copy1".into(), Some(&"iv_1".into()), "a copy", now)
            .unwrap()
    );
    assert_eq!(s.reports().unwrap().len(), 1);
    s.clear_report(&"copy1".into()).unwrap();
    assert!(s.reports().unwrap().is_empty());
}
