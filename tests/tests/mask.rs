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
