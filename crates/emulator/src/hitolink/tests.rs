//! Unit tests of the HITO-Link state machine, driven without HTTP.

use serde_json::{Value, json};

use super::{HitolinkEmulator, Seed};

pub(crate) fn seeded() -> HitolinkEmulator {
    let seed: Seed = serde_json::from_value(json!({
        "applications": [{"id": "ap_1", "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"}, "job": {"id": "jb_1", "name": "営業"}}],
        "users": [{"id": "us_1", "name": "鈴木 一郎", "email": "suzuki@example.co.jp"}],
        "selection_steps": [{"id": "st_1", "name": "一次面接"}],
    }))
    .unwrap();
    let emu = HitolinkEmulator::new("tok", seed);
    emu.set_rate_limit(None);
    emu
}

fn scheduled(emu: &HitolinkEmulator) -> Value {
    emu.admin_create(&json!({
        "start": "2026-12-01T10:00:00+09:00", "end": "2026-12-01T11:00:00+09:00",
        "interviewers": ["suzuki@example.co.jp"],
    }))
    .unwrap()
    .body
}

#[test]
fn feed_moves_changed_records_behind_the_cursor() {
    let emu = seeded();
    for _ in 0..3 {
        scheduled(&emu);
    }
    let p1 = emu.changes(None, Some("2")).unwrap().body;
    assert_eq!(p1["has_more"], json!(true));
    let ids: Vec<_> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, [json!("iv_000001"), json!("iv_000002")]);
    // iv_000001 changes while we page: it shows up again, later
    emu.admin_edit("iv_000001", &json!({"location": "本社"}))
        .unwrap();
    let p2 = emu
        .changes(p1["next_cursor"].as_str(), Some("2"))
        .unwrap()
        .body;
    let ids: Vec<_> = p2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].clone(), i["version"].clone()))
        .collect();
    assert_eq!(
        ids,
        [
            (json!("iv_000003"), json!(1)),
            (json!("iv_000001"), json!(2))
        ]
    );
    assert_eq!(p2["has_more"], json!(false));
    let quiet = emu.changes(p2["next_cursor"].as_str(), None).unwrap().body;
    assert_eq!(quiet["items"], json!([]));
    assert_eq!(quiet["next_cursor"], p2["next_cursor"]);
}

#[test]
fn patch_needs_the_current_version() {
    let emu = seeded();
    let r = scheduled(&emu);
    let body = json!({"location": "会議室A"});
    assert_eq!(emu.patch("iv_000001", None, &body).unwrap_err().status, 428);
    let stale = emu.patch("iv_000001", Some("0"), &body).unwrap_err();
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["current"]["version"], r["version"]);
    let ok = emu.patch("iv_000001", Some("1"), &body).unwrap().body;
    assert_eq!(ok["version"], json!(2));
    // a PATCH that changes nothing keeps the version
    let same = emu.patch("iv_000001", Some("2"), &body).unwrap().body;
    assert_eq!(same["version"], json!(2));
}

#[test]
fn invalid_writes_change_nothing() {
    let emu = seeded();
    scheduled(&emu);
    let cases = [
        json!({"end": "2026-12-01T09:00:00+09:00"}),
        json!({"status": "complete"}),
        json!({"status": "postponed"}),
        json!({"candidate": {}}),
        json!({"version": 9}),
        json!({"interviewers": [{"id": "us_9", "response_status": "accepted"}]}),
        json!({"start": "10am"}),
    ];
    for body in cases {
        let e = emu.patch("iv_000001", Some("1"), &body).unwrap_err();
        assert_eq!(e.status, 422, "{body}");
    }
    assert_eq!(emu.get("iv_000001").unwrap().body["version"], json!(1));
    assert_eq!(emu.changes(None, Some("0")).unwrap_err().status, 422);
    assert_eq!(emu.changes(None, Some("501")).unwrap_err().status, 422);
}

#[test]
fn answers_come_back_in_jst() {
    let emu = seeded();
    let r = emu
        .admin_create(&json!({"start": "2026-12-01T01:00:00Z", "end": "2026-12-01T02:00:00Z"}))
        .unwrap()
        .body;
    assert_eq!(r["start"], json!("2026-12-01T10:00:00+09:00"));
    assert_eq!(r["status"], json!("scheduled"));
}

#[test]
fn deletions_stay_as_tombstones() {
    let emu = seeded();
    scheduled(&emu);
    emu.admin_delete("iv_000001").unwrap();
    let r = emu.get("iv_000001").unwrap().body;
    assert!(r["deleted_at"].is_string());
    assert_eq!(
        emu.patch("iv_000001", Some("2"), &json!({"location": "x"}))
            .unwrap_err()
            .status,
        404
    );
    let feed = emu.changes(None, None).unwrap().body;
    assert_eq!(feed["items"][0]["deleted_at"], r["deleted_at"]);
    assert_eq!(emu.get("iv_999999").unwrap_err().status, 404);
}

#[test]
fn cursors_expire() {
    let emu = seeded();
    let c = emu.changes(None, None).unwrap().body["next_cursor"].clone();
    emu.invalidate_cursors();
    assert_eq!(emu.changes(c.as_str(), None).unwrap_err().status, 410);
    assert_eq!(emu.changes(Some("garbage"), None).unwrap_err().status, 410);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let emu = seeded();
    emu.set_rate_limit(Some(2));
    assert!(emu.begin("get", Some("tok")).is_ok());
    assert!(emu.begin("get", Some("tok")).is_ok());
    let e = emu.begin("get", Some("tok")).unwrap_err();
    assert_eq!(e.status, 429);
    assert!(e.retry_after.unwrap() >= 1);
    assert_eq!(emu.begin("get", Some("wrong")).unwrap_err().status, 401);
}

#[test]
fn faults_after_apply_keep_the_write() {
    use super::{Fault, Phase};
    let emu = seeded();
    emu.inject_on("create", Phase::After, Fault::ServerError, 1)
        .unwrap();
    emu.inject_on("patch", Phase::After, Fault::Disconnect, 1)
        .unwrap();
    emu.inject_on(
        "decline",
        Phase::After,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
        1,
    )
    .unwrap();
    let body = json!({"application_id": "ap_1", "start": "2026-12-01T10:00:00+09:00", "end": "2026-12-01T11:00:00+09:00"});
    let e = emu.create(Some("k1"), &body).unwrap_err();
    assert_eq!(e.status, 500);
    assert_eq!(emu.interviews().len(), 1, "the booking was applied");
    // the retry with the same key replays the first answer
    let replay = emu.create(Some("k1"), &body).unwrap();
    assert_eq!(replay.status, 200);
    assert_eq!(emu.interviews().len(), 1);
    let id = replay.body["id"].as_str().unwrap().to_string();
    let e = emu
        .patch(&id, Some("1"), &json!({"location": "本社"}))
        .unwrap_err();
    assert!(e.disconnect);
    assert_eq!(emu.get(&id).unwrap().body["version"], json!(2));
    let e = emu
        .decline(&id, Some("2"), Some("d1"), &json!({"by": "candidate"}))
        .unwrap_err();
    assert_eq!((e.status, e.retry_after), (429, Some(3)));
    assert_eq!(
        emu.get(&id).unwrap().body["status"],
        json!("candidate_declined")
    );
    // a latency cannot fire after the answer; a typo names no call
    assert!(
        emu.inject_on("patch", Phase::After, Fault::Latency { millis: 1 }, 1)
            .is_err()
    );
    assert!(
        emu.inject_on("pach", Phase::Before, Fault::ServerError, 1)
            .is_err()
    );
    assert_eq!(emu.pending_faults(), 0);
}
