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

async fn read_form(session: &mut Session) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    // Bounded: at most MAX_FORM bytes, then refuse.
    for _ in 0..1024 {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_FORM {
                    return None;
                }
            }
            Ok(None) => return Some(body),
            Err(_) => return None,
        }
    }
    None
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
        match read_form(session).await {
            Some(b) => Some(b),
            None => return Ok(Step::Deny(errors::BAD_LOGOUT_TOKEN, Extra::new())),
        }
    } else {
        None
    };
    let authority = authority(session);
    let req = session.req_header();
    let r = Req {
        method: &req.method,
        path: &ctx.path,
        query: req.uri.query(),
        headers: &req.headers,
        tls: ctx.proto == "https",
        authority: &authority,
        request_id: &ctx.request_id,
        form: form.as_deref(),
    };
    match sso.endpoint(&r).await {
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
    let req = session.req_header();
    let r = Req {
        method: &req.method,
        path: &ctx.path,
        query: req.uri.query(),
        headers: &req.headers,
        tls: ctx.proto == "https",
        authority: &authority,
        request_id: &ctx.request_id,
        form: None,
    };
    let o = sso.check(&r, auth).await;
    step(o, ctx)
}
