//! Every refusal the gateway writes: a status, a stable code, a short message and the request id,
//! as JSON for API clients and a small HTML page for browsers (by `Accept`). Never internals:
//! details go to the log.

use bytes::Bytes;
use pingora::http::ResponseHeader;

/// A refusal with its stable code. The list is in docs/operations.md ("Error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deny {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

macro_rules! denies {
    ($($name:ident = $status:literal, $code:literal, $msg:literal;)*) => {
        $(pub const $name: Deny = Deny { status: $status, code: $code, message: $msg };)*
        /// Every code, for documentation tests.
        pub const ALL: &[Deny] = &[$($name),*];
    };
}

denies! {
    BAD_FRAMING = 400, "MW-REQ-001", "bad request framing";
    BAD_PATH = 400, "MW-REQ-002", "bad request path";
    BAD_HOST = 400, "MW-REQ-003", "missing or invalid host";
    URI_TOO_LONG = 414, "MW-REQ-004", "request target too long";
    HEADERS_TOO_LARGE = 431, "MW-REQ-005", "request headers too large";
    BODY_TOO_LARGE = 413, "MW-REQ-006", "request body too large";
    BAD_REQUEST = 400, "MW-REQ-007", "bad request";
    NO_ROUTE = 404, "MW-ROUTE-001", "no route for this request";
    METHOD_NOT_ALLOWED = 405, "MW-ROUTE-002", "method not allowed";
    RESERVED = 404, "MW-ROUTE-003", "not found";
    WEBSOCKET_REFUSED = 403, "MW-ROUTE-004", "WebSocket not allowed on this route";
    NO_BACKEND = 503, "MW-UP-001", "service temporarily unavailable";
    UPSTREAM_CONNECT = 502, "MW-UP-002", "upstream unreachable";
    UPSTREAM_TIMEOUT = 504, "MW-UP-003", "upstream timed out";
    UPSTREAM_BROKEN = 502, "MW-UP-004", "bad response from upstream";
    RATE_LIMITED = 429, "MW-RATE-001", "too many requests";
    CONCURRENCY_LIMITED = 429, "MW-RATE-002", "too many requests in progress";
    LIMIT_STORE_DOWN = 503, "MW-RATE-003", "service temporarily unavailable";
    LOGIN_REQUIRED = 401, "MW-AUTH-001", "sign-in required";
    INVALID_TOKEN = 401, "MW-AUTH-002", "invalid or expired token";
    FORBIDDEN = 403, "MW-AUTH-003", "access denied";
    IDP_UNAVAILABLE = 503, "MW-AUTH-004", "sign-in service temporarily unavailable";
    BAD_CALLBACK = 400, "MW-AUTH-005", "sign-in could not be completed; please start again";
    SESSION_STORE_DOWN = 503, "MW-AUTH-006", "service temporarily unavailable";
    BAD_LOGOUT_TOKEN = 400, "MW-AUTH-007", "invalid logout request";
    BANNED = 403, "MW-BAN-001", "temporarily blocked";
    MASK_TOO_LARGE = 502, "MW-MASK-001", "response too large to protect";
    MASK_UNREADABLE = 502, "MW-MASK-002", "response could not be protected";
    CERT_MISSING = 401, "MW-CERT-001", "client certificate required";
    CERT_REFUSED = 401, "MW-CERT-002", "client certificate not accepted";
    SIG_MISSING = 401, "MW-SIG-001", "signed request required";
    SIG_INVALID = 401, "MW-SIG-002", "invalid request signature";
    SIG_STALE = 401, "MW-SIG-003", "request timestamp outside the allowed window";
    SIG_REPLAY = 401, "MW-SIG-004", "request already seen";
    SIG_APP_FORBIDDEN = 403, "MW-SIG-005", "this app may not use this service";
    WAF_BLOCKED = 403, "MW-WAF-001", "request blocked by the security gateway";
    INTERNAL = 500, "MW-INT-001", "internal error";
}

fn wants_html(accept: Option<&[u8]>) -> bool {
    let Some(a) = accept else { return false };
    let a = String::from_utf8_lossy(a).to_ascii_lowercase();
    a.contains("text/html") && !a.starts_with("application/json")
}

fn html_escape(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect()
}

/// Response headers that go with a refusal (`Allow` of a 405, `Retry-After` of a 429...).
pub type Extra = Vec<(http::HeaderName, String)>;

/// The response head and body for a refusal, with `extra` headers.
pub fn render(
    d: Deny,
    request_id: &str,
    accept: Option<&[u8]>,
    extra: &[(http::HeaderName, String)],
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let (ctype, body) = if wants_html(accept) {
        let rid = html_escape(request_id);
        let body = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{s} {m}</title></head>\
             <body><h1>{s} {m}</h1><p>错误代码 / code: {c}</p><p>请求编号 / request id: {rid}</p>\
             <p>如需帮助，请向服务台提供请求编号。Quote the request id when asking for help.</p></body></html>\n",
            s = d.status,
            m = d.message,
            c = d.code
        );
        ("text/html; charset=utf-8", body)
    } else {
        let body = serde_json::json!({"error": d.message, "code": d.code, "request_id": request_id})
            .to_string() + "\n";
        ("application/json", body)
    };
    let mut h = ResponseHeader::build(d.status, Some(6))?;
    let _ = h.insert_header(http::header::CONTENT_TYPE, ctype);
    let _ = h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    let _ = h.insert_header(http::header::CACHE_CONTROL, "no-store");
    let _ = h.insert_header("x-content-type-options", "nosniff");
    let _ = h.insert_header("x-request-id", request_id);
    for (name, value) in extra {
        let _ = h.append_header(name.clone(), value.as_str());
    }
    Ok((h, Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_html() {
        let (h, b) = render(NO_ROUTE, "rid1", Some(b"application/json"), &[]).unwrap();
        assert_eq!(h.status.as_u16(), 404);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["code"], "MW-ROUTE-001");
        assert_eq!(v["request_id"], "rid1");
        let (h, b) = render(
            NO_ROUTE,
            "rid<script>",
            Some(b"text/html,application/xhtml+xml"),
            &[],
        )
        .unwrap();
        assert!(h.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let s = String::from_utf8(b.to_vec()).unwrap();
        assert!(s.contains("MW-ROUTE-001") && s.contains("ridscript") && !s.contains("<script>"));
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = ALL.iter().map(|d| d.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
    }
}
