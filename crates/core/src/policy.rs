//! The vocabulary of the sync policy: what a site chooses in `[sync]`, in
//! the words the decision core uses. It lives here, not in the config
//! crate, so that the core depends on nothing that reads files.

use std::fmt;

use serde::Deserialize;

/// The marker that books an interview from the calendar (`HL:<application>`).
pub const DEFAULT_BOOKING_MARKER: &str = "HL:";
/// The event title HITO-Link's interviews get unless `sync.title_template` says otherwise.
pub const DEFAULT_TITLE_TEMPLATE: &str = "【面接】{candidate}様 {step}";

/// Which side's value survives when both sides changed the same field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    #[default]
    HitolinkWins,
    GoogleWins,
    LatestWins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnDecline {
    #[default]
    CancelEvent,
    MarkDeclined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnEventDeleted {
    #[default]
    CancelInterview,
    Recreate,
}

/// A deliberately loose check: one `@`, something on both sides, a dot in the
/// domain. The real test of an address is whether Google accepts it, which
/// `hitosync doctor` does.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictPolicy::HitolinkWins => "hitolink-wins",
            ConflictPolicy::GoogleWins => "google-wins",
            ConflictPolicy::LatestWins => "latest-wins",
        })
    }
}
