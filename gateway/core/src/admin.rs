//! The admin listener (default `127.0.0.1:9901`, never public by default): `/metrics`,
//! `/healthz`, `/readyz`, `/policy`. Read-only; it changes nothing.

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

impl Admin {
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
        match session.req_header().uri.path() {
            "/metrics" => {
                crate::health::publish(&self.store);
                reply(
                    200,
                    "text/plain; version=0.0.4",
                    self.store.metrics.render(),
                )
            }
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.draining.load(Ordering::Relaxed) => {
                reply(503, "text/plain", b"draining\n".to_vec())
            }
            "/readyz" => reply(200, "text/plain", b"ready\n".to_vec()),
            "/policy" => {
                let body = serde_json::to_vec_pretty(&self.policy()).unwrap_or_default();
                reply(200, "application/json", body)
            }
            _ => reply(
                404,
                "text/plain",
                b"not found: try /metrics /healthz /readyz /policy\n".to_vec(),
            ),
        }
    }
}
