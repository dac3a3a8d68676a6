//! The identity assertion: a short-lived ES256 JWT signed by the gateway and sent to backends in
//! `X-Menwei-Assertion`, so a backend can check that a request really passed the gateway. The
//! public key is served as a JWKS at `/.menwei/jwks.json`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use sha2_kid::kid_of;

mod sha2_kid {
    /// Key id: the first 16 hex digits of SHA-256 over the uncompressed public point.
    pub fn kid_of(public: &[u8]) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, public);
        d.as_ref()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Issuer of every assertion.
pub const ISSUER: &str = "menwei";

enum Key {
    Es256(EncodingKey),
    /// SM3withSM2 with the default distinguishing id; JWT `alg` = `SM2-SM3`, signature `r || s`.
    Sm2(menwei_gm::Sm2Private),
}

pub struct Signer {
    key: Key,
    kid: String,
    jwks: String,
}

/// The JWS `alg` of SM2 assertions (there is no registered JOSE name; backends pin this string).
pub const SM2_ALG: &str = "SM2-SM3";

impl Signer {
    /// From PKCS#8 DER of a P-256 key (checked when the policy loaded).
    pub fn new(pkcs8: &[u8]) -> Option<Self> {
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).ok()?;
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return None;
        }
        let kid = kid_of(public);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
        }]})
        .to_string();
        Some(Self {
            key: Key::Es256(EncodingKey::from_ec_der(pkcs8)),
            kid,
            jwks,
        })
    }

    /// From PKCS#8 PEM of an SM2 key.
    pub fn new_sm2(pem: &[u8]) -> Option<Self> {
        let key =
            menwei_gm::Sm2Private::from_pem(menwei_gm::DEFAULT_ID, std::str::from_utf8(pem).ok()?)
                .ok()?;
        let public = hex::decode(key.public().to_hex()).ok()?;
        if public.len() != 65 {
            return None;
        }
        let kid = kid_of(&public);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "SM2", "alg": SM2_ALG, "use": "sig", "kid": kid,
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
            "distid": menwei_gm::DEFAULT_ID,
        }]})
        .to_string();
        Some(Self {
            key: Key::Sm2(key),
            kid,
            jwks,
        })
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// Signs `claims` (the caller sets sub, roles, route, request id...) with `iss`, `iat`,
    /// `exp` added.
    pub fn sign(&self, mut claims: Map<String, Value>, ttl_secs: u64) -> Option<String> {
        let now = crate::now_secs();
        claims.insert("iss".into(), ISSUER.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl_secs).into());
        match &self.key {
            Key::Es256(k) => {
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some(self.kid.clone());
                h.typ = Some("menwei-assertion+jwt".into());
                jsonwebtoken::encode(&h, &claims, k).ok()
            }
            Key::Sm2(k) => {
                let header =
                    json!({"alg": SM2_ALG, "typ": "menwei-assertion+jwt", "kid": self.kid});
                let input = format!(
                    "{}.{}",
                    B64.encode(header.to_string()),
                    B64.encode(Value::Object(claims).to_string())
                );
                let sig = k.sign(input.as_bytes(), menwei_gm::SigEncoding::Raw);
                Some(format!("{input}.{}", B64.encode(sig)))
            }
        }
    }
}
