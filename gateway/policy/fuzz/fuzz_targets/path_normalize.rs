#![no_main]
//! The normaliser never panics, and what it accepts is a fixed point with no dot segments.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = menwei_policy::path::normalize(s) {
            assert_eq!(
                menwei_policy::path::normalize(&n).as_deref(),
                Ok(n.as_str())
            );
            assert!(
                n.starts_with('/')
                    && !n.contains("//")
                    && !n.contains("/../")
                    && !n.contains("/./")
            );
        }
    }
});
