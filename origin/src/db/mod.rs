//! The SQL of each entity, in one file per entity, returning [`DbError`]. Everything above (routes, the
//! projection, ingest, the messenger) reads and writes Postgres through these functions; nothing here
//! knows about HTTP or Redis.
//!
//! - [`audit`]: the audit trail, and who acted.
//! - [`keys`]: API keys.
//! - [`campaigns`], [`campaign_spec`]: popup campaigns, and the spec they are stored (and written) as.
//! - [`segments`]: segments and their members.
//! - [`settings`]: rules that span campaigns.
//! - [`events`]: ingested events, their partitions, and the counts read from them.
//! - [`customers`]: the people messages go to.
//! - [`message_campaigns`]: SMS and WhatsApp campaigns, their channel, status and message counts.
//! - [`people`], [`sessions`]: people who sign in to the dashboard, their sessions and sign-in attempts.
//! - [`messages`]: the messages of a send, and the queue the message workers claim them from (leases,
//!   idempotency keys, takeovers, outcomes).

pub mod audit;
pub mod campaign_spec;
pub mod campaigns;
pub mod customers;
pub mod events;
pub mod keys;
pub mod message_campaigns;
pub mod messages;
pub mod people;
pub mod segments;
pub mod sessions;
pub mod settings;

pub use sqlx::PgPool;

/// How the origin's pools connect to `url`: with the session setting `jit = off`. Postgres compiles a
/// query to machine code when its estimated cost is high, and a query over the events table, partitioned
/// by day, is estimated high by the number of partitions it plans: a campaign's stats over a year spent
/// 2.9 s compiling before it read a row (then 2 s running), three times its whole run without. The
/// origin's queries are short and run once each; none is long enough to win the compilation back.
pub fn connect_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions, sqlx::Error> {
    Ok(url.parse::<sqlx::postgres::PgConnectOptions>()?.options([("jit", "off")]))
}

/// The schema's migrations (`migrations/`), embedded; applied at start and by tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A Postgres failure, classified so each caller can answer it rightly: an outage is 503 for a request and a
/// retry for a background loop; a duplicate is the caller's conflict; anything else is a bug.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("postgres is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("a record with that name already exists")]
    Duplicate,
    #[error("postgres: {0}")]
    Query(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> DbError {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => DbError::Unavailable(error),
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Duplicate,
            // The server shutting down or refusing connections (admin shutdown, too many clients), or too busy
            // to answer in time (a statement or lock timeout): the caller may try again, nothing was wrong
            // with what it asked.
            sqlx::Error::Database(db) if db.code().is_some_and(is_unavailable) => DbError::Unavailable(error),
            _ => DbError::Query(error),
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// SQLSTATEs that mean Postgres cannot serve the statement now: operator intervention (57P..), too many
/// connections (53300), statement timeout or cancel (57014), lock timeout (55P03).
fn is_unavailable(code: std::borrow::Cow<'_, str>) -> bool {
    code.starts_with("57P") || matches!(code.as_ref(), "53300" | "57014" | "55P03")
}

/// A transaction, for the writes a caller must check and make together (a lifecycle check and the write it
/// allows).
pub async fn begin(db: &PgPool) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(db.begin().await?)
}

/// Whether Postgres answers.
pub async fn ping(db: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(db).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::DbError;

    #[test]
    fn an_outage_is_told_apart_from_a_bug() {
        let outages = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")),
        ];
        for error in outages {
            assert!(matches!(DbError::from(error), DbError::Unavailable(_)));
        }
        assert!(matches!(DbError::from(sqlx::Error::RowNotFound), DbError::Query(_)));
        assert!(matches!(DbError::from(sqlx::Error::Protocol("odd".into())), DbError::Query(_)));
    }
}
