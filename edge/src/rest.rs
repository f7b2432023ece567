//! The Upstash REST protocol, in plain Rust so it is tested natively; [`crate::redis`] carries it over
//! `fetch`.
//!
//! - One command: `POST /` with `["CMD", "arg", ...]`, answered `{"result": ...}` or `{"error": "..."}`.
//! - A pipeline: `POST /pipeline` with an array of commands, answered with an array of those objects, one per
//!   command, in order; the errors of single commands sit in their slot and the others still run.
//! - `Authorization: Bearer <token>`; `Upstash-Encoding: base64` makes every string result arrive base64
//!   encoded (so binary values survive JSON), except the status reply `OK`, which stays plain.
//!
//! Results map to [`Reply`]: strings to [`Reply::Bulk`] (decoded), integers to [`Reply::Int`], `null` to
//! [`Reply::Nil`], arrays to [`Reply::Array`], and an error object to [`Reply::Error`]. A refused token
//! (401), any other unexpected status or a body that is not the protocol is a [`RestError`]: the store as a
//! whole did not answer.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use popup_core::store::{Command, Reply};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The path of a pipeline, relative to the REST URL. A single command goes to the URL itself.
pub const PIPELINE_PATH: &str = "/pipeline";

/// The header that asks for base64 string results, and its value.
pub const ENCODING_HEADER: (&str, &str) = ("Upstash-Encoding", "base64");

/// Longest part of an unexpected body quoted in an error, so a log line stays a line.
const QUOTED_BODY_LEN: usize = 200;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("the REST API refused the token (HTTP 401)")]
    Unauthorized,
    #[error("the REST API answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the REST API answered something other than its protocol: {0}")]
    Malformed(String),
    #[error("the REST API answered {got} replies to a pipeline of {expected}")]
    ReplyCount { expected: usize, got: usize },
}

/// The body of `POST /` for one command.
pub fn encode_command(command: &Command) -> Result<String, RestError> {
    serde_json::to_string(command.args()).map_err(|error| RestError::Malformed(error.to_string()))
}

/// The body of `POST /pipeline`.
pub fn encode_pipeline(commands: &[Command]) -> Result<String, RestError> {
    let commands: Vec<&[String]> = commands.iter().map(Command::args).collect();
    serde_json::to_string(&commands).map_err(|error| RestError::Malformed(error.to_string()))
}

/// Reads the answer to `POST /`. An error object is the command's error reply, whatever the status that
/// came with it (the service answers a failed command with 400 and the error object).
pub fn decode_command(status: u16, body: &str) -> Result<Reply, RestError> {
    if status == 401 {
        return Err(RestError::Unauthorized);
    }
    match serde_json::from_str::<Item>(body) {
        Ok(Item { error: Some(message), .. }) => Ok(Reply::Error(message)),
        Ok(item) if is_success(status) => Ok(item.into_reply()),
        _ if !is_success(status) => Err(unexpected_status(status, body)),
        Ok(_) => Err(RestError::Malformed(quote(body))),
        Err(error) => Err(RestError::Malformed(error.to_string())),
    }
}

/// Reads the answer to `POST /pipeline` of `expected` commands: one reply per command, in order.
pub fn decode_pipeline(status: u16, body: &str, expected: usize) -> Result<Vec<Reply>, RestError> {
    if status == 401 {
        return Err(RestError::Unauthorized);
    }
    if !is_success(status) {
        return Err(unexpected_status(status, body));
    }
    let items: Vec<Item> =
        serde_json::from_str(body).map_err(|error| RestError::Malformed(error.to_string()))?;
    if items.len() != expected {
        return Err(RestError::ReplyCount { expected, got: items.len() });
    }
    Ok(items.into_iter().map(Item::into_reply).collect())
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The error of a non-2xx answer: the protocol's own error message when the body carries one.
fn unexpected_status(status: u16, body: &str) -> RestError {
    let message = match serde_json::from_str::<Item>(body) {
        Ok(Item { error: Some(message), .. }) => message,
        _ => quote(body),
    };
    RestError::Status { status, message }
}

fn quote(body: &str) -> String {
    match body.char_indices().nth(QUOTED_BODY_LEN) {
        Some((end, _)) => format!("{}...", &body[..end]),
        None => body.to_string(),
    }
}

/// One `{"result": ...}` or `{"error": "..."}` object. Unknown fields are ignored; a missing result reads
/// as nil, like a `null` one. Only a JSON object is one (a derived `Deserialize` would take arrays too).
struct Item {
    result: Option<ResultValue>,
    error: Option<String>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"result": ...} or {"error": "..."}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = Item { result: None, error: None };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "result" => item.result = map.next_value()?,
                "error" => item.error = map.next_value()?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(item)
    }
}

impl Item {
    fn into_reply(self) -> Reply {
        match (self.error, self.result) {
            (Some(message), _) => Reply::Error(message),
            (None, Some(ResultValue(reply))) => reply,
            (None, None) => Reply::Nil,
        }
    }
}

/// A result value, decoded straight from the JSON text into a [`Reply`] (no intermediate JSON tree).
struct ResultValue(Reply);

impl<'de> Deserialize<'de> for ResultValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ResultVisitor).map(ResultValue)
    }
}

struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = Reply;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string, an integer, null or an array of those")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Reply, E> {
        Ok(Reply::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Reply, E> {
        Ok(Reply::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Reply, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Reply, E> {
        Ok(Reply::Int(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Reply, E> {
        i64::try_from(n).map(Reply::Int).map_err(|_| E::custom("an integer beyond Redis's 64-bit range"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Reply, E> {
        // The one string the service leaves unencoded; "OK" is not valid padded base64, so it cannot be
        // mistaken for an encoded value.
        if text == "OK" {
            return Ok(Reply::Bulk(b"OK".to_vec()));
        }
        STANDARD.decode(text).map(Reply::Bulk).map_err(|_| E::custom("a string result that is not base64"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reply, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(ResultValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Reply::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(parts: &[&str]) -> Command {
        Command(parts.iter().map(|p| p.to_string()).collect())
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    #[test]
    fn commands_encode_as_json_arrays_of_strings() {
        let get = command(&["GET", "p:{catalog}:version"]);
        assert_eq!(encode_command(&get).unwrap(), r#"["GET","p:{catalog}:version"]"#);
        let script = command(&["EVAL", "return \"a\"\nend", "1", "k\u{e9}y"]);
        let pipeline = encode_pipeline(&[get, script]).unwrap();
        assert_eq!(pipeline, r#"[["GET","p:{catalog}:version"],["EVAL","return \"a\"\nend","1","kéy"]]"#);
        let decoded: Vec<Vec<String>> = serde_json::from_str(&pipeline).unwrap();
        assert_eq!(decoded[1][1], "return \"a\"\nend");
        assert_eq!(encode_pipeline(&[]).unwrap(), "[]");
    }

    #[test]
    fn pipeline_replies_decode_by_kind() {
        let body = format!(
            r#"[{{"result":"{}"}},{{"result":["{}","{}","{}","{}"]}},{{"result":null}},{{"result":7}},
               {{"error":"WRONGTYPE Operation against a key holding the wrong kind of value"}},
               {{"result":"OK"}},{{"result":[]}},{{"result":-3}},{{}},{{"result":[null,["{}"]]}}]"#,
            b64("42"),
            b64("n:3"),
            b64("2"),
            b64("s:4:1"),
            b64("5"),
            b64("nested"),
        );
        let replies = decode_pipeline(200, &body, 10).unwrap();
        assert_eq!(
            replies,
            vec![
                bulk("42"),
                Reply::Array(vec![bulk("n:3"), bulk("2"), bulk("s:4:1"), bulk("5")]),
                Reply::Nil,
                Reply::Int(7),
                Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into()),
                bulk("OK"),
                Reply::Array(vec![]),
                Reply::Int(-3),
                Reply::Nil,
                Reply::Array(vec![Reply::Nil, Reply::Array(vec![bulk("nested")])]),
            ]
        );
    }

    #[test]
    fn binary_and_unicode_values_survive() {
        let bytes = [0u8, 0xff, 0xfe, b'{', b'"'];
        let body = format!(r#"[{{"result":"{}"}},{{"result":"{}"}}]"#, STANDARD.encode(bytes), b64("Hé {x}"));
        assert_eq!(
            decode_pipeline(200, &body, 2).unwrap(),
            vec![Reply::Bulk(bytes.to_vec()), bulk("Hé {x}")]
        );
    }

    #[test]
    fn a_catalog_sized_value_decodes() {
        let catalog = "{\"version\":7,\"campaigns\":[]}".repeat(2000);
        let body = format!(r#"{{"result":"{}"}}"#, b64(&catalog));
        assert_eq!(decode_command(200, &body).unwrap(), bulk(&catalog));
    }

    #[test]
    fn a_single_command_reads_its_result_or_error() {
        assert_eq!(decode_command(200, &format!(r#"{{"result":"{}"}}"#, b64("v"))), Ok(bulk("v")));
        assert_eq!(decode_command(200, r#"{"result":null}"#), Ok(Reply::Nil));
        assert_eq!(decode_command(200, r#"{"result":12}"#), Ok(Reply::Int(12)));
        // A failed command comes back with 400 and the error object: the command's error reply.
        assert_eq!(
            decode_command(400, r#"{"error":"ERR unknown command 'FOO'"}"#),
            Ok(Reply::Error("ERR unknown command 'FOO'".into()))
        );
    }

    #[test]
    fn a_refused_token_is_an_error_of_its_own() {
        let body = r#"{"error":"Unauthorized"}"#;
        assert_eq!(decode_pipeline(401, body, 3), Err(RestError::Unauthorized));
        assert_eq!(decode_command(401, body), Err(RestError::Unauthorized));
    }

    #[test]
    fn other_statuses_carry_the_service_message_or_the_body() {
        assert_eq!(
            decode_pipeline(400, r#"{"error":"ERR command is not allowed: FLUSHALL"}"#, 1),
            Err(RestError::Status { status: 400, message: "ERR command is not allowed: FLUSHALL".into() })
        );
        assert_eq!(
            decode_pipeline(502, "<html>bad gateway</html>", 1),
            Err(RestError::Status { status: 502, message: "<html>bad gateway</html>".into() })
        );
        assert_eq!(decode_command(503, ""), Err(RestError::Status { status: 503, message: String::new() }));
        let long = "é".repeat(500);
        let Err(RestError::Status { message, .. }) = decode_pipeline(500, &long, 1) else {
            panic!("expected a status error");
        };
        assert_eq!(message.chars().count(), QUOTED_BODY_LEN + 3);
    }

    #[test]
    fn bodies_outside_the_protocol_are_refused() {
        let malformed =
            |result: Result<Vec<Reply>, RestError>| matches!(result, Err(RestError::Malformed(_)));
        for body in [
            "",
            "not json",
            r#"{"result":1}"#,
            r#"[{"result":1}"#,
            r#"[{"result":"not base64!"}]"#,
            r#"[{"result":1.5}]"#,
            r#"[{"result":{"a":1}}]"#,
            r#"[{"result":18446744073709551615}]"#,
            r#"[{"error":7}]"#,
            r#"[1]"#,
            r#"[[]]"#,
            r#"[{"result":[{"a":1}]}]"#,
        ] {
            assert!(malformed(decode_pipeline(200, body, 1)), "{body:?}");
        }
        assert!(matches!(decode_command(200, "[]"), Err(RestError::Malformed(_))));
        assert!(matches!(decode_command(200, r#"{"result":"%%%"}"#), Err(RestError::Malformed(_))));
    }

    #[test]
    fn a_pipeline_answer_must_have_one_reply_per_command() {
        let body = r#"[{"result":1},{"result":2}]"#;
        assert_eq!(decode_pipeline(200, body, 3), Err(RestError::ReplyCount { expected: 3, got: 2 }));
        assert_eq!(decode_pipeline(200, body, 1), Err(RestError::ReplyCount { expected: 1, got: 2 }));
        assert_eq!(decode_pipeline(200, body, 2).map(|r| r.len()), Ok(2));
    }

    /// The core's plans read what this module decodes: a resolve pipeline as the service would answer it.
    #[test]
    fn a_resolve_plan_reads_decoded_replies() {
        use popup_core::ids::{Timestamp, UserId};
        use popup_core::store::{CatalogStatus, KeySpace, ResolvePlan};

        let keys = KeySpace::new("popup", 7 * 3600).unwrap();
        let user = UserId::parse("demo-0042").unwrap();
        let plan = ResolvePlan::new(&keys, &user, Timestamp(1_767_225_600), Some(7));
        let sent: Vec<Vec<String>> =
            serde_json::from_str(&encode_pipeline(plan.commands()).unwrap()).unwrap();
        assert_eq!(sent[0], ["HGETALL", "popup:u:{demo-0042}"]);
        assert!(sent[1][1].starts_with("popup:u:{demo-0042}:d:"));
        assert_eq!(sent[2], ["GET", "popup:{catalog}:version"]);
        let body = format!(
            r#"[{{"result":["{}","{}"]}},{{"result":[]}},{{"result":"{}"}}]"#,
            b64("n:1"),
            b64("2"),
            b64("7")
        );
        let inputs = plan.read(decode_pipeline(200, &body, 3).unwrap()).unwrap();
        assert!(matches!(inputs.catalog, CatalogStatus::Current));
        assert_eq!(inputs.user.counters(popup_core::ids::CampaignId(1)).lifetime, 2);
    }
}
