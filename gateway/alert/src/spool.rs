//! A sink's queue of alerts not yet delivered. With a spool directory it is a JSON-lines file
//! plus the byte offset of the first undelivered line, so alerts survive a sink outage and a
//! restart; without one it lives in memory. Bounded either way ([`MAX_PENDING`]), and the file
//! is rewritten without its delivered lines once they pass [`COMPACT_AT`] bytes, so a backlog
//! that never empties (a throttled robot, say) does not grow the disk without bound.
//!
//! Crash safety: every step leaves either the right state or one where some delivered alerts
//! are sent again, never one where an undelivered alert is skipped. The offset is replaced
//! atomically (written beside, then renamed); a torn last line (a crash in mid-write) is cut
//! off at the next open; an offset beyond the file or inside a line is corrected.

use crate::Event;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Alerts waiting per sink at most; more are dropped (and counted by the caller).
pub const MAX_PENDING: usize = 10_000;

/// Delivered bytes at the head of the file that trigger a rewrite without them.
pub const COMPACT_AT: u64 = 1 << 20;

pub struct Spool {
    /// Each alert with the file offset just past its line (0 in memory).
    pending: VecDeque<(Event, u64)>,
    file: Option<Files>,
    /// Delivered bytes at which the next compaction is tried.
    next_compact: u64,
}

struct Files {
    data: PathBuf,
    offset: PathBuf,
}

impl Spool {
    pub fn open(dir: Option<&Path>, sink: &str) -> Spool {
        let mut s = Spool {
            pending: VecDeque::new(),
            file: None,
            next_compact: COMPACT_AT,
        };
        let Some(dir) = dir else { return s };
        let safe: String = sink
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "alert spool directory unusable; spooling in memory");
            return s;
        }
        let files = Files {
            data: dir.join(format!("{safe}.jsonl")),
            offset: dir.join(format!("{safe}.offset")),
        };
        let mut offset: u64 = std::fs::read_to_string(&files.offset)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let mut bytes = std::fs::read(&files.data).unwrap_or_default();
        // A last line without its newline was torn by a crash: cut it off, or the next alert
        // would be appended to it and both lost.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::warn!(file = %files.data.display(), bytes = bytes.len() - whole, "alert spool ended in a torn line (a crash while writing); cut off");
            let cut = std::fs::OpenOptions::new()
                .write(true)
                .open(&files.data)
                .and_then(|f| f.set_len(whole as u64));
            if let Err(e) = cut {
                tracing::error!(file = %files.data.display(), error = %e, "alert spool unusable; spooling in memory");
                return s;
            }
            bytes.truncate(whole);
        }
        // An offset beyond the file belongs to an earlier, emptied file; one inside a line is
        // moved back to the line's start. Either way alerts may be sent twice, never skipped.
        let mut start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start > bytes.len() {
            start = 0;
        } else if start > 0 && bytes.get(start - 1) != Some(&b'\n') {
            start = bytes[..start]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
        }
        if start as u64 != offset {
            offset = start as u64;
            write_offset(&files, offset);
        }
        let mut at = offset;
        let mut over = 0usize;
        for line in bytes[start..].split_inclusive(|b| *b == b'\n') {
            at += line.len() as u64;
            match serde_json::from_slice::<Event>(line.trim_ascii()) {
                Ok(e) if s.pending.len() < MAX_PENDING => s.pending.push_back((e, at)),
                Ok(_) => over += 1,
                Err(_) => {
                    tracing::warn!(file = %files.data.display(), "unreadable line in the alert spool skipped")
                }
            }
        }
        if over > 0 {
            tracing::error!(
                sink,
                dropped = over,
                "alert spool holds more than {MAX_PENDING} alerts; the newest are dropped"
            );
        }
        if !s.pending.is_empty() {
            tracing::info!(
                sink,
                pending = s.pending.len(),
                "alerts from the spool will be delivered"
            );
        }
        s.file = Some(files);
        s
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Queues an alert; false when the spool is full (or the file cannot be written).
    pub fn push(&mut self, e: Event) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let mut end = 0;
        if let Some(files) = &self.file {
            let Ok(mut line) = serde_json::to_vec(&e) else {
                return false;
            };
            line.push(b'\n');
            match append(&files.data, &line) {
                Ok(len) => end = len,
                Err(err) => {
                    tracing::error!(file = %files.data.display(), error = %err, "alert spool write failed");
                    return false;
                }
            }
        }
        self.pending.push_back((e, end));
        true
    }

    pub fn front(&self) -> Option<&Event> {
        self.pending.front().map(|(e, _)| e)
    }

    /// The front alert was delivered.
    pub fn pop(&mut self) {
        let Some((_, end)) = self.pending.pop_front() else {
            return;
        };
        let Some(files) = &self.file else {
            return;
        };
        if self.pending.is_empty() {
            // Everything delivered: start the file afresh. The offset first, so that a crash in
            // between sends delivered alerts again rather than skip new ones.
            write_offset(files, 0);
            if let Err(e) = std::fs::write(&files.data, b"") {
                tracing::warn!(file = %files.data.display(), error = %e, "alert spool not emptied");
            }
        } else if end >= self.next_compact {
            if self.compact() {
                self.next_compact = COMPACT_AT;
            } else {
                // Disk full or unwritable: keep the file as it is, note the progress, and try
                // again only after another COMPACT_AT bytes (not on every delivery).
                self.next_compact = end.saturating_add(COMPACT_AT);
                if let Some(files) = &self.file {
                    write_offset(files, end);
                }
            }
        } else {
            write_offset(files, end);
        }
    }

    /// Rewrites the file with only the undelivered lines (a backlog that never empties); false
    /// when the file could not be replaced (it is then as it was).
    fn compact(&mut self) -> bool {
        let Some(files) = &self.file else {
            return false;
        };
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(self.pending.len());
        for (e, _) in &self.pending {
            if let Ok(line) = serde_json::to_vec(e) {
                text.extend_from_slice(&line);
            }
            text.push(b'\n');
            ends.push(text.len() as u64);
        }
        let tmp = files.data.with_extension("jsonl.tmp");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        });
        if let Err(e) = written {
            tracing::warn!(file = %tmp.display(), error = %e, "alert spool not compacted");
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        // Offset 0 before the new file replaces the old: a crash in between resends delivered
        // alerts from the old file's start, and skips none.
        write_offset(files, 0);
        if let Err(e) = std::fs::rename(&tmp, &files.data) {
            tracing::warn!(file = %files.data.display(), error = %e, "alert spool not compacted");
            let _ = std::fs::remove_file(&tmp);
            // The old file stays; the caller writes the right offset into it again.
            return false;
        }
        for ((_, end), new) in self.pending.iter_mut().zip(ends) {
            *end = new;
        }
        true
    }
}

/// Appends one line; the file's new length.
fn append(path: &Path, line: &[u8]) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line)?;
    Ok(f.metadata()?.len())
}

/// Replaces the offset file atomically: a crash leaves the old or the new offset, never none.
fn write_offset(files: &Files, offset: u64) {
    let tmp = files.offset.with_extension("offset.tmp");
    let done = std::fs::write(&tmp, offset.to_string())
        .and_then(|()| std::fs::rename(&tmp, &files.offset));
    if let Err(e) = done {
        tracing::warn!(file = %files.offset.display(), error = %e, "alert spool offset not saved; delivered alerts may be sent again after a restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    /// A fresh directory, removed when the test ends, passed or not.
    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_line_torn_by_a_crash_does_not_swallow_the_next_alert() {
        let tmp = dir();
        let dir = tmp.path();
        let mut s = Spool::open(Some(dir), "soc");
        assert!(s.push(Event::new(Severity::Warning, "r", "whole")));
        drop(s);
        // The process died in the middle of writing the next line.
        let data = dir.join("soc.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .unwrap();
        f.write_all(b"{\"time\":\"2026-12-08T0").unwrap();
        drop(f);
        let mut s = Spool::open(Some(dir), "soc");
        assert_eq!(s.len(), 1);
        assert!(s.push(Event::new(Severity::Warning, "r", "after the crash")));
        drop(s);
        let s = Spool::open(Some(dir), "soc");
        let summaries: Vec<String> = s.pending.iter().map(|(e, _)| e.summary.clone()).collect();
        assert_eq!(summaries, ["whole", "after the crash"]);
    }

    #[test]
    fn the_file_stays_bounded_while_a_backlog_never_empties() {
        let tmp = dir();
        let dir = tmp.path();
        let mut s = Spool::open(Some(dir), "robot");
        let long = "x".repeat(900);
        // A sink that delivers as fast as alerts come, one behind: the spool never empties.
        assert!(s.push(Event::new(Severity::Warning, "r", "first")));
        for i in 0..5_000 {
            assert!(s.push(Event::new(Severity::Warning, "r", format!("{i} {long}"))));
            s.pop();
        }
        let size = std::fs::metadata(dir.join("robot.jsonl")).unwrap().len();
        assert!(size < 2 * COMPACT_AT, "the spool file grew to {size} bytes");
        // What is left is exactly the one alert not yet delivered, also after a restart.
        drop(s);
        let s = Spool::open(Some(dir), "robot");
        assert_eq!(s.len(), 1);
        assert!(s.front().is_some_and(|e| e.summary.starts_with("4999 ")));
    }

    #[test]
    fn a_compaction_that_fails_keeps_the_progress_and_tries_later() {
        let tmp = dir();
        let dir = tmp.path();
        let mut s = Spool::open(Some(dir), "robot");
        // The rewrite cannot be created (a directory is in the way, as a full disk would).
        std::fs::create_dir(dir.join("robot.jsonl.tmp")).unwrap();
        let long = "x".repeat(900);
        assert!(s.push(Event::new(Severity::Warning, "r", "first")));
        for i in 0..1_500 {
            assert!(s.push(Event::new(Severity::Warning, "r", format!("{i} {long}"))));
            s.pop();
        }
        let size = std::fs::metadata(dir.join("robot.jsonl")).unwrap().len();
        assert!(size > COMPACT_AT, "not compacted while it cannot be");
        drop(s);
        // The offset was kept up to date all the same: one alert pending after a restart.
        let mut s = Spool::open(Some(dir), "robot");
        assert_eq!(s.len(), 1);
        assert!(s.front().is_some_and(|e| e.summary.starts_with("1499 ")));
        // Room again: a later delivery compacts.
        std::fs::remove_dir(dir.join("robot.jsonl.tmp")).unwrap();
        for i in 0..2_500 {
            assert!(s.push(Event::new(Severity::Warning, "r", format!("b{i} {long}"))));
            s.pop();
        }
        let size = std::fs::metadata(dir.join("robot.jsonl")).unwrap().len();
        assert!(size < 2 * COMPACT_AT, "the spool file grew to {size} bytes");
    }

    #[test]
    fn an_offset_beyond_the_file_reads_the_file_from_its_start() {
        // A crash after the offset was written but before the delivered file was emptied, then
        // new alerts: the stale offset must not hide them.
        let tmp = dir();
        let dir = tmp.path();
        let mut s = Spool::open(Some(dir), "soc");
        assert!(s.push(Event::new(Severity::Warning, "r", "new")));
        drop(s);
        std::fs::write(dir.join("soc.offset"), "999999").unwrap();
        let s = Spool::open(Some(dir), "soc");
        assert_eq!(s.front().map(|e| e.summary.as_str()), Some("new"));
    }

    #[test]
    fn survives_a_restart_and_compacts() {
        let tmp = dir();
        let dir = tmp.path();
        let mut s = Spool::open(Some(dir), "hook/1");
        for i in 0..3 {
            assert!(s.push(Event::new(Severity::Warning, "r", format!("n{i}"))));
        }
        s.pop();
        drop(s);
        let mut s = Spool::open(Some(dir), "hook/1");
        assert_eq!(s.len(), 2);
        assert_eq!(s.front().map(|e| e.summary.as_str()), Some("n1"));
        s.pop();
        s.pop();
        assert_eq!(s.len(), 0);
        let s = Spool::open(Some(dir), "hook/1");
        assert_eq!(s.len(), 0);
    }
}
