//! The Upstash REST protocol's JSON, without I/O: request bodies into commands, Redis replies into
//! `{"result": ...}` / `{"error": ...}`.
//!
//! Requests: a command is a JSON array whose first element is the command name (a string) and whose
//! arguments are strings, numbers or booleans. The official JavaScript client sends numbers and booleans
//! as they are (`["eval", script, 3, ...]`, `["set", "k", true]`), so they are accepted and sent to Redis
//! as their JSON text (`3`, `1.5`, `true`), which is what that client reads back.
//!
//! Replies: integers stay numbers and nil is null. Without `Upstash-Encoding: base64` strings are sent
//! as text, with invalid UTF-8 replaced by U+FFFD as Upstash does. With it, every string is base64, at any
//! depth, except a whole result that is the status `OK`: Upstash documents that exception and its
//! clients rely on it (they return a top-level `"OK"` as is, and base64-decode every other string,
//! including `PONG` and strings inside arrays, which must therefore be encoded).

use base64::Engine;
use popup_core::store::Command;
use serde_json::{json, Value as Json};

use super::error::GatewayError;

/// How strings in results are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Base64,
}

/// The body of `POST /`.
pub fn parse_command(body: &[u8]) -> Result<Command, GatewayError> {
    command(parse_json(body)?)
}

/// The body of `POST /pipeline` and `POST /multi-exec`: at least one command, at most `max`.
pub fn parse_pipeline(body: &[u8], max: usize) -> Result<Vec<Command>, GatewayError> {
    let Json::Array(items) = parse_json(body)? else {
        return Err(bad("a pipeline is a JSON array of commands, like [[\"GET\", \"key\"]]"));
    };
    if items.is_empty() {
        return Err(bad("the pipeline is empty"));
    }
    if items.len() > max {
        return Err(GatewayError::PipelineTooLong { len: items.len(), max });
    }
    items.into_iter().map(command).collect()
}

fn parse_json(body: &[u8]) -> Result<Json, GatewayError> {
    serde_json::from_slice(body).map_err(|error| bad(&format!("the body is not JSON: {error}")))
}

fn command(value: Json) -> Result<Command, GatewayError> {
    let Json::Array(items) = value else {
        return Err(bad("a command is a JSON array, like [\"GET\", \"key\"]"));
    };
    let mut items = items.into_iter();
    let name = match items.next() {
        None => return Err(bad("the command is empty")),
        Some(Json::String(name)) if !name.is_empty() => name,
        Some(_) => return Err(bad("a command starts with its name, a non-empty string")),
    };
    let mut parts = Vec::with_capacity(items.len() + 1);
    parts.push(name);
    for item in items {
        parts.push(match item {
            Json::String(text) => text,
            Json::Number(number) => number.to_string(),
            Json::Bool(flag) => flag.to_string(),
            _ => return Err(bad("command arguments are strings, numbers or booleans")),
        });
    }
    Ok(Command(parts))
}

fn bad(message: &str) -> GatewayError {
    GatewayError::BadRequest(message.to_string())
}

/// One command's outcome as the protocol carries it: `{"result": ...}` or `{"error": "..."}`.
pub fn encode_reply(reply: redis::Value, encoding: Encoding) -> Json {
    match reply {
        redis::Value::ServerError(error) => json!({ "error": server_error_message(&error) }),
        // The one string Upstash leaves unencoded, and only as a whole result.
        redis::Value::Okay => json!({ "result": "OK" }),
        redis::Value::SimpleString(text) if text == "OK" => json!({ "result": "OK" }),
        other => match encode_value(other, encoding) {
            Some(result) => json!({ "result": result }),
            None => json!({ "error": "ERR the gateway cannot carry this reply type" }),
        },
    }
}

/// None for reply types that exist only in RESP3 push messages; the gateway speaks RESP2 unless the
/// operator's URL asks otherwise, and the edge's commands never produce them.
fn encode_value(value: redis::Value, encoding: Encoding) -> Option<Json> {
    let string = |bytes: &[u8]| match encoding {
        Encoding::Base64 => Json::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Encoding::Text => Json::String(String::from_utf8_lossy(bytes).into_owned()),
    };
    let list = |items: Vec<redis::Value>| {
        items
            .into_iter()
            .map(|item| encode_value(item, encoding))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array)
    };
    Some(match value {
        redis::Value::Nil => Json::Null,
        redis::Value::Int(n) => Json::from(n),
        redis::Value::BulkString(bytes) => string(&bytes),
        redis::Value::SimpleString(text) => string(text.as_bytes()),
        redis::Value::Okay => string(b"OK"),
        redis::Value::Array(items) | redis::Value::Set(items) => list(items)?,
        // RESP3 shapes, flattened to what RESP2 (and so Upstash) would send.
        redis::Value::Map(pairs) => list(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())?,
        redis::Value::Attribute { data, .. } => encode_value(*data, encoding)?,
        redis::Value::Double(number) => string(number.to_string().as_bytes()),
        redis::Value::Boolean(flag) => Json::from(i64::from(flag)),
        redis::Value::VerbatimString { text, .. } => string(text.as_bytes()),
        // Inside an array (a transaction's or a script's), an error can only be told as its message.
        redis::Value::ServerError(error) => string(server_error_message(&error).as_bytes()),
        _ => return None,
    })
}

/// Redis's own wording, `CODE detail`, as a Redis client prints it.
pub fn server_error_message(error: &redis::ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn encode(value: Value, encoding: Encoding) -> Json {
        encode_reply(value, encoding)
    }

    #[test]
    fn commands_parse_with_numbers_and_booleans_as_text() {
        let command = parse_command(br#"["eval", "return 1", 3, "k", 1.5, true, -2]"#).unwrap();
        assert_eq!(command.args(), ["eval", "return 1", "3", "k", "1.5", "true", "-2"]);
        let pipeline = parse_pipeline(br#"[["PING"], ["GET", "k"]]"#, 2).unwrap();
        assert_eq!(pipeline.len(), 2);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for body in [
            &b""[..],
            b"{",
            b"\"GET\"",
            b"{\"cmd\": \"GET\"}",
            b"[]",
            b"[\"\"]",
            b"[3, \"k\"]",
            b"[\"GET\", null]",
            b"[\"GET\", [\"k\"]]",
            b"[\"GET\", {\"k\": 1}]",
        ] {
            let error = parse_command(body).unwrap_err();
            assert!(matches!(error, GatewayError::BadRequest(_)), "{body:?}: {error:?}");
        }
        for body in [&b"[]"[..], b"[\"GET\", \"k\"]", b"[[]]", b"[[\"GET\"], 3]", b"nope"] {
            let error = parse_pipeline(body, 5).unwrap_err();
            assert!(matches!(error, GatewayError::BadRequest(_)), "{body:?}: {error:?}");
        }
        assert!(matches!(
            parse_pipeline(br#"[["PING"], ["PING"], ["PING"]]"#, 2),
            Err(GatewayError::PipelineTooLong { len: 3, max: 2 })
        ));
    }

    #[test]
    fn replies_encode_as_upstash_sends_them() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let hash = Value::Array(vec![bulk("n:1"), bulk("2"), bulk("name"), bulk("Ñoño ✓")]);
        let cases = [
            (Value::Nil, json!({"result": null}), json!({"result": null})),
            (Value::Int(-7), json!({"result": -7}), json!({"result": -7})),
            (bulk("42"), json!({"result": "42"}), json!({"result": "NDI="})),
            (Value::Okay, json!({"result": "OK"}), json!({"result": "OK"})),
            (Value::SimpleString("OK".into()), json!({"result": "OK"}), json!({"result": "OK"})),
            (Value::SimpleString("PONG".into()), json!({"result": "PONG"}), json!({"result": "UE9ORw=="})),
            (
                hash,
                json!({"result": ["n:1", "2", "name", "Ñoño ✓"]}),
                json!({"result": ["bjox", "Mg==", "bmFtZQ==", "w5Fvw7FvIOKckw=="]}),
            ),
            (
                Value::Array(vec![Value::Okay, Value::Int(1), Value::Nil, Value::Array(vec![bulk("a")])]),
                json!({"result": ["OK", 1, null, ["a"]]}),
                json!({"result": ["T0s=", 1, null, ["YQ=="]]}),
            ),
            (Value::BulkString(vec![0xff, b'a']), json!({"result": "\u{fffd}a"}), json!({"result": "/2E="})),
            (
                Value::Map(vec![(bulk("f"), bulk("v"))]),
                json!({"result": ["f", "v"]}),
                json!({"result": ["Zg==", "dg=="]}),
            ),
        ];
        for (value, text, base64) in cases {
            assert_eq!(encode(value.clone(), Encoding::Text), text, "{value:?}");
            assert_eq!(encode(value.clone(), Encoding::Base64), base64, "{value:?}");
        }
    }
}
