//! menwei single sign-on. Plain inputs (method, path, headers) in, decisions out; the core crate
//! turns them into responses and headers. Never sees a Pingora session.
//!
//! - Browser routes (`auth = "login"`): a sealed session cookie names a server-side session; no
//!   session sends the browser to the provider (code flow + PKCE), API clients get 401.
//! - API routes (`auth = "bearer"`, or `login` with a bearer token): JWT checked against the
//!   provider's keys.
//! - Reserved endpoints: `/.menwei/callback`, `/.menwei/logout`, `/.menwei/backchannel-logout`,
//!   `/.menwei/jwks.json` (the gateway's assertion keys).

pub mod assertion;
pub mod claims;
pub mod jwt;
pub mod provider;
pub mod seal;
pub mod store;

use menwei_policy::compile_sso::same_origin_path;
use menwei_policy::raw::{Auth, SessionStore};
use menwei_policy::snapshot::{RouteAuth, SsoSpec};
use menwei_state::RedisStore;
use provider::{ProviderError, ProviderRt};
use seal::Sealer;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{PendingLogin, Session, Store};

pub const CALLBACK: &str = "/.menwei/callback";
pub const LOGOUT: &str = "/.menwei/logout";
pub const BACKCHANNEL: &str = "/.menwei/backchannel-logout";
pub const JWKS: &str = "/.menwei/jwks.json";
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The subject of verified claims: `sub` as a non-empty string, or nothing. A token whose `sub`
/// is missing, empty or of another type names no one and is refused, never taken as a user with
/// an empty id (which limits, identity headers and the assertion would all share).
fn subject(claims: &Map<String, Value>) -> Option<String> {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether the ID token a refresh returned (if any) names the session's subject, as OpenID
/// Connect Core 12.2 requires; if not, the refresh is refused and the session ends.
fn same_subject(session_sub: &str, refreshed: Option<&Map<String, Value>>) -> bool {
    refreshed.is_none_or(|c| subject(c).as_deref() == Some(session_sub))
}

/// Milliseconds on a monotonic clock, starting at 1.
pub fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// A sign-in event, for metrics and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// `login`, `login_failure`, `refresh`, `refresh_failure`, `logout`, `backchannel_logout`,
    /// `bearer_failure`.
    pub event: &'static str,
    pub reason: &'static str,
    /// The user, when known.
    pub sub: Option<&'a str>,
    pub request_id: &'a str,
}

/// Receives every sign-in event (the core counts them and writes the audit log).
pub type Counter = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// State that outlives a policy reload: the in-memory sessions and the providers' discovery.
#[derive(Default)]
pub struct Shared {
    memory: Arc<store::MemoryStore>,
    providers: Mutex<Vec<Arc<ProviderRt>>>,
}

/// One request, as SSO needs it.
pub struct Req<'a> {
    pub method: &'a http::Method,
    /// The normalised path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// Served over TLS (directly or per a trusted proxy).
    pub tls: bool,
    /// `host[:port]` as the client addressed it.
    pub authority: &'a str,
    pub request_id: &'a str,
    /// The form body, read by the core for the back-channel logout endpoint only.
    pub form: Option<&'a [u8]>,
}

impl Req<'_> {
    fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                let (n, v) = c.trim().split_once('=')?;
                (n == name).then_some(v)
            })
    }

    fn bearer(&self) -> Option<&str> {
        let v = self
            .headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    fn wants_html(&self) -> bool {
        matches!(*self.method, http::Method::GET | http::Method::HEAD)
            && self
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"))
    }

    fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn form_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.form?)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A verified user or API client.
#[derive(Debug, Clone)]
pub struct Identity {
    pub provider: usize,
    pub sub: String,
    pub claims: Map<String, Value>,
    /// Forwarded to backends when the provider says so.
    pub access_token: Option<String>,
}

/// Why SSO refuses a request. The core maps each to a status and a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// 401: no session and not a browser (or a bearer route without a token).
    LoginRequired,
    /// 401: the bearer token failed a check.
    InvalidToken,
    /// 403: signed in, but a claim requirement failed.
    Forbidden,
    /// 503: the provider cannot be reached to start or finish a login.
    ProviderUnavailable,
    /// 400: a login callback that does not belong to a login in progress.
    BadCallback,
    /// 503: the session store cannot be reached.
    StoreUnavailable,
    /// 400: a malformed back-channel logout.
    BadLogoutToken,
}

/// What to do with the request.
#[derive(Debug)]
pub enum Outcome {
    /// Go on to the backend as this identity (`None` on public routes).
    Allow(Option<Identity>),
    /// Send the browser elsewhere.
    Redirect {
        location: String,
        cookies: Vec<String>,
    },
    /// Refuse.
    Deny {
        denial: Denial,
        www_authenticate: Option<String>,
        cookies: Vec<String>,
    },
    /// A reserved endpoint's own answer.
    Reply {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

fn deny(d: Denial) -> Outcome {
    Outcome::Deny {
        denial: d,
        www_authenticate: None,
        cookies: Vec::new(),
    }
}

/// The SSO runtime for one policy snapshot.
pub struct Sso {
    pub spec: Arc<SsoSpec>,
    providers: Vec<Arc<ProviderRt>>,
    store: Store,
    sealer: Arc<Sealer>,
    signer: assertion::Signer,
    count: Counter,
}

impl Sso {
    /// Builds the runtime; providers whose settings did not change keep their discovery.
    pub fn build(
        spec: Arc<SsoSpec>,
        shared: &Shared,
        redis: Option<Arc<RedisStore>>,
        count: Counter,
    ) -> Result<Sso, String> {
        let mut kept = shared
            .providers
            .lock()
            .map_err(|_| "provider registry poisoned".to_string())?;
        let mut providers = Vec::new();
        for p in &spec.providers {
            let rt = match kept.iter().find(|k| k.same(p)) {
                Some(k) => k.clone(),
                None => Arc::new(ProviderRt::new(p.clone())?),
            };
            providers.push(rt);
        }
        *kept = providers.clone();
        let cipher = match spec.cipher {
            menwei_policy::raw::SessionCipher::Aes256Gcm => seal::Cipher::Aes256Gcm,
            menwei_policy::raw::SessionCipher::Sm4Gcm => seal::Cipher::Sm4Gcm,
        };
        let sealer =
            Arc::new(Sealer::new(&spec.session_key.0, cipher).ok_or("session key unusable")?);
        let store = match (spec.store, redis) {
            (SessionStore::Redis, Some(r)) => Store::Redis(r, sealer.clone()),
            (SessionStore::Redis, None) => return Err("[sso] store = redis needs [state]".into()),
            (SessionStore::Memory, _) => Store::Memory(shared.memory.clone()),
        };
        let signer = match spec.assertion_alg {
            menwei_policy::raw::AssertionAlg::Es256 => {
                assertion::Signer::new(&spec.assertion_key.0)
            }
            menwei_policy::raw::AssertionAlg::Sm2 => {
                assertion::Signer::new_sm2(&spec.assertion_key.0)
            }
        }
        .ok_or("assertion key unusable")?;
        Ok(Sso {
            spec,
            providers,
            store,
            sealer,
            signer,
            count,
        })
    }

    pub fn provider_spec(&self, i: usize) -> Option<&menwei_policy::snapshot::ProviderSpec> {
        self.providers.get(i).map(|p| &p.spec)
    }

    fn cookie_name(&self, tls: bool) -> String {
        if tls {
            format!("__Host-{}", self.spec.cookie_name)
        } else {
            self.spec.cookie_name.clone()
        }
    }

    fn emit(&self, event: &'static str, reason: &'static str, sub: Option<&str>, request_id: &str) {
        (self.count)(&Event {
            event,
            reason,
            sub,
            request_id,
        });
    }

    /// Whether a cookie name is one the gateway sets (never forwarded to backends).
    pub fn is_own_cookie(&self, name: &str) -> bool {
        let base = name.strip_prefix("__Host-").unwrap_or(name);
        let base = base.strip_suffix("_login").unwrap_or(base);
        base == self.spec.cookie_name
    }

    fn set_cookie(&self, name: &str, value: &str, tls: bool, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if tls {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }

    fn clear_cookie(&self, name: &str, tls: bool) -> String {
        self.set_cookie(name, "", tls, Some(0))
    }

    /// The session id in the request's cookie, if it opens.
    fn session_id(&self, req: &Req<'_>) -> Option<String> {
        let name = self.cookie_name(req.tls);
        let sealed = req.cookie(&name)?;
        let id = self.sealer.open(name.as_bytes(), sealed)?;
        String::from_utf8(id).ok()
    }

    /// Signs the identity assertion for a backend of `upstream`. Its audience names that
    /// upstream too (`upstream:<name>`), so that an assertion one department's backend has seen
    /// does not pass at another department's backend that checks its own name.
    pub fn assertion(
        &self,
        id: &Identity,
        route: &str,
        upstream: &str,
        request_id: &str,
    ) -> Option<String> {
        let p = self.providers.get(id.provider)?;
        let mut c = Map::new();
        c.insert("sub".into(), id.sub.clone().into());
        c.insert(
            "aud".into(),
            serde_json::json!(["menwei-backends", format!("upstream:{upstream}")]),
        );
        c.insert("upstream".into(), upstream.into());
        c.insert("idp".into(), p.spec.issuer.clone().into());
        for (k, path) in [
            ("name", &p.spec.claims.name),
            ("roles", &p.spec.claims.roles),
            ("department", &p.spec.claims.department),
        ] {
            if let Some(v) = claims::lookup(&id.claims, path) {
                c.insert(k.into(), v.clone());
            }
        }
        c.insert("route".into(), route.into());
        c.insert("rid".into(), request_id.into());
        self.signer
            .sign(c, self.spec.assertion_ttl.as_secs().max(1))
    }

    /// Identity headers for a backend: (header, value) per configured claim.
    pub fn headers(&self, id: &Identity) -> Vec<(http::HeaderName, String)> {
        let Some(p) = self.providers.get(id.provider) else {
            return Vec::new();
        };
        self.spec
            .headers
            .iter()
            .filter_map(|(h, claim)| {
                let v = claims::lookup(&id.claims, p.spec.claims.resolve(claim))?;
                Some((h.clone(), claims::header_text(v)))
            })
            .collect()
    }

    /// Handles `/.menwei/...` paths. `None`: not an SSO endpoint.
    pub async fn endpoint(&self, req: &Req<'_>) -> Option<Outcome> {
        Some(match req.path {
            CALLBACK => self.callback(req).await,
            LOGOUT => self.logout(req).await,
            BACKCHANNEL => self.backchannel(req).await,
            JWKS => Outcome::Reply {
                status: 200,
                content_type: "application/jwk-set+json",
                body: self.signer.jwks().to_string(),
            },
            _ => return None,
        })
    }

    /// Authentication and access rules of a route.
    pub async fn check(&self, req: &Req<'_>, auth: &RouteAuth) -> Outcome {
        if auth.kind == Auth::Public {
            return Outcome::Allow(None);
        }
        let Some(pi) = auth.provider else {
            return deny(Denial::LoginRequired);
        };
        let Some(p) = self.providers.get(pi).cloned() else {
            return deny(Denial::LoginRequired);
        };
        let identity = if auth.kind == Auth::Login {
            match self.session_identity(req, pi, &p).await {
                Ok(Some(id)) => Some(id),
                Ok(None) => None,
                Err(o) => return o,
            }
        } else {
            None
        };
        let identity = match identity {
            Some(id) => id,
            None => match req.bearer() {
                Some(token) => match self.bearer_identity(token, pi, &p, req).await {
                    Ok(id) => id,
                    Err(o) => return o,
                },
                None if auth.kind == Auth::Login && req.wants_html() => {
                    return self.start_login(req, &p).await
                }
                None => {
                    return Outcome::Deny {
                        denial: Denial::LoginRequired,
                        www_authenticate: Some(format!(
                            "Bearer realm=\"{}\"",
                            p.spec.name.replace('"', "")
                        )),
                        cookies: Vec::new(),
                    }
                }
            },
        };
        if let Some(r) = claims::failed(&identity.claims, &p.spec.claims, &auth.require) {
            tracing::info!(request_id = req.request_id, sub = %identity.sub, claim = %r.claim, "access refused: claim requirement not met");
            return deny(Denial::Forbidden);
        }
        Outcome::Allow(Some(identity))
    }

    async fn bearer_identity(
        &self,
        token: &str,
        pi: usize,
        p: &ProviderRt,
        req: &Req<'_>,
    ) -> Result<Identity, Outcome> {
        // A token that is not shaped like a JWT is opaque: introspected when the provider says so.
        let checked = if p.spec.introspection.is_some() && token.split('.').count() != 3 {
            p.introspect(token).await
        } else {
            p.verify_jwt(token, &p.spec.audience, &["exp", "iss", "aud", "sub"], true)
                .await
        };
        let checked = checked.and_then(|claims| match subject(&claims) {
            Some(sub) => Ok((sub, claims)),
            None => Err(jwt::TokenError::Invalid(
                "sub is not a non-empty string".into(),
            )),
        });
        match checked {
            Ok((sub, claims)) => Ok(Identity {
                provider: pi,
                sub,
                claims,
                access_token: Some(token.to_string()),
            }),
            Err(e @ jwt::TokenError::Unavailable(_)) => {
                // Neither accepted nor refused: the client may try again (new sign-ins get the
                // same 503 while the provider is down).
                self.emit(
                    "bearer_failure",
                    "provider_unavailable",
                    None,
                    req.request_id,
                );
                tracing::warn!(request_id = req.request_id, error = %e, "bearer token not checked: provider unavailable");
                Err(deny(Denial::ProviderUnavailable))
            }
            Err(e) => {
                self.emit("bearer_failure", "invalid_token", None, req.request_id);
                tracing::info!(request_id = req.request_id, error = %e, "bearer token refused");
                Err(Outcome::Deny {
                    denial: Denial::InvalidToken,
                    www_authenticate: Some(format!(
                        "Bearer realm=\"{}\", error=\"invalid_token\"",
                        p.spec.name.replace('"', "")
                    )),
                    cookies: Vec::new(),
                })
            }
        }
    }

    /// The session's identity; `Ok(None)` when there is no valid session.
    async fn session_identity(
        &self,
        req: &Req<'_>,
        pi: usize,
        p: &ProviderRt,
    ) -> Result<Option<Identity>, Outcome> {
        let Some(id) = self.session_id(req) else {
            return Ok(None);
        };
        let s = match self.store.get_session(&id, self.spec.idle_timeout).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
                return Err(deny(Denial::StoreUnavailable));
            }
        };
        if s.provider != p.spec.name {
            return Ok(None);
        }
        let s = match self.refresh_if_due(&id, s, p, req).await {
            Some(s) => s,
            None => return Ok(None),
        };
        Ok(Some(Identity {
            provider: pi,
            sub: s.sub.clone(),
            claims: s.claims.clone(),
            access_token: s.access_token.clone(),
        }))
    }

    /// Refreshes the access token when it is close to expiry, one refresh at a time per session
    /// (across replicas when sessions are in Redis). `None`: the session ended.
    async fn refresh_if_due(
        &self,
        id: &str,
        s: Arc<Session>,
        p: &ProviderRt,
        req: &Req<'_>,
    ) -> Option<Arc<Session>> {
        let due = |s: &Session| {
            s.refresh_token.is_some()
                && s.access_expires != 0
                && now_secs() + p.spec.refresh_before.as_secs() >= s.access_expires
        };
        if !due(&s) {
            return Some(s);
        }
        match self.store.lock_refresh(id).await {
            Ok(true) => {}
            Ok(false) => {
                // Another request refreshes. Use the current token while it is valid; else
                // wait (bounded) for the new one.
                if now_secs() < s.access_expires {
                    return Some(s);
                }
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    match self.store.get_session(id, self.spec.idle_timeout).await {
                        Ok(Some(n)) if n.access_expires > now_secs() => return Some(n),
                        Ok(None) => return None,
                        _ => {}
                    }
                }
                return Some(s);
            }
            Err(e) => {
                tracing::warn!(request_id = req.request_id, error = %e, "refresh lock unavailable; refresh skipped");
                return Some(s);
            }
        }
        // Another replica may have refreshed between our read and the lock.
        let s = match self.store.get_session(id, self.spec.idle_timeout).await {
            Ok(Some(n)) => n,
            _ => s,
        };
        if !due(&s) {
            self.store.unlock_refresh(id).await;
            return Some(s);
        }
        let Some(rt) = s.refresh_token.clone() else {
            self.store.unlock_refresh(id).await;
            return Some(s);
        };
        let refreshed = p.refresh(&rt).await.and_then(|t| {
            if same_subject(&s.sub, t.claims.as_ref()) {
                Ok(t)
            } else {
                Err(ProviderError::Invalid(
                    "the refreshed ID token names another subject".into(),
                ))
            }
        });
        let out = match refreshed {
            Ok(t) => {
                self.emit("refresh", "ok", Some(&s.sub), req.request_id);
                let mut n = (*s).clone();
                n.access_token = Some(t.access_token);
                n.access_expires = t.expires_in.map_or(0, |d| now_secs() + d.as_secs());
                if let Some(r) = t.refresh_token {
                    n.refresh_token = Some(r);
                }
                if let Some(i) = t.id_token {
                    n.id_token = i;
                }
                match self.store.put_session(id, &n).await {
                    Ok(()) => Some(Arc::new(n)),
                    Err(e) => {
                        tracing::error!(request_id = req.request_id, error = %e, "refreshed session could not be stored");
                        Some(Arc::new(n))
                    }
                }
            }
            Err(ProviderError::Unavailable(why)) => {
                // Provider down: the session keeps working until it expires.
                self.emit(
                    "refresh_failure",
                    "unavailable",
                    Some(&s.sub),
                    req.request_id,
                );
                tracing::warn!(
                    request_id = req.request_id,
                    why,
                    "refresh failed; provider unavailable, session kept"
                );
                Some(s)
            }
            Err(e) => {
                self.emit("refresh_failure", "refused", Some(&s.sub), req.request_id);
                tracing::info!(request_id = req.request_id, error = %e, "refresh refused; session ended");
                let _ = self.store.delete_session(id).await;
                None
            }
        };
        self.store.unlock_refresh(id).await;
        out
    }

    async fn start_login(&self, req: &Req<'_>, p: &ProviderRt) -> Outcome {
        let redirect_uri = format!("{}{CALLBACK}", req.origin());
        let a = match p.authorize(&redirect_uri).await {
            Ok(a) => a,
            Err(e) => {
                self.emit(
                    "login_failure",
                    "provider_unavailable",
                    None,
                    req.request_id,
                );
                tracing::warn!(request_id = req.request_id, error = %e, "cannot start login");
                return deny(Denial::ProviderUnavailable);
            }
        };
        let mut return_to = req.path.to_string();
        if let Some(q) = req.query {
            return_to.push('?');
            return_to.push_str(q);
        }
        if !same_origin_path(&return_to) {
            return_to = "/".into();
        }
        let pending = PendingLogin {
            provider: p.spec.name.clone(),
            nonce: a.nonce,
            pkce_verifier: a.pkce_verifier,
            return_to,
            redirect_uri,
            created: now_secs(),
        };
        if let Err(e) = self
            .store
            .put_login(&a.state, &pending, self.spec.login_timeout)
            .await
        {
            tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
            return deny(Denial::StoreUnavailable);
        }
        // The state is also bound to this browser (login CSRF): only the browser that started
        // the login can finish it.
        let name = format!("{}_login", self.cookie_name(req.tls));
        let Some(sealed) = self.sealer.seal(name.as_bytes(), a.state.as_bytes()) else {
            return deny(Denial::StoreUnavailable);
        };
        let cookie = self.set_cookie(
            &name,
            &sealed,
            req.tls,
            Some(self.spec.login_timeout.as_secs()),
        );
        Outcome::Redirect {
            location: a.url,
            cookies: vec![cookie],
        }
    }

    async fn callback(&self, req: &Req<'_>) -> Outcome {
        let fail = |why: &str| {
            self.emit("login_failure", "bad_callback", None, req.request_id);
            tracing::info!(request_id = req.request_id, why, "login callback refused");
            deny(Denial::BadCallback)
        };
        if let Some(err) = req.query_param("error") {
            self.emit("login_failure", "provider_error", None, req.request_id);
            tracing::info!(request_id = req.request_id, error = %err.chars().take(64).collect::<String>(), "provider returned an error to the callback");
            return deny(Denial::BadCallback);
        }
        let (Some(state), Some(code)) = (req.query_param("state"), req.query_param("code")) else {
            return fail("missing state or code");
        };
        let login_cookie = format!("{}_login", self.cookie_name(req.tls));
        let bound = req
            .cookie(&login_cookie)
            .and_then(|c| self.sealer.open(login_cookie.as_bytes(), c));
        if bound.as_deref() != Some(state.as_bytes()) {
            return fail("state not bound to this browser");
        }
        let pending = match self.store.take_login(&state).await {
            Ok(Some(p)) => p,
            Ok(None) => return fail("unknown, used or expired state"),
            Err(e) => {
                tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
                return deny(Denial::StoreUnavailable);
            }
        };
        if now_secs().saturating_sub(pending.created) > self.spec.login_timeout.as_secs() {
            return fail("login took too long");
        }
        let Some((pi, p)) = self
            .providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.spec.name == pending.provider)
        else {
            return fail("provider no longer configured");
        };
        if let Some(iss) = req.query_param("iss") {
            // RFC 9207: the response names its issuer; it must be the one we sent the user to.
            if iss.trim_end_matches('/') != p.spec.issuer {
                return fail("issuer mix-up");
            }
        }
        let t = match p
            .exchange(
                &code,
                &pending.pkce_verifier,
                &pending.redirect_uri,
                &pending.nonce,
            )
            .await
        {
            Ok(t) => t,
            Err(ProviderError::Unavailable(why)) => {
                self.emit(
                    "login_failure",
                    "provider_unavailable",
                    None,
                    req.request_id,
                );
                tracing::warn!(request_id = req.request_id, why, "code exchange failed");
                return deny(Denial::ProviderUnavailable);
            }
            Err(e) => return fail(&e.to_string()),
        };
        let (Some(claims), Some(id_token)) = (t.claims, t.id_token) else {
            return fail("no ID token");
        };
        let Some(sub) = subject(&claims) else {
            return fail("the ID token's sub is empty");
        };
        let now = now_secs();
        let session = Session {
            provider: p.spec.name.clone(),
            sid: claims
                .get("sid")
                .and_then(Value::as_str)
                .map(str::to_string),
            sub: sub.clone(),
            claims,
            id_token,
            access_token: Some(t.access_token),
            refresh_token: t.refresh_token,
            access_expires: t.expires_in.map_or(0, |d| now + d.as_secs()),
            created: now,
            absolute_expiry: now + self.spec.absolute_timeout.as_secs(),
            idle_secs: self.spec.idle_timeout.as_secs().max(1),
        };
        // A fresh id at every login (no fixation); an old session of this browser ends.
        if let Some(old) = self.session_id(req) {
            let _ = self.store.delete_session(&old).await;
        }
        let Some(id) = seal::random_token(32) else {
            return deny(Denial::StoreUnavailable);
        };
        if let Err(e) = self.store.put_session(&id, &session).await {
            tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
            return deny(Denial::StoreUnavailable);
        }
        let name = self.cookie_name(req.tls);
        let Some(sealed) = self.sealer.seal(name.as_bytes(), id.as_bytes()) else {
            return deny(Denial::StoreUnavailable);
        };
        self.emit("login", "ok", Some(&sub), req.request_id);
        tracing::info!(request_id = req.request_id, provider = %p.spec.name, sub = %sub, "login");
        let _ = pi;
        let return_to = if same_origin_path(&pending.return_to) {
            pending.return_to
        } else {
            "/".into()
        };
        Outcome::Redirect {
            location: return_to,
            cookies: vec![
                self.set_cookie(&name, &sealed, req.tls, None),
                self.clear_cookie(&login_cookie, req.tls),
            ],
        }
    }

    async fn logout(&self, req: &Req<'_>) -> Outcome {
        let name = self.cookie_name(req.tls);
        let cookies = vec![self.clear_cookie(&name, req.tls)];
        let local_only = req.query_param("local").is_some();
        let mut session = None;
        if let Some(id) = self.session_id(req) {
            if let Ok(Some(s)) = self.store.get_session(&id, self.spec.idle_timeout).await {
                session = Some(s);
            }
            if let Err(e) = self.store.delete_session(&id).await {
                tracing::error!(request_id = req.request_id, error = %e, "logout: session store unavailable");
                return deny(Denial::StoreUnavailable);
            }
            self.emit(
                "logout",
                if local_only { "local" } else { "rp" },
                session.as_ref().map(|s| s.sub.as_str()),
                req.request_id,
            );
        }
        let provider = session
            .as_ref()
            .and_then(|s| self.providers.iter().find(|p| p.spec.name == s.provider))
            .or(self.providers.first());
        let after = provider.map_or("/", |p| p.spec.post_logout_redirect.as_str());
        if !local_only {
            if let (Some(p), Some(s)) = (provider, &session) {
                let back = format!("{}{after}", req.origin());
                if let Some(url) = p.end_session_url(&s.id_token, &back).await {
                    return Outcome::Redirect {
                        location: url,
                        cookies,
                    };
                }
            }
        }
        Outcome::Redirect {
            location: after.to_string(),
            cookies,
        }
    }

    async fn backchannel(&self, req: &Req<'_>) -> Outcome {
        let bad = |why: &str| {
            self.emit("backchannel_logout", "refused", None, req.request_id);
            tracing::info!(
                request_id = req.request_id,
                why,
                "back-channel logout refused"
            );
            deny(Denial::BadLogoutToken)
        };
        if req.method != http::Method::POST {
            return bad("not POST");
        }
        let Some(token) = req.form_param("logout_token") else {
            return bad("no logout_token");
        };
        let Some(iss) = jwt::peek_issuer(&token) else {
            return bad("unreadable token");
        };
        let Some(p) = self
            .providers
            .iter()
            .find(|p| p.spec.issuer == iss.trim_end_matches('/'))
        else {
            return bad("unknown issuer");
        };
        let aud = [p.spec.client_id.clone()];
        let claims = match p
            .verify_jwt(&token, &aud, &["iss", "aud", "iat", "jti", "events"], true)
            .await
        {
            Ok(c) => c,
            Err(e) => return bad(&e.to_string()),
        };
        let has_event = claims
            .get("events")
            .and_then(Value::as_object)
            .is_some_and(|e| e.contains_key(BACKCHANNEL_EVENT));
        if !has_event {
            return bad("no back-channel logout event");
        }
        if claims.contains_key("nonce") {
            return bad("a logout token carries no nonce");
        }
        let sid = claims.get("sid").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        if sid.is_none() && sub.is_none() {
            return bad("neither sid nor sub");
        }
        // jsonwebtoken only enforces the presence of exp/nbf/aud/iss/sub: check the rest here.
        let Some(jti) = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
        else {
            return bad("no jti");
        };
        if !claims.get("iat").is_some_and(Value::is_u64) {
            return bad("no iat");
        }
        match self
            .store
            .first_use(&format!("{}|{jti}", p.spec.name), Duration::from_secs(600))
            .await
        {
            Ok(true) => {}
            Ok(false) => return bad("replayed logout token"),
            Err(e) => {
                tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
                return deny(Denial::StoreUnavailable);
            }
        }
        match self.store.kill(&p.spec.name, sub, sid).await {
            Ok(n) => {
                self.emit("backchannel_logout", "ok", sub.or(sid), req.request_id);
                tracing::info!(request_id = req.request_id, provider = %p.spec.name, sessions = n, "back-channel logout");
                Outcome::Reply {
                    status: 200,
                    content_type: "application/json",
                    body: "{}".into(),
                }
            }
            Err(e) => {
                tracing::error!(request_id = req.request_id, error = %e, "session store unavailable");
                deny(Denial::StoreUnavailable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use menwei_policy::snapshot::{ClaimPathSpec, ProviderSpec, Secret, TokenAlg};

    fn sso() -> Sso {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let spec = SsoSpec {
            cookie_name: "menwei_session".into(),
            session_key: Secret([9u8; 32]),
            assertion_key: Secret(pkcs8.as_ref().to_vec()),
            assertion_alg: menwei_policy::raw::AssertionAlg::Es256,
            idle_timeout: Duration::from_secs(60),
            absolute_timeout: Duration::from_secs(3600),
            login_timeout: Duration::from_secs(60),
            assertion_ttl: Duration::from_secs(60),
            store: SessionStore::Memory,
            cipher: menwei_policy::raw::SessionCipher::Aes256Gcm,
            headers: vec![(http::HeaderName::from_static("x-user-id"), "sub".into())],
            providers: vec![ProviderSpec {
                name: "idp".into(),
                issuer: "https://idp.example.cn".into(),
                client_id: "c".into(),
                client_secret: Secret("s".into()),
                scopes: vec!["openid".into()],
                algorithms: TokenAlg::ALL.to_vec(),
                audience: vec!["c".into()],
                resource: None,
                claims: ClaimPathSpec {
                    roles: "roles".into(),
                    groups: "groups".into(),
                    department: "department".into(),
                    name: "name".into(),
                },
                refresh_before: Duration::from_secs(60),
                leeway: Duration::from_secs(30),
                jwks_refetch_interval: Duration::from_secs(60),
                timeout: Duration::from_secs(5),
                post_logout_redirect: "/".into(),
                forward_access_token: false,
                sm2_tokens: None,
                introspection: None,
            }],
        };
        Sso::build(Arc::new(spec), &Shared::default(), None, Arc::new(|_| {})).unwrap()
    }

    fn req<'a>(headers: &'a http::HeaderMap, tls: bool) -> Req<'a> {
        Req {
            method: &http::Method::GET,
            path: "/x",
            query: None,
            headers,
            tls,
            authority: "gov.example.cn",
            request_id: "r",
            form: None,
        }
    }

    #[test]
    fn a_refresh_keeps_the_subject() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert!(
            same_subject("alice", None),
            "no new ID token: nothing to compare"
        );
        assert!(same_subject(
            "alice",
            Some(&claims(serde_json::json!({"sub": "alice"})))
        ));
        for other in [
            serde_json::json!({"sub": "bob"}),
            serde_json::json!({"sub": ""}),
            serde_json::json!({"sub": 7}),
            serde_json::json!({}),
        ] {
            assert!(
                !same_subject("alice", Some(&claims(other.clone()))),
                "{other}"
            );
        }
    }

    #[test]
    fn introspection_answers_are_checked() {
        let s = sso();
        let p = &s.providers[0];
        let ok = serde_json::json!({"active": true, "iss": "https://idp.example.cn", "aud": ["x", "c"],
            "exp": now_secs() + 60, "client_id": "svc", "token_type": "Bearer"});
        let with = |k: &str, v: Value| {
            let mut c = ok.clone();
            c[k] = v;
            c.as_object().cloned().unwrap()
        };
        let (claims, _) = p.accept(ok.as_object().cloned().unwrap()).unwrap();
        assert_eq!(
            claims["sub"], "svc",
            "client credentials: the client is the subject"
        );
        assert!(!claims.contains_key("active"));
        assert!(p.accept(with("active", Value::Bool(false))).is_none());
        assert!(p.accept(with("active", Value::from("true"))).is_none());
        assert!(p.accept(with("aud", Value::from("other"))).is_none());
        assert!(p
            .accept(with("iss", Value::from("https://evil.example")))
            .is_none());
        assert!(p
            .accept(with("token_type", Value::from("refresh_token")))
            .is_none());
        assert!(p.accept(with("exp", Value::from("soon"))).is_none());
        let mut no_aud = ok.as_object().cloned().unwrap();
        no_aud.remove("aud");
        assert!(
            p.accept(no_aud).is_none(),
            "a token for no audience is not for us"
        );
    }

    #[test]
    fn cookies_follow_the_rules() {
        let s = sso();
        assert_eq!(s.cookie_name(false), "menwei_session");
        assert_eq!(s.cookie_name(true), "__Host-menwei_session");
        let c = s.set_cookie(&s.cookie_name(true), "v", true, None);
        assert_eq!(
            c,
            "__Host-menwei_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!c.contains("Domain"), "__Host- cookies carry no Domain");
        assert!(s.is_own_cookie("menwei_session"));
        assert!(s.is_own_cookie("__Host-menwei_session_login"));
        assert!(!s.is_own_cookie("_session"));
        // A value sealed for the plain-HTTP cookie does not open under the TLS name.
        let sealed = s.sealer.seal(b"menwei_session", b"id-1").unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("a=b; menwei_session={sealed}").parse().unwrap(),
        );
        assert_eq!(s.session_id(&req(&h, false)).as_deref(), Some("id-1"));
        let mut h2 = http::HeaderMap::new();
        h2.insert(
            http::header::COOKIE,
            format!("__Host-menwei_session={sealed}").parse().unwrap(),
        );
        assert_eq!(s.session_id(&req(&h2, true)), None);
    }

    #[test]
    fn assertion_verifies_with_the_published_key() {
        let s = sso();
        let id = Identity {
            provider: 0,
            sub: "alice".into(),
            claims: serde_json::json!({"sub": "alice", "roles": ["citizen"], "department": "x"})
                .as_object()
                .cloned()
                .unwrap(),
            access_token: None,
        };
        let a = s.assertion(&id, "portal", "records", "rid-7").unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(s.signer.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["menwei-backends"]);
        v.set_issuer(&["menwei"]);
        let c = jsonwebtoken::decode::<Value>(&a, &key, &v).unwrap().claims;
        // A backend may insist on its own upstream's name; another upstream's is refused.
        v.set_audience(&["upstream:records"]);
        assert!(jsonwebtoken::decode::<Value>(&a, &key, &v).is_ok());
        v.set_audience(&["upstream:tax"]);
        assert!(jsonwebtoken::decode::<Value>(&a, &key, &v).is_err());
        assert_eq!(c["upstream"], "records");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["rid"], "rid-7");
        assert_eq!(c["route"], "portal");
        assert_eq!(c["roles"], serde_json::json!(["citizen"]));
        assert_eq!(
            s.headers(&id),
            vec![(
                http::HeaderName::from_static("x-user-id"),
                "alice".to_string()
            )]
        );
    }

    #[test]
    fn sm2_assertion_verifies_with_the_published_sm2_key() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = menwei_gm::Sm2Private::generate(menwei_gm::DEFAULT_ID).unwrap();
        let signer = assertion::Signer::new_sm2(key.to_pem().unwrap().as_bytes()).unwrap();
        let token = signer.sign(Map::new(), 60).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "SM2-SM3");
        let jwks: Value = serde_json::from_str(signer.jwks()).unwrap();
        let k = &jwks["keys"][0];
        assert_eq!(k["crv"], "SM2");
        let x = b64.decode(k["x"].as_str().unwrap()).unwrap();
        let y = b64.decode(k["y"].as_str().unwrap()).unwrap();
        let public = menwei_gm::Sm2Public::from_hex(
            menwei_gm::DEFAULT_ID,
            &format!("04{}{}", hex::encode(x), hex::encode(y)),
        )
        .unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        let sig = b64.decode(parts[2]).unwrap();
        public
            .verify(input.as_bytes(), &sig, menwei_gm::SigEncoding::Raw)
            .unwrap();
        assert!(public
            .verify(b"other", &sig, menwei_gm::SigEncoding::Raw)
            .is_err());
    }
}
