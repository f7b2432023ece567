//! The campaign editor: `GET /ui/campaigns/new` and `GET /ui/campaigns/{id}` show it, `POST` to the same
//! paths creates and saves, `POST /ui/campaigns/{id}/lifecycle` activates, pauses, ends or deletes after a
//! confirmation.
//!
//! The form's inputs are named by the API's field paths and decoded by the core ([`popup_core::form`]); a
//! save goes through the admin API's own functions ([`crate::admin::campaigns`]), so validation, the
//! lifecycle, the audit and publishing exist once. Without JavaScript the form submits and the server's
//! errors appear next to their fields; with it, `editor.js` runs the same decoding and validation compiled
//! to WebAssembly on every change and redraws the errors and the per-variant preview, with no round trip.
//! A viewer sees the campaign read-only, with no write button; a write they forge is refused by the
//! [`SignedInEditor`] extractor.
//!
//! Errors are shown in the person's language from the core's codes ([`Tr::field_error`]); the page gives
//! `editor.js` the same texts in a data attribute, so the errors found while typing read the same. Start
//! and end are shown and typed in the campaign's time zone, labelled with it, and converted to UTC by the
//! core's form decoding with the tz database's offsets ([`zone_offsets`]).

use std::collections::BTreeSet;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, SubsecRound, Utc};
use popup_core::campaign::FieldError;
use popup_core::form;
use popup_core::lifecycle::{Action, Shown};
use popup_core::spec::{CampaignSpec, VariantPreview};
use serde::Deserialize;

use super::i18n::Tr;
use super::{render, Chrome, PageResult};
use crate::admin::campaigns::{self as admin, CampaignView};
use crate::db::campaign_spec::{is_known_zone, segment_id, zone_names, zone_offsets};
use crate::db::campaigns::{self, CampaignRow};
use crate::db::segments;
use crate::http::session::{Refusal, SignedIn, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Path, Query};
use crate::state::AppState;

/// The days of a window, as the form writes them.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const PLATFORMS: [&str; 3] = ["ios", "android", "web"];
/// The lifecycle buttons, in the order shown.
const ACTIONS: [Action; 4] = [Action::Activate, Action::Pause, Action::End, Action::Delete];

/// Marks a response whose page runs the editor's WebAssembly, which the Content-Security-Policy must allow.
#[derive(Clone, Copy, Debug)]
pub struct RunsWasm;

/// The editor page, rendered, with its [`RunsWasm`] mark.
fn render_editor(page: &EditorPage) -> Response {
    let mut response = render(page);
    response.extensions_mut().insert(RunsWasm);
    response
}

/// The form as submitted or as encoded from a stored spec, with the errors to show next to its fields.
#[derive(Debug, Default)]
pub struct FormView {
    pairs: Vec<(String, String)>,
    errors: Vec<ShownError>,
}

/// A field error as the person reads it: the API's field path and the text in their language.
#[derive(Debug)]
pub struct ShownError {
    pub field: String,
    pub message: String,
}

impl FormView {
    /// The form with `errors` told in the person's language.
    fn with_errors(pairs: Vec<(String, String)>, errors: &[FieldError], tr: Tr) -> FormView {
        let errors = errors
            .iter()
            .map(|error| ShownError { field: error.field.clone(), message: tr.field_error(error) })
            .collect();
        FormView { pairs, errors }
    }
}

/// One row of variants or of windows: its path prefix (`variants[1]`) and index.
#[derive(Debug)]
pub struct Row {
    pub i: usize,
    pub p: String,
}

impl FormView {
    /// The first value of input `name`, or "".
    pub fn v(&self, name: &str) -> &str {
        self.pairs.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }

    /// `prefix.field`'s value, for rows.
    pub fn rv(&self, row: &Row, field: &str) -> &str {
        self.v(&format!("{}.{field}", row.p))
    }

    /// Whether input `name` holds `value` (checkboxes, radios, options).
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.pairs.iter().any(|(n, v)| n == name && v == value)
    }

    pub fn rhas(&self, row: &Row, field: &str, value: &str) -> bool {
        self.has(&format!("{}.{field}", row.p), value)
    }

    /// The rows of `prefix` the form holds, and one more, empty, to add one without JavaScript.
    pub fn rows(&self, prefix: &str, extra: bool) -> Vec<Row> {
        let held = self
            .pairs
            .iter()
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix(prefix)?.strip_prefix('[')?;
                rest.split_once(']')?.0.parse::<usize>().ok()
            })
            .max()
            .map_or(0, |last| last + 1);
        (0..held + usize::from(extra)).map(|i| Row { i, p: format!("{prefix}[{i}]") }).collect()
    }

    /// The messages to show at input `name`: its own errors, and those of the list's elements
    /// (`rules.countries[1]` shows at `rules.countries`).
    pub fn errs(&self, name: &str) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|e| {
                e.field == name
                    || e.field.strip_prefix(name).is_some_and(|rest| {
                        rest.starts_with('[') && rest.ends_with(']') && !rest[1..].contains('[')
                    })
            })
            .map(|e| e.message.as_str())
            .collect()
    }

    pub fn rerrs(&self, row: &Row, field: &str) -> Vec<&str> {
        self.errs(&format!("{}.{field}", row.p))
    }

    pub fn all_errors(&self) -> &[ShownError] {
        &self.errors
    }
}

/// A lifecycle button the person may press now.
#[derive(Debug)]
pub struct ActionButton {
    pub action: &'static str,
    /// Catalog key of its label: activating a campaign whose start is ahead schedules it.
    pub label: &'static str,
    pub danger: bool,
}

#[derive(Template)]
#[template(path = "ui/editor.html")]
struct EditorPage {
    c: Chrome,
    campaign: Option<CampaignView>,
    form: FormView,
    segments: Vec<String>,
    zones: Vec<&'static str>,
    actions: Vec<ActionButton>,
    preview: Vec<VariantPreview>,
    /// The schedule's start and end in UTC, when a zone other than UTC shows them.
    utc: Option<(String, String)>,
    /// A banner: `saved`, `created`, or a lifecycle action that just ran.
    notice: String,
    /// A refusal that concerns no field (the lifecycle's 409).
    problem: String,
    read_only: bool,
}

impl EditorPage {
    fn days(&self) -> &'static [&'static str] {
        &DAYS
    }

    fn platforms(&self) -> &'static [&'static str] {
        &PLATFORMS
    }

    fn action_path(&self) -> String {
        match &self.campaign {
            Some(campaign) => format!("/ui/campaigns/{}", campaign.id),
            None => "/ui/campaigns/new".into(),
        }
    }

    /// Whether the form offers an empty row to add a variant or a window.
    fn writable(&self) -> bool {
        !self.read_only
    }

    fn campaign_id(&self) -> i64 {
        self.campaign.as_ref().map_or(0, |c| c.id)
    }

    /// Segments to offer: the live ones, and any the form names that no longer exists (so its error shows
    /// beside it and it can be unticked).
    fn segment_choices(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.segments.iter().cloned().collect();
        for (name, value) in &self.form.pairs {
            if name == "audience.include.any_of" || name == "audience.exclude" {
                names.insert(value.clone());
            }
        }
        names.into_iter().collect()
    }

    fn status_key(&self) -> String {
        self.campaign.as_ref().map_or_else(String::new, |c| format!("status.{}", c.status.as_str()))
    }

    fn status_class(&self) -> &'static str {
        self.campaign.as_ref().map_or("", |c| c.status.as_str())
    }

    /// The JSON list of live segments, for the browser's validation.
    fn segments_json(&self) -> String {
        serde_json::to_string(&self.segments).unwrap_or_default()
    }

    /// The text of each validation code in the person's language, JSON by code, for the browser's
    /// validation (a data attribute: the CSP allows no inline script).
    fn validation_json(&self) -> String {
        serde_json::to_string(&self.c.tr.validation_texts()).unwrap_or_default()
    }

    /// The zone start and end are written in: the form's, when the tz database knows it, else UTC.
    fn zone_label(&self) -> &str {
        Some(self.form.v("schedule.time_zone")).filter(|zone| is_known_zone(zone)).unwrap_or("UTC")
    }

    /// The UTC instant of `schedule.start` or `schedule.end`, for the hint beside it; empty when the
    /// times are UTC already or the field is blank.
    fn utc_of(&self, field: &str) -> &str {
        if !self.form.errs(field).is_empty() {
            // A time that could not be read has a stand-in instant, which is no answer.
            return "";
        }
        match (&self.utc, field) {
            (Some((start, _)), "schedule.start") => start.as_str(),
            (Some((_, end)), "schedule.end") => end.as_str(),
            _ => "",
        }
    }

    fn extra_text(&self, preview: &VariantPreview, key: &str) -> String {
        preview.popup.as_ref().and_then(|p| p.extra.get(key).cloned()).unwrap_or_default()
    }
}

/// What the page needs besides the form.
struct Context {
    segments: Vec<String>,
    campaign: Option<(CampaignView, Vec<ActionButton>)>,
}

async fn context(
    state: &AppState,
    row: Option<CampaignRow>,
    signed_in: &SignedIn,
) -> Result<Context, Refusal> {
    let mut segments: Vec<String> =
        segments::ids_by_name(&state.db).await.map_err(ApiError::from)?.into_keys().collect();
    segments.sort();
    let may_write = Chrome::new(signed_in, "").can_write();
    let campaign = row.map(|row| {
        let actions = if may_write { buttons(&row) } else { Vec::new() };
        (admin::view(row, Utc::now()), actions)
    });
    Ok(Context { segments, campaign })
}

fn buttons(row: &CampaignRow) -> Vec<ActionButton> {
    let starts_later = row.spec.0.schedule.start > Utc::now();
    ACTIONS
        .into_iter()
        .filter(|action| admin::refusal(row, *action).is_none())
        .map(|action| ActionButton {
            action: action.as_str(),
            label: match action {
                Action::Activate if starts_later => "editor.action.schedule",
                Action::Activate => "editor.action.activate",
                Action::Pause => "editor.action.pause",
                Action::End => "editor.action.end",
                _ => "editor.action.delete",
            },
            danger: matches!(action, Action::End | Action::Delete),
        })
        .collect()
}

/// How the UTC hint writes an instant.
fn utc_text(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The editor page for `form`, with the preview and UTC hints of `spec` when it could be read.
fn page(
    signed_in: &SignedIn,
    context: Context,
    form: FormView,
    spec: Option<&CampaignSpec>,
    notice: &str,
    problem: String,
) -> EditorPage {
    let c = Chrome::new(signed_in, "/ui/campaigns");
    let id = context.campaign.as_ref().map_or(0, |(view, _)| view.id);
    let preview = spec.map(|spec| spec.preview(id)).unwrap_or_default();
    let utc = spec.filter(|spec| spec.schedule.time_zone.as_deref().is_some_and(is_known_zone)).map(|spec| {
        let schedule = &spec.schedule;
        (utc_text(&schedule.start), schedule.end.as_ref().map(utc_text).unwrap_or_default())
    });
    let ended = context.campaign.as_ref().is_some_and(|(view, _)| view.status == Shown::Ended);
    let read_only = !c.can_write() || ended;
    let (campaign, actions) = match context.campaign {
        Some((view, actions)) => (Some(view), actions),
        None => (None, Vec::new()),
    };
    EditorPage {
        c,
        campaign,
        form,
        segments: context.segments,
        zones: zone_names().collect(),
        actions,
        preview,
        utc,
        notice: notice.into(),
        problem,
        read_only,
    }
}

fn spec_form(spec: &CampaignSpec) -> FormView {
    FormView { pairs: form::encode(spec, zone_offsets), errors: Vec::new() }
}

/// `GET /ui/campaigns/new`: an empty campaign starting now, for everyone.
pub async fn new(State(state): State<AppState>, SignedInEditor(signed_in): SignedInEditor) -> PageResult {
    let now = Utc::now().trunc_subsecs(0);
    let start = now.format("%Y-%m-%dT%H:%M:%S").to_string();
    let pairs = vec![
        ("schedule.start".to_string(), start),
        ("priority".into(), "0".into()),
        ("audience.include".into(), "everyone".into()),
    ];
    let context = context(&state, None, &signed_in).await?;
    Ok(render_editor(&page(
        &signed_in,
        context,
        FormView { pairs, errors: Vec::new() },
        None,
        "",
        String::new(),
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    notice: Option<String>,
}

/// The banners a redirect may ask for.
const NOTICES: [&str; 6] = ["created", "saved", "activate", "pause", "end", "deleted"];

/// `GET /ui/campaigns/{id}`: the editor for an editor, the campaign read-only for a viewer.
pub async fn show(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    Path(id): Path<i64>,
    Query(query): Query<ShowQuery>,
) -> PageResult {
    let row = campaigns::get(&state.db, id).await.map_err(ApiError::from)?.ok_or(Refusal::NotFound)?;
    let spec = row.spec.0.clone();
    let context = context(&state, Some(row), &signed_in).await?;
    let notice = query.notice.as_deref().filter(|n| NOTICES.contains(n)).unwrap_or("");
    Ok(render_editor(&page(&signed_in, context, spec_form(&spec), Some(&spec), notice, String::new())))
}

/// The form's fields in order, the CSRF token left out.
fn fields(body: &Bytes) -> Result<Vec<(String, String)>, Refusal> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| Refusal::BadRequest("the form cannot be read".into()))?;
    Ok(pairs.into_iter().filter(|(name, _)| name != crate::http::csrf::FIELD).collect())
}

/// A refused save: the form again, as sent, with the errors next to their fields (422).
fn refused(
    signed_in: &SignedIn,
    context: Context,
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
    spec: Option<&CampaignSpec>,
    problem: String,
) -> Response {
    let form = FormView::with_errors(pairs, &errors, Tr::new(signed_in.person.language));
    let mut response = render_editor(&page(signed_in, context, form, spec, "", problem));
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    response
}

/// Decodes the form as the browser's editor does, then saves through the admin API's function; its
/// refusals come back as field errors (a segment deleted meanwhile) or as a problem (the lifecycle).
async fn save_form<F, Fut>(
    state: &AppState,
    signed_in: &SignedIn,
    row: Option<CampaignRow>,
    body: Bytes,
    write: F,
) -> PageResult
where
    F: FnOnce(CampaignSpec) -> Fut,
    Fut: std::future::Future<Output = Result<CampaignView, ApiError>>,
{
    let pairs = fields(&body)?;
    let id = row.as_ref().map_or(0, |row| row.id);
    let live = segments::ids_by_name(&state.db).await.map_err(ApiError::from)?;
    let checked = form::check(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        id,
        |name| segment_id(&live, name),
        zone_offsets,
    );
    if !checked.errors.is_empty() {
        let context = context(state, row, signed_in).await?;
        return Ok(refused(signed_in, context, pairs, checked.errors, Some(&checked.spec), String::new()));
    }
    let notice = if id == 0 { "created" } else { "saved" };
    match write(checked.spec.clone()).await {
        Ok(view) => Ok(Redirect::to(&format!("/ui/campaigns/{}?notice={notice}", view.id)).into_response()),
        Err(ApiError::Invalid(errors)) => {
            let context = context(state, row, signed_in).await?;
            Ok(refused(signed_in, context, pairs, errors, Some(&checked.spec), String::new()))
        }
        Err(ApiError::Conflict(message)) => {
            let context = context(state, row, signed_in).await?;
            Ok(refused(signed_in, context, pairs, Vec::new(), Some(&checked.spec), message))
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /ui/campaigns/new`: creates a draft.
pub async fn create(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    body: Bytes,
) -> PageResult {
    let actor = signed_in.person.actor();
    save_form(&state, &signed_in, None, body, |spec| {
        let state = state.clone();
        async move { admin::create_campaign(&state, &actor, &spec).await }
    })
    .await
}

/// `POST /ui/campaigns/{id}`: saves the campaign.
pub async fn save(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(id): Path<i64>,
    body: Bytes,
) -> PageResult {
    let row = campaigns::get(&state.db, id).await.map_err(ApiError::from)?.ok_or(Refusal::NotFound)?;
    let actor = signed_in.person.actor();
    save_form(&state, &signed_in, Some(row), body, |spec| {
        let state = state.clone();
        async move { admin::update_campaign(&state, &actor, id, &spec).await }
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct LifecycleForm {
    action: String,
    #[serde(default)]
    confirmed: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/editor_confirm.html")]
struct ConfirmPage {
    c: Chrome,
    campaign: CampaignView,
    action: &'static str,
    label: &'static str,
    danger: bool,
}

/// `POST /ui/campaigns/{id}/lifecycle`: without `confirmed`, a page that asks (the script asks in place and
/// sends `confirmed` itself); with it, the action, then back to the campaign (or the list after a delete).
pub async fn lifecycle(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(id): Path<i64>,
    body: Bytes,
) -> PageResult {
    let form: LifecycleForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| Refusal::BadRequest("the form cannot be read".into()))?;
    let action = ACTIONS
        .into_iter()
        .find(|action| action.as_str() == form.action)
        .ok_or_else(|| Refusal::BadRequest(format!("unknown action {:?}", form.action)))?;
    let row = campaigns::get(&state.db, id).await.map_err(ApiError::from)?.ok_or(Refusal::NotFound)?;
    if form.confirmed.is_none() {
        let button = buttons(&row).into_iter().find(|b| b.action == action.as_str());
        let Some(button) = button else {
            return conflict(&state, &signed_in, row, action).await;
        };
        let c = Chrome::new(&signed_in, "/ui/campaigns");
        let campaign = admin::view(row, Utc::now());
        return Ok(render(&ConfirmPage {
            c,
            campaign,
            action: button.action,
            label: button.label,
            danger: button.danger,
        }));
    }
    let actor = signed_in.person.actor();
    let done = match action {
        Action::Delete => admin::delete_campaign(&state, &actor, id).await.map(|()| None),
        _ => admin::transition(&state, &actor, id, action).await.map(|view| Some(view.0)),
    };
    match done {
        Ok(None) => Ok(Redirect::to("/ui/campaigns?notice=deleted").into_response()),
        Ok(Some(_)) => {
            Ok(Redirect::to(&format!("/ui/campaigns/{id}?notice={}", action.as_str())).into_response())
        }
        Err(ApiError::Conflict(_)) => conflict(&state, &signed_in, row, action).await,
        Err(ApiError::Invalid(errors)) => {
            // Activation validates again: a segment it names may have been deleted since it was saved.
            let spec = row.spec.0.clone();
            let context = context(&state, Some(row), &signed_in).await?;
            let pairs = form::encode(&spec, zone_offsets);
            Ok(refused(&signed_in, context, pairs, errors, Some(&spec), String::new()))
        }
        Err(other) => Err(other.into()),
    }
}

/// The campaign page with why the lifecycle refused `action` now (409).
async fn conflict(state: &AppState, signed_in: &SignedIn, row: CampaignRow, action: Action) -> PageResult {
    let refused_now = admin::refusal(&row, action).unwrap_or_default();
    let spec = row.spec.0.clone();
    let context = context(state, Some(row), signed_in).await?;
    let mut response =
        render_editor(&page(signed_in, context, spec_form(&spec), Some(&spec), "", refused_now));
    *response.status_mut() = axum::http::StatusCode::CONFLICT;
    Ok(response)
}
