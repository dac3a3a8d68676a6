//! Sign-in test parts: the demo OpenID provider (deploy/idp, panva's oidc-provider on Node) on
//! an ephemeral port with its own keys, the gateway's SSO secrets, headless Chromium driven by
//! tests/browser/browse.mjs, and the provider's private keys as PEM for forging tokens.

use crate::{repo, wait_until};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running demo OpenID provider.
pub struct Idp {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub issuer: String,
}

pub const CLIENT_ID: &str = "menwei-test";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const API_AUDIENCE: &str = "urn:menwei:api";
/// The provider's resource whose access tokens are opaque (checked by introspection).
pub const OPAQUE_AUDIENCE: &str = "urn:menwei:opaque";

/// Installs the Node packages of the provider and the browser driver when missing.
fn npm_ci(dir: &str) {
    let d = repo().join(dir);
    if d.join("node_modules").exists() {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&d)
        .status()
        .unwrap()
        .success();
    assert!(ok, "npm ci in {dir} failed");
}

impl Idp {
    /// Starts the provider for gateways on `gateway_ports` (redirect and logout URIs), with
    /// access tokens living `access_ttl` seconds. Back-channel logout goes to the first gateway.
    pub fn start(gateway_ports: &[u16], access_ttl: u64) -> Idp {
        npm_ci("deploy/idp");
        let dir = tempfile::tempdir().unwrap();
        let origin = |p: &u16| format!("http://127.0.0.1:{p}");
        // Port 0: the provider takes any free port and prints it (no race with other tests for
        // a port chosen beforehand); its issuer is http://127.0.0.1:<that port>.
        let config = json!({
            "port": 0,
            "users": repo().join("deploy/idp/users.json"),
            "keys": dir.path().join("jwks.json"),
            "api_audience": API_AUDIENCE,
            "opaque_audience": OPAQUE_AUDIENCE,
            "allow_loopback_fetch": true,
            "ttl": {"AccessToken": access_ttl, "IdToken": 600, "RefreshToken": 3600, "Session": 3600},
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": gateway_ports.iter().map(|p| format!("{}/.menwei/callback", origin(p))).collect::<Vec<_>>(),
                "post_logout_redirect_uris": gateway_ports.iter().map(|p| format!("{}/echo/bye", origin(p))).collect::<Vec<_>>(),
                "backchannel_logout_uri": format!("{}/.menwei/backchannel-logout", origin(&gateway_ports[0])),
            }],
        });
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let child = Self::spawn(dir.path());
        let mut idp = Idp {
            child,
            dir,
            port: 0,
            issuer: String::new(),
        };
        idp.wait_up();
        // A restart keeps the port (and so the issuer).
        let mut config = config;
        config["port"] = json!(idp.port);
        std::fs::write(&cfg, config.to_string()).unwrap();
        idp
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("idp.log"))
            .unwrap();
        Command::new("node")
            .arg(repo().join("deploy/idp/server.mjs"))
            .arg(dir.join("config.json"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits for the provider's listening line (the last one: a restart appends), then for its
    /// discovery document. Fails at once, with its log, if the process exits.
    ///
    /// On a loaded 2-core CI machine Node needs a while (it also makes RSA keys): up to ~5 s
    /// with eight starting at once. Once in a full run a provider stayed alive without ever
    /// printing its listening line in 120 s (its log ended at oidc-provider's import warning), so
    /// a provider not serving after 40 s is stopped and started again, at most three times; the
    /// earlier attempts' logs are kept beside it and shown if all three fail.
    fn wait_up(&mut self) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            if let Some(port) = self.serving_port(Duration::from_secs(40)) {
                self.port = port;
                self.issuer = format!("http://127.0.0.1:{port}");
                return;
            }
            if attempt < ATTEMPTS {
                eprintln!(
                    "provider not serving after 40 s (attempt {attempt}), starting it again:\n{}",
                    self.log()
                );
                self.stop();
                let log = self.dir.path().join("idp.log");
                let _ = std::fs::rename(&log, self.dir.path().join(format!("idp-{attempt}.log")));
                self.child = Self::spawn(self.dir.path());
            }
        }
        let earlier: String = (1..ATTEMPTS)
            .map(|a| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("idp-{a}.log")));
                format!("attempt {a}:\n{}\n", log.unwrap_or_default())
            })
            .collect();
        panic!(
            "provider did not start in {ATTEMPTS} attempts:\n{earlier}attempt {ATTEMPTS}:\n{}",
            self.log()
        );
    }

    /// The port of a provider that answers its discovery document within `limit`.
    fn serving_port(&mut self, limit: Duration) -> Option<u16> {
        let mut port = None;
        let up = wait_until(limit, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("provider exited with {status}:\n{}", self.log());
            }
            if port.is_none() {
                port = self
                    .log()
                    .lines()
                    .rev()
                    .find_map(|l| l.split_once(" listening on 127.0.0.1:"))
                    .and_then(|(_, p)| p.trim().parse::<u16>().ok());
            }
            let Some(p) = port else { return false };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
            crate::try_request(addr, "GET", "/.well-known/openid-configuration", &[], None)
                .is_ok_and(|r| r.status == 200)
        });
        if up {
            port
        } else {
            None
        }
    }

    /// Stops and starts the provider on the same port with the same keys. Its storage is in
    /// memory, so every grant and refresh token it issued is gone.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.addr();
        wait_until(Duration::from_secs(5), || {
            std::net::TcpStream::connect(addr).is_err()
        });
        // Only the new process's listening line counts.
        let _ = std::fs::write(self.dir.path().join("idp.log"), "");
        self.child = Self::spawn(self.dir.path());
        self.wait_up();
        assert_eq!(self.addr(), addr, "the provider came back on another port");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp.log")).unwrap_or_default()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The provider's signing keys: (kid, alg, private key PEM, public key PEM).
    pub fn keys(&self) -> Vec<(String, String, String, String)> {
        let script = r#"
const { createPrivateKey, createPublicKey } = require('node:crypto');
const jwks = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
console.log(JSON.stringify(jwks.keys.map((k) => {
  const priv = createPrivateKey({ key: k, format: 'jwk' });
  return [k.kid, k.alg, priv.export({ type: 'pkcs8', format: 'pem' }),
    createPublicKey(priv).export({ type: 'spki', format: 'pem' })];
})));"#;
        let out = Command::new("node")
            .args(["-e", script])
            .arg(self.dir.path().join("jwks.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A real JWT access token for the API audience (client credentials grant).
    pub fn client_credentials_token(&self) -> String {
        self.client_credentials_token_for(API_AUDIENCE)
    }

    /// Revokes a token at the provider (RFC 7009).
    pub fn revoke(&self, token: &str) {
        self.client_post(
            "/token/revocation",
            &format!("token={token}&token_type_hint=access_token"),
        );
    }

    /// A client-credentials access token for `resource` (JWT for the API, opaque for
    /// `OPAQUE_AUDIENCE`).
    pub fn client_credentials_token_for(&self, resource: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&scope=api&resource={}",
            resource.replace(':', "%3A")
        );
        self.client_post("/token", &body).json()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A form POST to the provider as the test client (client_secret_basic); must answer 200.
    fn client_post(&self, path: &str, body: &str) -> crate::Resp {
        let auth = crate::base64(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
        let r = crate::request(
            self.addr(),
            "POST",
            path,
            &[
                ("Authorization", &format!("Basic {auth}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The gateway's SSO secrets in a private directory, and the `[sso]` + `[[provider]]` policy.
pub struct Secrets {
    pub dir: tempfile::TempDir,
}

impl Secrets {
    pub fn new() -> Secrets {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        put("session.key", &"ab".repeat(32));
        put("client-secret", CLIENT_SECRET);
        let key = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(key.status.success());
        put("assertion.key", &String::from_utf8(key.stdout).unwrap());
        Secrets { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `[sso]` and one provider; `extra_sso` and `extra_provider` are added to each table.
    pub fn policy(&self, idp_issuer: &str, extra_sso: &str, extra_provider: &str) -> String {
        format!(
            r#"
[sso]
session_key_file = "{sk}"
assertion_key_file = "{ak}"
{extra_sso}

[[provider]]
name = "idp"
issuer = "{idp_issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{cs}"
scopes = ["openid", "profile", "api"]
resource = "{API_AUDIENCE}"
audience = ["{API_AUDIENCE}"]
post_logout_redirect = "/echo/bye"
{extra_provider}
"#,
            sk = self.path("session.key").display(),
            ak = self.path("assertion.key").display(),
            cs = self.path("client-secret").display(),
        )
    }
}

impl Default for Secrets {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a browser plan (see tests/browser/browse.mjs) in headless Chromium. One browser at a
/// time per test process: several Chromiums at once starve a 2-core machine.
pub fn browse(plan: Value) -> Value {
    static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    npm_ci("tests/browser");
    let out = Command::new("node")
        .arg(repo().join("tests/browser/browse.mjs"))
        .arg(plan.to_string())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "browser driver failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], true, "browser plan failed: {v:#}");
    v
}

/// The `name=value` of a cookie in a browser's cookie list.
pub fn cookie(cookies: &Value, name: &str) -> Option<String> {
    cookies
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| format!("{name}={}", c["value"].as_str().unwrap_or("")))
}
