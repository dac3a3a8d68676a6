//! Header hygiene: HTTP/1 framing checks, the real client address, the request id, and the
//! cleaning of what reaches the backend. Only `upstream_request_filter` calls the writers here:
//! it is the one place identity and forwarding headers are written.

use menwei_policy::snapshot::TrustSettings;
use pingora::http::RequestHeader;
use rand::Rng;
use std::net::IpAddr;

/// Headers meaningful only for one connection (RFC 9110 section 7.6.1), never forwarded.
/// `transfer-encoding` is left to Pingora, which re-frames the body itself.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

/// `Proxy` has no use in HTTP, and CGI-style servers turn it into `HTTP_PROXY`, which many
/// HTTP client libraries take as their outbound proxy ("httpoxy", CVE-2016-5385): never
/// forwarded, from anyone.
const PROXY: &str = "proxy";

/// Forwarding headers believed only from trusted proxies.
const FORWARDING: [&str; 7] = [
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "x-original-forwarded-for",
];

/// Why a request's framing was refused.
pub type FramingError = &'static str;

/// Counts header lines named `name` in a raw HTTP/1 head (Pingora drops `Content-Length` from the
/// parsed headers when `Transfer-Encoding` is present, so the raw head is the only witness).
fn raw_count(raw: &[u8], name: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .skip(1)
        .filter(|line| {
            line.iter()
                .position(|b| *b == b':')
                .is_some_and(|i| line[..i].eq_ignore_ascii_case(name))
        })
        .count()
}

/// Refuses ambiguous HTTP/1 framing as nginx does: `Content-Length` with `Transfer-Encoding`,
/// duplicate or non-numeric `Content-Length`, and any `Transfer-Encoding` other than one `chunked`.
pub fn check_framing(raw_head: Option<&[u8]>, req: &RequestHeader) -> Result<(), FramingError> {
    let te: Vec<_> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    let cl_parsed: Vec<_> = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    // The raw head is scanned only when Transfer-Encoding is present: that is the only case in
    // which Pingora has already dropped Content-Length from the parsed headers.
    let cl_count = match raw_head {
        Some(r) if !te.is_empty() => raw_count(r, b"content-length").max(cl_parsed.len()),
        _ => cl_parsed.len(),
    };
    if !te.is_empty() && cl_count > 0 {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if cl_count > 1 {
        return Err("duplicate Content-Length");
    }
    if let Some(v) = cl_parsed.first() {
        let b = v.as_bytes();
        if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length");
        }
    }
    if te.len() > 1 {
        return Err("duplicate Transfer-Encoding");
    }
    if let Some(v) = te.first() {
        if !v.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err("unsupported Transfer-Encoding");
        }
    }
    Ok(())
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address
/// of `X-Forwarded-For` (then `X-Real-IP`) that is not itself a trusted proxy.
pub fn client_ip(
    peer: IpAddr,
    peer_trusted: bool,
    req: &RequestHeader,
    trust: &TrustSettings,
) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for v in req.headers.get_all("x-forwarded-for") {
        match v.to_str() {
            Ok(s) => hops.extend(s.split(',').map(str::trim)),
            Err(_) => return peer,
        }
    }
    if hops.is_empty() {
        return req
            .headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(peer);
    }
    let mut last_trusted = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trust.is_trusted(ip) => last_trusted = ip,
            Ok(ip) => return ip,
            Err(_) => return last_trusted,
        }
    }
    last_trusted
}

/// An incoming request id is kept only from a trusted proxy and only if it looks like one.
pub fn valid_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: 128 random bits as 32 hex digits.
pub fn mint_request_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// What the cleaning of a request needs to know.
pub struct Forwarding<'a> {
    pub trust: &'a TrustSettings,
    pub peer: &'a str,
    pub peer_trusted: bool,
    pub client: &'a str,
    pub proto: &'static str,
    pub host: &'a str,
    pub request_id: &'a str,
    /// `Some(upgrade value)` when a WebSocket upgrade is passed through.
    pub upgrade: Option<http::HeaderValue>,
}

/// Removes hop-by-hop, identity and (from untrusted peers) forwarding headers, then writes the
/// gateway's own `X-Forwarded-*`, `X-Real-IP` and request id.
pub fn clean_upstream_request(req: &mut RequestHeader, f: &Forwarding<'_>) {
    let mut drop: Vec<http::HeaderName> = Vec::new();
    for v in req.headers.get_all(http::header::CONNECTION) {
        for token in v.to_str().unwrap_or("").split(',') {
            if let Ok(n) = http::HeaderName::from_bytes(token.trim().as_bytes()) {
                drop.push(n);
            }
        }
    }
    for name in req.headers.keys() {
        // CGI-style servers (WSGI, Rack, PHP) read `X_User_Id` as `X-User-Id` (both become
        // `HTTP_X_USER_ID`): names are compared with underscores taken as hyphens, so no
        // variant of a protected name gets through.
        let folded = match name.as_str() {
            n if n.contains('_') => std::borrow::Cow::Owned(n.replace('_', "-")),
            n => std::borrow::Cow::Borrowed(n),
        };
        let n = folded.as_ref();
        let identity = f
            .trust
            .identity_prefixes
            .iter()
            .any(|p| n.starts_with(p.as_str()));
        let forwarding =
            !f.peer_trusted && (n.starts_with("x-forwarded-") || FORWARDING.contains(&n));
        if identity
            || forwarding
            || HOP_BY_HOP.contains(&n)
            || n == PROXY
            || n == f.trust.request_id_header.as_str()
        {
            drop.push(name.clone());
        }
    }
    for name in &drop {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            req.remove_header(name);
        }
    }
    write_forwarding(req, f);
}

/// Removes the gateway's own cookies (the session handle) from what a backend receives, so that
/// no department backend can replay a user's session against another department's routes.
pub fn strip_own_cookies(req: &mut RequestHeader, is_own: impl Fn(&str) -> bool) {
    let values: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        return;
    }
    let mut any_own = false;
    let kept: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let own = is_own(c.split_once('=').map_or(*c, |(n, _)| n.trim()));
            any_own |= own;
            !own
        })
        .collect();
    if !any_own {
        return;
    }
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::COOKIE, kept.join("; "));
    }
}

/// Removes a backend's `Set-Cookie` lines that name the gateway's own cookies: the gateway's
/// session is its own, and a department backend (buggy or compromised) must not plant, replace
/// or clear it in a user's browser (session fixation, forced sign-out). True when any was
/// removed.
pub fn strip_own_set_cookies(
    resp: &mut pingora::http::ResponseHeader,
    is_own: impl Fn(&str) -> bool,
) -> bool {
    // The cookie's name: up to the first `=` (or `;`), trimmed; read in place, no copy.
    let own = |v: &http::HeaderValue| {
        let b = v.as_bytes();
        let end = b
            .iter()
            .position(|&c| c == b'=' || c == b';')
            .unwrap_or(b.len());
        std::str::from_utf8(&b[..end]).is_ok_and(|name| is_own(name.trim()))
    };
    let all = resp.headers.get_all(http::header::SET_COOKIE);
    if !all.iter().any(own) {
        return false;
    }
    let kept: Vec<http::HeaderValue> = all.iter().filter(|v| !own(v)).cloned().collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for v in kept {
        let _ = resp.append_header(http::header::SET_COOKIE, v);
    }
    true
}

fn write_forwarding(req: &mut RequestHeader, f: &Forwarding<'_>) {
    // A trusted proxy's chain may come in several header lines (as `client_ip` reads it): all
    // of them, in order, then the peer. The header is replaced by this one line.
    let mut xff = String::new();
    if f.peer_trusted {
        for v in req.headers.get_all("x-forwarded-for") {
            if let Ok(prev) = v.to_str() {
                xff.push_str(prev);
                xff.push_str(", ");
            }
        }
    }
    xff.push_str(f.peer);
    let _ = req.insert_header("x-forwarded-for", xff);
    if !(f.peer_trusted && req.headers.contains_key("x-forwarded-proto")) {
        let _ = req.insert_header("x-forwarded-proto", f.proto);
    }
    if !(f.peer_trusted && req.headers.contains_key("x-forwarded-host")) {
        let _ = req.insert_header("x-forwarded-host", f.host);
    }
    let _ = req.insert_header("x-real-ip", f.client);
    let _ = req.insert_header(f.trust.request_id_header.clone(), f.request_id);
    if let Some(up) = &f.upgrade {
        let _ = req.insert_header(http::header::CONNECTION, "upgrade");
        let _ = req.insert_header(http::header::UPGRADE, up.clone());
    }
}

/// An address as text, exactly as `IpAddr`'s `Display` writes it. Every request formats its
/// client address (logs, `X-Real-IP`, hashing); the standard formatter goes through
/// `fmt`'s padding support, about 1,300 instructions for an IPv4 address (callgrind), this
/// about a tenth of that.
pub fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
            out
        }
        v6 => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_as_display_writes_it() {
        for a in [0u8, 1, 9, 10, 99, 100, 127, 199, 200, 255] {
            for b in [0u8, 5, 10, 255] {
                let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(a, b, 100 - b / 5, 255 - a));
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        for v6 in [
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
            "fe80::1",
        ] {
            let ip: std::net::IpAddr = v6.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    fn trust(proxies: &[&str]) -> TrustSettings {
        TrustSettings {
            proxies: proxies
                .iter()
                .map(|p| menwei_policy::types::Cidr::parse(p).unwrap())
                .collect(),
            identity_prefixes: vec!["x-auth-".into(), "x-user-".into(), "x-menwei-".into()],
            request_id_header: http::HeaderName::from_static("x-request-id"),
            ipv6_prefix: 64,
        }
    }

    #[test]
    fn own_cookies_never_reach_backends() {
        let own = |n: &str| n == "menwei_session" || n == "__Host-menwei_session";
        let mut r = req(&[
            ("cookie", "a=1; menwei_session=SECRET; b=2"),
            ("cookie", "__Host-menwei_session=SECRET2"),
        ]);
        strip_own_cookies(&mut r, own);
        let all: Vec<_> = r.headers.get_all("cookie").iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0], "a=1; b=2");
        let mut only = req(&[("cookie", "menwei_session=S")]);
        strip_own_cookies(&mut only, own);
        assert!(only.headers.get("cookie").is_none());
        let mut none = req(&[("cookie", "x=1;y=2")]);
        strip_own_cookies(&mut none, own);
        assert_eq!(
            none.headers["cookie"], "x=1;y=2",
            "untouched when nothing is ours"
        );
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn framing() {
        let r = req(&[("transfer-encoding", "chunked")]);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            check_framing(Some(raw), &r),
            Err("both Content-Length and Transfer-Encoding")
        );
        assert_eq!(
            check_framing(
                None,
                &req(&[("content-length", "1"), ("content-length", "1")])
            ),
            Err("duplicate Content-Length")
        );
        assert_eq!(
            check_framing(None, &req(&[("content-length", "+1")])),
            Err("invalid Content-Length")
        );
        assert_eq!(
            check_framing(None, &req(&[("transfer-encoding", "xchunked")])),
            Err("unsupported Transfer-Encoding")
        );
        assert_eq!(
            check_framing(None, &req(&[("transfer-encoding", "chunked, chunked")])),
            Err("unsupported Transfer-Encoding")
        );
        assert!(check_framing(None, &req(&[("transfer-encoding", "Chunked")])).is_ok());
        assert!(check_framing(None, &req(&[("content-length", "12")])).is_ok());
    }

    #[test]
    fn client_ip_resolution() {
        let t = trust(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let r = req(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(
            client_ip(peer, true, &r, &t),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, false, &r, &t), peer);
        let r = req(&[("x-forwarded-for", "garbage, 10.0.0.9")]);
        assert_eq!(
            client_ip(peer, true, &r, &t),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        let r = req(&[("x-real-ip", "5.5.5.5")]);
        assert_eq!(
            client_ip(peer, true, &r, &t),
            "5.5.5.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_backend_cannot_set_the_gateways_cookies() {
        let own = |n: &str| n == "menwei_session" || n == "__Host-menwei_session";
        let mut r = pingora::http::ResponseHeader::build(200, None).unwrap();
        for c in [
            "app=1; Path=/",
            "__Host-menwei_session=ATTACKER; Path=/; Secure; HttpOnly",
            " menwei_session = X; Max-Age=0",
            "other=menwei_session; Path=/",
        ] {
            r.append_header("set-cookie", c).unwrap();
        }
        assert!(strip_own_set_cookies(&mut r, own));
        let left: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(left, ["app=1; Path=/", "other=menwei_session; Path=/"]);
        // Nothing of ours: untouched.
        assert!(!strip_own_set_cookies(&mut r, own));
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn a_trusted_chain_in_several_lines_is_kept_whole() {
        let t = trust(&["10.0.0.0/8"]);
        let mut r = req(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        let f = Forwarding {
            trust: &t,
            peer: "10.0.0.1",
            peer_trusted: true,
            client: "1.2.3.4",
            proto: "https",
            host: "gw",
            request_id: "abc",
            upgrade: None,
        };
        clean_upstream_request(&mut r, &f);
        let all: Vec<_> = r.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["6.6.6.6, 1.2.3.4, 10.0.0.7, 10.0.0.1"]);
        // From an untrusted peer, only the peer.
        let mut r = req(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        clean_upstream_request(
            &mut r,
            &Forwarding {
                peer_trusted: false,
                ..f
            },
        );
        let all: Vec<_> = r.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.1"]);
    }

    #[test]
    fn cleaning_untrusted() {
        let t = trust(&[]);
        let mut r = req(&[
            ("x-user-id", "admin"),
            ("X-Auth-Roles", "root"),
            ("x-forwarded-for", "1.1.1.1"),
            ("forwarded", "for=1.1.1.1"),
            ("x-request-id", "evil"),
            ("connection", "close, x-secret"),
            ("x-secret", "s"),
            ("keep-alive", "1"),
            ("accept", "*/*"),
        ]);
        let f = Forwarding {
            trust: &t,
            peer: "127.0.0.1",
            peer_trusted: false,
            client: "127.0.0.1",
            proto: "http",
            host: "gw",
            request_id: "abc",
            upgrade: None,
        };
        clean_upstream_request(&mut r, &f);
        let h = &r.headers;
        for gone in [
            "x-user-id",
            "x-auth-roles",
            "forwarded",
            "connection",
            "x-secret",
            "keep-alive",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-request-id"], "abc");
        assert_eq!(h["x-forwarded-host"], "gw");
        assert_eq!(h["accept"], "*/*");
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abc-123_x.y:z"));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(&[b'a'; 200]));
        assert_eq!(mint_request_id().len(), 32);
    }
}
