//! menwei request inspection: normalisation, attack detectors, anomaly scoring with paranoia
//! levels, exclusions. Takes plain inputs ([`Request`]) and returns a [`Verdict`] with rule ids
//! and a score; never sees Pingora, never blocks by itself (the core decides by mode).
//!
//! SQL injection and XSS are also checked as libinjection checks them: SQL by [`sqli`]
//! (libinjection's algorithm over `libinjectionrs`' tables, giving exactly its verdicts without
//! its allocations), XSS by `libinjectionrs` itself (a Rust port of libinjection; [`xss`] runs
//! only the HTML contexts that can find anything in a value), run under `catch_unwind` so that
//! a bug there can never take a request down.

pub mod corpus;
mod memo;
pub mod normalize;
pub mod parse;
pub mod rules;
pub mod sqli;
pub mod xss;

pub use parse::{Findings, Part, Place, Request, Target};
pub use rules::{Category, Severity};

use normalize::Normalized;
use regex::{Regex, RegexSet};
use rules::{Form, PatternRule};
use std::borrow::Cow;

/// How a route's inspection is tuned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 1 (default) to 4: higher levels run more rules and catch more, with more false positives.
    pub paranoia: u8,
    /// Score at which a request counts as an attack (CRS default 5: one critical rule).
    pub threshold: u32,
    /// Rules (or categories) switched off, everywhere or for one named value.
    pub exclusions: Vec<Exclusion>,
    /// Methods a client may use.
    pub methods: Vec<String>,
    /// Content types a request body may have (matched on the media type, lower case).
    pub content_types: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paranoia: 1,
            threshold: 5,
            exclusions: Vec::new(),
            methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec(),
            content_types: [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/related",
                "text/xml",
                "application/xml",
                "application/soap+xml",
                "application/json",
                "application/xss-auditor-report",
                "text/plain",
                "application/octet-stream",
                "application/grpc",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// One exclusion: a rule id (`942100`) or a category (`sqli`), optionally only for values of
/// one name (an argument, cookie or header, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub rule: ExcludedRule,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExcludedRule {
    Id(u32),
    Category(Category),
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: u32,
    pub category: Category,
    pub severity: Severity,
    pub what: &'static str,
    /// `arg:q`, `header:user-agent`, `path`...
    pub target: String,
    /// What matched with some context, at most 96 characters (callers mask it before it leaves
    /// the process).
    pub evidence: String,
}

/// The outcome for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub score: u32,
    pub hits: Vec<Hit>,
    /// Score reached the configured threshold.
    pub attack: bool,
    /// Arguments seen so far and their total size (the head's count carries into the body's).
    pub args: usize,
    pub arg_bytes: usize,
}

impl Verdict {
    /// The rule ids, for logs and headers.
    pub fn rule_ids(&self) -> Vec<u32> {
        self.hits.iter().map(|h| h.rule).collect()
    }

    /// The category with the most points.
    pub fn main_category(&self) -> Option<Category> {
        let mut best: Option<(Category, u32)> = None;
        for c in Category::ALL {
            let pts: u32 = self
                .hits
                .iter()
                .filter(|h| h.category == c)
                .map(|h| h.severity.points())
                .sum();
            if pts > 0 && best.is_none_or(|(_, b)| pts > b) {
                best = Some((c, pts));
            }
        }
        best.map(|(c, _)| c)
    }
}

/// The compiled rules: built once per process and shared.
pub struct Engine {
    rules: Vec<PatternRule>,
    regexes: Vec<Regex>,
    /// The rule sets by paranoia: `levels[i]` holds the rules of paranoia `i + 1` and below, the
    /// last one every rule. A value of an argument or a body is scanned with the sets of its
    /// route's level, so a rule that could only add points at a higher level neither makes its
    /// place look hot nor costs a second scan (rich text matched the level-2 "tag" rule on
    /// every post). Names, cookies, headers and paths are always scanned with every rule: the
    /// memory of clean values (`memo`) remembers only what no rule of any level matched.
    levels: Vec<Sets>,
}

/// The rule sets of one paranoia level and below.
struct Sets {
    /// Per place (bit index of [`Place`]) and form (text, folded): the set of the rules that
    /// read it, and their indexes. Small per-place sets keep the lazy DFAs small and fast.
    sets: Vec<[Option<RuleSet>; 2]>,
    /// The same sets compiled multi-line, run once over all of a place's values joined by
    /// newlines: when that finds nothing (nearly always) no value of the place is scanned alone.
    /// Joined values can only match more (a superset), never less, so nothing is missed.
    joined: Vec<[Option<RegexSet>; 2]>,
    /// Per place, the rules of both forms in one set (and its multi-line twin): a value with
    /// nothing to fold reads the same in both forms, so one scan does the work of two. Most
    /// places of most requests have no value to fold.
    both: Vec<Option<RuleSet>>,
    joined_both: Vec<Option<RegexSet>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({} rules)", self.rules.len())
    }
}

impl Sets {
    /// The sets of the rules of paranoia `level` and below, for the places in `places` (bits
    /// of [`Place`]); `None` for the others.
    fn new(rules: &[PatternRule], level: u8, places: u16) -> Result<Sets, String> {
        let ids_of = |bit: u16, form: Option<Form>| -> Vec<usize> {
            (0..rules.len())
                .filter(|i| {
                    let r = &rules[*i];
                    form.is_none_or(|f| r.form == f) && r.places & bit != 0 && r.paranoia <= level
                })
                .collect()
        };
        // A set and its multi-line twin (see `joined`).
        let pair = |ids: Vec<usize>| -> Result<(Option<RuleSet>, Option<RegexSet>), String> {
            if ids.is_empty() {
                return Ok((None, None));
            }
            let compile = |multi_line: bool| {
                regex::RegexSetBuilder::new(ids.iter().map(|i| rules[*i].pattern.as_ref()))
                    .multi_line(multi_line)
                    .size_limit(1 << 26)
                    .dfa_size_limit(1 << 26)
                    .build()
                    .map_err(|e| format!("rule set: {e}"))
            };
            let (single, multi) = (compile(false)?, compile(true)?);
            Ok((Some((single, ids)), Some(multi)))
        };
        let mut sets = Vec::with_capacity(PLACES);
        let mut joined = Vec::with_capacity(PLACES);
        let mut both = Vec::with_capacity(PLACES);
        let mut joined_both = Vec::with_capacity(PLACES);
        for i in 0..PLACES {
            let bit = 1u16 << i;
            if places & bit == 0 {
                sets.push([None, None]);
                joined.push([None, None]);
                both.push(None);
                joined_both.push(None);
                continue;
            }
            let (text, text_multi) = pair(ids_of(bit, Some(Form::Text)))?;
            let (folded, folded_multi) = pair(ids_of(bit, Some(Form::Folded)))?;
            sets.push([text, folded]);
            joined.push([text_multi, folded_multi]);
            let (all, all_multi) = pair(ids_of(bit, None))?;
            both.push(all);
            joined_both.push(all_multi);
        }
        Ok(Sets {
            sets,
            joined,
            both,
            joined_both,
        })
    }
}

/// What the scan of a place's joined values found.
#[derive(Debug, Clone, Copy)]
enum Hot {
    /// No rule of the place can match any of its values.
    Cold,
    /// Per form (text, folded): some rule of that form may match.
    Forms([bool; 2]),
    /// No value of the place folds, and some rule of either form may match.
    Both,
}

/// A compiled set and the indexes (into `Engine::rules`) of its patterns.
type RuleSet = (RegexSet, Vec<usize>);

/// Number of [`Place`] variants (bits 0..PLACES).
const PLACES: usize = 10;

/// The places whose values are scanned with the rules of their route's paranoia level only:
/// those the memory of clean values never holds (`memo::repeats`; a test keeps the two
/// agreeing).
const AT_ROUTE_LEVEL: u16 = Place::Arg as u16 | Place::RawBody as u16 | Place::FileName as u16;

thread_local! {
    /// `hot_places`' buffer, between requests.
    static JOIN_BUFFER: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// The largest join buffer a thread keeps between requests (bytes).
const JOIN_BUFFER_KEPT: usize = 16 * 1024;

/// A place's bit index (0..PLACES).
fn place_index(place: Place) -> usize {
    (place as u16).trailing_zeros() as usize
}

/// Ids of the rules written as code rather than patterns.
pub mod code_rules {
    pub const SQLI_LIBINJECTION: u32 = 942100;
    pub const XSS_LIBINJECTION: u32 = 941100;
    pub const METHOD: u32 = 911100;
    pub const CONTENT_TYPE: u32 = 920420;
    pub const CHARSET: u32 = 920480;
    pub const CHARSET_TWICE: u32 = 920530;
    pub const GET_WITH_BODY: u32 = 920170;
    pub const BODY_WITHOUT_TYPE: u32 = 920640;
    pub const RANGE: u32 = 920190;
    pub const REQUEST_RANGE: u32 = 920660;
    pub const CONNECTION: u32 = 920210;
    pub const RESTRICTED_HEADER: u32 = 920450;
    pub const CONTENT_TYPE_CHARS: u32 = 920470;
    pub const NUL: u32 = 920270;
    pub const FULLWIDTH: u32 = 920260;
    pub const INVALID_UTF8: u32 = 920250;
    pub const ENCODING_LAYERS: u32 = 920230;
    pub const JSON_INVALID: u32 = 920600;
    pub const MULTIPART_INVALID: u32 = 922130;
    pub const MULTIPART_CHARSET: u32 = 922110;
    pub const MULTIPART_CHARSET_FIELD: u32 = 922100;
    pub const TOO_MANY_ARGS: u32 = 920380;
    pub const COOKIE_V1: u32 = 921250;
    pub const JS_ESCAPE: u32 = 920540;
    pub const MULTIPART_NAMES: u32 = 920120;
    pub const ABSOLUTE_TARGET: u32 = 920100;
    pub const NO_HOST: u32 = 920280;
    pub const ACCEPT_CHARSET: u32 = 920600;
    pub const ACCEPT_ENCODING_LONG: u32 = 920520;
    pub const ARG_NAME_LONG: u32 = 920360;
    pub const ARGS_MANY: u32 = 920381;
    pub const ARGS_TOTAL: u32 = 920390;
    pub const RFI_PARAM: u32 = 931110;
    pub const CONTENT_TYPE_SMUGGLED: u32 = 921421;

    /// Every code rule id.
    pub const ALL: &[u32] = &[
        SQLI_LIBINJECTION,
        XSS_LIBINJECTION,
        METHOD,
        CONTENT_TYPE,
        CHARSET,
        CHARSET_TWICE,
        GET_WITH_BODY,
        BODY_WITHOUT_TYPE,
        RANGE,
        REQUEST_RANGE,
        CONNECTION,
        RESTRICTED_HEADER,
        CONTENT_TYPE_CHARS,
        NUL,
        FULLWIDTH,
        INVALID_UTF8,
        ENCODING_LAYERS,
        JSON_INVALID,
        MULTIPART_INVALID,
        MULTIPART_CHARSET,
        MULTIPART_CHARSET_FIELD,
        TOO_MANY_ARGS,
        COOKIE_V1,
        JS_ESCAPE,
        MULTIPART_NAMES,
        ABSOLUTE_TARGET,
        NO_HOST,
        ACCEPT_CHARSET,
        ACCEPT_ENCODING_LONG,
        ARG_NAME_LONG,
        ARGS_MANY,
        ARGS_TOTAL,
        RFI_PARAM,
        CONTENT_TYPE_SMUGGLED,
    ];
}

/// The process's engine, compiled on first use (about 100 ms) and shared by every profile.
pub fn shared() -> Result<&'static Engine, String> {
    static ENGINE: std::sync::OnceLock<Result<Engine, String>> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(Engine::new)
        .as_ref()
        .map_err(Clone::clone)
}

impl Engine {
    /// Whether `id` names a rule (pattern or code).
    pub fn knows(&self, id: u32) -> bool {
        code_rules::ALL.contains(&id) || self.rules.iter().any(|r| r.id == id)
    }

    pub fn new() -> Result<Engine, String> {
        sqli::prepare();
        let mut rules = rules::pattern_rules();
        for r in &mut rules {
            r.pattern = Cow::Owned(ascii_word_boundaries(&r.pattern));
        }
        let mut regexes = Vec::with_capacity(rules.len());
        for r in &rules {
            regexes.push(
                regex::RegexBuilder::new(&r.pattern)
                    .size_limit(1 << 24)
                    .build()
                    .map_err(|e| format!("rule {}: {e}", r.id))?,
            );
        }
        // Every level has the sets of the places read at a route's level; the top one (every
        // rule) also those of the remembered places (see `levels`).
        let top = rules.iter().map(|r| r.paranoia).max().unwrap_or(1).max(1);
        let mut levels: Vec<Sets> = Vec::with_capacity(usize::from(top));
        for level in 1..=top {
            let places = if level == top {
                u16::MAX
            } else {
                AT_ROUTE_LEVEL
            };
            levels.push(Sets::new(&rules, level, places)?);
        }
        Ok(Engine {
            rules,
            regexes,
            levels,
        })
    }

    /// The sets to scan a value of `place` with on a route of `cfg`'s paranoia (see `levels`).
    fn sets_for(&self, cfg: &Config, place: usize) -> Option<&Sets> {
        let at_route_level = (1u16 << place) & AT_ROUTE_LEVEL != 0;
        let level = if at_route_level {
            usize::from(cfg.paranoia).clamp(1, self.levels.len())
        } else {
            self.levels.len()
        };
        self.levels.get(level.saturating_sub(1))
    }

    /// Every rule id with its category, paranoia level and description (for docs and `explain`).
    pub fn catalogue(&self) -> Vec<(u32, Category, u8, &'static str)> {
        self.rules
            .iter()
            .map(|r| (r.id, r.category, r.paranoia, r.what))
            .collect()
    }

    /// Inspects one request.
    pub fn inspect(&self, cfg: &Config, req: &Request<'_>) -> Verdict {
        self.run(cfg, req, Part::All, Verdict::default())
    }

    /// Inspects the request line and headers only (the body streams later: `inspect_body`).
    pub fn inspect_head(&self, cfg: &Config, req: &Request<'_>) -> Verdict {
        self.run(cfg, req, Part::Head, Verdict::default())
    }

    /// Adds what the body (`req.body`) shows to the verdict of `inspect_head`.
    pub fn inspect_body(&self, cfg: &Config, req: &Request<'_>, head: Verdict) -> Verdict {
        self.run(cfg, req, Part::Body, head)
    }

    fn run(&self, cfg: &Config, req: &Request<'_>, part: Part, mut v: Verdict) -> Verdict {
        // Header names are lowered once, for the targets and the request rules.
        let names = parse::lower_names(req, part);
        let (targets, findings) = parse::targets_named(req, part, &names);
        if part != Part::Body {
            self.request_rules(cfg, req, &names, &mut v);
        }
        self.target_rules(cfg, req, part, &targets, &findings, &mut v);
        let hot = self.hot_places(cfg, &targets);
        for t in targets {
            let matched = match hot.get(place_index(t.place)) {
                Some(Hot::Forms(h)) if h[0] || h[1] => self.patterns(cfg, &t, *h, &mut v),
                Some(Hot::Both) => self.patterns_both(cfg, &t, &mut v),
                _ => false,
            };
            let injected = self.libinjection(cfg, &t, &mut v);
            // Nothing matched at any paranoia level and nothing is flagged: this value adds
            // nothing to any verdict, and need not be inspected again.
            if let Some(key) = t.memo {
                let n = &t.value;
                let clean = !matched
                    && !injected
                    && !n.control
                    && !n.escapes
                    && n.layers < 2
                    && !replaced(n)
                    // A long argument name is itself a finding (ARG_NAME_LONG), read from the
                    // name's text, which a remembered value no longer has.
                    && !(t.place == Place::ArgName && too_long_name(&n.text));
                if clean {
                    memo::remember_clean(key);
                }
            }
        }
        v.attack = v.score >= cfg.threshold;
        v
    }

    /// Which places have any match at all, from one scan of their values joined: per form
    /// when some value of the place folds differently, else one scan for both forms. The
    /// targets are read once to group them by place.
    fn hot_places(&self, cfg: &Config, targets: &[Target<'_>]) -> [Hot; PLACES] {
        /// A place's values: how many, the first one's index, whether any folds, and the
        /// length of each form joined.
        #[derive(Clone, Copy, Default)]
        struct Seen {
            n: usize,
            first: usize,
            folds: bool,
            len: [usize; 2],
        }
        fn pick<'t>(t: &'t Target<'_>, form: usize) -> &'t str {
            if form == 0 {
                &t.value.text
            } else {
                t.value.folded()
            }
        }
        let mut seen = [Seen::default(); PLACES];
        for (i, t) in targets.iter().enumerate() {
            let Some(s) = seen.get_mut(place_index(t.place)) else {
                continue;
            };
            if s.n == 0 {
                s.first = i;
            }
            s.n += 1;
            s.folds |= t.value.folded.is_some();
            s.len[0] += t.value.text.len() + 1;
            s.len[1] += t.value.folded().len() + 1;
        }
        let mut hot = [Hot::Cold; PLACES];
        // One buffer for every place's joined values, kept by the thread from one request to the
        // next: an allocation and a free fewer per request, each a cache line or two of the
        // allocator's that the rest of the request's work has pushed out.
        let mut all = JOIN_BUFFER.with(|b| b.take());
        for (p, (hot, s)) in hot.iter_mut().zip(&seen).enumerate() {
            if s.n == 0 {
                continue;
            }
            let of_place = targets
                .get(s.first..)
                .unwrap_or_default()
                .iter()
                .filter(|t| place_index(t.place) == p);
            // One value is scanned as it is; several are joined by newlines.
            let mut scan = |set: &RegexSet, form: usize| -> bool {
                if s.n == 1 {
                    return targets
                        .get(s.first)
                        .is_some_and(|t| set.is_match(pick(t, form)));
                }
                all.clear();
                all.reserve(s.len[form]);
                for t in of_place.clone() {
                    all.push_str(pick(t, form));
                    all.push('\n');
                }
                set.is_match(&all)
            };
            *hot = if s.folds {
                let Some(joined) = self.sets_for(cfg, p).and_then(|l| l.joined.get(p)) else {
                    continue;
                };
                let mut h = [false; 2];
                for (form, set) in joined.iter().enumerate() {
                    if let Some(set) = set {
                        h[form] = scan(set, form);
                    }
                }
                Hot::Forms(h)
            } else {
                match self.sets_for(cfg, p).and_then(|l| l.joined_both.get(p)) {
                    Some(Some(set)) if scan(set, 0) => Hot::Both,
                    _ => Hot::Cold,
                }
            };
        }
        // Kept only if small: one request with a huge body must not pin its size for the
        // thread's lifetime.
        if all.capacity() <= JOIN_BUFFER_KEPT {
            all.clear();
            JOIN_BUFFER.with(|b| b.replace(all));
        }
        hot
    }

    fn excluded(cfg: &Config, rule: u32, category: Category, name: &str) -> bool {
        cfg.exclusions.iter().any(|e| {
            let r = match e.rule {
                ExcludedRule::Id(id) => id == rule,
                ExcludedRule::Category(c) => c == category,
            };
            r && e.name.as_ref().is_none_or(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// Adds a finding to the verdict. Cold: on benign traffic nothing is found, and keeping
    /// this (with its copies) out of line keeps the hot paths' code dense: in the gateway an
    /// inspection pays mostly for the code lines it has to bring back into the first-level cache.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn add(
        cfg: &Config,
        v: &mut Verdict,
        rule: u32,
        category: Category,
        severity: Severity,
        what: &'static str,
        target: &str,
        name: &str,
        evidence: &str,
    ) {
        if Self::excluded(cfg, rule, category, name) || v.hits.iter().any(|h| h.rule == rule) {
            return;
        }
        v.score += severity.points();
        v.hits.push(Hit {
            rule,
            category,
            severity,
            what,
            target: target.to_string(),
            evidence: evidence.chars().take(96).collect(),
        });
    }

    /// Reports the place's rules that match the value; whether any rule matched at all (of any
    /// paranoia level, excluded or not).
    fn patterns(&self, cfg: &Config, t: &Target, hot: [bool; 2], v: &mut Verdict) -> bool {
        let place = t.place as u16;
        let at = place.trailing_zeros() as usize;
        let Some([text, folded]) = self.sets_for(cfg, at).and_then(|l| l.sets.get(at)) else {
            return false;
        };
        let mut any = false;
        for (n, (set, value)) in [(text, &*t.value.text), (folded, t.value.folded())]
            .into_iter()
            .enumerate()
        {
            let Some((set, ids)) = set else { continue };
            if value.is_empty() || !hot[n] {
                continue;
            }
            let found = set.matches(value);
            any |= found.matched_any();
            self.report(cfg, t, found.iter().map(|m| ids[m]), value, v);
        }
        any
    }

    /// As `patterns`, for a value with nothing to fold: the place's rules of both forms at once.
    fn patterns_both(&self, cfg: &Config, t: &Target, v: &mut Verdict) -> bool {
        let place = t.place as u16;
        let at = place.trailing_zeros() as usize;
        let Some(Some((set, ids))) = self.sets_for(cfg, at).and_then(|l| l.both.get(at)) else {
            return false;
        };
        let found = set.matches(&t.value.text);
        self.report(cfg, t, found.iter().map(|m| ids[m]), &t.value.text, v);
        found.matched_any()
    }

    /// Adds the rules (indexes into `self.rules`) that matched `value`, with their evidence.
    fn report(
        &self,
        cfg: &Config,
        t: &Target,
        matched: impl Iterator<Item = usize>,
        value: &str,
        v: &mut Verdict,
    ) {
        let place = t.place as u16;
        for i in matched {
            let r = &self.rules[i];
            if r.places & place == 0 || r.paranoia > cfg.paranoia {
                continue;
            }
            let evidence = self.regexes[i]
                .find(value)
                .map(|m| context(value, m.start(), m.end()))
                .unwrap_or_default();
            Self::add(
                cfg,
                v,
                r.id,
                r.category,
                r.severity,
                r.what,
                &label(t),
                &t.name,
                &evidence,
            );
        }
    }

    /// Runs libinjection where it applies; whether it found anything.
    fn libinjection(&self, cfg: &Config, t: &Target, v: &mut Verdict) -> bool {
        if !matches!(
            t.place,
            Place::Arg
                | Place::ArgName
                | Place::Cookie
                | Place::UserAgent
                | Place::Referer
                | Place::Path
                | Place::RawBody
        ) {
            return false;
        }
        let value = t.value.text.as_bytes();
        if value.len() < 2 || value.len() > 64 * 1024 {
            return false;
        }
        // (Plain words, dates, paths and Chinese text hold none of the characters either needs
        // and skip libinjection; the keyword rules still read them.)
        let (may_sqli, may_xss) = t.value.summary.may_inject();
        if !may_sqli && !may_xss {
            return false;
        }
        // User agents and referers repeat from request to request (a few browsers, the same
        // pages) and libinjection is most of their cost: its verdicts on them are remembered.
        let repeats = matches!(t.place, Place::UserAgent | Place::Referer);
        let (sqli, xss) = match repeats.then(|| memo::injection(&t.value.text)).flatten() {
            Some(known) => known,
            None => {
                let found = Self::inject(&t.value.text, may_sqli, may_xss);
                if repeats {
                    memo::remember_injection(&t.value.text, found);
                }
                found
            }
        };
        if sqli && t.place != Place::Path {
            Self::add(
                cfg,
                v,
                code_rules::SQLI_LIBINJECTION,
                Category::Sqli,
                Severity::Critical,
                "SQL injection (libinjection)",
                &label(t),
                &t.name,
                &t.value.text,
            );
        }
        if xss {
            Self::add(
                cfg,
                v,
                code_rules::XSS_LIBINJECTION,
                Category::Xss,
                Severity::Critical,
                "cross-site scripting (libinjection)",
                &label(t),
                &t.name,
                &t.value.text,
            );
        }
        sqli || xss
    }

    /// libinjection's SQL and XSS verdicts on a value (each only when `may_inject` allows).
    fn inject(text: &str, may_sqli: bool, may_xss: bool) -> (bool, bool) {
        // libinjection's SQL check as libinjectionrs computes it, without its allocations
        // (`sqli`); its XSS check is the crate's own, in the contexts that apply (`xss`).
        let sqli = may_sqli && sqli::is_sqli(text);
        // Rich-text editors send `style="color: red"`, which libinjection reports on its own;
        // plain declarations are dropped first (dangerous CSS is rule 941140's job).
        let xss = may_xss && {
            let html = strip_plain_styles(text);
            std::panic::catch_unwind(|| xss::is_xss(html.as_bytes())).unwrap_or(false)
        };
        (sqli, xss)
    }

    /// Rules on the request as a whole (method, framing headers, content type).
    fn request_rules(
        &self,
        cfg: &Config,
        req: &Request<'_>,
        names: &[Cow<'_, str>],
        v: &mut Verdict,
    ) {
        use code_rules::*;
        use Category::{Method, Protocol, ProtocolAttack};
        use Severity::{Critical, Warning};
        let mut add = |rule, cat, sev, what, target: &str, evidence: &str| {
            Self::add(cfg, v, rule, cat, sev, what, target, target, evidence)
        };
        if !req.uri.starts_with(b"/") && req.uri != b"*" {
            add(
                ABSOLUTE_TARGET,
                Protocol,
                Critical,
                "request target not in origin form (absolute URL or garbage)",
                "uri",
                &String::from_utf8_lossy(req.uri),
            );
        }
        let h = Heads::of(req, names);
        if h.host.is_none_or(|h| h.is_empty()) {
            add(
                NO_HOST,
                Protocol,
                Critical,
                "request without a Host",
                "header:host",
                "",
            );
        }
        if let Some(accept) = h.accept.filter(|a| contains_ignore_case(a, b"charset=")) {
            if odd_accept_charset(accept) {
                add(
                    ACCEPT_CHARSET,
                    Protocol,
                    Critical,
                    "charset not allowed by policy in the Accept header",
                    "header:accept",
                    "",
                );
            }
        }
        if h.accept_encoding.is_some_and(|v| v.len() > 100) {
            add(
                ACCEPT_ENCODING_LONG,
                Protocol,
                Critical,
                "Accept-Encoding longer than 100 bytes (CVE-2022-21907)",
                "header:accept-encoding",
                "",
            );
        }
        // The content type as sent. The rules read it in lower case: they compare it ignoring
        // ASCII case instead (lowering changes nothing else), and a lower-case copy is made only
        // for the evidence of a rule that fires.
        let content_type = h.content_type.map(normalize::lossy);
        let facts = content_type.as_deref().map(ContentType::of);
        if let (Some(ct), Some(facts)) = (&content_type, &facts) {
            if facts.smuggled {
                add(
                    CONTENT_TYPE_SMUGGLED,
                    ProtocolAttack,
                    Critical,
                    "a media type hidden in a Content-Type parameter",
                    "header:content-type",
                    &ct.to_ascii_lowercase(),
                );
            }
            if !facts.well_formed {
                add(
                    CONTENT_TYPE_CHARS,
                    Protocol,
                    Critical,
                    "malformed Content-Type",
                    "header:content-type",
                    ct,
                );
            }
        }
        if !cfg
            .methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(req.method))
        {
            add(
                METHOD,
                Method,
                Critical,
                "method not allowed by policy",
                "method",
                req.method,
            );
        }
        let has_body = req.body.is_some_and(|b| !b.is_empty())
            || h.transfer_encoding
            || h.content_length
                .is_some_and(|v| v.iter().any(|b| (b'1'..=b'9').contains(b)));
        if let (Some(ct), Some(facts)) = (content_type.as_deref(), &facts) {
            let media = facts.media(ct);
            // `content_types` holds lower-case media types: one equal to `media` lowered.
            let allowed = cfg.content_types.iter().any(|c| {
                c.len() == media.len()
                    && c.bytes()
                        .zip(media.bytes())
                        .all(|(c, m)| c == m.to_ascii_lowercase())
            });
            if has_body && !allowed {
                add(
                    CONTENT_TYPE,
                    Protocol,
                    Critical,
                    "request content type not allowed by policy",
                    "header:content-type",
                    &media.to_ascii_lowercase(),
                );
            }
            if facts.illegal_chars {
                add(
                    CONTENT_TYPE_CHARS,
                    Protocol,
                    Critical,
                    "illegal characters in the content type",
                    "header:content-type",
                    &ct.to_ascii_lowercase(),
                );
            }
            if facts.charsets > 1 || facts.mentions > 1 {
                add(
                    CHARSET_TWICE,
                    Protocol,
                    Critical,
                    "more than one charset in the content type",
                    "header:content-type",
                    &ct.to_ascii_lowercase(),
                );
            }
            if facts.odd_charset {
                add(
                    CHARSET,
                    Protocol,
                    Critical,
                    "charset not allowed by policy",
                    "header:content-type",
                    &ct.to_ascii_lowercase(),
                );
            }
        } else if has_body {
            add(
                BODY_WITHOUT_TYPE,
                Protocol,
                Critical,
                "request body without a content type",
                "body",
                "",
            );
        }
        if has_body
            && (req.method.eq_ignore_ascii_case("GET") || req.method.eq_ignore_ascii_case("HEAD"))
        {
            add(
                GET_WITH_BODY,
                Protocol,
                Critical,
                "GET or HEAD request with a body",
                "body",
                "",
            );
        }
        if let Some(range) = h.range.and_then(bad_range) {
            add(
                RANGE,
                Protocol,
                Warning,
                "invalid or abusive Range header",
                "header:range",
                &range,
            );
        }
        if h.request_range {
            add(
                REQUEST_RANGE,
                Protocol,
                Critical,
                "obsolete Request-Range header",
                "header:request-range",
                "",
            );
        }
        if let Some(conn) = h.connection.and_then(odd_connection) {
            add(
                CONNECTION,
                Protocol,
                Critical,
                "contradictory or repeated Connection header",
                "header:connection",
                &conn,
            );
        }
        for name in h.restricted {
            let n = name.to_ascii_lowercase();
            add(
                RESTRICTED_HEADER,
                Protocol,
                Critical,
                "restricted header",
                &format!("header:{n}"),
                &n,
            );
        }
        if h.cookie_v1 {
            add(
                COOKIE_V1,
                ProtocolAttack,
                Critical,
                "RFC 2109 cookie ($Version) used to smuggle values",
                "header:cookie",
                "$Version",
            );
        }
    }

    /// Rules on each target and on what parsing found.
    fn target_rules(
        &self,
        cfg: &Config,
        req: &Request<'_>,
        part: Part,
        targets: &[Target],
        f: &Findings,
        v: &mut Verdict,
    ) {
        use code_rules::*;
        use Category::{Multipart, Protocol};
        use Severity::{Critical, Warning};
        let mut rfi: Vec<&Target> = Vec::new();
        // (Counted without a branch on each target's place, which follows no pattern.)
        let (args, arg_bytes) = targets.iter().fold((v.args, v.arg_bytes), |(n, b), t| {
            let arg = t.place == Place::Arg;
            (
                n + usize::from(arg),
                b + t.value.text.len() * usize::from(arg),
            )
        });
        v.args = args;
        v.arg_bytes = arg_bytes;
        let mut add = |rule, cat, sev, what, target: &str, evidence: &str| {
            Self::add(cfg, v, rule, cat, sev, what, target, target, evidence)
        };
        if args > 255 {
            add(
                ARGS_MANY,
                Protocol,
                Critical,
                "more than 255 arguments",
                "args",
                "",
            );
        }
        if arg_bytes > 64000 {
            add(
                ARGS_TOTAL,
                Protocol,
                Warning,
                "arguments larger than 64000 bytes in all",
                "args",
                "",
            );
        }
        // Each check below reads the value's own rare feature first and its place second: the
        // places of successive targets follow no pattern the branch predictor could learn, and
        // nearly every value is ruled out by the feature alone.
        for t in targets {
            if too_long_name(&t.value.text) && t.place == Place::ArgName {
                add(
                    ARG_NAME_LONG,
                    Protocol,
                    Critical,
                    "argument name longer than 100 characters",
                    "args",
                    "",
                );
            }
            let url = opens_remote_url(&t.value.text) && t.place == Place::Arg;
            if url {
                let name = t.name.to_ascii_lowercase();
                let includes = [
                    "_conf[",
                    "absolute_path",
                    "include",
                    "require",
                    "_path",
                    "basepath",
                    "root_path",
                    "rootdir",
                    "mosconfig",
                    "_dir",
                ]
                .iter()
                .any(|k| name.contains(k));
                if includes {
                    rfi.push(t);
                }
            }
            let raw_nul = t.value.control
                && matches!(
                    t.place,
                    Place::Arg
                        | Place::ArgName
                        | Place::Path
                        | Place::Cookie
                        | Place::Referer
                        | Place::UserAgent
                );
            if raw_nul {
                add(
                    NUL,
                    Protocol,
                    Critical,
                    "NUL or control character in an argument or the path",
                    &label(t),
                    "",
                );
            }
            if replaced(&t.value) && matches!(t.place, Place::Arg | Place::ArgName | Place::Path) {
                add(
                    INVALID_UTF8,
                    Protocol,
                    Warning,
                    "invalid or overlong UTF-8",
                    &label(t),
                    "",
                );
            }
            if t.value.escapes && matches!(t.place, Place::Arg | Place::ArgName) {
                add(
                    JS_ESCAPE,
                    Protocol,
                    Critical,
                    "JavaScript Unicode escape in an argument",
                    &label(t),
                    &t.value.text,
                );
            }
            if t.value.layers >= 2 && matches!(t.place, Place::Arg | Place::Path) {
                add(
                    ENCODING_LAYERS,
                    Protocol,
                    Warning,
                    "multiple URL encoding",
                    &label(t),
                    &t.value.text,
                );
            }
            if t.name.len() == "_charset_".len()
                && t.place == Place::Arg
                && t.name.eq_ignore_ascii_case("_charset_")
                && !matches!(
                    t.value.text.trim(),
                    "utf-8" | "iso-8859-1" | "gbk" | "gb18030"
                )
            {
                add(
                    MULTIPART_CHARSET_FIELD,
                    Multipart,
                    Critical,
                    "_charset_ field with a charset not allowed",
                    &label(t),
                    &t.value.text,
                );
            }
        }
        // IIS `%uFFxx` full-width encoding of ASCII (Chinese text's own full-width punctuation,
        // sent as UTF-8, is not this).
        // (Only the `u`s are looked at, found by `memchr` a vector at a time: this reads every
        // byte of the body, and URL-encoded text, all `%` and hex digits, has next to none.)
        let iis_fullwidth = |b: &[u8]| {
            memchr::memchr2_iter(b'u', b'U', b).any(|i| {
                i > 0
                    && b.get(i - 1) == Some(&b'%')
                    && b.get(i + 1..i + 3)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"ff"))
            })
        };
        let in_uri = part != Part::Body && iis_fullwidth(req.uri);
        let in_body = part != Part::Head && req.body.is_some_and(iis_fullwidth);
        if in_uri || in_body {
            add(
                FULLWIDTH,
                Protocol,
                Critical,
                "IIS %u full-width encoding",
                "uri",
                "%uff",
            );
        }
        if f.json_invalid {
            add(
                JSON_INVALID,
                Protocol,
                Critical,
                "JSON body that does not parse (or nests too deep)",
                "body",
                "",
            );
        }
        if f.multipart_invalid {
            add(
                MULTIPART_INVALID,
                Multipart,
                Critical,
                "malformed multipart body",
                "body",
                "",
            );
        }
        if f.multipart_names {
            add(
                MULTIPART_NAMES,
                Multipart,
                Critical,
                "multipart field or file name with ; \\ = \" or &",
                "body",
                "",
            );
        }
        if f.multipart_evasive {
            add(
                MULTIPART_CHARSET,
                Multipart,
                Critical,
                "multipart part with its own charset or transfer encoding",
                "body",
                "",
            );
        }
        if f.too_many_args {
            add(
                TOO_MANY_ARGS,
                Protocol,
                Critical,
                "too many arguments",
                "args",
                "",
            );
        }
        for t in rfi {
            Self::add(
                cfg,
                v,
                RFI_PARAM,
                Category::Rfi,
                Critical,
                "URL in an include-path argument",
                &label(t),
                &t.name,
                &t.value.text,
            );
        }
    }
}

/// Headers no client may send to a backend through the gateway (CRS 920450's list).
const RESTRICTED_HEADERS: [&str; 12] = [
    "proxy",
    "content-encoding",
    "lock-token",
    "content-range",
    "if",
    "translate",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "content-base",
    "back",
    "x-forwarded-host-override",
];

// The request rules' checks of headers that benign requests seldom send, each out of line: in
// the gateway an inspection pays mostly for the code lines it brings back into the first-level
// cache, and these would otherwise sit between the lines every request runs.

/// Whether an Accept header naming a charset names one the policy does not allow.
#[inline(never)]
fn odd_accept_charset(accept: &[u8]) -> bool {
    let accept = String::from_utf8_lossy(accept).to_ascii_lowercase();
    accept.split("charset=").skip(1).any(|rest| {
        let value = rest
            .split([',', ';'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        !ALLOWED_CHARSETS.contains(&value)
    })
}

/// A Range header (lowered, for the evidence) when it is invalid or abusive.
#[inline(never)]
fn bad_range(range: &[u8]) -> Option<String> {
    let range = String::from_utf8_lossy(range).to_ascii_lowercase();
    let bad = range.strip_prefix("bytes=").is_none_or(|spec| {
        spec.split(',').count() > 5
            || spec.split(',').any(|r| {
                let (a, b) = r.trim().split_once('-').unwrap_or(("x", ""));
                match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) => b < a,
                    (Ok(_), Err(_)) => !b.is_empty(),
                    (Err(_), Ok(_)) => !a.is_empty(),
                    _ => true,
                }
            })
    });
    bad.then_some(range)
}

/// A Connection header (lowered, for the evidence) that repeats an option or asks for both
/// `keep-alive` and `close`.
#[inline(never)]
fn odd_connection(conn: &[u8]) -> Option<String> {
    let conn = normalize::lossy(conn);
    // Its comma-separated parts, compared ignoring ASCII case (as if lowered).
    let parts = || conn.split(',').map(str::trim);
    let dup = parts()
        .enumerate()
        .any(|(i, p)| parts().take(i).any(|q| q.eq_ignore_ascii_case(p)));
    let has = |w: &str| parts().any(|p| p.eq_ignore_ascii_case(w));
    (dup || (has("keep-alive") && has("close"))).then(|| conn.to_ascii_lowercase())
}

/// The headers the request rules read, found in one pass over the headers (the first of each
/// name, as `Request::header` would find it).
#[derive(Default)]
struct Heads<'a> {
    host: Option<&'a [u8]>,
    accept: Option<&'a [u8]>,
    accept_encoding: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    content_length: Option<&'a [u8]>,
    transfer_encoding: bool,
    range: Option<&'a [u8]>,
    request_range: bool,
    connection: Option<&'a [u8]>,
    /// Names of restricted headers present, in order (as sent).
    restricted: Vec<&'a str>,
    /// A `Cookie` header opening with `$Version`.
    cookie_v1: bool,
}

impl<'a> Heads<'a> {
    /// `names`: the request's header names, lowered ([`parse::lower_names`]).
    fn of(req: &Request<'a>, names: &[Cow<'_, str>]) -> Heads<'a> {
        let mut h = Heads::default();
        for (lname, &(name, value)) in names.iter().zip(&req.headers) {
            let first = |slot: &mut Option<&'a [u8]>| {
                slot.get_or_insert(value);
            };
            // Compared in lower case, as the names arrive from Pingora (HTTP/1 and HTTP/2): a
            // comparison ignoring case per name unrolled into a long run of code. No restricted
            // name is one of the others.
            match &**lname {
                "host" => first(&mut h.host),
                "range" => first(&mut h.range),
                "accept" => first(&mut h.accept),
                "cookie" => h.cookie_v1 |= value.starts_with(b"$Version"),
                "connection" => first(&mut h.connection),
                "content-type" => first(&mut h.content_type),
                "request-range" => h.request_range = true,
                "content-length" => first(&mut h.content_length),
                "accept-encoding" => first(&mut h.accept_encoding),
                "transfer-encoding" => h.transfer_encoding = true,
                n if RESTRICTED_HEADERS.contains(&n) => h.restricted.push(name),
                _ => {}
            }
        }
        h
    }
}

/// Charsets the Accept and Content-Type headers may name (lower case).
const ALLOWED_CHARSETS: [&str; 7] = [
    "utf-8",
    "iso-8859-1",
    "iso-8859-15",
    "windows-1252",
    "gbk",
    "gb2312",
    "gb18030",
];

/// Whether `hay` starts with `prefix` (ASCII) in any case.
pub(crate) fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// Whether `hay` holds `needle` (lower case ASCII) in any case.
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    matches_ignore_case(hay, needle).next().is_some()
}

/// Where `needle` starts in `hay`, ignoring ASCII case: the places of its first byte (either
/// case) found with `memchr`, the rest compared there.
fn matches_ignore_case<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    let (first, rest) = needle.split_first().map_or((0, &b""[..]), |(f, r)| (*f, r));
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), hay).filter(
        move |&i| {
            hay.get(i + 1..i + 1 + rest.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        },
    )
}

/// The Content-Type parameters of request bodies.
const CONTENT_TYPE_PARAMETERS: [&str; 8] = [
    "charset",
    "boundary",
    "action",
    "component",
    "start",
    "start-info",
    "type",
    "version",
];

/// What the request rules read in a Content-Type, from one pass over its `;`-separated parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentType {
    /// Where the media type (the first part, blanks trimmed) is in the header: [`Self::media`].
    media_at: (usize, usize),
    /// `type/subtype` then `; key=value` parameters of the keys request bodies use, nothing
    /// else.
    well_formed: bool,
    /// A `boundary` or `charset` parameter whose value holds a `/`: a media type hidden there.
    smuggled: bool,
    /// Parts that start `charset=` (any case, the first part too).
    charsets: usize,
    /// One of them names a charset not in [`ALLOWED_CHARSETS`] (quotes trimmed).
    odd_charset: bool,
    /// Places where `charset` is written, in any case, anywhere.
    mentions: usize,
    /// `%`, `#`, `(`, `@` or `'` anywhere (CONTENT_TYPE_CHARS).
    illegal_chars: bool,
}

impl ContentType {
    /// The media type: the first part of `ct` (the header these facts were read from), trimmed.
    fn media<'c>(&self, ct: &'c str) -> &'c str {
        ct.get(self.media_at.0..self.media_at.1).unwrap_or("")
    }

    /// [`Self::read`], from the thread's memory when `ct` was seen before (exact text; see
    /// `memo::content_type`).
    fn of(ct: &str) -> ContentType {
        if let Some(facts) = memo::content_type(ct) {
            return facts;
        }
        let facts = Self::read(ct);
        memo::remember_content_type(ct, facts);
        facts
    }

    fn read(ct: &str) -> ContentType {
        let mut parts = ct.split(';');
        let first = parts.next().unwrap_or("");
        let media = first.trim();
        let start = first.len() - first.trim_start().len();
        let mut facts = ContentType {
            media_at: (start, start + media.len()),
            well_formed: media
                .split_once('/')
                .is_some_and(|(ty, sub)| is_token(ty) && is_token(sub)),
            smuggled: false,
            charsets: 0,
            odd_charset: false,
            mentions: matches_ignore_case(ct.as_bytes(), b"charset").count(),
            illegal_chars: ct
                .bytes()
                .any(|b| matches!(b, b'%' | b'#' | b'(' | b'@' | b'\'')),
        };
        facts.charset(first);
        for p in parts {
            facts.charset(p);
            let Some((k, v)) = p.split_once('=') else {
                facts.well_formed = false;
                continue;
            };
            let k = k.trim();
            if k.eq_ignore_ascii_case("boundary") || k.eq_ignore_ascii_case("charset") {
                facts.smuggled |= v.trim().trim_matches(['"', '\'']).contains('/');
            }
            if facts.well_formed {
                let v = v.trim_end();
                facts.well_formed = CONTENT_TYPE_PARAMETERS
                    .iter()
                    .any(|known| k.eq_ignore_ascii_case(known))
                    && !v.is_empty()
                    && !v.starts_with(' ')
                    && v.bytes().all(|b| b.is_ascii_graphic());
            }
        }
        facts
    }

    /// Counts a `charset=` part and checks its value.
    fn charset(&mut self, part: &str) {
        let p = part.trim();
        if p.get(..8)
            .is_some_and(|k| k.eq_ignore_ascii_case("charset="))
        {
            self.charsets += 1;
            let c = p.get(8..).unwrap_or("").trim_matches('"');
            self.odd_charset |= !ALLOWED_CHARSETS.iter().any(|k| c.eq_ignore_ascii_case(k));
        }
    }
}

/// A set of bytes as a table (for one lookup per byte).
pub(crate) const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// Whether `s` is an RFC 9110 token (of the characters media types use).
fn is_token(s: &str) -> bool {
    /// Token characters besides letters and digits.
    const EXTRA: [bool; 256] = byte_set(b"!#$&-^_.+*");
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || EXTRA[usize::from(b)])
}

/// Removes `style="..."` attributes whose value holds only plain declarations (no parentheses,
/// backslashes, `@`, `&`, or angle brackets).
fn strip_plain_styles(html: &str) -> Cow<'_, str> {
    if !html.contains("style") {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find("style") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 5..];
        let stripped = after
            .trim_start()
            .strip_prefix('=')
            .map(str::trim_start)
            .and_then(|v| {
                let q = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let body = &v[1..];
                let end = body.find(q)?;
                let plain = !body[..end].contains(['(', ')', '\\', '@', '&', '<', '>']);
                plain.then(|| &body[end + 1..])
            });
        match stripped {
            Some(tail) => rest = tail,
            None => {
                out.push_str("style");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `\b` as an ASCII word boundary. A Unicode one makes the regex crate's lazy DFA give up on
/// any non-ASCII input (all Chinese text) and fall back to its far slower PikeVM; the keywords the
/// rules bound are ASCII anyway.
fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Whether `text`, after any leading white space, opens with an `http`, `https`, `ftp` or `ftps`
/// URL (remote file inclusion).
fn opens_remote_url(text: &str) -> bool {
    // Most values are ruled out by their first byte, not four calls to `memcmp`: the schemes
    // start with `h` or `f`, and a value that starts with white space starts with one of the
    // bytes that lead white space in UTF-8 (CJK text does not: E4-E9).
    const FIRST: [bool; 256] = byte_set(b"hf\t\n\x0b\x0c\r \xc2\xe1\xe2\xe3");
    text.as_bytes()
        .first()
        .is_some_and(|b| FIRST[usize::from(*b)])
        && {
            let v = text.trim_start();
            ["http://", "https://", "ftp://", "ftps://"]
                .iter()
                .any(|p| v.starts_with(p))
        }
}

/// Whether an argument name is longer than 100 characters (ARG_NAME_LONG). A text has no more
/// characters than bytes: most names are ruled out by their length, without counting.
fn too_long_name(text: &str) -> bool {
    text.len() > 100 && text.chars().count() > 100
}

/// Whether `text` holds U+FFFD (bytes that were not UTF-8, or sent as the character itself).
/// Searching for a non-ASCII character sets up a substring search: text without its first
/// byte is ruled out first, by its summary.
fn replaced(n: &Normalized) -> bool {
    // Its UTF-8 bytes EF BF BD, found from the lead byte (exact in valid UTF-8): the standard
    // search for the character looks for its last byte, 0xbd, which Chinese text is full of.
    let b = n.text.as_bytes();
    n.summary.has_ef()
        && memchr::memchr_iter(0xef, b).any(|i| b.get(i + 1..i + 3) == Some(&[0xbf, 0xbd][..]))
}

/// The match with up to 24 characters either side.
fn context(value: &str, start: usize, end: usize) -> String {
    let before: String = value[..start]
        .chars()
        .rev()
        .take(24)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let after: String = value[end..].chars().take(24).collect();
    format!("{before}{}{after}", &value[start..end])
}

fn label(t: &Target) -> String {
    match t.place {
        Place::Path | Place::RawBody => t.place.label().to_string(),
        Place::UserAgent | Place::Referer => t.place.label().to_string(),
        Place::Header => format!("header:{}", t.name),
        p => format!("{}:{}", p.label(), t.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use normalize::Summary;

    #[test]
    fn the_join_buffer_is_kept_only_when_small() {
        let e = Engine::new().unwrap();
        let cfg = Config::default();
        let inspect = |body: &str| {
            let req = Request {
                method: "POST",
                uri: b"/apply",
                headers: vec![
                    ("host", b"gov.example.cn".as_slice()),
                    (
                        "content-type",
                        b"application/x-www-form-urlencoded".as_slice(),
                    ),
                ],
                names_lower: true,
                body: Some(body.as_bytes()),
                body_truncated: false,
            };
            e.inspect(&cfg, &req)
        };
        let kept = || {
            JOIN_BUFFER.with(|b| {
                let buf = b.take();
                let capacity = buf.capacity();
                b.replace(buf);
                capacity
            })
        };
        // Two values of one place are joined; the buffer is then kept for the next request,
        // which still finds what it holds.
        assert!(!inspect("a=%E5%BC%A0%E4%B8%89&b=13800000000").attack);
        assert!(kept() > 0);
        assert!(inspect("a=1&b=<script>alert(1)</script>").attack);
        assert!(kept() > 0);
        // A request whose values join to more than the limit leaves no buffer behind.
        let long = format!("a={}&b=y", "x".repeat(JOIN_BUFFER_KEPT));
        assert!(!inspect(&long).attack);
        assert_eq!(kept(), 0);
    }

    #[test]
    fn places_at_route_level_are_never_remembered() {
        use Place::*;
        for place in [
            Path, ArgName, Arg, CookieName, Cookie, UserAgent, Referer, Header, RawBody, FileName,
        ] {
            let at_route_level = place as u16 & AT_ROUTE_LEVEL != 0;
            assert_eq!(at_route_level, !memo::repeats(place), "{place:?}");
        }
    }

    #[test]
    fn substrings_ignoring_case() {
        let windows = |hay: &[u8], needle: &[u8]| {
            hay.windows(needle.len())
                .filter(|w| w.eq_ignore_ascii_case(needle))
                .count()
        };
        for (hay, needle) in [
            (
                &b"text/html; Charset=utf-8; CHARSET=gbk"[..],
                &b"charset"[..],
            ),
            (b"charset", b"charset"),
            (b"charse", b"charset"),
            (b"ccharsetcharset", b"charset"),
            (b"application/vnd.api+JSON", b"+json"),
            (b"", b"+json"),
            (b"x+jso", b"+json"),
        ] {
            assert_eq!(
                matches_ignore_case(hay, needle).count(),
                windows(hay, needle)
            );
            assert_eq!(contains_ignore_case(hay, needle), windows(hay, needle) > 0);
            assert_eq!(
                starts_with_ignore_case(hay, needle),
                hay.len() >= needle.len() && windows(&hay[..needle.len()], needle) == 1
            );
        }
        assert!(starts_with_ignore_case(
            b"Multipart/Form-Data; b=1",
            b"multipart/"
        ));
    }

    /// Names are measured in characters, not bytes: 60 Chinese characters (180 bytes) are
    /// not a long name, 101 characters of any width are.
    #[test]
    fn long_names_count_characters() {
        assert!(!too_long_name(&"张".repeat(60)));
        assert!(!too_long_name(&"a".repeat(100)));
        assert!(too_long_name(&"a".repeat(101)));
        assert!(too_long_name(&"张".repeat(101)));
    }

    /// The one-pass reading of a Content-Type gives what each rule's own reading gave.
    #[test]
    fn content_type_facts() {
        for ct in [
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/json",
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            "text/plain; charset=utf-8; charset=gbk",
            "text/plain; Charset=\"utf-7\"",
            "charset=utf-8",
            "application/json; boundary=\"a/b\"",
            "application/json;charset=text/html",
            "application/json; foo",
            "application/json; x=1",
            "application/json; type= a",
            "application/json; type=",
            "application /json",
            "application/",
            "/json",
            "",
            ";;",
            "a/b; charset=utf-8; boundary='x/y'",
            "text/html;charset=中文",
            "text/plain; version=1.0; start-info=x; start=<a>",
        ] {
            content_type_as_reference(ct);
        }
    }

    /// What `ContentType::read` finds, as the straightforward reading of each fact finds it.
    fn content_type_as_reference(ct: &str) {
        let known = CONTENT_TYPE_PARAMETERS;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        let well_formed = |ct: &str| {
            let mut parts = ct.split(';');
            let media = parts.next().unwrap_or("").trim();
            media
                .split_once('/')
                .is_some_and(|(ty, sub)| token(ty) && token(sub))
                && parts.all(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        let (k, v) = (k.trim(), v.trim_end());
                        known.iter().any(|n| k.eq_ignore_ascii_case(n))
                            && !v.is_empty()
                            && !v.starts_with(' ')
                            && v.bytes().all(|b| b.is_ascii_graphic())
                    })
                })
        };
        let smuggled = |ct: &str| {
            ct.split(';').skip(1).any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    let k = k.trim();
                    (k.eq_ignore_ascii_case("boundary") || k.eq_ignore_ascii_case("charset"))
                        && v.trim().trim_matches(['"', '\'']).contains('/')
                })
            })
        };
        let charsets = |ct: &str| -> Vec<String> {
            ct.split(';')
                .filter_map(|p| {
                    let p = p.trim();
                    p.get(..8)
                        .is_some_and(|k| k.eq_ignore_ascii_case("charset="))
                        .then(|| p.get(8..).unwrap_or("").trim_matches('"').to_string())
                })
                .collect()
        };
        let f = ContentType::read(ct);
        // Remembered or read afresh, the same facts (twice: the second time from memory).
        assert_eq!(ContentType::of(ct), f, "{ct}");
        assert_eq!(ContentType::of(ct), f, "{ct}");
        assert_eq!(
            f.media(ct),
            ct.split(';').next().unwrap_or("").trim(),
            "{ct}"
        );
        assert_eq!(f.well_formed, well_formed(ct), "{ct}");
        assert_eq!(f.smuggled, smuggled(ct), "{ct}");
        let c = charsets(ct);
        assert_eq!(f.charsets, c.len(), "{ct}");
        let odd = c
            .iter()
            .any(|c| !ALLOWED_CHARSETS.iter().any(|k| c.eq_ignore_ascii_case(k)));
        assert_eq!(f.odd_charset, odd, "{ct}");
        let mentions = ct
            .as_bytes()
            .windows(7)
            .filter(|w| w.eq_ignore_ascii_case(b"charset"))
            .count();
        assert_eq!(f.mentions, mentions, "{ct}");
        let illegal = ["%", "#", "(", "@", "'"].iter().any(|c| ct.contains(c));
        assert_eq!(f.illegal_chars, illegal, "{ct}");
    }

    /// Which libinjection checks a value calls for, as it was written first: a branch per byte.
    fn may_inject_reference(value: &str) -> (bool, bool) {
        let (mut sql, mut html) = (false, false);
        let b = value.as_bytes();
        for (i, c) in b.iter().enumerate() {
            match c {
                b'\'' | b'"' | b'`' | b'<' | b'>' | b'=' => {
                    sql = true;
                    html = true;
                }
                b';' | b'(' | b')' | b'#' | b'|' | b'&' | b'!' | b'\\' => sql = true,
                b'-' if b.get(i + 1) == Some(&b'-') => sql = true,
                b'/' if b.get(i + 1) == Some(&b'*') => sql = true,
                _ => {}
            }
        }
        (sql, html)
    }

    #[test]
    fn remote_urls() {
        for (text, expected) in [
            ("http://evil/x", true),
            (" \u{3000}\u{a0}ftps://evil", true),
            ("\u{2028}https://evil", true),
            ("张三 http://evil", false),
            ("help", false),
            ("", false),
        ] {
            assert_eq!(opens_remote_url(text), expected, "{text:?}");
        }
    }

    #[test]
    fn characters_that_call_for_libinjection() {
        for (value, expected) in [
            ("张三 北京市", (false, false)),
            ("a-b-c/d*e", (false, false)),
            ("a--b", (true, false)),
            ("a/*b", (true, false)),
            ("*/", (false, false)),
            ("-*", (false, false)),
            ("a;b", (true, false)),
            ("O'Neil", (true, true)),
            ("<b>", (true, true)),
            ("x=1", (true, true)),
        ] {
            assert_eq!(
                Summary::of(value.as_bytes()).may_inject(),
                expected,
                "{value}"
            );
            assert_eq!(may_inject_reference(value), expected, "{value}");
        }
    }

    proptest::proptest! {
        /// Every white space character, before a scheme or not, read as `trim_start` reads it.
        #[test]
        fn remote_urls_as_the_reference(
            text in "[ \t\n\u{b}\u{c}\r\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{1c}张x]{0,3}(http://|https://|ftp://|ftps://|ftp:/|h|f)?a",
        ) {
            let v = text.trim_start();
            let reference = ["http://", "https://", "ftp://", "ftps://"]
                .iter()
                .any(|p| v.starts_with(p));
            proptest::prop_assert_eq!(opens_remote_url(&text), reference);
        }

        /// Every byte class and both two-byte comments, in any order, as the reference reads them.
        #[test]
        fn may_inject_as_the_reference(value in "[-/*a ;()#|&!\\\\'\"`<>=中]{0,12}") {
            proptest::prop_assert_eq!(Summary::of(value.as_bytes()).may_inject(), may_inject_reference(&value));
        }

        /// Content types made of the pieces the rules look at read as the reference reads them.
        #[test]
        fn content_types_read_as_the_reference(
            ct in "(application/json|text/plain|multipart/form-data|a /b|/|;|=|\"|'| |charset|Charset=|CHARSET=|boundary=|Boundary=|Type=|utf-8|GBK|utf-7|a/b|x|中|\u{3000}|\u{b}|%|#|\\(|@|'){0,12}",
        ) {
            content_type_as_reference(&ct);
        }
    }

    #[test]
    fn every_rule_compiles() {
        let e = Engine::new().unwrap();
        assert!(e.catalogue().len() > 60);
    }
}
