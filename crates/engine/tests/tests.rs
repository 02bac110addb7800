//! The engine with the real clients against the emulators over loopback:
//! one test binary, so the property test's histories and the cycle tests
//! share one build and one harness.

mod cycles;
mod prop_sync;
