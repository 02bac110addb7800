//! The decision core of hitosync: the two kinds of record in their
//! canonical form (`model`), the sync policy's vocabulary (`policy`) and the
//! pure decisions (`reconcile`).
//!
//! This crate does no I/O, reads no clock and has no async runtime: every
//! decision is a function of its inputs, so the SPEC's table can be tested
//! exhaustively and property tests can run thousands of histories. The
//! crate graph keeps it so: nothing here can reach a socket or a file.

// Every arm on an error, a decision or an operation is spelled out: a new
// variant must be decided where it is met, never fall into a wildcard.
#![deny(clippy::wildcard_enum_match_arm)]

pub mod ids;
pub mod model;
pub mod policy;
pub mod reconcile;
mod unreadable;
