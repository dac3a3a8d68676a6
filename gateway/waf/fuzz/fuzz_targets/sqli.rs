#![no_main]
//! Arbitrary text through menwei's libinjection SQL check and libinjectionrs' own: the same
//! verdict, never a panic (libinjectionrs is run under `catch_unwind`; a panic there is skipped).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = menwei_waf::sqli::is_sqli(text);
    let theirs = std::panic::catch_unwind(|| {
        libinjectionrs::SqliState::new(text.as_bytes(), libinjectionrs::SqliFlags::FLAG_NONE)
            .detect()
    });
    if let Ok(theirs) = theirs {
        assert_eq!(ours, theirs, "{text:?}");
    }
});
