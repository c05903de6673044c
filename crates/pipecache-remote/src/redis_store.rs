use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::{RemoteError, Result, TransferStats};

/// A Redis server holding small whole values with per-value expiry.
///
/// Connects on first use (so a store opens while Redis is down) and reconnects by itself
/// afterwards; every call is bounded by the deadline.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: Arc<OnceCell<ConnectionManager>>,
    target: Arc<str>,
    prefix: Arc<str>,
    deadline: Duration,
    stats: Arc<TransferStats>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `redis://user:secret@host` printed as `redis://user:***@host` (any scheme); a URL without
/// credentials comes back unchanged.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisStore {
    /// A Redis store at `url` (`redis://host:port/db`); every key gets `prefix` in front.
    pub fn new(url: &str, prefix: &str, deadline: Duration) -> Result<Self> {
        let target: Arc<str> = mask_url(url).into();
        let client = redis::Client::open(url).map_err(|e| RemoteError::Config {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            conn: Arc::default(),
            target,
            prefix: prefix.into(),
            deadline,
            stats: Arc::default(),
        })
    }

    /// Printable name (password masked).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Requests and bytes so far.
    pub fn stats(&self) -> &TransferStats {
        &self.stats
    }

    fn timeout(&self, op: &str) -> RemoteError {
        RemoteError::Timeout {
            target: self.target.to_string(),
            op: op.into(),
            after: self.deadline,
        }
    }

    fn classify(&self, op: &str, e: &redis::RedisError) -> RemoteError {
        let target = self.target.to_string();
        if e.is_timeout() {
            return self.timeout(op);
        }
        // A refused password is the configuration's fault: waiting will not fix it.
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        {
            return RemoteError::Config {
                target,
                reason: format!("{op}: {e}"),
            };
        }
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            return RemoteError::Unavailable {
                target,
                op: op.into(),
                detail: e.to_string(),
            };
        }
        RemoteError::Backend {
            target,
            op: op.into(),
            detail: e.to_string(),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.deadline)
            .set_response_timeout(self.deadline)
            // No retry inside the client: its backoff (backon's, 1 s minimum plus jitter)
            // made every read of a Redis that is down cost ~1.3 s, where a refused
            // connection is known at once. A dropped connection is still replaced by the
            // next call; retries and backoff are the manager's.
            .set_number_of_retries(0);
        let fut = self.conn.get_or_try_init(|| {
            self.client
                .get_connection_manager_with_config(config.clone())
        });
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(Ok(c)) => Ok(c.clone()),
            Ok(Err(e)) => Err(self.classify("connect", &e)),
            Err(_) => Err(self.timeout("connect")),
        }
    }

    async fn run<T>(
        &self,
        op: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(op, &e)),
            Err(_) => Err(self.timeout(op)),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Checks that the server answers.
    pub async fn check(&self) -> Result<()> {
        let mut c = self.conn().await?;
        let pong: String = self
            .run("ping", redis::cmd("PING").query_async(&mut c))
            .await?;
        if pong != "PONG" {
            return Err(RemoteError::Backend {
                target: self.target.to_string(),
                op: "ping".into(),
                detail: format!("unexpected reply {pong:?}"),
            });
        }
        Ok(())
    }

    /// Sets `name` to `value`, expiring after `ttl` (`None`: never).
    pub async fn set(&self, name: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        self.set_cmd(name, value, ttl, false).await.map(drop)
    }

    /// [`RedisStore::set`] only when `name` does not exist (`SET NX`, decided by Redis
    /// atomically); returns whether it was written.
    pub async fn set_if_absent(
        &self,
        name: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.set_cmd(name, value, ttl, true).await
    }

    async fn set_cmd(
        &self,
        name: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool> {
        let mut c = self.conn().await?;
        let len = value.len() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(name)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        if only_if_absent {
            cmd.arg("NX");
        }
        TransferStats::add(&self.stats.puts, 1);
        // "OK" when written, nil when NX found the key.
        let reply: Option<String> = self.run("set", cmd.query_async(&mut c)).await?;
        let written = reply.is_some();
        if written {
            TransferStats::add(&self.stats.bytes_up, len);
        }
        Ok(written)
    }

    /// The value of `name`, `None` when absent (or expired).
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.conn().await?;
        TransferStats::add(&self.stats.gets, 1);
        let v: Option<Vec<u8>> = self
            .run(
                "get",
                redis::cmd("GET").arg(self.key(name)).query_async(&mut c),
            )
            .await?;
        if let Some(v) = &v {
            TransferStats::add(&self.stats.bytes_down, v.len() as u64);
        }
        Ok(v)
    }

    /// Milliseconds until `name` expires: `None` when absent, `Some(None)` when it never does.
    pub async fn ttl(&self, name: &str) -> Result<Option<Option<Duration>>> {
        let mut c = self.conn().await?;
        let ms: i64 = self
            .run(
                "pttl",
                redis::cmd("PTTL").arg(self.key(name)).query_async(&mut c),
            )
            .await?;
        Ok(match ms {
            -2 => None,
            -1 => Some(None),
            ms => Some(Some(Duration::from_millis(ms.max(0) as u64))),
        })
    }

    /// True when `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        TransferStats::add(&self.stats.lists, 1);
        let n: i64 = self
            .run(
                "exists",
                redis::cmd("EXISTS").arg(self.key(name)).query_async(&mut c),
            )
            .await?;
        Ok(n > 0)
    }

    /// Deletes `name`; returns whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        TransferStats::add(&self.stats.deletes, 1);
        let n: i64 = self
            .run(
                "del",
                redis::cmd("DEL").arg(self.key(name)).query_async(&mut c),
            )
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("redis://me:hunter2@host:6379/0"),
            "redis://me:***@host:6379/0"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
