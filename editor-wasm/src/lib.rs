//! The backoffice editor's WebAssembly module: the core's own validation ([`popup_core::spec`]), form
//! decoding ([`popup_core::form`]) and popup preview, for the browser, so the editor refuses what the
//! server refuses, with the same field paths, on every keystroke and without a round trip.
//!
//! A thin adapter: it holds no rules. Strings cross the boundary as JSON (cheaper than building `JsValue`
//! trees), and the page gives what only the server knows, the live segments and the tz database's zone
//! names, once, to [`Editor::new`]. The zones' offsets come from the same tz database as the origin's
//! (the core's `tzdb` feature, the same `chrono-tz` of `Cargo.lock`), so a start typed in Jakarta time is
//! the same UTC instant here and on the server. Each error carries the core's code and parameters, which
//! the page turns into the person's language.

use std::collections::{BTreeMap, BTreeSet};

use popup_core::campaign::FieldError;
use popup_core::form;
use popup_core::ids::{SegmentId, Timestamp};
use popup_core::spec::{CampaignSpec, VariantPreview};
use popup_core::zone::{self, ZoneOffsets};
use serde::Serialize;
use wasm_bindgen::prelude::wasm_bindgen;

/// What the server knows that a spec's validation needs.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Editor {
    id: i64,
    /// Live segments by name. The ids are stand-ins: the rules only compare them with each other.
    segments: BTreeMap<String, SegmentId>,
    zones: BTreeSet<String>,
}

/// The answer to every check: the problems (empty when the spec is valid) and, when the spec could be read,
/// the popup of each variant.
#[derive(Debug, Serialize)]
pub struct Report {
    pub errors: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<CampaignSpec>,
    pub preview: Vec<VariantPreview>,
}

/// One error as the page shows it: the API's field path and English message, and, for the core's
/// problems, the code (`validation.<code>` in the page's catalog) and the parameters' values by name.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<&'static str, String>,
}

impl From<FieldError> for Problem {
    fn from(error: FieldError) -> Problem {
        Problem {
            field: error.field,
            message: error.message,
            code: error.code.map(|code| code.as_str()),
            params: error.params.into_iter().collect(),
        }
    }
}

fn problems(errors: Vec<FieldError>) -> Vec<Problem> {
    errors.into_iter().map(Problem::from).collect()
}

#[wasm_bindgen]
impl Editor {
    /// `segments` and `zones` are JSON lists of names; `id` is the campaign's (0 for a new one), shown in
    /// the preview's `campaign_id`.
    #[wasm_bindgen(constructor)]
    pub fn new(id: i64, segments: &str, zones: &str) -> Editor {
        let names = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
        Editor {
            id,
            segments: names(segments).into_iter().zip(1..).map(|(name, id)| (name, SegmentId(id))).collect(),
            zones: names(zones).into_iter().collect(),
        }
    }

    /// Decodes and validates the editor's form, given as a JSON list of `[name, value]` pairs in form order
    /// (what `FormData` holds), as the origin does with a submitted form. Returns a [`Report`] as JSON.
    #[wasm_bindgen(js_name = checkForm)]
    pub fn check_form(&self, pairs: &str) -> String {
        let pairs: Vec<(String, String)> = match serde_json::from_str(pairs) {
            Ok(pairs) => pairs,
            Err(error) => return unreadable(".", &error.to_string()),
        };
        let checked = form::check(
            pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())),
            self.id,
            |name| self.segments.get(name).copied(),
            |name, around| self.offsets(name, around),
        );
        let preview = checked.spec.preview(self.id);
        to_json(&Report { errors: problems(checked.errors), spec: Some(checked.spec), preview })
    }

    /// Validates a campaign as `POST /admin/v1/campaigns` takes it (JSON text). A body that does not parse
    /// is one error at the path the parser stopped at, as the API's `invalid_body` names it.
    #[wasm_bindgen(js_name = validateSpec)]
    pub fn validate_spec(&self, json: &str) -> String {
        to_json(&self.report(json))
    }
}

impl Editor {
    /// The offsets of a zone the page listed, around `instant`.
    fn offsets(&self, name: &str, instant: Timestamp) -> Option<ZoneOffsets> {
        if !self.zones.contains(name) {
            return None;
        }
        zone::around(name, instant).ok()
    }

    /// [`Editor::validate_spec`], before it becomes JSON.
    pub fn report(&self, json: &str) -> Report {
        let mut parser = serde_json::Deserializer::from_str(json);
        let spec: CampaignSpec = match serde_path_to_error::deserialize(&mut parser) {
            Ok(spec) => spec,
            Err(error) => {
                let field = error.path().to_string();
                let message = error.into_inner().to_string();
                return Report {
                    errors: vec![Problem { field, message, code: None, params: BTreeMap::new() }],
                    spec: None,
                    preview: Vec::new(),
                };
            }
        };
        let errors = match spec.to_campaign(
            self.id,
            |name| self.segments.get(name).copied(),
            |zone| self.zones.contains(zone),
        ) {
            Ok(_) => Vec::new(),
            Err(found) => problems(found.0),
        };
        Report { errors, preview: spec.preview(self.id), spec: Some(spec) }
    }
}

fn unreadable(field: &str, message: &str) -> String {
    let errors = problems(vec![FieldError::new(field, message)]);
    to_json(&Report { errors, spec: None, preview: Vec::new() })
}

fn to_json(report: &Report) -> String {
    // Serializing these types cannot fail: every map key is a string.
    serde_json::to_string(report).unwrap_or_default()
}
