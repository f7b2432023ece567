//! The origin service: the admin API, Postgres as the source of truth, the projection into Redis, event
//! ingest and outbound messaging, all around the rules in `popup-core`.
