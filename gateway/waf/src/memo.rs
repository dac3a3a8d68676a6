//! Per-thread memories of what inspection found in values that repeat from request to request:
//! header values (a few browsers' user agents, the same pages as referers, a session's cookies
//! on every request of the session), request paths (a portal's pages and API endpoints) and names
//! (header, cookie and form-field names).
//!
//! Both hold exact bytes, never hashes, so a remembered answer is exactly what a new inspection
//! would give: the rules are compiled once per process and never change. Both are bounded
//! (entries and bytes per entry) and forgotten all at once when full, so a flood of distinct
//! values costs what it costs without them, and memory stays fixed: about 1 MiB per thread for
//! each.

use crate::parse::Place;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// foldhash with a per-process random seed: several times faster than SipHash on these short
/// keys, and the memories are bounded, so even engineered collisions cost little.
type Seeded = foldhash::quality::RandomState;

const ENTRIES: usize = 4096;
/// Longer values are not remembered.
pub const MAX_LEN: usize = 256;

thread_local! {
    /// libinjection's (SQL, XSS) verdicts by normalised text (user agents and referers).
    static INJECTION: RefCell<HashMap<Box<str>, (bool, bool), Seeded>> =
        RefCell::new(HashMap::with_hasher(Seeded::default()));
    /// Values in which no rule of any paranoia level matched and nothing was flagged: raw
    /// bytes, one set per place and decoding (looked up by the request's own bytes, no copy).
    static CLEAN: RefCell<Clean> = RefCell::new(Clean::default());
}

/// Place and decoding tags (see [`tag`]): two per place.
const TAGS: usize = 2 * (Place::HeaderName as u16).trailing_zeros() as usize + 2;

#[derive(Default)]
struct Clean {
    by_tag: [HashSet<Box<[u8]>, Seeded>; TAGS],
}

impl Clean {
    /// Entries in all sets.
    fn len(&self) -> usize {
        self.by_tag.iter().map(HashSet::len).sum()
    }
}

pub fn injection(text: &str) -> Option<(bool, bool)> {
    if text.len() > MAX_LEN {
        return None;
    }
    INJECTION.with(|m| m.try_borrow().ok().and_then(|m| m.get(text).copied()))
}

pub fn remember_injection(text: &str, found: (bool, bool)) {
    if text.len() > MAX_LEN {
        return;
    }
    INJECTION.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if m.len() >= ENTRIES {
                m.clear();
            }
            m.insert(text.into(), found);
        }
    });
}

/// Whether values of `place` may be remembered as clean: names, header values and paths, which
/// repeat; never argument values or bodies, which mostly do not. A remembered path also spares
/// the path's own rule set (its lazy DFA's tables) a visit: in the gateway, where the rest of a
/// request's work has pushed those out of the caches, that is most of what a path costs.
pub fn repeats(place: Place) -> bool {
    matches!(
        place,
        Place::UserAgent
            | Place::Referer
            | Place::Path
            | Place::Header
            | Place::HeaderName
            | Place::Cookie
            | Place::CookieName
            | Place::ArgName
    )
}

/// A value that may be remembered as clean: its set (place and decoding) and its bytes, copied
/// once, when the value is first seen; `remember_clean` keeps that copy.
#[derive(Debug, Clone)]
pub struct Key {
    tag: u8,
    raw: Box<[u8]>,
}

/// The key of a value of `place` normalised with or without URL decoding, if it can be one.
pub fn key(place: Place, url: bool, raw: &[u8]) -> Option<Key> {
    (repeats(place) && raw.len() <= MAX_LEN).then(|| Key {
        tag: tag(place, url),
        raw: raw.into(),
    })
}

fn tag(place: Place, url: bool) -> u8 {
    (place as u16).trailing_zeros() as u8 * 2 + u8::from(url)
}

/// Whether this value was found clean before (it can then be skipped: it adds nothing).
pub fn is_clean(place: Place, url: bool, raw: &[u8]) -> bool {
    if !repeats(place) || raw.len() > MAX_LEN {
        return false;
    }
    let tag = usize::from(tag(place, url));
    CLEAN.with(|c| {
        c.try_borrow()
            .is_ok_and(|c| c.by_tag.get(tag).is_some_and(|set| set.contains(raw)))
    })
}

/// Remembers a value found clean.
pub fn remember_clean(key: Key) {
    CLEAN.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.len() >= ENTRIES {
                c.by_tag.iter_mut().for_each(HashSet::clear);
            }
            if let Some(set) = c.by_tag.get_mut(usize::from(key.tag)) {
                set.insert(key.raw);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_bytes_per_place_and_decoding() {
        let ua = b"okhttp/4.12.0";
        assert!(!is_clean(Place::UserAgent, true, ua));
        remember_clean(key(Place::UserAgent, true, ua).unwrap());
        assert!(is_clean(Place::UserAgent, true, ua));
        // Another place, another decoding, one more byte: not the same value.
        assert!(!is_clean(Place::Referer, true, ua));
        assert!(!is_clean(Place::UserAgent, false, ua));
        assert!(!is_clean(Place::UserAgent, true, b"okhttp/4.12.0 "));
        // Paths are (endpoints repeat); argument values and long values never are.
        assert!(key(Place::Path, true, b"/api/v2/cases").is_some());
        assert!(key(Place::Arg, true, b"1").is_none());
        assert!(key(Place::Cookie, true, &[b'a'; MAX_LEN + 1]).is_none());
    }

    #[test]
    fn every_place_has_a_set() {
        use Place::*;
        for place in [
            Path, ArgName, Arg, CookieName, Cookie, UserAgent, Referer, Header, RawBody, FileName,
            HeaderName,
        ] {
            assert!(usize::from(tag(place, true)) < TAGS, "{place:?}");
        }
    }

    #[test]
    fn bounded() {
        for i in 0..ENTRIES * 2 {
            remember_clean(key(Place::Header, true, format!("v{i}").as_bytes()).unwrap());
        }
        assert!(CLEAN.with(|c| c.borrow().len()) <= ENTRIES);
    }
}
