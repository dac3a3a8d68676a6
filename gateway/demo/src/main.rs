//! Demo department backends for menwei, used by the demo and by the end-to-end tests.
//!
//! - echo: answers with the request it received (method, path, headers, body) as JSON;
//!   `/slow?ms=N` waits first; `/status/N` answers status N; `GET /healthz` answers 200 until
//!   `POST /healthz/down` (then 503 until `POST /healthz/up`); a WebSocket upgrade echoes messages.
//! - citizens: `/citizens/?page=P&count=N` answers JSON lists of fake citizens. For masking tests
//!   it can also behave like a careless backend: `encoding=gzip|deflate|deflate-raw|br|zstd`
//!   compresses whatever the client accepts, `chunk=N` sends the body in N-byte chunks (a
//!   millisecond apart, so they arrive apart), `truncate=N` cuts the JSON after N bytes.
//!
//! Each listener prints `LISTENING <kind> <addr>` on standard output once bound, so that tests
//! can use port 0.

mod citizens;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "menwei demo backends")]
struct Args {
    /// Echo service addresses (repeatable).
    #[arg(long)]
    echo: Vec<SocketAddr>,
    /// Citizen-records service addresses (repeatable).
    #[arg(long)]
    citizens: Vec<SocketAddr>,
    /// Name reported by the echo service (`server` field).
    #[arg(long, default_value = "echo")]
    name: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Echo,
    Citizens,
}

struct State {
    name: String,
    healthy: AtomicBool,
}

type Resp = Response<BoxBody<Bytes, std::convert::Infallible>>;

fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn websocket(req: Request<Incoming>) -> Resp {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "missing Sec-WebSocket-Key"}),
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(up) = hyper::upgrade::on(req).await else {
            return;
        };
        let io = TokioIo::new(up);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() || ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

async fn echo(req: Request<Incoming>, st: Arc<State>, peer: SocketAddr) -> Resp {
    let path = req.uri().path().to_string();
    if req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return websocket(req).await;
    }
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/healthz") if st.healthy.load(Ordering::Relaxed) => {
            return json(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        ("GET", "/healthz") => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"ok": false}),
            )
        }
        ("POST", "/healthz/down") => st.healthy.store(false, Ordering::Relaxed),
        ("POST", "/healthz/up") => st.healthy.store(true, Ordering::Relaxed),
        _ => {}
    }
    let q = query(&req);
    if path.ends_with("/slow") {
        let ms = q
            .get("ms")
            .and_then(|m| m.parse().ok())
            .unwrap_or(1000u64)
            .min(60_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = path
        .rsplit_once("/status/")
        .and_then(|(_, s)| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"error": "body too large"}),
            )
        }
    };
    json(
        status,
        &serde_json::json!({
            "server": st.name, "peer": peer.to_string(), "method": method, "target": target, "path": path,
            "version": version, "headers": headers, "body": String::from_utf8_lossy(&body), "body_bytes": body.len(),
        }),
    )
}

async fn citizens(req: Request<Incoming>) -> Resp {
    if req.uri().path() == "/healthz" {
        return json(StatusCode::OK, &serde_json::json!({"ok": true}));
    }
    let q = query(&req);
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let count = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(10);
    let mut body = citizens::page(page, count).to_string().into_bytes();
    if let Some(n) = q.get("truncate").and_then(|n| n.parse::<usize>().ok()) {
        body.truncate(n);
    }
    let encoding = q.get("encoding").map(String::as_str);
    let body = match encoding {
        Some(e) => match compress(e, &body) {
            Ok(b) => b,
            Err(e) => return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e})),
        },
        None => body,
    };
    let chunk = q
        .get("chunk")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut r = if chunk == 0 {
        Response::new(Full::new(Bytes::from(body)).boxed())
    } else {
        let pieces: Vec<Bytes> = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(pieces).then(|b| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b))
        });
        Response::new(BodyExt::boxed(StreamBody::new(stream)))
    };
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(e) = encoding {
        let name = if e == "deflate-raw" { "deflate" } else { e };
        if let Ok(v) = hyper::header::HeaderValue::from_str(name) {
            r.headers_mut().insert(hyper::header::CONTENT_ENCODING, v);
        }
    }
    r
}

/// Compresses a body as a backend that ignores `Accept-Encoding` would.
fn compress(encoding: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| e.to_string();
    match encoding {
        "gzip" => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        "deflate" => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        "deflate-raw" => {
            let mut w =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(body).map_err(io)?;
            }
            Ok(out)
        }
        // Not really zstd: a backend's answer in an encoding the gateway cannot read.
        "zstd" => Ok(body.to_vec()),
        other => Err(format!("unknown encoding {other}")),
    }
}

async fn serve(kind: Kind, addr: SocketAddr, st: Arc<State>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let label = match kind {
        Kind::Echo => "echo",
        Kind::Citizens => "citizens",
    };
    println!("LISTENING {label} {}", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => continue,
        };
        let st = st.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match kind {
                        Kind::Echo => echo(req, st, peer).await,
                        Kind::Citizens => citizens(req).await,
                    })
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let st = Arc::new(State {
        name: args.name.clone(),
        healthy: AtomicBool::new(true),
    });
    let mut tasks = Vec::new();
    for a in &args.echo {
        tasks.push(tokio::spawn(serve(Kind::Echo, *a, st.clone())));
    }
    for a in &args.citizens {
        tasks.push(tokio::spawn(serve(Kind::Citizens, *a, st.clone())));
    }
    if tasks.is_empty() {
        eprintln!("menwei-demo: give at least one --echo or --citizens address");
        return std::process::ExitCode::from(2);
    }
    for t in tasks {
        match t.await {
            Ok(Err(e)) => {
                eprintln!("menwei-demo: {e}");
                return std::process::ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("menwei-demo: {e}");
                return std::process::ExitCode::from(1);
            }
            Ok(Ok(())) => {}
        }
    }
    std::process::ExitCode::SUCCESS
}
