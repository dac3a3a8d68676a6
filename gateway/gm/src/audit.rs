//! The tamper-evident audit log: one JSON object per line, each carrying a sequence number and
//! the SM3 of the previous line, so that an edited, removed or reordered record breaks the chain
//! at a place `menwei audit verify` points to.
//!
//! ```text
//! {"seq":1,"ts_ms":1763788800123,"event":"policy_reload","prev":"0000…","data":{…}}
//! {"seq":2,"ts_ms":1763788801456,"event":"login","prev":"<sm3 hex of line 1>","data":{…}}
//! ```
//!
//! Records are handed to a writer thread through a bounded queue (a request never waits for the
//! disk); the writer appends and calls `fsync` at the configured interval. When the queue is full
//! a record is counted as dropped (and the drop is itself recorded as soon as there is room), so
//! a gap is never silent. On start the writer continues the chain of an existing file.

use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Records waiting for the writer at most.
const QUEUE: usize = 65_536;

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Pending {
    event: String,
    ts_ms: u64,
    data: Map<String, Value>,
}

/// A handle to the audit log; cheap to clone, safe to call from any thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Pending>,
    dropped: Arc<AtomicU64>,
    pub path: PathBuf,
}

/// Where the last line of `f`'s first `end` bytes starts: just after the last newline before
/// `end`, or 0. Records are a few KiB: the file is read backwards in growing windows, and a line
/// longer than 16 MiB is an error, not a read of the whole file.
fn last_line_start(f: &mut File, end: u64) -> std::io::Result<u64> {
    let mut window = 4096u64;
    loop {
        let from = end.saturating_sub(window);
        f.seek(SeekFrom::Start(from))?;
        let mut buf = vec![0u8; (end - from) as usize];
        f.read_exact(&mut buf)?;
        if let Some(pos) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(from + pos as u64 + 1);
        }
        if from == 0 {
            return Ok(0);
        }
        if window >= 16 * 1024 * 1024 {
            return Err(std::io::Error::other(
                "last audit record longer than 16 MiB",
            ));
        }
        window *= 4;
    }
}

/// The last byte of `f` (whose length is `len`, not 0).
fn last_byte(f: &mut File, len: u64) -> std::io::Result<u8> {
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0])
}

/// Where a chain stands: the last sequence number and the hash of the last line.
fn tail(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.into())),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok((0, GENESIS.into()));
    }
    let end = if last_byte(&mut f, len)? == b'\n' {
        len - 1
    } else {
        len
    };
    let start = last_line_start(&mut f, end)?;
    f.seek(SeekFrom::Start(start))?;
    let mut line = vec![0u8; (end - start) as usize];
    f.read_exact(&mut line)?;
    last_of(&line)
}

fn last_of(line: &[u8]) -> std::io::Result<(u64, String)> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| std::io::Error::other(format!("last audit record is not JSON: {e}")))?;
    let seq = v
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| std::io::Error::other("last audit record has no seq"))?;
    Ok((seq, hex(&crate::sm3(line))))
}

/// A last line a crash left unfinished, set aside so that the chain can go on.
struct TornTail {
    bytes: usize,
    sm3: String,
    kept_in: PathBuf,
}

/// Mends a file whose last line has no newline (the process or the machine stopped in the
/// middle of a write). A complete record only lost its newline: it gets it back. Anything else
/// is an unfinished record that no chain can include: it is moved, byte for byte, to a file
/// beside the log (`<log>.torn-<unix ms>`), and the log ends at its last whole record. Nothing
/// is lost, and the record the writer adds next says what was set aside and where.
fn mend_tail(path: &Path) -> std::io::Result<Option<TornTail>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    if last_byte(&mut f, len)? == b'\n' {
        return Ok(None);
    }
    let start = last_line_start(&mut f, len)?;
    f.seek(SeekFrom::Start(start))?;
    let mut fragment = Vec::new();
    f.read_to_end(&mut fragment)?;
    let whole = serde_json::from_slice::<Value>(&fragment)
        .ok()
        .is_some_and(|v| v.get("seq").and_then(Value::as_u64).is_some());
    if whole {
        f.seek(SeekFrom::End(0))?;
        f.write_all(b"\n")?;
        f.sync_data()?;
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".torn-{}", now_ms()));
    let kept_in = PathBuf::from(name);
    let mut opts = OpenOptions::new();
    opts.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut side = opts.open(&kept_in)?;
    side.write_all(&fragment)?;
    side.sync_all()?;
    f.set_len(start)?;
    f.sync_data()?;
    Ok(Some(TornTail {
        bytes: fragment.len(),
        sm3: hex(&crate::sm3(&fragment)),
        kept_in,
    }))
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path` and starts its writer thread, continuing
    /// the chain of what is already there. A last record a crash left unfinished is set aside
    /// first (`mend_tail`), and the first new record says so.
    pub fn open(path: &Path, fsync_every: Duration) -> std::io::Result<AuditLog> {
        let torn = mend_tail(path)?;
        let (seq, prev) = tail(path)?;
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            file,
            seq,
            prev,
            fsync_every,
            dropped: dropped.clone(),
        };
        if let Some(t) = torn {
            let mut d = Map::new();
            d.insert("bytes".into(), t.bytes.into());
            d.insert("sm3".into(), t.sm3.into());
            d.insert("kept_in".into(), t.kept_in.display().to_string().into());
            writer.write("audit_torn_record_set_aside", now_ms(), d)?;
            writer.file.sync_data()?;
            tracing::warn!(kept_in = %t.kept_in.display(), bytes = t.bytes, "the audit log ended in an unfinished record (a crash while writing): set aside, the chain goes on");
        }
        std::thread::Builder::new()
            .name("menwei-audit".into())
            .spawn(move || writer.run(rx))?;
        Ok(AuditLog {
            tx,
            dropped,
            path: path.to_path_buf(),
        })
    }

    /// Queues a record. Never blocks: when the writer is far behind the record is counted as
    /// dropped and the count is written as a record of its own.
    pub fn record(&self, event: &str, data: Map<String, Value>) {
        let p = Pending {
            event: event.to_string(),
            ts_ms: now_ms(),
            data,
        };
        match self.tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped so far (queue full or writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Writer {
    file: File,
    seq: u64,
    prev: String,
    fsync_every: Duration,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn write(&mut self, event: &str, ts_ms: u64, data: Map<String, Value>) -> std::io::Result<()> {
        self.seq += 1;
        let mut line = json!({"seq": self.seq, "ts_ms": ts_ms, "event": event, "prev": self.prev, "data": data})
            .to_string();
        let hash = hex(&crate::sm3(line.as_bytes()));
        // One write for the record and its newline: a crash leaves the whole line or none of
        // it more often than with two.
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.prev = hash;
        Ok(())
    }

    fn run(mut self, rx: Receiver<Pending>) {
        let mut dirty = false;
        let mut last_sync = Instant::now();
        let mut reported_drops = 0u64;
        loop {
            let got = rx.recv_timeout(self.fsync_every.max(Duration::from_millis(10)));
            let done = matches!(got, Err(RecvTimeoutError::Disconnected));
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported_drops {
                let mut d = Map::new();
                d.insert("dropped_total".into(), dropped.into());
                if self.write("audit_records_dropped", now_ms(), d).is_ok() {
                    reported_drops = dropped;
                    dirty = true;
                }
            }
            if let Ok(p) = got {
                match self.write(&p.event, p.ts_ms, p.data) {
                    Ok(()) => dirty = true,
                    Err(e) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!("ALERT audit log write failed: {e}");
                    }
                }
            }
            if dirty && (done || last_sync.elapsed() >= self.fsync_every) {
                if let Err(e) = self.file.sync_data() {
                    tracing::error!("ALERT audit log fsync failed: {e}");
                }
                dirty = false;
                last_sync = Instant::now();
            }
            if done {
                return;
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record chains to the one before it.
    Intact { records: u64, head: String },
    /// The first record that does not: its line number (1-based) and why.
    Broken { line: u64, why: String },
}

/// Checks a whole audit file: each line parses, sequence numbers follow one another, and each
/// `prev` is the SM3 of the line before (the first `prev` is all zeros, or the chain continues a
/// rotated file when `first_prev` is given).
pub fn verify(path: &Path, first_prev: Option<&str>) -> std::io::Result<Verdict> {
    let f = File::open(path)?;
    let mut prev = first_prev.unwrap_or(GENESIS).to_ascii_lowercase();
    let mut last_seq: Option<u64> = None;
    let mut n = 0u64;
    for line in BufReader::new(f).split(b'\n') {
        let line = line?;
        n += 1;
        let broken = |why: String| Ok(Verdict::Broken { line: n, why });
        let v: Value = match serde_json::from_slice(&line) {
            Ok(v) => v,
            Err(e) => return broken(format!("not a JSON record ({e})")),
        };
        let Some(seq) = v.get("seq").and_then(Value::as_u64) else {
            return broken("no seq".into());
        };
        if let Some(l) = last_seq {
            if seq != l + 1 {
                return broken(format!(
                    "seq {seq} follows {l}: records {}..{} are missing or out of order",
                    l + 1,
                    seq.saturating_sub(1).max(l + 1)
                ));
            }
        }
        let got_prev = v.get("prev").and_then(Value::as_str).unwrap_or("");
        if got_prev != prev {
            return broken(format!(
                "prev is {got_prev}, but the record before hashes to {prev}: the record before was changed or removed"
            ));
        }
        prev = hex(&crate::sm3(&line));
        last_seq = Some(seq);
    }
    Ok(Verdict::Intact {
        records: n,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_lines(p: &Path, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<String> = s.lines().map(str::to_string).collect();
            if lines.len() >= n {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("audit lines not written");
    }

    fn write_records(p: &Path, n: usize) -> Vec<String> {
        let log = AuditLog::open(p, Duration::from_millis(20)).unwrap();
        let before = std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count();
        for i in 0..n {
            let mut d = Map::new();
            d.insert("i".into(), i.into());
            log.record("test", d);
        }
        let lines = wait_lines(p, before + n);
        drop(log);
        lines
    }

    #[test]
    fn a_record_torn_by_a_crash_is_set_aside_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write_records(&p, 2);
        // The machine stopped in the middle of the third record.
        let fragment = b"{\"seq\":3,\"ts_ms\":17650";
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(fragment).unwrap();
        drop(f);
        let lines = write_records(&p, 1);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[2].contains("\"event\":\"audit_torn_record_set_aside\""));
        assert!(
            lines[2].contains(&format!("\"bytes\":{}", fragment.len())),
            "{}",
            lines[2]
        );
        assert!(matches!(
            verify(&p, None).unwrap(),
            Verdict::Intact { records: 4, .. }
        ));
        // The fragment is kept, byte for byte, beside the log; its SM3 is in the chain.
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("audit.log.torn-")
            })
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(kept[0].path()).unwrap(), fragment);
        assert!(lines[2].contains(&hex(&crate::sm3(fragment))));
    }

    #[test]
    fn a_whole_record_that_lost_its_newline_gets_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write_records(&p, 2);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.trim_end_matches('\n')).unwrap();
        let lines = write_records(&p, 1);
        assert_eq!(lines.len(), 3);
        assert!(matches!(
            verify(&p, None).unwrap(),
            Verdict::Intact { records: 3, .. }
        ));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing set aside"
        );
    }

    #[test]
    fn chain_continues_and_tampering_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = AuditLog::open(&p, Duration::from_millis(20)).unwrap();
        for i in 0..3 {
            let mut d = Map::new();
            d.insert("i".into(), i.into());
            log.record("test", d);
        }
        wait_lines(&p, 3);
        drop(log);
        // A second writer continues the chain.
        let log = AuditLog::open(&p, Duration::from_millis(20)).unwrap();
        log.record("again", Map::new());
        let lines = wait_lines(&p, 4);
        assert!(matches!(
            verify(&p, None).unwrap(),
            Verdict::Intact { records: 4, .. }
        ));

        // One changed byte in record 2: found at record 3 (whose prev no longer matches).
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"i\":1", "\"i\":7");
        std::fs::write(&p, edited.join("\n") + "\n").unwrap();
        assert_eq!(
            match verify(&p, None).unwrap() {
                Verdict::Broken { line, .. } => line,
                v => panic!("{v:?}"),
            },
            3
        );
        // A removed record: the sequence gap says which.
        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&p, removed.join("\n") + "\n").unwrap();
        match verify(&p, None).unwrap() {
            Verdict::Broken { line, why } => {
                assert_eq!(line, 2);
                assert!(why.contains("missing"), "{why}");
            }
            v => panic!("{v:?}"),
        }
        // Garbage line.
        std::fs::write(&p, format!("{}\nnot json\n", lines[0])).unwrap();
        assert!(matches!(
            verify(&p, None).unwrap(),
            Verdict::Broken { line: 2, .. }
        ));
    }
}
