//! `{placeholder}` templates for outbound messages.
//!
//! A template is checked once, when a campaign is saved, and rendered many times, once per customer. Every
//! mistake is therefore an error at parse time: a typo such as `{First_Name}` must be refused in the admin API,
//! not sent to a million customers as literal text.
//!
//! Syntax:
//!
//! | text              | meaning                                                                 |
//! | ----------------- | ----------------------------------------------------------------------- |
//! | `{name}`          | the customer's value for `name`; empty when missing or blank            |
//! | `{name\|text}`    | the value, or `text` when the value is missing or blank                 |
//! | `{{` and `}}`     | a literal `{` and a literal `}`                                         |
//!
//! A name is `[a-z_][a-z0-9_]*` and must be one of the names the caller allows, usually
//! [`CUSTOMER_PLACEHOLDERS`]. A fallback is plain text: it may be empty, but may not contain `{`, `}` or `|`.
//! Any other `{` or `}` is an error, reported with its 1-based column in characters (not bytes), so the
//! position stays right for Indonesian text with accented letters or emoji.
//!
//! Examples, with `first_name = "Alice"` and no `last_name`:
//!
//! ```text
//! Hi {first_name} {last_name}           ->  Hi Alice
//! Hi {last_name|Customer}!              ->  Hi Customer!
//! Use code {{PROMO}}                    ->  Use code {PROMO}
//! Hi {First_Name}                       ->  error: invalid placeholder at column 4 ...
//! Hi {frist_name}                       ->  error: unknown placeholder {frist_name} at column 4
//! ```
//!
//! Values are inserted verbatim: a value that itself contains `{last_name}` is not expanded again, so customer
//! data can never inject placeholders.

use alloc::string::String;
use alloc::vec::Vec;
use core::iter::Peekable;
use core::str::Chars;

/// The customer fields a message may use.
pub const CUSTOMER_PLACEHOLDERS: &[&str] =
    &["first_name", "last_name", "location", "preferred_product", "phone", "email"];

/// The longest template source accepted, in bytes. Popups and push messages are short; the bound keeps a
/// catalog entry small and rendering cheap.
pub const MAX_TEMPLATE_LEN: usize = 4096;

/// Why a template was refused. Placeholder errors give the column of the `{` that opens the placeholder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is empty")]
    Empty,
    #[error("template is {len} bytes long; the limit is {MAX_TEMPLATE_LEN} bytes")]
    TooLong { len: usize },
    #[error("unknown placeholder {{{name}}} at column {column}")]
    UnknownPlaceholder { name: String, column: usize },
    #[error(
        "invalid placeholder at column {column}: a name is lowercase letters, digits and underscores, \
         like {{first_name}}; write {{{{ for a literal brace"
    )]
    InvalidPlaceholder { column: usize },
    #[error("placeholder at column {column} is never closed with a '}}'")]
    UnclosedBrace { column: usize },
    #[error("unmatched '}}' at column {column}; write }}}} for a literal brace")]
    UnmatchedClosingBrace { column: usize },
    #[error("invalid fallback in the placeholder at column {column}: it may not contain '{{', '}}' or '|'")]
    InvalidFallback { column: usize },
}

impl TemplateError {
    /// The 1-based character column the error points at; `None` for errors about the whole template.
    pub fn column(&self) -> Option<usize> {
        match self {
            TemplateError::Empty | TemplateError::TooLong { .. } => None,
            TemplateError::UnknownPlaceholder { column, .. }
            | TemplateError::InvalidPlaceholder { column }
            | TemplateError::UnclosedBrace { column }
            | TemplateError::UnmatchedClosingBrace { column }
            | TemplateError::InvalidFallback { column } => Some(*column),
        }
    }
}

/// A checked template, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder { name: String, fallback: Option<String> },
}

impl Template {
    /// Parses `text`, accepting only placeholder names in `allowed`. The list is a parameter rather than
    /// always [`CUSTOMER_PLACEHOLDERS`] so that messages with other data (an OTP, an amount) can reuse the
    /// syntax. The first error in the text is returned.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Template, TemplateError> {
        // Checked before anything else so an oversized body is never scanned.
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong { len: text.len() });
        }
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }

        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut cursor = Cursor::new(text);
        while let Some((column, c)) = cursor.next() {
            match c {
                '{' if cursor.eat('{') => literal.push('{'),
                '}' if cursor.eat('}') => literal.push('}'),
                '}' => return Err(TemplateError::UnmatchedClosingBrace { column }),
                '{' => {
                    let (name, fallback) = parse_placeholder(&mut cursor, column)?;
                    if !allowed.contains(&name.as_str()) {
                        return Err(TemplateError::UnknownPlaceholder { name, column });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(core::mem::take(&mut literal)));
                    }
                    parts.push(Part::Placeholder { name, fallback });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { source: String::from(text), parts })
    }

    /// Fills the placeholders with `lookup`. A missing or blank value is replaced by the fallback, or by
    /// nothing: a stray space reads better in a greeting than a literal `{last_name}`.
    pub fn render<'v>(&self, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder { name, fallback } => {
                    match lookup(name).filter(|value| !value.trim().is_empty()) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(fallback.as_deref().unwrap_or_default()),
                    }
                }
            }
        }
        out
    }

    /// The placeholder names in order of appearance, repeated names included.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Placeholder { name, .. } => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The text as it was written, so the admin API can show it back unchanged.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Reads what follows an opening `{` (at `column`) up to and including its `}`.
fn parse_placeholder(
    cursor: &mut Cursor<'_>,
    column: usize,
) -> Result<(String, Option<String>), TemplateError> {
    let mut name = String::new();
    while let Some(c) = cursor.next_if(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        name.push(c);
    }
    let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    match cursor.next() {
        None => Err(TemplateError::UnclosedBrace { column }),
        Some((_, '}')) if valid_name => Ok((name, None)),
        Some((_, '|')) if valid_name => {
            let mut fallback = String::new();
            loop {
                match cursor.next() {
                    None => return Err(TemplateError::UnclosedBrace { column }),
                    Some((_, '}')) => return Ok((name, Some(fallback))),
                    Some((_, '{' | '|')) => return Err(TemplateError::InvalidFallback { column }),
                    Some((_, c)) => fallback.push(c),
                }
            }
        }
        // An empty or digit-led name, or any other character: a typo or an unescaped literal brace.
        Some(_) => Err(TemplateError::InvalidPlaceholder { column }),
    }
}

/// Characters with their 1-based column, counted in characters so positions match what an admin sees.
struct Cursor<'a> {
    chars: Peekable<Chars<'a>>,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { chars: text.chars().peekable(), column: 0 }
    }

    fn next(&mut self) -> Option<(usize, char)> {
        let c = self.chars.next()?;
        self.column += 1;
        Some((self.column, c))
    }

    fn next_if(&mut self, accept: impl FnOnce(char) -> bool) -> Option<char> {
        let c = self.chars.next_if(|&c| accept(c))?;
        self.column += 1;
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        self.next_if(|c| c == expected).is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    /// Customer values by name; a name left out is a missing value.
    type Values<'a> = &'a [(&'a str, &'a str)];

    /// Parses with the customer fields and renders with `values`.
    fn check(template: &str, values: Values<'_>, expected: &str) {
        let parsed = Template::parse(template, CUSTOMER_PLACEHOLDERS).unwrap();
        let rendered =
            parsed.render(|name| values.iter().find(|(key, _)| *key == name).map(|(_, value)| *value));
        assert_eq!(rendered, expected, "template {template:?}");
    }

    fn error(template: &str) -> TemplateError {
        Template::parse(template, CUSTOMER_PLACEHOLDERS).unwrap_err()
    }

    #[test]
    fn renders_the_seed_examples() {
        check(
            "Hi {first_name}, check {preferred_product}!",
            &[("first_name", "Alice"), ("preferred_product", "Tabungan Emas")],
            "Hi Alice, check Tabungan Emas!",
        );
        check("Hi {first_name} {last_name}", &[("first_name", "Alice")], "Hi Alice ");
    }

    #[test]
    fn renders_all_customer_placeholders() {
        let values = [
            ("first_name", "Budi"),
            ("last_name", "Santoso"),
            ("location", "Surabaya"),
            ("preferred_product", "KPR"),
            ("phone", "+62 812 0000"),
            ("email", "budi@example.com"),
        ];
        check(
            "{first_name} {last_name} ({location}): {preferred_product}, call {phone} or mail {email}",
            &values,
            "Budi Santoso (Surabaya): KPR, call +62 812 0000 or mail budi@example.com",
        );
        let template = Template::parse("{phone}{first_name} {phone}", CUSTOMER_PLACEHOLDERS).unwrap();
        assert_eq!(template.placeholders().collect::<Vec<_>>(), vec!["phone", "first_name", "phone"]);
        assert_eq!(template.source(), "{phone}{first_name} {phone}");
    }

    #[test]
    fn escapes_and_fallbacks() {
        let cases: &[(&str, Values<'_>, &str)] = &[
            ("Use code {{PROMO}} now", &[], "Use code {PROMO} now"),
            ("{{first_name}} }} {{", &[("first_name", "Alice")], "{first_name} } {"),
            ("{{{first_name}}}", &[("first_name", "Alice")], "{Alice}"),
            ("Hi {last_name|Customer}!", &[], "Hi Customer!"),
            ("Hi {last_name|Customer}!", &[("last_name", "")], "Hi Customer!"),
            ("Hi {last_name|Customer}!", &[("last_name", " \t ")], "Hi Customer!"),
            ("Hi {last_name|Customer}!", &[("last_name", "Tan")], "Hi Tan!"),
            ("Hi {last_name|Bapak/Ibu Nasabah}", &[], "Hi Bapak/Ibu Nasabah"),
            ("Hi {last_name|}!", &[], "Hi !"),
            ("Hi {last_name}!", &[("last_name", "  ")], "Hi !"),
            ("Hi {first_name}", &[("first_name", "{last_name} }{")], "Hi {last_name} }{"),
            ("Halo {first_name} 👋 ç", &[("first_name", "Sérénité")], "Halo Sérénité 👋 ç"),
        ];
        for (template, values, expected) in cases {
            check(template, values, expected);
        }
    }

    #[test]
    fn reports_the_first_error_with_its_column() {
        use TemplateError::*;
        let cases = [
            ("Hi {frist_name}", UnknownPlaceholder { name: "frist_name".to_string(), column: 4 }),
            ("Hi {nama}", UnknownPlaceholder { name: "nama".to_string(), column: 4 }),
            ("Hi { there", InvalidPlaceholder { column: 4 }),
            ("Hi {", UnclosedBrace { column: 4 }),
            ("a } b", UnmatchedClosingBrace { column: 3 }),
            ("Hi {first_name}}", UnmatchedClosingBrace { column: 16 }),
            ("{}", InvalidPlaceholder { column: 1 }),
            ("Hi {First_Name}", InvalidPlaceholder { column: 4 }),
            ("Hi {first name}", InvalidPlaceholder { column: 4 }),
            ("Hi {1st}", InvalidPlaceholder { column: 4 }),
            ("Hi {|Customer}", InvalidPlaceholder { column: 4 }),
            ("Hi {first_name", UnclosedBrace { column: 4 }),
            ("Hi {first_name|Customer", UnclosedBrace { column: 4 }),
            ("Hi {first_name|a{b}", InvalidFallback { column: 4 }),
            ("Hi {first_name|a|b}", InvalidFallback { column: 4 }),
            ("} {frist_name}", UnmatchedClosingBrace { column: 1 }),
            ("{frist_name} }", UnknownPlaceholder { name: "frist_name".to_string(), column: 1 }),
            // 'é' and the emoji are 2 and 4 bytes: a byte count would say column 12.
            ("Café 🌞 {frist_name}", UnknownPlaceholder { name: "frist_name".to_string(), column: 8 }),
            ("", Empty),
            (" \n\t ", Empty),
        ];
        for (template, expected) in cases {
            assert_eq!(error(template), expected, "template {template:?}");
        }
    }

    #[test]
    fn error_messages_name_the_problem_and_column() {
        let err = error("Hi {frist_name}");
        assert_eq!(err.to_string(), "unknown placeholder {frist_name} at column 4");
        assert_eq!(err.column(), Some(4));
        assert!(error("Hi {First_Name}").to_string().starts_with("invalid placeholder at column 4:"));
        assert_eq!(error("a } b").to_string(), "unmatched '}' at column 3; write }} for a literal brace");
        assert_eq!(error("").to_string(), "template is empty");
        assert_eq!(error("").column(), None);
    }

    #[test]
    fn enforces_the_length_limit_in_bytes() {
        assert!(Template::parse(&"a".repeat(MAX_TEMPLATE_LEN), &[]).is_ok());
        assert_eq!(
            Template::parse(&"a".repeat(MAX_TEMPLATE_LEN + 1), &[]),
            Err(TemplateError::TooLong { len: MAX_TEMPLATE_LEN + 1 })
        );
        // 1366 three-byte characters are 4098 bytes.
        assert_eq!(Template::parse(&"€".repeat(1366), &[]), Err(TemplateError::TooLong { len: 4098 }));
        assert_eq!(
            error(&"a".repeat(MAX_TEMPLATE_LEN + 1)).to_string(),
            "template is 4097 bytes long; the limit is 4096 bytes"
        );
    }

    #[test]
    fn only_names_in_the_allowed_list_are_accepted() {
        let template = Template::parse("Your code is {otp}", &["otp"]).unwrap();
        assert_eq!(template.render(|_| Some("123456")), "Your code is 123456");
        assert_eq!(
            Template::parse("Hi {first_name}", &["otp"]),
            Err(TemplateError::UnknownPlaceholder { name: "first_name".to_string(), column: 4 })
        );
    }

    #[test]
    fn renders_from_values_owned_by_a_map() {
        // The signature must accept lookups borrowing from the caller's data, not only `'static` strings.
        let mut customer = alloc::collections::BTreeMap::new();
        customer.insert("first_name".to_string(), "Siti".to_string());
        let template = Template::parse("Hi {first_name} {last_name|Nasabah}", CUSTOMER_PLACEHOLDERS).unwrap();
        assert_eq!(template.render(|name| customer.get(name).map(String::as_str)), "Hi Siti Nasabah");
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_unchanged(text in "[^{}]{1,300}") {
            prop_assume!(!text.trim().is_empty());
            let template = Template::parse(&text, CUSTOMER_PLACEHOLDERS).unwrap();
            prop_assert_eq!(template.placeholders().count(), 0);
            prop_assert_eq!(template.render(|_| Some("x")), text);
        }

        #[test]
        fn escaped_text_round_trips(text in "\\PC{1,300}") {
            prop_assume!(!text.trim().is_empty());
            let escaped = text.replace('{', "{{").replace('}', "}}");
            let template = Template::parse(&escaped, CUSTOMER_PLACEHOLDERS).unwrap();
            prop_assert_eq!(template.render(|_| None), text);
        }

        #[test]
        fn parse_never_panics(text in "[{}|a-z_ é]{0,40}") {
            let _ = Template::parse(&text, CUSTOMER_PLACEHOLDERS);
        }
    }
}
