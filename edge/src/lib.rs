//! The Cloudflare Worker that answers popup requests near customers, against HTTP Redis.
//!
//! It is an adapter around `popup-core`: routing, request parsing, the HTTP Redis client and the in-isolate
//! catalog cache live here; every business rule lives in the core.
#![no_std]
