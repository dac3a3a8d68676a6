//! Sealed cookie values and stored records: AES-256-GCM (ring) or SM4-GCM (menwei-gm) with a
//! random 96-bit nonce per value and the cookie name (or record key) as associated data, so a
//! value cannot be moved to another cookie or record. Opening never panics: anything short,
//! long, non-base64 or forged is `None`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Longest cookie value ever opened (a sealed session id is 80 characters).
pub const MAX_SEALED: usize = 512;

/// Which AEAD seals cookies and stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM (ring).
    Aes256Gcm,
    /// SM4-GCM (RFC 8998), for deployments that must use the national algorithms (密评); its
    /// 128-bit key is HMAC-SM3(session key, "menwei session SM4-GCM key")[..16].
    Sm4Gcm,
}

enum Key {
    Aes(Box<LessSafeKey>),
    Sm4([u8; 16]),
}

pub struct Sealer {
    key: Key,
    rng: SystemRandom,
}

const TAG_LEN: usize = 16;

impl Sealer {
    pub fn new(key: &[u8; 32], cipher: Cipher) -> Option<Self> {
        let key = match cipher {
            Cipher::Aes256Gcm => Key::Aes(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key).ok()?,
            ))),
            Cipher::Sm4Gcm => {
                let d = menwei_gm::hmac_sm3(key, b"menwei session SM4-GCM key");
                let mut k = [0u8; 16];
                k.copy_from_slice(&d[..16]);
                Key::Sm4(k)
            }
        };
        Some(Self {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Nonce || ciphertext || tag.
    pub fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let body = match &self.key {
            Key::Aes(k) => {
                let mut buf = plain.to_vec();
                k.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut buf,
                )
                .ok()?;
                buf
            }
            Key::Sm4(k) => menwei_gm::sm4gcm::seal(k, &nonce, aad, plain),
        };
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Some(out)
    }

    pub fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        match &self.key {
            Key::Aes(k) => {
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut buf = rest.to_vec();
                let plain = k.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
                Some(plain.to_vec())
            }
            Key::Sm4(k) => {
                let n: [u8; NONCE_LEN] = nonce.try_into().ok()?;
                menwei_gm::sm4gcm::open(k, &n, aad, rest).ok()
            }
        }
    }

    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<String> {
        self.seal_bytes(aad, plain).map(|b| B64.encode(b))
    }

    pub fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        if sealed.is_empty() || sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = B64.decode(sealed).ok()?;
        self.open_bytes(aad, &raw)
    }
}

/// Random bytes as URL-safe base64 (session ids, login states).
pub fn random_token(bytes: usize) -> Option<String> {
    let mut b = vec![0u8; bytes];
    SystemRandom::new().fill(&mut b).ok()?;
    Some(B64.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::new(&[7u8; 32], Cipher::Aes256Gcm).unwrap();
        let v = s.seal(b"c", b"session-id").unwrap();
        assert_eq!(s.open(b"c", &v).unwrap(), b"session-id");
        assert!(
            s.open(b"other-cookie", &v).is_none(),
            "bound to the cookie name"
        );
        let mut bytes = B64.decode(&v).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(s.open(b"c", &B64.encode(bytes)).is_none());
        let other = Sealer::new(&[8u8; 32], Cipher::Aes256Gcm).unwrap();
        assert!(other.open(b"c", &v).is_none(), "another key cannot open it");
        for junk in [
            "",
            "a",
            "%%%",
            &"A".repeat(600),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(s.open(b"c", junk).is_none());
        }
    }

    #[test]
    fn sm4_gcm_seals_too() {
        let s = Sealer::new(&[7u8; 32], Cipher::Sm4Gcm).unwrap();
        let v = s.seal(b"c", b"session-id").unwrap();
        assert_eq!(s.open(b"c", &v).unwrap(), b"session-id");
        assert!(s.open(b"d", &v).is_none());
        let aes = Sealer::new(&[7u8; 32], Cipher::Aes256Gcm).unwrap();
        assert!(aes.open(b"c", &v).is_none(), "ciphers do not mix");
        let mut raw = B64.decode(&v).unwrap();
        raw[20] ^= 1;
        assert!(s.open(b"c", &B64.encode(raw)).is_none());
    }

    #[test]
    fn nonces_differ() {
        let s = Sealer::new(&[7u8; 32], Cipher::Aes256Gcm).unwrap();
        assert_ne!(s.seal(b"c", b"x"), s.seal(b"c", b"x"));
    }
}
