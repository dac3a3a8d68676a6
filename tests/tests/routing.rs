//! Routing precedence, path normalisation, refusals and limits, end to end.

use menwei_tests::*;

fn upstream(name: &str, b: &Backend) -> String {
    format!(
        "[[upstream]]\nname = \"{name}\"\nbackends = [\"{}\"]\n\n",
        b.addr
    )
}

/// Five backends, each behind one route; the `server` field of the echo says who answered.
fn setup() -> (Gateway, Vec<Backend>) {
    let names = [
        "root", "api", "api-v1", "exact", "admin", "gov", "post", "regex",
    ];
    let backends: Vec<Backend> = names.iter().map(|n| Backend::echo(n)).collect();
    let ups: String = names
        .iter()
        .zip(&backends)
        .map(|(n, b)| upstream(n, b))
        .collect();
    let routes = r#"
[[route]]
name = "root"
prefix = "/"
upstream = "root"

[[route]]
name = "regex"
regex = "^/api/v[0-9]+/items$"
upstream = "regex"

[[route]]
name = "api"
prefix = "/api"
upstream = "api"

[[route]]
name = "api-v1"
prefix = "/api/v1/"
upstream = "api-v1"

[[route]]
name = "exact"
path = "/api/v1/ping"
upstream = "exact"

[[route]]
name = "post"
prefix = "/api"
methods = ["POST"]
upstream = "post"

[[route]]
name = "admin"
prefix = "/admin/"
methods = ["GET"]
upstream = "admin"

[[route]]
name = "gov"
host = "*.gov.example.cn"
prefix = "/"
upstream = "gov"
"#;
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("upstreams.toml", &ups),
        ("routes.toml", routes),
    ]);
    (gw, backends)
}

fn who(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["server"].as_str().unwrap().to_string()
}

#[test]
fn precedence_is_deterministic() {
    let (gw, _b) = setup();
    let a = gw.addr;
    assert_eq!(who(&get_with(a, "/api/v1/ping", &[])), "exact");
    assert_eq!(who(&get_with(a, "/api/v1/pong", &[])), "api-v1");
    assert_eq!(who(&get_with(a, "/api/v2/x", &[])), "api");
    assert_eq!(who(&get_with(a, "/api", &[])), "api");
    assert_eq!(who(&get_with(a, "/apix", &[])), "root");
    // Prefix routes beat regex routes; the regex only gets what no prefix but "/" matches.
    assert_eq!(who(&get_with(a, "/api/v2/items", &[])), "api");
    assert_eq!(
        who(&request(a, "POST", "/api/v2/x", &[], Some(b"{}"))),
        "post"
    );
    assert_eq!(
        who(&get_with(a, "/anything", &[("Host", "www.gov.example.cn")])),
        "gov"
    );
    assert_eq!(
        who(&get_with(a, "/anything", &[("Host", "gov.example.cn")])),
        "root"
    );
    assert_eq!(
        who(&get_with(
            a,
            "/anything",
            &[("Host", "WWW.GOV.EXAMPLE.CN.:8080")]
        )),
        "gov"
    );
}

#[test]
fn normalised_path_is_matched_and_forwarded() {
    let (gw, _b) = setup();
    let a = gw.addr;
    for (path, server, forwarded) in [
        ("//admin/x", "admin", "/admin/x"),
        ("/public/../admin/x", "admin", "/admin/x"),
        ("/public/%2e%2e/admin/x", "admin", "/admin/x"),
        ("/public/%2E%2E/%2e/admin/./x", "admin", "/admin/x"),
        ("/%61dmin/x?q=1", "admin", "/admin/x"),
        ("/api/v1/../../admin/", "admin", "/admin/"),
    ] {
        let r = get_with(a, path, &[]);
        assert_eq!(who(&r), server, "{path}");
        assert_eq!(r.json()["path"], forwarded, "{path}");
    }
    // The query string is forwarded unchanged.
    assert_eq!(
        get_with(a, "/%61dmin/x?q=%2e%2e", &[]).json()["target"],
        "/admin/x?q=%2e%2e"
    );
    // A method the admin route does not accept falls to the next route in precedence ("/"),
    // which gets the same normalised path: policy and backend still agree.
    let r = request(a, "DELETE", "//admin/x", &[], None);
    assert_eq!(who(&r), "root");
    assert_eq!(r.json()["path"], "/admin/x");
}

#[test]
fn ambiguous_paths_are_refused() {
    let (gw, _b) = setup();
    for path in [
        "/public/..%2fadmin/x",
        "/public/..%2Fadmin",
        "/public/..%5cadmin",
        "/public/..;/admin/x",
        "/a%00b",
        "/a%zz",
    ] {
        let r = get_with(gw.addr, path, &[("Accept", "application/json")]);
        assert_eq!(r.status, 400, "{path}");
        let v = r.json();
        assert_eq!(v["code"], "MW-REQ-002", "{path}");
        assert_eq!(
            v["request_id"].as_str().unwrap(),
            r.header("x-request-id").unwrap()
        );
    }
}

#[test]
fn refusals_are_json_or_html_with_request_id() {
    let (gw, _b) = setup();
    let r = get_with(
        gw.addr,
        "/.menwei/callback",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "MW-ROUTE-003");
    let r = get_with(
        gw.addr,
        "/.menwei/logout",
        &[("Accept", "text/html,application/xhtml+xml")],
    );
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(html.contains("MW-ROUTE-003") && html.contains(r.header("x-request-id").unwrap()));
    // No internals: no backend address, no file paths.
    assert!(!html.contains("127.0.0.1") && !html.contains(".toml"));
}

#[test]
fn size_limits() {
    let (gw, _b) = setup();
    let long = format!("/api/{}", "a".repeat(9000));
    assert_eq!(get_with(gw.addr, &long, &[]).status, 414);
    let many: Vec<(String, String)> = (0..120).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(get_with(gw.addr, "/api", &many).status, 431);
    let big = vec![b'x'; 11 * 1024 * 1024];
    let r = request(gw.addr, "POST", "/api", &[], Some(&big));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "MW-REQ-006");
}

#[test]
fn missing_host_is_refused() {
    let (gw, _b) = setup();
    let r = raw(gw.addr, b"GET /api HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "MW-REQ-003");
    let r = raw(
        gw.addr,
        b"GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn streamed_body_over_the_route_cap_is_413() {
    let b = Backend::echo("small");
    let routes = format!(
        "[[upstream]]\nname = \"u\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"upload\"\nprefix = \"/\"\nupstream = \"u\"\nmax_body_bytes = \"1KiB\"\n",
        b.addr
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes),
    ]);
    let chunked = |n: usize| {
        let mut req = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..n {
            req.extend_from_slice(b"100\r\n");
            req.extend_from_slice(&[b'x'; 256]);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        req
    };
    let ok = raw(gw.addr, &chunked(4));
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["body_bytes"], 1024);
    let r = raw(gw.addr, &chunked(8));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "MW-REQ-006");
    // Declared too large: refused before anything is forwarded.
    let r = request(gw.addr, "POST", "/up", &[], Some(&[b'y'; 2048]));
    assert_eq!(r.status, 413);
}
