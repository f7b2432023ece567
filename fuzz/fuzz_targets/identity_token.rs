//! A bearer header through everything the edge and the origin do with it before any signature check:
//! the header, the compact JWS, HS256, and the claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::identity::{bearer, Jws, Rules};
use popup_core::ids::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let Ok(token) = bearer(Some(header)) else { return };
    let Ok(jws) = Jws::parse(token) else { return };
    let _ = jws.verify_hs256(b"fuzzing-secret-0123456789abcdef0123");
    let rules = Rules {
        issuer: "https://id.bank.test".into(),
        audience: "popup".into(),
        user_claim: "sub".into(),
        leeway_seconds: 60,
    };
    // The claims are read whatever the signature: the reader must hold on any bytes.
    let _ = rules.check(&jws, Timestamp(1_800_000_000));
});
