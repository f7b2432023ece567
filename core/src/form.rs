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
//! - `schedule.start` and `schedule.end` are wall-clock times of the campaign's `schedule.time_zone` (UTC
//!   when it is blank or unknown), as `<input type=datetime-local>` writes them (`2026-12-01T09:30`, seconds
//!   optional), converted to UTC with the zone's offsets ([`crate::zone`]); a time the clocks skip (a
//!   daylight saving gap) is an error, and one they show twice is its first occurrence. RFC 3339 with an
//!   offset is taken as written;
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
use crate::ids::{SegmentId, Timestamp};
use crate::problem::Code;
use crate::spec::{AudienceSpec, CampaignSpec, IncludeSpec, ScheduleSpec};
use crate::zone::{LocalTime, ZoneOffsets};

/// A decoded form: the spec it describes, as far as it could be read, and every problem, those of reading
/// it and those the validation finds, in form order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub spec: CampaignSpec,
    pub errors: Vec<FieldError>,
}

/// Decodes and validates a submitted form, as [`CampaignSpec::to_campaign`] would validate the spec.
/// `zone_offsets` gives the offsets of a zone of the tz database around an instant (see
/// [`crate::zone::around`]), or None for a zone it does not know.
pub fn check<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    id: i64,
    segment_id: impl Fn(&str) -> Option<SegmentId>,
    zone_offsets: impl Fn(&str, Timestamp) -> Option<ZoneOffsets>,
) -> Checked {
    let (spec, mut errors) = decode(pairs, &zone_offsets);
    let known_zone = |zone: &str| zone_offsets(zone, Timestamp(0)).is_some();
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
    fn add(&mut self, field: impl Into<String>, code: Code, message: impl Into<String>) {
        self.0.push(FieldError::coded(field, code, message));
    }

    /// A blank field is absent; otherwise it must parse.
    fn optional<T: core::str::FromStr>(
        &mut self,
        fields: &Fields<'_>,
        name: &str,
        code: Code,
        message: &str,
    ) -> Option<T> {
        let raw = fields.one(name);
        if raw.is_empty() {
            return None;
        }
        let parsed = raw.parse().ok();
        if parsed.is_none() {
            self.add(name, code, message);
        }
        parsed
    }

    fn time(&mut self, fields: &Fields<'_>, name: &str, zone: Option<&Zone<'_>>) -> Option<DateTime<Utc>> {
        let raw = fields.one(name);
        if raw.is_empty() {
            return None;
        }
        match parse_time(raw, zone) {
            Ok(time) => Some(time),
            Err(TimeProblem::Unreadable) => {
                self.add(name, Code::DateTime, "must be a date and time such as 2026-12-01T09:30");
                None
            }
            Err(TimeProblem::Skipped(zone)) => {
                self.0.push(
                    FieldError::coded(
                        name,
                        Code::SkippedTime,
                        format!("does not exist in {zone}: the clocks skip it"),
                    )
                    .with("zone", zone),
                );
                None
            }
        }
    }

    fn time_of_day(&mut self, fields: &Fields<'_>, name: &str) -> TimeOfDay {
        match fields.one(name).parse::<TimeOfDay>() {
            Ok(time) => time,
            Err(message) => {
                self.add(name, Code::TimeOfDay, message);
                TimeOfDay::MIDNIGHT
            }
        }
    }
}

const WHOLE_NUMBER: &str = "must be a whole number";
const POSITIVE: &str = "must be a whole number of at least 1";

/// The campaign's zone, by name, with a way to its offsets around any instant.
struct Zone<'z> {
    name: &'z str,
    offsets: &'z dyn Fn(&str, Timestamp) -> Option<ZoneOffsets>,
}

enum TimeProblem<'z> {
    Unreadable,
    Skipped(&'z str),
}

/// A wall-clock time of `zone` (UTC when None) as a datetime-local input writes it, or RFC 3339.
fn parse_time<'z>(raw: &str, zone: Option<&Zone<'z>>) -> Result<DateTime<Utc>, TimeProblem<'z>> {
    if let Ok(time) = raw.parse::<DateTime<Utc>>() {
        return Ok(time);
    }
    let wall = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .ok_or(TimeProblem::Unreadable)?
        .and_utc();
    let Some(zone) = zone else { return Ok(wall) };
    // Offsets are under a day, so a table around the wall-clock time read as UTC covers the instant.
    let Some(offsets) = (zone.offsets)(zone.name, Timestamp(wall.timestamp())) else { return Ok(wall) };
    let instant = match offsets.from_local(wall.timestamp()) {
        LocalTime::Once(instant) | LocalTime::Twice(instant, _) => instant,
        LocalTime::Skipped => return Err(TimeProblem::Skipped(zone.name)),
    };
    DateTime::from_timestamp(instant.seconds(), 0).ok_or(TimeProblem::Unreadable)
}

/// Words separated by commas or white space.
fn words(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).map(String::from).collect()
}

fn decode<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    zone_offsets: &dyn Fn(&str, Timestamp) -> Option<ZoneOffsets>,
) -> (CampaignSpec, Vec<FieldError>) {
    let fields = Fields(pairs.into_iter().collect());
    let mut p = Problems(Vec::new());
    // Postgres stores no text holding NUL; the API refuses it in any field, and so does the form.
    for (name, value) in &fields.0 {
        if value.contains('\0') && !p.0.iter().any(|e| e.field == *name) {
            p.add(*name, Code::Nul, "must not contain the NUL character");
        }
    }
    let priority = match fields.one("priority") {
        "" => 0,
        raw => raw.parse().unwrap_or_else(|_| {
            p.add("priority", Code::WholeNumber, WHOLE_NUMBER);
            0
        }),
    };
    let time_zone = Some(fields.one("schedule.time_zone")).filter(|z| !z.is_empty());
    let zone = time_zone.map(|name| Zone { name, offsets: zone_offsets });
    let start = match fields.one("schedule.start") {
        "" => {
            p.add("schedule.start", Code::Required, "is required");
            None
        }
        _ => p.time(&fields, "schedule.start", zone.as_ref()),
    };
    let schedule = ScheduleSpec {
        start: start.unwrap_or_default(),
        end: p.time(&fields, "schedule.end", zone.as_ref()),
        time_zone: time_zone.map(String::from),
        windows: (0..fields.rows("schedule.windows"))
            .map(|i| {
                let path = format!("schedule.windows[{i}]");
                let mut days = Vec::new();
                for day in fields.all(&format!("{path}.days")) {
                    match serde_json::from_value::<Weekday>(serde_json::Value::String(day.into())) {
                        Ok(day) if !days.contains(&day) => days.push(day),
                        Ok(_) => {}
                        Err(_) => p.add(
                            format!("{path}.days"),
                            Code::Weekday,
                            "must be mon, tue, wed, thu, fri, sat or sun",
                        ),
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
        lifetime: p.optional(&fields, "caps.lifetime", Code::PositiveNumber, POSITIVE),
        per_day: p.optional(&fields, "caps.per_day", Code::PositiveNumber, POSITIVE),
        min_interval_seconds: p.optional(
            &fields,
            "caps.min_interval_seconds",
            Code::PositiveNumber,
            POSITIVE,
        ),
    };
    let include = match fields.one("audience.include") {
        "any_of" => {
            IncludeSpec::AnyOf(fields.all("audience.include.any_of").into_iter().map(String::from).collect())
        }
        "" | "everyone" => IncludeSpec::Everyone,
        _ => {
            p.add("audience.include", Code::IncludeChoice, "must be everyone or any_of");
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
            Err(message) => p.add("rules.platforms", Code::Platform, message),
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
                    p.add(format!("{path}.weight"), Code::Required, "is required");
                    0
                }
                raw => raw.parse().unwrap_or_else(|_| {
                    p.add(format!("{path}.weight"), Code::NonNegativeNumber, "must be a whole number from 0");
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
        budget: p.optional(&fields, "budget", Code::PositiveNumber, POSITIVE),
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
                self.add(name, Code::AppVersion, message);
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
            _ => p.add(format!("{path}.extra"), Code::ExtraLine, "one key=value per line"),
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

/// The form's fields for `spec`, as [`check`] reads them back: what the editor shows for a stored campaign,
/// its start and end in the wall-clock time of its zone (`zone_offsets` as for [`check`]).
pub fn encode(
    spec: &CampaignSpec,
    zone_offsets: impl Fn(&str, Timestamp) -> Option<ZoneOffsets>,
) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut put = |name: String, value: String| pairs.push((name, value));
    put("name".into(), spec.name.clone());
    put("priority".into(), spec.priority.to_string());
    put("placements".into(), spec.placements.join(", "));
    let time = |t: &DateTime<Utc>| {
        let instant = Timestamp(t.timestamp());
        let offsets = spec.schedule.time_zone.as_deref().and_then(|zone| zone_offsets(zone, instant));
        let wall = offsets.map_or(instant.seconds(), |offsets| offsets.to_local(instant));
        DateTime::from_timestamp(wall, 0).unwrap_or(*t).format("%Y-%m-%dT%H:%M:%S").to_string()
    };
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

    /// The tz database as the origin and the editor give it, here knowing two zones.
    fn offsets(zone: &str, around: Timestamp) -> Option<ZoneOffsets> {
        ["Asia/Jakarta", "Europe/Berlin"].contains(&zone).then(|| crate::zone::around(zone, around).ok())?
    }

    fn run(pairs: &[(&str, &str)]) -> Checked {
        let segment = |name: &str| (name == "vip").then_some(SegmentId(1));
        check(pairs.iter().copied(), 0, segment, offsets)
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
            // Jakarta time (UTC+7), as the zone below says.
            ("schedule.start", "2026-12-01T16:30:15"),
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
        assert_eq!(run_owned(&encode(&pairs, offsets)).spec, pairs);
        let full: CampaignSpec = serde_json::from_str(FULL).unwrap();
        let encoded = encode(&full, offsets);
        let shown = |name: &str| encoded.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        // Shown in Jakarta time, as entered.
        assert_eq!(shown("schedule.start"), Some("2026-12-01T16:30:15"));
        assert_eq!(shown("schedule.end"), Some("2027-01-01T00:00:00"));
        let again = run_owned(&encoded);
        assert_eq!(again.errors, vec![]);
        assert_eq!(again.spec, full);
    }

    fn run_owned(pairs: &[(String, String)]) -> Checked {
        let segment = |name: &str| (name == "vip").then_some(SegmentId(1));
        check(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), 0, segment, offsets)
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

    fn start_of(pairs: &[(&str, &str)]) -> Result<String, Vec<FieldError>> {
        let checked = run(pairs);
        if checked.errors.is_empty() {
            Ok(checked.spec.schedule.start.to_rfc3339())
        } else {
            Err(checked.errors)
        }
    }

    #[test]
    fn start_and_end_are_wall_clock_times_of_the_campaigns_zone() {
        let mut pairs = MINIMAL.to_vec();
        // No zone: UTC.
        assert_eq!(start_of(&pairs).unwrap(), "2026-12-01T09:30:00+00:00");
        pairs.push(("schedule.time_zone", "Asia/Jakarta"));
        assert_eq!(start_of(&pairs).unwrap(), "2026-12-01T02:30:00+00:00");
        // Berlin is UTC+1 in December and UTC+2 in July.
        pairs.pop();
        pairs.push(("schedule.time_zone", "Europe/Berlin"));
        assert_eq!(start_of(&pairs).unwrap(), "2026-12-01T08:30:00+00:00");
        pairs[1] = ("schedule.start", "2026-07-01T09:30");
        assert_eq!(start_of(&pairs).unwrap(), "2026-07-01T07:30:00+00:00");
        // An explicit offset is taken as written.
        pairs[1] = ("schedule.start", "2026-07-01T09:30:00Z");
        assert_eq!(start_of(&pairs).unwrap(), "2026-07-01T09:30:00+00:00");
        // 02:30 on the last Sunday of March never happens in Berlin; 02:30 on the last Sunday of October
        // happens twice, and the first (still UTC+2) is taken.
        pairs[1] = ("schedule.start", "2026-03-29T02:30");
        let errors = start_of(&pairs).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].field.as_str(), errors[0].code), ("schedule.start", Some(Code::SkippedTime)));
        assert_eq!(errors[0].params, vec![("zone", "Europe/Berlin".to_string())]);
        pairs[1] = ("schedule.start", "2026-10-25T02:30");
        assert_eq!(start_of(&pairs).unwrap(), "2026-10-25T00:30:00+00:00");
        // An unknown zone is reported once, at the zone; the times are read as UTC meanwhile.
        pairs.pop();
        pairs.push(("schedule.time_zone", "Asia/Atlantis"));
        pairs[1] = ("schedule.start", "2026-12-01T09:30");
        let checked = run(&pairs);
        assert_eq!(fields(&checked), ["schedule.time_zone"]);
        assert_eq!(checked.spec.schedule.start.to_rfc3339(), "2026-12-01T09:30:00+00:00");
    }

    #[test]
    fn an_end_before_the_start_in_local_time_is_an_error_of_the_end() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([("schedule.time_zone", "Asia/Jakarta"), ("schedule.end", "2026-12-01T09:00")]);
        let checked = run(&pairs);
        assert_eq!(fields(&checked), ["schedule.end"]);
        assert_eq!(checked.errors[0].code, Some(Code::EndNotAfterStart));
    }

    /// Every problem the form, the spec and the campaign report has a code, and exactly the parameters
    /// its code names: the backoffice's catalogs are written against them.
    #[test]
    fn every_problem_has_a_code_and_its_parameters() {
        let long = "x".repeat(201);
        let pairs = [
            ("name", long.as_str()),
            ("priority", "high"),
            ("placements", "Home"),
            ("schedule.start", "tomorrow"),
            ("schedule.end", "2026-03-29T02:30"),
            ("schedule.time_zone", "Europe/Berlin"),
            ("schedule.windows[0].days", "someday"),
            ("schedule.windows[0].start", "24:00"),
            ("schedule.windows[0].end", "24:00"),
            ("schedule.windows[1].start", "9am"),
            ("schedule.windows[1].end", "10:00"),
            ("creative.image_url", "http://x"),
            ("creative.action_url", "nope"),
            ("creative.extra", "no equals sign"),
            ("variants[0].key", "a a"),
            ("variants[0].weight", "-1"),
            ("variants[1].key", "b"),
            ("variants[2].key", "b"),
            ("variants[2].weight", "0"),
            ("variants[2].control", "on"),
            ("variants[2].creative.title", "t"),
            ("caps.lifetime", "1"),
            ("caps.per_day", "2"),
            ("caps.min_interval_seconds", "0"),
            ("audience.include", "any_of"),
            ("audience.include.any_of", "vip"),
            ("audience.include.any_of", "gone"),
            ("audience.exclude", "vip"),
            ("rules.platforms", "symbian"),
            ("rules.app_version.min", "6.0"),
            ("rules.app_version.max", "5.0"),
            ("rules.countries", "id"),
            ("rules.locales", "!!"),
            ("budget", "x"),
        ];
        let mut errors = run(&pairs).errors;
        for extra in [
            vec![
                ("name", " "),
                ("creative.title", ""),
                ("variants[0].key", "a"),
                ("variants[0].weight", "0"),
            ],
            vec![("name", "n\0"), ("audience.include", "some"), ("schedule.windows[0].end", "10:00")],
            vec![
                ("schedule.time_zone", "Asia/Atlantis"),
                ("budget", "0"),
                ("variants[0].key", "a"),
                ("rules.app_version.min", "five"),
            ],
            vec![("schedule.time_zone", "not a zone"), ("audience.include", "any_of")],
            vec![("schedule.start", "2026-12-02T00:00"), ("schedule.end", "2026-12-01T00:00")],
            vec![("variants[0].key", "c"), ("variants[0].weight", "1"), ("variants[0].control", "on")],
        ] {
            let mut pairs = MINIMAL.to_vec();
            pairs.retain(|(name, _)| !extra.iter().any(|(replaced, _)| replaced == name));
            pairs.extend(extra);
            errors.extend(run(&pairs).errors);
        }
        let mut budget = serde_json::from_str::<CampaignSpec>(FULL).unwrap();
        budget.budget = Some(u64::MAX);
        budget.creative.body = "y".repeat(2001);
        let known = |name: &str| (name == "vip").then_some(SegmentId(1));
        errors.extend(budget.to_campaign(1, known, |_| true).unwrap_err().0);
        let mut seen = alloc::collections::BTreeSet::new();
        for error in &errors {
            let code = error.code.unwrap_or_else(|| panic!("no code: {error:?}"));
            let names: Vec<&str> = error.params.iter().map(|(name, _)| *name).collect();
            assert_eq!(names, code.params(), "{error:?}");
            seen.insert(code);
        }
        let unseen: Vec<_> = Code::ALL.iter().filter(|code| !seen.contains(code)).collect();
        assert!(unseen.is_empty(), "no case reports {unseen:?}");
    }
}
