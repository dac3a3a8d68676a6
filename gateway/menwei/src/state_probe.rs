//! Reaching the cluster store named by `[state] redis` (for `menwei check` and at start), with a
//! located diagnostic when it cannot be reached. Passwords in the URL are never printed.

use menwei_policy::Snapshot;
use std::time::Duration;

/// `redis://:secret@host:6379/0` -> `redis://***@host:6379/0`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// `Ok` when there is no `[state]` or Redis answers PING; otherwise the diagnostic text.
pub fn probe(s: &Snapshot) -> Result<(), String> {
    let Some(st) = &s.state else { return Ok(()) };
    let url = redact(&st.redis_url);
    let fail = |why: String| {
        format!(
            "{}: error[MW-POL-016]: cannot reach Redis at {url}: {why}\n  = why: cluster rate limits keep their counters there; until it answers they apply on_store_error\n  = fix: start Redis or correct [state] redis; check with: redis-cli -u '{url}' ping\n",
            st.origin
        )
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    rt.block_on(async {
        let timeout = st.connect_timeout.max(Duration::from_millis(500));
        let sentinel = st
            .sentinel
            .as_ref()
            .map(|(s, m)| (s.as_slice(), m.as_str()));
        let store = menwei_state::RedisStore::open(&st.redis_url, sentinel, timeout, timeout)
            .map_err(fail)?;
        store.probe().await.map_err(|e| fail(e.0))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("redis://:s3cret@10.0.0.5:6379/0"),
            "redis://***@10.0.0.5:6379/0"
        );
        assert_eq!(
            super::redact("redis://10.0.0.5:6379"),
            "redis://10.0.0.5:6379"
        );
    }
}
