//! The cluster store: GCRA state in Redis, shared by every gateway replica. One round trip per
//! request: all cluster limits of a request go to one Lua script that decides them together
//! (all or nothing: nothing is consumed unless every limit admits) on Redis' own clock, so replicas
//! with skewed clocks agree. Connection problems never block a request longer than the command
//! timeout: the caller then applies the limit's `on_store_error` (fail open to the local limiter,
//! or fail closed).

use crate::gcra::Decision;
use menwei_state::redis;
pub use menwei_state::{RedisStore, StoreError};
use std::sync::Arc;

/// KEYS[i]: state of limit i. ARGV[2i-1], ARGV[2i]: its interval (µs) and burst.
/// Returns per limit: -1 - remaining when it admits, or the retry-after in µs (>= 1) when it
/// refuses; when any refuses, no state is written (the admitting ones are not consumed).
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local out, next_tat, ttl = {}, {}, {}
local all_ok = true
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local tol = interval * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local used = new_tat - now
  if used > tol then
    all_ok = false
    out[i] = used - tol
  else
    out[i] = -1 - math.floor((tol - used) / interval)
    next_tat[i] = new_tat
    ttl[i] = math.ceil(tol / 1000) + 1000
  end
end
if all_ok then
  for i = 1, n do
    redis.call('SET', KEYS[i], string.format('%.0f', next_tat[i]), 'PX', ttl[i])
  end
end
return out
"#;

/// One limit to decide in Redis.
#[derive(Debug, Clone)]
pub struct ClusterCheck {
    pub key: String,
    pub interval_us: u64,
    pub burst: u64,
}

/// The cluster store of rate limits: the shared Redis connection and the GCRA script.
pub struct ClusterStore {
    redis: Arc<RedisStore>,
    script: redis::Script,
}

impl ClusterStore {
    pub fn new(redis: Arc<RedisStore>) -> Self {
        Self {
            redis,
            script: redis::Script::new(GCRA_LUA),
        }
    }

    /// The shared connection.
    pub fn redis(&self) -> &Arc<RedisStore> {
        &self.redis
    }

    /// Decides every check in one round trip; all are admitted or none is consumed.
    pub async fn check(&self, checks: &[ClusterCheck]) -> Result<Vec<Decision>, StoreError> {
        let mut conn = self.redis.connection().await?;
        let mut inv = self.script.prepare_invoke();
        for c in checks {
            inv.key(&c.key)
                .arg(c.interval_us.max(1))
                .arg(c.burst.max(1));
        }
        let reply = tokio::time::timeout(
            self.redis.command_timeout(),
            inv.invoke_async::<Vec<i64>>(&mut conn),
        )
        .await;
        let values = match reply {
            Ok(Ok(v)) if v.len() == checks.len() => v,
            Ok(Ok(v)) => {
                return Err(StoreError(format!(
                    "unexpected reply of {} values",
                    v.len()
                )))
            }
            Ok(Err(e)) => return Err(StoreError(format!("Redis error: {e}"))),
            Err(_) => return Err(StoreError("Redis command timed out".into())),
        };
        Ok(values
            .into_iter()
            .map(|v| {
                if v < 0 {
                    Decision::Allow {
                        remaining: (-1 - v) as u64,
                    }
                } else {
                    Decision::Deny {
                        retry_after_ns: (v as u64).saturating_mul(1000),
                    }
                }
            })
            .collect())
    }
}
