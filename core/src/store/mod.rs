//! The Redis vocabulary of the core: the commands it plans and the replies it reads, and the plans
//! themselves, one concept per file:
//!
//! - [`keys`]: where everything lives (the key layout table is there), and telling a key's kind back.
//! - [`resolve`]: the pipeline of one resolve, and the step that fetches a stale catalog.
//! - [`event`]: the event kinds, the event script and the pipeline of one event.
//!
//! This module decides what is stored where and which commands each operation sends; adapters only carry
//! the commands to Redis (a pipeline over TCP at the origin, one HTTP request to the REST API at the edge)
//! and hand the replies back. A resolve is one pipeline of three commands whatever the number of
//! campaigns, and an event one pipeline of two.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::catalog::CatalogError;

pub mod event;
pub mod keys;
pub mod resolve;

pub use event::{Event, EventKind, EventOutcome, EventPlan, EVENT_SCRIPT};
pub use keys::{add_member, parse_day_offset, segment_field, KeyKind, KeySpace, KeySpaceError};
pub use resolve::{
    fetch_catalog, read_catalog, CatalogFetch, CatalogStatus, FlowStep, Ready, ResolveFlow, ResolveInputs,
    ResolvePlan,
};

/// One Redis command: its name and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl Command {
    fn new<const N: usize>(parts: [&str; N]) -> Command {
        Command(parts.iter().map(|p| p.to_string()).collect())
    }

    pub fn name(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The arguments, without the name.
    pub fn arguments(&self) -> &[String] {
        self.0.get(1..).unwrap_or_default()
    }

    /// The name and the arguments: the whole command as sent. See [`Command::arguments`] for the
    /// arguments alone.
    pub fn args(&self) -> &[String] {
        &self.0
    }
}

/// A Redis reply, as both adapters can express it (RESP over TCP, JSON over HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    /// Bulk and status strings.
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply for this command (the pipeline as a whole went through).
    Error(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("expected {expected} replies, got {got}")]
    ReplyCount { expected: usize, got: usize },
    #[error("redis answered {command}: {message}")]
    Redis { command: &'static str, message: String },
    #[error("unexpected reply to {0}")]
    UnexpectedReply(&'static str),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

fn exact<const N: usize>(replies: Vec<Reply>) -> Result<[Reply; N], StoreError> {
    let got = replies.len();
    replies.try_into().map_err(|_| StoreError::ReplyCount { expected: N, got })
}

pub(crate) fn parse_int(reply: &Reply, command: &'static str) -> Result<i64, StoreError> {
    match reply {
        Reply::Int(n) => Ok(*n),
        Reply::Bulk(bytes) => core::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(StoreError::UnexpectedReply(command)),
        Reply::Error(message) => Err(StoreError::Redis { command, message: message.clone() }),
        _ => Err(StoreError::UnexpectedReply(command)),
    }
}

/// The field/value pairs of an `HGETALL` reply. Non-UTF-8 entries are skipped.
pub(crate) fn hash_pairs(reply: Reply, command: &'static str) -> Result<Vec<(String, String)>, StoreError> {
    let items = match reply {
        Reply::Array(items) => items,
        Reply::Nil => Vec::new(),
        Reply::Error(message) => return Err(StoreError::Redis { command, message }),
        _ => return Err(StoreError::UnexpectedReply(command)),
    };
    if items.len() % 2 != 0 {
        return Err(StoreError::UnexpectedReply(command));
    }
    let text = |reply: Reply| match reply {
        Reply::Bulk(bytes) => String::from_utf8(bytes).ok(),
        Reply::Int(n) => Some(n.to_string()),
        _ => None,
    };
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        if let (Some(field), Some(value)) = (text(field), text(value)) {
            pairs.push((field, value));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Timestamp, UserId};

    fn resolve_plan(cached_version: Option<u64>) -> ResolvePlan {
        let keys = KeySpace::new("p", 0).unwrap();
        ResolvePlan::new(&keys, &UserId::parse("u").unwrap(), Timestamp(0), cached_version)
    }

    #[test]
    fn commands_give_their_name_and_arguments_apart() {
        let plan = resolve_plan(None);
        let user = &plan.commands()[0];
        assert_eq!(user.name(), "HGETALL");
        assert_eq!(user.arguments(), ["p:u:{u}"]);
        assert_eq!(user.args(), ["HGETALL", "p:u:{u}"]);
        let empty = Command(alloc::vec![]);
        assert_eq!((empty.name(), empty.arguments(), empty.args()), ("", &[][..], &[][..]));
    }
}
