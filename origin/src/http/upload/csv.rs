//! CSV records from an upload that arrives in chunks, numbered by line.
//!
//! The format is RFC 4180, read with `csv_core`: fields are separated by commas; a field in double quotes
//! may hold commas, line breaks and doubled quotes (`""` for one `"`); lines end in LF or CRLF. Besides:
//! - a UTF-8 byte order mark at the very start of the file is dropped (spreadsheets write one);
//! - blank records are skipped: empty lines, and lines whose fields are all empty or whitespace (`,,,` is
//!   how a spreadsheet exports an empty row);
//! - every record is numbered by **the line it starts on**, counting line feeds from 1 (the first line of
//!   the file is line 1, a header included). A record whose quoted field spans several lines is numbered
//!   by its first line, and the records after it count all of those lines, so a number is the line an
//!   editor shows.
//!
//! Memory is one record at a time, at most [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`]: a longer record (most
//! likely a quote left open, which runs to the end of the file) is reported at its first line, and its
//! bytes are read and dropped rather than kept.

use std::fmt::Display;

use popup_core::campaign::FieldError;

use crate::http::ApiError;

/// The longest record kept, in bytes of its fields.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The most fields a record may have.
pub const MAX_FIELDS: usize = 4096;
/// Malformed lines listed in an error; the count covers them all.
pub const MAX_REPORTED_ERRORS: usize = 100;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
const INITIAL_RECORD_BYTES: usize = 4096;
const INITIAL_FIELDS: usize = 16;

/// One record: its fields, and the line it starts on.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    line: u64,
    /// The fields one after the other; `ends` says where each ends. Every end is a char boundary.
    text: &'a str,
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    /// The line the record starts on (1 is the first line of the file).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Never true: blank records are skipped. Here because a `len` asks for it.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The field at `index` (from 0), as written inside its quotes.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        let end = *self.ends.get(index)?;
        let start = match index.checked_sub(1) {
            Some(previous) => *self.ends.get(previous)?,
            None => 0,
        };
        self.text.get(start..end)
    }

    /// Whether a field holds the NUL character, which Postgres cannot store: such a line is malformed
    /// even where the field would not be stored, so that every upload refuses it alike.
    pub fn has_nul(&self) -> bool {
        self.text.as_bytes().contains(&0)
    }

    pub fn fields(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// A record that cannot be read at all: not UTF-8, or over the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    pub line: u64,
    pub message: String,
}

/// What the reader hands over for each record that is not blank.
pub type Read<'a> = Result<Record<'a>, BadRecord>;

/// Reads CSV records from chunks as they arrive: [`CsvReader::feed`] each chunk, then
/// [`CsvReader::finish`]. Chunks may split a record, a quoted field, a CRLF or the BOM anywhere.
#[derive(Debug)]
pub struct CsvReader {
    reader: csv_core::Reader,
    /// The first bytes of the file, kept until there are enough to tell whether they are a BOM.
    head: Vec<u8>,
    head_done: bool,
    /// The fields of the record being read, and where each ends.
    output: Vec<u8>,
    used: usize,
    ends: Vec<usize>,
    fields: usize,
    /// Between two records: line breaks are skipped here, so the line the next record starts on is known.
    between: bool,
    /// The line the record being read started on.
    line: u64,
    /// The last line break seen was a CR, and whether an LF follows (CRLF, one break) or not (a lone CR, as
    /// in old Mac files, also one break) is told by the next byte, maybe in the next chunk.
    after_cr: bool,
    /// csv_core has not been handed input yet. It drops a BOM at the start of its first input, which after
    /// blank lines is not the file's start; the file's own BOM is dropped by [`CsvReader::start`].
    fresh: bool,
    /// Why the record being read is dropped (over a limit); its bytes are read and thrown away.
    overflow: Option<&'static str>,
}

impl Default for CsvReader {
    fn default() -> Self {
        CsvReader {
            reader: csv_core::Reader::new(),
            head: Vec::with_capacity(UTF8_BOM.len()),
            head_done: false,
            output: vec![0; INITIAL_RECORD_BYTES],
            used: 0,
            ends: vec![0; INITIAL_FIELDS],
            fields: 0,
            between: true,
            line: 1,
            after_cr: false,
            fresh: true,
            overflow: None,
        }
    }
}

impl CsvReader {
    /// Reads `input`, handing `emit` every record it completes.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(Read<'_>)) {
        if self.head_done {
            return self.parse(input, &mut emit);
        }
        let take = (UTF8_BOM.len() - self.head.len()).min(input.len());
        self.head.extend_from_slice(&input[..take]);
        if self.head.len() == UTF8_BOM.len() {
            self.start(&mut emit);
            self.parse(&input[take..], &mut emit);
        }
    }

    /// Reads a whole file handed over in `chunks` (in memory, split anywhere), handing `emit` every record.
    pub fn read_all<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, mut emit: impl FnMut(Read<'_>)) {
        let mut reader = CsvReader::default();
        for chunk in chunks {
            reader.feed(chunk, &mut emit);
        }
        reader.finish(emit);
    }

    /// The end of the input: hands `emit` the last record, if the file does not end with a line break.
    pub fn finish(&mut self, mut emit: impl FnMut(Read<'_>)) {
        if !self.head_done {
            self.start(&mut emit);
        }
        if self.between {
            return;
        }
        // An empty input is how csv_core is told the input ended.
        loop {
            let (result, _, written, ended) =
                self.reader.read_record(&[], &mut self.output[self.used..], &mut self.ends[self.fields..]);
            self.used += written;
            self.fields += ended;
            match result {
                csv_core::ReadRecordResult::Record => self.complete(&mut emit),
                csv_core::ReadRecordResult::OutputFull => self.grow_output(),
                csv_core::ReadRecordResult::OutputEndsFull => self.grow_ends(),
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => return,
            }
        }
    }

    /// Drops a BOM from the head and reads what remains of it.
    fn start(&mut self, emit: &mut impl FnMut(Read<'_>)) {
        self.head_done = true;
        let head = std::mem::take(&mut self.head);
        self.parse(head.strip_prefix(UTF8_BOM).unwrap_or(&head), emit);
    }

    fn parse(&mut self, mut input: &[u8], emit: &mut impl FnMut(Read<'_>)) {
        while !input.is_empty() {
            if self.between {
                // csv_core skips blank lines itself, but then the line a record starts on is lost. It
                // counts LFs only; a lone CR ends a line too.
                let mut breaks = 0;
                let mut start = 0;
                while let Some(&byte) = input.get(start) {
                    if std::mem::take(&mut self.after_cr) && byte != b'\n' {
                        breaks += 1;
                    }
                    match byte {
                        b'\n' => breaks += 1,
                        b'\r' => self.after_cr = true,
                        _ => break,
                    }
                    start += 1;
                }
                self.reader.set_line(self.reader.line() + breaks);
                input = &input[start..];
                if input.is_empty() {
                    return;
                }
                self.between = false;
                self.line = self.reader.line();
            }
            // The first byte alone the first time: too short to be taken for a BOM.
            let offered = if std::mem::take(&mut self.fresh) { &input[..1] } else { input };
            let (result, read, written, ended) = self.reader.read_record(
                offered,
                &mut self.output[self.used..],
                &mut self.ends[self.fields..],
            );
            self.after_cr =
                matches!(result, csv_core::ReadRecordResult::Record) && input[..read].last() == Some(&b'\r');
            input = &input[read..];
            self.used += written;
            self.fields += ended;
            match result {
                csv_core::ReadRecordResult::Record => self.complete(emit),
                csv_core::ReadRecordResult::OutputFull => self.grow_output(),
                csv_core::ReadRecordResult::OutputEndsFull => self.grow_ends(),
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {}
            }
        }
    }

    fn grow_output(&mut self) {
        if self.output.len() < MAX_RECORD_BYTES {
            let size = (self.output.len() * 2).min(MAX_RECORD_BYTES);
            self.output.resize(size, 0);
        } else {
            // Keep reading the record to find its end, writing over what it had.
            self.overflow = Some("is longer than 1 MiB (is a quote left open?)");
            self.used = 0;
        }
    }

    fn grow_ends(&mut self) {
        if self.ends.len() < MAX_FIELDS {
            let size = (self.ends.len() * 2).min(MAX_FIELDS);
            self.ends.resize(size, 0);
        } else {
            self.overflow = Some("has more than 4096 fields");
            self.fields = 0;
        }
    }

    /// A record ended: hands it over unless it is blank, and gets ready for the next.
    fn complete(&mut self, emit: &mut impl FnMut(Read<'_>)) {
        let (line, used, fields) = (self.line, self.used, self.fields);
        self.used = 0;
        self.fields = 0;
        self.between = true;
        if let Some(problem) = self.overflow.take() {
            return emit(Err(BadRecord { line, message: problem.into() }));
        }
        let bytes = &self.output[..used];
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let ends = &self.ends[..fields];
        match std::str::from_utf8(bytes) {
            // Each field must be UTF-8 on its own, not only all of them together.
            Ok(text) if ends.iter().all(|&end| text.is_char_boundary(end)) => {
                emit(Ok(Record { line, text, ends }))
            }
            _ => emit(Err(BadRecord { line, message: "is not UTF-8".into() })),
        }
    }
}

/// The malformed lines of an upload: the first [`MAX_REPORTED_ERRORS`] are listed as `line N`, and all are
/// counted.
#[derive(Debug, Default)]
pub struct LineErrors {
    listed: Vec<FieldError>,
    count: u64,
}

impl LineErrors {
    pub fn add(&mut self, line: u64, message: impl Display) {
        self.count += 1;
        if self.listed.len() < MAX_REPORTED_ERRORS {
            self.listed.push(FieldError::new(format!("line {line}"), message.to_string()));
        }
    }

    pub fn add_bad(&mut self, bad: BadRecord) {
        self.add(bad.line, bad.message);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn listed(&self) -> &[FieldError] {
        &self.listed
    }

    /// The 422 that lists them, with a last entry counting those not listed.
    pub fn into_error(self) -> ApiError {
        let mut fields = self.listed;
        let more = self.count - fields.len() as u64;
        if more > 0 {
            fields.push(FieldError::new("body", format!("and {more} more malformed lines")));
        }
        ApiError::Invalid(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader makes of `chunks`: each record as its line and fields, or its error.
    fn read(chunks: &[&[u8]]) -> Vec<Result<(u64, Vec<String>), BadRecord>> {
        let mut out = Vec::new();
        CsvReader::read_all(chunks.iter().copied(), |read| {
            out.push(read.map(|r| (r.line(), r.fields().map(String::from).collect())));
        });
        out
    }

    fn whole_and_bytewise(text: &[u8]) -> Vec<Result<(u64, Vec<String>), BadRecord>> {
        let whole = read(&[text]);
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(read(&bytes), whole, "chunking does not matter");
        whole
    }

    fn record(line: u64, fields: &[&str]) -> Result<(u64, Vec<String>), BadRecord> {
        Ok((line, fields.iter().map(|f| f.to_string()).collect()))
    }

    #[test]
    fn quotes_commas_and_line_breaks_inside_quotes_crlf_and_a_bom() {
        let text =
            "\u{feff}customer_id,name\r\n\"c-1\",\"Siti, \"\"S\"\"\"\r\nc-2,\"two\r\nlines\"\r\n\r\nc-3,x";
        assert_eq!(
            whole_and_bytewise(text.as_bytes()),
            [
                record(1, &["customer_id", "name"]),
                record(2, &["c-1", "Siti, \"S\""]),
                record(3, &["c-2", "two\r\nlines"]),
                record(6, &["c-3", "x"]),
            ]
        );
    }

    #[test]
    fn a_record_is_numbered_by_the_line_it_starts_on() {
        let text = b"\n\nid\nc-1,\"a\nb\nc\"\nc-2\n \n,,\n\"\"\nc-3\n";
        assert_eq!(
            whole_and_bytewise(text),
            [record(3, &["id"]), record(4, &["c-1", "a\nb\nc"]), record(7, &["c-2"]), record(11, &["c-3"])],
            "blank lines and lines of empty fields are skipped, but counted"
        );
    }

    #[test]
    fn a_bom_is_dropped_only_at_the_start() {
        assert_eq!(whole_and_bytewise(b"\xef\xbb\xbfc-1\n"), [record(1, &["c-1"])]);
        assert_eq!(whole_and_bytewise("c-1\n\u{feff}c-2\n".as_bytes())[1], record(2, &["\u{feff}c-2"]));
        assert_eq!(whole_and_bytewise(b"ab"), [record(1, &["ab"])], "a file shorter than a BOM");
        assert!(read(&[]).is_empty());
    }

    #[test]
    fn a_bom_after_blank_lines_is_a_character_however_the_chunks_fall() {
        // Found by fuzzing (fuzz/fuzz_targets/customer_csv.rs): read whole, csv_core dropped it.
        let text = b"\n\n\xef\xbb\xbfid\n";
        assert_eq!(whole_and_bytewise(text), [record(3, &["\u{feff}id"])]);
        assert_eq!(read(&[&text[..3], &text[3..]]), [record(3, &["\u{feff}id"])]);
    }

    #[test]
    fn lone_carriage_returns_end_lines_as_in_old_mac_files() {
        // Found by fuzzing (fuzz/fuzz_targets/csv_upload.rs): every record was numbered line 1.
        assert_eq!(whole_and_bytewise(b"\"-\"\r\rz\"\""), [record(1, &["-"]), record(3, &["z\"\""])]);
        assert_eq!(
            whole_and_bytewise(b"id\rc-1\r\rc-2\r\nc-3\n\rc-4"),
            [
                record(1, &["id"]),
                record(2, &["c-1"]),
                record(4, &["c-2"]),
                record(5, &["c-3"]),
                record(7, &["c-4"])
            ]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_make_the_record_bad() {
        assert_eq!(
            whole_and_bytewise(b"c-1\nc-\xff2,x\nc-3\n"),
            [
                record(1, &["c-1"]),
                Err(BadRecord { line: 2, message: "is not UTF-8".into() }),
                record(3, &["c-3"])
            ]
        );
        // Two halves of a character, each in its own field, are not a character.
        let split = [b'a', 0xc3, b',', 0xa9, b'\n'];
        assert!(whole_and_bytewise(&split)[0].is_err());
    }

    #[test]
    fn an_unclosed_quote_is_one_bad_record_and_memory_stays_bounded() {
        let mut reader = CsvReader::default();
        let mut out = Vec::new();
        reader.feed(b"c-1\n\"c-2\n", |r| out.push(r.map(|r| r.line()).map_err(|e| e.line)));
        let filler = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            reader.feed(&filler, |r| out.push(r.map(|r| r.line()).map_err(|e| e.line)));
        }
        assert!(reader.output.len() <= MAX_RECORD_BYTES);
        reader.finish(|r| out.push(r.map(|r| r.line()).map_err(|e| e.line)));
        assert_eq!(out, [Ok(1), Err(2)]);

        let many = ",x".repeat(MAX_FIELDS);
        let results = read(&[many.as_bytes(), b"\nc-1\n"]);
        assert_eq!(results[0], Err(BadRecord { line: 1, message: "has more than 4096 fields".into() }));
        assert_eq!(results[1], record(2, &["c-1"]));
    }

    #[test]
    fn errors_are_listed_by_line_up_to_a_limit_and_all_counted() {
        let mut errors = LineErrors::default();
        for line in 1..=150 {
            errors.add(line, "bad");
        }
        assert_eq!(errors.listed().len(), MAX_REPORTED_ERRORS);
        assert_eq!(errors.listed()[2].field, "line 3");
        let ApiError::Invalid(fields) = errors.into_error() else { panic!("a 422") };
        let last = fields.last().unwrap();
        assert_eq!((last.field.as_str(), last.message.as_str()), ("body", "and 50 more malformed lines"));
    }
}
