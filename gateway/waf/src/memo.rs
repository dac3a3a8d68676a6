//! Per-thread memories of what inspection found in values that repeat from request to request:
//! header values (a few browsers' user agents, the same pages as referers, a session's cookies
//! on every request of the session), request paths (a portal's pages and API endpoints) and names
//! (cookie and form-field names); and what the request rules read in a Content-Type (clients
//! send a handful of exact ones).
//!
//! Both hold exact bytes, never hashes, so a remembered answer is exactly what a new inspection
//! would give: the rules are compiled once per process and never change. Both are bounded
//! (entries and bytes per entry) and forgotten all at once when full, so a flood of distinct
//! values costs what it costs without them, and memory stays fixed: about 1 MiB per thread for
//! each.

use crate::parse::Place;
use std::cell::RefCell;
use std::collections::HashMap;

/// foldhash (its fast variant, as hashbrown uses it) with a per-process random seed: several
/// times faster than SipHash on these short keys, and the memories are bounded, so even
/// engineered collisions cost little.
type Seeded = foldhash::fast::RandomState;

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
#[cfg(test)]
const TAGS: usize = 2 * (Place::FileName as u16).trailing_zeros() as usize + 2;

/// Slots of the table of clean values: twice [`ENTRIES`], so it is at most half full and a
/// lookup rarely reads a second slot.
const SLOTS: usize = 2 * ENTRIES;
/// A lookup gives up (the value is then inspected, as if never seen) after this many slots.
const MAX_PROBES: usize = 16;

/// Values found clean, by place and decoding: an open-addressed table of 12-byte slots over
/// one byte arena holding the values back to back. Looking a value up reads one slot (five to a
/// cache line) and the value's bytes, which sit beside those of the values remembered with it
/// (a request's header values are remembered together and come back together). A hash set of
/// boxed values read a control byte, a bucket and a separate allocation per value, each on a
/// line of its own: in the gateway, where the rest of a request's work has pushed them out of
/// the caches, that was a fifth of the data lines inspection waits for.
#[derive(Default)]
struct Clean {
    slots: Vec<Slot>,
    arena: Vec<u8>,
    len: usize,
    hasher: Seeded,
}

/// One remembered value: where its bytes are in the arena, its set, and more of its hash.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The hash's top 32 bits with the lowest set (0: an empty slot).
    check: u32,
    off: u32,
    len: u16,
    tag: u8,
}

impl Clean {
    fn hash(&self, tag: u8, raw: &[u8]) -> (usize, u32) {
        use std::hash::{BuildHasher, Hasher};
        // The tag's one byte, then the value's bytes (no length first: the tag is of fixed
        // width, so no two keys write the same bytes).
        let mut h = self.hasher.build_hasher();
        h.write_u8(tag);
        h.write(raw);
        let h = h.finish();
        ((h as usize) % SLOTS, (h >> 32) as u32 | 1)
    }

    /// The slot holding `raw` in set `tag` (`Ok`), or the empty slot where it would go (`Err`);
    /// `None` when neither is within [`MAX_PROBES`]. The last argument is [`Self::hash`] of the two.
    fn find(
        &self,
        tag: u8,
        raw: &[u8],
        (home, check): (usize, u32),
    ) -> Option<Result<usize, usize>> {
        if self.slots.is_empty() {
            return None;
        }
        (0..MAX_PROBES).find_map(|probe| {
            let i = (home + probe) % SLOTS;
            let s = self.slots.get(i)?;
            if s.check == 0 {
                return Some(Err(i));
            }
            let off = s.off as usize;
            let same = s.check == check
                && s.tag == tag
                && usize::from(s.len) == raw.len()
                && self.arena.get(off..off + raw.len()) == Some(raw);
            same.then_some(Ok(i))
        })
    }

    fn contains(&self, tag: u8, raw: &[u8]) -> bool {
        matches!(self.find(tag, raw, self.hash(tag, raw)), Some(Ok(_)))
    }

    fn insert(&mut self, tag: u8, raw: &[u8]) {
        if self.len >= ENTRIES || self.arena.len() + raw.len() > ENTRIES * MAX_LEN {
            self.clear();
        }
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); SLOTS];
        }
        let hash = self.hash(tag, raw);
        let (Some(Err(i)), Ok(len), Ok(off)) = (
            self.find(tag, raw, hash),
            u16::try_from(raw.len()),
            u32::try_from(self.arena.len()),
        ) else {
            // Already there, or no free slot near its place: not remembered.
            return;
        };
        let check = hash.1;
        if let Some(s) = self.slots.get_mut(i) {
            *s = Slot {
                check,
                off,
                len,
                tag,
            };
            self.arena.extend_from_slice(raw);
            self.len += 1;
        }
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Slot::default());
        self.arena.clear();
        self.len = 0;
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

/// Content types remembered with their facts ([`crate::ContentType`]).
const CONTENT_TYPES: usize = 16;
/// Longer content types are not remembered.
const CONTENT_TYPE_MAX_LEN: usize = 128;

thread_local! {
    /// The facts of recent content types, by exact text: the oldest is forgotten first.
    static CONTENT_TYPE: RefCell<Vec<(Box<str>, crate::ContentType)>> =
        const { RefCell::new(Vec::new()) };
}

/// Whether `ct` may be remembered: not too long, and no multipart boundary (new in every
/// request, so remembering it would only push out the types that repeat).
fn content_type_repeats(ct: &str) -> bool {
    ct.len() <= CONTENT_TYPE_MAX_LEN && !crate::contains_ignore_case(ct.as_bytes(), b"boundary")
}

/// The facts of `ct` if this thread read them before.
pub(crate) fn content_type(ct: &str) -> Option<crate::ContentType> {
    if !content_type_repeats(ct) {
        return None;
    }
    CONTENT_TYPE.with(|m| {
        m.try_borrow()
            .ok()
            .and_then(|m| m.iter().find(|(k, _)| **k == *ct).map(|(_, f)| *f))
    })
}

/// Remembers the facts read from `ct`.
pub(crate) fn remember_content_type(ct: &str, facts: crate::ContentType) {
    if !content_type_repeats(ct) {
        return;
    }
    CONTENT_TYPE.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if m.len() >= CONTENT_TYPES {
                m.remove(0);
            }
            m.push((ct.into(), facts));
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
/// (Inlined where values are added: most values of a body are of places never remembered,
/// and are answered without a call.)
#[inline]
pub fn is_clean(place: Place, url: bool, raw: &[u8]) -> bool {
    repeats(place) && raw.len() <= MAX_LEN && remembered(tag(place, url), raw)
}

/// Whether `raw` is in set `tag` of the values found clean.
#[inline(never)]
fn remembered(tag: u8, raw: &[u8]) -> bool {
    CLEAN.with(|c| c.try_borrow().is_ok_and(|c| c.contains(tag, raw)))
}

/// Remembers a value found clean.
pub fn remember_clean(key: Key) {
    CLEAN.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.insert(key.tag, &key.raw);
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
        ] {
            assert!(usize::from(tag(place, true)) < TAGS, "{place:?}");
        }
    }

    #[test]
    fn a_full_table_still_finds_what_it_holds() {
        let mut c = Clean::default();
        let values: Vec<Vec<u8>> = (0..ENTRIES)
            .map(|i| format!("value {i}").into_bytes())
            .collect();
        for v in &values {
            c.insert(3, v);
        }
        // A value may go unremembered when its neighbourhood is full (it is then inspected
        // again): at half load that is rare.
        let found = values.iter().filter(|v| c.contains(3, v)).count();
        assert!(found >= ENTRIES * 99 / 100, "{found} of {ENTRIES}");
        assert!(!c.contains(2, &values[0]), "another set");
        assert!(!c.contains(3, b"value"), "a prefix");
        // Once full (topped up past any value left out), the next one starts afresh rather
        // than growing.
        for i in 0..ENTRIES {
            if c.len >= ENTRIES {
                break;
            }
            c.insert(3, format!("extra {i}").as_bytes());
        }
        assert_eq!(c.len, ENTRIES);
        c.insert(3, b"one more");
        assert!(c.contains(3, b"one more"));
        assert!(!c.contains(3, &values[0]));
        assert_eq!(c.len, 1);
    }

    #[test]
    fn the_arena_is_bounded() {
        let mut c = Clean::default();
        let mut missed = 0;
        for i in 0..ENTRIES * 3 {
            let mut v = vec![b'x'; MAX_LEN];
            v[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.insert(1, &v);
            assert!(c.arena.len() <= ENTRIES * MAX_LEN);
            missed += usize::from(!c.contains(1, &v));
        }
        assert!(missed <= ENTRIES * 3 / 100, "{missed} not remembered");
    }

    #[test]
    fn bounded() {
        for i in 0..ENTRIES * 2 {
            remember_clean(key(Place::Header, true, format!("v{i}").as_bytes()).unwrap());
        }
        assert!(CLEAN.with(|c| c.borrow().len) <= ENTRIES);
    }
}
