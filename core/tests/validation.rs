//! Campaign validation reports every problem with its field path; the catalog refuses what resolution
//! cannot serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::campaign::{Campaign, Creative, Include, TimeOfDay, Variant, VersionRange, Weekday, Window};
use popup_core::catalog::{Catalog, CatalogError, CatalogParts};
use popup_core::context::AppVersion;
use popup_core::ids::{CampaignId, SegmentId, Timestamp};
use popup_core::zone::ZoneOffsets;

fn fields_of(campaign: &Campaign) -> Vec<String> {
    match campaign.validate() {
        Ok(()) => vec![],
        Err(errors) => errors.fields().map(String::from).collect(),
    }
}

fn check(name: &str, change: impl FnOnce(&mut Campaign), expected: &[&str]) {
    let mut c = campaign(1);
    change(&mut c);
    assert_eq!(fields_of(&c), expected, "case: {name}");
}

fn variant(key: &str, weight: u32, control: bool) -> Variant {
    Variant { key: key.into(), weight, control, creative: None }
}

#[test]
fn a_default_campaign_is_valid() {
    check("default", |_| {}, &[]);
}

#[test]
fn each_rule_names_its_field() {
    check("empty name", |c| c.name = "  ".into(), &["name"]);
    check("long name", |c| c.name = "n".repeat(201), &["name"]);
    check("bad placement", |c| c.placements = vec!["Home Screen".into()], &["placements[0]"]);
    check("end before start", |c| c.schedule.end = Some(Timestamp(T0.0 - 1)), &["schedule.end"]);
    check("end equals start", |c| c.schedule.end = Some(T0), &["schedule.end"]);
    check(
        "windows without zone",
        |c| {
            c.schedule.windows = vec![Window {
                days: vec![Weekday::Mon],
                start: "09:00".parse().unwrap(),
                end: "10:00".parse().unwrap(),
            }]
        },
        &["schedule.time_zone"],
    );
    check(
        "window without days, empty window",
        |c| {
            c.schedule.time_zone = Some("Asia/Jakarta".into());
            c.schedule.windows =
                vec![Window { days: vec![], start: "09:00".parse().unwrap(), end: "09:00".parse().unwrap() }];
        },
        &["schedule.windows[0].days", "schedule.windows[0].end"],
    );
    check("bad zone name", |c| c.schedule.time_zone = Some("Jakarta time".into()), &["schedule.time_zone"]);
    check("empty creative", |c| c.creative = Creative::default(), &["creative.title"]);
    check("http image", |c| c.creative.image_url = Some("http://cdn/x.png".into()), &["creative.image_url"]);
    check("relative action", |c| c.creative.action_url = Some("/promo".into()), &["creative.action_url"]);
    check("deep link action", |c| c.creative.action_url = Some("bankapp://promo/1".into()), &[]);
    check(
        "weights all zero",
        |c| c.variants = vec![variant("a", 0, false), variant("b", 0, false)],
        &["variants"],
    );
    check(
        "only control has weight",
        |c| c.variants = vec![variant("control", 1, true), variant("b", 0, false)],
        &["variants"],
    );
    check(
        "duplicate keys",
        |c| c.variants = vec![variant("a", 1, false), variant("a", 1, false)],
        &["variants[1].key"],
    );
    check("bad key", |c| c.variants = vec![variant("a b", 1, false)], &["variants[0].key"]);
    check(
        "control with creative",
        |c| {
            let mut control = variant("control", 1, true);
            control.creative = Some(Creative { title: "x".into(), ..Creative::default() });
            c.variants = vec![control, variant("b", 1, false)];
        },
        &["variants[0].creative"],
    );
    check(
        "empty variant creative",
        |c| {
            let mut b = variant("b", 1, false);
            b.creative = Some(Creative::default());
            c.variants = vec![b];
        },
        &["variants[0].creative.title"],
    );
    check(
        "zero caps",
        |c| {
            c.caps = popup_core::campaign::Caps {
                lifetime: Some(0),
                per_day: Some(0),
                min_interval_seconds: Some(0),
            }
        },
        &["caps.lifetime", "caps.per_day", "caps.min_interval_seconds"],
    );
    check(
        "daily above lifetime",
        |c| {
            c.caps.lifetime = Some(2);
            c.caps.per_day = Some(3);
        },
        &["caps.per_day"],
    );
    check("empty include", |c| c.audience.include = Include::AnyOf(vec![]), &["audience.include.any_of"]);
    check(
        "included and excluded",
        |c| {
            c.audience.include = Include::AnyOf(vec![SegmentId(1), SegmentId(2)]);
            c.audience.exclude = vec![SegmentId(2)];
        },
        &["audience.include.any_of[1]"],
    );
    check(
        "empty version range",
        |c| {
            c.rules.app_version =
                Some(VersionRange { min: Some("6.0".parse().unwrap()), max: Some("6.0.0".parse().unwrap()) })
        },
        &["rules.app_version.max"],
    );
    check("lower-case country", |c| c.rules.countries = vec!["id".into()], &["rules.countries[0]"]);
    check("bad locale", |c| c.rules.locales = vec!["i".into()], &["rules.locales[0]"]);
    check("zero budget", |c| c.budget = Some(0), &["budget"]);
    check("budget beyond a signed 64-bit count", |c| c.budget = Some(u64::MAX), &["budget"]);
    check("largest budget", |c| c.budget = Some(i64::MAX as u64), &[]);
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut c = campaign(1);
    c.name = String::new();
    c.schedule.end = Some(Timestamp(0));
    c.creative = Creative::default();
    let errors = c.validate().unwrap_err();
    assert_eq!(errors.fields().collect::<Vec<_>>(), ["name", "schedule.end", "creative.title"]);
    assert_eq!(errors.to_string(), "name: must not be empty; schedule.end: must be after schedule.start; creative.title: a popup needs a title or a body");
}

#[test]
fn campaign_json_uses_readable_times_and_defaults() {
    let json = r#"{
        "id": 5, "name": "Promo", "schedule": {"start": 1767225600, "time_zone": "Asia/Jakarta",
        "windows": [{"days": ["mon", "fri"], "start": "09:00", "end": "24:00"}]},
        "creative": {"title": "Hi"}, "audience": {"include": {"any_of": [1]}, "exclude": [2]}
    }"#;
    let c: Campaign = serde_json::from_str(json).unwrap();
    assert_eq!(c.schedule.windows[0].end.minutes(), 24 * 60);
    assert_eq!(c.audience.include, Include::AnyOf(vec![SegmentId(1)]));
    assert!(c.validate().is_ok());
    let back: Campaign = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    for bad in ["\"25:00\"", "\"9:00\"", "\"24:01\"", "\"0900\"", "\"+9:00\"", "\"09:+5\"", "\" 9:00\""] {
        assert!(serde_json::from_str::<popup_core::campaign::TimeOfDay>(bad).is_err(), "{bad}");
    }
}

#[test]
fn times_and_versions_deserialize_from_owned_and_escaped_strings() {
    // serde_json::Value holds owned strings, and an escaped string cannot be borrowed from the input:
    // neither can be read as a &str.
    let time: TimeOfDay = serde_json::from_value(serde_json::json!("09:30")).unwrap();
    assert_eq!(time.minutes(), 9 * 60 + 30);
    let time: TimeOfDay = serde_json::from_str(r#""09\u003a30""#).unwrap();
    assert_eq!(time.minutes(), 9 * 60 + 30);
    let version: AppVersion = serde_json::from_value(serde_json::json!("5.2.1")).unwrap();
    assert_eq!(version, AppVersion::new(5, 2, 1));
    let version: AppVersion = serde_json::from_str(r#""5\u002e2""#).unwrap();
    assert_eq!(version, AppVersion::new(5, 2, 0));
    // A whole campaign built as a Value, as the origin does from its admin API.
    let json = serde_json::json!({
        "id": 5, "name": "Promo", "schedule": {"start": 1767225600, "time_zone": "Asia/Jakarta",
        "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]},
        "creative": {"title": "Hi"}, "rules": {"app_version": {"min": "5.2"}}
    });
    let c: Campaign = serde_json::from_value(json).unwrap();
    assert_eq!(c.schedule.windows[0].start.minutes(), 9 * 60);
    assert_eq!(c.rules.app_version.unwrap().min, Some(AppVersion::new(5, 2, 0)));
    // Still strings only.
    assert!(serde_json::from_value::<TimeOfDay>(serde_json::json!(540)).is_err());
    assert!(serde_json::from_value::<AppVersion>(serde_json::json!(5)).is_err());
}

#[test]
fn times_and_versions_refuse_signs() {
    for bad in ["+9:00", "09:+5", "+0:00", "-1:00", "09:-1"] {
        assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
    }
    for bad in ["+5", "+5.2.0", "5.+2", "5.2.+0", "-5"] {
        assert!(bad.parse::<AppVersion>().is_err(), "{bad}");
    }
}

#[test]
fn the_catalog_refuses_invalid_duplicate_and_zoneless_campaigns() {
    let build = |campaigns| Catalog::build(CatalogParts { version: 1, campaigns, ..CatalogParts::default() });
    let mut invalid = campaign(2);
    invalid.name.clear();
    assert!(matches!(
        build(vec![campaign(1), invalid]),
        Err(CatalogError::InvalidCampaign { id: CampaignId(2), .. })
    ));
    let mut same_id = campaign(1);
    same_id.priority = 4;
    assert_eq!(build(vec![campaign(1), same_id]), Err(CatalogError::DuplicateCampaign(CampaignId(1))));
    let mut windowed = campaign(3);
    windowed.schedule.time_zone = Some("Asia/Jakarta".into());
    windowed.schedule.windows = vec![Window {
        days: vec![Weekday::Mon],
        start: "09:00".parse().unwrap(),
        end: "10:00".parse().unwrap(),
    }];
    assert!(matches!(build(vec![windowed.clone()]), Err(CatalogError::MissingZone { .. })));
    let mut parts = CatalogParts { version: 1, campaigns: vec![windowed], ..CatalogParts::default() };
    parts.zones.insert("Asia/Jakarta".into(), ZoneOffsets::fixed(7 * 3600));
    assert!(Catalog::build(parts).is_ok());
}

#[test]
fn the_catalog_round_trips_through_json_and_decoding_restores_order() {
    let mut a = campaign(1);
    a.priority = 1;
    let mut b = campaign(2);
    b.priority = 9;
    let catalog = catalog(vec![a, b]);
    let decoded = Catalog::decode(catalog.encode().as_bytes()).unwrap();
    assert_eq!(decoded, catalog);
    // A hand-written catalog in the wrong order is put right.
    let mut parts = catalog.into_parts();
    parts.campaigns.reverse();
    let json = serde_json::to_string(&parts).unwrap();
    let ids: Vec<u64> =
        Catalog::decode(json.as_bytes()).unwrap().campaigns().iter().map(|c| c.id.0).collect();
    assert_eq!(ids, [2, 1]);
    assert!(matches!(Catalog::decode(b"{not json"), Err(CatalogError::Malformed(_))));
    assert!(matches!(Catalog::decode(b"{\"version\":1}"), Err(CatalogError::Malformed(_))));
}

#[test]
fn catalog_versions_stay_exact_as_doubles() {
    // The publish script compares versions as Lua numbers: above 2^53 two versions could compare equal.
    let limit = popup_core::catalog::MAX_VERSION;
    assert_eq!(limit, 1 << 53);
    let build = |version| Catalog::build(CatalogParts { version, ..CatalogParts::default() });
    assert_eq!(build(limit).unwrap().version(), limit);
    assert_eq!(build(limit + 1), Err(CatalogError::VersionTooLarge(limit + 1)));
    assert_eq!(build(u64::MAX), Err(CatalogError::VersionTooLarge(u64::MAX)));
    let json = |version: u64| format!(r#"{{"version":{version},"campaigns":[]}}"#);
    assert_eq!(Catalog::decode(json(limit).as_bytes()).unwrap().version(), limit);
    assert_eq!(Catalog::decode(json(limit + 1).as_bytes()), Err(CatalogError::VersionTooLarge(limit + 1)));
}

#[test]
fn a_decoded_catalog_with_an_empty_or_unsorted_zone_is_refused() {
    for table in ["[]", "[[2,0],[1,0]]", "[[1,0],[1,3600]]"] {
        let json = format!(r#"{{"version":1,"campaigns":[],"zones":{{"Asia/Jakarta":{table}}}}}"#);
        assert_eq!(
            Catalog::decode(json.as_bytes()),
            Err(CatalogError::UnsortedZone("Asia/Jakarta".into())),
            "{table}"
        );
    }
    let json = r#"{"version":1,"campaigns":[],"zones":{"Asia/Jakarta":[[1,0],[2,3600]]}}"#;
    assert!(Catalog::decode(json.as_bytes()).is_ok());
}
