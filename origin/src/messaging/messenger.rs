//! `popup-origin messenger`: the message worker as a process of its own, configured by flags or
//! `POPUP_MESSAGING_*`. Run as many as you like against one database; they share the work through
//! Postgres. SIGTERM or Ctrl-C: claim nothing more, finish the sends in flight, record them, exit.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use sqlx::postgres::PgPoolOptions;

use super::provider::{MockOptions, MockProvider, Provider, TwilioProvider};
use super::worker::{self, WorkerMetrics, WorkerOptions};
use crate::config::{secret, ExposeSecret, SecretString};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    Mock,
    Twilio,
}

/// The database URL (which may hold a password) and the provider's auth token are secrets: `Debug` shows
/// neither.
#[derive(Clone, Debug, Args)]
pub struct MessengerConfig {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: SecretString,

    /// Where `/metrics` is served (deliveries by channel and outcome, sends in flight): loopback unless set
    /// otherwise; port 0 picks one.
    #[arg(long = "ops-listen", env = "POPUP_OPS_ADDR", default_value = "127.0.0.1:9466")]
    pub ops_listen: std::net::SocketAddr,

    /// Sends in flight at most.
    #[arg(long, env = "POPUP_MESSAGING_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,

    /// Attempts per message before it fails for good.
    #[arg(long, env = "POPUP_MESSAGING_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i32,

    /// The first retry waits between half of this and all of it; each next one twice as long.
    #[arg(long, env = "POPUP_MESSAGING_BACKOFF_BASE_MS", default_value_t = 1_000)]
    pub backoff_base_ms: u64,

    /// The longest wait between two attempts.
    #[arg(long, env = "POPUP_MESSAGING_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub backoff_max_ms: u64,

    /// SMS per second at most (this worker); 0 for no limit.
    #[arg(long, env = "POPUP_MESSAGING_RATE_SMS", default_value_t = 0.0)]
    pub rate_sms: f64,

    /// WhatsApp messages per second at most (this worker); 0 for no limit.
    #[arg(long, env = "POPUP_MESSAGING_RATE_WHATSAPP", default_value_t = 0.0)]
    pub rate_whatsapp: f64,

    /// Messages a channel may send at once after a quiet spell.
    #[arg(long, env = "POPUP_MESSAGING_BURST", default_value_t = 100)]
    pub burst: u32,

    /// How long a claim holds a message; a dead worker's messages are taken over after it.
    #[arg(long, env = "POPUP_MESSAGING_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,

    /// How often an idle worker looks for due messages.
    #[arg(long, env = "POPUP_MESSAGING_POLL_MS", default_value_t = 200)]
    pub poll_ms: u64,

    /// Required: a messenger that quietly fell back to the mock would mark messages sent and deliver none.
    #[arg(long, env = "POPUP_MESSAGING_PROVIDER", value_enum)]
    pub provider: ProviderKind,

    /// The mock's latency range in milliseconds, `min-max`.
    #[arg(long, env = "POPUP_MESSAGING_MOCK_LATENCY_MS", default_value = "50-200", value_parser = parse_range)]
    pub mock_latency_ms: (u64, u64),

    /// Share of the mock's sends that fail (retryably), 0 to 1.
    #[arg(long, env = "POPUP_MESSAGING_MOCK_FAILURE_RATE", default_value_t = 0.0)]
    pub mock_failure_rate: f64,

    #[arg(long, env = "POPUP_MESSAGING_TWILIO_BASE_URL", default_value = "https://api.twilio.com")]
    pub twilio_base_url: String,

    #[arg(long, env = "POPUP_MESSAGING_TWILIO_ACCOUNT_SID", default_value = "")]
    pub twilio_account_sid: String,

    #[arg(long, env = "POPUP_MESSAGING_TWILIO_AUTH_TOKEN", hide_env_values = true, default_value = "", value_parser = secret)]
    pub twilio_auth_token: SecretString,

    /// The sender: a phone number in E.164 (WhatsApp sends from `whatsapp:` + it).
    #[arg(long, env = "POPUP_MESSAGING_TWILIO_FROM", default_value = "")]
    pub twilio_from: String,

    /// Each provider request gives up after this long (and is retried); keep it well under the lease.
    #[arg(long, env = "POPUP_MESSAGING_TWILIO_TIMEOUT_MS", default_value_t = 10_000)]
    pub twilio_timeout_ms: u64,
}

fn parse_range(raw: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{raw:?} is not a range like 50-200");
    let (min, max) = raw.split_once('-').ok_or_else(bad)?;
    let min: u64 = min.trim().parse().map_err(|_| bad())?;
    let max: u64 = max.trim().parse().map_err(|_| bad())?;
    if min > max {
        return Err(bad());
    }
    Ok((min, max))
}

impl MessengerConfig {
    pub fn worker_options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.max(1),
            max_attempts: self.max_attempts.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
            rate_sms: self.rate_sms,
            rate_whatsapp: self.rate_whatsapp,
            burst: self.burst,
            lease: Duration::from_secs(self.lease_seconds.max(1)),
            poll_interval: Duration::from_millis(self.poll_ms.max(10)),
            ..WorkerOptions::default()
        }
    }

    pub fn provider(&self) -> anyhow::Result<Arc<dyn Provider>> {
        Ok(match self.provider {
            ProviderKind::Mock => Arc::new(MockProvider::new(MockOptions {
                latency_min: Duration::from_millis(self.mock_latency_ms.0),
                latency_max: Duration::from_millis(self.mock_latency_ms.1),
                failure_rate: self.mock_failure_rate.clamp(0.0, 1.0),
                fail_attempts_up_to: 0,
                lose_first_answer: false,
            })),
            ProviderKind::Twilio => {
                if self.twilio_account_sid.is_empty() || self.twilio_auth_token.expose_secret().is_empty() {
                    anyhow::bail!("the twilio provider needs an account SID and an auth token");
                }
                if !super::phone::is_e164(&self.twilio_from) {
                    anyhow::bail!(
                        "the twilio provider needs a sender number in E.164 (POPUP_MESSAGING_TWILIO_FROM)"
                    );
                }
                Arc::new(TwilioProvider::new(
                    &self.twilio_base_url,
                    &self.twilio_account_sid,
                    self.twilio_auth_token.expose_secret(),
                    &self.twilio_from,
                    Duration::from_millis(self.twilio_timeout_ms),
                )?)
            }
        })
    }
}

/// Runs the worker until SIGTERM or Ctrl-C. It applies the migrations first, like `serve`, so it can start
/// before the service does.
pub async fn run(config: MessengerConfig) -> anyhow::Result<()> {
    tracing::info!(?config, "messenger starting");
    let db = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(crate::db::connect_options(config.database_url.expose_secret())?)
        .await?;
    crate::db::MIGRATOR.run(&db).await?;
    let provider = config.provider()?;
    let stop_signal = crate::shutdown::signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker::run(
        db,
        provider,
        config.worker_options(),
        Arc::new(WorkerMetrics::default()),
        stopped,
    ));
    stop_signal.await;
    let _ = stop.send(true);
    worker.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn latency_ranges_parse() {
        assert_eq!(parse_range("50-200"), Ok((50, 200)));
        assert_eq!(parse_range("0-0"), Ok((0, 0)));
        assert!(parse_range("200-50").is_err());
        assert!(parse_range("50").is_err());
    }
}
