//! The business rules of the campaign popup platform.
//!
//! This crate is sans-IO and `no_std` + `alloc`: it never reads a clock, draws randomness or touches the
//! network. Adapters (the edge worker, the origin service) pass `now`, the request context and secrets in, send
//! the Redis commands this crate plans, and hand the replies back for evaluation.
//!
//! Layout:
//! - [`ids`]: identifiers and timestamps.
//! - [`access`]: the roles of API keys and people, and what each may do.
//! - [`campaign`]: the campaign model and its validation.
//! - [`spec`]: the campaign as the admin API and the backoffice editor write it, and its validation.
//! - [`form`]: the backoffice editor's form, decoded into a spec and validated.
//! - [`problem`]: the stable codes of validation problems and their parameters, for translated messages.
//! - [`lifecycle`]: a campaign's statuses, stored and shown, and which action may run from which.
//! - [`zone`]: time zone offset tables, so local-time windows work without a tz database in wasm.
//! - [`catalog`]: the versioned set of live campaigns in resolution order, and global settings.
//! - [`context`]: what a popup request says about the device (placement, platform, version, country, locale).
//! - [`user`]: what Redis knows about one customer (segments, impression counters).
//! - [`resolve`]: choosing the popup, with the reason every other campaign was skipped.
//! - [`bucket`]: deterministic A/B variant assignment.
//! - [`backoff`]: exponential backoff with jitter between attempts.
//! - [`breaker`]: the circuit breaker that answers at once while Redis is failing, and probes it.
//! - [`token`]: HMAC-signed impression tokens.
//! - [`store`]: the Redis commands and replies; [`store::keys`], the key layout; [`store::resolve`] and
//!   [`store::event`], the command plans of a resolve (with [`store::ResolveFlow`], which says when to
//!   fetch a stale catalog) and an event.
//! - [`projection`]: what the catalog may rely on in Redis, publishing it, and healing after Redis lost data.
//! - [`stream`]: the events stream's entries, written by resolvers and read by ingest.
//! - [`reach`]: distinct customers per campaign, day and variant, exact while few, else a mergeable sketch.
//! - [`template`]: `{placeholder}` templates for outbound messages.
//! - [`delivery`]: the statuses of outbound messages and message campaigns, and the steps between them.
//! - [`defaults`]: the defaults of the settings the edge and the origin must agree on.
//! - [`wire`]: the JSON bodies of the public API.
#![no_std]

// The schema derives of the `openapi` feature call `vec!` and `format!` by their bare names.
#[cfg_attr(feature = "openapi", macro_use)]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod access;
pub mod backoff;
pub mod breaker;
pub mod bucket;
pub mod campaign;
pub mod catalog;
pub mod context;
pub mod defaults;
pub mod delivery;
pub mod form;
pub mod identity;
pub mod ids;
pub mod lifecycle;
pub mod limit;
pub mod problem;
pub mod projection;
pub mod reach;
pub mod resolve;
pub mod spec;
pub mod store;
pub mod stream;
pub mod template;
pub mod token;
pub mod user;
pub mod wire;
pub mod zone;
