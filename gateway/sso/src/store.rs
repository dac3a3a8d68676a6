//! Server-side session state: sessions, logins in progress, refresh locks and seen logout-token
//! ids. In process memory (moka, bounded, idle entries expire) by default; in Redis when
//! `[sso] store = "redis"`, so every replica sees the same sessions and one refresh at a time
//! holds across replicas. Cookies only ever carry a sealed session id.

use menwei_state::{redis, RedisStore, StoreError};
use moka::sync::Cache;
use moka::Expiry;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub provider: String,
    pub sub: String,
    /// The provider's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// Claims of the ID token (verified at login).
    pub claims: Map<String, Value>,
    pub id_token: String,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// Unix seconds; 0 when the provider did not say.
    pub access_expires: u64,
    pub created: u64,
    /// Unix seconds after which the session ends however busy it is.
    pub absolute_expiry: u64,
    /// Seconds of inactivity that end it.
    pub idle_secs: u64,
}

/// A login sent to the provider and not yet come back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Same-origin path to return to.
    pub return_to: String,
    pub redirect_uri: String,
    pub created: u64,
}

struct IdleExpiry;

impl Expiry<String, Arc<Session>> for IdleExpiry {
    fn expire_after_create(&self, _: &String, v: &Arc<Session>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(v.idle_secs))
    }
    fn expire_after_read(
        &self,
        _: &String,
        v: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(v.idle_secs))
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(v.idle_secs))
    }
}

/// The in-process store; one per gateway process, kept across policy reloads.
pub struct MemoryStore {
    sessions: Cache<String, Arc<Session>>,
    logins: Cache<String, Arc<PendingLogin>>,
    locks: Cache<String, ()>,
    seen: menwei_state::Seen,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            sessions: Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(IdleExpiry)
                .build(),
            logins: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            locks: Cache::builder()
                .time_to_live(Duration::from_secs(15))
                .build(),
            seen: menwei_state::Seen::new("menwei:sso:j:", Duration::from_secs(3600), 1_000_000),
        }
    }
}

/// Where sessions live for the served policy. Records in Redis are sealed (AES-256-GCM or
/// SM4-GCM, bound to their key): tokens are never stored in the clear outside the process.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>, Arc<crate::seal::Sealer>),
}

const P: &str = "menwei:sso:";

fn to_json<T: Serialize>(
    v: &T,
    sealer: &crate::seal::Sealer,
    key: &str,
) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(v).map_err(|e| StoreError(format!("encode: {e}")))?;
    sealer
        .seal_bytes(key.as_bytes(), &json)
        .ok_or_else(|| StoreError("cannot seal record".into()))
}

fn from_json<T: for<'de> Deserialize<'de>>(
    s: Option<Vec<u8>>,
    sealer: &crate::seal::Sealer,
    key: &str,
) -> Option<T> {
    // A record that does not open or decode (other key, older format, tampering) is absent.
    let plain = sealer.open_bytes(key.as_bytes(), &s?)?;
    serde_json::from_slice(&plain).ok()
}

impl Store {
    /// The session, its idle timer restarted (`idle`: the served policy's idle timeout).
    pub async fn get_session(
        &self,
        id: &str,
        idle: Duration,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let now = crate::now_secs();
        let s = match self {
            Store::Memory(m) => m.sessions.get(id),
            Store::Redis(r, sealer) => {
                let key = format!("{P}s:{id}");
                let secs = idle.as_secs().max(1);
                // GETEX reads and restarts the idle timer in one round trip.
                let k2 = key.clone();
                let got: Option<Vec<u8>> = r
                    .run(|mut c| async move {
                        redis::cmd("GETEX")
                            .arg(&k2)
                            .arg("EX")
                            .arg(secs)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                from_json::<Session>(got, sealer, &key).map(Arc::new)
            }
        };
        Ok(s.filter(|s| s.absolute_expiry > now))
    }

    pub async fn put_session(&self, id: &str, s: &Session) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.sessions.insert(id.to_string(), Arc::new(s.clone()));
                Ok(())
            }
            Store::Redis(r, sealer) => {
                let key = format!("{P}s:{id}");
                let body = to_json(s, sealer, &key)?;
                let idle = s.idle_secs.max(1);
                let ttl = s.absolute_expiry.saturating_sub(crate::now_secs()).max(1);
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(body)
                    .arg("EX")
                    .arg(idle)
                    .ignore();
                for idx in index_keys(&s.provider, &s.sub, s.sid.as_deref()) {
                    pipe.cmd("SADD").arg(&idx).arg(id).ignore();
                    pipe.cmd("EXPIRE").arg(&idx).arg(ttl).ignore();
                }
                r.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                    .await
            }
        }
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.sessions.invalidate(id);
                Ok(())
            }
            Store::Redis(r, _) => {
                let key = format!("{P}s:{id}");
                r.run(|mut c| async move {
                    redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await
                })
                .await
                .map(|_| ())
            }
        }
    }

    /// Ends every session of a provider's `sid` or, without a `sid`, of a `sub`. Returns how many.
    pub async fn kill(
        &self,
        provider: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        match self {
            Store::Memory(m) => {
                let doomed: Vec<Arc<String>> = m
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.provider == provider
                            && match sid {
                                Some(sid) => s.sid.as_deref() == Some(sid),
                                None => sub.is_some_and(|u| s.sub == u),
                            }
                    })
                    .map(|(k, _)| k)
                    .collect();
                for k in &doomed {
                    m.sessions.invalidate(k.as_str());
                }
                Ok(doomed.len())
            }
            Store::Redis(r, _) => {
                let idx = match (sid, sub) {
                    (Some(sid), _) => format!("{P}i:{provider}:sid:{sid}"),
                    (None, Some(sub)) => format!("{P}i:{provider}:sub:{sub}"),
                    (None, None) => return Ok(0),
                };
                let idx2 = idx.clone();
                let ids: Vec<String> = r
                    .run(|mut c| async move {
                        redis::cmd("SMEMBERS").arg(&idx2).query_async(&mut c).await
                    })
                    .await?;
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("DEL").arg(format!("{P}s:{id}")).ignore();
                }
                pipe.cmd("DEL").arg(&idx).ignore();
                r.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                    .await?;
                Ok(ids.len())
            }
        }
    }

    pub async fn put_login(
        &self,
        state: &str,
        l: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.logins.insert(state.to_string(), Arc::new(l.clone()));
                Ok(())
            }
            Store::Redis(r, sealer) => {
                let key = format!("{P}l:{state}");
                let body = to_json(l, sealer, &key)?;
                let secs = ttl.as_secs().max(1);
                r.run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(body)
                        .arg("EX")
                        .arg(secs)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
        }
    }

    /// Takes a pending login once: a replayed `state` finds nothing.
    pub async fn take_login(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.logins.remove(state).map(|l| (*l).clone())),
            Store::Redis(r, sealer) => {
                let key = format!("{P}l:{state}");
                let k2 = key.clone();
                let got: Option<Vec<u8>> =
                    r.run(|mut c| async move {
                        redis::cmd("GETDEL").arg(&k2).query_async(&mut c).await
                    })
                    .await?;
                Ok(from_json(got, sealer, &key))
            }
        }
    }

    /// Takes the refresh lock of a session; false when another request (on any replica) holds it.
    pub async fn lock_refresh(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.locks.entry(id.to_string()).or_insert(()).is_fresh()),
            Store::Redis(r, _) => {
                r.set_once(format!("{P}r:{id}"), Duration::from_secs(15))
                    .await
            }
        }
    }

    pub async fn unlock_refresh(&self, id: &str) {
        match self {
            Store::Memory(m) => m.locks.invalidate(id),
            Store::Redis(r, _) => {
                let key = format!("{P}r:{id}");
                let _ = r
                    .run(|mut c| async move {
                        redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await
                    })
                    .await;
            }
        }
    }

    /// Records a token id; false when it was seen before (a replay).
    pub async fn first_use(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => m.seen.first_use(id, ttl, None).await,
            Store::Redis(r, _) => r.set_once(format!("{P}j:{id}"), ttl).await,
        }
    }
}

fn index_keys(provider: &str, sub: &str, sid: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("{P}i:{provider}:sub:{sub}")];
    if let Some(sid) = sid {
        v.push(format!("{P}i:{provider}:sid:{sid}"));
    }
    v
}
