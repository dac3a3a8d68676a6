//! National cryptography for menwei: SM3 (GB/T 32905), HMAC-SM3, SM4 (GB/T 32907) with GCM
//! (RFC 8998), and SM2 signatures (GB/T 32918, GM/T 0009) behind a narrow API of our own.
//! RustCrypto does the mathematics; this crate fixes the choices that interoperability and
//! 密评 depend on:
//!
//! - the SM2 distinguishing id is always explicit (default [`DEFAULT_ID`], GM/T 0009);
//! - signatures are SM3withSM2 over `Z_A || M` (never a bare hash), in DER or raw `r || s`, as
//!   the counterpart's policy says;
//! - keys are read from PEM/DER (PKCS#8, SPKI) or raw hex, with or without the `04` prefix;
//! - every parser returns an error on bad input, never panics.

use hmac::{KeyInit, Mac};
use sm2::dsa::signature::{Signer, Verifier};
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm3::Digest;

pub mod audit;
pub mod cert;
pub mod signature;

/// The default SM2 distinguishing id of GM/T 0009-2012 (`1234567812345678`).
pub const DEFAULT_ID: &str = "1234567812345678";

/// Why an operation failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GmError {
    /// A key that cannot be parsed or is not a valid point / scalar.
    Key(String),
    /// A signature that cannot be parsed (wrong length, bad DER, zero r or s).
    SignatureFormat(String),
    /// A well-formed signature that does not verify.
    BadSignature,
    /// A distinguishing id that cannot be used (longer than 8191 bytes).
    Id,
    /// Authenticated decryption failed (tampered, wrong key or nonce).
    Decrypt,
}

impl std::fmt::Display for GmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GmError::Key(s) => write!(f, "unusable SM2 key: {s}"),
            GmError::SignatureFormat(s) => write!(f, "malformed SM2 signature: {s}"),
            GmError::BadSignature => f.write_str("SM2 signature does not verify"),
            GmError::Id => f.write_str("unusable SM2 distinguishing id"),
            GmError::Decrypt => f.write_str("decryption failed"),
        }
    }
}

impl std::error::Error for GmError {}

/// SM3 digest.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

type HmacSm3 = hmac::Hmac<sm3::Sm3>;

/// HMAC-SM3 (RFC 2104 construction with SM3, block 64 bytes).
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    match <HmacSm3 as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// Checks an HMAC-SM3 tag in constant time.
pub fn hmac_sm3_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match <HmacSm3 as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

/// How a signature is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigEncoding {
    /// ASN.1 DER `SEQUENCE { r INTEGER, s INTEGER }` (OpenSSL, BouncyCastle, `der: true`).
    Der,
    /// 64 bytes `r || s` (sm-crypto's default, many SDKs).
    Raw,
}

fn check_id(id: &str) -> Result<(), GmError> {
    if id.len() > 8191 {
        return Err(GmError::Id);
    }
    Ok(())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.trim()).ok()
}

/// Layout of an SM2 ciphertext (GB/T 32918.4): the current standard order `C1 || C3 || C2`, or
/// the old `C1 || C2 || C3` that some libraries (PyPI gmssl) still default to. C1 is an
/// uncompressed point with its `04` prefix; npm sm-crypto omits the prefix (add `04` first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherLayout {
    C1C3C2,
    C1C2C3,
}

impl CipherLayout {
    fn mode(self) -> sm2::pke::Mode {
        match self {
            CipherLayout::C1C3C2 => sm2::pke::Mode::C1C3C2,
            CipherLayout::C1C2C3 => sm2::pke::Mode::C1C2C3,
        }
    }
}

/// An SM2 public key with the distinguishing id its owner signs with.
#[derive(Clone, Debug)]
pub struct Sm2Public {
    key: sm2::dsa::VerifyingKey,
}

impl Sm2Public {
    fn from_point(id: &str, sec1: &[u8]) -> Result<Self, GmError> {
        check_id(id)?;
        sm2::dsa::VerifyingKey::from_sec1_bytes(id, sec1)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("not a point on the SM2 curve".into()))
    }

    /// From PEM: SPKI (`BEGIN PUBLIC KEY`) or a certificate is not accepted here.
    pub fn from_pem(id: &str, pem: &str) -> Result<Self, GmError> {
        let pk = sm2::PublicKey::from_public_key_pem(pem.trim())
            .map_err(|e| GmError::Key(format!("not an SM2 SPKI PEM: {e}")))?;
        check_id(id)?;
        sm2::dsa::VerifyingKey::new(id, pk)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("invalid public key".into()))
    }

    /// From SPKI DER.
    pub fn from_der(id: &str, der: &[u8]) -> Result<Self, GmError> {
        let pk = sm2::PublicKey::from_public_key_der(der)
            .map_err(|e| GmError::Key(format!("not an SM2 SPKI DER: {e}")))?;
        check_id(id)?;
        sm2::dsa::VerifyingKey::new(id, pk)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("invalid public key".into()))
    }

    /// From hex: `04 || x || y` (130 digits), `x || y` (128 digits), or compressed (66 digits).
    pub fn from_hex(id: &str, hex: &str) -> Result<Self, GmError> {
        let raw = unhex(hex).ok_or_else(|| GmError::Key("not hex".into()))?;
        match raw.len() {
            65 | 33 => Self::from_point(id, &raw),
            64 => {
                let mut p = Vec::with_capacity(65);
                p.push(4);
                p.extend_from_slice(&raw);
                Self::from_point(id, &p)
            }
            n => Err(GmError::Key(format!(
                "{n} bytes; expected 64 (x||y), 65 (04||x||y) or 33 (compressed)"
            ))),
        }
    }

    /// Reads PEM, hex, or DER, whichever `bytes` is.
    pub fn parse(id: &str, bytes: &[u8]) -> Result<Self, GmError> {
        match std::str::from_utf8(bytes) {
            Ok(t) if t.contains("-----BEGIN") => Self::from_pem(id, t),
            Ok(t) if unhex(t).is_some() => Self::from_hex(id, t),
            _ => Self::from_der(id, bytes),
        }
    }

    /// `04 || x || y` as hex.
    pub fn to_hex(&self) -> String {
        self.key
            .to_sec1_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// SPKI PEM.
    pub fn to_pem(&self) -> Result<String, GmError> {
        sm2::PublicKey::from_affine(*self.key.as_affine())
            .map_err(|_| GmError::Key("invalid point".into()))?
            .to_public_key_pem(sm2::pkcs8::LineEnding::LF)
            .map_err(|e| GmError::Key(e.to_string()))
    }

    /// SM2 public-key encryption (GB/T 32918.4) of `msg`.
    pub fn encrypt(&self, msg: &[u8], layout: CipherLayout) -> Result<Vec<u8>, GmError> {
        let pk = sm2::PublicKey::from_affine(*self.key.as_affine())
            .map_err(|_| GmError::Key("invalid point".into()))?;
        sm2::pke::EncryptingKey::new_with_mode(pk, layout.mode())
            .encrypt(&mut getrandom::SysRng, msg)
            .map_err(|_| GmError::Key("encryption failed".into()))
    }

    /// The distinguishing id this key verifies with.
    pub fn id(&self) -> &str {
        self.key.distid()
    }

    /// Verifies an SM3withSM2 signature of `msg` (Z_A computed from this key and its id).
    pub fn verify(&self, msg: &[u8], sig: &[u8], enc: SigEncoding) -> Result<(), GmError> {
        let sig = match enc {
            SigEncoding::Der => sm2::dsa::Signature::from_der(sig),
            SigEncoding::Raw => sm2::dsa::Signature::from_slice(sig),
        }
        .map_err(|_| {
            GmError::SignatureFormat(match enc {
                SigEncoding::Der => "not a DER SEQUENCE of two integers in range".into(),
                SigEncoding::Raw => format!("{} bytes, expected 64 (r||s) in range", sig.len()),
            })
        })?;
        self.key
            .verify(msg, &sig)
            .map_err(|_| GmError::BadSignature)
    }
}

/// An SM2 private key with the distinguishing id it signs with. Never printed.
#[derive(Clone)]
pub struct Sm2Private {
    key: sm2::dsa::SigningKey,
}

impl std::fmt::Debug for Sm2Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2Private([redacted])")
    }
}

impl Sm2Private {
    /// A new random key (OS randomness).
    pub fn generate(id: &str) -> Result<Self, GmError> {
        use sm2::elliptic_curve::Generate;
        check_id(id)?;
        let sk = sm2::SecretKey::generate();
        sm2::dsa::SigningKey::new(id, &sk)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("invalid private key".into()))
    }

    /// From PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn from_pem(id: &str, pem: &str) -> Result<Self, GmError> {
        let sk = sm2::SecretKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| GmError::Key("not an SM2 PKCS#8 PEM private key".into()))?;
        check_id(id)?;
        sm2::dsa::SigningKey::new(id, &sk)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("invalid private key".into()))
    }

    /// From 64 hex digits.
    pub fn from_hex(id: &str, hex: &str) -> Result<Self, GmError> {
        let raw = unhex(hex).ok_or_else(|| GmError::Key("not hex".into()))?;
        if raw.len() != 32 {
            return Err(GmError::Key(format!("{} bytes, expected 32", raw.len())));
        }
        check_id(id)?;
        sm2::dsa::SigningKey::from_slice(id, &raw)
            .map(|key| Self { key })
            .map_err(|_| GmError::Key("scalar out of range".into()))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, GmError> {
        let sk = sm2::SecretKey::from_bytes(&self.key.to_bytes())
            .map_err(|_| GmError::Key("invalid scalar".into()))?;
        sk.to_pkcs8_pem(sm2::pkcs8::LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| GmError::Key(e.to_string()))
    }

    pub fn public(&self) -> Sm2Public {
        Sm2Public {
            key: self.key.verifying_key().clone(),
        }
    }

    /// Decrypts an SM2 ciphertext; the C3 digest is checked (a tampered or truncated
    /// ciphertext, or the wrong layout, is `GmError::Decrypt`).
    pub fn decrypt(&self, ct: &[u8], layout: CipherLayout) -> Result<Vec<u8>, GmError> {
        sm2::pke::DecryptingKey::new_with_mode(*self.key.as_nonzero_scalar(), layout.mode())
            .decrypt(ct)
            .map_err(|_| GmError::Decrypt)
    }

    /// SM3withSM2 signature of `msg`.
    pub fn sign(&self, msg: &[u8], enc: SigEncoding) -> Vec<u8> {
        let sig: sm2::dsa::Signature = self.key.sign(msg);
        match enc {
            SigEncoding::Der => sig.to_der().to_vec(),
            SigEncoding::Raw => sig.to_vec(),
        }
    }
}

/// SM4-GCM (RFC 8998): 16-byte key, 12-byte nonce, 16-byte tag appended.
pub mod sm4gcm {
    use super::GmError;
    use aes_gcm::aead::{Aead, KeyInit, Payload};

    type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>;

    pub fn seal(key: &[u8; 16], nonce: &[u8; 12], aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let c = Sm4Gcm::new(key.into());
        c.encrypt(nonce.into(), Payload { msg: plain, aad })
            .unwrap_or_default()
    }

    pub fn open(
        key: &[u8; 16],
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, GmError> {
        let c = Sm4Gcm::new(key.into());
        c.decrypt(nonce.into(), Payload { msg: sealed, aad })
            .map_err(|_| GmError::Decrypt)
    }
}
