//! hitosync keeps HITO-Link interview records and the organizer's Google
//! Calendar in step, in both directions.
//!
//! Data flows one way through the modules: the connectors (`google`,
//! `hitolink`) fetch changes, `reconcile` decides, `engine` applies and
//! `state` persists. The emulators under `emulator` are the test peers; the
//! product path never calls them.

pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod engine;
pub mod google;
pub mod hitolink;
pub mod http;
pub mod link;
pub mod logging;
pub mod model;
pub mod private_file;
pub mod ratelimit;
pub mod reconcile;
pub mod retry;
pub mod state;
pub mod status;
