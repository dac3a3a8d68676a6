//! Active health checks: one loop for the whole process that, every 100 ms, starts the checks
//! that are due on the policy being served. A check is `GET <path> HTTP/1.1` over a new TCP
//! connection (TLS upstreams get a TCP connect check); a 2xx or 3xx status line is a success.

use crate::live::Store;
use crate::upstream::{now_ms, BackendState};
use menwei_policy::snapshot::HealthSpec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs until `shutdown` turns true.
pub async fn run(store: Arc<Store>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        start_due_checks(&store);
    }
}

fn start_due_checks(store: &Store) {
    let live = store.current();
    let now = now_ms();
    for group in &live.upstreams {
        let Some(h) = &group.spec.health else {
            continue;
        };
        for b in &group.backends {
            let due = b.next_check.load(Ordering::Relaxed);
            if due > now {
                continue;
            }
            b.next_check
                .store(now + h.interval.as_millis() as u64, Ordering::Relaxed);
            let (b, h, tls, up) = (
                b.clone(),
                h.clone(),
                group.spec.tls,
                group.spec.name.clone(),
            );
            tokio::spawn(async move {
                let ok = check(&b, &h, tls).await;
                apply(&up, &b, &h, ok);
            });
        }
    }
}

fn apply(upstream: &str, b: &BackendState, h: &HealthSpec, ok: bool) {
    let (streak, other) = if ok {
        (&b.check_ok, &b.check_fail)
    } else {
        (&b.check_fail, &b.check_ok)
    };
    other.store(0, Ordering::Relaxed);
    let n = streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    let threshold = if ok {
        h.healthy_after
    } else {
        h.unhealthy_after
    };
    if n >= threshold && b.set_healthy(ok) {
        if ok {
            tracing::info!(upstream, backend = %b.name, "backend healthy again");
        } else {
            tracing::warn!(upstream, backend = %b.name, "backend unhealthy: health check failed {n} times");
        }
    }
}

async fn check(b: &BackendState, h: &HealthSpec, tls: bool) -> bool {
    tokio::time::timeout(h.timeout, probe(b, h, tls))
        .await
        .unwrap_or(false)
}

async fn probe(b: &BackendState, h: &HealthSpec, tls: bool) -> bool {
    let Ok(mut conn) = tokio::net::TcpStream::connect(b.addr).await else {
        return false;
    };
    if tls {
        return true;
    }
    let host = b.name.rsplit_once(':').map(|(h, _)| h).unwrap_or(&b.name);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: menwei-health\r\nConnection: close\r\n\r\n",
        h.path
    );
    if conn.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match conn.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    status_ok(&buf[..got])
}

fn status_ok(head: &[u8]) -> bool {
    // "HTTP/1.1 200 ..."
    head.starts_with(b"HTTP/1.") && matches!(head.get(9), Some(b'2' | b'3'))
}

/// Refreshes the per-backend availability gauge (called at each `/metrics` scrape, so it is exact).
pub fn publish(store: &Store) {
    use std::sync::atomic::Ordering;
    let a = &store.alerter.stats;
    let m = &store.metrics;
    m.alerts_emitted
        .set(a.emitted.load(Ordering::Relaxed) as i64);
    m.alerts_dropped
        .set(a.dropped.load(Ordering::Relaxed) as i64);
    let live = store.current();
    for g in &live.upstreams {
        for b in &g.backends {
            store
                .metrics
                .upstream_healthy
                .with_label_values(&[&g.spec.name, &b.name])
                .set(i64::from(b.available()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_lines() {
        assert!(super::status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(super::status_ok(b"HTTP/1.0 302 Found"));
        assert!(!super::status_ok(b"HTTP/1.1 500 Oops"));
        assert!(!super::status_ok(b"SSH-2.0-OpenSSH"));
    }
}
