//! The HITO-Link side: the interview API client.

pub mod client;
mod decode;
mod error;
mod token;

pub use client::{
    ApplicationInfo, ChangePage, HitolinkClient, HitolinkError, InterviewPatch, NewInterview,
    SetupError, TokenError, read_token,
};
