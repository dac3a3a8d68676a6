//! libinjection's XSS check, reading a value only in the HTML contexts where it can find
//! something.
//!
//! `libinjectionrs::detect_xss` tokenises a value five times, once per context it may land in:
//! as text, as an unquoted attribute value, and inside a single-, double- or back-quoted
//! attribute value; any context that flags it flags the value. Two facts of its tokeniser
//! (libinjectionrs `xss/html5.rs`, `Html5State::new` and the `state_attribute_value_*` and
//! `state_data` functions) make three of the five passes moot for most values:
//!
//! - Inside a quoted attribute value, a value without that quote character is one attribute
//!   value up to its end, with no attribute name before it: nothing the detector checks.
//! - As text, a value without `<` is one text token: nothing the detector checks either.
//!
//! So a name like `O'Neil` is read unquoted and single-quoted only, not five times. The result
//! is the crate's own, context for context (the tests and `examples/sqli_diff.rs` compare the two
//! on generated values and on every value of the CRS corpus).

use libinjectionrs::xss::{Html5Flags, XssDetector};

/// Whether libinjection finds cross-site scripting in `html`: `detect_xss(html).is_injection()`.
pub fn is_xss(html: &[u8]) -> bool {
    let has = |c: u8| memchr::memchr(c, html).is_some();
    (has(b'<') && XssDetector::is_xss(html, Html5Flags::DataState))
        || XssDetector::is_xss(html, Html5Flags::ValueNoQuote)
        || (has(b'\'') && XssDetector::is_xss(html, Html5Flags::ValueSingleQuote))
        || (has(b'"') && XssDetector::is_xss(html, Html5Flags::ValueDoubleQuote))
        || (has(b'`') && XssDetector::is_xss(html, Html5Flags::ValueBackQuote))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theirs(s: &str) -> bool {
        libinjectionrs::detect_xss(s.as_bytes()).is_injection()
    }

    #[test]
    fn as_the_crate_on_known_values() {
        for s in [
            "<script>alert(1)</script>",
            "x onerror=alert(1)",
            "x' onerror=alert(1) '",
            "x\" onload=alert(1) \"",
            "x` onfocus=alert(1) `",
            "O'Neil 先生代办",
            "status eq 'done'",
            "<p style=\"color: red\">重要</p>",
            "<img src=\"/upload/1.png\" alt=\"照片\">",
            "<!DOCTYPE html>",
            "<!--[if IE]>",
            "javascript:alert(1)",
            "<a href=\"javascript:alert(1)\">",
            "' href=javascript:alert(1) x='",
            "<3 志愿者",
            "",
        ] {
            assert_eq!(is_xss(s.as_bytes()), theirs(s), "{s:?}");
        }
    }

    proptest::proptest! {
        /// Values built from the pieces the tokeniser and the detector react to give the
        /// crate's verdict.
        #[test]
        fn as_the_crate_on_generated_values(
            s in "(<|>|'|\"|`|/|=| |\t|!|-|script|onerror|on|style|href|src|javascript:|a|x|中|&#|\\[if|import|doctype){0,14}",
        ) {
            proptest::prop_assert_eq!(is_xss(s.as_bytes()), theirs(&s), "{:?}", s);
        }
    }
}
