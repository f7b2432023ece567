//! The exact JSON of the API bodies built from a decision: the app and the backoffice parse these, so any
//! change of shape must be deliberate and show up here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::context::{Platform, RequestContext};
use popup_core::ids::CampaignId;
use popup_core::resolve::{Rule, Skip};
use popup_core::user::UserState;
use popup_core::wire::{Explanation, PopupResponse, SkippedCampaign};

/// Campaign 1 wants iOS, 2 has not started, 3 (if `ids` has it) is shown, 4 comes after it.
fn explanation(ids: &[u64]) -> Explanation {
    let mut ios_only = campaign(1);
    ios_only.priority = 9;
    ios_only.rules.platforms = vec![Platform::Ios];
    let mut later = campaign(2);
    later.priority = 8;
    later.schedule.start = T0.plus(DAY);
    let mut shown = campaign(3);
    shown.priority = 7;
    let mut campaigns = vec![ios_only, later, shown, campaign(4)];
    campaigns.retain(|c| ids.contains(&c.id.0));
    let catalog = catalog(campaigns);
    let context = RequestContext { platform: Some(Platform::Android), ..RequestContext::default() };
    let decision = explain_for(&catalog, &user("u"), &UserState::default(), &context, T0.plus(HOUR));
    Explanation::new(&decision, T0.plus(HOUR), catalog.version())
}

#[test]
fn an_explanation_names_each_reason_as_a_string_and_the_rule_beside_it() {
    let explanation = explanation(&[1, 2, 3, 4]);
    assert_eq!(
        serde_json::to_string(&explanation).unwrap(),
        concat!(
            r#"{"at":1767229200,"catalog_version":1,"#,
            r#""chosen":{"campaign_id":3,"name":"campaign 3","variant":"default"},"#,
            r#""skipped":[{"campaign_id":1,"reason":"rule_mismatch","rule":"platform"},"#,
            r#"{"campaign_id":2,"reason":"not_started"},"#,
            r#"{"campaign_id":4,"reason":"lower_priority"}]}"#,
        )
    );
    // The Rust side still reads the reason as a Skip.
    assert_eq!(explanation.skipped[0].campaign_id, CampaignId(1));
    assert_eq!(explanation.skipped[0].reason, Skip::RuleMismatch(Rule::Platform));
    let back: Explanation = serde_json::from_str(&serde_json::to_string(&explanation).unwrap()).unwrap();
    assert_eq!(back, explanation);
}

#[test]
fn an_explanation_without_a_popup_says_chosen_null() {
    assert_eq!(
        serde_json::to_string(&explanation(&[1, 2])).unwrap(),
        concat!(
            r#"{"at":1767229200,"catalog_version":1,"chosen":null,"#,
            r#""skipped":[{"campaign_id":1,"reason":"rule_mismatch","rule":"platform"},"#,
            r#"{"campaign_id":2,"reason":"not_started"}]}"#,
        )
    );
}

#[test]
fn every_skip_reason_round_trips_through_its_json() {
    for reason in Skip::ALL {
        let skipped = SkippedCampaign { campaign_id: CampaignId(7), reason };
        let json = serde_json::to_value(&skipped).unwrap();
        assert_eq!(json["campaign_id"], 7);
        assert_eq!(json["reason"], reason.code());
        match reason {
            Skip::RuleMismatch(rule) => assert_eq!(json["rule"], rule.as_str()),
            _ => assert!(json.get("rule").is_none(), "{reason:?}"),
        }
        assert_eq!(serde_json::from_value::<SkippedCampaign>(json).unwrap(), skipped);
        // The codes and rule names are the ones the serde derives use.
        match reason {
            Skip::RuleMismatch(rule) => assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str()),
            _ => assert_eq!(serde_json::to_value(reason).unwrap(), reason.code()),
        }
    }
    let parse = |json: &str| serde_json::from_str::<SkippedCampaign>(json);
    assert!(parse(r#"{"campaign_id":1,"reason":"rule_mismatch"}"#).is_err(), "a mismatch names its rule");
    assert!(parse(r#"{"campaign_id":1,"reason":"rule_mismatch","rule":"colour"}"#).is_err());
    assert!(parse(r#"{"campaign_id":1,"reason":"bored"}"#).is_err());
    // Readers ignore fields they do not know.
    assert!(parse(r#"{"campaign_id":1,"reason":"ended","detail":"x"}"#).is_ok());
}

#[test]
fn a_popup_response_has_the_documented_shape() {
    let mut rich = campaign(3);
    rich.creative.image_url = Some("https://cdn.example/p.png".into());
    rich.creative.action_url = Some("bankapp://promo".into());
    rich.creative.extra.insert("button".into(), "Go".into());
    let catalog = catalog(vec![campaign(2), rich]);
    let decide = |id| {
        let mut only = catalog.clone().into_parts();
        only.campaigns.retain(|c| c.id == CampaignId(id));
        popup_core::catalog::Catalog::build(only).unwrap()
    };
    let plain = decide(2);
    let decision = explain_for(&plain, &user("u"), &UserState::default(), &RequestContext::default(), T0);
    let response = PopupResponse::new(&decision.chosen.unwrap(), "v1.tok".into());
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"campaign_id":2,"variant":"default","title":"Title 2","body":"Body","impression_token":"v1.tok"}"#
    );
    let rich = decide(3);
    let decision = explain_for(&rich, &user("u"), &UserState::default(), &RequestContext::default(), T0);
    let response = PopupResponse::new(&decision.chosen.unwrap(), "v1.tok".into());
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        concat!(
            r#"{"campaign_id":3,"variant":"default","title":"Title 3","body":"Body","#,
            r#""image_url":"https://cdn.example/p.png","action_url":"bankapp://promo","#,
            r#""extra":{"button":"Go"},"impression_token":"v1.tok"}"#,
        )
    );
    assert_eq!(
        serde_json::from_str::<PopupResponse>(&serde_json::to_string(&response).unwrap()).unwrap(),
        response
    );
}
