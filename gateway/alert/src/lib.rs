//! menwei alerts. One event type ([`Event`]); [`Alerter::emit`] never blocks and never grows
//! memory without bound (a full queue drops and counts); a dispatcher aggregates per rule and key
//! over a window (the first event goes out at once, the rest as one summary: "23 SQL-injection
//! attempts from 1.2.3.4 in 60 s"), keeps the recent alerts for `/alerts`, and hands each alert to
//! every sink whose severity threshold it meets. Each sink has its own worker, spool (a JSON-lines
//! file when a spool directory is set, so alerts survive a sink outage and a restart) and retries
//! with backoff. No Pingora here: the core calls `emit` and reads `recent`.

pub mod behaviour;
pub mod sinks;
mod spool;

use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How urgent an alert is; sinks take alerts at or above their threshold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub time: String,
    pub severity: Severity,
    /// What fired: `waf:sqli`, `detect:brute-force`, `ban`...
    pub rule: String,
    /// One line for people.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What matched, with personal data masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// How many occurrences this alert stands for (more than 1 for a window summary).
    pub count: u64,
    /// The aggregation window of a summary, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// Which gateway replica saw it.
    pub gateway: String,
}

impl Event {
    pub fn new(severity: Severity, rule: impl Into<String>, summary: impl Into<String>) -> Event {
        Event {
            time: now_rfc3339(),
            severity,
            rule: rule.into(),
            summary: summary.into(),
            client: None,
            user: None,
            route: None,
            request_id: None,
            evidence: None,
            count: 1,
            window_secs: None,
            gateway: hostname(),
        }
    }

    /// Evidence is masked here, whatever the caller did (ID cards, phones, cards...), and cut to
    /// 200 characters.
    pub fn evidence(mut self, e: &str) -> Event {
        let masked = menwei_mask::mask_text(e);
        self.evidence = Some(masked.chars().take(200).collect());
        self
    }

    /// The aggregation key: the rule and who it is about.
    fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.rule,
            self.client.as_deref().unwrap_or("-"),
            self.user.as_deref().unwrap_or("-")
        )
    }

    /// Text for the chat robots. They are third-party services: the user id and the summary
    /// (which may name `user:<id>`) are masked like evidence, as user ids on government portals
    /// are often ID-card or mobile numbers. The webhook and syslog, the SOC's own, get them whole.
    pub fn text(&self) -> String {
        let user = self.user.as_deref().map(menwei_mask::mask_text);
        let mut t = format!(
            "[menwei {}] {}",
            self.severity.name(),
            menwei_mask::mask_text(&self.summary)
        );
        for (k, v) in [
            ("rule", Some(self.rule.as_str())),
            ("client", self.client.as_deref()),
            ("user", user.as_deref()),
            ("route", self.route.as_deref()),
            ("request", self.request_id.as_deref()),
            ("evidence", self.evidence.as_deref()),
        ] {
            if let Some(v) = v {
                t.push_str(&format!("\n{k}: {v}"));
            }
        }
        t.push_str(&format!("\ntime: {} gateway: {}", self.time, self.gateway));
        t
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "menwei".into())
    })
    .clone()
}

/// Where alerts go: the compiled `[alerts]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Aggregation window per rule and key.
    pub window: Duration,
    /// Spool directory; `None`: spools are in memory (bounded) and lost on restart.
    pub spool_dir: Option<PathBuf>,
    pub sinks: Vec<sinks::SinkSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window: Duration::from_secs(60),
            spool_dir: None,
            sinks: Vec::new(),
        }
    }
}

/// Counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub emitted: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Folded into a window summary.
    pub aggregated: AtomicU64,
}

/// Outcome hook: (sink name, outcome) with outcome `sent`, `retry`, `spooled`, `dropped`.
pub type OutcomeHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The handle the gateway holds.
pub struct Alerter {
    tx: tokio::sync::mpsc::Sender<Event>,
    rx: Mutex<Option<tokio::sync::mpsc::Receiver<Event>>>,
    recent: Mutex<VecDeque<Event>>,
    pub stats: Stats,
    config: ArcSwap<Config>,
    hook: OutcomeHook,
}

/// Events waiting for the dispatcher at most.
pub const QUEUE: usize = 10_000;
/// Recent alerts kept for `/alerts`.
pub const RECENT: usize = 200;

impl Alerter {
    pub fn new(config: Config, hook: OutcomeHook) -> Arc<Alerter> {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        Arc::new(Alerter {
            tx,
            rx: Mutex::new(Some(rx)),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            stats: Stats::default(),
            config: ArcSwap::from_pointee(config),
            hook,
        })
    }

    /// Never blocks: a full queue drops the event and counts it.
    pub fn emit(&self, event: Event) {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(event).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// New sinks, window or spool (policy reload). Workers of removed sinks stop.
    pub fn reconfigure(&self, config: Config) {
        if **self.config.load() != config {
            self.config.store(Arc::new(config));
        }
    }

    /// The most recent alerts sent to the sinks, newest last.
    pub fn recent(&self) -> Vec<Event> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&self, e: &Event) {
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(e.clone());
        }
    }

    /// Runs the dispatcher until the process ends (call once, inside a Tokio runtime).
    pub async fn run(self: Arc<Self>) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut windows: HashMap<String, Window> = HashMap::new();
        let mut workers = Workers::default();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => self.arrive(e, &mut windows, &mut workers),
                    None => return,
                },
                _ = tick.tick() => {
                    // Every configured sink has a worker, even before its first alert, so that
                    // what its spool kept from before a restart is delivered.
                    self.sync_workers(&mut workers);
                    self.flush(&mut windows, &mut workers, false);
                }
            }
        }
    }

    /// One worker per configured sink. A changed sink goes to its running worker; a removed
    /// sink's worker, or one whose spool directory changed, is stopped, and the next worker of
    /// that name waits for it before it opens the spool.
    fn sync_workers(&self, workers: &mut Workers) {
        let config = self.config.load_full();
        workers.retired.retain(|_, p| !p.task.is_finished());
        let stale: Vec<String> = workers
            .live
            .iter()
            .filter(|(name, w)| {
                w.spool_dir != config.spool_dir || !config.sinks.iter().any(|s| s.name == **name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(w) = workers.live.remove(&name) {
                w.task.abort();
                workers.retired.insert(
                    name,
                    sinks::Predecessor {
                        task: w.task,
                        spool_dir: w.spool_dir,
                    },
                );
            }
        }
        for spec in &config.sinks {
            if let Some(w) = workers.live.get(&spec.name) {
                // The watch channel holds the worker's current settings: only a change wakes it.
                w.settings.send_if_modified(|current| {
                    let changed = current != spec;
                    if changed {
                        current.clone_from(spec);
                    }
                    changed
                });
                continue;
            }
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            let (settings, settings_rx) = tokio::sync::watch::channel(spec.clone());
            let task = tokio::spawn(sinks::worker(
                settings_rx,
                rx,
                config.spool_dir.clone(),
                workers.retired.remove(&spec.name),
                self.hook.clone(),
            ));
            workers.live.insert(
                spec.name.clone(),
                Worker {
                    spool_dir: config.spool_dir.clone(),
                    tx,
                    settings,
                    task,
                },
            );
        }
    }

    fn arrive(&self, e: Event, windows: &mut HashMap<String, Window>, workers: &mut Workers) {
        let key = e.key();
        match windows.get_mut(&key) {
            Some(w) => {
                w.count += e.count;
                w.last = e;
                self.stats.aggregated.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                // Bounded: a flood of distinct keys is summarised, not remembered key by key.
                if windows.len() < 10_000 {
                    windows.insert(
                        key,
                        Window {
                            opened: Instant::now(),
                            count: 0,
                            last: e.clone(),
                        },
                    );
                }
                self.deliver(e, workers);
            }
        }
    }

    fn flush(&self, windows: &mut HashMap<String, Window>, workers: &mut Workers, all: bool) {
        let window = self.config.load().window;
        let done: Vec<String> = windows
            .iter()
            .filter(|(_, w)| all || w.opened.elapsed() >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for k in done {
            let Some(w) = windows.remove(&k) else {
                continue;
            };
            if w.count == 0 {
                continue;
            }
            let mut s = w.last;
            let total = w.count + 1;
            s.count = total;
            s.window_secs = Some(window.as_secs());
            s.time = now_rfc3339();
            let who = s
                .client
                .clone()
                .or_else(|| s.user.clone())
                .unwrap_or_else(|| "various clients".into());
            s.summary = format!(
                "{total} x {} from {who} in {} s (latest: {})",
                s.rule,
                window.as_secs(),
                s.summary
            );
            self.deliver(s, workers);
        }
    }

    fn deliver(&self, e: Event, workers: &mut Workers) {
        self.remember(&e);
        tracing::warn!(
            target: "menwei::alert",
            severity = e.severity.name(),
            rule = e.rule.as_str(),
            client = e.client.as_deref().unwrap_or("-"),
            user = e.user.as_deref().unwrap_or("-"),
            route = e.route.as_deref().unwrap_or("-"),
            request_id = e.request_id.as_deref().unwrap_or("-"),
            count = e.count,
            evidence = e.evidence.as_deref().unwrap_or("-"),
            "ALERT {}",
            e.summary
        );
        self.sync_workers(workers);
        let config = self.config.load_full();
        for spec in &config.sinks {
            if e.severity < spec.min_severity {
                continue;
            }
            let sent = workers
                .live
                .get(&spec.name)
                .is_some_and(|w| w.tx.try_send(e.clone()).is_ok());
            if !sent {
                (self.hook)(&spec.name, "dropped");
            }
        }
    }
}

/// A running sink worker, as the dispatcher holds it.
struct Worker {
    spool_dir: Option<PathBuf>,
    tx: tokio::sync::mpsc::Sender<Event>,
    settings: tokio::sync::watch::Sender<sinks::SinkSpec>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Workers {
    live: HashMap<String, Worker>,
    /// Stopped workers not yet ended, by sink name.
    retired: HashMap<String, sinks::Predecessor>,
}

struct Window {
    opened: Instant,
    /// Events after the first (which went out at once).
    count: u64,
    last: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::AtomicU16;

    /// A real HTTP server on 127.0.0.1 answering with a status that can change, recording
    /// each request's `summary` and the status it got.
    struct Receiver {
        url: String,
        status: Arc<AtomicU16>,
        hits: Arc<Mutex<Vec<(String, u16)>>>,
    }

    impl Receiver {
        fn start(status: u16) -> Receiver {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/hook", l.local_addr().unwrap());
            let status = Arc::new(AtomicU16::new(status));
            let hits = Arc::new(Mutex::new(Vec::new()));
            let (st, h) = (status.clone(), hits.clone());
            std::thread::spawn(move || {
                for conn in l.incoming() {
                    let Ok(mut s) = conn else { continue };
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut first = String::new();
                    let _ = r.read_line(&mut first);
                    let moved = first.split_whitespace().nth(1) == Some("/moved");
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = r.read_exact(&mut body);
                    // A redirect's target (`/moved`) always answers 200.
                    let code = if moved {
                        200
                    } else {
                        st.load(Ordering::SeqCst)
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.1 {code} X\r\nLocation: /moved\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    );
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let summary = v["summary"].as_str().unwrap_or("").to_string();
                    h.lock().unwrap().push((summary, code));
                }
            });
            Receiver { url, status, hits }
        }

        fn delivered(&self) -> Vec<String> {
            let hits = self.hits.lock().unwrap();
            hits.iter()
                .filter(|(_, c)| *c == 200)
                .map(|(s, _)| s.clone())
                .collect()
        }

        fn attempts(&self) -> usize {
            self.hits.lock().unwrap().len()
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 10 s: {what}");
    }

    fn config(url: &str, dir: &std::path::Path) -> Config {
        Config {
            window: Duration::from_secs(60),
            spool_dir: Some(dir.to_path_buf()),
            sinks: vec![sinks::SinkSpec {
                name: "soc".into(),
                kind: sinks::SinkKind::Webhook { url: url.into() },
                min_severity: Severity::Info,
                timeout: Duration::from_secs(2),
            }],
        }
    }

    /// A fresh spool directory, removed when the test ends, passed or not.
    fn spool_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_edited_during_an_outage_is_served_by_one_worker() {
        let tmp = spool_dir();
        let dir = tmp.path();
        let old = Receiver::start(500);
        let new = Receiver::start(200);
        let alerter = Alerter::new(config(&old.url, dir), Arc::new(|_: &str, _: &str| {}));
        tokio::spawn(alerter.clone().run());
        for rule in ["a", "b", "c"] {
            alerter.emit(Event::new(Severity::Critical, rule, rule));
        }
        until("the failing sink is tried", || old.attempts() > 0).await;
        // The operator points the sink at a working receiver (a policy reload).
        alerter.reconfigure(config(&new.url, dir));
        until("the backlog reaches the new receiver", || {
            new.delivered().len() >= 3
        })
        .await;
        assert_eq!(new.delivered(), ["a", "b", "c"]);
        // The old address comes back. No second worker is left retrying the old settings, so
        // nothing more goes there (the old worker's next retry would fall within 1 + 2 s).
        old.status.store(200, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(old.delivered(), Vec::<String>::new());
        assert_eq!(new.delivered(), ["a", "b", "c"]);
        assert_eq!(std::fs::read_to_string(dir.join("soc.jsonl")).unwrap(), "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redirect_is_not_taken_for_a_delivery() {
        // Followed, a 302 turns the POST into a GET without the alert, and the 200 at the end
        // would count as delivered: the alert lost without a trace. It is a failure, retried.
        let tmp = spool_dir();
        let dir = tmp.path();
        let moved = Receiver::start(302);
        let outcomes = Arc::new(Mutex::new(Vec::<String>::new()));
        let o = outcomes.clone();
        let hook: OutcomeHook = Arc::new(move |_: &str, what: &str| {
            o.lock().unwrap().push(what.to_string());
        });
        let alerter = Alerter::new(config(&moved.url, dir), hook);
        tokio::spawn(alerter.clone().run());
        alerter.emit(Event::new(Severity::Critical, "a", "kept"));
        until("the delivery is refused", || {
            outcomes.lock().unwrap().iter().any(|w| w == "retry")
        })
        .await;
        assert!(!outcomes.lock().unwrap().iter().any(|w| w == "sent"));
        assert_eq!(moved.attempts(), 1, "the redirect was followed");
        // Once the address answers 200 itself, the alert goes out, whole.
        moved.status.store(200, Ordering::SeqCst);
        until("the alert is delivered", || !moved.delivered().is_empty()).await;
        assert_eq!(moved.delivered(), ["kept"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_sink_stops_and_leaves_its_spool_for_later() {
        let tmp = spool_dir();
        let dir = tmp.path();
        let dead = Receiver::start(503);
        let alerter = Alerter::new(config(&dead.url, dir), Arc::new(|_: &str, _: &str| {}));
        tokio::spawn(alerter.clone().run());
        alerter.emit(Event::new(Severity::Critical, "a", "kept"));
        until("the failing sink is tried", || dead.attempts() > 0).await;
        alerter.reconfigure(Config {
            sinks: Vec::new(),
            ..config(&dead.url, dir)
        });
        // Retries were due 1 and 3 s after the first attempt: none may come.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let seen = dead.attempts();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(dead.attempts(), seen, "a removed sink was still retried");
        // The alert waits in the spool; the sink re-added (working now) delivers it.
        let spooled = std::fs::read_to_string(dir.join("soc.jsonl")).unwrap();
        assert_eq!(spooled.lines().count(), 1, "{spooled}");
        let back = Receiver::start(200);
        alerter.reconfigure(config(&back.url, dir));
        until("the re-added sink delivers the spool", || {
            !back.delivered().is_empty()
        })
        .await;
        assert_eq!(back.delivered(), ["kept"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_moved_spool_brings_its_alerts_along() {
        let (tmp1, tmp2) = (spool_dir(), spool_dir());
        let (first, second) = (tmp1.path(), tmp2.path());
        let dead = Receiver::start(503);
        let alerter = Alerter::new(config(&dead.url, first), Arc::new(|_: &str, _: &str| {}));
        tokio::spawn(alerter.clone().run());
        alerter.emit(Event::new(Severity::Critical, "a", "moved"));
        until("the failing sink is tried", || dead.attempts() > 0).await;
        let live = Receiver::start(200);
        alerter.reconfigure(config(&live.url, second));
        until("the alert is delivered", || !live.delivered().is_empty()).await;
        assert_eq!(live.delivered(), ["moved"]);
        assert_eq!(
            std::fs::read_to_string(first.join("soc.jsonl")).unwrap(),
            ""
        );
    }
}
