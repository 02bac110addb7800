//! Unit tests of the Calendar state machine, driven without HTTP. The
//! HTTP-level conformance tests are in crates/emulator/tests/google.rs.

use serde_json::json;

use super::state::Json;
use super::*;

fn emulator() -> (GoogleEmulator, Principal) {
    let emu = GoogleEmulator::new(AuthSetup {
        service_account: "sa@p.iam.gserviceaccount.com".into(),
        public_key: vec![],
        users: ["recruit@example.co.jp".to_string()].into(),
        delegated_scopes: None,
        api_enabled: true,
        clock_skew_secs: 0,
    });
    let who = Principal {
        subject: Some("recruit@example.co.jp".into()),
    };
    (emu, who)
}

fn event(id: &str, hour: u32) -> Json {
    json!({
        "id": id,
        "summary": "面接",
        "start": {"dateTime": format!("2026-12-01T{hour:02}:00:00+09:00"), "timeZone": "Asia/Tokyo"},
        "end": {"dateTime": format!("2026-12-01T{:02}:00:00+09:00", hour + 1), "timeZone": "Asia/Tokyo"},
        "extendedProperties": {"private": {"hitolinkInterviewId": id}},
    })
}

#[test]
fn insert_conflicts_even_with_cancelled_ids() {
    let (emu, who) = emulator();
    emu.insert(&who, "primary", event("iv00001", 10), Some("all"))
        .unwrap();
    emu.delete(&who, "primary", "iv00001", None, None).unwrap();
    let e = emu
        .insert(&who, "primary", event("iv00001", 10), None)
        .unwrap_err();
    assert_eq!(e.status, 409);
    let e = emu
        .delete(&who, "primary", "iv00001", None, None)
        .unwrap_err();
    assert_eq!(e.status, 410);
    let e = emu
        .insert(&who, "primary", event("bad_id", 10), None)
        .unwrap_err();
    assert_eq!(e.status, 400);
}

#[test]
fn etags_guard_writes_and_sequence_follows_time() {
    let (emu, who) = emulator();
    let ev = emu
        .insert(&who, "primary", event("iv00001", 10), None)
        .unwrap();
    let etag = ev["etag"].as_str().unwrap().to_string();
    let moved = emu
        .patch(
            &who,
            "primary",
            "iv00001",
            json!({"start": event("x", 11)["start"], "end": event("x", 11)["end"]}),
            Some(&etag),
            Some("all"),
        )
        .unwrap();
    assert_eq!(moved["sequence"], json!(1));
    assert_ne!(moved["etag"], json!(etag));
    let stale = emu.patch(
        &who,
        "primary",
        "iv00001",
        json!({"location": "A"}),
        Some(&etag),
        None,
    );
    assert_eq!(stale.unwrap_err().status, 412);
    // bookkeeping does not bump the sequence
    let tagged = emu
        .patch(
            &who,
            "primary",
            "iv00001",
            json!({"extendedProperties": {"private": {"x": "1"}}}),
            None,
            None,
        )
        .unwrap();
    assert_eq!(tagged["sequence"], json!(1));
    assert_eq!(
        tagged["extendedProperties"]["private"]["hitolinkInterviewId"],
        json!("iv00001")
    );
    let e = emu.patch(
        &who,
        "primary",
        "iv00001",
        json!({"end": event("x", 8)["end"]}),
        None,
        None,
    );
    assert_eq!(e.unwrap_err().status, 400);
}

#[test]
fn paging_and_deltas_form_one_consistent_cut() {
    let (emu, who) = emulator();
    for i in 0..5 {
        emu.insert(&who, "primary", event(&format!("iv0000{i}"), 10), None)
            .unwrap();
    }
    let q = ListQuery {
        max_results: Some(2),
        ..Default::default()
    };
    let p1 = emu.list(&who, "primary", &q).unwrap();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert!(p1.get("nextSyncToken").is_none());
    // a change while paging: not in this listing, in the next delta
    emu.ui_edit("recruit@example.co.jp", "iv00004", json!({"location": "B"}))
        .unwrap();
    emu.ui_edit("recruit@example.co.jp", "iv00000", json!({"location": "C"}))
        .unwrap();
    let mut seen: Vec<String> = vec![];
    let mut page = p1;
    let sync = loop {
        for it in page["items"].as_array().unwrap() {
            seen.push(it["id"].as_str().unwrap().into());
        }
        match page.get("nextPageToken").and_then(|t| t.as_str()) {
            Some(t) => {
                page = emu
                    .list(
                        &who,
                        "primary",
                        &ListQuery {
                            page_token: Some(t.into()),
                            max_results: Some(2),
                            ..Default::default()
                        },
                    )
                    .unwrap()
            }
            None => break page["nextSyncToken"].as_str().unwrap().to_string(),
        }
    };
    assert_eq!(seen, ["iv00000", "iv00001", "iv00002", "iv00003"]);
    let delta = emu
        .list(
            &who,
            "primary",
            &ListQuery {
                sync_token: Some(sync.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let ids: Vec<&str> = delta["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["iv00004", "iv00000"]);
    // a quiet delta is empty, tombstones appear in deltas
    let next = delta["nextSyncToken"].as_str().unwrap().to_string();
    emu.ui_delete("recruit@example.co.jp", "iv00002").unwrap();
    let d2 = emu
        .list(
            &who,
            "primary",
            &ListQuery {
                sync_token: Some(next),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(d2["items"][0]["status"], json!("cancelled"));
    emu.invalidate_sync_tokens();
    let gone = emu.list(
        &who,
        "primary",
        &ListQuery {
            sync_token: Some(sync),
            ..Default::default()
        },
    );
    assert_eq!(gone.unwrap_err().status, 410);
    let bad = emu.list(
        &who,
        "primary",
        &ListQuery {
            sync_token: Some("x".into()),
            q: Some("a".into()),
            ..Default::default()
        },
    );
    assert_eq!(bad.unwrap_err().status, 400);
}

#[test]
fn filters_by_private_property() {
    let (emu, who) = emulator();
    emu.insert(&who, "primary", event("iv00001", 10), None)
        .unwrap();
    emu.insert(&who, "primary", event("iv00002", 10), None)
        .unwrap();
    let q = ListQuery {
        private_extended_property: vec!["hitolinkInterviewId=iv00002".into()],
        ..Default::default()
    };
    let out = emu.list(&who, "primary", &q).unwrap();
    assert_eq!(out["items"].as_array().unwrap().len(), 1);
}

#[test]
fn faults_come_in_order() {
    let (emu, _) = emulator();
    emu.inject(
        Fault::TooManyRequests {
            retry_after_secs: 2,
        },
        1,
    );
    emu.inject(Fault::ServerError, 1);
    let t = emu.issue_token("recruit@example.co.jp");
    let e = emu.begin("events.list", Some(&t)).unwrap_err();
    assert_eq!((e.status, e.retry_after), (429, Some(2)));
    assert_eq!(emu.begin("events.list", Some(&t)).unwrap_err().status, 500);
    assert!(emu.begin("events.list", Some(&t)).is_ok());
    assert_eq!(emu.begin("events.list", None).unwrap_err().status, 401);
    assert_eq!(
        emu.begin("events.list", Some("nope")).unwrap_err().status,
        401
    );
    assert_eq!(emu.counters()["events.list"], 5);
}
