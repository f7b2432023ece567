//! The HTTP Redis gateway's request bodies: one command, or a pipeline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_origin::gateway::protocol::{parse_command, parse_pipeline};

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);
    let _ = parse_pipeline(data, 64);
});
