//! Sinks: a generic JSON webhook, the WeCom (企业微信), DingTalk (钉钉, signed) and Feishu (飞书,
//! signed) group robots, and syslog (RFC 5424 over UDP, or TCP with octet counting). Each sink
//! has a worker that delivers its spool in order, retrying with exponential backoff (1 s to
//! 60 s); a slow or dead sink delays only itself.

use crate::spool::Spool;
use crate::{Event, OutcomeHook, Severity};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// A configured sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkKind,
    /// Alerts below this severity are not sent here.
    pub min_severity: Severity,
    pub timeout: Duration,
}

#[derive(Clone, PartialEq)]
pub enum SinkKind {
    /// POST of the event as JSON.
    Webhook { url: String },
    /// 企业微信 group robot (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`).
    WeCom { url: String },
    /// 钉钉 group robot; with a secret, requests are signed (`timestamp` and `sign` query).
    DingTalk { url: String, secret: Option<String> },
    /// 飞书 group robot; with a secret, the body carries `timestamp` and `sign`.
    Feishu { url: String, secret: Option<String> },
    /// RFC 5424 syslog.
    Syslog {
        address: String,
        tcp: bool,
        facility: u8,
    },
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Robot URLs carry their access keys; secrets stay out of logs.
        match self {
            SinkKind::Webhook { .. } => write!(f, "webhook"),
            SinkKind::WeCom { .. } => write!(f, "wecom"),
            SinkKind::DingTalk { .. } => write!(f, "dingtalk"),
            SinkKind::Feishu { .. } => write!(f, "feishu"),
            SinkKind::Syslog { address, tcp, .. } => {
                write!(f, "syslog {} {address}", if *tcp { "tcp" } else { "udp" })
            }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk: `sign = urlencode(base64(HMAC-SHA256(key = secret, msg = "{ts_ms}\n{secret}")))`.
pub fn dingtalk_sign(secret: &str, ts_ms: u64) -> String {
    let sig = hmac_b64(secret.as_bytes(), format!("{ts_ms}\n{secret}").as_bytes());
    percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Feishu: `sign = base64(HMAC-SHA256(key = "{ts_s}\n{secret}", msg = ""))`.
pub fn feishu_sign(secret: &str, ts_s: u64) -> String {
    hmac_b64(format!("{ts_s}\n{secret}").as_bytes(), b"")
}

fn unix() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The request a robot or webhook sink sends: URL and JSON body.
pub fn http_request(
    kind: &SinkKind,
    e: &Event,
    now: Duration,
) -> Option<(String, serde_json::Value)> {
    use serde_json::json;
    Some(match kind {
        SinkKind::Webhook { url } => (url.clone(), serde_json::to_value(e).ok()?),
        SinkKind::WeCom { url } => (
            url.clone(),
            json!({"msgtype": "text", "text": {"content": e.text()}}),
        ),
        SinkKind::DingTalk { url, secret } => {
            let url = match secret {
                Some(s) => {
                    let ts = now.as_millis() as u64;
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}timestamp={ts}&sign={}", dingtalk_sign(s, ts))
                }
                None => url.clone(),
            };
            (
                url,
                json!({"msgtype": "text", "text": {"content": e.text()}}),
            )
        }
        SinkKind::Feishu { url, secret } => {
            let mut body = json!({"msg_type": "text", "content": {"text": e.text()}});
            if let Some(s) = secret {
                let ts = now.as_secs();
                body["timestamp"] = json!(ts.to_string());
                body["sign"] = json!(feishu_sign(s, ts));
            }
            (url.clone(), body)
        }
        SinkKind::Syslog { .. } => return None,
    })
}

/// One RFC 5424 message: `<PRI>1 TIMESTAMP HOST menwei PID ALERT [menwei@32473 ...] MSG`.
pub fn syslog_line(e: &Event, facility: u8) -> String {
    let sev = match e.severity {
        Severity::Critical => 2,
        Severity::Warning => 4,
        Severity::Info => 6,
    };
    let pri = u16::from(facility) * 8 + sev;
    let esc = |v: &str| -> String {
        v.chars()
            .flat_map(|c| match c {
                '"' | '\\' | ']' => vec!['\\', c],
                c => vec![c],
            })
            .collect()
    };
    let mut sd = format!(
        "[menwei@32473 rule=\"{}\" count=\"{}\"",
        esc(&e.rule),
        e.count
    );
    for (k, v) in [
        ("client", e.client.as_deref()),
        ("user", e.user.as_deref()),
        ("route", e.route.as_deref()),
        ("request_id", e.request_id.as_deref()),
    ] {
        if let Some(v) = v {
            sd.push_str(&format!(" {k}=\"{}\"", esc(v)));
        }
    }
    sd.push(']');
    let msg = serde_json::to_string(e).unwrap_or_default();
    let host: String = e
        .gateway
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    format!(
        "<{pri}>1 {} {} menwei {} ALERT {sd} {msg}",
        e.time,
        if host.is_empty() { "-" } else { &host },
        std::process::id()
    )
}

async fn send(client: &reqwest::Client, spec: &SinkSpec, e: &Event) -> Result<(), String> {
    if let SinkKind::Syslog {
        address,
        tcp,
        facility,
    } = &spec.kind
    {
        let line = syslog_line(e, *facility);
        let io = async {
            if *tcp {
                use tokio::io::AsyncWriteExt;
                let mut s = tokio::net::TcpStream::connect(address).await?;
                // RFC 6587 octet counting.
                s.write_all(format!("{} {line}", line.len()).as_bytes())
                    .await?;
                s.flush().await
            } else {
                let s = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
                s.send_to(line.as_bytes(), address).await.map(|_| ())
            }
        };
        return match tokio::time::timeout(spec.timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        };
    }
    let Some((url, body)) = http_request(&spec.kind, e, unix()) else {
        return Err("no request for this sink".into());
    };
    let r = client
        .post(url)
        .timeout(spec.timeout)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status().as_u16()));
    }
    // The robots answer 200 with an error code in the body when they refuse a message.
    let text = r.text().await.unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let code = v
            .get("errcode")
            .or_else(|| v.get("code"))
            .and_then(|c| c.as_i64());
        if let Some(c) = code.filter(|c| *c != 0) {
            return Err(format!("robot refused the message: code {c}"));
        }
    }
    Ok(())
}

/// Delivers a sink's alerts in order until its channel closes and its spool is empty.
pub async fn worker(
    spec: SinkSpec,
    mut rx: tokio::sync::mpsc::Receiver<Event>,
    mut spool: Spool,
    hook: OutcomeHook,
) {
    let client = reqwest::Client::builder()
        .timeout(spec.timeout)
        .build()
        .unwrap_or_default();
    let mut backoff = Duration::from_secs(1);
    let mut open = true;
    loop {
        // Take in everything that arrived.
        while let Ok(e) = rx.try_recv() {
            if !spool.push(e) {
                hook(&spec.name, "dropped");
            }
        }
        let Some(e) = spool.front().cloned() else {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(e) => {
                    if !spool.push(e) {
                        hook(&spec.name, "dropped");
                    }
                    continue;
                }
                None => return,
            }
        };
        match send(&client, &spec, &e).await {
            Ok(()) => {
                spool.pop();
                backoff = Duration::from_secs(1);
                hook(&spec.name, "sent");
            }
            Err(why) => {
                hook(&spec.name, "retry");
                tracing::warn!(sink = spec.name.as_str(), error = %why, pending = spool.len(), retry_in_s = backoff.as_secs(), "alert delivery failed; kept in the spool");
                // Wait, but keep accepting new alerts into the spool meanwhile.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        m = rx.recv(), if open => match m {
                            Some(e) => if !spool.push(e) { hook(&spec.name, "dropped") },
                            None => open = false,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_and_feishu_signatures() {
        // Computed independently: python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(
        // hmac.new(b"SECxyz", b"1700000000000\nSECxyz", hashlib.sha256).digest()).decode())'
        assert_eq!(
            dingtalk_sign("SECxyz", 1_700_000_000_000),
            "0PUR1j8g85Xg3vlFV%2FUrEcxXfF5HpCAGzcjrNfyJoyg%3D"
        );
        // python3: base64.b64encode(hmac.new(b"1700000000\nsecret", b"", hashlib.sha256).digest())
        assert_eq!(
            feishu_sign("secret", 1_700_000_000),
            "fiWS2+gh28DOydAv7hzONH/mDn9+b1Y4Y5ivXWXy8vA="
        );
    }

    #[test]
    fn syslog_is_rfc5424() {
        let mut e = Event::new(Severity::Critical, "waf:sqli", "SQL injection blocked");
        e.client = Some("203.0.113.7".into());
        e.route = Some("a\"b]".into());
        let line = syslog_line(&e, 16);
        assert!(line.starts_with("<130>1 "), "{line}");
        assert!(line.contains("[menwei@32473 rule=\"waf:sqli\" count=\"1\" client=\"203.0.113.7\" route=\"a\\\"b\\]\"]"), "{line}");
        assert!(line.contains("ALERT"));
    }
}
