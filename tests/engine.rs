//! The engine in-process against the emulators' state machines: the cost
//! of an idle cycle at 10 and 10,000 mapped interviews, and secrets.

mod common;

use common::{HITOLINK_TOKEN, ORGANIZER};
use hitosync::config::SyncConfig;
use hitosync::emulator::google::GoogleEmulator;
use hitosync::emulator::hitolink::HitolinkEmulator;
use hitosync::emulator::inprocess::{InProcessGoogle, InProcessHitolink};
use hitosync::engine::{CycleOptions, Engine};
use hitosync::state::Store;
use serde_json::json;

fn writes(g: &GoogleEmulator, h: &HitolinkEmulator) -> u64 {
    let gc = g.counters();
    let hc = h.counters();
    ["events.insert", "events.patch"]
        .iter()
        .map(|k| gc.get(*k).copied().unwrap_or(0))
        .sum::<u64>()
        + ["create", "patch", "decline"]
            .iter()
            .map(|k| hc.get(*k).copied().unwrap_or(0))
            .sum::<u64>()
}

/// Imports `n` interviews, then measures one idle cycle.
async fn idle_cycle_after_import(n: usize) {
    let (g, h) = common::in_process_emulators();
    for i in 0..n {
        let day = 1 + (i / 9) % 28;
        let hour = 9 + i % 9;
        h.admin_create(&json!({
            "application_id": if i % 2 == 0 { "ap_1" } else { "ap_2" },
            "start": format!("2026-12-{day:02}T{hour:02}:00:00+09:00"),
            "end": format!("2026-12-{day:02}T{hour:02}:45:00+09:00"),
            "interviewers": ["suzuki@example.co.jp"],
        }))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cal = InProcessGoogle::new(g.clone(), ORGANIZER).with_page_size(2500);
    let hl = InProcessHitolink::new(h.clone(), HITOLINK_TOKEN);
    let engine = Engine {
        calendar: &cal,
        hitolink: &hl,
        store: &store,
        policy: SyncConfig::default().policy(ORGANIZER),
        max_deletions: 20,
        hitolink_page_size: 500,
        stop: None,
    };
    let opts = CycleOptions::default();
    let first = engine.cycle(&opts).await.unwrap();
    assert_eq!(first.applied, n);
    assert_eq!(store.record_count(), n);
    // the echo of the import
    engine.cycle(&opts).await.unwrap();
    g.reset_counters();
    h.reset_counters();
    let idle = engine.cycle(&opts).await.unwrap();
    let gc = g.counters();
    let hc = h.counters();
    assert_eq!(gc.get("events.list"), Some(&1), "{gc:?}");
    assert_eq!(hc.get("changes"), Some(&1), "{hc:?}");
    assert_eq!(
        gc.values().sum::<u64>(),
        1,
        "one request on the calendar side: {gc:?}"
    );
    assert_eq!(
        hc.values().sum::<u64>(),
        1,
        "one request on the HITO-Link side: {hc:?}"
    );
    assert_eq!(writes(&g, &h), 0);
    assert_eq!(
        (idle.google_changes, idle.hitolink_changes, idle.decisions),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn idle_cycle_with_10_mapped_is_one_list_per_side() {
    idle_cycle_after_import(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_cycle_with_10000_mapped_is_one_list_per_side() {
    idle_cycle_after_import(10_000).await;
}
