//! What both connectors share to talk to a remote API: one HTTP client,
//! capped exponential backoff, a request-rate limiter, and the check that
//! a secret file is private. Neither connector depends on the other; both
//! depend on this.

pub mod disposition;
pub mod http;
pub mod page;
pub mod private_file;
pub mod ratelimit;
pub mod redact;
pub mod retry;
