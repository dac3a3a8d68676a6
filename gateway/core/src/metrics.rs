//! Prometheus metrics, served by the admin listener at `/metrics`. Label sets are bounded by the
//! policy (route and upstream names), never by request data.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_failures: IntCounterVec,
    pub ratelimit: IntCounterVec,
    pub ratelimit_store_errors: IntCounter,
    pub sso: IntCounterVec,
    pub bans_active: IntGauge,
    pub banned: IntCounterVec,
    pub ratelimit_fail_open: IntGauge,
    pub ratelimit_store_latency: prometheus::Histogram,
    pub policy_version: IntGauge,
    pub reloads: IntCounter,
    pub reload_failures: IntCounter,
    pub restart_required: IntGauge,
    pub waf: IntCounterVec,
    pub alerts: IntCounterVec,
    pub alerts_emitted: IntGauge,
    pub alerts_dropped: IntGauge,
}

/// Registers `c` and hands it back, so each metric is declared once.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_requests_total",
                    "Requests answered, by route and status",
                ),
                &["route", "status"],
            )?,
        )?;
        let latency = reg(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "menwei_request_duration_seconds",
                    "Time from request head to last byte, by route and status class",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["route", "class"],
            )?,
        )?;
        let upstream_healthy = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "menwei_upstream_backend_up",
                    "1 when a backend is available (healthy and not ejected)",
                ),
                &["upstream", "backend"],
            )?,
        )?;
        let upstream_failures = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_upstream_failures_total",
                    "Failed attempts to a backend (connect, timeout, reset)",
                ),
                &["upstream", "backend"],
            )?,
        )?;
        let ratelimit = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_ratelimit_decisions_total",
                    "Rate-limit decisions by limit: allowed, limited",
                ),
                &["limit", "decision"],
            )?,
        )?;
        let bans_active = reg(
            &registry,
            IntGauge::new(
                "menwei_bans_active",
                "Active temporary bans (addresses and users)",
            )?,
        )?;
        let banned = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_banned_requests_total",
                    "Requests refused by a temporary ban, by kind (ip, user)",
                ),
                &["kind"],
            )?,
        )?;
        let sso = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_sso_events_total",
                    "Sign-in events: login, login_failure, refresh, refresh_failure, logout, backchannel_logout, bearer_failure, by reason",
                ),
                &["event", "reason"],
            )?,
        )?;
        let ratelimit_store_errors = reg(
            &registry,
            IntCounter::new(
                "menwei_ratelimit_store_errors_total",
                "Cluster rate-limit decisions Redis could not give in time",
            )?,
        )?;
        let ratelimit_fail_open = reg(
            &registry,
            IntGauge::new(
                "menwei_ratelimit_fail_open",
                "1 while the last cluster decision failed and limits applied on_store_error",
            )?,
        )?;
        let ratelimit_store_latency = reg(
            &registry,
            prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "menwei_ratelimit_store_seconds",
                    "Redis round trip of cluster limit decisions",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                ]),
            )?,
        )?;
        let policy_version = reg(
            &registry,
            IntGauge::new(
                "menwei_policy_version",
                "Version of the policy being served",
            )?,
        )?;
        let reloads = reg(
            &registry,
            IntCounter::new("menwei_policy_reloads_total", "Policy reloads applied")?,
        )?;
        let reload_failures = reg(
            &registry,
            IntCounter::new(
                "menwei_policy_reload_failures_total",
                "Policy reloads refused (last good policy kept)",
            )?,
        )?;
        let restart_required = reg(
            &registry,
            IntGauge::new(
                "menwei_policy_restart_required",
                "1 when a loaded policy changed settings that need a restart",
            )?,
        )?;
        let waf = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_waf_attacks_total",
                    "Requests scored as attacks by request inspection, by route, main category and action (block or detect)",
                ),
                &["route", "category", "action"],
            )?,
        )?;
        let alerts = reg(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "menwei_alert_deliveries_total",
                    "Alert deliveries by sink and outcome (sent, retry, dropped)",
                ),
                &["sink", "outcome"],
            )?,
        )?;
        let alerts_emitted = reg(
            &registry,
            IntGauge::new("menwei_alerts_emitted", "Alert events raised since start")?,
        )?;
        let alerts_dropped = reg(
            &registry,
            IntGauge::new(
                "menwei_alerts_dropped",
                "Alert events dropped since start because the alert queue was full",
            )?,
        )?;
        Ok(Self {
            registry,
            waf,
            alerts,
            alerts_emitted,
            alerts_dropped,
            requests,
            latency,
            upstream_healthy,
            upstream_failures,
            ratelimit,
            ratelimit_store_errors,
            sso,
            bans_active,
            banned,
            ratelimit_fail_open,
            ratelimit_store_latency,
            policy_version,
            reloads,
            reload_failures,
            restart_required,
        })
    }

    /// Text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}
