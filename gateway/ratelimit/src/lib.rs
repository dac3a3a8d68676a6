//! Rate limits for menwei. Plain inputs (a key, a time), plain decisions; no Pingora, no policy.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, "leaky bucket as a meter"): per key one
//! number, the theoretical arrival time (TAT). A request at time `t` is admitted when
//! `max(TAT, t) + T - t <= burst * T` (T = 1 / rate), and then `TAT = max(TAT, t) + T`. Why GCRA
//! rather than a token bucket: the same admissions (burst at once, then `rate` per second) with a
//! single word of state per key, updated by one compare-and-swap — cheap locally and one atomic
//! Lua step in Redis later. Guarantee: over any interval of length `e`, at most
//! `burst + rate * e` requests of one key are admitted.

pub mod bans;
pub mod cluster;
pub mod gcra;
pub mod local;
pub mod rate;

pub use bans::{Ban, BanList};
pub use cluster::{ClusterCheck, ClusterStore, RedisStore, StoreError};
pub use gcra::{Decision, Gcra};
pub use local::{AtLimit, ConcurrencyGuard, LocalLimiter};
pub use rate::Rate;
