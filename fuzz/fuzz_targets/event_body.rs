//! An event body (`{user_id, impression_token}`) as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::wire::EventRequest;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<EventRequest>(data);
});
