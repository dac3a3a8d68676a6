#![no_main]
//! Any bytes as a policy file: the loader returns a snapshot or diagnostics, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("fuzz.toml"), data).is_ok() {
        let _ = menwei_policy::load(dir.path());
    }
});
