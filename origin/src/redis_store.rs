//! Carries the core's command plans to Redis over one multiplexed connection, with a deadline: a slow or
//! unreachable Redis becomes [`StoreUnavailable`] within the configured timeout, never a hung request.

use std::time::Duration;

use popup_core::store::{Command, Reply};
use redis::aio::ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum StoreUnavailable {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis is not connected")]
    NotConnected,
}

#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    /// For requests: popup and event pipelines, small and latency-bound.
    requests: Slot,
    /// For bulk work (segment loads, publishing), so requests never queue behind thousands of writes.
    bulk: Slot,
    timeout: Duration,
}

type Slot = std::sync::Arc<tokio::sync::RwLock<Option<ConnectionManager>>>;

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Does not connect: the origin starts, and answers 503 on the popup API, while Redis is down.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RedisStore { client, requests: Default::default(), bulk: Default::default(), timeout })
    }

    /// The connection for a call with `deadline`: bulk calls (longer deadlines) get their own.
    async fn connection(&self, deadline: Duration) -> Result<ConnectionManager, StoreUnavailable> {
        let slot = if deadline > self.timeout { &self.bulk } else { &self.requests };
        if let Some(connection) = slot.read().await.as_ref() {
            return Ok(connection.clone());
        }
        let mut slot = slot.write().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        // No response timeout on the connection itself: it would apply to every call on it, bulk ones
        // included. Each call has its own deadline instead (`tokio::time::timeout` below).
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1);
        let connection =
            tokio::time::timeout(self.timeout, self.client.get_connection_manager_with_config(config))
                .await
                .map_err(|_| StoreUnavailable::Timeout(self.timeout))??;
        *slot = Some(connection.clone());
        Ok(connection)
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
        let mut connection = self.connection(timeout).await?;
        let mut pipe = redis::pipe();
        // Without this, one failing command fails the whole pipeline and the core never sees which.
        pipe.ignore_errors();
        for command in commands {
            pipe.add_command(to_cmd(command));
        }
        let values: Vec<redis::Value> = tokio::time::timeout(timeout, pipe.query_async(&mut connection))
            .await
            .map_err(|_| StoreUnavailable::Timeout(timeout))??;
        Ok(values.into_iter().map(to_reply).collect())
    }

    /// Sends raw commands built by the caller, for bulk loads where building core `Command`s would only add
    /// copies.
    pub async fn run_pipeline(
        &self,
        pipe: &redis::Pipeline,
        timeout: Duration,
    ) -> Result<(), StoreUnavailable> {
        let mut connection = self.connection(timeout).await?;
        tokio::time::timeout(timeout, pipe.query_async::<()>(&mut connection))
            .await
            .map_err(|_| StoreUnavailable::Timeout(timeout))??;
        Ok(())
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

fn to_reply(value: redis::Value) -> Reply {
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
