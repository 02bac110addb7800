//! The HITO-Link side: the interview API client.

pub mod client;

pub use client::{
    ApplicationInfo, ChangePage, HitolinkClient, HitolinkError, InterviewPatch, NewInterview,
    SetupError, TokenError, read_token,
};
