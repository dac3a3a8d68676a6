//! A sink's queue of alerts not yet delivered. With a spool directory it is a JSON-lines file
//! plus the byte offset of the first undelivered line, so alerts survive a sink outage and a
//! restart; without one it lives in memory. Bounded either way ([`MAX_PENDING`]).

use crate::Event;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Alerts waiting per sink at most; more are dropped (and counted by the caller).
pub const MAX_PENDING: usize = 10_000;

pub struct Spool {
    pending: VecDeque<(Event, u64)>,
    file: Option<(PathBuf, PathBuf)>,
    offset: u64,
}

impl Spool {
    pub fn open(dir: Option<&Path>, sink: &str) -> Spool {
        let mut s = Spool {
            pending: VecDeque::new(),
            file: None,
            offset: 0,
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
        let data = dir.join(format!("{safe}.jsonl"));
        let off = dir.join(format!("{safe}.offset"));
        s.offset = std::fs::read_to_string(&off)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if let Ok(bytes) = std::fs::read(&data) {
            let start = (s.offset as usize).min(bytes.len());
            let mut at = start as u64;
            for line in bytes[start..].split_inclusive(|b| *b == b'\n') {
                let len = line.len() as u64;
                if let Ok(e) = serde_json::from_slice::<Event>(line.trim_ascii()) {
                    if s.pending.len() < MAX_PENDING {
                        s.pending.push_back((e, at + len));
                    }
                }
                at += len;
            }
            if !s.pending.is_empty() {
                tracing::info!(
                    sink,
                    pending = s.pending.len(),
                    "alerts from the spool will be delivered"
                );
            }
        }
        s.file = Some((data, off));
        s
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues an alert; false when the spool is full (or the file cannot be written).
    pub fn push(&mut self, e: Event) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let mut end = 0;
        if let Some((data, _)) = &self.file {
            let Ok(mut line) = serde_json::to_vec(&e) else {
                return false;
            };
            line.push(b'\n');
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data)
                .and_then(|mut f| {
                    f.write_all(&line)?;
                    f.metadata().map(|m| m.len())
                });
            match written {
                Ok(len) => end = len,
                Err(err) => {
                    tracing::error!(file = %data.display(), error = %err, "alert spool write failed");
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
        let Some((data, off)) = &self.file else {
            return;
        };
        if self.pending.is_empty() {
            // Everything delivered: start the file afresh.
            let _ = std::fs::write(data, b"");
            let _ = std::fs::write(off, b"0");
            self.offset = 0;
        } else {
            self.offset = end;
            let _ = std::fs::write(off, end.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    #[test]
    fn survives_a_restart_and_compacts() {
        let dir = std::env::temp_dir().join(format!("menwei-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Spool::open(Some(&dir), "hook/1");
        for i in 0..3 {
            assert!(s.push(Event::new(Severity::Warning, "r", format!("n{i}"))));
        }
        s.pop();
        drop(s);
        let mut s = Spool::open(Some(&dir), "hook/1");
        assert_eq!(s.len(), 2);
        assert_eq!(s.front().map(|e| e.summary.as_str()), Some("n1"));
        s.pop();
        s.pop();
        assert!(s.is_empty());
        let s = Spool::open(Some(&dir), "hook/1");
        assert!(s.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
