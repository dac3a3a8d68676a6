//! TLS with certificates chosen by SNI, HTTP/2 (ALPN and h2c), WebSocket pass-through.
//! TLS and HTTP/2 are driven with the real `openssl` and `curl` command-line clients.

use menwei_tests::*;
use std::process::Command;

fn dev_certs(dir: &std::path::Path) {
    let ok = Command::new(repo().join("certs/make-dev-certs.sh"))
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "certs/make-dev-certs.sh failed");
}

fn tls_gateway(b: &Backend, certs: &std::path::Path) -> (Gateway, u16) {
    let tls_port = free_port();
    let c = certs.display();
    let extra = format!(
        "[[listener]]\nname = \"tls\"\naddr = \"127.0.0.1:{tls_port}\"\ntls = true\n\n\
         [[listener]]\nname = \"h2c\"\naddr = \"127.0.0.1:{{h2c}}\"\nh2c = true\n\n\
         [[certificate]]\nname = \"localhost\"\ncert = \"{c}/localhost.pem\"\nkey = \"{c}/localhost.key\"\nhosts = [\"localhost\"]\ndefault = true\n\n\
         [[certificate]]\nname = \"gov\"\ncert = \"{c}/gov.pem\"\nkey = \"{c}/gov.key\"\nhosts = [\"gov.localhost\", \"*.gov.localhost\"]\n"
    )
    .replace("{h2c}", &free_port().to_string());
    let routes = format!(
        "[[upstream]]\nname = \"echo\"\nbackends = [\"{}\"]\n\n[[route]]\nname = \"echo\"\nprefix = \"/\"\nupstream = \"echo\"\n\n\
         [[route]]\nname = \"no-ws\"\nprefix = \"/no-ws/\"\nupstream = \"echo\"\nwebsocket = false\n",
        b.addr
    );
    (
        Gateway::start(&[
            ("gateway.toml", &gateway_toml(&extra)),
            ("routes.toml", &routes),
        ]),
        tls_port,
    )
}

/// What `openssl s_client` prints for a TLS connection to the gateway (no SNI when `None`).
fn s_client(port: u16, sni: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(s) => cmd.args(["-servername", s]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn served_subject(port: u16, sni: Option<&str>) -> String {
    let text = s_client(port, sni);
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_string()
}

#[test]
fn certificates_are_chosen_by_sni() {
    let certs = tempfile::tempdir().unwrap();
    dev_certs(certs.path());
    let b = Backend::echo("echo");
    let (_gw, port) = tls_gateway(&b, certs.path());
    assert!(
        served_subject(port, Some("gov.localhost")).contains("CN = gov"),
        "{}",
        served_subject(port, Some("gov.localhost"))
    );
    assert!(served_subject(port, Some("www.gov.localhost")).contains("CN = gov"));
    assert!(served_subject(port, Some("localhost")).contains("CN = localhost"));
    assert!(
        served_subject(port, None).contains("CN = localhost"),
        "default certificate without SNI"
    );
}

#[test]
fn http2_over_tls_and_h2c() {
    let certs = tempfile::tempdir().unwrap();
    dev_certs(certs.path());
    let b = Backend::echo("echo");
    let (gw, port) = tls_gateway(&b, certs.path());
    let url = format!("https://localhost:{port}/h2?x=1");
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(certs.path().join("ca.pem"))
        .args([
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "-H",
            "X-User-Id: forged",
            "-w",
            "\n%{http_version}",
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, version) = text.rsplit_once('\n').unwrap();
    assert_eq!(
        version,
        "2",
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["path"], "/h2");
    let headers = v["headers"].to_string();
    assert!(!headers.contains("forged"), "{headers}");
    assert!(
        headers.contains("[\"x-forwarded-proto\",\"https\"]"),
        "{headers}"
    );
    // h2c with prior knowledge on the cleartext listener named "h2c".
    let h2c_port = std::fs::read_to_string(gw.policies().join("gateway.toml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("addr = \"127.0.0.1:"))
        .map(|p| p.trim_end_matches('"').to_string())
        .nth(2)
        .unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &format!("http://127.0.0.1:{h2c_port}/x"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn websocket_upgrade_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let b = Backend::echo("echo");
    let certs = tempfile::tempdir().unwrap();
    dev_certs(certs.path());
    let (gw, _) = tls_gateway(&b, certs.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("ws://{}/chat", gw.addr);
        let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(resp.status(), 101);
        for i in 0..3 {
            ws.send(Message::text(format!("你好 {i}"))).await.unwrap();
            let got = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got.into_text().unwrap().as_str(), format!("你好 {i}"));
        }
        ws.close(None).await.unwrap();
        let refused =
            tokio_tungstenite::connect_async(format!("ws://{}/no-ws/chat", gw.addr)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
            other => panic!("expected 403, got {other:?}"),
        }
    });
}

fn served_cert_pem(port: u16, sni: &str) -> String {
    let text = s_client(port, Some(sni));
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap_or(0);
    let end = text
        .find("-----END CERTIFICATE-----")
        .unwrap_or(0)
        .max(start);
    text[start..end].to_string()
}

#[test]
fn renewed_certificate_is_served_after_reload() {
    let certs = tempfile::tempdir().unwrap();
    dev_certs(certs.path());
    let b = Backend::echo("echo");
    let (gw, port) = tls_gateway(&b, certs.path());
    let before = served_cert_pem(port, "gov.localhost");
    assert!(before.contains("BEGIN CERTIFICATE"));
    // A renewed pair (new key, new serial) replaces the files; no policy file changes.
    let renewed = tempfile::tempdir().unwrap();
    dev_certs(renewed.path());
    for f in ["gov.pem", "gov.key"] {
        std::fs::copy(renewed.path().join(f), certs.path().join(f)).unwrap();
    }
    gw.sighup();
    assert!(
        gw.wait_version(2),
        "certificate renewal not applied: {}",
        gw.log()
    );
    let after = served_cert_pem(port, "gov.localhost");
    assert!(
        after.contains("BEGIN CERTIFICATE") && after != before,
        "still the old certificate"
    );
}
