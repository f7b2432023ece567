//! An impression token as the event endpoints verify it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::token::Secrets;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let Ok(secrets) = Secrets::new("fuzzing-secret-0123456789abcdef0123", "", 86_400) else { return };
    let Ok(user) = UserId::parse("cust-1") else { return };
    let _ = secrets.verify_event(token, &user, CampaignId(7), Timestamp(1_800_000_000));
    let _ = secrets.verify_conversion(token, &user, Timestamp(1_800_000_000));
});
