//! JWT checks for bearer access tokens and back-channel logout tokens, against a provider's
//! JWKS: the algorithm is pinned by policy (never `none`, never HMAC: a token whose header says
//! HS256 is refused before any key is touched, so a public key can never be used as an HMAC
//! secret), the key is found by `kid`, and `iss`, `aud`, `exp`, `nbf` are checked with leeway.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use menwei_policy::snapshot::TokenAlg;
use serde_json::{Map, Value};
use std::time::Duration;

/// Longest token looked at (a JWT from a real provider is a few KiB).
pub const MAX_TOKEN: usize = 16 * 1024;

/// Why a token was refused. The text goes to logs, never to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, too long, bad base64 or JSON.
    Malformed(String),
    /// `alg` not among the pinned ones (includes `none` and HS*).
    Algorithm(String),
    /// No key with this `kid` (the caller may refetch the provider's keys once).
    UnknownKey(String),
    /// Signature, issuer, audience, expiry or another claim check failed.
    Invalid(String),
    /// The provider could not be asked (introspection): neither valid nor invalid.
    Unavailable(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(s) => write!(f, "malformed token: {s}"),
            TokenError::Algorithm(s) => write!(f, "algorithm not allowed: {s}"),
            TokenError::UnknownKey(s) => write!(f, "unknown signing key: {s}"),
            TokenError::Invalid(s) => write!(f, "invalid token: {s}"),
            TokenError::Unavailable(s) => write!(f, "cannot ask the provider: {s}"),
        }
    }
}

fn alg_of(a: TokenAlg) -> Algorithm {
    match a {
        TokenAlg::RS256 => Algorithm::RS256,
        TokenAlg::ES256 => Algorithm::ES256,
        TokenAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// Whether a key can verify this algorithm at all (RSA for RS256, P-256 for ES256, OKP for EdDSA).
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    matches!(
        (&jwk.algorithm, alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS256)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
            | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// What a token must satisfy besides its signature.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a [String],
    pub algorithms: &'a [TokenAlg],
    pub leeway: Duration,
    /// Claims that must be present (`exp` for access tokens; `iat`, `jti` for logout tokens).
    pub required: &'a [&'a str],
    /// Check `exp` (logout tokens may lack it).
    pub check_exp: bool,
}

/// Whether jsonwebtoken has its crypto backend. It needs exactly one of its backend features on
/// (`rust_crypto` here); if another crate ever turned on the other one as well, every token check
/// and every ES256 assertion would panic. Checked once at start-up instead.
pub fn crypto_ready() -> Result<(), String> {
    jsonwebtoken::crypto::CryptoProvider::try_get_default()
        .map(|_| ())
        .ok_or_else(|| {
            "jsonwebtoken has no crypto backend: exactly one of its features `rust_crypto` and \
             `aws_lc_rs` must be on (check `cargo tree -e features -i jsonwebtoken`)"
                .to_string()
        })
}

/// Verifies a compact JWS and returns its claims.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    want: &Expect<'_>,
) -> Result<Map<String, Value>, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed(format!("{} bytes", token.len())));
    }
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Algorithm(e.to_string()))?;
    let alg = header.alg;
    if !want.algorithms.iter().any(|a| alg_of(*a) == alg) {
        return Err(TokenError::Algorithm(format!("{alg:?}")));
    }
    let jwk = match &header.kid {
        Some(kid) => keys
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str()) && key_fits(k, alg))
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?,
        None => {
            let mut fitting = keys.keys.iter().filter(|k| key_fits(k, alg));
            match (fitting.next(), fitting.next()) {
                (Some(k), None) => k,
                _ => {
                    return Err(TokenError::UnknownKey(
                        "no kid and no single fitting key".into(),
                    ))
                }
            }
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Invalid(format!("key: {e}")))?;
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = want.leeway.as_secs();
    v.set_issuer(&[want.issuer]);
    v.set_audience(want.audience);
    v.validate_exp = want.check_exp;
    v.validate_nbf = true;
    v.set_required_spec_claims(want.required);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let claims = data.claims;
    // jsonwebtoken 9 takes a time claim it cannot parse as absent (CVE-2026-25537): `nbf` as a
    // string would never be checked. Every time claim is checked here again, type first.
    check_times(&claims, want)?;
    Ok(claims)
}

/// The unverified `iss` of a token: only to choose which provider's keys to verify it with.
pub fn peek_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

/// The claims of a token whose signature was already checked (by openidconnect, for ID tokens).
pub fn payload(token: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

/// An issuer's SM2 signing key.
#[derive(Clone, Debug)]
pub struct Sm2Key {
    pub kid: Option<String>,
    pub key: menwei_gm::Sm2Public,
}

/// SM2 keys (`kty` EC, `crv` SM2) of a JWKS document; others are skipped.
pub fn sm2_keys(jwks: &Value, distid: &str) -> Vec<Sm2Key> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    jwks.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| k.get("crv").and_then(Value::as_str) == Some("SM2"))
        .filter_map(|k| {
            let x = b64.decode(k.get("x")?.as_str()?).ok()?;
            let y = b64.decode(k.get("y")?.as_str()?).ok()?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let key = menwei_gm::Sm2Public::from_hex(
                distid,
                &format!("04{}{}", hex::encode(x), hex::encode(y)),
            )
            .ok()?;
            Some(Sm2Key {
                kid: k.get("kid").and_then(Value::as_str).map(str::to_string),
                key,
            })
        })
        .collect()
}

/// The `alg` of a compact JWS header, unverified (to choose the verification path).
pub fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let h = token.split('.').next()?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

/// Verifies an SM2-signed JWT (the issuer's pinned `alg`) and checks its claims as `verify` does.
pub fn verify_sm2(
    token: &str,
    keys: &[Sm2Key],
    alg: &str,
    encoding: menwei_gm::SigEncoding,
    want: &Expect<'_>,
) -> Result<Map<String, Value>, TokenError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed(format!("{} bytes", token.len())));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(TokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    };
    let header: Value = b64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| TokenError::Malformed("header".into()))?;
    if header.get("alg").and_then(Value::as_str) != Some(alg) {
        return Err(TokenError::Algorithm("not the issuer's SM2 alg".into()));
    }
    // RFC 7515 4.1.11: a recipient must refuse extensions it does not understand, and this one
    // understands none (`b64: false`, for one, would change what was signed).
    if header.get("crit").is_some() {
        return Err(TokenError::Invalid(
            "critical header extensions are not supported".into(),
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string".into())),
    };
    let key = match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| TokenError::UnknownKey(kid.to_string()))?,
        None if keys.len() == 1 => &keys[0],
        None => return Err(TokenError::UnknownKey("no kid and not one SM2 key".into())),
    };
    let sig = b64
        .decode(s)
        .map_err(|_| TokenError::Malformed("signature".into()))?;
    key.key
        .verify(format!("{h}.{p}").as_bytes(), &sig, encoding)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let claims: Map<String, Value> = b64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| TokenError::Malformed("payload".into()))?;
    check_claims(&claims, want)?;
    Ok(claims)
}

/// Claim checks for tokens verified outside jsonwebtoken: required, iss, aud, exp, nbf, iat.
fn check_claims(c: &Map<String, Value>, want: &Expect<'_>) -> Result<(), TokenError> {
    let bad = |s: &str| Err(TokenError::Invalid(s.to_string()));
    for r in want.required {
        if !c.contains_key(*r) {
            return bad(&format!("missing {r}"));
        }
    }
    if c.get("iss").and_then(Value::as_str) != Some(want.issuer) {
        return bad("issuer");
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => want.audience.iter().any(|w| w == a),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|a| want.audience.iter().any(|w| w == a)),
        _ => false,
    };
    if !aud_ok {
        return bad("audience");
    }
    check_times(c, want)
}

/// The time claims present (`exp` when `want.check_exp`, `nbf`, `iat`): each must be a whole
/// number of seconds (RFC 7519's NumericDate as providers issue it), and `exp` not past, `nbf`
/// and `iat` not in the future, with the leeway. A claim of another type is refused, never
/// taken as absent.
fn check_times(c: &Map<String, Value>, want: &Expect<'_>) -> Result<(), TokenError> {
    let bad = |s: &str| Err(TokenError::Invalid(s.to_string()));
    let time = |name: &str| match c.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| TokenError::Invalid(format!("{name} is not a whole number of seconds"))),
    };
    let now = crate::now_secs();
    let leeway = want.leeway.as_secs();
    if want.check_exp && time("exp")?.is_some_and(|e| e.saturating_add(leeway) < now) {
        return bad("expired");
    }
    if time("nbf")?.is_some_and(|n| n > now.saturating_add(leeway)) {
        return bad("not yet valid");
    }
    if time("iat")?.is_some_and(|i| i > now.saturating_add(leeway)) {
        return bad("issued in the future");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const ISS: &str = "https://idp.example";

    /// A fresh P-256 key: the ring key pair, its PKCS#8 document and its JWKS (one key, `kid`
    /// "k1").
    fn p256() -> (EcdsaKeyPair, Vec<u8>, JwkSet) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let p = pair.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1",
            "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}]});
        (
            pair,
            pkcs8.as_ref().to_vec(),
            serde_json::from_value(jwks).unwrap(),
        )
    }

    /// A P-256 key as jsonwebtoken signs with it, and its JWKS.
    fn es256() -> (EncodingKey, JwkSet) {
        let (_, pkcs8, jwks) = p256();
        (EncodingKey::from_ec_der(&pkcs8), jwks)
    }

    /// A compact JWS of `header` and `claims` exactly as written, signed by `sign`.
    fn compact(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(sig))
    }

    fn sign(key: &EncodingKey, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, claims, key).unwrap()
    }

    fn access(aud: &[String]) -> Expect<'_> {
        Expect {
            issuer: ISS,
            audience: aud,
            algorithms: &[TokenAlg::ES256],
            leeway: Duration::from_secs(30),
            required: &["exp", "iss", "aud", "sub"],
            check_exp: true,
        }
    }

    /// Time claims must be numbers (RFC 7519's NumericDate). One of another type is refused,
    /// never taken as absent: jsonwebtoken 9 skips a `nbf` or unrequired `exp` it cannot parse
    /// (CVE-2026-25537), so a token "not valid before" a string date would pass.
    #[test]
    fn time_claims_of_the_wrong_type_are_refused() {
        let (key, jwks) = es256();
        let aud = vec!["api".to_string()];
        let now = crate::now_secs();
        let good = json!({"iss": ISS, "aud": "api", "sub": "svc", "exp": now + 60, "iat": now});
        assert!(verify(&sign(&key, &good), &jwks, &access(&aud)).is_ok());
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        let far = (now + 10_000_000).to_string();
        let bad = [
            ("nbf in the future", with("nbf", json!(now + 600))),
            ("nbf as a string", with("nbf", json!(far))),
            ("nbf as an object", with("nbf", json!({"t": now + 600}))),
            ("nbf null", with("nbf", Value::Null)),
            ("exp as a string", with("exp", json!("never"))),
            ("exp as a float", with("exp", json!(now as f64 + 60.5))),
            ("exp in the past", with("exp", json!(now - 600))),
            ("iat as a string", with("iat", json!(far))),
            ("iat in the future", with("iat", json!(now + 600))),
            ("iat negative", with("iat", json!(-1))),
        ];
        for (what, claims) in &bad {
            assert!(
                verify(&sign(&key, claims), &jwks, &access(&aud)).is_err(),
                "{what} was accepted"
            );
        }
        // A logout token need not carry exp; if it does, it is checked like any other.
        let logout = Expect {
            required: &["iss", "aud", "iat", "jti"],
            ..access(&aud)
        };
        let mut l = with("jti", json!("j1"));
        l.as_object_mut().unwrap().remove("exp");
        assert!(verify(&sign(&key, &l), &jwks, &logout).is_ok());
        for exp in [json!("never"), json!(now - 600), json!([now + 60])] {
            let mut c = l.clone();
            c["exp"] = exp.clone();
            assert!(
                verify(&sign(&key, &c), &jwks, &logout).is_err(),
                "logout token with exp {exp} was accepted"
            );
        }
    }

    #[test]
    fn the_crypto_backend_is_there() {
        assert_eq!(crypto_ready(), Ok(()));
    }

    /// A JWS header naming critical extensions is refused (RFC 7515 4.1.11: menwei understands
    /// none), on the jsonwebtoken path too. Signed here with ring directly, header and all.
    #[test]
    fn critical_extensions_are_refused() {
        let (pair, _, jwks) = p256();
        let rng = ring::rand::SystemRandom::new();
        let now = crate::now_secs();
        let claims = json!({"iss": ISS, "aud": "api", "sub": "svc", "exp": now + 60});
        let token = |header: Value| {
            compact(&header, &claims, |m| {
                pair.sign(&rng, m).unwrap().as_ref().to_vec()
            })
        };
        let aud = vec!["api".to_string()];
        let plain = token(json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}));
        assert!(verify(&plain, &jwks, &access(&aud)).is_ok());
        let crit = token(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": now}));
        assert!(verify(&crit, &jwks, &access(&aud)).is_err());
        // The same header without `crit` passes: the refusal is the extension's.
        let extra = token(json!({"alg": "ES256", "kid": "k1", "exp": now}));
        assert!(verify(&extra, &jwks, &access(&aud)).is_ok());
    }

    /// An SM2-signed token (the issuer's pinned `alg`): verified, and refused with a `crit`
    /// header or a `kid` that is not a string, as jsonwebtoken refuses them on the other path.
    #[test]
    fn sm2_tokens_refuse_what_they_do_not_understand() {
        let sk = menwei_gm::Sm2Private::generate(menwei_gm::DEFAULT_ID).unwrap();
        let keys = [Sm2Key {
            kid: Some("s1".into()),
            key: sk.public(),
        }];
        let aud = vec!["api".to_string()];
        let now = crate::now_secs();
        let claims = json!({"iss": ISS, "aud": "api", "sub": "svc", "exp": now + 60});
        let enc = menwei_gm::SigEncoding::Raw;
        let token = |header: Value| compact(&header, &claims, |m| sk.sign(m, enc));
        let check = |t: &str| verify_sm2(t, &keys, "SM2-SM3", enc, &access(&aud));
        assert!(check(&token(json!({"alg": "SM2-SM3", "kid": "s1"}))).is_ok());
        assert!(
            check(&token(json!({"alg": "SM2-SM3"}))).is_ok(),
            "one key, no kid"
        );
        for header in [
            json!({"alg": "SM2-SM3", "kid": "s1", "crit": ["b64"], "b64": false}),
            json!({"alg": "SM2-SM3", "kid": "s1", "crit": []}),
            json!({"alg": "SM2-SM3", "kid": 1}),
            json!({"alg": "ES256", "kid": "s1"}),
        ] {
            assert!(
                check(&token(header.clone())).is_err(),
                "{header} was accepted"
            );
        }
    }

    /// The SM2 path checks the same claims by itself, with the same outcome.
    #[test]
    fn claims_checked_outside_jsonwebtoken_agree() {
        let aud = vec!["api".to_string()];
        let now = crate::now_secs();
        let good = json!({"iss": ISS, "aud": "api", "sub": "svc", "exp": now + 60, "iat": now});
        let claims = |v: &Value| v.as_object().unwrap().clone();
        assert!(check_claims(&claims(&good), &access(&aud)).is_ok());
        for (k, v) in [
            ("nbf", json!((now + 600).to_string())),
            ("exp", json!("never")),
            ("exp", json!(now as f64 + 60.5)),
            ("iat", json!((now + 600).to_string())),
            ("iat", json!(-1)),
        ] {
            let mut c = good.clone();
            c[k] = v.clone();
            assert!(
                check_claims(&claims(&c), &access(&aud)).is_err(),
                "{k} = {v} was accepted"
            );
        }
    }
}
