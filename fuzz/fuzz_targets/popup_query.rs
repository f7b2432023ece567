//! The popup API's query string, decoded as the edge decodes it, then read by the core.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::wire::PopupQuery;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let pairs: Vec<(&str, &str)> =
        query.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).collect();
    let _ = PopupQuery::parse(pairs);
});
