//! The HITO-Link side: the interview API client.

pub mod client;

pub use client::{
    ApplicationInfo, ChangePage, DeclineBy, HitolinkClient, HitolinkError, NewInterview,
    SetupError, TokenError, read_token,
};
