//! The decoded catalog, kept in isolate memory between requests.
//!
//! A resolve asks Redis for the catalog's version alongside the customer's hashes (one pipeline, see
//! `popup_core::store::ResolvePlan`); only when that version differs from the cached one is the catalog
//! itself fetched, decoded and cached. Decoding the catalog is the expensive part of a cold request, so a
//! warm isolate does it once per catalog version.
//!
//! An isolate runs one thread, so the slot is a thread-local; requests interleave only at `await` points,
//! and the slot is never borrowed across one (a `Cell`, swapped in and out, cannot be).

use std::cell::Cell;
use std::rc::Rc;

use popup_core::catalog::Catalog;
use popup_core::store::{fetch_catalog, read_catalog, CatalogStatus, KeySpace};

use crate::error::EdgeError;
use crate::redis::RedisClient;

thread_local! {
    static CATALOG: Cell<Option<Rc<Catalog>>> = const { Cell::new(None) };
}

/// The catalog this isolate resolves with, if it has one.
pub fn cached() -> Option<Rc<Catalog>> {
    CATALOG.with(|slot| {
        let catalog = slot.take();
        slot.set(catalog.clone());
        catalog
    })
}

fn remember(catalog: Rc<Catalog>) {
    CATALOG.with(|slot| slot.set(Some(catalog)));
}

/// The catalog to resolve with, given what the resolve pipeline said about it: the cached one while it is
/// current, else the one Redis holds (fetched in a second request only when the version moved).
pub async fn current(
    redis: &RedisClient<'_>,
    keys: &KeySpace,
    status: CatalogStatus,
    cached: Option<Rc<Catalog>>,
) -> Result<Rc<Catalog>, EdgeError> {
    let catalog = match (status, cached) {
        (CatalogStatus::Current, Some(cached)) => return Ok(cached),
        (CatalogStatus::Fetched(catalog), _) => Rc::new(catalog),
        (CatalogStatus::Absent, _) => return Ok(Rc::new(Catalog::empty())),
        (CatalogStatus::Stale { .. } | CatalogStatus::Current, _) => {
            match read_catalog(redis.command(&fetch_catalog(keys)).await?)? {
                Some(catalog) => Rc::new(catalog),
                None => return Ok(Rc::new(Catalog::empty())),
            }
        }
    };
    remember(catalog.clone());
    Ok(catalog)
}
