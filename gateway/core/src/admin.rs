//! The admin listener (default `127.0.0.1:9901`, never public by default): `/metrics`,
//! `/healthz`, `/readyz`, `/policy` (read-only, open), `/alerts` (recent alerts) and `/bans`
//! (temporary bans: list, add, lift; the security team's tools and the attack detectors use
//! it). `/alerts` and `/bans` name people, so every call to them is authorised (`authorised`).

use crate::live::Store;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct Admin {
    pub store: Arc<Store>,
    /// Set when shutdown starts, so that load balancers stop sending traffic.
    pub draining: Arc<AtomicBool>,
    /// The public listeners' addresses: ready means each of them accepts connections (Pingora
    /// binds each service's listeners on its own thread, so the admin listener can be up first).
    pub listeners: Vec<std::net::SocketAddr>,
    /// Set once every public listener has accepted a connection.
    pub listening: AtomicBool,
}

impl Admin {
    /// Calls that change state or read personal data: the bearer token of `[server]
    /// admin_token_file` (compared in constant time), or, when none is configured, a caller on
    /// the loopback address.
    fn authorised(&self, session: &ServerSession) -> Result<(), &'static str> {
        let live = self.store.current();
        let Some(want) = live.snapshot.admin_token.as_ref() else {
            let local = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .is_some_and(|a| a.ip().is_loopback());
            return if local {
                Ok(())
            } else {
                Err("set [server] admin_token_file to call this from another host")
            };
        };
        let given = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("missing Authorization: Bearer <admin token>")?;
        use sha2::Digest;
        let got: [u8; 32] = sha2::Sha256::digest(given.trim().as_bytes()).into();
        let diff = got
            .iter()
            .zip(want.0.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            Err("wrong admin token")
        }
    }

    /// Whether every public listener accepts connections (checked by connecting to each, until
    /// the first time they all do).
    async fn listening(&self) -> Result<(), String> {
        if self.listening.load(Ordering::Relaxed) {
            return Ok(());
        }
        for a in &self.listeners {
            let mut to = *a;
            if to.ip().is_unspecified() {
                to.set_ip(match to {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let connect = tokio::net::TcpStream::connect(to);
            match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("listener {a} not accepting yet: {e}")),
                Err(_) => return Err(format!("listener {a} not accepting yet: timed out")),
            }
        }
        self.listening.store(true, Ordering::Relaxed);
        Ok(())
    }
}

fn reply(status: u16, ctype: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut r = Response::new(body);
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Largest admin request body read.
const MAX_BODY: usize = 16 * 1024;

fn json_reply(status: u16, v: serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(&v).unwrap_or_default();
    body.push(b'\n');
    reply(status, "application/json", body)
}

fn bad(why: impl Into<String>) -> Response<Vec<u8>> {
    json_reply(400, serde_json::json!({"error": why.into()}))
}

/// `POST /bans` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBan {
    /// `ip:<address>` or `user:<id>`.
    key: String,
    /// Seconds (at most 30 days).
    ttl_secs: u64,
    #[serde(default)]
    reason: String,
}

impl Admin {
    fn bans(&self) -> Response<Vec<u8>> {
        let list: Vec<_> = self
            .store
            .bans
            .list()
            .into_iter()
            .map(|(k, b)| {
                serde_json::json!({"key": k, "until_unix_ms": b.until_ms,
                                   "retry_after_secs": b.retry_after_secs(), "reason": b.reason})
            })
            .collect();
        json_reply(
            200,
            serde_json::json!({"shared": self.store.bans.shared(), "bans": list}),
        )
    }

    async fn add_ban(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let Ok(body) = crate::request::read_body(session, MAX_BODY).await else {
            return bad(format!("body unreadable or over {MAX_BODY} bytes"));
        };
        let req: NewBan = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return bad(format!(
                    "expected {{\"key\": \"ip:203.0.113.7\", \"ttl_secs\": 600, \"reason\": \"...\"}}: {e}"
                ))
            }
        };
        let key = match menwei_ratelimit::bans::parse_key(&req.key) {
            Ok(k) => k,
            Err(why) => return bad(why),
        };
        // A network ban is looked up under the one prefix length clients are counted by.
        let prefix = self.store.current().snapshot.trust.ipv6_prefix;
        if let Some((_, len)) = key.strip_prefix("ip:").and_then(|k| k.split_once('/')) {
            if len != prefix.to_string() {
                return bad(format!(
                    "temporary bans of IPv6 networks are /{prefix}, the length clients are counted by ([trust] ipv6_prefix); for other networks add a [[ban]] to the policy"
                ));
            }
        }
        let max = menwei_ratelimit::bans::MAX_TTL.as_secs();
        if req.ttl_secs == 0 || req.ttl_secs > max {
            return bad(format!("ttl_secs must be 1 to {max}"));
        }
        let ttl = std::time::Duration::from_secs(req.ttl_secs);
        match self.store.bans.add(&key, ttl, &req.reason).await {
            Ok(b) => {
                tracing::warn!(key = %key, ttl_secs = req.ttl_secs, reason = %b.reason, "ALERT ban added");
                self.store.audit(
                    "ban_added",
                    serde_json::json!({"key": key, "ttl_secs": req.ttl_secs, "reason": b.reason}),
                );
                json_reply(
                    201,
                    serde_json::json!({"key": key, "until_unix_ms": b.until_ms, "shared": self.store.bans.shared()}),
                )
            }
            Err(e) => {
                tracing::error!(key = %key, error = %e, "ban applies on this replica only: the shared store failed");
                json_reply(
                    202,
                    serde_json::json!({"key": key, "shared": false, "error": e.to_string()}),
                )
            }
        }
    }

    async fn lift_ban(&self, raw: &str) -> Response<Vec<u8>> {
        // Keys hold `:` (and IPv6 addresses), often percent-encoded by clients.
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        let key = match menwei_ratelimit::bans::parse_key(&decoded) {
            Ok(k) => k,
            Err(why) => return bad(why),
        };
        match self.store.bans.lift(&key).await {
            Ok(true) => {
                tracing::warn!(key = %key, "ban lifted");
                self.store
                    .audit("ban_lifted", serde_json::json!({"key": key}));
                json_reply(200, serde_json::json!({"key": key, "lifted": true}))
            }
            Ok(false) => json_reply(404, serde_json::json!({"key": key, "lifted": false})),
            Err(e) => json_reply(503, serde_json::json!({"key": key, "error": e.to_string()})),
        }
    }

    fn policy(&self) -> serde_json::Value {
        let live = self.store.current();
        let s = &live.snapshot;
        let status = self.store.status();
        let upstreams: serde_json::Map<String, serde_json::Value> = live
            .upstreams
            .iter()
            .map(|g| {
                let backends: Vec<_> = g
                    .backends
                    .iter()
                    .map(|b| {
                        serde_json::json!({
                            "backend": b.name, "address": b.addr.to_string(), "healthy": b.is_healthy(),
                            "available": b.available(), "in_flight": b.inflight(),
                        })
                    })
                    .collect();
                (g.spec.name.clone(), serde_json::Value::Array(backends))
            })
            .collect();
        serde_json::json!({
            "version": s.version,
            "sha256": s.sha256,
            "loaded_at_unix": s.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "files": s.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "routes": s.router.routes().iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            "upstreams": upstreams,
            "last_error": status.last_error,
            "last_error_at_unix": status.last_error_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            "restart_required": status.restart_required,
        })
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        // Bans and alerts name people (client addresses, user ids, masked evidence): reading
        // them needs the same authorisation as changing bans. Probes, metrics and the policy
        // summary stay open.
        if path == "/bans" || path.starts_with("/bans/") || path == "/alerts" {
            if let Err(why) = self.authorised(session) {
                tracing::warn!(%path, %method, why, "admin call refused");
                return reply(401, "text/plain", format!("{why}\n").into_bytes());
            }
        }
        if path == "/bans" || path.starts_with("/bans/") {
            return match (method, path.strip_prefix("/bans/")) {
                (http::Method::GET, None) => self.bans(),
                (http::Method::POST, None) => self.add_ban(session).await,
                (http::Method::DELETE, Some(key)) => self.lift_ban(key).await,
                _ => reply(
                    405,
                    "text/plain",
                    b"GET /bans, POST /bans, DELETE /bans/<key>\n".to_vec(),
                ),
            };
        }
        match path.as_str() {
            "/metrics" => {
                crate::health::publish(&self.store);
                reply(
                    200,
                    "text/plain; version=0.0.4",
                    self.store.metrics.render(),
                )
            }
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/alerts" => {
                let body = serde_json::to_vec_pretty(&serde_json::json!({
                    "alerts": self.store.alerter.recent(),
                }))
                .unwrap_or_default();
                reply(200, "application/json", body)
            }
            "/readyz" if self.draining.load(Ordering::Relaxed) => {
                reply(503, "text/plain", b"draining\n".to_vec())
            }
            "/readyz" => match self.listening().await {
                Ok(()) => reply(200, "text/plain", b"ready\n".to_vec()),
                Err(e) => reply(503, "text/plain", format!("{e}\n").into_bytes()),
            },
            "/policy" => {
                let body = serde_json::to_vec_pretty(&self.policy()).unwrap_or_default();
                reply(200, "application/json", body)
            }
            _ => reply(
                404,
                "text/plain",
                b"not found: try /metrics /healthz /readyz /policy /bans /alerts\n".to_vec(),
            ),
        }
    }
}
