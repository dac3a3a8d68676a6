//! Applying a route's rate limits to a request: build each limit's key from the request, ask the
//! limit's store, and on refusal produce the 429 with `Retry-After`, `RateLimit-Policy` and
//! `RateLimit` (draft-ietf-httpapi-ratelimit-headers). All limits of a route must pass; the first
//! refusal answers.
//!
//! Keys use the client address after trusted-proxy resolution, so a forged `X-Forwarded-For`
//! from an untrusted peer never changes the key.

use crate::ctx::Ctx;
use crate::errors::{self, Deny, Extra};
use crate::live::Live;
use crate::metrics::Metrics;
use menwei_policy::router::RouteSpec;
use menwei_policy::snapshot::{KeyPart, LimitSpec};
use menwei_ratelimit::Decision;
use pingora::http::RequestHeader;

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

/// Checks every limit of `route`; on success the concurrency slots taken are kept in `ctx`.
pub fn check(
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
        match limiter.check(&k) {
            Decision::Allow { .. } => {}
            Decision::Deny { retry_after_ns } => {
                metrics
                    .ratelimit
                    .with_label_values(&[&spec.name, "limited"])
                    .inc();
                return Err(refusal(
                    errors::RATE_LIMITED,
                    spec,
                    limiter.gcra.window_secs(),
                    retry_after_ns,
                ));
            }
        }
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
