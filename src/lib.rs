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
//! product path never links. Each module names the crate it uses
//! (`hitosync_engine::...`): this crate re-exports none of them, so its own
//! layering is visible in its imports and the tests reach the connectors
//! and the emulators through their crates, not through the program.

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
