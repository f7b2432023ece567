//! `/ui/settings`: the daily cap across campaigns (editors change it, through `admin::settings::apply`),
//! people and API keys (admins only; keys through `admin::keys::create_key`), and the audit log with each
//! write's before and after shown as a diff.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use popup_core::access::Role;
use serde::Deserialize;
use serde_json::Value;

use super::{render, Chrome, PageResult};
use crate::admin::keys::{create_key, NewKey};
use crate::admin::settings::{apply, Settings, MAX_DAILY_CAP};
use crate::db::audit::{self, AuditEntry};
use crate::db::keys::{self, KeyView};
use crate::db::people::{self, Change, Language, NewPerson, Person, PERSON_ROLES};
use crate::db::{settings, DbError};
use crate::http::session::{Refusal, SignedIn, SignedInAdmin, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Path, Query};
use crate::state::AppState;

/// One line of a diff: `-` for what was, `+` for what is.
#[derive(Debug)]
pub struct DiffLine {
    pub added: bool,
    pub text: String,
}

#[derive(Debug)]
pub struct AuditRow {
    pub entry: AuditEntry,
    pub diff: Vec<DiffLine>,
}

#[derive(Template)]
#[template(path = "ui/settings.html")]
struct SettingsPage {
    c: Chrome,
    cap: Option<u32>,
    max_cap: u32,
    people: Vec<Person>,
    keys: Vec<KeyView>,
    audit: Vec<AuditRow>,
    notice: Option<String>,
    problem: Option<String>,
    new_key: Option<String>,
}

impl SettingsPage {
    fn roles(&self) -> &'static [Role] {
        &PERSON_ROLES
    }
}

/// The leaves of a JSON value by path (`creative.title`, `variants.0.weight`).
fn flatten(value: &Value, path: String, into: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(inner, if path.is_empty() { key.clone() } else { format!("{path}.{key}") }, into);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (at, inner) in items.iter().enumerate() {
                flatten(inner, format!("{path}.{at}"), into);
            }
        }
        other => {
            into.insert(path, other.to_string());
        }
    }
}

/// What changed from `before` to `after`, by path: removed and old values first, then the new ones.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<DiffLine> {
    let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
    if let Some(before) = before {
        flatten(before, String::new(), &mut old);
    }
    if let Some(after) = after {
        flatten(after, String::new(), &mut new);
    }
    let mut lines = Vec::new();
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (was, is) = (old.get(path), new.get(path));
        if was == is {
            continue;
        }
        if let Some(was) = was {
            lines.push(DiffLine { added: false, text: format!("{path}: {was}") });
        }
        if let Some(is) = is {
            lines.push(DiffLine { added: true, text: format!("{path}: {is}") });
        }
    }
    lines
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    notice: Option<String>,
    problem: Option<String>,
    new_key: Option<String>,
) -> Result<SettingsPage, Refusal> {
    let c = Chrome::new(signed_in, "/ui/settings");
    let cap = settings::max_popups_per_day(&state.db).await.map_err(ApiError::from)?;
    let (people, keys) = if c.is_admin() {
        let people = people::list(&state.db).await.map_err(ApiError::from)?;
        let (keys, _) = keys::list(&state.db, 100, 0).await.map_err(ApiError::from)?;
        (people, keys)
    } else {
        (Vec::new(), Vec::new())
    };
    let (entries, _) = audit::list(&state.db, None, None, 50, 0).await.map_err(ApiError::from)?;
    let audit = entries
        .into_iter()
        .map(|entry| AuditRow { diff: diff(entry.before.as_ref(), entry.after.as_ref()), entry })
        .collect();
    Ok(SettingsPage { c, cap, max_cap: MAX_DAILY_CAP, people, keys, audit, notice, problem, new_key })
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// `GET /ui/settings`.
pub async fn show(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ShowQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let c = Chrome::new(&signed_in, "/ui/settings");
    let notice = match query.done.as_deref() {
        Some(done @ ("cap" | "person" | "person_changed" | "key_revoked")) => {
            Some(c.t(&format!("settings.done.{done}")))
        }
        _ => None,
    };
    Ok(render(&page(&state, &signed_in, notice, None, None).await?))
}

fn done(what: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/ui/settings?done={what}"))]).into_response()
}

/// The page again with `problem`, answered with `status`.
async fn refused(state: &AppState, signed_in: &SignedIn, status: StatusCode, problem: String) -> PageResult {
    let mut response = render(&page(state, signed_in, None, Some(problem), None).await?);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CapForm {
    #[serde(default)]
    max_popups_per_day: String,
}

/// `POST /ui/settings/cap`: empty for no cap.
pub async fn set_cap(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Form(form): Form<CapForm>,
) -> PageResult {
    let c = Chrome::new(&signed_in, "/ui/settings");
    let raw = form.max_popups_per_day.trim();
    let value = if raw.is_empty() {
        None
    } else {
        match raw.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let problem = c.t1("settings.cap.invalid", MAX_DAILY_CAP);
                return refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, problem).await;
            }
        }
    };
    match apply(&state, &signed_in.person.actor(), &Settings { max_popups_per_day: value }).await {
        Ok(()) => Ok(done("cap")),
        Err(ApiError::Invalid(_)) => {
            let problem = c.t1("settings.cap.invalid", MAX_DAILY_CAP);
            refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, problem).await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct PersonForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    password: String,
}

/// `POST /ui/settings/people`: a new account.
pub async fn add_person(
    State(state): State<AppState>,
    SignedInAdmin(signed_in): SignedInAdmin,
    Form(form): Form<PersonForm>,
) -> PageResult {
    let c = Chrome::new(&signed_in, "/ui/settings");
    let new = NewPerson {
        email: &form.email,
        display_name: &form.display_name,
        role: Role::parse(&form.role).unwrap_or(Role::Conversions),
        language: Language::parse(&form.language).unwrap_or(Language::En),
        password: &form.password,
    };
    if let Err(refused_field) = people::check_new(&new) {
        let problem = c.t(&format!("settings.person.bad.{}", refused_field.field));
        return refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, problem).await;
    }
    match people::create(&state.db, &signed_in.person.actor(), &new).await {
        Ok(_) => Ok(done("person")),
        Err(DbError::Duplicate) => {
            refused(&state, &signed_in, StatusCode::CONFLICT, c.t("settings.person.duplicate")).await
        }
        Err(other) => Err(ApiError::from(other).into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    role: Option<String>,
    /// `true` or `false`.
    disabled: Option<String>,
    password: Option<String>,
}

/// `POST /ui/settings/people/{id}`: a role, enabled or disabled, or a new password.
pub async fn change_person(
    State(state): State<AppState>,
    SignedInAdmin(signed_in): SignedInAdmin,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> PageResult {
    let c = Chrome::new(&signed_in, "/ui/settings");
    let role = match form.role.as_deref() {
        Some(raw) => Some(
            Role::parse(raw)
                .filter(|r| PERSON_ROLES.contains(r))
                .ok_or(Refusal::BadRequest("role".into()))?,
        ),
        None => None,
    };
    let disabled = form.disabled.as_deref().map(|d| d == "true");
    let password = form.password.as_deref().filter(|p| !p.is_empty());
    if let Some(password) = password {
        if people::check_password(password).is_err() {
            let problem = c.t("settings.person.bad.password");
            return refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, problem).await;
        }
    }
    if id == signed_in.person.id && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin)) {
        return refused(&state, &signed_in, StatusCode::CONFLICT, c.t("settings.person.not_yourself")).await;
    }
    let change = Change { role, disabled, password };
    people::change(&state.db, &signed_in.person.actor(), id, &change)
        .await
        .map_err(ApiError::from)?
        .ok_or(Refusal::NotFound)?;
    Ok(done("person_changed"))
}

#[derive(Debug, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `POST /ui/settings/keys`: the page shows the new key once.
pub async fn add_key(
    State(state): State<AppState>,
    SignedInAdmin(signed_in): SignedInAdmin,
    Form(form): Form<KeyForm>,
) -> PageResult {
    let c = Chrome::new(&signed_in, "/ui/settings");
    let Some(role) = Role::parse(&form.role) else {
        return refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, c.t("settings.key.bad_role"))
            .await;
    };
    match create_key(&state, &signed_in.person.actor(), &NewKey { name: form.name, role }).await {
        Ok(created) => {
            let notice = Some(c.t("settings.key.created"));
            Ok(render(&page(&state, &signed_in, notice, None, Some(created.key)).await?))
        }
        Err(ApiError::Invalid(_)) => {
            refused(&state, &signed_in, StatusCode::UNPROCESSABLE_ENTITY, c.t("settings.key.bad_name")).await
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /ui/settings/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    SignedInAdmin(signed_in): SignedInAdmin,
    Path(id): Path<i64>,
) -> PageResult {
    if keys::revoke(&state.db, &signed_in.person.actor(), id).await.map_err(ApiError::from)? {
        Ok(done("key_revoked"))
    } else {
        Err(Refusal::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_lists_changed_leaves_by_path() {
        let before = json!({"name": "A", "caps": {"per_day": 1}, "placements": ["home"]});
        let after = json!({"name": "B", "caps": {"per_day": 1}, "placements": ["home", "login"]});
        let lines: Vec<(bool, String)> =
            diff(Some(&before), Some(&after)).into_iter().map(|l| (l.added, l.text)).collect();
        assert_eq!(
            lines,
            [
                (false, "name: \"A\"".into()),
                (true, "name: \"B\"".into()),
                (true, "placements.1: \"login\"".into())
            ]
        );
        assert_eq!(diff(None, Some(&json!({"role": "admin"})))[0].text, "role: \"admin\"");
    }
}
