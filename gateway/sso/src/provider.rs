//! One OpenID provider at run time: discovery and keys (fetched lazily, kept, refetched at most
//! once per `jwks_refetch_interval` when a token names an unknown key), the authorization request
//! (code flow, PKCE S256, state, nonce), the code exchange with ID-token validation
//! (openidconnect: signature by the provider's JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`,
//! algorithms pinned by policy), refresh, and RP-initiated logout.

use crate::jwt::{self, Expect, TokenError};
use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::JwkSet;
use menwei_policy::snapshot::{ProviderSpec, TokenAlg};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutProviderMetadata,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why talking to the provider failed. Logged; clients see a short message.
#[derive(Debug)]
pub enum ProviderError {
    /// Discovery, keys or token endpoint unreachable or broken: answer 503, keep sessions.
    Unavailable(String),
    /// The provider refused (bad code, revoked refresh token): the user must log in again.
    Refused(String),
    /// What came back failed validation.
    Invalid(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Unavailable(s) => write!(f, "provider unavailable: {s}"),
            ProviderError::Refused(s) => write!(f, "provider refused: {s}"),
            ProviderError::Invalid(s) => write!(f, "invalid provider response: {s}"),
        }
    }
}

/// Discovery fields openidconnect does not model: the RFC 8414 / RFC 7662 introspection endpoint.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct Introspection {
    introspection_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for Introspection {}

/// The discovery document: core metadata, RP-initiated logout, introspection.
type Metadata = ProviderMetadata<
    LogoutProviderMetadata<Introspection>,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreClientAuthMethod,
    openidconnect::core::CoreClaimName,
    openidconnect::core::CoreClaimType,
    openidconnect::core::CoreGrantType,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJweKeyManagementAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreResponseMode,
    openidconnect::core::CoreResponseType,
    openidconnect::core::CoreSubjectIdentifierType,
>;

struct Discovered {
    metadata: Metadata,
    keys: JwkSet,
    /// The issuer's SM2 keys, when it signs tokens with SM2 (`sm2_tokens`).
    sm2_keys: Vec<jwt::Sm2Key>,
}

/// Tokens after a login or a refresh.
pub struct Tokens {
    pub id_token: Option<String>,
    /// Claims of the ID token (verified).
    pub claims: Option<Map<String, Value>>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

/// A login to send the browser to.
pub struct Authorize {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct ProviderRt {
    pub spec: ProviderSpec,
    http: reqwest::Client,
    found: ArcSwapOption<Discovered>,
    /// Milliseconds (process clock) of the last fetch attempt, for the refetch interval.
    last_fetch_ms: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
    /// Introspection answers by SHA-256 of the token: the claims and `exp` of an active token,
    /// `None` for one the provider called inactive (kept too: garbage cannot make us call it
    /// again and again).
    introspected: moka::sync::Cache<[u8; 32], Arc<Option<Introspected>>>,
}

/// An active token's claims and `exp`.
type Introspected = (Map<String, Value>, u64);

/// Most introspection answers kept at once.
const MAX_INTROSPECTED: u64 = 100_000;

fn ms() -> u64 {
    crate::mono_ms()
}

fn core_alg(a: TokenAlg) -> CoreJwsSigningAlgorithm {
    match a {
        TokenAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        TokenAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        TokenAlg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

impl ProviderRt {
    pub fn new(spec: ProviderSpec) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // Never follow redirects from the provider's endpoints (SSRF, token leaks).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(spec.timeout)
            .timeout(spec.timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let spec_ttl = spec.introspection.unwrap_or(Duration::from_secs(1));
        Ok(Self {
            spec,
            http,
            found: ArcSwapOption::empty(),
            last_fetch_ms: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            introspected: moka::sync::Cache::builder()
                .max_capacity(MAX_INTROSPECTED)
                .time_to_live(spec_ttl)
                .build(),
        })
    }

    /// Same provider configuration (a reload keeps discovery and keys).
    pub fn same(&self, spec: &ProviderSpec) -> bool {
        &self.spec == spec
    }

    async fn fetch(&self) -> Result<Arc<Discovered>, ProviderError> {
        let issuer = IssuerUrl::new(self.spec.issuer.clone())
            .map_err(|e| ProviderError::Invalid(format!("issuer: {e}")))?;
        let metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {e}")))?;
        let keys_json = serde_json::to_value(metadata.jwks())
            .map_err(|e| ProviderError::Invalid(format!("keys: {e}")))?;
        // Keys of a type the JWT library does not know are skipped, not fatal.
        let mut keys = JwkSet { keys: Vec::new() };
        if let Some(arr) = keys_json.get("keys").and_then(Value::as_array) {
            for k in arr {
                if let Ok(jwk) = serde_json::from_value(k.clone()) {
                    keys.keys.push(jwk);
                }
            }
        }
        let sm2_keys = match &self.spec.sm2_tokens {
            Some((_, distid, _)) => {
                // openidconnect skips keys it does not know (crv SM2): read the JWKS itself.
                let uri = metadata.jwks_uri().url().clone();
                let doc: Value = self
                    .http
                    .get(uri)
                    .send()
                    .await
                    .map_err(|e| ProviderError::Unavailable(format!("keys: {e}")))?
                    .json()
                    .await
                    .map_err(|e| ProviderError::Invalid(format!("keys: {e}")))?;
                jwt::sm2_keys(&doc, distid)
            }
            None => Vec::new(),
        };
        let d = Arc::new(Discovered {
            metadata,
            keys,
            sm2_keys,
        });
        self.found.store(Some(d.clone()));
        tracing::info!(provider = %self.spec.name, keys = d.keys.keys.len(), "provider discovered");
        Ok(d)
    }

    /// Discovery and keys, fetched on first use. While the provider is down, at most one
    /// attempt per second is made; other requests fail fast.
    async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        if let Some(d) = self.found.load_full() {
            return Ok(d);
        }
        let _one = self.fetching.lock().await;
        if let Some(d) = self.found.load_full() {
            return Ok(d);
        }
        let last = self.last_fetch_ms.load(Ordering::Relaxed);
        if last != 0 && ms().saturating_sub(last) < 1000 {
            return Err(ProviderError::Unavailable(
                "discovery failed less than a second ago".into(),
            ));
        }
        self.last_fetch_ms.store(ms(), Ordering::Relaxed);
        self.fetch().await
    }

    /// Fetches discovery and keys again unless that happened within the refetch interval.
    async fn refetch_keys(&self) -> Option<Arc<Discovered>> {
        let _one = self.fetching.lock().await;
        let last = self.last_fetch_ms.load(Ordering::Relaxed);
        if last != 0
            && ms().saturating_sub(last) < self.spec.jwks_refetch_interval.as_millis() as u64
        {
            return None;
        }
        self.last_fetch_ms.store(ms(), Ordering::Relaxed);
        match self.fetch().await {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(provider = %self.spec.name, error = %e, "refetching provider keys failed");
                None
            }
        }
    }

    fn client(&self, d: &Discovered, redirect_uri: &str) -> Result<Client, ProviderError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| ProviderError::Invalid(format!("redirect URI: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.spec.client_id.clone()),
            Some(ClientSecret::new(self.spec.client_secret.0.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Builds the authorization request (PKCE S256, fresh state and nonce).
    pub async fn authorize(&self, redirect_uri: &str) -> Result<Authorize, ProviderError> {
        let d = self.discovered().await?;
        let client = self.client(&d, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in self.spec.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if let Some(r) = &self.spec.resource {
            req = req.add_extra_param("resource", r.clone());
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok(Authorize {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    fn verify_id_token(
        &self,
        d: &Discovered,
        client: &Client,
        id_token: &CoreIdToken,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let leeway = self.spec.leeway;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(self.spec.algorithms.iter().map(|a| core_alg(*a)))
            .set_time_fn(move || chrono_now_minus(leeway));
        let checked = match nonce {
            Some(n) => id_token
                .claims(&verifier, &Nonce::new(n.to_string()))
                .map(|_| ()),
            None => id_token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .map(|_| ()),
        };
        checked.map_err(|e| ProviderError::Invalid(format!("ID token: {e}")))?;
        let _ = d;
        jwt::payload(&id_token.to_string())
            .ok_or_else(|| ProviderError::Invalid("ID token payload".into()))
    }

    /// Exchanges the authorization code (with the PKCE verifier) and validates the ID token.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Tokens, ProviderError> {
        let d = self.discovered().await?;
        let client = self.client(&d, redirect_uri)?;
        let mut req = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| ProviderError::Invalid(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
        if let Some(r) = &self.spec.resource {
            req = req.add_extra_param("resource", r.clone());
        }
        let resp: CoreTokenResponse = req.request_async(&self.http).await.map_err(token_error)?;
        let id_token = resp
            .id_token()
            .ok_or_else(|| ProviderError::Invalid("no ID token in the token response".into()))?;
        let claims = match self.verify_id_token(&d, &client, id_token, Some(nonce)) {
            Err(ProviderError::Invalid(why)) if why.contains("key") => {
                // Perhaps the provider rotated its keys: fetch them again (rate-limited) and retry.
                match self.refetch_keys().await {
                    Some(d2) => {
                        let client = self.client(&d2, redirect_uri)?;
                        self.verify_id_token(&d2, &client, id_token, Some(nonce))?
                    }
                    None => return Err(ProviderError::Invalid(why)),
                }
            }
            other => other?,
        };
        Ok(Tokens {
            id_token: Some(id_token.to_string()),
            claims: Some(claims),
            access_token: resp.access_token().secret().clone(),
            refresh_token: resp.refresh_token().map(|r| r.secret().clone()),
            expires_in: resp.expires_in(),
        })
    }

    /// Uses a refresh token. `Refused` means the grant is gone (log in again).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ProviderError> {
        let d = self.discovered().await?;
        let client = self.client(&d, "http://localhost/unused")?;
        let token = RefreshToken::new(refresh_token.to_string());
        let mut req = client
            .exchange_refresh_token(&token)
            .map_err(|e| ProviderError::Invalid(format!("token endpoint: {e}")))?;
        if let Some(r) = &self.spec.resource {
            req = req.add_extra_param("resource", r.clone());
        }
        let resp: CoreTokenResponse = req.request_async(&self.http).await.map_err(token_error)?;
        let (id_token, claims) = match resp.id_token() {
            Some(t) => {
                let claims = self.verify_id_token(&d, &client, t, None)?;
                (Some(t.to_string()), Some(claims))
            }
            None => (None, None),
        };
        Ok(Tokens {
            id_token,
            claims,
            access_token: resp.access_token().secret().clone(),
            refresh_token: resp.refresh_token().map(|r| r.secret().clone()),
            expires_in: resp.expires_in(),
        })
    }

    /// The provider's end-session URL for RP-initiated logout, when it offers one.
    pub async fn end_session_url(
        &self,
        id_token: &str,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        let d = self.discovered().await.ok()?;
        let end = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut req =
            LogoutRequest::from(end).set_client_id(ClientId::new(self.spec.client_id.clone()));
        if let Ok(u) = PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_string()) {
            req = req.set_post_logout_redirect_uri(u);
        }
        let mut url = req.http_get_url();
        url.query_pairs_mut().append_pair("id_token_hint", id_token);
        Some(url.to_string())
    }

    /// Verifies a JWT signed by this provider (bearer access token, logout token), refetching
    /// the keys once per interval when it names an unknown key.
    pub async fn verify_jwt(
        &self,
        token: &str,
        audience: &[String],
        required: &[&str],
        check_exp: bool,
    ) -> Result<Map<String, Value>, TokenError> {
        let d = self
            .discovered()
            .await
            .map_err(|e| TokenError::Invalid(format!("cannot get the provider's keys: {e}")))?;
        let want = Expect {
            issuer: &self.spec.issuer,
            audience,
            algorithms: &self.spec.algorithms,
            leeway: self.spec.leeway,
            required,
            check_exp,
        };
        let sm2 = self
            .spec
            .sm2_tokens
            .as_ref()
            .filter(|(alg, _, _)| jwt::header_alg(token).as_deref() == Some(alg.as_str()));
        let check = |d: &Discovered| match sm2 {
            Some((alg, _, enc)) => {
                let enc = match enc {
                    menwei_policy::raw::SigEncoding::Der => menwei_gm::SigEncoding::Der,
                    menwei_policy::raw::SigEncoding::Raw => menwei_gm::SigEncoding::Raw,
                };
                jwt::verify_sm2(token, &d.sm2_keys, alg, enc, &want)
            }
            None => jwt::verify(token, &d.keys, &want),
        };
        match check(&d) {
            Err(TokenError::UnknownKey(kid)) => match self.refetch_keys().await {
                Some(d2) => check(&d2),
                None => Err(TokenError::UnknownKey(kid)),
            },
            other => other,
        }
    }
}

impl ProviderRt {
    /// Checks an opaque bearer token at the provider's introspection endpoint (RFC 7662) with
    /// this client's credentials. The answer is kept (by the token's SHA-256, never the token)
    /// for at most `introspection_cache`, and an active one never past its `exp`. Accepted only
    /// when active, unexpired, of this issuer, for one of `audience`, and not a refresh token.
    pub async fn introspect(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        if token.len() > 4096 || token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Malformed("not a token".into()));
        }
        let key: [u8; 32] = {
            let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            let mut k = [0u8; 32];
            k.copy_from_slice(d.as_ref());
            k
        };
        let answer = match self.introspected.get(&key) {
            Some(a) => a,
            None => {
                let a = Arc::new(self.ask(token).await?);
                self.introspected.insert(key, a.clone());
                a
            }
        };
        match answer.as_ref() {
            Some((claims, exp)) if *exp + self.spec.leeway.as_secs() > crate::now_secs() => {
                Ok(claims.clone())
            }
            Some(_) => Err(TokenError::Invalid("token expired".into())),
            None => Err(TokenError::Invalid(
                "the provider says the token is not active".into(),
            )),
        }
    }

    /// One introspection call. `Ok(None)`: the provider's answer refuses the token (kept).
    async fn ask(&self, token: &str) -> Result<Option<Introspected>, TokenError> {
        let unavailable = |e: String| TokenError::Unavailable(format!("introspection: {e}"));
        let d = self
            .discovered()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let endpoint = &d.metadata.additional_metadata().additional_metadata;
        let Some(url) = endpoint.introspection_endpoint.as_deref() else {
            return Err(unavailable(
                "the provider publishes no introspection_endpoint".into(),
            ));
        };
        // client_secret_basic: id and secret form-encoded, then Base64 (RFC 6749 2.3.1).
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body = format!("token={}&token_type_hint=access_token", enc(token));
        let resp = self
            .http
            .post(url)
            .basic_auth(
                enc(&self.spec.client_id),
                Some(enc(&self.spec.client_secret.0)),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("status {}", resp.status().as_u16())));
        }
        let doc: Value = resp.json().await.map_err(|e| unavailable(e.to_string()))?;
        let Value::Object(claims) = doc else {
            return Err(unavailable("the answer is not a JSON object".into()));
        };
        Ok(self.accept(claims))
    }

    /// The checks an introspection answer must pass; `None` refuses the token.
    pub(crate) fn accept(&self, mut claims: Map<String, Value>) -> Option<Introspected> {
        let why = |w: &str| {
            tracing::info!(provider = %self.spec.name, why = w, "opaque token refused");
            None
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return why("not active");
        }
        let Some(exp) = claims.get("exp").and_then(Value::as_u64) else {
            return why("no exp");
        };
        if claims
            .get("iss")
            .is_some_and(|i| i.as_str() != Some(self.spec.issuer.as_str()))
        {
            return why("another issuer");
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.spec.audience.contains(a),
            Some(Value::Array(v)) => v
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.spec.audience.iter().any(|w| w == a)),
            _ => false,
        };
        if !aud_ok {
            return why("not for this audience");
        }
        if claims
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("refresh_token"))
        {
            return why("a refresh token");
        }
        if !claims.contains_key("sub") {
            // A client-credentials token names its client only.
            let client = claims.get("client_id").cloned()?;
            claims.insert("sub".into(), client);
        }
        claims.remove("active");
        Some((claims, exp))
    }
}

/// "Now" for the ID-token verifier, moved back by the leeway (openidconnect has no leeway knob:
/// an earlier clock accepts tokens up to `leeway` past `exp`).
fn chrono_now_minus(leeway: Duration) -> chrono::DateTime<chrono::Utc> {
    let back = chrono::Duration::from_std(leeway).unwrap_or_default();
    chrono::Utc::now() - back
}

fn token_error<E: std::error::Error>(
    e: openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> ProviderError {
    use openidconnect::RequestTokenError as R;
    match e {
        R::ServerResponse(r) => ProviderError::Refused(format!("{}", r.error())),
        R::Request(e) => ProviderError::Unavailable(format!("token request: {e}")),
        R::Parse(e, _) => ProviderError::Invalid(format!("token response: {e}")),
        R::Other(s) => ProviderError::Invalid(s),
    }
}
