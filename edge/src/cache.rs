//! What an isolate keeps between requests: the decoded catalog, and ([`kept`]) what its bindings decide.
//!
//! A resolve asks Redis for the catalog's version alongside the customer's hashes (one pipeline); only
//! when that version differs from the cached one is the catalog itself fetched, decoded and cached. The
//! core decides which of the two happens (`popup_core::store::ResolveFlow`); this module only holds the
//! catalog. Decoding the catalog is the expensive part of a cold request, so a warm isolate does it once
//! per catalog version.
//!
//! An isolate runs one thread, so the slot is a thread-local; requests interleave only at `await` points,
//! and the slot is never borrowed across one (a `Cell`, swapped in and out, cannot be).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread::LocalKey;

use popup_core::catalog::Catalog;

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

/// Keeps `catalog` for the next requests.
pub fn remember(catalog: Rc<Catalog>) {
    CATALOG.with(|slot| slot.set(Some(catalog)));
}

/// The value in `slot`, made by `make` on the isolate's first use and kept for its life: for what an
/// isolate's bindings decide, which never change while it lives. A `make` that fails keeps nothing, so the
/// next request tries again.
pub fn kept<T: Clone, E>(
    slot: &'static LocalKey<RefCell<Option<T>>>,
    make: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if let Some(value) = slot.with_borrow(Option::clone) {
        return Ok(value);
    }
    let value = make()?;
    slot.with_borrow_mut(|kept| *kept = Some(value.clone()));
    Ok(value)
}
