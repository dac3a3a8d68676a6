#![allow(clippy::unwrap_used)]
//! Known-answer tests: the official vectors (GB/T 32905 SM3, GB/T 32907 SM4, GB/T 32918.5 SM2
//! signature on the recommended curve, RFC 8998 SM4-GCM), copied from their sources (see
//! shared/corpora/gm/vectors.json in the workplace); and cross-checks that are not official.

use menwei_gm::*;

fn h(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn sm3_gbt_32905_annex_a() {
    assert_eq!(
        sm3(b"abc").to_vec(),
        h("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    );
    assert_eq!(
        sm3(&b"abcd".repeat(16)).to_vec(),
        h("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
    );
}

#[test]
fn sm4_gbt_32907_annex_a_including_a_million_rounds() {
    use sm4::cipher::{BlockCipherEncrypt, KeyInit};
    let key = h("0123456789abcdeffedcba9876543210");
    let c = sm4::Sm4::new_from_slice(&key).unwrap();
    let mut block = sm4::cipher::Array::try_from(&key[..]).unwrap();
    c.encrypt_block(&mut block);
    assert_eq!(block.to_vec(), h("681edf34d206965e86b3e94f536e4246"));
    let mut block = sm4::cipher::Array::try_from(&key[..]).unwrap();
    for _ in 0..1_000_000 {
        c.encrypt_block(&mut block);
    }
    assert_eq!(block.to_vec(), h("595298c7c6fd271f0402f804c33d3f66"));
}

#[test]
fn sm4_gcm_rfc_8998_a1() {
    let key: [u8; 16] = h("0123456789ABCDEFFEDCBA9876543210").try_into().unwrap();
    let nonce: [u8; 12] = h("00001234567800000000ABCD").try_into().unwrap();
    let aad = h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
    let plain = h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA");
    let mut want = h("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D");
    want.extend(h("83DE3541E4C2B58177E065A9BF7B62EC"));
    let sealed = sm4gcm::seal(&key, &nonce, &aad, &plain);
    assert_eq!(sealed, want);
    assert_eq!(sm4gcm::open(&key, &nonce, &aad, &sealed).unwrap(), plain);
    let mut bad = sealed.clone();
    bad[3] ^= 1;
    assert_eq!(
        sm4gcm::open(&key, &nonce, &aad, &bad),
        Err(GmError::Decrypt)
    );
    assert!(sm4gcm::open(&key, &nonce, b"other aad", &sealed).is_err());
}

#[test]
fn hmac_sm3_crosscheck_not_official() {
    // Computed with OpenSSL 3 (`openssl mac -digest SM3 HMAC`); not an official vector.
    let key = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let want = h("a8f95cf26f204957e7ca73c9602a25dda35f168b28103b51dfc968c810416b63");
    assert_eq!(hmac_sm3(&key, b"abc").to_vec(), want);
    assert!(hmac_sm3_verify(&key, b"abc", &want));
    assert!(!hmac_sm3_verify(&key, b"abd", &want));
    assert!(!hmac_sm3_verify(&key, b"abc", &want[..31]));
    assert_eq!(
        hmac_sm3(b"Jefe", b"what do ya want for nothing?").to_vec(),
        h("2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882")
    );
}

const PRIV: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const PUB: &str = "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
const R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
const S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";
const DER: &str = "3046022100F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3022100B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

#[test]
fn sm2_signature_gbt_32918_5_annex_a() {
    let public = Sm2Public::from_hex(DEFAULT_ID, PUB).unwrap();
    let msg = b"message digest";
    public.verify(msg, &h(DER), SigEncoding::Der).unwrap();
    let raw = [h(R), h(S)].concat();
    public.verify(msg, &raw, SigEncoding::Raw).unwrap();
    // The key pair of the example matches.
    let private = Sm2Private::from_hex(DEFAULT_ID, PRIV).unwrap();
    assert_eq!(private.public().to_hex(), PUB.to_ascii_lowercase());
    // The same signature under another id, message, key, or encoding fails.
    let other_id = Sm2Public::from_hex("", PUB).unwrap();
    assert_eq!(
        other_id.verify(msg, &h(DER), SigEncoding::Der),
        Err(GmError::BadSignature)
    );
    assert_eq!(
        public.verify(b"message digesT", &h(DER), SigEncoding::Der),
        Err(GmError::BadSignature)
    );
    let other_key = Sm2Private::generate(DEFAULT_ID).unwrap().public();
    assert_eq!(
        other_key.verify(msg, &h(DER), SigEncoding::Der),
        Err(GmError::BadSignature)
    );
    assert!(matches!(
        public.verify(msg, &h(DER), SigEncoding::Raw),
        Err(GmError::SignatureFormat(_))
    ));
    assert!(matches!(
        public.verify(msg, &raw, SigEncoding::Der),
        Err(GmError::SignatureFormat(_))
    ));
    // Without the 04 prefix (sm-crypto's public keys).
    Sm2Public::from_hex(DEFAULT_ID, &PUB[2..])
        .unwrap()
        .verify(msg, &raw, SigEncoding::Raw)
        .unwrap();
}

#[test]
fn sign_and_keys_round_trip() {
    let k = Sm2Private::generate(DEFAULT_ID).unwrap();
    for enc in [SigEncoding::Der, SigEncoding::Raw] {
        let sig = k.sign(b"hello", enc);
        k.public().verify(b"hello", &sig, enc).unwrap();
    }
    let pem = k.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let k2 = Sm2Private::from_pem(DEFAULT_ID, &pem).unwrap();
    assert_eq!(k2.public().to_hex(), k.public().to_hex());
    let pub_pem = k.public().to_pem().unwrap();
    let p = Sm2Public::parse(DEFAULT_ID, pub_pem.as_bytes()).unwrap();
    assert_eq!(p.to_hex(), k.public().to_hex());
    assert_eq!(format!("{k:?}"), "Sm2Private([redacted])");
}

#[test]
fn bad_keys_and_signatures_are_errors_not_panics() {
    let p = Sm2Public::from_hex(DEFAULT_ID, PUB).unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        vec![0u8; 64],
        vec![0xffu8; 64],
        vec![0u8; 200],
        h(DER)[..20].to_vec(),
    ];
    for j in &junk {
        assert!(p.verify(b"m", j, SigEncoding::Der).is_err());
        assert!(p.verify(b"m", j, SigEncoding::Raw).is_err());
    }
    for bad in [
        "",
        "04",
        "zz",
        &"00".repeat(65),
        &format!("04{}", "00".repeat(64)),
        &PUB[..PUB.len() - 2],
        &format!("{}00", &PUB[..PUB.len() - 2]),
    ] {
        assert!(Sm2Public::from_hex(DEFAULT_ID, bad).is_err(), "{bad}");
    }
    assert!(Sm2Public::parse(
        DEFAULT_ID,
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    )
    .is_err());
    assert!(Sm2Public::parse(DEFAULT_ID, &[0x30, 0x82, 0xff]).is_err());
    assert!(Sm2Private::from_hex(DEFAULT_ID, &"00".repeat(32)).is_err());
    assert!(Sm2Private::from_hex(DEFAULT_ID, &"ff".repeat(32)).is_err());
    assert!(Sm2Private::from_pem(DEFAULT_ID, "garbage").is_err());
    assert!(Sm2Public::from_hex(&"x".repeat(9000), PUB).is_err());
}

#[test]
fn sm2_encryption_gbt_32918_5_annex_a_both_layouts() {
    let private = Sm2Private::from_hex(DEFAULT_ID, PRIV).unwrap();
    let c1c3c2 = h("0404EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF059983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD876621886CA989CA9C7D58087307CA93092D651EFA");
    let c1c2c3 = h("0404EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF021886CA989CA9C7D58087307CA93092D651EFA59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766");
    assert_eq!(
        private.decrypt(&c1c3c2, CipherLayout::C1C3C2).unwrap(),
        b"encryption standard"
    );
    assert_eq!(
        private.decrypt(&c1c2c3, CipherLayout::C1C2C3).unwrap(),
        b"encryption standard"
    );
    // A layout mix-up or one changed byte fails the C3 check.
    assert_eq!(
        private.decrypt(&c1c3c2, CipherLayout::C1C2C3),
        Err(GmError::Decrypt)
    );
    assert_eq!(
        private.decrypt(&c1c2c3, CipherLayout::C1C3C2),
        Err(GmError::Decrypt)
    );
    let mut bad = c1c3c2.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        private.decrypt(&bad, CipherLayout::C1C3C2),
        Err(GmError::Decrypt)
    );
    // Short, empty, prefix-less input: errors, not panics.
    for junk in [&c1c3c2[..10], &[][..], &c1c3c2[1..], &c1c3c2[..97]] {
        assert!(private.decrypt(junk, CipherLayout::C1C3C2).is_err());
    }
    // Round trip, both layouts.
    for layout in [CipherLayout::C1C3C2, CipherLayout::C1C2C3] {
        let ct = private.public().encrypt(b"hello", layout).unwrap();
        assert_eq!(ct[0], 4);
        assert_eq!(private.decrypt(&ct, layout).unwrap(), b"hello");
    }
}
