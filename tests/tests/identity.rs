//! Signed customer identity end to end: the edge under `wrangler dev` and the origin, both in `jwt` mode,
//! against a key set served by the test with keys made in the test. Valid RS256, ES256, EdDSA and HS256
//! tokens get the customer's popup; forged, unsigned, confused, expired, early, misdirected and unknown-key
//! tokens, a missing header and a plain `user_id` are refused, on both sides alike, and none of them
//! changes anything in Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use popup_tests::identity::{claims, hs256, KeySetServer, SigningKey, AUDIENCE, ISSUER};
use popup_tests::{campaign, unix_now, JwtSettings, Reply, Settings, Side, Stack, StatusCode};
use serde_json::{json, Value};

/// Everything under the stack's prefix that a request could change: each key with its type and content
/// (streams by the number of entries ever added, which ingest reading them does not change).
fn snapshot(stack: &Stack) -> BTreeMap<String, String> {
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query(&mut connection).unwrap();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
            let content = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query::<Option<Vec<u8>>>(&mut connection)
                    .map(|v| format!("{v:?}")),
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query::<BTreeMap<String, Vec<u8>>>(&mut connection)
                    .map(|v| format!("{v:?}")),
                "stream" => redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(&key)
                    .query::<redis::Value>(&mut connection)
                    .map(|info| format!("{:?}", entries_added(&info))),
                other => Ok(other.to_string()),
            }
            .unwrap();
            (key, format!("{kind} {content}"))
        })
        .collect()
}

fn entries_added(info: &redis::Value) -> Option<String> {
    let fields = match info {
        redis::Value::Array(fields) => fields.clone(),
        redis::Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        _ => return None,
    };
    let at = fields.iter().position(|f| matches!(f, redis::Value::BulkString(b) if b == b"entries-added"))?;
    Some(format!("{:?}", fields.get(at + 1)))
}

fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {}", reply.body);
    assert_eq!(reply.body["error"]["code"], "unauthorized", "{what}");
    assert_eq!(reply.challenge.as_deref(), Some(r#"Bearer error="invalid_token""#), "{what}");
}

#[tokio::test]
async fn identity_tokens_are_checked_alike_on_the_edge_and_the_origin() {
    let rsa = SigningKey::rsa().unwrap();
    let ec = SigningKey::p256().unwrap();
    let ed = SigningKey::ed25519().unwrap();
    let forger = SigningKey::rsa().unwrap();
    let key_set = KeySetServer::start(json!({"keys": [rsa.jwk("rsa-1"), ec.jwk("ec-1"), ed.jwk("ed-1")]}))
        .await
        .unwrap();
    let secret = "identity-shared-secret-0123456789abcdef";
    let settings = Settings {
        jwt: Some(JwtSettings { jwks_url: key_set.url.clone(), hs256_secret: secret.into() }),
        ..Settings::default()
    };
    let stack = Stack::start_with(settings).await.unwrap();
    let id = stack.live_campaign(&campaign("Signed")).await.unwrap();
    let now = unix_now();
    let hs = |claims: &Value| hs256(&json!({"alg": "HS256", "typ": "JWT"}), claims, Some(secret.as_bytes()));

    for side in [Side::Edge, Side::Origin] {
        let customer = |name: &str| format!("{side:?}-{name}").to_lowercase();
        // Each accepted algorithm gets its customer's popup, and the popup's events count for them.
        let valid = [
            ("RS256", rsa.sign(Some("rsa-1"), &claims(&customer("rs"), now)).unwrap()),
            ("ES256", ec.sign(Some("ec-1"), &claims(&customer("es"), now)).unwrap()),
            ("EdDSA", ed.sign(Some("ed-1"), &claims(&customer("ed"), now)).unwrap()),
            ("ES256 without kid", ec.sign(None, &claims(&customer("es-nokid"), now)).unwrap()),
            ("HS256", hs(&claims(&customer("hs"), now))),
        ];
        let mut impression_tokens = Vec::new();
        for (what, jwt) in &valid {
            let popup = stack.popup_as(side, Some(jwt), "placement=home").await.unwrap();
            assert_eq!(popup.status, StatusCode::OK, "{side:?} {what}: {}", popup.body);
            assert_eq!(popup.campaign(), Some(id));
            let event =
                stack.event_as(side, Some(jwt), id, "impression", popup.token().unwrap()).await.unwrap();
            assert_eq!(
                (event.status, &event.body),
                (StatusCode::ACCEPTED, &json!({"recorded": true})),
                "{what}"
            );
            impression_tokens.push(popup.token().unwrap().to_string());
        }
        // An impression token is spent only by the customer it was served to.
        let (_, rs_jwt) = &valid[0];
        let (_, es_jwt) = &valid[1];
        let stolen = stack.event_as(side, Some(es_jwt), id, "click", &impression_tokens[0]).await.unwrap();
        assert_eq!(stolen.status, StatusCode::BAD_REQUEST, "{side:?}: {}", stolen.body);
        assert_eq!(stolen.body["error"]["fields"][0]["field"], "impression_token");

        // A plain user_id is refused in jwt mode, even beside a valid token.
        for jwt in [None, Some(rs_jwt.as_str())] {
            let named = stack.popup_as(side, jwt, &format!("user_id={}", customer("rs"))).await.unwrap();
            assert_eq!(named.status, StatusCode::BAD_REQUEST, "{side:?}: {}", named.body);
            assert_eq!(named.body["error"]["fields"][0]["field"], "user_id");
        }

        let victim = customer("victim");
        let victim_claims = claims(&victim, now);
        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = claims(&victim, now);
            change(&mut claims);
            claims
        };
        let refused: Vec<(&str, Option<String>)> = vec![
            ("a missing header", None),
            ("a forged signature", Some(forger.sign(Some("rsa-1"), &victim_claims).unwrap())),
            ("another HS256 secret", Some(hs256(&json!({"alg": "HS256"}), &victim_claims, Some(&[7; 32])))),
            ("alg none", Some(hs256(&json!({"alg": "none"}), &victim_claims, None))),
            (
                "HS256 keyed with the RSA public key",
                Some(hs256(
                    &json!({"alg": "HS256", "kid": "rsa-1"}),
                    &victim_claims,
                    Some(&rsa.public_bytes()),
                )),
            ),
            ("RS256 relabelled ES256", Some(rsa.sign(Some("ec-1"), &victim_claims).unwrap())),
            (
                "an expired token",
                Some(rsa.sign(Some("rsa-1"), &with(&|c| c["exp"] = json!(now - 600))).unwrap()),
            ),
            (
                "a token valid only later",
                Some(ec.sign(Some("ec-1"), &with(&|c| c["nbf"] = json!(now + 600))).unwrap()),
            ),
            ("another issuer", Some(hs(&with(&|c| c["iss"] = json!("https://evil.test"))))),
            (
                "another audience",
                Some(ed.sign(Some("ed-1"), &with(&|c| c["aud"] = json!("other-app"))).unwrap()),
            ),
            ("no customer", Some(hs(&with(&|c| _ = c.as_object_mut().unwrap().remove("sub"))))),
        ];
        let before = snapshot(&stack);
        for (what, jwt) in &refused {
            let (popup, counted) = stack.counted(stack.popup_as(side, jwt.as_deref(), "")).await.unwrap();
            assert_refused(&popup.unwrap(), &format!("{side:?} popup with {what}"));
            let event =
                stack.event_as(side, jwt.as_deref(), id, "impression", &impression_tokens[0]).await.unwrap();
            assert_refused(&event, &format!("{side:?} event with {what}"));
            assert_eq!(counted.commands(), 0, "{side:?} {what}: a refused request asks Redis nothing");
        }
        // A token naming a key the set lacks fetches the set once more, then is refused; another such
        // token within the minute fetches nothing.
        let fetched = key_set.fetches();
        let unknown = forger.sign(Some("rsa-2"), &victim_claims).unwrap();
        assert_refused(&stack.popup_as(side, Some(&unknown), "").await.unwrap(), "an unknown kid");
        assert_eq!(key_set.fetches(), fetched + 1, "{side:?}: one refetch for an unknown kid");
        let another = forger.sign(Some("rsa-3"), &victim_claims).unwrap();
        assert_refused(&stack.popup_as(side, Some(&another), "").await.unwrap(), "another unknown kid");
        assert_eq!(key_set.fetches(), fetched + 1, "{side:?}: no second refetch within the interval");
        assert_eq!(snapshot(&stack), before, "{side:?}: refused requests change nothing in Redis");
    }
    assert!(!ISSUER.is_empty() && !AUDIENCE.is_empty());
}
