//! The Google side: service-account auth with domain-wide delegation, and
//! the organizer's calendar.

pub mod auth;
mod auth_error;
pub mod client;
mod decode;
pub mod error;
pub mod wire;

pub use auth::{AuthError, KeyError, ServiceAccount, TokenSource};
pub use client::{CalendarClient, ClientOptions, EventPage};
pub use error::GoogleError;

/// Why a Calendar client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Google(#[from] GoogleError),
}
