//! The real binary: it serves, and on SIGTERM it stops accepting, finishes, and exits successfully.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[sqlx::test(migrations = false)]
async fn sigterm_stops_the_service_cleanly(db: PgPool) {
    let options = db.connect_options();
    let database_url = format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap()
    );
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_popup-origin"))
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("POPUP_LISTEN", format!("127.0.0.1:{port}"))
        .env("POPUP_OPS_ADDR", "127.0.0.1:0")
        .env("POPUP_KEY_PREFIX", format!("shutdown{port}"))
        .env("POPUP_TOKEN_SECRET", "a-secret-long-enough-for-the-token-signer")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ready, "the origin did not start listening");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the origin did not stop within 10 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is released");
}
