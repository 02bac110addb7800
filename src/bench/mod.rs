//! `hitosync bench`: what users wait for and what a cycle costs, measured
//! with the real engine and clients against the emulators over loopback.
//! Figures are printed, never asserted: tests do not time things.
//!
//! 1. An import held to production request rates (Google 500/min,
//!    HITO-Link 90/min, both servers' own limits on too), time-scaled: when
//!    the next week's interviews are on the calendar, when every event
//!    exists, when every interview names its event, the rate each side ran
//!    at, and the peak memory of the `hitosync` process alone (it runs as a
//!    child process; the emulators live here).
//! 2. The same at a larger size for memory only, and the cycle after it.
//! 3. The idle cycle at N mapped interviews, and K changes in one cycle.

mod import;
mod links;
mod world;

use import::Limits;
use world::{World, dir_size, peak_rss_mib};

use std::time::Duration;

use serde_json::json;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sizes: Vec<usize>,
    pub changes: Vec<usize>,
    pub changes_at: usize,
    /// Interviews in the import held to production rates.
    pub import: usize,
    /// Interviews in the import measured for memory only.
    pub memory_import: usize,
    /// Google's per-user quota (requests a minute).
    pub quota_per_minute: u32,
    /// How many times faster than real time the minute runs.
    pub time_scale: f64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            sizes: vec![100, 1_000, 10_000, 100_000],
            changes: vec![1, 10, 100, 1_000],
            changes_at: 10_000,
            import: 10_000,
            memory_import: 100_000,
            quota_per_minute: 600,
            time_scale: 20.0,
        }
    }
}

fn at(t: Option<f64>, scale: f64) -> String {
    match t {
        Some(s) => format!("{:.1} s (x{scale} = {:.1} min)", s, s * scale / 60.0),
        None => "not reached".into(),
    }
}

/// `hitosync bench --links N`: many links on one daemon, on sled and
/// (given a database) PostgreSQL, and a takeover between replicas.
pub async fn run_links(
    links: usize,
    per_link: usize,
    postgres_url: Option<&str>,
) -> anyhow::Result<()> {
    links::run(links, per_link, postgres_url).await
}

/// Runs the benchmark and prints its tables.
pub async fn run(o: &BenchOptions) -> anyhow::Result<()> {
    println!(
        "hitosync bench: the real engine and HTTP clients against the emulators on loopback\n"
    );
    let limits = Limits {
        google_rpm: 500,
        hitolink_rpm: 90,
        google_quota: o.quota_per_minute,
        hitolink_quota: 100,
        scale: o.time_scale,
    };
    println!(
        "1. import of {} interviews at production limits: google.max_requests_per_minute = 500, hitolink.max_requests_per_minute = 90 (servers: Google {}/min, HITO-Link 100/min), time x{}",
        o.import, o.quota_per_minute, o.time_scale
    );
    let i = import::run(o.import, limits, Duration::from_secs(3 * 3600), false).await?;
    let minutes = |s: f64| s * o.time_scale / 60.0;
    println!(
        "  the next 7 days' {} interviews all on the calendar after {}",
        i.next_week,
        at(i.next_week_on_calendar, o.time_scale)
    );
    println!(
        "  all {} events exist after {}",
        i.interviews,
        at(i.all_events, o.time_scale)
    );
    println!(
        "  every interview names its event (external_event_id) after {}",
        at(i.all_linked, o.time_scale)
    );
    if let Some(t) = i.all_events {
        let rate = i.google_until_events as f64 / minutes(t);
        println!(
            "  Google: {} requests until every event existed = {:.0}/min in scaled time, {:.1}% of the configured 500/min ({:.1}% of the {}/min quota)",
            i.google_until_events,
            rate,
            rate / 500.0 * 100.0,
            rate / o.quota_per_minute as f64 * 100.0,
            o.quota_per_minute
        );
    }
    if let Some(t) = i.all_linked {
        let rate = i.hitolink_until_linked as f64 / minutes(t);
        println!(
            "  HITO-Link: {} requests until every write-back was done = {:.0}/min in scaled time, {:.1}% of the configured 90/min (100/min allowed)",
            i.hitolink_until_linked,
            rate,
            rate / 90.0 * 100.0
        );
    }
    println!(
        "  rate-limit errors answered: Google {}, HITO-Link {}",
        i.google_rate_limited, i.hitolink_rate_limited
    );
    println!(
        "  hitosync alone: {} sync runs, CPU {:.1} s, peak RSS {:.1} MiB",
        i.cycles, i.cpu_seconds, i.peak_rss_mib
    );

    println!(
        "\n2. memory of an import of {} interviews and of the cycle after it (limits x1000: for memory only, its times are no figure)",
        o.memory_import
    );
    let fast = Limits {
        scale: 1000.0,
        ..limits
    };
    let m = import::run(o.memory_import, fast, Duration::from_secs(3 * 3600), true).await?;
    println!(
        "  hitosync alone: peak RSS {:.1} MiB during the import ({} sync runs), {:.1} MiB in the cycle after it",
        m.peak_rss_mib,
        m.cycles,
        m.after_rss_mib.unwrap_or(0.0)
    );
    if m.all_linked.is_none() {
        println!("  (the import did not finish within the time allowed)");
    }
    println!("\n(below: CPU and RSS are this whole process's, emulators included)");
    println!(
        "\n3. idle cycle at N mapped interviews (hitosync: sync token + cursor; baseline: list everything and diff)"
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

    println!("\n4. K changes in one cycle at N = {}", o.changes_at);
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
