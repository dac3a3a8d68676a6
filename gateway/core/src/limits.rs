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
use crate::live::{Live, LiveLimit};
use crate::metrics::Metrics;
use menwei_policy::raw::{OnStoreError, Scope};
use menwei_policy::router::RouteSpec;
use menwei_policy::snapshot::{KeyPart, LimitSpec};
use menwei_ratelimit::{ClusterCheck, ClusterStore, Decision, Gcra, LocalLimiter};
use pingora::http::RequestHeader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Separates key parts (a byte that cannot appear in an address, route name or header value).
const SEP: char = '\u{1f}';

/// The text of an identity key part: the user, the client application, or a claim (a missing
/// claim counts under the empty value, so callers without it share one bucket).
fn identity_part(part: &KeyPart, live: &Live, ctx: &Ctx, k: &mut String) {
    let Some(id) = &ctx.identity else { return };
    match part {
        KeyPart::User => k.push_str(&id.sub),
        KeyPart::App => {
            let app = ["azp", "client_id"]
                .iter()
                .find_map(|c| id.claims.get(*c).and_then(|v| v.as_str()));
            k.push_str(app.unwrap_or(""));
        }
        KeyPart::Claim(c) => {
            let paths = live
                .sso
                .as_ref()
                .and_then(|s| s.provider_spec(id.provider))
                .map(|p| p.claims.resolve(c).to_string());
            let path = paths.as_deref().unwrap_or(c);
            if let Some(v) = menwei_sso::claims::lookup(&id.claims, path) {
                k.push_str(&menwei_sso::claims::strings(v).join(","));
            }
        }
        _ => {}
    }
}

fn key(spec: &LimitSpec, route: &RouteSpec, req: &RequestHeader, live: &Live, ctx: &Ctx) -> String {
    let mut k = String::with_capacity(48);
    for (i, part) in spec.key.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        match part {
            KeyPart::ClientIp => k.push_str(ctx.client_key()),
            KeyPart::Route => k.push_str(&route.name),
            KeyPart::Header(h) => {
                if let Some(v) = req.headers.get(h) {
                    k.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
            p => identity_part(p, live, ctx, &mut k),
        }
    }
    k
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

/// Counts a refusal by `spec` and builds its 429.
fn limited(
    metrics: &Metrics,
    d: Deny,
    spec: &LimitSpec,
    gcra: &Gcra,
    retry_after_ns: u64,
) -> (Deny, Extra) {
    metrics
        .ratelimit
        .with_label_values(&[&spec.name, "limited"])
        .inc();
    refusal(d, spec, gcra.window_secs(), retry_after_ns)
}

fn local_decision(
    spec: &LimitSpec,
    limiter: &LocalLimiter,
    k: &str,
    metrics: &Metrics,
) -> Result<(), (Deny, Extra)> {
    match limiter.check(k) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { retry_after_ns } => Err(limited(
            metrics,
            errors::RATE_LIMITED,
            spec,
            &limiter.gcra,
            retry_after_ns,
        )),
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

/// One limit of the route being checked, with its key built once.
struct Applied<'a> {
    spec: &'a LimitSpec,
    limit: &'a LiveLimit,
    key: String,
}

/// When a limit is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Keyed on the address, route or headers: before authentication, so a flood costs no
    /// provider round trip or signature check.
    BeforeAuth,
    /// Keyed on who the caller is (user, app, claims): after authentication.
    AfterAuth,
}

/// Whether `route` has limits to decide in `phase`.
pub fn has(live: &Live, route: &RouteSpec, phase: Phase) -> bool {
    route.limits.iter().any(|&i| {
        live.snapshot
            .rate_limits
            .get(i)
            .is_some_and(|s| s.needs_identity() == (phase == Phase::AfterAuth))
    })
}

/// Checks the limits of `route` that belong to `phase`; on success the concurrency slots taken
/// are kept in `ctx`. All of them must pass (cluster ones are decided all or nothing).
pub async fn check(
    live: &Live,
    route: &RouteSpec,
    req: &RequestHeader,
    ctx: &mut Ctx,
    metrics: &Metrics,
    phase: Phase,
) -> Result<(), (Deny, Extra)> {
    let applied: Vec<Applied<'_>> = route
        .limits
        .iter()
        .filter_map(|&i| Some((live.snapshot.rate_limits.get(i)?, live.limiters.get(i)?)))
        .filter(|(spec, _)| spec.needs_identity() == (phase == Phase::AfterAuth))
        .map(|(spec, limit)| Applied {
            spec,
            limit,
            key: key(spec, route, req, live, ctx),
        })
        .collect();
    let store = live.cluster.as_ref();
    let (cluster, local): (Vec<&Applied<'_>>, Vec<&Applied<'_>>) = applied
        .iter()
        .partition(|a| a.spec.scope == Scope::Cluster && store.is_some());
    // All or nothing: when one limit refuses, the local ones that admitted give it back (the
    // cluster script already consumes nothing unless all its limits admit).
    let refund = |admitted: &[&Applied<'_>]| {
        for a in admitted {
            a.limit.local.refund(&a.key);
        }
    };
    let mut admitted: Vec<&Applied<'_>> = Vec::with_capacity(local.len());
    for a in &local {
        if let Err(e) = local_decision(a.spec, &a.limit.local, &a.key, metrics) {
            refund(&admitted);
            return Err(e);
        }
        admitted.push(a);
    }
    if let (false, Some(store)) = (cluster.is_empty(), store) {
        if let Err(e) = check_cluster(store, &cluster, &ctx.request_id, metrics).await {
            refund(&admitted);
            return Err(e);
        }
    }
    for a in &applied {
        match a.limit.local.acquire(&a.key) {
            Ok(Some(guard)) => ctx.limit_guards.push(guard),
            Ok(None) => {}
            Err(_) => {
                refund(&admitted);
                return Err(limited(
                    metrics,
                    errors::CONCURRENCY_LIMITED,
                    a.spec,
                    &a.limit.local.gcra,
                    1_000_000_000,
                ));
            }
        }
        metrics
            .ratelimit
            .with_label_values(&[&a.spec.name, "allowed"])
            .inc();
    }
    Ok(())
}

/// All cluster limits of a request in one Redis round trip; on a store failure each applies its
/// `on_store_error`.
async fn check_cluster(
    store: &ClusterStore,
    cluster: &[&Applied<'_>],
    request_id: &str,
    metrics: &Metrics,
) -> Result<(), (Deny, Extra)> {
    let checks: Vec<ClusterCheck> = cluster
        .iter()
        .map(|a| ClusterCheck {
            key: format!("{}{}", a.limit.redis_prefix, a.key),
            // Rounded up, as the interval itself: never faster than the rate.
            interval_us: a.spec.rate.emission_interval_ns().div_ceil(1000),
            burst: a.spec.burst,
        })
        .collect();
    let started = Instant::now();
    let result = store.check(checks).await;
    metrics
        .ratelimit_store_latency
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(decisions) => {
            metrics.ratelimit_fail_open.set(0);
            for (a, d) in cluster.iter().zip(decisions) {
                if let Decision::Deny { retry_after_ns } = d {
                    return Err(limited(
                        metrics,
                        errors::RATE_LIMITED,
                        a.spec,
                        &a.limit.local.gcra,
                        retry_after_ns,
                    ));
                }
            }
        }
        Err(e) => {
            store_failed(metrics, &e.0, request_id);
            for a in cluster {
                match a.spec.on_store_error {
                    OnStoreError::FailClosed => {
                        return Err((errors::LIMIT_STORE_DOWN, Extra::new()))
                    }
                    OnStoreError::FailOpen => {
                        local_decision(a.spec, &a.limit.local, &a.key, metrics)?
                    }
                }
            }
        }
    }
    Ok(())
}
