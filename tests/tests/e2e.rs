//! The whole product end to end, through its public interfaces only: the admin API on the origin, the popup
//! and event API on the edge under `wrangler dev` (and on the origin, to compare), and the gateway's HTTP
//! API. Each test starts a stack of its own (see `popup_tests::Stack`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::token::{issue, TokenClaims};
use popup_tests::{campaign, Method, Reply, Settings, Side, Stack, StatusCode, EDGE_COUNTRY};
use serde_json::{json, Value};

fn with(mut spec: Value, field: &str, value: Value) -> Value {
    spec[field] = value;
    spec
}

/// The campaign the popup reply names, or None for 204; anything else fails the test.
fn served(reply: &Reply) -> Option<i64> {
    match reply.status {
        StatusCode::OK => {
            Some(reply.campaign().unwrap_or_else(|| panic!("no campaign_id in {}", reply.body)))
        }
        StatusCode::NO_CONTENT => None,
        other => panic!("unexpected popup reply {other}: {}", reply.body),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn the_edge_serves_a_new_campaign_until_its_lifetime_cap_then_204() {
    let stack = Stack::start().await.unwrap();
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), None, "nothing is live yet");
    let id = stack.live_campaign(&with(campaign("Capped"), "caps", json!({"lifetime": 2}))).await.unwrap();

    for shown in 1..=2 {
        let popup = stack.popup(Side::Edge, "user_id=c-1&placement=home&platform=ios").await.unwrap();
        assert_eq!(popup.status, StatusCode::OK, "popup {shown}: {}", popup.body);
        assert_eq!(popup.campaign(), Some(id));
        assert_eq!(popup.body["title"], "Capped title");
        assert_eq!(popup.body["body"], "Body");
        assert_eq!(popup.body["action_url"], "bankapp://promo");
        assert_eq!(popup.body["variant"], "default");
        let event = stack.event(Side::Edge, id, "impression", "c-1", popup.token().unwrap()).await.unwrap();
        assert_eq!(event.status, StatusCode::ACCEPTED, "impression {shown}: {}", event.body);
        assert_eq!(event.body, json!({"recorded": true}));
    }
    let after = stack.popup(Side::Edge, "user_id=c-1&placement=home&platform=ios").await.unwrap();
    assert_eq!(after.status, StatusCode::NO_CONTENT, "the lifetime cap of 2 is reached: {}", after.body);
    assert_eq!(after.body, Value::Null, "204 has no body");
    // The counters the edge wrote are the ones the origin reads, and caps are per customer.
    assert_eq!(served(&stack.popup(Side::Origin, "user_id=c-1").await.unwrap()), None);
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-2").await.unwrap()), Some(id));

    // Clicks and dismissals are accepted and count no impression.
    let popup = stack.popup(Side::Edge, "user_id=c-3").await.unwrap();
    for kind in ["click", "dismiss", "click"] {
        let event = stack.event(Side::Edge, id, kind, "c-3", popup.token().unwrap()).await.unwrap();
        assert_eq!(event.status, StatusCode::ACCEPTED, "{kind}: {}", event.body);
    }
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-3").await.unwrap()), Some(id));

    // A daily cap: the edge counts today's impressions where the origin reads them (same day keys).
    let daily = with(with(campaign("Daily"), "caps", json!({"per_day": 1})), "priority", json!(5));
    let daily = stack.live_campaign(&daily).await.unwrap();
    let popup = stack.popup(Side::Edge, "user_id=c-4&placement=login").await.unwrap();
    assert_eq!(popup.campaign(), Some(daily), "{}", popup.body);
    let event = stack.event(Side::Edge, daily, "impression", "c-4", popup.token().unwrap()).await.unwrap();
    assert_eq!(event.body, json!({"recorded": true}));
    for side in [Side::Edge, Side::Origin] {
        let popup = stack.popup(side, "user_id=c-4&placement=login").await.unwrap();
        assert_eq!(served(&popup), Some(id), "Daily is capped for today on {side:?}, the next campaign wins");
    }
}

#[tokio::test]
async fn admin_changes_reach_the_edge_on_the_next_request() {
    let stack = Stack::start().await.unwrap();
    let id = stack.live_campaign(&campaign("Pausable")).await.unwrap();
    // Twice: the second request is served from the edge's cached catalog.
    for _ in 0..2 {
        assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), Some(id));
    }

    stack.transition(id, "pause").await.unwrap();
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), None, "paused");
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-2").await.unwrap()), None, "paused for everyone");

    stack.transition(id, "activate").await.unwrap();
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), Some(id), "active again");

    // An edit of the live campaign shows on the next request too.
    let edited = with(campaign("Pausable"), "creative", json!({"title": "Edited", "body": "New body"}));
    let reply = stack.admin(Method::PUT, &format!("/campaigns/{id}"), Some(&edited)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let popup = stack.popup(Side::Edge, "user_id=c-1").await.unwrap();
    assert_eq!(
        (popup.body["title"].as_str(), popup.body["body"].as_str()),
        (Some("Edited"), Some("New body"))
    );

    stack.transition(id, "end").await.unwrap();
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), None, "ended");
}

#[tokio::test]
async fn the_edge_follows_a_new_segment_version() {
    let stack = Stack::start().await.unwrap();
    stack.upload_segment("savers", "customer_id\nuser-a\nuser-c\n").await.unwrap();
    let id = stack
        .live_campaign(&with(campaign("Savers"), "audience", json!({"include": {"any_of": ["savers"]}})))
        .await
        .unwrap();
    let serves = |user: &'static str| {
        let stack = &stack;
        async move { served(&stack.popup(Side::Edge, &format!("user_id={user}")).await.unwrap()) }
    };
    assert_eq!(serves("user-a").await, Some(id), "user-a is in version 1");
    assert_eq!(serves("user-b").await, None, "user-b is not in version 1");

    stack.upload_segment("savers", "user-b\nuser-c\n").await.unwrap();
    assert_eq!(serves("user-a").await, None, "user-a left in version 2");
    assert_eq!(serves("user-b").await, Some(id), "user-b joined in version 2");
    assert_eq!(serves("user-c").await, Some(id), "user-c is in both");
    for user in ["user-a", "user-b", "user-c"] {
        let origin = served(&stack.popup(Side::Origin, &format!("user_id={user}")).await.unwrap());
        assert_eq!(origin, serves(user).await, "the origin agrees for {user}");
    }

    // A segment the campaign excludes, uploaded after it went live, applies at once too.
    stack.upload_segment("opted-out", "user-c\n").await.unwrap();
    let excluding = json!({"include": {"any_of": ["savers"]}, "exclude": ["opted-out"]});
    let spec = with(campaign("Savers"), "audience", excluding);
    let reply = stack.admin(Method::PUT, &format!("/campaigns/{id}"), Some(&spec)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(serves("user-c").await, None, "user-c opted out");
    assert_eq!(serves("user-b").await, Some(id));
}

/// The `.`-separated parts of a token: `v1`, payload, MAC.
fn parts(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_string);
    let (Some(version), Some(payload), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("not a v1 token: {token}");
    };
    (version, payload, mac)
}

/// `text` with the character at `index` changed to another base64url character.
fn flip(text: &str, index: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn forged_and_replayed_impression_tokens_change_nothing() {
    let stack = Stack::start().await.unwrap();
    let capped = with(campaign("Twice"), "caps", json!({"lifetime": 2}));
    let id = stack.live_campaign(&with(capped, "placements", json!(["home"]))).await.unwrap();
    let other = stack.live_campaign(&with(campaign("Login"), "placements", json!(["login"]))).await.unwrap();

    let popup = stack.popup(Side::Edge, "user_id=c-1&placement=home").await.unwrap();
    assert_eq!(popup.campaign(), Some(id), "{}", popup.body);
    let token = popup.token().unwrap().to_string();
    let first = stack.event(Side::Edge, id, "impression", "c-1", &token).await.unwrap();
    assert_eq!((first.status, first.body.clone()), (StatusCode::ACCEPTED, json!({"recorded": true})));

    // Replays, on the edge and on the origin, are accepted and recorded once: the count stays at 1.
    for side in [Side::Edge, Side::Origin, Side::Edge] {
        let replay = stack.event(side, id, "impression", "c-1", &token).await.unwrap();
        assert_eq!(replay.status, StatusCode::ACCEPTED, "replay on {side:?}: {}", replay.body);
        assert_eq!(replay.body, json!({"recorded": false}), "replay on {side:?}");
    }

    let someone_elses = stack.popup(Side::Edge, "user_id=c-2&placement=home").await.unwrap();
    let other_campaigns = stack.popup(Side::Edge, "user_id=c-1&placement=login").await.unwrap();
    assert_eq!(other_campaigns.campaign(), Some(other), "{}", other_campaigns.body);
    let (version, payload, mac) = parts(&token);
    let claims = |user: &str, issued_at: i64| TokenClaims {
        user: UserId::parse(user).unwrap(),
        campaign: CampaignId(id as u64),
        variant: "default".into(),
        issued_at: Timestamp(issued_at),
        nonce: 7,
    };
    let wrong_secret = [b'w'; 32];
    let forged: Vec<(&str, String)> = vec![
        ("a tampered signature", format!("{version}.{payload}.{}", flip(&mac, mac.len() / 2))),
        ("a tampered payload", format!("{version}.{}.{mac}", flip(&payload, 2))),
        ("another customer's token", someone_elses.token().unwrap().to_string()),
        ("another campaign's token", other_campaigns.token().unwrap().to_string()),
        ("a token signed with another secret", issue(&wrong_secret, &claims("c-1", now())).unwrap()),
        (
            "an expired token",
            issue(stack.token_secret.as_bytes(), &claims("c-1", now() - 2 * 86_400)).unwrap(),
        ),
        ("an unknown version", format!("v2.{payload}.{mac}")),
        ("garbage", "v1.bm90.aXQ".into()),
        ("nothing", String::new()),
    ];
    for side in [Side::Edge, Side::Origin] {
        for (case, forged) in &forged {
            let reply = stack.event(side, id, "impression", "c-1", forged).await.unwrap();
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case} on {side:?}: {}", reply.body);
            assert_eq!(reply.body["error"]["code"], "invalid_request", "{case} on {side:?}: {}", reply.body);
            assert_eq!(reply.body["error"]["fields"][0]["field"], "impression_token", "{case} on {side:?}");
        }
    }

    // Still one impression of two: c-1 is served, and one more real impression reaches the cap.
    let popup = stack.popup(Side::Edge, "user_id=c-1&placement=home").await.unwrap();
    assert_eq!(popup.campaign(), Some(id), "forged and replayed events counted: {}", popup.body);
    let second = stack.event(Side::Edge, id, "impression", "c-1", popup.token().unwrap()).await.unwrap();
    assert_eq!(second.body, json!({"recorded": true}));
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1&placement=home").await.unwrap()), None);
    // c-2's token was refused for c-1, and counts nothing for c-2 either; it still works for c-2.
    let own = stack.event(Side::Edge, id, "impression", "c-2", someone_elses.token().unwrap()).await.unwrap();
    assert_eq!(own.body, json!({"recorded": true}), "{}", own.body);
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-2&placement=home").await.unwrap()), Some(id));
}

/// What a popup request decided, without the token (its nonce differs on every answer).
fn decision(reply: &Reply) -> Result<Option<Value>, String> {
    match reply.status {
        StatusCode::OK => {
            let mut body = reply.body.clone();
            let token = body.as_object_mut().and_then(|o| o.remove("impression_token"));
            if !token.as_ref().is_some_and(Value::is_string) {
                return Err(format!("no impression token in {}", reply.body));
            }
            Ok(Some(body))
        }
        StatusCode::NO_CONTENT => Ok(None),
        other => Err(format!("{other}: {}", reply.body)),
    }
}

#[tokio::test]
async fn edge_and_origin_decide_alike_for_a_table_of_customers_and_contexts() {
    let stack = Stack::start().await.unwrap();
    stack.upload_segment("vip", "v-1\nv-2\nv-3\nv-4\nv-5\nv-6\n").await.unwrap();
    stack.upload_segment("opted-out", "o-1\no-2\nv-4\n").await.unwrap();
    let start = json!({"start": "2026-01-01T00:00:00Z"});
    let campaigns = [
        json!({"name": "VIP card", "priority": 10, "placements": ["home", "login"], "schedule": start,
               "creative": {"title": "Platinum", "body": "Pre-approved", "image_url": "https://cdn.example/p.png",
                            "action_url": "bankapp://cards", "extra": {"button": "Apply"}},
               "variants": [{"key": "control", "weight": 20, "control": true}, {"key": "a", "weight": 40},
                            {"key": "b", "weight": 40, "creative": {"title": "Platinum B", "body": "One tap"}}],
               "audience": {"include": {"any_of": ["vip"]}}}),
        json!({"name": "iOS update", "priority": 8, "schedule": start,
               "creative": {"title": "Update", "body": "New version"},
               "rules": {"platforms": ["ios"], "app_version": {"max": "6.0.0"}}}),
        json!({"name": "Android 5+", "priority": 7, "placements": ["home"], "schedule": start,
               "creative": {"title": "Android", "body": "New features"},
               "rules": {"platforms": ["android"], "app_version": {"min": "5.0.0"}}}),
        json!({"name": "Bahasa", "priority": 6, "placements": ["login"], "schedule": start,
               "creative": {"title": "Halo", "body": "Promo"}, "rules": {"locales": ["id"]}}),
        json!({"name": "English US", "priority": 6, "schedule": start,
               "creative": {"title": "Hello", "body": "Promo"}, "rules": {"locales": ["en-US"]}}),
        json!({"name": "Everyone", "priority": 1, "schedule": start,
               "creative": {"title": "For you", "body": "Cashback"},
               "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50,
                             "creative": {"title": "For you B", "body": "Cashback B"}}],
               "audience": {"exclude": ["opted-out"]}}),
        // Country rules: the edge reads the platform's country, the origin the proxy's header.
        json!({"name": "Singapore", "priority": 11, "placements": ["country"], "schedule": start,
               "creative": {"title": "Halo SG", "body": "Promo"}, "rules": {"countries": ["SG"]}}),
        json!({"name": "Here", "priority": 9, "placements": ["country"], "schedule": start,
               "creative": {"title": "Halo", "body": "Promo"}, "rules": {"countries": [EDGE_COUNTRY]}}),
    ];
    let mut names = std::collections::BTreeMap::new();
    for spec in &campaigns {
        let id = stack.live_campaign(spec).await.unwrap();
        names.insert(id, spec["name"].as_str().unwrap().to_string());
    }
    // Never served: paused, draft, not started yet, ended.
    let paused = stack.live_campaign(&with(campaign("Paused"), "priority", json!(100))).await.unwrap();
    stack.transition(paused, "pause").await.unwrap();
    stack.create_campaign(&with(campaign("Draft"), "priority", json!(99))).await.unwrap();
    let later = with(
        with(campaign("Later"), "priority", json!(98)),
        "schedule",
        json!({"start": "2099-01-01T00:00:00Z"}),
    );
    stack.live_campaign(&later).await.unwrap();
    let ended = stack.live_campaign(&with(campaign("Ended"), "priority", json!(97))).await.unwrap();
    stack.transition(ended, "end").await.unwrap();

    // (customer, context, what must be served: a campaign name, "-" for nothing, "?" when it depends on
    // the customer's bucket in the VIP card's A/B test with a holdout).
    let table: &[(&str, &str, &str)] = &[
        ("v-1", "placement=home", "?"),
        ("v-2", "placement=login&platform=ios&app_version=5.2.0", "?"),
        ("v-3", "placement=settings", "Everyone"),
        ("v-4", "placement=home&locale=id-ID", "?"),
        ("v-5", "placement=login&locale=id-ID&platform=android&app_version=5.5.0", "?"),
        ("v-6", "", "Everyone"),
        ("u-1", "platform=ios&app_version=5.9.9", "iOS update"),
        ("u-1", "platform=ios&app_version=6.0.0", "Everyone"),
        ("u-1", "platform=android&app_version=5.9.9&placement=home", "Android 5+"),
        ("u-2", "platform=android&app_version=5.0.0&placement=home", "Android 5+"),
        ("u-2", "platform=android&app_version=4.9.0&placement=home", "Everyone"),
        ("u-3", "platform=android&app_version=5.1.0&placement=login", "Everyone"),
        ("u-4", "placement=login&locale=id-ID", "Bahasa"),
        ("u-4", "placement=login&locale=ID", "Bahasa"),
        ("u-4", "placement=home&locale=id-ID", "Everyone"),
        ("u-4", "placement=login&locale=en-US", "English US"),
        ("u-5", "locale=en-us", "English US"),
        ("u-5", "locale=en-GB", "Everyone"),
        ("u-6", "platform=web&locale=id-ID", "Everyone"),
        ("o-1", "placement=login&locale=id-ID", "Bahasa"),
        ("o-1", "placement=home", "-"),
        ("o-2", "platform=ios&app_version=1.0.0&placement=home", "iOS update"),
        ("o-2", "platform=ios&app_version=9.0.0&placement=home", "-"),
        ("cust%2D7", "placement=home%20screen", "Everyone"),
        ("u-8", "", "Everyone"),
        ("u-9", "", "Everyone"),
        ("u-10", "", "Everyone"),
        ("u-11", "", "Everyone"),
        ("u-12", "", "Everyone"),
        ("u-13", "", "Everyone"),
        ("u-20", "placement=country", "Here"),
        ("u-20", "placement=country&country=SG", "Here"),
        ("u-21", "placement=country&platform=ios&app_version=5.0.0", "Here"),
    ];
    let mut outcomes = BTreeSet::new();
    let mut mismatches = Vec::new();
    for (user, context, expected) in table {
        let query =
            if context.is_empty() { format!("user_id={user}") } else { format!("user_id={user}&{context}") };
        let origin = decision(&stack.popup(Side::Origin, &query).await.unwrap());
        let edge = decision(&stack.popup(Side::Edge, &query).await.unwrap());
        let origin = origin.unwrap_or_else(|error| panic!("origin, {query}: {error}"));
        let edge = edge.unwrap_or_else(|error| panic!("edge, {query}: {error}"));
        if origin != edge {
            mismatches.push(format!("{query}:\n  origin {origin:?}\n  edge   {edge:?}"));
            continue;
        }
        let name = edge
            .as_ref()
            .map_or("-".to_string(), |body| names[&body["campaign_id"].as_i64().unwrap()].clone());
        let variant = edge.as_ref().map(|body| body["variant"].as_str().unwrap().to_string());
        match *expected {
            "?" => assert!(
                ["VIP card", "Everyone", "iOS update", "Android 5+", "Bahasa", "English US"]
                    .contains(&name.as_str()),
                "{query}: {name}"
            ),
            expected => assert_eq!(name, expected, "{query}"),
        }
        outcomes.insert((name, variant));
    }
    assert!(mismatches.is_empty(), "the edge and the origin disagree:\n{}", mismatches.join("\n"));
    // The table is worth something only if it reaches many different answers.
    assert!(outcomes.len() >= 8, "too few distinct outcomes: {outcomes:?}");
    assert!(outcomes.contains(&("-".to_string(), None)), "{outcomes:?}");
    let everyone: BTreeSet<_> =
        outcomes.iter().filter(|(name, _)| name == "Everyone").map(|(_, v)| v.clone()).collect();
    assert_eq!(everyone.len(), 2, "both variants of Everyone are served: {outcomes:?}");
}

#[tokio::test]
async fn the_edge_takes_the_country_from_the_platform_not_the_query() {
    let stack = Stack::start().await.unwrap();
    let rules = |countries: Value| json!({"countries": countries});
    let here = with(with(campaign("Here"), "rules", rules(json!([EDGE_COUNTRY]))), "priority", json!(5));
    let here = stack.live_campaign(&here).await.unwrap();
    let elsewhere = with(with(campaign("Elsewhere"), "rules", rules(json!(["SG"]))), "priority", json!(9));
    stack.live_campaign(&elsewhere).await.unwrap();
    for query in ["user_id=c-1", "user_id=c-1&country=SG"] {
        assert_eq!(served(&stack.popup(Side::Edge, query).await.unwrap()), Some(here), "{query}");
    }
}

#[tokio::test]
async fn the_gateway_refuses_bad_tokens_and_commands_off_its_allow_list() {
    let stack = Stack::start().await.unwrap();
    let id = stack.live_campaign(&campaign("Kept")).await.unwrap();
    let token = Some(stack.gateway_token.as_str());
    let ping = json!(["PING"]);

    let reply = stack.gateway_call("/", token, &ping).await.unwrap();
    assert_eq!((reply.status, reply.body.clone()), (StatusCode::OK, json!({"result": "PONG"})));
    let version_key = format!("{}:{{catalog}}:version", stack.prefix);
    let reply = stack.gateway_call("/", token, &json!(["GET", version_key])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "the edge's own reads pass: {}", reply.body);

    let bad_tokens: [(&str, Option<&str>); 4] = [
        ("no token", None),
        ("a wrong token", Some("not-the-gateway-token-at-all")),
        ("an empty token", Some("")),
        ("the token with a suffix", Some(&format!("{}x", stack.gateway_token))),
    ];
    for (case, bad) in bad_tokens {
        for (path, body) in
            [("/", ping.clone()), ("/pipeline", json!([["PING"]])), ("/multi-exec", json!([["PING"]]))]
        {
            let reply = stack.gateway_call(path, bad, &body).await.unwrap();
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case} on {path}: {}", reply.body);
            assert_eq!(reply.body, json!({"error": "Unauthorized"}), "{case} on {path}");
        }
    }
    let response = reqwest::Client::new()
        .post(format!("{}/", stack.gateway))
        .header("authorization", format!("Basic {}", stack.gateway_token))
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "only the bearer scheme");
    let response = reqwest::Client::new().get(format!("{}/metrics", stack.gateway)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "metrics need the token too");

    let refused = [
        json!(["FLUSHALL"]),
        json!(["flushdb"]),
        json!(["KEYS", "*"]),
        json!(["CONFIG", "GET", "*"]),
        json!(["SET", format!("{}:{{catalog}}", stack.prefix), "x"]),
        json!(["DEL", format!("{}:{{catalog}}", stack.prefix)]),
        json!(["GET", "popup:{catalog}"]),
        json!(["EVAL", "return redis.call('FLUSHALL')", "0"]),
    ];
    for command in &refused {
        let reply = stack.gateway_call("/", token, command).await.unwrap();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{command}: {}", reply.body);
        let error = reply.body["error"].as_str().unwrap_or_else(|| panic!("{command}: {}", reply.body));
        assert!(error.contains("not allowed"), "{command}: {error}");
        // A pipeline or transaction holding it is refused whole.
        for path in ["/pipeline", "/multi-exec"] {
            let reply = stack.gateway_call(path, token, &json!([["PING"], command])).await.unwrap();
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{command} in {path}: {}", reply.body);
            assert!(
                reply.body["error"].as_str().is_some_and(|e| e.contains("not allowed")),
                "{}",
                reply.body
            );
        }
    }
    // Nothing of it ran: the catalog is still there and served.
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), Some(id));
    let reply = stack
        .gateway_call("/", token, &json!(["GET", format!("{}:{{catalog}}:version", stack.prefix)]))
        .await
        .unwrap();
    assert!(reply.body["result"].is_string(), "{}", reply.body);
}

#[tokio::test]
async fn a_warm_resolve_is_one_request_of_three_commands_and_an_event_one_request() {
    let stack = Stack::start().await.unwrap();
    let id = stack.live_campaign(&campaign("Counted")).await.unwrap();
    // The first resolve after a catalog change also fetches the catalog.
    let (popup, cold) = stack.counted(stack.popup(Side::Edge, "user_id=c-1")).await.unwrap();
    assert_eq!(popup.unwrap().campaign(), Some(id));
    assert!(cold.requests() <= 2 && cold.commands() <= 4, "cold resolve: {cold:?}");

    for user in ["c-1", "c-2", "c-3"] {
        let (popup, warm) = stack.counted(stack.popup(Side::Edge, &format!("user_id={user}"))).await.unwrap();
        let popup = popup.unwrap();
        assert_eq!(popup.campaign(), Some(id));
        assert_eq!(warm.requests(), 1, "warm resolve for {user}: {warm:?}");
        assert_eq!(warm.requests_by_route.get("/pipeline"), Some(&1), "{warm:?}");
        assert!(warm.commands() <= 3, "warm resolve for {user}: {warm:?}");

        let (event, counts) = stack
            .counted(stack.event(Side::Edge, id, "impression", user, popup.token().unwrap()))
            .await
            .unwrap();
        assert_eq!(event.unwrap().status, StatusCode::ACCEPTED);
        assert_eq!(counts.requests(), 1, "event for {user}: {counts:?}");
        assert_eq!(counts.commands(), 2, "event for {user}: {counts:?}");
    }
    // A warm resolve that serves nothing costs the same.
    stack.transition(id, "pause").await.unwrap();
    let (popup, stale) = stack.counted(stack.popup(Side::Edge, "user_id=c-1")).await.unwrap();
    assert_eq!(popup.unwrap().status, StatusCode::NO_CONTENT);
    assert_eq!((stale.requests(), stale.commands()), (2, 4), "the catalog moved: {stale:?}");
    let (popup, warm) = stack.counted(stack.popup(Side::Edge, "user_id=c-1")).await.unwrap();
    assert_eq!(popup.unwrap().status, StatusCode::NO_CONTENT);
    assert_eq!((warm.requests(), warm.commands()), (1, 3), "{warm:?}");
    // A health probe costs nothing.
    let (health, probe) =
        stack.counted(stack.request(Side::Edge, Method::GET, "/healthz", None, None)).await.unwrap();
    assert_eq!(health.unwrap().status, StatusCode::OK);
    assert_eq!((probe.requests(), probe.commands()), (0, 0), "{probe:?}");
}

#[tokio::test]
async fn a_broken_customer_record_in_redis_fails_that_customer_only() {
    let stack = Stack::start().await.unwrap();
    let id = stack.live_campaign(&campaign("Any")).await.unwrap();
    assert_eq!(served(&stack.popup(Side::Edge, "user_id=c-1").await.unwrap()), Some(id));
    // Something else wrote the customer's hash as a string: HGETALL fails with WRONGTYPE.
    let mut redis = redis::Client::open(stack.redis_url.as_str()).unwrap().get_connection().unwrap();
    let _: () =
        redis::cmd("SET").arg(format!("{}:u:{{c-1}}", stack.prefix)).arg("x").query(&mut redis).unwrap();
    for side in [Side::Edge, Side::Origin] {
        let reply = stack.popup(side, "user_id=c-1").await.unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{side:?}: {}", reply.body);
        assert_eq!(reply.body["error"]["message"], "internal error", "{side:?}: details stay in the log");
        assert_eq!(served(&stack.popup(side, "user_id=c-2").await.unwrap()), Some(id), "{side:?}");
    }
}

#[tokio::test]
async fn a_hung_redis_endpoint_gives_a_quick_503_from_the_edge() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let settings = Settings {
        edge_redis_rest_url: Some(format!("http://{address}")),
        edge_redis_timeout_ms: 500,
        ..Settings::default()
    };
    let stack = Stack::start_with(settings).await.unwrap();

    // Alive all the same: the health endpoint does not ask Redis (which would make it a 503 here).
    for side in [Side::Edge, Side::Origin] {
        let reply = stack.request(side, Method::GET, "/healthz", None, None).await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, Some("ok")), "{side:?}");
    }

    let started = std::time::Instant::now();
    let reply = stack.popup(Side::Edge, "user_id=c-1").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "store_unavailable");
    assert!(elapsed < std::time::Duration::from_millis(2500), "took {elapsed:?} with a 500 ms timeout");

    let claims = TokenClaims {
        user: UserId::parse("c-1").unwrap(),
        campaign: CampaignId(1),
        variant: "default".into(),
        issued_at: Timestamp(now()),
        nonce: 1,
    };
    let token = issue(stack.token_secret.as_bytes(), &claims).unwrap();
    let started = std::time::Instant::now();
    let reply = stack.event(Side::Edge, 1, "impression", "c-1", &token).await.unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert!(started.elapsed() < std::time::Duration::from_millis(2500), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn edge_and_origin_answer_bad_requests_alike() {
    let stack = Stack::start().await.unwrap();
    let id = stack.live_campaign(&campaign("Any")).await.unwrap();
    let popup = stack.popup(Side::Edge, "user_id=c-1").await.unwrap();
    let token = popup.token().unwrap();
    let long_user = "u".repeat(300);
    let long_locale = "x".repeat(65);
    let json = Some("application/json");
    let event = |user: &str| json!({"user_id": user, "impression_token": token}).to_string();
    let impression = format!("/v1/campaigns/{id}/impression");
    let cases: Vec<(Method, String, Option<&str>, Option<String>)> = vec![
        (Method::GET, "/v1/campaigns/popup".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=a%20b".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=a+b".into(), None, None),
        (Method::GET, format!("/v1/campaigns/popup?user_id={long_user}"), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=u&platform=nokia".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=u&app_version=x".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=u&app_version=1.2.3.4".into(), None, None),
        (Method::GET, format!("/v1/campaigns/popup?user_id=u&locale={long_locale}"), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=u&user_id=v".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=%ZZ".into(), None, None),
        (Method::GET, "/v1/campaigns/popup?user_id=u&placement=".into(), None, None),
        (Method::POST, format!("/v1/campaigns/{id}/purchase"), json, Some(event("c-1"))),
        (Method::POST, "/v1/campaigns/x/impression".into(), json, Some(event("c-1"))),
        (Method::POST, "/v1/campaigns/-1/impression".into(), json, Some(event("c-1"))),
        (Method::POST, "/v1/campaigns/99999999999999999999/impression".into(), json, Some(event("c-1"))),
        (Method::POST, impression.clone(), None, Some(event("c-1"))),
        (Method::POST, impression.clone(), Some("text/plain"), Some(event("c-1"))),
        (Method::POST, impression.clone(), json, Some("{".into())),
        (Method::POST, impression.clone(), json, Some(format!("{} x", event("c-1")))),
        (Method::POST, impression.clone(), json, Some(r#"{"user_id":"c-1"}"#.into())),
        (Method::POST, impression.clone(), json, Some(json!({"impression_token": token}).to_string())),
        (Method::POST, impression.clone(), json, Some(event("a b"))),
        (
            Method::POST,
            impression.clone(),
            json,
            Some(json!({"user_id": 7, "impression_token": token}).to_string()),
        ),
        (Method::POST, impression.clone(), json, Some("[]".into())),
    ];
    let mut differences = Vec::new();
    // Requests off the routes: the same status. (The origin's 404 and 405 here have an empty body, the
    // edge's the documented JSON error.)
    let off_routes = [
        (Method::POST, "/v1/campaigns/popup"),
        (Method::GET, "/v1/campaigns/popup/"),
        (Method::GET, "/v1/nothing"),
        (Method::GET, impression.as_str()),
    ];
    for (method, path) in off_routes {
        let origin = stack.request(Side::Origin, method.clone(), path, json, Some("{}")).await.unwrap();
        let edge = stack.request(Side::Edge, method.clone(), path, json, Some("{}")).await.unwrap();
        assert!(origin.status.is_client_error(), "{method} {path}: {}", origin.status);
        if origin.status != edge.status {
            differences.push(format!("{method} {path}: origin {}, edge {}", origin.status, edge.status));
        }
    }
    for (method, path, content_type, body) in &cases {
        let mut replies = Vec::new();
        for side in [Side::Origin, Side::Edge] {
            let reply =
                stack.request(side, method.clone(), path, *content_type, body.as_deref()).await.unwrap();
            // Tokens differ by their nonce; everything else must be equal.
            let mut body = reply.body;
            if let Some(object) = body.as_object_mut() {
                object.remove("impression_token");
            }
            replies.push((reply.status, body));
        }
        if replies[0] != replies[1] {
            differences.push(format!(
                "{method} {path} {body:?}:\n  origin {:?}\n  edge   {:?}",
                replies[0], replies[1]
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "the edge and the origin answer differently:\n{}",
        differences.join("\n")
    );
}

#[tokio::test]
async fn events_and_holdouts_from_the_edge_reach_the_campaign_stats() {
    let stack = Stack::start().await.unwrap();
    let variants = json!([{"key": "a", "weight": 50}, {"key": "control", "weight": 50, "control": true}]);
    let id = stack.live_campaign(&with(campaign("Measured"), "variants", variants)).await.unwrap();
    let (mut impressions, mut clicks, mut conversions, mut held_out) = (0, 0, 0, 0);
    for n in 0..40 {
        let user = format!("m-{n}");
        let popup = stack.popup(Side::Edge, &format!("user_id={user}")).await.unwrap();
        if served(&popup).is_none() {
            held_out += 1;
            continue;
        }
        let token = popup.token().unwrap();
        let event = stack.event(Side::Edge, id, "impression", &user, token).await.unwrap();
        assert_eq!(event.status, StatusCode::ACCEPTED, "{}", event.body);
        impressions += 1;
        if n % 2 == 0 {
            assert_eq!(
                stack.event(Side::Edge, id, "click", &user, token).await.unwrap().status,
                StatusCode::ACCEPTED
            );
            clicks += 1;
            let conversion = stack.conversion(&user, token).await.unwrap();
            assert_eq!(conversion.status, StatusCode::ACCEPTED, "{}", conversion.body);
            conversions += 1;
        }
    }
    assert!(impressions > 0 && held_out > 0, "both arms drawn: {impressions} shown, {held_out} held out");
    // The origin's ingest worker moves the stream into Postgres within moments.
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = stack.admin(Method::GET, &format!("/campaigns/{id}/stats"), None).await.unwrap().body;
        let variant = |key: &str| {
            stats["variants"].as_array().and_then(|v| v.iter().find(|r| r["variant"] == key).cloned())
        };
        let (a, control) = (variant("a"), variant("control"));
        if a.as_ref().is_some_and(|a| a["impressions"] == impressions && a["conversions"] == conversions)
            && control.is_some_and(|c| c["holdouts"] == held_out)
        {
            let a = a.unwrap();
            assert_eq!((a["clicks"].as_i64(), a["unique_users"].as_i64()), (Some(clicks), Some(impressions)));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("stats never matched {impressions} impressions, {clicks} clicks, {conversions} conversions, {held_out} held out: {stats}\n{}", stack.log_tails());
}
