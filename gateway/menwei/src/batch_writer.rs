//! The access log's writer: request threads append finished lines to one buffer in memory; a
//! thread of its own writes the buffer out in one `write` when it holds `BATCH` bytes, and
//! otherwise every `EVERY` (nginx's `access_log ... buffer=64k flush=...`).
//!
//! It replaces tracing-appender's non-blocking writer, which hands every line to its thread over
//! a channel: that thread woke for almost every batch of a few lines and, waiting for the next
//! one, spun and yielded the CPU thousands of times a second (`nonvoluntary_ctxt_switches` in
//! `/proc`), on the same core as the request thread in a one-core deployment; see
//! docs/benchmarks.md. Here a request thread wakes the writer only when a batch is full, and the
//! writer sleeps otherwise (it wakes on its own five times a second).
//!
//! No line is dropped: when the output cannot keep up and `CAP` bytes wait, request threads wait
//! for room (as the old writer did with `lossy(false)`). The buffer is written out before the
//! process exits normally (the guard's drop); lines logged after that are not kept.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// A full batch: written at once.
const BATCH: usize = 64 * 1024;
/// At most this long between a line and its write.
const EVERY: Duration = Duration::from_millis(200);
/// Request threads wait for the writer beyond this many bytes.
const CAP: usize = 16 * 1024 * 1024;
/// How long the guard's drop waits for the last write (a stuck output must not hang the exit).
const EXIT_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closed: bool,
    /// The writer thread has written everything and returned.
    done: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The writer waits here: a full batch, or the end (or its period passes).
    wake: Condvar,
    /// Request threads wait here for room; the guard waits here for the last write.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should anything, the bytes are still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits on `cv` for at most `left`, the lock given back either way.
fn wait_timeout<'a>(
    cv: &Condvar,
    st: MutexGuard<'a, State>,
    left: Duration,
) -> MutexGuard<'a, State> {
    cv.wait_timeout(st, left)
        .map_or_else(|e| e.into_inner().0, |(g, _)| g)
}

/// The `MakeWriter` handed to the access-log layer (cheap to clone).
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the writer thread when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread on `out`.
pub fn start<W: Write + Send + 'static>(out: W) -> io::Result<(Batched, Guard)> {
    let shared = Arc::new(Shared::default());
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(&for_thread, out))?;
    Ok((
        Batched {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH * 2);
    let mut failing = false;
    loop {
        let closing = {
            let mut st = shared.lock();
            // Asleep until the batch is full, the period is over, or the end.
            let deadline = Instant::now() + EVERY;
            while st.buf.len() < BATCH && !st.closed {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                st = wait_timeout(&shared.wake, st, left);
            }
            std::mem::swap(&mut st.buf, &mut batch);
            st.closed
        };
        shared.room.notify_all();
        if !batch.is_empty() {
            match out.write_all(&batch).and_then(|()| out.flush()) {
                Ok(()) if failing => {
                    failing = false;
                    eprintln!("menwei: the access log is being written again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    eprintln!(
                        "menwei: cannot write the access log: {e}; its lines are lost until it can be written again (requests are served as before)"
                    );
                }
                Err(_) => {}
            }
            batch.clear();
            if batch.capacity() > CAP {
                batch.shrink_to(BATCH * 2);
            }
        }
        if closing && shared.lock().buf.is_empty() {
            break;
        }
    }
    shared.lock().done = true;
    shared.room.notify_all();
}

impl Drop for Guard {
    fn drop(&mut self) {
        let deadline = Instant::now() + EXIT_WAIT;
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.wake.notify_one();
        while !st.done {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                eprintln!("menwei: the access log's last lines could not be written in time");
                return;
            };
            st = wait_timeout(&self.shared.room, st, left);
        }
        drop(st);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request thread's handle: each `write` appends whole (the layer writes a line at once).
pub struct Handle<'a> {
    shared: &'a Shared,
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Handle<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Handle {
            shared: &self.shared,
        }
    }
}

impl Write for Handle<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut st = self.shared.lock();
        if st.done {
            // The writer has stopped (the server is exiting): nothing would ever write this
            // line, so it is not kept either.
            return Ok(bytes.len());
        }
        while st.buf.len() >= CAP && !st.closed {
            st = self
                .shared
                .room
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let before = st.buf.len();
        st.buf.extend_from_slice(bytes);
        let after = st.buf.len();
        drop(st);
        // The writer wakes on its own every period: wake it early only when this line fills a
        // batch (a wake is a system call).
        if before < BATCH && after >= BATCH {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that other threads can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    #[test]
    fn every_line_written_whole_and_in_order_by_the_end() {
        let out = Sink::default();
        let (w, guard) = start(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!(
                            "{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}\n",
                            "x".repeat(i % 50)
                        );
                        w.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["t"].as_u64().unwrap() as usize;
            assert_eq!(
                v["i"].as_u64().unwrap() as usize,
                next[t],
                "order of thread {t}"
            );
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
        // Written in batches, not a write per line.
        assert!(writes < 80_000 / 10, "{writes} writes");
    }

    #[test]
    fn a_quiet_line_is_written_within_the_period() {
        let out = Sink::default();
        let (w, _guard) = start(out.clone()).unwrap();
        w.make_writer().write_all(b"one line\n").unwrap();
        // Bounded wait: the period is 200 ms; give it up to 10 s on a loaded machine.
        for _ in 0..200 {
            if !out.0.lock().unwrap().0.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(out.0.lock().unwrap().0, b"one line\n");
    }

    #[test]
    fn a_slow_output_makes_writers_wait_at_the_cap_and_loses_nothing() {
        /// Takes 200 ms per write; remembers the bytes and the largest write.
        #[derive(Clone, Default)]
        struct Slow(Arc<Mutex<(Vec<u8>, usize)>>);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(200));
                let mut g = self.0.lock().unwrap();
                g.0.extend_from_slice(b);
                g.1 = g.1.max(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let out = Slow::default();
        let (w, guard) = start(out.clone()).unwrap();
        // 24 MiB in 1 KiB lines, far faster than the output takes them.
        let lines = 24 * 1024;
        for i in 0..lines {
            let mut line = format!("{i:08}").into_bytes();
            line.resize(1023, b'.');
            line.push(b'\n');
            w.make_writer().write_all(&line).unwrap();
        }
        drop(guard);
        let (bytes, largest) = out.0.lock().unwrap().clone();
        // Without the cap the first write after the output's first sleep would hold nearly all.
        assert!(largest <= CAP + 1024, "a write of {largest} bytes");
        assert_eq!(bytes.len(), lines * 1024);
        for (i, line) in bytes.chunks(1024).enumerate() {
            assert_eq!(&line[..8], format!("{i:08}").as_bytes());
        }
    }

    #[test]
    fn lines_after_the_writer_stopped_are_not_kept() {
        let out = Sink::default();
        let (w, guard) = start(out.clone()).unwrap();
        w.make_writer().write_all(b"before\n").unwrap();
        drop(guard);
        for _ in 0..1024 {
            w.make_writer().write_all(&[b'x'; 1024]).unwrap();
        }
        assert_eq!(out.0.lock().unwrap().0, b"before\n");
        assert!(w.shared.lock().buf.is_empty());
    }

    #[test]
    fn a_failing_output_loses_lines_but_never_blocks_requests() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (w, guard) = start(Broken).unwrap();
        // More than CAP: had the writer kept what it failed to write, this would wait forever.
        for _ in 0..(CAP / 1024 + 1024) {
            w.make_writer().write_all(&[b'x'; 1024]).unwrap();
        }
        drop(guard);
    }
}
