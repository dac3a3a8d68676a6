//! Load balancing, failover, health checks, passive ejection and timeouts, end to end.

use menwei_tests::*;
use std::collections::HashMap;
use std::time::Duration;

fn start(backends: &[&Backend], extra: &str) -> Gateway {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    let routes = format!(
        "[[upstream]]\nname = \"pool\"\nbackends = [{}]\n{extra}\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\nupstream = \"pool\"\n",
        list.join(", ")
    );
    Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes),
    ])
}

fn server(r: &Resp) -> String {
    r.json()["server"].as_str().unwrap_or("?").to_string()
}

fn tally(gw: &Gateway, n: usize, path: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        let r = get_with(gw.addr, path, &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        *m.entry(server(&r)).or_default() += 1;
    }
    m
}

#[test]
fn round_robin_spreads_and_fails_over_when_a_backend_dies() {
    let (a, mut b) = (Backend::echo("a"), Backend::echo("b"));
    let gw = start(&[&a, &b], "");
    let t = tally(&gw, 20, "/x");
    assert_eq!((t["a"], t["b"]), (10, 10));
    b.kill();
    // Every request still succeeds: a refused connection is retried on the other backend.
    let t = tally(&gw, 20, "/x");
    assert_eq!(t.get("a"), Some(&20));
    // POST too: nothing reached the dead backend, so retrying is safe.
    for _ in 0..6 {
        assert_eq!(
            request(gw.addr, "POST", "/x", &[], Some(b"data")).status,
            200
        );
    }
    let m = gw.metrics();
    assert!(
        m.contains("menwei_upstream_failures_total{backend=\""),
        "{m}"
    );
}

#[test]
fn all_backends_down_is_a_clean_502_or_503() {
    let mut a = Backend::echo("a");
    let gw = start(&[&a], "");
    a.kill();
    let r = get_with(gw.addr, "/x", &[("Accept", "application/json")]);
    assert!(r.status == 502 || r.status == 503, "{}", r.status);
    let v = r.json();
    assert!(v["code"] == "MW-UP-002" || v["code"] == "MW-UP-001");
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains(&a.addr.to_string()),
        "backend address leaked: {body}"
    );
}

#[test]
fn passive_ejection_then_readmission() {
    let (a, mut b) = (Backend::echo("a"), Backend::echo("b"));
    let b_addr = b.addr;
    let gw = start(
        &[&a, &b],
        "retries = 0\n[upstream.passive]\neject_after = 1\neject_for = \"1s\"\n",
    );
    b.kill();
    // With no retries one request may fail while b is found dead; after that b is ejected.
    let _ = tally_lenient(&gw, 4);
    let t = tally(&gw, 10, "/x");
    assert_eq!(t.get("a"), Some(&10));
    let _b2 = Backend::echo_at("b", b_addr);
    let back = wait_until(Duration::from_secs(10), || {
        tally_lenient(&gw, 4).contains_key("b")
    });
    assert!(back, "b never readmitted");
}

fn tally_lenient(gw: &Gateway, n: usize) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        let r = get_with(gw.addr, "/x", &[]);
        if r.status == 200 {
            *m.entry(server(&r)).or_default() += 1;
        }
    }
    m
}

#[test]
fn health_checks_remove_and_restore_a_backend() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let gw = start(&[&a, &b], "[upstream.health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\nhealthy_after = 1\nunhealthy_after = 1\n");
    assert_eq!(
        request(b.addr, "POST", "/healthz/down", &[], None).status,
        200
    );
    let out = wait_until(Duration::from_secs(10), || {
        let p = gw.policy();
        p["upstreams"]["pool"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["healthy"] == false)
    });
    assert!(out, "b never marked unhealthy: {}", gw.policy());
    let t = tally(&gw, 10, "/x");
    assert_eq!(t.get("a"), Some(&10));
    assert!(gw.metrics().contains(&format!(
        "menwei_upstream_backend_up{{backend=\"{}\",upstream=\"pool\"}} 0",
        b.addr
    )));
    assert_eq!(
        request(b.addr, "POST", "/healthz/up", &[], None).status,
        200
    );
    let back = wait_until(Duration::from_secs(10), || {
        tally(&gw, 4, "/x").contains_key("b")
    });
    assert!(back, "b never restored");
    assert!(gw.log().contains("backend healthy again"));
}

#[test]
fn read_timeout_is_504() {
    let a = Backend::echo("a");
    let gw = start(&[&a], "read_timeout = \"300ms\"\nretries = 0\n");
    let r = get_with(gw.addr, "/slow?ms=3000", &[("Accept", "application/json")]);
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["code"], "MW-UP-003");
    assert_eq!(get_with(gw.addr, "/slow?ms=10", &[]).status, 200);
}

#[test]
fn total_timeout_bounds_retries() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let gw = start(
        &[&a, &b],
        "read_timeout = \"5s\"\ntotal_timeout = \"400ms\"\nretries = 3\n",
    );
    // Without the total timeout, 4 attempts x 5 s read timeout would outlast the test client's
    // 15 s read timeout and this request would fail instead of answering 504.
    let r = get_with(gw.addr, "/slow?ms=20000", &[("Accept", "application/json")]);
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["code"], "MW-UP-003");
}

#[test]
fn consistent_hash_is_sticky_per_key() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let gw = start(
        &[&a, &b, &c],
        "balance = \"consistent-hash\"\nhash_on = \"header\"\nhash_header = \"X-Tenant\"\n",
    );
    let mut owners = std::collections::HashSet::new();
    for tenant in 0..12 {
        let t = format!("tenant-{tenant}");
        let first = server(&get_with(gw.addr, "/x", &[("X-Tenant", &t)]));
        for _ in 0..5 {
            assert_eq!(server(&get_with(gw.addr, "/x", &[("X-Tenant", &t)])), first);
        }
        owners.insert(first);
    }
    assert!(
        owners.len() >= 2,
        "hashing sent every tenant to one backend"
    );
}

#[test]
fn least_connections_avoids_a_busy_backend() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let gw = start(&[&a, &b], "balance = \"least-connections\"\n");
    let addr = gw.addr;
    // Occupy one backend with slow requests, then check new requests go to the other one.
    let slow: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get_with(addr, "/slow?ms=1500", &[])))
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let busy: HashMap<String, usize> = tally(&gw, 6, "/x");
    let results: Vec<String> = slow
        .into_iter()
        .map(|h| server(&h.join().unwrap()))
        .collect();
    // The slow requests themselves were spread; whichever backend holds more of them gets fewer new ones.
    let count = |n: &str| results.iter().filter(|s| s.as_str() == n).count();
    let (more, fewer) = if count("a") > count("b") {
        ("a", "b")
    } else {
        ("b", "a")
    };
    // While one backend holds two slow requests and the other one, every new (sequential)
    // request goes to the less busy one; round robin would split them 3/3.
    assert_eq!(
        busy.get(fewer),
        Some(&6),
        "{busy:?} (more busy: {more}) while slow on {results:?}"
    );
}
