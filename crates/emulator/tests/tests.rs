//! The emulators' conformance tests, at the HTTP level (no daemon, no
//! binary): one test binary with a module per emulator.

mod google;
mod hitolink;
