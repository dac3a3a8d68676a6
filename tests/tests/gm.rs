//! SM2 request signatures end to end through the real gateway, signed by independent
//! implementations: the OpenSSL 3 CLI, npm `sm-crypto` (front ends) and PyPI `gmssl`; plus the
//! HMAC-SM3 variant. Every tampering, replay, stale timestamp, wrong id, wrong key and
//! `hash: false` signature is refused with a stable code.

use menwei_gm::signature::{self, Scheme, SignedBy};
use menwei_tests::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn npm_ci_interop() {
    let d = repo().join("tests/interop");
    if !d.join("node_modules").exists() {
        assert!(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&d)
            .status()
            .unwrap()
            .success());
    }
}

fn sm_crypto(args: &[&str]) -> String {
    npm_ci_interop();
    let out = Command::new("node")
        .arg(repo().join("tests/interop/sm_crypto.mjs"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A key pair from sm-crypto whose public X does not start with hex `0` or `4` (gmssl strips
/// those characters with `lstrip("04")`, see shared NOTES), so gmssl can use it too.
fn keypair() -> (String, String) {
    for _ in 0..50 {
        let k: Value = serde_json::from_str(&sm_crypto(&["keygen"])).unwrap();
        let public = k["public"].as_str().unwrap().to_string();
        if !matches!(public.as_bytes()[2], b'0' | b'4') {
            return (k["private"].as_str().unwrap().to_string(), public);
        }
    }
    panic!("no usable key pair in 50 tries");
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request to sign.
struct Req {
    method: &'static str,
    path: String,
    query: Option<String>,
    body: Vec<u8>,
    content_type: String,
}

impl Req {
    fn new() -> Req {
        Req {
            method: "POST",
            path: "/api/submit".into(),
            query: Some("b=2&a=%E4%B8%AD".into()),
            body: json!({"name": "张三", "amount": 100})
                .to_string()
                .into_bytes(),
            content_type: "application/json".into(),
        }
    }

    fn canonical(&self, by: &SignedBy) -> String {
        let digest = hex::encode(menwei_gm::sm3(&self.body));
        signature::canonical(
            by,
            &signature::Request {
                method: self.method,
                path: &self.path,
                query: self.query.as_deref(),
                header_values: std::slice::from_ref(&self.content_type),
                body_sm3_hex: &digest,
            },
        )
    }

    fn send(&self, gw: &Gateway, auth: &str) -> Resp {
        let target = match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        };
        request(
            gw.addr,
            self.method,
            &target,
            &[
                ("Content-Type", &self.content_type),
                ("Authorization", auth),
            ],
            Some(&self.body),
        )
    }
}

fn nonce() -> String {
    format!("n{:031x}", rand_u128())
}

fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u128::from_le_bytes(b)
}

fn by(scheme: Scheme, app: &str, ts: u64) -> SignedBy {
    SignedBy {
        scheme,
        app: app.into(),
        ts,
        nonce: nonce(),
        headers: vec!["content-type".into()],
        sig: Vec::new(),
    }
}

fn header(b: &SignedBy, sig_text: &str) -> String {
    let scheme = match b.scheme {
        Scheme::Sm2 => signature::SCHEME_SM2,
        Scheme::HmacSm3 => signature::SCHEME_HMAC,
    };
    format!(
        r#"{scheme} app="{}", ts="{}", nonce="{}", headers="{}", sig="{sig_text}""#,
        b.app,
        b.ts,
        b.nonce,
        b.headers.join(";")
    )
}

struct Setup {
    _echo: Backend,
    gw: Gateway,
    dir: tempfile::TempDir,
    js: (String, String),
}

fn setup() -> Setup {
    let echo = Backend::echo("tax-backend");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // OpenSSL: an SM2 key in PEM; the policy gets its SPKI PEM.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:SM2",
        "-out",
        &p("ossl.key"),
    ]);
    openssl(&[
        "pkey",
        "-in",
        &p("ossl.key"),
        "-pubout",
        "-out",
        &p("ossl.pub"),
    ]);
    // sm-crypto / gmssl: one key pair, public key as hex in the policy.
    let js = keypair();
    std::fs::write(p("js.pub"), &js.1).unwrap();
    let secret = p("hmac.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = format!(
        r#"
[gm]
max_skew = "60s"

[[app]]
id = "ossl"
public_key_file = "{ossl}"
department = "tax"

[[app]]
id = "js-raw"
public_key_file = "{js}"
signature_encoding = "raw"

[[app]]
id = "js-der"
public_key_file = "{js}"

[[app]]
id = "js-other-id"
public_key_file = "{js}"
distid = "menwei-test-id"
signature_encoding = "raw"

[[app]]
id = "hmac"
hmac_secret_file = "{secret}"

[[upstream]]
name = "echo"
backends = ["{echo}"]

[[route]]
name = "api"
prefix = "/api/"
upstream = "echo"
auth = "gm-signature"

[[route]]
name = "limited"
prefix = "/limited/"
upstream = "echo"
auth = "gm-signature"
limits = ["per-app"]

[[limit]]
name = "per-app"
key = ["app"]
rate = "1/h"
burst = 2

[[route]]
name = "ossl-only"
prefix = "/ossl/"
upstream = "echo"
auth = "gm-signature"
apps = ["ossl"]
"#,
        ossl = p("ossl.pub"),
        js = p("js.pub"),
        echo = echo.addr,
    );
    let gw = Gateway::start(&[("gateway.toml", &gateway_toml("")), ("gm.toml", &policy)]);
    Setup {
        _echo: echo,
        gw,
        dir,
        js,
    }
}

fn openssl_sign(s: &Setup, msg: &str, distid: &str) -> Vec<u8> {
    let p = |n: &str| s.dir.path().join(n).display().to_string();
    std::fs::write(p("msg"), msg).unwrap();
    let _ = std::fs::remove_file(p("sig"));
    openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        &format!("distid:{distid}"),
        "-inkey",
        &p("ossl.key"),
        "-in",
        &p("msg"),
        "-out",
        &p("sig"),
    ]);
    std::fs::read(p("sig")).unwrap()
}

fn sm_crypto_sign(s: &Setup, msg: &str, der: bool, hash: bool, user_id: Option<&str>) -> String {
    let mut a = json!({"private": s.js.0, "public": s.js.1, "msg": msg, "der": der, "hash": hash});
    if let Some(u) = user_id {
        a["userId"] = json!(u);
    }
    sm_crypto(&["sign", &a.to_string()])
}

fn gmssl_sign(s: &Setup, msg: &str) -> String {
    let script = r#"
import sys
from gmssl import sm2, func
priv, pub, msg = sys.argv[1], sys.argv[2], sys.argv[3].encode()
c = sm2.CryptSM2(private_key=priv, public_key=pub[2:])
sys.stdout.write(c.sign_with_sm3(msg, func.random_hex(c.para_len)))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.js.0, &s.js.1, msg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gmssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn code(r: &Resp) -> String {
    r.json()["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn requests_signed_by_independent_implementations_are_accepted() {
    let s = setup();
    let req = Req::new();

    // OpenSSL 3 CLI, DER signature, base64 on the wire.
    let b = by(Scheme::Sm2, "ossl", now());
    let sig = openssl_sign(&s, &req.canonical(&b), menwei_gm::DEFAULT_ID);
    let r = req.send(&s.gw, &header(&b, &base64(&sig)));
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        s.gw.log()
    );
    assert_eq!(r.seen("x-menwei-app-id").as_deref(), Some("ossl"));
    assert_eq!(r.seen("x-menwei-auth").as_deref(), Some("gm-signature"));
    // The body reached the backend intact.
    assert_eq!(r.json()["body"].as_str().unwrap().as_bytes(), &req.body[..]);

    // sm-crypto: raw r||s hex (its default) and DER hex.
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), false, true, None);
    assert_eq!(req.send(&s.gw, &header(&b, &sig)).status, 200);
    let b = by(Scheme::Sm2, "js-der", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), true, true, None);
    assert_eq!(req.send(&s.gw, &header(&b, &sig)).status, 200);
    // sm-crypto with the app's own distinguishing id.
    let b = by(Scheme::Sm2, "js-other-id", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), false, true, Some("menwei-test-id"));
    assert_eq!(req.send(&s.gw, &header(&b, &sig)).status, 200);

    // PyPI gmssl, sign_with_sm3 (raw hex).
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = gmssl_sign(&s, &req.canonical(&b));
    assert_eq!(req.send(&s.gw, &header(&b, &sig)).status, 200, "gmssl");

    // HMAC-SM3 with the shared secret.
    let b = by(Scheme::HmacSm3, "hmac", now());
    let tag = menwei_gm::hmac_sm3(
        b"0123456789abcdef0123456789abcdef",
        req.canonical(&b).as_bytes(),
    );
    assert_eq!(req.send(&s.gw, &header(&b, &hex::encode(tag))).status, 200);

    // A GET without body, query or extra headers.
    let get_req = Req {
        method: "GET",
        path: "/api/records/7".into(),
        query: None,
        body: Vec::new(),
        content_type: String::new(),
    };
    let mut b = by(Scheme::Sm2, "ossl", now());
    b.headers.clear();
    let digest = hex::encode(menwei_gm::sm3(b""));
    let canon = signature::canonical(
        &b,
        &signature::Request {
            method: "GET",
            path: "/api/records/7",
            query: None,
            header_values: &[],
            body_sm3_hex: &digest,
        },
    );
    let sig = openssl_sign(&s, &canon, menwei_gm::DEFAULT_ID);
    let r = request(
        s.gw.addr,
        "GET",
        &get_req.path,
        &[("Authorization", &header(&b, &hex::encode(&sig)))],
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn tampering_replay_and_wrong_keys_are_refused() {
    let s = setup();
    let req = Req::new();
    let signed = |b: &SignedBy, r: &Req| sm_crypto_sign(&s, &r.canonical(b), false, true, None);

    // A good request, then the very same again: a replay.
    let b = by(Scheme::Sm2, "js-raw", now());
    let h = header(&b, &signed(&b, &req));
    assert_eq!(req.send(&s.gw, &h).status, 200);
    let again = req.send(&s.gw, &h);
    assert_eq!((again.status, code(&again).as_str()), (401, "MW-SIG-004"));

    let refused = |what: &str, r: Resp, want: &str| {
        assert_eq!(
            r.status,
            if want == "MW-SIG-005" { 403 } else { 401 },
            "{what}"
        );
        assert_eq!(
            code(&r),
            want,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if r.status == 401 {
            assert!(
                r.header("www-authenticate")
                    .unwrap()
                    .starts_with("MENWEI-SM2"),
                "{what}"
            );
        }
    };
    // One changed byte of the body, path, query; a changed timestamp or header value.
    for (what, change) in [
        ("body", 0usize),
        ("path", 1),
        ("query", 2),
        ("content-type", 3),
        ("timestamp", 4),
    ] {
        let mut b = by(Scheme::Sm2, "js-raw", now());
        let sig = signed(&b, &req);
        let mut r2 = Req::new();
        match change {
            0 => r2.body[5] ^= 1,
            1 => r2.path = "/api/submiT".into(),
            2 => r2.query = Some("b=3&a=%E4%B8%AD".into()),
            3 => r2.content_type = "text/plain".into(),
            _ => b.ts += 1,
        }
        refused(what, r2.send(&s.gw, &header(&b, &sig)), "MW-SIG-002");
    }
    // An old timestamp, properly signed.
    let b = by(Scheme::Sm2, "js-raw", now() - 600);
    refused(
        "old timestamp",
        req.send(&s.gw, &header(&b, &signed(&b, &req))),
        "MW-SIG-003",
    );
    // Signed with another distinguishing id than the app's (default) one.
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), false, true, Some("another-id"));
    refused(
        "wrong distid",
        req.send(&s.gw, &header(&b, &sig)),
        "MW-SIG-002",
    );
    // OpenSSL's default empty id is not the app's id either.
    let b = by(Scheme::Sm2, "ossl", now());
    let sig = openssl_sign(&s, &req.canonical(&b), "");
    refused(
        "empty distid",
        req.send(&s.gw, &header(&b, &hex::encode(&sig))),
        "MW-SIG-002",
    );
    // Signed by another key (the OpenSSL key) but claiming to be js-der.
    let b = by(Scheme::Sm2, "js-der", now());
    let sig = openssl_sign(&s, &req.canonical(&b), menwei_gm::DEFAULT_ID);
    refused(
        "other key",
        req.send(&s.gw, &header(&b, &hex::encode(&sig))),
        "MW-SIG-002",
    );
    // sm-crypto's `hash: false`: a signature over the message without Z_A, not SM3withSM2.
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), false, false, None);
    refused(
        "hash:false",
        req.send(&s.gw, &header(&b, &sig)),
        "MW-SIG-002",
    );
    // DER signature to a raw app, raw to a DER app.
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = sm_crypto_sign(&s, &req.canonical(&b), true, true, None);
    refused(
        "DER to raw app",
        req.send(&s.gw, &header(&b, &sig)),
        "MW-SIG-002",
    );
    // HMAC with the wrong secret; an SM2 app using the HMAC scheme.
    let b = by(Scheme::HmacSm3, "hmac", now());
    let tag = menwei_gm::hmac_sm3(b"not the secret", req.canonical(&b).as_bytes());
    refused(
        "wrong HMAC secret",
        req.send(&s.gw, &header(&b, &hex::encode(tag))),
        "MW-SIG-002",
    );
    let b = by(Scheme::HmacSm3, "js-raw", now());
    refused(
        "scheme mismatch",
        req.send(&s.gw, &header(&b, "00")),
        "MW-SIG-002",
    );
    // Unknown app; an app not allowed on a route; no signature at all; garbage.
    let b = by(Scheme::Sm2, "nobody", now());
    refused(
        "unknown app",
        req.send(&s.gw, &header(&b, "00")),
        "MW-SIG-002",
    );
    let mut r3 = Req::new();
    r3.path = "/ossl/submit".into();
    let b = by(Scheme::Sm2, "js-raw", now());
    refused(
        "app not allowed",
        r3.send(&s.gw, &header(&b, &signed(&b, &r3))),
        "MW-SIG-005",
    );
    refused("no signature", req.send(&s.gw, "Bearer abc"), "MW-SIG-001");
    for junk in [
        "MENWEI-SM2 app=\"js-raw\"",
        "MENWEI-SM2 app=\"js-raw\", ts=\"1\", nonce=\"short\", sig=\"00\"",
        &format!("MENWEI-SM2 {}", "x".repeat(5000)),
    ] {
        refused("garbage", req.send(&s.gw, junk), "MW-SIG-002");
    }
    // Forged identity headers never pass with a signed request either.
    let b = by(Scheme::Sm2, "js-raw", now());
    let sig = signed(&b, &req);
    let r = request(
        s.gw.addr,
        "POST",
        "/api/submit?b=2&a=%E4%B8%AD",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &header(&b, &sig)),
            ("X-Menwei-App-Id", "ossl"),
        ],
        Some(&req.body),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.seen("x-menwei-app-id").as_deref(), Some("js-raw"));
    assert_eq!(get(s.gw.admin, "/healthz").status, 200);
}

#[test]
fn audit_log_chains_security_decisions_and_verify_finds_tampering() {
    let echo = Backend::echo("e");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // A key made by `menwei keygen sm2`, used by OpenSSL to sign.
    let kg = Command::new(bin("menwei"))
        .args(["keygen", "sm2", "--out", &p("app.key")])
        .output()
        .unwrap();
    assert!(
        kg.status.success(),
        "{}",
        String::from_utf8_lossy(&kg.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p("app.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let audit = p("audit.log");
    let policy = format!(
        "[audit]\nfile = \"{audit}\"\nfsync_interval = \"100ms\"\n\n[[app]]\nid = \"kg\"\npublic_key_file = \"{}\"\n\n[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/api/\"\nupstream = \"echo\"\nauth = \"gm-signature\"\n",
        p("app.key.pub"),
        echo.addr
    );
    let gw = Gateway::start(&[("gateway.toml", &gateway_toml("")), ("gm.toml", &policy)]);
    // Signed by OpenSSL with the keygen key: accepted (and not an audit event).
    let req = Req::new();
    let b = by(Scheme::Sm2, "kg", now());
    std::fs::write(p("msg"), req.canonical(&b)).unwrap();
    openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:1234567812345678",
        "-inkey",
        &p("app.key"),
        "-in",
        &p("msg"),
        "-out",
        &p("sig"),
    ]);
    let sig = std::fs::read(p("sig")).unwrap();
    assert_eq!(
        req.send(&gw, &header(&b, &hex::encode(&sig))).status,
        200,
        "{}",
        gw.log()
    );
    // Security decisions: a forged signature, a ban, a policy reload.
    assert_eq!(req.send(&gw, &header(&b, "00")).status, 401);
    let r = request(
        gw.admin,
        "POST",
        "/bans",
        &[],
        Some(br#"{"key":"ip:203.0.113.9","ttl_secs":60}"#),
    );
    assert_eq!(r.status, 201);
    gw.write("extra.toml", "# touched\n");
    assert!(gw.wait_version(2));
    let lines = || std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(wait_until(std::time::Duration::from_secs(5), || lines()
        .lines()
        .count()
        >= 3));
    let text = lines();
    assert!(
        text.contains("\"event\":\"denied\"") && text.contains("MW-SIG-002"),
        "{text}"
    );
    assert!(text.contains("\"event\":\"ban_added\""), "{text}");
    assert!(text.contains("\"event\":\"policy_reload\""), "{text}");
    drop(gw);

    let verify = |file: &str| {
        Command::new(bin("menwei"))
            .args(["audit", "verify", file])
            .output()
            .unwrap()
    };
    let ok = verify(&audit);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact: 3 record(s)"));
    // One changed character in the first record (whichever decision it is: the refusal, the
    // ban and the reload race): the second record's chain breaks.
    let (first, rest) = text.split_once('\n').unwrap();
    let tampered = format!(
        "{}\n{rest}",
        first.replacen("\"event\":\"", "\"event\":\"x", 1)
    );
    assert_ne!(tampered, text);
    std::fs::write(p("tampered.log"), tampered).unwrap();
    let bad = verify(&p("tampered.log"));
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("tampered.log:2: broken chain"), "{out}");
}

#[test]
fn sm2_ciphertexts_interoperate_with_sm_crypto_and_gmssl() {
    use menwei_gm::{CipherLayout, Sm2Private, DEFAULT_ID};
    let (private_hex, public_hex) = keypair();
    let private = Sm2Private::from_hex(DEFAULT_ID, &private_hex).unwrap();
    let public = private.public();
    let msg = "身份证号 110101199003077777";

    // menwei -> sm-crypto (C1C3C2; sm-crypto wants it without the 04 prefix).
    let ct = public
        .encrypt(msg.as_bytes(), CipherLayout::C1C3C2)
        .unwrap();
    let a = json!({"private": private_hex, "ct": hex::encode(&ct[1..])});
    assert_eq!(sm_crypto(&["decrypt", &a.to_string()]), msg);
    // sm-crypto -> menwei (prepend 04); read as the old layout it fails the C3 check.
    let js = sm_crypto(&[
        "encrypt",
        &json!({"public": public_hex, "msg": msg}).to_string(),
    ]);
    let ct = hex::decode(format!("04{js}")).unwrap();
    assert_eq!(
        private.decrypt(&ct, CipherLayout::C1C3C2).unwrap(),
        msg.as_bytes()
    );
    assert!(private.decrypt(&ct, CipherLayout::C1C2C3).is_err());

    // gmssl (default mode 0 = C1C2C3, C1 without 04) both ways.
    let script = r#"
import sys
from gmssl import sm2
priv, pub, cmd, data = sys.argv[1:5]
c = sm2.CryptSM2(private_key=priv, public_key=pub[2:])
if cmd == "enc":
    sys.stdout.write(c.encrypt(data.encode()).hex())
else:
    sys.stdout.write(c.decrypt(bytes.fromhex(data)).decode())
"#;
    let gmssl = |cmd: &str, data: &str| {
        let out = Command::new("python3")
            .args(["-c", script, &private_hex, &public_hex, cmd, data])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gmssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let g = gmssl("enc", msg);
    let ct = hex::decode(format!("04{g}")).unwrap();
    assert_eq!(
        private.decrypt(&ct, CipherLayout::C1C2C3).unwrap(),
        msg.as_bytes()
    );
    assert!(
        private.decrypt(&ct, CipherLayout::C1C3C2).is_err(),
        "C1C2C3/C1C3C2 mix-up refused"
    );
    let ct = public
        .encrypt(msg.as_bytes(), CipherLayout::C1C2C3)
        .unwrap();
    assert_eq!(gmssl("dec", &hex::encode(&ct[1..])), msg);
}

/// An SM2 CA and certificates made by OpenSSL 3 (SM3withSM2, explicit distinguishing id).
fn sm2_pki(dir: &std::path::Path) -> impl Fn(&str) -> String + '_ {
    let p = move |n: &str| dir.join(n).display().to_string();
    let id = "distid:1234567812345678";
    for ca in ["ca", "other-ca"] {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            &p(&format!("{ca}.key")),
        ]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &p(&format!("{ca}.key")),
            "-sm3",
            "-sigopt",
            id,
            "-subj",
            &format!("/C=CN/O=Gov/CN=menwei test {ca}"),
            "-days",
            "30",
            "-out",
            &p(&format!("{ca}.pem")),
        ]);
    }
    // user: by the CA (a signing certificate, as a UKey's); stranger: by another CA; wrong-id: by
    // the CA but signed with another id; encryption: a UKey's second, encryption-only
    // certificate; server: for servers only.
    for (name, ca, sign_id, ext) in [
        (
            "user",
            "ca",
            id,
            "keyUsage = critical, digitalSignature, nonRepudiation\nextendedKeyUsage = clientAuth\n",
        ),
        ("stranger", "other-ca", id, ""),
        ("wrong-id", "ca", "distid:not-the-default-id", ""),
        (
            "encryption",
            "ca",
            id,
            "keyUsage = critical, keyEncipherment, dataEncipherment\n",
        ),
        ("server", "ca", id, "extendedKeyUsage = serverAuth\n"),
    ] {
        let extfile = p(&format!("{name}.ext"));
        std::fs::write(&extfile, ext).unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            &p(&format!("{name}.key")),
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &p(&format!("{name}.key")),
            "-sm3",
            "-sigopt",
            id,
            "-subj",
            &format!("/C=CN/O=Gov/OU=social-security/CN={name}"),
            "-out",
            &p(&format!("{name}.csr")),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&format!("{name}.csr")),
            "-CA",
            &p(&format!("{ca}.pem")),
            "-CAkey",
            &p(&format!("{ca}.key")),
            "-CAcreateserial",
            "-sm3",
            "-sigopt",
            sign_id,
            "-vfyopt",
            id,
            "-extfile",
            &extfile,
            "-days",
            "10",
            "-out",
            &p(&format!("{name}.pem")),
        ]);
    }
    p
}

#[test]
fn sm2_client_certificates_from_a_trusted_terminator_become_identities() {
    let echo = Backend::echo("e");
    let dir = tempfile::tempdir().unwrap();
    let p = sm2_pki(dir.path());
    let gm = format!(
        "[gm]\nclient_cert_header = \"X-Client-Cert\"\nclient_ca_files = [\"{}\"]\n\n[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"ukey\"\nprefix = \"/ukey/\"\nupstream = \"echo\"\nauth = \"gm-certificate\"\nrequire = [{{ claim = \"department\", any = [\"social-security\"] }}]\n",
        p("ca.pem"),
        echo.addr
    );
    let trusted = "[trust]\nproxies = [\"127.0.0.1/32\"]\n";
    let gw = Gateway::start(&[("gateway.toml", &gateway_toml(trusted)), ("gm.toml", &gm)]);
    let pem = |n: &str| std::fs::read_to_string(p(&format!("{n}.pem"))).unwrap();
    // As nginx's $ssl_client_escaped_cert: URL-encoded PEM.
    let escaped = |n: &str| {
        pem(n)
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let send = |cert: &str| get_with(gw.addr, "/ukey/profile", &[("X-Client-Cert", cert)]);

    let r = send(&escaped("user"));
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        gw.log()
    );
    assert_eq!(r.seen("x-user-id").as_deref(), Some("user"));
    assert_eq!(
        r.seen("x-user-department").as_deref(),
        Some("social-security")
    );
    assert_eq!(r.seen("x-menwei-auth").as_deref(), Some("gm-certificate"));
    assert!(
        r.seen("x-client-cert").is_none(),
        "the certificate header is not forwarded"
    );
    // PEM with tabs for newlines, and base64 DER, work too.
    assert_eq!(send(&pem("user").trim().replace('\n', "\t")).status, 200);
    let der = Command::new("openssl")
        .args(["x509", "-in", &p("user.pem"), "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(send(&base64(&der)).status, 200);

    for (what, cert) in [
        ("another CA", escaped("stranger")),
        ("signed with another distinguishing id", escaped("wrong-id")),
        ("the CA itself", escaped("ca")),
        ("an encryption-only certificate", escaped("encryption")),
        ("a server certificate", escaped("server")),
        ("garbage", "not a certificate".to_string()),
        (
            "tampered",
            base64(&{
                let mut d = der.clone();
                let i = d.len() / 2;
                d[i] ^= 1;
                d
            }),
        ),
    ] {
        let r = send(&cert);
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(code(&r), "MW-CERT-002", "{what}");
    }
    assert!(wait_until(Duration::from_secs(5), || {
        let log = gw.log();
        log.contains("its keyUsage lacks digitalSignature")
            && log.contains("its extendedKeyUsage lacks clientAuth")
    }));
    let none = get(gw.addr, "/ukey/profile");
    assert_eq!((none.status, code(&none).as_str()), (401, "MW-CERT-001"));

    // From a peer that is not a trusted proxy the header is ignored.
    gw.write("gateway.toml", &gateway_toml(""));
    assert!(gw.wait_version(2));
    let r = send(&escaped("user"));
    assert_eq!((r.status, code(&r).as_str()), (401, "MW-CERT-001"));
}

#[test]
fn signatures_made_by_menwei_verify_in_openssl_sm_crypto_and_gmssl() {
    use menwei_gm::{SigEncoding, Sm2Private, DEFAULT_ID};
    let (private_hex, public_hex) = keypair();
    let k = Sm2Private::from_hex(DEFAULT_ID, &private_hex).unwrap();
    let msg = "MENWEI-SM2-V1\nGET\n/api/x\n\nmenwei\n1\nabcdefghijklmnop\n00";

    // sm-crypto, raw and DER.
    for (enc, der) in [(SigEncoding::Raw, false), (SigEncoding::Der, true)] {
        let sig = hex::encode(k.sign(msg.as_bytes(), enc));
        let a = json!({"public": public_hex, "msg": msg, "sig": sig, "der": der});
        assert_eq!(sm_crypto(&["verify", &a.to_string()]), "true", "der={der}");
        let wrong = json!({"public": public_hex, "msg": format!("{msg}x"), "sig": sig, "der": der});
        assert_eq!(sm_crypto(&["verify", &wrong.to_string()]), "false");
    }
    // gmssl verify_with_sm3 (raw hex).
    let sig = hex::encode(k.sign(msg.as_bytes(), SigEncoding::Raw));
    let script = r#"
import sys
from gmssl import sm2
pub, sig, msg = sys.argv[1:4]
c = sm2.CryptSM2(private_key="", public_key=pub[2:])
sys.stdout.write(str(c.verify_with_sm3(sig, msg.encode())))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &public_hex, &sig, msg])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // OpenSSL pkeyutl -verify with the distinguishing id (DER signature, SPKI PEM key).
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("pub.pem"), k.public().to_pem().unwrap()).unwrap();
    std::fs::write(p("msg"), msg).unwrap();
    std::fs::write(p("sig"), k.sign(msg.as_bytes(), SigEncoding::Der)).unwrap();
    let verify = |distid: &str| {
        Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-rawin",
                "-digest",
                "sm3",
                "-pkeyopt",
                distid,
                "-pubin",
                "-inkey",
                &p("pub.pem"),
                "-in",
                &p("msg"),
                "-sigfile",
                &p("sig"),
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify("distid:1234567812345678"));
    assert!(
        !verify("distid:someone-else"),
        "the id is part of the signature"
    );
}

/// A minimal OpenID issuer on 127.0.0.1 that signs with SM2: serves its discovery document and
/// a JWKS holding one SM2 key, for at most `secs` seconds.
fn sm2_issuer(public_hex: &str, secs: u64) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let issuer = format!("http://{}", l.local_addr().unwrap());
    let raw = hex::decode(public_hex).unwrap();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "SM2", "kid": "sm2-1", "use": "sig",
        "x": base64url(&raw[1..33]), "y": base64url(&raw[33..65])}]})
    .to_string();
    let disco = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"]})
    .to_string();
    let h = std::thread::spawn(move || {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let body = if req.starts_with("GET /jwks") {
                &jwks
            } else {
                &disco
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (issuer, h)
}

#[test]
fn sm2_signed_bearer_tokens_from_an_sm2_issuer() {
    use menwei_gm::{SigEncoding, Sm2Private, DEFAULT_ID};
    let key = Sm2Private::generate(DEFAULT_ID).unwrap();
    let (issuer, _srv) = sm2_issuer(&key.public().to_hex(), 60);
    let echo = Backend::echo("e");
    let secrets = menwei_tests::sso::Secrets::new();
    let mut sso = secrets.policy(&issuer, "", "sm2_tokens = { alg = \"SM2-SM3\" }");
    sso = sso.replace("resource = \"urn:menwei:api\"\n", "");
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/api/\"\nupstream = \"echo\"\nauth = \"bearer\"\n",
        echo.addr
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("sso.toml", &sso),
        ("routes.toml", &routes),
    ]);
    let token = |alg: &str, claims: Value, k: &Sm2Private, id_key: bool| {
        let h = base64url(
            json!({"alg": alg, "kid": "sm2-1", "typ": "JWT"})
                .to_string()
                .as_bytes(),
        );
        let p = base64url(claims.to_string().as_bytes());
        let input = format!("{h}.{p}");
        let sig = if id_key {
            Sm2Private::from_pem("another-id", &k.to_pem().unwrap())
                .unwrap()
                .sign(input.as_bytes(), SigEncoding::Raw)
        } else {
            k.sign(input.as_bytes(), SigEncoding::Raw)
        };
        format!("{input}.{}", base64url(&sig))
    };
    let good =
        json!({"iss": issuer, "aud": API, "sub": "svc-sm2", "exp": now() + 60, "iat": now()});
    let call = |t: &str| {
        get_with(
            gw.addr,
            "/api/x",
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };
    let r = call(&token("SM2-SM3", good.clone(), &key, false));
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        gw.log()
    );
    assert_eq!(r.seen("x-user-id").as_deref(), Some("svc-sm2"));
    let other = Sm2Private::generate(DEFAULT_ID).unwrap();
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    for (what, t) in [
        (
            "another alg string",
            token("SM2", good.clone(), &key, false),
        ),
        ("another key", token("SM2-SM3", good.clone(), &other, false)),
        (
            "another distinguishing id",
            token("SM2-SM3", good.clone(), &key, true),
        ),
        ("expired", token("SM2-SM3", expired, &key, false)),
        ("wrong audience", token("SM2-SM3", wrong_aud, &key, false)),
    ] {
        let r = call(&t);
        assert_eq!(r.status, 401, "{what} was accepted");
        assert_eq!(code(&r), "MW-AUTH-002", "{what}");
    }
}

const API: &str = menwei_tests::sso::API_AUDIENCE;

#[test]
fn per_app_limits_follow_the_signed_app_id() {
    let s = setup();
    let mut req = Req::new();
    req.path = "/limited/submit".into();
    let send_as = |app: &str| {
        let b = by(Scheme::Sm2, app, now());
        let sig = sm_crypto_sign(&s, &req.canonical(&b), app == "js-der", true, None);
        req.send(&s.gw, &header(&b, &sig))
    };
    assert_eq!(send_as("js-raw").status, 200);
    assert_eq!(send_as("js-raw").status, 200);
    let third = send_as("js-raw");
    assert_eq!(
        third.status,
        429,
        "{}",
        String::from_utf8_lossy(&third.body)
    );
    assert!(third
        .header("ratelimit-policy")
        .unwrap()
        .starts_with("\"per-app\""));
    // Same key pair, another registered app id: its own share.
    assert_eq!(send_as("js-der").status, 200);
    // A forged signature never reaches the limit (refused first, nothing counted).
    let b = by(Scheme::Sm2, "js-der", now());
    assert_eq!(req.send(&s.gw, &header(&b, "00")).status, 401);
    assert_eq!(send_as("js-der").status, 200);
}

/// Revokes `name`'s certificate (issued by `ca`) and writes `ca`'s CRL to `out`, with OpenSSL's
/// own CA tool (SM3withSM2, explicit distinguishing id). `next_update`: YYYYMMDDHHMMSSZ.
fn sm2_crl(dir: &std::path::Path, ca: &str, revoke: &[&str], out: &str, next_update: &str) {
    let p = |n: &str| dir.join(n).display().to_string();
    let db = dir.join(format!("{ca}-crl"));
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("index.txt"), "").unwrap();
    std::fs::write(db.join("crlnumber"), "01\n").unwrap();
    let cnf = db.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sm3\n",
            db.join("index.txt").display(),
            db.join("crlnumber").display()
        ),
    )
    .unwrap();
    let base = |extra: &[&str]| {
        let mut a = vec![
            "ca".to_string(),
            "-config".into(),
            cnf.display().to_string(),
            "-cert".into(),
            p(&format!("{ca}.pem")),
            "-keyfile".into(),
            p(&format!("{ca}.key")),
            "-md".into(),
            "sm3".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for name in revoke {
        let args = base(&["-revoke", &p(&format!("{name}.pem"))]);
        openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let args = base(&[
        "-gencrl",
        "-sigopt",
        "distid:1234567812345678",
        "-crl_nextupdate",
        next_update,
        "-out",
        &p(out),
    ]);
    openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn revoked_sm2_client_certificates_are_refused() {
    let echo = Backend::echo("e");
    let dir = tempfile::tempdir().unwrap();
    let p = sm2_pki(dir.path());
    // `wrong-id` is the CA's too (its own signature aside): revoke it, keep `user`.
    sm2_crl(dir.path(), "ca", &["wrong-id"], "ca.crl", "20991231000000Z");
    let policy = |crls: &[&str]| {
        let files: Vec<String> = crls.iter().map(|c| format!("\"{}\"", p(c))).collect();
        format!(
            "[gm]\nclient_cert_header = \"X-Client-Cert\"\nclient_ca_files = [\"{}\"]\nclient_crl_files = [{}]\n\n[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"ukey\"\nprefix = \"/ukey/\"\nupstream = \"echo\"\nauth = \"gm-certificate\"\n",
            p("ca.pem"),
            files.join(", "),
            echo.addr
        )
    };
    let trusted = "[trust]\nproxies = [\"127.0.0.1/32\"]\n";
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml(trusted)),
        ("gm.toml", &policy(&["ca.crl"])),
    ]);
    let der = |n: &str| {
        let out = Command::new("openssl")
            .args(["x509", "-in", &p(&format!("{n}.pem")), "-outform", "DER"])
            .output()
            .unwrap();
        base64(&out.stdout)
    };
    let send = |n: &str| get_with(gw.addr, "/ukey/x", &[("X-Client-Cert", &der(n))]);
    // Writes the policy with these CRLs and asks for a reload.
    let load = |crls: &[&str]| {
        gw.write("gm.toml", &policy(crls));
        gw.sighup();
    };
    assert_eq!(send("user").status, 200, "{}", gw.log());
    // A revoked certificate of the same CA: refused, with the reason in the log only.
    // (`wrong-id` fails its signature anyway; revoke `user` itself to see the CRL decide.)
    sm2_crl(dir.path(), "ca", &["user"], "ca.crl", "20991231000000Z");
    let v = gw.version();
    load(&["ca.crl"]);
    assert!(gw.wait_version(v + 1), "{}", gw.log());
    let r = send("user");
    assert_eq!((r.status, code(&r).as_str()), (401, "MW-CERT-002"));
    assert!(wait_until(Duration::from_secs(5), || gw
        .log()
        .contains("revoked (listed in its CA's CRL)")));
    // A CRL past its next update: the CA's certificates are refused (fail closed).
    sm2_crl(dir.path(), "ca", &[], "stale.crl", "20200101000000Z");
    let v = gw.version();
    load(&["stale.crl"]);
    assert!(gw.wait_version(v + 1), "{}", gw.log());
    let r = send("user");
    assert_eq!((r.status, code(&r).as_str()), (401, "MW-CERT-002"));
    assert!(gw.log().contains("past its next update"));
    let good = gw.version();
    // A CRL signed by a CA that is not configured: the policy is refused, the last good one
    // keeps serving.
    sm2_crl(dir.path(), "other-ca", &[], "other.crl", "20991231000000Z");
    load(&["other.crl"]);
    assert!(wait_until(Duration::from_secs(10), || gw.log().contains(
        "is not a usable revocation list: issued by none of client_ca_files"
    )));
    assert_eq!(gw.version(), good);
    // A CRL altered after signing (one digit of its thisUpdate): refused as well.
    let crl_der = Command::new("openssl")
        .args(["crl", "-in", &p("ca.crl"), "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    let mut tampered = crl_der.clone();
    let at = tampered
        .windows(13)
        .position(|w| w[12] == b'Z' && w[..12].iter().all(u8::is_ascii_digit))
        .expect("a UTCTime in the CRL");
    tampered[at + 11] = if tampered[at + 11] == b'0' {
        b'1'
    } else {
        b'0'
    };
    std::fs::write(dir.path().join("tampered.crl"), &tampered).unwrap();
    load(&["tampered.crl"]);
    assert!(wait_until(Duration::from_secs(10), || gw
        .log()
        .contains("its signature does not verify")));
    assert_eq!(gw.version(), good);
    let r = send("user");
    assert_eq!((r.status, code(&r).as_str()), (401, "MW-CERT-002"));
}
