//! The served policy and its run-time objects, and the store that swaps them. A request pins one
//! `Live` for its whole life (`Store::current`), so it sees exactly one policy version.
//!
//! Reload is all or nothing: read every file, validate and compile everything, then swap. On any
//! error the last good `Live` keeps serving, every diagnostic is logged, the failure is counted
//! and shown at the admin `/policy` endpoint.

use crate::metrics::Metrics;
use crate::upstream::{BackendState, UpstreamGroup};
use arc_swap::ArcSwap;
use menwei_policy::{Diagnostics, Snapshot};
use menwei_ratelimit::{ClusterStore, Gcra, LocalLimiter, RedisStore};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A snapshot with the run-time objects built from it.
pub struct Live {
    pub snapshot: Arc<Snapshot>,
    /// Same order as `snapshot.upstreams`.
    pub upstreams: Vec<Arc<UpstreamGroup>>,
    /// Same order as `snapshot.rate_limits`.
    pub limiters: Vec<LiveLimit>,
    /// The Redis store of cluster limits (`[state]`), kept across reloads while unchanged.
    pub cluster: Option<Arc<ClusterStore>>,
    /// Single sign-on, when the policy configures it.
    pub sso: Option<Arc<menwei_sso::Sso>>,
    /// SM2 CAs of client certificates (`[gm] client_ca_files`), parsed once per policy.
    pub client_cas: Vec<menwei_gm::cert::Sm2Ca>,
    /// Their revocation lists (`[gm] client_crl_files`).
    pub client_crls: Vec<menwei_gm::cert::Crl>,
}

/// A limit's run-time state: its local counters and the prefix of its Redis keys.
#[derive(Clone)]
pub struct LiveLimit {
    pub local: Arc<LocalLimiter>,
    /// `menwei:rl:<name>:<tag of the definition>:`, so a changed limit starts afresh in Redis as
    /// it does locally. Computed once per reload, not per request.
    pub redis_prefix: String,
}

/// FNV-1a of a limit's definition: a short, stable tag for its Redis keys.
fn tag(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

/// What happened to a reload request.
#[derive(Debug)]
pub enum Reload {
    Applied {
        version: u64,
        restart_required: Vec<String>,
    },
    Unchanged {
        version: u64,
    },
    Rejected {
        version: u64,
        diagnostics: Diagnostics,
    },
}

/// Shown at `/policy`.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    pub restart_required: Vec<String>,
}

type Registry = HashMap<(String, SocketAddr), Arc<BackendState>>;
/// Limiter state by limit fingerprint: a reload keeps the counters of limits it did not change.
type Limiters = HashMap<String, Arc<LocalLimiter>>;

fn build_limiters(snapshot: &Snapshot, previous: &mut Limiters) -> Vec<LiveLimit> {
    let mut keep = Limiters::new();
    let out = snapshot
        .rate_limits
        .iter()
        .map(|spec| {
            let fp = spec.fingerprint();
            let limiter = previous.get(&fp).cloned().unwrap_or_else(|| {
                Arc::new(LocalLimiter::new(
                    Gcra::new(spec.rate, spec.burst),
                    spec.max_keys,
                    spec.concurrency,
                ))
            });
            let redis_prefix = format!("menwei:rl:{}:{}:", spec.name, tag(&fp));
            keep.insert(fp, limiter.clone());
            LiveLimit {
                local: limiter,
                redis_prefix,
            }
        })
        .collect();
    *previous = keep;
    out
}

pub struct Store {
    live: ArcSwap<Live>,
    dir: PathBuf,
    backends: Mutex<(Registry, Limiters)>,
    status: Mutex<Status>,
    /// Serialises reloads (SIGHUP and the file watcher may fire together).
    reloading: Mutex<()>,
    /// Sessions in memory and providers' discovery, kept across reloads.
    sso: menwei_sso::Shared,
    /// Temporary bans, kept across reloads; shared through `[state]` Redis when configured.
    pub bans: Arc<menwei_ratelimit::BanList>,
    /// The SM3-chained audit log (`[audit]`).
    pub audit: AuditSlot,
    /// Nonces of signed requests seen (memory; Redis when `[gm] nonce_store = "redis"`).
    pub nonces: menwei_state::Seen,
    pub metrics: Metrics,
    /// Alerts to the security team (`[alerts]`), kept across reloads.
    pub alerter: Arc<menwei_alert::Alerter>,
    /// Behavioural detectors (`[[detect]]`); rebuilt when the rules change.
    pub detector: ArcSwap<menwei_alert::behaviour::Detector>,
}

fn build_cluster(snapshot: &Snapshot, prev: Option<&Live>) -> Option<Arc<ClusterStore>> {
    let st = snapshot.state.as_ref()?;
    if let Some(p) = prev.filter(|p| p.snapshot.state.as_ref() == Some(st)) {
        return p.cluster.clone();
    }
    let sentinel = st
        .sentinel
        .as_ref()
        .map(|(s, m)| (s.as_slice(), m.as_str()));
    match RedisStore::open(
        &st.redis_url,
        sentinel,
        st.connect_timeout,
        st.command_timeout,
    ) {
        Ok(c) => Some(Arc::new(ClusterStore::new(Arc::new(c)))),
        Err(e) => {
            // The URL was validated when the policy loaded; this is only a safety net.
            tracing::error!(
                "cluster store at {}: {e}; cluster limits fall back to on_store_error",
                st.origin
            );
            None
        }
    }
}

/// The audit log in use, shared with the SSO event hook.
pub type AuditSlot = Arc<arc_swap::ArcSwapOption<menwei_gm::audit::AuditLog>>;

fn build_sso(
    snapshot: &Snapshot,
    cluster: Option<&Arc<ClusterStore>>,
    shared: &menwei_sso::Shared,
    metrics: &Metrics,
    audit: &AuditSlot,
) -> Option<Arc<menwei_sso::Sso>> {
    let spec = snapshot.sso.clone()?;
    let counter = metrics.sso.clone();
    let audit = audit.clone();
    let count: menwei_sso::Counter = Arc::new(move |e: &menwei_sso::Event<'_>| {
        counter.with_label_values(&[e.event, e.reason]).inc();
        if let Some(log) = audit.load_full() {
            let mut d = serde_json::Map::new();
            d.insert("reason".into(), e.reason.into());
            d.insert("request_id".into(), e.request_id.into());
            if let Some(sub) = e.sub {
                d.insert("sub".into(), sub.into());
            }
            log.record(e.event, d);
        }
    });
    let redis = cluster.map(|c| c.redis().clone());
    match menwei_sso::Sso::build(spec, shared, redis, count) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            // Validated at load; sign-in routes then answer 500 rather than serve unchecked.
            tracing::error!("single sign-on could not start: {e}");
            None
        }
    }
}

/// Opens the audit log when `[audit]` appears or names another file; closes it when removed.
fn open_audit(snapshot: &Snapshot, prev: Option<&Live>, audit: &AuditSlot) {
    let same = prev.is_some_and(|p| p.snapshot.audit == snapshot.audit);
    if same && (snapshot.audit.is_none() || audit.load().is_some()) {
        return;
    }
    match &snapshot.audit {
        None => audit.store(None),
        Some(spec) => match menwei_gm::audit::AuditLog::open(&spec.file, spec.fsync_interval) {
            Ok(log) => {
                tracing::info!(file = %spec.file.display(), "audit log open (SM3-chained)");
                audit.store(Some(Arc::new(log)));
            }
            Err(e) => {
                tracing::error!(file = %spec.file.display(), "ALERT cannot open the audit log: {e}");
                audit.store(None);
            }
        },
    }
}

fn build_live(
    snapshot: Snapshot,
    registry: &mut Registry,
    limiters: &mut Limiters,
    prev: Option<&Live>,
    shared: &menwei_sso::Shared,
    metrics: &Metrics,
    audit: &AuditSlot,
) -> Live {
    let limiters = build_limiters(&snapshot, limiters);
    let cluster = build_cluster(&snapshot, prev);
    open_audit(&snapshot, prev, audit);
    let sso = build_sso(&snapshot, cluster.as_ref(), shared, metrics, audit);
    let client_cas: Vec<menwei_gm::cert::Sm2Ca> = snapshot
        .gm
        .as_ref()
        .map(|g| {
            g.client_cas
                .iter()
                .filter_map(|b| menwei_gm::cert::Sm2Ca::new(b, &g.client_ca_distid).ok())
                .collect()
        })
        .unwrap_or_default();
    let client_crls: Vec<menwei_gm::cert::Crl> = snapshot
        .gm
        .as_ref()
        .map(|g| {
            g.client_crls
                .iter()
                .filter_map(|b| menwei_gm::cert::Crl::new(b, &client_cas).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for crl in &client_crls {
        match crl.next_update {
            Some(n) if n < now => tracing::error!(
                ca = %crl.issuer_cn,
                "the CA's CRL is past its next update: every certificate of this CA is refused until a fresh CRL is loaded ([gm] client_crl_files, then reload)"
            ),
            _ => {
                tracing::info!(ca = %crl.issuer_cn, revoked = crl.len(), next_update_unix = ?crl.next_update, "client CA revocation list loaded")
            }
        }
    }
    let mut keep: Registry = HashMap::new();
    let upstreams = snapshot
        .upstreams
        .iter()
        .map(|spec| {
            Arc::new(UpstreamGroup::new(spec.clone(), |up, addr, name| {
                let key = (up.to_string(), addr);
                let state = registry
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(BackendState::new(addr, name.to_string())));
                keep.insert(key, state.clone());
                state
            }))
        })
        .collect();
    *registry = keep;
    Live {
        snapshot: Arc::new(snapshot),
        upstreams,
        limiters,
        cluster,
        sso,
        client_cas,
        client_crls,
    }
}

impl Store {
    /// A store serving `snapshot` as version 1.
    pub fn new(dir: PathBuf, mut snapshot: Snapshot, metrics: Metrics) -> Self {
        snapshot.version = 1;
        metrics.policy_version.set(1);
        let mut registry = Registry::new();
        let mut limiters = Limiters::new();
        let sso = menwei_sso::Shared::default();
        let audit: AuditSlot = Arc::new(arc_swap::ArcSwapOption::empty());
        let live = build_live(
            snapshot,
            &mut registry,
            &mut limiters,
            None,
            &sso,
            &metrics,
            &audit,
        );
        let bans = Arc::new(menwei_ratelimit::BanList::default());
        bans.set_redis(live.cluster.as_ref().map(|c| c.redis().clone()));
        let outcomes = metrics.alerts.clone();
        let alerter = menwei_alert::Alerter::new(
            live.snapshot.alerts.clone(),
            Arc::new(move |sink: &str, outcome: &str| {
                outcomes.with_label_values(&[sink, outcome]).inc();
            }),
        );
        let detector = ArcSwap::from_pointee(menwei_alert::behaviour::Detector::new(
            live.snapshot.detect.clone(),
        ));
        Self {
            alerter,
            detector,
            sso,
            audit,
            bans,
            nonces: menwei_state::Seen::new(
                "menwei:nonce:",
                std::time::Duration::from_secs(3600),
                2_000_000,
            ),
            live: ArcSwap::from_pointee(live),
            dir,
            backends: Mutex::new((registry, limiters)),
            status: Mutex::new(Status::default()),
            reloading: Mutex::new(()),
            metrics,
        }
    }

    /// The policy to serve one request with, pinned for its whole life.
    /// Writes an audit record when `[audit]` is configured.
    pub fn audit(&self, event: &str, data: serde_json::Value) {
        if let (Some(log), serde_json::Value::Object(map)) = (self.audit.load_full(), data) {
            log.record(event, map);
        }
    }

    pub fn current(&self) -> Arc<Live> {
        self.live.load_full()
    }

    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Re-reads the policy directory and swaps if it is valid and different.
    pub fn reload(&self) -> Reload {
        let _one_at_a_time = self.reloading.lock();
        let current = self.current();
        let version = current.snapshot.version;
        match menwei_policy::load(&self.dir) {
            Err(diagnostics) => {
                self.metrics.reload_failures.inc();
                self.audit(
                    "policy_reload_rejected",
                    serde_json::json!({"serving_version": version, "problems": diagnostics.len()}),
                );
                if let Ok(mut st) = self.status.lock() {
                    st.last_error = Some(format!(
                        "{diagnostics}still serving policy version {version}\n"
                    ));
                    st.last_error_at = Some(SystemTime::now());
                }
                Reload::Rejected {
                    version,
                    diagnostics,
                }
            }
            Ok(s) if s.sha256 == current.snapshot.sha256 => Reload::Unchanged { version },
            Ok(mut s) => {
                s.version = version + 1;
                let restart_required = restart_changes(&current.snapshot, &s);
                let live = match self.backends.lock() {
                    Ok(mut reg) => {
                        let (backends, limiters) = &mut *reg;
                        build_live(
                            s,
                            backends,
                            limiters,
                            Some(&current),
                            &self.sso,
                            &self.metrics,
                            &self.audit,
                        )
                    }
                    Err(_) => build_live(
                        s,
                        &mut Registry::new(),
                        &mut Limiters::new(),
                        Some(&current),
                        &self.sso,
                        &self.metrics,
                        &self.audit,
                    ),
                };
                self.bans
                    .set_redis(live.cluster.as_ref().map(|c| c.redis().clone()));
                self.alerter.reconfigure(live.snapshot.alerts.clone());
                if live.snapshot.detect != current.snapshot.detect {
                    self.detector
                        .store(Arc::new(menwei_alert::behaviour::Detector::new(
                            live.snapshot.detect.clone(),
                        )));
                }
                self.audit(
                    "policy_reload",
                    serde_json::json!({"version": version + 1, "sha256": live.snapshot.sha256}),
                );
                self.live.store(Arc::new(live));
                self.metrics.reloads.inc();
                self.metrics.policy_version.set((version + 1) as i64);
                self.metrics
                    .restart_required
                    .set(i64::from(!restart_required.is_empty()));
                if let Ok(mut st) = self.status.lock() {
                    st.last_error = None;
                    st.restart_required = restart_required.clone();
                }
                Reload::Applied {
                    version: version + 1,
                    restart_required,
                }
            }
        }
    }
}

/// Settings that changed but only take effect after a restart.
fn restart_changes(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let (o, n) = (&old.restart, &new.restart);
    let mut out = Vec::new();
    if o.listeners != n.listeners {
        out.push("[[listener]] addresses or options changed".to_string());
    }
    if o.admin != n.admin {
        out.push(format!(
            "[server] admin changed from {} to {}",
            o.admin, n.admin
        ));
    }
    if o.threads != n.threads {
        out.push(format!(
            "[server] threads changed from {} to {}",
            o.threads, n.threads
        ));
    }
    if o.upstream_keepalive_pool != n.upstream_keepalive_pool {
        out.push("[server] upstream_keepalive_pool changed".to_string());
    }
    out
}
