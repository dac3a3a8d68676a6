//! Claims: dotted-path lookup (`realm_access.roles`), access requirements, and the text a claim
//! becomes in a header.

use menwei_policy::snapshot::{ClaimPathSpec, Requirement};
use serde_json::{Map, Value};

/// The value at a dotted path (`a.b.c`); a path that exists literally as one key wins.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// The strings a claim holds: one for a string, each string of an array; numbers and booleans
/// as written.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// The first requirement the claims fail, if any.
pub fn failed<'r>(
    claims: &Map<String, Value>,
    paths: &ClaimPathSpec,
    require: &'r [Requirement],
) -> Option<&'r Requirement> {
    require.iter().find(|r| {
        let have = lookup(claims, paths.resolve(&r.claim))
            .map(strings)
            .unwrap_or_default();
        let has = |want: &String| have.iter().any(|h| h == want);
        if r.all {
            !r.values.iter().all(has)
        } else {
            !r.values.iter().any(has)
        }
    })
}

/// Characters escaped in header text besides non-ASCII: controls and `%` itself.
const HEADER_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// A claim as header text: strings joined by `,`, percent-encoded as UTF-8 where not printable
/// ASCII (so `张三` arrives as `%E5%BC%A0%E4%B8%89` and CR/LF can never split a header), cut at
/// 1024 characters of input.
pub fn header_text(v: &Value) -> String {
    let joined: String = strings(v).join(",").chars().take(1024).collect();
    percent_encoding::utf8_percent_encode(&joined, HEADER_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths() -> ClaimPathSpec {
        ClaimPathSpec {
            roles: "realm_access.roles".into(),
            groups: "groups".into(),
            department: "department".into(),
            name: "name".into(),
        }
    }

    fn req(claim: &str, values: &[&str], all: bool) -> Requirement {
        Requirement {
            claim: claim.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            all,
        }
    }

    #[test]
    fn requirements() {
        let c = json!({"realm_access": {"roles": ["staff", "auditor"]}, "department": "tax", "level": 3})
            .as_object()
            .cloned()
            .unwrap();
        let p = paths();
        assert!(failed(&c, &p, &[req("roles", &["citizen", "staff"], false)]).is_none());
        assert!(failed(&c, &p, &[req("roles", &["staff", "auditor"], true)]).is_none());
        assert!(failed(&c, &p, &[req("roles", &["staff", "admin"], true)]).is_some());
        assert!(failed(&c, &p, &[req("department", &["tax"], false)]).is_none());
        assert!(failed(&c, &p, &[req("department", &["health"], false)]).is_some());
        assert!(failed(&c, &p, &[req("level", &["3"], false)]).is_none());
        assert!(failed(&c, &p, &[req("missing", &["x"], false)]).is_some());
        let two = [
            req("roles", &["staff"], false),
            req("department", &["x"], false),
        ];
        assert_eq!(failed(&c, &p, &two).unwrap().claim, "department");
    }

    #[test]
    fn header_text_is_safe() {
        assert_eq!(header_text(&json!(["a", "b"])), "a,b");
        assert_eq!(
            header_text(&json!("x\r\nInjected: 1")),
            "x%0D%0AInjected: 1"
        );
        assert_eq!(header_text(&json!({"o": 1})), "");
        assert_eq!(header_text(&json!("张三 50%")), "%E5%BC%A0%E4%B8%89 50%25");
    }
}
