//! menwei core: the only crate that depends on Pingora. It serves the compiled policy of
//! `menwei-policy`: the request pipeline (`pipeline.rs` states the phase order), upstream
//! selection and health, header hygiene, refusals, the admin listener and hot reload.

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod ctx;
pub mod errors;
pub mod health;
pub mod hygiene;
pub mod inspect;
pub mod limits;
pub mod live;
pub mod masking;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod request;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod watch;
