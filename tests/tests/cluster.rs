//! Cluster rate limits on a real Redis: shared between gateways, fail-open / fail-closed when
//! Redis goes away, recovery when it returns, and `menwei check` on an unreachable Redis.

use menwei_tests::*;
use std::time::Duration;

fn start(b: &Backend, redis_url: &str, on_error: &str) -> Gateway {
    let gw = gateway_toml(&format!(
        "[state]\nredis = \"{redis_url}\"\ncommand_timeout = \"200ms\"\n"
    ));
    let limits = format!(
        "[[limit]]\nname = \"shared\"\nkey = [\"client-ip\"]\nrate = \"1/m\"\nburst = 10\nscope = \"cluster\"\non_store_error = \"{on_error}\"\n"
    );
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"echo\"\nlimits = [\"shared\"]\n",
        b.addr
    );
    Gateway::start(&[
        ("gateway.toml", &gw),
        ("ratelimit.toml", &limits),
        ("routes.toml", &routes),
    ])
}

fn count(gw: &Gateway, n: usize) -> (usize, usize, usize) {
    let (mut ok, mut limited, mut unavailable) = (0, 0, 0);
    for _ in 0..n {
        match get_with(gw.addr, "/x", &[]).status {
            200 => ok += 1,
            429 => limited += 1,
            503 => unavailable += 1,
            s => panic!("unexpected {s}"),
        }
    }
    (ok, limited, unavailable)
}

#[test]
fn two_gateways_sharing_redis_admit_one_limits_worth() {
    let redis = Redis::start();
    let b = Backend::echo("echo");
    let (g1, g2) = (
        start(&b, &redis.url(), "fail-open"),
        start(&b, &redis.url(), "fail-open"),
    );
    let mut ok = 0;
    for _ in 0..8 {
        ok += count(&g1, 1).0 + count(&g2, 1).0;
    }
    assert_eq!(
        ok, 10,
        "two replicas together must admit one burst, not two"
    );
    assert!(g1.metrics().contains("menwei_ratelimit_fail_open 0"));
}

#[test]
fn redis_down_fails_open_to_local_counters_and_recovers() {
    let mut redis = Redis::start();
    let port = redis.port;
    let b = Backend::echo("echo");
    let gw = start(&b, &redis.url(), "fail-open");
    assert_eq!(count(&gw, 12), (10, 2, 0));
    redis.stop();
    // Local counters of this process take over: a fresh burst, still limited.
    assert_eq!(count(&gw, 12), (10, 2, 0));
    let m = gw.metrics();
    assert!(m.contains("menwei_ratelimit_fail_open 1"), "{m}");
    assert!(!m.contains("menwei_ratelimit_store_errors_total 0"), "{m}");
    assert!(
        gw.log().contains("ALERT rate-limit store unavailable"),
        "{}",
        gw.log()
    );
    // Redis returns (empty): decisions come from it again.
    let _redis = Redis::start_on(port);
    let back = wait_until(Duration::from_secs(15), || {
        let _ = get_with(gw.addr, "/x", &[]);
        gw.metrics().contains("menwei_ratelimit_fail_open 0")
    });
    assert!(back, "never recovered: {}", gw.metrics());
}

#[test]
fn redis_down_fails_closed_when_configured() {
    let mut redis = Redis::start();
    let b = Backend::echo("echo");
    let gw = start(&b, &redis.url(), "fail-closed");
    assert_eq!(count(&gw, 2), (2, 0, 0));
    redis.stop();
    let r = get_with(gw.addr, "/x", &[("Accept", "application/json")]);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "MW-RATE-003");
}

#[test]
fn check_reports_an_unreachable_redis_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!("[[listener]]\nname = \"p\"\naddr = \"127.0.0.1:1\"\n\n[state]\nredis = \"redis://:hunter2@127.0.0.1:{port}/0\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("routes.toml"), "[[upstream]]\nname = \"u\"\nbackends = [\"127.0.0.1:2\"]\n[[route]]\nname = \"r\"\nprefix = \"/\"\nupstream = \"u\"\n").unwrap();
    let out = std::process::Command::new(bin("menwei"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "gateway.toml:6:9: error[MW-POL-016]: cannot reach Redis at redis://***@127.0.0.1"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "password printed: {text}");
}

#[test]
fn concurrent_requests_batched_into_one_call_are_still_decided_one_by_one() {
    // Two cluster limits per request: a shared one (burst 30) and one per tenant header (burst
    // 4). Many requests at once from two gateways go to Redis in batches; each request must
    // still be all or nothing and see what the requests before it consumed.
    let redis = Redis::start();
    let b = Backend::echo("echo");
    let start = || {
        let gw = gateway_toml(&format!(
            "[state]\nredis = \"{}\"\ncommand_timeout = \"2s\"\n",
            redis.url()
        ));
        let limits = "[[limit]]\nname = \"shared\"\nkey = [\"route\"]\nrate = \"1/h\"\nburst = 30\nscope = \"cluster\"\n\n[[limit]]\nname = \"tenant\"\nkey = [\"header:X-Tenant\"]\nrate = \"1/h\"\nburst = 4\nscope = \"cluster\"\n";
        let routes = format!(
            "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"echo\"\nlimits = [\"shared\", \"tenant\"]\n",
            b.addr
        );
        Gateway::start(&[
            ("gateway.toml", &gw),
            ("ratelimit.toml", limits),
            ("routes.toml", &routes),
        ])
    };
    let (g1, g2) = (start(), start());
    // 12 tenants x 6 requests, all at once, half through each gateway.
    let statuses: Vec<(usize, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..72)
            .map(|i| {
                let gw = if i % 2 == 0 { &g1 } else { &g2 };
                s.spawn(move || {
                    let tenant = format!("t{}", i % 12);
                    (
                        i % 12,
                        get_with(gw.addr, "/x", &[("X-Tenant", &tenant)]).status,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let admitted = statuses.iter().filter(|(_, s)| *s == 200).count();
    assert!(
        statuses.iter().all(|(_, s)| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // Each tenant gets at most 4; together no more than the shared 30 — and since a refused
    // request consumes nothing, exactly 30 pass (12 tenants x 4 = 48 would be wanted).
    for t in 0..12 {
        let n = statuses
            .iter()
            .filter(|(x, s)| *x == t && *s == 200)
            .count();
        assert!(n <= 4, "tenant {t}: {n} admitted");
    }
    assert_eq!(admitted, 30, "{statuses:?}");
    assert!(g1.metrics().contains("menwei_ratelimit_fail_open 0"));
}

#[test]
fn a_sentinel_failover_moves_the_shared_counters_to_the_new_master() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = Redis::start();
    let replica = Redis::replica_of(master.port);
    assert!(wait_until(Duration::from_secs(15), || replica
        .command("INFO replication")
        .contains("master_link_status:up")));
    let sentinel = Redis::sentinel(master.port, dir.path());
    let replica_port = replica.port.to_string();
    assert!(
        wait_until(Duration::from_secs(20), || sentinel
            .command("SENTINEL replicas mymaster")
            .contains(&replica_port)),
        "the sentinel never saw the replica"
    );
    let b = Backend::echo("echo");
    // The host in `redis` is not used with Sentinel: the master comes from the sentinels.
    let gw_toml = gateway_toml(&format!(
        "[state]\nredis = \"redis://127.0.0.1:1/0\"\nsentinels = [\"redis://127.0.0.1:{}\"]\nsentinel_master = \"mymaster\"\ncommand_timeout = \"200ms\"\n",
        sentinel.port
    ));
    let limits = "[[limit]]\nname = \"shared\"\nkey = [\"client-ip\"]\nrate = \"1/m\"\nburst = 10\nscope = \"cluster\"\non_store_error = \"fail-open\"\n";
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"echo\"\nlimits = [\"shared\"]\n",
        b.addr
    );
    let files = [
        ("gateway.toml", gw_toml.as_str()),
        ("ratelimit.toml", limits),
        ("routes.toml", routes.as_str()),
    ];
    let gw = Gateway::start(&files);
    assert_eq!(count(&gw, 12), (10, 2, 0), "{}", gw.log());
    assert!(gw.metrics().contains("menwei_ratelimit_fail_open 0"));
    // The counters are in the master, and replicated.
    assert_ne!(master.command("DBSIZE"), ":0\r\n");
    assert!(wait_until(Duration::from_secs(20), || replica
        .command("DBSIZE")
        == master.command("DBSIZE")));

    // The master dies; the sentinel promotes the replica; the gateway follows it.
    master.stop();
    assert!(
        wait_until(Duration::from_secs(40), || sentinel
            .command("SENTINEL get-master-addr-by-name mymaster")
            .contains(&replica_port)),
        "no failover"
    );
    let back = wait_until(Duration::from_secs(20), || {
        let _ = get_with(gw.addr, "/x", &[]);
        gw.metrics().contains("menwei_ratelimit_fail_open 0")
            && replica.command("ROLE").contains("master")
    });
    assert!(back, "never followed the new master: {}", gw.log());
    // Decided at the new master, which holds the replicated counters: the burst stays spent.
    let (ok, limited, _) = count(&gw, 5);
    assert!(ok <= 1 && limited >= 4, "ok {ok}, limited {limited}");
    // A second gateway started now finds the same master through the sentinel. Right after a
    // failover the sentinel can still answer "no such master" for a moment; the new gateway then
    // fails open (as configured) and reconnects: wait until one of its requests is decided at
    // the store, as for the first gateway above, before counting.
    let gw2 = Gateway::start(&files);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let _ = get_with(gw2.addr, "/x", &[]);
            gw2.metrics().contains("menwei_ratelimit_fail_open 0")
        }),
        "the second gateway never reached the new master: {}",
        gw2.log()
    );
    let (ok2, _, unavailable) = count(&gw2, 3);
    assert!(ok2 <= 1 && unavailable == 0, "{}", gw2.log());
}
