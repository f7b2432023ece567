//! The catalog as the resolvers decode it from Redis (which another writer could have corrupted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::catalog::Catalog;

fuzz_target!(|data: &[u8]| {
    let _ = Catalog::decode(data);
});
