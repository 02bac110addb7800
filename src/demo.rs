//! `hitosync demo`: both emulators and the daemon in one process, on
//! loopback, with a week of Japanese hiring. It acts out what recruiters,
//! candidates and interviewers do, waits for each change to reach the other
//! side, and prints when it did. No credentials: the service account's key
//! is the throwaway test key that only the emulator trusts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use hitosync_emulator::google::{self as gemu, GoogleEmulator};
use hitosync_emulator::hitolink::{self as hemu, HitolinkEmulator, Seed};

/// A throwaway key made for tests and this demo (Google's legacy P12
/// format, password `notasecret`). Nothing but the emulator trusts it.
const DEMO_KEY: &[u8] = include_bytes!("../tests/fixtures/google-legacy.p12");
const SERVICE_ACCOUNT: &str = "hitosync-demo@hitosync-demo.iam.gserviceaccount.com";
const ORGANIZER: &str = "recruit@example.co.jp";
const TOKEN: &str = "demo-hitolink-token";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error("step {step:?} did not show on the other side within {secs} s")]
    Timeout { step: String, secs: u64 },
    #[error("the daemon failed: {0}")]
    Daemon(String),
}

fn seed() -> Seed {
    let v = json!({
        "applications": [
            {"id": "ap_101", "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro.yamada@example.com"}, "job": {"id": "jb_1", "name": "カスタマーサクセス"}},
            {"id": "ap_102", "candidate": {"id": "cd_2", "display_name": "佐藤 花子", "email": "hanako.sato@example.com"}, "job": {"id": "jb_2", "name": "バックエンドエンジニア"}},
            {"id": "ap_103", "candidate": {"id": "cd_3", "display_name": "田中 健", "email": "ken.tanaka@example.com"}, "job": {"id": "jb_2", "name": "バックエンドエンジニア"}},
            {"id": "ap_104", "candidate": {"id": "cd_4", "display_name": "伊藤 美咲", "email": "misaki.ito@example.com"}, "job": {"id": "jb_3", "name": "人事企画"}},
            {"id": "ap_105", "candidate": {"id": "cd_5", "display_name": "渡辺 翔", "email": "sho.watanabe@example.com"}, "job": {"id": "jb_1", "name": "カスタマーサクセス"}}
        ],
        "users": [
            {"id": "us_1", "name": "鈴木 一郎", "email": "suzuki@example.co.jp"},
            {"id": "us_2", "name": "高橋 次郎", "email": "takahashi@example.co.jp"},
            {"id": "us_3", "name": "中村 さくら", "email": "nakamura@example.co.jp"}
        ],
        "selection_steps": [
            {"id": "st_1", "name": "一次面接"}, {"id": "st_2", "name": "二次面接"}, {"id": "st_3", "name": "最終面接"}
        ]
    });
    // A constant document of the right shape; a failure here is a bug in
    // this file, caught by the demo's test.
    serde_json::from_value(v).unwrap_or_default()
}

struct Demo {
    g: Arc<GoogleEmulator>,
    h: Arc<HitolinkEmulator>,
    started: Instant,
}

impl Demo {
    fn say(&self, text: &str) {
        println!("[{:5.1}s] {text}", self.started.elapsed().as_secs_f64());
    }

    /// Waits until `check` holds (the daemon syncs every second).
    async fn until(
        &self,
        step: &str,
        mut check: impl FnMut(&Demo) -> bool,
    ) -> Result<(), DemoError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(self) {
            if Instant::now() > deadline {
                return Err(DemoError::Timeout {
                    step: step.to_string(),
                    secs: 30,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn event_of(&self, interview_id: &str) -> Option<Value> {
        self.g
            .events(ORGANIZER)
            .into_iter()
            .find(|e| e["extendedProperties"]["private"]["hitolinkInterviewId"] == interview_id)
    }

    fn interview(&self, id: &str) -> Value {
        self.h.get(id).map(|a| a.body).unwrap_or(Value::Null)
    }

    fn create(
        &self,
        app: &str,
        step: &str,
        day: u32,
        hour: u32,
        interviewers: &[&str],
    ) -> Result<String, DemoError> {
        let body = json!({
            "application_id": app,
            "selection_step": {"id": step, "name": match step { "st_1" => "一次面接", "st_2" => "二次面接", _ => "最終面接" }},
            "start": format!("2026-12-{day:02}T{hour:02}:00:00+09:00"),
            "end": format!("2026-12-{day:02}T{hour:02}:45:00+09:00"),
            "interviewers": interviewers,
            "format": "online",
            "video_conferencing_url": format!("https://meet.example/{app}"),
        });
        let a = self
            .h
            .admin_create(&body)
            .map_err(|e| DemoError::Setup(e.body.to_string()))?;
        Ok(a.body["id"].as_str().unwrap_or_default().to_string())
    }
}

/// Runs the demo; with `keep_running`, stays up afterwards for poking at.
pub async fn run(keep_running: bool) -> Result<(), DemoError> {
    let dir = tempfile::tempdir().map_err(|e| DemoError::Setup(e.to_string()))?;
    let setup = |e: std::io::Error| DemoError::Setup(e.to_string());
    let key = dir.path().join("demo-key.p12");
    write_private(&key, DEMO_KEY).map_err(setup)?;
    let token = dir.path().join("hitolink.token");
    write_private(&token, format!("{TOKEN}\n").as_bytes()).map_err(setup)?;

    let auth = gemu::setup_from_p12(
        SERVICE_ACCOUNT,
        &[ORGANIZER.to_string()],
        &key,
        "notasecret",
    )
    .map_err(|e| DemoError::Setup(e.to_string()))?;
    let g = Arc::new(GoogleEmulator::new(auth));
    let h = Arc::new(HitolinkEmulator::new(TOKEN, seed()));
    let loopback = "127.0.0.1:0"
        .parse()
        .map_err(|_| DemoError::Setup("loopback address".into()))?;
    let (g_addr, _gt) = gemu::spawn(g.clone(), loopback).await.map_err(setup)?;
    let (h_addr, _ht) = hemu::spawn(h.clone(), loopback).await.map_err(setup)?;
    let config = dir.path().join("hitosync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[google]
service_account_email = "{SERVICE_ACCOUNT}"
p12_key_file = "demo-key.p12"
organizer_email = "{ORGANIZER}"
api_base_url = "http://{g_addr}/calendar/v3/"
token_uri = "http://{g_addr}/token"
[hitolink]
base_url = "http://{h_addr}/"
api_token_file = "hitolink.token"
[daemon]
state_dir = "state"
schedule = "* * * * * *"
full_resync_schedule = "0 30 3 * * *"
control_socket = "control.sock"
"#
        ),
    )
    .map_err(setup)?;

    let demo = Demo {
        g: g.clone(),
        h: h.clone(),
        started: Instant::now(),
    };
    // The recruiters' week before the daemon starts.
    let first = demo.create("ap_101", "st_1", 1, 10, &["suzuki@example.co.jp"])?;
    let second = demo.create(
        "ap_102",
        "st_2",
        1,
        14,
        &["takahashi@example.co.jp", "nakamura@example.co.jp"],
    )?;
    let third = demo.create("ap_103", "st_1", 2, 11, &["suzuki@example.co.jp"])?;

    println!("hitosync demo: both emulators on loopback, the daemon syncing every second");
    println!("  Google Calendar emulator: http://{g_addr}/calendar/v3/ (organizer {ORGANIZER})");
    println!("  HITO-Link emulator:       http://{h_addr}/v1/");
    println!("  config:                   {}", config.display());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon_config = config.clone();
    let daemon = tokio::spawn(async move {
        crate::daemon::run_until(&daemon_config, async {
            let _ = stop_rx.await;
        })
        .await
    });

    let result = scenario(&demo, &first, &second, &third).await;
    match &result {
        Ok(()) => {
            let mapped = h
                .interviews()
                .iter()
                .filter(|r| r.external_event_id.is_some())
                .count();
            println!("demo finished: {mapped} interviews and their events in step");
        }
        Err(e) => println!("demo failed: {e}"),
    }
    if keep_running && result.is_ok() {
        println!(
            "still running; try `hitosync status --config {}`. Ctrl-C stops.",
            config.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(());
    match daemon.await {
        Ok(Ok(())) => result,
        Ok(Err(e)) => Err(DemoError::Daemon(e.to_string())),
        Err(e) => Err(DemoError::Daemon(e.to_string())),
    }
}

async fn scenario(d: &Demo, first: &str, second: &str, third: &str) -> Result<(), DemoError> {
    d.until("the first import", |d| {
        [first, second, third]
            .iter()
            .all(|id| d.event_of(id).is_some())
    })
    .await?;
    let title = d
        .event_of(first)
        .map(|e| e["summary"].clone())
        .unwrap_or_default();
    d.say(&format!(
        "import: 3 interviews from HITO-Link are on the calendar, e.g. {title}"
    ));

    // 1. a recruiter schedules an interview in HITO-Link
    let fourth = d.create("ap_104", "st_3", 3, 16, &["nakamura@example.co.jp"])?;
    d.say("recruiter schedules 伊藤 美咲's 最終面接 in HITO-Link (12/3 16:00)");
    d.until("the new event", |d| d.event_of(&fourth).is_some())
        .await?;
    d.say("  -> event on the calendar; 中村 さくら and the candidate are invited");

    // 2. a recruiter moves one
    d.h.admin_edit(
        second,
        &json!({"start": "2026-12-01T16:00:00+09:00", "end": "2026-12-01T16:45:00+09:00"}),
    )
    .map_err(|e| DemoError::Setup(e.body.to_string()))?;
    d.say("recruiter moves 佐藤 花子's 二次面接 from 14:00 to 16:00 in HITO-Link");
    d.until("the move", |d| {
        let moved = d
            .event_of(second)
            .is_some_and(|e| e["start"]["dateTime"] == "2026-12-01T07:00:00Z");
        let ev_id = d
            .event_of(second)
            .map(|e| e["id"].clone())
            .unwrap_or_default();
        let notified = d.g.writes().iter().any(|w| {
            w.method == "patch" && ev_id == w.event_id.as_str() && w.send_updates == "all"
        });
        moved && notified
    })
    .await?;
    d.say("  -> the event moved; attendees were notified");

    // 3. a candidate declines in the calendar
    let ev = d
        .event_of(third)
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    d.g.guest_reply(ORGANIZER, &ev, "ken.tanaka@example.com", "declined")
        .map_err(|e| DemoError::Setup(e.body.to_string()))?;
    d.say("candidate 田中 健 declines the invitation in his calendar");
    d.until("the decline", |d| {
        d.interview(third)["status"] == "candidate_declined"
            && d.event_of(third)
                .is_some_and(|e| e["status"] == "cancelled")
    })
    .await?;
    d.say("  -> HITO-Link records 辞退 (candidate_declined); the event is cancelled");

    // 4. an interviewer moves a slot in the calendar
    let ev = d
        .event_of(first)
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    d.g.ui_edit(
        ORGANIZER,
        &ev,
        json!({"start": {"dateTime": "2026-12-01T11:00:00+09:00"}, "end": {"dateTime": "2026-12-01T11:45:00+09:00"}}),
    )
    .map_err(|e| DemoError::Setup(e.body.to_string()))?;
    d.say("interviewer moves 山田 太郎's 一次面接 to 11:00 in Google Calendar");
    d.until("the reschedule", |d| {
        d.interview(first)["start"] == "2026-12-01T11:00:00+09:00"
    })
    .await?;
    d.say("  -> HITO-Link shows the new time");

    // 5. a booking made in the calendar
    let booked =
        d.g.ui_create(
            ORGANIZER,
            json!({
                "summary": "一次面接 渡辺 翔さん HL:ap_105",
                "start": {"dateTime": "2026-12-04T13:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "end": {"dateTime": "2026-12-04T13:45:00+09:00", "timeZone": "Asia/Tokyo"},
                "attendees": [{"email": "takahashi@example.co.jp"}],
            }),
        )
        .map_err(|e| DemoError::Setup(e.body.to_string()))?;
    let booked_id = booked["id"].as_str().unwrap_or_default().to_string();
    d.say("recruiter books a slot in Google Calendar with the marker HL:ap_105");
    d.until("the booking", |d| {
        d.h.interviews()
            .iter()
            .any(|r| r.external_event_id.as_deref() == Some(booked_id.as_str()))
    })
    .await?;
    d.say("  -> HITO-Link has a new interview for 渡辺 翔, linked to the event");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
