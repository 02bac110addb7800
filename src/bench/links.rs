//! Many links on one daemon (`hitosync bench --links N`): one Calendar
//! emulator with an organizer per link, one HITO-Link emulator (tenant) per
//! link, each seeded with the same number of interviews, and the real
//! `hitosync run` in a process of its own serving every link. After the
//! import settles, idle cycles are measured: requests per link per cycle
//! (the emulators' counters), the daemon's CPU per link per cycle and its
//! memory (/proc). With `--postgres-url`, the same on PostgreSQL, then the
//! time for a second replica to take over the links of a killed one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::world::{KEY, SA, TOKEN, seed};
use hitosync_config::{Backend, StateConfig};
use hitosync_emulator::google::{self as gemu, GoogleEmulator};
use hitosync_emulator::hitolink::{self as hemu, HitolinkEmulator};
use hitosync_state_postgres::PgState;

/// Idle cycles run every this many seconds while measured.
const PERIOD_S: u64 = 5;
/// Idle cycles measured per link.
const IDLE_CYCLES: u64 = 4;

fn organizer(i: usize) -> String {
    format!("recruit{i}@example.co.jp")
}

struct Tenants {
    g: Arc<GoogleEmulator>,
    google_addr: std::net::SocketAddr,
    hs: Vec<(Arc<HitolinkEmulator>, std::net::SocketAddr)>,
    dir: tempfile::TempDir,
    /// In the links' names, so that a run on a database used before does
    /// not meet the state of an earlier one.
    tag: String,
}

impl Tenants {
    async fn start(links: usize, per_link: usize) -> anyhow::Result<Tenants> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)?
        } else {
            tempfile::tempdir()?
        };
        let key = dir.path().join("key.p12");
        write_private(&key, KEY)?;
        write_private(
            &dir.path().join("hitolink.token"),
            format!("{TOKEN}\n").as_bytes(),
        )?;
        let organizers: Vec<String> = (0..links).map(organizer).collect();
        let auth = gemu::setup_from_p12(SA, &organizers, &key, "notasecret")?;
        let g = Arc::new(GoogleEmulator::new(auth));
        let lo = "127.0.0.1:0".parse()?;
        let (google_addr, _) = gemu::spawn(g.clone(), lo).await?;
        let mut hs = vec![];
        for _ in 0..links {
            let h = Arc::new(HitolinkEmulator::new(TOKEN, seed()));
            h.set_rate_limit(None);
            for i in 0..per_link {
                let day = 1 + (i / 9) % 28;
                let hour = 9 + i % 9;
                h.admin_create(&json!({
                    "application_id": if i % 2 == 0 { "ap_1" } else { "ap_2" },
                    "start": format!("2099-12-{day:02}T{hour:02}:00:00+09:00"),
                    "end": format!("2099-12-{day:02}T{hour:02}:45:00+09:00"),
                    "interviewers": ["suzuki@example.co.jp"],
                }))
                .map_err(|e| anyhow::anyhow!("seeding: {}", e.body))?;
            }
            let (addr, _) = hemu::spawn(h.clone(), lo).await?;
            hs.push((h, addr));
        }
        let tag = format!(
            "b{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() % 0xff_ffff)
                .unwrap_or(0)
        );
        Ok(Tenants {
            g,
            google_addr,
            hs,
            dir,
            tag,
        })
    }

    /// A config with every link, its cycles every `PERIOD_S` seconds.
    fn config(&self, name: &str, state: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.path();
        let mut text = format!(
            "[daemon]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\nschedule = \"*/{PERIOD_S} * * * * *\"\nfull_resync_schedule = \"0 0 0 1 1 *\"\ncycle_deadline_secs = 600\n{state}\n",
            dir.join(format!("{name}.state")).display(),
            dir.join(format!("{name}.sock")).display(),
        );
        for (i, (_, addr)) in self.hs.iter().enumerate() {
            text.push_str(&format!(
                r#"
[[link]]
name = "{tag}-{i}"
[link.google]
service_account_email = "{SA}"
p12_key_file = "{key}"
organizer_email = "{org}"
api_base_url = "http://{g}/calendar/v3/"
token_uri = "http://{g}/token"
max_requests_per_minute = 60000
[link.hitolink]
base_url = "http://{addr}/"
api_token_file = "{token}"
max_requests_per_minute = 60000
"#,
                key = dir.join("key.p12").display(),
                tag = self.tag,
                org = organizer(i),
                g = self.google_addr,
                token = dir.join("hitolink.token").display(),
            ));
        }
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn linked(&self) -> usize {
        self.hs.iter().map(|(h, _)| h.linked_count()).sum()
    }

    fn reset(&self) {
        self.g.reset_counters();
        for (h, _) in &self.hs {
            h.reset_counters();
        }
    }

    /// Calendar requests (without token refreshes), HITO-Link requests,
    /// and the HITO-Link feed reads (one per cycle of each link).
    fn requests(&self) -> (u64, u64, u64) {
        let g: u64 = self
            .g
            .counters()
            .iter()
            .filter(|(k, _)| k.as_str() != "token" && !k.starts_with("faults"))
            .map(|(_, v)| v)
            .sum();
        let (mut h, mut feeds) = (0, 0);
        for (emu, _) in &self.hs {
            let c = emu.counters();
            h += c
                .iter()
                .filter(|(k, _)| !k.starts_with("faults"))
                .map(|(_, v)| v)
                .sum::<u64>();
            feeds += c.get("changes").copied().unwrap_or(0);
        }
        (g, h, feeds)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// RSS now and at its peak (MiB), and CPU seconds, of a process.
fn proc_figures(pid: u32) -> Option<(f64, f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some((
        kib("VmRSS:")?,
        kib("VmHWM:")?,
        (ticks(11) + ticks(12)) / 100.0,
    ))
}

fn spawn(config: &Path) -> anyhow::Result<tokio::process::Child> {
    Ok(tokio::process::Command::new(std::env::current_exe()?)
        .args(["--log-format", "text", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// One daemon serving every link on `state`: the import, then idle cycles.
async fn one_backend(t: &Tenants, label: &str, state: &str, per_link: usize) -> anyhow::Result<()> {
    let links = t.hs.len();
    t.reset();
    let config = t.config(label, state)?;
    let started = Instant::now();
    let mut child = spawn(&config)?;
    let pid = child.id().unwrap_or(0);
    let total = links * per_link;
    let give_up = Duration::from_secs(3600);
    while t.linked() < total {
        if started.elapsed() > give_up {
            anyhow::bail!("{label}: the import did not finish within an hour");
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("{label}: the daemon exited during the import ({status})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let import_s = started.elapsed().as_secs_f64();
    // the echoes of the import's writes come back in the next cycles
    tokio::time::sleep(Duration::from_secs(PERIOD_S * 3)).await;
    t.reset();
    let (_, _, cpu0) = proc_figures(pid).unwrap_or_default();
    let window = Instant::now();
    loop {
        let (_, _, feeds) = t.requests();
        if feeds >= IDLE_CYCLES * links as u64 {
            break;
        }
        if window.elapsed() > Duration::from_secs(PERIOD_S * IDLE_CYCLES * 10) {
            anyhow::bail!("{label}: the idle cycles did not come");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss, hwm, cpu1) = proc_figures(pid).unwrap_or_default();
    let (g, h, feeds) = t.requests();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let per = |n: u64| n as f64 / feeds.max(1) as f64;
    println!(
        "  {label}: import of {links} x {per_link} = {total} interviews: {import_s:.1} s; idle cycle per link: {:.2} calendar + {:.2} HITO-Link requests, CPU {:.2} ms ({feeds} link-cycles measured); daemon RSS {rss:.1} MiB (peak {hwm:.1} MiB, during the import)",
        per(g),
        per(h),
        (cpu1 - cpu0) * 1000.0 / feeds.max(1) as f64,
    );
    Ok(())
}

/// Two replicas on PostgreSQL share the links; one is killed (SIGKILL) and
/// the time until the other holds every lease is measured.
async fn takeover(t: &Tenants, state: &str, url: &str, lease_s: u64) -> anyhow::Result<()> {
    let links = t.hs.len();
    let pg = PgState::open(&StateConfig {
        backend: Backend::Postgres,
        url: Some(url.to_string()),
        ..StateConfig::default()
    })
    .await?;
    let holders = || async {
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for l in pg.leases().await.unwrap_or_default() {
            if !l.expired {
                *by.entry(l.owner).or_default() += 1;
            }
        }
        by
    };
    let a = spawn(&t.config("replica-a", state)?)?;
    let mut b = spawn(&t.config("replica-b", state)?)?;
    let b_pid = format!(":{}:", b.id().unwrap_or(0));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let h = holders().await;
        if h.len() == 2 && h.values().sum::<usize>() == links {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the two replicas did not share the links: {h:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held_by_b = holders()
        .await
        .iter()
        .filter(|(o, _)| o.contains(&b_pid))
        .map(|(_, n)| *n)
        .sum::<usize>();
    let _ = b.start_kill();
    let killed = Instant::now();
    let _ = b.wait().await;
    loop {
        let h = holders().await;
        if h.len() == 1
            && h.values().sum::<usize>() == links
            && !h.keys().any(|o| o.contains(&b_pid))
        {
            break;
        }
        if killed.elapsed() > Duration::from_secs(lease_s * 10) {
            anyhow::bail!("no takeover after ten lease periods: {h:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  takeover: replica B killed (SIGKILL) holding {held_by_b} of {links} links; replica A held all {links} after {:.1} s (state.lease_secs = {lease_s})",
        killed.elapsed().as_secs_f64()
    );
    drop(a);
    Ok(())
}

/// The many-links table.
pub(super) async fn run(
    links: usize,
    per_link: usize,
    postgres_url: Option<&str>,
) -> anyhow::Result<()> {
    println!(
        "many links on one daemon: {links} links x {per_link} interviews, each link its own organizer and HITO-Link tenant; idle cycles every {PERIOD_S} s"
    );
    {
        let t = Tenants::start(links, per_link).await?;
        one_backend(&t, "sled", "", per_link).await?;
    }
    if let Some(url) = postgres_url {
        let lease_s = 10;
        let state = format!(
            "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\nlease_secs = {lease_s}\nlease_renew_secs = 3\n"
        );
        // fresh tenants: the calendar and the tenants start empty again
        let t = Tenants::start(links, per_link).await?;
        one_backend(&t, "PostgreSQL", &state, per_link).await?;
        takeover(&t, &state, url, lease_s).await?;
    } else {
        println!(
            "  PostgreSQL: not measured (give --postgres-url; the links are named afresh for each run, so a database used before will do)"
        );
    }
    Ok(())
}
