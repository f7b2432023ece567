//! The gateway against the real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`), each test under a
//! key prefix of its own: the protocol, the allow-list (refused commands leave Redis untouched), the
//! limits, and Upstash's official JavaScript client end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use clap::Parser;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use popup_core::store::EVENT_SCRIPT;
use popup_origin::gateway::{router, Gateway, GatewayConfig};
use redis::AsyncCommands;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "gateway-test-token-0123456789";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: GatewayConfig,
}

/// Gateway tests work in logical database 13, apart from whatever else the machine's Redis holds, so their
/// clean-up never walks someone else's keys.
fn redis_url() -> String {
    let server = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    format!("{}/13", server.trim_end_matches('/'))
}

fn config(prefix: &str, redis_url: &str, extra: &[&str]) -> GatewayConfig {
    let mut args = vec!["gateway", "--redis-url", redis_url, "--key-prefix", prefix, "--token", TOKEN];
    args.extend_from_slice(extra);
    Args::try_parse_from(args).unwrap().config
}

static NEXT: AtomicU32 = AtomicU32::new(0);

struct TestGateway {
    router: Router,
    prefix: String,
    redis: redis::aio::MultiplexedConnection,
}

impl TestGateway {
    async fn new() -> TestGateway {
        TestGateway::with_args(&[]).await
    }

    async fn with_args(extra: &[&str]) -> TestGateway {
        let prefix = format!("gw{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let gateway = Gateway::new(&config(&prefix, &redis_url(), extra)).unwrap();
        // Generous limits: a loaded machine must not fail a test that is about the gateway.
        let patient = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(10)))
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let redis = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&patient)
            .await
            .unwrap();
        TestGateway { router: router(gateway), prefix, redis }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> (StatusCode, Value) {
        let mut request =
            Request::builder().method(method).uri(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{status}: not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    /// POSTs `body` to `path` with the right token.
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_with(path, &[("authorization", &format!("Bearer {TOKEN}"))], body).await
    }

    async fn post_with(&self, path: &str, headers: &[(&str, &str)], body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, headers, Body::from(body.to_string())).await
    }

    async fn post_base64(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        self.post_with(path, &[("authorization", &auth), ("upstash-encoding", "base64")], body).await
    }

    async fn exists(&self, key: &str) -> bool {
        self.redis.clone().exists(key).await.unwrap()
    }

    /// The event script as the edge sends it, for `user` on day 20454.
    fn event(&self, user: &str, token_id: &str) -> Value {
        let p = &self.prefix;
        json!([
            "EVAL",
            EVENT_SCRIPT,
            3,
            format!("{p}:u:{{{user}}}"),
            format!("{p}:u:{{{user}}}:d:20454"),
            format!("{p}:u:{{{user}}}:e:{token_id}:impression"),
            "impression",
            "7",
            "1767225600",
            "172800",
            "86400"
        ])
    }

    async fn impressions(&self, user: &str) -> Option<i64> {
        self.redis.clone().hget(format!("{}:u:{{{user}}}", self.prefix), "n:7").await.unwrap()
    }

    async fn cleanup(mut self) {
        let keys: Vec<String> = self.redis.keys(format!("{}*", self.prefix)).await.unwrap();
        if !keys.is_empty() {
            let _: () = self.redis.del(keys).await.unwrap();
        }
    }
}

#[tokio::test]
async fn single_commands_answer_results() {
    let gw = TestGateway::new().await;
    let version = gw.key(":{catalog}:version");
    let _: () = gw.redis.clone().set(&version, "7").await.unwrap();
    let _: () = gw.redis.clone().hset(gw.key(":u:{ana}"), "n:3", "2").await.unwrap();

    assert_eq!(gw.post("/", json!(["GET", version])).await, (StatusCode::OK, json!({"result": "7"})));
    assert_eq!(
        gw.post("/", json!(["get", gw.key(":{catalog}")])).await,
        (StatusCode::OK, json!({"result": null}))
    );
    assert_eq!(gw.post("/", json!(["PING"])).await, (StatusCode::OK, json!({"result": "PONG"})));
    assert_eq!(
        gw.post("/", json!(["HGETALL", gw.key(":u:{ana}")])).await,
        (StatusCode::OK, json!({"result": ["n:3", "2"]}))
    );
    assert_eq!(
        gw.post("/", json!(["HGETALL", gw.key(":u:{bob}:d:20454")])).await,
        (StatusCode::OK, json!({"result": []}))
    );
    // The event script, with numkeys as a JSON number as the official client sends it.
    assert_eq!(gw.post("/", gw.event("ana", "t1")).await, (StatusCode::OK, json!({"result": 1})));
    assert_eq!(gw.post("/", gw.event("ana", "t1")).await, (StatusCode::OK, json!({"result": 0})));
    assert_eq!(gw.impressions("ana").await, Some(1));
    let (status, body) = gw
        .post("/", json!(["XADD", gw.key(":events"), "*", "id", "t1:impression", "kind", "impression"]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["result"].as_str().unwrap().contains('-'), "{body}");

    // A command Redis refuses is a 400 with Redis's message, as Upstash answers it.
    let _: () = gw.redis.clone().set(gw.key(":u:{carl}"), "a string").await.unwrap();
    let (status, body) = gw.post("/", json!(["HGETALL", gw.key(":u:{carl}")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("WRONGTYPE"), "{body}");
    gw.cleanup().await;
}

#[tokio::test]
async fn pipelines_answer_one_object_per_command_even_when_one_fails() {
    let gw = TestGateway::new().await;
    let _: () = gw.redis.clone().set(gw.key(":{catalog}:version"), "9").await.unwrap();
    let _: () = gw.redis.clone().hset(gw.key(":u:{ana}"), "s:1:0", "4").await.unwrap();
    let _: () = gw.redis.clone().set(gw.key(":u:{carl}"), "a string").await.unwrap();
    let (status, body) = gw
        .post(
            "/pipeline",
            json!([
                ["GET", gw.key(":{catalog}:version")],
                ["HGETALL", gw.key(":u:{ana}")],
                ["HGETALL", gw.key(":u:{carl}")],
                ["HGETALL", gw.key(":u:{ana}:d:20454")],
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], json!({"result": "9"}));
    assert_eq!(items[1], json!({"result": ["s:1:0", "4"]}));
    assert!(items[2]["error"].as_str().unwrap().starts_with("WRONGTYPE"), "{body}");
    assert_eq!(items[3], json!({"result": []}));

    // The event pipeline the edge sends.
    let (status, body) = gw
        .post(
            "/pipeline",
            json!([gw.event("ana", "t9"), ["XADD", gw.key(":events"), "*", "id", "t9:impression"]]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0], json!({"result": 1}));
    assert!(body[1]["result"].is_string(), "{body}");
    assert_eq!(gw.impressions("ana").await, Some(1));
    gw.cleanup().await;
}

#[tokio::test]
async fn multi_exec_runs_inside_one_transaction() {
    let gw = TestGateway::new().await;
    let catalog = gw.key(":{catalog}");
    let version = gw.key(":{catalog}:version");
    let _: () = gw.redis.clone().set(gw.key(":u:{carl}"), "a string").await.unwrap();

    // A runtime error inside the transaction fails that command only, as in Redis.
    let (status, body) = gw
        .post(
            "/multi-exec",
            json!([gw.event("ana", "t1"), ["HGETALL", gw.key(":u:{carl}")], ["HGETALL", gw.key(":u:{ana}")]]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0], json!({"result": 1}));
    assert!(body[1]["error"].as_str().unwrap().starts_with("WRONGTYPE"), "{body}");
    assert_eq!(body[2]["result"].as_array().unwrap().len(), 4, "{body}");

    // The transaction as Redis saw it, from MONITOR: on the gateway's connection, MULTI, the two reads,
    // EXEC; a pipeline's commands go without them.
    let monitor = redis::Client::open(redis_url()).unwrap().get_async_monitor().await.unwrap();
    let mut monitor = Box::pin(monitor.into_on_message::<String>());
    let reads = json!([["GET", &catalog], ["GET", &version]]);
    assert_eq!(gw.post("/multi-exec", reads.clone()).await.0, StatusCode::OK);
    assert_eq!(gw.post("/pipeline", reads).await.0, StatusCode::OK);
    let mut seen = Vec::new();
    while seen.iter().filter(|line: &&String| line.contains(&gw.prefix)).count() < 4 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(5), monitor.next()).await;
        seen.push(line.expect("MONITOR went quiet").expect("MONITOR closed"));
    }
    // `<time> [<db> <client address>] "CMD" "arg"...`: keep the lines of the client that sent our reads.
    let split = |line: &String| {
        let (_, rest) = line.split_once(" [")?;
        let (client, command) = rest.split_once("] ")?;
        Some((client.to_string(), command.to_string()))
    };
    let gateway_client = seen.iter().filter(|l| l.contains(&gw.prefix)).find_map(split).unwrap().0;
    let commands: Vec<String> = seen
        .iter()
        .filter_map(split)
        .filter(|(client, _)| *client == gateway_client)
        .map(|(_, c)| c)
        .collect();
    let first = commands.iter().position(|c| c == "\"MULTI\"").expect("no MULTI from the gateway");
    let get_catalog = format!("\"GET\" \"{catalog}\"");
    let get_version = format!("\"GET\" \"{version}\"");
    let mut transaction = commands[first + 1..first + 4].to_vec();
    transaction.sort();
    let mut expected = vec![get_catalog.clone(), get_version.clone(), "\"EXEC\"".to_string()];
    expected.sort();
    assert_eq!(transaction, expected, "{commands:#?}");
    assert_eq!(commands[first + 4..], [get_catalog, get_version], "{commands:#?}");
    gw.cleanup().await;
}

#[tokio::test]
async fn base64_encoding_covers_every_string_but_a_whole_ok() {
    let gw = TestGateway::new().await;
    let version = gw.key(":{catalog}:version");
    let _: () = gw.redis.clone().set(&version, "7").await.unwrap();
    let raw: &[u8] = &[0xff, 0x00, b'a'];
    let _: () = gw.redis.clone().hset(gw.key(":u:{ana}"), "name", "Ñoño ✓").await.unwrap();
    let _: () = gw.redis.clone().hset(gw.key(":u:{ana}"), "raw", raw).await.unwrap();

    assert_eq!(
        gw.post_base64("/", json!(["GET", &version])).await,
        (StatusCode::OK, json!({"result": "Nw=="}))
    );
    assert_eq!(gw.post_base64("/", json!(["PING"])).await, (StatusCode::OK, json!({"result": "UE9ORw=="})));
    assert_eq!(
        gw.post_base64("/", json!(["GET", gw.key(":{catalog}")])).await,
        (StatusCode::OK, json!({"result": null}))
    );
    assert_eq!(gw.post_base64("/", gw.event("ana", "t1")).await, (StatusCode::OK, json!({"result": 1})));
    let (status, body) = gw.post_base64("/", json!(["HGETALL", gw.key(":u:{ana}")])).await;
    assert_eq!(status, StatusCode::OK);
    let mut decoded = std::collections::HashMap::new();
    for pair in body["result"].as_array().unwrap().chunks(2) {
        use base64::Engine;
        let decode =
            |v: &Value| base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        decoded.insert(String::from_utf8(decode(&pair[0])).unwrap(), decode(&pair[1]));
    }
    assert_eq!(decoded["name"], "Ñoño ✓".as_bytes());
    assert_eq!(decoded["raw"], raw, "binary values come back byte for byte");
    assert_eq!(decoded["n:7"], b"1");
    // Pipelines encode each result the same way.
    let (status, body) = gw.post_base64("/pipeline", json!([["GET", &version], ["PING"]])).await;
    assert_eq!((status, body), (StatusCode::OK, json!([{"result": "Nw=="}, {"result": "UE9ORw=="}])));
    // Without the header, text: invalid UTF-8 is replaced, as Upstash does.
    let (_, body) = gw.post("/", json!(["HGETALL", gw.key(":u:{ana}")])).await;
    assert!(body["result"].as_array().unwrap().contains(&json!("\u{fffd}\u{0}a")), "{body}");
    gw.cleanup().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let gw = TestGateway::new().await;
    let unauthorized = (StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"}));
    let ping = json!(["PING"]);
    for path in ["/", "/pipeline", "/multi-exec"] {
        let body = if path == "/" { ping.clone() } else { json!([ping]) };
        assert_eq!(gw.post_with(path, &[], body.clone()).await, unauthorized, "{path}");
        for header in [
            "Bearer wrong-token-0123456789",
            "Bearer",
            "Bearer ",
            TOKEN,
            &format!("Basic {TOKEN}"),
            &format!("Bearer {TOKEN}x"),
            &format!("Bearer {}", &TOKEN[1..]),
        ] {
            assert_eq!(
                gw.post_with(path, &[("authorization", header)], body.clone()).await,
                unauthorized,
                "{header}"
            );
        }
    }
    // The token is checked before the body is read: no hint about limits or shapes without it.
    let big = Body::from(vec![b' '; 2 << 20]);
    assert_eq!(gw.request(Method::POST, "/", &[], big).await, unauthorized);
    assert_eq!(gw.request(Method::GET, "/metrics", &[], Body::empty()).await, unauthorized);
    // The scheme is case-insensitive, as HTTP says.
    let (status, _) = gw.post_with("/", &[("authorization", &format!("bearer {TOKEN}"))], ping).await;
    assert_eq!(status, StatusCode::OK);
    gw.cleanup().await;
}

#[tokio::test]
async fn commands_off_the_allow_list_are_refused_and_not_run() {
    let gw = TestGateway::new().await;
    let mut redis = gw.redis.clone();
    let version = gw.key(":{catalog}:version");
    let outside = gw.key("-outside");
    let admin = gw.key(":segment:1:loaded");
    let _: () = redis.set(&version, "5").await.unwrap();
    let _: () = redis.set(&outside, "secret").await.unwrap();
    let _: () = redis.set(&admin, "3").await.unwrap();
    let other_stream = gw.key(":other-events");
    let set_by_script = gw.key(":u:{ana}:planted");

    let refused = [
        (json!(["FLUSHALL"]), "FLUSHALL"),
        (json!(["flushdb"]), "FLUSHDB"),
        (json!(["KEYS", "*"]), "KEYS"),
        (json!(["DEL", &version]), "DEL"),
        (json!(["SET", &version, "99"]), "SET"),
        (json!(["GET", &outside]), "GET"),
        (json!(["GET", &admin]), "GET"),
        (json!(["HGETALL", gw.key(":{catalog}")]), "HGETALL"),
        (json!(["EVAL", "redis.call('SET', KEYS[1], 'x') return 1", 1, &set_by_script]), "EVAL"),
        (
            json!([
                "EVAL",
                "redis.call('SET', KEYS[1], 'x') return 1",
                3,
                &set_by_script,
                gw.key(":u:{ana}:d:1"),
                gw.key(":u:{ana}:e:t:click")
            ]),
            "EVAL",
        ),
        (json!(["XADD", &other_stream, "*", "a", "b"]), "XADD"),
        (json!(["XADD", gw.key(":events"), "MAXLEN", "0", "*", "a", "b"]), "XADD"),
    ];
    for (command, name) in &refused {
        let (status, body) = gw.post("/", command.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{command}");
        let message = body["error"].as_str().unwrap();
        assert!(message.starts_with(&format!("ERR command not allowed by the gateway: {name}")), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
    // Nothing ran: the keys are all there, unchanged, and nothing was written.
    let version_now: String = redis.get(&version).await.unwrap();
    assert_eq!(version_now, "5");
    assert!(gw.exists(&outside).await && gw.exists(&admin).await);
    assert!(!gw.exists(&set_by_script).await);
    assert!(!gw.exists(&other_stream).await);
    assert!(!gw.exists(&gw.key(":events")).await);

    // A pipeline or a transaction with one refused command is refused whole: the event before it does
    // not run either.
    for path in ["/pipeline", "/multi-exec"] {
        let (status, body) = gw.post(path, json!([gw.event("ana", "t1"), ["FLUSHALL"]])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            body,
            json!({"error": "ERR command not allowed by the gateway: FLUSHALL (not on the allow-list)"})
        );
    }
    assert_eq!(gw.impressions("ana").await, None);
    assert!(gw.exists(&version).await);
    gw.cleanup().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let gw = TestGateway::with_args(&["--max-body-bytes", "1024"]).await;
    let big = json!(["GET", "x".repeat(2000)]);
    for path in ["/", "/pipeline", "/multi-exec"] {
        let (status, body) = gw.post(path, big.clone()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(
            body,
            json!({"error": "ERR the request body is larger than the gateway's limit of 1024 bytes"})
        );
    }
    // Without a content length (a chunked body) too.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 512]))),
    );
    let (status, _) = gw
        .request(
            Method::POST,
            "/",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Body::from_stream(chunks),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = gw.post("/", json!(["PING"])).await;
    assert_eq!(status, StatusCode::OK);
    gw.cleanup().await;
}

#[tokio::test]
async fn pipelines_over_the_limit_are_400() {
    let gw = TestGateway::with_args(&["--max-pipeline", "4"]).await;
    let ping = json!(["PING"]);
    let (status, body) = gw.post("/pipeline", json!(vec![ping.clone(); 4])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/pipeline", "/multi-exec"] {
        let (status, body) = gw.post(path, json!(vec![ping.clone(); 5])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "ERR a pipeline of 5 commands is longer than the gateway's limit of 4"})
        );
    }
    gw.cleanup().await;
}

#[tokio::test]
async fn malformed_requests_are_400_in_the_protocols_format() {
    let gw = TestGateway::new().await;
    let auth = format!("Bearer {TOKEN}");
    let cases: &[(&str, &str)] = &[
        ("/", ""),
        ("/", "{"),
        ("/", "{\"command\": \"GET\"}"),
        ("/", "\"PING\""),
        ("/", "[]"),
        ("/", "[\"\"]"),
        ("/", "[7]"),
        ("/", "[\"GET\", null]"),
        ("/", "[\"GET\", {\"a\": 1}]"),
        ("/", "[[\"PING\"]]"),
        ("/pipeline", "[]"),
        ("/pipeline", "[\"PING\"]"),
        ("/pipeline", "[[\"PING\"], []]"),
        ("/multi-exec", "[[\"PING\"], 3]"),
        ("/multi-exec", "not json"),
    ];
    for (path, body) in cases {
        let (status, response) =
            gw.request(Method::POST, path, &[("authorization", &auth)], Body::from(body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert!(response["error"].as_str().unwrap().starts_with("ERR "), "{response}");
    }
    let (status, body) = gw.request(Method::POST, "/nope", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let (status, body) = gw.request(Method::GET, "/", &[("authorization", &auth)], Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
    gw.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_quick_503() {
    let gateway =
        Gateway::new(&config("gw-down", "redis://127.0.0.1:1", &["--redis-timeout-ms", "300"])).unwrap();
    let request = Request::post("/")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(json!(["PING"]).to_string()))
        .unwrap();
    let started = std::time::Instant::now();
    let response = router(gateway).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, json!({"error": "ERR redis is unavailable"}));
}

#[tokio::test]
async fn commands_are_counted_in_the_metrics() {
    let gw = TestGateway::new().await;
    let (status, _) = gw.post("/pipeline", json!([["PING"], ["PING"], ["PING"]])).await;
    assert_eq!(status, StatusCode::OK);
    let request =
        Request::get("/metrics").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty());
    let response = gw.router.clone().oneshot(request.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    // At least: tests sharing a process (cargo test) share the recorder too.
    let counted = text
        .lines()
        .find_map(|line| line.strip_prefix("gateway_commands_total{endpoint=\"pipeline\"} "))
        .and_then(|count| count.parse::<u64>().ok());
    assert!(counted.is_some_and(|count| count >= 3), "{text}");
    gw.cleanup().await;
}

#[test]
fn the_configuration_refuses_weak_tokens_and_hides_secrets() {
    let args = ["gateway", "--token", "short", "--redis-url", "redis://:hunter2@127.0.0.1:6379"];
    let short = Args::try_parse_from(args).unwrap().config;
    assert!(Gateway::new(&short).is_err());
    let bad_prefix = config("Bad Prefix", "redis://127.0.0.1:6379", &[]);
    assert!(Gateway::new(&bad_prefix).is_err());
    let good = config("popup", "redis://:hunter2@127.0.0.1:6379", &[]);
    let shown = format!("{good:?} {:?}", Gateway::new(&good).unwrap());
    assert!(!shown.contains(TOKEN) && !shown.contains("hunter2"), "{shown}");
    assert_eq!(good.listen.to_string(), "127.0.0.1:8079");
    assert_eq!((good.max_body_bytes, good.max_pipeline), (1 << 20, 32));
}

/// Upstash's official JavaScript client (`@upstash/redis`, in `tests/upstash-client`) against a gateway on
/// a real port: reads, pipelines, transactions, the event script and stream append, and refusals.
#[tokio::test(flavor = "multi_thread")]
async fn the_official_upstash_client_works_against_the_gateway() {
    let client_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/upstash-client");
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.as_ref().is_ok_and(|output| output.status.success()) {
        panic!(
            "node is not installed: this test runs Upstash's official client; install Node.js 18 or later"
        );
    }
    if !client_dir.join("node_modules/@upstash/redis").exists() {
        let status = std::process::Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&client_dir)
            .args(["--no-audit", "--no-fund"])
            .status()
            .expect("npm is not installed: it installs the client in tests/upstash-client");
        assert!(status.success(), "npm install in {} failed", client_dir.display());
    }

    let gw = TestGateway::new().await;
    let mut redis = gw.redis.clone();
    let user_key = gw.key(":u:{cust-1}");
    let _: () = redis.set(gw.key(":{catalog}:version"), "42").await.unwrap();
    let _: () =
        redis.hset_multiple(&user_key, &[("s:1:0", "3"), ("n:7", "2"), ("name", "Ñoño ✓")]).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = gw.router.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let prefix = gw.prefix.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(client_dir.join("check.mjs"))
            .env("GATEWAY_URL", format!("http://{address}"))
            .env("GATEWAY_TOKEN", TOKEN)
            .env("KEY_PREFIX", prefix)
            .env("USER_ID", "cust-1")
            .env("CATALOG_VERSION", "42")
            .env("EVENT_SCRIPT", EVENT_SCRIPT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the official client's checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], json!(true));

    // What the client did, seen in Redis: one impression counted, one event appended, nothing flushed.
    let counted: i64 = redis.hget(&user_key, "n:7").await.unwrap();
    assert_eq!(counted, 3);
    let appended: i64 = redis::cmd("XLEN").arg(gw.key(":events")).query_async(&mut redis).await.unwrap();
    assert_eq!(appended, 1);
    let version: String = redis.get(gw.key(":{catalog}:version")).await.unwrap();
    assert_eq!(version, "42");
    gw.cleanup().await;
}
