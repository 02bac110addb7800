//! Conformance of the Calendar emulator on its own, at the HTTP level (no
//! daemon): raw requests, and the answers Google's Calendar API v3
//! reference documents for the shapes real calendars hold and for the
//! faults a test can inject. Admin actions go through `/_admin/...` as a
//! test of the standalone `hitosync emulate google` would send them.

use hitosync_testkit::{GoogleEmu, ORGANIZER, http};
use http::Method;
use serde_json::{Value, json};

struct Cal {
    g: GoogleEmu,
    token: String,
}

impl Cal {
    async fn start() -> Cal {
        let g = GoogleEmu::start().await;
        let token = g.emu.issue_token(ORGANIZER);
        Cal { g, token }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.g.addr)
    }

    /// A Calendar API call on the organizer's primary calendar.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_api(method, path, body, &[]).await.unwrap()
    }

    async fn try_api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {}", self.token);
        let mut h = vec![("authorization", auth.as_str())];
        h.extend_from_slice(headers);
        http(
            method,
            &self.url(&format!("/calendar/v3/calendars/primary/events{path}")),
            &h,
            body,
        )
        .await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        http(method, &self.url(&format!("/_admin{path}")), &[], body)
            .await
            .unwrap()
    }

    /// Every page of a listing: (pages as item lists, the sync token).
    async fn pages(&self, query: &str) -> (Vec<Vec<Value>>, String) {
        let mut pages = vec![];
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_string();
            if let Some(t) = &token {
                q.push_str(&format!("&pageToken={t}"));
            }
            let (code, page) = self.api(Method::GET, &format!("?{q}"), None).await;
            assert_eq!(code, 200, "{page}");
            pages.push(page["items"].as_array().unwrap().clone());
            match page["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return (pages, page["nextSyncToken"].as_str().unwrap().to_string()),
            }
            assert!(pages.len() < 100, "the listing never ends");
        }
    }

    async fn items(&self, query: &str) -> Vec<Value> {
        self.pages(query).await.0.concat()
    }
}

fn event(id: &str, day: u32) -> Value {
    json!({
        "id": id,
        "summary": "面接",
        "start": {"dateTime": format!("2026-12-{day:02}T10:00:00+09:00"), "timeZone": "Asia/Tokyo"},
        "end": {"dateTime": format!("2026-12-{day:02}T11:00:00+09:00"), "timeZone": "Asia/Tokyo"},
    })
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

// --- events organized by someone else --------------------------------------

#[tokio::test]
async fn a_colleagues_invitation_is_a_guest_copy_whose_shared_fields_are_the_organizers() {
    let c = Cal::start().await;
    let (code, inv) = c
        .admin(
            Method::POST,
            &format!("/ui/{ORGANIZER}/invitations"),
            Some(json!({
                "organizer": "boss@example.co.jp",
                "summary": "部長面談",
                "start": {"dateTime": "2026-12-01T10:00:00+09:00"},
                "end": {"dateTime": "2026-12-01T11:00:00+09:00"},
            })),
        )
        .await;
    assert_eq!(code, 200, "{inv}");
    let id = inv["id"].as_str().unwrap().to_string();
    let (_, ev) = c.api(Method::GET, &format!("/{id}"), None).await;
    assert_eq!(ev["organizer"]["email"], "boss@example.co.jp");
    assert!(ev["organizer"].get("self").is_none(), "not this calendar's");
    let me = ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == ORGANIZER)
        .unwrap();
    assert_eq!(me["self"], true);
    assert_eq!(me["responseStatus"], "needsAction");
    assert!(
        ev["attendees"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["email"] == "boss@example.co.jp" && a["organizer"] == true)
    );

    // shared fields: 403 forbiddenForNonOrganizer, nothing changes
    for patch in [
        json!({"summary": "乗っ取り"}),
        json!({"start": {"dateTime": "2026-12-01T12:00:00+09:00"}, "end": {"dateTime": "2026-12-01T13:00:00+09:00"}}),
        json!({"extendedProperties": {"shared": {"k": "v"}}}),
        json!({"status": "cancelled"}),
    ] {
        let (code, err) = c.api(Method::PATCH, &format!("/{id}"), Some(patch)).await;
        assert_eq!(code, 403, "{err}");
        assert_eq!(reason(&err), "forbiddenForNonOrganizer");
        assert_eq!(err["error"]["errors"][0]["domain"], "calendar");
    }
    let (code, err) = c
        .api(
            Method::POST,
            &format!("/{id}/move?destination={ORGANIZER}"),
            None,
        )
        .await;
    assert_eq!((code, reason(&err)), (403, "forbiddenForNonOrganizer"));
    // its own copy's private properties and its own answer are the guest's
    let (code, ev2) = c
        .api(
            Method::PATCH,
            &format!("/{id}"),
            Some(json!({"extendedProperties": {"private": {"hitolinkInterviewId": "iv_1"}}})),
        )
        .await;
    assert_eq!(code, 200, "{ev2}");
    let mut attendees = ev2["attendees"].clone();
    for a in attendees.as_array_mut().unwrap() {
        if a["email"] == ORGANIZER {
            a["responseStatus"] = json!("accepted");
        }
    }
    let (code, ev3) = c
        .api(
            Method::PATCH,
            &format!("/{id}"),
            Some(json!({"attendees": attendees})),
        )
        .await;
    assert_eq!(code, 200, "{ev3}");
    assert_eq!(ev3["summary"], "部長面談");
    // deleting the copy declines and removes it from this calendar
    let (code, _) = c.api(Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(code, 204);
    let (_, gone) = c.api(Method::GET, &format!("/{id}"), None).await;
    assert_eq!(gone["status"], "cancelled");
}

// --- recurring series -------------------------------------------------------

#[tokio::test]
async fn a_series_lists_as_master_and_exceptions_or_expanded_into_instances() {
    let c = Cal::start().await;
    let mut series = event("series0001", 1);
    series["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=4"]);
    series["extendedProperties"] = json!({"private": {"hitolinkInterviewId": "iv_7"}});
    let (code, master) = c.api(Method::POST, "", Some(series.clone())).await;
    assert_eq!(code, 200, "{master}");
    let (_, full) = c.pages("maxResults=10").await;
    let (code, _) = c
        .api(Method::GET, &format!("?syncToken={full}"), None)
        .await;
    assert_eq!(code, 200);

    // default: the master alone
    assert_eq!(ids(&c.items("maxResults=10").await), ["series0001"]);
    // singleEvents=true: its instances, not the master
    let inst = c.items("singleEvents=true&maxResults=3").await;
    assert_eq!(
        ids(&inst),
        [
            "series0001_20261201T010000Z",
            "series0001_20261208T010000Z",
            "series0001_20261215T010000Z",
            "series0001_20261222T010000Z"
        ]
    );
    for i in &inst {
        assert_eq!(i["recurringEventId"], "series0001");
        assert_eq!(i["originalStartTime"], i["start"]);
        assert_eq!(
            i["extendedProperties"]["private"]["hitolinkInterviewId"],
            "iv_7"
        );
        assert!(i.get("recurrence").is_none());
    }
    // an instance is gettable by id
    let (code, one) = c
        .api(Method::GET, "/series0001_20261208T010000Z", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(one["start"]["dateTime"], "2026-12-08T10:00:00+09:00");
    let (code, _) = c
        .api(Method::GET, "/series0001_20261209T010000Z", None)
        .await;
    assert_eq!(code, 404, "no instance starts then");

    // changing one instance makes an exception with its own id
    let (code, ex) = c
        .api(
            Method::PATCH,
            "/series0001_20261208T010000Z",
            Some(json!({"location": "会議室B"})),
        )
        .await;
    assert_eq!(code, 200, "{ex}");
    assert_eq!(ex["recurringEventId"], "series0001");
    assert_eq!(
        ex["extendedProperties"]["private"]["hitolinkInterviewId"],
        "iv_7"
    );
    // cancelling another one: a cancelled exception
    let (code, _) = c
        .api(Method::DELETE, "/series0001_20261215T010000Z", None)
        .await;
    assert_eq!(code, 204);

    let listed = c.items("maxResults=10").await;
    assert_eq!(
        ids(&listed),
        [
            "series0001",
            "series0001_20261208T010000Z",
            "series0001_20261215T010000Z"
        ],
        "master plus exceptions; the cancelled one too, without showDeleted"
    );
    let tomb = &listed[2];
    assert_eq!(tomb["status"], "cancelled");
    assert_eq!(tomb["recurringEventId"], "series0001");
    assert!(tomb["originalStartTime"]["dateTime"].is_string());
    assert!(
        tomb.as_object().unwrap().keys().all(|k| [
            "kind",
            "etag",
            "id",
            "status",
            "updated",
            "recurringEventId",
            "originalStartTime"
        ]
        .contains(&k.as_str())),
        "a minimal tombstone: {tomb}"
    );
    let single = c.items("singleEvents=true").await;
    assert_eq!(single.len(), 3, "the cancelled instance is gone");
    assert!(single.iter().any(|i| i["location"] == "会議室B"));
    assert_eq!(c.items("singleEvents=true&showDeleted=true").await.len(), 4);

    // events.instances, with the exception in its place
    let (code, list) = c.api(Method::GET, "/series0001/instances", None).await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][1]["location"], "会議室B");

    // the delta since before the exceptions shows both
    let (_, delta) = c
        .api(Method::GET, &format!("?syncToken={full}"), None)
        .await;
    assert_eq!(
        ids(delta["items"].as_array().unwrap()),
        ["series0001_20261208T010000Z", "series0001_20261215T010000Z"]
    );
}

#[tokio::test]
async fn a_series_needs_its_time_zone_and_a_rule_google_accepts() {
    let c = Cal::start().await;
    let mut s = event("series0002", 1);
    s["recurrence"] = json!(["RRULE:FREQ=WEEKLY;BYDAY=TU,TH;INTERVAL=2;UNTIL=20261217"]);
    let (code, _) = c.api(Method::POST, "", Some(s.clone())).await;
    assert_eq!(code, 200);
    assert_eq!(
        ids(&c.items("singleEvents=true").await),
        [
            "series0002_20261201T010000Z",
            "series0002_20261203T010000Z",
            "series0002_20261215T010000Z",
            "series0002_20261217T010000Z"
        ]
    );
    let mut no_zone = event("series0003", 1);
    no_zone["start"] = json!({"dateTime": "2026-12-01T10:00:00+09:00"});
    no_zone["recurrence"] = json!(["RRULE:FREQ=DAILY;COUNT=2"]);
    let (code, err) = c.api(Method::POST, "", Some(no_zone)).await;
    assert_eq!((code, reason(&err)), (400, "required"), "{err}");
    let mut bad = event("series0004", 1);
    bad["recurrence"] = json!(["RRULE:FREQ=FORTNIGHTLY"]);
    let (code, _) = c.api(Method::POST, "", Some(bad)).await;
    assert_eq!(code, 400);
}

// --- HTML descriptions ------------------------------------------------------

#[tokio::test]
async fn the_web_editor_stores_descriptions_as_html() {
    let c = Cal::start().await;
    let mut e = event("html00001", 1);
    e["description"] = json!("面接: 山田 太郎\nWeb会議: https://meet.example/abc");
    c.api(Method::POST, "", Some(e)).await;
    let (code, ev) = c
        .admin(
            Method::POST,
            &format!("/ui/{ORGANIZER}/events/html00001/web-edit"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{ev}");
    assert_eq!(
        ev["description"],
        "面接: 山田 太郎<br>Web会議: <a href=\"https://meet.example/abc\">https://meet.example/abc</a>"
    );
    // with the switch on, every description typed in the UI is stored so
    let (code, sw) = c
        .admin(
            Method::POST,
            "/switches",
            Some(json!({"html_descriptions": true})),
        )
        .await;
    assert_eq!((code, &sw["html_descriptions"]), (200, &json!(true)));
    let (_, ui) = c
        .admin(
            Method::POST,
            &format!("/ui/{ORGANIZER}/events"),
            Some(json!({
                "summary": "x",
                "description": "a\nhttps://b.example/",
                "start": {"dateTime": "2026-12-02T10:00:00+09:00"},
                "end": {"dateTime": "2026-12-02T11:00:00+09:00"},
            })),
        )
        .await;
    assert_eq!(
        ui["description"],
        "a<br><a href=\"https://b.example/\">https://b.example/</a>"
    );
    // the API stores what it is sent
    let (_, api) = c
        .api(
            Method::PATCH,
            "/html00001",
            Some(json!({"description": "plain\ntext"})),
        )
        .await;
    assert_eq!(api["description"], "plain\ntext");
}

// --- attendees --------------------------------------------------------------

#[tokio::test]
async fn attendees_answers_rooms_and_the_organizer_as_google_keeps_them() {
    let c = Cal::start().await;
    let mut e = event("att000001", 1);
    e["attendees"] = json!([
        {"email": "suzuki@example.co.jp"},
        {"email": "taro@example.com"},
        {"email": "c_room7f@resource.calendar.google.com", "resource": true, "displayName": "7F 会議室"},
    ]);
    let (_, ev) = c.api(Method::POST, "?sendUpdates=all", Some(e)).await;
    for a in ev["attendees"].as_array().unwrap() {
        assert_eq!(a["responseStatus"], "needsAction", "{a}");
    }
    assert_eq!(ev["attendees"][2]["resource"], true);
    c.admin(
        Method::POST,
        &format!("/ui/{ORGANIZER}/events/att000001/reply"),
        Some(json!({"guest": "taro@example.com", "response": "accepted"})),
    )
    .await;
    // the list sent again without answers keeps them
    let (_, again) = c
        .api(
            Method::PATCH,
            "/att000001",
            Some(json!({"attendees": [{"email": "suzuki@example.co.jp"}, {"email": "taro@example.com"}]})),
        )
        .await;
    assert_eq!(again["attendees"][1]["responseStatus"], "accepted");
    // a time change keeps answers unless Google's reset is switched on
    let moved = json!({"start": {"dateTime": "2026-12-01T12:00:00+09:00"}, "end": {"dateTime": "2026-12-01T13:00:00+09:00"}});
    let (_, kept) = c.api(Method::PATCH, "/att000001", Some(moved)).await;
    assert_eq!(kept["attendees"][1]["responseStatus"], "accepted");
    c.admin(
        Method::POST,
        "/switches",
        Some(json!({"reset_answers_on_time_change": true})),
    )
    .await;
    let moved = json!({"start": {"dateTime": "2026-12-01T14:00:00+09:00"}, "end": {"dateTime": "2026-12-01T15:00:00+09:00"}});
    let (_, reset) = c.api(Method::PATCH, "/att000001", Some(moved)).await;
    assert_eq!(reset["attendees"][1]["responseStatus"], "needsAction");

    // an event made in the UI lists its organizer; rooms booked there accept
    let (_, ui) = c
        .admin(
            Method::POST,
            &format!("/ui/{ORGANIZER}/events"),
            Some(json!({
                "summary": "面接",
                "start": {"dateTime": "2026-12-03T10:00:00+09:00"},
                "end": {"dateTime": "2026-12-03T11:00:00+09:00"},
                "attendees": [{"email": "suzuki@example.co.jp"},
                              {"email": "c_room7f@resource.calendar.google.com", "resource": true}],
            })),
        )
        .await;
    let first = &ui["attendees"][0];
    assert_eq!(
        (
            &first["email"],
            &first["organizer"],
            &first["self"],
            &first["responseStatus"]
        ),
        (
            &json!(ORGANIZER),
            &json!(true),
            &json!(true),
            &json!("accepted")
        )
    );
    assert_eq!(ui["attendees"][2]["responseStatus"], "accepted");
    // with the reset on, the organizer and the room keep their answers
    let (_, ui_moved) = c
        .admin(
            Method::PATCH,
            &format!("/ui/{ORGANIZER}/events/{}", ui["id"].as_str().unwrap()),
            Some(json!({"start": {"dateTime": "2026-12-03T12:00:00+09:00"}, "end": {"dateTime": "2026-12-03T13:00:00+09:00"}})),
        )
        .await;
    let answers: Vec<&Value> = ui_moved["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["responseStatus"])
        .collect();
    assert_eq!(
        answers,
        [
            &json!("accepted"),
            &json!("needsAction"),
            &json!("accepted")
        ]
    );
}

// --- the limit on external invitations --------------------------------------

#[tokio::test]
async fn external_invitations_hit_calendars_usage_limit_until_the_window_passes() {
    let c = Cal::start().await;
    let (code, _) = c
        .admin(
            Method::POST,
            "/invitation-limit",
            Some(json!({"per_day": 2})),
        )
        .await;
    assert_eq!(code, 204);
    let with = |id: &str, guests: &[&str]| {
        let mut e = event(id, 1);
        e["attendees"] = json!(
            guests
                .iter()
                .map(|g| json!({"email": g}))
                .collect::<Vec<_>>()
        );
        e
    };
    let (code, _) = c
        .api(
            Method::POST,
            "?sendUpdates=all",
            Some(with(
                "quota0001",
                &["a@gmail.com", "b@example.com", "suzuki@example.co.jp"],
            )),
        )
        .await;
    assert_eq!(code, 200);
    let (code, err) = c
        .api(
            Method::POST,
            "?sendUpdates=all",
            Some(with("quota0002", &["c@gmail.com"])),
        )
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(reason(&err), "quotaExceeded");
    assert_eq!(err["error"]["errors"][0]["domain"], "usageLimits");
    assert_eq!(err["error"]["message"], "Calendar usage limits exceeded.");
    let (code, _) = c.api(Method::GET, "/quota0002", None).await;
    assert_eq!(code, 404, "nothing was written");
    // externalOnly invites them too; adding a guest by patch counts
    let (code, _) = c
        .api(
            Method::PATCH,
            "/quota0001?sendUpdates=externalOnly",
            Some(json!({"attendees": [{"email": "a@gmail.com"}, {"email": "d@gmail.com"}]})),
        )
        .await;
    assert_eq!(code, 403);
    // writes that invite nobody, or only colleagues, go on
    let (code, _) = c
        .api(
            Method::POST,
            "?sendUpdates=none",
            Some(with("quota0003", &["c@gmail.com"])),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = c
        .api(
            Method::POST,
            "?sendUpdates=all",
            Some(with("quota0004", &["takahashi@example.co.jp"])),
        )
        .await;
    assert_eq!(code, 200);
    let (_, sent) = c
        .admin(Method::GET, &format!("/invitation-limit/{ORGANIZER}"), None)
        .await;
    assert_eq!(sent["sent"], 2);
    // a day later (on the emulator's clock) the limit is lifted
    let (_, clock) = c
        .admin(
            Method::POST,
            "/clock",
            Some(json!({"advance_secs": 86_400})),
        )
        .await;
    assert!(clock["now"].is_string());
    let (code, _) = c
        .api(
            Method::POST,
            "?sendUpdates=all",
            Some(with("quota0005", &["c@gmail.com"])),
        )
        .await;
    assert_eq!(code, 200);
}

// --- moved events -----------------------------------------------------------

#[tokio::test]
async fn a_moved_event_leaves_a_bare_tombstone_in_the_source_calendars_delta() {
    let c = Cal::start().await;
    let team = "team@group.calendar.google.com";
    let (code, _) = c
        .admin(
            Method::POST,
            "/calendars",
            Some(json!({"id": team, "summary": "採用チーム", "writers": [ORGANIZER]})),
        )
        .await;
    assert_eq!(code, 204);
    let mut e = event("move00001", 1);
    e["description"] = json!("secret");
    e["extendedProperties"] = json!({"private": {"hitolinkInterviewId": "iv_1"}});
    c.api(Method::POST, "", Some(e)).await;
    c.api(Method::POST, "", Some(event("move00002", 2))).await;
    let (_, sync) = c.pages("").await;

    let (code, moved) = c
        .api(
            Method::POST,
            &format!("/move00001/move?destination={team}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(moved["organizer"]["email"], team);
    assert_eq!(moved["organizer"]["displayName"], "採用チーム");
    let (code, _) = c
        .admin(
            Method::POST,
            &format!("/ui/{ORGANIZER}/events/move00002/move"),
            Some(json!({"destination": team})),
        )
        .await;
    assert_eq!(code, 200);

    let (_, delta) = c
        .api(Method::GET, &format!("?syncToken={sync}"), None)
        .await;
    let items = delta["items"].as_array().unwrap();
    assert_eq!(ids(items), ["move00001", "move00002"]);
    for t in items {
        assert_eq!(t["status"], "cancelled");
        assert!(t.get("extendedProperties").is_none() && t.get("start").is_none());
        assert!(
            t.as_object()
                .unwrap()
                .keys()
                .all(|k| ["kind", "etag", "id", "status", "updated"].contains(&k.as_str())),
            "only the id is guaranteed: {t}"
        );
    }
    let (code, _) = c.api(Method::GET, "/move00001", None).await;
    assert_eq!(code, 404);
    assert!(c.items("").await.is_empty(), "gone from a plain listing");
    let (code, dest) = http(
        Method::GET,
        &c.url(&format!("/calendar/v3/calendars/{team}/events")),
        &[("authorization", &format!("Bearer {}", c.token))],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        ids(dest["items"].as_array().unwrap()),
        ["move00001", "move00002"]
    );
    let (code, err) = c
        .api(
            Method::POST,
            "/move00001/move?destination=nobody@example.co.jp",
            None,
        )
        .await;
    assert_eq!((code, reason(&err)), (404, "notFound"));
}

// --- short and empty pages --------------------------------------------------

#[tokio::test]
async fn short_and_empty_pages_still_carry_the_listing_to_its_end() {
    let c = Cal::start().await;
    for i in 0..5 {
        c.api(
            Method::POST,
            "",
            Some(event(&format!("page0000{i}"), 1 + i)),
        )
        .await;
    }
    let (code, _) = c
        .admin(
            Method::POST,
            "/switches",
            Some(json!({"page_sizes": [0, 1, 2]})),
        )
        .await;
    assert_eq!(code, 200);
    let (pages, sync) = c.pages("maxResults=3").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [0, 1, 2, 0, 1, 1]);
    assert_eq!(
        ids(&pages.concat()),
        [
            "page00000",
            "page00001",
            "page00002",
            "page00003",
            "page00004"
        ]
    );
    assert!(!sync.is_empty());
    let (code, err) = c
        .admin(Method::POST, "/switches", Some(json!({"page_sizes": [0]})))
        .await;
    assert_eq!(code, 400, "{err}");
    c.admin(Method::POST, "/switches", Some(json!({"page_sizes": null})))
        .await;
    let (pages, _) = c.pages("maxResults=3").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);
}

// --- patch semantics and Google's 400s -------------------------------------

#[tokio::test]
async fn patch_merges_start_and_end_and_bad_input_answers_400() {
    let c = Cal::start().await;
    c.api(Method::POST, "", Some(event("merge0001", 1))).await;
    let (code, ev) = c
        .api(
            Method::PATCH,
            "/merge0001",
            Some(json!({"start": {"dateTime": "2026-12-01T09:00:00+09:00"}})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(ev["start"]["timeZone"], "Asia/Tokyo", "kept by the merge");
    assert_eq!(ev["start"]["dateTime"], "2026-12-01T09:00:00+09:00");
    // to all-day: the stored dateTime must be cleared, or both are set
    let (code, _) = c
        .api(
            Method::PATCH,
            "/merge0001",
            Some(json!({"start": {"date": "2026-12-01"}, "end": {"date": "2026-12-02"}})),
        )
        .await;
    assert_eq!(code, 400);
    let (code, day) = c
        .api(
            Method::PATCH,
            "/merge0001",
            Some(
                json!({"start": {"date": "2026-12-01", "dateTime": null, "timeZone": null},
                        "end": {"date": "2026-12-02", "dateTime": null, "timeZone": null}}),
            ),
        )
        .await;
    assert_eq!(code, 200, "{day}");

    let cases = [
        (
            "",
            json!({"id": "bad000001", "attendees": [{"email": "not an address"}]}),
        ),
        ("", json!({"id": "bad000002", "status": "postponed"})),
        (
            "",
            json!({"id": "bad000003", "end": {"date": "2026-12-02"}}),
        ),
        (
            "",
            json!({"id": "bad000004", "start": {"date": "2026-12-01", "dateTime": "2026-12-01T10:00:00+09:00"}}),
        ),
        ("?sendUpdates=everyone", json!({"id": "bad000005"})),
    ];
    for (query, over) in cases {
        let mut e = event("x", 1);
        for (k, v) in over.as_object().unwrap() {
            e[k] = v.clone();
        }
        let (code, err) = c.api(Method::POST, query, Some(e.clone())).await;
        assert_eq!(code, 400, "{e} -> {err}");
        let (code, _) = c
            .api(
                Method::GET,
                &format!("/{}", e["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(code, 404, "nothing stored for {e}");
    }
    let (_, err) = c
        .api(
            Method::POST,
            "?sendUpdates=everyone",
            Some(event("bad000006", 1)),
        )
        .await;
    assert_eq!(reason(&err), "invalidParameter");
    assert_eq!(err["error"]["errors"][0]["location"], "sendUpdates");
    let (code, _) = c
        .api(
            Method::PATCH,
            "/merge0001?sendUpdates=sometimes",
            Some(json!({"summary": "x"})),
        )
        .await;
    assert_eq!(code, 400);
}

// --- faults before and after a write is applied ----------------------------

async fn inject(c: &Cal, on: &str, phase: &str, fault: Value) {
    let (code, body) = c
        .admin(
            Method::POST,
            "/faults",
            Some(json!({"fault": fault, "on": on, "phase": phase, "count": 1})),
        )
        .await;
    assert_eq!(code, 204, "{body}");
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

/// What the client saw: a status, or `None` for a closed connection.
fn seen(r: &Result<(u16, Value), String>) -> Option<u16> {
    r.as_ref().ok().map(|(code, _)| *code)
}

#[tokio::test]
async fn every_google_write_can_be_applied_and_then_lose_its_answer() {
    let c = Cal::start().await;
    let team = "team@group.calendar.google.com";
    c.admin(
        Method::POST,
        "/calendars",
        Some(json!({"id": team, "writers": [ORGANIZER]})),
    )
    .await;
    for (n, (fault, status)) in after_apply_faults().into_iter().enumerate() {
        let id = format!("fault000{n}");
        // insert: applied, then the fault; the retry meets 409
        inject(&c, "events.insert", "after", fault.clone()).await;
        let r = c.try_api(Method::POST, "", Some(event(&id, 1)), &[]).await;
        assert_eq!(seen(&r), status, "{fault} on insert: {r:?}");
        let (code, _) = c.api(Method::GET, &format!("/{id}"), None).await;
        assert_eq!(code, 200, "the insert was applied");
        let (code, _) = c.api(Method::POST, "", Some(event(&id, 1))).await;
        assert_eq!(code, 409);

        // patch
        inject(&c, "events.patch", "after", fault.clone()).await;
        let r = c
            .try_api(
                Method::PATCH,
                &format!("/{id}"),
                Some(json!({"location": "本社"})),
                &[],
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on patch");
        let (_, ev) = c.api(Method::GET, &format!("/{id}"), None).await;
        assert_eq!(ev["location"], "本社");

        // cancel and restore are patches too
        inject(&c, "events.patch", "after", fault.clone()).await;
        let r = c
            .try_api(
                Method::PATCH,
                &format!("/{id}"),
                Some(json!({"status": "cancelled"})),
                &[],
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on cancel");
        let (_, ev) = c.api(Method::GET, &format!("/{id}"), None).await;
        assert_eq!(ev["status"], "cancelled");
        inject(&c, "writes", "after", fault.clone()).await;
        let r = c
            .try_api(
                Method::PATCH,
                &format!("/{id}"),
                Some(json!({"status": "confirmed"})),
                &[],
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on restore");
        let (_, ev) = c.api(Method::GET, &format!("/{id}"), None).await;
        assert_eq!(ev["status"], "confirmed");

        // move
        inject(&c, "events.move", "after", fault.clone()).await;
        let r = c
            .try_api(
                Method::POST,
                &format!("/{id}/move?destination={team}"),
                None,
                &[],
            )
            .await;
        assert_eq!(seen(&r), status, "{fault} on move");
        let (code, _) = c.api(Method::GET, &format!("/{id}"), None).await;
        assert_eq!(code, 404, "moved away");
    }
    assert_eq!(c.g.emu.counters()["faults_after_apply"], 15);
    assert_eq!(c.g.emu.pending_faults(), 0);
}

#[tokio::test]
async fn faults_before_the_write_change_nothing_and_can_be_aimed_at_one_call() {
    let c = Cal::start().await;
    inject(
        &c,
        "events.insert",
        "before",
        json!({"kind": "server_error"}),
    )
    .await;
    inject(&c, "events.insert", "before", json!({"kind": "disconnect"})).await;
    // a list is not an insert: it passes
    let (code, _) = c.api(Method::GET, "", None).await;
    assert_eq!(code, 200);
    let r = c
        .try_api(Method::POST, "", Some(event("before001", 1)), &[])
        .await;
    assert_eq!(seen(&r), Some(500));
    let r = c
        .try_api(Method::POST, "", Some(event("before001", 1)), &[])
        .await;
    assert_eq!(seen(&r), None, "{r:?}");
    let (code, _) = c.api(Method::GET, "/before001", None).await;
    assert_eq!(code, 404, "nothing was applied");
    let (code, _) = c.api(Method::POST, "", Some(event("before001", 1))).await;
    assert_eq!(code, 200);
    // the old form (no aim) still hits the next call, whatever it is
    let (code, _) = c
        .admin(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "unavailable"}})),
        )
        .await;
    assert_eq!(code, 204);
    let (code, _) = c.api(Method::GET, "", None).await;
    assert_eq!(code, 503);
    // a typo names no call; a latency cannot come after the answer
    let (code, _) = c
        .admin(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "server_error"}, "on": "events.insret"})),
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = c
        .admin(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "latency", "millis": 5}, "on": "writes", "phase": "after"})),
        )
        .await;
    assert_eq!(code, 400);
}
