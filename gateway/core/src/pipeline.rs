//! THE request pipeline: the one file that states the order of the phases. Each Pingora hook
//! below runs its steps in the order written; the steps live in their own modules.
//!
//! | phase                   | steps                                                               |
//! |-------------------------|---------------------------------------------------------------------|
//! | early_request_filter    | pin the policy snapshot; peer trust; client address; request id      |
//! | request_filter          | ban list (address) -> framing -> size limits -> host -> path         |
//! |                         | normalisation -> reserved paths -> route match -> WebSocket          |
//! |                         | permission -> declared body size                                     |
//! |                         | -> rate and concurrency limits (local, then one Redis round trip)    |
//! |                         | -> authentication (session / bearer) and claim requirements         |
//! |                         | -> ban list (user) -> limits keyed on the identity (user, app,      |
//! |                         | department, claims)                                                 |
//! |                         | (reserved `/.menwei/` paths: SSO endpoints, answered here)           |
//! |                         | (later: WAF)                                                         |
//! | request_body_filter     | body size under the route's cap                                      |
//! | upstream_peer           | pick an available backend of the route's upstream; timeouts          |
//! | upstream_request_filter | the ONLY place identity/forwarding headers are written: strip, then  |
//! |                         | identity headers + signed assertion                                 |
//! | response_filter         | request id on the response; passive health success; masking        |
//! |                         | decision (unmask roles audited, gzip/deflate/br decoded, others and |
//! |                         | oversized refused)                                                  |
//! | response_body_filter    | masking: JSON rewritten as it streams, text masked at its end       |
//! | logging                 | metrics; access log                                                  |
//! | fail_to_connect / error_while_proxy | passive ejection; retry decision                         |
//! | fail_to_proxy           | the client's error page (JSON or HTML), never internals              |

use crate::ctx::Ctx;
use crate::errors::{self, Deny, Extra};
use crate::hygiene::{self, Forwarding};
use crate::live::Store;
use crate::request;
use async_trait::async_trait;
use bytes::Bytes;
use menwei_policy::raw::HashOn;
use menwei_policy::router::Match;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::Arc;
use std::time::Instant;

/// The proxy. One per public listener; all share the store.
pub struct Gateway {
    pub store: Arc<Store>,
}

impl Gateway {
    /// Writes a refusal and records it; the request ends here.
    async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        d: Deny,
        extra: &[(http::HeaderName, String)],
    ) -> Result<bool> {
        ctx.deny = Some(d);
        let accept = session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .map(|v| v.as_bytes().to_vec());
        let (head, body) = errors::render(d, &ctx.request_id, accept.as_deref(), extra)?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(head), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(true)
    }

    /// Runs the request-head checks; `Err` is the refusal to write.
    fn admit(&self, session: &Session, ctx: &mut Ctx) -> std::result::Result<(), (Deny, Extra)> {
        let plain = |d: Deny| (d, Extra::new());
        let live = ctx.live.clone().ok_or(plain(errors::INTERNAL))?;
        let snap = &live.snapshot;
        let req = session.req_header();
        let raw = session
            .as_downstream()
            .as_http1()
            .map(|s| s.get_headers_raw_bytes());
        hygiene::check_framing(raw.as_deref(), req).map_err(|why| {
            tracing::info!(request_id = %ctx.request_id, why, "refused request framing");
            plain(errors::BAD_FRAMING)
        })?;
        request::check_limits(req, &snap.limits).map_err(plain)?;
        ctx.host = request::host(req).map_err(plain)?;
        ctx.path =
            menwei_policy::path::normalize(req.uri.path()).map_err(|_| plain(errors::BAD_PATH))?;
        if request::is_reserved(&ctx.path) {
            // Gateway endpoints (sign-in callback, logout, keys): answered in request_filter,
            // never routed or forwarded.
            ctx.reserved = true;
            return Ok(());
        }
        let route = match snap.router.find(&ctx.host, &ctx.path, &req.method) {
            Match::Route(i, r) => {
                ctx.route = Some(i);
                r
            }
            Match::NotFound => return Err(plain(errors::NO_ROUTE)),
            Match::MethodNotAllowed(m) => {
                let allow = m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
                return Err((
                    errors::METHOD_NOT_ALLOWED,
                    vec![(http::header::ALLOW, allow)],
                ));
            }
        };
        ctx.upstream = Some(route.upstream);
        if session.is_upgrade_req() {
            if !route.websocket {
                return Err(plain(errors::WEBSOCKET_REFUSED));
            }
            ctx.upgrade = req.headers.get(http::header::UPGRADE).cloned();
        }
        request::check_declared_body(req, route.max_body_bytes).map_err(plain)
    }

    /// Refuses a banned address or user (403 with `Retry-After`).
    async fn banned(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        kind: &'static str,
        ban: menwei_ratelimit::Ban,
    ) -> Result<bool> {
        self.store.metrics.banned.with_label_values(&[kind]).inc();
        tracing::info!(request_id = %ctx.request_id, kind, reason = %ban.reason, "refused: temporarily banned");
        let retry = vec![(
            http::header::RETRY_AFTER,
            ban.retry_after_secs().to_string(),
        )];
        self.deny(session, ctx, errors::BANNED, &retry).await
    }

    /// Writes what an auth step decided, if it ends the request.
    async fn finish(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        step: crate::auth::Step,
    ) -> Result<bool> {
        match step {
            crate::auth::Step::Continue => Ok(false),
            crate::auth::Step::Deny(d, extra) => self.deny(session, ctx, d, &extra).await,
            crate::auth::Step::Respond(head, body) => {
                let head_only =
                    session.req_header().method == http::Method::HEAD || body.is_empty();
                session.write_response_header(head, head_only).await?;
                if !head_only {
                    session.write_response_body(Some(body), true).await?;
                }
                Ok(true)
            }
        }
    }

    fn hash_key(
        &self,
        session: &Session,
        ctx: &Ctx,
        on: HashOn,
        header: Option<&http::HeaderName>,
    ) -> Vec<u8> {
        match on {
            HashOn::ClientIp => ctx.client_str.as_bytes().to_vec(),
            HashOn::Path => ctx.path.as_bytes().to_vec(),
            HashOn::Header => header
                .and_then(|h| session.req_header().headers.get(h))
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn record_backend_failure(&self, ctx: &Ctx) {
        let (Some(live), Some(u), Some(b)) = (&ctx.live, ctx.upstream, ctx.backend) else {
            return;
        };
        let Some(group) = live.upstreams.get(u) else {
            return;
        };
        let Some(backend) = group.backends.get(b) else {
            return;
        };
        self.store
            .metrics
            .upstream_failures
            .with_label_values(&[&group.spec.name, &backend.name])
            .inc();
        if backend.record_failure(&group.spec) {
            tracing::warn!(upstream = %group.spec.name, backend = %backend.name, "backend ejected after consecutive failures");
        }
    }

    fn may_retry(&self, ctx: &Ctx) -> bool {
        let (Some(live), Some(u)) = (&ctx.live, ctx.upstream) else {
            return false;
        };
        live.upstreams.get(u).is_some_and(|g| {
            ctx.tried.len() <= g.spec.retries as usize && ctx.tried.len() < g.backends.len()
        })
    }
}

fn status_error(ctx: &mut Ctx, d: Deny) -> Box<Error> {
    ctx.deny = Some(d);
    Error::explain(ErrorType::HTTPStatus(d.status), d.message)
}

fn deny_for(e: &Error, ctx: &Ctx) -> Option<Deny> {
    if let Some(d) = ctx.deny {
        return Some(d);
    }
    use ErrorType::*;
    let d = match (e.esource(), e.etype()) {
        (_, HTTPStatus(s)) => errors::ALL
            .iter()
            .find(|d| d.status == *s)
            .copied()
            .unwrap_or(errors::INTERNAL),
        (
            ErrorSource::Upstream,
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout,
        ) => errors::UPSTREAM_TIMEOUT,
        (
            ErrorSource::Upstream,
            ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | InvalidCert
            | HandshakeError,
        ) => errors::UPSTREAM_CONNECT,
        (ErrorSource::Upstream, _) => errors::UPSTREAM_BROKEN,
        (
            ErrorSource::Downstream,
            ReadError | WriteError | ConnectionClosed | ReadTimedout | WriteTimedout,
        ) => return None,
        (ErrorSource::Downstream, _) => errors::BAD_REQUEST,
        _ => errors::INTERNAL,
    };
    Some(d)
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora keeps the context inside each request's future, which it builds on the
    /// stack and then moves into a box of its own (one `memcpy` of the whole future per request,
    /// measured with callgrind); a pointer keeps that copy small.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx::new())
    }

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // None. Pingora's default registers a (disabled) response-compression module that still
        // runs on every response head and body chunk; the gateway does not compress.
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<()> {
        let live = self.store.current();
        let trust = &live.snapshot.trust;
        ctx.start = Instant::now();
        ctx.peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.peer_trusted = ctx.peer.is_some_and(|p| trust.is_trusted(p));
        let req = session.req_header();
        ctx.client = ctx
            .peer
            .map(|p| hygiene::client_ip(p, ctx.peer_trusted, req, trust));
        ctx.client_str = ctx.client.map(hygiene::ip_text).unwrap_or_default();
        ctx.client_network = ctx.client.and_then(|c| trust.client_network(c));
        ctx.request_id = match req.headers.get(&trust.request_id_header) {
            Some(v) if ctx.peer_trusted && hygiene::valid_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => hygiene::mint_request_id(),
        };
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        ctx.proto = if tls { "https" } else { "http" };
        if ctx.peer_trusted {
            if let Some(p) = req.headers.get("x-forwarded-proto") {
                ctx.proto = match p.as_bytes() {
                    b"https" => "https",
                    b"http" => "http",
                    _ => ctx.proto,
                };
            }
        }
        ctx.live = Some(live);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        // Banned addresses first: nothing else is spent on them.
        // The ban key is `ip:` and the address as `Display` writes it: `client_str` already is.
        // An IPv6 client is also banned through its network (`ip:2001:db8:1:2::/64`).
        if !self.store.bans.is_empty() && ctx.client.is_some() {
            let ban = self
                .store
                .bans
                .get(&format!("ip:{}", ctx.client_str))
                .or_else(|| {
                    let net = ctx.client_network.as_ref()?;
                    self.store.bans.get(&format!("ip:{net}"))
                });
            if let Some(ban) = ban {
                return self.banned(session, ctx, "ip", ban).await;
            }
        }
        // Standing bans of the policy ([[ban]]).
        if let (Some(live), Some(c)) = (ctx.live.clone(), ctx.client) {
            if let Some(reason) = live.snapshot.bans.ip(c) {
                self.store.metrics.banned.with_label_values(&["ip"]).inc();
                tracing::info!(request_id = %ctx.request_id, reason, "refused: banned by policy");
                return self.deny(session, ctx, errors::BANNED, &Extra::new()).await;
            }
        }
        if let Err((d, extra)) = self.admit(session, ctx) {
            if d == errors::BAD_FRAMING {
                session.set_keepalive(None);
            }
            return self.deny(session, ctx, d, &extra).await;
        }
        let Some(live) = ctx.live.clone() else {
            return Ok(false);
        };
        if ctx.reserved {
            let step = crate::auth::reserved(live.sso.as_deref(), session, ctx).await?;
            return self.finish(session, ctx, step).await;
        }
        let Some(route) = ctx.route.and_then(|i| live.snapshot.router.routes().get(i)) else {
            return Ok(false);
        };
        // Request inspection (attack detection) on the head, and on the body when it can be
        // held back; a longer body is inspected as it streams (request_body_filter).
        if let Some(profile) = route.waf {
            let r =
                crate::inspect::check(&live, route.max_body_bytes, profile, session, ctx).await?;
            crate::inspect::report(ctx, &self.store.metrics);
            if let Err(d) = r {
                return self.deny(session, ctx, d, &Extra::new()).await;
            }
        }
        // The route's rate limits (pre-authentication: address, route and header keys), so a
        // flood cannot cost provider round trips or signature checks.
        use crate::limits::{self, Phase};
        let metrics = &self.store.metrics;
        if limits::has(&live, route, Phase::BeforeAuth) {
            let req = session.req_header();
            if let Err((d, extra)) =
                limits::check(&live, route, req, ctx, metrics, Phase::BeforeAuth).await
            {
                return self.deny(session, ctx, d, &extra).await;
            }
        }
        // Authentication and claim requirements.
        let step = if route.auth.kind == menwei_policy::raw::Auth::GmCertificate {
            crate::auth::check_certificate(&live, &route.auth, session, ctx)
        } else if route.auth.kind == menwei_policy::raw::Auth::GmSignature {
            crate::auth::check_signature(
                &live,
                &self.store.nonces,
                &route.auth,
                route.max_body_bytes,
                session,
                ctx,
            )
            .await?
        } else {
            crate::auth::check(live.sso.as_deref(), &route.auth, session, ctx).await?
        };
        if self.finish(session, ctx, step).await? {
            return Ok(true);
        }
        // Banned users, once known.
        if let (false, Some(id)) = (self.store.bans.is_empty(), &ctx.identity) {
            if let Some(ban) = self.store.bans.get(&format!("user:{}", id.sub)) {
                return self.banned(session, ctx, "user", ban).await;
            }
        }
        if let Some(reason) = ctx
            .identity
            .as_ref()
            .and_then(|id| live.snapshot.bans.user(&id.sub))
        {
            self.store.metrics.banned.with_label_values(&["user"]).inc();
            tracing::info!(request_id = %ctx.request_id, reason, "refused: user banned by policy");
            return self.deny(session, ctx, errors::BANNED, &Extra::new()).await;
        }
        // Limits and quotas keyed on who the caller is (user, app, department, any claim).
        if limits::has(&live, route, Phase::AfterAuth) {
            let req = session.req_header();
            if let Err((d, extra)) =
                limits::check(&live, route, req, ctx, metrics, Phase::AfterAuth).await
            {
                return self.deny(session, ctx, d, &extra).await;
            }
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > ctx.route_spec().map_or(0, |r| r.max_body_bytes) {
                return Err(status_error(ctx, errors::BODY_TOO_LARGE));
            }
        }
        if ctx.waf.as_ref().is_some_and(|w| w.pending.is_some()) {
            let verdict = crate::inspect::on_body(session.req_header(), body, end, ctx);
            crate::inspect::report(ctx, &self.store.metrics);
            if let Err(d) = verdict {
                return Err(status_error(ctx, d));
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        let live = ctx
            .live
            .clone()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        let group = ctx
            .upstream
            .and_then(|u| live.upstreams.get(u))
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        let spec = &group.spec;
        let first = *ctx.first_attempt.get_or_insert_with(Instant::now);
        let remaining = spec
            .total_timeout
            .map(|t| t.saturating_sub(first.elapsed()));
        if remaining.is_some_and(|r| r.is_zero()) {
            return Err(status_error(ctx, errors::UPSTREAM_TIMEOUT));
        }
        let key = self.hash_key(session, ctx, spec.hash_on, spec.hash_header.as_ref());
        let Some(i) = group.select(&key, &ctx.tried) else {
            return Err(status_error(ctx, errors::NO_BACKEND));
        };
        let backend = &group.backends[i];
        ctx.tried.push(i);
        ctx.backend = Some(i);
        ctx.inflight = Some(crate::upstream::InflightGuard::new(backend.clone()));
        let sni = spec.sni.clone().unwrap_or_else(|| {
            backend
                .name
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
        });
        let mut peer = HttpPeer::new(backend.addr, spec.tls, sni);
        let cap = |d: std::time::Duration| Some(remaining.map_or(d, |r| d.min(r)));
        peer.options.connection_timeout = cap(spec.connect_timeout);
        peer.options.read_timeout = cap(spec.read_timeout);
        peer.options.write_timeout = Some(spec.write_timeout);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.record_backend_failure(ctx);
        // Nothing reached the backend, so any method may go to another one.
        if self.may_retry(ctx) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        if e.esource() == &ErrorSource::Upstream {
            self.record_backend_failure(ctx);
        }
        let idempotent = session.req_header().method.is_idempotent();
        let retry = idempotent && !session.as_ref().retry_buffer_truncated() && self.may_retry(ctx);
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let live = ctx
            .live
            .clone()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        // Forward the normalised path (and the query unchanged). Origin-form requests whose path
        // is already normal, the common case, keep their URI as it is.
        let orig = &session.req_header().uri;
        if orig.path() != ctx.path || orig.scheme().is_some() || orig.authority().is_some() {
            let target = match orig.query() {
                Some(q) => format!("{}?{q}", ctx.path),
                None => ctx.path.clone(),
            };
            let uri: http::Uri = target
                .parse()
                .map_err(|_| status_error(ctx, errors::BAD_PATH))?;
            upstream.set_uri(uri);
        }
        let Some(peer) = ctx.peer else {
            return Err(Error::new(ErrorType::InternalError));
        };
        // The peer is usually the client: reuse its formatted address.
        let peer_str = if ctx.client == Some(peer) {
            std::borrow::Cow::Borrowed(ctx.client_str.as_str())
        } else {
            std::borrow::Cow::Owned(hygiene::ip_text(peer))
        };
        let f = Forwarding {
            trust: &live.snapshot.trust,
            peer: &peer_str,
            peer_trusted: ctx.peer_trusted,
            client: &ctx.client_str,
            proto: ctx.proto,
            host: &ctx.host,
            request_id: &ctx.request_id,
            upgrade: ctx.upgrade.clone(),
        };
        hygiene::clean_upstream_request(upstream, &f);
        if let Some(sso) = live.sso.as_deref() {
            hygiene::strip_own_cookies(upstream, |n| sso.is_own_cookie(n));
        }
        // A masked route needs a body it can read: ask the backend for no compression.
        if ctx.route_spec().is_some_and(|r| r.mask.is_some()) {
            upstream.remove_header(&http::header::ACCEPT_ENCODING);
        }
        // Identity, written after every client-sent identity header is gone.
        // The certificate header is for the gateway only.
        if let Some(h) = live
            .snapshot
            .gm
            .as_ref()
            .and_then(|g| g.client_cert_header.as_ref())
        {
            upstream.remove_header(h);
        }
        if let Some(c) = &ctx.cert_identity {
            let _ = upstream.insert_header("x-user-id", c.cn.as_str());
            if let Some(d) = c.ou.as_ref().or(c.o.as_ref()) {
                let _ = upstream.insert_header("x-user-department", d.as_str());
            }
            let _ = upstream.insert_header("x-menwei-cert-serial", c.serial.as_str());
            let _ = upstream.insert_header("x-menwei-auth", "gm-certificate");
        }
        if let Some(app) = &ctx.app_id {
            let _ = upstream.insert_header("x-menwei-app-id", app.as_str());
            let _ = upstream.insert_header("x-menwei-auth", "gm-signature");
        }
        if let (Some(id), Some(sso)) = (&ctx.identity, live.sso.as_deref()) {
            for (h, v) in sso.headers(id) {
                let _ = upstream.insert_header(h, v);
            }
            let upstream_name = ctx
                .upstream
                .and_then(|u| live.upstreams.get(u))
                .map_or("-", |g| g.spec.name.as_str());
            if let Some(a) = sso.assertion(id, ctx.route_name(), upstream_name, &ctx.request_id) {
                let _ = upstream.insert_header("x-menwei-assertion", a);
            }
            let forward = sso
                .provider_spec(id.provider)
                .is_some_and(|p| p.forward_access_token);
            if let (true, Some(t)) = (forward, &id.access_token) {
                let _ = upstream.insert_header(http::header::AUTHORIZATION, format!("Bearer {t}"));
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let (Some(live), Some(u), Some(b)) = (&ctx.live, ctx.upstream, ctx.backend) {
            if let Some(backend) = live.upstreams.get(u).and_then(|g| g.backends.get(b)) {
                backend.record_success();
            }
        }
        let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
        if let Some(sso) = ctx.live.as_ref().and_then(|l| l.sso.as_deref()) {
            if hygiene::strip_own_set_cookies(resp, |n| sso.is_own_cookie(n)) {
                tracing::warn!(
                    route = ctx.route_name(),
                    request_id = ctx.request_id.as_str(),
                    "a backend tried to set the gateway's session cookie; removed"
                );
            }
        }
        if let Some(live) = ctx.live.clone() {
            if let Err(d) = crate::masking::on_head(&live, &self.store, resp, ctx) {
                return Err(status_error(ctx, d));
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.mask.is_none() {
            return Ok(None);
        }
        let Some(live) = ctx.live.clone() else {
            return Ok(None);
        };
        if let Err(deny) = crate::masking::on_body(&live, body, end_of_stream, ctx) {
            // Refused with its code when nothing was sent yet; otherwise the connection is cut.
            return Err(status_error(ctx, deny));
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        let Some(d) = deny_for(e, ctx) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        ctx.deny = Some(d);
        tracing::warn!(request_id = %ctx.request_id, route = ctx.route_name(), code = d.code, error = %e, "request failed");
        if session.response_written().is_none() {
            let _ = self.deny(session, ctx, d, &[]).await;
        }
        FailToProxy {
            error_code: d.status,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Box<Ctx>, _error: &Error) -> bool {
        // fail_to_proxy logs failures with the request id; Pingora's own line would repeat it.
        true
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Box<Ctx>) {
        // Security refusals go to the audit log (rate-limit 429s are in metrics, not here:
        // a flood must not flood the audit trail).
        if let Some(d) = ctx.deny {
            if ["MW-AUTH-", "MW-SIG-", "MW-BAN-"]
                .iter()
                .any(|p| d.code.starts_with(p))
            {
                self.store.audit(
                    "denied",
                    serde_json::json!({
                        "code": d.code, "status": d.status, "request_id": ctx.request_id,
                        "route": ctx.route_name(), "client": ctx.client_str,
                        "path": crate::access_log::log_safe(&ctx.path), "sub": ctx.identity.as_ref().map(|i| i.sub.as_str()),
                    }),
                );
            }
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.deny.map(|d| d.status))
            .unwrap_or(0);
        crate::watch::observe(&self.store, ctx, status).await;
        crate::access_log::record(&self.store, session, ctx);
        ctx.inflight = None;
    }
}
