//! From a request to the list of values the detectors read (targets), each normalised once.
//! Bodies are parsed by content type (form, JSON, multipart) under the caller's size cap; what
//! cannot be parsed is inspected raw and flagged, never skipped.

use crate::normalize::{normalize, normalize_str, Normalized};
use std::borrow::Cow;

/// Where a value came from. Rules say which places they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Place {
    Path = 1,
    ArgName = 2,
    Arg = 4,
    CookieName = 8,
    Cookie = 16,
    UserAgent = 32,
    Referer = 64,
    Header = 128,
    RawBody = 256,
    FileName = 512,
}

impl Place {
    pub fn label(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::ArgName => "arg-name",
            Place::Arg => "arg",
            Place::CookieName => "cookie-name",
            Place::Cookie => "cookie",
            Place::UserAgent => "header:user-agent",
            Place::Referer => "header:referer",
            Place::Header => "header",
            Place::RawBody => "body",
            Place::FileName => "file-name",
        }
    }
}

/// One inspected value (name and value borrowed from the request where they need no change).
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub place: Place,
    /// The argument, cookie or header name (empty for the path and a raw body).
    pub name: Cow<'a, str>,
    pub value: Normalized<'a>,
    /// The value's key in the memory of clean values (names, header values and paths, which repeat):
    /// remembered when inspection finds nothing in it.
    pub memo: Option<crate::memo::Key>,
    /// The value's place among all the request's values, those skipped as found clean before
    /// included (they count toward [`MAX_ARGS`] as any other).
    ordinal: usize,
}

/// The targets found so far, and how many values were skipped because the memory of clean values
/// holds them (see `memo`): those are not in the list, so that inspection need not step over
/// them (a branch per target that follows no pattern), but they are counted.
pub(crate) struct Out<'a> {
    list: Vec<Target<'a>>,
    clean: usize,
}

impl<'a> Out<'a> {
    fn new() -> Out<'a> {
        // Room for a typical request's targets at once (a `Target` is large: growing the list
        // step by step costs more than the few bytes this may leave unused).
        Out {
            list: Vec::with_capacity(TYPICAL_TARGETS),
            clean: 0,
        }
    }

    /// Values found so far, skipped ones included.
    fn len(&self) -> usize {
        self.list.len() + self.clean
    }

    /// Where the values stand, to go back to with [`Out::back_to`].
    fn mark(&self) -> (usize, usize) {
        (self.list.len(), self.clean)
    }

    fn back_to(&mut self, (listed, clean): (usize, usize)) {
        self.list.truncate(listed);
        self.clean = clean;
    }
}

/// The request as the inspector sees it.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as received: path and query, still percent-encoded.
    pub uri: &'a [u8],
    /// Header names (any case) and raw values, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Every header name is in lower case already (Pingora's and HTTP/2's are): they are not
    /// checked again, name by name.
    pub names_lower: bool,
    /// The body read so far (at most the inspection cap).
    pub body: Option<&'a [u8]>,
    /// The body was longer than the cap: only its head was inspected.
    pub body_truncated: bool,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// What parsing itself noticed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// A JSON body that is not JSON, or nested beyond [`MAX_JSON_DEPTH`].
    pub json_invalid: bool,
    /// A multipart body without a boundary, without a closing delimiter, or with a part
    /// lacking `Content-Disposition`.
    pub multipart_invalid: bool,
    /// A multipart part carries its own charset or `Content-Transfer-Encoding` (evasion).
    pub multipart_evasive: bool,
    /// A multipart field or file name holds `;`, `\\`, `=`, `"` or `&` (parser confusion).
    pub multipart_names: bool,
    /// More arguments than [`MAX_ARGS`]: the rest were not inspected.
    pub too_many_args: bool,
}

/// Deeper JSON is refused rather than walked.
pub const MAX_JSON_DEPTH: usize = 64;
/// At most this many arguments are inspected per request.
pub const MAX_ARGS: usize = 1024;

/// Which part of a request to split: the head (line and headers) and body can be inspected
/// separately when the body streams after the head was forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Head,
    Body,
    All,
}

/// Splits the request into targets.
pub fn targets<'a>(req: &Request<'a>, part: Part) -> (Vec<Target<'a>>, Findings) {
    targets_named(req, part, &lower_names(req, part))
}

/// As [`targets`], with the header names already lowered ([`lower_names`]), which the request
/// rules read as well.
pub(crate) fn targets_named<'a>(
    req: &Request<'a>,
    part: Part,
    names: &[Cow<'a, str>],
) -> (Vec<Target<'a>>, Findings) {
    let mut out = Out::new();
    let mut f = Findings::default();
    if part != Part::Body {
        head(&mut out, &mut f, req, names);
    }
    if part != Part::Head {
        body(&mut out, &mut f, req);
    }
    if out.len() > MAX_ARGS {
        out.list.retain(|t| t.ordinal < MAX_ARGS);
        f.too_many_args = true;
    }
    (out.list, f)
}

/// Targets of a typical request (path, a few arguments, headers and their names, cookies).
const TYPICAL_TARGETS: usize = 48;

/// The request's header names in lower case, in order (see [`lower`]); none for the body alone.
pub(crate) fn lower_names<'a>(req: &Request<'a>, part: Part) -> Vec<Cow<'a, str>> {
    if part == Part::Body {
        return Vec::new();
    }
    if req.names_lower {
        debug_assert!(req
            .headers
            .iter()
            .all(|(n, _)| matches!(lower(n), Cow::Borrowed(_))));
        return req
            .headers
            .iter()
            .map(|(name, _)| Cow::Borrowed(*name))
            .collect();
    }
    req.headers.iter().map(|(name, _)| lower(name)).collect()
}

/// `name` in lower case, borrowed when it is already (HTTP/2 and Pingora's HTTP/1 headers are).
pub(crate) fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

fn head<'a>(out: &mut Out<'a>, f: &mut Findings, req: &Request<'a>, names: &[Cow<'a, str>]) {
    // A target that is UTF-8 as a whole (nearly all: it is percent-encoded) is checked once;
    // its path and query are then text.
    if let Some(uri) = crate::normalize::utf8(req.uri) {
        let (path, query) = match uri.split_once_at_byte(b'?') {
            Some((path, query)) => (path, Some(query)),
            None => (uri, None),
        };
        push_str(out, Place::Path, Cow::Borrowed(""), path, true);
        if let Some(q) = query {
            form_text(out, f, q);
        }
    } else {
        let (path, query) = match memchr::memchr(b'?', req.uri) {
            Some(i) => (&req.uri[..i], Some(&req.uri[i + 1..])),
            None => (req.uri, None),
        };
        push(out, Place::Path, Cow::Borrowed(""), path, true);
        if let Some(q) = query {
            form_bytes(out, f, q);
        }
    }
    for (lname, &(_, value)) in names.iter().zip(&req.headers) {
        let lname = lname.clone();
        match kind(&lname) {
            Kind::Cookie => cookies(out, value),
            Kind::UserAgent => push(out, Place::UserAgent, lname, value, true),
            Kind::Referer => push(out, Place::Referer, lname, value, true),
            Kind::FileName => push(out, Place::FileName, lname, value, true),
            Kind::Skipped => {}
            Kind::Free => push(out, Place::Header, lname, value, true),
        }
    }
}

fn body<'a>(out: &mut Out<'a>, f: &mut Findings, req: &Request<'a>) {
    if let Some(body) = req.body.filter(|b| !b.is_empty()) {
        // The media type compared ignoring ASCII case, as sent (no copies).
        let ctype = req.header("content-type").unwrap_or_default();
        let starts = |p: &[u8]| crate::starts_with_ignore_case(ctype, p);
        let plus_json = || crate::contains_ignore_case(ctype, b"+json");
        if starts(b"application/x-www-form-urlencoded") {
            form(out, f, body);
        } else if starts(b"application/json") || plus_json() {
            json(out, f, body, req.body_truncated);
        } else if starts(b"multipart/") {
            multipart(out, f, &crate::normalize::lossy(ctype), body);
        } else {
            push(out, Place::RawBody, Cow::Borrowed(""), body, true);
        }
    }
}

/// How [`head`] reads a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cookie,
    UserAgent,
    Referer,
    /// An upload helper's file-name header ([`is_filename_header`]).
    FileName,
    /// Credentials and framing are checked elsewhere, and the negotiation headers every browser
    /// sends have grammars the protocol rules check; reading them as free text only misfires and
    /// costs time.
    Skipped,
    /// Any other header: its value is free text.
    Free,
}

/// The [`Kind`] of a header by its lower-case name. Told apart by length and first byte before
/// one comparison: a `match` on the names compared a header with each name in turn (about
/// eight calls to `memcmp` per header).
fn kind(lname: &str) -> Kind {
    let is = |known: &str| lname == known;
    let skip = match (lname.len(), lname.as_bytes().first()) {
        (6, Some(b'c')) if is("cookie") => return Kind::Cookie,
        (10, Some(b'u')) if is("user-agent") => return Kind::UserAgent,
        (7, Some(b'r')) if is("referer") => return Kind::Referer,
        (2, Some(b't')) => is("te"),
        (3, Some(b'd')) => is("dnt"),
        (4, Some(b'h')) => is("host"),
        (6, Some(b'a')) => is("accept"),
        (6, Some(b'p')) => is("pragma"),
        (8, Some(b'p')) => is("priority"),
        (10, Some(b'c')) => is("connection"),
        (10, Some(b'k')) => is("keep-alive"),
        (12, Some(b'c')) => is("content-type"),
        (13, Some(b'a')) => is("authorization"),
        (13, Some(b'c')) => is("cache-control"),
        (13, Some(b'i')) => is("if-none-match"),
        (14, Some(b'c')) => is("content-length"),
        (15, Some(b'a')) => is("accept-encoding") || is("accept-language"),
        (17, Some(b'i')) => is("if-modified-since"),
        (18, Some(b'x')) => is("x-menwei-signature"),
        (25, Some(b'u')) => is("upgrade-insecure-requests"),
        _ => false,
    };
    if skip {
        Kind::Skipped
    } else if is_filename_header(lname) {
        Kind::FileName
    } else if lname.starts_with("sec-fetch-") || lname.starts_with("sec-ch-") {
        Kind::Skipped
    } else {
        Kind::Free
    }
}

/// `X-Filename`, `X_Filename`, `X.Filename`, `X-File-Name`: upload helpers' file-name headers.
fn is_filename_header(lname: &str) -> bool {
    lname
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .eq(b"xfilename".iter().copied())
}

/// Adds a value: read straight from the request (its text may then borrow from it), or a copy
/// made while parsing (`+` turned into spaces).
fn push<'a>(
    out: &mut Out<'a>,
    place: Place,
    name: Cow<'a, str>,
    value: impl Into<Cow<'a, [u8]>>,
    url: bool,
) {
    match value.into() {
        Cow::Borrowed(value) => add(out, place, name, value, url, || normalize(value, url)),
        Cow::Owned(value) => push_copy(out, place, name, &value, url),
    }
}

/// As [`push`], for a value already known to be UTF-8.
fn push_str<'a>(out: &mut Out<'a>, place: Place, name: Cow<'a, str>, value: &'a str, url: bool) {
    add(out, place, name, value.as_bytes(), url, || {
        normalize_str(value, url)
    });
}

/// Adds a value that does not outlive parsing (a JSON string with escapes, a number, a
/// multipart header): its text is copied.
fn push_copy<'a>(out: &mut Out<'a>, place: Place, name: Cow<'a, str>, value: &[u8], url: bool) {
    add(out, place, name, value, url, || {
        normalize(value, url).into_owned()
    });
}

/// As [`push_copy`], for a value known to be UTF-8 (an escaped JSON string, an integer's
/// digits): not checked again.
fn push_copy_str<'a>(out: &mut Out<'a>, place: Place, name: Cow<'a, str>, value: &str, url: bool) {
    add(out, place, name, value.as_bytes(), url, || {
        normalize_str(value, url).into_owned()
    });
}

fn add<'a>(
    out: &mut Out<'a>,
    place: Place,
    name: Cow<'a, str>,
    raw: &[u8],
    url: bool,
    normalize: impl FnOnce() -> Normalized<'a>,
) {
    if raw.is_empty() {
        return;
    }
    if crate::memo::is_clean(place, url, raw) {
        out.clean += 1;
        return;
    }
    let memo = crate::memo::key(place, url, raw);
    let mut value = normalize();
    if place == Place::FileName {
        // `shell. php`: what a server does with the blanks varies; read the name without them.
        value.text.to_mut().retain(|c| !c.is_whitespace());
        if let Some(f) = value.folded.as_mut() {
            f.retain(|c| !c.is_whitespace());
        }
        value.summary = crate::normalize::Summary::of(value.text.as_bytes());
    }
    let ordinal = out.len();
    out.list.push(Target {
        place,
        name,
        value,
        memo,
        ordinal,
    });
}

/// `+` is a space in forms (copied only when there is one).
fn plus(s: &[u8]) -> Cow<'_, [u8]> {
    if s.contains(&b'+') {
        s.iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect::<Vec<u8>>()
            .into()
    } else {
        s.into()
    }
}

/// `a=1&b=2` (query strings and form bodies): `+` is a space, names and values URL-decoded by
/// the normaliser.
fn form<'a>(out: &mut Out<'a>, f: &mut Findings, raw: &'a [u8]) {
    // Checked as UTF-8 once as a whole (a vector at a time), its names and values are text
    // without a check of their own.
    match crate::normalize::utf8(raw) {
        Some(text) => form_text(out, f, text),
        None => form_bytes(out, f, raw),
    }
}

/// [`form`] for a form that is not UTF-8 throughout.
fn form_bytes<'a>(out: &mut Out<'a>, f: &mut Findings, raw: &'a [u8]) {
    for pair in split_at_byte(raw, b'&') {
        if out.len() > MAX_ARGS {
            f.too_many_args = true;
            return;
        }
        if pair.is_empty() {
            continue;
        }
        let (name, value) = name_value(pair);
        let shown = shown_name(name);
        push(out, Place::ArgName, shown.clone(), plus(name), true);
        push(out, Place::Arg, shown, plus(value), true);
    }
}

/// [`form`] for a form that is UTF-8 throughout. One walk over its bytes both splits it (at
/// `&`, and at each pair's first `=`) and takes each name's and value's
/// [`Summary`](crate::normalize::Summary), which says whether it holds `+` or `%` and what
/// normalising it takes. (Finding the separators with `memchr` and then summarising each piece
/// walked every piece twice, and each of the two walks ended at a branch the length decides,
/// mispredicted about once a piece. The standard library's search for a character in a `str`
/// cost more still.)
fn form_text<'a>(out: &mut Out<'a>, f: &mut Findings, text: &'a str) {
    use crate::normalize::{class, Summarizer, FORM_SEPARATOR};
    let bytes = text.as_bytes();
    // The pair being read: where it starts, where its first `=` is (with the name's summary),
    // and the summary of the piece after the last separator.
    let mut start = 0;
    let mut eq = None;
    let mut piece = Summarizer::default();
    for (i, &b) in bytes.iter().enumerate() {
        let c = class(b);
        if c & FORM_SEPARATOR == 0 {
            piece.add(c);
        } else if b == b'&' {
            if !form_pair(out, f, text, start..i, eq, piece) {
                return;
            }
            (start, eq, piece) = (i + 1, None, Summarizer::default());
        } else if eq.is_none() {
            eq = Some((i, piece.finish()));
            piece = Summarizer::default();
        } else {
            // A later `=` belongs to the value.
            piece.add(c);
        }
    }
    form_pair(out, f, text, start..bytes.len(), eq, piece);
}

/// Adds the pair of `text` at `at`, whose first `=` and name's summary are `eq` and whose last
/// piece's summary is in `piece`; false once there are too many arguments (flagged).
fn form_pair<'a>(
    out: &mut Out<'a>,
    f: &mut Findings,
    text: &'a str,
    at: std::ops::Range<usize>,
    eq: Option<(usize, crate::normalize::Summary)>,
    piece: crate::normalize::Summarizer,
) -> bool {
    use crate::normalize::Summary;
    if out.len() > MAX_ARGS {
        f.too_many_args = true;
        return false;
    }
    if at.is_empty() {
        return true;
    }
    let ((name, of_name), (value, of_value)) = match eq {
        Some((e, of_name)) => (
            (text.get(at.start..e).unwrap_or_default(), of_name),
            (text.get(e + 1..at.end).unwrap_or_default(), piece.finish()),
        ),
        None => (
            (text.get(at).unwrap_or_default(), piece.finish()),
            ("", Summary::default()),
        ),
    };
    let shown = if of_name.has_plus() || of_name.has_percent() {
        decoded_name(name.as_bytes())
    } else {
        Cow::Borrowed(name)
    };
    form_value(out, Place::ArgName, shown.clone(), name, of_name);
    form_value(out, Place::Arg, shown, value, of_value);
    true
}

/// Adds a form name or value, whose summary is `summary`.
fn form_value<'a>(
    out: &mut Out<'a>,
    place: Place,
    name: Cow<'a, str>,
    value: &'a str,
    summary: crate::normalize::Summary,
) {
    if summary.has_plus() {
        push(out, place, name, plus(value.as_bytes()), true);
    } else {
        add(out, place, name, value.as_bytes(), true, || {
            crate::normalize::normalize_summarized(value, summary, true)
        });
    }
}

/// A form field's name as shown in verdicts and matched by exclusions: `+` a space,
/// URL-decoded (borrowed when it is plain UTF-8 with neither).
fn shown_name(name: &[u8]) -> Cow<'_, str> {
    if !name.iter().any(|b| matches!(b, b'+' | b'%')) {
        if let Some(name) = crate::normalize::utf8(name) {
            return Cow::Borrowed(name);
        }
    }
    decoded_name(name)
}

/// [`shown_name`] of a name that holds `+` or `%` (or is not UTF-8): decoded into a copy.
fn decoded_name(name: &[u8]) -> Cow<'static, str> {
    Cow::Owned(String::from_utf8_lossy(&crate::normalize::url_decode(&plus(name))).into_owned())
}

/// `name=value` split at its first `=` (a pair without one is a name).
fn name_value(pair: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', pair) {
        Some(i) => (&pair[..i], &pair[i + 1..]),
        None => (pair, &b""[..]),
    }
}

/// The pieces of `text` between `sep` bytes (ASCII), as [`split_at_byte`] finds them: every
/// piece starts and ends on a character boundary.
fn split_text(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(sep, text.as_bytes())
        .chain(std::iter::once(text.len()))
        .map(move |end| {
            let piece = text.get(start..end).unwrap_or_default();
            start = end + 1;
            piece
        })
}

/// `str::split_once` at an ASCII byte, found with `memchr` (the standard library's search for
/// a character costs several times more).
trait SplitOnceAtByte {
    fn split_once_at_byte(&self, sep: u8) -> Option<(&str, &str)>;
}

impl SplitOnceAtByte for str {
    fn split_once_at_byte(&self, sep: u8) -> Option<(&str, &str)> {
        let i = memchr::memchr(sep, self.as_bytes())?;
        Some((self.get(..i)?, self.get(i + 1..)?))
    }
}

/// The pieces of `raw` between `sep` bytes (as `raw.split(|b| *b == sep)`), found with `memchr`.
fn split_at_byte(raw: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(raw);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(sep, r) {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn cookies<'a>(out: &mut Out<'a>, raw: &'a [u8]) {
    // A header that is UTF-8 as a whole is checked once, and its names and values are text
    // (each name was checked twice, for its shown form and its value, and each value once).
    let Some(text) = crate::normalize::utf8(raw) else {
        return cookies_bytes(out, raw);
    };
    for pair in split_text(text, b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once_at_byte(b'=').unwrap_or((pair, ""));
        push_str(out, Place::CookieName, Cow::Borrowed(name), name, true);
        push_str(out, Place::Cookie, Cow::Borrowed(name), value, true);
    }
}

/// [`cookies`] for a header that is not UTF-8 throughout.
fn cookies_bytes<'a>(out: &mut Out<'a>, raw: &'a [u8]) {
    for pair in split_at_byte(raw, b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = name_value(pair);
        let shown = crate::normalize::lossy(name);
        push(out, Place::CookieName, shown.clone(), name, true);
        push(out, Place::Cookie, shown, value, true);
    }
}

fn json<'a>(out: &mut Out<'a>, f: &mut Findings, raw: &'a [u8], truncated: bool) {
    // Walked as it is parsed: no tree of the document is built.
    let before = out.mark();
    // A body that is UTF-8 as a whole is read as text: serde_json then skips checking each
    // string on its own (a third of the cost of a Chinese string). The document parses exactly
    // as from bytes (a document that parses from bytes is UTF-8: every byte outside its strings
    // is ASCII, and each string is checked).
    let walked = match crate::normalize::utf8(raw) {
        Some(text) => walk(out, f, &mut serde_json::Deserializer::from_str(text)),
        None => walk(out, f, &mut serde_json::Deserializer::from_slice(raw)),
    };
    if walked.is_err() {
        // Not JSON, or nested deeper than MAX_JSON_DEPTH: inspected raw instead, and flagged
        // (a truncated body cannot parse; that alone is no anomaly).
        out.back_to(before);
        f.json_invalid = !truncated;
        push(out, Place::RawBody, Cow::Borrowed(""), raw, true);
    }
}

/// Walks one JSON document read by `de`, and checks that nothing but blanks follows it.
fn walk<'a, R: serde_json::de::Read<'a>>(
    out: &mut Out<'a>,
    f: &mut Findings,
    de: &mut serde_json::Deserializer<R>,
) -> Result<(), serde_json::Error> {
    serde::de::DeserializeSeed::deserialize(
        Walk {
            out,
            f,
            name: &Cow::Borrowed(""),
            depth: 0,
        },
        &mut *de,
    )?;
    de.end()
}

/// One JSON value: strings and numbers are arguments named by their member's name (an array's
/// elements share it), member names are argument names; containers deeper than
/// [`MAX_JSON_DEPTH`] make the document invalid. Past [`MAX_ARGS`] values are read, not kept.
/// (Unlike a tree, every member of a duplicated name is inspected, not only the last.)
/// Strings and names without escapes are borrowed from the body, not copied.
struct Walk<'w, 'de> {
    out: &'w mut Out<'de>,
    f: &'w mut Findings,
    name: &'w Cow<'de, str>,
    /// Containers around this value.
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(mut self, v: &'de str) -> Result<(), E> {
        if self.keep() {
            push_str(self.out, Place::Arg, self.name.clone(), v, true);
        }
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<(), E> {
        if self.keep() {
            push_copy_str(self.out, Place::Arg, self.name.clone(), v, true);
        }
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.integer(itoa::Buffer::new().format(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.integer(itoa::Buffer::new().format(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => self.number(n),
            None => Ok(()),
        }
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.enter::<A::Error>()?;
        while seq
            .next_element_seed(Walk {
                out: &mut *self.out,
                f: &mut *self.f,
                name: self.name,
                depth,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.enter::<A::Error>()?;
        while let Some(key) = map.next_key_seed(Key)? {
            if self.out.len() <= MAX_ARGS {
                match &key {
                    Cow::Borrowed(k) => push_str(self.out, Place::ArgName, key.clone(), k, true),
                    Cow::Owned(k) => push_copy_str(self.out, Place::ArgName, key.clone(), k, true),
                }
            }
            map.next_value_seed(Walk {
                out: &mut *self.out,
                f: &mut *self.f,
                name: &key,
                depth,
            })?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the body unless it holds escapes (serde's own `Cow<str>`
/// always copies).
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

impl Walk<'_, '_> {
    /// An integer's text as serde_json writes it: serde_json formats integers with `itoa`, and
    /// so does this, without going through `std::fmt` (which costs more than the digits for the
    /// commonest numbers of a JSON body).
    fn integer<E>(mut self, text: &str) -> Result<(), E> {
        if self.keep() {
            push_copy_str(self.out, Place::Arg, self.name.clone(), text, false);
        }
        Ok(())
    }

    fn number<E>(mut self, n: serde_json::Number) -> Result<(), E> {
        if self.keep() {
            // Its text is written on the stack (a number is at most a few dozen characters).
            let mut text = NumberText::default();
            let text: Cow<'_, [u8]> = match std::fmt::write(&mut text, format_args!("{n}")) {
                Ok(()) => Cow::Borrowed(text.as_bytes()),
                Err(_) => Cow::Owned(n.to_string().into_bytes()),
            };
            push_copy(self.out, Place::Arg, self.name.clone(), &text, false);
        }
        Ok(())
    }

    /// Whether there is room for one more value; past [`MAX_ARGS`] the rest is read (its
    /// nesting still checked) but not kept, and flagged.
    fn keep(&mut self) -> bool {
        let room = self.out.len() <= MAX_ARGS;
        if !room {
            self.f.too_many_args = true;
        }
        room
    }

    /// The depth inside a container that starts here; too deep is an error.
    fn enter<E: serde::de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_JSON_DEPTH {
            return Err(E::custom("nested too deep"));
        }
        Ok(depth)
    }
}

/// A JSON number's text as serde_json writes it, in a buffer on the stack (`Err` if it does not
/// fit: the caller then writes it into a `String`).
#[derive(Default)]
struct NumberText {
    len: usize,
    bytes: [u8; 32],
}

impl NumberText {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `multipart/form-data`: each part's name, file name and (for non-file parts) value.
fn multipart<'a>(out: &mut Out<'a>, f: &mut Findings, ctype: &str, body: &'a [u8]) {
    let boundary = ctype
        .split(';')
        .filter_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then_some(v.trim())
        })
        .next()
        .map(|b| b.trim_matches('"').to_string());
    let Some(boundary) = boundary.filter(|b| !b.is_empty() && b.len() <= 200) else {
        f.multipart_invalid = true;
        push(out, Place::RawBody, Cow::Borrowed(""), body, false);
        return;
    };
    let delim = format!("--{boundary}");
    let parts = split_on(body, delim.as_bytes());
    if parts.len() < 2 || !parts.last().is_some_and(|p| p.starts_with(b"--")) {
        f.multipart_invalid = true;
    }
    for part in parts.iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        let (head, content) = match BLANK_LINE.find(part) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match BARE_BLANK_LINE.find(part) {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => {
                    f.multipart_invalid = true;
                    (part, &b""[..])
                }
            },
        };
        let content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        let head = crate::normalize::lossy(head);
        let mut name = None;
        let mut filename = None;
        let mut disposition = false;
        for line in head.lines() {
            if line.chars().any(|c| (c as u32) < 0x20 && c != '\t') {
                f.multipart_invalid = true;
            }
            push_copy(
                out,
                Place::Header,
                Cow::Borrowed("multipart-header"),
                line.as_bytes(),
                false,
            );
            let starts = |p: &[u8]| crate::starts_with_ignore_case(line.as_bytes(), p);
            if starts(b"content-disposition:") {
                disposition = true;
                name = param(line, "name");
                filename = param(line, "filename");
                let illegal = |v: &Option<String>| {
                    v.as_deref()
                        .is_some_and(|v| v.contains([';', '\\', '=', '"', '&']))
                };
                if illegal(&name) || illegal(&filename) {
                    f.multipart_names = true;
                }
            } else if starts(b"content-transfer-encoding:")
                || (starts(b"content-type:")
                    && crate::contains_ignore_case(line.as_bytes(), b"charset="))
            {
                f.multipart_evasive = true;
            }
        }
        if !disposition {
            f.multipart_invalid = true;
        }
        let name: Cow<'a, str> = Cow::Owned(name.unwrap_or_default());
        push_copy(out, Place::ArgName, name.clone(), name.as_bytes(), false);
        match filename {
            Some(file) => push_copy(out, Place::FileName, name, file.as_bytes(), false),
            None => push(out, Place::Arg, name, content, false),
        }
    }
}

/// `name="value"` (or unquoted) from a `Content-Disposition` line; `filename*` is not
/// `filename`. Quoted values may hold `;`.
fn param(line: &str, key: &str) -> Option<String> {
    let mut rest = line.split_once_at_byte(b';')?.1;
    loop {
        let trimmed = rest.trim_start();
        let (k, after) = trimmed.split_once_at_byte(b'=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once_at_byte(b'"') {
                Some((value, after)) => {
                    (value, after.split_once_at_byte(b';').map_or("", |(_, n)| n))
                }
                None => (q, ""),
            }
        } else {
            match after.split_once_at_byte(b';') {
                Some((v, n)) => (v.trim_end(), n),
                None => (after.trim_end(), ""),
            }
        };
        if k.trim().eq_ignore_ascii_case(key) {
            return Some(value.to_string());
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

/// The end of a part's head, found with `memchr`'s vectorised substring search (comparing the
/// needle at every position cost a `memcmp` call per byte of a multipart body, about a thousand
/// per upload). Built once: `memmem::find` builds its searcher on every call, which cost more
/// than the search in a short part.
static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
/// [`BLANK_LINE`] without carriage returns.
static BARE_BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));

fn split_on<'a>(hay: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    let finder = memchr::memmem::Finder::new(delim);
    let mut out = Vec::new();
    let mut rest = hay;
    while let Some(i) = finder.find(rest) {
        out.push(&rest[..i]);
        rest = &rest[i + delim.len()..];
        if out.len() > MAX_ARGS {
            break;
        }
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_the_slice_split() {
        for raw in [
            &b""[..],
            b"&",
            b"a",
            b"a&b",
            b"&a&&b&",
            b"a=1&b=%E5%BC%A0&c",
            b";;x; y=1;",
        ] {
            for sep in [b'&', b';'] {
                let ours: Vec<&[u8]> = split_at_byte(raw, sep).collect();
                let std: Vec<&[u8]> = raw.split(|b| *b == sep).collect();
                assert_eq!(ours, std, "{raw:?}");
            }
        }
        assert_eq!(name_value(b"a=b=c"), (&b"a"[..], &b"b=c"[..]));
        assert_eq!(name_value(b"a"), (&b"a"[..], &b""[..]));
    }

    fn req<'a>(uri: &'a str, ctype: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            uri: uri.as_bytes(),
            headers: vec![
                ("Content-Type", ctype.as_bytes()),
                ("Cookie", b"sid=abc; theme=dark"),
            ],
            names_lower: false,
            body: Some(body.as_bytes()),
            body_truncated: false,
        }
    }

    fn targets_all<'a>(r: &Request<'a>) -> (Vec<Target<'a>>, Findings) {
        targets(r, Part::All)
    }

    fn values(t: &[Target], place: Place) -> Vec<String> {
        t.iter()
            .filter(|t| t.place == place)
            .map(|t| format!("{}={}", t.name, t.value.text))
            .collect()
    }

    /// What the text and byte readings are compared on, target by target.
    fn seen(t: &[Target]) -> Vec<(Place, String, Normalized<'static>, usize)> {
        t.iter()
            .map(|t| {
                let value = t.value.clone().into_owned();
                (t.place, t.name.to_string(), value, t.ordinal)
            })
            .collect()
    }

    proptest::proptest! {
        /// A form read as text gives the targets that reading its bytes gives.
        #[test]
        fn forms_as_text_as_bytes(form in "([a-zA-Z+%0-9=&张 '<-]|%E5%BC%A0|%2B|%25|%26){0,24}") {
            let (mut text, mut bytes) = (Out::new(), Out::new());
            let (mut f1, mut f2) = (Findings::default(), Findings::default());
            form_text(&mut text, &mut f1, &form);
            form_bytes(&mut bytes, &mut f2, form.as_bytes());
            proptest::prop_assert_eq!(seen(&text.list), seen(&bytes.list));
            proptest::prop_assert_eq!(f1, f2);
        }
    }

    proptest::proptest! {
        /// A Cookie header read as text gives the targets that reading its bytes gives.
        #[test]
        fn cookies_as_text_as_bytes(header in "([a-zA-Z0-9=;张 \t%+]|; |%E5%BC%A0){0,24}") {
            let (mut text, mut bytes) = (Out::new(), Out::new());
            cookies(&mut text, header.as_bytes());
            cookies_bytes(&mut bytes, header.as_bytes());
            proptest::prop_assert_eq!(seen(&text.list), seen(&bytes.list));
        }
    }

    #[test]
    fn values_found_clean_before_still_count_toward_the_limit() {
        // Each name is remembered clean and skipped, but counts: of 1,200 values, the first
        // 1,024 are kept, as when skipped values stood in the list; the 512 values among them
        // are inspected.
        crate::memo::remember_clean(crate::memo::key(Place::ArgName, true, b"a").unwrap());
        let body = "a=1&".repeat(600);
        let r = req("/", "application/x-www-form-urlencoded", &body);
        let (t, f) = targets(&r, Part::Body);
        assert!(f.too_many_args);
        assert_eq!(t.len(), 512);
        assert!(t
            .iter()
            .all(|t| t.place == Place::Arg && t.ordinal < MAX_ARGS));
        // A JSON body that turns out invalid gives back the values it had added, skipped ones
        // included, and is read raw.
        let mut out = Out::new();
        let mut f = Findings::default();
        form(&mut out, &mut f, b"a=1");
        json(&mut out, &mut f, br#"{"a": "x", "a": 1"#, false);
        assert_eq!((out.list.len(), out.clean), (2, 1));
        assert_eq!(out.list[1].place, Place::RawBody);
        assert_eq!(out.list[1].ordinal, 2);
    }

    #[test]
    fn query_form_cookies_json() {
        let (t, f) = targets_all(&req(
            "/a%2Fb?q=%E5%BC%A0%E4%B8%89+x&n",
            "application/x-www-form-urlencoded",
            "k=v%3D1",
        ));
        assert_eq!(values(&t, Place::Path), vec!["=/a/b"]);
        assert_eq!(values(&t, Place::Arg), vec!["q=张三 x", "k=v=1"]);
        assert_eq!(values(&t, Place::Cookie), vec!["sid=abc", "theme=dark"]);
        assert_eq!(f, Findings::default());
        let (t, f) = targets_all(&req(
            "/",
            "application/json",
            r#"{"a":{"b":["X",2]},"c":null}"#,
        ));
        assert_eq!(values(&t, Place::Arg), vec!["b=x", "b=2"]);
        assert_eq!(values(&t, Place::ArgName), vec!["a=a", "b=b", "c=c"]);
        assert!(!f.json_invalid);
    }

    #[test]
    fn escaped_and_plain_json_read_alike() {
        // Borrowed (no escapes) and decoded (escapes) strings and member names, numbers, and a
        // name shared by an array's elements: the same targets either way.
        let plain = r#"{"name":"abc 张","k":["x",1,-2,2.5],"d":{"x y":"1' or '1"}}"#;
        let escaped = r#"{"na\u006de":"a\u0062c \u5f20","k":["\u0078",1,-2,2.5],"d":{"x\u0020y":"1\u0027 or '1"}}"#;
        let (a, _) = targets_all(&req("/", "application/json", plain));
        let (b, _) = targets_all(&req("/", "application/json", escaped));
        for place in [Place::Arg, Place::ArgName] {
            assert_eq!(values(&a, place), values(&b, place), "{place:?}");
        }
        assert_eq!(
            values(&a, Place::Arg),
            ["name=abc 张", "k=x", "k=1", "k=-2", "k=2.5", "x y=1' or '1"]
        );
    }

    #[test]
    fn header_kinds_as_the_list_says() {
        // The list as it was written before `kind` told names apart by length and first byte.
        fn reference(n: &str) -> Kind {
            match n {
                "cookie" => Kind::Cookie,
                "user-agent" => Kind::UserAgent,
                "referer" => Kind::Referer,
                n if is_filename_header(n) => Kind::FileName,
                "authorization"
                | "host"
                | "content-length"
                | "x-menwei-signature"
                | "accept"
                | "accept-encoding"
                | "accept-language"
                | "connection"
                | "cache-control"
                | "pragma"
                | "upgrade-insecure-requests"
                | "if-modified-since"
                | "if-none-match"
                | "dnt"
                | "te"
                | "priority"
                | "content-type"
                | "keep-alive" => Kind::Skipped,
                n if n.starts_with("sec-fetch-") || n.starts_with("sec-ch-") => Kind::Skipped,
                _ => Kind::Free,
            }
        }
        let names = [
            "cookie",
            "user-agent",
            "referer",
            "authorization",
            "host",
            "content-length",
            "x-menwei-signature",
            "accept",
            "accept-encoding",
            "accept-language",
            "connection",
            "cache-control",
            "pragma",
            "upgrade-insecure-requests",
            "if-modified-since",
            "if-none-match",
            "dnt",
            "te",
            "priority",
            "content-type",
            "keep-alive",
            "sec-fetch-mode",
            "sec-ch-ua",
            "x-filename",
            "x_file.name",
            "x-forwarded-for",
            "cookies",
            "cookie2",
            "hosts",
            "t",
            "",
            "accept-charset",
            "content-range",
            "range",
            "x-requested-with",
            "origin",
            "tE",
            "dnt ",
            "referrer",
            "user_agent",
            "priority-x",
        ];
        for n in names {
            assert_eq!(kind(n), reference(n), "{n:?}");
        }
    }

    #[test]
    fn json_numbers_read_as_serde_json_writes_them() {
        let body = r#"{"n":[0,-0,7,-12,1.50,2e3,-1.7976931348623157e308,123456789012345678901234567890,18446744073709551615,-9223372036854775808,2147483648,-1,10,100]}"#;
        let r = req("/", "application/json", body);
        let (t, f) = targets_all(&r);
        assert!(!f.json_invalid);
        let want: Vec<String> = serde_json::from_str::<serde_json::Value>(body).unwrap()["n"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| format!("n={n}"))
            .collect();
        assert_eq!(values(&t, Place::Arg), want);
    }

    #[test]
    fn deep_or_broken_json_is_flagged_and_read_raw() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (t, f) = targets_all(&req("/", "application/json", &deep));
        assert!(f.json_invalid);
        assert_eq!(values(&t, Place::RawBody).len(), 1);
        let (_, f) = targets_all(&req("/", "application/json", "{\"a\":"));
        assert!(f.json_invalid);
    }

    #[test]
    fn multipart_parts_and_anomalies() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n申请\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.php\"\r\nContent-Type: image/png\r\n\r\nPNG...\r\n--XyZ--\r\n";
        let (t, f) = targets_all(&req("/", "multipart/form-data; boundary=XyZ", body));
        assert_eq!(values(&t, Place::Arg), vec!["title=申请"]);
        assert_eq!(values(&t, Place::FileName), vec!["file=a.php"]);
        assert_eq!(f, Findings::default());
        let (_, f) = targets_all(&req(
            "/",
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nX: y\r\n\r\nv\r\n",
        ));
        assert!(f.multipart_invalid);
        let (_, f) = targets_all(&req("/", "multipart/form-data", "whatever"));
        assert!(f.multipart_invalid);
    }
}
