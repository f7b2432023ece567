//! The lifecycle of a popup campaign: the status stored with it, the status shown to the marketing team,
//! and which action may run from which status.
//!
//! ```text
//! draft --activate--> active --pause--> paused --activate--> active
//!                     active, paused --end--> ended
//! ```
//!
//! - Only an `active` campaign is served. It is *shown* as `scheduled` before its start and as `ended`
//!   from its end, the same instants at which the resolver starts and stops serving it
//!   ([`crate::resolve`]), so what the backoffice says and what customers see agree to the second.
//! - An `ended` campaign is final: it cannot be activated again nor changed.
//! - A campaign shown `active` or `scheduled` cannot be deleted: it is live, or will be, and a delete would
//!   take it away from customers with no step that says so. Pause or end it first. Any other campaign can
//!   be deleted (an `active` one past its end is served to nobody).
//!
//! [`apply`] is the whole rule: a pure function from the stored status, the action and the campaign's
//! dates at `now` to the stored status after the action, or why the action is refused.

#[cfg(feature = "openapi")]
use alloc::{string::String, vec::Vec};
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;

/// The status stored with a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Active,
    Paused,
    Ended,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Draft, Status::Active, Status::Paused, Status::Ended];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Ended => "ended",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// The status the marketing team sees at `now`.
    pub fn shown(self, dates: Dates, now: Timestamp) -> Shown {
        match self {
            Status::Draft => Shown::Draft,
            Status::Active if now < dates.start => Shown::Scheduled,
            Status::Active if dates.end.is_some_and(|end| now >= end) => Shown::Ended,
            Status::Active => Shown::Active,
            Status::Paused => Shown::Paused,
            Status::Ended => Shown::Ended,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status that is none of [`Status::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown campaign status {0:?}")]
pub struct UnknownStatus(pub alloc::string::String);

/// For database rows, whose status is text.
impl TryFrom<alloc::string::String> for Status {
    type Error = UnknownStatus;

    fn try_from(raw: alloc::string::String) -> Result<Status, UnknownStatus> {
        Status::parse(&raw).ok_or(UnknownStatus(raw))
    }
}

/// The status shown: the stored one, with an active campaign told apart by its dates.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    Draft,
    /// Active, before its start.
    Scheduled,
    Active,
    Paused,
    /// Ended, or active from its end on.
    Ended,
}

impl Shown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Draft => "draft",
            Shown::Scheduled => "scheduled",
            Shown::Active => "active",
            Shown::Paused => "paused",
            Shown::Ended => "ended",
        }
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a campaign runs: from `start`, until `end` (exclusive) if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dates {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// What the marketing team can do to a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Activate,
    Pause,
    End,
    /// Change what the campaign is (its content, audience, dates), not its status.
    Update,
    /// Remove it (softly: the row stays, for the audit trail and the stats).
    Delete,
}

impl Action {
    /// The actions that change the status, each its own route (`POST /campaigns/{id}/{action}`).
    pub const TRANSITIONS: [Action; 3] = [Action::Activate, Action::Pause, Action::End];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Pause => "pause",
            Action::End => "end",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// One of [`Action::TRANSITIONS`], by name.
    pub fn parse_transition(raw: &str) -> Option<Action> {
        Action::TRANSITIONS.into_iter().find(|action| action.as_str() == raw)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action was refused. Each is a conflict with the campaign's current state, never bad input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// A transition that does not start from this status.
    #[error("cannot {action} a campaign that is {status}")]
    NotFrom { action: Action, status: Status },
    #[error("an ended campaign cannot be changed")]
    Ended,
    /// A delete of a campaign that is live or about to be.
    #[error("cannot delete a campaign that is {0}; pause or end it first")]
    Live(Shown),
}

/// The stored status after `action` on a campaign stored as `status` with `dates`, at `now`. An update or
/// a delete leaves the status as it is (a deleted campaign keeps the status it had).
pub fn apply(status: Status, action: Action, dates: Dates, now: Timestamp) -> Result<Status, LifecycleError> {
    let refused = LifecycleError::NotFrom { action, status };
    match (action, status) {
        (Action::Activate, Status::Draft | Status::Paused) => Ok(Status::Active),
        (Action::Pause, Status::Active) => Ok(Status::Paused),
        (Action::End, Status::Active | Status::Paused) => Ok(Status::Ended),
        (Action::Activate | Action::Pause | Action::End, _) => Err(refused),
        (Action::Update, Status::Ended) => Err(LifecycleError::Ended),
        (Action::Update, _) => Ok(status),
        (Action::Delete, _) => match status.shown(dates, now) {
            shown @ (Shown::Active | Shown::Scheduled) => Err(LifecycleError::Live(shown)),
            Shown::Draft | Shown::Paused | Shown::Ended => Ok(status),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const START: Timestamp = Timestamp(1_000);
    const END: Timestamp = Timestamp(2_000);
    const DATES: Dates = Dates { start: START, end: Some(END) };

    #[test]
    fn every_action_from_every_status() {
        use Action::*;
        use Status::*;
        let running = Timestamp(1_500);
        let not_from = |action, status| Err(LifecycleError::NotFrom { action, status });
        let cases = [
            (Draft, Activate, Ok(Active)),
            (Draft, Pause, not_from(Pause, Draft)),
            (Draft, End, not_from(End, Draft)),
            (Draft, Update, Ok(Draft)),
            (Draft, Delete, Ok(Draft)),
            (Active, Activate, not_from(Activate, Active)),
            (Active, Pause, Ok(Paused)),
            (Active, End, Ok(Ended)),
            (Active, Update, Ok(Active)),
            (Active, Delete, Err(LifecycleError::Live(Shown::Active))),
            (Paused, Activate, Ok(Active)),
            (Paused, Pause, not_from(Pause, Paused)),
            (Paused, End, Ok(Ended)),
            (Paused, Update, Ok(Paused)),
            (Paused, Delete, Ok(Paused)),
            (Ended, Activate, not_from(Activate, Ended)),
            (Ended, Pause, not_from(Pause, Ended)),
            (Ended, End, not_from(End, Ended)),
            (Ended, Update, Err(LifecycleError::Ended)),
            (Ended, Delete, Ok(Ended)),
        ];
        assert_eq!(cases.len(), Status::ALL.len() * 5, "every pair once");
        for (status, action, expected) in cases {
            assert_eq!(apply(status, action, DATES, running), expected, "{action} from {status}");
        }
    }

    #[test]
    fn an_active_campaign_can_be_deleted_only_once_it_is_served_to_nobody() {
        let delete = |now| apply(Status::Active, Action::Delete, DATES, Timestamp(now));
        assert_eq!(delete(999), Err(LifecycleError::Live(Shown::Scheduled)));
        assert_eq!(delete(1_000), Err(LifecycleError::Live(Shown::Active)));
        assert_eq!(delete(1_999), Err(LifecycleError::Live(Shown::Active)));
        assert_eq!(delete(2_000), Ok(Status::Active), "past its end it is served to nobody");
        let open_ended = Dates { start: START, end: None };
        assert_eq!(
            apply(Status::Active, Action::Delete, open_ended, Timestamp(i64::MAX)),
            Err(LifecycleError::Live(Shown::Active))
        );
    }

    #[test]
    fn an_active_campaign_shows_its_dates_at_the_resolvers_instants() {
        let shown = |now| Status::Active.shown(DATES, Timestamp(now));
        assert_eq!(shown(999), Shown::Scheduled);
        assert_eq!(shown(1_000), Shown::Active, "served from its start");
        assert_eq!(shown(1_999), Shown::Active);
        assert_eq!(shown(2_000), Shown::Ended, "the end is exclusive");
        // The other statuses are shown as stored, whatever the dates.
        for now in [999, 1_500, 2_000] {
            assert_eq!(Status::Draft.shown(DATES, Timestamp(now)), Shown::Draft);
            assert_eq!(Status::Paused.shown(DATES, Timestamp(now)), Shown::Paused);
            assert_eq!(Status::Ended.shown(DATES, Timestamp(now)), Shown::Ended);
        }
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let refused = apply(Status::Ended, Action::Activate, DATES, START).unwrap_err();
        assert_eq!(refused.to_string(), "cannot activate a campaign that is ended");
        assert_eq!(LifecycleError::Ended.to_string(), "an ended campaign cannot be changed");
        assert_eq!(
            LifecycleError::Live(Shown::Scheduled).to_string(),
            "cannot delete a campaign that is scheduled; pause or end it first"
        );
    }

    #[test]
    fn names_read_back_and_only_transitions_are_routes() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::try_from(status.as_str().to_string()), Ok(status));
        }
        assert_eq!(Status::parse("scheduled"), None, "shown, never stored");
        assert_eq!(Status::try_from("Active".to_string()), Err(UnknownStatus("Active".into())));
        for action in Action::TRANSITIONS {
            assert_eq!(Action::parse_transition(action.as_str()), Some(action));
        }
        for other in ["update", "delete", "restart", ""] {
            assert_eq!(Action::parse_transition(other), None, "{other:?}");
        }
        assert_eq!(serde_json::to_string(&Shown::Scheduled).unwrap(), r#""scheduled""#);
        assert_eq!(serde_json::to_string(&Status::Paused).unwrap(), r#""paused""#);
    }

    /// The statuses are those the schema allows, in its order (`migrations/0001_origin.sql`).
    #[test]
    fn the_statuses_are_the_schemas() {
        let schema = include_str!("../../migrations/0001_origin.sql");
        let names: alloc::vec::Vec<_> =
            Status::ALL.iter().map(|status| alloc::format!("'{}'", status.as_str())).collect();
        let check = alloc::format!("CHECK (status IN ({}))", names.join(", "));
        assert!(schema.contains(&check), "{check}");
    }
}
