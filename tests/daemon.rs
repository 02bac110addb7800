//! `hitosync run`, the real binary, against both emulators: signals, the
//! control socket, config reloads, systemd notifications, and a shutdown
//! in the middle of an import (metrics: tests/metrics.rs).

use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, NEVER, NotifySocket, eventually};
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn signals_socket_reload_and_notify() {
    let env = Env::start_full(NEVER, "").await;
    // read all along, as systemd does
    let notify = NotifySocket::bind(env.dir.path(), true);
    let mut d = Daemon::start(
        &env,
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    )
    .await;
    // READY and WATCHDOG reach the notify socket
    notify.wait_for("READY=1").await;
    notify.wait_for("WATCHDOG=1").await;

    // SIGUSR1 runs a cycle
    let id = env.schedule("ap_1", 1, 10);
    d.signal(10);
    eventually("the event", || env.events().len() == 1).await;
    d.wait_log("trigger=\"SIGUSR1\"").await;

    // status answers through the socket while the daemon holds the store
    let (code, out, err) = env.run(&["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mapped interviews: 1"), "{out}");
    let (code, out, _) = env.run(&["inspect", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains("CreateEvent"), "{out}");
    // so does sync, run by the daemon's loop
    env.hitolink
        .emu
        .admin_edit(&id, &json!({"location": "本社 9F"}))
        .unwrap();
    let (code, out, _) = env.run(&["sync"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 applied"), "{out}");
    assert_eq!(env.event_of(&id)["location"], "本社 9F");

    // SIGUSR2: a full resync
    d.signal(12);
    d.wait_log("trigger=\"SIGUSR2\"").await;
    d.wait_log("cycle done").await;
    let (_, out, _) = env.run(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["last_cycle"]["full_google"], true, "{out}");
    assert_eq!(v["last_cycle"]["full_hitolink"], true);
    assert_eq!(v["mapped_interviews"], 1);

    // SIGHUP with a broken config: refused, the daemon carries on
    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        good.replace("[sync]", "")
            .replace("organizer_email", "organiser_email"),
    )
    .unwrap();
    d.signal(1);
    d.wait_log("config reload refused").await;
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon died on a bad config"
    );
    // an edited, valid file is picked up without a signal
    std::fs::write(
        &env.config,
        format!("{good}\n[sync]\nbooking_marker = \"予約:\"\n"),
    )
    .unwrap();
    d.wait_log("config reloaded").await;
    let (code, out, _) = env.run(&["status"]).await;
    assert_eq!(code, 0, "{out}");

    assert_eq!(d.stop().await, 0);
    assert!(
        !env.dir.path().join("control.sock").exists(),
        "socket left behind"
    );
}

#[tokio::test]
async fn sigterm_during_an_import_then_restart_makes_one_event_each() {
    let env = Env::start_full(NEVER, "").await;
    let ids: Vec<String> = (0..500)
        .map(|i| {
            env.schedule(
                if i % 2 == 0 { "ap_1" } else { "ap_2" },
                1 + (i % 28) as u32,
                9 + (i % 9) as u32,
            )
        })
        .collect();
    // slow the calendar a little so that the import is surely in flight
    env.google.emu.inject(
        hitosync_emulator::google::Fault::Latency { millis: 5 },
        100_000,
    );
    let d = Daemon::start(&env, &[]).await;
    d.signal(10);
    eventually("part of the import", || env.events().len() >= 30).await;
    let code = d.stop().await;
    assert_eq!(code, 0);
    let made = env.events().len();
    assert!(
        made < 500,
        "the import finished before SIGTERM ({made}); the test proves nothing"
    );
    env.google.emu.clear_faults();
    let mut d = Daemon::start(&env, &[]).await;
    d.signal(10);
    let deadline = Instant::now() + crate::common::daemon::HANG;
    while env.events().len() < 500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if env.events().len() < 500 {
        d.count("");
        panic!(
            "import not finished: {} events\n{}",
            env.events().len(),
            d.seen.join("\n")
        );
    }
    d.wait_log("cycle done").await;
    assert_eq!(d.count("cycle done"), 1);
    for id in &ids {
        env.event_of(id); // exactly one event each
    }
    assert_eq!(d.stop().await, 0);
}
