//! The cluster store: GCRA state in Redis, shared by every gateway replica. All cluster limits of
//! a request are decided together by one Lua script (all or nothing: nothing is consumed unless
//! every limit admits) on Redis' own clock, so replicas with skewed clocks agree.
//!
//! Requests are batched: one task per store sends the decisions of every request that arrived
//! while the previous call was in flight in ONE script call (up to `MAX_BATCH` requests), where
//! each request is still its own all-or-nothing group, decided in arrival order (a later request
//! sees what an earlier one consumed). Under load this turns N round trips into one; alone, a
//! request costs the same single round trip as before. Connection problems never block a request
//! longer than the command timeout: the caller then applies the limit's `on_store_error` (fail
//! open to the local limiter, or fail closed). The queue is bounded: when it is full the request
//! is treated as a store error rather than waiting.

use crate::gcra::Decision;
use menwei_state::redis;
pub use menwei_state::{RedisStore, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// KEYS: the distinct state keys of the batch, each once. ARGV[1]: number of groups (requests)
/// G; then for each group its number of limits n, then n triples (index into KEYS from 1,
/// interval µs, burst). Each key is read at most once and written at most once per call, however
/// many requests of the batch share it (under a flood they mostly do: one address, one route).
/// Returns per limit, in order: -1 - remaining when it admits, or the retry-after in µs (>= 1)
/// when it refuses; when any limit of a group refuses, nothing of that group is consumed.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat, ttl, out = {}, {}, {}
local o, a = 1, 2
for g = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a]); a = a + 1
  local next_tat, life = {}, {}
  local all_ok = true
  for i = 0, n - 1 do
    local j = tonumber(ARGV[a + 3 * i])
    local interval = tonumber(ARGV[a + 3 * i + 1])
    local tol = interval * tonumber(ARGV[a + 3 * i + 2])
    local cur = tat[j]
    if cur == nil then
      cur = tonumber(redis.call('GET', KEYS[j])) or now
      tat[j] = cur
    end
    if cur < now then cur = now end
    local new_tat = cur + interval
    local used = new_tat - now
    if used > tol then
      all_ok = false
      out[o + i] = used - tol
    else
      out[o + i] = -1 - math.floor((tol - used) / interval)
      next_tat[i] = new_tat
      life[i] = math.ceil(tol / 1000) + 1000
    end
  end
  if all_ok then
    for i = 0, n - 1 do
      local j = tonumber(ARGV[a + 3 * i])
      tat[j] = next_tat[i]
      if (ttl[j] or 0) < life[i] then ttl[j] = life[i] end
    end
  end
  o = o + n; a = a + 3 * n
end
for j, l in pairs(ttl) do
  redis.call('SET', KEYS[j], string.format('%.0f', tat[j]), 'PX', l)
end
return out
"#;

/// Most requests decided by one script call.
const MAX_BATCH: usize = 64;
/// Most requests waiting for the store.
const MAX_QUEUED: usize = 4096;

#[derive(Debug, Clone)]
pub struct ClusterCheck {
    pub key: String,
    pub interval_us: u64,
    pub burst: u64,
}

type Reply = Result<Vec<Decision>, StoreError>;

struct Pending {
    checks: Vec<ClusterCheck>,
    reply: oneshot::Sender<Reply>,
}

pub struct ClusterStore {
    /// The process's shared store (sessions, bans, nonces use it too).
    redis: Arc<RedisStore>,
    /// The decisions' own connection, first used by the batching task, so that its I/O runs on
    /// the thread serving requests (see [`RedisStore::sibling`]); the shared one when that
    /// cannot be built.
    decisions: Arc<RedisStore>,
    /// The batching task's queue, started on first use (inside the runtime).
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl ClusterStore {
    pub fn new(redis: Arc<RedisStore>) -> Self {
        let decisions = redis
            .sibling()
            .map(Arc::new)
            .unwrap_or_else(|_| redis.clone());
        Self {
            redis,
            decisions,
            queue: OnceLock::new(),
        }
    }

    pub fn redis(&self) -> &Arc<RedisStore> {
        &self.redis
    }

    fn queue(&self) -> &mpsc::Sender<Pending> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_QUEUED);
            tokio::spawn(run(self.decisions.clone(), rx));
            tx
        })
    }

    /// Decides the cluster limits of one request (all or nothing).
    pub async fn check(&self, checks: Vec<ClusterCheck>) -> Result<Vec<Decision>, StoreError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending { checks, reply };
        if self.queue().try_send(pending).is_err() {
            return Err(StoreError("too many requests waiting for Redis".into()));
        }
        // The batch has its own command timeout; this one also covers time spent queued.
        match tokio::time::timeout(self.redis.command_timeout() * 2, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError("the Redis batching task stopped".into())),
            Err(_) => Err(StoreError("Redis command timed out".into())),
        }
    }
}

/// The batching task: one script call for everything queued, one call at a time. It ends when
/// the store is dropped (a reload that changed `[state]`).
async fn run(redis: Arc<RedisStore>, mut rx: mpsc::Receiver<Pending>) {
    let script = redis::Script::new(GCRA_LUA);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // A caller that gave up no longer counts.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        match decide(&redis, &script, &batch).await {
            Ok(values) => {
                let mut at = 0;
                for p in batch.drain(..) {
                    let n = p.checks.len();
                    let mine = values
                        .get(at..at + n)
                        .map(|v| v.iter().map(|&v| decision(v)).collect());
                    at += n;
                    let _ = p
                        .reply
                        .send(mine.ok_or_else(|| StoreError("unexpected reply from Redis".into())));
                }
            }
            Err(e) => {
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn decide(
    redis: &RedisStore,
    script: &redis::Script,
    batch: &[Pending],
) -> Result<Vec<i64>, StoreError> {
    let mut conn = redis.connection().await?;
    let mut inv = script.prepare_invoke();
    inv.arg(batch.len());
    // Each distinct key goes to Redis once; the checks name it by its index (from 1, as Lua).
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    let mut total = 0;
    for p in batch {
        inv.arg(p.checks.len());
        for c in &p.checks {
            let next = index.len() + 1;
            let j = *index.entry(c.key.as_str()).or_insert_with(|| {
                inv.key(&c.key);
                next
            });
            inv.arg(j).arg(c.interval_us.max(1)).arg(c.burst.max(1));
        }
        total += p.checks.len();
    }
    let reply = tokio::time::timeout(
        redis.command_timeout(),
        inv.invoke_async::<Vec<i64>>(&mut conn),
    )
    .await;
    if !matches!(reply, Ok(Ok(_))) {
        redis.failed();
    }
    match reply {
        Ok(Ok(v)) if v.len() == total => Ok(v),
        Ok(Ok(v)) => Err(StoreError(format!(
            "unexpected reply of {} values",
            v.len()
        ))),
        Ok(Err(e)) => Err(StoreError(format!("Redis error: {e}"))),
        Err(_) => Err(StoreError("Redis command timed out".into())),
    }
}

fn decision(v: i64) -> Decision {
    if v < 0 {
        Decision::Allow {
            remaining: (-1 - v) as u64,
        }
    } else {
        Decision::Deny {
            retry_after_ns: (v as u64).saturating_mul(1000),
        }
    }
}
