//! Uploaded segment id files, as the upload reads them: split into chunks anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_core::ids::UserId;
use popup_origin::admin::segments::read_id_file;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (first, second) = data.split_at(split);
    let file = read_id_file(&[first, second]);
    // What would be written is only valid ids, and nothing once a line is bad.
    assert!(file.bad_lines.is_empty() || file.ids.is_empty());
    for id in &file.ids {
        assert!(UserId::parse(id).is_ok(), "{id:?} kept");
    }
    // The same file in one piece reads the same.
    let whole = read_id_file(&[data]);
    assert_eq!(whole.ids, file.ids);
    assert_eq!(whole.bad_lines, file.bad_lines);
});
