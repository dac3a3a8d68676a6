//! Rate limits end to end: counts, not wall-clock timing.

use menwei_tests::*;
use std::time::Duration;

fn start(b: &Backend, limits: &str, route_limits: &str) -> Gateway {
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"echo\"\nlimits = [{route_limits}]\n",
        b.addr
    );
    Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("ratelimit.toml", limits),
        ("routes.toml", &routes),
    ])
}

const SLOW_BURST_10: &str =
    "[[limit]]\nname = \"burst10\"\nkey = [\"client-ip\"]\nrate = \"1/m\"\nburst = 10\n";

fn statuses(gw: &Gateway, n: usize, headers: &[(&str, &str)]) -> (usize, usize) {
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..n {
        match get_with(gw.addr, "/x", headers).status {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    (ok, limited)
}

#[test]
fn a_burst_is_cut_at_the_right_count_with_standard_headers() {
    let b = Backend::echo("echo");
    let gw = start(&b, SLOW_BURST_10, "\"burst10\"");
    assert_eq!(statuses(&gw, 25, &[]), (10, 15));
    let r = get_with(gw.addr, "/x", &[("Accept", "application/json")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["code"], "MW-RATE-001");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"burst10\";q=10;w=600"));
    assert!(r
        .header("ratelimit")
        .unwrap()
        .starts_with("\"burst10\";r=0;t="));
    let m = gw.metrics();
    assert!(
        m.contains("menwei_ratelimit_decisions_total{decision=\"allowed\",limit=\"burst10\"} 10"),
        "{m}"
    );
    assert!(
        m.contains("menwei_ratelimit_decisions_total{decision=\"limited\",limit=\"burst10\"} 16"),
        "{m}"
    );
}

#[test]
fn a_forged_forwarded_for_never_changes_the_key() {
    let b = Backend::echo("echo");
    let gw = start(&b, SLOW_BURST_10, "\"burst10\"");
    let mut ok = 0;
    for i in 0..20 {
        let xff = format!("10.9.8.{i}");
        if get_with(
            gw.addr,
            "/x",
            &[("X-Forwarded-For", &xff), ("X-Real-IP", &xff)],
        )
        .status
            == 200
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
}

#[test]
fn header_keys_are_counted_separately() {
    let b = Backend::echo("echo");
    let limits = "[[limit]]\nname = \"per-app\"\nkey = [\"header:X-App-Id\", \"route\"]\nrate = \"1/m\"\nburst = 3\n";
    let gw = start(&b, limits, "\"per-app\"");
    assert_eq!(statuses(&gw, 5, &[("X-App-Id", "tax")]), (3, 2));
    assert_eq!(statuses(&gw, 5, &[("X-App-Id", "social")]), (3, 2));
}

#[test]
fn a_limited_key_recovers() {
    let b = Backend::echo("echo");
    let limits = "[[limit]]\nname = \"fast\"\nkey = [\"client-ip\"]\nrate = \"20/s\"\nburst = 2\n";
    let gw = start(&b, limits, "\"fast\"");
    let (_, limited) = statuses(&gw, 20, &[]);
    assert!(limited > 0);
    assert!(wait_until(Duration::from_secs(20), || get_with(
        gw.addr,
        "/x",
        &[]
    )
    .status
        == 200));
}

#[test]
fn a_reload_keeps_the_counters_of_unchanged_limits() {
    let b = Backend::echo("echo");
    let limits = "[[limit]]\nname = \"slow\"\nkey = [\"client-ip\"]\nrate = \"1/m\"\nburst = 3\n";
    let gw = start(&b, limits, "\"slow\"");
    assert_eq!(statuses(&gw, 4, &[]), (3, 1));
    // An unrelated edit: the limit is unchanged, so its counters survive.
    gw.write(
        "gateway.toml",
        &gateway_toml("[access_log]\nenabled = true\n"),
    );
    assert!(gw.wait_version(2));
    assert_eq!(statuses(&gw, 2, &[]), (0, 2));
    // Changing the limit itself starts it afresh.
    gw.write("ratelimit.toml", &limits.replace("burst = 3", "burst = 5"));
    assert!(gw.wait_version(3));
    assert_eq!(statuses(&gw, 6, &[]), (5, 1));
}

#[test]
fn a_concurrency_limit_caps_requests_in_flight() {
    let b = Backend::echo("echo");
    let limits = "[[limit]]\nname = \"one-at-a-time\"\nkey = [\"client-ip\"]\nrate = \"1000/s\"\nburst = 1000\nconcurrency = 1\n";
    let gw = start(&b, limits, "\"one-at-a-time\"");
    let addr = gw.addr;
    let slow = std::thread::spawn(move || get_with(addr, "/slow?ms=2000", &[]).status);
    let busy = wait_until(Duration::from_secs(5), || {
        gw.policy()["upstreams"]["echo"][0]["in_flight"].as_u64() == Some(1)
    });
    assert!(busy);
    let r = get_with(gw.addr, "/x", &[("Accept", "application/json")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["code"], "MW-RATE-002");
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(get_with(gw.addr, "/x", &[]).status, 200);
}

/// Behind a trusted proxy, so that clients can be given any address.
fn start_behind_proxy(b: &Backend, trust_extra: &str) -> Gateway {
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"echo\"\nlimits = [\"burst10\"]\n",
        b.addr
    );
    Gateway::start(&[
        (
            "gateway.toml",
            &gateway_toml(&format!(
                "[trust]\nproxies = [\"127.0.0.1/32\"]\n{trust_extra}"
            )),
        ),
        ("ratelimit.toml", SLOW_BURST_10),
        ("routes.toml", &routes),
    ])
}

fn from(gw: &Gateway, client: &str) -> u16 {
    get_with(gw.addr, "/x", &[("X-Forwarded-For", client)]).status
}

#[test]
fn an_ipv6_client_is_one_client_per_network_not_per_address() {
    let b = Backend::echo("echo");
    let gw = start_behind_proxy(&b, "");
    // One /64 (a household, a subnet) takes a new address for every request: still one client.
    let statuses: Vec<u16> = (1..=25)
        .map(|i| from(&gw, &format!("2001:db8:1:2:{i:x}::{i:x}")))
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15);
    // The next /64 is another client; IPv4 clients (mapped ones too) count per address.
    assert_eq!(from(&gw, "2001:db8:1:3::1"), 200);
    for i in 0..12 {
        assert_eq!(from(&gw, &format!("10.9.8.{i}")), 200);
        assert_eq!(from(&gw, &format!("::ffff:10.9.9.{i}")), 200);
    }
    // A temporary ban of the network refuses all of its addresses, and only them.
    let ban = br#"{"key": "ip:2001:db8:1:3:ffff::1/64", "ttl_secs": 60, "reason": "test"}"#;
    let r = request(gw.admin, "POST", "/bans", &[], Some(ban));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["key"], "ip:2001:db8:1:3::/64");
    assert_eq!(from(&gw, "2001:db8:1:3:abcd::7"), 403);
    assert_eq!(from(&gw, "2001:db8:1:4::1"), 200);
    // Only the length clients are counted by can be banned here; other networks go in [[ban]].
    let r = request(
        gw.admin,
        "POST",
        "/bans",
        &[],
        Some(br#"{"key": "ip:2001:db8::/48", "ttl_secs": 60, "reason": "test"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("ipv6_prefix"));
    // Lifted by its key.
    let r = request(
        gw.admin,
        "DELETE",
        "/bans/ip:2001:db8:1:3::%2F64",
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(from(&gw, "2001:db8:1:3:abcd::7"), 200);
}

#[test]
fn ipv6_prefix_128_counts_every_address_apart() {
    let b = Backend::echo("echo");
    let gw = start_behind_proxy(&b, "ipv6_prefix = 128\n");
    for i in 1..=25 {
        assert_eq!(from(&gw, &format!("2001:db8:1:2::{i:x}")), 200);
    }
}
