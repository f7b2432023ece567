//! The product's Redis layout against the seed's, on the same data in the same Redis: commands and round
//! trips per resolve, Redis CPU per resolve, throughput and latency, memory per targeted customer, and the
//! monthly bill at per-command pricing. Run by `scripts/bench-layout`, which gives it a redis-server of its
//! own (it is flushed); see that script for settings.
//!
//! **The seed's layout** (the first two seed documents, "High Level Solution" and "System Design"), built
//! here for comparison only; the product never writes it:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `campaigns:active` | zset | campaign id, scored by priority |
//! | `campaign:<id>:meta` | hash | `title`, `image_url`, `action_url`, `max_frequency`, `target_segment`, `start_time`, `end_time` |
//! | `campaign:<id>:users` | bitmap | bit `<customer id>` set for each targeted customer (`GETBIT`) |
//! | `user:<id>:impressions` | hash | `<campaign id>` -> impressions |
//!
//! Its resolve, as the seed describes it: `ZREVRANGE campaigns:active 0 -1` (candidates, highest priority
//! first), then one pipeline with, for every candidate, the metadata, the membership and the customer's
//! counter, then the first candidate that passes the time, target and cap checks, in that order.
//!
//! Where the seeds are vague, and what this benchmark chose:
//! - **Which reads the pipeline holds.** "Check metadata campaign, user assignment, impression count": one
//!   `HGETALL campaign:<id>:meta`, one `GETBIT campaign:<id>:users <uid>` and one `HGET
//!   user:<uid>:impressions <id>` per candidate, so 1 + 3K commands in 2 round trips. The metadata is not
//!   known before the pipeline returns, so the `GETBIT` is sent for global campaigns too. (Counting
//!   the membership and counter reads alone gives 1 + 2K; one `HGETALL` of the impressions hash instead
//!   of K `HGET`s would make it 2 + 2K. Neither is what the seed's flow says, and neither is measured.)
//! - **Bitmap or set.** "BITMAP (very memory-efficient for millions of users if ids are sequential) or
//!   SSET (bloom filter if memory is limited)": a bitmap, over integer customer ids 0..N, not sharded.
//! - **Segment and whitelist.** The metadata names a `target_segment` and each campaign has its own
//!   whitelist; how they relate is not said. Here the bitmap of a campaign holds the members of its
//!   segment (campaigns sharing a segment each have a copy).
//! - **Global campaigns.** "Is the campaign global? If not, is the customer whitelisted?": an empty
//!   `target_segment` means everyone; otherwise the bitmap decides.
//! - **Times.** `start_time` and `end_time` in Unix seconds (the format is not given), an empty `end_time`
//!   for none; "within start and end" read as start <= now < end, as the product does.
//! - **Caps.** One counter per customer and campaign against `max_frequency` ("max 1x per day, 3x in
//!   total" is named, but the hash holds one count and its TTL is per customer, not per campaign): read as
//!   a lifetime cap, `0` for none, and the hash has no TTL. The campaigns here therefore have lifetime
//!   caps only, in both layouts.
//! - **Ties.** `ZREVRANGE` orders equal scores by member, descending; the product gives a tie to the lower
//!   id. The campaigns here have distinct priorities, so both orders agree.
//! - **Loading.** The seed's sync process is not described. A bitmap is written with one `SET` of its bytes
//!   (what `SETBIT` per member would build, with no slack from growing it bit by bit).
//!
//! **Our layout** is written as the product writes it: memberships with the core's `add_member` (one
//! `HSET P:u:{uid} s:<segment>:<parity> <version>` per member and segment, as a segment upload does),
//! counters with the heal's `restore_counters` and `restore_daily_total` scripts (the fields the event
//! script writes), and the catalog built with `Catalog::build`, its parts marked and published with the
//! projection's scripts. Resolves send the core's `ResolvePlan` (warm: the catalog is cached, as the origin
//! and the edge keep it) and decide with `popup_core::resolve::resolve`.
//!
//! Both resolvers run natively in this process with the same concurrency over one multiplexed connection,
//! on the same sequence of customers; every decision of the timed runs is compared, and a sample is
//! compared field by field (campaign, title, image, action), so the two do equivalent work.

use popup_origin::redis_store::to_reply;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use popup_core::campaign::{Audience, Campaign, Caps, Creative, Include, Schedule};
use popup_core::catalog::{Catalog, CatalogParts};
use popup_core::context::RequestContext;
use popup_core::ids::{CampaignId, SegmentId, Timestamp, UserId};
use popup_core::projection::{
    assess, begin, fetch_readiness, load_script, mark, publish_catalog, read_begin, read_mark, read_publish,
    read_readiness, read_script_sha, restore_counters, restore_daily_total, Part, Published, RebuiltCounters,
    RESTORE_COUNTERS_SCRIPT,
};
use popup_core::resolve::{explain, resolve, Skip, Subject};
use popup_core::store::{
    add_member, fetch_catalog, read_catalog, CatalogStatus, Command, KeySpace, Reply, ResolvePlan,
};
use popup_core::user::UserState;
use popup_origin::redis_store::to_cmd;
use redis::aio::MultiplexedConnection;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Customers, with integer ids 0..N (the seed's bitmaps need integer ids).
    #[arg(long, default_value_t = 1_000_000)]
    customers: u32,
    /// Timed resolves per layout and K.
    #[arg(long, default_value_t = 50_000)]
    resolves: usize,
    /// Resolves in flight at once, over one multiplexed connection.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Live campaigns, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 50, 200])]
    campaigns: Vec<usize>,
    /// Customers resolved by both layouts before each timed run, compared field by field.
    #[arg(long, default_value_t = 2_000)]
    sample: usize,
}

/// Our layout's key prefix and day offset (Jakarta).
const PREFIX: &str = "bench";
const DAY_OFFSET: i32 = 7 * 3600;
const DAY: i64 = 86_400;
const SEED_ACTIVE: &str = "campaigns:active";
/// Commands per bulk pipeline while loading.
const LOAD_PIPELINE: usize = 5_000;
/// Upstash's published pay-as-you-go price, per 100,000 commands.
const PRICE_PER_100K_COMMANDS: f64 = 0.2;
const BILLED_RESOLVES_PER_SECOND: f64 = 10_000.0;
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;

/// The segments: (id, current version, members per 10,000 customers). Some large (card holders, payroll),
/// some small (VIP); versions of both parities, as after a few re-uploads.
const SEGMENTS: [(u32, u64, u64); 8] = [
    (1, 3, 4_000),
    (2, 4, 2_500),
    (3, 5, 1_500),
    (4, 6, 1_000),
    (5, 7, 500),
    (6, 8, 300),
    (7, 9, 200),
    (8, 10, 100),
];

fn mix(x: u64) -> u64 {
    // splitmix64: every customer's data and the order of the resolves follow from fixed seeds.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn is_member(uid: u32, segment: usize) -> bool {
    let per_10000 = SEGMENTS.get(segment).map_or(0, |s| s.2);
    mix(u64::from(uid) << 8 | segment as u64) % 10_000 < per_10000
}

/// The customer of the `index`-th resolve.
fn customer(index: usize, customers: u32) -> u32 {
    (mix(index as u64 ^ 0x00c0_ffee) % u64::from(customers)) as u32
}

/// One campaign, in terms both layouts can express. Campaign `i` (0-based) has id `i + 1`; the first K of
/// them are live at K, so the sets are nested.
#[derive(Clone, Debug)]
struct Spec {
    id: u64,
    priority: i32,
    start: i64,
    end: i64,
    /// Index into [`SEGMENTS`]; None targets everyone.
    segment: Option<usize>,
    /// Lifetime cap.
    cap: Option<u32>,
}

impl Spec {
    fn title(&self) -> String {
        format!("Offer {}", self.id)
    }

    fn image_url(&self) -> String {
        format!("https://cdn.example.com/popup/{}.png", self.id)
    }

    fn action_url(&self) -> String {
        format!("bank://offers/{}", self.id)
    }
}

/// Every fifth campaign targets everyone, at the lowest priorities (fallbacks); the others target the
/// segments in turn (the first K = 10 cover all eight) at distinct higher priorities in an order unrelated
/// to their ids. Caps cycle through 3, 1, none, 2; one campaign in ten has not started yet and one in
/// twenty has ended (both still listed, as a sync run every minute leaves them).
fn specs(count: usize, now: i64) -> Vec<Spec> {
    let mut segmented = 0;
    (0..count)
        .map(|i| {
            let global = i % 5 == 4;
            let segment = (!global).then(|| {
                segmented += 1;
                (segmented - 1) % SEGMENTS.len()
            });
            let priority = if global { (i / 5) as i32 } else { 100 + ((i * 37) % 200) as i32 };
            let (start, end) = match (i % 10, i % 20) {
                (7, _) => (now + DAY, now + 60 * DAY),
                (_, 13) => (now - 60 * DAY, now - DAY),
                _ => (now - 30 * DAY, now + 30 * DAY),
            };
            let cap = [Some(3), Some(1), None, Some(2)][i % 4];
            Spec { id: i as u64 + 1, priority, start, end, segment, cap }
        })
        .collect()
}

/// Whether `spec` would show to `uid` at `now` with no impressions (schedule and audience).
fn reaches(spec: &Spec, uid: u32, now: i64) -> bool {
    spec.start <= now && now < spec.end && spec.segment.is_none_or(|segment| is_member(uid, segment))
}

/// A customer's recorded impressions: (campaign index, lifetime count, whether the last one was today).
/// Four customers in ten have seen, in each catalog measured (`orders`: the live campaigns of each K in
/// resolution order), the one or two campaigns they were offered first: two times in three up to the
/// cap, so that they fall through to the next campaign, or to none. Half of them have also seen one
/// campaign picked at random.
fn impressions(uid: u32, orders: &[Vec<&Spec>], specs: &[Spec], now: i64) -> Vec<(usize, u32, bool)> {
    let h = mix(u64::from(uid) ^ 0x1_0000_0000);
    if h % 100 >= 40 {
        return Vec::new();
    }
    let mut seen: Vec<(usize, u32, bool)> = Vec::new();
    for (o, order) in orders.iter().enumerate() {
        let wanted = 1 + ((h >> (8 + o)) % 2) as usize;
        let mut taken = 0;
        for spec in order.iter().filter(|spec| reaches(spec, uid, now)) {
            if taken == wanted {
                break;
            }
            if seen.iter().any(|&(c, _, _)| c as u64 + 1 == spec.id) {
                continue;
            }
            taken += 1;
            let cap = spec.cap.unwrap_or(3);
            let n = seen.len() as u64;
            let count = if (h >> (12 + 2 * n)).is_multiple_of(3) { cap - 1 } else { cap };
            if count > 0 {
                seen.push((spec.id as usize - 1, count, (h >> (30 + n)).is_multiple_of(3)));
            }
        }
    }
    let other = ((h >> 40) % specs.len().max(1) as u64) as usize;
    if (h >> 52).is_multiple_of(2) && !seen.iter().any(|&(c, _, _)| c == other) {
        seen.push((other, 1 + ((h >> 54) % 3) as u32, (h >> 58).is_multiple_of(3)));
    }
    seen
}

fn product_campaign(spec: &Spec) -> Campaign {
    Campaign {
        id: CampaignId(spec.id),
        name: format!("Campaign {}", spec.id),
        priority: spec.priority,
        placements: vec![],
        schedule: Schedule {
            start: Timestamp(spec.start),
            end: Some(Timestamp(spec.end)),
            time_zone: None,
            windows: vec![],
        },
        creative: Creative {
            title: spec.title(),
            body: String::new(),
            image_url: Some(spec.image_url()),
            action_url: Some(spec.action_url()),
            extra: BTreeMap::new(),
        },
        variants: vec![],
        caps: Caps { lifetime: spec.cap, per_day: None, min_interval_seconds: None },
        audience: Audience {
            include: spec
                .segment
                .and_then(|s| SEGMENTS.get(s))
                .map_or(Include::Everyone, |&(id, _, _)| Include::AnyOf(vec![SegmentId(id)])),
            exclude: vec![],
        },
        rules: Default::default(),
        budget: None,
    }
}

fn segment_name(segment: usize) -> String {
    format!("seg-{segment}")
}

// ---- Redis plumbing ----

/// Sends core commands as one pipeline, as the origin's store does.
async fn run_core(conn: &mut MultiplexedConnection, commands: &[Command]) -> anyhow::Result<Vec<Reply>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for command in commands {
        pipe.add_command(to_cmd(command));
    }
    let values: Vec<redis::Value> = pipe.query_async(conn).await?;
    Ok(values.into_iter().map(to_reply).collect())
}

/// Bulk writes, a pipeline of [`LOAD_PIPELINE`] commands at a time.
struct Batch<'a> {
    conn: &'a mut MultiplexedConnection,
    pipe: redis::Pipeline,
    queued: usize,
}

impl<'a> Batch<'a> {
    fn new(conn: &'a mut MultiplexedConnection) -> Batch<'a> {
        Batch { conn, pipe: redis::pipe(), queued: 0 }
    }

    async fn push(&mut self, cmd: redis::Cmd) -> anyhow::Result<()> {
        self.pipe.add_command(cmd).ignore();
        self.queued += 1;
        if self.queued >= LOAD_PIPELINE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.queued > 0 {
            self.pipe.query_async::<()>(&mut *self.conn).await?;
            self.pipe = redis::pipe();
            self.queued = 0;
        }
        Ok(())
    }
}

async fn info(conn: &mut MultiplexedConnection, sections: &[&str]) -> anyhow::Result<String> {
    let mut cmd = redis::cmd("INFO");
    for section in sections {
        cmd.arg(*section);
    }
    Ok(cmd.query_async(conn).await?)
}

fn info_field(info: &str, name: &str) -> anyhow::Result<f64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .with_context(|| format!("INFO has no {name}"))?
        .trim()
        .parse()
        .with_context(|| format!("INFO {name} is not a number"))
}

/// Redis's CPU seconds so far and the commands it has run, `INFO` itself excluded.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    cpu_seconds: f64,
    calls: u64,
}

async fn snapshot(conn: &mut MultiplexedConnection) -> anyhow::Result<Snapshot> {
    let text = info(conn, &["cpu", "commandstats"]).await?;
    let cpu_seconds = info_field(&text, "used_cpu_sys")? + info_field(&text, "used_cpu_user")?;
    let mut calls = 0;
    for line in text.lines() {
        let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        if name == "info" {
            continue;
        }
        let count = stats
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .with_context(|| format!("no calls in {line}"))?;
        calls += count.parse::<u64>()?;
    }
    Ok(Snapshot { cpu_seconds, calls })
}

/// Memory the data takes: `used_memory` less the clients' buffers (a bulk pipeline's query buffer is
/// released only later, and is not data).
async fn data_memory(conn: &mut MultiplexedConnection) -> anyhow::Result<f64> {
    let text = info(conn, &["memory"]).await?;
    Ok(info_field(&text, "used_memory")? - info_field(&text, "mem_clients_normal")?)
}

async fn flush(conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
    redis::cmd("FLUSHALL").arg("SYNC").query_async::<()>(conn).await?;
    Ok(())
}

// ---- Loading ----

fn user_id(uid: u32) -> anyhow::Result<UserId> {
    Ok(UserId::parse(&uid.to_string())?)
}

/// Our memberships, as a segment upload writes them. Returns the customers in at least one segment.
async fn load_ours_members(
    conn: &mut MultiplexedConnection,
    keys: &KeySpace,
    customers: u32,
) -> anyhow::Result<u64> {
    let mut batch = Batch::new(conn);
    let mut targeted = 0;
    for uid in 0..customers {
        let mut any = false;
        for (segment, &(id, version, _)) in SEGMENTS.iter().enumerate() {
            if is_member(uid, segment) {
                any = true;
                batch.push(to_cmd(&add_member(keys, &user_id(uid)?, SegmentId(id), version))).await?;
            }
        }
        targeted += u64::from(any);
    }
    batch.flush().await?;
    Ok(targeted)
}

/// Our counters, as the heal rebuilds them (the same fields the event script writes).
async fn load_ours_counters(
    conn: &mut MultiplexedConnection,
    keys: &KeySpace,
    specs: &[Spec],
    orders: &[Vec<&Spec>],
    customers: u32,
    now: Timestamp,
) -> anyhow::Result<()> {
    let reply = run_core(conn, &[load_script(RESTORE_COUNTERS_SCRIPT)]).await?.into_iter().next();
    let sha = read_script_sha(reply.context("no reply to SCRIPT LOAD")?)?;
    let mut batch = Batch::new(conn);
    for uid in 0..customers {
        let seen = impressions(uid, orders, specs, now.seconds());
        if seen.is_empty() {
            continue;
        }
        let user = user_id(uid)?;
        let mut today_total = 0;
        for (campaign, count, today) in seen {
            let spec = specs.get(campaign).context("impression of an unknown campaign")?;
            let counters = RebuiltCounters {
                lifetime: u64::from(count),
                last_shown: now.plus(if today { -3_600 } else { -(1 + i64::from(count)) * DAY }),
                today: u64::from(today),
            };
            today_total += u64::from(today);
            let command = restore_counters(keys, &sha, &user, CampaignId(spec.id), &counters, now);
            batch.push(to_cmd(&command)).await?;
        }
        if today_total > 0 {
            batch.push(to_cmd(&restore_daily_total(keys, &sha, &user, today_total, now))).await?;
        }
    }
    batch.flush().await
}

/// The seed's bitmap of each segment, bit `uid` set for members (Redis numbers bits from the most
/// significant of the first byte).
fn bitmaps(customers: u32) -> Vec<Vec<u8>> {
    (0..SEGMENTS.len())
        .map(|segment| {
            let mut bytes = vec![0u8; (customers as usize).div_ceil(8)];
            for uid in 0..customers {
                if is_member(uid, segment) {
                    if let Some(byte) = bytes.get_mut(uid as usize / 8) {
                        *byte |= 0x80 >> (uid % 8);
                    }
                }
            }
            bytes
        })
        .collect()
}

async fn load_seed_bitmaps(
    conn: &mut MultiplexedConnection,
    specs: &[Spec],
    bitmaps: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut batch = Batch::new(conn);
    for spec in specs {
        if let Some(segment) = spec.segment {
            let bytes = bitmaps.get(segment).context("no bitmap")?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("campaign:{}:users", spec.id)).arg(bytes.as_slice());
            batch.push(cmd).await?;
        }
    }
    batch.flush().await
}

async fn load_seed_meta(conn: &mut MultiplexedConnection, specs: &[Spec]) -> anyhow::Result<()> {
    let mut batch = Batch::new(conn);
    for spec in specs {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("campaign:{}:meta", spec.id))
            .arg("title")
            .arg(spec.title())
            .arg("image_url")
            .arg(spec.image_url())
            .arg("action_url")
            .arg(spec.action_url())
            .arg("max_frequency")
            .arg(spec.cap.unwrap_or(0))
            .arg("target_segment")
            .arg(spec.segment.map(segment_name).unwrap_or_default())
            .arg("start_time")
            .arg(spec.start)
            .arg("end_time")
            .arg(spec.end);
        batch.push(cmd).await?;
    }
    batch.flush().await
}

async fn load_seed_impressions(
    conn: &mut MultiplexedConnection,
    specs: &[Spec],
    orders: &[Vec<&Spec>],
    customers: u32,
    now: i64,
) -> anyhow::Result<()> {
    let mut batch = Batch::new(conn);
    for uid in 0..customers {
        let seen = impressions(uid, orders, specs, now);
        if seen.is_empty() {
            continue;
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("user:{uid}:impressions"));
        for (campaign, count, _) in seen {
            cmd.arg(specs.get(campaign).context("impression of an unknown campaign")?.id).arg(count);
        }
        batch.push(cmd).await?;
    }
    batch.flush().await
}

/// Makes `live` the seed's active campaigns.
async fn activate_seed(conn: &mut MultiplexedConnection, live: &[Spec]) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(SEED_ACTIVE).ignore();
    for spec in live {
        pipe.cmd("ZADD").arg(SEED_ACTIVE).arg(spec.priority).arg(spec.id).ignore();
    }
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// Publishes our catalog as the origin does once every part it names is in Redis, and reads it back the
/// way a resolver caches it.
async fn publish_ours(
    conn: &mut MultiplexedConnection,
    keys: &KeySpace,
    catalog: &Catalog,
) -> anyhow::Result<Catalog> {
    let reply = run_core(conn, &[begin(keys, "bench-layout")]).await?.into_iter().next();
    let (epoch, _) = read_begin(reply.context("no reply to begin")?)?;
    let mut parts = catalog.clone().into_parts();
    let mut marks: Vec<Part> =
        parts.segments.iter().map(|(&segment, &version)| Part::Segment { segment, version }).collect();
    marks.extend(parts.campaigns.iter().map(|c| Part::Counters(c.id)));
    marks.push(Part::DailyTotals);
    let commands: Vec<Command> = marks.iter().map(|part| mark(keys, &epoch, part)).collect();
    for reply in run_core(conn, &commands).await? {
        ensure!(read_mark(&reply)?, "a mark was refused");
    }
    let reply = run_core(conn, &[fetch_readiness(keys)]).await?.into_iter().next();
    let readiness = read_readiness(reply.context("no reply to the readiness")?)?;
    let claims = assess(&mut parts, &readiness);
    ensure!(parts.restoring.is_empty(), "the catalog would wait for {:?}", parts.restoring);
    let reply = run_core(conn, &[publish_catalog(keys, catalog, &claims)]).await?;
    let published = read_publish(reply.first().context("no reply to publish")?)?;
    ensure!(published == Published::Written, "publish: {published:?}");
    let reply = run_core(conn, &[fetch_catalog(keys)]).await?.into_iter().next();
    let fetched = read_catalog(reply.context("no reply to GET catalog")?)?.context("no catalog")?;
    ensure!(fetched == *catalog, "the catalog read back differs");
    Ok(fetched)
}

// ---- The two resolvers ----

#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    commands: usize,
    round_trips: usize,
}

/// What a popup shows, as both layouts can tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Popup {
    campaign: u64,
    title: String,
    image_url: String,
    action_url: String,
}

fn meta_field<'m>(meta: &'m HashMap<String, String>, field: &str) -> &'m str {
    meta.get(field).map_or("", String::as_str)
}

/// The seed's resolve: candidates, one pipeline of reads per candidate, then the first that passes.
async fn resolve_seed(
    conn: &mut MultiplexedConnection,
    uid: u32,
    now: i64,
) -> anyhow::Result<(Option<Popup>, Cost)> {
    let ids: Vec<String> = redis::cmd("ZREVRANGE").arg(SEED_ACTIVE).arg(0).arg(-1).query_async(conn).await?;
    let mut cost = Cost { commands: 1, round_trips: 1 };
    if ids.is_empty() {
        return Ok((None, cost));
    }
    let impressions = format!("user:{uid}:impressions");
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HGETALL").arg(format!("campaign:{id}:meta"));
        pipe.cmd("GETBIT").arg(format!("campaign:{id}:users")).arg(uid);
        pipe.cmd("HGET").arg(&impressions).arg(id);
    }
    let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    cost.commands += 3 * ids.len();
    cost.round_trips += 1;
    ensure!(replies.len() == 3 * ids.len(), "expected {} replies, got {}", 3 * ids.len(), replies.len());
    let mut replies = replies.into_iter();
    for id in &ids {
        let (Some(meta), Some(bit), Some(count)) = (replies.next(), replies.next(), replies.next()) else {
            bail!("missing replies");
        };
        let meta: HashMap<String, String> = redis::from_redis_value(meta)?;
        if meta.is_empty() {
            continue;
        }
        // Time check.
        let start: i64 = meta_field(&meta, "start_time").parse()?;
        let end = meta_field(&meta, "end_time");
        if now < start || (!end.is_empty() && now >= end.parse::<i64>()?) {
            continue;
        }
        // Target check: a global campaign has no segment; otherwise the customer's bit decides.
        if !meta_field(&meta, "target_segment").is_empty() && redis::from_redis_value::<u8>(bit)? != 1 {
            continue;
        }
        // Cap check.
        let max: u32 = meta_field(&meta, "max_frequency").parse()?;
        let shown = redis::from_redis_value::<Option<u32>>(count)?.unwrap_or(0);
        if max > 0 && shown >= max {
            continue;
        }
        let popup = Popup {
            campaign: id.parse()?,
            title: meta_field(&meta, "title").into(),
            image_url: meta_field(&meta, "image_url").into(),
            action_url: meta_field(&meta, "action_url").into(),
        };
        return Ok((Some(popup), cost));
    }
    Ok((None, cost))
}

#[derive(Debug)]
struct Ours {
    keys: KeySpace,
    /// The cached catalog, as the origin and the edge hold it between versions.
    catalog: Catalog,
    now: Timestamp,
    context: RequestContext,
}

/// Our resolve's Redis part: one pipeline of the core's plan.
async fn ours_inputs(
    conn: &mut MultiplexedConnection,
    ours: &Ours,
    uid: u32,
) -> anyhow::Result<(UserId, UserState, Cost)> {
    let user = user_id(uid)?;
    let plan = ResolvePlan::new(&ours.keys, &user, ours.now, Some(ours.catalog.version()));
    let inputs = plan.read(run_core(conn, plan.commands()).await?)?;
    ensure!(matches!(inputs.catalog, CatalogStatus::Current), "the catalog changed: {:?}", inputs.catalog);
    Ok((user, inputs.user, Cost { commands: plan.commands().len(), round_trips: 1 }))
}

#[derive(Clone, Debug)]
enum Resolver {
    Seed { now: i64 },
    Ours(Arc<Ours>),
}

impl Resolver {
    fn name(&self) -> &'static str {
        match self {
            Resolver::Seed { .. } => "seed",
            Resolver::Ours(_) => "ours",
        }
    }

    /// The chosen campaign's id, 0 for none.
    async fn resolve(&self, conn: &mut MultiplexedConnection, uid: u32) -> anyhow::Result<(u64, Cost)> {
        match self {
            Resolver::Seed { now } => {
                let (popup, cost) = resolve_seed(conn, uid, *now).await?;
                Ok((popup.map_or(0, |p| p.campaign), cost))
            }
            Resolver::Ours(ours) => {
                let (user, state, cost) = ours_inputs(conn, ours, uid).await?;
                let subject = Subject { user: &user, state: &state, context: &ours.context, now: ours.now };
                let decision = resolve(&ours.catalog, &subject);
                Ok((decision.chosen.map_or(0, |s| s.campaign.id.0), cost))
            }
        }
    }
}

/// Resolves the first `count` customers of the sequence with both layouts, one at a time, and requires the
/// same popup from both. Returns a description of the decisions (from the product's explanation).
async fn compare_sample(
    conn: &mut MultiplexedConnection,
    ours: &Ours,
    count: usize,
    customers: u32,
) -> anyhow::Result<String> {
    let mut shown = 0;
    let mut skips: BTreeMap<&'static str, u64> = BTreeMap::new();
    for index in 0..count {
        let uid = customer(index, customers);
        let (seed, _) = resolve_seed(conn, uid, ours.now.seconds()).await?;
        let (user, state, _) = ours_inputs(conn, ours, uid).await?;
        let subject = Subject { user: &user, state: &state, context: &ours.context, now: ours.now };
        let decision = explain(&ours.catalog, &subject);
        let product = decision.chosen.map(|s| Popup {
            campaign: s.campaign.id.0,
            title: s.creative.title.clone(),
            image_url: s.creative.image_url.clone().unwrap_or_default(),
            action_url: s.creative.action_url.clone().unwrap_or_default(),
        });
        ensure!(seed == product, "customer {uid}: the seed shows {seed:?}, ours {product:?}");
        shown += u64::from(product.is_some());
        for (_, skip) in &decision.trace {
            if *skip != Skip::LowerPriority {
                *skips.entry(skip.code()).or_default() += 1;
            }
        }
    }
    let skipped: Vec<String> = skips.iter().map(|(code, n)| format!("{code} {n}")).collect();
    Ok(format!(
        "{count} customers, same popup from both: {:.1} % shown a popup; campaigns skipped before the decision: {}",
        100.0 * shown as f64 / count.max(1) as f64,
        skipped.join(", ")
    ))
}

#[derive(Debug)]
struct Run {
    resolves: usize,
    commands: u64,
    round_trips: u64,
    /// Commands Redis counted (`INFO commandstats`) during the run.
    counted: u64,
    redis_cpu_seconds: f64,
    /// This process's CPU: the resolver, its connection and the runtime.
    own_cpu_seconds: f64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    decisions: Vec<u64>,
}

impl Run {
    fn per_resolve(&self, total: f64) -> f64 {
        total / self.resolves as f64
    }

    fn rate(&self) -> f64 {
        self.resolves as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let rank = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies.get(rank.min(self.latencies.len().saturating_sub(1))).copied().unwrap_or_default()
    }

    fn monthly_bill(&self) -> f64 {
        self.per_resolve(self.counted as f64) * BILLED_RESOLVES_PER_SECOND * SECONDS_PER_MONTH / 100_000.0
            * PRICE_PER_100K_COMMANDS
    }
}

async fn timed(
    conn: &MultiplexedConnection,
    admin: &mut MultiplexedConnection,
    resolver: &Resolver,
    args: &Args,
) -> anyhow::Result<Run> {
    let (resolves, customers) = (args.resolves, args.customers);
    let before = snapshot(admin).await?;
    let own_before = own_cpu_seconds()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (mut conn, resolver, next) = (conn.clone(), resolver.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= resolves {
                    break;
                }
                let began = Instant::now();
                let (campaign, cost) = resolver.resolve(&mut conn, customer(index, customers)).await?;
                done.push((index, campaign, cost, began.elapsed()));
            }
            anyhow::Ok(done)
        }));
    }
    let mut run = Run {
        resolves,
        commands: 0,
        round_trips: 0,
        counted: 0,
        redis_cpu_seconds: 0.0,
        own_cpu_seconds: 0.0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(resolves),
        decisions: vec![0; resolves],
    };
    for task in tasks {
        for (index, campaign, cost, latency) in task.await?? {
            run.commands += cost.commands as u64;
            run.round_trips += cost.round_trips as u64;
            run.latencies.push(latency);
            if let Some(slot) = run.decisions.get_mut(index) {
                *slot = campaign;
            }
        }
    }
    run.elapsed = started.elapsed();
    run.own_cpu_seconds = own_cpu_seconds()? - own_before;
    let after = snapshot(admin).await?;
    run.counted = after.calls - before.calls;
    run.redis_cpu_seconds = after.cpu_seconds - before.cpu_seconds;
    run.latencies.sort_unstable();
    ensure!(
        run.counted == run.commands,
        "{}: the resolver sent {} commands, Redis counted {}",
        resolver.name(),
        run.commands,
        run.counted
    );
    Ok(run)
}

// ---- Output ----

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// This process's CPU seconds so far (user + system, all threads), from `/proc/self/stat` in clock ticks
/// of 1/100 s (Linux's `USER_HZ`).
fn own_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name, in parentheses, may hold spaces: count fields after its closing one.
    let rest = stat.rsplit_once(')').context("unexpected /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

struct Row {
    k: usize,
    seed: Run,
    ours: Run,
    seed_memory: f64,
    ours_memory: f64,
}

fn print_table(rows: &[Row]) {
    println!(
        "| K | layout | commands / resolve (resolver = INFO commandstats) | round trips | Redis CPU / resolve | \
         resolver CPU / resolve | resolves/s | p50 | p99 | Redis memory / targeted customer | monthly bill at 10k resolves/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        for (name, run, memory) in
            [("seed", &row.seed, row.seed_memory), ("ours", &row.ours, row.ours_memory)]
        {
            println!(
                "| {} | {name} | {:.2} | {:.2} | {:.2} µs | {:.1} µs | {} | {} | {} | {:.1} B | ${} |",
                row.k,
                run.per_resolve(run.counted as f64),
                run.per_resolve(run.round_trips as f64),
                run.per_resolve(run.redis_cpu_seconds) * 1e6,
                run.per_resolve(run.own_cpu_seconds) * 1e6,
                thousands(run.rate()),
                ms(run.percentile(0.50)),
                ms(run.percentile(0.99)),
                memory,
                thousands(run.monthly_bill()),
            );
        }
        let (s, o) = (&row.seed, &row.ours);
        let ratio =
            |ours: f64, seed: f64| if seed > 0.0 { format!("{:.3}", ours / seed) } else { "-".into() };
        println!(
            "| {} | ours/seed | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.k,
            ratio(o.per_resolve(o.counted as f64), s.per_resolve(s.counted as f64)),
            ratio(o.per_resolve(o.round_trips as f64), s.per_resolve(s.round_trips as f64)),
            ratio(o.per_resolve(o.redis_cpu_seconds), s.per_resolve(s.redis_cpu_seconds)),
            ratio(o.per_resolve(o.own_cpu_seconds), s.per_resolve(s.own_cpu_seconds)),
            ratio(o.rate(), s.rate()),
            ratio(o.percentile(0.50).as_secs_f64(), s.percentile(0.50).as_secs_f64()),
            ratio(o.percentile(0.99).as_secs_f64(), s.percentile(0.99).as_secs_f64()),
            ratio(row.ours_memory, row.seed_memory),
            ratio(o.monthly_bill(), s.monthly_bill()),
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.customers > 0 && args.resolves > 0 && args.concurrency > 0, "nothing to measure");
    let mut ks = args.campaigns.clone();
    ks.sort_unstable();
    ks.dedup();
    let max_k = ks.last().copied().context("no K given")?;
    let client = redis::Client::open(args.redis_url.as_str())?;
    // Bulk loads and K = 200 on a busy machine outlast redis-rs's default 500 ms response timeout.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    let mut admin = client.get_multiplexed_async_connection_with_config(&config).await?;
    let resolves_conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let mut sample_conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let keys = KeySpace::new(PREFIX, DAY_OFFSET)?;
    let now = Timestamp(chrono::Utc::now().timestamp());
    let specs = specs(max_k, now.seconds());
    let load_before = loadavg();

    // Every K uses all the segments, so our targeting data is the same at every K.
    for &k in &ks {
        let used = specs.iter().take(k).filter_map(|s| s.segment).collect::<std::collections::BTreeSet<_>>();
        ensure!(
            used.len() == SEGMENTS.len(),
            "K = {k} uses {} of the {} segments",
            used.len(),
            SEGMENTS.len()
        );
    }

    // Memory: each layout's targeting data alone in an empty Redis.
    flush(&mut admin).await?;
    let empty = data_memory(&mut admin).await?;
    let started = Instant::now();
    let targeted = load_ours_members(&mut admin, &keys, args.customers).await?;
    let ours_targeting = data_memory(&mut admin).await? - empty;
    println!(
        "loaded our memberships of {} customers ({targeted} in a segment) in {:.1} s",
        args.customers,
        started.elapsed().as_secs_f64()
    );
    ensure!(targeted > 0, "no customer is in a segment");
    let bitmaps = bitmaps(args.customers);
    flush(&mut admin).await?;
    let empty = data_memory(&mut admin).await?;
    let mut seed_targeting = BTreeMap::new();
    let mut loaded = 0;
    for &k in &ks {
        load_seed_bitmaps(&mut admin, specs.get(loaded..k).context("K out of range")?, &bitmaps).await?;
        loaded = k;
        seed_targeting.insert(k, data_memory(&mut admin).await? - empty);
    }

    // Both layouts together, for the runs.
    flush(&mut admin).await?;
    let started = Instant::now();
    load_ours_members(&mut admin, &keys, args.customers).await?;
    let orders: Vec<Vec<&Spec>> = ks
        .iter()
        .map(|&k| {
            let mut order: Vec<&Spec> = specs.iter().take(k).collect();
            order.sort_by_key(|spec| (std::cmp::Reverse(spec.priority), spec.id));
            order
        })
        .collect();
    load_ours_counters(&mut admin, &keys, &specs, &orders, args.customers, now).await?;
    load_seed_bitmaps(&mut admin, &specs, &bitmaps).await?;
    load_seed_meta(&mut admin, &specs).await?;
    load_seed_impressions(&mut admin, &specs, &orders, args.customers, now.seconds()).await?;
    let keys_loaded: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await?;
    println!("loaded both layouts ({keys_loaded} keys) in {:.1} s", started.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    for (round, &k) in ks.iter().enumerate() {
        let live = specs.get(..k).context("K out of range")?;
        activate_seed(&mut admin, live).await?;
        let segments = SEGMENTS.iter().map(|&(id, version, _)| (SegmentId(id), version)).collect();
        let catalog = Catalog::build(CatalogParts {
            version: round as u64 + 1,
            campaigns: live.iter().map(product_campaign).collect(),
            segments,
            ..CatalogParts::default()
        })?;
        let catalog = publish_ours(&mut admin, &keys, &catalog).await?;
        let ours = Arc::new(Ours { keys: keys.clone(), catalog, now, context: RequestContext::default() });
        let sample = compare_sample(&mut sample_conn, &ours, args.sample, args.customers).await?;
        println!("K={k} sample: {sample}");
        let seed = timed(&resolves_conn, &mut admin, &Resolver::Seed { now: now.seconds() }, &args).await?;
        let ours = timed(&resolves_conn, &mut admin, &Resolver::Ours(ours), &args).await?;
        let differ = seed.decisions.iter().zip(&ours.decisions).filter(|(s, o)| s != o).count();
        ensure!(differ == 0, "K={k}: {differ} of {} timed resolves decided differently", args.resolves);
        let shown = ours.decisions.iter().filter(|&&c| c != 0).count();
        println!(
            "K={k}: {} timed resolves per layout decided alike ({:.1} % shown a popup); commands sent / counted \
             by INFO commandstats: seed {} / {}, ours {} / {}; seed {:.1} s, ours {:.1} s",
            args.resolves,
            100.0 * shown as f64 / args.resolves as f64,
            seed.commands,
            seed.counted,
            ours.commands,
            ours.counted,
            seed.elapsed.as_secs_f64(),
            ours.elapsed.as_secs_f64()
        );
        let seed_memory = seed_targeting.get(&k).copied().unwrap_or_default() / targeted as f64;
        rows.push(Row { k, seed, ours, seed_memory, ours_memory: ours_targeting / targeted as f64 });
    }

    println!();
    println!(
        "{} customers ({targeted} targeted, in at least one of {} segments), {} resolves per layout and K, \
         {} in flight over one multiplexed connection; load average {load_before} before, {} after",
        args.customers,
        SEGMENTS.len(),
        args.resolves,
        args.concurrency,
        loadavg()
    );
    println!(
        "memory: each layout's targeting data alone in an empty Redis (used_memory less client buffers), per \
         targeted customer; seed: the campaign:<id>:users bitmaps of the K campaigns, ours: the P:u:{{uid}} \
         membership hashes (the same at every K)"
    );
    println!(
        "bill: commands per resolve x {} resolves/s x 30 days at ${PRICE_PER_100K_COMMANDS} per 100,000 \
         commands (Upstash pay-as-you-go)",
        thousands(BILLED_RESOLVES_PER_SECOND)
    );
    println!();
    print_table(&rows);
    println!();
    let first = rows.iter().find(|r| r.k == 10).or(rows.first()).context("no measurement")?;
    println!(
        "layout K={}: commands seed/ours {:.2}, throughput ours/seed {:.2}",
        first.k,
        first.seed.counted as f64 / first.ours.counted as f64,
        first.ours.rate() / first.seed.rate()
    );
    Ok(())
}
