//! Masking personal data in responses (`route.mask`): the decision on the response head (who
//! sees originals, what can be masked, what is too large), and the body, collected up to the
//! profile's `max_body` and masked whole when it ends. Backends are asked for identity encoding
//! so that the body can be read; a compressed answer is refused rather than passed unmasked.

use crate::ctx::Ctx;
use crate::errors::{self, Deny};
use crate::live::Live;
use bytes::Bytes;
use menwei_policy::raw::OnOverflow;
use pingora::http::ResponseHeader;

/// A response being masked.
pub struct MaskState {
    pub mask: usize,
    pub json: bool,
    pub max: u64,
    pub buf: Vec<u8>,
    /// Values masked in this response (the bulk-exfiltration signal).
    pub masked: u64,
}

fn roles(live: &Live, ctx: &Ctx) -> Vec<String> {
    let Some(id) = &ctx.identity else {
        return Vec::new();
    };
    let path = live
        .sso
        .as_ref()
        .and_then(|s| s.provider_spec(id.provider))
        .map_or_else(|| "roles".to_string(), |p| p.claims.roles.clone());
    menwei_sso::claims::lookup(&id.claims, &path)
        .map(menwei_sso::claims::strings)
        .unwrap_or_default()
}

/// Decides on the response head. `Err` is the refusal to send instead (nothing unmasked leaves).
pub fn on_head(
    live: &Live,
    store: &crate::live::Store,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<(), Deny> {
    let Some(mi) = ctx.route_spec().and_then(|r| r.mask) else {
        return Ok(());
    };
    let Some(spec) = live.snapshot.masks.get(mi) else {
        return Ok(());
    };
    let who = roles(live, ctx);
    if let Some(role) = spec.unmask_roles.iter().find(|r| who.contains(r)) {
        store.audit(
            "unmasked",
            serde_json::json!({
                "sub": ctx.identity.as_ref().map(|i| i.sub.as_str()), "role": role,
                "route": ctx.route_name(), "profile": spec.name, "request_id": ctx.request_id,
            }),
        );
        return Ok(());
    }
    let header = |n: http::HeaderName| {
        resp.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.to_ascii_lowercase())
    };
    let ctype = header(http::header::CONTENT_TYPE).unwrap_or_default();
    let json = ctype.contains("json");
    let text = ctype.starts_with("text/") && spec.profile.detect;
    if !(json || text) {
        return Ok(());
    }
    if header(http::header::CONTENT_ENCODING).is_some_and(|e| e != "identity") {
        tracing::warn!(request_id = %ctx.request_id, "ALERT masked route answered with a compressed body; refused");
        return Err(errors::MASK_UNREADABLE);
    }
    let declared = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > spec.max_body) {
        if spec.on_overflow == OnOverflow::Pass {
            store.audit(
                "mask_overflow_passed",
                serde_json::json!({"route": ctx.route_name(), "bytes": declared, "request_id": ctx.request_id}),
            );
            return Ok(());
        }
        tracing::warn!(request_id = %ctx.request_id, bytes = declared, "ALERT response over the masking cap; refused");
        return Err(errors::MASK_TOO_LARGE);
    }
    resp.remove_header(&http::header::CONTENT_LENGTH);
    let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    ctx.mask = Some(MaskState {
        mask: mi,
        json,
        max: spec.max_body,
        buf: Vec::new(),
        masked: 0,
    });
    Ok(())
}

/// Collects the body; masks it at the end. `Err` when it grows over the cap (the connection is
/// cut: nothing unmasked is sent).
pub fn on_body(
    live: &Live,
    body: &mut Option<Bytes>,
    end: bool,
    ctx: &mut Ctx,
) -> Result<(), &'static str> {
    let Some(st) = ctx.mask.as_mut() else {
        return Ok(());
    };
    if let Some(b) = body.take() {
        st.buf.extend_from_slice(&b);
    }
    if st.buf.len() as u64 > st.max {
        return Err("response over the masking cap");
    }
    if !end {
        return Ok(());
    }
    let Some(spec) = live.snapshot.masks.get(st.mask) else {
        return Err("masking profile gone");
    };
    let data = std::mem::take(&mut st.buf);
    let (out, masked) = if st.json {
        match spec.profile.mask_json(&data) {
            Ok((out, stats)) => (out, (stats.by_rule + stats.by_detector) as u64),
            // Not JSON after all: what the detectors find is masked as in text.
            Err(_) => mask_text(&data),
        }
    } else {
        mask_text(&data)
    };
    st.masked = masked;
    *body = Some(Bytes::from(out));
    Ok(())
}

fn mask_text(data: &[u8]) -> (Vec<u8>, u64) {
    let (out, n) = menwei_mask::mask_text_counted(&String::from_utf8_lossy(data));
    (out.into_bytes(), n as u64)
}
