//! Request inspection (`route.waf`): the head is inspected in `request_filter`; a body whose
//! length is known and small enough for Pingora to hold back (64 KiB) is read first and inspected
//! before anything is forwarded; the head of a longer or chunked body is inspected as it streams
//! (`request_body_filter`), and a blocked one is cut off before its end reaches the backend.

use crate::ctx::Ctx;
use crate::errors::{self, Deny};
use menwei_policy::raw::WafMode;
use menwei_policy::snapshot::WafSpec;
use menwei_waf::{Request, Verdict};
use pingora::proxy::Session;

/// What Pingora can hold back and still forward (its retry buffer).
pub const READ_AHEAD: u64 = 64 * 1024;

/// Per-request inspection state.
#[derive(Debug)]
pub struct WafState {
    /// Index into `Snapshot::wafs`.
    pub profile: usize,
    pub verdict: Verdict,
    /// The body head still being collected (streaming), at most the profile's `max_body`, and
    /// held back from the backend until its verdict: in `block` mode an attack in a chunked
    /// body never reaches the backend.
    pub pending: Option<Vec<u8>>,
    /// An attack verdict was logged already.
    pub reported: bool,
}

fn request<'a>(
    req: &'a pingora::http::RequestHeader,
    body: Option<&'a [u8]>,
    truncated: bool,
) -> Request<'a> {
    Request {
        method: req.method.as_str(),
        // As received (fragment and encoding kept), not as Pingora parsed it.
        uri: req.raw_path(),
        headers: headers(req),
        // `http::HeaderName`s are lower case, and so is the `host` added for HTTP/2.
        names_lower: true,
        body,
        body_truncated: truncated,
    }
}

fn headers(req: &pingora::http::RequestHeader) -> Vec<(&str, &[u8])> {
    let mut h: Vec<(&str, &[u8])> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    // HTTP/2 carries the host in `:authority`.
    if let (Some(a), false) = (
        req.uri.authority(),
        req.headers.contains_key(http::header::HOST),
    ) {
        h.push(("host", a.as_str().as_bytes()));
    }
    h
}

/// Inspects the request head, and the body when it can be held back. `Err` is the refusal in
/// `block` mode.
pub async fn check(
    live: &crate::live::Live,
    route_max_body: u64,
    profile: usize,
    session: &mut Session,
    ctx: &mut Ctx,
) -> pingora::Result<Result<(), Deny>> {
    let Some(spec) = live.snapshot.wafs.get(profile) else {
        return Ok(Ok(()));
    };
    if spec.mode == WafMode::Off {
        return Ok(Ok(()));
    }
    let Ok(engine) = menwei_waf::shared() else {
        // Cannot happen once a snapshot compiled (compiling checks the rules); fail closed.
        return Ok(Err(errors::INTERNAL));
    };
    let req = session.req_header();
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers.get(http::header::TRANSFER_ENCODING).is_some();
    let hold_back = spec.max_body.min(READ_AHEAD).min(route_max_body);
    let mut state = WafState {
        profile,
        verdict: Verdict::default(),
        pending: None,
        reported: false,
    };
    match (length, chunked) {
        (Some(n), false) if n > 0 && n <= hold_back => {
            session.enable_retry_buffering();
            let body = match crate::request::read_body(session, n as usize).await {
                Ok(b) => b,
                Err(crate::request::BodyError::TooLarge) => return Ok(Err(errors::BODY_TOO_LARGE)),
                Err(crate::request::BodyError::Unreadable) => return Ok(Err(errors::BAD_REQUEST)),
            };
            let req = session.req_header();
            state.verdict = engine.inspect(&spec.config, &request(req, Some(&body), false));
            ctx.read_ahead = Some(body);
        }
        (None | Some(0), false) => {
            state.verdict = engine.inspect(&spec.config, &request(req, None, false));
        }
        _ => {
            state.verdict = engine.inspect_head(&spec.config, &request(req, None, false));
            state.pending = Some(Vec::new());
        }
    }
    let attack = state.verdict.attack;
    ctx.waf = Some(state);
    Ok(refusal(spec, attack))
}

fn refusal(spec: &WafSpec, attack: bool) -> Result<(), Deny> {
    if attack && spec.mode == WafMode::Block {
        Err(errors::WAF_BLOCKED)
    } else {
        Ok(())
    }
}

/// A piece of a streaming body: collected until the profile's `max_body` or the end, then
/// inspected once. Until the verdict the pieces are held back (`body` becomes empty, which
/// Pingora does not forward); a clean head is then released in one piece, and what follows
/// streams through.
pub fn on_body(
    req: &pingora::http::RequestHeader,
    body: &mut Option<bytes::Bytes>,
    end: bool,
    ctx: &mut Ctx,
) -> Result<(), Deny> {
    let Some(live) = ctx.live.clone() else {
        return Ok(());
    };
    let Some(state) = ctx.waf.as_mut() else {
        return Ok(());
    };
    let Some(pending) = state.pending.as_mut() else {
        return Ok(());
    };
    let Some(spec) = live.snapshot.wafs.get(state.profile) else {
        return Ok(());
    };
    let cap = spec.max_body as usize;
    // `pending` holds every byte held back so far: each piece went in whole, but for the one
    // that reached the cap, whose rest is kept here.
    let mut rest = None;
    if let Some(c) = body.take() {
        let take = c.len().min(cap.saturating_sub(pending.len()));
        pending.extend_from_slice(&c[..take]);
        if take < c.len() {
            rest = Some(c.slice(take..));
        }
    }
    if !(end || rest.is_some() || pending.len() >= cap) {
        // Held back: an empty piece is not sent (and, unlike `None`, does not end the body).
        *body = Some(bytes::Bytes::new());
        return Ok(());
    }
    let mut head_bytes = std::mem::take(pending);
    state.pending = None;
    let Ok(engine) = menwei_waf::shared() else {
        return Err(errors::INTERNAL);
    };
    let head = std::mem::take(&mut state.verdict);
    state.verdict = engine.inspect_body(&spec.config, &request(req, Some(&head_bytes), !end), head);
    refusal(spec, state.verdict.attack)?;
    // Released: everything held, in order, as one piece (`None` at the end with nothing held).
    if let Some(r) = rest {
        head_bytes.extend_from_slice(&r);
    }
    *body = match (head_bytes.is_empty(), end) {
        (true, true) => None,
        (true, false) => Some(bytes::Bytes::new()),
        (false, _) => Some(bytes::Bytes::from(head_bytes)),
    };
    Ok(())
}

/// Logs and counts an attack verdict once (evidence masked: it may hold personal data).
pub fn report(ctx: &mut Ctx, metrics: &crate::metrics::Metrics) {
    let Some(live) = ctx.live.clone() else { return };
    let route = ctx.route_name().to_string();
    let Some(state) = ctx.waf.as_mut() else {
        return;
    };
    if !state.verdict.attack || state.reported {
        return;
    }
    state.reported = true;
    let Some(spec) = live.snapshot.wafs.get(state.profile) else {
        return;
    };
    let action = if spec.mode == WafMode::Block {
        "block"
    } else {
        "detect"
    };
    let category = state.verdict.main_category().map_or("-", |c| c.name());
    metrics
        .waf
        .with_label_values(&[route.as_str(), category, action])
        .inc();
    let hits: Vec<serde_json::Value> = state
        .verdict
        .hits
        .iter()
        .map(|h| {
            serde_json::json!({
                "rule": h.rule, "category": h.category.name(), "severity": h.severity.name(),
                "what": h.what, "target": menwei_mask::mask_text(&h.target),
                "evidence": menwei_mask::mask_text(&h.evidence),
            })
        })
        .collect();
    tracing::warn!(
        target: "menwei::waf",
        request_id = ctx.request_id.as_str(),
        client = ctx.client_str.as_str(),
        route = route.as_str(),
        profile = spec.name.as_str(),
        action,
        category,
        score = state.verdict.score,
        rules = ?state.verdict.rule_ids(),
        hits = %serde_json::Value::Array(hits),
        "request inspection: attack"
    );
}
