//! Builders shared by the core's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use popup_core::campaign::{Campaign, Creative, Schedule};
use popup_core::catalog::{Catalog, CatalogParts};
use popup_core::context::RequestContext;
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::resolve::{explain, Decision, Subject};
use popup_core::store::Reply;
use popup_core::user::UserState;

/// 2026-01-01T00:00:00Z, a Thursday.
pub const T0: Timestamp = Timestamp(1_767_225_600);
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A campaign that anyone may see at any time from T0 on, as often as they like.
pub fn campaign(id: u64) -> Campaign {
    Campaign {
        id: CampaignId(id),
        name: format!("campaign {id}"),
        priority: 0,
        placements: vec![],
        schedule: Schedule { start: T0, end: None, time_zone: None, windows: vec![] },
        creative: Creative { title: format!("Title {id}"), body: "Body".into(), ..Creative::default() },
        variants: vec![],
        caps: Default::default(),
        audience: Default::default(),
        rules: Default::default(),
        budget: None,
    }
}

pub fn catalog(campaigns: Vec<Campaign>) -> Catalog {
    Catalog::build(CatalogParts { version: 1, campaigns, ..CatalogParts::default() }).unwrap()
}

pub fn explain_for<'c>(
    catalog: &'c Catalog,
    user: &UserId,
    state: &UserState,
    context: &RequestContext,
    now: Timestamp,
) -> Decision<'c> {
    explain(catalog, &Subject { user, state, context, now })
}

pub fn zones() -> BTreeMap<String, popup_core::zone::ZoneOffsets> {
    BTreeMap::new()
}

/// A redis-rs reply as the core's, for the tests that run plans against a real Redis.
pub fn to_reply(value: redis::Value) -> Reply {
    match value {
        redis::Value::Nil => Reply::Nil,
        redis::Value::Int(n) => Reply::Int(n),
        redis::Value::BulkString(bytes) => Reply::Bulk(bytes),
        redis::Value::SimpleString(text) => Reply::Bulk(text.into_bytes()),
        redis::Value::Okay => Reply::Bulk(b"OK".to_vec()),
        redis::Value::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect()),
        redis::Value::ServerError(error) => Reply::Error(format!("{error:?}")),
        other => panic!("unexpected reply {other:?}"),
    }
}
