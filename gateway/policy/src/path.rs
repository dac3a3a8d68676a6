//! Request-path normalisation, done once per request. The result is used both to match routes
//! and as the path forwarded to the backend, so that the policy decision and what the backend
//! sees can never disagree (`/public/..%2fadmin`, `//admin`, `/a/%2e%2e/b`).
//!
//! Rules, in order:
//! 1. the path must start with `/`;
//! 2. percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, every other
//!    escape is kept with upper-case hex; an escaped `/` or `\` (`%2F`, `%5C`), an escaped or raw
//!    control character (`%00`...), a raw `\` and a malformed escape are refused, because backends
//!    disagree about what they mean;
//! 3. empty segments (`//`) and `.` segments are dropped, `..` removes the previous segment and
//!    never climbs above the root; a segment `..;x` or `.;x` (Tomcat path parameters on a dot
//!    segment) is refused;
//! 4. a trailing `/` is kept, and added when the last segment was `.` or `..`;
//! 5. raw bytes outside printable ASCII are percent-encoded.

use std::fmt;

/// Why a path was refused (the client gets 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` or `%5C`.
    EncodedSeparator,
    /// A raw backslash.
    Backslash,
    /// A control character, raw or escaped.
    Control,
    /// `..;` or `.;` segment.
    DotParameter,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path does not start with /",
            PathError::BadEscape => "malformed percent-escape in path",
            PathError::EncodedSeparator => "encoded / or \\ in path",
            PathError::Backslash => "backslash in path",
            PathError::Control => "control character in path",
            PathError::DotParameter => "dot segment with parameters in path",
        })
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    out.push(b'%');
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 15) as usize]);
}

/// Decodes what may be decoded, canonicalises the rest, refuses the ambiguous.
fn decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let (h, l) = match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEscape),
            };
            let d = (h << 4) | l;
            match d {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::Control),
                d if is_unreserved(d) => out.push(d),
                d => push_escaped(&mut out, d),
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            0x80..=0xff | b' ' | b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}' => {
                push_escaped(&mut out, b)
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Normalises a request path (without the query string). See the module documentation.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode(bytes)?;
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split(|b| *b == b'/').skip(1) {
        trailing = false;
        match seg {
            b"" => trailing = true,
            b"." => trailing = true,
            b".." => {
                segments.pop();
                trailing = true;
            }
            s if s.starts_with(b"..;") || s.starts_with(b".;") => {
                return Err(PathError::DotParameter)
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || segments.is_empty() {
        out.push(b'/');
    }
    // Only ASCII was pushed (non-ASCII bytes were escaped), so this cannot fail.
    String::from_utf8(out).map_err(|_| PathError::Control)
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use super::PathError::*;

    #[test]
    fn canonical_paths_pass_through() {
        for p in [
            "/",
            "/echo/",
            "/echo/a/b",
            "/citizens?x",
            "/a/b.json",
            "/a/%E4%BD%A0",
        ] {
            assert_eq!(normalize(p).unwrap(), p, "{p}");
        }
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(normalize("//admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2E%2E/%2e/admin/").unwrap(), "/admin/");
        assert_eq!(normalize("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(normalize("/a///b").unwrap(), "/a/b");
        assert_eq!(normalize("/..").unwrap(), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_canonicalised() {
        assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize("/a%7eb").unwrap(), "/a~b");
        assert_eq!(normalize("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(normalize("/a b").unwrap(), "/a%20b");
        assert_eq!(normalize("/你").unwrap(), "/%E4%BD%A0");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(normalize("/public/..%2fadmin"), Err(EncodedSeparator));
        assert_eq!(normalize("/public/..%5Cadmin"), Err(EncodedSeparator));
        assert_eq!(normalize("/public\\..\\admin"), Err(Backslash));
        assert_eq!(normalize("/a%00b"), Err(Control));
        assert_eq!(normalize("/a%zz"), Err(BadEscape));
        assert_eq!(normalize("/a%2"), Err(BadEscape));
        assert_eq!(normalize("/public/..;/admin"), Err(DotParameter));
        assert_eq!(normalize("admin"), Err(NotAbsolute));
        assert_eq!(normalize(""), Err(NotAbsolute));
    }

    #[test]
    fn idempotent_on_many_inputs() {
        let parts = [
            "", "/", "a", ".", "..", "%2e", "%2E%2e", "b;c", "%41", "%20", "~", "//",
        ];
        let mut n = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let p = format!("/{a}/{b}{c}");
                    if let Ok(once) = normalize(&p) {
                        assert_eq!(normalize(&once).unwrap(), once, "{p}");
                        assert!(
                            !once.contains("//") && !once.contains("/../") && !once.contains("/./"),
                            "{p} -> {once}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000);
    }
}
