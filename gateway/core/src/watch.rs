//! After each request (the `logging` phase): attack verdicts become alerts, and the behavioural
//! detectors (`[[detect]]`) count what the request showed (401, 404, 429, refused signatures,
//! attacks, masked values, who signed in from where). A rule that trips raises an alert and, when
//! it says so, bans the key through the shared ban list, so every replica refuses it.

use crate::ctx::Ctx;
use crate::live::Store;
use menwei_alert::behaviour::{Keys, Signal};
use menwei_alert::{Event, Severity};

/// Observes one finished request.
pub async fn observe(store: &Store, ctx: &Ctx, status: u16) {
    let Some(live) = ctx.live.as_ref() else {
        return;
    };
    let route = ctx.route_name().to_string();
    let user = ctx.identity.as_ref().map(|i| i.sub.clone());
    // An attack verdict is an alert of its own (aggregated per category and client).
    let attack = ctx.waf.as_ref().filter(|w| w.verdict.attack);
    if let Some(w) = attack {
        let category = w.verdict.main_category().map_or("attack", |c| c.name());
        let blocked = live
            .snapshot
            .wafs
            .get(w.profile)
            .is_some_and(|p| p.mode == menwei_policy::raw::WafMode::Block);
        let evidence: Vec<String> = w
            .verdict
            .hits
            .iter()
            .take(3)
            .map(|h| format!("{} {}: {}", h.rule, h.target, h.evidence))
            .collect();
        let mut e = Event::new(
            Severity::Critical,
            format!("waf:{category}"),
            format!(
                "{category} attempt {} (score {}, rules {:?})",
                if blocked {
                    "blocked"
                } else {
                    "detected, forwarded"
                },
                w.verdict.score,
                w.verdict.rule_ids()
            ),
        )
        .evidence(&evidence.join("; "));
        e.client = Some(ctx.client_str.clone());
        e.user = user.clone();
        e.route = Some(route.clone());
        e.request_id = Some(ctx.request_id.clone());
        store.alerter.emit(e);
    }
    // A masked route's answer that could not be protected (too large, unreadable encoding).
    if let Some((rule, what)) = &ctx.mask_refused {
        let mut e = Event::new(
            Severity::Warning,
            *rule,
            format!("masked route's response refused, nothing unmasked sent ({what})"),
        );
        e.client = Some(ctx.client_str.clone());
        e.user = user.clone();
        e.route = Some(route.clone());
        e.request_id = Some(ctx.request_id.clone());
        store.alerter.emit(e);
    }
    let detector = store.detector.load_full();
    if detector.rules().is_empty() {
        return;
    }
    let keys = Keys {
        ip: ctx.client.map(|_| ctx.client_key()),
        user: user.as_deref(),
        app: ctx.app_id.as_deref(),
    };
    let code = ctx.deny.map(|d| d.code).unwrap_or("");
    let mut signals: Vec<(Signal, u64, Option<&str>)> = Vec::new();
    if status == 401 || code == "MW-AUTH-005" {
        signals.push((Signal::AuthFailure, 1, None));
    }
    if code.starts_with("MW-SIG-") {
        signals.push((Signal::SignatureFailure, 1, None));
    }
    match status {
        404 => signals.push((Signal::NotFound, 1, None)),
        429 => signals.push((Signal::RateLimited, 1, None)),
        _ => {}
    }
    if attack.is_some() {
        signals.push((Signal::Attack, 1, None));
    }
    if let Some(m) = ctx.mask.as_ref().filter(|m| m.masked > 0) {
        signals.push((Signal::MaskedValues, m.masked, None));
    }
    if ctx.deny.is_none() {
        if let Some(u) = user.as_deref() {
            signals.push((Signal::SignIn, 1, Some(u)));
        }
    }
    for (signal, amount, value) in signals {
        for trip in detector.observe(signal, &keys, amount, value) {
            let r = &trip.rule;
            let mut e = Event::new(
                r.severity,
                format!("detect:{}", r.name),
                format!(
                    "{}: {} {} from {} within {} s{}",
                    r.name,
                    trip.count,
                    signal.name(),
                    trip.key,
                    r.window.as_secs(),
                    r.ban
                        .map(|b| format!("; banned for {} s", b.as_secs()))
                        .unwrap_or_default()
                ),
            );
            e.count = trip.count;
            e.client = Some(ctx.client_str.clone());
            e.user = user.clone();
            e.route = Some(route.clone());
            e.request_id = Some(ctx.request_id.clone());
            store.alerter.emit(e);
            let Some(ttl) = r.ban else { continue };
            let ttl = ttl.min(menwei_ratelimit::bans::MAX_TTL);
            let reason = format!("detect:{} ({} {})", r.name, trip.count, signal.name());
            match store.bans.add(&trip.key, ttl, &reason).await {
                Ok(_) => {
                    tracing::warn!(key = %trip.key, ttl_secs = ttl.as_secs(), reason = %reason, "ALERT ban added automatically")
                }
                Err(e) => {
                    tracing::error!(key = %trip.key, error = %e, "automatic ban applies on this replica only: the shared store failed")
                }
            }
            store.audit(
                "ban_added",
                serde_json::json!({"key": trip.key, "ttl_secs": ttl.as_secs(), "reason": reason, "by": "detect"}),
            );
        }
    }
}
