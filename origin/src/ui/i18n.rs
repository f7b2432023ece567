//! The dashboard's words, in English and Bahasa Indonesia: one catalog per language (`i18n/en.json`,
//! `i18n/id.json`), flat maps from a key to its text, embedded in the binary. `{0}` and `{1}` in a text
//! are filled by [`Tr::t1`] and [`Tr::t2`]. A test fails when a key is in one catalog and not the other,
//! or when a template or page uses a key no catalog has.

use std::collections::HashMap;
use std::sync::LazyLock;

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
