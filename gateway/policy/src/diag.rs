//! Diagnostics for operators: every problem in a policy set, each with a stable code, the exact
//! `file:line:col`, what is wrong, why, and how to fix it. Rendering is plain text so that it
//! reads the same in a terminal, a log line and the admin `/policy` endpoint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Stable diagnostic codes. Never renumber: operators search for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The policy directory or a file could not be read.
    Io,
    /// TOML syntax error.
    Syntax,
    /// A key that the policy model does not have.
    UnknownKey,
    /// A value of the wrong type or shape.
    InvalidValue,
    /// A reference by name to something not defined.
    Dangling,
    /// Two things with the same name.
    Duplicate,
    /// A single-table section defined in more than one file.
    SectionTwice,
    /// A route's match is missing, doubled or malformed.
    RouteMatch,
    /// Two routes match exactly the same requests.
    Ambiguous,
    /// A certificate or key file is missing or unusable.
    CertFile,
    /// A listen address is invalid or used twice.
    Listen,
    /// A backend address is invalid or does not resolve.
    Backend,
    /// TLS settings that cannot work together.
    Tls,
    /// A setting that needs another one.
    Requires,
    /// Nothing to serve.
    Empty,
    /// A host pattern is malformed.
    Host,
    /// A key or secret file is missing, malformed or readable by others.
    KeyFile,
}

impl Code {
    /// The printed code, e.g. `MW-POL-004`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "MW-POL-000",
            Code::Syntax => "MW-POL-001",
            Code::UnknownKey => "MW-POL-002",
            Code::InvalidValue => "MW-POL-003",
            Code::Dangling => "MW-POL-004",
            Code::Duplicate => "MW-POL-005",
            Code::SectionTwice => "MW-POL-006",
            Code::RouteMatch => "MW-POL-007",
            Code::Ambiguous => "MW-POL-008",
            Code::CertFile => "MW-POL-009",
            Code::Listen => "MW-POL-010",
            Code::Backend => "MW-POL-011",
            Code::Tls => "MW-POL-012",
            Code::Requires => "MW-POL-013",
            Code::Empty => "MW-POL-014",
            Code::Host => "MW-POL-015",
            Code::KeyFile => "MW-POL-017",
        }
    }
}

/// One problem, located.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub what: String,
    pub why: String,
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: error[{}]: {}",
            self.file.display(),
            self.line,
            self.col,
            self.code.as_str(),
            self.what
        )?;
        writeln!(f, "  = why: {}", self.why)?;
        write!(f, "  = fix: {}", self.fix)
    }
}

/// A source file kept for locating byte offsets.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }
}

/// All problems found in one load. Empty means valid.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Records a problem located at `span` of `src`.
    pub fn at(
        &mut self,
        code: Code,
        src: &Source,
        span: Range<usize>,
        what: String,
        why: &str,
        fix: String,
    ) {
        let (line, col) = src.line_col(span.start);
        self.0.push(Diagnostic {
            code,
            file: src.path.clone(),
            line,
            col,
            what,
            why: why.to_string(),
            fix,
        });
    }

    /// Records a problem that belongs to a file as a whole (or the directory).
    pub fn file(&mut self, code: Code, path: &Path, what: String, why: &str, fix: String) {
        self.0.push(Diagnostic {
            code,
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            what,
            why: why.to_string(),
            fix,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sorted by file and position so that output is stable.
    pub fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Names of one kind declared so far, with where: the one place a second declaration of a name
/// is reported (`MW-POL-005`, pointing at the first).
pub struct Declared {
    kind: &'static str,
    at: std::collections::HashMap<String, String>,
}

impl Declared {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            at: std::collections::HashMap::new(),
        }
    }

    /// True when `name` is new; otherwise records the duplicate and returns false.
    pub fn first(
        &mut self,
        src: &Source,
        name: &toml::Spanned<String>,
        why: &str,
        fix: &str,
        diags: &mut Diagnostics,
    ) -> bool {
        if let Some(prev) = self.at.get(name.get_ref()) {
            let what = format!(
                "{} `{}` is already defined at {prev}",
                self.kind,
                name.get_ref()
            );
            diags.at(
                Code::Duplicate,
                src,
                name.span(),
                what,
                why,
                fix.to_string(),
            );
            return false;
        }
        let line = src.line_col(name.span().start).0;
        self.at.insert(
            name.get_ref().clone(),
            format!("{}:{line}", src.path.display()),
        );
        true
    }
}

/// `did you mean "x"?` when a close candidate exists.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let s = Source {
            path: "a.toml".into(),
            text: "a = 1\n名字 = \"x\"\n".into(),
        };
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        let off = s
            .text
            .find('=')
            .map(|_| s.text.rfind('=').unwrap())
            .unwrap();
        assert_eq!(s.line_col(off), (2, 4));
    }

    #[test]
    fn a_second_declaration_points_at_the_first() {
        let text = "name = \"a\"\nname = \"a\"\n";
        let src = Source {
            path: "l.toml".into(),
            text: text.into(),
        };
        let spanned = |start: usize| toml::Spanned::new(start..start + 3, "a".to_string());
        let (mut d, mut diags) = (Declared::new("limit"), Diagnostics::default());
        assert!(d.first(&src, &spanned(7), "why", "fix", &mut diags));
        assert!(!d.first(&src, &spanned(19), "why", "fix", &mut diags));
        assert_eq!(diags.0.len(), 1);
        assert_eq!(diags.0[0].line, 2);
        assert_eq!(diags.0[0].what, "limit `a` is already defined at l.toml:1");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("ech0", ["echo", "citizens"]), Some("echo"));
        assert_eq!(did_you_mean("zzz", ["echo", "citizens"]), None);
    }
}
