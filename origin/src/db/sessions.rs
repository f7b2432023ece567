//! Dashboard sessions, kept in Postgres: the cookie holds a random 256-bit token, the table only its
//! SHA-256 (a fast hash is enough for a random value), so a copy of the table opens no session. A session
//! ends when it is idle for too long, at its absolute expiry, at sign-out, or when its person is disabled.
//! Sign-in attempts are recorded here too, for throttling.

use std::time::Duration;

use base64::Engine;
use sqlx::PgPool;

use super::people::{Person, PersonRow, COLUMNS};
use super::{DbError, DbResult};

/// How long sessions last.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// Without a request for this long, a session ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: Duration,
}

/// A new random session token, as the cookie carries it.
pub fn new_token() -> DbResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| DbError::Query(sqlx::Error::Protocol(format!("no randomness: {e}"))))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// Starts a session for `person`; returns its token.
pub async fn create(db: &PgPool, person: &Person, lifetimes: Lifetimes) -> DbResult<String> {
    let token = new_token()?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, person_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(hash_token(&token))
    .bind(person.id)
    .bind(lifetimes.absolute.as_secs_f64())
    .execute(db)
    .await?;
    // Sessions that ended are removed now and then, by whoever signs in.
    sqlx::query("DELETE FROM sessions WHERE expires_at < now()").execute(db).await?;
    Ok(token)
}

/// The person signed in with `token`, if the session is still open (not idle too long, not past its end,
/// the person not disabled); the session's last use becomes now.
pub async fn touch(db: &PgPool, token: &str, lifetimes: Lifetimes) -> DbResult<Option<Person>> {
    let row: Option<PersonRow> = sqlx::query_as(&format!(
        "WITH touched AS (
             UPDATE sessions SET last_seen_at = now()
             WHERE token_hash = $1 AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2)
             RETURNING person_id
         )
         SELECT {COLUMNS} FROM people WHERE id = (SELECT person_id FROM touched) AND NOT disabled"
    ))
    .bind(hash_token(token))
    .bind(lifetimes.idle.as_secs_f64())
    .fetch_optional(db)
    .await?;
    row.map(PersonRow::person).transpose()
}

/// Ends the session of `token` (sign-out).
pub async fn end(db: &PgPool, token: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(hash_token(token)).execute(db).await?;
    Ok(())
}

/// Sign-in throttling: failures allowed per account and per address within the window.
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Seconds until `email` and `address` may try again, if either has [`MAX_FAILURES`] failures within the
/// window: counted from the oldest failure of the window.
pub async fn throttled_for(db: &PgPool, email: &str, address: &str) -> DbResult<Option<u64>> {
    let window = FAILURE_WINDOW.as_secs_f64();
    let wait: Option<f64> = sqlx::query_scalar(
        "SELECT max(wait) FROM (
             SELECT extract(epoch FROM (min(at) + make_interval(secs => $3)) - now())::float8 AS wait
             FROM (SELECT at FROM sign_in_attempts
                   WHERE email = lower($1) AND NOT succeeded AND at > now() - make_interval(secs => $3)
                   ORDER BY at DESC LIMIT $4) f
             HAVING count(*) >= $4
             UNION ALL
             SELECT extract(epoch FROM (min(at) + make_interval(secs => $3)) - now())::float8
             FROM (SELECT at FROM sign_in_attempts
                   WHERE address = $2 AND NOT succeeded AND at > now() - make_interval(secs => $3)
                   ORDER BY at DESC LIMIT $4) f
             HAVING count(*) >= $4
         ) w",
    )
    .bind(email.trim())
    .bind(address)
    .bind(window)
    .bind(MAX_FAILURES)
    .fetch_one(db)
    .await?;
    Ok(wait.map(|w| w.ceil().max(1.0) as u64))
}

pub async fn record_attempt(db: &PgPool, email: &str, address: &str, succeeded: bool) -> DbResult<()> {
    sqlx::query("INSERT INTO sign_in_attempts (email, address, succeeded) VALUES (lower($1), $2, $3)")
        .bind(email.trim())
        .bind(address)
        .bind(succeeded)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM sign_in_attempts WHERE at < now() - interval '1 day'").execute(db).await?;
    Ok(())
}
