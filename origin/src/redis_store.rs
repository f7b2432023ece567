//! Carries the core's command plans to Redis over multiplexed connections, with a deadline: a slow or
//! unreachable Redis becomes [`StoreUnavailable`] within the configured timeout, never a hung request.
//! The connections remake themselves after Redis restarts or fails over ([`link`]).

pub mod link;

use std::time::Duration;

use popup_core::store::{Command, Reply};

pub use self::link::{Link, LinkSettings};

#[derive(Debug, thiserror::Error)]
pub enum StoreUnavailable {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis is not connected")]
    NotConnected,
}

/// How often an idle connection of the store is pinged, so that a restart is noticed (and the connection
/// remade) before the next request needs it.
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shortest time one connection attempt is given, whatever the request timeout: attempts run in the
/// background, and one given too little time on a loaded machine would only make the store look down.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RedisStore {
    /// For requests: popup and event pipelines, small and latency-bound (`role="requests"` in the metrics).
    requests: Link,
    /// For bulk work (segment loads, publishing), so requests never queue behind thousands of writes
    /// (`role="bulk"`).
    bulk: Link,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Does not connect: the origin starts, and answers 503 on the popup API, while Redis is down.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, redis::RedisError> {
        let client = link::client(url)?;
        let settings = |role| LinkSettings {
            role,
            connect_timeout: timeout.max(MIN_CONNECT_TIMEOUT),
            // None on the connection itself: it would apply to every call on it, bulk ones included. Each
            // call has its own deadline instead (`tokio::time::timeout` below).
            response_timeout: None,
            timeout_is_loss: false,
            health_check: Some(HEALTH_CHECK_EVERY),
        };
        Ok(RedisStore {
            requests: Link::new(client.clone(), settings("requests")),
            bulk: Link::new(client, settings("bulk")),
            timeout,
        })
    }

    /// The connection for a call with `deadline`: bulk calls (longer deadlines) get their own.
    fn link(&self, deadline: Duration) -> &Link {
        if deadline > self.timeout {
            &self.bulk
        } else {
            &self.requests
        }
    }

    /// Sends `commands` as one pipeline and returns one reply per command. A command that fails in Redis
    /// yields [`Reply::Error`]; only a failure to talk to Redis at all is an error.
    pub async fn run(&self, commands: &[Command]) -> Result<Vec<Reply>, StoreUnavailable> {
        self.run_with_timeout(commands, self.timeout).await
    }

    /// Like [`RedisStore::run`], for bulk work (segment loads, reconcile) that may take longer.
    pub async fn run_with_timeout(
        &self,
        commands: &[Command],
        timeout: Duration,
    ) -> Result<Vec<Reply>, StoreUnavailable> {
        let link = self.link(timeout);
        let mut pipe = redis::pipe();
        // Without this, one failing command fails the whole pipeline and the core never sees which.
        pipe.ignore_errors();
        for command in commands {
            pipe.add_command(to_cmd(command));
        }
        let call = async {
            let (mut connection, generation) = link.get(timeout).await?;
            let result = pipe.query_async::<Vec<redis::Value>>(&mut connection).await;
            link.check(generation, &result);
            if let Ok(values) = &result {
                link.check_replies(generation, values);
            }
            Ok::<_, StoreUnavailable>(result?)
        };
        let values =
            tokio::time::timeout(timeout, call).await.map_err(|_| StoreUnavailable::Timeout(timeout))??;
        Ok(values.into_iter().map(to_reply).collect())
    }

    /// Sends raw commands built by the caller, for bulk loads where building core `Command`s would only add
    /// copies.
    pub async fn run_pipeline(
        &self,
        pipe: &redis::Pipeline,
        timeout: Duration,
    ) -> Result<(), StoreUnavailable> {
        let link = self.link(timeout);
        let call = async {
            let (mut connection, generation) = link.get(timeout).await?;
            let result = pipe.query_async::<()>(&mut connection).await;
            link.check(generation, &result);
            Ok::<_, StoreUnavailable>(result?)
        };
        tokio::time::timeout(timeout, call).await.map_err(|_| StoreUnavailable::Timeout(timeout))?
    }

    pub async fn ping(&self) -> bool {
        let ping = Command(vec!["PING".into()]);
        matches!(self.run(&[ping]).await.as_deref(), Ok([Reply::Bulk(_)]))
    }
}

/// A core command as a redis-rs command.
pub fn to_cmd(command: &Command) -> redis::Cmd {
    let mut cmd = redis::cmd(command.name());
    for arg in command.args().iter().skip(1) {
        cmd.arg(arg);
    }
    cmd
}

/// A redis-rs reply as the core's.
pub fn to_reply(value: redis::Value) -> Reply {
    match value {
        redis::Value::Nil => Reply::Nil,
        redis::Value::Int(n) => Reply::Int(n),
        redis::Value::BulkString(bytes) => Reply::Bulk(bytes),
        redis::Value::SimpleString(text) => Reply::Bulk(text.into_bytes()),
        redis::Value::Okay => Reply::Bulk(b"OK".to_vec()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            Reply::Array(items.into_iter().map(to_reply).collect())
        }
        redis::Value::Map(pairs) => {
            Reply::Array(pairs.into_iter().flat_map(|(k, v)| [to_reply(k), to_reply(v)]).collect())
        }
        redis::Value::ServerError(error) => Reply::Error(error.to_string()),
        other => Reply::Error(format!("unsupported reply {other:?}")),
    }
}
