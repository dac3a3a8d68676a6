//! Header hygiene and HTTP/1 framing, asserted at the backend.

use menwei_tests::*;

fn start(trust: &str, b: &Backend) -> Gateway {
    let ups = format!("[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"echo\"\nprefix = \"/\"\nupstream = \"echo\"\n", b.addr);
    Gateway::start(&[
        ("gateway.toml", &gateway_toml(trust)),
        ("routes.toml", &ups),
    ])
}

const FORGED: [(&str, &str); 12] = [
    ("X-User-Id", "admin"),
    ("X-Auth-Roles", "root"),
    ("X-Menwei-Identity", "forged"),
    ("x-user-department", "audit"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Request-Id", "forged-id"),
    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
    ("Keep-Alive", "timeout=5"),
];

#[test]
fn forged_identity_and_forwarding_headers_never_reach_the_backend() {
    let b = Backend::echo("echo");
    let gw = start("", &b);
    let r = get_with(gw.addr, "/x", &FORGED);
    assert_eq!(r.status, 200);
    let seen = r.seen_headers();
    for (k, _) in FORGED {
        let k = k.to_ascii_lowercase();
        if [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
            "x-request-id",
        ]
        .contains(&k.as_str())
        {
            continue; // rewritten by the gateway, checked below
        }
        assert!(
            !seen.iter().any(|(n, _)| *n == k),
            "{k} reached the backend: {seen:?}"
        );
    }
    assert_eq!(r.seen("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(r.seen("x-forwarded-proto").unwrap(), "http");
    assert_eq!(r.seen("x-forwarded-host").unwrap(), "127.0.0.1");
    assert_eq!(r.seen("x-real-ip").unwrap(), "127.0.0.1");
    let rid = r.seen("x-request-id").unwrap();
    assert_ne!(rid, "forged-id");
    assert_eq!(rid.len(), 32);
    assert_eq!(r.header("x-request-id"), Some(rid.as_str()));
    // Headers named in Connection are hop-by-hop too.
    let r = get_with(
        gw.addr,
        "/x",
        &[("X-Secret-Hop", "1"), ("Connection", "close, X-Secret-Hop")],
    );
    assert_eq!(r.seen("x-secret-hop"), None);
}

/// The same names with underscores: CGI-style servers (WSGI, Rack, PHP) read `X_User_Id` and
/// `X-User-Id` alike as `HTTP_X_USER_ID`, so a variant let through is a forged identity.
const FORGED_UNDERSCORED: [(&str, &str); 8] = [
    ("X_User_Id", "admin"),
    // httpoxy (CVE-2016-5385): becomes HTTP_PROXY, the backend's outbound proxy.
    ("Proxy", "http://6.6.6.6:8080"),
    ("X-User_Id", "admin"),
    ("X_AUTH_ROLES", "root"),
    ("X_Menwei_Identity", "forged"),
    ("X_Forwarded_For", "6.6.6.6"),
    ("X_Real_IP", "6.6.6.6"),
    ("X_Request_Id", "forged-id"),
];

#[test]
fn underscored_variants_of_protected_headers_never_reach_the_backend() {
    let b = Backend::echo("echo");
    let gw = start("", &b);
    let r = get_with(gw.addr, "/x", &FORGED_UNDERSCORED);
    assert_eq!(r.status, 200);
    let seen = r.seen_headers();
    for (k, _) in FORGED_UNDERSCORED {
        let k = k.to_ascii_lowercase();
        assert!(
            !seen.iter().any(|(n, _)| *n == k),
            "{k} reached the backend: {seen:?}"
        );
    }
    assert_eq!(r.seen("x-forwarded-for").unwrap(), "127.0.0.1");
    // Other names with underscores are an application's own and pass.
    let r = get_with(gw.addr, "/x", &[("X_Api_Version", "3")]);
    assert_eq!(r.seen("x_api_version").as_deref(), Some("3"));
    // From a trusted proxy, forwarding variants pass as the others do; identity ones never.
    drop(gw);
    let gw = start("[trust]\nproxies = [\"127.0.0.1/32\"]\n", &b);
    let r = get_with(gw.addr, "/x", &FORGED_UNDERSCORED);
    assert_eq!(r.seen("x_user_id"), None);
    assert_eq!(r.seen("x-user_id"), None);
    assert_eq!(r.seen("x_auth_roles"), None);
    assert_eq!(r.seen("x_menwei_identity"), None);
}

#[test]
fn trusted_proxy_forwarding_is_honoured() {
    let b = Backend::echo("echo");
    let gw = start("[trust]\nproxies = [\"127.0.0.1/32\"]\n", &b);
    let r = get_with(gw.addr, "/x", &FORGED);
    assert_eq!(r.seen("x-forwarded-for").unwrap(), "6.6.6.6, 127.0.0.1");
    assert_eq!(r.seen("x-forwarded-proto").unwrap(), "https");
    assert_eq!(r.seen("x-forwarded-host").unwrap(), "evil.example");
    assert_eq!(r.seen("x-real-ip").unwrap(), "6.6.6.6");
    assert_eq!(r.seen("x-request-id").unwrap(), "forged-id");
    assert_eq!(r.seen("forwarded").unwrap(), "for=6.6.6.6;proto=https");
    // Identity headers are stripped even from trusted proxies: only the gateway writes them.
    assert_eq!(r.seen("x-user-id"), None);
    assert_eq!(r.seen("x-auth-roles"), None);
    // An invalid request id from a trusted proxy is replaced.
    let r = get_with(gw.addr, "/x", &[("X-Request-Id", "bad id with spaces")]);
    assert_ne!(r.seen("x-request-id").unwrap(), "bad id with spaces");
    // The access log is written in batches, at the latest 200 ms after a line.
    assert!(
        wait_until(std::time::Duration::from_secs(5), || gw
            .access_log()
            .contains("\"client\":\"6.6.6.6\"")),
        "access log uses the resolved client: {}",
        gw.access_log()
    );
}

#[test]
fn ambiguous_framing_is_refused() {
    let b = Backend::echo("echo");
    let gw = start("", &b);
    let cases: [&[u8]; 7] = [
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    ];
    for req in cases {
        let r = raw(gw.addr, req);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(req));
    }
    // The gateway's own refusals carry the request id and a stable code.
    let r = raw(gw.addr, cases[0]);
    assert_eq!(r.json()["code"], "MW-REQ-001");
    assert!(r.header("x-request-id").is_some());
    // Obfuscations the HTTP parser itself refuses are 400 too.
    for req in [
        &b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcd",
        b"POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let r = raw(gw.addr, req);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(req));
    }
    // A well-framed chunked body still goes through.
    let r = raw(gw.addr, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "abcd");
}

/// A backend answering every request with the same head, `Set-Cookie` lines included.
fn setting_cookies(cookies: &[&str]) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let head: String = cookies
        .iter()
        .map(|c| format!("Set-Cookie: {c}\r\n"))
        .collect();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\n{head}Content-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    addr
}

#[test]
fn a_backend_cannot_plant_or_clear_the_gateways_session_cookie() {
    let secrets = menwei_tests::sso::Secrets::new();
    let backend = setting_cookies(&[
        "app=1; Path=/",
        "menwei_session=ATTACKER; Path=/; HttpOnly",
        "__Host-menwei_session=ATTACKER; Path=/; Secure; HttpOnly",
        "menwei_session_login=X; Max-Age=0",
    ]);
    // The provider is not reachable: this public route needs no sign-in.
    let policy = format!(
        "{}\n[[upstream]]\nname = \"app\"\nbackends = [\"{backend}\"]\n\n[[route]]\nname = \"public\"\nprefix = \"/\"\nupstream = \"app\"\n",
        secrets.policy(&format!("http://127.0.0.1:{}", free_port()), "", "")
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &policy),
    ]);
    let r = get(gw.addr, "/x");
    assert_eq!(r.status, 200);
    let set: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(set, ["app=1; Path=/"]);
    assert!(wait_until(std::time::Duration::from_secs(5), || gw
        .log()
        .contains(
            "a backend tried to set the gateway's session cookie"
        )));
}
