//! Log output through `tracing`.
//!
//! Some dependencies log secrets at debug level (yup-oauth2 prints the
//! signed JWT it sends and the access token it receives). Their targets are
//! capped here whatever `RUST_LOG` says, so that `RUST_LOG=debug` stays safe
//! (SPEC invariant 7).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// Targets that must never log below `info`, with the reason.
const CAPPED: &[(&str, &str)] = &[
    (
        "yup_oauth2",
        "logs the signed JWT and the access token at debug",
    ),
    ("hyper", "may log header values at trace"),
    ("hyper_util", "may log header values at trace"),
    ("h2", "may log header values at trace"),
    ("rustls", "noise at debug"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter: `RUST_LOG` (or `default`), with the capped targets forced
/// to `info` at most.
pub fn filter(default: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for (target, _why) in CAPPED {
        if let Ok(d) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs the global subscriber; logs go to stderr so that commands'
/// own output on stdout stays machine-readable.
/// `default` is the level when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, never into files or pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps each line itself and shows no colours.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (format, journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}
