//! The product's integration tests: one test binary (as ripgrep lays them
//! out) for everything that drives the `hitosync` binary or the whole
//! product against the emulators over loopback HTTP. Each module is one
//! area; `cargo test --test integration -- MODULE::` runs one.
//!
//! One binary, not one per file: each binary links the whole product, and
//! tests that wait on child processes overlap their waits in one harness.
//! The crates' own integration tests live in `crates/<name>/tests/`; the
//! shared setup is `hitosync-testkit` (crates/testkit), plus what only the
//! binary's tests need, in `common`.

mod common;

mod cli;
mod daemon;
mod doctor;
mod failover;
mod hostile_servers;
mod link;
mod messages;
mod metrics;
mod multilink;
mod production_build;
mod recovery;
mod shapes;
mod sync;
mod systemd;
