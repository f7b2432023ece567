//! One Redis connection that remakes itself when it is lost, with backoff, and says so in the logs and the
//! metrics. Every Redis user of the origin goes through one: the store's request and bulk connections, each
//! ingest worker, the gateway.
//!
//! Not redis-rs's `ConnectionManager`. It does recover from a restart, but
//! - it notices a lost connection only when a call fails on it, so the first call after a restart fails
//!   even when Redis is already back, and an idle connection stays dead until it is used;
//! - it backs off only within one reconnection (`number_of_retries` attempts); once those failed, each call
//!   fails with their error and starts another reconnection in the background, so during an outage it
//!   reconnects at the rate of the calls, and the first call after Redis is back fails as well;
//! - a command that times out never makes it reconnect, nor does `READONLY` (a primary demoted by a
//!   failover), so a connection to a host that vanished, or to the old primary, is kept;
//! - it tells nobody: there is no hook to log or count a loss or a recovery.
//!
//! Here a supervisor task owns the reconnecting, so its backoff does not depend on how many calls there are:
//! - **Connecting**: the first attempt (at start, or right after a loss) is under way; calls wait for it,
//!   within their own deadline.
//! - **Up**: calls use the connection. A call that fails in a way that means the connection is gone
//!   ([`Link::is_loss`]) reports it ([`Link::check`]), which turns the link to Connecting for everyone at
//!   once. While idle, the supervisor pings the connection, so a restart is noticed without traffic.
//! - **Down**: an attempt failed; calls fail at once (a 503, not a wait), and the supervisor tries again
//!   after a delay growing from [`MIN_BACKOFF`] to [`MAX_BACKOFF`], with jitter, so that many processes do
//!   not reconnect in step. A connection lost soon after it was made does not reset the delay: a server
//!   that accepts and then drops connections is not hammered.
//!
//! TCP keepalive and `TCP_USER_TIMEOUT` are set on every connection, so a connection to a host that
//! disappeared without closing it (a failover to another machine) fails within seconds, as a connection
//! error, instead of after the kernel's retransmission limit (about fifteen minutes on Linux).
//!
//! Metrics, by `role` (`requests`, `bulk`, `ingest`, `gateway`): `popup_redis_connected` (connections up),
//! `popup_redis_reconnects_total` (connections remade after a loss), `popup_redis_connect_failures_total`
//! (failed attempts). Logs never carry the Redis URL, which may hold a password.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{IntoConnectionInfo, RedisError, RedisResult};
use tokio::sync::watch;

use super::StoreUnavailable;

/// The first delay after a failed attempt.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest delay between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connection lost sooner than this after it was made counts as one more failed attempt.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Failed attempts between two warnings while Redis stays unreachable (about a minute at the longest delay).
const WARN_EVERY_ATTEMPTS: u32 = 12;

/// A client for `url` whose connections detect a vanished peer within seconds.
pub fn client(url: &str) -> Result<redis::Client, RedisError> {
    let info = url.into_connection_info()?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let tcp = TcpSettings::default().set_keepalive(keepalive);
    // Unacknowledged writes this old fail the connection: this is what catches a peer that vanished while a
    // command was in flight, which keepalive (for idle connections) does not.
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let tcp = tcp.set_user_timeout(Duration::from_secs(15));
    redis::Client::open(info.set_tcp_settings(tcp))
}

/// How a link connects, and what counts as losing its connection.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// What the connection is for: the `role` label of its metrics and logs.
    pub role: &'static str,
    /// How long one attempt (TCP and the handshake) may take.
    pub connect_timeout: Duration,
    /// Every command on the connection fails after this long; `None` where calls set their own deadlines.
    pub response_timeout: Option<Duration>,
    /// Whether a command that timed out means the connection is gone. Not where a slow Redis is expected to
    /// answer late (the caller gives up, the connection is fine); yes where the timeout is far beyond any
    /// expected answer.
    pub timeout_is_loss: bool,
    /// How often an idle connection is pinged; `None` for one its user calls continuously anyway (ingest,
    /// whose blocking reads would delay a ping).
    pub health_check: Option<Duration>,
}

/// A Redis connection shared by clones, remade by a supervisor task when it is lost.
#[derive(Clone)]
pub struct Link {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    settings: LinkSettings,
    config: redis::AsyncConnectionConfig,
    state: watch::Sender<State>,
    /// Set once the supervisor is spawned, on first use: making a link needs no runtime and no Redis.
    supervisor: OnceLock<()>,
}

#[derive(Clone)]
enum State {
    Connecting,
    /// `generation` tells connections apart, so a failure reported on an old one does not drop a new one.
    Up {
        connection: MultiplexedConnection,
        generation: u64,
    },
    Down,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("settings", &self.shared.settings).finish_non_exhaustive()
    }
}

impl Link {
    pub fn new(client: redis::Client, settings: LinkSettings) -> Link {
        // The gauge moves by increments; they must reach the real recorder, which may not be installed yet.
        crate::telemetry::metrics_handle();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(settings.response_timeout);
        let (state, _) = watch::channel(State::Connecting);
        Link { shared: Arc::new(Shared { client, settings, config, state, supervisor: OnceLock::new() }) }
    }

    pub fn role(&self) -> &'static str {
        self.shared.settings.role
    }

    /// The connection and its generation. Waits, at most `wait`, only while an attempt that follows a loss
    /// (or the start) is under way; fails at once while Redis is known to be unreachable.
    pub async fn get(&self, wait: Duration) -> Result<(MultiplexedConnection, u64), StoreUnavailable> {
        self.start();
        // Without subscribing first: this is every request's path, and nearly always the link is up.
        if let State::Up { connection, generation } = &*self.shared.state.borrow() {
            return Ok((connection.clone(), *generation));
        }
        let mut state = self.shared.state.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match &*state.borrow_and_update() {
                State::Up { connection, generation } => return Ok((connection.clone(), *generation)),
                State::Down => return Err(StoreUnavailable::NotConnected),
                State::Connecting => {}
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StoreUnavailable::NotConnected),
                Err(_) => return Err(StoreUnavailable::Timeout(wait)),
            }
        }
    }

    /// Resolves once the link is up.
    pub async fn wait_up(&self) {
        self.start();
        let mut state = self.shared.state.subscribe();
        let _ = state.wait_for(|state| matches!(state, State::Up { .. })).await;
    }

    /// Whether `error`, from a command on this link's connection, means the connection is gone.
    pub fn is_loss(&self, error: &RedisError) -> bool {
        if error.is_timeout() {
            return self.shared.settings.timeout_is_loss;
        }
        error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
    }

    /// Reports what a command on connection `generation` returned: a failure that means the connection is
    /// gone has it remade.
    pub fn check<T>(&self, generation: u64, result: &RedisResult<T>) {
        if let Err(error) = result {
            if self.is_loss(error) {
                self.lost(generation, error);
            }
        }
    }

    /// Reports replies of a pipeline that keeps going past errors: `READONLY` in any of them means the
    /// server is a replica now (a failover demoted it), and the connection should go to whoever the address
    /// names now.
    pub fn check_replies(&self, generation: u64, replies: &[redis::Value]) {
        let read_only = replies.iter().any(|reply| {
            matches!(reply, redis::Value::ServerError(error)
                if error.kind() == Some(redis::ServerErrorKind::ReadOnly))
        });
        if read_only {
            self.lost(generation, &"the server answered READONLY: it is a replica now");
        }
    }

    /// Marks connection `generation` lost, if it is still the current one.
    pub fn lost(&self, generation: u64, why: &dyn std::fmt::Display) {
        let lost = self.shared.state.send_if_modified(|state| match state {
            State::Up { generation: current, .. } if *current == generation => {
                *state = State::Connecting;
                true
            }
            _ => false,
        });
        if lost {
            metrics::gauge!("popup_redis_connected", "role" => self.role()).decrement(1.0);
            tracing::warn!(role = self.role(), error = %why, "redis connection lost; reconnecting");
        }
    }

    fn start(&self) {
        self.shared.supervisor.get_or_init(|| {
            // At 0 from the first use, so a link that never connects shows as down; one never used (the
            // store's request connection in an ingest-only process) shows nothing rather than an outage.
            metrics::gauge!("popup_redis_connected", "role" => self.role()).increment(0.0);
            tokio::spawn(supervise(Arc::downgrade(&self.shared), self.shared.state.subscribe()));
        });
    }
}

/// Connects, watches the connection, and connects again when it is lost, until every clone of the link is
/// dropped (the sender of `state` goes with them). Holds the link only while it acts, never while it waits.
async fn supervise(shared: Weak<Shared>, mut state: watch::Receiver<State>) {
    // Failed attempts (and quick losses) since the link last had a stable connection: the backoff exponent.
    let mut failures: u32 = 0;
    let mut generation: u64 = 0;
    // When the connection was lost, once there was one: for the "back" log line.
    let mut lost_at: Option<Instant> = None;
    // Attempts since the start or the last loss.
    let mut attempts: u32 = 0;
    loop {
        let Some(link) = upgrade(&shared) else { return };
        let role = link.role();
        attempts += 1;
        let attempt =
            link.shared.client.get_multiplexed_async_connection_with_config(&link.shared.config).await;
        let connection = match attempt {
            Ok(connection) => connection,
            Err(error) => {
                failures += 1;
                metrics::counter!("popup_redis_connect_failures_total", "role" => role).increment(1);
                link.shared.state.send_replace(State::Down);
                drop(link);
                if attempts == 1 {
                    tracing::warn!(role, %error, "cannot connect to redis; retrying with backoff");
                } else if attempts.is_multiple_of(WARN_EVERY_ATTEMPTS) {
                    let down_ms = lost_at.map(|since| since.elapsed().as_millis() as u64);
                    tracing::warn!(role, attempts, down_ms, %error, "redis still unreachable; retrying");
                } else {
                    tracing::debug!(role, attempts, %error, "cannot connect to redis");
                }
                if !pause(&mut state, backoff(failures)).await {
                    return;
                }
                continue;
            }
        };
        generation += 1;
        link.shared.state.send_replace(State::Up { connection: connection.clone(), generation });
        let health_check = link.shared.settings.health_check;
        drop(link);
        metrics::gauge!("popup_redis_connected", "role" => role).increment(1.0);
        match lost_at.take() {
            Some(since) => {
                metrics::counter!("popup_redis_reconnects_total", "role" => role).increment(1);
                let down_ms = since.elapsed().as_millis() as u64;
                tracing::info!(role, attempts, down_ms, "redis connection back");
            }
            None => tracing::info!(role, "connected to redis"),
        }
        attempts = 0;
        let connected_at = Instant::now();
        if !watch_connection(&shared, &mut state, connection, generation, health_check).await {
            return;
        }
        lost_at = Some(Instant::now());
        if connected_at.elapsed() >= STABLE_AFTER {
            // Right away: after a failover the new server is usually ready at once.
            failures = 0;
            continue;
        }
        failures += 1;
        let Some(link) = upgrade(&shared) else { return };
        link.shared.state.send_replace(State::Down);
        drop(link);
        tracing::debug!(role, failures, "redis connection lost soon after it was made; backing off");
        if !pause(&mut state, backoff(failures)).await {
            return;
        }
    }
}

fn upgrade(shared: &Weak<Shared>) -> Option<Link> {
    shared.upgrade().map(|shared| Link { shared })
}

/// Waits until connection `generation` is reported lost (true), pinging it every `health_check` meanwhile,
/// or until the link is dropped (false).
async fn watch_connection(
    shared: &Weak<Shared>,
    state: &mut watch::Receiver<State>,
    mut connection: MultiplexedConnection,
    generation: u64,
    health_check: Option<Duration>,
) -> bool {
    loop {
        let due = async {
            match health_check {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return false;
                }
                let current = matches!(
                    &*state.borrow_and_update(),
                    State::Up { generation: current, .. } if *current == generation
                );
                if !current {
                    return true;
                }
            }
            () = due => {
                let every = health_check.unwrap_or(MAX_BACKOFF);
                let ping = redis::cmd("PING");
                let ping = ping.query_async::<redis::Value>(&mut connection);
                // A ping that only times out says Redis is slow, or the connection carries a long bulk
                // command: neither is a loss. A vanished peer fails the connection through TCP_USER_TIMEOUT.
                if let Ok(Err(error)) = tokio::time::timeout(every, ping).await {
                    let Some(link) = upgrade(shared) else { return false };
                    link.check(generation, &Err::<(), _>(error));
                }
            }
        }
    }
}

/// Sleeps for `delay`; false if the link was dropped meanwhile.
async fn pause(state: &mut watch::Receiver<State>, delay: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return true,
            changed = state.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

/// The delay after `failures` failed attempts in a row (none after zero): doubling from [`MIN_BACKOFF`] up
/// to [`MAX_BACKOFF`], with equal jitter (the messenger's backoff), so that processes which lost Redis
/// together do not all come back in the same millisecond, and none retries sooner than half its step.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    // If the OS has no randomness, the delay degrades to its lower bound.
    let unit = (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64;
    let attempt = i32::try_from(failures).unwrap_or(i32::MAX);
    popup_core::backoff::equal_jitter(attempt, MIN_BACKOFF, MAX_BACKOFF, unit)
}

#[cfg(test)]
mod tests {
    use super::{backoff, MAX_BACKOFF, MIN_BACKOFF};
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_cap_with_jitter() {
        assert_eq!(backoff(0), Duration::ZERO);
        for failures in 1..40 {
            let ceiling = (MIN_BACKOFF * 2u32.pow((failures - 1).min(16))).min(MAX_BACKOFF);
            for _ in 0..50 {
                let delay = backoff(failures);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "{failures}: {delay:?} vs {ceiling:?}");
            }
        }
        // Spread: fifty draws at the cap are not all the same.
        let draws: std::collections::BTreeSet<Duration> = (0..50).map(|_| backoff(30)).collect();
        assert!(draws.len() > 1);
    }
}
