//! Carries the core's command plans to Redis over multiplexed connections, with a deadline: a slow or
//! unreachable Redis becomes [`StoreUnavailable`] within the configured timeout, never a hung request.
//! The connections remake themselves after Redis restarts or fails over ([`link`]).

pub mod link;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use popup_core::breaker::{Admission, Breaker, BreakerSettings, BreakerState};
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
    /// Refused without asking Redis: it failed repeatedly and the breaker is open.
    #[error("redis failed repeatedly; retrying in {0:?}")]
    CircuitOpen(Duration),
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
    /// Guards the requests' connection only: bulk work waits and retries by itself.
    breaker: Arc<Mutex<Breaker>>,
    /// The breaker's clock.
    started: Instant,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Does not connect: the origin starts, and answers 503 on the popup API, while Redis is down.
    pub fn new(
        url: &str,
        timeout: Duration,
        breaker: BreakerSettings,
    ) -> Result<RedisStore, redis::RedisError> {
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
            breaker: Arc::new(Mutex::new(Breaker::new(breaker))),
            started: Instant::now(),
        })
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `call` on `link`, through the breaker when it is the requests' link: refused at once while the
    /// breaker is open, and its outcome reported. A poisoned lock (a panic while holding it) lets requests
    /// through: the breaker only ever saves time.
    async fn guarded<T>(
        &self,
        link: &Link,
        call: impl Future<Output = Result<T, StoreUnavailable>>,
    ) -> Result<T, StoreUnavailable> {
        if !std::ptr::eq(link, &self.requests) {
            return call.await;
        }
        let admission =
            self.breaker.lock().map_or(Admission::Allowed, |mut breaker| breaker.admit(self.now_ms()));
        if let Admission::Refused { retry_after_ms } = admission {
            metrics::counter!("popup_redis_breaker_refused_total").increment(1);
            return Err(StoreUnavailable::CircuitOpen(Duration::from_millis(retry_after_ms.max(0) as u64)));
        }
        let result = call.await;
        let changed =
            self.breaker.lock().ok().and_then(|mut breaker| breaker.record(self.now_ms(), result.is_ok()));
        match changed {
            Some(BreakerState::Open) => {
                metrics::gauge!("popup_redis_breaker_open").set(1.0);
                tracing::warn!("redis failed repeatedly: answering popup and event requests 503 at once until a probe succeeds");
            }
            Some(BreakerState::Closed) => {
                metrics::gauge!("popup_redis_breaker_open").set(0.0);
                tracing::info!("redis answered the probe: the breaker is closed");
            }
            None => {}
        }
        result
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
        let deadline = async {
            tokio::time::timeout(timeout, call).await.map_err(|_| StoreUnavailable::Timeout(timeout))?
        };
        let values = self.guarded(link, deadline).await?;
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
        let deadline = async {
            tokio::time::timeout(timeout, call).await.map_err(|_| StoreUnavailable::Timeout(timeout))?
        };
        self.guarded(link, deadline).await
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
