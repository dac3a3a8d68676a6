//! The cluster store: GCRA state in Redis, shared by every gateway replica. One round trip per
//! request: all cluster limits of a request go to one Lua script that decides them together
//! (all or nothing: nothing is consumed unless every limit admits) on Redis' own clock, so replicas
//! with skewed clocks agree. Connection problems never block a request longer than the command
//! timeout: the caller then applies the limit's `on_store_error` (fail open to the local limiter,
//! or fail closed).

use crate::gcra::Decision;
use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// The store could not decide (unreachable, timeout, error reply).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Redis connection shared by all requests of a process, connected lazily and re-connected
/// with at most one attempt per `retry_every`.
pub struct ClusterStore {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    connecting: AtomicBool,
    last_attempt_ms: AtomicU64,
    connect_timeout: Duration,
    command_timeout: Duration,
    retry_every: Duration,
    script: redis::Script,
}

fn now_ms() -> u64 {
    crate::local::now_ns() / 1_000_000
}

impl ClusterStore {
    /// Validates the URL; does not connect yet.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(Self {
            client,
            conn: ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            last_attempt_ms: AtomicU64::new(0),
            connect_timeout,
            command_timeout,
            retry_every: Duration::from_secs(1),
            script: redis::Script::new(GCRA_LUA),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let now = now_ms();
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.retry_every.as_millis() as u64;
        if !due || self.connecting.swap(true, Ordering::AcqRel) {
            return Err(StoreError("Redis not connected (reconnecting)".into()));
        }
        self.last_attempt_ms.store(now.max(1), Ordering::Relaxed);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1);
        let made = tokio::time::timeout(
            self.connect_timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        self.connecting.store(false, Ordering::Release);
        match made {
            Ok(Ok(c)) => {
                self.conn.store(Some(Arc::new(c.clone())));
                tracing::info!("connected to Redis for cluster rate limits");
                Ok(c)
            }
            Ok(Err(e)) => Err(StoreError(format!("cannot connect to Redis: {e}"))),
            Err(_) => Err(StoreError("cannot connect to Redis: timed out".into())),
        }
    }

    /// Decides every check in one round trip; all are admitted or none is consumed.
    pub async fn check(&self, checks: &[ClusterCheck]) -> Result<Vec<Decision>, StoreError> {
        let mut conn = self.connection().await?;
        let mut inv = self.script.prepare_invoke();
        for c in checks {
            inv.key(&c.key)
                .arg(c.interval_us.max(1))
                .arg(c.burst.max(1));
        }
        let reply = tokio::time::timeout(
            self.command_timeout,
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

    /// Connects now (used by `menwei check` and at start to report an unreachable URL).
    pub async fn probe(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let pong = tokio::time::timeout(
            self.command_timeout.max(Duration::from_millis(500)),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError(format!("Redis error: {e}"))),
            Err(_) => Err(StoreError("Redis did not answer PING in time".into())),
        }
    }
}
