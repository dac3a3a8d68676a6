//! Masking personal data in responses through the real gateway and the demo citizen service:
//! masked for everyone by default, originals only for an unmask role (audited), compressed or
//! oversized answers refused rather than passed unmasked.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use menwei_tests::sso::{Idp, Secrets, API_AUDIENCE};
use menwei_tests::*;
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const PROFILE: &str = r#"
[[mask]]
name = "citizen-pii"
fields = [
  { name = "name", style = "name" },
  { name = "idCard", style = "id-card" },
  { name = "mobile", style = "mobile" },
  { name = "bankCard", style = "bank-card" },
  { name = "*address", style = "address" },
]
unmask_roles = ["auditor"]

[[mask]]
name = "tiny"
max_body = "1KiB"
"#;

#[test]
fn personal_data_is_masked_unless_the_role_may_see_it_and_that_is_audited() {
    let citizens = Backend::citizens();
    let echo = Backend::echo("e");
    let p = free_port();
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let audit = secrets.path("audit.log");
    let routes = format!(
        r#"
[audit]
file = "{audit}"
fsync_interval = "100ms"

[[upstream]]
name = "citizens"
backends = ["{c}"]

[[upstream]]
name = "echo"
backends = ["{e}"]

[[route]]
name = "open-data"
prefix = "/open-data/"
upstream = "citizens"
mask = "citizen-pii"

[[route]]
name = "citizens"
prefix = "/citizens/"
upstream = "citizens"
auth = "bearer"
mask = "citizen-pii"

[[route]]
name = "tiny"
prefix = "/tiny/"
upstream = "citizens"
mask = "tiny"

[[route]]
name = "echo"
prefix = "/echo/"
upstream = "echo"
mask = "citizen-pii"
{PROFILE}"#,
        audit = audit.display(),
        c = citizens.addr,
        e = echo.addr
    );
    let gw = Gateway::start_at(
        &[
            ("gateway.toml", &gateway_toml("")),
            ("sso.toml", &secrets.policy(&idp.issuer, "", "")),
            ("routes.toml", &routes),
        ],
        p,
        free_port(),
    );
    // The originals, straight from the backend.
    let original = get(citizens.addr, "/citizens/?count=30").json();
    let originals: Vec<String> = original["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| ["idCard", "mobile", "bankCard"].map(|k| r[k].as_str().unwrap().to_string()))
        .collect();

    // Open data: masked for everyone, valid JSON, nothing sensitive left.
    let r = get(gw.addr, "/open-data/?count=30");
    assert_eq!(r.status, 200);
    let masked: Value = serde_json::from_slice(&r.body).expect("valid JSON out");
    let text = String::from_utf8_lossy(&r.body);
    for o in &originals {
        assert!(!text.contains(o.as_str()), "{o} leaked");
    }
    let first = &masked["data"][0];
    let orig0 = &original["data"][0];
    let id = first["idCard"].as_str().unwrap();
    assert_eq!(&id[..6], &orig0["idCard"].as_str().unwrap()[..6]);
    assert!(id.contains("********"));
    assert!(first["name"].as_str().unwrap().ends_with('*'));
    assert_eq!(first["id"], orig0["id"], "non-sensitive values untouched");
    assert_eq!(masked["count"], 30);

    // A bearer token with the citizen role: masked; with the auditor role: originals, audited.
    let keys = idp.keys();
    let (kid, _, pem, _) = keys.iter().find(|k| k.1 == "RS256").unwrap();
    let token = |roles: Value, sub: &str| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.clone());
        let c = json!({"iss": idp.issuer, "aud": API_AUDIENCE, "sub": sub, "exp": now() + 60, "roles": roles});
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
    };
    let as_role = |roles: Value, sub: &str| {
        get_with(
            gw.addr,
            "/citizens/?count=30",
            &[("Authorization", &format!("Bearer {}", token(roles, sub)))],
        )
    };
    let citizen = as_role(json!(["citizen"]), "alice");
    assert_eq!(citizen.status, 200);
    assert!(!String::from_utf8_lossy(&citizen.body).contains(originals[0].as_str()));
    let auditor = as_role(json!(["auditor"]), "carol");
    assert_eq!(auditor.status, 200);
    assert_eq!(auditor.json(), original, "the auditor sees the originals");
    // Neither answer may be kept by a cache (a shared one would hand the originals to anyone).
    for (who, r) in [
        ("open data", &r),
        ("citizen", &citizen),
        ("auditor", &auditor),
    ] {
        assert_eq!(
            r.header("cache-control"),
            Some("private, no-store"),
            "{who}"
        );
    }
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"event\":\"unmasked\"") && l.contains("carol"))
    }));

    // Too large for the profile's cap: refused, never sent unmasked.
    let big = get(gw.addr, "/tiny/?count=50");
    assert_eq!(big.status, 502);
    assert!(String::from_utf8_lossy(&big.body).contains("MW-MASK-001"));
    // The backend is asked for an uncompressed body on masked routes.
    let r = get_with(gw.addr, "/echo/x", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(r.status, 200);
    assert!(r.seen("accept-encoding").is_none());
}

/// The originals of `count` records, straight from the backend.
fn originals(citizens: &Backend, count: u32) -> (Value, Vec<String>) {
    let original = get(citizens.addr, &format!("/citizens/?count={count}")).json();
    let values = original["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| ["idCard", "mobile", "bankCard"].map(|k| r[k].as_str().unwrap().to_string()))
        .collect();
    (original, values)
}

fn assert_masked(body: &[u8], originals: &[String]) {
    let text = String::from_utf8_lossy(body);
    for o in originals {
        assert!(!text.contains(o.as_str()), "{o} leaked in {text}");
    }
}

#[test]
fn streamed_compressed_and_broken_answers_never_leak() {
    let citizens = Backend::citizens();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pseudonym.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let routes = format!(
        r#"
[[upstream]]
name = "citizens"
backends = ["{c}"]

[[route]]
name = "masked"
prefix = "/citizens/"
upstream = "citizens"
mask = "records"

[[route]]
name = "small"
prefix = "/small/"
upstream = "citizens"
mask = "small"

[[mask]]
name = "records"
fields = [
  {{ path = "$.data[*].name", style = "name" }},
  {{ path = "$.data[*].mobile", style = "pseudonym" }},
  {{ name = "bankCard", style = "bank-card" }},
  {{ name = "idCard", style = "id-card", keep_head = 3, keep_tail = 2 }},
]
pseudonym_key_file = "{key}"

[[mask]]
name = "small"
max_body = "8KiB"
"#,
        c = citizens.addr,
        key = key.display()
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes),
    ]);
    let (original, secrets) = originals(&citizens, 40);

    // Whole, in 7-byte chunks a millisecond apart (cut inside escapes and multi-byte names),
    // and compressed by a backend that ignores Accept-Encoding: the same masked document.
    let whole = get(gw.addr, "/citizens/?count=40");
    assert_eq!(whole.status, 200, "{}", gw.log());
    assert_masked(&whole.body, &secrets);
    let doc: Value = serde_json::from_slice(&whole.body).expect("valid JSON out");
    let (first, orig) = (&doc["data"][0], &original["data"][0]);
    let id = orig["idCard"].as_str().unwrap();
    assert_eq!(
        first["idCard"].as_str().unwrap(),
        format!("{}{}{}", &id[..3], "*".repeat(13), &id[16..]),
        "keep_head / keep_tail"
    );
    let pseudonym = first["mobile"].as_str().unwrap();
    assert_eq!(pseudonym.len(), 16, "an HMAC-SM3 pseudonym: {pseudonym}");
    assert!(first["name"].as_str().unwrap().ends_with('*'));
    assert_eq!(first["id"], orig["id"]);
    for q in [
        "chunk=7",
        "encoding=gzip",
        "encoding=deflate",
        "encoding=deflate-raw",
        "encoding=br",
        "encoding=gzip&chunk=5",
        "encoding=br&chunk=3",
    ] {
        let r = get_with(
            gw.addr,
            &format!("/citizens/?count=40&{q}"),
            &[("Accept-Encoding", "gzip, br")],
        );
        assert_eq!(r.status, 200, "{q}: {}", gw.log());
        assert_eq!(r.header("content-encoding"), None, "{q}: sent decoded");
        assert_eq!(r.body, whole.body, "{q}: the same masked document");
    }
    // The pseudonym is stable: the same citizen, the same pseudonym in another answer.
    let again = get(gw.addr, "/citizens/?count=1").json();
    assert_eq!(again["data"][0]["mobile"], first["mobile"]);

    // An encoding the gateway cannot read: refused, not passed, and an alert raised.
    let r = get(gw.addr, "/citizens/?count=5&encoding=zstd");
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("MW-MASK-002"));
    assert_masked(&r.body, &secrets);
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        get(gw.admin, "/alerts")
            .json()
            .to_string()
            .contains("mask:unreadable")
    }));

    // Invalid JSON from the backend (cut short): still answered, masked as text.
    let r = get(gw.addr, "/citizens/?count=40&truncate=3000&chunk=11");
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 2000);
    assert_masked(&r.body, &secrets);

    // Over the cap: with a declared length, refused up front; streamed (chunked), compressed
    // (a compression bomb is the same case), or both, cut before the cap, never passed unmasked.
    let r = get(gw.addr, "/small/citizens/?count=100");
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("MW-MASK-001"));
    for q in ["chunk=512", "encoding=gzip", "encoding=br&chunk=64"] {
        match try_request(
            gw.addr,
            "GET",
            &format!("/small/citizens/?count=100&{q}"),
            &[],
            None,
        ) {
            // Found out before anything was sent: refused with its code.
            Ok(r) => {
                assert_eq!(r.status, 502, "{q}");
                assert!(
                    String::from_utf8_lossy(&r.body).contains("MW-MASK-001"),
                    "{q}"
                );
            }
            // Found out while streaming: cut, what was sent masked.
            Err(e) => assert_masked(e.to_string().as_bytes(), &secrets),
        }
    }
    // Under the cap, the small profile's detectors mask what no rule names.
    let r = get(gw.addr, "/small/citizens/?count=3&chunk=9");
    assert_eq!(r.status, 200, "{}", gw.log());
    let (_, few) = originals(&citizens, 3);
    assert_masked(&r.body, &few);
    serde_json::from_slice::<Value>(&r.body).expect("valid JSON out");

    // The access log never holds a personal value from the path.
    let r = get(gw.addr, &format!("/citizens/{id}?count=1"));
    assert_eq!(r.status, 200);
    assert!(wait_until(std::time::Duration::from_secs(5), || gw
        .access_log()
        .contains(&id[..6])));
    assert!(!gw.access_log().contains(id), "{}", gw.access_log());
}
