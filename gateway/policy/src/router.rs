//! Route matching. Precedence is total and documented (docs/policies.md, "Route precedence"):
//!
//! 1. host: an exact host beats a wildcard host (longer suffix first), which beats "any host";
//! 2. path: an exact `path` beats a `prefix` (longer first), which beats a `regex`;
//! 3. a route restricted to methods beats one that accepts all methods;
//! 4. declaration order (file name order, then position in the file).
//!
//! The first route in that order whose host, path and method all match wins. When routes match
//! the host and path but none the method, the answer is 405 with the methods that would match.

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.cn` stored as `.example.cn`: any name with at least one more label.
    Suffix(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    fn rank(&self) -> (u8, usize) {
        match self {
            HostMatch::Exact(_) => (0, 0),
            HostMatch::Suffix(s) => (1, usize::MAX - s.len()),
            HostMatch::Any => (2, 0),
        }
    }
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    /// Stored without a trailing `/` (except `/` itself); matched on segment boundaries.
    Prefix(String),
    Regex(regex::Regex),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) if p == "/" => true,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            }
            PathMatch::Regex(r) => r.is_match(path),
        }
    }

    fn rank(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
            PathMatch::Regex(_) => (2, 0),
        }
    }

    /// How an operator wrote it, for `explain` and logs.
    pub fn describe(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("path = \"{p}\""),
            PathMatch::Prefix(p) => format!("prefix = \"{p}\""),
            PathMatch::Regex(r) => format!("regex = \"{}\"", r.as_str()),
        }
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub host: HostMatch,
    pub path: PathMatch,
    /// Empty: all methods.
    pub methods: Vec<Method>,
    pub upstream: usize,
    pub websocket: bool,
    pub max_body_bytes: u64,
    /// Indexes into `Snapshot::rate_limits`, in the order the route lists them.
    pub limits: Vec<usize>,
    /// Authentication and claim requirements.
    pub auth: crate::snapshot::RouteAuth,
    /// Index into `Snapshot::masks`.
    pub mask: Option<usize>,
    /// Index into `Snapshot::wafs`.
    pub waf: Option<usize>,
    /// Where it was declared, for `explain`.
    pub origin: String,
    /// Position in declaration order.
    pub order: usize,
}

impl RouteSpec {
    fn key(&self) -> ((u8, usize), (u8, usize), bool, usize) {
        (
            self.host.rank(),
            self.path.rank(),
            self.methods.is_empty(),
            self.order,
        )
    }

    fn method_ok(&self, m: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(m)
            || (*m == Method::HEAD && self.methods.contains(&Method::GET))
    }
}

/// Result of matching one request.
#[derive(Debug)]
pub enum Match<'a> {
    /// The matching route and its index in `Router::routes()`.
    Route(usize, &'a RouteSpec),
    /// Host and path matched some routes, the method none: these methods would.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Why each route did or did not match, for `menwei explain`.
#[derive(Debug)]
pub struct Considered<'a> {
    pub route: &'a RouteSpec,
    pub verdict: &'static str,
}

/// The routes, sorted by precedence.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<RouteSpec>,
}

impl Router {
    pub fn new(mut routes: Vec<RouteSpec>) -> Self {
        routes.sort_by_key(|r| r.key());
        Self { routes }
    }

    /// All routes in precedence order.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    /// `host` lower-case without port; `path` normalised.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Match<'_> {
        let mut allowed: Vec<Method> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !r.host.matches(host) || !r.path.matches(path) {
                continue;
            }
            if r.method_ok(method) {
                return Match::Route(i, r);
            }
            for m in &r.methods {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::MethodNotAllowed(allowed)
        }
    }

    /// Every route in precedence order with what happened to it.
    pub fn explain(&self, host: &str, path: &str, method: &Method) -> Vec<Considered<'_>> {
        let mut won = false;
        self.routes
            .iter()
            .map(|r| {
                let verdict = if !r.host.matches(host) {
                    "host does not match"
                } else if !r.path.matches(path) {
                    "path does not match"
                } else if !r.method_ok(method) {
                    "method not accepted"
                } else if won {
                    "would match, but a route earlier in precedence order won"
                } else {
                    won = true;
                    "MATCH"
                };
                Considered { route: r, verdict }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        name: &str,
        host: HostMatch,
        path: PathMatch,
        methods: &[Method],
        order: usize,
    ) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            host,
            path,
            methods: methods.to_vec(),
            upstream: 0,
            websocket: true,
            max_body_bytes: 0,
            limits: Vec::new(),
            auth: Default::default(),
            mask: None,
            waf: None,
            origin: String::new(),
            order,
        }
    }

    fn name<'a>(m: Match<'a>) -> &'a str {
        match m {
            Match::Route(_, r) => &r.name,
            Match::MethodNotAllowed(_) => "405",
            Match::NotFound => "404",
        }
    }

    #[test]
    fn precedence() {
        let r = Router::new(vec![
            route(
                "any-root",
                HostMatch::Any,
                PathMatch::Prefix("/".into()),
                &[],
                0,
            ),
            route(
                "regex",
                HostMatch::Any,
                PathMatch::Regex(regex::Regex::new("^/api/v[0-9]+/").unwrap()),
                &[],
                1,
            ),
            route(
                "api",
                HostMatch::Any,
                PathMatch::Prefix("/api".into()),
                &[],
                2,
            ),
            route(
                "api-v1",
                HostMatch::Any,
                PathMatch::Prefix("/api/v1".into()),
                &[],
                3,
            ),
            route(
                "api-post",
                HostMatch::Any,
                PathMatch::Prefix("/api".into()),
                &[Method::POST],
                4,
            ),
            route(
                "exact",
                HostMatch::Any,
                PathMatch::Exact("/api/v1/ping".into()),
                &[],
                5,
            ),
            route(
                "wild",
                HostMatch::Suffix(".example.cn".into()),
                PathMatch::Prefix("/".into()),
                &[],
                6,
            ),
            route(
                "gov",
                HostMatch::Exact("gov.example.cn".into()),
                PathMatch::Prefix("/".into()),
                &[],
                7,
            ),
        ]);
        let g = Method::GET;
        assert_eq!(name(r.find("x", "/api/v1/ping", &g)), "exact");
        assert_eq!(name(r.find("x", "/api/v1/pong", &g)), "api-v1");
        assert_eq!(name(r.find("x", "/api/v2/x", &g)), "api");
        assert_eq!(name(r.find("x", "/api/v2/x", &Method::POST)), "api-post");
        assert_eq!(name(r.find("x", "/apix", &g)), "any-root");
        assert_eq!(name(r.find("x", "/api", &g)), "api");
        assert_eq!(name(r.find("gov.example.cn", "/api/v1/ping", &g)), "gov");
        assert_eq!(name(r.find("a.example.cn", "/api", &g)), "wild");
        assert_eq!(name(r.find("example.cn", "/api", &g)), "api");
    }

    #[test]
    fn method_not_allowed_and_head() {
        let r = Router::new(vec![route(
            "g",
            HostMatch::Any,
            PathMatch::Prefix("/g".into()),
            &[Method::GET],
            0,
        )]);
        assert_eq!(name(r.find("x", "/g/1", &Method::HEAD)), "g");
        match r.find("x", "/g/1", &Method::DELETE) {
            Match::MethodNotAllowed(m) => assert_eq!(m, vec![Method::GET]),
            other => panic!("{other:?}"),
        }
        assert_eq!(name(r.find("x", "/h", &Method::GET)), "404");
    }
}
