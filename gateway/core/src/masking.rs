//! Masking personal data in responses (`route.mask`): the decision on the response head (who
//! sees originals, what can be masked, what is too large), then the body. JSON is masked as it
//! streams (menwei-mask's `JsonMasker`: only the value being read is held back); text bodies are
//! collected up to the profile's `max_body` and masked at their end. Backends are asked for
//! identity encoding; a gzip, deflate or br answer anyway is decoded here (the decoded size counts
//! against `max_body`, so a compression bomb stops at the cap) and sent uncompressed. Any other
//! encoding is refused rather than passed unmasked.

use crate::ctx::Ctx;
use crate::errors::{self, Deny};
use crate::live::Live;
use bytes::Bytes;
use menwei_mask::json::JsonMasker;
use menwei_policy::raw::OnOverflow;
use pingora::http::ResponseHeader;
use std::io::Write;

/// The decoded bytes of a compressed body, bounded.
struct Capped {
    out: Vec<u8>,
    total: u64,
    cap: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len() as u64;
        if self.total > self.cap {
            return Err(std::io::Error::other("decoded body over the masking cap"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A streaming decoder writing into a bounded sink.
trait Decode: Write + Send + Sync {
    fn sink(&mut self) -> &mut Capped;
    /// The end of the compressed body (an error when it was cut short).
    fn end(&mut self) -> std::io::Result<()>;
}

macro_rules! flate2_decode {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn sink(&mut self) -> &mut Capped {
                self.get_mut()
            }
            fn end(&mut self) -> std::io::Result<()> {
                self.try_finish()
            }
        }
    )*};
}
flate2_decode!(
    flate2::write::GzDecoder<Capped>,
    flate2::write::ZlibDecoder<Capped>,
    flate2::write::DeflateDecoder<Capped>
);

impl Decode for brotli_decompressor::DecompressorWriter<Capped> {
    fn sink(&mut self) -> &mut Capped {
        self.get_mut()
    }
    fn end(&mut self) -> std::io::Result<()> {
        self.close()
    }
}

/// A decoder of a compressed answer.
enum Decoder {
    /// HTTP's `deflate` is zlib-wrapped; some servers send raw deflate: told apart by the zlib
    /// header once two bytes have arrived.
    Deflate {
        head: Vec<u8>,
        cap: u64,
    },
    Ready(Box<dyn Decode>),
}

fn capped(cap: u64) -> Capped {
    Capped {
        out: Vec::new(),
        total: 0,
        cap,
    }
}

impl Decoder {
    fn new(encoding: &str, cap: u64) -> Option<Decoder> {
        Some(match encoding {
            "gzip" | "x-gzip" => {
                Decoder::Ready(Box::new(flate2::write::GzDecoder::new(capped(cap))))
            }
            "deflate" => Decoder::Deflate {
                head: Vec::new(),
                cap,
            },
            "br" => Decoder::Ready(Box::new(brotli_decompressor::DecompressorWriter::new(
                capped(cap),
                4096,
            ))),
            _ => return None,
        })
    }

    /// Decodes `input`; returns what came out so far.
    fn push(&mut self, input: &[u8]) -> std::io::Result<Vec<u8>> {
        if let Decoder::Deflate { head, cap } = self {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(Vec::new());
            }
            let zlib =
                head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            let buffered = std::mem::take(head);
            let sink = capped(*cap);
            *self = Decoder::Ready(if zlib {
                Box::new(flate2::write::ZlibDecoder::new(sink))
            } else {
                Box::new(flate2::write::DeflateDecoder::new(sink))
            });
            return self.push(&buffered);
        }
        match self {
            Decoder::Ready(d) => {
                d.write_all(input)?;
                Ok(std::mem::take(&mut d.sink().out))
            }
            Decoder::Deflate { .. } => Ok(Vec::new()),
        }
    }

    /// Whether the decoded body went over the cap (rather than being corrupt).
    fn over(&mut self) -> bool {
        match self {
            Decoder::Ready(d) => d.sink().total > d.sink().cap,
            Decoder::Deflate { .. } => false,
        }
    }

    /// The end of the compressed body: the rest of the output, or an error when it was cut short.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Ready(d) => {
                d.end()?;
                Ok(std::mem::take(&mut d.sink().out))
            }
            Decoder::Deflate { head, .. } if head.is_empty() => Ok(Vec::new()),
            Decoder::Deflate { .. } => Err(std::io::Error::other("a deflate body of one byte")),
        }
    }
}

/// A response being masked.
pub struct MaskState {
    pub mask: usize,
    /// The JSON rewriter; `None` for a text body (collected, masked at its end).
    json: Option<JsonMasker>,
    decoder: Option<Decoder>,
    pub max: u64,
    /// Decoded bytes seen so far.
    seen: u64,
    text: Vec<u8>,
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

/// Refuses a masked route's answer: logged, and raised as an alert once the request ends
/// (`mask:overflow` for `MW-MASK-001`, `mask:unreadable` for `MW-MASK-002`).
fn refuse(ctx: &mut Ctx, deny: Deny, why: String) -> Deny {
    let rule = if deny.code == errors::MASK_TOO_LARGE.code {
        "mask:overflow"
    } else {
        "mask:unreadable"
    };
    tracing::warn!(request_id = %ctx.request_id, code = deny.code, why = why.as_str(), "ALERT masked route's response refused");
    ctx.mask_refused = Some((rule, why));
    deny
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
    // What the answer holds depends on who asked (masked, or the originals for an unmask
    // role), and it is personal data: no cache may keep it, least of all a shared one in front
    // that would hand an auditor's originals to the next caller. Whatever the backend said.
    let _ = resp.insert_header(http::header::CACHE_CONTROL, "private, no-store");
    resp.remove_header(&http::header::EXPIRES);
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
    // No body to mask (and none may be sent): 1xx, 204, 304.
    let status = resp.status.as_u16();
    if status < 200 || status == 204 || status == 304 {
        return Ok(());
    }
    let header = |n: http::HeaderName| {
        resp.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
    };
    let ctype = header(http::header::CONTENT_TYPE).unwrap_or_default();
    let json = ctype.contains("json");
    let text = ctype.starts_with("text/") && spec.profile.detect;
    if !(json || text) {
        return Ok(());
    }
    let decoder = match header(http::header::CONTENT_ENCODING) {
        None => None,
        Some(e) if e == "identity" || e.is_empty() => None,
        Some(e) => match Decoder::new(&e, spec.max_body) {
            Some(d) => Some(d),
            None => {
                return Err(refuse(
                    ctx,
                    errors::MASK_UNREADABLE,
                    format!("`{e}` encoding"),
                ))
            }
        },
    };
    let declared = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if decoder.is_none() && declared.is_some_and(|n| n > spec.max_body) {
        if spec.on_overflow == OnOverflow::Pass {
            store.audit(
                "mask_overflow_passed",
                serde_json::json!({"route": ctx.route_name(), "bytes": declared, "request_id": ctx.request_id}),
            );
            return Ok(());
        }
        let why = format!("{} bytes declared", declared.unwrap_or(0));
        return Err(refuse(ctx, errors::MASK_TOO_LARGE, why));
    }
    if decoder.is_some() {
        resp.remove_header(&http::header::CONTENT_ENCODING);
    }
    resp.remove_header(&http::header::CONTENT_LENGTH);
    // Masked output depends on who asked; the original's validators do not describe it.
    resp.remove_header(&http::header::ETAG);
    let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    ctx.mask = Some(MaskState {
        mask: mi,
        json: json.then(|| JsonMasker::new(&spec.profile)),
        decoder,
        max: spec.max_body,
        seen: 0,
        text: Vec::new(),
        masked: 0,
    });
    Ok(())
}

/// Masks the next piece of the body. `Err` (already logged and noted for the alert) when it
/// grows over the cap or cannot be decoded: nothing unmasked has been sent.
pub fn on_body(
    live: &Live,
    body: &mut Option<Bytes>,
    end: bool,
    ctx: &mut Ctx,
) -> Result<(), Deny> {
    match mask_body(live, body, end, ctx) {
        Ok(()) => Ok(()),
        Err((deny, why)) => Err(refuse(ctx, deny, why.to_string())),
    }
}

fn mask_body(
    live: &Live,
    body: &mut Option<Bytes>,
    end: bool,
    ctx: &mut Ctx,
) -> Result<(), (Deny, &'static str)> {
    const OVER: (Deny, &str) = (errors::MASK_TOO_LARGE, "response over the masking cap");
    const CORRUPT: (Deny, &str) = (
        errors::MASK_UNREADABLE,
        "compressed response corrupt or over the masking cap",
    );
    let Some(st) = ctx.mask.as_mut() else {
        return Ok(());
    };
    let Some(spec) = live.snapshot.masks.get(st.mask) else {
        return Err((errors::MASK_UNREADABLE, "masking profile gone"));
    };
    let incoming = body.take().unwrap_or_default();
    // Identity bodies are masked straight from Pingora's buffer; compressed ones once decoded.
    let decoded = match st.decoder.as_mut() {
        None => None,
        Some(d) => {
            let failed = |d: &mut Decoder| if d.over() { OVER } else { CORRUPT };
            let mut out = d.push(&incoming).map_err(|_| failed(d))?;
            if end {
                out.extend_from_slice(&d.finish().map_err(|_| failed(d))?);
            }
            Some(out)
        }
    };
    let plain: &[u8] = decoded.as_deref().unwrap_or(&incoming);
    st.seen += plain.len() as u64;
    if st.seen > st.max {
        return Err(OVER);
    }
    let mut out = Vec::with_capacity(plain.len() + 16);
    match st.json.as_mut() {
        Some(m) => {
            m.push(&spec.profile, plain, &mut out);
            if end {
                if let Err(why) = m.finish(&spec.profile, &mut out) {
                    // What was sent is masked all the same; the rest went through the detectors.
                    tracing::warn!(request_id = %ctx.request_id, why, "masked route answered with invalid JSON; the rest was masked as text");
                }
                st.masked = (m.stats.by_rule + m.stats.by_detector) as u64;
            }
        }
        None => {
            st.text.extend_from_slice(plain);
            if end {
                let (masked, n) =
                    menwei_mask::mask_text_counted(&String::from_utf8_lossy(&st.text));
                st.masked = n as u64;
                st.text = Vec::new();
                out = masked.into_bytes();
            }
        }
    }
    // Nothing to send yet (a value is still being read): no chunk at all, since an empty one
    // could read as the end of a chunked body.
    *body = (!out.is_empty()).then(|| Bytes::from(out));
    Ok(())
}
