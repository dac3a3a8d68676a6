//! Masking JSON by profile, streaming: bytes go in as they arrive from the backend, in chunks cut
//! anywhere (inside an escape, inside a multi-byte character), and masked bytes come out as soon
//! as each value is complete. Only the value being read is held (a string, a number), never the
//! document. Rules name a field (`idCard`, `*Phone`, `addr*`) or a path (`$.data[*].idCard`,
//! `$..phone`); the first that matches a value masks it and everything inside it. When the
//! profile enables them, the detectors run on every string no rule names (and, with `numbers`,
//! on numbers). Values that are not masked are copied byte for byte, escapes included; a masked
//! value is written as a JSON string. Valid JSON in, valid JSON out. Input that stops being JSON
//! is masked as text from the last complete value on (`finish` says so): nothing unmasked leaves.

use crate::detect::{detect, may_hold_personal, scan, Kind};
use crate::style::{mask, mask_ascii_into, mask_into, Style};

/// How a rule compares names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Case {
    /// `idcard`, `IdCard` and `IDCARD` are the same name (the default).
    #[default]
    Insensitive,
    Sensitive,
}

#[inline]
fn name_eq(a: &[u8], b: &[u8], case: Case) -> bool {
    match case {
        Case::Insensitive => a.eq_ignore_ascii_case(b),
        Case::Sensitive => a == b,
    }
}

/// A field-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    /// `idCard`, `*Phone`, `addr*`.
    pub fn parse(p: &str) -> Result<Pattern, String> {
        let stars = p.matches('*').count();
        match (stars, p.strip_prefix('*'), p.strip_suffix('*')) {
            (0, _, _) if !p.is_empty() => Ok(Pattern::Exact(p.to_string())),
            (1, Some(rest), _) if !rest.is_empty() => Ok(Pattern::Suffix(rest.to_string())),
            (1, _, Some(rest)) if !rest.is_empty() => Ok(Pattern::Prefix(rest.to_string())),
            _ => Err(format!(
                "`{p}`: a field pattern is a name with at most one `*`, at its start or end"
            )),
        }
    }

    #[inline]
    fn matches(&self, key: &[u8], case: Case) -> bool {
        let (p, part) = match self {
            Pattern::Exact(p) => return name_eq(key, p.as_bytes(), case),
            Pattern::Prefix(p) => (p, key.get(..p.len())),
            Pattern::Suffix(p) => (p, key.len().checked_sub(p.len()).and_then(|i| key.get(i..))),
        };
        part.is_some_and(|part| name_eq(part, p.as_bytes(), case))
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `.name` or `['name']`.
    Child(String),
    /// `.*` or `[*]`: any member or element.
    Any,
    /// `[3]`.
    Index(usize),
    /// `..name`: the member `name` at any depth below.
    Descendant(String),
}

/// A JSON path: `$` then `.name`, `['name']`, `.*`, `[*]`, `[N]` and `..name` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '$'
}

impl JsonPath {
    /// Compiles a path; `Err` says what is wrong and where.
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        let Some(mut rest) = src.strip_prefix('$') else {
            return Err(format!(
                "`{src}`: a JSON path starts with `$` (the document)"
            ));
        };
        let at = |rest: &str| src.len() - rest.len() + 1;
        let mut steps = Vec::new();
        let name = |s: &str| -> (String, usize) {
            let end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
            (s[..end].to_string(), end)
        };
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let (n, len) = name(r);
                if n.is_empty() {
                    return Err(format!(
                        "`{src}`: `..` must be followed by a field name (character {})",
                        at(r)
                    ));
                }
                steps.push(Step::Descendant(n));
                rest = &r[len..];
            } else if let Some(r) = rest.strip_prefix(".*") {
                steps.push(Step::Any);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('.') {
                let (n, len) = name(r);
                if n.is_empty() {
                    return Err(format!(
                        "`{src}`: `.` must be followed by a field name or `*` (character {})",
                        at(r)
                    ));
                }
                steps.push(Step::Child(n));
                rest = &r[len..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(close) = r.find(']') else {
                    return Err(format!(
                        "`{src}`: `[` at character {} is never closed",
                        at(rest)
                    ));
                };
                let inner = r[..close].trim();
                let quoted = |q: char| inner.strip_prefix(q).and_then(|s| s.strip_suffix(q));
                if inner == "*" {
                    steps.push(Step::Any);
                } else if let Some(n) = quoted('\'').or_else(|| quoted('"')) {
                    if n.is_empty() {
                        return Err(format!("`{src}`: an empty field name in brackets"));
                    }
                    steps.push(Step::Child(n.to_string()));
                } else if let Ok(i) = inner.parse::<usize>() {
                    steps.push(Step::Index(i));
                } else {
                    return Err(format!(
                        "`{src}`: `[{inner}]` is not `[*]`, an index like `[0]` or a quoted name like `['id card']`"
                    ));
                }
                rest = &r[close + 1..];
            } else {
                return Err(format!(
                    "`{src}`: unexpected `{}` at character {}; steps are `.name`, `..name`, `.*`, `[*]`, `[N]`, `['name']`",
                    rest.chars().next().unwrap_or(' '),
                    at(rest)
                ));
            }
        }
        if steps.is_empty() {
            return Err(format!(
                "`{src}`: the path names no field (`$` alone is the whole document)"
            ));
        }
        Ok(JsonPath { steps })
    }

    fn matches(&self, path: &[Seg], case: Case) -> bool {
        fn go(steps: &[Step], path: &[Seg], case: Case) -> bool {
            let Some((step, more)) = steps.split_first() else {
                return path.is_empty();
            };
            match step {
                Step::Descendant(n) => (0..path.len()).any(|skip| {
                    matches!(&path[skip], Seg::Key(k) if name_eq(k, n.as_bytes(), case))
                        && go(more, &path[skip + 1..], case)
                }),
                _ => {
                    let Some((seg, rest)) = path.split_first() else {
                        return false;
                    };
                    let ok = match (step, seg) {
                        (Step::Any, _) => true,
                        (Step::Child(n), Seg::Key(k)) => name_eq(k, n.as_bytes(), case),
                        (Step::Index(i), Seg::Index(j)) => i == j,
                        _ => false,
                    };
                    ok && go(more, rest, case)
                }
            }
        }
        go(&self.steps, path, case)
    }
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The value of a member with this name, anywhere.
    Field(Pattern),
    /// The value at this path.
    Path(JsonPath),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    pub matcher: Matcher,
    pub case: Case,
    pub style: Style,
}

impl FieldRule {
    /// A field rule, case-insensitive (the common case).
    pub fn field(pattern: Pattern, style: Style) -> FieldRule {
        FieldRule {
            matcher: Matcher::Field(pattern),
            case: Case::Insensitive,
            style,
        }
    }
}

/// A compiled masking profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub rules: Vec<FieldRule>,
    /// Run the detectors on strings no rule names.
    pub detect: bool,
    /// Also run them on numbers no rule names (an ID card or phone sent as a JSON number); a
    /// number found to be one is written as a masked string.
    pub numbers: bool,
}

/// The default style of what a detector found.
pub fn style_for(kind: Kind) -> Style {
    match kind {
        Kind::IdCard => Style::Keep { head: 6, tail: 4 },
        Kind::Mobile => Style::Mobile,
        Kind::BankCard => Style::CardLast4,
        Kind::Email => Style::Email,
        Kind::Uscc => Style::Keep { head: 2, tail: 4 },
        Kind::Passport => Style::Keep { head: 1, tail: 2 },
        Kind::FixedLine => Style::Keep { head: 4, tail: 2 },
    }
}

/// What masking did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Values masked by rules.
    pub by_rule: usize,
    /// Values masked by detectors.
    pub by_detector: usize,
}

impl Profile {
    fn has_paths(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.matcher, Matcher::Path(_)))
    }

    /// The first rule for the value at `path` (whose last member name is `key`).
    fn rule_for(&self, key: Option<&[u8]>, path: &[Seg]) -> Option<usize> {
        self.rules.iter().position(|r| match &r.matcher {
            Matcher::Field(p) => key.is_some_and(|k| p.matches(k, r.case)),
            Matcher::Path(jp) => jp.matches(path, r.case),
        })
    }

    /// Masks a whole JSON document. `Err` when it is not JSON (the caller decides what to send).
    pub fn mask_json(&self, body: &[u8]) -> Result<(Vec<u8>, Stats), String> {
        let mut m = JsonMasker::new(self);
        let mut out = Vec::with_capacity(body.len());
        m.push(self, body, &mut out);
        m.finish(self, &mut out)?;
        Ok((out, m.stats))
    }
}

/// One step of the path to the value being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(Vec<u8>),
    Index(usize),
}

/// What the next significant byte may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (document start, after `:` or after `,` in an array).
    Value,
    /// A value or `]` (after `[`).
    ValueOrClose,
    /// A key or `}` (after `{`).
    KeyOrClose,
    /// A key (after `,` in an object).
    Key,
    Colon,
    /// `,` or the container's close.
    CommaOrClose,
    /// After a document: whitespace, or another document (JSON lines).
    End,
}

/// An open object or array.
#[derive(Debug)]
struct Frame {
    object: bool,
    /// The rule that masks this container and everything inside it.
    rule: Option<usize>,
    /// Next element index (arrays).
    index: usize,
}

/// The token being read.
#[derive(Debug)]
enum Token {
    None,
    /// A string (bytes between the quotes, escapes as sent).
    Str {
        key: bool,
        /// The previous byte was a backslash.
        escaped: bool,
        /// The string holds an escape (it must be decoded to be read).
        any_escape: bool,
    },
    Number,
    /// `true`, `false`, `null`.
    Literal,
}

/// Deepest nesting accepted (serde_json's own limit is 128).
const MAX_DEPTH: usize = 512;

/// A streaming JSON masker for one body.
#[derive(Debug)]
pub struct JsonMasker {
    expect: Expect,
    frames: Vec<Frame>,
    /// Path to the value being read (kept only when the profile has path rules).
    path: Vec<Seg>,
    track_path: bool,
    /// The last key read, for the value that follows it (`has_key`: not yet taken).
    key: Vec<u8>,
    has_key: bool,
    /// The rule of the scalar value being read.
    value_rule: Option<usize>,
    token: Token,
    buf: Vec<u8>,
    /// Set once the input stopped being JSON: the rest is collected and masked as text.
    broken: Option<String>,
    tail: Vec<u8>,
    /// The masked form of the value being written (reused).
    scratch: String,
    /// The field rule of member names seen before (profiles without path rules): records repeat
    /// their names, so each distinct name is compared with the rules once.
    rules_seen: RuleCache,
    pub stats: Stats,
}

/// Member name -> its first matching field rule, direct-mapped and bounded (the empty name and
/// names longer than `RuleCache::MAX_NAME` are not kept; a slot taken by another name is
/// replaced).
#[derive(Debug)]
struct RuleCache {
    slots: Vec<(Vec<u8>, Option<usize>)>,
}

impl RuleCache {
    const SLOTS: usize = 64;
    const MAX_NAME: usize = 64;

    fn new() -> RuleCache {
        RuleCache { slots: Vec::new() }
    }

    /// FNV-1a of the name (names are short).
    fn slot(key: &[u8]) -> usize {
        let h = key.iter().fold(0x811c_9dc5_u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        (h ^ (h >> 16)) as usize % RuleCache::SLOTS
    }

    fn rule(&mut self, p: &Profile, key: &[u8]) -> Option<usize> {
        // An empty slot holds the empty name: that name is never looked up here.
        if key.is_empty() || key.len() > RuleCache::MAX_NAME {
            return p.rule_for(Some(key), &[]);
        }
        if self.slots.is_empty() {
            self.slots = vec![(Vec::new(), None); RuleCache::SLOTS];
        }
        let Some((name, rule)) = self.slots.get_mut(RuleCache::slot(key)) else {
            return p.rule_for(Some(key), &[]);
        };
        if name.as_slice() != key {
            *rule = p.rule_for(Some(key), &[]);
            name.clear();
            name.extend_from_slice(key);
        }
        *rule
    }
}

impl JsonMasker {
    pub fn new(profile: &Profile) -> JsonMasker {
        JsonMasker {
            expect: Expect::Value,
            frames: Vec::with_capacity(8),
            path: Vec::new(),
            track_path: profile.has_paths(),
            key: Vec::with_capacity(32),
            has_key: false,
            value_rule: None,
            token: Token::None,
            buf: Vec::with_capacity(256),
            broken: None,
            tail: Vec::new(),
            scratch: String::with_capacity(64),
            rules_seen: RuleCache::new(),
            stats: Stats::default(),
        }
    }

    /// Masks the next chunk of the body into `out`.
    ///
    /// Bytes that are not masked leave as they came, so they are not written token by token:
    /// `copied` marks how far the chunk has been written, and the unmasked run before it is
    /// copied in one piece when a masked value follows it, or when the chunk ends.
    pub fn push(&mut self, p: &Profile, input: &[u8], out: &mut Vec<u8>) {
        if self.broken.is_some() {
            self.tail.extend_from_slice(input);
            return;
        }
        // `input[..copied]` has been written (as it is, or masked).
        let mut copied = 0;
        // Where the token being read starts in this chunk (its opening quote, or its first
        // character); `None` when it began in an earlier chunk (its bytes so far are in `buf`).
        let mut start: Option<usize> = None;
        let mut i = 0;
        while i < input.len() {
            match self.token {
                Token::Str {
                    key,
                    escaped,
                    any_escape,
                } => {
                    // Find the closing quote, stepping over escapes.
                    let mut j = i;
                    let mut esc = escaped;
                    let mut any = any_escape;
                    let close = loop {
                        if esc {
                            if j >= input.len() {
                                break None;
                            }
                            j += 1;
                            esc = false;
                            continue;
                        }
                        match memchr::memchr2(b'"', b'\\', &input[j..]) {
                            None => break None,
                            Some(k) if input[j + k] == b'\\' => {
                                j += k + 1;
                                esc = true;
                                any = true;
                            }
                            Some(k) => break Some(j + k),
                        }
                    };
                    let Some(at) = close else {
                        // Continues in the next chunk.
                        self.token = Token::Str {
                            key,
                            escaped: esc,
                            any_escape: any,
                        };
                        break;
                    };
                    self.token = Token::None;
                    let done = match start {
                        // Read in place: no copy.
                        Some(s) => {
                            let raw = Raw {
                                bytes: &input[i..at],
                                escaped: any,
                            };
                            self.string_done(p, key, raw, &input[copied..s], out)
                        }
                        None => {
                            self.buf.extend_from_slice(&input[i..at]);
                            self.end_string(p, key, any, out).map(|()| true)
                        }
                    };
                    match done {
                        Ok(true) => copied = at + 1,
                        Ok(false) => {}
                        Err(why) => {
                            if let Some(s) = start {
                                out.extend_from_slice(&input[copied..s]);
                                self.buf.extend_from_slice(&input[i..at]);
                            }
                            self.buf.insert(0, b'"');
                            self.buf.push(b'"');
                            return self.fail(why, input, at + 1);
                        }
                    }
                    start = None;
                    i = at + 1;
                    continue;
                }
                Token::Number | Token::Literal => {
                    let number = matches!(self.token, Token::Number);
                    let end = if number {
                        i + input[i..]
                            .iter()
                            .position(|c| {
                                !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                            })
                            .unwrap_or(input.len() - i)
                    } else {
                        // `false` is the longest: anything longer is not JSON.
                        let have = start.map_or(self.buf.len(), |s| i - s);
                        let room = 5usize.saturating_sub(have);
                        i + input[i..]
                            .iter()
                            .take(room)
                            .take_while(|c| c.is_ascii_alphabetic())
                            .count()
                    };
                    if end == input.len() {
                        // Continues in the next chunk (or ends with the body).
                        break;
                    }
                    self.token = Token::None;
                    let done = match start {
                        Some(s) if number => {
                            self.number_done(p, &input[s..end], &input[copied..s], out)
                        }
                        Some(s) => self.literal_done(&input[s..end]).map(|()| false),
                        None => {
                            self.buf.extend_from_slice(&input[i..end]);
                            if number {
                                self.end_number(p, out)
                            } else {
                                self.end_literal(out)
                            }
                            .map(|()| true)
                        }
                    };
                    match done {
                        Ok(true) => copied = end,
                        Ok(false) => {}
                        Err(why) => {
                            if let Some(s) = start {
                                out.extend_from_slice(&input[copied..s]);
                                self.buf.extend_from_slice(&input[s..end]);
                            }
                            return self.fail(why, input, end);
                        }
                    }
                    start = None;
                    // `input[end]` is read below.
                    i = end;
                }
                Token::None => {}
            }
            if let Err(why) = self.structural(p, input[i]) {
                out.extend_from_slice(&input[copied..i]);
                return self.fail(why, input, i);
            }
            if !matches!(self.token, Token::None) {
                start = Some(i);
            }
            i += 1;
        }
        // The chunk ends: what is settled is written; an open token waits in `buf`.
        match (start, &self.token) {
            (_, Token::None) => out.extend_from_slice(&input[copied..]),
            (Some(s), token) => {
                out.extend_from_slice(&input[copied..s]);
                // A string's opening quote is written with the string.
                let body = s + usize::from(matches!(token, Token::Str { .. }));
                self.buf.extend_from_slice(&input[body..]);
            }
            (None, _) => self.buf.extend_from_slice(input),
        }
    }

    /// Ends the body. `Err` when it was not one complete JSON document: what was written is
    /// still masked (the rest as text), but it is not valid JSON.
    pub fn finish(&mut self, p: &Profile, out: &mut Vec<u8>) -> Result<(), String> {
        if self.broken.is_none() {
            let done = match self.token {
                Token::Number => {
                    self.token = Token::None;
                    self.end_number(p, out)
                }
                Token::Literal => {
                    self.token = Token::None;
                    self.end_literal(out)
                }
                Token::Str { .. } => Err("the body ends inside a string".to_string()),
                Token::None => Ok(()),
            };
            let done = done.and_then(|()| match self.expect {
                Expect::End => Ok(()),
                _ if self.frames.is_empty() && self.expect == Expect::Value => {
                    Err("the body is empty".to_string())
                }
                _ => Err("the body ends before the document does".to_string()),
            });
            if let Err(why) = done {
                self.fail(why, &[], 0);
            }
        }
        let Some(why) = self.broken.clone() else {
            return Ok(());
        };
        let tail = std::mem::take(&mut self.tail);
        let (masked, n) = mask_text_counted(&String::from_utf8_lossy(&tail));
        self.stats.by_detector += n;
        out.extend_from_slice(masked.as_bytes());
        Err(why)
    }

    /// Input stopped being JSON at `input[at]`: hold what is pending and everything after it.
    fn fail(&mut self, why: String, input: &[u8], at: usize) {
        let mut tail = Vec::new();
        if matches!(self.token, Token::Str { .. }) {
            tail.push(b'"');
        }
        // A value that was being read (a string failing its check carries its quotes).
        tail.append(&mut self.buf);
        tail.extend_from_slice(input.get(at..).unwrap_or(&[]));
        self.tail = tail;
        self.token = Token::None;
        self.broken = Some(why);
    }

    /// The next byte outside any token: whitespace, punctuation, or a token's first byte. Writes
    /// nothing: these bytes leave as they came.
    fn structural(&mut self, p: &Profile, b: u8) -> Result<(), String> {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            return Ok(());
        }
        match (self.expect, b) {
            (Expect::Value | Expect::ValueOrClose, _) if b != b']' => self.begin_value(p, b),
            // Another document after the first: a JSON sequence (NDJSON, JSON lines), each
            // masked as it comes, so a stream of events is not held back.
            (Expect::End, _) => self.begin_value(p, b),
            (Expect::ValueOrClose | Expect::CommaOrClose, b']')
                if self.frames.last().is_some_and(|f| !f.object) =>
            {
                self.close();
                Ok(())
            }
            (Expect::KeyOrClose | Expect::CommaOrClose, b'}')
                if self.frames.last().is_some_and(|f| f.object) =>
            {
                self.close();
                Ok(())
            }
            (Expect::KeyOrClose | Expect::Key, b'"') => {
                self.token = Token::Str {
                    key: true,
                    escaped: false,
                    any_escape: false,
                };
                Ok(())
            }
            (Expect::Colon, b':') => {
                self.expect = Expect::Value;
                Ok(())
            }
            (Expect::CommaOrClose, b',') => {
                self.expect = match self.frames.last() {
                    Some(f) if f.object => Expect::Key,
                    _ => Expect::Value,
                };
                Ok(())
            }
            _ => Err(format!(
                "unexpected `{}` where {} was expected",
                char::from(b).escape_default(),
                match self.expect {
                    Expect::Value | Expect::ValueOrClose => "a value",
                    Expect::KeyOrClose | Expect::Key => "a key",
                    Expect::Colon => "`:`",
                    Expect::CommaOrClose => "`,` or a closing bracket",
                    Expect::End => "the end of the body",
                }
            )),
        }
    }

    /// A value starts with `b`: find its rule, then open it.
    fn begin_value(&mut self, p: &Profile, b: u8) -> Result<(), String> {
        let has_key = std::mem::take(&mut self.has_key);
        let key = has_key.then_some(self.key.as_slice());
        let parent_rule = self.frames.last().and_then(|f| f.rule);
        if self.track_path {
            match self.frames.last_mut() {
                Some(f) if f.object => self.path.push(Seg::Key(self.key.clone())),
                Some(f) => {
                    self.path.push(Seg::Index(f.index));
                }
                None => {}
            }
        }
        if let Some(f) = self.frames.last_mut() {
            if !f.object {
                f.index += 1;
            }
        }
        let rule = match key {
            // Without path rules a value's rule depends on its member name alone.
            Some(k) if !self.track_path => self.rules_seen.rule(p, k),
            _ => p.rule_for(key, &self.path),
        }
        .or(parent_rule);
        match b {
            b'{' | b'[' => {
                if self.frames.len() >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
                self.frames.push(Frame {
                    object: b == b'{',
                    rule,
                    index: 0,
                });
                self.expect = if b == b'{' {
                    Expect::KeyOrClose
                } else {
                    Expect::ValueOrClose
                };
            }
            b'"' => {
                self.value_rule = rule;
                self.token = Token::Str {
                    key: false,
                    escaped: false,
                    any_escape: false,
                };
            }
            b'-' | b'0'..=b'9' => {
                self.value_rule = rule;
                self.token = Token::Number;
            }
            b't' | b'f' | b'n' => {
                self.token = Token::Literal;
            }
            _ => {
                return Err(format!(
                    "unexpected `{}` where a value was expected",
                    char::from(b).escape_default()
                ))
            }
        }
        Ok(())
    }

    /// A value ended: back to its container.
    fn end_value(&mut self) {
        if self.frames.is_empty() {
            self.expect = Expect::End;
            return;
        }
        if self.track_path {
            self.path.pop();
        }
        self.expect = Expect::CommaOrClose;
    }

    fn close(&mut self) {
        self.frames.pop();
        self.end_value();
    }

    /// A token that was collected across chunks (or ends the body), in `buf`: `done` reads it,
    /// writing its masked form when it is masked (`Ok(true)`); otherwise it is written whole as
    /// it came. On `Err` it stays in `buf`, for [`Self::fail`].
    fn end_collected(
        &mut self,
        out: &mut Vec<u8>,
        done: impl FnOnce(&mut Self, &[u8], &mut Vec<u8>) -> Result<bool, String>,
        unmasked: impl FnOnce(&mut Vec<u8>, &[u8]),
    ) -> Result<(), String> {
        let raw = std::mem::take(&mut self.buf);
        let r = done(self, &raw, out);
        if r == Ok(false) {
            unmasked(out, &raw);
        }
        self.buf = raw;
        if r.is_ok() {
            self.buf.clear();
        }
        r.map(|_| ())
    }

    /// A string collected across chunks, in `buf` (without its quotes).
    fn end_string(
        &mut self,
        p: &Profile,
        key: bool,
        escaped: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        self.end_collected(
            out,
            |m, bytes, out| m.string_done(p, key, Raw { bytes, escaped }, &[], out),
            |out, bytes| write_value(out, bytes, None),
        )
    }

    /// A string was read. When it is masked, `pending` (the unmasked bytes before it) and its
    /// masked form are written and `Ok(true)` returned; otherwise nothing is written (its bytes
    /// leave as they came) and on `Err` nothing either.
    fn string_done(
        &mut self,
        p: &Profile,
        key: bool,
        raw: Raw<'_>,
        pending: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        if key {
            self.key_string(p, raw, pending, out)
        } else {
            self.value_string(p, raw, pending, out)
        }
    }

    fn key_string(
        &mut self,
        p: &Profile,
        raw: Raw<'_>,
        pending: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        self.key.clear();
        // Names are compared as bytes: only an escaped or possibly personal key is decoded.
        let digits = p.detect && may_hold_personal(raw.bytes);
        let mut masked = false;
        if digits || raw.escaped {
            let k = raw.decode()?;
            // A map keyed by ID numbers or phones: the key is personal data too.
            if let Some(kind) = detect(&k).filter(|_| digits) {
                self.stats.by_detector += 1;
                self.scratch.clear();
                mask_into(&k, &style_for(kind), &mut self.scratch);
                masked = true;
            }
            self.key.extend_from_slice(k.as_bytes());
        } else {
            self.key.extend_from_slice(raw.bytes);
        }
        if masked {
            out.extend_from_slice(pending);
            write_string(out, &self.scratch);
        }
        self.has_key = true;
        self.expect = Expect::Colon;
        Ok(masked)
    }

    fn value_string(
        &mut self,
        p: &Profile,
        raw: Raw<'_>,
        pending: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let rule = self.value_rule.take();
        let scratch = &mut self.scratch;
        scratch.clear();
        let masked = match rule.and_then(|r| p.rules.get(r)) {
            Some(r) => {
                self.stats.by_rule += 1;
                // Printable ASCII without escapes (numbers, the common case) is masked as bytes:
                // it holds nothing to escape, and masking only keeps parts of it or adds `*`.
                if !raw.escaped {
                    let mark = out.len();
                    out.extend_from_slice(pending);
                    out.push(b'"');
                    if mask_ascii_into(raw.bytes, &r.style, out) {
                        out.push(b'"');
                        self.end_value();
                        return Ok(true);
                    }
                    out.truncate(mark);
                }
                mask_into(&raw.decode()?, &r.style, scratch);
                true
            }
            None if p.detect && may_hold_personal(raw.bytes) => {
                let s = raw.decode()?;
                if let Some(k) = detect(&s) {
                    self.stats.by_detector += 1;
                    mask_into(&s, &style_for(k), scratch);
                    true
                } else {
                    let (masked, n) = mask_text_counted(&s);
                    self.stats.by_detector += n;
                    scratch.push_str(&masked);
                    n > 0
                }
            }
            // Not masked, so not decoded: it leaves as sent. (A string without a digit or `@`
            // holds nothing a detector finds; an escape such as `\u0031` has digits itself.)
            None => false,
        };
        if masked {
            out.extend_from_slice(pending);
            write_string(out, &self.scratch);
        }
        self.end_value();
        Ok(masked)
    }

    /// A number collected across chunks (or ending the body), in `buf`.
    fn end_number(&mut self, p: &Profile, out: &mut Vec<u8>) -> Result<(), String> {
        self.end_collected(
            out,
            |m, raw, out| m.number_done(p, raw, &[], out),
            |out, raw| out.extend_from_slice(raw),
        )
    }

    /// A number was read: as [`Self::string_done`].
    fn number_done(
        &mut self,
        p: &Profile,
        raw: &[u8],
        pending: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        if !valid_number(raw) {
            return Err(format!(
                "`{}` is not a JSON number",
                String::from_utf8_lossy(raw)
            ));
        }
        let text = std::str::from_utf8(raw).unwrap_or("");
        let rule = self.value_rule.take();
        let style = match rule.and_then(|r| p.rules.get(r)) {
            // A number under a rule (an ID sent as a number) is masked as a string.
            Some(r) => {
                self.stats.by_rule += 1;
                Some(std::borrow::Cow::Borrowed(&r.style))
            }
            // A number that is a whole document (as in JSON lines) is checked whatever `numbers`
            // says: nothing tells it from text.
            None if p.detect && (p.numbers || self.frames.is_empty()) => detect(text).map(|k| {
                self.stats.by_detector += 1;
                std::borrow::Cow::Owned(style_for(k))
            }),
            None => None,
        };
        let masked = match style {
            Some(style) => {
                self.scratch.clear();
                mask_into(text, &style, &mut self.scratch);
                out.extend_from_slice(pending);
                write_string(out, &self.scratch);
                true
            }
            None => false,
        };
        self.end_value();
        Ok(masked)
    }

    /// `true`, `false` or `null` that was collected across chunks (or ends the body), in `buf`.
    fn end_literal(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.end_collected(
            out,
            |m, raw, _| m.literal_done(raw).map(|()| false),
            |out, raw| out.extend_from_slice(raw),
        )
    }

    fn literal_done(&mut self, raw: &[u8]) -> Result<(), String> {
        if !matches!(raw, b"true" | b"false" | b"null") {
            return Err(format!(
                "`{}` is not a JSON value",
                String::from_utf8_lossy(raw)
            ));
        }
        self.end_value();
        Ok(())
    }
}

/// A JSON string's body as sent (between the quotes, escapes as they are).
#[derive(Debug, Clone, Copy)]
struct Raw<'a> {
    bytes: &'a [u8],
    /// The body holds a backslash escape.
    escaped: bool,
}

impl<'a> Raw<'a> {
    /// The string's text (escapes resolved).
    fn decode(&self) -> Result<std::borrow::Cow<'a, str>, String> {
        if !self.escaped {
            return std::str::from_utf8(self.bytes)
                .map(std::borrow::Cow::Borrowed)
                .map_err(|_| "a string that is not UTF-8".into());
        }
        let mut quoted = Vec::with_capacity(self.bytes.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(self.bytes);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("a bad string: {e}"))
    }
}

/// `s` as a JSON string (serde_json's escaping).
fn write_string(out: &mut Vec<u8>, s: &str) {
    // Masked values rarely hold anything to escape: then they are written as they are, which is
    // what serde_json writes for them.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a `str` into a `Vec` cannot fail; the fallback keeps the output JSON regardless.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"****\"");
    }
}

/// A string value: its masked form when there is one, else the original bytes as sent.
fn write_value(out: &mut Vec<u8>, raw: &[u8], masked: Option<&str>) {
    match masked {
        Some(m) => write_string(out, m),
        None => {
            out.push(b'"');
            out.extend_from_slice(raw);
            out.push(b'"');
        }
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn valid_number(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == s.len()
}

/// Masks every personal value the detectors find inside free text (log lines, alert evidence).
pub fn mask_text(s: &str) -> String {
    mask_text_counted(s).0
}

/// `mask_text`, and how many values it masked.
pub fn mask_text_counted(s: &str) -> (String, usize) {
    let found = scan(s);
    if found.is_empty() {
        return (s.to_string(), 0);
    }
    let n = found.len();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (r, k) in found {
        out.push_str(s.get(last..r.start).unwrap_or(""));
        out.push_str(&mask(s.get(r.clone()).unwrap_or(""), &style_for(k)));
        last = r.end;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            rules: vec![
                FieldRule::field(Pattern::parse("name").unwrap(), Style::Name),
                FieldRule::field(Pattern::parse("*address").unwrap(), Style::Address),
                FieldRule::field(
                    Pattern::parse("idCard").unwrap(),
                    Style::Keep { head: 6, tail: 4 },
                ),
            ],
            detect: true,
            numbers: false,
        }
    }

    /// Masks `doc` fed in chunks of `n` bytes.
    fn chunked(p: &Profile, doc: &[u8], n: usize) -> (Vec<u8>, Result<(), String>) {
        let mut m = JsonMasker::new(p);
        let mut out = Vec::new();
        for c in doc.chunks(n.max(1)) {
            m.push(p, c, &mut out);
        }
        let r = m.finish(p, &mut out);
        (out, r)
    }

    const DOC: &str = r#"{"code":0,"data":[{"name":"张三丰","idCard":"11010519491231002X","homeAddress":"北京市东城区长安街1号","mobile":"13800138000","note":"卡号6222020200112233446，订单110105194912310021","id":7}]}"#;
    const MASKED: &str = r#"{"code":0,"data":[{"name":"张**","idCard":"110105********002X","homeAddress":"北京市东城区****","mobile":"138****8000","note":"卡号***************3446，订单110105194912310021","id":7}]}"#;

    #[test]
    fn rules_then_detectors_keys_in_order() {
        let (out, stats) = profile().mask_json(DOC.as_bytes()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, MASKED);
        assert_eq!(
            stats,
            Stats {
                by_rule: 3,
                by_detector: 2
            }
        );
        // Masking twice equals masking once.
        let (again, _) = profile().mask_json(out.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), out);
    }

    #[test]
    fn any_chunking_gives_the_same_output() {
        // Escapes and multi-byte characters split at every position.
        let doc = r#"{"name":"\u5f20\u4e09","x":"a\"b\\","mobile" : "1380013\u0038000", "list":[1.5e3,-0,true,null,{"idCard":110105194912310021}]}"#;
        let (whole, r) = chunked(&profile(), doc.as_bytes(), doc.len());
        assert!(r.is_ok());
        let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["name"], "张*");
        assert_eq!(v["mobile"], "138****8000");
        assert_eq!(v["x"], "a\"b\\");
        assert_eq!(v["list"][4]["idCard"], "110105********0021");
        for n in 1..12 {
            assert_eq!(
                chunked(&profile(), doc.as_bytes(), n).0,
                whole,
                "chunks of {n}"
            );
        }
        let (masked, _) = chunked(&profile(), DOC.as_bytes(), 1);
        assert_eq!(String::from_utf8(masked).unwrap(), MASKED);
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "110101********1234",
            "张*",
            "a\"b",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}",
            "del\u{7f}",
            "\u{2028}",
            "😀*",
            "/slash",
        ] {
            let mut out = Vec::new();
            write_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn remembered_rules_are_the_rules() {
        // More names than slots, names that share a slot, case variants, a name over the
        // length kept, the empty name: the remembered rule is always the one the rules give.
        let p = Profile {
            rules: vec![
                FieldRule::field(Pattern::parse("name").unwrap(), Style::Name),
                FieldRule {
                    matcher: Matcher::Field(Pattern::parse("idCard").unwrap()),
                    case: Case::Sensitive,
                    style: Style::Keep { head: 6, tail: 4 },
                },
                FieldRule::field(Pattern::parse("*phone").unwrap(), Style::Mobile),
                FieldRule::field(Pattern::parse("addr*").unwrap(), Style::Address),
            ],
            detect: false,
            numbers: false,
        };
        let mut names: Vec<Vec<u8>> = (0..300).map(|i| format!("f{i}").into_bytes()).collect();
        for n in [
            "name",
            "NAME",
            "Name",
            "idCard",
            "IDCARD",
            "idcard",
            "homePhone",
            "PHONE",
            "phone2",
            "address",
            "Addr",
            "ad",
            "",
            "姓名",
        ] {
            names.push(n.as_bytes().to_vec());
        }
        names.push("x".repeat(100).into_bytes());
        names.push(format!("{}phone", "y".repeat(80)).into_bytes());
        let mut cache = RuleCache::new();
        for round in 0..3 {
            for n in names.iter().chain(names.iter().rev()) {
                assert_eq!(
                    cache.rule(&p, n),
                    p.rule_for(Some(n), &[]),
                    "round {round}, name {:?}",
                    String::from_utf8_lossy(n)
                );
            }
        }
    }

    #[test]
    fn paths_and_case() {
        let p = Profile {
            rules: vec![
                FieldRule {
                    matcher: Matcher::Path(JsonPath::parse("$.data[*].contact").unwrap()),
                    case: Case::Sensitive,
                    style: Style::Redact,
                },
                FieldRule {
                    matcher: Matcher::Path(JsonPath::parse("$..secret").unwrap()),
                    case: Case::Insensitive,
                    style: Style::SameLength,
                },
                FieldRule {
                    matcher: Matcher::Path(JsonPath::parse("$.rows[1]").unwrap()),
                    case: Case::Insensitive,
                    style: Style::Redact,
                },
            ],
            detect: false,
            numbers: false,
        };
        let doc = br#"{"data":[{"contact":{"a":"x","b":["y"]},"Contact":"kept"}],"contact":"top","deep":{"x":[{"SECRET":"abc"}]},"rows":["r0","r1","r2"]}"#;
        let (out, _) = p.mask_json(doc).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":[{"contact":{"a":"****","b":["****"]},"Contact":"kept"}],"contact":"top","deep":{"x":[{"SECRET":"***"}]},"rows":["r0","****","r2"]}"#
        );
        for bad in ["data", "$.", "$[", "$[x]", "$..", "$", "$.a b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        assert!(JsonPath::parse("$['id card'][0].*").is_ok());
        assert!(Pattern::parse("ID*")
            .unwrap()
            .matches(b"idCard", Case::Insensitive));
        assert!(!Pattern::parse("ID*")
            .unwrap()
            .matches(b"idCard", Case::Sensitive));
        assert!(Pattern::parse("*Phone")
            .unwrap()
            .matches(b"homephone", Case::Insensitive));
        assert!(!Pattern::parse("*Phone")
            .unwrap()
            .matches(b"ph", Case::Insensitive));
    }

    #[test]
    fn numbers_under_rules_and_by_option() {
        let (out, _) = profile()
            .mask_json(br#"{"idCard":110105194912310021}"#)
            .unwrap();
        assert_eq!(out, br#"{"idCard":"110105********0021"}"#);
        let doc = br#"{"phone":13800138000,"count":13800138001,"ts":1763788800128}"#;
        let (kept, _) = profile().mask_json(doc).unwrap();
        assert_eq!(
            kept, doc,
            "numbers are left alone unless the profile says so"
        );
        let p = Profile {
            numbers: true,
            ..profile()
        };
        let (out, _) = p.mask_json(doc).unwrap();
        assert_eq!(
            out,
            br#"{"phone":"138****8000","count":"138****8001","ts":1763788800128}"#
        );
    }

    #[test]
    fn not_json_is_masked_as_text_and_said_so() {
        for doc in [
            &b"{not json 13800138000"[..],
            b"<html>13800138000</html>",
            b"{\"a\":\"13800138000",
            b"{\"a\":1}} 13800138000",
            b"{\"a\":[1,2}",
            b"",
            b"{\"a\":tru}",
            b"{\"a\":01}",
            b"\"\xff\xfe 13800138000\"",
        ] {
            let (out, r) = chunked(&profile(), doc, 3);
            assert!(r.is_err(), "{}", String::from_utf8_lossy(doc));
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("13800138000"), "{text}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(chunked(&profile(), deep.as_bytes(), 64).1.is_err());
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("*").is_err());
        // A top-level scalar is a document too.
        assert_eq!(profile().mask_json(b" 42 ").unwrap().0, b" 42 ");
        // JSON lines: each document masked as it comes.
        let lines = b"{\"mobile\":\"13800138000\"}\n{\"idCard\":\"11010519491231002X\"}\n";
        let (out, _) = profile().mask_json(lines).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"mobile\":\"138****8000\"}\n{\"idCard\":\"110105********002X\"}\n"
        );
    }
}
