//! The `hitosync` command line.

#[cfg(feature = "emulators")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "emulators")]
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::daemon::{
    self,
    control::{self, Request},
};
#[cfg(feature = "emulators")]
use crate::emulator;
use crate::engine::{CycleOptions, CycleReport, EngineError};
use crate::google::GoogleError;
use crate::hitolink::HitolinkError;
use crate::link::Link;
use crate::logging::{self, LogFormat};
use crate::state::{StateError, Store};
use crate::status;

#[derive(Debug, Parser)]
#[command(
    name = "hitosync",
    version,
    about = "Keeps HITO-Link interviews and the organizer's Google Calendar in step"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH, env = "HITOSYNC_CONFIG")]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[cfg(feature = "emulators")]
    /// Both emulators and the daemon in one process: a hiring week synced live, no credentials needed.
    Demo {
        /// Stay up after the scenario (Ctrl-C stops).
        #[arg(long)]
        keep_running: bool,
    },
    /// The daemon, in the foreground (systemd Type=notify): cycles on the schedule, signals, control socket.
    Run,
    /// One reconcile cycle, then exit (0: all applied, 1: something parked or failed, 2: configuration error).
    Sync {
        /// Forget both cursors first and compare everything.
        #[arg(long)]
        full: bool,
        /// Apply cancellations even when the mass-deletion breaker would hold them.
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// What one cycle would do, per record; changes nothing anywhere.
    Plan {
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Counts, last cycle, cursors' age, pending operations, conflicts, failing records.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// One interview's mapping, last agreed state and history of decisions.
    Inspect {
        /// The HITO-Link interview ID (like iv_000123).
        id: String,
        #[arg(long)]
        json: bool,
    },
    #[cfg(feature = "emulators")]
    /// Measures cycles against the emulators over loopback and prints the figures (docs/performance.md).
    Bench {
        /// Mapped interviews for the idle-cycle table.
        #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1_000, 10_000, 100_000])]
        sizes: Vec<usize>,
        /// Changes per cycle for the second table.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 100, 1_000])]
        changes: Vec<usize>,
        /// Mapped interviews while measuring changes.
        #[arg(long, default_value_t = 10_000)]
        changes_at: usize,
        /// New interviews for the import held to production rates.
        #[arg(long, default_value_t = 10_000)]
        import: usize,
        /// New interviews for the import measured for memory only.
        #[arg(long, default_value_t = 100_000)]
        memory_import: usize,
        /// Google's per-user quota (requests a minute).
        #[arg(long, default_value_t = 600)]
        quota_per_minute: u32,
        /// How much faster than real time the quota's minute runs.
        #[arg(long, default_value_t = 20.0)]
        time_scale: f64,
    },
    /// Checks every step of the setup guide and says which one is wrong and how to mend it.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Also insert and remove a private probe event (notifying nobody).
        #[arg(long)]
        write_test: bool,
    },
    #[cfg(feature = "emulators")]
    /// Run a test peer (an emulator of Google Calendar or HITO-Link) in the foreground.
    #[command(subcommand)]
    Emulate(Emulate),
    /// Writes the man pages or the shell completions of this binary (for packaging).
    #[command(subcommand, hide = true)]
    Generate(Generate),
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// hitosync.1 and a page per subcommand.
    Man { out_dir: PathBuf },
    /// bash, zsh and fish completions.
    Completions { out_dir: PathBuf },
}

#[cfg(feature = "emulators")]
#[derive(Debug, Subcommand)]
pub enum Emulate {
    /// Calendar API v3 and Google's OAuth token endpoint.
    Google {
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: SocketAddr,
        /// The service account whose key signs the token requests.
        #[arg(long)]
        service_account: String,
        /// A Workspace user with a calendar (the 予約元); repeat for more.
        #[arg(long, required = true)]
        organizer: Vec<String>,
        /// The service account's P12 key; its certificate verifies the JWTs.
        #[arg(long)]
        p12: PathBuf,
        #[arg(long, default_value = "notasecret")]
        p12_password: String,
    },
    /// The HITO-Link interview API of HITOLINK-API.md.
    Hitolink {
        #[arg(long, default_value = "127.0.0.1:8086")]
        listen: SocketAddr,
        /// A file holding the bearer token clients must send.
        #[arg(long)]
        token_file: PathBuf,
        /// JSON with `applications`, `interviews` (and optionally `users`, `selection_steps`).
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Requests a minute per token before 429 (the API's documented 100); 0 lifts the limit.
        #[arg(long, default_value_t = 100)]
        rate_limit: u32,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything hitosync creates (the store, the control socket, its
    // temporary files) is for its own user only, whatever umask it was
    // started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // The demo prints its own timeline; the daemon's info lines would bury it.
    #[cfg(feature = "emulators")]
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Bench { .. });
    #[cfg(not(feature = "emulators"))]
    let quiet = false;
    let default_level = if quiet { "warn" } else { "info" };
    logging::init(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: many errors
/// already quote their source in their own message, and anyhow's `{:#}`
/// would print it again after it.
fn error_text(e: &anyhow::Error) -> String {
    crate::http::error_chain(e.as_ref())
}

/// An error with the exit code it deserves: 2 for configuration and
/// setup (the admin must edit something), 1 for everything else.
#[derive(Debug)]
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn setup_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

fn run_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: e.into(),
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, Failure> {
    Config::load(path).map_err(setup_error)
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    Store::open(&config.daemon.state_dir).map_err(|e| match e {
        StateError::Open { .. }
        | StateError::NotAStore { .. }
        | StateError::UnfinishedSnapshot { .. }
        | StateError::Schema { .. } => setup_error(e),
        other => run_error(other),
    })
}

/// Fires on SIGINT or SIGTERM: a one-shot cycle stops like the daemon's.
fn stop_on_signals() -> crate::retry::CancellationToken {
    let token = crate::retry::CancellationToken::new();
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

/// One cycle outside the daemon, bounded like the daemon's
/// (`daemon.cycle_deadline_secs`, SIGINT/SIGTERM); its outcome is kept in
/// the store for `status`.
async fn run_cycle(config: &Config, opts: CycleOptions) -> Result<CycleReport, Failure> {
    let mut link = Link::connect(config).await.map_err(setup_error)?;
    let store = open_store(config)?;
    let stop = stop_on_signals();
    let deadline = config.daemon.cycle_deadline();
    let outcome = daemon::worker::bounded_cycle(&mut link, &store, &opts, deadline, &stop).await;
    let failure = outcome.failure(deadline);
    if !opts.dry_run {
        let mut health = status::Health::load(&store);
        match &failure {
            None if !outcome.shut_down => health.succeeded(chrono::Utc::now()),
            None => {}
            Some(text) => health.failed(text.clone(), chrono::Utc::now()),
        }
        // the cycle's own error says more than a failed bookkeeping write
        let _ = health.save(&store);
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
async fn through_daemon(config: &Config, req: Request) -> Result<Option<ExitCode>, Failure> {
    match control::request(&config.daemon.control_socket, &req)
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

async fn sync_command(
    config_path: &std::path::Path,
    full: bool,
    allow_mass_delete: bool,
) -> Result<ExitCode, Failure> {
    let config = load_config(config_path)?;
    if let Some(code) = through_daemon(
        &config,
        Request::Sync {
            full,
            allow_mass_delete,
        },
    )
    .await?
    {
        return Ok(code);
    }
    let report = run_cycle(
        &config,
        CycleOptions {
            full,
            allow_mass_delete,
            ..Default::default()
        },
    )
    .await?;
    let (output, code) = status::render_cycle(&report);
    print!("{output}");
    Ok(ExitCode::from(code))
}

async fn plan_command(
    config_path: &std::path::Path,
    full: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let config = load_config(config_path)?;
    if let Some(code) = through_daemon(&config, Request::Plan { full, json }).await? {
        return Ok(code);
    }
    let report = run_cycle(
        &config,
        CycleOptions {
            full,
            dry_run: true,
            ..Default::default()
        },
    )
    .await?;
    print!("{}", status::render_plan(&report, json));
    Ok(ExitCode::SUCCESS)
}

async fn status_command(config_path: &std::path::Path, json: bool) -> Result<ExitCode, Failure> {
    let config = load_config(config_path)?;
    if let Some(code) = through_daemon(&config, Request::Status { json }).await? {
        return Ok(code);
    }
    let store = open_store(&config)?;
    print!(
        "{}",
        status::status_output(&store, json).map_err(run_error)?
    );
    Ok(ExitCode::SUCCESS)
}

async fn inspect_command(
    config_path: &std::path::Path,
    id: &str,
    json: bool,
) -> Result<ExitCode, Failure> {
    let config = load_config(config_path)?;
    if let Some(code) = through_daemon(
        &config,
        Request::Inspect {
            id: id.to_string(),
            json,
        },
    )
    .await?
    {
        return Ok(code);
    }
    let store = open_store(&config)?;
    let (output, code) = status::inspect_output(&store, id, json).map_err(run_error)?;
    print!("{output}");
    Ok(ExitCode::from(code))
}

async fn doctor_command(
    config_path: &std::path::Path,
    json: bool,
    write_test: bool,
) -> Result<ExitCode, Failure> {
    let checks = crate::doctor::run(config_path, write_test).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).map_err(run_error)?
        );
    } else {
        print!("{}", crate::doctor::render(&checks));
    }
    let failed = checks
        .iter()
        .any(|c| c.outcome == crate::doctor::Outcome::Failed);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_command(config_path: &std::path::Path) -> Result<ExitCode, Failure> {
    match daemon::run(config_path).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_setup() => Err(setup_error(e)),
        Err(e) => Err(run_error(e)),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let result = match cli.command {
        Command::Sync {
            full,
            allow_mass_delete,
        } => sync_command(&cli.config, full, allow_mass_delete).await,
        Command::Plan { full, json } => plan_command(&cli.config, full, json).await,
        Command::Run => run_command(&cli.config).await,
        #[cfg(feature = "emulators")]
        Command::Bench {
            sizes,
            changes,
            changes_at,
            import,
            memory_import,
            quota_per_minute,
            time_scale,
        } => {
            let opts = crate::bench::BenchOptions {
                sizes,
                changes,
                changes_at,
                import,
                memory_import,
                quota_per_minute,
                time_scale,
            };
            crate::bench::run(&opts)
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(run_error)
        }
        Command::Doctor { json, write_test } => doctor_command(&cli.config, json, write_test).await,
        #[cfg(feature = "emulators")]
        Command::Demo { keep_running } => match crate::demo::run(keep_running).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(run_error(e)),
        },
        Command::Status { json } => status_command(&cli.config, json).await,
        Command::Inspect { id, json } => inspect_command(&cli.config, &id, json).await,
        #[cfg(feature = "emulators")]
        Command::Emulate(e) => emulate(e).await,
        Command::Generate(what) => generate(what),
    };
    Ok(match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", error_text(&f.error));
            ExitCode::from(f.code)
        }
    })
}

fn generate(what: Generate) -> Result<ExitCode, Failure> {
    let files = match what {
        Generate::Man { out_dir } => crate::generate::man_pages(&out_dir),
        Generate::Completions { out_dir } => crate::generate::completions(&out_dir),
    }
    .map_err(run_error)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "emulators")]
async fn emulate(e: Emulate) -> Result<ExitCode, Failure> {
    match e {
        Emulate::Google {
            listen,
            service_account,
            organizer,
            p12,
            p12_password,
        } => {
            let setup =
                emulator::google::setup_from_p12(&service_account, &organizer, &p12, &p12_password)
                    .map_err(setup_error)?;
            let emu = Arc::new(emulator::google::GoogleEmulator::new(setup));
            let (addr, task) = emulator::google::spawn(emu, listen)
                .await
                .map_err(run_error)?;
            println!("listening on http://{addr}");
            println!("token_uri = \"http://{addr}/token\"");
            println!("api_base_url = \"http://{addr}/calendar/v3/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
        Emulate::Hitolink {
            listen,
            token_file,
            seed,
            rate_limit,
        } => {
            // The emulator's own token file is test material; any mode will do.
            let token = crate::hitolink::read_token(&token_file, true).map_err(setup_error)?;
            let seed = match seed {
                Some(path) => emulator::hitolink::read_seed(&path).map_err(setup_error)?,
                None => emulator::hitolink::Seed::default(),
            };
            let emu = Arc::new(emulator::hitolink::HitolinkEmulator::new(
                secrecy::ExposeSecret::expose_secret(&token),
                seed,
            ));
            emu.set_rate_limit((rate_limit > 0).then_some(rate_limit));
            let (addr, task) = emulator::hitolink::spawn(emu, listen)
                .await
                .map_err(run_error)?;
            println!("listening on http://{addr}");
            println!("base_url = \"http://{addr}/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves until SIGINT/SIGTERM.
#[cfg(feature = "emulators")]
async fn wait_for_shutdown(task: tokio::task::JoinHandle<()>) {
    let term = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = task => {}
    }
}
