//! People who sign in to the dashboard: an email (unique whatever its case), a display name, a role (the
//! same roles as API keys, `popup_core::access::Role`), a password hashed with Argon2id, a language, and a
//! disabled flag. Passwords are hashed and checked here, on a blocking thread: Argon2id is slow on purpose.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use popup_core::access::Role;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use super::audit::{self, Actor};
use super::{DbError, DbResult};

/// The languages of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Id,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Id];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Id => "id",
        }
    }

    pub fn parse(raw: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.as_str() == raw)
    }
}

/// The roles a person may hold (`conversions` is for the bank's backend, a machine).
pub const PERSON_ROLES: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

/// A role a person may hold, as given on the command line.
#[derive(Clone, Copy, Debug)]
pub struct PersonRole(pub Role);

impl PersonRole {
    pub fn parse(raw: &str) -> Option<PersonRole> {
        Role::parse(raw).filter(|role| PERSON_ROLES.contains(role)).map(PersonRole)
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub language: Language,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl Person {
    /// Who acted, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor { key_id: None, person_id: Some(self.id), name: self.display_name.clone(), role: self.role }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PersonRow {
    id: i64,
    email: String,
    display_name: String,
    role: String,
    language: String,
    disabled: bool,
    created_at: DateTime<Utc>,
}

impl PersonRow {
    pub(crate) fn person(self) -> DbResult<Person> {
        // The table's check constraints admit only known roles and languages.
        let role = Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?;
        let language = Language::parse(&self.language).ok_or_else(|| corrupt("language", &self.language))?;
        Ok(Person {
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            role,
            language,
            disabled: self.disabled,
            created_at: self.created_at,
        })
    }
}

fn corrupt(column: &str, value: &str) -> DbError {
    DbError::Query(sqlx::Error::Protocol(format!("people.{column} holds {value:?}")))
}

pub(crate) const COLUMNS: &str = "id, email, display_name, role, language, disabled, created_at";

/// What a new account needs.
#[derive(Debug)]
pub struct NewPerson<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub language: Language,
    pub password: &'a str,
}

/// Why an account's fields were refused, by field.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub message: &'static str,
}

/// Checks what a person typed, before anything is hashed or stored.
pub fn check_new(new: &NewPerson<'_>) -> Result<(), Refused> {
    let email = new.email.trim();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !plausible {
        return Err(Refused { field: "email", message: "must be an email address" });
    }
    let name = new.display_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Refused { field: "display_name", message: "must be 1-100 characters" });
    }
    if !PERSON_ROLES.contains(&new.role) {
        return Err(Refused { field: "role", message: "must be viewer, editor or admin" });
    }
    check_password(new.password)
}

pub fn check_password(password: &str) -> Result<(), Refused> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(Refused { field: "password", message: "must be 12 to 1024 characters" });
    }
    Ok(())
}

/// Argon2id with the crate's default parameters (19 MiB, 2 passes), which OWASP recommends as a minimum.
async fn hash_password(password: &str) -> DbResult<String> {
    let password = password.to_string();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal(format!("no randomness: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| internal(e.to_string()))
    })
    .await
    .map_err(|e| internal(e.to_string()))?
}

fn internal(message: String) -> DbError {
    DbError::Query(sqlx::Error::Protocol(message))
}

/// A hash of a password nobody has, checked when the email is unknown so that an unknown account takes as
/// long to refuse as a wrong password.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K5Bq0N0RrPUXxwDTGM6G0QCX3rQGnrM0Zc4BfW3XgkM";

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Creates an account; `Duplicate` if the email (in any case) has one.
pub async fn create(db: &PgPool, actor: &Actor, new: &NewPerson<'_>) -> DbResult<Person> {
    let hash = hash_password(new.password).await?;
    let mut tx = db.begin().await?;
    let row: PersonRow = sqlx::query_as(&format!(
        "INSERT INTO people (email, display_name, role, language, password_hash) VALUES ($1, $2, $3, $4, $5)
         RETURNING {COLUMNS}"
    ))
    .bind(new.email.trim())
    .bind(new.display_name.trim())
    .bind(new.role.as_str())
    .bind(new.language.as_str())
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    let person = row.person()?;
    let after = json!({"email": person.email, "display_name": person.display_name, "role": person.role});
    audit::record(&mut tx, actor, "create", "person", &person.id.to_string(), None, Some(after)).await?;
    tx.commit().await?;
    Ok(person)
}

/// The person whose email (any case) and password these are, if the account is enabled.
pub async fn authenticate(db: &PgPool, email: &str, password: &str) -> DbResult<Option<Person>> {
    let row: Option<(String, PersonRow)> = sqlx::query_as::<_, PersonWithHash>(&format!(
        "SELECT {COLUMNS}, password_hash FROM people WHERE lower(email) = lower($1)"
    ))
    .bind(email.trim())
    .fetch_optional(db)
    .await?
    .map(|r| (r.password_hash, r.row));
    let known = row.is_some();
    let hash = row.as_ref().map_or(DECOY_HASH.to_string(), |(hash, _)| hash.clone());
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
        .await
        .map_err(|e| internal(e.to_string()))?;
    match row {
        Some((_, row)) if known && matches && !row.disabled => Ok(Some(row.person()?)),
        _ => Ok(None),
    }
}

#[derive(sqlx::FromRow)]
struct PersonWithHash {
    #[sqlx(flatten)]
    row: PersonRow,
    password_hash: String,
}

pub async fn get(db: &PgPool, id: i64) -> DbResult<Option<Person>> {
    let row: Option<PersonRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM people WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(PersonRow::person).transpose()
}

/// Everyone, by email.
pub async fn list(db: &PgPool) -> DbResult<Vec<Person>> {
    let rows: Vec<PersonRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM people ORDER BY lower(email)")).fetch_all(db).await?;
    rows.into_iter().map(PersonRow::person).collect()
}

/// What an admin may change of an account; `None` keeps the field.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<&'a str>,
}

/// Changes person `id`; `None` if there is no such person. Disabling an account or resetting its password
/// ends its sessions.
pub async fn change(db: &PgPool, actor: &Actor, id: i64, change: &Change<'_>) -> DbResult<Option<Person>> {
    let hash = match change.password {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    let before: Option<PersonRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM people WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(before) = before else { return Ok(None) };
    let before = before.person()?;
    let row: PersonRow = sqlx::query_as(&format!(
        "UPDATE people SET role = coalesce($2, role), disabled = coalesce($3, disabled),
             password_hash = coalesce($4, password_hash), updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(change.role.map(Role::as_str))
    .bind(change.disabled)
    .bind(hash.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    let after = row.person()?;
    if after.disabled || change.password.is_some() {
        sqlx::query("DELETE FROM sessions WHERE person_id = $1").bind(id).execute(&mut *tx).await?;
    }
    let shown = |p: &Person| json!({"role": p.role, "disabled": p.disabled});
    let mut after_json = shown(&after);
    if change.password.is_some() {
        after_json["password"] = json!("reset");
    }
    audit::record(
        &mut tx,
        actor,
        "update",
        "person",
        &id.to_string(),
        Some(shown(&before)),
        Some(after_json),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(after))
}

/// The person's own choice of language; not audited (it changes nothing anyone else sees).
pub async fn set_language(db: &PgPool, id: i64, language: Language) -> DbResult<()> {
    sqlx::query("UPDATE people SET language = $2 WHERE id = $1")
        .bind(id)
        .bind(language.as_str())
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(email: &'a str, password: &'a str) -> NewPerson<'a> {
        NewPerson { email, display_name: "Ani", role: Role::Editor, language: Language::Id, password }
    }

    #[test]
    fn accounts_need_an_address_a_name_a_person_role_and_a_long_password() {
        assert_eq!(check_new(&new("ani@bank.example", "correct horse battery")), Ok(()));
        assert_eq!(check_new(&new("ani", "correct horse battery")).unwrap_err().field, "email");
        assert_eq!(check_new(&new("a b@bank.example", "correct horse battery")).unwrap_err().field, "email");
        assert_eq!(check_new(&new("ani@bank.example", "short")).unwrap_err().field, "password");
        let machine =
            NewPerson { role: Role::Conversions, ..new("ani@bank.example", "correct horse battery") };
        assert_eq!(check_new(&machine).unwrap_err().field, "role");
    }

    #[test]
    fn the_decoy_hash_parses_and_matches_nothing_typed() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_blocking("password", DECOY_HASH));
    }
}
