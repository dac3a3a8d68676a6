//! Reading a policy directory: every `*.toml` directly inside it (sub-directories such as
//! `examples/` are not read), in file-name order, each parsed on its own so that one broken file
//! still lets the others be checked.

use crate::diag::{did_you_mean, Code, Diagnostics, Source};
use crate::raw::PolicyFile;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The files of one policy directory, read and parsed.
pub struct Loaded {
    pub sources: Vec<Source>,
    /// Parsed files, by index into `sources` (files that failed to parse are absent).
    pub files: Vec<(usize, PolicyFile)>,
    pub sha256: String,
}

/// Reads and parses every policy file of `dir`; problems go to `diags`.
pub fn read_dir(dir: &Path, diags: &mut Diagnostics) -> Loaded {
    let sources = read_sources(dir, diags);
    let sha256 = hash(&sources);
    let files = sources
        .iter()
        .enumerate()
        .filter_map(|(i, src)| parse(src, diags).map(|f| (i, f)))
        .collect();
    Loaded {
        sources,
        files,
        sha256,
    }
}

fn read_sources(dir: &Path, diags: &mut Diagnostics) -> Vec<Source> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.file(
                Code::Io,
                dir,
                format!("cannot read the policy directory: {e}"),
                "menwei reads every *.toml file directly inside the policy directory",
                "check the path given with --policies (default ./policies) and its permissions"
                    .into(),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => out.push(Source { path, text }),
                Err(e) => diags.file(
                    Code::Io,
                    &path,
                    format!(
                        "file is not UTF-8 (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                    "policy files are TOML, which must be UTF-8",
                    "save the file as UTF-8".into(),
                ),
            },
            Err(e) => diags.file(
                Code::Io,
                &path,
                format!("cannot read file: {e}"),
                "every *.toml file in the policy directory is part of the policy",
                "fix its permissions, or move it out of the directory".into(),
            ),
        }
    }
    if out.is_empty() && diags.is_empty() {
        diags.file(
            Code::Empty,
            dir,
            "no *.toml policy file in this directory".into(),
            "the gateway needs at least one listener and one route",
            "point --policies at the directory holding gateway.toml and routes.toml".into(),
        );
    }
    out
}

fn hash(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        let name = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        h.update(name.as_bytes());
        h.update([0]);
        h.update((s.text.len() as u64).to_be_bytes());
        h.update(s.text.as_bytes());
    }
    hex::encode(h.finalize())
}

fn parse(src: &Source, diags: &mut Diagnostics) -> Option<PolicyFile> {
    if let Err(e) = src.text.parse::<toml::Table>() {
        let span = e.span().unwrap_or(0..0);
        diags.at(
            Code::Syntax,
            src,
            span,
            format!("invalid TOML: {}", e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join("; ")),
            "policy files must be valid TOML 1.0",
            "correct the syntax here: strings need quotes, tables are `[name]`, repeated entries `[[name]]`".into(),
        );
        return None;
    }
    match toml::from_str::<PolicyFile>(&src.text) {
        Ok(f) => Some(f),
        Err(e) => {
            report_serde(src, &e, diags);
            None
        }
    }
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" into (x, [a, b]).
fn unknown_and_expected<'a>(msg: &'a str, what: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let rest = msg.strip_prefix(what)?;
    let mut ticks = rest.split('`').skip(1).step_by(2);
    let wrong = ticks.next()?;
    Some((wrong, ticks.collect()))
}

fn report_serde(src: &Source, e: &toml::de::Error, diags: &mut Diagnostics) {
    let span = e.span().unwrap_or(0..0);
    let joined = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let msg = joined.as_str();
    if let Some((wrong, expected)) = unknown_and_expected(msg, "unknown field ") {
        let fix = match did_you_mean(wrong, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "remove it; every key is listed in docs/policies.md".into(),
        };
        let why = format!("keys allowed here: {}", expected.join(", "));
        diags.at(
            Code::UnknownKey,
            src,
            span,
            format!("unknown key `{wrong}`"),
            &why,
            fix,
        );
    } else if let Some((wrong, expected)) = unknown_and_expected(msg, "unknown variant ") {
        let fix = match did_you_mean(wrong, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("use one of: {}", expected.join(", ")),
        };
        let why = format!(
            "this key takes one of a closed set of values: {}",
            expected.join(", ")
        );
        diags.at(
            Code::InvalidValue,
            src,
            span,
            format!("unknown value `{wrong}`"),
            &why,
            fix,
        );
    } else {
        diags.at(
            Code::InvalidValue,
            src,
            span,
            format!("invalid value: {msg}"),
            "each key takes a value of one documented type",
            "see docs/policies.md for this key; `menwei schema` gives editors completion and checking".into(),
        );
    }
}
