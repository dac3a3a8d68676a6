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

/// A decoder of a compressed answer.
enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Capped>>),
    /// HTTP's `deflate` is zlib-wrapped; some servers send raw deflate: told apart by the
    /// zlib header once two bytes have arrived.
    Deflate {
        head: Vec<u8>,
        cap: u64,
    },
    Zlib(Box<flate2::write::ZlibDecoder<Capped>>),
    Raw(Box<flate2::write::DeflateDecoder<Capped>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Capped>>),
}

impl Decoder {
    fn new(encoding: &str, cap: u64) -> Option<Decoder> {
        let sink = || Capped {
            out: Vec::new(),
            total: 0,
            cap,
        };
        Some(match encoding {
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink()))),
            "deflate" => Decoder::Deflate {
                head: Vec::new(),
                cap,
            },
            "br" => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                sink(),
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
            let sink = Capped {
                out: Vec::new(),
                total: 0,
                cap: *cap,
            };
            let zlib =
                head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            let buffered = std::mem::take(head);
            *self = if zlib {
                Decoder::Zlib(Box::new(flate2::write::ZlibDecoder::new(sink)))
            } else {
                Decoder::Raw(Box::new(flate2::write::DeflateDecoder::new(sink)))
            };
            return self.push(&buffered);
        }
        let sink = match self {
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                d.get_mut()
            }
            Decoder::Zlib(d) => {
                d.write_all(input)?;
                d.get_mut()
            }
            Decoder::Raw(d) => {
                d.write_all(input)?;
                d.get_mut()
            }
            Decoder::Brotli(d) => {
                d.write_all(input)?;
                d.get_mut()
            }
            Decoder::Deflate { .. } => return Ok(Vec::new()),
        };
        Ok(std::mem::take(&mut sink.out))
    }

    /// Whether the decoded body went over the cap (rather than being corrupt).
    fn over(&self) -> bool {
        let sink = match self {
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Zlib(d) => d.get_ref(),
            Decoder::Raw(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
            Decoder::Deflate { .. } => return false,
        };
        sink.total > sink.cap
    }

    /// The end of the compressed body: the rest of the output, or an error when it was cut short.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        let sink = match self {
            Decoder::Gzip(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Zlib(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Raw(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Brotli(d) => {
                d.close()?;
                d.get_mut()
            }
            Decoder::Deflate { head, .. } if head.is_empty() => return Ok(Vec::new()),
            Decoder::Deflate { .. } => {
                return Err(std::io::Error::other("a deflate body of one byte"))
            }
        };
        Ok(std::mem::take(&mut sink.out))
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
                ctx.mask_refused = Some(("mask:unreadable", format!("`{e}` encoding")));
                return Err(errors::MASK_UNREADABLE);
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
        ctx.mask_refused = Some((
            "mask:overflow",
            format!("{} bytes declared", declared.unwrap_or(0)),
        ));
        return Err(errors::MASK_TOO_LARGE);
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

/// Masks the next piece of the body. `Err` when it grows over the cap or cannot be decoded: the
/// connection is cut, and nothing unmasked has been sent.
pub fn on_body(
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
    let mut plain = match st.decoder.as_mut() {
        None => incoming.to_vec(),
        Some(d) => d
            .push(&incoming)
            .map_err(|_| if d.over() { OVER } else { CORRUPT })?,
    };
    if end {
        if let Some(d) = st.decoder.as_mut() {
            let rest = d
                .finish()
                .map_err(|_| if d.over() { OVER } else { CORRUPT })?;
            plain.extend_from_slice(&rest);
        }
    }
    st.seen += plain.len() as u64;
    if st.seen > st.max {
        return Err(OVER);
    }
    let mut out = Vec::with_capacity(plain.len() + 16);
    match st.json.as_mut() {
        Some(m) => {
            m.push(&spec.profile, &plain, &mut out);
            if end {
                if let Err(why) = m.finish(&spec.profile, &mut out) {
                    // What was sent is masked all the same; the rest went through the detectors.
                    tracing::warn!(request_id = %ctx.request_id, why, "masked route answered with invalid JSON; the rest was masked as text");
                }
                st.masked = (m.stats.by_rule + m.stats.by_detector) as u64;
            }
        }
        None => {
            st.text.extend_from_slice(&plain);
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
