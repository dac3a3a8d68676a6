//! The request-signature scheme of docs/gm-signature.md: the `Authorization` header an app
//! sends, and the canonical string it signs. Verification needs the app's key (policy), the
//! clock and a nonce store; the core puts them together.

/// `Authorization: MENWEI-SM2 app="..", ts="..", nonce="..", headers="..", sig=".."`.
pub const SCHEME_SM2: &str = "MENWEI-SM2";
/// The same with an HMAC-SM3 tag for apps with a shared secret.
pub const SCHEME_HMAC: &str = "MENWEI-HMAC-SM3";

/// Which kind of signature a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sm2,
    HmacSm3,
}

impl Scheme {
    fn label(self) -> &'static str {
        match self {
            Scheme::Sm2 => "MENWEI-SM2-V1",
            Scheme::HmacSm3 => "MENWEI-HMAC-SM3-V1",
        }
    }
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    pub scheme: Scheme,
    pub app: String,
    pub ts: u64,
    pub nonce: String,
    /// Lower-case names of the extra headers covered, in the order signed.
    pub headers: Vec<String>,
    /// Signature bytes (decoded from hex or base64).
    pub sig: Vec<u8>,
}

/// Longest `Authorization` value looked at.
const MAX_AUTH: usize = 4096;

fn decode_sig(s: &str) -> Option<Vec<u8>> {
    if !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(s).ok();
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Parses the `Authorization` header; `Ok(None)` when it is not one of our schemes.
pub fn parse(value: &str) -> Result<Option<SignedBy>, String> {
    if value.len() > MAX_AUTH {
        return Err("Authorization header too long".into());
    }
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let scheme = if scheme.eq_ignore_ascii_case(SCHEME_SM2) {
        Scheme::Sm2
    } else if scheme.eq_ignore_ascii_case(SCHEME_HMAC) {
        Scheme::HmacSm3
    } else {
        return Ok(None);
    };
    let mut app = None;
    let mut ts = None;
    let mut nonce = None;
    let mut headers = Vec::new();
    let mut sig = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not name=\"value\""))?;
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "app" => app = Some(v.to_string()),
            "ts" => ts = Some(v.parse::<u64>().map_err(|_| "ts is not unix seconds")?),
            "nonce" => nonce = Some(v.to_string()),
            "headers" => {
                headers = v
                    .split(';')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            }
            "sig" => sig = Some(decode_sig(v).ok_or("sig is neither hex nor base64")?),
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    let nonce = nonce.ok_or("nonce missing")?;
    if !(16..=64).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("nonce must be 16 to 64 of A-Z a-z 0-9 - _".into());
    }
    if headers.len() > 16 {
        return Err("at most 16 signed headers".into());
    }
    Ok(Some(SignedBy {
        scheme,
        app: app.filter(|a| !a.is_empty()).ok_or("app missing")?,
        ts: ts.ok_or("ts missing")?,
        nonce,
        headers,
        sig: sig.ok_or("sig missing")?,
    }))
}

/// The query as signed: the raw `&`-separated pieces, sorted byte-wise, joined by `&`.
pub fn canonical_query(query: Option<&str>) -> String {
    let mut parts: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort_unstable();
    parts.join("&")
}

/// What a request's signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Values of the signed headers, in the order of `SignedBy::headers` (several values of
    /// one header joined by `,`; a missing header is empty).
    pub header_values: &'a [String],
    /// SM3 of the body, lower-case hex.
    pub body_sm3_hex: &'a str,
}

/// The canonical string: one field per line, no trailing newline.
pub fn canonical(by: &SignedBy, r: &Request<'_>) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(by.scheme.label());
    for line in [
        r.method.to_ascii_uppercase().as_str(),
        r.path,
        &canonical_query(r.query),
    ] {
        s.push('\n');
        s.push_str(line);
    }
    for (name, value) in by.headers.iter().zip(r.header_values) {
        s.push('\n');
        s.push_str(name);
        s.push(':');
        s.push_str(value.trim());
    }
    for line in [
        by.app.as_str(),
        &by.ts.to_string(),
        &by.nonce,
        r.body_sm3_hex,
    ] {
        s.push('\n');
        s.push_str(line);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_canonical() {
        let v = r#"MENWEI-SM2 app="tax-portal", ts="1700000000", nonce="abcdefghijklmnop", headers="Content-Type;X-Sn", sig="00ff""#;
        let by = parse(v).unwrap().unwrap();
        assert_eq!(by.app, "tax-portal");
        assert_eq!(by.headers, vec!["content-type", "x-sn"]);
        assert_eq!(by.sig, vec![0, 255]);
        let r = Request {
            method: "post",
            path: "/api/x",
            query: Some("b=2&a=1&&a=0"),
            header_values: &["application/json ".into(), "7".into()],
            body_sm3_hex: "1ab2",
        };
        assert_eq!(
            canonical(&by, &r),
            "MENWEI-SM2-V1\nPOST\n/api/x\na=0&a=1&b=2\ncontent-type:application/json\nx-sn:7\ntax-portal\n1700000000\nabcdefghijklmnop\n1ab2"
        );
        assert_eq!(parse("Bearer x").unwrap(), None);
        for bad in [
            "MENWEI-SM2 app=\"a\", ts=\"x\", nonce=\"abcdefghijklmnop\", sig=\"00\"",
            "MENWEI-SM2 app=\"a\", ts=\"1\", nonce=\"short\", sig=\"00\"",
            "MENWEI-SM2 app=\"a\", ts=\"1\", nonce=\"abcdefghijklmnop\"",
            "MENWEI-SM2 ts=\"1\", nonce=\"abcdefghijklmnop\", sig=\"00\"",
            "MENWEI-SM2 app=\"a\", ts=\"1\", nonce=\"abcdefghijklmn\\np\", sig=\"00\"",
            "MENWEI-SM2 app=\"a\", ts=\"1\", nonce=\"abcdefghijklmnop\", sig=\"@@\"",
            "MENWEI-SM2 app=\"a\", what=\"1\"",
            "MENWEI-SM2 garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&format!("MENWEI-SM2 {}", "a".repeat(5000))).is_err());
    }
}
