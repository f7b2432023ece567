//! The dashboard's words, in English and Bahasa Indonesia: one catalog per language (`i18n/en.json`,
//! `i18n/id.json`), flat maps from a key to its text, embedded in the binary. `{0}` and `{1}` in a text
//! are filled by [`Tr::t1`] and [`Tr::t2`]. A test fails when a key is in one catalog and not the other,
//! or when a template or page uses a key no catalog has.
//!
//! The validation problems the core reports are `validation.<code>` ([`popup_core::problem::Code`]),
//! with named placeholders (`{max}`, `{segment}`) for the code's parameters, and shown by
//! [`Tr::field_error`]; the editor's script gets the same texts ([`Tr::validation_texts`]). A test fails
//! when a code has no text in a catalog, or a text names a parameter its code does not have.

use std::collections::HashMap;
use std::sync::LazyLock;

use popup_core::campaign::FieldError;
use popup_core::problem::Code;

use crate::db::people::Language;

type Catalog = HashMap<String, String>;

fn parse(name: &str, text: &str) -> Catalog {
    serde_json::from_str(text).unwrap_or_else(|error| {
        // Both files are checked by the tests below; a broken one is a build that never shipped.
        tracing::error!(%error, "the {name} catalog does not parse");
        Catalog::new()
    })
}

static EN: LazyLock<Catalog> = LazyLock::new(|| parse("en", include_str!("i18n/en.json")));
static ID: LazyLock<Catalog> = LazyLock::new(|| parse("id", include_str!("i18n/id.json")));

/// The words of one language.
#[derive(Clone, Copy, Debug)]
pub struct Tr {
    pub language: Language,
}

impl Tr {
    pub fn new(language: Language) -> Tr {
        Tr { language }
    }

    fn catalog(self) -> &'static Catalog {
        match self.language {
            Language::En => &EN,
            Language::Id => &ID,
        }
    }

    /// The text of `key`; the key itself if the catalog lacks it (which the tests rule out).
    pub fn t(&self, key: &str) -> String {
        self.catalog().get(key).cloned().unwrap_or_else(|| key.to_string())
    }

    pub fn t1(&self, key: &str, a: impl std::fmt::Display) -> String {
        self.t(key).replace("{0}", &a.to_string())
    }

    pub fn t2(&self, key: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.t1(key, a).replace("{1}", &b.to_string())
    }

    /// A field error in this language: its code's text with the parameters filled in, or the API's
    /// English message for a problem without a code.
    pub fn field_error(&self, error: &FieldError) -> String {
        let Some(text) = error.code.and_then(|code| self.catalog().get(&validation_key(code))) else {
            return error.message.clone();
        };
        error
            .params
            .iter()
            .fold(text.clone(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
    }

    /// Every code's text in this language, by code, for the editor's validation in the browser (which
    /// fills the parameters the same way).
    pub fn validation_texts(&self) -> std::collections::BTreeMap<&'static str, String> {
        Code::ALL.iter().map(|code| (code.as_str(), self.t(&validation_key(*code)))).collect()
    }
}

fn validation_key(code: Code) -> String {
    format!("validation.{}", code.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(catalog: &Catalog) -> BTreeSet<&str> {
        catalog.keys().map(String::as_str).collect()
    }

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let en: Catalog = serde_json::from_str(include_str!("i18n/en.json")).unwrap();
        let id: Catalog = serde_json::from_str(include_str!("i18n/id.json")).unwrap();
        let only_en: Vec<_> = keys(&en).difference(&keys(&id)).copied().collect();
        let only_id: Vec<_> = keys(&id).difference(&keys(&en)).copied().collect();
        assert!(only_en.is_empty(), "keys missing from id.json: {only_en:?}");
        assert!(only_id.is_empty(), "keys missing from en.json: {only_id:?}");
        for (key, text) in &en {
            for slot in ["{0}", "{1}"] {
                assert_eq!(text.contains(slot), id[key].contains(slot), "{key}: {slot} in one language only");
            }
        }
    }

    /// The `{name}` placeholders of a text.
    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect()
    }

    #[test]
    fn every_validation_code_has_a_text_in_both_languages_with_only_its_parameters() {
        for (name, catalog) in [("en", &*EN), ("id", &*ID)] {
            assert!(!catalog.is_empty(), "{name}.json does not parse");
            for code in Code::ALL {
                let key = validation_key(*code);
                let text = catalog.get(&key).unwrap_or_else(|| panic!("{name}.json has no {key}"));
                assert!(!text.trim().is_empty(), "{name}.json: {key} is blank");
                let unknown: Vec<&str> =
                    placeholders(text).into_iter().filter(|p| !code.params().contains(p)).collect();
                assert!(unknown.is_empty(), "{name}.json: {key} names {unknown:?}, not parameters of it");
            }
            // And no text for a code that does not exist.
            let codes: BTreeSet<String> = Code::ALL.iter().map(|code| validation_key(*code)).collect();
            let stray: Vec<&String> = catalog
                .keys()
                .filter(|key| key.starts_with("validation.") && !codes.contains(*key))
                .collect();
            assert!(stray.is_empty(), "{name}.json: texts of no code: {stray:?}");
        }
    }

    #[test]
    fn a_field_error_is_told_in_the_readers_language() {
        let unknown =
            FieldError::coded("audience.exclude[0]", Code::UnknownSegment, "no segment named \"vip\"")
                .with("segment", "vip");
        let english = Tr::new(Language::En).field_error(&unknown);
        let indonesian = Tr::new(Language::Id).field_error(&unknown);
        assert!(english.contains("vip") && indonesian.contains("vip"), "{english} / {indonesian}");
        assert_ne!(english, indonesian);
        assert!(!indonesian.contains('{'), "{indonesian}");
        // A problem the core did not report keeps the API's words.
        let plain = FieldError::new("line 3", "not a customer id");
        assert_eq!(Tr::new(Language::Id).field_error(&plain), "not a customer id");
    }

    /// Every `.t("...")`, `.t1("...", ..)` and `.t2("...", ..)` in the templates and the pages names a key.
    #[test]
    fn every_key_used_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["templates/ui", "src/ui"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() && !path.ends_with("i18n.rs") {
                    files.push(path);
                }
            }
        }
        let mut missing = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for pattern in [".t(\"", ".t1(\"", ".t2(\""] {
                for (at, _) in text.match_indices(pattern) {
                    let rest = &text[at + pattern.len()..];
                    let key = &rest[..rest.find('"').unwrap()];
                    if !key.is_empty() && !key.contains('{') && !EN.contains_key(key) {
                        missing.push(format!("{}: {key}", file.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "keys used but not in the catalogs: {missing:#?}");
    }
}
