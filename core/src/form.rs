//! The backoffice editor's HTML form, decoded into a [`CampaignSpec`].
//!
//! Every input is named by the API's field path (`schedule.start`, `variants[1].weight`), so an error the
//! validation reports lands next to the input of the same name. The origin decodes a submitted form with
//! [`check`], and the editor in the browser runs the same function (compiled to WebAssembly) on every
//! keystroke, so a form the browser accepts is one the server accepts.
//!
//! How values are written:
//! - blank optional fields are absent (`caps.lifetime`, `budget`, `schedule.end`, `creative.image_url`);
//! - lists of words (`placements`, `rules.countries`, `rules.locales`) are separated by commas or spaces;
//! - repeated inputs (`rules.platforms`, `audience.exclude`, `schedule.windows[i].days`) give one value each;
//! - times are UTC, as `<input type=datetime-local>` writes them (`2026-12-01T09:30`, seconds optional) or
//!   in RFC 3339;
//! - `creative.extra` is one `key=value` per line;
//! - rows of variants and windows are numbered from 0; trailing rows left blank are dropped, so a page can
//!   always offer one empty row to fill in;
//! - a variant has its own creative when any of its `variants[i].creative.*` fields is filled in.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::campaign::{Caps, Creative, FieldError, Rules, TimeOfDay, Variant, VersionRange, Weekday, Window};
use crate::ids::SegmentId;
use crate::spec::{AudienceSpec, CampaignSpec, IncludeSpec, ScheduleSpec};

/// A decoded form: the spec it describes, as far as it could be read, and every problem, those of reading
/// it and those the validation finds, in form order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub spec: CampaignSpec,
    pub errors: Vec<FieldError>,
}

/// Decodes and validates a submitted form, as [`CampaignSpec::to_campaign`] would validate the spec.
pub fn check<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    id: i64,
    segment_id: impl Fn(&str) -> Option<SegmentId>,
    known_zone: impl Fn(&str) -> bool,
) -> Checked {
    let (spec, mut errors) = decode(pairs);
    if let Err(found) = spec.to_campaign(id, segment_id, known_zone) {
        // A field that could not be read was given a stand-in value; what the rules say of it is noise.
        let unreadable: Vec<String> = errors.iter().map(|e: &FieldError| e.field.clone()).collect();
        errors.extend(found.0.into_iter().filter(|e| !unreadable.contains(&e.field)));
    }
    Checked { spec, errors }
}

/// The form's values by input name, in the order given.
struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    fn one(&self, name: &str) -> &'a str {
        self.0.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.trim())
    }

    fn all(&self, name: &str) -> Vec<&'a str> {
        self.0.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect()
    }

    /// How many rows `prefix[i].` has, trailing blank rows left out.
    fn rows(&self, prefix: &str) -> usize {
        let mut filled = 0;
        for (name, value) in &self.0 {
            let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('[')) else { continue };
            let Some((index, _)) = rest.split_once(']') else { continue };
            if let Ok(index) = index.parse::<usize>() {
                // A checkbox alone (a control flag) does not make a row.
                if !value.trim().is_empty() && !name.ends_with(".control") {
                    filled = filled.max(index + 1);
                }
            }
        }
        filled
    }
}

struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// A blank field is absent; otherwise it must parse.
    fn optional<T: core::str::FromStr>(
        &mut self,
        fields: &Fields<'_>,
        name: &str,
        message: &str,
    ) -> Option<T> {
        let raw = fields.one(name);
        if raw.is_empty() {
            return None;
        }
        let parsed = raw.parse().ok();
        if parsed.is_none() {
            self.add(name, message);
        }
        parsed
    }

    fn time(&mut self, fields: &Fields<'_>, name: &str) -> Option<DateTime<Utc>> {
        let raw = fields.one(name);
        if raw.is_empty() {
            return None;
        }
        let parsed = parse_time(raw);
        if parsed.is_none() {
            self.add(name, "must be a date and time such as 2026-12-01T09:30");
        }
        parsed
    }

    fn time_of_day(&mut self, fields: &Fields<'_>, name: &str) -> TimeOfDay {
        match fields.one(name).parse::<TimeOfDay>() {
            Ok(time) => time,
            Err(message) => {
                self.add(name, message);
                TimeOfDay::MIDNIGHT
            }
        }
    }
}

const WHOLE_NUMBER: &str = "must be a whole number";
const POSITIVE: &str = "must be a whole number of at least 1";

/// A UTC time as a datetime-local input writes it, or RFC 3339.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = raw.parse::<DateTime<Utc>>() {
        return Some(time);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|local| local.and_utc())
}

/// Words separated by commas or white space.
fn words(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).map(String::from).collect()
}

fn decode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> (CampaignSpec, Vec<FieldError>) {
    let fields = Fields(pairs.into_iter().collect());
    let mut p = Problems(Vec::new());
    // Postgres stores no text holding NUL; the API refuses it in any field, and so does the form.
    for (name, value) in &fields.0 {
        if value.contains('\0') && !p.0.iter().any(|e| e.field == *name) {
            p.add(*name, "must not contain the NUL character");
        }
    }
    let priority = match fields.one("priority") {
        "" => 0,
        raw => raw.parse().unwrap_or_else(|_| {
            p.add("priority", WHOLE_NUMBER);
            0
        }),
    };
    let start = match fields.one("schedule.start") {
        "" => {
            p.add("schedule.start", "is required");
            None
        }
        _ => p.time(&fields, "schedule.start"),
    };
    let schedule = ScheduleSpec {
        start: start.unwrap_or_default(),
        end: p.time(&fields, "schedule.end"),
        time_zone: Some(fields.one("schedule.time_zone")).filter(|z| !z.is_empty()).map(String::from),
        windows: (0..fields.rows("schedule.windows"))
            .map(|i| {
                let path = format!("schedule.windows[{i}]");
                let mut days = Vec::new();
                for day in fields.all(&format!("{path}.days")) {
                    match serde_json::from_value::<Weekday>(serde_json::Value::String(day.into())) {
                        Ok(day) if !days.contains(&day) => days.push(day),
                        Ok(_) => {}
                        Err(_) => {
                            p.add(format!("{path}.days"), "must be mon, tue, wed, thu, fri, sat or sun")
                        }
                    }
                }
                Window {
                    days,
                    start: p.time_of_day(&fields, &format!("{path}.start")),
                    end: p.time_of_day(&fields, &format!("{path}.end")),
                }
            })
            .collect(),
    };
    let caps = Caps {
        lifetime: p.optional(&fields, "caps.lifetime", POSITIVE),
        per_day: p.optional(&fields, "caps.per_day", POSITIVE),
        min_interval_seconds: p.optional(&fields, "caps.min_interval_seconds", POSITIVE),
    };
    let include = match fields.one("audience.include") {
        "any_of" => {
            IncludeSpec::AnyOf(fields.all("audience.include.any_of").into_iter().map(String::from).collect())
        }
        "" | "everyone" => IncludeSpec::Everyone,
        _ => {
            p.add("audience.include", "must be everyone or any_of");
            IncludeSpec::Everyone
        }
    };
    let audience = AudienceSpec {
        include,
        exclude: fields.all("audience.exclude").into_iter().map(String::from).collect(),
    };
    let mut platforms = Vec::new();
    for raw in fields.all("rules.platforms") {
        match raw.parse() {
            Ok(platform) if !platforms.contains(&platform) => platforms.push(platform),
            Ok(_) => {}
            Err(message) => p.add("rules.platforms", message),
        }
    }
    let min = p.optional_version(&fields, "rules.app_version.min");
    let max = p.optional_version(&fields, "rules.app_version.max");
    let rules = Rules {
        platforms,
        app_version: (min.is_some() || max.is_some()).then_some(VersionRange { min, max }),
        countries: words(fields.one("rules.countries")),
        locales: words(fields.one("rules.locales")),
    };
    let creative = decode_creative(&fields, "creative", &mut p);
    let variants = (0..fields.rows("variants"))
        .map(|i| {
            let path = format!("variants[{i}]");
            let weight = match fields.one(&format!("{path}.weight")) {
                "" => {
                    p.add(format!("{path}.weight"), "is required");
                    0
                }
                raw => raw.parse().unwrap_or_else(|_| {
                    p.add(format!("{path}.weight"), "must be a whole number from 0");
                    0
                }),
            };
            let own = ["title", "body", "image_url", "action_url", "extra"]
                .iter()
                .any(|field| !fields.one(&format!("{path}.creative.{field}")).is_empty());
            Variant {
                key: fields.one(&format!("{path}.key")).to_string(),
                weight,
                control: !fields.one(&format!("{path}.control")).is_empty(),
                creative: own.then(|| decode_creative(&fields, &format!("{path}.creative"), &mut p)),
            }
        })
        .collect();
    let spec = CampaignSpec {
        name: fields.one("name").to_string(),
        priority,
        placements: words(fields.one("placements")),
        schedule,
        creative,
        variants,
        caps,
        audience,
        rules,
        budget: p.optional(&fields, "budget", POSITIVE),
    };
    (spec, p.0)
}

impl Problems {
    fn optional_version(&mut self, fields: &Fields<'_>, name: &str) -> Option<crate::context::AppVersion> {
        let raw = fields.one(name);
        if raw.is_empty() {
            return None;
        }
        match raw.parse() {
            Ok(version) => Some(version),
            Err(message) => {
                self.add(name, message);
                None
            }
        }
    }
}

fn decode_creative(fields: &Fields<'_>, path: &str, p: &mut Problems) -> Creative {
    let text = |field: &str| fields.one(&format!("{path}.{field}"));
    let optional = |field: &str| Some(text(field)).filter(|v| !v.is_empty()).map(String::from);
    let mut extra = BTreeMap::new();
    for line in text("extra").lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                extra.insert(key.trim().to_string(), value.trim().to_string());
            }
            _ => p.add(format!("{path}.extra"), "one key=value per line"),
        }
    }
    Creative {
        // Title and body keep their inner spacing; only the ends are trimmed, as the inputs show them.
        title: text("title").to_string(),
        body: text("body").to_string(),
        image_url: optional("image_url"),
        action_url: optional("action_url"),
        extra,
    }
}

/// The form's fields for `spec`, as [`check`] reads them back: what the editor shows for a stored campaign.
pub fn encode(spec: &CampaignSpec) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut put = |name: String, value: String| pairs.push((name, value));
    put("name".into(), spec.name.clone());
    put("priority".into(), spec.priority.to_string());
    put("placements".into(), spec.placements.join(", "));
    let time = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    put("schedule.start".into(), time(&spec.schedule.start));
    put("schedule.end".into(), spec.schedule.end.as_ref().map(time).unwrap_or_default());
    put("schedule.time_zone".into(), spec.schedule.time_zone.clone().unwrap_or_default());
    for (i, window) in spec.schedule.windows.iter().enumerate() {
        for day in &window.days {
            put(format!("schedule.windows[{i}].days"), weekday_name(*day).into());
        }
        put(format!("schedule.windows[{i}].start"), window.start.to_string());
        put(format!("schedule.windows[{i}].end"), window.end.to_string());
    }
    encode_creative(&spec.creative, "creative", &mut put);
    for (i, variant) in spec.variants.iter().enumerate() {
        put(format!("variants[{i}].key"), variant.key.clone());
        put(format!("variants[{i}].weight"), variant.weight.to_string());
        if variant.control {
            put(format!("variants[{i}].control"), "on".into());
        }
        if let Some(creative) = &variant.creative {
            encode_creative(creative, &format!("variants[{i}].creative"), &mut put);
        }
    }
    let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    put("caps.lifetime".into(), number(spec.caps.lifetime));
    put("caps.per_day".into(), number(spec.caps.per_day));
    put("caps.min_interval_seconds".into(), number(spec.caps.min_interval_seconds));
    match &spec.audience.include {
        IncludeSpec::Everyone => put("audience.include".into(), "everyone".into()),
        IncludeSpec::AnyOf(names) => {
            put("audience.include".into(), "any_of".into());
            for name in names {
                put("audience.include.any_of".into(), name.clone());
            }
        }
    }
    for name in &spec.audience.exclude {
        put("audience.exclude".into(), name.clone());
    }
    for platform in &spec.rules.platforms {
        let name = serde_json::to_value(platform).ok().and_then(|v| v.as_str().map(String::from));
        put("rules.platforms".into(), name.unwrap_or_default());
    }
    let range = spec.rules.app_version.clone().unwrap_or_default();
    let version = |v: Option<crate::context::AppVersion>| v.map(|v| v.to_string()).unwrap_or_default();
    put("rules.app_version.min".into(), version(range.min));
    put("rules.app_version.max".into(), version(range.max));
    put("rules.countries".into(), spec.rules.countries.join(", "));
    put("rules.locales".into(), spec.rules.locales.join(", "));
    put("budget".into(), spec.budget.map(|b| b.to_string()).unwrap_or_default());
    pairs
}

fn weekday_name(day: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][day as usize]
}

fn encode_creative(creative: &Creative, path: &str, put: &mut impl FnMut(String, String)) {
    put(format!("{path}.title"), creative.title.clone());
    put(format!("{path}.body"), creative.body.clone());
    put(format!("{path}.image_url"), creative.image_url.clone().unwrap_or_default());
    put(format!("{path}.action_url"), creative.action_url.clone().unwrap_or_default());
    let extra: Vec<String> = creative.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
    put(format!("{path}.extra"), extra.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn run(pairs: &[(&str, &str)]) -> Checked {
        let segment = |name: &str| (name == "vip").then_some(SegmentId(1));
        check(pairs.iter().copied(), 0, segment, |zone| zone == "Asia/Jakarta")
    }

    fn fields(checked: &Checked) -> Vec<&str> {
        checked.errors.iter().map(|e| e.field.as_str()).collect()
    }

    const FULL: &str = r##"{"name":"Full","priority":-3,"placements":["login","home"],
            "schedule":{"start":"2026-12-01T09:30:15Z","end":"2026-12-31T17:00:00Z","time_zone":"Asia/Jakarta",
              "windows":[{"days":["mon","fri"],"start":"09:00","end":"17:00"}]},
            "creative":{"title":"T","body":"B","image_url":"https://img.example/x.png","action_url":"bankapp://promo",
              "extra":{"accent":"#0a7","button":"Apply now"}},
            "variants":[{"key":"a","weight":3},{"key":"b","weight":1,"creative":{"title":"Other"}},
              {"key":"holdout","weight":1,"control":true}],
            "caps":{"lifetime":5,"per_day":1,"min_interval_seconds":3600},
            "audience":{"include":{"any_of":["vip"]}},
            "rules":{"platforms":["ios","android"],"app_version":{"min":"5.2.0"},"countries":["ID","SG"],"locales":["id","en-US"]},
            "budget":1000}"##;

    const MINIMAL: [(&str, &str); 3] =
        [("name", "Promo"), ("schedule.start", "2026-12-01T09:30"), ("creative.title", "Hello")];

    #[test]
    fn a_minimal_form_is_the_minimal_spec() {
        let checked = run(&MINIMAL);
        assert_eq!(checked.errors, vec![]);
        let expected: CampaignSpec = serde_json::from_str(
            r#"{"name":"Promo","schedule":{"start":"2026-12-01T09:30:00Z"},"creative":{"title":"Hello"}}"#,
        )
        .unwrap();
        assert_eq!(checked.spec, expected);
    }

    #[test]
    fn every_field_decodes_to_its_api_value() {
        let pairs = [
            ("name", "Full"),
            ("priority", "-3"),
            ("placements", "login, home"),
            ("schedule.start", "2026-12-01T09:30:15"),
            ("schedule.end", "2027-01-01T00:00:00+07:00"),
            ("schedule.time_zone", "Asia/Jakarta"),
            ("schedule.windows[0].days", "mon"),
            ("schedule.windows[0].days", "fri"),
            ("schedule.windows[0].start", "09:00"),
            ("schedule.windows[0].end", "17:00"),
            ("schedule.windows[1].start", ""),
            ("schedule.windows[1].end", ""),
            ("creative.title", "T"),
            ("creative.body", "B"),
            ("creative.image_url", "https://img.example/x.png"),
            ("creative.action_url", "bankapp://promo"),
            ("creative.extra", "button = Apply now\naccent=#0a7\n"),
            ("variants[0].key", "a"),
            ("variants[0].weight", "3"),
            ("variants[1].key", "b"),
            ("variants[1].weight", "1"),
            ("variants[1].creative.title", "Other"),
            ("variants[2].key", "holdout"),
            ("variants[2].weight", "1"),
            ("variants[2].control", "on"),
            ("variants[3].key", ""),
            ("variants[3].weight", ""),
            ("variants[3].control", "on"),
            ("caps.lifetime", "5"),
            ("caps.per_day", "1"),
            ("caps.min_interval_seconds", "3600"),
            ("audience.include", "any_of"),
            ("audience.include.any_of", "vip"),
            ("rules.platforms", "ios"),
            ("rules.platforms", "android"),
            ("rules.app_version.min", "5.2"),
            ("rules.app_version.max", ""),
            ("rules.countries", "ID SG"),
            ("rules.locales", "id,en-US"),
            ("budget", "1000"),
        ];
        let checked = run(&pairs);
        assert_eq!(checked.errors, vec![]);
        let expected: CampaignSpec = serde_json::from_str(FULL).unwrap();
        assert_eq!(checked.spec, expected);
    }

    #[test]
    fn an_encoded_spec_decodes_to_itself() {
        let pairs = run(&MINIMAL).spec;
        assert_eq!(run_owned(&encode(&pairs)).spec, pairs);
        let full: CampaignSpec = serde_json::from_str(FULL).unwrap();
        let again = run_owned(&encode(&full));
        assert_eq!(again.errors, vec![]);
        assert_eq!(again.spec, full);
    }

    fn run_owned(pairs: &[(String, String)]) -> Checked {
        let segment = |name: &str| (name == "vip").then_some(SegmentId(1));
        check(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), 0, segment, |zone| zone == "Asia/Jakarta")
    }

    #[test]
    fn unreadable_values_are_reported_at_their_input_and_not_again_by_the_rules() {
        let mut pairs = MINIMAL.to_vec();
        pairs[1] = ("schedule.start", "tomorrow");
        pairs.extend([
            ("priority", "high"),
            ("caps.lifetime", "0"),
            ("caps.per_day", "-1"),
            ("variants[0].key", "a"),
            ("variants[0].weight", "x"),
            ("schedule.windows[0].days", "someday"),
            ("schedule.windows[0].start", "9am"),
            ("schedule.windows[0].end", "10:00"),
            ("creative.extra", "no equals sign"),
            ("rules.app_version.min", "five"),
        ]);
        let checked = run(&pairs);
        assert_eq!(
            fields(&checked),
            [
                // Reading, in form order.
                "priority",
                "schedule.start",
                "schedule.windows[0].days",
                "schedule.windows[0].start",
                "caps.per_day",
                "rules.app_version.min",
                "creative.extra",
                "variants[0].weight",
                // The rules, for the fields that were read.
                "schedule.time_zone",
                "variants",
                "caps.lifetime",
            ]
        );
    }

    #[test]
    fn nul_is_refused_in_any_field() {
        let mut pairs = MINIMAL.to_vec();
        pairs[0] = ("name", "Pro\0mo");
        pairs.push(("variants[0].creative.body", "a\0b"));
        pairs.push(("variants[0].weight", "1"));
        pairs.push(("variants[0].key", "a"));
        let checked = run(&pairs);
        assert_eq!(fields(&checked), ["name", "variants[0].creative.body"]);
    }

    #[test]
    fn the_rules_are_the_apis() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("schedule.windows[0].days", "mon"),
            ("schedule.windows[0].start", "09:00"),
            ("schedule.windows[0].end", "09:00"),
            ("audience.include", "any_of"),
            ("audience.include.any_of", "gone"),
            ("rules.countries", "id"),
        ]);
        pairs[2] = ("creative.title", "");
        let checked = run(&pairs);
        assert_eq!(
            fields(&checked),
            [
                "audience.include.any_of[0]",
                "schedule.time_zone",
                "schedule.windows[0].end",
                "creative.title",
                "rules.countries[0]",
            ]
        );
        pairs.push(("schedule.time_zone", "Europe/Nowhere"));
        let zone = run(&pairs).errors.into_iter().find(|e| e.field == "schedule.time_zone").unwrap();
        assert_eq!(zone.message, "unknown time zone \"Europe/Nowhere\"");
    }
}
