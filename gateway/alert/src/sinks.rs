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

/// 企业微信: a text message's content is at most 2048 bytes of UTF-8.
pub const WECOM_TEXT_MAX: usize = 2048;
/// 钉钉 and 飞书 (whose request body may be at most 20 KB): our own bound, well inside.
pub const ROBOT_TEXT_MAX: usize = 16 * 1024;

/// `text` cut to at most `max` bytes at a character boundary, ending in `…` when cut: a robot
/// refuses an over-long message, and a refused message would otherwise be retried for ever
/// ahead of every later alert.
pub fn clip(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
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
            json!({"msgtype": "text", "text": {"content": clip(e.text(), WECOM_TEXT_MAX)}}),
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
                json!({"msgtype": "text", "text": {"content": clip(e.text(), ROBOT_TEXT_MAX)}}),
            )
        }
        SinkKind::Feishu { url, secret } => {
            let mut body =
                json!({"msg_type": "text", "content": {"text": clip(e.text(), ROBOT_TEXT_MAX)}});
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

/// The rates a robot's platform publishes for one robot, as (messages, per period). Sending
/// faster gets a robot throttled: DingTalk refuses the 21st message in a minute and then every
/// message for 10 minutes (errcode 130101), so a backlog after an outage is sent at the
/// published pace instead of in one burst.
pub fn published_rates(kind: &SinkKind) -> &'static [(usize, Duration)] {
    const PER_MINUTE_20: &[(usize, Duration)] = &[(20, Duration::from_secs(60))];
    // 飞书 custom robots: 100 per minute and 5 per second.
    const FEISHU: &[(usize, Duration)] =
        &[(100, Duration::from_secs(60)), (5, Duration::from_secs(1))];
    match kind {
        // 企业微信 and 钉钉 group robots: 20 messages per minute each.
        SinkKind::WeCom { .. } | SinkKind::DingTalk { .. } => PER_MINUTE_20,
        SinkKind::Feishu { .. } => FEISHU,
        SinkKind::Webhook { .. } | SinkKind::Syslog { .. } => &[],
    }
}

/// When a sink may send next, by the times of its recent sends (sliding windows).
#[derive(Debug, Default)]
pub struct Pace {
    sent: std::collections::VecDeque<tokio::time::Instant>,
}

impl Pace {
    /// The earliest instant the next message may go, if later than `now`.
    pub fn next_slot(
        &self,
        rates: &[(usize, Duration)],
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        rates
            .iter()
            .filter_map(|&(n, per)| {
                let i = self.sent.len().checked_sub(n)?;
                let free = *self.sent.get(i)? + per;
                (free > now).then_some(free)
            })
            .max()
    }

    pub fn sent(&mut self, at: tokio::time::Instant) {
        self.sent.push_back(at);
        // The largest published count is 100.
        while self.sent.len() > 100 {
            self.sent.pop_front();
        }
    }
}

/// Why a worker's wait ended.
enum Wake {
    Time,
    /// The sink's settings changed (policy reload): retry at once with them.
    Settings,
    /// The sink was removed: stop, leaving the spool for a later worker of the same name.
    Stop,
}

/// Everything a waiting worker keeps doing: taking new alerts into its spool.
struct Inbox {
    rx: tokio::sync::mpsc::Receiver<Event>,
    open: bool,
    settings: tokio::sync::watch::Receiver<SinkSpec>,
}

impl Inbox {
    fn take(&mut self, spool: &mut Spool, name: &str, hook: &OutcomeHook) {
        while let Ok(e) = self.rx.try_recv() {
            if !spool.push(e) {
                hook(name, "dropped");
            }
        }
    }

    /// Waits until `until` (or, with `None`, until an alert or a settings change arrives).
    async fn wait(
        &mut self,
        until: Option<tokio::time::Instant>,
        spool: &mut Spool,
        name: &str,
        hook: &OutcomeHook,
    ) -> Wake {
        let sleep = tokio::time::sleep_until(
            until.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400)),
        );
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Wake::Time,
                changed = self.settings.changed() => {
                    return if changed.is_ok() { Wake::Settings } else { Wake::Stop };
                }
                m = self.rx.recv(), if self.open => match m {
                    Some(e) => {
                        if !spool.push(e) {
                            hook(name, "dropped");
                        }
                        if until.is_none() {
                            return Wake::Time;
                        }
                    }
                    None => {
                        self.open = false;
                        if until.is_none() {
                            return Wake::Stop;
                        }
                    }
                },
            }
        }
    }
}

/// A worker of the same sink that was stopped (sink removed, or its spool moved), and the spool
/// directory it used: the next worker waits for it to end before touching the spool, so one
/// spool never has two owners, and takes over what it left.
pub struct Predecessor {
    pub task: tokio::task::JoinHandle<()>,
    pub spool_dir: Option<std::path::PathBuf>,
}

/// Delivers a sink's alerts in order, for as long as the sink is configured. One worker per
/// sink name at a time: a changed sink (new URL, secret, timeout) is handed to the running
/// worker through `settings`, which also wakes it from a backoff to retry with them at once.
pub async fn worker(
    settings: tokio::sync::watch::Receiver<SinkSpec>,
    rx: tokio::sync::mpsc::Receiver<Event>,
    spool_dir: Option<std::path::PathBuf>,
    predecessor: Option<Predecessor>,
    hook: OutcomeHook,
) {
    let mut inbox = Inbox {
        rx,
        open: true,
        settings,
    };
    let mut spec = inbox.settings.borrow_and_update().clone();
    // A predecessor was aborted by the dispatcher: the spool is opened only once it has ended,
    // so that one spool never has two owners.
    let predecessor = match predecessor {
        Some(p) => {
            let _ = p.task.await;
            Some(p.spool_dir)
        }
        None => None,
    };
    let mut spool = Spool::open(spool_dir.as_deref(), &spec.name);
    if let Some(old_dir) = predecessor {
        if old_dir != spool_dir {
            // The spool moved (or left the disk): bring along what the old one kept.
            let mut old = Spool::open(old_dir.as_deref(), &spec.name);
            while let Some(e) = old.front().cloned() {
                if !spool.push(e) {
                    hook(&spec.name, "dropped");
                }
                old.pop();
            }
        }
    }
    // Timeouts are per request (`spec.timeout`), so the client outlives settings changes.
    // Redirects are not followed: a 301/302/303 would turn the POST into a GET without the
    // alert, and the 200 at its end would count as delivered. A redirect is a failed attempt,
    // logged with its status, so the operator corrects the address.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let mut pace = Pace::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        inbox.take(&mut spool, &spec.name, &hook);
        let Some(e) = spool.front().cloned() else {
            match inbox.wait(None, &mut spool, &spec.name, &hook).await {
                Wake::Time => continue,
                Wake::Settings => {
                    spec = inbox.settings.borrow_and_update().clone();
                    continue;
                }
                Wake::Stop => return,
            }
        };
        let now = tokio::time::Instant::now();
        let wait = pace.next_slot(published_rates(&spec.kind), now);
        if wait.is_some() {
            match inbox.wait(wait, &mut spool, &spec.name, &hook).await {
                Wake::Time => {}
                Wake::Settings => spec = inbox.settings.borrow_and_update().clone(),
                Wake::Stop => return,
            }
            continue;
        }
        let sent = send(&client, &spec, &e).await;
        // A refused attempt counts against the platform's rate as much as a delivered one.
        pace.sent(tokio::time::Instant::now());
        match sent {
            Ok(()) => {
                spool.pop();
                backoff = Duration::from_secs(1);
                hook(&spec.name, "sent");
            }
            Err(why) => {
                hook(&spec.name, "retry");
                tracing::warn!(sink = spec.name.as_str(), error = %why, pending = spool.len(), retry_in_s = backoff.as_secs(), "alert delivery failed; kept in the spool");
                let until = tokio::time::Instant::now() + backoff;
                match inbox.wait(Some(until), &mut spool, &spec.name, &hook).await {
                    Wake::Time => backoff = (backoff * 2).min(Duration::from_secs(60)),
                    Wake::Settings => {
                        spec = inbox.settings.borrow_and_update().clone();
                        backoff = Duration::from_secs(1);
                    }
                    Wake::Stop => return,
                }
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
    fn robots_get_user_ids_masked_the_soc_gets_them_whole() {
        let mut e = Event::new(
            Severity::Warning,
            "detect:brute-force",
            "brute-force: 20 auth-failure from user:110101199003074477 within 60 s",
        );
        e.user = Some("110101199003074477".into());
        e.client = Some("203.0.113.7".into());
        let wecom = SinkKind::WeCom {
            url: "http://x/".into(),
        };
        let (_, body) = http_request(&wecom, &e, Duration::ZERO).unwrap();
        let text = body["text"]["content"].as_str().unwrap();
        assert!(!text.contains("110101199003074477"), "{text}");
        assert!(text.contains("user: 110101"), "{text}");
        assert!(text.contains("client: 203.0.113.7"), "{text}");
        let hook = SinkKind::Webhook {
            url: "http://x/".into(),
        };
        let (_, body) = http_request(&hook, &e, Duration::ZERO).unwrap();
        assert_eq!(body["user"], "110101199003074477");
    }

    #[test]
    fn robot_texts_are_cut_at_a_character_boundary() {
        let mut e = Event::new(Severity::Critical, "waf:sqli", "注入".repeat(2000));
        e.client = Some("203.0.113.7".into());
        let (_, body) = http_request(
            &SinkKind::WeCom {
                url: "http://x/".into(),
            },
            &e,
            Duration::ZERO,
        )
        .unwrap();
        let content = body["text"]["content"].as_str().unwrap();
        assert!(content.len() <= WECOM_TEXT_MAX, "{}", content.len());
        assert!(content.len() > WECOM_TEXT_MAX - 8);
        assert!(content.starts_with("[menwei critical] 注入注入"));
        assert!(content.ends_with('…'));
        let feishu = SinkKind::Feishu {
            url: "http://x/".into(),
            secret: Some("s".into()),
        };
        let (_, body) = http_request(&feishu, &e, Duration::ZERO).unwrap();
        let text = body["content"]["text"].as_str().unwrap();
        assert!(text.len() <= ROBOT_TEXT_MAX);
        assert!(serde_json::to_vec(&body).unwrap().len() < 20_000);
        // Short texts are untouched.
        assert_eq!(clip("短".into(), 3), "短");
        assert_eq!(clip("短句".into(), 5), "…");
        assert_eq!(clip("abc".into(), 0), "…");
    }

    #[test]
    fn robots_are_paced_at_their_published_rates() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs;
        let ding = published_rates(&SinkKind::DingTalk {
            url: String::new(),
            secret: None,
        });
        let mut pace = Pace::default();
        for i in 0..20 {
            assert_eq!(pace.next_slot(ding, t0 + s(i)), None, "message {i}");
            pace.sent(t0 + s(i));
        }
        // The 21st within a minute waits until the first send is a minute old.
        assert_eq!(pace.next_slot(ding, t0 + s(20)), Some(t0 + s(60)));
        assert_eq!(pace.next_slot(ding, t0 + s(60)), None);
        // 飞书: five in a second, then the next second.
        let feishu = published_rates(&SinkKind::Feishu {
            url: String::new(),
            secret: None,
        });
        let mut pace = Pace::default();
        let ms = Duration::from_millis;
        for i in 0..5 {
            assert_eq!(pace.next_slot(feishu, t0 + ms(i)), None);
            pace.sent(t0 + ms(i));
        }
        assert_eq!(pace.next_slot(feishu, t0 + ms(10)), Some(t0 + s(1)));
        // Webhooks and syslog are not paced.
        let hook = published_rates(&SinkKind::Webhook { url: String::new() });
        let mut pace = Pace::default();
        for i in 0..500 {
            pace.sent(t0 + ms(i));
        }
        assert_eq!(pace.next_slot(hook, t0 + ms(500)), None);
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
