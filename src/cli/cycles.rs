//! The commands that run cycles: `sync` and `plan`, through the running
//! daemon when there is one, else on the store itself, one link after
//! another; with PostgreSQL a writing `sync` takes the link's lease first.

use std::process::ExitCode;
use std::sync::Arc;

use super::{
    Failure, error_text, load_config, open_state, run_error, selected, setup_error, state_failure,
};
use crate::daemon::control::{self, Request};
use crate::daemon::{self, state_db::StateDb};
use crate::status;
use hitosync_config::{Config, ConfigFile};
use hitosync_engine::link::Link;
use hitosync_engine::{CycleOptions, CycleReport, EngineError};
use hitosync_google::GoogleError;
use hitosync_hitolink::HitolinkError;
use hitosync_state::{Lease, StateError, StateStore};

/// Fires on SIGINT or SIGTERM: a one-shot cycle stops like the daemon's.
pub(super) fn stop_on_signals() -> hitosync_net::retry::CancellationToken {
    let token = hitosync_net::retry::CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        fire.cancel();
    });
    token
}

/// The lease a one-shot command takes to write a link's state on
/// PostgreSQL: refused while a daemon holds it (the command goes through
/// that daemon instead).
pub(super) async fn one_shot_lease(
    backend: &StateDb,
    file: &ConfigFile,
    link: &str,
) -> Result<Option<Arc<Lease>>, Failure> {
    let Some(pg) = backend.postgres() else {
        return Ok(None);
    };
    let (id, _, _) = crate::daemon::leases::replica_id();
    let owner = format!("cli:{id}");
    let sent = std::time::Instant::now();
    // As long as a daemon's: a cycle is bounded well under it.
    let lease = file.state.lease().max(file.daemon.cycle_deadline() * 2);
    match pg
        .try_acquire(link, &owner, lease)
        .await
        .map_err(state_failure)?
    {
        Some(token) => Ok(Some(Arc::new(Lease::new(link, &owner, token, sent, lease)))),
        None => {
            let rows = pg.leases().await.map_err(state_failure)?;
            let row = rows.iter().find(|r| r.link == link);
            Err(run_error(StateError::Leased {
                link: link.to_string(),
                owner: row.map(|r| r.owner.clone()).unwrap_or_default(),
                until: row.map(|r| r.expires_at.to_rfc3339()).unwrap_or_default(),
            }))
        }
    }
}

/// One cycle of one link outside the daemon, bounded like the daemon's
/// (`daemon.cycle_deadline_secs`, SIGINT/SIGTERM); its outcome is kept in
/// the store for `status`.
pub(super) async fn run_cycle(
    file: &ConfigFile,
    backend: &StateDb,
    config: &Config,
    opts: CycleOptions,
    stop: &hitosync_net::retry::CancellationToken,
) -> Result<CycleReport, Failure> {
    let mut link = Link::connect(config).await.map_err(|e| {
        if file.form == hitosync_config::Form::Many {
            setup_error(anyhow::anyhow!("link {:?}: {e}", config.link))
        } else {
            setup_error(e)
        }
    })?;
    let lease = if opts.dry_run {
        None
    } else {
        one_shot_lease(backend, file, &config.link).await?
    };
    let store: Arc<dyn StateStore> = backend
        .store(&config.link, lease.clone())
        .map_err(state_failure)?;
    let deadline = config.daemon.cycle_deadline();
    let outcome = daemon::worker::bounded_cycle(
        &mut link,
        store.as_ref(),
        lease.as_deref(),
        &opts,
        deadline,
        stop,
    )
    .await;
    let failure = outcome.failure(deadline);
    if !opts.dry_run {
        let mut health = status::Health::load(store.as_ref()).await;
        match &failure {
            None if !outcome.shut_down => health.succeeded(chrono::Utc::now()),
            None => {}
            Some(text) => health.failed(text.clone(), chrono::Utc::now()),
        }
        // the cycle's own error says more than a failed bookkeeping write
        let _ = health.save(store.as_ref()).await;
    }
    if let (Some(pg), Some(l)) = (backend.postgres(), &lease) {
        let _ = pg.release(&l.link, &l.owner, l.token).await;
    }
    match (outcome.result, failure) {
        (Ok(report), None) => Ok(report),
        (Ok(report), Some(text)) => {
            print!("{}", status::render_cycle(&report).0);
            Err(run_error(anyhow::anyhow!(text)))
        }
        (Err(_), Some(text)) if outcome.deadline_hit => Err(run_error(anyhow::anyhow!(text))),
        (Err(e), _) => Err(match e {
            EngineError::Google(
                GoogleError::Auth(_)
                | GoogleError::ApiDisabled { .. }
                | GoogleError::Forbidden { .. }
                | GoogleError::CalendarNotFound { .. },
            ) => setup_error(e),
            EngineError::Hitolink(HitolinkError::Unauthorized) => setup_error(e),
            other => run_error(other),
        }),
    }
}

/// Sends `req` to a running daemon; `None` when none listens.
pub(super) async fn through_daemon(
    file: &ConfigFile,
    req: Request,
) -> Result<Option<ExitCode>, Failure> {
    match control::request(&file.daemon.control_socket, &req)
        .await
        .map_err(run_error)?
    {
        Some(answer) => {
            print!("{}", answer.output);
            Ok(Some(ExitCode::from(answer.exit_code)))
        }
        None => Ok(None),
    }
}

/// Runs `opts` on each selected link in turn, printing each outcome (with
/// a header when there are several); the worst exit code wins. A link
/// that fails does not keep the next from running.
pub(super) async fn cycle_links(
    file: &ConfigFile,
    link: Option<&str>,
    opts: CycleOptions,
    json: bool,
) -> Result<ExitCode, Failure> {
    let links = selected(file, link)?;
    let backend = open_state(file).await?;
    let stop = stop_on_signals();
    let many = links.len() > 1;
    let mut worst: Option<Failure> = None;
    let mut code = 0u8;
    let mut plans = serde_json::Map::new();
    for config in links {
        if many && !(opts.dry_run && json) {
            println!("== link {} ==", config.link);
        }
        match run_cycle(file, &backend, config, opts.clone(), &stop).await {
            Ok(report) if opts.dry_run => {
                let out = status::render_plan(&report, json);
                if many && json {
                    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::String(out));
                    plans.insert(config.link.clone(), v);
                } else {
                    print!("{out}");
                }
            }
            Ok(report) => {
                let (output, c) = status::render_cycle(&report);
                print!("{output}");
                code = code.max(c);
            }
            Err(f) if !many => return Err(f),
            Err(f) => {
                eprintln!("error: link {}: {}", config.link, error_text(&f.error));
                code = code.max(f.code);
                if worst.is_none() {
                    worst = Some(f);
                }
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    if many && opts.dry_run && json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "links": plans }))
                .map_err(run_error)?
        );
    }
    Ok(ExitCode::from(code))
}

/// `sync` and `plan`: through the daemon when one listens on the control
/// socket (it holds the links' state), else one cycle per selected link in
/// this process.
pub(super) async fn cycle_command(
    config_path: &std::path::Path,
    link: Option<&str>,
    through: Request,
    opts: CycleOptions,
    json: bool,
) -> Result<ExitCode, Failure> {
    let file = load_config(config_path)?;
    selected(&file, link)?;
    if let Some(code) = through_daemon(&file, through).await? {
        return Ok(code);
    }
    cycle_links(&file, link, opts, json).await
}
