//! Log output through `tracing`.
//!
//! Some dependencies log secrets below warn: yup-oauth2 prints the token
//! request (the signed JWT) and the token response (the access token) at
//! debug, and the HTTP stack may show header values at trace. A directive
//! in `RUST_LOG` cannot be trusted to keep them quiet: a more specific one
//! (`yup_oauth2::service_account=debug`) beats a cap on `yup_oauth2`. So
//! the output layer carries a second filter of its own, beside the one
//! `RUST_LOG` builds, that drops every event below warn from those crates
//! and all their modules, whatever `RUST_LOG` says (SPEC invariant 7).

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates whose events below warn are never shown, with the reason.
const GUARDED: &[(&str, &str)] = &[
    (
        "yup_oauth2",
        "logs the signed JWT and the access token at debug",
    ),
    ("hyper", "may log header values at trace"),
    ("hyper_util", "may log header values at trace"),
    ("hyper_rustls", "may log connection details at trace"),
    ("h2", "may log header values at trace"),
    ("rustls", "logs key-exchange detail at trace"),
];

/// `target` is one of the guarded crates or one of their modules.
fn guarded(target: &str) -> bool {
    GUARDED.iter().any(|(krate, _)| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Shown unless it is a guarded crate's event below warn.
fn allowed(meta: &Metadata<'_>) -> bool {
    !guarded(meta.target()) || *meta.level() <= Level::WARN
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter `RUST_LOG` asks for (or `default` when it is unset or
/// unreadable). The guard is applied beside it, not inside it.
pub fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the global subscriber; logs go to stderr so that commands'
/// own output on stdout stays machine-readable.
/// `default` is the level when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    let filter = filter(default).and(filter_fn(allowed));
    // Colours only for a person at a terminal, never into files or pipes.
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps each line itself and shows no colours.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let layer = match (format, journald) {
        (LogFormat::Json, _) => base.json().with_filter(filter).boxed(),
        (LogFormat::Text, true) => base
            .without_time()
            .with_ansi(false)
            .with_filter(filter)
            .boxed(),
        (LogFormat::Text, false) => base.with_filter(filter).boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_crates_and_all_their_modules() {
        for t in [
            "yup_oauth2",
            "yup_oauth2::service_account",
            "yup_oauth2::authenticator::x",
            "hyper::proto::h1::io",
            "h2::codec",
        ] {
            assert!(guarded(t), "{t}");
        }
        for t in ["hitosync", "hyperion", "yup_oauth2x", "hitosync::daemon"] {
            assert!(!guarded(t), "{t}");
        }
    }
}
