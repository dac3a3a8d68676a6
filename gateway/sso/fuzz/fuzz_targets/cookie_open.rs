#![no_main]
//! Opening a cookie value never panics and never accepts a forgery; sealing round-trips; under
//! both session ciphers (AES-256-GCM and SM4-GCM).
use libfuzzer_sys::fuzz_target;
use menwei_sso::seal::{Cipher, Sealer};

fuzz_target!(|data: &[u8]| {
    for cipher in [Cipher::Aes256Gcm, Cipher::Sm4Gcm] {
        let Some(s) = Sealer::new(&[7u8; 32], cipher) else {
            continue;
        };
        if let Ok(text) = std::str::from_utf8(data) {
            // Random input never opens (the chance of forging a GCM tag is 2^-128).
            assert!(s.open(b"menwei_session", text).is_none());
        }
        if let Some(sealed) = s.seal(b"menwei_session", data) {
            if sealed.len() <= menwei_sso::seal::MAX_SEALED {
                assert_eq!(s.open(b"menwei_session", &sealed).as_deref(), Some(data));
            }
        }
    }
});
