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

    /// Text for chat robots and syslog.
    pub fn text(&self) -> String {
        let mut t = format!("[menwei {}] {}", self.severity.name(), self.summary);
        for (k, v) in [
            ("rule", Some(self.rule.as_str())),
            ("client", self.client.as_deref()),
            ("user", self.user.as_deref()),
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
        let mut workers: HashMap<String, (sinks::SinkSpec, tokio::sync::mpsc::Sender<Event>)> =
            HashMap::new();
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

    fn sync_workers(
        &self,
        workers: &mut HashMap<String, (sinks::SinkSpec, tokio::sync::mpsc::Sender<Event>)>,
    ) {
        let config = self.config.load_full();
        workers.retain(|name, (spec, _)| config.sinks.iter().any(|s| s.name == *name && s == spec));
        for spec in &config.sinks {
            workers.entry(spec.name.clone()).or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                let spool = spool::Spool::open(config.spool_dir.as_deref(), &spec.name);
                tokio::spawn(sinks::worker(spec.clone(), rx, spool, self.hook.clone()));
                (spec.clone(), tx)
            });
        }
    }

    fn arrive(
        &self,
        e: Event,
        windows: &mut HashMap<String, Window>,
        workers: &mut HashMap<String, (sinks::SinkSpec, tokio::sync::mpsc::Sender<Event>)>,
    ) {
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

    fn flush(
        &self,
        windows: &mut HashMap<String, Window>,
        workers: &mut HashMap<String, (sinks::SinkSpec, tokio::sync::mpsc::Sender<Event>)>,
        all: bool,
    ) {
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

    fn deliver(
        &self,
        e: Event,
        workers: &mut HashMap<String, (sinks::SinkSpec, tokio::sync::mpsc::Sender<Event>)>,
    ) {
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
                .get(&spec.name)
                .is_some_and(|(_, tx)| tx.try_send(e.clone()).is_ok());
            if !sent {
                (self.hook)(&spec.name, "dropped");
            }
        }
    }
}

struct Window {
    opened: Instant,
    /// Events after the first (which went out at once).
    count: u64,
    last: Event,
}
