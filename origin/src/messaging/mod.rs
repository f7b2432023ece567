//! Outbound SMS and WhatsApp messaging: customers, message campaigns with templates, sending, and the worker
//! that delivers.
//!
//! - [`customers`]: `/admin/v1/customers`: create, read, list, and a streamed CSV import.
//! - [`campaigns`]: `/admin/v1/message-campaigns`: create (the template is checked with the core's
//!   [`popup_core::template`]), list, detail with stats, and the campaign's messages.
//! - [`send`]: `POST /admin/v1/message-campaigns/{id}/send`: renders a message per customer and stores them
//!   all in one transaction; storing them is dispatching them, because Postgres is the queue.
//! - [`dead`]: `/admin/v1/messages/dead`: the messages that failed for good, and putting them back in line.
//! - [`worker`]: claims, sends, retries with backoff, records; the `messenger` role of the binary
//!   ([`messenger`]).
//! - [`provider`]: the mock and the Twilio client behind one trait; [`rate`]: the token bucket;
//!   [`phone`]: E.164.
//!
//! Their SQL is in [`crate::db`]: [`customers`](crate::db::customers),
//! [`message_campaigns`](crate::db::message_campaigns) and [`messages`](crate::db::messages) (the queue:
//! claims, leases, outcomes). The statuses of messages and campaigns, and the steps between them, are the
//! core's (`popup_core::delivery`); how they are written into SQL is explained in [`worker`].
//!
//! Campaign statuses (seed 002): `draft` -> `sending` -> `sent` | `failed`, or `scheduled` (created with a
//! `scheduled_at`) -> `sending` at that time. A scheduled campaign still needs a send to name its customers;
//! sent before its time, its messages are stored at once and become due at that time. Sending is allowed once, from `draft` or `scheduled`;
//! any other send answers 409. A campaign is `sent` when nothing is pending or sending and at least one
//! message was sent, `failed` when every message failed. Re-queueing dead messages puts it back to
//! `sending`.
//!
//! Roles: viewers read, editors write; every write is audited.

pub mod campaigns;
pub mod customers;
pub mod dead;
pub mod messenger;
pub mod phone;
pub mod provider;
pub mod rate;
pub mod send;
pub mod worker;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use crate::db::message_campaigns::Channel;
use crate::state::AppState;

/// The admin routes, merged into `/admin/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(customers::create, customers::list))
        // Imports are streamed and bounded by the upload limit (`POPUP_MAX_SEGMENT_BYTES`), not axum's.
        .routes(routes!(customers::import).layer(DefaultBodyLimit::disable()))
        .routes(routes!(customers::get))
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::messages))
        // Up to 200k customer ids in one request.
        .routes(routes!(send::send).layer(DefaultBodyLimit::max(send::MAX_BODY_BYTES)))
        .routes(routes!(dead::list))
        .routes(routes!(dead::requeue))
}
