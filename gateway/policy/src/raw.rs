//! The policy *syntax*: what operators write, exactly as serde reads it. Nothing here is trusted;
//! `compile` turns it into the model the gateway serves from. Keep this module free of logic.
//!
//! Every policy file has the same shape (all sections optional); the files of a directory are
//! merged: array sections (`[[listener]]`, `[[upstream]]`, `[[route]]`, ...) concatenate, single
//! tables (`[server]`, `[trust]`, ...) may appear in one file only.

use crate::types::{ByteSize, Cidr, Duration, HeaderName, Ipv6Prefix, Regex};
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// One policy file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "menwei policy file")]
pub struct PolicyFile {
    /// Process settings. Changing them needs a restart.
    #[schemars(with = "Option<Server>")]
    pub server: Option<Spanned<Server>>,
    /// Public listeners.
    #[serde(default)]
    pub listener: Vec<Listener>,
    /// TLS certificates, chosen by SNI.
    #[serde(default)]
    pub certificate: Vec<Certificate>,
    /// Which peers may set forwarding headers, and which client headers are always stripped.
    #[schemars(with = "Option<Trust>")]
    pub trust: Option<Spanned<Trust>>,
    /// Request size limits.
    #[schemars(with = "Option<Limits>")]
    pub limits: Option<Spanned<Limits>>,
    /// The per-request access log.
    #[schemars(with = "Option<AccessLog>")]
    pub access_log: Option<Spanned<AccessLog>>,
    /// Groups of backend servers.
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    /// Routes: which requests go to which upstream.
    #[serde(default)]
    pub route: Vec<Route>,
    /// Named rate limits, referenced by routes.
    #[serde(default)]
    pub limit: Vec<Limit>,
    /// Shared state for a cluster of gateways (Redis).
    #[schemars(with = "Option<State>")]
    pub state: Option<Spanned<State>>,
    /// Single sign-on: sessions, the identity assertion, headers to backends.
    #[schemars(with = "Option<Sso>")]
    pub sso: Option<Spanned<Sso>>,
    /// OpenID providers that routes sign users in with.
    #[serde(default)]
    pub provider: Vec<Provider>,
    /// National-cryptography settings (SM2 request signatures).
    #[schemars(with = "Option<Gm>")]
    pub gm: Option<Spanned<Gm>>,
    /// Applications that sign their requests (SM2 or HMAC-SM3).
    #[serde(default)]
    pub app: Vec<App>,
    /// Masking profiles for personal data in responses, referenced by routes.
    #[serde(default)]
    pub mask: Vec<MaskProfile>,
    /// The tamper-evident (SM3-chained) audit log of security decisions.
    #[schemars(with = "Option<Audit>")]
    pub audit: Option<Spanned<Audit>>,
    /// Request inspection profiles (attack detection), referenced by routes.
    #[serde(default)]
    pub waf: Vec<WafProfile>,
    /// Where alerts go (chat robots, webhook, syslog) and how they are aggregated.
    #[schemars(with = "Option<Alerts>")]
    pub alerts: Option<Spanned<Alerts>>,
    /// Behavioural detection rules (brute force, enumeration, credential stuffing...).
    #[serde(default)]
    pub detect: Vec<Detect>,
    /// Standing bans written by operators: addresses, networks or users refused while listed.
    #[serde(default)]
    pub ban: Vec<PolicyBan>,
}

/// `[[ban]]`: a standing ban.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBan {
    /// `ip:203.0.113.7`, `ip:203.0.113.0/24` (a network) or `user:<sub>`.
    #[schemars(with = "String")]
    pub key: Spanned<String>,
    /// Why (logged with each refusal).
    pub reason: Option<String>,
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

/// Kind of alert sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// POST of the alert as JSON to `url`.
    Webhook,
    /// 企业微信 group robot (`url` with its key).
    Wecom,
    /// 钉钉 group robot (`url` with its access token; `secret_file` to sign).
    Dingtalk,
    /// 飞书 group robot (`url`; `secret_file` to sign).
    Feishu,
    /// RFC 5424 syslog to `address` over `transport`.
    Syslog,
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
}

/// `[alerts]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Aggregation window per rule and key: the first alert goes out at once, the others of the
    /// window as one summary (default `60s`).
    pub window: Option<Duration>,
    /// Directory where undelivered alerts are kept (relative to the policy directory); without
    /// it they wait in memory and are lost on restart.
    #[schemars(with = "Option<String>")]
    pub spool_dir: Option<Spanned<String>>,
    /// Destinations.
    #[serde(default)]
    pub sink: Vec<AlertSink>,
}

/// `[[alerts.sink]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSink {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[schemars(with = "SinkKind")]
    pub kind: Spanned<SinkKind>,
    /// Webhook or robot URL (`http://` or `https://`).
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// DingTalk / Feishu signing secret, in a file only the gateway can read.
    #[schemars(with = "Option<String>")]
    pub secret_file: Option<Spanned<String>>,
    /// Syslog `host:port`.
    #[schemars(with = "Option<String>")]
    pub address: Option<Spanned<String>>,
    /// Syslog transport (default `udp`).
    #[serde(default)]
    pub transport: SyslogTransport,
    /// Syslog facility `local0` .. `local7`, `auth`, `authpriv`, `daemon`, `user` (default `local0`).
    #[schemars(with = "Option<String>")]
    pub facility: Option<Spanned<String>>,
    /// Least severity sent here (default `warning`).
    pub min_severity: Option<AlertSeverity>,
    /// Per delivery attempt (default `5s`).
    pub timeout: Option<Duration>,
}

/// What a `[[detect]]` rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DetectSignal {
    /// 401 answers and failed sign-ins.
    AuthFailure,
    /// 404 answers (enumeration).
    NotFound,
    /// 429 answers (repeated rate-limit refusals).
    RateLimited,
    /// Refused request signatures.
    SignatureFailure,
    /// Requests scored as attacks by inspection.
    Attack,
    /// Personal values masked in responses (bulk exfiltration).
    MaskedValues,
    /// Distinct users signing in from one key (credential stuffing).
    DistinctUsers,
}

/// What a `[[detect]]` rule counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DetectKey {
    ClientIp,
    User,
    App,
}

/// `[[detect]]`: a behavioural rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    pub signal: DetectSignal,
    pub key: DetectKey,
    /// Count (or distinct users) in the window that trips the rule.
    #[schemars(with = "u64")]
    pub threshold: Spanned<u64>,
    /// Sliding window (default `60s`).
    pub window: Option<Duration>,
    /// Ban the key this long when the rule trips (shared through `[state]` when configured).
    pub ban: Option<Duration>,
    /// Alert severity (default `warning`, `critical` when `ban` is set).
    pub severity: Option<AlertSeverity>,
}

/// What a route does with a request its inspection scores as an attack.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WafMode {
    /// No inspection.
    Off,
    /// Inspect, log and alert; forward anyway.
    Detect,
    /// Inspect and refuse (403 `MW-WAF-001`).
    #[default]
    Block,
}

/// `[[waf]]`: a request-inspection profile.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WafProfile {
    /// Name routes refer to (`waf = "..."`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `block` (default), `detect` or `off`.
    #[serde(default)]
    pub mode: WafMode,
    /// Applies to every route that names no profile (at most one profile may say so).
    #[serde(default)]
    pub default: bool,
    /// 1 (default) to 4, as in the OWASP Core Rule Set: higher runs more rules.
    #[schemars(with = "Option<u8>")]
    pub paranoia: Option<Spanned<u8>>,
    /// Anomaly score at which a request counts as an attack (default 5: one critical rule).
    #[schemars(with = "Option<u32>")]
    pub threshold: Option<Spanned<u32>>,
    /// Most request body inspected (default `64KiB`, at most `1MiB`). Bodies up to this size are
    /// inspected before anything is forwarded; the head of a larger body is inspected as it streams.
    pub max_body: Option<ByteSize>,
    /// Methods allowed (default GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS).
    pub methods: Option<Vec<String>>,
    /// Request content types allowed (default: forms, multipart, JSON, XML, text, octet-stream).
    pub content_types: Option<Vec<String>>,
    /// Rules switched off, everywhere or for one named value.
    #[serde(default)]
    pub exclude: Vec<WafExclude>,
}

/// `[[waf.exclude]]`: one rule (or a whole category) that misfires on this profile's routes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WafExclude {
    /// A rule id, as shown in logs and alerts (`942100`).
    pub rule: Option<u32>,
    /// A category: sqli, xss, lfi, rfi, rce, php, java, generic, session-fixation, protocol,
    /// protocol-attack, multipart, scanner, method.
    #[schemars(with = "Option<String>")]
    pub category: Option<Spanned<String>>,
    /// Only for values of this argument, cookie or header name (case-insensitive).
    pub name: Option<String>,
}

/// How a masked field is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MaskStyle {
    /// First 6 and last 4 kept: `110101********1234`.
    IdCard,
    /// `138****5678`.
    Mobile,
    /// Last 4 only.
    BankCard,
    /// Family name kept: `张*`, `欧阳**`.
    Name,
    /// Kept up to the district: `北京市东城区****`.
    Address,
    /// `z***@example.cn`.
    Email,
    /// `****`.
    Redact,
    /// As many `*` as characters.
    SameLength,
    /// A stable pseudonym: HMAC-SM3 under the profile's `pseudonym_key_file`, 16 hex digits.
    Pseudonym,
}

/// How a mask rule compares field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MaskCase {
    #[default]
    Insensitive,
    Sensitive,
}

/// A rule of a masking profile: a field name or a JSON path, and a style.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskField {
    /// JSON field name; one `*` allowed at the start or end (`*Phone`).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// JSON path instead of a name: `$.data[*].idCard`, `$..phone`, `$['id card']`, `$.rows[0]`.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    #[schemars(with = "MaskStyle")]
    pub style: Spanned<MaskStyle>,
    /// `insensitive` (default) or `sensitive` comparison of names.
    #[serde(default)]
    pub case: MaskCase,
    /// Characters kept at the start, for `id-card` (default 6) or `same-length` (default 0).
    pub keep_head: Option<usize>,
    /// Characters kept at the end, for `id-card` (default 4) or `same-length` (default 0).
    pub keep_tail: Option<usize>,
}

/// What a masked route does with a response larger than `max_body`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnOverflow {
    /// 502 `MW-MASK-001` (or the connection is cut when the size shows only while streaming).
    #[default]
    Block,
    /// Sent unmasked, with an audit record.
    Pass,
}

/// `[[mask]]`: a masking profile.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskProfile {
    /// Name routes refer to (`mask = "..."`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Field rules, tried in order.
    #[serde(default)]
    pub fields: Vec<MaskField>,
    /// Run the detectors (ID card, mobile, bank card, e-mail, credit code, passport, fixed line,
    /// each with its checksum) on values no rule names, and on text bodies (default true).
    pub detect: Option<bool>,
    /// Run the detectors on JSON numbers too (an ID card or phone sent as a number is then
    /// written as a masked string). Default false: numbers are left alone unless a rule names them.
    #[serde(default)]
    pub numbers: bool,
    /// Secret key of the `pseudonym` style (at least 16 bytes; only the gateway's user may read it).
    #[schemars(with = "Option<String>")]
    pub pseudonym_key_file: Option<Spanned<String>>,
    /// Roles (the provider's `roles` claim) that see originals; each such response is audited.
    #[serde(default)]
    pub unmask_roles: Vec<String>,
    /// Largest response masked (default `1MiB`); see `on_overflow`.
    pub max_body: Option<ByteSize>,
    #[serde(default)]
    pub on_overflow: OnOverflow,
}

/// `[audit]`: where security decisions are recorded, each record chained to the previous one by SM3.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The log file (created with mode 0600; appended to; relative to the policy directory).
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    /// Time between fsyncs of new records (default `1s`).
    pub fsync_interval: Option<Duration>,
}

/// `[gm]`: request-signature settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gm {
    /// Largest difference between a request's timestamp and the gateway's clock (default `300s`).
    pub max_skew: Option<Duration>,
    /// Where seen nonces are kept: `memory` (default) or `redis` (needs `[state]`; replays are
    /// then refused across replicas).
    #[serde(default)]
    pub nonce_store: SessionStore,
    /// Header in which a trusted TLCP terminator passes the client's SM2 certificate (PEM,
    /// optionally URL-encoded); believed only from `[trust] proxies`, never forwarded.
    pub client_cert_header: Option<HeaderName>,
    /// SM2 CA certificates (PEM or DER files) that client certificates must be issued by.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub client_ca_files: Vec<Spanned<String>>,
    /// Distinguishing id the CAs sign with (default `1234567812345678`).
    pub client_ca_distid: Option<String>,
    /// Certificate revocation lists (PEM or DER) of the client CAs, each signed by one of
    /// `client_ca_files`. A listed certificate is refused; once a CA's list is past its next
    /// update, every certificate of that CA is refused until a fresh list is loaded (reload).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub client_crl_files: Vec<Spanned<String>>,
}

/// How an app's SM2 signatures are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SigEncoding {
    /// ASN.1 DER (OpenSSL, BouncyCastle, sm-crypto with `der: true`).
    #[default]
    Der,
    /// 64 bytes r||s (sm-crypto's default).
    Raw,
}

/// `[[app]]`: a client application that signs its requests.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The app id clients send (`app="..."`); passed to backends in `X-Menwei-App-Id`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// SM2 public key: PEM (SPKI), DER, or hex (`04||x||y` or `x||y`). Give this or `hmac_secret_file`.
    #[schemars(with = "Option<String>")]
    pub public_key_file: Option<Spanned<String>>,
    /// The app's SM2 distinguishing id (default `1234567812345678`).
    pub distid: Option<String>,
    /// `der` (default) or `raw` (r||s).
    #[serde(default)]
    pub signature_encoding: SigEncoding,
    /// Shared secret for HMAC-SM3 signatures (file, `chmod 600`).
    #[schemars(with = "Option<String>")]
    pub hmac_secret_file: Option<Spanned<String>>,
    /// The department the app belongs to (a claim for limits and the assertion).
    pub department: Option<String>,
}

/// Where sessions live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStore {
    /// In this gateway process (lost on restart; not shared between replicas).
    #[default]
    Memory,
    /// In Redis (`[state] redis`): a session made on one replica is valid on every other.
    Redis,
}

/// How the identity assertion is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AssertionAlg {
    #[default]
    Es256,
    Sm2,
}

/// How sessions are sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionCipher {
    #[default]
    Aes256Gcm,
    Sm4Gcm,
}

/// `[sso]`: sessions and the identity passed to backends.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sso {
    /// File holding the 32-byte key (64 hex characters) that seals session cookies
    /// (AES-256-GCM). Must not be readable by group or others.
    #[schemars(with = "String")]
    pub session_key_file: Spanned<String>,
    /// PEM PKCS#8 P-256 private key that signs the identity assertion to backends (ES256).
    /// Must not be readable by group or others.
    #[schemars(with = "String")]
    pub assertion_key_file: Spanned<String>,
    /// Session cookie name (default `menwei_session`; `__Host-` is prepended over TLS).
    #[schemars(with = "Option<String>")]
    pub cookie_name: Option<Spanned<String>>,
    /// A session unused this long ends (default `30m`).
    pub idle_timeout: Option<Duration>,
    /// A session ends this long after login, used or not (default `8h`).
    pub absolute_timeout: Option<Duration>,
    /// Time a user has to finish logging in at the provider (default `10m`).
    pub login_timeout: Option<Duration>,
    /// `memory` (default) or `redis` (needs `[state] redis`).
    #[serde(default)]
    pub store: SessionStore,
    /// Signature of the identity assertion: `es256` (default; P-256 key) or `sm2` (SM3withSM2,
    /// JWT `alg` = `SM2-SM3`, an SM2 PKCS#8 key as made by `menwei keygen sm2`).
    #[serde(default)]
    pub assertion_alg: AssertionAlg,
    /// AEAD sealing cookies and session records in Redis: `aes-256-gcm` (default) or `sm4-gcm`
    /// (national algorithms, for 密评).
    #[serde(default)]
    pub cipher: SessionCipher,
    /// Lifetime of the identity assertion sent to backends (default `60s`).
    pub assertion_ttl: Option<Duration>,
    /// Headers written to backends, header name = claim (default `X-User-Id = "sub"`,
    /// `X-User-Name = "name"`, `X-User-Roles = "roles"`, `X-User-Department = "department"`).
    /// Names must start with one of `[trust] identity_header_prefixes`, so clients cannot forge them.
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    pub headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

/// Where a provider puts the claims access rules use (dotted paths into the token's claims).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimPaths {
    /// Default `roles` (Keycloak: `realm_access.roles`).
    pub roles: Option<String>,
    /// Default `groups`.
    pub groups: Option<String>,
    /// Default `department`.
    pub department: Option<String>,
    /// Display name, default `name`.
    pub name: Option<String>,
}

/// `[[provider]]`: an OpenID provider (discovery at `<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Name routes refer to.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Issuer URL, exactly as the provider states it. `https://` (plain `http://` only on loopback).
    #[schemars(with = "String")]
    pub issuer: Spanned<String>,
    /// This gateway's client id at the provider.
    pub client_id: String,
    /// File holding the client secret (confidential client, `client_secret_basic`).
    #[schemars(with = "String")]
    pub client_secret_file: Spanned<String>,
    /// Scopes asked for at login (default `["openid", "profile"]`; `openid` is always sent).
    pub scopes: Option<Vec<String>>,
    /// Accepted signature algorithms: any of `RS256`, `ES256`, `EdDSA` (default: all three).
    /// `none` and HMAC are never accepted.
    #[schemars(with = "Option<Vec<String>>")]
    pub algorithms: Option<Spanned<Vec<String>>>,
    /// `aud` values accepted in bearer access tokens (default: the client id).
    pub audience: Option<Vec<String>>,
    /// `resource` indicator sent at login and refresh (RFC 8707), for providers that issue JWT
    /// access tokens per resource.
    pub resource: Option<String>,
    /// Where claims sit in this provider's tokens.
    #[serde(default)]
    pub claims: ClaimPaths,
    /// Refresh the access token this long before it expires (default `60s`).
    pub refresh_before: Option<Duration>,
    /// Clock leeway for `exp`, `nbf`, `iat` (default `30s`, at most `5m`).
    pub leeway: Option<Duration>,
    /// On a token signed with an unknown key id, fetch the provider's keys again at most this
    /// often (default `60s`).
    pub jwks_refetch_interval: Option<Duration>,
    /// Time allowed for each call to the provider (default `5s`).
    pub timeout: Option<Duration>,
    /// Same-origin path the provider sends the browser to after logout (default `/`).
    pub post_logout_redirect: Option<String>,
    /// Send the user's access token to backends as `Authorization: Bearer` (default false).
    #[serde(default)]
    pub forward_access_token: bool,
    /// Accept bearer and logout tokens signed with SM2 by this issuer: there is no registered
    /// JOSE name, so the `alg` string, the distinguishing id and the encoding are pinned here.
    pub sm2_tokens: Option<Sm2Tokens>,
    /// Bearer tokens that are not JWTs (opaque) are checked at the provider's introspection
    /// endpoint (RFC 7662, with this client's credentials). Default false: refused.
    #[serde(default)]
    pub introspect: bool,
    /// Longest an introspection answer is kept (default `60s`, at most `10m`); an active token is
    /// never kept past its `exp`. A token revoked at the provider is refused after at most this.
    pub introspection_cache: Option<Duration>,
}

/// `sm2_tokens = { alg = "SM2-SM3", distid = "1234567812345678", encoding = "raw" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sm2Tokens {
    /// The exact `alg` of the issuer's tokens (`SM2`, `SM3WithSM2`, `SM2-SM3` are in use).
    pub alg: String,
    /// The issuer's SM2 distinguishing id (default `1234567812345678`).
    pub distid: Option<String>,
    /// `raw` (r||s, default, as JWS does for ECDSA) or `der`.
    #[serde(default = "raw_encoding")]
    pub encoding: SigEncoding,
}

fn raw_encoding() -> SigEncoding {
    SigEncoding::Raw
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// Anyone (default).
    #[default]
    Public,
    /// A signed-in user: a session cookie (browsers are sent to log in; API clients get 401),
    /// or a valid bearer token.
    Login,
    /// API clients with a valid `Authorization: Bearer` JWT only.
    Bearer,
    /// Requests signed by a registered `[[app]]` with SM2 (SM3withSM2) or HMAC-SM3.
    GmSignature,
    /// An SM2 client certificate (UKey) verified against `[gm] client_ca_files`, passed by a
    /// trusted TLCP terminator in `[gm] client_cert_header`.
    GmCertificate,
}

/// `[[route.require]]`: a condition on the user's claims; every one listed must hold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Require {
    /// `roles`, `groups`, `department` (where the provider's `claims` table says), or any claim
    /// by name or dotted path (`realm_access.roles`).
    #[schemars(with = "String")]
    pub claim: Spanned<String>,
    /// The claim holds (or contains) at least one of these.
    pub any: Option<Vec<String>>,
    /// The claim contains all of these.
    pub all: Option<Vec<String>>,
}

/// `[state]`: where cluster-wide state lives.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` for TLS). With `sentinel_master`, its
    /// user, password, database and TLS apply to the master the sentinels name (its host is not used).
    #[schemars(with = "String")]
    pub redis: Spanned<String>,
    /// Redis Sentinel addresses (`redis://host:26379`), asked in turn for the current master.
    #[schemars(with = "Option<Vec<String>>")]
    pub sentinels: Option<Vec<Spanned<String>>>,
    /// The master's name at the sentinels (`sentinel monitor <name> ...`).
    pub sentinel_master: Option<String>,
    /// Time to establish a connection (default `500ms`).
    pub connect_timeout: Option<Duration>,
    /// Longest wait for one decision before the limit's `on_store_error` applies (default `50ms`).
    pub command_timeout: Option<Duration>,
}

/// Where a limit's counters live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// In this gateway process.
    #[default]
    Local,
    /// In Redis (`[state] redis`), shared by every replica.
    Cluster,
}

/// What a cluster limit does when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnStoreError {
    /// Decide with this process's local counters (the limit then applies per replica).
    #[default]
    FailOpen,
    /// Refuse the request (503 `MW-RATE-003`).
    FailClosed,
}

/// `[[limit]]`: a named rate limit (GCRA: `burst` at once, then `rate`), optionally with a cap on
/// requests in flight, per key. Routes list the limits that apply to them; all must pass.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Name routes refer to; appears in metrics and in the `RateLimit-Policy` header.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What is counted separately: any of `client-ip` (after trusted-proxy resolution), `route`,
    /// `header:<Name>`. Several parts make a combined key.
    #[schemars(with = "Vec<String>")]
    pub key: Spanned<Vec<Spanned<String>>>,
    /// Steady rate: `20/s`, `600/m`, `10000/h`, `100000/d`.
    #[schemars(with = "String")]
    pub rate: Spanned<String>,
    /// Requests admitted at once from idle (at least 1).
    #[schemars(with = "i64")]
    pub burst: Spanned<i64>,
    /// Requests in flight per key (default: no cap).
    pub concurrency: Option<u32>,
    /// Keys tracked at most (default 1,000,000); the least recently used are forgotten first.
    pub max_keys: Option<u64>,
    /// `local` (default) or `cluster` (needs `[state] redis`).
    #[serde(default)]
    pub scope: Scope,
    /// For cluster limits, when Redis is unreachable or slow: `fail-open` (default) or `fail-closed`.
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

/// `[server]`: process-wide settings. Restart required when changed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Worker threads for the proxy (default 1 per listener service; restart required).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Admin listener address (default `127.0.0.1:9901`; never public by default; restart required).
    #[schemars(with = "Option<String>")]
    pub admin: Option<Spanned<String>>,
    /// Seconds to keep serving in-flight requests on shutdown (default `5s`).
    pub grace_period: Option<Duration>,
    /// Idle connections kept to each upstream (default 128; restart required).
    pub upstream_keepalive_pool: Option<usize>,
    /// A file holding the token that admin calls which change state (`POST /bans`,
    /// `DELETE /bans/...`) must send as `Authorization: Bearer <token>`. Without it those calls
    /// are refused unless they come from the loopback address.
    #[schemars(with = "Option<String>")]
    pub admin_token_file: Option<Spanned<String>>,
}

/// `[[listener]]`: an address the gateway serves public traffic on. Restart required when changed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// A name for logs and `explain`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `ip:port` to bind.
    #[schemars(with = "String")]
    pub addr: Spanned<String>,
    /// Serve TLS with the `[[certificate]]` entries (HTTP/2 and HTTP/1.1 by ALPN).
    #[serde(default)]
    pub tls: bool,
    /// Accept cleartext HTTP/2 with prior knowledge (h2c) on a non-TLS listener.
    #[serde(default)]
    pub h2c: bool,
    /// Bytes held per client connection before a write to the socket (default `32KiB`): a
    /// response whose head and body fit goes out in one write instead of two. Up to `1MiB`.
    #[schemars(with = "Option<String>")]
    pub write_buffer: Option<Spanned<ByteSize>>,
}

/// `[[certificate]]`: a certificate chain and key, served to clients whose SNI matches `hosts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// A name for logs.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// PEM certificate chain, relative to the policy directory's parent or absolute.
    #[schemars(with = "String")]
    pub cert: Spanned<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[schemars(with = "String")]
    pub key: Spanned<String>,
    /// SNI names served with this certificate: `gov.example.cn` or `*.example.cn`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Served when no SNI name matches (at most one certificate).
    #[serde(default)]
    pub default: bool,
}

/// `[trust]`: forwarding and identity-header rules.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// Peers whose `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded`,
    /// `X-Real-IP` and `X-Request-Id` are believed. Everyone else's are stripped.
    #[serde(default)]
    pub proxies: Vec<Cidr>,
    /// Client headers starting with these prefixes are always removed (default
    /// `X-Auth-`, `X-User-`, `X-Menwei-`). Only the gateway writes identity headers.
    pub identity_header_prefixes: Option<Vec<String>>,
    /// Header that carries the request id (default `X-Request-Id`).
    pub request_id_header: Option<HeaderName>,
    /// IPv6 clients are counted, detected and banned per network of this many leading bits
    /// (default 64: one household or subnet, which can take a new address for every request).
    /// 128 counts every address apart. IPv4 clients are always counted per address.
    pub ipv6_prefix: Option<Ipv6Prefix>,
}

/// `[limits]`: request size limits, answered with 400 / 413 / 414 / 431.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Total size of all request header lines (default `32KiB`).
    pub max_header_bytes: Option<ByteSize>,
    /// Number of request headers (default 100).
    pub max_headers: Option<usize>,
    /// Length of the request target (default `8KiB`).
    pub max_uri_bytes: Option<ByteSize>,
    /// Request body size (default `10MiB`); a route may lower or raise it.
    pub max_body_bytes: Option<ByteSize>,
}

/// `[access_log]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// Write one JSON line per request to standard output (default true).
    pub enabled: Option<bool>,
}

/// How an upstream picks a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// The backend with the fewest requests in flight.
    LeastConnections,
    /// The same key always goes to the same backend while it is healthy (ketama ring).
    ConsistentHash,
}

/// What the consistent hash is computed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HashOn {
    /// The client address (after trusted-proxy resolution).
    #[default]
    ClientIp,
    /// The normalised path.
    Path,
    /// The value of `hash_header`.
    Header,
}

/// `[upstream.health]`: active health checks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Path requested with `GET` (HTTP/1.1). A 2xx or 3xx answer is healthy.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// Time between checks (default `2s`).
    pub interval: Option<Duration>,
    /// Time a check may take (default `1s`).
    pub timeout: Option<Duration>,
    /// Consecutive successes that make a backend healthy again (default 2).
    pub healthy_after: Option<u32>,
    /// Consecutive failures that make a backend unhealthy (default 2).
    pub unhealthy_after: Option<u32>,
}

/// `[upstream.passive]`: eject a backend after real requests to it fail.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Passive {
    /// Consecutive connect / read failures before ejection (default 3; 0 turns ejection off).
    pub eject_after: Option<u32>,
    /// How long an ejected backend gets no traffic (default `10s`).
    pub eject_for: Option<Duration>,
}

/// `[[upstream]]`: a group of backend servers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Name routes refer to.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `ip:port` or `host:port` of each backend (host names are resolved when the policy loads).
    #[schemars(with = "Vec<String>")]
    pub backends: Spanned<Vec<Spanned<String>>>,
    /// Backend choice (default `round-robin`).
    #[serde(default)]
    pub balance: Balance,
    /// Key of `consistent-hash` (default `client-ip`).
    pub hash_on: Option<HashOn>,
    /// Header hashed when `hash_on = "header"`.
    pub hash_header: Option<HeaderName>,
    /// TCP connect timeout (default `2s`).
    pub connect_timeout: Option<Duration>,
    /// Longest wait for any read from the backend, including the response head (default `30s`).
    pub read_timeout: Option<Duration>,
    /// Longest wait for any write to the backend (default `30s`).
    pub write_timeout: Option<Duration>,
    /// Longest time from the first connect attempt to the response head, retries included
    /// (default: none).
    pub total_timeout: Option<Duration>,
    /// Extra attempts on another backend (default 1). Any method is retried when the connection
    /// failed (nothing reached the backend); only idempotent methods after the request was sent.
    pub retries: Option<u8>,
    /// Speak TLS to the backends.
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name for backend TLS (default: the backend host).
    pub sni: Option<String>,
    /// Active health checks (off when absent).
    pub health: Option<Health>,
    /// Passive ejection.
    pub passive: Option<Passive>,
}

/// HTTP methods a route may be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    PATCH,
    OPTIONS,
}

/// `[[route]]`: which requests go to which upstream. Give exactly one of `path`, `prefix`, `regex`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name, used in logs, metrics and `explain`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Host the route serves: `gov.example.cn` or `*.example.cn`; any host when absent.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Exact normalised path.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Path prefix, matched on segment boundaries (`/echo` matches `/echo` and `/echo/x`, not `/echoes`).
    #[schemars(with = "Option<String>")]
    pub prefix: Option<Spanned<String>>,
    /// Regular expression on the normalised path (tried after every exact and prefix route).
    #[schemars(with = "Option<Regex>")]
    pub regex: Option<Spanned<Regex>>,
    /// Methods served (default: all).
    #[serde(default)]
    pub methods: Vec<Method>,
    /// Upstream name.
    #[schemars(with = "String")]
    pub upstream: Spanned<String>,
    /// Pass WebSocket upgrades through (default true).
    pub websocket: Option<bool>,
    /// Request body limit for this route (default: `[limits] max_body_bytes`).
    pub max_body_bytes: Option<ByteSize>,
    /// Names of `[[limit]]`s applied to this route, in order; all must pass.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub limits: Vec<Spanned<String>>,
    /// `public` (default), `login` or `bearer`.
    #[schemars(with = "Option<Auth>")]
    pub auth: Option<Spanned<Auth>>,
    /// The `[[provider]]` to sign in with (default: the only one).
    #[schemars(with = "Option<String>")]
    pub provider: Option<Spanned<String>>,
    /// Conditions on the user's claims (403 when one fails).
    #[serde(default)]
    pub require: Vec<Require>,
    /// The `[[mask]]` profile applied to this route's responses.
    #[schemars(with = "Option<String>")]
    pub mask: Option<Spanned<String>>,
    /// The `[[waf]]` profile inspecting this route's requests (default: the profile with
    /// `default = true`, if any).
    #[schemars(with = "Option<String>")]
    pub waf: Option<Spanned<String>>,
    /// With `auth = "gm-signature"`: the `[[app]]` ids allowed here (default: every app).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub apps: Vec<Spanned<String>>,
}
