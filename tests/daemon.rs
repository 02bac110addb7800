//! `hitosync run`, the real binary, against both emulators: signals, the
//! control socket, config reloads, systemd notifications, and a shutdown
//! in the middle of an import (metrics: tests/metrics.rs).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A schedule that never fires during a test: cycles come from signals.
const NEVER: &str = "schedule = \"0 0 0 1 1 *\"\nfull_resync_schedule = \"0 0 0 1 1 *\"";

struct Daemon {
    child: Child,
    logs: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    async fn start(env: &Env, envs: &[(&str, &str)]) -> Daemon {
        // systemd names the watched process in WATCHDOG_PID; a shell that
        // execs the daemon knows its pid in advance.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
            .arg(env!("CARGO_BIN_EXE_hitosync"))
            .arg(&env.config)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        let mut d = Daemon {
            child,
            logs,
            seen: vec![],
        };
        d.wait_log("daemon started").await;
        d
    }

    /// Waits for a log line containing `text` (10 s at most).
    async fn wait_log(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.logs.recv()).await {
                Ok(Some(l)) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                _ => panic!("no log line with {text:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn count(&mut self, text: &str) -> usize {
        while let Ok(l) = self.logs.try_recv() {
            self.seen.push(l);
        }
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.id().unwrap() as i32;
        // SAFETY-free: kill(1) as a process, no unsafe code needed
        std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
    }

    async fn stop(mut self) -> i32 {
        self.signal(15);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn signals_socket_reload_and_notify() {
    let env = Env::start_full(NEVER, "").await;
    let notify_path = env.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut d = Daemon::start(
        &env,
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    )
    .await;
    // READY and WATCHDOG reach the notify socket
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !(got.contains("READY=1") && got.contains("WATCHDOG=1")) {
        let n = notify
            .recv(&mut buf)
            .expect("no notification from the daemon");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        got.push('\n');
    }
    // Go on reading, as systemd does: the daemon sends a watchdog ping every
    // 100 ms with a blocking send, and a socket nobody reads holds only 10
    // datagrams (net.unix.max_dgram_qlen), so the daemon would stall about
    // a second from now and the test pass or hang by its speed.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let _ = notify.recv(&mut buf);
        }
    });

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
        hitosync::emulator::google::Fault::Latency { millis: 5 },
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
    let deadline = Instant::now() + Duration::from_secs(60);
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
