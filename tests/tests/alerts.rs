//! Alerts and behavioural detection through the real gateway: each sink's exact format at real
//! local receivers (webhook, WeCom, DingTalk with its signature, Feishu with its signature,
//! syslog over UDP and TCP), a brute-force run that raises one alert and a ban that a second
//! gateway sharing Redis enforces too, and a dead webhook that delays nothing and gets its
//! alerts from the disk spool once it is back, across a gateway restart.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use menwei_tests::*;
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One captured HTTP request.
#[derive(Debug, Clone)]
struct Hit {
    target: String,
    body: serde_json::Value,
}

/// A real HTTP server on 127.0.0.1 recording what it receives.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start() -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn start_on(l: TcpListener) -> Receiver {
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut len = 0;
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).is_err() || l.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let reply = b"{\"errcode\":0,\"errmsg\":\"ok\"}";
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", reply.len());
                let _ = s.write_all(reply);
                h.lock().unwrap().push(Hit {
                    target,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                });
            }
        });
        Receiver { addr, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn wait(&self, n: usize) -> Vec<Hit> {
        wait_until(Duration::from_secs(20), || self.hits().len() >= n);
        self.hits()
    }
}

fn routes(echo: &Backend, extra: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "echo"
backends = ["{}"]

[[route]]
name = "all"
prefix = "/"
upstream = "echo"

[[waf]]
name = "standard"
default = true
mode = "block"
{extra}
"#,
        echo.addr
    )
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

#[test]
fn every_sink_receives_the_alert_in_its_own_format() {
    let echo = Backend::echo("e");
    let hook = Receiver::start();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ding.secret"), "SECdingtalk").unwrap();
    std::fs::write(dir.path().join("feishu.secret"), "feishu-secret").unwrap();
    #[cfg(unix)]
    for f in ["ding.secret", "feishu.secret"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let sinks = format!(
        r#"
[alerts]
window = "60s"

[[alerts.sink]]
name = "soc-webhook"
kind = "webhook"
url = "http://{h}/hook"

[[alerts.sink]]
name = "wecom"
kind = "wecom"
url = "http://{h}/cgi-bin/webhook/send?key=abc"

[[alerts.sink]]
name = "dingtalk"
kind = "dingtalk"
url = "http://{h}/robot/send?access_token=tok"
secret_file = "{ding}"

[[alerts.sink]]
name = "feishu"
kind = "feishu"
url = "http://{h}/open-apis/bot/v2/hook/xyz"
secret_file = "{feishu}"

[[alerts.sink]]
name = "siem-udp"
kind = "syslog"
address = "{udp}"
facility = "local4"

[[alerts.sink]]
name = "siem-tcp"
kind = "syslog"
address = "{tcp}"
transport = "tcp"

[[alerts.sink]]
name = "only-critical-info"
kind = "webhook"
url = "http://{h}/info-only"
min_severity = "critical"
"#,
        h = hook.addr,
        ding = dir.path().join("ding.secret").display(),
        feishu = dir.path().join("feishu.secret").display(),
        udp = udp.local_addr().unwrap(),
        tcp = tcp_addr,
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&echo, &sinks)),
    ]);
    // One attack, with a (valid) ID-card number in it.
    let r = get(
        gw.addr,
        "/x?q=%3Cscript%3Ealert(%2711010519491231002X%27)%3C/script%3E",
    );
    assert_eq!(r.status, 403);
    let hits = hook.wait(5);
    let by = |p: &str| {
        hits.iter()
            .find(|h| h.target.starts_with(p))
            .cloned()
            .unwrap_or_else(|| panic!("nothing at {p}: {hits:?}"))
    };
    // Generic webhook: the event as JSON, evidence masked.
    let w = by("/hook").body;
    assert_eq!(w["rule"], "waf:xss");
    assert_eq!(w["severity"], "critical");
    assert_eq!(w["client"], "127.0.0.1");
    assert!(w["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let ev = w["evidence"].as_str().unwrap().to_lowercase();
    assert!(
        ev.contains("110105********002x") && !ev.contains("11010519491231002"),
        "{ev}"
    );
    // WeCom: {"msgtype":"text","text":{"content":...}}.
    let wc = by("/cgi-bin/webhook/send?key=abc").body;
    assert_eq!(wc["msgtype"], "text");
    assert!(wc["text"]["content"].as_str().unwrap().contains("waf:xss"));
    // DingTalk: signed URL, sign = urlencode(base64(HMAC-SHA256(secret, ts + "\n" + secret))).
    let d = by("/robot/send");
    assert_eq!(d.body["msgtype"], "text");
    let q: std::collections::HashMap<String, String> = url_query(&d.target);
    let ts = &q["timestamp"];
    let want = hmac_b64(b"SECdingtalk", format!("{ts}\nSECdingtalk").as_bytes());
    assert_eq!(q["sign"], want, "DingTalk signature");
    assert_eq!(q["access_token"], "tok");
    // Feishu: body carries timestamp and sign = base64(HMAC-SHA256(ts + "\n" + secret, "")).
    let f = by("/open-apis/bot/v2/hook/xyz").body;
    assert_eq!(f["msg_type"], "text");
    let fts = f["timestamp"].as_str().unwrap();
    assert_eq!(
        f["sign"].as_str().unwrap(),
        hmac_b64(format!("{fts}\nfeishu-secret").as_bytes(), b"")
    );
    assert!(f["content"]["text"].as_str().unwrap().contains("waf:xss"));
    // The critical-only sink got it too (the alert is critical).
    by("/info-only");
    // Syslog over UDP: RFC 5424, local4 (20) * 8 + critical (2) = 162.
    let mut buf = [0u8; 8192];
    let n = udp.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(line.starts_with("<162>1 "), "{line}");
    assert!(
        line.contains("menwei") && line.contains("[menwei@32473 rule=\"waf:xss\""),
        "{line}"
    );
    // Syslog over TCP: octet counting, local0 (16) * 8 + 2 = 130.
    let (mut s, _) = tcp.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    let (len, rest) = text.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), rest.len(), "{text}");
    assert!(rest.starts_with("<130>1 "), "{text}");
    // The admin listener lists it.
    let recent = get(gw.admin, "/alerts").json();
    assert!(recent["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["rule"] == "waf:xss"));
}

fn url_query(target: &str) -> std::collections::HashMap<String, String> {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn brute_force_raises_one_alert_and_a_ban_both_replicas_enforce() {
    let redis = Redis::start();
    let echo = Backend::echo("e");
    let hook = Receiver::start();
    let extra = format!(
        r#"
[state]
redis = "{}"

[alerts]
window = "60s"

[[alerts.sink]]
name = "soc"
kind = "webhook"
url = "http://{}/hook"

[[detect]]
name = "brute-force"
signal = "auth-failure"
key = "client-ip"
threshold = 8
window = "60s"
ban = "10m"
"#,
        redis.url(),
        hook.addr
    );
    let files = routes(&echo, &extra);
    let a = Gateway::start(&[("gateway.toml", &gateway_toml("")), ("routes.toml", &files)]);
    let b = Gateway::start(&[("gateway.toml", &gateway_toml("")), ("routes.toml", &files)]);
    // A backend answering 401 again and again (failed logins).
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(a.addr, "/login/status/401").status);
    }
    assert_eq!(&statuses[..8], &[401; 8]);
    assert!(statuses[8..].iter().all(|s| *s == 403), "{statuses:?}");
    let banned = get_with(a.addr, "/anything", &[("Accept", "application/json")]);
    assert_eq!(banned.json()["code"], "MW-BAN-001");
    // The second gateway learns the ban from Redis.
    assert!(wait_until(Duration::from_secs(10), || get(
        b.addr,
        "/anything"
    )
    .status
        == 403));
    // One alert for the trip, however many failures followed.
    let hits = hook.wait(1);
    std::thread::sleep(Duration::from_millis(1500));
    let trips: Vec<_> = hook
        .hits()
        .into_iter()
        .filter(|h| h.body["rule"] == "detect:brute-force")
        .collect();
    assert_eq!(trips.len(), 1, "{hits:?}");
    assert_eq!(trips[0].body["severity"], "critical");
    assert!(trips[0].body["summary"]
        .as_str()
        .unwrap()
        .contains("ip:127.0.0.1"));
    // Listed on the admin listener of both.
    assert!(get(b.admin, "/bans")
        .json()
        .to_string()
        .contains("ip:127.0.0.1"));
}

/// `[alerts]` with a disk spool in `spool` and one webhook sink, `soc`, at `url`.
fn soc_webhook(spool: &std::path::Path, url: &str) -> String {
    format!(
        r#"
[alerts]
window = "60s"
spool_dir = "{}"

[[alerts.sink]]
name = "soc"
kind = "webhook"
url = "{url}"
timeout = "1s"
"#,
        spool.display()
    )
}

#[test]
fn a_dead_webhook_delays_nothing_and_gets_its_alerts_from_the_spool_after_a_restart() {
    let echo = Backend::echo("e");
    // Reserve a port for the webhook, then leave it closed.
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let extra = soc_webhook(spool.path(), &format!("http://127.0.0.1:{port}/hook"));
    let files = routes(&echo, &extra);
    let mut gw = Gateway::start(&[("gateway.toml", &gateway_toml("")), ("routes.toml", &files)]);
    // Attacks of three kinds (three alerts), and ordinary requests: all answered.
    for p in [
        "/x?q=%3Cscript%3E",
        "/x?f=../../etc/passwd",
        "/x?id=1%20UNION%20SELECT%20password%20FROM%20users",
    ] {
        assert_eq!(get(gw.addr, p).status, 403);
    }
    for _ in 0..20 {
        assert_eq!(get(gw.addr, "/fine").status, 200);
    }
    // The alerts wait in the spool file.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(spool.path().join("soc.jsonl"))
            .is_ok_and(|t| t.lines().count() >= 3)
    }));
    gw.restart();
    // The webhook comes back; the restarted gateway delivers what the spool kept.
    let hook = Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let hits = hook.wait(3);
    let rules: Vec<String> = hits
        .iter()
        .map(|h| h.body["rule"].as_str().unwrap_or("").to_string())
        .collect();
    for r in ["waf:xss", "waf:lfi", "waf:sqli"] {
        assert!(rules.iter().any(|x| x == r), "{rules:?}");
    }
}

#[test]
fn a_sink_fixed_by_a_policy_edit_gets_the_backlog_once_and_the_old_address_nothing() {
    let echo = Backend::echo("e");
    let old_port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let sink = |url: &str| soc_webhook(spool.path(), url);
    let old_url = format!("http://127.0.0.1:{old_port}/hook");
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes(&echo, &sink(&old_url))),
    ]);
    for p in ["/x?q=%3Cscript%3E", "/x?f=../../etc/passwd"] {
        assert_eq!(get(gw.addr, p).status, 403);
    }
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(spool.path().join("soc.jsonl"))
            .is_ok_and(|t| t.lines().count() >= 2)
    }));
    // The operator fixes the sink's address; the reload hands it to the running worker.
    let hook = Receiver::start();
    let v = gw.version();
    gw.write(
        "routes.toml",
        &routes(&echo, &sink(&format!("http://{}/hook", hook.addr))),
    );
    assert!(gw.wait_version(v + 1), "{}", gw.log());
    let hits = hook.wait(2);
    let mut rules: Vec<&str> = hits
        .iter()
        .map(|h| h.body["rule"].as_str().unwrap_or(""))
        .collect();
    rules.sort();
    assert_eq!(rules, ["waf:lfi", "waf:xss"]);
    // The old address comes back: nothing is left retrying it.
    let old = Receiver::start_on(TcpListener::bind(("127.0.0.1", old_port)).unwrap());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(old.hits().len(), 0, "{:?}", old.hits());
    assert_eq!(hook.hits().len(), 2);
}

#[test]
fn standing_bans_from_the_policy_and_the_admin_token() {
    let echo = Backend::echo("e");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = format!("admin_token_file = \"{}\"\n", token.display());
    let gw_toml = gateway_toml("").replace(
        "grace_period = \"0s\"\n",
        &format!("grace_period = \"0s\"\n{server}"),
    );
    let open = routes(&echo, "");
    let gw = Gateway::start(&[("gateway.toml", &gw_toml), ("routes.toml", &open)]);
    assert_eq!(get(gw.addr, "/x").status, 200);
    // Ban calls need the token now, even from loopback.
    let ban = br#"{"key": "ip:198.51.100.9", "ttl_secs": 60, "reason": "test"}"#;
    let r = request(gw.admin, "POST", "/bans", &[], Some(ban));
    assert_eq!(r.status, 401);
    let r = request(
        gw.admin,
        "POST",
        "/bans",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        Some(ban),
    );
    assert_eq!(r.status, 401);
    let r = request(
        gw.admin,
        "POST",
        "/bans",
        &[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")],
        Some(ban),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // Bans and alerts name people: reading them needs the token too. Probes and metrics do not.
    let bearer = [("Authorization", "Bearer 0123456789abcdef0123456789abcdef")];
    for path in ["/bans", "/alerts"] {
        assert_eq!(get(gw.admin, path).status, 401, "{path}");
        let r = get_with(
            gw.admin,
            path,
            &[("Authorization", "Bearer wrong-token-wrong-token")],
        );
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(get_with(gw.admin, path, &bearer).status, 200, "{path}");
    }
    let listed = get_with(gw.admin, "/bans", &bearer).json().to_string();
    assert!(listed.contains("ip:198.51.100.9"), "{listed}");
    for path in ["/healthz", "/readyz", "/metrics", "/policy"] {
        assert_eq!(get(gw.admin, path).status, 200, "{path}");
    }
    // A standing ban written into the policy: the loopback network, by reload.
    gw.write(
        "bans.toml",
        "[[ban]]\nkey = \"ip:127.0.0.0/8\"\nreason = \"drill\"\n",
    );
    gw.sighup();
    assert!(gw.wait_version(2), "{}", gw.log());
    let r = get_with(gw.addr, "/x", &[("Accept", "application/json")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "MW-BAN-001");
    // A malformed key is refused with its place in the file; the last good policy keeps serving.
    gw.write("bans.toml", "[[ban]]\nkey = \"203.0.113.7\"\n");
    gw.sighup();
    assert!(wait_until(Duration::from_secs(10), || gw
        .log()
        .contains("is not ip:<address>")));
    assert_eq!(get(gw.addr, "/x").status, 403);
}
