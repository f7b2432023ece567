//! The delivery of outbound messages (SMS, WhatsApp): the statuses of a message and of a message
//! campaign, and the steps that move them. The origin keeps both in Postgres, which is also the queue, and
//! its worker applies these steps there, many rows per statement.
//!
//! A message:
//!
//! ```text
//! pending --claim--> sending --attempt sent--> sent
//!                    sending --attempt to retry--> pending
//!                    sending --attempt failed, or abandoned--> failed --requeue--> pending
//!                    sending (lease ran out) --take over--> sending
//! ```
//!
//! A message campaign:
//!
//! ```text
//! (create) --> draft, or scheduled when created with a time
//! draft, scheduled --send--> sending, or scheduled while its time is ahead   (once)
//! scheduled (sent) --its time came--> sending
//! sending --nothing pending or sending is left--> sent if a message was sent, else failed
//! sent, failed --dead letters requeued--> sending
//! ```
//!
//! Each step is a value of [`MessageStep`] or [`CampaignStep`] with the statuses it starts `from` and the
//! one it leads `to`.

#[cfg(feature = "openapi")]
use alloc::{string::String, vec::Vec};
use core::fmt;
use serde::{Deserialize, Serialize};

/// Where one message is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting for a worker, from its `next_attempt_at` on.
    Pending,
    /// Claimed by a worker, under a lease, and being sent.
    Sending,
    Sent,
    /// Failed for good: a dead letter.
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 4] =
        [MessageStatus::Pending, MessageStatus::Sending, MessageStatus::Sent, MessageStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

/// Where one message campaign is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageCampaignStatus {
    Draft,
    /// Created with a time; once sent, its messages wait for that time.
    Scheduled,
    Sending,
    /// Nothing left to send, and at least one message went out.
    Sent,
    /// Nothing left to send, and every message failed.
    Failed,
}

impl MessageCampaignStatus {
    pub const ALL: [MessageCampaignStatus; 5] = [
        MessageCampaignStatus::Draft,
        MessageCampaignStatus::Scheduled,
        MessageCampaignStatus::Sending,
        MessageCampaignStatus::Sent,
        MessageCampaignStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageCampaignStatus::Draft => "draft",
            MessageCampaignStatus::Scheduled => "scheduled",
            MessageCampaignStatus::Sending => "sending",
            MessageCampaignStatus::Sent => "sent",
            MessageCampaignStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<MessageCampaignStatus> {
        MessageCampaignStatus::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// Whether the campaign may be sent now: once, from draft or scheduled. `already_sent` says whether a
    /// send was made before (a scheduled campaign keeps its status until its time, so the status alone
    /// does not tell).
    pub fn check_send(self, already_sent: bool) -> Result<(), SendRefused> {
        if CampaignStep::SEND_FROM.contains(&self) && !already_sent {
            Ok(())
        } else {
            Err(SendRefused { status: self, already_sent })
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MessageCampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status that is none of the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub alloc::string::String);

/// For database rows, whose status is text.
impl TryFrom<alloc::string::String> for MessageStatus {
    type Error = UnknownStatus;

    fn try_from(raw: alloc::string::String) -> Result<MessageStatus, UnknownStatus> {
        MessageStatus::parse(&raw).ok_or(UnknownStatus(raw))
    }
}

/// For database rows, whose status is text.
impl TryFrom<alloc::string::String> for MessageCampaignStatus {
    type Error = UnknownStatus;

    fn try_from(raw: alloc::string::String) -> Result<MessageCampaignStatus, UnknownStatus> {
        MessageCampaignStatus::parse(&raw).ok_or(UnknownStatus(raw))
    }
}

/// A second send of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SendRefused {
    pub status: MessageCampaignStatus,
    pub already_sent: bool,
}

impl fmt::Display for SendRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.status {
            MessageCampaignStatus::Scheduled if self.already_sent => "queued for its scheduled time",
            status => status.as_str(),
        };
        write!(f, "the campaign is already {state}; it can be sent once")
    }
}

/// How one attempt to send a message ended, as the worker decided it (see the origin's `worker::decide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Failed, with attempts left: another after a backoff.
    Retry,
    /// Failed for good.
    Failed,
}

/// What happens to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStep {
    /// A worker claims a due message and starts an attempt.
    Claim,
    /// A worker takes over a message whose lease ran out (its worker died), in the same attempt.
    TakeOver,
    /// An attempt ended.
    Attempted(AttemptOutcome),
    /// A message whose lease ran out too often in one attempt is failed instead of taken over again.
    Abandon,
    /// A dead letter is put back in line.
    Requeue,
}

impl MessageStep {
    /// The statuses a message is in when this step applies.
    pub fn from(self) -> &'static [MessageStatus] {
        match self {
            MessageStep::Claim => &[MessageStatus::Pending],
            MessageStep::TakeOver | MessageStep::Attempted(_) | MessageStep::Abandon => {
                &[MessageStatus::Sending]
            }
            MessageStep::Requeue => &[MessageStatus::Failed],
        }
    }

    /// The status the step leaves the message in.
    pub fn to(self) -> MessageStatus {
        match self {
            MessageStep::Claim | MessageStep::TakeOver => MessageStatus::Sending,
            MessageStep::Attempted(AttemptOutcome::Sent) => MessageStatus::Sent,
            MessageStep::Attempted(AttemptOutcome::Retry) | MessageStep::Requeue => MessageStatus::Pending,
            MessageStep::Attempted(AttemptOutcome::Failed) | MessageStep::Abandon => MessageStatus::Failed,
        }
    }
}

/// What happens to a message campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignStep {
    /// Created, with a scheduled time or without.
    Create { scheduled: bool },
    /// Its messages are stored (see [`MessageCampaignStatus::check_send`]); `due_later` when its scheduled
    /// time is still ahead, so they wait for it.
    Send { due_later: bool },
    /// The scheduled time of a campaign already sent came.
    Start,
    /// Nothing is pending or sending any more.
    Settle { any_sent: bool },
    /// Some of its dead letters were put back in line.
    Requeue,
}

impl CampaignStep {
    const SEND_FROM: &'static [MessageCampaignStatus] =
        &[MessageCampaignStatus::Draft, MessageCampaignStatus::Scheduled];

    /// The statuses a campaign is in when this step applies (none before it is created).
    pub fn from(self) -> &'static [MessageCampaignStatus] {
        match self {
            CampaignStep::Create { .. } => &[],
            CampaignStep::Send { .. } => CampaignStep::SEND_FROM,
            CampaignStep::Start => &[MessageCampaignStatus::Scheduled],
            CampaignStep::Settle { .. } => &[MessageCampaignStatus::Sending],
            CampaignStep::Requeue => &[MessageCampaignStatus::Sent, MessageCampaignStatus::Failed],
        }
    }

    /// The status the step leaves the campaign in.
    pub fn to(self) -> MessageCampaignStatus {
        match self {
            CampaignStep::Create { scheduled: false } => MessageCampaignStatus::Draft,
            CampaignStep::Create { scheduled: true } | CampaignStep::Send { due_later: true } => {
                MessageCampaignStatus::Scheduled
            }
            CampaignStep::Send { due_later: false } | CampaignStep::Start | CampaignStep::Requeue => {
                MessageCampaignStatus::Sending
            }
            CampaignStep::Settle { any_sent: true } => MessageCampaignStatus::Sent,
            CampaignStep::Settle { any_sent: false } => MessageCampaignStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use MessageCampaignStatus as Campaign;
    use MessageStatus as Message;

    #[test]
    fn message_steps_go_from_and_to_the_documented_statuses() {
        use AttemptOutcome::*;
        let cases: [(MessageStep, &[Message], Message); 7] = [
            (MessageStep::Claim, &[Message::Pending], Message::Sending),
            (MessageStep::TakeOver, &[Message::Sending], Message::Sending),
            (MessageStep::Attempted(Sent), &[Message::Sending], Message::Sent),
            (MessageStep::Attempted(Retry), &[Message::Sending], Message::Pending),
            (MessageStep::Attempted(Failed), &[Message::Sending], Message::Failed),
            (MessageStep::Abandon, &[Message::Sending], Message::Failed),
            (MessageStep::Requeue, &[Message::Failed], Message::Pending),
        ];
        for (step, from, to) in cases {
            assert_eq!((step.from(), step.to()), (from, to), "{step:?}");
        }
        // The worker's claim query sets one status for both: it must be the same.
        assert_eq!(MessageStep::Claim.to(), MessageStep::TakeOver.to());
    }

    #[test]
    fn campaign_steps_go_from_and_to_the_documented_statuses() {
        let cases: [(CampaignStep, &[Campaign], Campaign); 8] = [
            (CampaignStep::Create { scheduled: false }, &[], Campaign::Draft),
            (CampaignStep::Create { scheduled: true }, &[], Campaign::Scheduled),
            (
                CampaignStep::Send { due_later: false },
                &[Campaign::Draft, Campaign::Scheduled],
                Campaign::Sending,
            ),
            (
                CampaignStep::Send { due_later: true },
                &[Campaign::Draft, Campaign::Scheduled],
                Campaign::Scheduled,
            ),
            (CampaignStep::Start, &[Campaign::Scheduled], Campaign::Sending),
            (CampaignStep::Settle { any_sent: true }, &[Campaign::Sending], Campaign::Sent),
            (CampaignStep::Settle { any_sent: false }, &[Campaign::Sending], Campaign::Failed),
            (CampaignStep::Requeue, &[Campaign::Sent, Campaign::Failed], Campaign::Sending),
        ];
        for (step, from, to) in cases {
            assert_eq!((step.from(), step.to()), (from, to), "{step:?}");
        }
    }

    #[test]
    fn a_campaign_is_sent_once_from_draft_or_scheduled() {
        assert_eq!(Campaign::Draft.check_send(false), Ok(()));
        assert_eq!(Campaign::Scheduled.check_send(false), Ok(()));
        let refused =
            |status: Campaign, already_sent| status.check_send(already_sent).unwrap_err().to_string();
        assert_eq!(
            refused(Campaign::Scheduled, true),
            "the campaign is already queued for its scheduled time; it can be sent once"
        );
        assert_eq!(refused(Campaign::Sending, true), "the campaign is already sending; it can be sent once");
        assert_eq!(refused(Campaign::Sent, true), "the campaign is already sent; it can be sent once");
        assert_eq!(refused(Campaign::Failed, false), "the campaign is already failed; it can be sent once");
        assert_eq!(refused(Campaign::Draft, true), "the campaign is already draft; it can be sent once");
    }

    #[test]
    fn names_read_back() {
        for status in Message::ALL {
            assert_eq!(Message::parse(status.as_str()), Some(status));
            assert_eq!(Message::try_from(status.as_str().to_string()), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), alloc::format!("\"{status}\""));
        }
        for status in Campaign::ALL {
            assert_eq!(Campaign::parse(status.as_str()), Some(status));
            assert_eq!(Campaign::try_from(status.as_str().to_string()), Ok(status));
            assert_eq!(serde_json::from_str::<Campaign>(&alloc::format!("\"{status}\"")).unwrap(), status);
        }
        assert_eq!(Message::parse("draft"), None);
        assert_eq!(Campaign::parse("pending"), None);
        assert_eq!(Message::try_from("Sent".to_string()), Err(UnknownStatus("Sent".into())));
    }

    /// The statuses are those the schema allows, in its order (`migrations/0003_messaging.sql`).
    #[test]
    fn the_statuses_are_the_schemas() {
        let schema = include_str!("../../migrations/0003_messaging.sql");
        let check = |names: &[&str]| {
            let quoted: alloc::vec::Vec<_> = names.iter().map(|name| alloc::format!("'{name}'")).collect();
            alloc::format!("CHECK (status IN ({}))", quoted.join(", "))
        };
        let messages = check(&Message::ALL.map(Message::as_str));
        let campaigns = check(&Campaign::ALL.map(Campaign::as_str));
        assert!(schema.contains(&messages), "{messages}");
        assert!(schema.contains(&campaigns), "{campaigns}");
    }
}
