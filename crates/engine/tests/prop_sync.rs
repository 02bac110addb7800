//! The reconcile engine under random histories, modelled on vdirsyncer's
//! SyncMachine: random edits on both sides (create, move, place, link,
//! declines, cancel, delete, bookings, unrelated events), faults (5xx, 429,
//! 410 on either side), edits racing a cycle (412), crashes between any two
//! remote calls, and a wiped store. After each history the sides go quiet
//! and SPEC invariants 1-8 are checked:
//! two cycles bring agreement, no duplicates, nothing lost or parked, a
//! third cycle writes nothing, unmanaged events untouched, no resurrection.
//!
//! The engine talks to the emulators over loopback HTTP through the real
//! clients, so every fault (before or after a write is applied) goes
//! through the clients' own retry loops. A crash is the "process" dying
//! between two remote calls. `PROPTEST_CASES` sets the number of histories.
//!
//! The same histories run on both state backends: sled, and PostgreSQL
//! (`PROPTEST_PG_CASES` histories, 100 unless set; each gets a database of
//! its own on the server crates/testkit/src/pg.rs names).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use hitosync_config::SyncConfig;
use hitosync_core::model::{CalendarEvent, EventStatus, Interview, Response};
use hitosync_core::reconcile::{
    Decliner, EventChange, EventDraft, Notify, Policy, hitolink_view, parse_meeting_url,
};
use hitosync_emulator::faults::Phase;
use hitosync_emulator::google::{Fault as GFault, GoogleEmulator};
use hitosync_emulator::hitolink::{Fault as HFault, HitolinkEmulator};
use hitosync_engine::{CalendarApi, CycleOptions, Engine, HitolinkApi};
use hitosync_google::{CalendarClient, EventPage, GoogleError};
use hitosync_hitolink::{
    ApplicationInfo, ChangePage, HitolinkClient, HitolinkError, InterviewPatch, NewInterview,
};
use hitosync_state::{StateStore, Store};
use hitosync_testkit::pg::{PgDb, leased_store};
use hitosync_testkit::{GoogleEmu, HitolinkEmu, ORGANIZER, hiring_seed, real_clients_paged};

// ---------------------------------------------------------------------------
// Chaos: counts every remote call; can die at call N, or run an edit first.
// ---------------------------------------------------------------------------

type Edit = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Chaos {
    /// Calls left before the "process" dies; negative: never.
    calls_left: AtomicI64,
    crashed: tokio::sync::Notify,
    /// (calls to let through, edit) for a race with a cycle.
    race: Mutex<Option<(i64, Edit)>>,
    calls: AtomicI64,
}

impl Chaos {
    async fn gate(&self) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let race = {
            let mut r = self.race.lock().unwrap();
            match r.as_ref() {
                Some((at, _)) if *at <= n => r.take(),
                _ => None,
            }
        };
        if let Some((_, edit)) = race {
            edit();
        }
        let left = self.calls_left.fetch_sub(1, Ordering::SeqCst);
        if left == 0 {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

struct ChaosGoogle<'a>(&'a CalendarClient, Arc<Chaos>);
struct ChaosHitolink<'a>(&'a HitolinkClient, Arc<Chaos>);

#[async_trait]
impl CalendarApi for ChaosGoogle<'_> {
    async fn list_page(&self, s: Option<&str>, p: Option<&str>) -> Result<EventPage, GoogleError> {
        self.1.gate().await;
        self.0.list_page(s, p).await
    }
    async fn get(&self, id: &hitosync_core::ids::EventId) -> Result<CalendarEvent, GoogleError> {
        self.1.gate().await;
        self.0.get(id).await
    }
    async fn insert(
        &self,
        id: &hitosync_core::ids::EventId,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        self.1.gate().await;
        self.0.insert(id, draft, notify).await
    }
    async fn patch(
        &self,
        id: &hitosync_core::ids::EventId,
        status: Option<EventStatus>,
        change: &EventChange,
        m: Option<&str>,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        self.1.gate().await;
        self.0.patch(id, status, change, m, notify).await
    }
}

#[async_trait]
impl HitolinkApi for ChaosHitolink<'_> {
    async fn changes(&self, c: Option<&str>, l: u32) -> Result<ChangePage, HitolinkError> {
        self.1.gate().await;
        self.0.changes(c, l).await
    }
    async fn get(&self, id: &hitosync_core::ids::InterviewId) -> Result<Interview, HitolinkError> {
        self.1.gate().await;
        self.0.get(id).await
    }
    async fn create(&self, n: &NewInterview, k: &str) -> Result<Interview, HitolinkError> {
        self.1.gate().await;
        self.0.create(n, k).await
    }
    async fn patch(
        &self,
        id: &hitosync_core::ids::InterviewId,
        p: InterviewPatch<'_>,
        v: u64,
    ) -> Result<Interview, HitolinkError> {
        self.1.gate().await;
        self.0.patch(id, p, v).await
    }
    async fn decline(
        &self,
        id: &hitosync_core::ids::InterviewId,
        by: &Decliner,
        r: Option<&str>,
        v: u64,
        k: &str,
    ) -> Result<Interview, HitolinkError> {
        self.1.gate().await;
        self.0.decline(id, by, r, v, k).await
    }
    async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        self.1.gate().await;
        self.0.application(id).await
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    HlCreate {
        app: u8,
        day: u8,
        hour: u8,
        scheduled: bool,
        both: bool,
    },
    HlMove {
        pick: u8,
        day: u8,
        hour: u8,
    },
    HlPlace {
        pick: u8,
        place: u8,
    },
    HlLink {
        pick: u8,
        n: u8,
    },
    HlCancel {
        pick: u8,
    },
    HlReschedule {
        pick: u8,
        hour: u8,
    },
    HlDelete {
        pick: u8,
    },
    HlDecline {
        pick: u8,
        candidate: bool,
    },
    GMove {
        pick: u8,
        day: u8,
        hour: u8,
    },
    GPlace {
        pick: u8,
        place: u8,
    },
    GDelete {
        pick: u8,
    },
    GReply {
        pick: u8,
        candidate: bool,
        response: u8,
    },
    GBooking {
        app: u8,
        day: u8,
        hour: u8,
    },
    GNoise {
        edit: bool,
        n: u8,
    },
    /// An admin clears or changes an interview's external_event_id.
    HlRelink {
        pick: u8,
        clear: bool,
    },
    /// Someone copies a managed event, properties and all: a look-alike.
    GCopy {
        pick: u8,
    },
    Fault {
        google: bool,
        kind: u8,
        count: u8,
    },
    /// The next write of a kind is applied, then its answer fails (500,
    /// 429 or a dropped connection); with `crash_after`, the cycle that
    /// meets it also dies at that call.
    AfterApply {
        google: bool,
        on: u8,
        kind: u8,
        crash_after: Option<u8>,
    },
    /// A colleague's invitation lands on the calendar: carrying an
    /// interview's ID (a look-alike) or a booking marker, never to be
    /// written.
    GInvite {
        pick: u8,
        marker: bool,
    },
    /// The organizer turns an event into a series, or drags it to all-day.
    GReshape {
        pick: u8,
        recurring: bool,
    },
    /// The organizer opens an event in the web editor and saves it.
    GWebEdit {
        pick: u8,
    },
    /// A booking marker on a recurring series: never a booking.
    GRecurringBooking {
        app: u8,
    },
    Invalidate {
        google: bool,
    },
    Cycle,
    Race {
        after: u8,
        edit: Box<Op>,
    },
    Crash {
        after: u8,
    },
    Wipe,
}

fn edit_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2u8, 1..6u8, 9..18u8, prop::bool::weighted(0.85), any::<bool>())
            .prop_map(|(app, day, hour, scheduled, both)| Op::HlCreate { app, day, hour, scheduled, both }),
        2 => (any::<u8>(), 1..6u8, 9..18u8).prop_map(|(pick, day, hour)| Op::HlMove { pick, day, hour }),
        1 => (any::<u8>(), 0..4u8).prop_map(|(pick, place)| Op::HlPlace { pick, place }),
        1 => (any::<u8>(), 0..3u8).prop_map(|(pick, n)| Op::HlLink { pick, n }),
        1 => any::<u8>().prop_map(|pick| Op::HlCancel { pick }),
        1 => (any::<u8>(), 9..18u8).prop_map(|(pick, hour)| Op::HlReschedule { pick, hour }),
        1 => any::<u8>().prop_map(|pick| Op::HlDelete { pick }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, candidate)| Op::HlDecline { pick, candidate }),
        2 => (any::<u8>(), 1..6u8, 9..18u8).prop_map(|(pick, day, hour)| Op::GMove { pick, day, hour }),
        1 => (any::<u8>(), 0..4u8).prop_map(|(pick, place)| Op::GPlace { pick, place }),
        1 => any::<u8>().prop_map(|pick| Op::GDelete { pick }),
        2 => (any::<u8>(), any::<bool>(), 0..4u8).prop_map(|(pick, candidate, response)| Op::GReply { pick, candidate, response }),
        1 => (0..2u8, 1..6u8, 9..18u8).prop_map(|(app, day, hour)| Op::GBooking { app, day, hour }),
        1 => (any::<bool>(), 0..3u8).prop_map(|(edit, n)| Op::GNoise { edit, n }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, clear)| Op::HlRelink { pick, clear }),
        1 => any::<u8>().prop_map(|pick| Op::GCopy { pick }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, marker)| Op::GInvite { pick, marker }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, recurring)| Op::GReshape { pick, recurring }),
        1 => any::<u8>().prop_map(|pick| Op::GWebEdit { pick }),
        1 => (0..2u8).prop_map(|app| Op::GRecurringBooking { app }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => edit_op(),
        4 => Just(Op::Cycle),
        1 => (any::<bool>(), 0..3u8, 1..4u8).prop_map(|(google, kind, count)| Op::Fault { google, kind, count }),
        3 => (any::<bool>(), 0..3u8, 0..3u8, prop::option::weighted(0.5, 0..20u8))
            .prop_map(|(google, on, kind, crash_after)| Op::AfterApply { google, on, kind, crash_after }),
        1 => any::<bool>().prop_map(|google| Op::Invalidate { google }),
        1 => (0..12u8, edit_op()).prop_map(|(after, e)| Op::Race { after, edit: Box::new(e) }),
        1 => (0..25u8).prop_map(|after| Op::Crash { after }),
        1 => Just(Op::Wipe),
    ]
}

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

struct World {
    g: Arc<GoogleEmulator>,
    h: Arc<HitolinkEmulator>,
    calendar: CalendarClient,
    hitolink: HitolinkClient,
    dir: tempfile::TempDir,
    /// With PostgreSQL: the database (sled lives in `dir`).
    pg: Option<(
        PgDb,
        hitosync_state_postgres::PgState,
        Arc<hitosync_state::Lease>,
    )>,
    store: Option<Arc<dyn StateStore>>,
    clock: DateTime<Utc>,
    chaos: Arc<Chaos>,
    /// Unmanaged events made by "someone else" (ids), shared with races.
    noise: Arc<Noise>,
    /// Write-backs run beside the other writes (the daemon's way), or
    /// after them (one order of calls, so that a failure replays).
    concurrent: bool,
}

#[derive(Default)]
struct Noise {
    ids: Mutex<Vec<String>>,
    /// Copies of managed events (look-alikes): never to be written.
    copies: Mutex<Vec<String>>,
    seq: std::sync::atomic::AtomicU32,
}

fn tmp() -> tempfile::TempDir {
    // tmpfs where there is one: sled flushes at every commit point
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

const PLACES: [&str; 4] = ["本社 5F", "会議室A", "大阪支社", ""];

/// Opens the store again after a simulated crash. sled's flusher thread
/// may hold the old handle (and its lock) for a moment after the drop; a
/// real process's lock goes with the process.
fn reopen(dir: &std::path::Path) -> Store {
    for _ in 0..200 {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(hitosync_state::StateError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store stayed locked")
}

fn policy() -> Policy {
    SyncConfig::default().policy(ORGANIZER)
}

impl World {
    async fn new(postgres: bool) -> World {
        let ge = GoogleEmu::start().await;
        let he = HitolinkEmu::start(hiring_seed()).await;
        let (calendar, hitolink) = real_clients_paged(&ge, &he, 3).await;
        let dir = tmp();
        let (pg, store): (_, Arc<dyn StateStore>) = if postgres {
            let db = PgDb::fresh().await;
            let pg = db.open().await;
            let (store, lease) = leased_store(&pg, "default").await;
            (Some((db, pg, lease)), store)
        } else {
            (None, Arc::new(Store::open(dir.path()).unwrap()))
        };
        World {
            g: ge.emu,
            h: he.emu,
            calendar,
            hitolink,
            dir,
            pg,
            store: Some(store),
            clock: Utc::now(),
            chaos: Arc::new(Chaos::default()),
            noise: Arc::new(Noise::default()),
            concurrent: false,
        }
    }

    fn interviews(&self) -> Vec<String> {
        self.h
            .interviews()
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.id)
            .collect()
    }

    fn managed_events(&self) -> Vec<Value> {
        self.g
            .events(ORGANIZER)
            .into_iter()
            .filter(|e| {
                e["extendedProperties"]["private"]["hitolinkInterviewId"].is_string()
                    || is_booking(e)
            })
            .filter(|e| e["status"] != "cancelled")
            .collect()
    }

    fn pick<T: Clone>(items: &[T], pick: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[pick as usize % items.len()].clone())
    }

    /// Applies a user's edit. Edits that the state does not allow (moving
    /// a deleted record) are skipped, as a UI would not offer them.
    fn edit(g: &GoogleEmulator, h: &HitolinkEmulator, op: &Op, noise: &Noise) {
        let ivs: Vec<String> = h
            .interviews()
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.id)
            .collect();
        let evs: Vec<String> = g
            .events(ORGANIZER)
            .into_iter()
            .filter(|e| {
                e["extendedProperties"]["private"]["hitolinkInterviewId"].is_string()
                    || is_booking(e)
            })
            .filter(|e| e["status"] != "cancelled")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let t =
            |day: u8, hour: u8, min: u8| format!("2026-12-{:02}T{hour:02}:{min:02}:00+09:00", day);
        match op {
            Op::HlCreate {
                app,
                day,
                hour,
                scheduled,
                both,
            } => {
                let mut body = json!({
                    "application_id": format!("ap_{}", app + 1),
                    "interviewers": if *both { json!(["suzuki@example.co.jp", "takahashi@example.co.jp"]) } else { json!(["suzuki@example.co.jp"]) },
                });
                if *scheduled {
                    body["start"] = json!(t(*day, *hour, 0));
                    body["end"] = json!(t(*day, *hour, 45));
                }
                h.admin_create(&body).unwrap();
            }
            Op::HlMove { pick, day, hour } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let _ = h.admin_edit(
                        &id,
                        &json!({"start": t(*day, *hour, 0), "end": t(*day, *hour, 30)}),
                    );
                }
            }
            Op::HlPlace { pick, place } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let p = PLACES[*place as usize];
                    let _ = h.admin_edit(
                        &id,
                        &json!({"location": if p.is_empty() { Value::Null } else { json!(p) }}),
                    );
                }
            }
            Op::HlLink { pick, n } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let url = if *n == 0 {
                        Value::Null
                    } else {
                        json!(format!("https://meet.example/{n}"))
                    };
                    let _ = h.admin_edit(&id, &json!({"video_conferencing_url": url}));
                }
            }
            Op::HlCancel { pick } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let _ = h.admin_edit(&id, &json!({"status": "canceled"}));
                }
            }
            Op::HlReschedule { pick, hour } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let _ = h.admin_edit(&id, &json!({"status": "scheduled", "start": t(3, *hour, 0), "end": t(3, *hour, 50)}));
                }
            }
            Op::HlDelete { pick } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let _ = h.admin_delete(&id);
                }
            }
            Op::HlDecline { pick, candidate } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let body = if *candidate {
                        json!({"by": "candidate"})
                    } else {
                        json!({"by": "interviewer", "interviewer_id": "us_1"})
                    };
                    let _ = h.admin_decline(&id, &body);
                }
            }
            Op::GMove { pick, day, hour } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let _ = g.ui_edit(ORGANIZER, &id, json!({"start": {"dateTime": t(*day, *hour, 15)}, "end": {"dateTime": t(*day, *hour, 55)}}));
                }
            }
            Op::GPlace { pick, place } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let p = PLACES[*place as usize];
                    let _ = g.ui_edit(
                        ORGANIZER,
                        &id,
                        json!({"location": if p.is_empty() { Value::Null } else { json!(p) }}),
                    );
                }
            }
            Op::GDelete { pick } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let _ = g.ui_delete(ORGANIZER, &id);
                }
            }
            Op::GReply {
                pick,
                candidate,
                response,
            } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let who = if *candidate {
                        "taro@example.com"
                    } else {
                        "suzuki@example.co.jp"
                    };
                    let r =
                        ["needsAction", "accepted", "tentative", "declined"][*response as usize];
                    // the candidate of ap_2 is hanako; a reply from someone not invited is refused
                    let _ = g.guest_reply(ORGANIZER, &id, who, r);
                    if *candidate {
                        let _ = g.guest_reply(ORGANIZER, &id, "hanako@example.com", r);
                    }
                }
            }
            Op::GBooking { app, day, hour } => {
                let _ = g.ui_create(
                    ORGANIZER,
                    json!({
                        "summary": format!("面接 HL:ap_{}", app + 1),
                        "start": {"dateTime": t(*day, *hour, 0), "timeZone": "Asia/Tokyo"},
                        "end": {"dateTime": t(*day, *hour, 40), "timeZone": "Asia/Tokyo"},
                        "attendees": [{"email": "takahashi@example.co.jp"}],
                    }),
                );
            }
            Op::GInvite { pick, marker } => {
                let seq = noise.seq.fetch_add(1, Ordering::SeqCst) + 1;
                let mut body = json!({
                    "id": format!("invite{seq:05}"),
                    "organizer": "colleague@example.co.jp",
                    "summary": "打ち合わせ",
                    "start": {"dateTime": t(2, 15, 0), "timeZone": "Asia/Tokyo"},
                    "end": {"dateTime": t(2, 16, 0), "timeZone": "Asia/Tokyo"},
                    "attendees": [{"email": ORGANIZER}],
                });
                if *marker {
                    body["summary"] = json!("面接 HL:ap_1");
                } else if let Some(iid) = World::pick(&ivs, *pick) {
                    body["extendedProperties"] = json!({"private": {"hitolinkInterviewId": iid}});
                }
                if let Ok(ev) = g.ui_invite(ORGANIZER, body) {
                    noise
                        .ids
                        .lock()
                        .unwrap()
                        .push(ev["id"].as_str().unwrap().to_string());
                }
            }
            Op::GReshape { pick, recurring } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let fields = if *recurring {
                        json!({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
                               "start": {"timeZone": "Asia/Tokyo"}, "end": {"timeZone": "Asia/Tokyo"}})
                    } else {
                        json!({"start": {"date": "2026-12-04", "dateTime": null},
                               "end": {"date": "2026-12-05", "dateTime": null}})
                    };
                    let _ = g.ui_edit(ORGANIZER, &id, fields);
                }
            }
            Op::GWebEdit { pick } => {
                if let Some(id) = World::pick(&evs, *pick) {
                    let _ = g.web_editor_roundtrip(ORGANIZER, &id);
                }
            }
            Op::GRecurringBooking { app } => {
                let seq = noise.seq.fetch_add(1, Ordering::SeqCst) + 1;
                if let Ok(ev) = g.ui_create(
                    ORGANIZER,
                    json!({
                        "id": format!("series{seq:05}"),
                        "summary": format!("面接 HL:ap_{}", app + 1),
                        "start": {"dateTime": t(4, 10, 0), "timeZone": "Asia/Tokyo"},
                        "end": {"dateTime": t(4, 11, 0), "timeZone": "Asia/Tokyo"},
                        "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"],
                    }),
                ) {
                    noise
                        .ids
                        .lock()
                        .unwrap()
                        .push(ev["id"].as_str().unwrap().to_string());
                }
            }
            Op::HlRelink { pick, clear } => {
                if let Some(id) = World::pick(&ivs, *pick) {
                    let to = if *clear {
                        Value::Null
                    } else {
                        json!("someotherevent0")
                    };
                    let _ = h.admin_edit(&id, &json!({"external_event_id": to}));
                }
            }
            Op::GCopy { pick } => {
                let managed: Vec<Value> = g
                    .events(ORGANIZER)
                    .into_iter()
                    .filter(|e| {
                        e["extendedProperties"]["private"]["hitolinkInterviewId"].is_string()
                    })
                    .filter(|e| {
                        !noise
                            .copies
                            .lock()
                            .unwrap()
                            .iter()
                            .any(|c| e["id"] == c.as_str())
                    })
                    .collect();
                if let Some(orig) = World::pick(&managed, *pick) {
                    let seq = noise.seq.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut copy = json!({
                        "id": format!("copy{seq:05}"),
                        "summary": orig["summary"],
                        "start": orig["start"],
                        "end": orig["end"],
                        "extendedProperties": orig["extendedProperties"],
                    });
                    if orig["status"] == "cancelled" {
                        copy["status"] = json!("cancelled");
                    }
                    if let Ok(ev) = g.ui_create(ORGANIZER, copy) {
                        noise
                            .copies
                            .lock()
                            .unwrap()
                            .push(ev["id"].as_str().unwrap().to_string());
                    }
                }
            }
            Op::GNoise { edit, n } => {
                let existing = noise.ids.lock().unwrap().clone();
                if *edit && !existing.is_empty() {
                    let id = existing[*n as usize % existing.len()].clone();
                    let _ = g.ui_edit(ORGANIZER, &id, json!({"summary": format!("ランチ {n}")}));
                } else {
                    let seq = noise.seq.fetch_add(1, Ordering::SeqCst) + 1;
                    let ev = g
                        .ui_create(
                            ORGANIZER,
                            json!({
                                "id": format!("noise{seq:05}"),
                                "summary": "定例会議",
                                "start": {"dateTime": t(2, 12, 0)},
                                "end": {"dateTime": t(2, 13, 0)},
                            }),
                        )
                        .unwrap();
                    noise
                        .ids
                        .lock()
                        .unwrap()
                        .push(ev["id"].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }

    /// One cycle; `crash_after` kills it at that remote call.
    async fn cycle(&mut self, crash_after: Option<i64>) -> Option<Result<(), String>> {
        self.chaos
            .calls_left
            .store(crash_after.unwrap_or(-1), Ordering::SeqCst);
        self.chaos.calls.store(0, Ordering::SeqCst);
        let g = ChaosGoogle(&self.calendar, self.chaos.clone());
        let h = ChaosHitolink(&self.hitolink, self.chaos.clone());
        let store = self.store.clone().unwrap();
        let engine = Engine {
            calendar: &g,
            hitolink: &h,
            store: store.as_ref(),
            policy: policy(),
            max_deletions: 1000,
            hitolink_page_size: 3,
            stop: None,
        };
        let opts = CycleOptions {
            now: Some(self.clock),
            write_back_budget: None,
            concurrent_write_backs: self.concurrent,
            ..Default::default()
        };
        let result = tokio::select! {
            r = engine.cycle(&opts) => Some(r.map(|_| ()).map_err(|e| e.to_string())),
            _ = self.chaos.crashed.notified() => None,
        };
        self.chaos.race.lock().unwrap().take();
        drop(engine);
        drop(store);
        if result.is_none() {
            // the process died: reopen the store as a new process would
            self.reopen();
        }
        self.clock += Duration::seconds(61);
        result
    }

    async fn run(&mut self, op: &Op) {
        match op {
            Op::Cycle => {
                let _ = self.cycle(None).await;
            }
            Op::Crash { after } => {
                let _ = self.cycle(Some(*after as i64)).await;
            }
            Op::Race { after, edit } => {
                let (g, h, e, noise) = (
                    self.g.clone(),
                    self.h.clone(),
                    (**edit).clone(),
                    self.noise.clone(),
                );
                *self.chaos.race.lock().unwrap() = Some((
                    *after as i64,
                    Box::new(move || World::edit(&g, &h, &e, &noise)),
                ));
                let _ = self.cycle(None).await;
            }
            Op::Fault {
                google,
                kind,
                count,
            } => {
                let n = *count as usize;
                if *google {
                    let f = [
                        GFault::ServerError,
                        GFault::TooManyRequests {
                            retry_after_secs: 0,
                        },
                        GFault::RateLimit403,
                    ][*kind as usize];
                    self.g.inject(f, n);
                } else {
                    let f = [
                        HFault::ServerError,
                        HFault::TooManyRequests {
                            retry_after_secs: 0,
                        },
                        HFault::Unavailable,
                    ][*kind as usize];
                    self.h.inject(f, n);
                }
            }
            Op::AfterApply {
                google,
                on,
                kind,
                crash_after,
            } => {
                if *google {
                    let on = ["events.insert", "events.patch", "writes"][*on as usize];
                    let f = [
                        GFault::ServerError,
                        GFault::TooManyRequests {
                            retry_after_secs: 0,
                        },
                        GFault::Disconnect,
                    ][*kind as usize];
                    self.g.inject_on(on, Phase::After, f, 1).unwrap();
                } else {
                    let on = ["create", "patch", "decline"][*on as usize];
                    let f = [
                        HFault::ServerError,
                        HFault::TooManyRequests {
                            retry_after_secs: 0,
                        },
                        HFault::Disconnect,
                    ][*kind as usize];
                    self.h.inject_on(on, Phase::After, f, 1).unwrap();
                }
                if let Some(after) = crash_after {
                    let _ = self.cycle(Some(*after as i64)).await;
                }
            }
            Op::Invalidate { google } => {
                if *google {
                    self.g.invalidate_sync_tokens();
                } else {
                    self.h.invalidate_cursors();
                }
            }
            Op::Wipe => self.wipe().await,
            edit => World::edit(&self.g, &self.h, edit, &self.noise),
        }
    }

    /// A new process opens the store: sled from its files, PostgreSQL
    /// from the database (what was only buffered is gone with the old one).
    fn reopen(&mut self) {
        self.store = None;
        self.store = Some(match &self.pg {
            Some((_, pg, lease)) => Arc::new(pg.store("default", Some(lease.clone()))),
            None => Arc::new(reopen(self.dir.path())),
        });
    }

    /// The store is lost: sled's files removed, or the link's rows.
    async fn wipe(&mut self) {
        self.store = None;
        match &self.pg {
            Some((db, _, _)) => {
                for table in [
                    "records",
                    "cursors",
                    "intents",
                    "parked",
                    "conflicts",
                    "meta",
                    "work",
                    "pending_links",
                    "reports",
                ] {
                    db.query(&format!("DELETE FROM hitosync_{table}")).await;
                }
            }
            None => std::fs::remove_dir_all(self.dir.path().join("sled")).unwrap(),
        }
        self.reopen();
    }

    fn write_count(&self) -> u64 {
        let g = self.g.counters();
        let h = self.h.counters();
        ["events.insert", "events.patch"]
            .iter()
            .map(|k| g.get(*k).copied().unwrap_or(0))
            .sum::<u64>()
            + ["create", "patch", "decline"]
                .iter()
                .map(|k| h.get(*k).copied().unwrap_or(0))
                .sum::<u64>()
    }
}

fn is_booking(e: &Value) -> bool {
    e["summary"].as_str().is_some_and(|s| s.contains("HL:"))
}

fn event_slot(e: &Value) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let p = |k: &str| {
        e[k]["dateTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    (p("start"), p("end"))
}

/// SPEC invariants 1-8 (7 is tested elsewhere) on a quiet world.
async fn check(w: &World) -> Result<(), String> {
    let events = w.g.events(ORGANIZER);
    let records = w.h.interviews();
    let p = policy();
    // look-alikes the test made (copies, colleagues' invitations, series)
    let mut copies: HashSet<String> = w.noise.copies.lock().unwrap().iter().cloned().collect();
    copies.extend(w.noise.ids.lock().unwrap().iter().cloned());
    // 2. no duplicates: one event per interview, one interview per event
    // (a user's copy of an event is a look-alike, not hitosync's duplicate)
    let mut per_interview: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        if copies.contains(e["id"].as_str().unwrap_or("")) {
            continue;
        }
        if let Some(iid) = e["extendedProperties"]["private"]["hitolinkInterviewId"].as_str() {
            per_interview.entry(iid.to_string()).or_default().push(e);
        }
    }
    for (iid, evs) in &per_interview {
        if evs.len() > 1 {
            return Err(format!("{} events for {iid}", evs.len()));
        }
    }
    // (an admin may point interviews that have no event at any name; only
    // names of events that exist can be duplicates)
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        if let Some(e) = r
            .external_event_id
            .as_ref()
            .filter(|e| events.iter().any(|ev| ev["id"] == e.as_str()))
        {
            *per_event.entry(e.clone()).or_default() += 1;
        }
    }
    if let Some((e, n)) = per_event.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{n} interviews for event {e}"));
    }
    // every live booking made one interview (nothing lost); a marker on a
    // series or an all-day event books nothing
    for e in &events {
        let single_timed = e["recurrence"].as_array().is_none_or(|r| r.is_empty())
            && e["start"]["dateTime"].is_string()
            && e["recurringEventId"].is_null();
        if is_booking(e)
            && single_timed
            && e["organizer"]["email"]
                .as_str()
                .is_none_or(|o| o == ORGANIZER)
            && e["status"] != "cancelled"
            && !e["extendedProperties"]["private"]["hitolinkInterviewId"].is_string()
        {
            return Err(format!(
                "booking {} was never turned into an interview",
                e["id"]
            ));
        }
    }
    // 1. agreement, 8. no resurrection
    for r in &records {
        let iv = Interview::from_record(r).map_err(|e| e.to_string())?;
        let view = hitolink_view(&iv, &p);
        let ev = per_interview.get(iv.id.as_str()).map(|v| v[0]);
        match (view.cancelled, ev) {
            (true, None) => {}
            (true, Some(e)) if e["status"] == "cancelled" => {}
            (true, Some(e)) => {
                return Err(format!(
                    "{} is off in HITO-Link ({}) but its event {} is live",
                    iv.id, iv.status, e["id"]
                ));
            }
            (false, None) => return Err(format!("{} has no event", iv.id)),
            (false, Some(e)) => {
                if e["status"] == "cancelled" {
                    return Err(format!(
                        "{} is on in HITO-Link but its event is cancelled",
                        iv.id
                    ));
                }
                // a managed event stays a single timed event
                if e["recurrence"].as_array().is_some_and(|r| !r.is_empty())
                    || !e["start"]["dateTime"].is_string()
                {
                    return Err(format!(
                        "{}: its event is not a single timed event: {} {}",
                        iv.id, e["start"], e["recurrence"]
                    ));
                }
                // both halves of the link name each other
                if iv.external_event_id.as_deref() != e["id"].as_str() {
                    return Err(format!(
                        "{}: external_event_id is {:?}, its event is {}",
                        iv.id, iv.external_event_id, e["id"]
                    ));
                }
                let slot = iv.slot.unwrap();
                if event_slot(e) != (Some(slot.start), Some(slot.end)) {
                    return Err(format!(
                        "{}: time differs: {:?} vs {:?}",
                        iv.id,
                        slot,
                        event_slot(e)
                    ));
                }
                let loc = e["location"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                if loc != iv.location {
                    return Err(format!(
                        "{}: place differs: {loc:?} vs {:?}",
                        iv.id, iv.location
                    ));
                }
                let link = e["description"].as_str().and_then(parse_meeting_url);
                if link != iv.meeting_url {
                    return Err(format!(
                        "{}: link differs: {link:?} vs {:?}",
                        iv.id, iv.meeting_url
                    ));
                }
                for i in &iv.interviewers {
                    let a = e["attendees"]
                        .as_array()
                        .and_then(|a| a.iter().find(|a| a["email"] == i.email.as_str()));
                    let r = a
                        .and_then(|a| a["responseStatus"].as_str())
                        .and_then(Response::from_google);
                    if r != Some(i.response) {
                        return Err(format!(
                            "{}: {} answered {:?} in HITO-Link, {:?} in the calendar",
                            iv.id, i.email, i.response, r
                        ));
                    }
                }
            }
        }
    }
    // nothing parked, no unfinished write
    let store = w.store.as_ref().unwrap();
    let parked = store.parked().await.map_err(|e| e.to_string())?;
    if !parked.is_empty() {
        return Err(format!("parked after the quiet period: {parked:?}"));
    }
    if !store.intents().await.map_err(|e| e.to_string())?.is_empty() {
        return Err("unfinished intents after the quiet period".into());
    }
    // 5. unmanaged events and look-alikes: no API write ever touched them
    let mut noise_ids = w.noise.ids.lock().unwrap().clone();
    noise_ids.extend(copies.iter().cloned());
    let noise: HashSet<&str> = noise_ids.iter().map(String::as_str).collect();
    for wr in w.g.writes() {
        if matches!(wr.method, "insert" | "patch" | "update" | "delete")
            && noise.contains(wr.event_id.as_str())
        {
            return Err(format!(
                "hitosync wrote to the unmanaged event {}",
                wr.event_id
            ));
        }
    }
    Ok(())
}

async fn history(ops: Vec<Op>) -> Result<(), String> {
    history_with(ops, false).await
}

async fn history_with(ops: Vec<Op>, concurrent: bool) -> Result<(), String> {
    history_on(ops, concurrent, false).await
}

async fn history_on(ops: Vec<Op>, concurrent: bool, postgres: bool) -> Result<(), String> {
    let mut w = World::new(postgres).await;
    w.concurrent = concurrent;
    for op in &ops {
        w.run(op).await;
    }
    // quiet: no more faults, parked records come due
    w.g.clear_faults();
    w.h.clear_faults();
    w.clock += Duration::days(1);
    for n in 0..2 {
        if let Some(Err(e)) = w.cycle(None).await {
            return Err(format!("quiet cycle {n} failed: {e}"));
        }
    }
    check(&w).await?;
    // 4. quiet is quiet
    let before = w.write_count();
    w.cycle(None).await;
    let after = w.write_count();
    if after != before {
        return Err(format!(
            "a quiet cycle wrote {} times; writes: {:?}",
            after - before,
            w.g.writes().iter().rev().take(3).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// Histories in all (`PROPTEST_CASES`, default 2,000).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Fewer histories on PostgreSQL, each in a database of its own.
fn pg_cases() -> u32 {
    std::env::var("PROPTEST_PG_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Runners side by side. A history spends about half its time waiting on
/// loopback HTTP and the store, so one runner per core leaves the cores
/// idle half the time (the test harness runs only as many tests at once
/// as there are cores); four keep two cores busy.
const RUNNERS: u32 = 4;

/// Runs `cases` random histories on [`RUNNERS`] threads, each a proptest
/// runner with its own random seed and its own shrinking, and fails with
/// every runner's minimal failing history.
fn histories(cases: u32, max_shrink_iters: u32, postgres: bool) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..RUNNERS)
            .map(|_| {
                scope.spawn(move || {
                    // built per thread: proptest's boxed strategies are not Sync
                    let strategy = (
                        prop::collection::vec(op(), 1..40),
                        prop::bool::weighted(0.2),
                    );
                    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
                        cases: cases.div_ceil(RUNNERS),
                        max_shrink_iters,
                        failure_persistence: None,
                        ..ProptestConfig::default()
                    });
                    runner
                        .run(&strategy, |(ops, concurrent)| {
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap();
                            let result = rt.block_on(history_on(ops, concurrent, postgres));
                            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
                            Ok(())
                        })
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        runners
            .into_iter()
            .filter_map(|r| match r.join() {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(failure),
                Err(_) => Some("a runner panicked (its message is above)".to_string()),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invariants_hold_under_random_histories() {
    histories(cases(), 2000, false);
}

#[test]
fn invariants_hold_under_random_histories_on_postgres() {
    if hitosync_testkit::pg::skip("invariants_hold_under_random_histories_on_postgres") {
        return;
    }
    histories(pg_cases(), 500, true);
}

/// The checker itself must be able to fail: a world where the sides
/// disagree, or a duplicate exists, is caught.
#[test]
fn the_checker_catches_disagreement_and_duplicates() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new(false).await;
        for op in [
            Op::HlCreate { app: 0, day: 1, hour: 10, scheduled: true, both: true },
            Op::HlCreate { app: 1, day: 2, hour: 11, scheduled: true, both: false },
            Op::GBooking { app: 1, day: 3, hour: 15 },
            Op::Cycle,
            Op::GMove { pick: 0, day: 4, hour: 9 },
            Op::HlDecline { pick: 1, candidate: false },
            Op::Cycle,
            Op::Cycle,
        ] {
            w.run(&op).await;
        }
        assert_eq!(check(&w).await, Ok(()));
        assert!(w.write_count() >= 6, "the history wrote too little: {}", w.write_count());
        assert_eq!(w.managed_events().len(), 3);
        assert_eq!(w.interviews().len(), 3);
        // a calendar edit nobody synced yet is a disagreement
        let ev = w.managed_events()[0]["id"].as_str().unwrap().to_string();
        w.g.ui_edit(ORGANIZER, &ev, json!({"location": "どこか"})).unwrap();
        assert!(check(&w).await.unwrap_err().contains("place differs"));
        w.cycle(None).await;
        assert_eq!(check(&w).await, Ok(()));
        // a second event claiming the same interview is a duplicate
        let iid = w.interviews()[0].clone();
        w.g.ui_create(
            ORGANIZER,
            json!({"summary": "dup", "start": {"dateTime": "2026-12-05T10:00:00+09:00"}, "end": {"dateTime": "2026-12-05T11:00:00+09:00"},
                   "extendedProperties": {"private": {"hitolinkInterviewId": iid}}}),
        )
        .unwrap();
        assert!(check(&w).await.unwrap_err().contains("events for"));
    });
}

/// Found by the property test: a booking whose interview was created and
/// whose event was stamped by two crashed cycles, then deleted in
/// HITO-Link. An orphan decision once erased the mapping, and the event
/// outlived its interview.
#[test]
fn regression_booking_crashes_then_delete() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ops = vec![
        Op::GBooking {
            app: 0,
            day: 1,
            hour: 9,
        },
        Op::Race {
            after: 0,
            edit: Box::new(Op::HlMove {
                pick: 0,
                day: 1,
                hour: 9,
            }),
        },
        Op::HlCreate {
            app: 0,
            day: 1,
            hour: 9,
            scheduled: true,
            both: false,
        },
        Op::GMove {
            pick: 0,
            day: 1,
            hour: 9,
        },
        Op::GBooking {
            app: 0,
            day: 1,
            hour: 9,
        },
        Op::Crash { after: 8 },
        Op::Crash { after: 6 },
        Op::Cycle,
        Op::HlDelete { pick: 164 },
    ];
    assert_eq!(rt.block_on(history(ops)), Ok(()));
}

/// Found by the property test: an interviewer's answer set back to
/// needsAction in the calendar (as Google does when a time changes) was
/// read as no news, and the event kept showing it while both sides had
/// agreed on "accepted". The event is now put right, once.
#[test]
fn regression_an_answer_reset_to_needs_action_is_put_right() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = |response| Op::GReply {
        pick: 0,
        candidate: false,
        response,
    };
    let ops = vec![
        Op::HlCreate {
            app: 0,
            day: 1,
            hour: 9,
            scheduled: true,
            both: false,
        },
        Op::Cycle,
        reply(1),
        Op::Cycle,
        reply(0),
    ];
    assert_eq!(rt.block_on(history(ops)), Ok(()));
}

/// Found by the property test: an interviewer declined in HITO-Link, the
/// calendar showed it, then the answer went back to needsAction in the
/// calendar while HITO-Link stayed quiet. The event kept showing the wrong
/// answer, because a plan made without the HITO-Link record did not set
/// attendees right.
#[test]
fn regression_a_reset_answer_is_put_right_without_the_record() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ops = vec![
        Op::HlCreate {
            app: 0,
            day: 1,
            hour: 9,
            scheduled: true,
            both: false,
        },
        Op::HlDecline {
            pick: 0,
            candidate: false,
        },
        Op::Cycle,
        Op::Cycle,
        Op::GReply {
            pick: 0,
            candidate: false,
            response: 0,
        },
    ];
    assert_eq!(rt.block_on(history(ops)), Ok(()));
}

/// Found by the property test (CI, December 2026): four lookalike
/// interviews, one event made all-day in the calendar, one interview
/// deleted, the store wiped, and an event moved while a cycle ran.
#[test]
fn regression_lookalikes_a_wipe_and_a_raced_move() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let create = |scheduled| Op::HlCreate {
        app: 0,
        day: 1,
        hour: 9,
        scheduled,
        both: false,
    };
    let ops = vec![
        create(true),
        create(true),
        create(true),
        create(true),
        Op::Cycle,
        Op::GReshape {
            pick: 101,
            recurring: false,
        },
        Op::Cycle,
        Op::HlDelete { pick: 57 },
        Op::Wipe,
        Op::Race {
            after: 1,
            edit: Box::new(Op::GMove {
                pick: 237,
                day: 1,
                hour: 9,
            }),
        },
        create(false),
    ];
    assert_eq!(rt.block_on(history_with(ops, false)), Ok(()));
}
