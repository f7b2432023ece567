//! An identity provider's key set document, and choosing a key from it for a token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::identity::{Jws, KeySet};

fuzz_target!(|data: &[u8]| {
    let Ok(set) = KeySet::parse(data) else { return };
    for token in ["eyJhbGciOiJSUzI1NiIsImtpZCI6ImEifQ.e30.AA", "eyJhbGciOiJFUzI1NiJ9.e30.AA"] {
        if let Ok(jws) = Jws::parse(token) {
            if let Ok(index) = set.select(&jws) {
                assert!(index < set.keys.len());
            }
        }
    }
});
