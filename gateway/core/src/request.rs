//! Checks on the request head, in the order `pipeline.rs` runs them. Each returns the refusal to
//! write, or the value it extracted. No I/O here.

use crate::errors::{self, Deny};
use menwei_policy::snapshot::LimitSettings;
use pingora::http::RequestHeader;

/// Size limits on the request line and headers.
pub fn check_limits(req: &RequestHeader, limits: &LimitSettings) -> Result<(), Deny> {
    let uri_len = req
        .uri
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if uri_len as u64 > limits.max_uri_bytes {
        return Err(errors::URI_TOO_LONG);
    }
    if req.headers.len() > limits.max_headers {
        return Err(errors::HEADERS_TOO_LARGE);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes as u64 > limits.max_header_bytes {
        return Err(errors::HEADERS_TOO_LARGE);
    }
    Ok(())
}

/// The request's host: lower-case, without port or trailing dot. From the URI authority (HTTP/2,
/// absolute-form) or the single `Host` header. Empty for HTTP/1.0 without `Host`.
pub fn host(req: &RequestHeader) -> Result<String, Deny> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(errors::BAD_HOST);
    }
    let raw = match (req.uri.authority(), header) {
        (Some(a), _) => a.as_str().to_string(),
        (None, Some(h)) => h.to_str().map_err(|_| errors::BAD_HOST)?.to_string(),
        (None, None) if req.version == http::Version::HTTP_10 => return Ok(String::new()),
        (None, None) => return Err(errors::BAD_HOST),
    };
    normalise_host(&raw).ok_or(errors::BAD_HOST)
}

fn normalise_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.contains('@') {
        return None;
    }
    let name = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']')?;
        let ip = &rest[..end];
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(format!("[{}]", ip.to_ascii_lowercase()));
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then_some(name)
}

/// `Content-Length` against the route's body limit (chunked bodies are counted as they stream).
pub fn check_declared_body(req: &RequestHeader, max: u64) -> Result<(), Deny> {
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > max {
        return Err(errors::BODY_TOO_LARGE);
    }
    Ok(())
}

/// `/.menwei/...` belongs to the gateway (login callback, logout, keys): never forwarded.
pub fn is_reserved(path: &str) -> bool {
    path == "/.menwei" || path.starts_with("/.menwei/")
}

/// Why a request body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the cap.
    TooLarge,
    /// The client broke off, or sent it in more pieces than bytes allowed.
    Unreadable,
}

/// Reads a whole request body of at most `cap` bytes (the gateway's own endpoints, and bodies
/// that must be checked before anything is forwarded). Either the whole body or an error: never
/// a prefix taken for the whole.
pub async fn read_body(
    s: &mut pingora::protocols::http::ServerSession,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    // Every piece but the last carries at least one byte, so cap + 2 reads reach the end of any
    // body that fits; a client dribbling empty pieces is refused, not waited for.
    for _ in 0..cap.saturating_add(2) {
        match s.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > cap {
                    return Err(BodyError::TooLarge);
                }
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(BodyError::Unreadable),
        }
    }
    Err(BodyError::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            normalise_host("Gov.Example.CN:8080").as_deref(),
            Some("gov.example.cn")
        );
        assert_eq!(
            normalise_host("gov.example.cn.").as_deref(),
            Some("gov.example.cn")
        );
        assert_eq!(normalise_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(normalise_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalise_host("a b"), None);
        assert_eq!(normalise_host("user@host"), None);
        assert_eq!(normalise_host("host:http"), None);
        assert_eq!(normalise_host(""), None);
    }

    #[test]
    fn reserved() {
        assert!(is_reserved("/.menwei/callback"));
        assert!(is_reserved("/.menwei"));
        assert!(!is_reserved("/.menweix"));
    }
}
