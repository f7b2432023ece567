//! The backoffice editor's WebAssembly module: the core's own validation ([`popup_core::spec`]), form
//! decoding ([`popup_core::form`]) and popup preview, for the browser, so the editor refuses what the
//! server refuses, with the same field paths, on every keystroke and without a round trip.
//!
//! A thin adapter: it holds no rules. Strings cross the boundary as JSON (cheaper than building `JsValue`
//! trees), and the page gives what only the server knows, the live segments and the tz database's zone
//! names, once, to [`Editor::new`].

use std::collections::{BTreeMap, BTreeSet};

use popup_core::campaign::FieldError;
use popup_core::form;
use popup_core::ids::SegmentId;
use popup_core::spec::{CampaignSpec, VariantPreview};
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
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<CampaignSpec>,
    pub preview: Vec<VariantPreview>,
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
            |zone| self.zones.contains(zone),
        );
        let preview = checked.spec.preview(self.id);
        to_json(&Report { errors: checked.errors, spec: Some(checked.spec), preview })
    }

    /// Validates a campaign as `POST /admin/v1/campaigns` takes it (JSON text). A body that does not parse
    /// is one error at the path the parser stopped at, as the API's `invalid_body` names it.
    #[wasm_bindgen(js_name = validateSpec)]
    pub fn validate_spec(&self, json: &str) -> String {
        to_json(&self.report(json))
    }
}

impl Editor {
    /// [`Editor::validate_spec`], before it becomes JSON.
    pub fn report(&self, json: &str) -> Report {
        let mut parser = serde_json::Deserializer::from_str(json);
        let spec: CampaignSpec = match serde_path_to_error::deserialize(&mut parser) {
            Ok(spec) => spec,
            Err(error) => {
                let field = error.path().to_string();
                let message = error.into_inner().to_string();
                return Report {
                    errors: vec![FieldError { field, message }],
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
            Err(found) => found.0,
        };
        Report { errors, preview: spec.preview(self.id), spec: Some(spec) }
    }
}

fn unreadable(field: &str, message: &str) -> String {
    let errors = vec![FieldError { field: field.into(), message: message.into() }];
    to_json(&Report { errors, spec: None, preview: Vec::new() })
}

fn to_json(report: &Report) -> String {
    // Serializing these types cannot fail: every map key is a string.
    serde_json::to_string(report).unwrap_or_default()
}
