//! Redis restarts, each test against a redis-server of its own (the machine's Redis is never restarted):
//! the store's connections and `popup-origin gateway` come back by themselves, without a new store or
//! process.
//!
//! The Redis runs with `appendonly yes` and `appendfsync always`, as a production Redis with persistence
//! would, so a restart keeps its data; it has a password, so the tests can check that no log line carries
//! it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use popup_core::store::{Command, Reply};
use popup_origin::redis_store::RedisStore;
use serde_json::{json, Value};

const PASSWORD: &str = "restart-test-password-7f3a";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    fn new() -> Scratch {
        let name = format!("popup-restart-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last lines of a log, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn signal(child: &Child, name: &str) {
    let status = Process::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name}");
}

/// A redis-server of the test's own, on a free port, persisting to a directory that outlives restarts.
struct OwnRedis {
    port: u16,
    scratch: Scratch,
    server: Option<Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let mut redis = OwnRedis { port: free_port(), scratch: Scratch::new(), server: None };
        redis.start_again().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Starts the server (again: same port, same directory) and waits until it answers.
    async fn start_again(&mut self) {
        assert!(self.server.is_none(), "already running");
        let dir = self.scratch.0.to_str().unwrap();
        let server = Process::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir])
            .args(["--requirepass", PASSWORD, "--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(server);
        let client = redis::Client::open(self.url()).unwrap();
        let started = Instant::now();
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok() {
                    return;
                }
            }
            let log = self.scratch.0.join("redis.log");
            assert!(started.elapsed() < Duration::from_secs(20), "redis did not start:\n{}", tail(&log));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server with `signal_name` (`TERM`, or `KILL` for a crash) and waits until it is gone.
    fn stop(&mut self, signal_name: &str) {
        let mut server = self.server.take().expect("running");
        signal(&server, signal_name);
        server.wait().unwrap();
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// A `popup-origin` process, killed when dropped, logging to a file.
struct Origin {
    child: Child,
    log: PathBuf,
    base: String,
    _scratch: Scratch,
}

impl Origin {
    fn spawn(role: &str, env: &[(&str, String)], port: u16) -> Origin {
        let scratch = Scratch::new();
        let log = scratch.0.join("origin.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Process::new(env!("CARGO_BIN_EXE_popup-origin"));
        command.arg(role).env("RUST_LOG", "info").env("NO_COLOR", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
        Origin { child, log, base: format!("http://127.0.0.1:{port}"), _scratch: scratch }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits, so its log is complete.
    fn stop(&mut self) {
        signal(&self.child, "TERM");
        self.child.wait().unwrap();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A value of `name{role="<role>"}` in a Prometheus text exposition.
fn metric(text: &str, name: &str, role: &str) -> Option<f64> {
    let prefix = format!("{name}{{role=\"{role}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(&prefix)).map(|value| value.trim().parse().unwrap())
}

/// Log lines saying `message` for `role`.
fn log_lines<'a>(log: &'a str, message: &str, role: &str) -> Vec<&'a str> {
    let role = format!("role=\"{role}\"");
    log.lines().filter(|line| line.contains(message) && line.contains(&role)).collect()
}

fn command(parts: &[&str]) -> Command {
    Command(parts.iter().map(|part| part.to_string()).collect())
}

/// Retries `store.run(commands)` until it answers `expected`, within `limit`.
async fn run_until(store: &RedisStore, commands: &[Command], expected: &[Reply], limit: Duration) {
    let started = Instant::now();
    loop {
        let replies = store.run(commands).await;
        if replies.as_deref().is_ok_and(|replies| replies == expected) {
            return;
        }
        assert!(started.elapsed() < limit, "the store did not answer {expected:?} again: {replies:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_store_reconnects_after_a_restart_and_leaves_a_demoted_primary() {
    let metrics = popup_origin::ops::metrics_handle().unwrap();
    let mut redis = OwnRedis::start().await;
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let bulk = Duration::from_secs(30);
    let set = command(&["SET", "restart:key", "kept"]);
    let get = command(&["GET", "restart:key"]);
    let ok = [Reply::Bulk(b"OK".to_vec())];
    let kept = [Reply::Bulk(b"kept".to_vec())];
    assert_eq!(store.run(std::slice::from_ref(&set)).await.unwrap(), ok);
    // Both connections in use before the restart, so both have one to lose.
    assert_eq!(store.run_with_timeout(std::slice::from_ref(&get), bulk).await.unwrap(), kept);
    let rendered = metrics.render();
    assert_eq!(metric(&rendered, "popup_redis_connected", "requests"), Some(1.0), "{rendered}");
    assert_eq!(metric(&rendered, "popup_redis_connected", "bulk"), Some(1.0), "{rendered}");
    let reconnects = |role| metric(&metrics.render(), "popup_redis_reconnects_total", role).unwrap_or(0.0);
    assert_eq!((reconnects("requests"), reconnects("bulk")), (0.0, 0.0));

    redis.stop("TERM");
    assert!(store.run(std::slice::from_ref(&get)).await.is_err(), "answered with Redis down");
    // Noticed by that call, or by the health check of the idle bulk connection.
    wait_until("the connections were not reported lost", Duration::from_secs(10), || {
        let rendered = metrics.render();
        metric(&rendered, "popup_redis_connected", "requests") == Some(0.0)
            && metric(&rendered, "popup_redis_connected", "bulk") == Some(0.0)
    })
    .await;
    assert!(!store.ping().await);

    redis.start_again().await;
    // The same store, no new one: the connections come back by themselves.
    run_until(&store, std::slice::from_ref(&get), &kept, Duration::from_secs(20)).await;
    let started = Instant::now();
    loop {
        let replies = store.run_with_timeout(std::slice::from_ref(&get), bulk).await;
        if replies.as_deref().is_ok_and(|replies| replies == kept) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the bulk connection did not recover: {replies:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.ping().await);
    let rendered = metrics.render();
    assert_eq!(metric(&rendered, "popup_redis_connected", "requests"), Some(1.0), "{rendered}");
    assert_eq!(metric(&rendered, "popup_redis_connected", "bulk"), Some(1.0), "{rendered}");
    assert_eq!((reconnects("requests"), reconnects("bulk")), (1.0, 1.0), "{rendered}");

    // A failover demotes the primary: it stays up, refusing writes. The store drops the connection, so
    // that the next one goes to whichever server the address names now (here, the same one promoted back).
    let mut admin = redis.connection().await;
    let nowhere = free_port().to_string();
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&nowhere).query_async(&mut admin).await.unwrap();
    let replies = store.run(std::slice::from_ref(&set)).await.unwrap();
    assert!(matches!(&replies[..], [Reply::Error(e)] if e.contains("read only replica")), "{replies:?}");
    wait_until("READONLY did not remake the connection", Duration::from_secs(20), || {
        reconnects("requests") == 2.0
    })
    .await;
    let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query_async(&mut admin).await.unwrap();
    run_until(&store, std::slice::from_ref(&set), &ok, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn the_gateway_answers_503_while_redis_is_down_and_200_once_it_is_back() {
    const TOKEN: &str = "restart-gateway-token-0123456789";
    let mut redis = OwnRedis::start().await;
    let port = free_port();
    let env = [
        ("REDIS_URL", redis.url()),
        ("POPUP_GATEWAY_TOKEN", TOKEN.to_string()),
        ("POPUP_GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        ("POPUP_KEY_PREFIX", "restart".to_string()),
    ];
    let mut gateway = Origin::spawn("gateway", &env, port);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let ping = || async {
        let response = http
            .post(format!("{}/", gateway.base))
            .bearer_auth(TOKEN)
            .json(&json!(["PING"]))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json::<Value>().await.unwrap_or_default()))
    };
    let until = |want: u16, what: &'static str| async move {
        let started = Instant::now();
        loop {
            let answer = ping().await;
            if answer.as_ref().is_some_and(|(status, _)| *status == want) {
                return answer.unwrap().1;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{what}: {answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(until(200, "the gateway did not start").await, json!({"result": "PONG"}));
    redis.stop("TERM");
    let down = until(503, "no 503 while redis was down").await;
    assert!(down["error"].is_string(), "{down}");
    redis.start_again().await;
    assert_eq!(until(200, "the gateway did not recover").await, json!({"result": "PONG"}));
    assert!(gateway.running(), "the gateway exited:\n{}", tail(&gateway.log));

    let metrics = http
        .get(format!("{}/metrics", gateway.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "popup_redis_reconnects_total", "gateway"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "popup_redis_connected", "gateway"), Some(1.0), "{metrics}");
    gateway.stop();
    let log = gateway.log();
    assert_eq!(log_lines(&log, "redis connection lost", "gateway").len(), 1, "{log}");
    assert_eq!(log_lines(&log, "redis connection back", "gateway").len(), 1, "{log}");
    assert!(!log.contains(PASSWORD), "a log line carries the Redis password");
}
