//! An import as users live it: the real `hitosync sync` in a process of its
//! own (so its memory is its own), again and again as the daemon's cycles
//! would run, against both emulators held to production request rates, time
//! scaled. This process watches the calendar and HITO-Link fill up and
//! notes when the next week's interviews are all on the calendar, when every
//! event exists, and when every interview names its event.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Timelike, Utc};
use serde_json::json;

use super::world::{ORGANIZER, SA, TOKEN, World};
use hitosync_core::reconcile::derived_event_id;

/// What one import came to.
#[derive(Debug, Default)]
pub(super) struct Import {
    pub interviews: usize,
    /// Of them, those that start within the next seven days.
    pub next_week: usize,
    /// Seconds (real) until each milestone; `None`: not reached.
    pub next_week_on_calendar: Option<f64>,
    pub all_events: Option<f64>,
    pub all_linked: Option<f64>,
    pub google_requests: u64,
    pub hitolink_requests: u64,
    /// Requests until `all_events` (Google) and `all_linked` (HITO-Link).
    pub google_until_events: u64,
    pub hitolink_until_linked: u64,
    pub google_rate_limited: u64,
    pub hitolink_rate_limited: u64,
    /// Peak RSS of the `hitosync` processes, MiB, and how many ran.
    pub peak_rss_mib: f64,
    pub cycles: usize,
    /// The cycle after the import: peak RSS, MiB.
    pub after_rss_mib: Option<f64>,
    pub cpu_seconds: f64,
}

/// The limits the import is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// `google.max_requests_per_minute` and `hitolink.max_requests_per_minute`.
    pub google_rpm: u32,
    pub hitolink_rpm: u32,
    /// The servers' own: Google's per-user quota, HITO-Link's per token.
    pub google_quota: u32,
    pub hitolink_quota: u32,
    /// How many times faster than real time a minute runs.
    pub scale: f64,
}

/// Peak RSS (VmHWM) and CPU seconds of a running process, from /proc.
fn watch(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())?
        / 1024.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some((hwm, (ticks(11) + ticks(12)) / 100.0))
}

fn config(w: &World, limits: Limits) -> anyhow::Result<PathBuf> {
    let dir = w.dir.path();
    let token = dir.join("hitolink.token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    }
    let path = dir.join("hitosync.toml");
    std::fs::write(
        &path,
        format!(
            r#"[google]
service_account_email = "{SA}"
p12_key_file = "{key}"
organizer_email = "{ORGANIZER}"
api_base_url = "http://{g}/calendar/v3/"
token_uri = "http://{g}/token"
max_requests_per_minute = {grpm}
[hitolink]
base_url = "http://{h}/"
api_token_file = "{token}"
max_requests_per_minute = {hrpm}
[daemon]
state_dir = "{state}"
control_socket = "{sock}"
cycle_deadline_secs = 86400
"#,
            key = dir.join("key.p12").display(),
            g = w.google_addr,
            h = w.hitolink_addr,
            grpm = (limits.google_rpm as f64 * limits.scale).round() as u64,
            hrpm = (limits.hitolink_rpm as f64 * limits.scale).round() as u64,
            token = token.display(),
            state = dir.join("import-state").display(),
            sock = dir.join("control.sock").display(),
        ),
    )?;
    Ok(path)
}

/// `n` interviews from tomorrow on, about 71 a day, so that about 500 fall
/// in the next seven days (the figure the SPEC's target names). Returns the
/// derived event IDs of those in the next seven days.
fn schedule(w: &World, n: usize) -> anyhow::Result<HashSet<String>> {
    let tomorrow = (Utc::now() + Days::days(1))
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .unwrap_or_else(Utc::now);
    let week = Utc::now() + Days::days(7);
    let mut soon = HashSet::new();
    for i in 0..n {
        let start = tomorrow + Days::days((i / 71) as i64) + Days::minutes(((i % 71) * 8) as i64);
        let end = start + Days::minutes(45);
        let r =
            w.h.admin_create(&json!({
                "application_id": if i % 2 == 0 { "ap_1" } else { "ap_2" },
                "start": start.to_rfc3339(),
                "end": end.to_rfc3339(),
                "interviewers": ["suzuki@example.co.jp"],
            }))
            .map_err(|e| anyhow::anyhow!("seeding: {}", e.body))?;
        if start < week {
            if let Some(id) = r.body["id"].as_str() {
                soon.insert(derived_event_id(id).into_string());
            }
        }
    }
    Ok(soon)
}

fn counted(map: &std::collections::BTreeMap<String, u64>, skip: &[&str]) -> u64 {
    map.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && !k.starts_with("faults"))
        .map(|(_, v)| v)
        .sum()
}

/// Runs `hitosync sync` until every interview is on the calendar and names
/// its event (or `give_up` passes), watching the milestones.
pub(super) async fn run(
    n: usize,
    limits: Limits,
    give_up: Duration,
    after: bool,
) -> anyhow::Result<Import> {
    let w = World::new(1_000_000).await?;
    let soon = schedule(&w, n)?;
    w.g.set_quota(Some(limits.google_quota), limits.scale);
    w.h.set_rate_limit(Some(
        (limits.hitolink_quota as f64 * limits.scale).round() as u32
    ));
    w.g.reset_counters();
    w.h.reset_counters();
    let cfg = config(&w, limits)?;
    let mut out = Import {
        interviews: n,
        next_week: soon.len(),
        ..Default::default()
    };
    let google = |w: &World| counted(&w.g.counters(), &["token", "rate_limited"]);
    let hitolink = |w: &World| counted(&w.h.counters(), &["rate_limited"]);
    let started = Instant::now();
    let mut pending_soon = soon;
    while out.all_linked.is_none() && started.elapsed() < give_up {
        let (rss, cpu) = sync_once(&cfg, |_| {
            let t = started.elapsed().as_secs_f64();
            if out.next_week_on_calendar.is_none() {
                pending_soon.retain(|id| !w.g.has_live_event(ORGANIZER, id));
                if pending_soon.is_empty() {
                    out.next_week_on_calendar = Some(t);
                }
            }
            if out.all_events.is_none() && w.g.event_count(ORGANIZER) >= n {
                out.all_events = Some(t);
                out.google_until_events = google(&w);
            }
            if out.all_linked.is_none() && w.h.linked_count() >= n {
                out.all_linked = Some(t);
                out.hitolink_until_linked = hitolink(&w);
            }
        })
        .await?;
        out.cycles += 1;
        out.peak_rss_mib = out.peak_rss_mib.max(rss);
        out.cpu_seconds += cpu;
    }
    out.google_requests = google(&w);
    out.hitolink_requests = hitolink(&w);
    let limited =
        |m: std::collections::BTreeMap<String, u64>| m.get("rate_limited").copied().unwrap_or(0);
    out.google_rate_limited = limited(w.g.counters());
    out.hitolink_rate_limited = limited(w.h.counters());
    if after {
        // the cycle after the import reads back the echoes of its writes
        let (rss, _) = sync_once(&cfg, |_| {}).await?;
        out.after_rss_mib = Some(rss);
    }
    Ok(out)
}

/// One `hitosync sync`, watched every 100 ms; its peak RSS and CPU.
async fn sync_once(cfg: &Path, mut tick: impl FnMut(f64)) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["--log-format", "text", "sync", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let (mut rss, mut cpu) = (0.0f64, 0.0f64);
    loop {
        if let Some((r, c)) = watch(pid) {
            rss = rss.max(r);
            cpu = cpu.max(c);
        }
        tick(rss);
        tokio::select! {
            status = child.wait() => {
                status?;
                tick(rss);
                return Ok((rss, cpu));
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
