//! `popup-origin serve` runs the service; `popup-origin migrate` only applies the migrations;
//! `popup-origin ingest` only moves events into Postgres; `popup-origin gateway` serves the Upstash REST
//! protocol in front of Redis for the edge; `popup-origin messenger` delivers outbound SMS and WhatsApp
//! messages; `popup-origin healthcheck` asks a running role whether it is alive (the image's HEALTHCHECK).

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "The popup platform's origin service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admin API and the popup API, and keep Redis in step with Postgres.
    Serve(Box<popup_origin::Config>),
    /// Only move events from the Redis stream into Postgres (`serve` does it too, see --ingest-workers).
    Ingest(Box<popup_origin::Config>),
    /// Serve the Upstash REST protocol in front of Redis, for the edge: only its commands on its keys.
    Gateway(Box<popup_origin::gateway::GatewayConfig>),
    /// Deliver outbound SMS and WhatsApp messages: the worker that drains the message queue in Postgres.
    Messenger(Box<popup_origin::messaging::messenger::MessengerConfig>),
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// GET a role's health endpoint; exit 0 if it answers 200 within the timeout, 1 otherwise.
    Healthcheck {
        /// `serve` answers on `/healthz` of POPUP_LISTEN's port, `gateway` on POPUP_GATEWAY_LISTEN's.
        #[arg(long, env = "POPUP_HEALTHCHECK_URL", default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
        /// How long to wait for the whole answer, in milliseconds.
        #[arg(long, env = "POPUP_HEALTHCHECK_TIMEOUT_MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        // Colours only for a person at a terminal, not in files, pipes or a container's log.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve(config) => popup_origin::serve(*config).await,
        Command::Ingest(config) => popup_origin::ingest_only(*config).await,
        Command::Gateway(config) => popup_origin::gateway::serve(*config).await,
        Command::Messenger(config) => popup_origin::messaging::messenger::run(*config).await,
        Command::Migrate { database_url } => {
            let db = sqlx::PgPool::connect(&database_url).await?;
            popup_origin::MIGRATOR.run(&db).await?;
            Ok(())
        }
        Command::Healthcheck { url, timeout_ms } => {
            popup_origin::healthcheck(&url, Duration::from_millis(timeout_ms)).await
        }
    }
}
