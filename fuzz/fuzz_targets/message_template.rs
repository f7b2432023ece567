//! A message template as a marketer types it: parsed, and when valid rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::template::{Template, CUSTOMER_PLACEHOLDERS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(template) = Template::parse(text, CUSTOMER_PLACEHOLDERS) {
        let _ = template.render(|_| Some("Budi {x}"));
    }
});
