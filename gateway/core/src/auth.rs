//! Sign-in steps of the pipeline: the reserved `/.menwei/...` endpoints and each route's
//! authentication and claim requirements, decided by `menwei-sso` and written here.

use crate::ctx::Ctx;
use crate::errors::{self, Deny, Extra};
use bytes::Bytes;
use menwei_sso::{Denial, Outcome, Req, Sso};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Largest back-channel logout body read (a logout token is a few KiB).
const MAX_FORM: usize = 64 * 1024;

/// The request as SSO sees it.
fn sso_req<'a>(
    session: &'a Session,
    ctx: &'a Ctx,
    authority: &'a str,
    form: Option<&'a [u8]>,
) -> Req<'a> {
    let req = session.req_header();
    Req {
        method: &req.method,
        path: &ctx.path,
        query: req.uri.query(),
        headers: &req.headers,
        tls: ctx.proto == "https",
        authority,
        request_id: &ctx.request_id,
        form,
    }
}

/// What the pipeline does next.
pub enum Step {
    Continue,
    Deny(Deny, Extra),
    Respond(Box<ResponseHeader>, Bytes),
}

fn denial(d: Denial) -> Deny {
    match d {
        Denial::LoginRequired => errors::LOGIN_REQUIRED,
        Denial::InvalidToken => errors::INVALID_TOKEN,
        Denial::Forbidden => errors::FORBIDDEN,
        Denial::ProviderUnavailable => errors::IDP_UNAVAILABLE,
        Denial::BadCallback => errors::BAD_CALLBACK,
        Denial::StoreUnavailable => errors::SESSION_STORE_DOWN,
        Denial::BadLogoutToken => errors::BAD_LOGOUT_TOKEN,
    }
}

fn authority(session: &Session) -> String {
    let req = session.req_header();
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn step(o: Outcome, ctx: &mut Ctx) -> pingora::Result<Step> {
    Ok(match o {
        Outcome::Allow(id) => {
            ctx.identity = id;
            Step::Continue
        }
        Outcome::Redirect { location, cookies } => {
            let mut h = ResponseHeader::build(302, Some(4))?;
            let _ = h.insert_header(http::header::LOCATION, location);
            let _ = h.insert_header(http::header::CACHE_CONTROL, "no-store");
            let _ = h.insert_header(http::header::CONTENT_LENGTH, "0");
            let _ = h.insert_header("x-request-id", ctx.request_id.as_str());
            for c in cookies {
                let _ = h.append_header(http::header::SET_COOKIE, c);
            }
            Step::Respond(Box::new(h), Bytes::new())
        }
        Outcome::Deny {
            denial: d,
            www_authenticate,
            cookies,
        } => {
            let mut extra: Extra = cookies
                .into_iter()
                .map(|c| (http::header::SET_COOKIE, c))
                .collect();
            if let Some(w) = www_authenticate {
                extra.push((http::header::WWW_AUTHENTICATE, w));
            }
            Step::Deny(denial(d), extra)
        }
        Outcome::Reply {
            status,
            content_type,
            body,
        } => {
            let mut h = ResponseHeader::build(status, Some(4))?;
            let _ = h.insert_header(http::header::CONTENT_TYPE, content_type);
            let _ = h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
            let _ = h.insert_header(http::header::CACHE_CONTROL, "no-store");
            let _ = h.insert_header("x-request-id", ctx.request_id.as_str());
            Step::Respond(Box::new(h), Bytes::from(body))
        }
    })
}

/// A `/.menwei/...` request: an SSO endpoint, or 404.
pub async fn reserved(
    sso: Option<&Sso>,
    session: &mut Session,
    ctx: &mut Ctx,
) -> pingora::Result<Step> {
    let Some(sso) = sso else {
        return Ok(Step::Deny(errors::RESERVED, Extra::new()));
    };
    let form = if ctx.path == menwei_sso::BACKCHANNEL
        && session.req_header().method == http::Method::POST
    {
        match crate::request::read_body(session, MAX_FORM).await {
            Ok(b) => Some(b),
            Err(_) => return Ok(Step::Deny(errors::BAD_LOGOUT_TOKEN, Extra::new())),
        }
    } else {
        None
    };
    let authority = authority(session);
    let o = sso
        .endpoint(&sso_req(session, ctx, &authority, form.as_deref()))
        .await;
    match o {
        Some(o) => step(o, ctx),
        None => Ok(Step::Deny(errors::RESERVED, Extra::new())),
    }
}

/// The route's authentication and claim requirements.
pub async fn check(
    sso: Option<&Sso>,
    auth: &menwei_policy::snapshot::RouteAuth,
    session: &Session,
    ctx: &mut Ctx,
) -> pingora::Result<Step> {
    if auth.kind == menwei_policy::raw::Auth::Public {
        return Ok(Step::Continue);
    }
    let Some(sso) = sso else {
        // The policy compiler refuses sign-in routes without [sso]; never serve one open.
        return Ok(Step::Deny(errors::INTERNAL, Extra::new()));
    };
    let authority = authority(session);
    let o = sso
        .check(&sso_req(session, ctx, &authority, None), auth)
        .await;
    step(o, ctx)
}

/// Largest body of a signed request: it is read whole and verified before anything reaches the
/// backend (Pingora replays it from its retry buffer, which holds 64 KiB).
pub const MAX_SIGNED_BODY: u64 = 64 * 1024;

fn sig_deny(d: Deny, request_id: &str, why: &str) -> Step {
    tracing::info!(request_id, code = d.code, why, "signed request refused");
    let extra = if d.status == 401 {
        vec![(
            http::header::WWW_AUTHENTICATE,
            format!("{} realm=\"menwei\"", menwei_gm::signature::SCHEME_SM2),
        )]
    } else {
        Extra::new()
    };
    Step::Deny(d, extra)
}

/// `auth = "gm-signature"`: the request's SM2 (or HMAC-SM3) signature over its method, path,
/// query, chosen headers, timestamp, nonce and body digest, checked before the backend sees any
/// of it; a stale timestamp or a nonce seen before is refused.
pub async fn check_signature(
    live: &crate::live::Live,
    nonces: &menwei_state::Seen,
    auth: &menwei_policy::snapshot::RouteAuth,
    max_body: u64,
    session: &mut Session,
    ctx: &mut Ctx,
) -> pingora::Result<Step> {
    use menwei_gm::signature::{self, Scheme};
    use menwei_policy::snapshot::AppKey;
    let rid = ctx.request_id.clone();
    let Some(gm) = live.snapshot.gm.as_ref() else {
        return Ok(Step::Deny(errors::INTERNAL, Extra::new()));
    };
    let header = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let by = match header.as_deref().map(signature::parse) {
        None | Some(Ok(None)) => {
            return Ok(sig_deny(
                errors::SIG_MISSING,
                &rid,
                "no MENWEI-SM2 authorization",
            ))
        }
        Some(Err(why)) => return Ok(sig_deny(errors::SIG_INVALID, &rid, &why)),
        Some(Ok(Some(by))) => by,
    };
    let Some((ai, app)) = gm.apps.iter().enumerate().find(|(_, a)| a.id == by.app) else {
        return Ok(sig_deny(errors::SIG_INVALID, &rid, "unknown app"));
    };
    if !auth.apps.is_empty() && !auth.apps.contains(&ai) {
        return Ok(sig_deny(
            errors::SIG_APP_FORBIDDEN,
            &rid,
            "app not allowed on this route",
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(by.ts) > gm.max_skew.as_secs() {
        return Ok(sig_deny(
            errors::SIG_STALE,
            &rid,
            "timestamp outside max_skew",
        ));
    }
    // The whole body, bounded, kept by Pingora for forwarding after the check.
    let cap = max_body.min(MAX_SIGNED_BODY) as usize;
    let read = match ctx.read_ahead.clone() {
        // Already read (and inspected) whole before forwarding.
        Some(b) => Ok(b),
        None => {
            session.enable_retry_buffering();
            crate::request::read_body(session, cap).await
        }
    };
    let body = match read {
        Ok(b) if b.len() > cap => return Ok(Step::Deny(errors::BODY_TOO_LARGE, Extra::new())),
        Ok(b) => b,
        Err(crate::request::BodyError::TooLarge) => {
            return Ok(Step::Deny(errors::BODY_TOO_LARGE, Extra::new()))
        }
        Err(crate::request::BodyError::Unreadable) => {
            return Ok(Step::Deny(errors::BAD_REQUEST, Extra::new()))
        }
    };
    ctx.body_bytes = 0;
    let digest = hex::encode(menwei_gm::sm3(&body));
    let req = session.req_header();
    let values: Vec<String> = by
        .headers
        .iter()
        .map(|h| {
            req.headers
                .get_all(h.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let canonical = signature::canonical(
        &by,
        &signature::Request {
            method: req.method.as_str(),
            path: &ctx.path,
            query: req.uri.query(),
            header_values: &values,
            body_sm3_hex: &digest,
        },
    );
    let verified = match (&app.key, by.scheme) {
        (
            AppKey::Sm2 {
                public_hex,
                distid,
                encoding,
            },
            Scheme::Sm2,
        ) => {
            let enc = match encoding {
                menwei_policy::raw::SigEncoding::Der => menwei_gm::SigEncoding::Der,
                menwei_policy::raw::SigEncoding::Raw => menwei_gm::SigEncoding::Raw,
            };
            menwei_gm::Sm2Public::from_hex(distid, public_hex)
                .and_then(|k| k.verify(canonical.as_bytes(), &by.sig, enc))
                .map_err(|e| e.to_string())
        }
        (AppKey::Hmac(secret), Scheme::HmacSm3) => {
            if menwei_gm::hmac_sm3_verify(&secret.0, canonical.as_bytes(), &by.sig) {
                Ok(())
            } else {
                Err("HMAC-SM3 tag does not match".into())
            }
        }
        _ => Err("the app's key does not fit the scheme used".into()),
    };
    if let Err(why) = verified {
        return Ok(sig_deny(errors::SIG_INVALID, &rid, &why));
    }
    // Only a verified request consumes its nonce (a forger cannot burn an app's nonces).
    let redis = match gm.nonce_store {
        menwei_policy::raw::SessionStore::Redis => live.cluster.as_ref().map(|c| c.redis().clone()),
        menwei_policy::raw::SessionStore::Memory => None,
    };
    let window = gm.max_skew * 2 + std::time::Duration::from_secs(1);
    match nonces
        .first_use(
            &format!("{}|{}", app.id, by.nonce),
            window,
            redis.as_deref(),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return Ok(sig_deny(errors::SIG_REPLAY, &rid, "nonce seen before")),
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "nonce store unavailable");
            return Ok(Step::Deny(errors::SESSION_STORE_DOWN, Extra::new()));
        }
    }
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), app.id.clone().into());
    claims.insert("azp".into(), app.id.clone().into());
    if let Some(d) = &app.department {
        claims.insert("department".into(), d.clone().into());
    }
    let paths = menwei_policy::snapshot::ClaimPathSpec {
        roles: "roles".into(),
        groups: "groups".into(),
        department: "department".into(),
        name: "name".into(),
    };
    if menwei_sso::claims::failed(&claims, &paths, &auth.require).is_some() {
        return Ok(Step::Deny(errors::FORBIDDEN, Extra::new()));
    }
    ctx.app_id = Some(app.id.clone());
    ctx.identity = Some(menwei_sso::Identity {
        provider: usize::MAX,
        sub: app.id.clone(),
        claims,
        access_token: None,
    });
    Ok(Step::Continue)
}

/// `auth = "gm-certificate"`: the SM2 client certificate a trusted TLCP terminator passed in
/// `[gm] client_cert_header`, verified against the configured SM2 CAs; CN becomes the user id,
/// OU (else O) the department.
pub fn check_certificate(
    live: &crate::live::Live,
    auth: &menwei_policy::snapshot::RouteAuth,
    session: &Session,
    ctx: &mut Ctx,
) -> Step {
    let rid = ctx.request_id.clone();
    let Some(header) = live
        .snapshot
        .gm
        .as_ref()
        .and_then(|g| g.client_cert_header.as_ref())
    else {
        return Step::Deny(errors::INTERNAL, Extra::new());
    };
    let value = session.req_header().headers.get(header);
    let Some(value) = value.filter(|_| ctx.peer_trusted) else {
        if value.is_some() {
            tracing::warn!(request_id = %rid, peer = ?ctx.peer, "client certificate header from an untrusted peer ignored");
        }
        return Step::Deny(errors::CERT_MISSING, Extra::new());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let id = match menwei_gm::cert::verify_client_cert(
        &live.client_cas,
        &live.client_crls,
        value.as_bytes(),
        now,
    ) {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(request_id = %rid, error = %e, "client certificate refused");
            return Step::Deny(errors::CERT_REFUSED, Extra::new());
        }
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), id.cn.clone().into());
    claims.insert("name".into(), id.cn.clone().into());
    if let Some(d) = id.ou.clone().or(id.o.clone()) {
        claims.insert("department".into(), d.into());
    }
    claims.insert("cert_serial".into(), id.serial.clone().into());
    claims.insert("cert_issuer".into(), id.issuer_cn.clone().into());
    let paths = menwei_policy::snapshot::ClaimPathSpec {
        roles: "roles".into(),
        groups: "groups".into(),
        department: "department".into(),
        name: "name".into(),
    };
    if menwei_sso::claims::failed(&claims, &paths, &auth.require).is_some() {
        return Step::Deny(errors::FORBIDDEN, Extra::new());
    }
    ctx.cert_identity = Some(id.clone());
    ctx.identity = Some(menwei_sso::Identity {
        provider: usize::MAX,
        sub: id.cn,
        claims,
        access_token: None,
    });
    Step::Continue
}
