//! The JSON bodies and query parameters of the public API, shared by the edge and the origin so that both
//! accept and answer exactly the same things.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::campaign::{Creative, FieldError};
use crate::context::RequestContext;
use crate::ids::{CampaignId, Timestamp, UserId};
use crate::resolve::{Decision, Rule, Selection, Skip};

/// The longest placement, locale or version string accepted from a query.
const MAX_PARAM_LEN: usize = 64;

/// `GET /v1/campaigns/popup` parameters. Unknown parameters are ignored so older servers accept newer apps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PopupQuery {
    /// Absent when the customer is identified by a signed token instead.
    pub user: Option<UserId>,
    pub context: RequestContext,
}

impl PopupQuery {
    /// Parses decoded query pairs. The country is not taken from the query: it comes from the platform's
    /// request metadata, which the app cannot forge.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<PopupQuery, FieldError> {
        let mut query = PopupQuery::default();
        let invalid = |field: &str, message: &str| FieldError::new(field, message);
        for (name, value) in pairs {
            if value.len() > MAX_PARAM_LEN && name != "user_id" {
                return Err(invalid(name, "is too long"));
            }
            match name {
                "user_id" => {
                    query.user =
                        Some(UserId::parse(value).map_err(|e| invalid(name, &alloc::format!("{e}")))?);
                }
                "placement" => query.context.placement = Some(value.into()),
                "platform" => query.context.platform = Some(value.parse().map_err(|e| invalid(name, e))?),
                "app_version" => {
                    query.context.app_version = Some(value.parse().map_err(|e| invalid(name, e))?)
                }
                "locale" => query.context.locale = Some(value.into()),
                _ => {}
            }
        }
        Ok(query)
    }
}

/// The popup the app shows: `200` body of `GET /v1/campaigns/popup`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopupResponse {
    pub campaign_id: CampaignId,
    pub variant: String,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Post it back with impression, click and dismiss events.
    pub impression_token: String,
}

impl PopupResponse {
    pub fn new(selection: &Selection<'_>, impression_token: String) -> PopupResponse {
        PopupResponse::from_creative(
            selection.campaign.id,
            selection.variant,
            selection.creative,
            impression_token,
        )
    }

    /// The popup showing `creative` as `variant` of `campaign_id`.
    pub fn from_creative(
        campaign_id: CampaignId,
        variant: &str,
        creative: &Creative,
        impression_token: String,
    ) -> PopupResponse {
        PopupResponse {
            campaign_id,
            variant: variant.into(),
            title: creative.title.clone(),
            body: creative.body.clone(),
            image_url: creative.image_url.clone(),
            action_url: creative.action_url.clone(),
            extra: creative.extra.clone(),
            impression_token,
        }
    }
}

/// Body of `POST /v1/campaigns/{id}/impression|click|dismiss`. Unknown fields are ignored, like unknown query
/// parameters, so older servers accept newer apps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRequest {
    /// Absent when the customer is identified by a signed token instead.
    #[serde(default)]
    pub user_id: Option<UserId>,
    pub impression_token: String,
}

/// Every error body: `{"error": {"code": "...", "message": "...", "fields": [...]}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `invalid_request`, `store_unavailable`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl ErrorResponse {
    pub fn new(code: &str, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            error: ErrorDetail { code: code.into(), message: message.into(), fields: Vec::new() },
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> ErrorResponse {
        self.error.fields = fields;
        self
    }
}

/// The admin preview: what a customer would see at `at`, and why every other campaign was skipped.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub at: Timestamp,
    pub catalog_version: u64,
    pub chosen: Option<ChosenCampaign>,
    pub skipped: Vec<SkippedCampaign>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenCampaign {
    pub campaign_id: CampaignId,
    pub name: String,
    pub variant: String,
}

/// A campaign the preview did not choose, and why. In JSON the reason is a plain code, with the rule beside
/// it for a rule mismatch, so clients read one string field whatever the reason:
/// `{"campaign_id": 3, "reason": "rule_mismatch", "rule": "platform"}`,
/// `{"campaign_id": 1, "reason": "not_started"}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SkippedJson")]
pub struct SkippedCampaign {
    pub campaign_id: CampaignId,
    pub reason: Skip,
}

impl Serialize for SkippedCampaign {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let rule = match self.reason {
            Skip::RuleMismatch(rule) => Some(rule),
            _ => None,
        };
        let mut json = serializer.serialize_struct("SkippedCampaign", 2 + usize::from(rule.is_some()))?;
        json.serialize_field("campaign_id", &self.campaign_id)?;
        json.serialize_field("reason", self.reason.code())?;
        match rule {
            Some(rule) => json.serialize_field("rule", rule.as_str())?,
            None => json.skip_field("rule")?,
        }
        json.end()
    }
}

// The schema of a skipped campaign is that of its JSON form.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for SkippedCampaign {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <SkippedJson as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for SkippedCampaign {
    fn name() -> alloc::borrow::Cow<'static, str> {
        <SkippedJson as utoipa::ToSchema>::name()
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <SkippedJson as utoipa::ToSchema>::schemas(schemas)
    }
}

/// The JSON form of [`SkippedCampaign`], for reading it back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = SkippedCampaign))]
#[derive(Deserialize)]
struct SkippedJson {
    campaign_id: CampaignId,
    /// Why (`Skip::code`); `rule_mismatch` comes with `rule`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "rule_mismatch", pattern = "^(not_started|ended|outside_window|budget_exhausted|wrong_placement|rule_mismatch|not_in_audience|excluded|total_cap|daily_cap|interval|global_daily_cap|restoring|holdout|lower_priority)$"))]
    reason: String,
    #[serde(default)]
    rule: Option<Rule>,
}

impl TryFrom<SkippedJson> for SkippedCampaign {
    type Error = String;

    fn try_from(json: SkippedJson) -> Result<Self, Self::Error> {
        let reason = Skip::from_code(&json.reason, json.rule).ok_or_else(|| {
            alloc::format!("unknown skip reason \"{}\" (or rule_mismatch without a rule)", json.reason)
        })?;
        Ok(SkippedCampaign { campaign_id: json.campaign_id, reason })
    }
}

impl Explanation {
    pub fn new(decision: &Decision<'_>, at: Timestamp, catalog_version: u64) -> Explanation {
        Explanation {
            at,
            catalog_version,
            chosen: decision.chosen.as_ref().map(|s| ChosenCampaign {
                campaign_id: s.campaign.id,
                name: s.campaign.name.clone(),
                variant: s.variant.into(),
            }),
            skipped: decision
                .trace
                .iter()
                .map(|&(campaign_id, reason)| SkippedCampaign { campaign_id, reason })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{AppVersion, Platform};

    #[test]
    fn popup_query_parses_known_parameters_and_ignores_others() {
        let query = PopupQuery::parse([
            ("user_id", "c-1"),
            ("placement", "home"),
            ("platform", "ios"),
            ("app_version", "5.2.0"),
            ("locale", "id-ID"),
            ("utm_source", "x"),
            ("country", "SG"),
        ])
        .unwrap();
        assert_eq!(query.user.unwrap().as_str(), "c-1");
        assert_eq!(query.context.placement.as_deref(), Some("home"));
        assert_eq!(query.context.platform, Some(Platform::Ios));
        assert_eq!(query.context.app_version, Some(AppVersion::new(5, 2, 0)));
        assert_eq!(query.context.locale.as_deref(), Some("id-ID"));
        assert_eq!(query.context.country, None, "country never comes from the query");
    }

    #[test]
    fn popup_query_rejects_bad_values_naming_the_field() {
        for (name, value) in
            [("user_id", "a b"), ("platform", "nokia"), ("app_version", "x"), ("locale", &"x".repeat(65))]
        {
            let error = PopupQuery::parse([(name, value)]).unwrap_err();
            assert_eq!(error.field, name);
        }
    }

    #[test]
    fn event_request_accepts_unknown_fields_but_requires_the_token() {
        let parse = serde_json::from_str::<EventRequest>;
        let plain = parse(r#"{"user_id":"u","impression_token":"t"}"#).unwrap();
        // A newer app may send fields this server does not know yet.
        let newer = parse(r#"{"user_id":"u","impression_token":"t","x":1,"shown_ms":{"a":[1]}}"#).unwrap();
        assert_eq!(newer, plain);
        assert_eq!(parse(r#"{"impression_token":"t"}"#).unwrap().user_id, None);
        assert!(parse(r#"{"user_id":"u"}"#).is_err());
        assert!(parse(r#"{"user_id":"u","x":1}"#).is_err());
        assert!(parse(r#"{"user_id":"{bad}","impression_token":"t"}"#).is_err());
    }
}
