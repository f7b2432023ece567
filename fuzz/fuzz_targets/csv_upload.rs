//! Uploaded id files and customer CSVs, as the streaming reader sees them: in chunks split anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_origin::http::upload::csv::CsvReader;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (first, second) = data.split_at(split);
    let mut reader = CsvReader::default();
    let mut lines = 0u64;
    let mut count = |record: popup_origin::http::upload::csv::Read<'_>| {
        let line = match record {
            Ok(record) => record.line(),
            Err(bad) => bad.line,
        };
        assert!(line > lines, "lines are numbered in order");
        lines = line;
    };
    reader.feed(first, &mut count);
    reader.feed(second, &mut count);
    reader.finish(&mut count);
});
