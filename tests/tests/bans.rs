//! Temporary bans through the admin endpoint: enforced at once on the replica that took them,
//! on every other replica sharing Redis within about a second, lifted everywhere, expiring by
//! themselves; bad admin requests get a clear 400.

use menwei_tests::*;
use std::time::Duration;

fn start(b: &Backend, redis: Option<&Redis>) -> Gateway {
    let state = redis
        .map(|r| {
            format!(
                "[state]\nredis = \"{}\"\ncommand_timeout = \"500ms\"\n",
                r.url()
            )
        })
        .unwrap_or_default();
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\nupstream = \"echo\"\n",
        b.addr
    );
    Gateway::start(&[
        ("gateway.toml", &gateway_toml(&state)),
        ("routes.toml", &routes),
    ])
}

fn ban(gw: &Gateway, body: &str) -> Resp {
    request(
        gw.admin,
        "POST",
        "/bans",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
}

#[test]
fn an_address_ban_reaches_every_replica_and_ends() {
    let redis = Redis::start();
    let b = Backend::echo("echo");
    let (a, c) = (start(&b, Some(&redis)), start(&b, Some(&redis)));
    assert_eq!(get(a.addr, "/x").status, 200);
    let r = ban(
        &a,
        r#"{"key": "ip:127.0.0.1", "ttl_secs": 60, "reason": "test: brute force"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["shared"], true);

    // At once on the replica that took it, with the time left.
    let refused = get(a.addr, "/x");
    assert_eq!(refused.status, 403);
    assert!(String::from_utf8_lossy(&refused.body).contains("MW-BAN-001"));
    let secs: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs));
    // Within about a second on the other one (it re-reads the shared list every second).
    assert!(wait_until(Duration::from_secs(5), || get(c.addr, "/x")
        .status
        == 403));
    let listed = get(c.admin, "/bans").json();
    assert_eq!(listed["bans"][0]["key"], "ip:127.0.0.1");
    assert_eq!(listed["bans"][0]["reason"], "test: brute force");
    assert!(c
        .metrics()
        .contains("menwei_banned_requests_total{kind=\"ip\"}"));

    // Lifted on one replica: served again everywhere.
    let lifted = request(c.admin, "DELETE", "/bans/ip%3A127.0.0.1", &[], None);
    assert_eq!(lifted.status, 200);
    assert_eq!(get(c.addr, "/x").status, 200);
    assert!(wait_until(Duration::from_secs(5), || get(a.addr, "/x")
        .status
        == 200));
    assert_eq!(
        request(c.admin, "DELETE", "/bans/ip:127.0.0.1", &[], None).status,
        404
    );

    // A short ban ends by itself.
    assert_eq!(
        ban(&a, r#"{"key": "ip:127.0.0.1", "ttl_secs": 1}"#).status,
        201
    );
    assert_eq!(get(a.addr, "/x").status, 403);
    assert!(wait_until(Duration::from_secs(20), || {
        get(a.addr, "/x").status == 200 && get(c.addr, "/x").status == 200
    }));
    // A ban of another address does not touch this client.
    assert_eq!(
        ban(&a, r#"{"key": "ip:203.0.113.7", "ttl_secs": 60}"#).status,
        201
    );
    assert_eq!(get(a.addr, "/x").status, 200);
}

#[test]
fn bad_ban_requests_are_refused_clearly() {
    let b = Backend::echo("echo");
    let gw = start(&b, None);
    for (body, why) in [
        ("not json", "expected"),
        (r#"{"key": "host:x", "ttl_secs": 5}"#, "ip:<address>"),
        (r#"{"key": "ip:1.2.3", "ttl_secs": 5}"#, "not an IP address"),
        (
            r#"{"key": "ip:1.2.3.4", "ttl_secs": 0}"#,
            "ttl_secs must be",
        ),
        (
            r#"{"key": "ip:1.2.3.4", "ttl_secs": 99999999}"#,
            "ttl_secs must be",
        ),
        (
            r#"{"key": "ip:1.2.3.4", "ttl_secs": 5, "extra": 1}"#,
            "unknown field",
        ),
    ] {
        let r = ban(&gw, body);
        assert_eq!(r.status, 400, "{body}");
        assert!(
            String::from_utf8_lossy(&r.body).contains(why),
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(request(gw.admin, "PUT", "/bans", &[], None).status, 405);
    // Without Redis the ban still applies on this gateway, and says it is not shared.
    let r = ban(&gw, r#"{"key": "ip:127.0.0.1", "ttl_secs": 30}"#);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["shared"], false);
    assert_eq!(get(gw.addr, "/x").status, 403);
}
