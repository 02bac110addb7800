//! The production build (`--no-default-features`) carries no emulator and
//! no test key: an admin's binary must not be able to serve a fake Google,
//! and a key that anyone can read in this repository must not ship.
//!
//! The check reads the binary's bytes for markers only the emulators and
//! the test keys have. It is run against the default build too, which
//! must carry every marker: that is what shows the markers are real.
//! CI points `HITOSYNC_PRODUCTION_BIN` at the binary the Debian package is
//! built from (`.ci/run`).

use std::path::{Path, PathBuf};

/// What only the test peers and the test keys put into a binary.
fn markers() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        // the Calendar emulator's admin routes (a person in the web UI)
        ("emulator route /_admin/".to_string(), b"/_admin/".to_vec()),
    ];
    // The demo's key, as bytes: a window from the middle of the file,
    // inside the encrypted key and certificate (a legacy PKCS#12 file
    // encrypts its certificate too, so no subject is readable in it).
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let demo_key = fixtures.join("google-legacy.p12");
    let bytes = std::fs::read(&demo_key).unwrap();
    let mid = bytes.len() / 2;
    out.push((
        format!("64 bytes of {}", demo_key.display()),
        bytes[mid..mid + 64].to_vec(),
    ));
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn found_in(bin: &Path) -> Vec<String> {
    let bytes = std::fs::read(bin).unwrap_or_else(|e| panic!("cannot read {}: {e}", bin.display()));
    markers()
        .into_iter()
        .filter(|(_, m)| contains(&bytes, m))
        .map(|(what, _)| what)
        .collect()
}

/// The check can fail: the default build (emulators, demo, bench) has
/// every marker.
#[test]
fn the_default_build_carries_every_marker() {
    let found = found_in(Path::new(env!("CARGO_BIN_EXE_hitosync")));
    assert_eq!(found.len(), markers().len(), "found only {found:?}");
}

#[test]
fn the_production_build_carries_no_emulator_and_no_test_key() {
    let Some(bin) = std::env::var_os("HITOSYNC_PRODUCTION_BIN").map(PathBuf::from) else {
        eprintln!(
            "skipped: HITOSYNC_PRODUCTION_BIN is not set (CI sets it to the binary of \
             `cargo build --no-default-features`, see .ci/run)"
        );
        return;
    };
    let found = found_in(&bin);
    assert!(
        found.is_empty(),
        "{} carries {found:?}: the production build links test code",
        bin.display()
    );
}
