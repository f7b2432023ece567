//! Redis restarts under every role, each test against a redis-server of its own (the machine's Redis is
//! never restarted): the store's connections, the ingest worker of a real `popup-origin serve` under
//! traffic, and `popup-origin gateway` all come back by themselves, without a new store or process.
//!
//! The Redis runs with `appendonly yes` and `appendfsync always`, as a production Redis with persistence
//! would, so a restart keeps the stream and the catalog; it has a password, so the tests can check that no
//! log line carries it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use popup_core::breaker::BreakerSettings;
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::store::{Command, Reply};
use popup_core::token::Secrets;
use popup_origin::redis_store::{RedisStore, StoreUnavailable};
use serde_json::{json, Value};
use sqlx::PgPool;

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

/// No breaker: these tests see every failure for what it is.
fn off() -> BreakerSettings {
    BreakerSettings { failures_to_open: 0, cool_down_ms: 0 }
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
    let metrics = popup_origin::telemetry::metrics_handle().unwrap();
    let mut redis = OwnRedis::start().await;
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2), off()).unwrap();
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

/// What the traffic saw.
#[derive(Default)]
struct Seen {
    /// Popups answered with the budgeted campaign.
    served_budgeted: usize,
    /// Popups in a row answered with anything else (another campaign, or none).
    not_budgeted_in_a_row: usize,
    /// Event ids of the impressions answered 202, and whether Redis had been restarted when they were.
    recorded: BTreeMap<String, bool>,
    unavailable: usize,
}

struct Control {
    stop: AtomicBool,
    restarted: AtomicBool,
    pause_ms: AtomicU64,
}

/// Asks for popups for new customers, and posts the impression of each one served, retrying it until it is
/// answered 202, as the app would, so that every popup served counts.
async fn traffic(base: String, budgeted: i64, control: Arc<Control>, seen: Arc<Mutex<Seen>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let secrets = Secrets::new(common::TOKEN_SECRET, "", 86_400).unwrap();
    for n in 0.. {
        if control.stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(control.pause_ms.load(Ordering::Relaxed))).await;
        let user = format!("cust-{n}");
        let Ok(response) = http.get(format!("{base}/v1/campaigns/popup?user_id={user}")).send().await else {
            seen.lock().unwrap().unavailable += 1;
            continue;
        };
        match response.status().as_u16() {
            200 => {}
            // Nothing to show, as while the projection heals after the restart: neither campaign.
            204 => continue,
            503 => {
                seen.lock().unwrap().unavailable += 1;
                continue;
            }
            other => panic!("popup: {other} {}", response.text().await.unwrap_or_default()),
        }
        let popup: Value = response.json().await.unwrap();
        let campaign = popup["campaign_id"].as_i64().unwrap();
        let token = popup["impression_token"].as_str().unwrap().to_string();
        {
            let mut seen = seen.lock().unwrap();
            if campaign == budgeted {
                seen.served_budgeted += 1;
                seen.not_budgeted_in_a_row = 0;
            } else {
                seen.not_budgeted_in_a_row += 1;
            }
        }
        let (verified, _) = secrets
            .verify_event(
                &token,
                &UserId::parse(&user).unwrap(),
                CampaignId(campaign as u64),
                Timestamp(chrono::Utc::now().timestamp()),
            )
            .unwrap();
        let event_id = format!("{}:impression", verified.id);
        let started = Instant::now();
        loop {
            let posted = http
                .post(format!("{base}/v1/campaigns/{campaign}/impression"))
                .json(&json!({"user_id": user, "impression_token": token}))
                .send()
                .await;
            match posted.as_ref().map(|response| response.status().as_u16()) {
                Ok(202) => {
                    let restarted = control.restarted.load(Ordering::Relaxed);
                    seen.lock().unwrap().recorded.insert(event_id, restarted);
                    break;
                }
                Ok(503) | Err(_) => seen.lock().unwrap().unavailable += 1,
                Ok(other) => panic!("impression: {other}"),
            }
            assert!(started.elapsed() < Duration::from_secs(60), "impression {event_id} never accepted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn stored_event_ids(db: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT event_id, count(*) FROM events GROUP BY event_id")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn ingest_resumes_by_itself_after_redis_restarts_and_budgets_still_hold(db: PgPool) {
    const BUDGET: usize = 120;
    const BATCH: usize = 25;
    let mut redis = OwnRedis::start().await;
    let (port, ops_port) = (free_port(), free_port());
    let env = [
        ("DATABASE_URL", common::database_url(&db)),
        ("REDIS_URL", redis.url()),
        ("POPUP_LISTEN", format!("127.0.0.1:{port}")),
        ("POPUP_OPS_ADDR", format!("127.0.0.1:{ops_port}")),
        ("POPUP_KEY_PREFIX", "restart".to_string()),
        ("POPUP_TOKEN_SECRET", common::TOKEN_SECRET.to_string()),
        ("POPUP_BOOTSTRAP_ADMIN_KEY", common::ADMIN_KEY.to_string()),
        ("POPUP_RECONCILE_SECONDS", "1".to_string()),
        ("POPUP_INGEST_BATCH", BATCH.to_string()),
        ("POPUP_INGEST_CLAIM_IDLE_MS", "500".to_string()),
        // Generous, so that a loaded machine does not turn slow answers into 503s.
        ("POPUP_REDIS_TIMEOUT_MS", "2000".to_string()),
        // All the traffic comes from one address, faster than any one client would send it.
        ("POPUP_RATE_LIMIT_PER_ADDRESS", "0".to_string()),
    ];
    let mut origin = Origin::spawn("serve", &env, port);
    let pid = origin.child.id();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let started = Instant::now();
    while !http.get(format!("{}/healthz", origin.base)).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(origin.running(), "the origin exited:\n{}", tail(&origin.log));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the origin did not start:\n{}",
            tail(&origin.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = |spec: Value| {
        let (http, base) = (http.clone(), origin.base.clone());
        async move {
            let auth = format!("Bearer {}", common::ADMIN_KEY);
            let created: Value = http
                .post(format!("{base}/admin/v1/campaigns"))
                .header("authorization", &auth)
                .json(&spec)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = created["id"].as_i64().unwrap_or_else(|| panic!("{created}"));
            let activated = http
                .post(format!("{base}/admin/v1/campaigns/{id}/activate"))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(activated.status(), 200);
            id
        }
    };
    let mut limited = common::spec("limited");
    limited["budget"] = json!(BUDGET);
    limited["priority"] = json!(10);
    let budgeted = live(limited).await;
    let fallback = live(common::spec("fallback")).await;
    assert_ne!(budgeted, fallback);

    let control =
        Arc::new(Control { stop: false.into(), restarted: false.into(), pause_ms: AtomicU64::new(10) });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let traffic = tokio::spawn(traffic(origin.base.clone(), budgeted, control.clone(), seen.clone()));
    let recorded = |seen: &Mutex<Seen>| seen.lock().unwrap().recorded.len();
    wait_until("no impressions were recorded", Duration::from_secs(60), || recorded(&seen) >= 40).await;

    // A crash, a second down, and the same server back with its data.
    redis.stop("KILL");
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again().await;
    control.restarted.store(true, Ordering::Relaxed);
    // Slow traffic until ingest is back, so that the budget is reached while ingest runs: the bound below is
    // about ingest keeping budgets, not about how long reconnecting takes.
    control.pause_ms.store(100, Ordering::Relaxed);
    let started = Instant::now();
    loop {
        let after: Vec<String> = seen
            .lock()
            .unwrap()
            .recorded
            .iter()
            .filter(|(_, after)| **after)
            .map(|(id, _)| id.clone())
            .collect();
        let stored = stored_event_ids(&db).await;
        if after.iter().any(|id| stored.contains_key(id)) {
            break;
        }
        assert!(origin.running(), "the origin exited:\n{}", tail(&origin.log));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "ingest did not resume: {} recorded after the restart, none stored:\n{}",
            after.len(),
            tail(&origin.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.pause_ms.store(10, Ordering::Relaxed);
    wait_until("the budgeted campaign was still served", Duration::from_secs(120), || {
        seen.lock().unwrap().not_budgeted_in_a_row >= 20
    })
    .await;
    control.stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    let answered: BTreeSet<String> = seen.recorded.keys().cloned().collect();
    let started = Instant::now();
    let stored = loop {
        let stored = stored_event_ids(&db).await;
        if answered.iter().all(|id| stored.contains_key(id)) {
            break stored;
        }
        let missing = answered.iter().filter(|id| !stored.contains_key(*id)).count();
        assert!(started.elapsed() < Duration::from_secs(60), "{missing} recorded events never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(origin.running(), "the origin exited:\n{}", tail(&origin.log));
    assert_eq!(origin.child.id(), pid);
    // Every impression answered 202 is stored exactly once, and nothing else is (every popup's impression
    // was posted until accepted, so there is nothing else to store).
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), answered);
    assert!(stored.values().all(|count| *count == 1), "an event was stored twice");
    assert!(seen.recorded.values().any(|after| *after), "no impression recorded after the restart");
    // The campaign stopped within a batch of its budget: it cannot stop before the budget, since each popup
    // served had its impression recorded, and ingest publishes it as exhausted with the batch that reaches it.
    assert!(
        (BUDGET..=BUDGET + BATCH).contains(&seen.served_budgeted),
        "served {} times with a budget of {BUDGET} and batches of {BATCH}",
        seen.served_budgeted
    );
    let impressions: i64 =
        sqlx::query_scalar("SELECT impressions FROM campaign_totals WHERE campaign_id = $1")
            .bind(budgeted)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(impressions as usize, seen.served_budgeted);

    // Metrics are served on the operations address, not next to the public API.
    let public = http.get(format!("{}/metrics", origin.base)).send().await.unwrap().status();
    assert_eq!(public, reqwest::StatusCode::NOT_FOUND);
    let metrics =
        http.get(format!("http://127.0.0.1:{ops_port}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "popup_redis_reconnects_total", "ingest") >= Some(1.0), "{metrics}");
    assert!(metric(&metrics, "popup_redis_reconnects_total", "requests") >= Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "popup_redis_connected", "ingest"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "popup_redis_connected", "requests"), Some(1.0), "{metrics}");
    origin.stop();
    let log = origin.log();
    assert!(!log_lines(&log, "redis connection lost", "ingest").is_empty(), "{log}");
    assert!(!log_lines(&log, "redis connection back", "ingest").is_empty(), "{log}");
    assert!(!log.contains(PASSWORD), "a log line carries the Redis password");
    println!("{} unavailable answers during the restart", seen.unavailable);
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

#[tokio::test]
async fn a_hung_redis_opens_the_breaker_which_refuses_at_once_then_a_probe_closes_it() {
    let metrics = popup_origin::telemetry::metrics_handle().unwrap();
    let redis = OwnRedis::start().await;
    let timeout = Duration::from_millis(300);
    let settings = BreakerSettings { failures_to_open: 3, cool_down_ms: 1_000 };
    let store = RedisStore::new(&redis.url(), timeout, settings).unwrap();
    let incr = command(&["INCR", "breaker:calls"]);
    assert_eq!(store.run(std::slice::from_ref(&incr)).await.unwrap(), [Reply::Int(1)]);

    // Hung: the process stops answering, its socket still accepts what is sent.
    signal(redis.server.as_ref().unwrap(), "STOP");
    let mut waited = Vec::new();
    for _ in 0..3 {
        let (took, outcome) = timed(&store, &incr).await;
        waited.push(took);
        assert!(matches!(outcome, Err(StoreUnavailable::Timeout(_))), "{outcome:?}");
    }
    assert_eq!(metric_total(&metrics.render(), "popup_redis_breaker_open"), Some(1.0));
    let mut refused = Vec::new();
    for _ in 0..25 {
        let (took, outcome) = timed(&store, &incr).await;
        refused.push(took);
        assert!(matches!(outcome, Err(StoreUnavailable::CircuitOpen(_))), "{outcome:?}");
    }
    refused.sort();
    println!(
        "breaker: before it opened each call waited {waited:?}; while open, median {:?}, max {:?} over {} calls",
        refused[refused.len() / 2],
        refused[refused.len() - 1],
        refused.len()
    );

    // Back: after the cool-down one call probes, and its success closes the breaker. Redis then counts the
    // three calls that timed out (sent before it stopped answering) and the probe: none of the refused.
    signal(redis.server.as_ref().unwrap(), "CONT");
    let started = Instant::now();
    let probed = loop {
        match store.run(std::slice::from_ref(&incr)).await {
            Ok(replies) => break replies,
            Err(StoreUnavailable::CircuitOpen(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("the probe failed: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the breaker never let a probe through");
    };
    assert_eq!(probed, [Reply::Int(5)]);
    assert_eq!(metric_total(&metrics.render(), "popup_redis_breaker_open"), Some(0.0));
    assert_eq!(store.run(std::slice::from_ref(&incr)).await.unwrap(), [Reply::Int(6)], "closed");
    let refused_total = metric_total(&metrics.render(), "popup_redis_breaker_refused_total").unwrap_or(0.0);
    assert!(refused_total >= 25.0, "{refused_total}");
}

/// One call, and how long it took.
async fn timed(store: &RedisStore, command: &Command) -> (Duration, Result<Vec<Reply>, StoreUnavailable>) {
    let started = Instant::now();
    let outcome = store.run(std::slice::from_ref(command)).await;
    (started.elapsed(), outcome)
}

/// A counter or gauge without labels.
fn metric_total(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
