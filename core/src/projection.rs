//! The projection of Postgres into Redis, and how it heals after Redis loses its data.
//!
//! Redis holds a copy of what Postgres decides (the catalog, segment memberships) and the customers'
//! impression counters. Redis can lose all of it at once: flushed, restarted without persistence, failed
//! over to a replica that was behind. A resolver must then never pair a catalog with memberships or
//! counters that are not all there: a catalog naming a segment version whose members are missing reads an
//! opted-out customer as not excluded.
//!
//! So the catalog relies only on parts of the projection that are recorded as complete in one hash, the
//! readiness hash `P:{catalog}:ready`:
//!
//! | field | value | written by |
//! |---|---|---|
//! | `epoch` | a random id for this incarnation of the projection | [`BEGIN_SCRIPT`], when the hash is missing or Redis restarted |
//! | `run` | the Redis `run_id` the epoch began on | [`BEGIN_SCRIPT`] |
//! | `s:<segment>:<parity>` | the segment version whose members are all written | [`MARK_SCRIPT`] after a load |
//! | `c:<campaign>` | `1`: the campaign's counters are rebuilt from the recorded events | [`MARK_SCRIPT`] |
//! | `daily` | `1`: today's totals across campaigns are rebuilt | [`MARK_SCRIPT`] |
//!
//! The invariants, and what keeps each:
//! - **A part is marked only if all of it was written to the Redis that holds the mark.** The writer reads
//!   the epoch before it starts; [`MARK_SCRIPT`] writes the mark only if the epoch is unchanged (a flush
//!   removed it) and Redis's `run_id` is the one the epoch began on (a restart or a failover happened
//!   meanwhile, which may have dropped writes). Otherwise the part is written again.
//! - **A catalog names only marked parts.** [`assess`] moves every part that is not marked into
//!   [`Restoring`]; [`PUBLISH_SCRIPT`] checks, in the same atomic step that writes the catalog, that every
//!   mark it relied on is still there under the same epoch and `run_id`.
//! - **A loss removes the catalog.** [`BEGIN_SCRIPT`] deletes the catalog when it starts a new epoch, so
//!   until the first catalog of the new epoch is published resolvers find none and show nothing.
//!
//! What the resolver does with [`Restoring`] is in [`crate::resolve`]: it stops, showing nothing, at the
//! first campaign that depends on a part being restored. [`restore_order`] therefore restores the parts
//! of the highest-priority campaigns first.
//!
//! Counters are rebuilt from the events in Postgres with [`RESTORE_COUNTERS_SCRIPT`], which only ever
//! raises a counter: impressions recorded in Redis since the loss are not overwritten, and a restart that
//! kept an older copy of the counters gets the newer count.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::catalog::{Catalog, CatalogParts, Restoring};
use crate::ids::{CampaignId, SegmentId, Timestamp, UserId};
use crate::store::{hash_pairs, parse_int, segment_field, Command, KeySpace, Reply, StoreError};

/// The Lua that reads Redis's `run_id`, which changes whenever the server restarts.
macro_rules! run_id_lua {
    () => {
        "local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')\n"
    };
}

/// Starts a new epoch if the readiness hash has none or Redis restarted since it began, deleting the
/// catalog (a restarted Redis may hold an old copy of the counters it relied on). KEYS: readiness hash,
/// catalog, catalog version. ARGV: a fresh random epoch. Returns `[epoch in force, 1 if this call began it]`.
pub const BEGIN_SCRIPT: &str = concat!(
    run_id_lua!(),
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and redis.call('HGET', KEYS[1], 'run') == run then return {epoch, 0} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'run', run)
return {ARGV[1], 1}"
);

/// Records that a part is complete, if the epoch its writer started in still holds on the same server.
/// KEYS: readiness hash. ARGV: epoch, field, value. Returns 1 if marked, 0 if the data was lost meanwhile.
pub const MARK_SCRIPT: &str = concat!(
    run_id_lua!(),
    "if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'run') ~= run then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1"
);

/// Replaces the catalog, unless a mark it relies on is gone (returns -1) or Redis already holds a newer
/// catalog (returns 0), so two writers finishing out of order never roll the catalog back. KEYS: catalog,
/// version, readiness hash. ARGV: catalog JSON, version, epoch, then field and value of every mark the
/// catalog relies on. Returns 1 if written. Versions compare as Lua numbers (doubles), which is exact
/// because a catalog's version is at most [`crate::catalog::MAX_VERSION`].
pub const PUBLISH_SCRIPT: &str = concat!(
    run_id_lua!(),
    "if redis.call('HGET', KEYS[3], 'epoch') ~= ARGV[3] or redis.call('HGET', KEYS[3], 'run') ~= run then
  return -1
end
for i = 4, #ARGV, 2 do
  if redis.call('HGET', KEYS[3], ARGV[i]) ~= ARGV[i + 1] then return -1 end
end
if tonumber(redis.call('GET', KEYS[2]) or '-1') >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1"
);

/// Raises a customer's counters to at least the values rebuilt from the events, never lowering one.
/// KEYS: user hash, user day hash. ARGV: campaign id (or `all` for today's total across campaigns),
/// lifetime impressions, last impression (unix seconds), impressions today, today's hash TTL.
pub const RESTORE_COUNTERS_SCRIPT: &str = "\
local function raise(key, field, value)
  if tonumber(value) > (tonumber(redis.call('HGET', key, field)) or 0) then
    redis.call('HSET', key, field, value)
  end
end
if ARGV[1] == 'all' then
  raise(KEYS[2], 'all', ARGV[4])
else
  raise(KEYS[1], 'n:' .. ARGV[1], ARGV[2])
  raise(KEYS[1], 't:' .. ARGV[1], ARGV[3])
  if tonumber(ARGV[4]) > 0 then raise(KEYS[2], 'n:' .. ARGV[1], ARGV[4]) end
end
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
return 1";

/// One part of the projection that can be missing from Redis and written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The members of one version of a segment.
    Segment { segment: SegmentId, version: u64 },
    /// Every customer's impression counters of one campaign.
    Counters(CampaignId),
    /// Every customer's impressions today across campaigns, for the global daily cap.
    DailyTotals,
}

impl Part {
    /// Its field in the readiness hash.
    pub fn field(&self) -> String {
        match self {
            Part::Segment { segment, version } => segment_field(*segment, *version),
            Part::Counters(campaign) => alloc::format!("c:{campaign}"),
            Part::DailyTotals => "daily".into(),
        }
    }

    /// The value its field holds once it is complete.
    pub fn value(&self) -> String {
        match self {
            Part::Segment { version, .. } => version.to_string(),
            Part::Counters(_) | Part::DailyTotals => "1".into(),
        }
    }
}

/// The readiness hash as read from Redis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub epoch: Option<String>,
    fields: BTreeMap<String, String>,
}

impl Readiness {
    /// Whether `part` is marked complete.
    pub fn has(&self, part: &Part) -> bool {
        self.fields.get(&part.field()) == Some(&part.value())
    }
}

/// What a catalog relies on: the epoch and the marks it found. Published with it, and checked again there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    epoch: String,
    parts: Vec<Part>,
}

impl Claims {
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

/// Starts an epoch if needed: see [`BEGIN_SCRIPT`]. `fresh_epoch` is a new random id (the core draws none).
pub fn begin(keys: &KeySpace, fresh_epoch: &str) -> Command {
    command([
        "EVAL",
        BEGIN_SCRIPT,
        "3",
        &keys.readiness(),
        &keys.catalog(),
        &keys.catalog_version(),
        fresh_epoch,
    ])
}

/// The epoch in force after [`begin`], and whether that call began it (Redis had lost the projection).
pub fn read_begin(reply: Reply) -> Result<(String, bool), StoreError> {
    const COMMAND: &str = "EVAL begin";
    match reply {
        Reply::Array(items) => match items.as_slice() {
            [Reply::Bulk(epoch), began] => {
                let epoch =
                    String::from_utf8(epoch.clone()).map_err(|_| StoreError::UnexpectedReply(COMMAND))?;
                Ok((epoch, parse_int(began, COMMAND)? == 1))
            }
            _ => Err(StoreError::UnexpectedReply(COMMAND)),
        },
        Reply::Error(message) => Err(StoreError::Redis { command: COMMAND, message }),
        _ => Err(StoreError::UnexpectedReply(COMMAND)),
    }
}

pub fn fetch_readiness(keys: &KeySpace) -> Command {
    command(["HGETALL", &keys.readiness()])
}

pub fn read_readiness(reply: Reply) -> Result<Readiness, StoreError> {
    let mut readiness = Readiness::default();
    for (field, value) in hash_pairs(reply, "HGETALL readiness")? {
        if field == "epoch" {
            readiness.epoch = Some(value);
        } else {
            readiness.fields.insert(field, value);
        }
    }
    Ok(readiness)
}

/// Marks `part` complete if `epoch` still holds: see [`MARK_SCRIPT`].
pub fn mark(keys: &KeySpace, epoch: &str, part: &Part) -> Command {
    command(["EVAL", MARK_SCRIPT, "1", &keys.readiness(), epoch, &part.field(), &part.value()])
}

/// Whether [`mark`] marked the part (false: Redis lost data since `epoch` was read; write it again).
pub fn read_mark(reply: &Reply) -> Result<bool, StoreError> {
    Ok(parse_int(reply, "EVAL mark")? == 1)
}

/// Removes the mark of `part`, before its field is rewritten with other data (a segment's next version of
/// the same parity), so that no catalog relies on it meanwhile.
pub fn unmark(keys: &KeySpace, part: &Part) -> Command {
    command(["HDEL", &keys.readiness(), &part.field()])
}

/// Adjusts `parts`, as built from Postgres, to what Redis holds: segments whose members are not all in
/// Redis move from [`CatalogParts::segments`] to [`Restoring::segments`]; campaigns whose counters are
/// not rebuilt, and today's totals if they are not, are listed as restoring too. Returns what the catalog
/// then relies on, for [`publish_catalog`].
pub fn assess(parts: &mut CatalogParts, readiness: &Readiness) -> Claims {
    let mut restoring = Restoring::default();
    let mut relied = Vec::new();
    let epoch = match &readiness.epoch {
        Some(epoch) => epoch.clone(),
        // Without an epoch nothing is marked; the publish is refused and made again after `begin`.
        None => String::new(),
    };
    parts.segments.retain(|&segment, &mut version| {
        let part = Part::Segment { segment, version };
        let loaded = readiness.has(&part);
        if loaded {
            relied.push(part);
        } else {
            restoring.segments.insert(segment);
        }
        loaded
    });
    for campaign in &parts.campaigns {
        let part = Part::Counters(campaign.id);
        if readiness.has(&part) {
            relied.push(part);
        } else {
            restoring.counters.insert(campaign.id);
        }
    }
    if readiness.has(&Part::DailyTotals) {
        relied.push(Part::DailyTotals);
    } else {
        restoring.daily_totals = true;
    }
    parts.restoring = restoring;
    Claims { epoch, parts: relied }
}

/// The parts `catalog` is waiting for, in the order to restore them: those the highest-priority campaigns
/// depend on first, since resolution stops at the first campaign that waits (see [`crate::resolve`]).
/// Today's totals come first when a global daily cap holds every campaign up, last otherwise.
pub fn restore_order(catalog: &Catalog, versions: &BTreeMap<SegmentId, u64>) -> Vec<Part> {
    let restoring = catalog.restoring();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |part: Part, order: &mut Vec<Part>| {
        if seen.insert(part) {
            order.push(part);
        }
    };
    let global_cap = catalog.settings().max_popups_per_day.is_some();
    if global_cap && restoring.daily_totals {
        push(Part::DailyTotals, &mut order);
    }
    for campaign in catalog.campaigns() {
        let audience = &campaign.audience;
        let included = match &audience.include {
            crate::campaign::Include::AnyOf(segments) => segments.as_slice(),
            crate::campaign::Include::Everyone => &[],
        };
        for segment in audience.exclude.iter().chain(included) {
            if let (true, Some(&version)) = (restoring.segments.contains(segment), versions.get(segment)) {
                push(Part::Segment { segment: *segment, version }, &mut order);
            }
        }
        if restoring.counters.contains(&campaign.id) {
            push(Part::Counters(campaign.id), &mut order);
        }
    }
    if restoring.daily_totals {
        push(Part::DailyTotals, &mut order);
    }
    order
}

/// Publishes `catalog`, relying on `claims` (from [`assess`]): see [`PUBLISH_SCRIPT`].
pub fn publish_catalog(keys: &KeySpace, catalog: &Catalog, claims: &Claims) -> Command {
    let mut args = Vec::with_capacity(7 + 2 * claims.parts.len());
    args.extend(
        [
            "EVAL",
            PUBLISH_SCRIPT,
            "3",
            &keys.catalog(),
            &keys.catalog_version(),
            &keys.readiness(),
            &catalog.encode(),
            &catalog.version().to_string(),
            &claims.epoch,
        ]
        .map(String::from),
    );
    for part in &claims.parts {
        args.push(part.field());
        args.push(part.value());
    }
    Command(args)
}

/// What the reply to [`publish_catalog`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Written,
    /// Redis already holds a newer catalog.
    Superseded,
    /// A mark the catalog relied on is gone (Redis lost data meanwhile): assess again and republish.
    LostMarks,
}

pub fn read_publish(reply: &Reply) -> Result<Published, StoreError> {
    match parse_int(reply, "EVAL publish")? {
        1 => Ok(Published::Written),
        0 => Ok(Published::Superseded),
        -1 => Ok(Published::LostMarks),
        _ => Err(StoreError::UnexpectedReply("EVAL publish")),
    }
}

/// One customer's counters of one campaign as rebuilt from the recorded impressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuiltCounters {
    pub lifetime: u64,
    pub last_shown: Timestamp,
    /// Impressions since the start of the day `now` is in.
    pub today: u64,
}

/// Raises `user`'s counters of `campaign` to `counters`; `script_sha` is [`RESTORE_COUNTERS_SCRIPT`]'s,
/// loaded with `SCRIPT LOAD` (one script text per customer would be most of the traffic).
pub fn restore_counters(
    keys: &KeySpace,
    script_sha: &str,
    user: &UserId,
    campaign: CampaignId,
    counters: &RebuiltCounters,
    now: Timestamp,
) -> Command {
    let (lifetime, last_shown) = (counters.lifetime.to_string(), counters.last_shown.seconds().to_string());
    restore(keys, script_sha, user, &campaign.to_string(), [&lifetime, &last_shown], counters.today, now)
}

/// Raises `user`'s impressions today across campaigns to `today`.
pub fn restore_daily_total(
    keys: &KeySpace,
    script_sha: &str,
    user: &UserId,
    today: u64,
    now: Timestamp,
) -> Command {
    restore(keys, script_sha, user, "all", ["0", "0"], today, now)
}

/// [`RESTORE_COUNTERS_SCRIPT`] for `target` (a campaign id, or `all`), with the lifetime and last-shown
/// arguments given and `today`.
fn restore(
    keys: &KeySpace,
    script_sha: &str,
    user: &UserId,
    target: &str,
    [lifetime, last_shown]: [&str; 2],
    today: u64,
    now: Timestamp,
) -> Command {
    command([
        "EVALSHA",
        script_sha,
        "2",
        &keys.user(user),
        &keys.user_day(user, keys.day(now)),
        target,
        lifetime,
        last_shown,
        &today.to_string(),
        &keys.day_ttl(now).to_string(),
    ])
}

/// `SCRIPT LOAD` of a script, whose reply is its SHA-1 for `EVALSHA`.
pub fn load_script(script: &str) -> Command {
    command(["SCRIPT", "LOAD", script])
}

pub fn read_script_sha(reply: Reply) -> Result<String, StoreError> {
    match reply {
        Reply::Bulk(sha) => String::from_utf8(sha).map_err(|_| StoreError::UnexpectedReply("SCRIPT LOAD")),
        Reply::Error(message) => Err(StoreError::Redis { command: "SCRIPT LOAD", message }),
        _ => Err(StoreError::UnexpectedReply("SCRIPT LOAD")),
    }
}

fn command<const N: usize>(parts: [&str; N]) -> Command {
    Command(parts.iter().map(|p| p.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{Campaign, Caps, Creative, Include, Schedule};
    use crate::catalog::Settings;

    fn readiness(epoch: &str, parts: &[Part]) -> Readiness {
        Readiness {
            epoch: Some(epoch.into()),
            fields: parts.iter().map(|p| (p.field(), p.value())).collect(),
        }
    }

    fn campaign(id: u64, priority: i32, include: &[u32], exclude: &[u32]) -> Campaign {
        let mut c = Campaign {
            id: CampaignId(id),
            name: alloc::format!("campaign {id}"),
            priority,
            placements: alloc::vec![],
            schedule: Schedule { start: Timestamp(0), end: None, time_zone: None, windows: alloc::vec![] },
            creative: Creative { title: "Title".into(), body: "Body".into(), ..Creative::default() },
            variants: alloc::vec![],
            caps: Caps::default(),
            audience: Default::default(),
            rules: Default::default(),
            budget: None,
        };
        if !include.is_empty() {
            c.audience.include = Include::AnyOf(include.iter().map(|&s| SegmentId(s)).collect());
        }
        c.audience.exclude = exclude.iter().map(|&s| SegmentId(s)).collect();
        c.caps = Caps { lifetime: Some(1), ..Caps::default() };
        c
    }

    #[test]
    fn a_catalog_relies_only_on_what_is_marked_and_waits_for_the_rest() {
        let mut parts = CatalogParts {
            campaigns: alloc::vec![campaign(1, 0, &[], &[])],
            segments: [(SegmentId(3), 5), (SegmentId(4), 8)].into_iter().collect(),
            ..Default::default()
        };
        let marked = [Part::Segment { segment: SegmentId(3), version: 5 }, Part::DailyTotals];
        // A mark for another version of segment 4 (same parity) does not count for version 8.
        let mut ready = readiness("e1", &marked);
        ready.fields.insert(segment_field(SegmentId(4), 8), "6".into());
        let claims = assess(&mut parts, &ready);
        assert_eq!(claims.epoch(), "e1");
        assert_eq!(claims.parts(), &marked);
        assert_eq!(parts.segments, [(SegmentId(3), 5)].into_iter().collect());
        assert_eq!(parts.restoring.segments, [SegmentId(4)].into_iter().collect());
        assert_eq!(parts.restoring.counters, [CampaignId(1)].into_iter().collect());
        assert!(!parts.restoring.daily_totals);
    }

    #[test]
    fn without_an_epoch_everything_is_restoring() {
        let mut parts = CatalogParts {
            campaigns: alloc::vec![campaign(1, 0, &[3], &[])],
            segments: [(SegmentId(3), 5)].into_iter().collect(),
            ..Default::default()
        };
        let claims = assess(&mut parts, &Readiness::default());
        assert_eq!(claims.epoch(), "");
        assert!(claims.parts().is_empty());
        assert!(parts.segments.is_empty());
        assert!(parts.restoring.daily_totals);
    }

    #[test]
    fn parts_restore_in_priority_order_with_the_daily_totals_first_under_a_global_cap() {
        let versions: BTreeMap<SegmentId, u64> =
            [(SegmentId(1), 11), (SegmentId(2), 12), (SegmentId(3), 13)].into_iter().collect();
        let campaigns =
            alloc::vec![campaign(10, 1, &[1], &[]), campaign(20, 9, &[2], &[3]), campaign(30, 5, &[1], &[])];
        let mut parts =
            CatalogParts { version: 1, campaigns, segments: versions.clone(), ..Default::default() };
        assess(&mut parts, &readiness("e", &[]));
        let order = restore_order(&Catalog::build(parts.clone()).unwrap(), &versions);
        let segment = |s: u32| Part::Segment { segment: SegmentId(s), version: versions[&SegmentId(s)] };
        assert_eq!(
            order,
            [
                segment(3),
                segment(2),
                Part::Counters(CampaignId(20)),
                segment(1),
                Part::Counters(CampaignId(30)),
                Part::Counters(CampaignId(10)),
                Part::DailyTotals,
            ]
        );
        parts.settings = Settings { max_popups_per_day: Some(3) };
        let order = restore_order(&Catalog::build(parts).unwrap(), &versions);
        assert_eq!(order.first(), Some(&Part::DailyTotals));
        assert_eq!(order.iter().filter(|p| **p == Part::DailyTotals).count(), 1);
    }

    #[test]
    fn publish_replies_are_read_and_odd_ones_refused() {
        assert_eq!(read_publish(&Reply::Int(1)), Ok(Published::Written));
        assert_eq!(read_publish(&Reply::Int(0)), Ok(Published::Superseded));
        assert_eq!(read_publish(&Reply::Int(-1)), Ok(Published::LostMarks));
        assert!(read_publish(&Reply::Int(2)).is_err());
        assert!(read_publish(&Reply::Nil).is_err());
        let began = Reply::Array(alloc::vec![Reply::Bulk(b"e".to_vec()), Reply::Int(1)]);
        assert_eq!(read_begin(began), Ok(("e".into(), true)));
        assert!(read_begin(Reply::Array(alloc::vec![Reply::Int(1)])).is_err());
    }
}
