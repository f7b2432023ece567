//! The projection of Postgres into Redis, and its healing.
//!
//! - [`catalog`]: the catalog, built from Postgres with the core and published on every admin write, relying
//!   only on the parts of the projection Redis holds in full (see `popup_core::projection`).
//! - [`segments`]: writing a segment version's members into customers' hashes, and marking it complete.
//! - [`counters`]: rebuilding customers' impression counters from the events in Postgres.
//! - [`heal`](mod@heal): finding what Redis lacks (after a flush, a restart, a failover, a failed upload) and writing
//!   it back, highest priority first; the loop that watches for a loss and reconciles periodically.

pub mod catalog;
pub mod counters;
pub mod heal;
pub mod segments;

pub use catalog::{build_parts, fill_zones, publish, publish_after_write, ProjectionError};
pub use heal::{heal, reconcile, run_reconciler};
