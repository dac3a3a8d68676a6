//! One JSON line per request on the `menwei::access` target (the binary sends it to standard
//! output), and the request metrics.

use crate::ctx::Ctx;
use crate::live::Store;
use pingora::proxy::Session;

/// Records metrics and writes the access log line for a finished request.
pub fn record(store: &Store, session: &Session, ctx: &Ctx) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.deny.map(|d| d.status))
        .unwrap_or(0);
    let route = ctx.route_name();
    let elapsed = ctx.start.elapsed();
    let m = &store.metrics;
    m.requests
        .with_label_values(&[route, status_label(status)])
        .inc();
    m.latency
        .with_label_values(&[route, status_class(status)])
        .observe(elapsed.as_secs_f64());
    let Some(live) = &ctx.live else { return };
    if !live.snapshot.access_log {
        return;
    }
    let backend = match (ctx.upstream, ctx.backend) {
        (Some(u), Some(b)) => live
            .upstreams
            .get(u)
            .and_then(|g| g.backends.get(b))
            .map(|b| b.name.as_str()),
        _ => None,
    };
    let upstream = ctx
        .upstream
        .and_then(|u| live.upstreams.get(u))
        .map(|g| g.spec.name.as_str());
    let req = session.req_header();
    // A path may carry an ID card or phone number (`/citizens/110101...`): masked in the log.
    let path = log_safe(&ctx.path);
    tracing::info!(
        target: "menwei::access",
        request_id = ctx.request_id.as_str(),
        client = ctx.client_str.as_str(),
        method = req.method.as_str(),
        host = ctx.host.as_str(),
        path = path.as_ref(),
        route,
        upstream = upstream.unwrap_or("-"),
        backend = backend.unwrap_or("-"),
        status,
        code = ctx.deny.map(|d| d.code).unwrap_or("-"),
        bytes = session.body_bytes_sent(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        attempts = ctx.tried.len(),
        policy_version = live.snapshot.version,
    );
}

/// `s` with the personal data the detectors find masked (most paths have none: no copy).
pub fn log_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if menwei_mask::detect::may_hold_personal(s.as_bytes()) {
        let (masked, n) = menwei_mask::mask_text_counted(s);
        if n > 0 {
            return std::borrow::Cow::Owned(masked);
        }
    }
    std::borrow::Cow::Borrowed(s)
}

fn status_label(s: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..600).map(|i: u16| i.to_string()).collect());
    labels
        .get(s as usize)
        .map(String::as_str)
        .unwrap_or("other")
}

fn status_class(s: u16) -> &'static str {
    match s / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}
