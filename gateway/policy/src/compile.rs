//! Raw files -> one validated `Snapshot`. Every problem is collected before failing once, so an
//! operator sees all of them in one `menwei check`.

use crate::diag::{Code, Declared, Diagnostics, Source};
use crate::load::{read_dir, Loaded};
use crate::raw::{self, PolicyFile};
use crate::router::Router;
use crate::snapshot::{
    LimitSettings, ListenerSpec, RestartSettings, Snapshot, StateSpec, TrustSettings,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};
use toml::Spanned;

/// Default admin address: loopback only, never public by default.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
/// Client headers with these prefixes are always removed.
pub const DEFAULT_IDENTITY_PREFIXES: [&str; 3] = ["X-Auth-", "X-User-", "X-Menwei-"];

/// Loads, validates and compiles the policy directory. The snapshot's version is 0; the store
/// numbers the snapshots it serves.
pub fn load(dir: &Path) -> Result<Snapshot, Diagnostics> {
    let mut diags = Diagnostics::default();
    let loaded = read_dir(dir, &mut diags);
    let snapshot = compile(dir, &loaded, &mut diags);
    match snapshot {
        Some(s) if diags.is_empty() => Ok(s),
        _ => Err(diags.sorted()),
    }
}

/// A reference from a parsed item back to its source file.
pub(crate) struct Ctx<'a> {
    pub dir: &'a Path,
    pub sources: &'a [Source],
}

fn compile(dir: &Path, loaded: &Loaded, diags: &mut Diagnostics) -> Option<Snapshot> {
    let cx = Ctx {
        dir,
        sources: &loaded.sources,
    };
    let singles = Singles::collect(&cx, &loaded.files, diags);
    let server = singles.server.map(|(_, s)| s.get_ref().clone());
    let (admin, threads, pool, grace) =
        compile_server(&cx, singles.server_src, server.as_ref(), diags);
    let listeners = compile_listeners(&cx, &loaded.files, admin, diags);
    let mut cert_digest = Sha256::new();
    let certificates = crate::certs::compile(&cx, &loaded.files, diags, &mut cert_digest);
    let trust = compile_trust(
        singles
            .trust
            .map(|(_, t)| t.get_ref().clone())
            .unwrap_or_default(),
    );
    let (sso, providers) = crate::compile_sso::compile(
        &cx,
        &loaded.files,
        singles.sso,
        singles.state.is_some(),
        &trust.identity_prefixes,
        diags,
        &mut cert_digest,
    );
    let (gm, apps_by_id) = crate::compile_gm::compile(
        &cx,
        &loaded.files,
        singles.gm,
        singles.state.is_some(),
        diags,
        &mut cert_digest,
    );
    let alerts = crate::compile_alert::compile_alerts(&cx, singles.alerts, diags, &mut cert_digest);
    let (masks, masks_by_name) =
        crate::compile_mask::compile(&cx, &loaded.files, diags, &mut cert_digest);
    let admin_token = server
        .as_ref()
        .and_then(|s| s.admin_token_file.as_ref())
        .and_then(|f| {
            let src = &cx.sources[singles.server_src];
            let bytes = crate::compile_sso::read_secret(
                &cx,
                src,
                f,
                "admin token",
                diags,
                &mut cert_digest,
            )?;
            let token = String::from_utf8_lossy(&bytes).trim().to_string();
            if token.len() < 16 {
                diags.at(
                    Code::KeyFile,
                    src,
                    f.span(),
                    "the admin token is shorter than 16 characters".into(),
                    "the token is all that protects the ban calls of the admin listener",
                    "write a long random token, e.g. openssl rand -hex 32 > admin.token".into(),
                );
                return None;
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            Some(crate::snapshot::Secret(digest))
        });
    let alert_secrets = admin_token.is_some()
        || alerts.sinks.iter().any(|s| {
            matches!(
                &s.kind,
                menwei_alert::sinks::SinkKind::DingTalk {
                    secret: Some(_),
                    ..
                } | menwei_alert::sinks::SinkKind::Feishu {
                    secret: Some(_),
                    ..
                }
            )
        });
    let sha256 = if certificates.is_empty() && sso.is_none() && gm.is_none() && !alert_secrets {
        loaded.sha256.clone()
    } else {
        let mut h = Sha256::new();
        h.update(loaded.sha256.as_bytes());
        h.update(cert_digest.finalize());
        hex::encode(h.finalize())
    };
    check_tls(&cx, &listeners, !certificates.is_empty(), diags);
    let limits = compile_limits(
        singles
            .limits
            .map(|(_, l)| l.get_ref().clone())
            .unwrap_or_default(),
    );
    let (upstreams, by_name) = crate::compile_upstream::compile(&cx, &loaded.files, diags);
    let (rate_limits, limits_by_name) = crate::compile_limit::compile(&cx, &loaded.files, diags);
    let state = compile_state(&cx, singles.state, diags);
    // An invalid [state] has its own diagnostic; only a missing one is reported per limit.
    check_cluster_limits(&cx, &loaded.files, singles.state.is_some(), diags);
    let (wafs, waf_names) = crate::compile_waf::compile(&cx, &loaded.files, diags);
    let detect = crate::compile_alert::compile_detect(&cx, &loaded.files, diags);
    let bans = crate::compile_alert::compile_bans(&cx, &loaded.files, diags);
    let names = crate::compile_route::Names {
        upstreams: &by_name,
        limits: &limits_by_name,
        limit_specs: &rate_limits,
        providers: &providers,
        apps: &apps_by_id,
        has_client_cas: gm.as_ref().is_some_and(|g| !g.client_cas.is_empty()),
        masks: &masks_by_name,
        wafs: &waf_names,
    };
    let routes =
        crate::compile_route::compile(&cx, &loaded.files, &names, limits.max_body_bytes, diags);
    if loaded.files.is_empty() && !diags.is_empty() {
        return None;
    }
    require_some(&cx, "listener", listeners.is_empty(), diags);
    require_some(&cx, "route", routes.is_empty(), diags);
    let access_log = singles
        .access_log
        .and_then(|(_, a)| a.get_ref().enabled)
        .unwrap_or(true);
    Some(Snapshot {
        version: 0,
        sha256,
        loaded_at: SystemTime::now(),
        files: loaded.sources.iter().map(|s| s.path.clone()).collect(),
        restart: RestartSettings {
            threads,
            admin,
            upstream_keepalive_pool: pool,
            listeners,
        },
        grace_period: grace,
        certificates,
        trust,
        limits,
        access_log,
        upstreams,
        rate_limits,
        state,
        sso,
        gm,
        audit: compile_audit(&cx, singles.audit, diags),
        masks,
        wafs,
        alerts,
        detect,
        bans,
        admin_token,
        router: Router::new(routes),
    })
}

fn require_some(cx: &Ctx, what: &str, missing: bool, diags: &mut Diagnostics) {
    if missing && diags.is_empty() {
        diags.file(
            Code::Empty,
            cx.dir,
            format!("no [[{what}]] is defined in any policy file"),
            "the gateway needs at least one listener to accept traffic and one route to forward it",
            format!(
                "add a [[{what}]] table; see policies/ shipped with menwei for a working example"
            ),
        );
    }
}

/// Single-table sections, each allowed in one file only.
struct Singles<'a> {
    server: Option<(usize, &'a Spanned<raw::Server>)>,
    server_src: usize,
    trust: Option<(usize, &'a Spanned<raw::Trust>)>,
    limits: Option<(usize, &'a Spanned<raw::Limits>)>,
    access_log: Option<(usize, &'a Spanned<raw::AccessLog>)>,
    state: Option<(usize, &'a Spanned<raw::State>)>,
    sso: Option<(usize, &'a Spanned<raw::Sso>)>,
    gm: Option<(usize, &'a Spanned<raw::Gm>)>,
    audit: Option<(usize, &'a Spanned<raw::Audit>)>,
    alerts: Option<(usize, &'a Spanned<raw::Alerts>)>,
}

fn single<'a, T>(
    cx: &Ctx,
    name: &str,
    files: &'a [(usize, PolicyFile)],
    get: impl Fn(&'a PolicyFile) -> Option<&'a Spanned<T>>,
    diags: &mut Diagnostics,
) -> Option<(usize, &'a Spanned<T>)> {
    let mut first: Option<(usize, &'a Spanned<T>)> = None;
    for (src, f) in files {
        let Some(item) = get(f) else { continue };
        match &first {
            None => first = Some((*src, item)),
            Some((first_src, _)) => diags.at(
                Code::SectionTwice,
                &cx.sources[*src],
                item.span(),
                format!("[{name}] is already defined in {}", cx.sources[*first_src].path.display()),
                "single-table sections may appear in one policy file only, so that there is one truth",
                format!("merge the two [{name}] tables into one file"),
            ),
        }
    }
    first
}

impl<'a> Singles<'a> {
    fn collect(cx: &Ctx, files: &'a [(usize, PolicyFile)], diags: &mut Diagnostics) -> Self {
        let server = single(cx, "server", files, |f| f.server.as_ref(), diags);
        Singles {
            server_src: server.map(|(s, _)| s).unwrap_or(0),
            server,
            trust: single(cx, "trust", files, |f| f.trust.as_ref(), diags),
            limits: single(cx, "limits", files, |f| f.limits.as_ref(), diags),
            access_log: single(cx, "access_log", files, |f| f.access_log.as_ref(), diags),
            state: single(cx, "state", files, |f| f.state.as_ref(), diags),
            sso: single(cx, "sso", files, |f| f.sso.as_ref(), diags),
            gm: single(cx, "gm", files, |f| f.gm.as_ref(), diags),
            audit: single(cx, "audit", files, |f| f.audit.as_ref(), diags),
            alerts: single(cx, "alerts", files, |f| f.alerts.as_ref(), diags),
        }
    }
}

fn parse_addr(
    cx: &Ctx,
    src: usize,
    s: &Spanned<String>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<SocketAddr> {
    match s.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            diags.at(
                Code::Listen,
                &cx.sources[src],
                s.span(),
                format!("`{}` is not a valid {what} address", s.get_ref()),
                "listen addresses are an IP and a port; host names are not resolved for listeners",
                "write it as `127.0.0.1:8080`, `0.0.0.0:443` or `[::]:443`".into(),
            );
            None
        }
    }
}

fn compile_server(
    cx: &Ctx,
    src: usize,
    server: Option<&raw::Server>,
    diags: &mut Diagnostics,
) -> (SocketAddr, usize, usize, Duration) {
    let default_admin = SocketAddr::from(([127, 0, 0, 1], 9901));
    let admin = server
        .and_then(|s| s.admin.as_ref())
        .and_then(|a| parse_addr(cx, src, a, "admin", diags))
        .unwrap_or(default_admin);
    let threads = server.and_then(|s| s.threads).unwrap_or(1).clamp(1, 256);
    let pool = server
        .and_then(|s| s.upstream_keepalive_pool)
        .unwrap_or(128);
    let grace = server
        .and_then(|s| s.grace_period)
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(5));
    (admin, threads, pool, grace)
}

/// A listener's write buffer when the policy names none: a JSON answer of up to ~32 KB leaves
/// with its head in one write (Pingora's own default, 1460 bytes, writes the head and the body
/// separately once the body is over about 1 KB). Half of the read buffer Pingora already keeps
/// per connection (64 KiB).
const DEFAULT_WRITE_BUFFER: u64 = 32 * 1024;
const MAX_WRITE_BUFFER: u64 = 1 << 20;

fn compile_listeners(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    admin: SocketAddr,
    diags: &mut Diagnostics,
) -> Vec<ListenerSpec> {
    let mut declared = Declared::new("listener");
    let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
    addrs.insert(admin, "the admin listener".into());
    let mut out = Vec::new();
    for (src, f) in files {
        for l in &f.listener {
            let source = &cx.sources[*src];
            // A duplicate name is reported; its address is still checked below.
            let why = "listener names identify listeners in logs and must be unique";
            declared.first(source, &l.name, why, "rename one of them", diags);
            let Some(addr) = parse_addr(cx, *src, &l.addr, "listen", diags) else {
                continue;
            };
            if let Some(prev) = addrs.insert(addr, format!("listener `{}`", l.name.get_ref())) {
                diags.at(
                    Code::Listen,
                    source,
                    l.addr.span(),
                    format!("address {addr} is already used by {prev}"),
                    "two listeners cannot bind the same address",
                    "give this listener another port".into(),
                );
            }
            if l.tls && l.h2c {
                diags.at(
                    Code::Tls,
                    source,
                    l.name.span(),
                    format!("listener `{}` sets both tls and h2c", l.name.get_ref()),
                    "h2c is HTTP/2 without TLS; a TLS listener negotiates HTTP/2 by ALPN already",
                    "remove `h2c = true`".into(),
                );
            }
            let write_buffer = match &l.write_buffer {
                None => DEFAULT_WRITE_BUFFER,
                Some(b) if b.get_ref().0 > MAX_WRITE_BUFFER => {
                    diags.at(
                        Code::Listen,
                        source,
                        b.span(),
                        format!(
                            "listener `{}` has write_buffer = {} bytes, over 1MiB",
                            l.name.get_ref(),
                            b.get_ref().0
                        ),
                        "the buffer is held for every client connection; beyond a response's size it saves no write",
                        "use a size such as `16KiB` or `64KiB`".into(),
                    );
                    MAX_WRITE_BUFFER
                }
                Some(b) => b.get_ref().0,
            };
            out.push(ListenerSpec {
                name: l.name.get_ref().clone(),
                addr,
                tls: l.tls,
                h2c: l.h2c,
                write_buffer: write_buffer as usize,
            });
        }
    }
    out
}

fn check_tls(cx: &Ctx, listeners: &[ListenerSpec], have_certs: bool, diags: &mut Diagnostics) {
    if let Some(l) = listeners.iter().find(|l| l.tls) {
        if !have_certs && diags.is_empty() {
            diags.file(
                Code::Tls,
                cx.dir,
                format!("listener `{}` serves TLS but no [[certificate]] is defined", l.name),
                "a TLS listener needs at least one certificate to present",
                "add a [[certificate]] with cert and key files (see certs/README.md to make dev ones)".into(),
            );
        }
    }
}

fn compile_trust(t: raw::Trust) -> TrustSettings {
    let prefixes = t.identity_header_prefixes.unwrap_or_else(|| {
        DEFAULT_IDENTITY_PREFIXES
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    TrustSettings {
        proxies: t.proxies,
        identity_prefixes: prefixes
            .into_iter()
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect(),
        request_id_header: t
            .request_id_header
            .map(|h| h.0)
            .unwrap_or(http::HeaderName::from_static("x-request-id")),
        ipv6_prefix: t.ipv6_prefix.map_or(64, |p| p.0),
    }
}

fn compile_limits(l: raw::Limits) -> LimitSettings {
    LimitSettings {
        max_header_bytes: l.max_header_bytes.map(|b| b.0).unwrap_or(32 * 1024),
        max_headers: l.max_headers.unwrap_or(100),
        max_uri_bytes: l.max_uri_bytes.map(|b| b.0).unwrap_or(8 * 1024),
        max_body_bytes: l.max_body_bytes.map(|b| b.0).unwrap_or(10 * 1024 * 1024),
    }
}

fn compile_state(
    cx: &Ctx,
    state: Option<(usize, &Spanned<raw::State>)>,
    diags: &mut Diagnostics,
) -> Option<StateSpec> {
    let (src, st) = state?;
    let st = st.get_ref();
    let source = &cx.sources[src];
    let url = st.redis.get_ref();
    if !redis_url_ok(url) {
        diags.at(
            Code::InvalidValue,
            source,
            st.redis.span(),
            "`redis` is not a Redis URL".to_string(),
            "the cluster store is reached with redis://[:password@]host:port[/db] or rediss:// for TLS",
            "write e.g. redis = \"redis://10.0.0.20:6379/0\"".into(),
        );
        return None;
    }
    let sentinel = match (&st.sentinels, &st.sentinel_master) {
        (None, None) => None,
        (Some(list), Some(master)) if !list.is_empty() && !master.is_empty() => {
            let mut urls = Vec::new();
            for u in list {
                if !redis_url_ok(u.get_ref()) {
                    diags.at(
                        Code::InvalidValue,
                        source,
                        u.span(),
                        format!("`{}` is not a Redis Sentinel URL", u.get_ref()),
                        "sentinels are reached like Redis: redis://host:port",
                        "write e.g. sentinels = [\"redis://10.0.0.21:26379\", \"redis://10.0.0.22:26379\"]".into(),
                    );
                    return None;
                }
                urls.push(u.get_ref().clone());
            }
            Some((urls, master.clone()))
        }
        _ => {
            diags.at(
                Code::Requires,
                source,
                st.redis.span(),
                "`sentinels` and `sentinel_master` go together".to_string(),
                "the sentinels are asked for the master of that name",
                "give both (sentinel_master = \"mymaster\"), or neither for a single Redis".into(),
            );
            return None;
        }
    };
    let (line, col) = source.line_col(st.redis.span().start);
    Some(StateSpec {
        redis_url: url.clone(),
        sentinel,
        connect_timeout: st
            .connect_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_millis(500)),
        command_timeout: st
            .command_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_millis(50)),
        origin: format!("{}:{line}:{col}", source.path.display()),
    })
}

/// A `redis://` or `rediss://` URL the Redis client accepts (Redis and its sentinels alike).
fn redis_url_ok(url: &str) -> bool {
    (url.starts_with("redis://") || url.starts_with("rediss://"))
        && menwei_state::RedisStore::new(url, Duration::from_secs(1), Duration::from_secs(1))
            .is_ok()
}

fn check_cluster_limits(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    have_state: bool,
    diags: &mut Diagnostics,
) {
    if have_state {
        return;
    }
    for (src, f) in files {
        for l in f.limit.iter().filter(|l| l.scope == raw::Scope::Cluster) {
            diags.at(
                Code::Requires,
                &cx.sources[*src],
                l.name.span(),
                format!("limit `{}` has scope = \"cluster\" but no [state] redis is configured", l.name.get_ref()),
                "cluster limits keep their counters in Redis so that every gateway replica shares them",
                "add [state] with redis = \"redis://host:6379\", or use scope = \"local\"".into(),
            );
        }
    }
}

fn compile_audit(
    cx: &Ctx,
    audit: Option<(usize, &Spanned<raw::Audit>)>,
    diags: &mut Diagnostics,
) -> Option<crate::snapshot::AuditSpec> {
    let (src, a) = audit?;
    let a = a.get_ref();
    let file = cx.dir.join(a.file.get_ref());
    let parent_ok = file
        .parent()
        .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir());
    if !parent_ok || file.is_dir() {
        diags.at(
            Code::InvalidValue,
            &cx.sources[src],
            a.file.span(),
            format!("audit file `{}` cannot be created there", file.display()),
            "the audit log is appended to a file in an existing directory",
            "create the directory (writable by the gateway's user only) or correct the path".into(),
        );
        return None;
    }
    Some(crate::snapshot::AuditSpec {
        file,
        fsync_interval: a
            .fsync_interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(1)),
    })
}
