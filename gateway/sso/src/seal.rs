//! Sealed cookie values: AES-256-GCM (ring) with a random 96-bit nonce per value and the cookie
//! name as associated data, so a value cannot be moved to another cookie. Opening never panics:
//! anything short, long, non-base64 or forged is `None`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Longest cookie value ever opened (a sealed session id is 80 characters).
pub const MAX_SEALED: usize = 512;

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(B64.encode(out))
    }

    pub fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        if sealed.is_empty() || sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
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
        let s = Sealer::new(&[7u8; 32]).unwrap();
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
        let other = Sealer::new(&[8u8; 32]).unwrap();
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
    fn nonces_differ() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        assert_ne!(s.seal(b"c", b"x"), s.seal(b"c", b"x"));
    }
}
