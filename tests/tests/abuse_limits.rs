//! The public API's protections, end to end: the request limits of the edge (the platform's rate-limiting
//! bindings under `wrangler dev`) and of the origin answer 429 with `Retry-After` and then serve again; the
//! edge's circuit breaker answers 503 at once while its Redis endpoint hangs, and closes after a probe once
//! it answers again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use popup_core::defaults;
use popup_tests::{campaign, RateLimits, Settings, Side, Stack, StatusCode};

#[tokio::test]
async fn over_a_limit_the_edge_and_the_origin_answer_429_then_serve_again() {
    let settings =
        Settings { rate_limits: RateLimits { per_customer: 3, per_address: 5 }, ..Settings::default() };
    let stack = Stack::start_with(settings).await.unwrap();
    let id = stack.live_campaign(&campaign("Limited")).await.unwrap();

    for side in [Side::Edge, Side::Origin] {
        // Per customer: three, then 429, whatever address asks.
        for n in 0..3 {
            let reply = stack.popup_from(side, &format!("198.51.100.{n}"), "user_id=c-1").await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{side:?} request {n}: {}", reply.body);
        }
        let refused = stack.popup_from(side, "198.51.100.9", "user_id=c-1").await.unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{side:?}: {}", refused.body);
        assert_eq!(refused.body["error"]["code"], "rate_limited", "{side:?}");
        let retry_after: u64 = refused.retry_after.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{side:?}: Retry-After {retry_after}");

        // Per address: five requests from one address, for five customers, then 429 for a sixth.
        for n in 0..5 {
            let reply = stack.popup_from(side, "203.0.113.7", &format!("user_id=a-{n}")).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{side:?} customer a-{n}: {}", reply.body);
        }
        let refused = stack.popup_from(side, "203.0.113.7", "user_id=a-9").await.unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{side:?}: {}", refused.body);
        let elsewhere = stack.popup_from(side, "203.0.113.8", "user_id=a-9").await.unwrap();
        assert_eq!(elsewhere.status, StatusCode::OK, "{side:?}: another address is not limited");
    }
    // A refused request counts nothing: c-1 was served three times on each side and never impressed, so
    // the lifetime counters are untouched either way; what matters is that it is served again.
    let origin_retry = 20; // 3 a minute: one every 20 s.
    let edge_retry = 60; // the bindings' period.
    let started = Instant::now();
    for (side, after) in [(Side::Origin, origin_retry), (Side::Edge, edge_retry)] {
        let wait = Duration::from_secs(after + 1).saturating_sub(started.elapsed());
        tokio::time::sleep(wait).await;
        let reply = stack.popup_from(side, "198.51.100.10", "user_id=c-1").await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{side:?} after Retry-After: {}", reply.body);
        assert_eq!(reply.campaign(), Some(id));
    }
}

/// A TCP endpoint in front of the gateway that holds every connection it accepts (a hung Redis endpoint)
/// until it is told where to forward them.
#[derive(Clone, Default)]
struct Switch {
    forward_to: Arc<Mutex<Option<SocketAddr>>>,
}

impl Switch {
    async fn listen(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let forward_to = self.forward_to.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let target = *forward_to.lock().unwrap();
                tokio::spawn(async move {
                    match target {
                        None => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            drop(socket);
                        }
                        Some(target) => {
                            let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                        }
                    }
                });
            }
        });
        address
    }
}

/// All the edge's output so far: wrangler's and the worker's console.
/// Whether the edge's log shows `line` within a few seconds: wrangler passes the worker's output on
/// after the response, later still on a busy machine.
async fn edge_logged(stack: &Stack, line: &str) -> bool {
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(stack.dir().join("edge.log")).unwrap().contains(line) {
            return true;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test]
async fn a_hung_redis_opens_the_edge_breaker_which_answers_at_once_until_a_probe_closes_it() {
    let switch = Switch::default();
    let endpoint = switch.listen().await;
    let timeout_ms = 500;
    let settings = Settings {
        edge_redis_rest_url: Some(format!("http://{endpoint}")),
        edge_redis_timeout_ms: timeout_ms,
        ..Settings::default()
    };
    let stack = Stack::start_with(settings).await.unwrap();
    let id = stack.live_campaign(&campaign("Behind the breaker")).await.unwrap();

    // Closed: each request waits out the timeout. The breaker opens after this many in a row.
    let failures = defaults::BREAKER_FAILURES as usize;
    let mut waited = Vec::new();
    for n in 0..failures {
        let started = Instant::now();
        let reply = stack.popup(Side::Edge, &format!("user_id=c-{n}")).await.unwrap();
        waited.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    }
    // Open: refused at once, without asking Redis.
    let mut refused = Vec::new();
    for n in 0..50 {
        let started = Instant::now();
        let reply = stack.popup(Side::Edge, &format!("user_id=o-{n}")).await.unwrap();
        refused.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], "store_unavailable");
    }
    let (closed, open) = (median(waited.clone()), median(refused.clone()));
    println!(
        "edge breaker: 503 before it opened, median {closed:?} (timeout {timeout_ms} ms); while open, median \
         {open:?}, max {:?} over {} requests, through wrangler dev",
        refused.iter().max().unwrap(),
        refused.len()
    );
    assert!(closed >= Duration::from_millis(timeout_ms), "before opening each request waits: {closed:?}");
    assert!(open * 10 < closed, "while open, a 503 is at once: {open:?} against {closed:?}");
    assert!(edge_logged(&stack, "redis breaker open").await, "{}", stack.log_tails());

    // Redis answers again: after the cool-down one request probes, succeeds, and closes the breaker.
    let gateway: SocketAddr = stack.gateway.trim_start_matches("http://").parse().unwrap();
    *switch.forward_to.lock().unwrap() = Some(gateway);
    let started = Instant::now();
    let mut still_open = 0;
    loop {
        let reply = stack.popup(Side::Edge, "user_id=p-1").await.unwrap();
        if reply.status == StatusCode::OK {
            assert_eq!(reply.campaign(), Some(id));
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
        still_open += 1;
        assert!(started.elapsed() < Duration::from_secs(20), "the breaker never let a probe through");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(still_open > 0, "Redis is not asked again before the cool-down ends");
    for n in 0..5 {
        let reply = stack.popup(Side::Edge, &format!("user_id=q-{n}")).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "closed again: {}", reply.body);
    }
    assert!(edge_logged(&stack, "redis breaker closed").await, "{}", stack.log_tails());
}
