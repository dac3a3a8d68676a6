//! Reload triggers: SIGHUP and the (debounced) policy-directory watch. Both call
//! `Store::reload`, which is all or nothing.

use crate::live::{Reload, Store};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

pub struct Reloader {
    pub store: Arc<Store>,
    pub dir: std::path::PathBuf,
}

/// Logs the outcome of a reload for operators.
pub fn report(outcome: &Reload, trigger: &str) {
    match outcome {
        Reload::Applied {
            version,
            restart_required,
        } => {
            tracing::info!(trigger, version, "policy version {version} applied");
            for what in restart_required {
                tracing::warn!(trigger, version, "{what}: this takes effect only after a restart (still running with the old value)");
            }
        }
        Reload::Unchanged { version } => tracing::debug!(trigger, version, "policy unchanged"),
        Reload::Rejected {
            version,
            diagnostics,
        } => {
            tracing::error!(
                trigger,
                errors = diagnostics.len(),
                "policy reload refused, still serving policy version {version}:\n{diagnostics}"
            );
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let watcher =
            menwei_policy::watch::watch(&self.dir, Duration::from_millis(300), move || {
                let _ = tx.try_send(());
            });
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} ({e}); reload with SIGHUP",
                    self.dir.display()
                );
                None
            }
        };
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot handle SIGHUP ({e}); reload by editing the policy files");
                None
            }
        };
        loop {
            let trigger = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = rx.recv() => "file change",
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            };
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(outcome) => report(&outcome, trigger),
                Err(e) => tracing::error!(
                    "policy reload task failed: {e}; still serving the last good policy"
                ),
            }
        }
    }
}

/// Active health checks as a background service.
pub struct HealthChecks {
    pub store: Arc<Store>,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::health::run(self.store.clone(), shutdown).await;
    }
}

/// Re-reads the shared ban list once a second (bans added or lifted on other replicas) and
/// publishes the number of active bans.
pub struct BanSync {
    pub store: Arc<Store>,
}

#[async_trait]
impl BackgroundService for BanSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.store.bans.sync().await {
                Ok(n) => {
                    warned = false;
                    self.store.metrics.bans_active.set(n as i64);
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(
                        "cannot read the shared ban list ({e}); bans known here still apply"
                    );
                }
                Err(_) => {}
            }
        }
    }
}

/// Runs the alert dispatcher (aggregation, sinks, spools) on the background runtime.
pub struct Alerts {
    pub store: Arc<Store>,
}

#[async_trait]
impl BackgroundService for Alerts {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let run = self.store.alerter.clone().run();
        tokio::select! {
            _ = run => {}
            _ = shutdown.changed() => {}
        }
    }
}
