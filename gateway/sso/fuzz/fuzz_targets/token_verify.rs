#![no_main]
//! The token parser never panics on any input: verification (header, algorithm pin, key lookup,
//! signature, claims), issuer peeking, payload decoding and claim-to-header rendering.
use libfuzzer_sys::fuzz_target;
use menwei_policy::snapshot::TokenAlg;
use menwei_sso::jwt::{self, Expect};
use std::sync::OnceLock;
use std::time::Duration;

fn keys() -> &'static jsonwebtoken::jwk::JwkSet {
    static K: OnceLock<jsonwebtoken::jwk::JwkSet> = OnceLock::new();
    K.get_or_init(|| serde_json::from_str(include_str!("jwks.json")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let aud = ["urn:menwei:api".to_string()];
    let want = Expect {
        issuer: "http://127.0.0.1:9000",
        audience: &aud,
        algorithms: &TokenAlg::ALL,
        leeway: Duration::from_secs(30),
        required: &["exp", "iss", "aud"],
        check_exp: true,
    };
    // Nothing random carries a valid signature by these keys.
    assert!(jwt::verify(token, keys(), &want).is_err());
    let _ = jwt::peek_issuer(token);
    if let Some(claims) = jwt::payload(token) {
        for v in claims.values() {
            let h = menwei_sso::claims::header_text(v);
            assert!(!h.bytes().any(|b| b == b'\r' || b == b'\n'));
        }
    }
});
