//! menwei policy: the operator-written TOML files, validated and compiled into one immutable,
//! versioned, hashed [`Snapshot`]. This crate never touches the network or Pingora: the core
//! crate serves from what it produces.
//!
//! Layers: `raw` (syntax, serde) -> `compile*` (validation, all problems collected, located)
//! -> `snapshot` (the model served). `path` and `router` are used per request.

pub mod certs;
pub mod compile;
mod compile_alert;
pub mod compile_gm;
pub mod compile_limit;
pub mod compile_mask;
pub mod compile_route;
pub mod compile_sso;
pub mod compile_upstream;
mod compile_waf;
pub mod diag;
pub mod load;
pub mod path;
pub mod raw;
pub mod router;
pub mod schema;
pub mod snapshot;
pub mod types;
pub mod watch;

pub use compile::load;
pub use diag::{Diagnostic, Diagnostics};
pub use snapshot::Snapshot;
