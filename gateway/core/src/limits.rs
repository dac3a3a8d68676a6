//! Applying a route's rate limits to a request: build each limit's key from the request, decide
//! the local limits in process and the cluster limits in one Redis round trip, and on refusal
//! produce the 429 with `Retry-After`, `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers). All limits of a route must pass.
//!
//! Keys use the client address after trusted-proxy resolution, so a forged `X-Forwarded-For`
//! from an untrusted peer never changes the key. When Redis cannot answer within the command
//! timeout, each cluster limit applies its `on_store_error`: `fail-open` decides with the local
//! counters of this process, `fail-closed` answers 503; either way the failure is logged (at most
//! once per 10 s), counted and shown by the `menwei_ratelimit_fail_open` gauge.

use crate::ctx::Ctx;
use crate::errors::{self, Deny, Extra};
use crate::live::Live;
use crate::metrics::Metrics;
use menwei_policy::raw::{OnStoreError, Scope};
use menwei_policy::router::RouteSpec;
use menwei_policy::snapshot::{KeyPart, LimitSpec};
use menwei_ratelimit::{ClusterCheck, Decision, LocalLimiter};
use pingora::http::RequestHeader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Separates key parts (a byte that cannot appear in an address, route name or header value).
const SEP: char = '\u{1f}';

fn key(spec: &LimitSpec, route: &RouteSpec, req: &RequestHeader, ctx: &Ctx) -> String {
    let mut k = String::with_capacity(48);
    for (i, part) in spec.key.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        match part {
            KeyPart::ClientIp => k.push_str(&ctx.client_str),
            KeyPart::Route => k.push_str(&route.name),
            KeyPart::Header(h) => {
                if let Some(v) = req.headers.get(h) {
                    k.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
        }
    }
    k
}

/// FNV-1a: a short, stable tag of a limit's definition for its Redis keys, so that a changed
/// limit starts afresh in Redis as it does locally.
fn tag(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

fn refusal(d: Deny, spec: &LimitSpec, window: u64, retry_after_ns: u64) -> (Deny, Extra) {
    let secs = retry_after_ns.div_ceil(1_000_000_000).max(1);
    let name = spec.name.replace(['"', '\\'], "");
    let extra = vec![
        (http::header::RETRY_AFTER, secs.to_string()),
        (
            http::HeaderName::from_static("ratelimit-policy"),
            format!("\"{name}\";q={};w={window}", spec.burst),
        ),
        (
            http::HeaderName::from_static("ratelimit"),
            format!("\"{name}\";r=0;t={secs}"),
        ),
    ];
    (d, extra)
}

fn local_decision(
    spec: &LimitSpec,
    limiter: &LocalLimiter,
    k: &str,
    metrics: &Metrics,
) -> Result<(), (Deny, Extra)> {
    match limiter.check(k) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { retry_after_ns } => {
            metrics
                .ratelimit
                .with_label_values(&[&spec.name, "limited"])
                .inc();
            Err(refusal(
                errors::RATE_LIMITED,
                spec,
                limiter.gcra.window_secs(),
                retry_after_ns,
            ))
        }
    }
}

static LAST_STORE_WARNING_MS: AtomicU64 = AtomicU64::new(0);

fn store_failed(metrics: &Metrics, why: &str, request_id: &str) {
    metrics.ratelimit_store_errors.inc();
    metrics.ratelimit_fail_open.set(1);
    let now = menwei_ratelimit::local::now_ns() / 1_000_000;
    let last = LAST_STORE_WARNING_MS.load(Ordering::Relaxed);
    if last == 0 || now.saturating_sub(last) >= 10_000 {
        LAST_STORE_WARNING_MS.store(now, Ordering::Relaxed);
        tracing::warn!(request_id, "ALERT rate-limit store unavailable ({why}): cluster limits apply their on_store_error (fail-open: local counters; fail-closed: 503)");
    }
}

/// Checks every limit of `route`; on success the concurrency slots taken are kept in `ctx`.
pub async fn check(
    live: &Live,
    route: &RouteSpec,
    req: &RequestHeader,
    ctx: &mut Ctx,
    metrics: &Metrics,
) -> Result<(), (Deny, Extra)> {
    let mut cluster: Vec<(usize, String)> = Vec::new();
    for &i in &route.limits {
        let (Some(spec), Some(limiter)) = (live.snapshot.rate_limits.get(i), live.limiters.get(i))
        else {
            continue;
        };
        let k = key(spec, route, req, ctx);
        match (spec.scope, &live.cluster) {
            (Scope::Cluster, Some(_)) => cluster.push((i, k)),
            _ => local_decision(spec, limiter, &k, metrics)?,
        }
    }
    if let (false, Some(store)) = (cluster.is_empty(), &live.cluster) {
        let checks: Vec<ClusterCheck> = cluster
            .iter()
            .filter_map(|(i, k)| live.snapshot.rate_limits.get(*i).map(|s| (s, k)))
            .map(|(s, k)| ClusterCheck {
                key: format!("menwei:rl:{}:{}:{k}", s.name, tag(&s.fingerprint())),
                interval_us: s.rate.emission_interval_ns() / 1000,
                burst: s.burst,
            })
            .collect();
        let started = Instant::now();
        let result = store.check(&checks).await;
        metrics
            .ratelimit_store_latency
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(decisions) => {
                metrics.ratelimit_fail_open.set(0);
                for ((i, _), d) in cluster.iter().zip(decisions) {
                    let Some(spec) = live.snapshot.rate_limits.get(*i) else {
                        continue;
                    };
                    if let Decision::Deny { retry_after_ns } = d {
                        metrics
                            .ratelimit
                            .with_label_values(&[&spec.name, "limited"])
                            .inc();
                        let window =
                            menwei_ratelimit::Gcra::new(spec.rate, spec.burst).window_secs();
                        return Err(refusal(errors::RATE_LIMITED, spec, window, retry_after_ns));
                    }
                }
            }
            Err(e) => {
                store_failed(metrics, &e.0, &ctx.request_id);
                for (i, k) in &cluster {
                    let (Some(spec), Some(limiter)) =
                        (live.snapshot.rate_limits.get(*i), live.limiters.get(*i))
                    else {
                        continue;
                    };
                    match spec.on_store_error {
                        OnStoreError::FailClosed => {
                            return Err((errors::LIMIT_STORE_DOWN, Extra::new()))
                        }
                        OnStoreError::FailOpen => local_decision(spec, limiter, k, metrics)?,
                    }
                }
            }
        }
    }
    acquire_slots(live, route, req, ctx, metrics)
}

fn acquire_slots(
    live: &Live,
    route: &RouteSpec,
    req: &RequestHeader,
    ctx: &mut Ctx,
    metrics: &Metrics,
) -> Result<(), (Deny, Extra)> {
    for &i in &route.limits {
        let (Some(spec), Some(limiter)) = (live.snapshot.rate_limits.get(i), live.limiters.get(i))
        else {
            continue;
        };
        let k = key(spec, route, req, ctx);
        match limiter.acquire(&k) {
            Ok(Some(guard)) => ctx.limit_guards.push(guard),
            Ok(None) => {}
            Err(_) => {
                metrics
                    .ratelimit
                    .with_label_values(&[&spec.name, "limited"])
                    .inc();
                return Err(refusal(
                    errors::CONCURRENCY_LIMITED,
                    spec,
                    limiter.gcra.window_secs(),
                    1_000_000_000,
                ));
            }
        }
        metrics
            .ratelimit
            .with_label_values(&[&spec.name, "allowed"])
            .inc();
    }
    Ok(())
}
