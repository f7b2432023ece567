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
    /// Manage people's dashboard accounts (the first admin of a deployment; admins add the others in the
    /// dashboard).
    #[command(subcommand)]
    Person(PersonCommand),
    /// Print an HS256 identity token for a customer, signed with POPUP_JWT_HS256_SECRET, as the bank's
    /// identity provider would issue it: for demos and development against `POPUP_IDENTITY=jwt`.
    Token {
        /// The customer id the token names.
        #[arg(long)]
        user: String,
        /// Seconds the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: i64,
        #[arg(long, env = "POPUP_JWT_HS256_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long, env = "POPUP_JWT_ISSUER")]
        issuer: String,
        #[arg(long, env = "POPUP_JWT_AUDIENCE")]
        audience: String,
        #[arg(long, env = "POPUP_JWT_USER_CLAIM", default_value = popup_core::identity::DEFAULT_USER_CLAIM)]
        user_claim: String,
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

#[derive(Subcommand)]
enum PersonCommand {
    /// Create an account. The password comes from POPUP_PERSON_PASSWORD, or else the first line of
    /// standard input, so that it never shows in the process list.
    Add {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// viewer, editor or admin.
        #[arg(long, value_parser = parse_role)]
        role: popup_origin::db::people::PersonRole,
        /// en or id.
        #[arg(long, default_value = "en")]
        language: String,
    },
}

fn parse_role(raw: &str) -> Result<popup_origin::db::people::PersonRole, String> {
    popup_origin::db::people::PersonRole::parse(raw)
        .ok_or_else(|| format!("{raw:?} is not viewer, editor or admin"))
}

/// The new account's password: POPUP_PERSON_PASSWORD, or the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("POPUP_PERSON_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The allocator of every role; see BENCHMARKS.md ("Origin") for what it saves per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Messenger(config) => popup_origin::messenger(*config).await,
        Command::Migrate { database_url } => {
            let db = sqlx::PgPool::connect(&database_url).await?;
            popup_origin::MIGRATOR.run(&db).await?;
            Ok(())
        }
        Command::Person(PersonCommand::Add { database_url, email, name, role, language }) => {
            let language = popup_origin::db::people::Language::parse(&language)
                .ok_or_else(|| anyhow::anyhow!("--language must be en or id"))?;
            let password = read_password()?;
            let new = popup_origin::db::people::NewPerson {
                email: &email,
                display_name: &name,
                role: role.0,
                language,
                password: &password,
            };
            let person = popup_origin::add_person(&database_url, &new).await?;
            println!("created {} ({}, {})", person.email, person.display_name, person.role.as_str());
            Ok(())
        }
        Command::Token { user, ttl_seconds, secret, issuer, audience, user_claim } => {
            println!(
                "{}",
                popup_origin::demo_token(&user, ttl_seconds, &secret, &issuer, &audience, &user_claim)?
            );
            Ok(())
        }
        Command::Healthcheck { url, timeout_ms } => {
            popup_origin::healthcheck(&url, Duration::from_millis(timeout_ms)).await
        }
    }
}
