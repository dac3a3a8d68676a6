//! Normalisation before detection: what an attacker encodes to slip past a pattern is decoded
//! here, once, into the form every detector reads. All steps are linear in the input and bounded:
//! URL decoding repeats at most [`MAX_DECODE_ROUNDS`] times.

/// Repeated URL decoding stops after this many rounds (`%252e` is decoded twice; a third layer
/// is itself suspicious and is reported by the caller through [`Normalized::layers`]).
pub const MAX_DECODE_ROUNDS: usize = 3;

use std::borrow::Cow;

/// One input value in the forms the detectors read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// Decoded (URL, `%u`, overlong UTF-8, HTML entities), NUL bytes removed, lower case.
    /// Borrowed from the request when normalising changes nothing (most values).
    pub text: Cow<'a, str>,
    /// `text` with comments (`/* */`, `<!-- -->`) removed and runs of whitespace folded to one
    /// space: what SQL and shell detectors read.
    /// `None` when it would equal `text` (most values): see [`Normalized::folded`].
    pub folded: Option<String>,
    /// How many rounds of URL decoding changed the value.
    pub layers: usize,
    /// NUL bytes or other C0 control characters (not tab, CR, LF) were present after decoding.
    pub control: bool,
    /// JavaScript escapes (`\u0061`, `\x61`) were decoded.
    pub escapes: bool,
    /// What one pass over `text`'s bytes found, for the checks that would each walk it again.
    pub summary: Summary,
}

/// What one pass over a value's bytes found: whether it is plain (see [`Summary::plain`]) and
/// ASCII; whether it holds U+FFFD's lead byte, `+`, `%`, `\`, `&` or a lead of overlong UTF-8;
/// whether folding may change it; and the characters SQL and HTML injection need. Each later
/// check reads a bit instead of walking the value again: a short value's walk costs little, but
/// the end of each walk, decided by the value's length, is a branch the processor mispredicts
/// about once per walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary(u16);

impl Summary {
    /// The summary of `bytes`: one table lookup per byte and no branch on the byte.
    pub fn of(bytes: &[u8]) -> Summary {
        let mut s = Summarizer::default();
        for &b in bytes {
            s.add(class(b));
        }
        s.finish()
    }

    /// No byte that decoding, lowering or folding would act on (controls, upper case, the
    /// openers of URL, JavaScript and entity escapes, `*` and `<`, overlong UTF-8 leads) and no
    /// two spaces in a row.
    pub fn plain(self) -> bool {
        self.0 & NOT_PLAIN_BIT == 0
    }

    pub fn ascii(self) -> bool {
        self.0 & NON_ASCII_BIT == 0
    }

    /// Whether the byte 0xEF (which leads U+FFFD) is present.
    pub fn has_ef(self) -> bool {
        self.0 & EF_BIT != 0
    }

    /// Whether `+` is present (a space, in a form).
    pub fn has_plus(self) -> bool {
        self.0 & PLUS_BIT != 0
    }

    /// Whether `%` is present (URL encoding).
    pub fn has_percent(self) -> bool {
        self.0 & PERCENT_BIT != 0
    }

    /// Whether `\` is present (JavaScript escapes).
    fn has_backslash(self) -> bool {
        self.0 & BACKSLASH_BIT != 0
    }

    /// Whether `&` is present (HTML entities).
    fn has_ampersand(self) -> bool {
        self.0 & AMPERSAND_BIT != 0
    }

    /// Whether a byte that may lead overlong UTF-8 is present (C0, C1, E0).
    fn has_overlong_lead(self) -> bool {
        self.0 & OVERLONG_BIT != 0
    }

    /// Whether [`fold`] may change the text ASCII-wise: a comment opener or closer (`/*`, `*/`,
    /// `<!`), two spaces in a row, or a tab, CR, LF, VT or FF. (`<!` stands for `<!--`: a
    /// text it lets through is folded for nothing, and the fold, equal to the text, dropped.)
    fn may_fold(self) -> bool {
        self.0 & FOLD_BIT != 0
    }

    /// Whether the value holds a character SQL injection needs (quotes, comments, operators,
    /// statement ends), resp. one HTML injection needs (tags, attributes).
    pub fn may_inject(self) -> (bool, bool) {
        (self.0 & SQL_BIT != 0, self.0 & HTML_BIT != 0)
    }
}

/// A [`Summary`] taken a byte at a time, for a walk that does more than summarise (splitting a
/// form at its separators while summarising its pieces): [`add`](Self::add) each byte's
/// [`class`], then [`finish`](Self::finish).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summarizer {
    one: u32,
    pairs: u32,
    prev: u32,
}

impl Summarizer {
    #[inline(always)]
    pub(crate) fn add(&mut self, now: u32) {
        self.one |= now;
        // A pair (two spaces, `--`, `/*`, `*/`, `<!`): the first byte's "opens" bits meet the
        // second's "closes" bits.
        self.pairs |= self.prev >> OPENS & now;
        self.prev = now;
    }

    pub(crate) fn finish(self) -> Summary {
        let (one, pairs) = (self.one, self.pairs);
        let mut bits = (one & ONE_BYTE) as u16;
        if pairs & SPACES != 0 {
            bits |= NOT_PLAIN_BIT | FOLD_BIT;
        }
        if pairs & (DASHES | COMMENT) != 0 {
            bits |= SQL_BIT;
        }
        if pairs & (COMMENT | COMMENT_END | MARKUP) != 0 {
            bits |= FOLD_BIT;
        }
        Summary(bits)
    }
}

/// A byte's class: its bits for [`Summarizer::add`], and [`FORM_SEPARATOR`].
#[inline(always)]
pub(crate) fn class(b: u8) -> u32 {
    BYTE_CLASS[usize::from(b)]
}

/// In a byte's [`class`]: `&` or `=`, where a form is split (no bit of a [`Summary`]).
pub(crate) const FORM_SEPARATOR: u32 = 1 << 29;

// A byte's own bits (the low bits of its class, `ONE_BYTE`).
const NOT_PLAIN_BIT: u16 = 1;
const NON_ASCII_BIT: u16 = 2;
const EF_BIT: u16 = 4;
const SQL_BIT: u16 = 8;
const HTML_BIT: u16 = 16;
const PLUS_BIT: u16 = 32;
const PERCENT_BIT: u16 = 64;
const FOLD_BIT: u16 = 128;
const BACKSLASH_BIT: u16 = 256;
const AMPERSAND_BIT: u16 = 512;
const OVERLONG_BIT: u16 = 1024;
const ONE_BYTE: u32 = 2047;
/// "Closes" bits of the pairs (bits 16-20 of a class); a byte's "opens" bits are the same,
/// `OPENS` bits higher.
const SPACES: u32 = 1 << 16;
const DASHES: u32 = 1 << 17;
/// `/*`.
const COMMENT: u32 = 1 << 18;
/// `*/`.
const COMMENT_END: u32 = 1 << 19;
/// `<!`.
const MARKUP: u32 = 1 << 20;
const OPENS: u32 = 8;

/// Each byte's bits for [`Summary::of`].
const BYTE_CLASS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        if NOT_PLAIN[b] {
            t[b] |= NOT_PLAIN_BIT as u32;
        }
        if b >= 0x80 {
            t[b] |= NON_ASCII_BIT as u32;
        }
        b += 1;
    }
    let t = with_bits(t, b"\xef", EF_BIT as u32);
    let t = with_bits(t, b"+", PLUS_BIT as u32);
    let t = with_bits(t, b"%", PERCENT_BIT as u32);
    let t = with_bits(t, b"\\", BACKSLASH_BIT as u32);
    let t = with_bits(t, b"&", AMPERSAND_BIT as u32);
    let t = with_bits(t, b"\t\n\r\x0b\x0c", FOLD_BIT as u32);
    let t = with_bits(t, b"\xc0\xc1\xe0", OVERLONG_BIT as u32);
    let t = with_bits(t, b"'\"`<>=", (SQL_BIT | HTML_BIT) as u32);
    let t = with_bits(t, b";()#|&!\\", SQL_BIT as u32);
    let t = with_bits(t, b" ", SPACES | SPACES << OPENS);
    let t = with_bits(t, b"-", DASHES | DASHES << OPENS);
    let t = with_bits(t, b"/", COMMENT << OPENS | COMMENT_END);
    let t = with_bits(t, b"*", COMMENT | COMMENT_END << OPENS);
    let t = with_bits(t, b"<", MARKUP << OPENS);
    let t = with_bits(t, b"&=", FORM_SEPARATOR);
    with_bits(t, b"!", MARKUP)
};

/// `t` with `bits` added to the class of each byte of `bytes`.
const fn with_bits(mut t: [u32; 256], bytes: &[u8], bits: u32) -> [u32; 256] {
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] |= bits;
        i += 1;
    }
    t
}

impl Normalized<'_> {
    /// The folded form (comments removed, whitespace runs folded).
    pub fn folded(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.text)
    }

    /// The same value, owning its text (for values normalised from a temporary copy).
    pub fn into_owned(self) -> Normalized<'static> {
        Normalized {
            text: Cow::Owned(self.text.into_owned()),
            folded: self.folded,
            layers: self.layers,
            control: self.control,
            escapes: self.escapes,
            summary: self.summary,
        }
    }
}

/// Normalises one value. `url` says whether URL decoding applies (query and form values are
/// decoded once by the parser already; path segments, cookies and headers are not).
pub fn normalize(raw: &[u8], url: bool) -> Normalized<'_> {
    // Fast path: nothing to decode, fold or lower (plain ASCII words, numbers, dates; Chinese
    // text without escapes): the text is the request's own bytes.
    let summary = Summary::of(raw);
    if summary.plain() {
        if let Some(n) = utf8(raw).and_then(|text| settled(text, summary)) {
            return n;
        }
    }
    decode(raw, url, summary)
}

/// As [`normalize`], for a value already known to be UTF-8 (a JSON string): not checked again.
pub fn normalize_str(text: &str, url: bool) -> Normalized<'_> {
    normalize_summarized(text, Summary::of(text.as_bytes()), url)
}

/// As [`normalize_str`], for a value whose summary was taken already (it must be `text`'s).
pub(crate) fn normalize_summarized(text: &str, summary: Summary, url: bool) -> Normalized<'_> {
    if summary.plain() {
        if let Some(n) = settled(text, summary) {
            return n;
        }
    }
    decode(text.as_bytes(), url, summary)
}

/// A plain value (see [`Summary::plain`]) as it is, unless a character has a lower case or is
/// a Unicode space: exactly what [`decode`] would make of it.
fn settled(text: &str, summary: Summary) -> Option<Normalized<'_>> {
    (summary.ascii() || is_settled(text)).then_some(Normalized {
        text: Cow::Borrowed(text),
        folded: None,
        layers: 0,
        control: false,
        escapes: false,
        summary,
    })
}

/// Whether no character of `text` has a lower case or is a Unicode space (what lowering and
/// folding would change in text that [`Summary::plain`] lets through).
fn is_settled(text: &str) -> bool {
    // Chinese text read by its bytes: a character led by E4-E9 (U+4000-U+9FFF) or by E3
    // (U+3000-U+3FFF) other than the ideographic space U+3000 (E3 80 80) is a CJK character or
    // symbol, with no lower case and no space. Decoding each one into a `char` cost most of this
    // check; any other character is checked as a `char`, from where it starts. (The step over
    // each character comes from a table: a branch on its kind was mispredicted wherever ASCII
    // and Chinese meet.)
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(&lead) = b.get(i) {
        let step = SETTLED_STEP[usize::from(lead)];
        if step == 0 || (lead == 0xe3 && b.get(i + 1..i + 3) == Some(&[0x80, 0x80][..])) {
            return text
                .get(i..)
                .is_some_and(|rest| rest.chars().all(settled_char));
        }
        i += usize::from(step);
    }
    true
}

/// [`is_settled`]'s step over a character from its first byte: 1 for ASCII other than upper
/// case, 3 for E3-E9, 0 (look at the character) for the rest.
const SETTLED_STEP: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x80 {
        t[b] = if b >= b'A' as usize && b <= b'Z' as usize {
            0
        } else {
            1
        };
        b += 1;
    }
    let mut b = 0xe3;
    while b <= 0xe9 {
        t[b] = 3;
        b += 1;
    }
    t
};

/// Whether lowering and folding leave `c` as it is (in text that is not ASCII throughout).
fn settled_char(c: char) -> bool {
    lowers_to_itself(c) && (c.is_ascii() || !c.is_whitespace())
}

/// `String::from_utf8_lossy`, checking the (nearly always valid) bytes with the faster UTF-8
/// validator first: the lossy one walks character runs even when there is nothing to replace.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match utf8(bytes) {
        Some(text) => Cow::Borrowed(text),
        None => String::from_utf8_lossy(bytes),
    }
}

/// The bytes as text when they are UTF-8, as `std::str::from_utf8(bytes).ok()`, checked with
/// `simdutf8`'s vectorised validator: the standard one takes a branch per character outside
/// ASCII, which mixed Chinese and ASCII text (a JSON body) mispredicts over and over. (For fewer
/// than 64 bytes simdutf8 runs the standard check itself.)
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Every decoding step, lower case, folding.
/// (`summary` is `raw`'s.)
fn decode(raw: &[u8], url: bool, summary: Summary) -> Normalized<'static> {
    decode_rounds(raw, url, true, summary)
}

/// [`decode`]; with `short`, a value that the first round of URL decoding leaves plain and
/// settled ([`Summary::plain`], [`is_settled`]: a URL-encoded form field of Chinese text, mostly) is
/// returned as it is then. The rest of the steps would find nothing more to undo, lower or fold
/// in it; the tests compare both ways.
fn decode_rounds(raw: &[u8], url: bool, short: bool, summary: Summary) -> Normalized<'static> {
    let mut bytes = Cow::Borrowed(raw);
    // What the bytes hold, taken again whenever a step changes them.
    let mut summary = summary;
    let mut layers = 0;
    let mut escapes = false;
    // URL, JavaScript and HTML-entity encodings nest in any order (`%5Cu0024`, `\u0026lbrace;`):
    // undo all three until nothing changes, a bounded number of times. (A copy is made only
    // once something is decoded.)
    for round in 0..MAX_DECODE_ROUNDS {
        let mut changed = false;
        if url && summary.has_percent() {
            let next = url_decode(&bytes);
            if *next != *bytes {
                layers += 1;
                changed = true;
                summary = Summary::of(&next);
                bytes = Cow::Owned(next);
            }
        }
        if short && round == 0 && changed && summary.plain() {
            match String::from_utf8(bytes.into_owned()) {
                Ok(text) if summary.ascii() || is_settled(&text) => {
                    return Normalized {
                        text: Cow::Owned(text),
                        folded: None,
                        layers,
                        control: false,
                        escapes: false,
                        summary,
                    }
                }
                Ok(text) => bytes = Cow::Owned(text.into_bytes()),
                Err(e) => bytes = Cow::Owned(e.into_bytes()),
            }
        }
        if summary.has_backslash() {
            let next = js_unescape(&bytes);
            if *next != *bytes {
                escapes = true;
                changed = true;
                summary = Summary::of(&next);
                bytes = Cow::Owned(next);
            }
        }
        if summary.has_ampersand() {
            let text = lossy(&bytes);
            let next = decode_entities(&text).into_owned().into_bytes();
            if *next != *bytes {
                changed = true;
                summary = Summary::of(&next);
                bytes = Cow::Owned(next);
            }
        }
        if !changed {
            break;
        }
    }
    let (bytes, ascii) = if summary.has_overlong_lead() {
        let bytes = decode_overlong(&bytes);
        let ascii = bytes.is_ascii();
        (bytes, ascii)
    } else {
        (bytes.into_owned(), summary.ascii())
    };
    let mut control = false;
    let text: String = if ascii {
        // Most values that reach here (user agents, URLs, mixed-case words) are ASCII: the same
        // steps on bytes, in place, without decoding characters.
        let mut bytes = bytes;
        bytes.retain(|b| {
            if *b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n') {
                control = true;
            }
            *b != 0
        });
        bytes.make_ascii_lowercase();
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    } else {
        match String::from_utf8(bytes) {
            // Valid UTF-8 (decoded Chinese text, mostly): kept as it is unless a character
            // changes, instead of being rebuilt character by character.
            Ok(text) => unicode_lower(text, &mut control),
            Err(e) => String::from_utf8_lossy(e.as_bytes())
                .chars()
                .filter(|c| {
                    if (*c as u32) < 0x20 && !matches!(c, '\t' | '\r' | '\n') {
                        control = true;
                    }
                    *c != '\0'
                })
                .flat_map(char::to_lowercase)
                .collect(),
        }
    };
    // Most values have nothing to fold: share the text rather than copy it.
    let summary = Summary::of(text.as_bytes());
    let needs_fold = summary.may_fold()
        || (!summary.ascii() && text.chars().any(|c| c.is_whitespace() && !c.is_ascii()));
    let folded = needs_fold.then(|| fold(&text)).filter(|f| *f != text);
    Normalized {
        summary,
        text: Cow::Owned(text),
        folded,
        layers,
        control,
        escapes,
    }
}

/// Valid text with NUL bytes removed (`control` set if any C0 control other than tab, CR, LF
/// is present) and every character lowered: the same as filtering and lowering it character by
/// character, with no copy when nothing changes.
fn unicode_lower(mut text: String, control: &mut bool) -> String {
    let mut nul = false;
    for b in text.bytes().filter(|b| *b < 0x20) {
        *control |= !matches!(b, b'\t' | b'\r' | b'\n');
        nul |= b == 0;
    }
    if nul {
        text.retain(|c| c != '\0');
    }
    if text.chars().all(lowers_to_itself) {
        text
    } else {
        text.chars().flat_map(char::to_lowercase).collect()
    }
}

/// Whether `c.to_lowercase()` is `c` itself. CJK symbols, punctuation, kana and ideographs
/// (U+3000..U+9FFF) have no case: no table lookup for them.
fn lowers_to_itself(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_uppercase();
    }
    if ('\u{3000}'..='\u{9fff}').contains(&c) {
        return true;
    }
    let mut lower = c.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

/// Bytes that rule a value out of the fast path: controls, upper case, the openers of URL,
/// JavaScript and entity escapes, comment characters (`*` and `<`: without them `/` opens or
/// closes no comment, so paths stay on the fast path), and overlong UTF-8 leads.
const NOT_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    let mut b = b'A';
    while b <= b'Z' {
        t[b as usize] = true;
        b += 1;
    }
    let others = [b'%', b'\\', b'&', b'*', b'<', 0xc0, 0xc1, 0xe0];
    let mut i = 0;
    while i < others.len() {
        t[others[i] as usize] = true;
        i += 1;
    }
    t
};

/// JavaScript string escapes: `\uXXXX` and `\xXX` (others stay).
fn js_unescape(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\' {
            match input.get(i + 1) {
                Some(b'u' | b'U') => {
                    if let (Some(hi), Some(lo)) =
                        (hex2(input.get(i + 2..i + 4)), hex2(input.get(i + 4..i + 6)))
                    {
                        let c = char::from_u32(u32::from(hi) << 8 | u32::from(lo))
                            .unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                }
                Some(b'x' | b'X') => {
                    if let Some(v) = hex2(input.get(i + 2..i + 4)) {
                        let c = char::from(v);
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// One round of URL decoding: `%XX`, `%uXXXX` (IIS), and `+` left alone (form decoding handles
/// `+` before this). Malformed escapes stay as they are.
pub fn url_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'%' {
            // The run up to the next `%`, copied whole.
            let end = memchr::memchr(b'%', &input[i..]).map_or(input.len(), |n| i + n);
            out.extend_from_slice(&input[i..end]);
            i = end;
            continue;
        }
        if let Some(v) = hex2(input.get(i + 1..i + 3)) {
            out.push(v);
            i += 3;
            continue;
        }
        if matches!(input.get(i + 1), Some(b'u' | b'U')) {
            if let (Some(hi), Some(lo)) =
                (hex2(input.get(i + 2..i + 4)), hex2(input.get(i + 4..i + 6)))
            {
                let cp = u32::from(hi) << 8 | u32::from(lo);
                // Full-width ASCII (U+FF01..U+FF5E) maps to ASCII, as IIS does.
                let cp = if (0xff01..=0xff5e).contains(&cp) {
                    cp - 0xfee0
                } else {
                    cp
                };
                let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                continue;
            }
        }
        // A `%` that starts no escape stays.
        out.push(b'%');
        i += 1;
    }
    out
}

fn hex2(s: Option<&[u8]>) -> Option<u8> {
    let s = s?;
    let h = |c: &u8| HEX.get(usize::from(*c)).copied().filter(|v| *v < 16);
    Some(h(s.first()?)? << 4 | h(s.get(1)?)?)
}

/// Each byte's value as a hexadecimal digit (either case), 0xff for a byte that is not one.
const HEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Overlong UTF-8 encodings of ASCII (`C0 AF` for `/`, `E0 80 AE` for `.`) become the ASCII
/// character they spell; decoders that accept them are how `..%c0%af` traversals worked.
fn decode_overlong(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if (b == 0xc0 || b == 0xc1) && i + 1 < input.len() && input[i + 1] & 0xc0 == 0x80 {
            out.push(((b & 0x1f) << 6) | (input[i + 1] & 0x3f));
            i += 2;
            continue;
        }
        if b == 0xe0
            && i + 2 < input.len()
            && input[i + 1] & 0xe0 == 0x80
            && input[i + 2] & 0xc0 == 0x80
        {
            out.push(((input[i + 1] & 0x3f) << 6) | (input[i + 2] & 0x3f));
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// HTML character references: numeric (`&#60;`, `&#x3c;`, with or without `;`) and the named
/// ones attackers use.
pub fn decode_entities(input: &str) -> std::borrow::Cow<'_, str> {
    if !input.contains('&') {
        return std::borrow::Cow::Borrowed(input);
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some((c, used)) = entity(rest) {
            out.push(c);
            rest = &rest[used..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let (radix, start) = if matches!(b.get(2), Some(b'x' | b'X')) {
            (16, 3)
        } else {
            (10, 2)
        };
        // Leading zeros are legal and unbounded (`&#0000000036;`); significant digits are not.
        let zeros = b[start..].iter().take_while(|c| **c == b'0').count();
        let digits = b[start + zeros..]
            .iter()
            .take(8)
            .take_while(|c| (**c as char).is_digit(radix))
            .count();
        if digits + zeros == 0 {
            return None;
        }
        let n = if digits == 0 {
            0
        } else {
            u32::from_str_radix(&s[start + zeros..start + zeros + digits], radix).ok()?
        };
        let mut used = start + zeros + digits;
        if b.get(used) == Some(&b';') {
            used += 1;
        }
        return Some((char::from_u32(n).unwrap_or('\u{fffd}'), used));
    }
    const NAMED: &[(&str, char)] = &[
        ("&lt", '<'),
        ("&gt", '>'),
        ("&quot", '"'),
        ("&apos", '\''),
        ("&amp", '&'),
        ("&nbsp", ' '),
        ("&colon", ':'),
        ("&lpar", '('),
        ("&rpar", ')'),
        ("&sol", '/'),
        ("&bsol", '\\'),
        ("&tab", '\t'),
        ("&newline", '\n'),
        ("&period", '.'),
        ("&grave", '`'),
        ("&lbrace", '{'),
        ("&rbrace", '}'),
        ("&lcub", '{'),
        ("&rcub", '}'),
        ("&lsqb", '['),
        ("&rsqb", ']'),
        ("&lbrack", '['),
        ("&rbrack", ']'),
        ("&dollar", '$'),
        ("&num", '#'),
        ("&semi", ';'),
        ("&comma", ','),
        ("&excl", '!'),
        ("&quest", '?'),
        ("&equals", '='),
        ("&plus", '+'),
        ("&ast", '*'),
        ("&percnt", '%'),
        ("&lowbar", '_'),
        ("&vert", '|'),
        ("&verbar", '|'),
        ("&commat", '@'),
        ("&hat", '^'),
        ("&tilde", '~'),
    ];
    // Longest name first so that `&lbrack` is not read as `&lbrace`-less `&lb...`.
    NAMED
        .iter()
        .filter_map(|(name, c)| {
            let n = s.get(..name.len())?;
            if !n.eq_ignore_ascii_case(name) {
                return None;
            }
            let used = if s.as_bytes().get(name.len()) == Some(&b';') {
                name.len() + 1
            } else {
                name.len()
            };
            Some((*c, used))
        })
        .max_by_key(|(_, used)| *used)
}

/// Comments removed and whitespace runs folded to one space.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut space = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            // `/*!50000select*/` (MySQL executable comment) keeps its content.
            let after = after
                .strip_prefix('!')
                .map(|a| a.trim_start_matches(|c: char| c.is_ascii_digit()));
            match after {
                Some(a) => {
                    rest = a;
                    if !space {
                        out.push(' ');
                        space = true;
                    }
                    continue;
                }
                None => {
                    let body = &rest[2..];
                    rest = match body.find("*/") {
                        Some(end) => &body[end + 2..],
                        None => "",
                    };
                    if !space {
                        out.push(' ');
                        space = true;
                    }
                    continue;
                }
            }
        }
        if let Some(after) = rest.strip_prefix("*/") {
            rest = after;
            if !space {
                out.push(' ');
                space = true;
            }
            continue;
        }
        if let Some(body) = rest.strip_prefix("<!--") {
            rest = match body.find("-->") {
                Some(end) => &body[end + 3..],
                None => "",
            };
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        if c.is_whitespace() || c == '\u{b}' || c == '\u{c}' {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding_and_iis_unicode_are_undone() {
        let n = normalize(b"..%252f..%252fetc%252fpasswd", true);
        assert_eq!(n.text, "../../etc/passwd");
        assert_eq!(n.layers, 2);
        assert_eq!(normalize(b"%u002e%u002e%u2215", true).text, "..\u{2215}");
        assert_eq!(normalize(b"%uff1cscript%uff1e", true).text, "<script>");
    }

    #[test]
    fn overlong_utf8_slash_and_dot() {
        assert_eq!(normalize(b"..%c0%af..%c0%afetc", true).text, "../../etc");
        assert_eq!(normalize(b"%e0%80%ae%e0%80%ae/", true).text, "../");
    }

    #[test]
    fn entities_nul_case_and_comments() {
        let n = normalize(b"&#x3C;ScRiPt&#62;al\0ert(1)&lt;/script&gt;", false);
        assert_eq!(n.text, "<script>alert(1)</script>");
        assert!(n.control);
        let n = normalize(b"UNION/**/SELECT/*!50000password*/  \t FROM users", false);
        assert_eq!(n.folded(), "union select password from users");
    }

    #[test]
    fn ascii_and_unicode_paths_lower_and_flag_alike() {
        // The ASCII path (bytes) and the Unicode one (chars) must agree on case, NUL removal
        // and the control-character flag.
        let ascii = normalize(b"Mozilla/5.0 (X11; Linux)\0\x01 TAB\tEND", false);
        assert_eq!(ascii.text, "mozilla/5.0 (x11; linux)\x01 tab\tend");
        assert!(ascii.control);
        let unicode = normalize(
            "Mozilla/5.0 (X11; Linux)\0\x01 TAB\tEND 张".as_bytes(),
            false,
        );
        assert_eq!(unicode.text, format!("{} 张", ascii.text));
        assert!(unicode.control);
        assert!(!normalize(b"/A/B?C=D", false).control);
    }

    /// One round of URL decoding, byte by byte (what `url_decode` does by runs).
    fn url_decode_bytewise(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'%' {
                if let Some(v) = hex2(input.get(i + 1..i + 3)) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                    if let (Some(hi), Some(lo)) =
                        (hex2(input.get(i + 2..i + 4)), hex2(input.get(i + 4..i + 6)))
                    {
                        let cp = u32::from(hi) << 8 | u32::from(lo);
                        let cp = if (0xff01..=0xff5e).contains(&cp) {
                            cp - 0xfee0
                        } else {
                            cp
                        };
                        let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                        out.extend_from_slice(c.to_string().as_bytes());
                        i += 6;
                        continue;
                    }
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }

    /// Whether `fold` may change a text ASCII-wise, as it was first written: a comment opener or
    /// closer (`/*`, `*/`, `<!--`), two spaces in a row, or a tab, CR, LF, VT or FF.
    fn may_fold_reference(b: &[u8]) -> bool {
        b.iter().enumerate().any(|(i, c)| match c {
            b'*' => (i > 0 && b[i - 1] == b'/') || b.get(i + 1) == Some(&b'/'),
            b'<' => b[i..].starts_with(b"<!--"),
            b' ' => b.get(i + 1) == Some(&b' '),
            b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => true,
            _ => false,
        })
    }

    /// Whether a value is plain, as it was first written: a branch per byte.
    fn is_plain_reference(raw: &[u8]) -> bool {
        let mut space = false;
        for &b in raw {
            if NOT_PLAIN[b as usize] || (space && b == b' ') {
                return false;
            }
            space = b == b' ';
        }
        true
    }

    #[test]
    fn summaries() {
        let s = Summary::of("申请人 张三".as_bytes());
        assert!(s.plain() && !s.ascii() && !s.has_ef());
        assert!(!Summary::of(b"a  b").plain());
        assert!(Summary::of(b"a b c").plain());
        assert!(!Summary::of(b"Ab").plain());
        assert!(Summary::of("，".as_bytes()).has_ef());
        assert_eq!(Summary::of(b"").may_inject(), (false, false));
        assert_eq!(Summary::of(b"a--").may_inject(), (true, false));
    }

    proptest::proptest! {
        /// One pass finds what each check finds on its own, for every byte and every pair.
        #[test]
        fn summary_as_the_separate_checks(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
            text in r#"([- /*aA%+;<!&'"\\张，\t\n\x{3000}]|<!--|\*/|/\*){0,16}"#,
        ) {
            for b in [&raw[..], text.as_bytes()] {
                let s = Summary::of(b);
                proptest::prop_assert_eq!(s.plain(), is_plain_reference(b));
                proptest::prop_assert_eq!(s.ascii(), b.is_ascii());
                proptest::prop_assert_eq!(s.has_ef(), b.contains(&0xef));
                proptest::prop_assert_eq!(s.has_plus(), b.contains(&b'+'));
                proptest::prop_assert_eq!(s.has_percent(), b.contains(&b'%'));
                proptest::prop_assert_eq!(s.has_backslash(), b.contains(&b'\\'));
                proptest::prop_assert_eq!(s.has_ampersand(), b.contains(&b'&'));
                let overlong = b.iter().any(|b| matches!(b, 0xc0 | 0xc1 | 0xe0));
                proptest::prop_assert_eq!(s.has_overlong_lead(), overlong);
                // Folding may be wanted more often than the exact check says (`<!` for
                // `<!--`), never less; where the exact check says no, folding changes nothing.
                proptest::prop_assert!(s.may_fold() || !may_fold_reference(b));
                if let Ok(text) = std::str::from_utf8(b) {
                    if !may_fold_reference(b) && !text.chars().any(|c| c.is_whitespace() && !c.is_ascii()) {
                        proptest::prop_assert_eq!(fold(text), text);
                    }
                }
            }
        }

        /// Reading Chinese text by its bytes decides as checking each character does.
        #[test]
        fn settled_by_bytes_as_by_chars(
            text in "[a-zA-Z0-9 \t张三〇〈ぁア㐀䶵一龥鿿\u{3000}\u{3001}\u{33ff}\u{3fff}\u{a0}ǅΣİＡａÀ\u{2028}\u{fffd}\u{20000}]{0,24}",
        ) {
            let by_chars = text.chars().all(settled_char);
            proptest::prop_assert_eq!(is_settled(&text), by_chars);
        }

        /// The vectorised UTF-8 check accepts exactly what the standard one accepts, on text
        /// long enough for its vector path (64 bytes and more) and with broken bytes anywhere.
        #[test]
        fn utf8_as_the_standard_check(
            text in "[a-z0-9 \"{}:,张三〇ǅΣ\u{fffd}\u{20000}]{0,80}",
            broken in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            at in 0usize..400,
        ) {
            let mut bytes = text.repeat(3).into_bytes();
            let at = at.min(bytes.len());
            bytes.splice(at..at, broken);
            proptest::prop_assert_eq!(utf8(&bytes), std::str::from_utf8(&bytes).ok());
        }

        /// Decoding by runs gives what decoding byte by byte gives.
        #[test]
        fn url_decode_by_runs(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            text in "[a-fA-F0-9uU%张 +x]{0,40}",
        ) {
            proptest::prop_assert_eq!(url_decode(&raw), url_decode_bytewise(&raw));
            proptest::prop_assert_eq!(url_decode(text.as_bytes()), url_decode_bytewise(text.as_bytes()));
        }

        /// The fast paths give what the full decoding gives, for any bytes and for text made
        /// of what the fast paths must tell apart (escapes, comments, upper and title case,
        /// Unicode spaces, CJK).
        #[test]
        fn fast_paths_equal_full_decoding(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            text in "[a-zA-Z0-9 %/*<!&;#\\\\.'\"\t张三ǅǈΣİ\u{3000}\u{a0}\u{fffd}]{0,32}",
            url in proptest::prelude::any::<bool>(),
        ) {
            proptest::prop_assert_eq!(normalize(&raw, url), decode_rounds(&raw, url, false, Summary::of(&raw)));
            proptest::prop_assert_eq!(normalize(text.as_bytes(), url), decode_rounds(text.as_bytes(), url, false, Summary::of(text.as_bytes())));
            proptest::prop_assert_eq!(normalize_str(&text, url), decode_rounds(text.as_bytes(), url, false, Summary::of(text.as_bytes())));
        }

        /// The same for URL-encoded text (what forms and query strings send), every non-ASCII
        /// byte and the chosen ASCII ones encoded, in upper or lower case hex: what one round of
        /// decoding leaves plain goes by the short path of `decode_rounds`, the rest (double encoding, entities,
        /// escapes, controls, upper case, overlong leads, Unicode spaces) by the full decoding,
        /// alike.
        #[test]
        fn url_encoded_fast_path_equals_full_decoding(
            text in "[a-zA-Z0-9 %/*<!&;#\\\\.'\"\t\n张三ǅΣİÀࠀ\u{3000}\u{a0}\u{fffd}]{0,24}",
            plain in "[a-z0-9 张三申请人.,:/_()'=-]{0,24}",
            pick in proptest::collection::vec(proptest::prelude::any::<bool>(), 96),
            upper in proptest::prelude::any::<bool>(),
            url in proptest::prelude::any::<bool>(),
        ) {
            // `plain` mostly decodes to plain text (the short path), `text` mostly does not.
            for text in [&text, &plain] {
                let mut enc = String::new();
                for (i, b) in text.bytes().enumerate() {
                    if b >= 0x80 || pick[i % pick.len()] {
                        enc.push_str(&if upper { format!("%{b:02X}") } else { format!("%{b:02x}") });
                    } else {
                        enc.push(char::from(b));
                    }
                }
                proptest::prop_assert_eq!(normalize(enc.as_bytes(), url), decode_rounds(enc.as_bytes(), url, false, Summary::of(enc.as_bytes())));
            }
        }
    }

    #[test]
    fn url_encoded_chinese_takes_the_short_path_with_the_same_result() {
        // 申请人 张三; a value a second round changes (`%25` is `%`); an encoded tag.
        let cases: [&[u8]; 3] = [
            b"%E7%94%B3%E8%AF%B7%E4%BA%BA%20%E5%BC%A0%E4%B8%89",
            b"a%2541b",
            b"%3Cb%3E",
        ];
        for raw in cases {
            assert_eq!(
                normalize(raw, true),
                decode_rounds(raw, true, false, Summary::of(raw))
            );
        }
        let n = normalize(cases[0], true);
        assert_eq!(n.text, "申请人 张三");
        assert_eq!(
            (n.layers, n.folded, n.control, n.escapes),
            (1, None, false, false)
        );
        assert_eq!(normalize(cases[1], true).text, "aab");
        assert_eq!(normalize(cases[1], true).layers, 2);
    }

    #[test]
    fn cjk_has_no_case() {
        for c in ('\u{3000}'..='\u{9fff}').filter(|c| !c.is_ascii()) {
            assert!(c.to_lowercase().eq([c]), "{c:?}");
        }
        let mut control = false;
        let mixed = "张三 ÀB\u{1c5}ǆ Σ\0x".to_string();
        let expected: String = mixed
            .chars()
            .filter(|c| *c != '\0')
            .flat_map(char::to_lowercase)
            .collect();
        assert_eq!(unicode_lower(mixed, &mut control), expected);
        assert!(control);
    }

    #[test]
    fn malformed_escapes_stay() {
        assert_eq!(normalize(b"100%", true).text, "100%");
        assert_eq!(normalize(b"%zz%u12", true).text, "%zz%u12");
        assert_eq!(
            normalize("张三 &amp; 李四".as_bytes(), true).text,
            "张三 & 李四"
        );
    }
}
