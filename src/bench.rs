//! `hitosync bench`: what a cycle costs, measured with the real engine and
//! the real HTTP clients against the emulators over loopback.
//!
//! Stores are filled through the in-process ports (fast), then every
//! measured cycle goes through HTTP exactly as in production, so request
//! counts are the emulators' own counters and times include the network
//! stack. Figures are printed, never asserted: tests do not time things.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;

use crate::config::SyncConfig;
use crate::emulator::google::{self as gemu, GoogleEmulator};
use crate::emulator::hitolink::{self as hemu, HitolinkEmulator, Seed};
use crate::engine::{CalendarApi, CycleOptions, CycleReport, Engine, HitolinkApi};
use crate::google::{CalendarClient, ClientOptions, ServiceAccount};
use crate::hitolink::HitolinkClient;
use crate::retry::Backoff;
use crate::state::Store;

const ORGANIZER: &str = "recruit@example.co.jp";
const SA: &str = "hitosync-bench@hitosync-bench.iam.gserviceaccount.com";
const TOKEN: &str = "bench-token";
const KEY: &[u8] = include_bytes!("../tests/fixtures/google-legacy.p12");

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sizes: Vec<usize>,
    pub changes: Vec<usize>,
    pub changes_at: usize,
    pub import: usize,
    /// Google's per-user quota the import is held to.
    pub quota_per_minute: u32,
    /// How many times faster than real time the quota minute runs.
    pub time_scale: f64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            sizes: vec![100, 1_000, 10_000, 100_000],
            changes: vec![1, 10, 100, 1_000],
            changes_at: 10_000,
            import: 10_000,
            quota_per_minute: 600,
            time_scale: 20.0,
        }
    }
}

/// CPU seconds (user + system) of this process, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the ")" of the command name: utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn dir_size(path: &std::path::Path) -> u64 {
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

struct World {
    g: Arc<GoogleEmulator>,
    h: Arc<HitolinkEmulator>,
    calendar: CalendarClient,
    hitolink: HitolinkClient,
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
    store: Store,
}

fn seed() -> Seed {
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
    async fn new(google_rpm: u32) -> anyhow::Result<World> {
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
        let der = crate::google::auth::p12_private_key(&key, KEY, "notasecret")?;
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
            _dir: dir,
            state,
            store,
        })
    }

    fn add_interviews(&self, n: usize, offset: usize) -> anyhow::Result<()> {
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
    async fn import_in_process(&self) -> anyhow::Result<()> {
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
    async fn measured(
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

/// Runs the benchmark and prints its tables.
pub async fn run(o: &BenchOptions) -> anyhow::Result<()> {
    println!("hitosync bench: the real engine and HTTP clients against the emulators on loopback");
    println!("(CPU and RSS are this whole process's, emulators included; peak RSS only grows,");
    println!(" so the import runs first and its peak is its own)\n");
    let scaled_quota = (o.quota_per_minute as f64 * o.time_scale) as u32;
    let client_rpm = (500.0 * o.time_scale) as u32;
    println!(
        "3. import of {} new interviews, Google quota {}/min (time x{}: {}/min), client limit google.max_requests_per_minute = 500 (x{} = {}/min)",
        o.import, o.quota_per_minute, o.time_scale, scaled_quota, o.time_scale, client_rpm
    );
    let w = World::new(client_rpm).await?;
    w.add_interviews(o.import, 0)?;
    w.g.set_quota(Some(o.quota_per_minute), o.time_scale);
    // a token first, so the import's clock starts with the first write
    w.calendar.list_page(None, None).await?;
    let rss_before = peak_rss_mib();
    let (r, wall, cpu, (g, h, _)) = w.measured(false).await?;
    let limited = w.g.counters().get("rate_limited").copied().unwrap_or(0);
    let rate = g as f64 / wall.as_secs_f64() * 60.0 / o.time_scale;
    println!(
        "  {} applied in {:.1} s (x{} = {:.1} min real time); {} Google requests, {} HITO-Link requests",
        r.applied,
        wall.as_secs_f64(),
        o.time_scale,
        wall.as_secs_f64() * o.time_scale / 60.0,
        g,
        h
    );
    println!(
        "  achieved Google rate: {:.0} requests/min in quota time = {:.1}% of the {}/min quota, {:.1}% of the configured 500/min",
        rate,
        rate / o.quota_per_minute as f64 * 100.0,
        o.quota_per_minute,
        rate / 500.0 * 100.0
    );
    println!("  rate-limit errors answered by the emulator: {limited}");
    println!(
        "  CPU {:.1} s; peak RSS {:.1} MiB (before the import {:.1} MiB)",
        cpu,
        peak_rss_mib(),
        rss_before
    );
    println!(
        "\n1+4. idle cycle at N mapped interviews (hitosync: sync token + cursor; baseline: list everything and diff)"
    );
    println!(
        "{:>8} | {:>6} {:>6} {:>6} {:>9} {:>8} | {:>6} {:>6} {:>9} {:>8} | {:>9} {:>10} {:>10}",
        "N",
        "G req",
        "HL req",
        "writes",
        "wall ms",
        "CPU ms",
        "G req",
        "HL req",
        "wall ms",
        "CPU ms",
        "req ratio",
        "store MiB",
        "peak MiB"
    );
    for &n in &o.sizes {
        let w = World::new(1_000_000).await?;
        w.add_interviews(n, 0)?;
        w.import_in_process().await?;
        // one HTTP cycle to get the tokens of the real clients, then measure
        w.measured(false).await?;
        let (_, wall, cpu, (g, h, writes)) = w.measured(false).await?;
        let (_, bwall, bcpu, (bg, bh, _)) = w.measured(true).await?;
        // the full listing leaves fresh positions: settle so the store is as before
        w.measured(false).await?;
        println!(
            "{:>8} | {:>6} {:>6} {:>6} {:>9.1} {:>8.1} | {:>6} {:>6} {:>9.1} {:>8.1} | {:>9.0} {:>10.1} {:>10.1}",
            n,
            g,
            h,
            writes,
            wall.as_secs_f64() * 1000.0,
            cpu * 1000.0,
            bg,
            bh,
            bwall.as_secs_f64() * 1000.0,
            bcpu * 1000.0,
            (bg + bh) as f64 / (g + h).max(1) as f64,
            dir_size(&w.state) as f64 / 1_048_576.0,
            peak_rss_mib()
        );
    }

    println!("\n2. K changes in one cycle at N = {}", o.changes_at);
    println!(
        "{:>6} | {:>6} {:>6} {:>6} {:>9} {:>8}",
        "K", "G req", "HL req", "writes", "wall ms", "CPU ms"
    );
    let w = World::new(1_000_000).await?;
    w.add_interviews(o.changes_at, 0)?;
    w.import_in_process().await?;
    w.measured(false).await?;
    let ids: Vec<String> = w.h.interviews().into_iter().map(|r| r.id).collect();
    for &k in &o.changes {
        for id in ids.iter().take(k) {
            w.h.admin_edit(id, &json!({"location": format!("会議室{k}")}))
                .map_err(|e| anyhow::anyhow!("{}", e.body))?;
        }
        let (r, wall, cpu, (g, h, writes)) = w.measured(false).await?;
        println!(
            "{:>6} | {:>6} {:>6} {:>6} {:>9.1} {:>8.1}   ({} applied)",
            k,
            g,
            h,
            writes,
            wall.as_secs_f64() * 1000.0,
            cpu * 1000.0,
            r.applied
        );
        // the echo of our writes, so the next row starts quiet
        w.measured(false).await?;
    }

    Ok(())
}
