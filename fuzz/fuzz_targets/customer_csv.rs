//! Customer CSV imports, as the import reads them before writing: split into chunks anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use popup_origin::messaging::customers::read_customer_file;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (first, second) = data.split_at(split);
    let file = read_customer_file(&[first, second]);
    assert!(file.customers as u64 <= file.rows);
    assert!(file.problems.is_empty() || file.customers == 0, "nothing is written once a row is bad");
    let whole = read_customer_file(&[data]);
    assert_eq!((whole.rows, whole.customers), (file.rows, file.customers));
    assert_eq!(whole.problems, file.problems);
});
