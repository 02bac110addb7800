//! The in-process world of the idle-cycle and changes tables: both
//! emulators on loopback, the real clients and the real engine in this
//! process. Stores are filled with the clients' limits lifted (setup, not a
//! measurement); every measured cycle then goes over HTTP as in production,
//! and request counts are the emulators' own counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;

use hitosync_config::SyncConfig;
use hitosync_emulator::google::{self as gemu, GoogleEmulator};
use hitosync_emulator::hitolink::{self as hemu, HitolinkEmulator, Seed};
use hitosync_engine::{CalendarApi, CycleOptions, CycleReport, Engine, HitolinkApi};
use hitosync_google::{CalendarClient, ClientOptions, ServiceAccount};
use hitosync_hitolink::HitolinkClient;
use hitosync_net::retry::Backoff;
use hitosync_state::Store;

pub(super) const ORGANIZER: &str = "recruit@example.co.jp";
pub(super) const SA: &str = "hitosync-bench@hitosync-bench.iam.gserviceaccount.com";
pub(super) const TOKEN: &str = "bench-token";
pub(super) const KEY: &[u8] = include_bytes!("../../tests/fixtures/google-legacy.p12");

/// CPU seconds (user + system) of this process, from /proc.
pub(super) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the ")" of the command name: utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process in MiB (VmHWM).
pub(super) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(super) fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

pub(super) struct World {
    pub(super) g: Arc<GoogleEmulator>,
    pub(super) h: Arc<HitolinkEmulator>,
    pub(super) calendar: CalendarClient,
    pub(super) hitolink: HitolinkClient,
    pub(super) dir: tempfile::TempDir,
    pub(super) state: std::path::PathBuf,
    pub(super) store: Store,
    /// Where the emulators listen.
    pub(super) google_addr: std::net::SocketAddr,
    pub(super) hitolink_addr: std::net::SocketAddr,
}

pub(super) fn seed() -> Seed {
    serde_json::from_value(json!({
        "applications": [
            {"id": "ap_1", "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"}, "job": {"id": "jb_1", "name": "営業"}},
            {"id": "ap_2", "candidate": {"id": "cd_2", "display_name": "佐藤 花子", "email": "hanako@example.com"}, "job": {"id": "jb_2", "name": "開発"}}
        ],
        "users": [{"id": "us_1", "name": "鈴木 一郎", "email": "suzuki@example.co.jp"}],
        "selection_steps": [{"id": "st_1", "name": "一次面接"}]
    }))
    .unwrap_or_default()
}

impl World {
    pub(super) async fn new(google_rpm: u32) -> anyhow::Result<World> {
        // tmpfs when there is one: filling 100,000 records flushes sled
        // 200,000 times, which a disk turns into minutes of setup
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)?
        } else {
            tempfile::tempdir()?
        };
        let key = dir.path().join("key.p12");
        std::fs::write(&key, KEY)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        }
        let auth = gemu::setup_from_p12(SA, &[ORGANIZER.to_string()], &key, "notasecret")?;
        let g = Arc::new(GoogleEmulator::new(auth));
        let h = Arc::new(HitolinkEmulator::new(TOKEN, seed()));
        h.set_rate_limit(None);
        let lo = "127.0.0.1:0".parse()?;
        let (ga, _) = gemu::spawn(g.clone(), lo).await?;
        let (ha, _) = hemu::spawn(h.clone(), lo).await?;
        let der = hitosync_google::auth::p12_private_key(&key, KEY, "notasecret")?;
        let account = ServiceAccount::from_pkcs8(&key, &der, SA)?;
        let calendar = CalendarClient::new(
            &account,
            ClientOptions {
                api_base_url: format!("http://{ga}/calendar/v3/"),
                token_uri: format!("http://{ga}/token"),
                organizer: ORGANIZER.into(),
                calendar_id: "primary".into(),
                max_requests_per_minute: google_rpm,
                backoff: Backoff::default(),
                page_size: 2500,
            },
        )
        .await?;
        let hitolink = HitolinkClient::new(
            format!("http://{ha}/").parse()?,
            SecretString::from(TOKEN.to_string()),
            1_000_000,
            Backoff::default(),
        );
        let state = dir.path().join("state");
        let store = Store::open(&state)?;
        Ok(World {
            g,
            h,
            calendar,
            hitolink,
            dir,
            state,
            store,
            google_addr: ga,
            hitolink_addr: ha,
        })
    }

    pub(super) fn add_interviews(&self, n: usize, offset: usize) -> anyhow::Result<()> {
        for i in offset..offset + n {
            let day = 1 + (i / 9) % 28;
            let hour = 9 + i % 9;
            self.h
                .admin_create(&json!({
                    "application_id": if i % 2 == 0 { "ap_1" } else { "ap_2" },
                    "start": format!("2026-12-{day:02}T{hour:02}:00:00+09:00"),
                    "end": format!("2026-12-{day:02}T{hour:02}:45:00+09:00"),
                    "interviewers": ["suzuki@example.co.jp"],
                }))
                .map_err(|e| anyhow::anyhow!("seeding: {}", e.body))?;
        }
        Ok(())
    }

    fn engine<'a>(&'a self, cal: &'a dyn CalendarApi, hl: &'a dyn HitolinkApi) -> Engine<'a> {
        Engine {
            calendar: cal,
            hitolink: hl,
            store: &self.store,
            policy: SyncConfig::default().policy(ORGANIZER),
            max_deletions: u32::MAX,
            hitolink_page_size: 500,
            stop: None,
        }
    }

    /// Fills store and calendar over HTTP with the client limits lifted
    /// (setup, not a measurement), then settles the echoes.
    pub(super) async fn import_in_process(&self) -> anyhow::Result<()> {
        let e = self.engine(&self.calendar, &self.hitolink);
        let opts = CycleOptions {
            write_back_budget: None,
            ..Default::default()
        };
        e.cycle(&opts).await?;
        e.cycle(&opts).await?;
        Ok(())
    }

    fn reset(&self) {
        self.g.reset_counters();
        self.h.reset_counters();
    }

    fn requests(&self) -> (u64, u64, u64) {
        let g = self.g.counters();
        let h = self.h.counters();
        let g_total: u64 = g
            .iter()
            .filter(|(k, _)| k.starts_with("events."))
            .map(|(_, v)| v)
            .sum();
        let h_total: u64 = h
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "faults" | "rate_limited"))
            .map(|(_, v)| v)
            .sum();
        let writes = ["events.insert", "events.patch"]
            .iter()
            .map(|k| g.get(*k).copied().unwrap_or(0))
            .sum::<u64>()
            + ["create", "patch", "decline"]
                .iter()
                .map(|k| h.get(*k).copied().unwrap_or(0))
                .sum::<u64>();
        (g_total, h_total, writes)
    }

    /// One cycle over HTTP, measured.
    pub(super) async fn measured(
        &self,
        full: bool,
    ) -> anyhow::Result<(CycleReport, Duration, f64, (u64, u64, u64))> {
        self.reset();
        let e = self.engine(&self.calendar, &self.hitolink);
        let cpu = cpu_seconds();
        let t = Instant::now();
        let r = e
            .cycle(&CycleOptions {
                full,
                ..Default::default()
            })
            .await?;
        Ok((r, t.elapsed(), cpu_seconds() - cpu, self.requests()))
    }
}
