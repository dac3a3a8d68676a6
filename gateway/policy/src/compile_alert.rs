//! `[alerts]` (sinks, window, spool) and `[[detect]]` rules.

use crate::compile::Ctx;
use crate::diag::{Code, Declared, Diagnostics};
use crate::raw::{self, AlertSeverity, DetectKey, DetectSignal, PolicyFile, SinkKind};
use menwei_alert::behaviour::{KeyKind, Rule, Signal};
use menwei_alert::sinks::{self, SinkSpec};
use menwei_alert::{Config, Severity};
use sha2::Sha256;
use std::time::Duration;
use toml::Spanned;

fn severity(s: AlertSeverity) -> Severity {
    match s {
        AlertSeverity::Info => Severity::Info,
        AlertSeverity::Warning => Severity::Warning,
        AlertSeverity::Critical => Severity::Critical,
    }
}

fn facility(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "authpriv" => 10,
        n => {
            16 + n
                .strip_prefix("local")?
                .parse::<u8>()
                .ok()
                .filter(|d| *d <= 7)?
        }
    })
}

pub(crate) fn compile_alerts(
    cx: &Ctx,
    alerts: Option<(usize, &Spanned<raw::Alerts>)>,
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> Config {
    let mut config = Config::default();
    let Some((src, a)) = alerts else {
        return config;
    };
    let source = &cx.sources[src];
    let a = a.get_ref();
    if let Some(w) = a.window {
        config.window = w.0.max(Duration::from_secs(1));
    }
    config.spool_dir = a.spool_dir.as_ref().map(|d| cx.dir.join(d.get_ref()));
    let mut declared = Declared::new("alerts.sink");
    for s in &a.sink {
        if !declared.first(
            source,
            &s.name,
            "sinks are named in logs and metrics",
            "rename one of them",
            diags,
        ) {
            continue;
        }
        let name = s.name.get_ref().clone();
        let need = |diags: &mut Diagnostics, key: &str, example: &str| {
            diags.at(
                Code::Requires,
                source,
                s.kind.span(),
                format!(
                    "alert sink `{name}` of kind {:?} needs `{key}`",
                    s.kind.get_ref()
                ),
                "each sink kind needs its destination",
                format!("add {key} = {example}"),
            );
        };
        let url = |diags: &mut Diagnostics| -> Option<String> {
            let Some(u) = &s.url else {
                need(diags, "url", "\"https://...\"");
                return None;
            };
            let ok = url::Url::parse(u.get_ref())
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
            if ok.is_none() {
                diags.at(
                    Code::InvalidValue,
                    source,
                    u.span(),
                    format!("alert sink `{name}`: `url` is not an http(s) URL"),
                    "webhooks and robots are reached over HTTP(S)",
                    "write the full URL the robot's settings page shows, e.g. https://oapi.dingtalk.com/robot/send?access_token=...".into(),
                );
                return None;
            }
            Some(u.get_ref().clone())
        };
        let secret = |diags: &mut Diagnostics, digest: &mut Sha256| -> Result<Option<String>, ()> {
            let Some(f) = &s.secret_file else {
                return Ok(None);
            };
            let bytes = crate::compile_sso::read_secret(
                cx,
                source,
                f,
                "alert signing secret",
                diags,
                digest,
            )
            .ok_or(())?;
            let text = String::from_utf8(bytes).map_err(|_| ())?;
            Ok(Some(text.trim().to_string()))
        };
        let kind = match s.kind.get_ref() {
            SinkKind::Webhook => url(diags).map(|url| sinks::SinkKind::Webhook { url }),
            SinkKind::Wecom => url(diags).map(|url| sinks::SinkKind::WeCom { url }),
            SinkKind::Dingtalk => match (url(diags), secret(diags, digest)) {
                (Some(url), Ok(secret)) => Some(sinks::SinkKind::DingTalk { url, secret }),
                _ => None,
            },
            SinkKind::Feishu => match (url(diags), secret(diags, digest)) {
                (Some(url), Ok(secret)) => Some(sinks::SinkKind::Feishu { url, secret }),
                _ => None,
            },
            SinkKind::Syslog => {
                let fac = match &s.facility {
                    None => Some(16),
                    Some(f) => {
                        let v = facility(f.get_ref());
                        if v.is_none() {
                            diags.at(
                                Code::InvalidValue,
                                source,
                                f.span(),
                                format!(
                                    "alert sink `{name}`: unknown syslog facility `{}`",
                                    f.get_ref()
                                ),
                                "RFC 5424 facilities by name",
                                "use local0 .. local7, auth, authpriv, daemon, user or kern".into(),
                            );
                        }
                        v
                    }
                };
                match (&s.address, fac) {
                    (None, _) => {
                        need(diags, "address", "\"10.0.0.5:514\"");
                        None
                    }
                    (Some(a), Some(facility)) => {
                        let valid = a.get_ref().rsplit_once(':').is_some_and(|(h, p)| {
                            !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                        });
                        if !valid {
                            diags.at(
                                Code::InvalidValue,
                                source,
                                a.span(),
                                format!(
                                    "alert sink `{name}`: address `{}` is not host:port",
                                    a.get_ref()
                                ),
                                "syslog receivers are reached at a host and port",
                                "write e.g. address = \"siem.example.gov.cn:514\"".into(),
                            );
                            None
                        } else {
                            Some(sinks::SinkKind::Syslog {
                                address: a.get_ref().clone(),
                                tcp: s.transport == raw::SyslogTransport::Tcp,
                                facility,
                            })
                        }
                    }
                    _ => None,
                }
            }
        };
        if let Some(kind) = kind {
            config.sinks.push(SinkSpec {
                name,
                kind,
                min_severity: s.min_severity.map(severity).unwrap_or(Severity::Warning),
                timeout: s.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(5)),
            });
        }
    }
    config
}

pub(crate) fn compile_detect(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut declared = Declared::new("detect");
    for (src, f) in files {
        let source = &cx.sources[*src];
        for d in &f.detect {
            if !declared.first(
                source,
                &d.name,
                "rules are named in alerts and bans",
                "rename one of them",
                diags,
            ) {
                continue;
            }
            if *d.threshold.get_ref() == 0 {
                diags.at(
                    Code::InvalidValue,
                    source,
                    d.threshold.span(),
                    format!(
                        "detect `{}`: threshold 0 would trip on nothing at all",
                        d.name.get_ref()
                    ),
                    "the threshold is the count in the window that trips the rule",
                    "use e.g. threshold = 10".into(),
                );
                continue;
            }
            let signal = match d.signal {
                DetectSignal::AuthFailure => Signal::AuthFailure,
                DetectSignal::NotFound => Signal::NotFound,
                DetectSignal::RateLimited => Signal::RateLimited,
                DetectSignal::SignatureFailure => Signal::SignatureFailure,
                DetectSignal::Attack => Signal::Attack,
                DetectSignal::MaskedValues => Signal::MaskedValues,
                DetectSignal::DistinctUsers => Signal::SignIn,
            };
            let key = match d.key {
                DetectKey::ClientIp => KeyKind::ClientIp,
                DetectKey::User => KeyKind::User,
                DetectKey::App => KeyKind::App,
            };
            let ban = d.ban.map(|b| b.0);
            out.push(Rule {
                name: d.name.get_ref().clone(),
                signal,
                key,
                threshold: *d.threshold.get_ref(),
                window: d
                    .window
                    .map(|w| w.0)
                    .unwrap_or(Duration::from_secs(60))
                    .max(Duration::from_secs(1)),
                ban,
                severity: d.severity.map(severity).unwrap_or(if ban.is_some() {
                    Severity::Critical
                } else {
                    Severity::Warning
                }),
            });
        }
    }
    out
}

pub(crate) fn compile_bans(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
) -> crate::snapshot::PolicyBans {
    let mut out = crate::snapshot::PolicyBans::default();
    for (src, f) in files {
        let source = &cx.sources[*src];
        for b in &f.ban {
            let key = b.key.get_ref().trim();
            let reason = b
                .reason
                .clone()
                .unwrap_or_else(|| "listed in the policy".into());
            let parsed = if let Some(ip) = key.strip_prefix("ip:") {
                ip.parse::<ipnet::IpNet>()
                    .ok()
                    .or_else(|| ip.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
                    .map(|n| out.nets.push((n.trunc(), reason.clone())))
            } else if let Some(u) = key.strip_prefix("user:").filter(|u| !u.is_empty()) {
                out.users.insert(u.to_string(), reason.clone());
                Some(())
            } else {
                None
            };
            if parsed.is_none() {
                diags.at(
                    Code::InvalidValue,
                    source,
                    b.key.span(),
                    format!("ban key `{key}` is not ip:<address>, ip:<network> or user:<sub>"),
                    "standing bans name an address, a network in CIDR form, or a user",
                    "write e.g. key = \"ip:203.0.113.0/24\" or key = \"user:alice\"".into(),
                );
            }
        }
    }
    out
}
