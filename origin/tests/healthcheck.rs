//! `popup-origin healthcheck`, the container image's HEALTHCHECK: the real binary against the real routers of
//! `serve` and `gateway` on loopback ports, and against a port where nothing listens and one that never
//! answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use popup_origin::gateway::{router, Gateway, GatewayConfig};
use sqlx::PgPool;

use common::TestApp;

/// Serves `router` on a loopback port the system picks, for the rest of the test.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `popup-origin healthcheck` with `args` and `env`, off the test's runtime (which serves the routers).
async fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_popup-origin"));
    command.arg("healthcheck").args(args).env_remove("POPUP_HEALTHCHECK_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output().unwrap();
        Outcome {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    })
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn the_origin_is_healthy_on_healthz_and_readyz(db: PgPool) {
    let app = TestApp::new(db).await;
    let address = serve(app.router.clone()).await;

    let alive = healthcheck(&["--url", &format!("http://{address}/healthz")], &[]).await;
    assert_eq!(alive.code, Some(0), "{}", alive.stderr);
    // The URL may come from the environment, as in the image.
    let ready = healthcheck(&[], &[("POPUP_HEALTHCHECK_URL", &format!("http://{address}/readyz"))]).await;
    assert_eq!(ready.code, Some(0), "{}", ready.stderr);

    let missing = healthcheck(&["--url", &format!("http://{address}/no-such-route")], &[]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

#[derive(Parser)]
struct GatewayArgs {
    #[command(flatten)]
    config: GatewayConfig,
}

#[tokio::test]
async fn the_gateway_is_healthy_on_healthz_without_its_token() {
    let config = GatewayArgs::try_parse_from([
        "gateway",
        "--redis-url",
        &common::redis_url(),
        "--token",
        "healthcheck-test-token-0123456789",
    ])
    .unwrap()
    .config;
    let address = serve(router(Gateway::new(&config).unwrap())).await;

    let alive = healthcheck(&["--url", &format!("http://{address}/healthz")], &[]).await;
    assert_eq!(alive.code, Some(0), "{}", alive.stderr);
    // Everything else still needs the token.
    let metrics = healthcheck(&["--url", &format!("http://{address}/metrics")], &[]).await;
    assert_eq!(metrics.code, Some(1));
    assert!(metrics.stderr.contains("401"), "{}", metrics.stderr);
}

#[tokio::test]
async fn nothing_listening_is_unhealthy_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = healthcheck(&["--url", &format!("http://127.0.0.1:{port}/healthz")], &[]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.took < Duration::from_secs(5), "took {:?}", refused.took);
}

#[tokio::test]
async fn a_role_that_never_answers_is_unhealthy_after_the_timeout() {
    // Connections complete (the kernel accepts them into the backlog) but nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let hung =
        healthcheck(&["--url", &format!("http://{address}/healthz"), "--timeout-ms", "300"], &[]).await;
    assert_eq!(hung.code, Some(1), "{}", hung.stderr);
    assert!(hung.took >= Duration::from_millis(300), "took {:?}", hung.took);
    assert!(hung.took < Duration::from_secs(5), "took {:?}", hung.took);
    drop(silent);
}
