//! Hot reload: good edits applied under concurrent traffic with no failed request; broken edits
//! refused while the last good policy keeps serving; restart-only changes reported. Stopping:
//! nothing of the access log lost.

use menwei_tests::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn routes(b: &Backend, extra: &str) -> String {
    format!("[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"echo\"\nprefix = \"/echo/\"\nupstream = \"echo\"\n{extra}", b.addr)
}

const NEW_ROUTE: &str = "\n[[route]]\nname = \"new\"\nprefix = \"/new/\"\nupstream = \"echo\"\n";

#[test]
fn good_edit_under_traffic_loses_no_request() {
    let b = Backend::echo("echo");
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&b, "")),
    ]);
    assert_eq!(get_with(gw.addr, "/new/x", &[]).status, 404);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addr = gw.addr;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match try_request(addr, "GET", "/echo/x", &[], None) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    gw.write("routes.toml", &routes(&b, NEW_ROUTE));
    assert!(gw.wait_version(2), "edit not applied: {}", gw.log());
    let applied = wait_until(Duration::from_secs(20), || {
        get_with(gw.addr, "/new/x", &[]).status == 200
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(applied);
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little traffic to mean anything"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reload"
    );
    assert!(gw.metrics().contains("menwei_policy_version 2"));
    assert!(wait_until(Duration::from_secs(20), || gw
        .access_log()
        .contains("\"policy_version\":2")));
}

/// Each broken edit: (file content, code expected in the error).
fn broken_edits(b: &Backend) -> Vec<(String, &'static str)> {
    let good = routes(b, "");
    vec![
        (format!("{good}\n[[route]\nname = \"x\""), "MW-POL-001"),
        (format!("{good}\n[[route]]\nname = \"x\"\nprefix = \"/x/\"\nupstream = \"echo\"\ntimeout = \"1s\"\n"), "MW-POL-002"),
        (format!("{good}\n[[route]]\nname = \"x\"\nregex = \"^/x/(\"\nupstream = \"echo\"\n"), "MW-POL-003"),
        (format!("{good}\n[[route]]\nname = \"x\"\nprefix = \"/x/\"\nupstream = \"ech0\"\n"), "MW-POL-004"),
        (format!("{good}\n[[route]]\nname = \"echo\"\nprefix = \"/x/\"\nupstream = \"echo\"\n"), "MW-POL-005"),
        (format!("{good}\n[trust]\nproxies = [\"10.0.0.0/33\"]\n"), "MW-POL-003"),
        (format!("{good}\n[[certificate]]\nname = \"c\"\ncert = \"missing.pem\"\nkey = \"missing.key\"\n"), "MW-POL-009"),
    ]
}

#[test]
fn broken_edits_keep_the_last_good_policy() {
    let b = Backend::echo("echo");
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&b, "")),
    ]);
    let hash = gw.policy()["sha256"].clone();
    for (i, (text, code)) in broken_edits(&b).into_iter().enumerate() {
        gw.write("routes.toml", &text);
        gw.sighup();
        let refused = wait_until(Duration::from_secs(10), || {
            gw.policy()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(code) && e.contains("still serving policy version 1"))
                && gw
                    .metrics()
                    .contains(&format!("menwei_policy_reload_failures_total {}", i + 1))
        });
        assert!(
            refused,
            "edit {i} ({code}) not reported: {}\n{}",
            gw.policy(),
            gw.metrics()
        );
        assert_eq!(gw.version(), 1);
        assert_eq!(gw.policy()["sha256"], hash);
        assert_eq!(
            get_with(gw.addr, "/echo/still", &[]).status,
            200,
            "edit {i} broke serving"
        );
    }
    assert!(gw
        .log()
        .contains("policy reload refused, still serving policy version 1"));
    assert!(
        gw.log().contains("routes.toml:"),
        "diagnostics name the file: {}",
        gw.log()
    );
    // Fixing the file recovers and clears the error.
    gw.write("routes.toml", &routes(&b, NEW_ROUTE));
    gw.sighup();
    assert!(gw.wait_version(2));
    assert!(gw.policy()["last_error"].is_null());
    assert_eq!(get_with(gw.addr, "/new/x", &[]).status, 200);
}

#[test]
fn restart_only_changes_are_reported_not_ignored() {
    let b = Backend::echo("echo");
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&b, "")),
    ]);
    gw.write(
        "gateway.toml",
        &gateway_toml("").replace(
            "grace_period = \"0s\"",
            "grace_period = \"0s\"\nthreads = 2",
        ),
    );
    assert!(gw.wait_version(2));
    let p = gw.policy();
    let notes = p["restart_required"].to_string();
    assert!(notes.contains("threads"), "{p}");
    assert!(gw.metrics().contains("menwei_policy_restart_required 1"));
    assert!(gw.log().contains("takes effect only after a restart"));
}

#[test]
fn invalid_policy_at_startup_exits_non_zero_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), "[[listener]]\nname = \"p\"\naddr = \"127.0.0.1:1\"\n[[route]]\nname = \"r\"\nprefix = \"/\"\nupstream = \"nope\"\n").unwrap();
    let out = std::process::Command::new(bin("menwei"))
        .args(["run", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.toml:7:12: error[MW-POL-004]"),
        "{err}"
    );
    assert!(err.contains("not starting"), "{err}");
}

#[test]
fn stopping_writes_the_last_access_lines() {
    let b = Backend::echo("echo");
    let mut gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&b, "")),
    ]);
    // The access log is written in batches (every 200 ms when quiet): these lines are still in
    // memory when the stop arrives, and must be written before the process exits.
    let ids: Vec<String> = (0..20)
        .map(|i| {
            let r = get(gw.addr, &format!("/echo/last-{i}"));
            assert_eq!(r.status, 200);
            r.header("x-request-id").unwrap().to_string()
        })
        .collect();
    let status = gw.terminate().expect("menwei stops on SIGTERM");
    assert!(status.success(), "{status}\n{}", gw.log());
    let log = gw.access_log();
    for id in &ids {
        assert!(log.contains(id.as_str()), "{id} missing from:\n{log}");
    }
    assert_eq!(log.lines().count(), ids.len(), "{log}");
}
