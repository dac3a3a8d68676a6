//! Temporary bans: an address (`ip:203.0.113.7`) or a user (`user:alice`) refused until a time.
//! Checked first for every request, so the lookup is a lock-free read of an immutable map (bans
//! are few and change rarely; each change swaps a new map). With a Redis store the list is shared:
//! adding or lifting a ban writes the hash `menwei:bans` at once, and every replica re-reads it
//! once a second, so a ban reaches all replicas within about a second.

use arc_swap::{ArcSwap, ArcSwapOption};
use menwei_state::{redis, RedisStore, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HASH: &str = "menwei:bans";
/// Longest ban accepted (a longer one is an access rule, not a ban).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest reason kept.
const MAX_REASON: usize = 200;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Unix milliseconds when it ends.
    pub until_ms: u64,
    pub reason: String,
}

impl Ban {
    /// Whole seconds left (at least 1 while active), for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        self.until_ms.saturating_sub(now_ms()).div_ceil(1000).max(1)
    }

    fn encode(&self) -> String {
        format!("{}|{}", self.until_ms, self.reason)
    }

    fn decode(s: &str) -> Option<Ban> {
        let (until, reason) = s.split_once('|')?;
        Some(Ban {
            until_ms: until.parse().ok()?,
            reason: reason.to_string(),
        })
    }
}

/// The IPv6 network of `len` bits holding `ip`, as `2001:db8:1:2::/64`: the key under which an
/// IPv6 client is counted, detected and banned (one household or subnet holds a whole /64 and
/// can take a new address for every request).
pub fn ipv6_network(ip: std::net::Ipv6Addr, len: u8) -> String {
    let len = len.min(128);
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    format!("{}/{len}", std::net::Ipv6Addr::from(u128::from(ip) & mask))
}

/// Checks a ban key: `ip:<address>`, `ip:<IPv6 network>/<length>` or `user:<id>`; returns it in
/// canonical form (a network's host bits cleared).
pub fn parse_key(key: &str) -> Result<String, String> {
    if let Some(ip) = key.strip_prefix("ip:") {
        if let Some((net, len)) = ip.split_once('/') {
            let addr = net
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("`{ip}`: only IPv6 networks are banned by prefix here"))?;
            let len = len
                .parse::<u8>()
                .ok()
                .filter(|l| (1..=128).contains(l))
                .ok_or_else(|| format!("`{ip}`: the prefix length is 1 to 128"))?;
            return Ok(format!("ip:{}", ipv6_network(addr, len)));
        }
        return ip
            .parse::<IpAddr>()
            .map(|ip| format!("ip:{ip}"))
            .map_err(|_| format!("`{ip}` is not an IP address"));
    }
    if let Some(user) = key.strip_prefix("user:") {
        if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
            return Err("a user id is 1 to 256 printable characters".into());
        }
        return Ok(key.to_string());
    }
    Err("a ban key is `ip:<address>` or `user:<id>`".into())
}

/// The ban list of a process.
pub struct BanList {
    current: ArcSwap<HashMap<String, Ban>>,
    /// Serialises writers (add, lift, sync); readers never wait.
    write: Mutex<()>,
    redis: ArcSwapOption<RedisStore>,
}

impl Default for BanList {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            redis: ArcSwapOption::empty(),
        }
    }
}

impl BanList {
    /// Shares the list through this Redis (or stops sharing with `None`).
    pub fn set_redis(&self, redis: Option<Arc<RedisStore>>) {
        self.redis.store(redis);
    }

    pub fn shared(&self) -> bool {
        self.redis.load().is_some()
    }

    /// No ban at all: the common case, one atomic load.
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// The active ban of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Ban> {
        let map = self.current.load();
        map.get(key).filter(|b| b.until_ms > now_ms()).cloned()
    }

    /// Active bans.
    pub fn list(&self) -> Vec<(String, Ban)> {
        let now = now_ms();
        let mut v: Vec<_> = self
            .current
            .load()
            .iter()
            .filter(|(_, b)| b.until_ms > now)
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<String, Ban>)) {
        let _one = self.write.lock();
        let now = now_ms();
        let mut next: HashMap<String, Ban> = (**self.current.load()).clone();
        next.retain(|_, b| b.until_ms > now);
        f(&mut next);
        self.current.store(Arc::new(next));
    }

    /// Bans `key` (canonical, see [`parse_key`]) for `ttl`. Applied here at once; the error
    /// means it could not be shared (this replica still enforces it).
    pub async fn add(&self, key: &str, ttl: Duration, reason: &str) -> Result<Ban, StoreError> {
        let ban = Ban {
            until_ms: now_ms() + ttl.min(MAX_TTL).as_millis() as u64,
            reason: reason.chars().take(MAX_REASON).collect(),
        };
        self.update(|m| {
            m.insert(key.to_string(), ban.clone());
        });
        if let Some(r) = self.redis.load_full() {
            let (k, v) = (key.to_string(), ban.encode());
            r.run(|mut c| async move {
                redis::cmd("HSET")
                    .arg(HASH)
                    .arg(k)
                    .arg(v)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        }
        Ok(ban)
    }

    /// Lifts a ban everywhere.
    pub async fn lift(&self, key: &str) -> Result<bool, StoreError> {
        let mut had = false;
        self.update(|m| had = m.remove(key).is_some());
        if let Some(r) = self.redis.load_full() {
            let k = key.to_string();
            let n: i64 = r
                .run(|mut c| async move {
                    redis::cmd("HDEL")
                        .arg(HASH)
                        .arg(k)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            had |= n > 0;
        }
        Ok(had)
    }

    /// Re-reads the shared list (bans added or lifted on other replicas) and drops expired
    /// entries from it. Returns the number of active bans.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let Some(r) = self.redis.load_full() else {
            self.update(|_| {});
            return Ok(self.current.load().len());
        };
        let all: HashMap<String, String> = r
            .run(|mut c| async move { redis::cmd("HGETALL").arg(HASH).query_async(&mut c).await })
            .await?;
        let now = now_ms();
        let mut expired = Vec::new();
        let mut fresh = HashMap::new();
        for (k, v) in all {
            match Ban::decode(&v) {
                Some(b) if b.until_ms > now => {
                    fresh.insert(k, b);
                }
                _ => expired.push(k),
            }
        }
        let n = fresh.len();
        self.update(|m| *m = fresh);
        if !expired.is_empty() {
            let _ = r
                .run(|mut c| async move {
                    redis::cmd("HDEL")
                        .arg(HASH)
                        .arg(expired)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(parse_key("ip:203.0.113.7").unwrap(), "ip:203.0.113.7");
        assert_eq!(parse_key("ip:::ffff:1.2.3.4").unwrap(), "ip:::ffff:1.2.3.4");
        assert_eq!(parse_key("ip:2001:db8::0001").unwrap(), "ip:2001:db8::1");
        assert!(parse_key("ip:1.2.3").is_err());
        assert!(parse_key("user:").is_err());
        assert!(parse_key("user:a\nb").is_err());
        assert!(parse_key("host:x").is_err());
        assert_eq!(parse_key("user:alice").unwrap(), "user:alice");
        // IPv6 networks, host bits cleared; no IPv4 networks, no bad lengths.
        assert_eq!(
            parse_key("ip:2001:db8:1:2:aaaa::1/64").unwrap(),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            parse_key("ip:2001:db8::1/128").unwrap(),
            "ip:2001:db8::1/128"
        );
        assert!(parse_key("ip:10.0.0.0/8").is_err());
        assert!(parse_key("ip:2001:db8::/0").is_err());
        assert!(parse_key("ip:2001:db8::/129").is_err());
        assert!(parse_key("ip:2001:db8::/x").is_err());
    }

    #[test]
    fn ipv6_networks() {
        let a: std::net::Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(ipv6_network(a, 64), "2001:db8:1:2::/64");
        assert_eq!(ipv6_network(a, 48), "2001:db8:1::/48");
        assert_eq!(ipv6_network(a, 56), "2001:db8:1::/56");
        assert_eq!(ipv6_network(a, 60), "2001:db8:1::/60");
        assert_eq!(ipv6_network(a, 128), "2001:db8:1:2:3:4:5:6/128");
        assert_eq!(ipv6_network(a, 1), "::/1");
        assert_eq!(ipv6_network(a, 0), "::/0");
        // The same text as ipnet's, which the policy's networks use.
        let b: std::net::Ipv6Addr = "2408:8207:1:ff00::9".parse().unwrap();
        assert_eq!(ipv6_network(b, 56), "2408:8207:1:ff00::/56");
    }

    #[tokio::test]
    async fn add_get_lift_expire() {
        let b = BanList::default();
        assert!(b.is_empty());
        b.add("ip:1.2.3.4", Duration::from_secs(60), "brute force")
            .await
            .unwrap();
        let ban = b.get("ip:1.2.3.4").unwrap();
        assert_eq!(ban.reason, "brute force");
        assert!((59..=60).contains(&ban.retry_after_secs()));
        assert!(b.get("ip:1.2.3.5").is_none());
        assert!(b.lift("ip:1.2.3.4").await.unwrap());
        assert!(b.get("ip:1.2.3.4").is_none());
        b.add("user:x", Duration::from_millis(1), "").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(b.get("user:x").is_none(), "expired");
        b.sync().await.unwrap();
        assert!(b.is_empty(), "expired entries are dropped");
        let long = b
            .add("user:y", Duration::from_secs(u64::MAX / 4), "")
            .await
            .unwrap();
        assert!(long.until_ms <= now_ms() + MAX_TTL.as_millis() as u64);
    }
}
