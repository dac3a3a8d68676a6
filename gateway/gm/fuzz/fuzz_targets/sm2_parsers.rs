#![no_main]
//! Keys, signatures (DER and raw), ciphertexts, signed-request headers and client certificates
//! from arbitrary bytes: errors, never panics, and nothing random verifies or decrypts.
use libfuzzer_sys::fuzz_target;
use menwei_gm::*;
use std::sync::OnceLock;

fn key() -> &'static Sm2Private {
    static K: OnceLock<Sm2Private> = OnceLock::new();
    K.get_or_init(|| {
        Sm2Private::from_hex(
            DEFAULT_ID,
            "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
        )
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Sm2Public::parse(DEFAULT_ID, data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Sm2Public::from_hex(DEFAULT_ID, s);
        let _ = Sm2Private::from_hex(DEFAULT_ID, s);
        let _ = Sm2Private::from_pem(DEFAULT_ID, s);
        let _ = signature::parse(s);
    }
    let public = key().public();
    assert!(public.verify(b"msg", data, SigEncoding::Der).is_err());
    assert!(public.verify(b"msg", data, SigEncoding::Raw).is_err());
    assert!(key().decrypt(data, CipherLayout::C1C3C2).is_err());
    assert!(key().decrypt(data, CipherLayout::C1C2C3).is_err());
    assert!(cert::verify_client_cert(&[], &[], data, 0).is_err());
    assert!(cert::Crl::new(data, &[]).is_err());
});
