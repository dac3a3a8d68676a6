//! Single sign-on end to end: the real gateway, the real OpenID provider (oidc-provider on Node),
//! real Redis, real headless Chromium. Each test starts its own processes on ephemeral ports.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use menwei_tests::sso::{browse, cookie, Idp, Secrets, API_AUDIENCE, CLIENT_ID};
use menwei_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Routes of every SSO test: a sign-in app, a staff-only area, a department area, an API and a
/// public echo (the post-logout page).
fn routes(echo: &Backend) -> String {
    format!(
        r#"
[[upstream]]
name = "echo"
backends = ["{echo}"]

[[route]]
name = "app"
prefix = "/app/"
upstream = "echo"
auth = "login"

[[route]]
name = "staff"
prefix = "/staff/"
upstream = "echo"
auth = "login"
require = [{{ claim = "roles", any = ["staff", "auditor"] }}]

[[route]]
name = "dept"
prefix = "/dept/"
upstream = "echo"
auth = "login"
require = [{{ claim = "department", all = ["social-security"] }}]

[[route]]
name = "api"
prefix = "/api/"
upstream = "echo"
auth = "bearer"

[[route]]
name = "echo"
prefix = "/echo/"
upstream = "echo"

# Hierarchical quota: a department's total, each app's share inside it, each user's inside that.
[[route]]
name = "quota"
prefix = "/quota/"
upstream = "echo"
auth = "bearer"
limits = ["dept-app-user", "dept-app", "dept-total"]

[[limit]]
name = "dept-total"
key = ["department"]
rate = "1/h"
burst = 4

[[limit]]
name = "dept-app"
key = ["department", "app"]
rate = "1/h"
burst = 3

[[limit]]
name = "dept-app-user"
key = ["department", "app", "user"]
rate = "1/h"
burst = 2
"#,
        echo = echo.addr
    )
}

#[allow(clippy::too_many_arguments)]
fn start_gateway(
    port: u16,
    admin: u16,
    secrets: &Secrets,
    idp_issuer: &str,
    echo: &Backend,
    redis: Option<&Redis>,
    extra_sso: &str,
    extra_provider: &str,
) -> Gateway {
    let mut sso = secrets.policy(idp_issuer, extra_sso, extra_provider);
    if let Some(r) = redis {
        sso = format!(
            "[state]\nredis = \"{}\"\ncommand_timeout = \"500ms\"\n{}",
            r.url(),
            sso.replace("[sso]\n", "[sso]\nstore = \"redis\"\n")
        );
    }
    Gateway::start_at(
        &[
            ("gateway.toml", &gateway_toml("")),
            ("sso.toml", &sso),
            ("routes.toml", &routes(echo)),
        ],
        port,
        admin,
    )
}

fn origin(gw: &Gateway) -> String {
    format!("http://127.0.0.1:{}", gw.addr.port())
}

/// Headers the echo backend saw, from a page's text.
fn seen_in(text: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not echo JSON: {text}"));
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn header_of(seen: &[(String, String)], name: &str) -> Option<String> {
    seen.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn sso_metric(gw: &Gateway, event: &str, reason: &str) -> u64 {
    let needle = format!("menwei_sso_events_total{{event=\"{event}\",reason=\"{reason}\"}} ");
    gw.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

/// Logs `user` in through the browser at `url` and returns (final page, cookies).
fn login(url: &str, user: &str, password: &str) -> (Value, Value) {
    let out = browse(json!({"steps": [
        {"goto": url},
        {"login": [user, password]},
        {"cookies": true},
    ]}));
    let r = &out["results"];
    (r[1].clone(), r[2]["cookies"].clone())
}

#[test]
fn browser_login_reaches_backends_with_identity_on_every_replica() {
    let redis = Redis::start();
    let echo = Backend::echo("dept-backend");
    let (pa, aa, pb, ab) = (free_port(), free_port(), free_port(), free_port());
    let idp = Idp::start(&[pa, pb], 600);
    let secrets = Secrets::new();
    // Sessions sealed with SM4-GCM (the national algorithm) in Redis.
    let sm4 = "cipher = \"sm4-gcm\"";
    let a = start_gateway(pa, aa, &secrets, &idp.issuer, &echo, Some(&redis), sm4, "");
    let b = start_gateway(pb, ab, &secrets, &idp.issuer, &echo, Some(&redis), sm4, "");

    // A browser asks for a protected page, is sent to the provider, signs in, comes back to it.
    let want = format!("{}/app/page?x=1&y=%E4%B8%AD", origin(&a));
    let (page, cookies) = login(&want, "bob", "bob-pw");
    assert_eq!(page["url"], want.as_str(), "{page:#}");
    assert_eq!(page["status"], 200);
    let seen = seen_in(page["text"].as_str().unwrap());
    assert_eq!(header_of(&seen, "x-user-id").as_deref(), Some("bob"));
    assert_eq!(header_of(&seen, "x-user-roles").as_deref(), Some("staff"));
    assert_eq!(
        header_of(&seen, "x-user-department").as_deref(),
        Some("social-security")
    );
    // The name is UTF-8, percent-encoded ("李建国 Bob").
    assert_eq!(
        header_of(&seen, "x-user-name").as_deref(),
        Some("%E6%9D%8E%E5%BB%BA%E5%9B%BD Bob")
    );
    // The gateway's session cookie never reaches the backend.
    let cookie_seen = header_of(&seen, "cookie").unwrap_or_default();
    assert!(!cookie_seen.contains("menwei_session"), "{cookie_seen}");

    // The assertion verifies with the keys the gateway publishes.
    let assertion = header_of(&seen, "x-menwei-assertion").expect("assertion sent");
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&get(a.addr, "/.menwei/jwks.json").body).unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["menwei-backends"]);
    v.set_issuer(&["menwei"]);
    let claims = jsonwebtoken::decode::<Value>(&assertion, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["route"], "app");
    // Bound to the upstream it was sent to: a backend checking its own name as audience takes
    // it, another upstream's backend refuses it.
    let upstream = claims["upstream"].as_str().unwrap().to_string();
    assert_eq!(
        claims["aud"],
        json!(["menwei-backends", format!("upstream:{upstream}")])
    );
    v.set_audience(&[format!("upstream:{upstream}")]);
    assert!(jsonwebtoken::decode::<Value>(&assertion, &key, &v).is_ok());
    v.set_audience(&["upstream:another-department"]);
    assert!(jsonwebtoken::decode::<Value>(&assertion, &key, &v).is_err());
    assert_eq!(claims["roles"], json!(["staff"]));
    assert_eq!(
        claims["rid"].as_str(),
        header_of(&seen, "x-request-id").as_deref()
    );
    assert!(claims["exp"].as_u64().unwrap() <= now() + 61);

    // What Redis holds is sealed: no user id, no token in the clear.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = cli(&["--scan", "--pattern", "menwei:sso:s:*"]);
    let key = keys.lines().next().expect("a session record in Redis");
    let record = cli(&["GET", key]);
    assert!(
        !record.contains("bob") && !record.contains("eyJ"),
        "{record}"
    );

    // The session made on A works on B (sessions in Redis); forged identity headers never reach
    // the backend.
    let session = cookie(&cookies, "menwei_session").expect("session cookie");
    let r = get_with(
        b.addr,
        "/app/other",
        &[
            ("Cookie", &session),
            ("X-User-Id", "admin"),
            ("X-User-Roles", "auditor"),
            ("X-Menwei-Assertion", "forged"),
        ],
    );
    assert_eq!(r.status, 200, "{}", b.log());
    assert_eq!(r.seen("x-user-id").as_deref(), Some("bob"));
    assert_eq!(r.seen("x-user-roles").as_deref(), Some("staff"));
    assert_ne!(r.seen("x-menwei-assertion").as_deref(), Some("forged"));
    let forged_seen: Vec<_> = r
        .seen_headers()
        .into_iter()
        .filter(|(k, _)| k == "x-user-id")
        .collect();
    assert_eq!(forged_seen.len(), 1, "exactly one X-User-Id, the gateway's");

    // Claim requirements: bob is staff of social-security.
    assert_eq!(
        get_with(b.addr, "/staff/", &[("Cookie", &session)]).status,
        200
    );
    assert_eq!(
        get_with(a.addr, "/dept/x", &[("Cookie", &session)]).status,
        200
    );

    // Garbage and forged cookies: treated as no session, never a crash.
    let long = format!("menwei_session={}", "A".repeat(3000));
    let tampered = {
        let (n, v) = session.split_once('=').unwrap();
        let mut bytes = v.as_bytes().to_vec();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        format!("{n}={}", String::from_utf8(bytes).unwrap())
    };
    for c in [
        "menwei_session=",
        "menwei_session=%%%",
        &long,
        &tampered,
        "menwei_session=YWJj",
    ] {
        let api = get_with(a.addr, "/app/x", &[("Cookie", c)]);
        assert_eq!(api.status, 401, "cookie {c:.40}");
        assert!(api
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
        assert!(String::from_utf8_lossy(&api.body).contains("MW-AUTH-001"));
        let browser = get_with(a.addr, "/app/x", &[("Cookie", c), ("Accept", "text/html")]);
        assert_eq!(browser.status, 302);
        assert!(browser
            .header("location")
            .unwrap()
            .starts_with(&format!("{}/auth?", idp.issuer)));
    }

    // Local logout on A ends the session everywhere.
    let out = get_with(a.addr, "/.menwei/logout?local=1", &[("Cookie", &session)]);
    assert_eq!(out.status, 302);
    assert_eq!(out.header("location"), Some("/echo/bye"));
    assert!(out
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie")
            && v.starts_with("menwei_session=;")
            && v.contains("Max-Age=0")));
    assert_eq!(
        get_with(b.addr, "/app/x", &[("Cookie", &session)]).status,
        401
    );
    assert!(sso_metric(&a, "login", "ok") == 1);
}

#[test]
fn claim_requirements_refuse_with_403() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    // alice is a citizen: the app yes, the staff area and the department area no.
    let out = browse(json!({"steps": [
        {"goto": format!("{}/staff/desk", origin(&gw))},
        {"login": ["alice", "alice-pw"]},
        {"goto": format!("{}/dept/x", origin(&gw))},
        {"goto": format!("{}/app/x", origin(&gw))},
    ]}));
    let r = &out["results"];
    assert_eq!(r[1]["status"], 403, "{out:#}");
    assert!(r[1]["text"].as_str().unwrap().contains("MW-AUTH-003"));
    assert_eq!(r[2]["status"], 403);
    assert_eq!(r[3]["status"], 200);
    // A wrong password stays at the provider: no session at the gateway.
    let out = browse(json!({"steps": [
        {"goto": format!("{}/app/x", origin(&gw))},
        {"login": ["alice", "wrong"]},
    ]}));
    let page = &out["results"][1];
    assert!(page["url"].as_str().unwrap().starts_with(&idp.issuer));
    assert!(page["text"]
        .as_str()
        .unwrap()
        .contains("Wrong user name or password"));
}

#[test]
fn logout_at_the_provider_and_back_channel_end_sessions() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let o = origin(&gw);

    // RP-initiated logout: the gateway ends its session and sends the browser to the provider's
    // end-session endpoint, which sends it back to the configured page on this gateway.
    let out = browse(json!({"steps": [
        {"goto": format!("{o}/app/one")},
        {"login": ["alice", "alice-pw"]},
        {"cookies": true},
        {"goto": format!("{o}/.menwei/logout")},
        {"wait_for_url": "**/echo/bye"},
    ]}));
    let r = &out["results"];
    assert_eq!(r[1]["status"], 200);
    let s1 = cookie(&r[2]["cookies"], "menwei_session").unwrap();
    assert_eq!(r[4]["url"], format!("{o}/echo/bye"), "{out:#}");
    let navs = out["navigations"].as_array().unwrap();
    let end = navs
        .iter()
        .filter_map(Value::as_str)
        .find(|u| u.starts_with(&format!("{}/session/end", idp.issuer)))
        .expect("went to the provider's end-session endpoint");
    assert!(end.contains("id_token_hint="), "{end}");
    assert!(end.contains("post_logout_redirect_uri="), "{end}");
    assert_eq!(get_with(gw.addr, "/app/x", &[("Cookie", &s1)]).status, 401);

    // Back-channel logout: the user logs out at the provider directly; the provider tells the
    // gateway, which ends every session of that provider session.
    let out = browse(json!({"steps": [
        {"goto": format!("{o}/app/two")},
        {"login": ["alice", "alice-pw"]},
        {"cookies": true},
        {"goto": format!("{}/session/end", idp.issuer)},
        {"wait_for_url": "**/session/end/success**"},
    ]}));
    let s2 = cookie(&out["results"][2]["cookies"], "menwei_session").unwrap();
    let ended = wait_until(Duration::from_secs(10), || {
        get_with(gw.addr, "/app/x", &[("Cookie", &s2)]).status == 401
    });
    assert!(
        ended,
        "back-channel logout did not end the session:\n{}\n{}",
        gw.log(),
        idp.log()
    );
    assert!(sso_metric(&gw, "backchannel_logout", "ok") >= 1);
}

/// Signs `claims` with one of the provider's own keys.
fn sign(idp_keys: &[(String, String, String, String)], alg: &str, claims: &Value) -> String {
    let (kid, _, pem, _) = idp_keys.iter().find(|k| k.1 == alg).unwrap();
    let (a, key) = match alg {
        "RS256" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        ),
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        ),
        _ => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        ),
    };
    let mut h = Header::new(a);
    h.kid = Some(kid.clone());
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

#[test]
fn bearer_tokens_are_checked_and_forgeries_refused() {
    let echo = Backend::echo("api-backend");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let bearer = |t: &str| {
        get_with(
            gw.addr,
            "/api/records",
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };

    // A real access token from the provider.
    let real = idp.client_credentials_token();
    let r = bearer(&real);
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(r.seen("x-user-id").as_deref(), Some(CLIENT_ID));
    assert!(r.seen("x-menwei-assertion").is_some());
    // API clients may use a token on a sign-in route too.
    let r = get_with(
        gw.addr,
        "/app/x",
        &[("Authorization", &format!("Bearer {real}"))],
    );
    assert_eq!(r.status, 200);

    // Tokens signed with each pinned algorithm by the provider's keys.
    let keys = idp.keys();
    let good = json!({"iss": idp.issuer, "aud": API_AUDIENCE, "sub": "svc", "exp": now() + 60, "iat": now(), "roles": ["staff"]});
    for alg in ["RS256", "ES256", "EdDSA"] {
        let r = bearer(&sign(&keys, alg, &good));
        assert_eq!(r.status, 200, "{alg}: {}", gw.log());
        assert_eq!(r.seen("x-user-roles").as_deref(), Some("staff"));
    }

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let rsa_public = keys.iter().find(|k| k.1 == "RS256").unwrap().3.clone();
    let rsa_kid = keys.iter().find(|k| k.1 == "RS256").unwrap().0.clone();
    let hs256_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(rsa_kid.clone());
        jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_secret(rsa_public.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        base64url(format!(r#"{{"alg":"none","kid":"{rsa_kid}"}}"#).as_bytes()),
        base64url(good.to_string().as_bytes())
    );
    let tampered = {
        let parts: Vec<&str> = real.split('.').collect();
        let forged_payload = base64url(
            json!({"iss": idp.issuer, "aud": API_AUDIENCE, "sub": "admin", "exp": now() + 600})
                .to_string()
                .as_bytes(),
        );
        format!("{}.{forged_payload}.{}", parts[0], parts[2])
    };
    let unknown_kid = {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("not-a-provider-key".into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_rsa_pem(&out.stdout).unwrap()).unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(&keys, "RS256", &with("exp", json!(now() - 120))),
        ),
        (
            "not yet valid",
            sign(&keys, "ES256", &with("nbf", json!(now() + 600))),
        ),
        // Time claims of another type than a number are refused, never taken as absent
        // (jsonwebtoken 9 skipped such an `nbf`: CVE-2026-25537).
        (
            "not valid before a date written as a string",
            sign(
                &keys,
                "ES256",
                &with("nbf", json!((now() + 600).to_string())),
            ),
        ),
        (
            "expiry written as a string",
            sign(&keys, "RS256", &with("exp", json!("never"))),
        ),
        // A token must name someone: never a user with an empty id.
        (
            "subject as a number",
            sign(&keys, "RS256", &with("sub", json!(42))),
        ),
        (
            "empty subject",
            sign(&keys, "ES256", &with("sub", json!(""))),
        ),
        (
            "issued in the future, written as a string",
            sign(
                &keys,
                "EdDSA",
                &with("iat", json!((now() + 600).to_string())),
            ),
        ),
        (
            "wrong audience",
            sign(&keys, "RS256", &with("aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            sign(&keys, "RS256", &with("iss", json!("http://127.0.0.1:1"))),
        ),
        ("no expiry", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("exp");
            sign(&keys, "RS256", &c)
        }),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256_with_public_key),
        ("tampered payload", tampered),
        ("unknown key", unknown_kid),
        ("truncated", real[..real.len() / 2].to_string()),
        ("garbage", "abc.def.ghi".into()),
        ("oversized", "a".repeat(20_000)),
    ];
    for (what, token) in &cases {
        let r = bearer(token);
        assert_eq!(r.status, 401, "{what} was accepted");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("MW-AUTH-002"),
            "{what}"
        );
    }
    // No token at all on a bearer route: 401 asking for one.
    let r = get(gw.addr, "/api/records");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"idp\""));
    assert_eq!(get(gw.admin, "/healthz").status, 200, "still alive");
}

#[test]
fn back_channel_logout_tokens_are_validated() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let keys = idp.keys();
    let event = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let base = json!({"iss": idp.issuer, "aud": CLIENT_ID, "iat": now(), "exp": now() + 120,
                      "jti": "jti-1", "sub": "alice", "events": event});
    let post = |token: &str| {
        let body = format!("logout_token={token}");
        request(
            gw.addr,
            "POST",
            "/.menwei/backchannel-logout",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
    };
    // A session of alice, then a valid logout token for her: the session ends.
    let (_, cookies) = login(&format!("{}/app/x", origin(&gw)), "alice", "alice-pw");
    let s = cookie(&cookies, "menwei_session").unwrap();
    assert_eq!(get_with(gw.addr, "/app/x", &[("Cookie", &s)]).status, 200);
    let valid = sign(&keys, "RS256", &base);
    assert_eq!(post(&valid).status, 200, "{}", gw.log());
    assert_eq!(get_with(gw.addr, "/app/x", &[("Cookie", &s)]).status, 401);
    // The same token again is a replay.
    assert_eq!(post(&valid).status, 400);
    let with = |k: &str, v: Value, jti: &str| {
        let mut c = base.clone();
        c[k] = v;
        c["jti"] = json!(jti);
        c
    };
    let without = |k: &str, jti: &str| {
        let mut c = base.clone();
        c["jti"] = json!(jti);
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let bad = [
        (
            "nonce present",
            sign(&keys, "RS256", &with("nonce", json!("n"), "j2")),
        ),
        (
            "wrong audience",
            sign(&keys, "RS256", &with("aud", json!("other"), "j3")),
        ),
        ("no events", sign(&keys, "RS256", &without("events", "j4"))),
        (
            "wrong event",
            sign(&keys, "RS256", &with("events", json!({"x": {}}), "j5")),
        ),
        (
            "neither sub nor sid",
            sign(&keys, "RS256", &without("sub", "j6")),
        ),
        ("no jti", sign(&keys, "RS256", &without("jti", "j7"))),
        ("no iat", sign(&keys, "RS256", &without("iat", "j9"))),
        (
            "expired",
            sign(&keys, "ES256", &with("exp", json!(now() - 600), "j8")),
        ),
        // exp is optional in a logout token, so jsonwebtoken 9 took one it could not parse
        // as absent (CVE-2026-25537).
        (
            "expiry written as a string",
            sign(&keys, "ES256", &with("exp", json!("never"), "j10")),
        ),
        (
            "issued at a date written as a string",
            sign(
                &keys,
                "RS256",
                &with("iat", json!(now().to_string()), "j11"),
            ),
        ),
        ("garbage", "x.y.z".to_string()),
    ];
    for (what, t) in bad {
        let r = post(&t);
        assert_eq!(r.status, 400, "{what} was accepted");
        assert!(
            String::from_utf8_lossy(&r.body).contains("MW-AUTH-007"),
            "{what}"
        );
    }
    assert_eq!(
        get(gw.addr, "/.menwei/backchannel-logout").status,
        400,
        "GET refused"
    );
}

#[test]
fn refresh_happens_once_under_parallel_requests_across_replicas() {
    let redis = Redis::start();
    let echo = Backend::echo("e");
    let (pa, aa, pb, ab) = (free_port(), free_port(), free_port(), free_port());
    // Access tokens live 5 s and are refreshed 3 s before expiry: due 2 s after each refresh.
    let idp = Idp::start(&[pa, pb], 5);
    let secrets = Secrets::new();
    let extra = "refresh_before = \"3s\"\nforward_access_token = true";
    let a = start_gateway(
        pa,
        aa,
        &secrets,
        &idp.issuer,
        &echo,
        Some(&redis),
        "",
        extra,
    );
    let b = start_gateway(
        pb,
        ab,
        &secrets,
        &idp.issuer,
        &echo,
        Some(&redis),
        "",
        extra,
    );
    let (page, cookies) = login(&format!("{}/app/x", origin(&a)), "bob", "bob-pw");
    assert_eq!(page["status"], 200);
    let first_token = header_of(&seen_in(page["text"].as_str().unwrap()), "authorization");
    let s = cookie(&cookies, "menwei_session").unwrap();
    let refreshes = || sso_metric(&a, "refresh", "ok") + sso_metric(&b, "refresh", "ok");
    let failures = || {
        sso_metric(&a, "refresh_failure", "refused") + sso_metric(&b, "refresh_failure", "refused")
    };
    for round in 1..=2u64 {
        std::thread::sleep(Duration::from_millis(2500));
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let addr = if i % 2 == 0 { a.addr } else { b.addr };
                let s = s.clone();
                std::thread::spawn(move || get_with(addr, "/app/r", &[("Cookie", &s)]))
            })
            .collect();
        let resps: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for r in &resps {
            assert_eq!(r.status, 200, "round {round}: {}\n{}", a.log(), b.log());
        }
        assert_eq!(
            refreshes(),
            round,
            "one refresh per round across both replicas"
        );
        assert_eq!(failures(), 0);
    }
    // The backend now gets a newer access token than the one issued at login.
    let r = get_with(b.addr, "/app/r", &[("Cookie", &s)]);
    assert_eq!(r.status, 200);
    assert!(r.seen("authorization").unwrap().starts_with("Bearer "));
    assert_ne!(r.seen("authorization"), first_token);
}

#[test]
fn callbacks_and_redirects_cannot_be_abused() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    let mut idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let o = origin(&gw);
    for q in [
        "",
        "?state=nope&code=nope",
        "?error=access_denied&state=x",
        "?code=only",
    ] {
        let r = get(gw.addr, &format!("/.menwei/callback{q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(String::from_utf8_lossy(&r.body).contains("MW-AUTH-005"));
    }

    // A login through a path that tries to leave the site lands on this gateway; the callback
    // URL cannot be replayed, even with the browser's own login cookie.
    let out = browse(json!({"steps": [
        {"goto": format!("{o}//evil.example/%2e%2e/app/x?next=https://evil.example/")},
        {"cookies": true},
        {"login": ["carol", "carol-pw"]},
        {"cookies": true},
    ]}));
    let r = &out["results"];
    assert_eq!(
        r[2]["url"],
        format!("{o}/app/x?next=https://evil.example/"),
        "{out:#}"
    );
    assert_eq!(r[2]["status"], 200);
    let login_cookie = cookie(&r[1]["cookies"], "menwei_session_login").expect("login cookie");
    let callback = out["navigations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|u| u.contains("/.menwei/callback?"))
        .unwrap()
        .to_string();
    let path = callback.strip_prefix(&o).unwrap();
    let replay = get_with(gw.addr, path, &[("Cookie", &login_cookie)]);
    assert_eq!(replay.status, 400, "a used state/code was accepted");

    // Logout never redirects where a parameter says.
    let session = cookie(&r[3]["cookies"], "menwei_session").unwrap();
    let r = get_with(
        gw.addr,
        "/.menwei/logout?post_logout_redirect_uri=https://evil.example/&local=1",
        &[("Cookie", &session)],
    );
    assert_eq!(r.header("location"), Some("/echo/bye"));
    // Unknown reserved paths are 404 and never forwarded.
    assert_eq!(get(gw.addr, "/.menwei/admin").status, 404);

    // Provider outage: an existing session keeps working; a new login gets a clear 503.
    let (_, cookies) = login(&format!("{o}/app/y"), "alice", "alice-pw");
    let s = cookie(&cookies, "menwei_session").unwrap();
    idp.stop();
    assert_eq!(get_with(gw.addr, "/app/z", &[("Cookie", &s)]).status, 200);
    // A policy reload keeps the sessions too.
    gw.write("extra.toml", "# touched\n");
    assert!(gw.wait_version(2));
    assert_eq!(get_with(gw.addr, "/app/z", &[("Cookie", &s)]).status, 200);
    let fresh = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("sso.toml", &secrets.policy(&idp.issuer, "", "")),
        ("routes.toml", &routes(&echo)),
    ]);
    let r = get_with(fresh.addr, "/app/z", &[("Accept", "text/html")]);
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("MW-AUTH-004"));
}

#[test]
fn identity_limits_share_a_department_quota_between_apps_and_users() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let keys = idp.keys();
    let call = |dept: &str, app: &str, user: &str| {
        let claims = json!({"iss": idp.issuer, "aud": API_AUDIENCE, "sub": user, "azp": app,
                            "department": dept, "exp": now() + 300, "iat": now()});
        let t = sign(&keys, "ES256", &claims);
        get_with(
            gw.addr,
            "/quota/x",
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };
    let limited_by = |r: &Resp| {
        assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
        r.header("ratelimit-policy")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    // u1 uses its share of 2.
    assert_eq!(call("tax", "a1", "u1").status, 200);
    assert_eq!(call("tax", "a1", "u1").status, 200);
    assert_eq!(limited_by(&call("tax", "a1", "u1")), "\"dept-app-user\"");
    // u2 in the same app gets one more: the app's share (3) is used up.
    assert_eq!(call("tax", "a1", "u2").status, 200);
    assert_eq!(limited_by(&call("tax", "a1", "u2")), "\"dept-app\"");
    // Another app of the department gets the last of the department's 4.
    assert_eq!(call("tax", "a2", "u3").status, 200);
    assert_eq!(limited_by(&call("tax", "a2", "u3")), "\"dept-total\"");
    // Refused requests consumed nothing: u4 of app a2 is refused by the department total, not
    // by its own (unused) shares.
    assert_eq!(limited_by(&call("tax", "a2", "u4")), "\"dept-total\"");
    // Another department is not affected.
    assert_eq!(call("health", "a1", "u1").status, 200);
    // A banned user is refused once known (after sign-in), before any quota is counted.
    let r = request(
        gw.admin,
        "POST",
        "/bans",
        &[("Content-Type", "application/json")],
        Some(br#"{"key": "user:mallory", "ttl_secs": 60, "reason": "test"}"#),
    );
    assert_eq!(r.status, 201);
    let banned = call("health", "a9", "mallory");
    assert_eq!(banned.status, 403);
    assert!(String::from_utf8_lossy(&banned.body).contains("MW-BAN-001"));
    assert_eq!(call("health", "a9", "someone").status, 200);
    let m = gw.metrics();
    assert!(
        m.contains("menwei_ratelimit_decisions_total{decision=\"limited\",limit=\"dept-total\"} 2"),
        "{m}"
    );
}

#[test]
fn a_refused_refresh_ends_the_session_and_the_browser_signs_in_again() {
    let echo = Backend::echo("e");
    let (p, ad) = (free_port(), free_port());
    // Access tokens live 5 s, refreshed 3 s before expiry: due 2 s after login.
    let mut idp = Idp::start(&[p], 5);
    let secrets = Secrets::new();
    let gw = start_gateway(
        p,
        ad,
        &secrets,
        &idp.issuer,
        &echo,
        None,
        "",
        "refresh_before = \"3s\"",
    );
    let (page, cookies) = login(&format!("{}/app/x", origin(&gw)), "bob", "bob-pw");
    assert_eq!(page["status"], 200);
    let s = cookie(&cookies, "menwei_session").unwrap();
    // The provider forgets every grant (in-memory storage): the refresh token is now invalid.
    idp.restart();
    std::thread::sleep(Duration::from_millis(2500));
    let api = get_with(gw.addr, "/app/x", &[("Cookie", &s)]);
    assert_eq!(api.status, 401, "{}", gw.log());
    assert_eq!(sso_metric(&gw, "refresh_failure", "refused"), 1);
    // The session is gone: a browser is sent to sign in again.
    let browser = get_with(
        gw.addr,
        "/app/x",
        &[("Cookie", &s), ("Accept", "text/html")],
    );
    assert_eq!(browser.status, 302);
    assert!(browser
        .header("location")
        .unwrap()
        .starts_with(&format!("{}/auth?", idp.issuer)));
}

#[test]
fn opaque_tokens_are_introspected_and_revocation_takes_hold() {
    use menwei_tests::sso::OPAQUE_AUDIENCE;
    let echo = Backend::echo("api-backend");
    let (p, ad) = (free_port(), free_port());
    let mut idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let sso = secrets
        .policy(
            &idp.issuer,
            "",
            "introspect = true\nintrospection_cache = \"1s\"",
        )
        .replace(
            &format!("audience = [\"{API_AUDIENCE}\"]"),
            &format!("audience = [\"{API_AUDIENCE}\", \"{OPAQUE_AUDIENCE}\"]"),
        );
    let gw = Gateway::start_at(
        &[
            ("gateway.toml", &gateway_toml("")),
            ("sso.toml", &sso),
            ("routes.toml", &routes(&echo)),
        ],
        p,
        ad,
    );
    let bearer = |t: &str| {
        get_with(
            gw.addr,
            "/api/records",
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };
    // An opaque token: not a JWT, so the gateway asks the provider about it.
    let opaque = idp.client_credentials_token_for(OPAQUE_AUDIENCE);
    assert_ne!(
        opaque.split('.').count(),
        3,
        "the provider issued a JWT: {opaque}"
    );
    let r = bearer(&opaque);
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(r.seen("x-user-id").as_deref(), Some(CLIENT_ID));
    assert!(r.seen("x-menwei-assertion").is_some());
    // JWTs are still verified locally alongside.
    assert_eq!(bearer(&idp.client_credentials_token()).status, 200);
    // Made-up opaque tokens, a changed one, and garbage: refused with invalid_token.
    let mut changed = opaque.clone().into_bytes();
    changed[5] = if changed[5] == b'A' { b'B' } else { b'A' };
    for t in [
        "not-a-real-token".to_string(),
        String::from_utf8(changed).unwrap(),
        "x".repeat(5000),
    ] {
        let r = bearer(&t);
        assert_eq!(r.status, 401, "{t:.40}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
    }
    // Revoked at the provider: refused once the kept answer (1 s here) is gone.
    idp.revoke(&opaque);
    assert!(
        wait_until(Duration::from_secs(15), || bearer(&opaque).status == 401),
        "a revoked token still passes: {}",
        gw.log()
    );
    assert!(
        !gw.log().contains(&opaque),
        "the token itself is never logged"
    );
    // The provider down: an opaque token that cannot be asked about is neither accepted nor
    // called invalid: 503, as for new sign-ins.
    let fresh = idp.client_credentials_token_for(OPAQUE_AUDIENCE);
    idp.stop();
    let r = bearer(&fresh);
    assert_eq!(r.status, 503, "{}", gw.log());
    assert!(String::from_utf8_lossy(&r.body).contains("MW-AUTH-004"));
}

#[test]
fn opaque_tokens_are_refused_without_introspection() {
    use menwei_tests::sso::OPAQUE_AUDIENCE;
    let echo = Backend::echo("api-backend");
    let (p, ad) = (free_port(), free_port());
    let idp = Idp::start(&[p], 600);
    let secrets = Secrets::new();
    let gw = start_gateway(p, ad, &secrets, &idp.issuer, &echo, None, "", "");
    let opaque = idp.client_credentials_token_for(OPAQUE_AUDIENCE);
    let r = get_with(
        gw.addr,
        "/api/records",
        &[("Authorization", &format!("Bearer {opaque}"))],
    );
    assert_eq!(r.status, 401);
}
