//! Conformance of the HITO-Link emulator on its own, at the HTTP level (no
//! daemon): the faults a test aims at writes, before and after the write is
//! applied, and what HITOLINK-API.md says a client then meets (the
//! `Idempotency-Key` replay, the `412` with the current record).

use hitosync_testkit::{HITOLINK_TOKEN, HitolinkEmu, hiring_seed, http};
use http::Method;
use serde_json::{Value, json};

struct Hl {
    h: HitolinkEmu,
}

impl Hl {
    async fn start() -> Hl {
        Hl {
            h: HitolinkEmu::start(hiring_seed()).await,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {HITOLINK_TOKEN}");
        let mut h = vec![("authorization", auth.as_str())];
        h.extend_from_slice(headers);
        http(method, &format!("http://{}{path}", self.h.addr), &h, body).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        http(
            method,
            &format!("http://{}/_admin{path}", self.h.addr),
            &[],
            body,
        )
        .await
        .unwrap()
    }

    async fn inject(&self, on: &str, phase: &str, fault: Value) {
        let (code, body) = self
            .admin(
                Method::POST,
                "/faults",
                Some(json!({"fault": fault, "on": on, "phase": phase})),
            )
            .await;
        assert_eq!(code, 204, "{body}");
    }

    fn count(&self) -> usize {
        self.h.emu.interviews().len()
    }
}

fn booking() -> Value {
    json!({
        "application_id": "ap_1",
        "start": "2026-12-01T10:00:00+09:00",
        "end": "2026-12-01T11:00:00+09:00",
        "interviewers": ["suzuki@example.co.jp"],
        "external_event_id": "ui00000001abc",
    })
}

fn after_apply_faults() -> [(Value, Option<u16>); 3] {
    [
        (json!({"kind": "server_error"}), Some(500)),
        (
            json!({"kind": "too_many_requests", "retry_after_secs": 1}),
            Some(429),
        ),
        (json!({"kind": "disconnect"}), None),
    ]
}

fn seen(r: &Result<(u16, Value), String>) -> Option<u16> {
    r.as_ref().ok().map(|(code, _)| *code)
}

#[tokio::test]
async fn every_hitolink_write_can_be_applied_and_then_lose_its_answer() {
    let hl = Hl::start().await;
    for (n, (fault, status)) in after_apply_faults().into_iter().enumerate() {
        // booking create: applied; the retry with its key replays it
        let key = format!("booking-{n}");
        hl.inject("create", "after", fault.clone()).await;
        let before = hl.count();
        let r = hl
            .call(
                Method::POST,
                "/v1/interviews",
                &[("idempotency-key", &key)],
                Some(booking()),
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on create: {r:?}");
        assert_eq!(hl.count(), before + 1, "the booking was applied");
        let (code, first) = hl
            .call(
                Method::POST,
                "/v1/interviews",
                &[("idempotency-key", &key)],
                Some(booking()),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "the same key answers the first result");
        assert_eq!(hl.count(), before + 1);
        let id = first["id"].as_str().unwrap().to_string();
        assert_eq!(first["version"], 1);

        // PATCH: applied; the retry with the old version meets 412 + current
        hl.inject("patch", "after", fault.clone()).await;
        let r = hl
            .call(
                Method::PATCH,
                &format!("/v1/interviews/{id}"),
                &[("if-match", "1")],
                Some(json!({"location": "本社 7F"})),
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on patch");
        let (code, stale) = hl
            .call(
                Method::PATCH,
                &format!("/v1/interviews/{id}"),
                &[("if-match", "1")],
                Some(json!({"location": "本社 7F"})),
            )
            .await
            .unwrap();
        assert_eq!(code, 412);
        assert_eq!(stale["current"]["location"], "本社 7F");
        assert_eq!(stale["current"]["version"], 2);

        // decline: applied; the retry with its key replays it
        let dkey = format!("decline-{n}");
        hl.inject("decline", "after", fault.clone()).await;
        let r = hl
            .call(
                Method::POST,
                &format!("/v1/interviews/{id}/decline"),
                &[("if-match", "2"), ("idempotency-key", &dkey)],
                Some(json!({"by": "interviewer", "interviewer_id": "us_1"})),
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on decline");
        let (code, replay) = hl
            .call(
                Method::POST,
                &format!("/v1/interviews/{id}/decline"),
                &[("if-match", "2"), ("idempotency-key", &dkey)],
                Some(json!({"by": "interviewer", "interviewer_id": "us_1"})),
            )
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert_eq!(replay["version"], 3);
        assert_eq!(replay["interviewers"][0]["response_status"], "declined");
    }
    assert_eq!(hl.h.emu.counters()["faults_after_apply"], 9);
}

#[tokio::test]
async fn faults_before_a_write_change_nothing_and_hit_only_the_call_aimed_at() {
    let hl = Hl::start().await;
    hl.inject("writes", "before", json!({"kind": "disconnect"}))
        .await;
    hl.inject("create", "before", json!({"kind": "unavailable"}))
        .await;
    // reads are not writes: they pass
    let (code, _) = hl
        .call(Method::GET, "/v1/interviews/changes", &[], None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let r = hl
        .call(
            Method::POST,
            "/v1/interviews",
            &[("idempotency-key", "k")],
            Some(booking()),
        )
        .await;
    assert_eq!(seen(&r), None, "{r:?}");
    let r = hl
        .call(
            Method::POST,
            "/v1/interviews",
            &[("idempotency-key", "k")],
            Some(booking()),
        )
        .await;
    assert_eq!(seen(&r), Some(503));
    assert_eq!(hl.count(), 0, "nothing was applied");
    let (code, _) = hl
        .call(
            Method::POST,
            "/v1/interviews",
            &[("idempotency-key", "k")],
            Some(booking()),
        )
        .await
        .unwrap();
    assert_eq!(code, 201);
    assert_eq!(hl.h.emu.pending_faults(), 0);
    // the old form of the admin body still works: any call, before
    let (code, _) = hl
        .admin(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "server_error"}, "count": 1})),
        )
        .await;
    assert_eq!(code, 204);
    let (code, _) = hl
        .call(Method::GET, "/v1/interviews/changes", &[], None)
        .await
        .unwrap();
    assert_eq!(code, 500);
    for bad in [
        json!({"fault": {"kind": "server_error"}, "on": "booking"}),
        json!({"fault": {"kind": "latency", "millis": 1}, "on": "patch", "phase": "after"}),
        json!({"fault": {"kind": "server_error"}, "phase": "later"}),
    ] {
        let (code, body) = hl.admin(Method::POST, "/faults", Some(bad.clone())).await;
        assert!((400..500).contains(&code), "{bad} -> {code} {body}");
    }
}
