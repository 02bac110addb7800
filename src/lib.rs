//! hitosync keeps HITO-Link interview records and the organizer's Google
//! Calendar in step, in both directions.
//!
//! This crate is the program: the command line, the daemon, `doctor`,
//! `status`, and (with the default `emulators` feature) `demo`, `bench` and
//! `emulate`. The work is done by the workspace's crates, whose graph is the
//! architecture (docs/architecture.md): the decision core
//! (`hitosync-core`) knows no I/O, the two connectors (`hitosync-google`,
//! `hitosync-hitolink`) know nothing of each other, and they meet only in
//! `hitosync-engine`. The emulators are a crate of their own that the
//! product path never links. The re-exports below give the program's
//! modules one short name per crate.

pub use hitosync_config as config;
pub use hitosync_core::{model, policy, reconcile};
pub use hitosync_engine as engine;
pub use hitosync_engine::link;
pub use hitosync_google as google;
pub use hitosync_hitolink as hitolink;
pub use hitosync_net::{http, private_file, ratelimit, retry};
pub use hitosync_state as state;
pub use hitosync_state_postgres as state_pg;

#[cfg(feature = "emulators")]
pub use hitosync_emulator as emulator;

#[cfg(feature = "emulators")]
pub mod bench;
pub mod cli;
pub mod daemon;
#[cfg(feature = "emulators")]
pub mod demo;
pub mod doctor;
pub mod generate;
pub mod logging;
pub mod status;
