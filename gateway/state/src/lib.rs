//! Shared state for a cluster of gateways: one Redis connection per process, used by sessions,
//! replay nonces and bans (cluster rate limits have a second one of their own:
//! [`RedisStore::sibling`]). It connects lazily, reconnects with at most one attempt per second,
//! and never blocks a request longer than the configured timeouts: callers get a [`StoreError`]
//! and apply their own failure mode. With Redis Sentinel, the master is asked of the sentinels at
//! each connection (the redis crate's `Sentinel`, which also checks that the node it names is a
//! master); a failed command drops the connection so that the next one finds the new master
//! after a failover.

use arc_swap::ArcSwapOption;
pub use redis;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The store could not answer (unreachable, timeout, error reply).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

struct Sentinel {
    /// The sentinels' URLs (to build a sibling store).
    urls: Vec<String>,
    sentinels: tokio::sync::Mutex<redis::sentinel::Sentinel>,
    master: String,
    node: redis::sentinel::SentinelNodeConnectionInfo,
}

/// A Redis connection shared by all requests of a process.
pub struct RedisStore {
    client: redis::Client,
    /// Redis Sentinel: the sentinels, the master's name, and the master's credentials and
    /// database (from `client`'s URL).
    sentinel: Option<Sentinel>,
    conn: ArcSwapOption<ConnectionManager>,
    /// Held while connecting: requests arriving meanwhile wait for that attempt (bounded by the
    /// connect timeout) instead of failing.
    connecting: tokio::sync::Mutex<()>,
    last_attempt_ms: AtomicU64,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// At most one connection attempt this often.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Sentinel {
    fn build(
        urls: &[String],
        master: &str,
        node: redis::sentinel::SentinelNodeConnectionInfo,
    ) -> Result<Sentinel, String> {
        let sentinels = redis::sentinel::Sentinel::build(urls.to_vec())
            .map_err(|e| format!("invalid Sentinel URL: {e}"))?;
        Ok(Sentinel {
            urls: urls.to_vec(),
            sentinels: tokio::sync::Mutex::new(sentinels),
            master: master.to_string(),
            node,
        })
    }
}

impl RedisStore {
    /// Validates the URL (and the sentinels' URLs when `sentinel` names them with the master's
    /// name); does not connect yet. With Sentinel, `url` gives the master's user, password,
    /// database and TLS.
    pub fn open(
        url: &str,
        sentinel: Option<(&[String], &str)>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        let sentinel = match sentinel {
            None => None,
            Some((urls, master)) => {
                let info = client.get_connection_info();
                let mut node = redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(info.redis_settings().clone());
                if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                Some(Sentinel::build(urls, master, node)?)
            }
        };
        Ok(Self::with(
            client,
            sentinel,
            connect_timeout,
            command_timeout,
        ))
    }

    /// As `open` without Sentinel.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, String> {
        Self::open(url, None, connect_timeout, command_timeout)
    }

    fn with(
        client: redis::Client,
        sentinel: Option<Sentinel>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Self {
            client,
            sentinel,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            last_attempt_ms: AtomicU64::new(0),
            connect_timeout,
            command_timeout,
        }
    }

    /// Another store for the same Redis (or Sentinel master) with its own connection, made on
    /// first use. The redis crate runs a connection's I/O on the runtime that made it: a store
    /// first used by the task that serves requests keeps that I/O on the requests' thread,
    /// rather than on whichever background thread connected the shared store first (one
    /// cross-thread wake-up per command saved).
    pub fn sibling(&self) -> Result<Self, String> {
        let sentinel = self
            .sentinel
            .as_ref()
            .map(|s| Sentinel::build(&s.urls, &s.master, s.node.clone()))
            .transpose()?;
        Ok(Self::with(
            self.client.clone(),
            sentinel,
            self.connect_timeout,
            self.command_timeout,
        ))
    }

    /// A command failed: with Sentinel, forget the connection so that the next one asks the
    /// sentinels again (after a failover the old master is gone or read-only). A single Redis
    /// keeps its connection, which reconnects by itself.
    pub fn failed(&self) {
        if self.sentinel.is_some() {
            self.conn.store(None);
        }
    }

    /// The client of the current master (asked of the sentinels with Sentinel).
    async fn master_client(&self) -> Result<redis::Client, StoreError> {
        let Some(s) = &self.sentinel else {
            return Ok(self.client.clone());
        };
        let mut sentinels = s.sentinels.lock().await;
        match tokio::time::timeout(
            self.connect_timeout,
            sentinels.async_master_for(&s.master, Some(&s.node)),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(StoreError(format!("cannot find the Redis master: {e}"))),
            Err(_) => Err(StoreError(
                "cannot find the Redis master: the sentinels timed out".into(),
            )),
        }
    }

    /// Longest wait for one command.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A connection (cheap clone of the shared one), connecting first if needed. Requests that
    /// arrive while a connection is being made wait for it (at most the connect timeout); less
    /// than a second after a failed attempt, they fail at once.
    pub async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let not_connected = || StoreError("Redis not connected (reconnecting)".into());
        let _one = tokio::time::timeout(self.connect_timeout, self.connecting.lock())
            .await
            .map_err(|_| not_connected())?;
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let now = now_ms();
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= RETRY_EVERY.as_millis() as u64;
        if !due {
            return Err(not_connected());
        }
        self.last_attempt_ms.store(now, Ordering::Relaxed);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1);
        let client = self.master_client().await?;
        let made = tokio::time::timeout(
            self.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await;
        match made {
            Ok(Ok(c)) => {
                self.conn.store(Some(Arc::new(c.clone())));
                tracing::info!("connected to Redis (shared state)");
                Ok(c)
            }
            Ok(Err(e)) => Err(StoreError(format!("cannot connect to Redis: {e}"))),
            Err(_) => Err(StoreError("cannot connect to Redis: timed out".into())),
        }
    }

    /// Runs one command or pipeline under the command timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        let r = match tokio::time::timeout(self.command_timeout, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => StoreError(format!("Redis error: {e}")),
            Err(_) => StoreError("Redis command timed out".into()),
        };
        self.failed();
        Err(r)
    }

    /// `SET key 1 NX PX ttl`: true when this call set it (a lock taken, a value seen first).
    pub async fn set_once(&self, key: String, ttl: Duration) -> Result<bool, StoreError> {
        let ms = ttl.as_millis().max(1) as u64;
        let got: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(got.is_some())
    }

    /// Connects now and sends PING (used by `menwei check` and at start).
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

/// Values seen before (replay protection: request nonces, token ids). In process memory
/// (bounded, entries expire) or, when given a Redis store, in Redis (`SET NX EX`) so that a value
/// used on one replica is refused on every other.
pub struct Seen {
    memory: moka::sync::Cache<String, ()>,
    prefix: &'static str,
}

impl Seen {
    /// `prefix` separates uses in Redis (`menwei:nonce:`); `ttl` bounds memory entries and
    /// should be at least the window in which a value could be replayed.
    pub fn new(prefix: &'static str, ttl: Duration, capacity: u64) -> Self {
        Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            prefix,
        }
    }

    /// Records `value`; `Ok(false)` when it was seen before (within `ttl`).
    pub async fn first_use(
        &self,
        value: &str,
        ttl: Duration,
        redis: Option<&RedisStore>,
    ) -> Result<bool, StoreError> {
        match redis {
            None => Ok(self
                .memory
                .entry(value.to_string())
                .or_insert(())
                .is_fresh()),
            Some(r) => r.set_once(format!("{}{value}", self.prefix), ttl).await,
        }
    }
}
