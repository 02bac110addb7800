//! The `hitosync` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::emulator;
use crate::logging::{self, LogFormat};

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
    /// Run a test peer (an emulator of Google Calendar or HITO-Link) in the foreground.
    #[command(subcommand)]
    Emulate(Emulate),
}

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
    logging::init(cli.log_format);
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
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Emulate(Emulate::Google {
            listen,
            service_account,
            organizer,
            p12,
            p12_password,
        }) => {
            let setup = emulator::google::setup_from_p12(
                &service_account,
                &organizer,
                &p12,
                &p12_password,
            )?;
            let emu = Arc::new(emulator::google::GoogleEmulator::new(setup));
            let (addr, task) = emulator::google::spawn(emu, listen).await?;
            println!("listening on http://{addr}");
            println!("token_uri = \"http://{addr}/token\"");
            println!("api_base_url = \"http://{addr}/calendar/v3/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulate(Emulate::Hitolink {
            listen,
            token_file,
            seed,
            rate_limit,
        }) => {
            // The emulator's own token file is test material; any mode will do.
            let token = crate::hitolink::read_token(&token_file, true)?;
            let seed = match seed {
                Some(path) => emulator::hitolink::read_seed(&path)?,
                None => emulator::hitolink::Seed::default(),
            };
            let emu = Arc::new(emulator::hitolink::HitolinkEmulator::new(
                secrecy::ExposeSecret::expose_secret(&token),
                seed,
            ));
            emu.set_rate_limit((rate_limit > 0).then_some(rate_limit));
            let (addr, task) = emulator::hitolink::spawn(emu, listen).await?;
            println!("listening on http://{addr}");
            println!("base_url = \"http://{addr}/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves until SIGINT/SIGTERM.
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
