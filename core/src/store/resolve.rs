//! The Redis side of one resolve: the pipeline of [`ResolvePlan`] (the customer's two hashes and the
//! catalog, or only its version while the adapter holds the current one), one round trip whatever the
//! number of campaigns; and [`ResolveFlow`], which carries a resolve from the adapter's cached catalog to
//! the inputs of [`crate::resolve::resolve`], saying when the catalog must be fetched first.
//!
//! An adapter runs the flow the same way at the edge and at the origin:
//!
//! ```text
//! let flow = ResolveFlow::new(keys, user, now, cached);
//! let replies = send_pipeline(flow.commands());
//! let ready = match flow.read(replies)? {
//!     FlowStep::Resolve(ready) => ready,          // the warm path: one round trip
//!     FlowStep::Fetch(fetch) => {                 // the catalog moved: one more
//!         let reply = send(fetch.command());
//!         fetch.read(reply)?
//!     }
//! };
//! if ready.fetched { cache(ready.catalog.clone()) }
//! ```

use alloc::vec::Vec;
use core::ops::Deref;

use super::keys::KeySpace;
use super::{exact, hash_pairs, Command, Reply, StoreError};
use crate::catalog::Catalog;
use crate::ids::{CampaignId, SegmentId, Timestamp, UserId};
use crate::user::UserState;

pub fn fetch_catalog(keys: &KeySpace) -> Command {
    Command::new(["GET", &keys.catalog()])
}

/// Decodes the reply to [`fetch_catalog`]; None when Redis has no catalog.
pub fn read_catalog(reply: Reply) -> Result<Option<Catalog>, StoreError> {
    match reply {
        Reply::Nil => Ok(None),
        Reply::Bulk(json) => Ok(Some(Catalog::decode(&json)?)),
        Reply::Error(message) => Err(StoreError::Redis { command: "GET catalog", message }),
        _ => Err(StoreError::UnexpectedReply("GET catalog")),
    }
}

/// What a resolve learnt about the catalog.
#[derive(Debug)]
pub enum CatalogStatus {
    /// The cached catalog is current.
    Current,
    /// Redis holds another version: fetch it with [`fetch_catalog`].
    Stale { version: u64 },
    /// Nothing was cached, and this is the catalog Redis holds.
    Fetched(Catalog),
    /// Redis holds no catalog: no campaign is live.
    Absent,
}

#[derive(Debug)]
pub struct ResolveInputs {
    pub catalog: CatalogStatus,
    pub user: UserState,
}

/// The pipeline of one resolve.
#[derive(Clone, Debug)]
pub struct ResolvePlan {
    commands: [Command; 3],
    cached_version: Option<u64>,
}

impl ResolvePlan {
    /// `cached_version` is the version of the catalog the adapter holds in memory, if any.
    pub fn new(keys: &KeySpace, user: &UserId, now: Timestamp, cached_version: Option<u64>) -> ResolvePlan {
        let catalog_read = match cached_version {
            Some(_) => Command::new(["GET", &keys.catalog_version()]),
            None => fetch_catalog(keys),
        };
        // The catalog is read last. Redis runs a pipeline's commands in order, so if a flush lands between
        // them, the customer's hashes may be read after it but the catalog then is read after it too and is
        // gone: an old catalog is never paired with memberships read from an emptied Redis.
        let commands = [
            Command::new(["HGETALL", &keys.user(user)]),
            Command::new(["HGETALL", &keys.user_day(user, keys.day(now))]),
            catalog_read,
        ];
        ResolvePlan { commands, cached_version }
    }

    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    pub fn read(&self, replies: Vec<Reply>) -> Result<ResolveInputs, StoreError> {
        let [user, today, catalog] = exact::<3>(replies)?;
        let catalog = match self.cached_version {
            None => read_catalog(catalog)?.map_or(CatalogStatus::Absent, CatalogStatus::Fetched),
            Some(cached) => match catalog {
                Reply::Nil => CatalogStatus::Absent,
                reply => match parse_version(&reply)? {
                    version if version == cached => CatalogStatus::Current,
                    version => CatalogStatus::Stale { version },
                },
            },
        };
        let mut state = UserState::default();
        for (field, value) in hash_pairs(user, "HGETALL user")? {
            read_user_field(&mut state, &field, &value);
        }
        for (field, value) in hash_pairs(today, "HGETALL user day")? {
            read_day_field(&mut state, &field, &value);
        }
        Ok(ResolveInputs { catalog, user: state })
    }
}

/// One resolve's exchange with Redis, as a state machine: [`ResolveFlow::commands`] is the pipeline to send
/// first, and [`ResolveFlow::read`] says what comes next. `C` is how the adapter shares a catalog between
/// requests (`Rc<Catalog>` in a worker's isolate, `Arc<Catalog>` at the origin).
#[derive(Debug)]
pub struct ResolveFlow<'k, C> {
    keys: &'k KeySpace,
    plan: ResolvePlan,
    cached: Option<C>,
}

/// What a resolve does after a reply.
#[derive(Debug)]
pub enum FlowStep<C> {
    /// Everything is known: resolve with it.
    Resolve(Ready<C>),
    /// The cached catalog is stale: send [`CatalogFetch::command`] and hand its reply to
    /// [`CatalogFetch::read`].
    Fetch(CatalogFetch),
}

/// The inputs of a resolve.
#[derive(Debug)]
pub struct Ready<C> {
    pub catalog: C,
    pub user: UserState,
    /// The catalog was just read from Redis: the adapter keeps it for the next resolves. False for the
    /// cached catalog, and for the empty one that stands in when Redis holds none (the next resolve asks
    /// again).
    pub fetched: bool,
}

/// The second step of a resolve whose cached catalog is stale: one `GET` of the catalog.
#[derive(Debug)]
pub struct CatalogFetch {
    command: Command,
    user: UserState,
}

impl<'k, C: Deref<Target = Catalog> + From<Catalog>> ResolveFlow<'k, C> {
    /// `cached` is the catalog the adapter holds in memory, if any: while it is current, a resolve is one
    /// round trip and reads only the catalog's version.
    pub fn new(keys: &'k KeySpace, user: &UserId, now: Timestamp, cached: Option<C>) -> ResolveFlow<'k, C> {
        let plan = ResolvePlan::new(keys, user, now, cached.as_ref().map(|catalog| catalog.version()));
        ResolveFlow { keys, plan, cached }
    }

    /// The pipeline to send first.
    pub fn commands(&self) -> &[Command] {
        self.plan.commands()
    }

    /// Reads the replies to [`ResolveFlow::commands`].
    pub fn read(self, replies: Vec<Reply>) -> Result<FlowStep<C>, StoreError> {
        let ResolveInputs { catalog, user } = self.plan.read(replies)?;
        let (catalog, fetched) = match (catalog, self.cached) {
            (CatalogStatus::Current, Some(cached)) => (cached, false),
            (CatalogStatus::Fetched(catalog), _) => (C::from(catalog), true),
            (CatalogStatus::Absent, _) => (C::from(Catalog::empty()), false),
            // Current without a cached catalog cannot come from a plan built here; fetching is right anyway.
            (CatalogStatus::Stale { .. } | CatalogStatus::Current, _) => {
                return Ok(FlowStep::Fetch(CatalogFetch { command: fetch_catalog(self.keys), user }));
            }
        };
        Ok(FlowStep::Resolve(Ready { catalog, user, fetched }))
    }
}

impl CatalogFetch {
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// Reads the reply to [`CatalogFetch::command`]. A catalog deleted since the pipeline read its version
    /// (Redis lost its data) is no catalog: nothing is shown.
    pub fn read<C: From<Catalog>>(self, reply: Reply) -> Result<Ready<C>, StoreError> {
        let (catalog, fetched) = match read_catalog(reply)? {
            Some(catalog) => (catalog, true),
            None => (Catalog::empty(), false),
        };
        Ok(Ready { catalog: C::from(catalog), user: self.user, fetched })
    }
}

/// Unknown or malformed fields are ignored: a newer writer may add fields an older reader does not know.
fn read_user_field(state: &mut UserState, field: &str, value: &str) {
    let Some((kind, id)) = field.split_once(':') else {
        return;
    };
    let Ok(number) = value.parse::<i64>() else {
        return;
    };
    match kind {
        "s" => {
            let Some((segment, parity)) = id.split_once(':') else { return };
            if let (Ok(segment), Ok(parity), Ok(version)) =
                (segment.parse(), parity.parse(), u64::try_from(number))
            {
                state.segments.insert((SegmentId(segment), parity), version);
            }
        }
        "n" => {
            if let Ok(campaign) = id.parse() {
                state.campaigns.entry(CampaignId(campaign)).or_default().lifetime = clamp_count(number);
            }
        }
        "t" => {
            if let Ok(campaign) = id.parse() {
                state.campaigns.entry(CampaignId(campaign)).or_default().last_shown = Some(Timestamp(number));
            }
        }
        _ => {}
    }
}

fn read_day_field(state: &mut UserState, field: &str, value: &str) {
    let Ok(number) = value.parse::<i64>() else {
        return;
    };
    if field == "all" {
        state.shown_today = clamp_count(number);
    } else if let Some(Ok(campaign)) = field.strip_prefix("n:").map(str::parse) {
        state.campaigns.entry(CampaignId(campaign)).or_default().today = clamp_count(number);
    }
}

fn clamp_count(number: i64) -> u32 {
    u32::try_from(number.max(0)).unwrap_or(u32::MAX)
}

/// The catalog version Redis holds. Only the publish script writes it, from a u64 in canonical decimal;
/// anything else (negative, signed, not a number) means something else wrote the key, and must not be
/// read as some other version: `-1` cast to u64 would look like the newest catalog there is.
fn parse_version(reply: &Reply) -> Result<u64, StoreError> {
    const COMMAND: &str = "GET catalog:version";
    match reply {
        Reply::Int(n) => u64::try_from(*n).map_err(|_| StoreError::UnexpectedReply(COMMAND)),
        // Digits only: u64::from_str alone would also take `+7`.
        Reply::Bulk(bytes) if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) => {
            core::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(StoreError::UnexpectedReply(COMMAND))
        }
        Reply::Error(message) => Err(StoreError::Redis { command: COMMAND, message: message.clone() }),
        _ => Err(StoreError::UnexpectedReply(COMMAND)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogError;
    use crate::user::Counters;
    use alloc::rc::Rc;

    fn resolve_plan(cached_version: Option<u64>) -> ResolvePlan {
        let keys = KeySpace::new("p", 0).unwrap();
        ResolvePlan::new(&keys, &UserId::parse("u").unwrap(), Timestamp(0), cached_version)
    }

    fn read_version(reply: Reply) -> Result<ResolveInputs, StoreError> {
        resolve_plan(Some(7)).read(alloc::vec![Reply::Nil, Reply::Nil, reply])
    }

    #[test]
    fn catalog_versions_are_read_as_u64() {
        assert!(matches!(read_version(Reply::Bulk(b"7".to_vec())).unwrap().catalog, CatalogStatus::Current));
        assert!(matches!(read_version(Reply::Int(7)).unwrap().catalog, CatalogStatus::Current));
        assert!(matches!(
            read_version(Reply::Bulk(b"9007199254740992".to_vec())).unwrap().catalog,
            CatalogStatus::Stale { version: 9_007_199_254_740_992 }
        ));
        assert!(matches!(read_version(Reply::Nil).unwrap().catalog, CatalogStatus::Absent));
        let unexpected = Err(StoreError::UnexpectedReply("GET catalog:version"));
        // -1 must not wrap around to u64::MAX and read as a newer catalog.
        for bad in ["-1", "-7", "seven", "7.0", "", " 7", "+7", "18446744073709551616"] {
            assert_eq!(read_version(Reply::Bulk(bad.into())).map(|_| ()), unexpected, "{bad:?}");
        }
        assert_eq!(read_version(Reply::Int(-1)).map(|_| ()), unexpected);
        assert_eq!(read_version(Reply::Array(alloc::vec![])).map(|_| ()), unexpected);
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    fn hash(pairs: &[(&str, &str)]) -> Reply {
        Reply::Array(pairs.iter().flat_map(|&(field, value)| [bulk(field), bulk(value)]).collect())
    }

    fn error(message: &str) -> Reply {
        Reply::Error(message.into())
    }

    #[test]
    fn a_resolve_needs_exactly_three_replies() {
        for count in [0, 2, 4] {
            let replies = alloc::vec![Reply::Nil; count];
            assert_eq!(
                resolve_plan(Some(1)).read(replies).map(|_| ()),
                Err(StoreError::ReplyCount { expected: 3, got: count })
            );
        }
    }

    #[test]
    fn a_resolve_reports_error_replies_with_their_command() {
        let redis = |command, message: &str| Err(StoreError::Redis { command, message: message.into() });
        let cases = [
            (None, [Reply::Nil, Reply::Nil, error("LOADING")], redis("GET catalog", "LOADING")),
            (Some(1), [Reply::Nil, Reply::Nil, error("LOADING")], redis("GET catalog:version", "LOADING")),
            (Some(1), [error("WRONGTYPE"), Reply::Nil, bulk("1")], redis("HGETALL user", "WRONGTYPE")),
            (Some(1), [Reply::Nil, error("WRONGTYPE"), bulk("1")], redis("HGETALL user day", "WRONGTYPE")),
        ];
        for (cached, replies, expected) in cases {
            assert_eq!(resolve_plan(cached).read(replies.to_vec()).map(|_| ()), expected);
        }
    }

    #[test]
    fn a_resolve_refuses_replies_of_the_wrong_shape() {
        let unexpected = |command| Err(StoreError::UnexpectedReply(command));
        let odd = Reply::Array(alloc::vec![bulk("n:1"), bulk("2"), bulk("all")]);
        let cases = [
            (None, [Reply::Nil, Reply::Nil, Reply::Int(3)], unexpected("GET catalog")),
            (Some(1), [odd.clone(), Reply::Nil, bulk("1")], unexpected("HGETALL user")),
            (Some(1), [Reply::Nil, odd, bulk("1")], unexpected("HGETALL user day")),
            (Some(1), [bulk("n:1"), Reply::Nil, bulk("1")], unexpected("HGETALL user")),
            (Some(1), [Reply::Nil, Reply::Int(1), bulk("1")], unexpected("HGETALL user day")),
        ];
        for (cached, replies, expected) in cases {
            assert_eq!(resolve_plan(cached).read(replies.to_vec()).map(|_| ()), expected);
        }
        let garbage = resolve_plan(None).read(alloc::vec![Reply::Nil, Reply::Nil, bulk("{not json")]);
        assert!(matches!(garbage, Err(StoreError::Catalog(CatalogError::Malformed(_)))));
    }

    #[test]
    fn garbage_in_the_users_hashes_is_ignored() {
        let user = hash(&[
            ("n:1", "3"),
            ("t:1", "1767225600"),
            ("s:4:1", "5"),
            // Not numbers, out of range, unknown kinds, malformed ids: all skipped.
            ("n:2", "three"),
            ("n:3", "99999999999999999999"),
            ("t:2", "1e9"),
            ("t:3", ""),
            ("s:5:0", "-2"),
            ("s:6", "4"),
            ("s:x:1", "3"),
            ("n:", "1"),
            ("n:-1", "1"),
            ("x:1", "1"),
            ("plain", "1"),
            ("", ""),
        ]);
        let mut day =
            hash(&[("n:1", "2"), ("all", "-5"), ("n:4", "4294967296"), ("n:x", "1"), ("n:5", "NaN")]);
        if let Reply::Array(items) = &mut day {
            // Non-UTF-8 fields and values, and replies that are not strings, are skipped too.
            items.extend([Reply::Bulk(alloc::vec![0xff, 0xfe]), bulk("1"), bulk("n:6"), Reply::Nil]);
            items.extend([bulk("n:7"), Reply::Int(6)]);
        }
        let inputs = resolve_plan(Some(1)).read(alloc::vec![user, day, bulk("1")]).unwrap();
        let state = inputs.user;
        assert_eq!(
            state.counters(CampaignId(1)),
            Counters { lifetime: 3, today: 2, last_shown: Some(Timestamp(1_767_225_600)) }
        );
        // A count beyond u32 is clamped, never wrapped.
        assert_eq!(state.counters(CampaignId(4)).today, u32::MAX);
        assert_eq!(state.counters(CampaignId(7)).today, 6);
        assert_eq!(state.shown_today, 0, "a negative count reads as none");
        let known: alloc::vec::Vec<u64> = state.campaigns.keys().map(|c| c.0).collect();
        assert_eq!(known, [1, 4, 7]);
        assert_eq!(state.segments.len(), 1);
        assert!(state.is_member(SegmentId(4), Some(5)));
    }

    fn catalog(version: u64) -> Catalog {
        Catalog::build(crate::catalog::CatalogParts { version, ..Default::default() }).unwrap()
    }

    fn flow(keys: &KeySpace, cached: Option<Rc<Catalog>>) -> ResolveFlow<'_, Rc<Catalog>> {
        ResolveFlow::new(keys, &UserId::parse("u").unwrap(), Timestamp(0), cached)
    }

    /// The replies to a flow's pipeline: the customer has one lifetime impression of campaign 1.
    fn replies(catalog: Reply) -> Vec<Reply> {
        alloc::vec![hash(&[("n:1", "1")]), Reply::Nil, catalog]
    }

    fn ready(step: FlowStep<Rc<Catalog>>) -> Ready<Rc<Catalog>> {
        match step {
            FlowStep::Resolve(ready) => ready,
            FlowStep::Fetch(fetch) => panic!("expected to resolve, asked to send {:?}", fetch.command()),
        }
    }

    fn fetch(step: FlowStep<Rc<Catalog>>) -> CatalogFetch {
        match step {
            FlowStep::Fetch(fetch) => fetch,
            FlowStep::Resolve(ready) => panic!("expected a fetch, got catalog {}", ready.catalog.version()),
        }
    }

    #[test]
    fn a_current_cached_catalog_resolves_after_one_round_trip() {
        let keys = KeySpace::new("p", 0).unwrap();
        let cached = Rc::new(catalog(7));
        let flow = flow(&keys, Some(cached.clone()));
        assert_eq!(flow.commands()[2].args(), ["GET", "p:{catalog}:version"]);
        let ready = ready(flow.read(replies(bulk("7"))).unwrap());
        assert!(Rc::ptr_eq(&ready.catalog, &cached), "the cached catalog itself, not a copy");
        assert!(!ready.fetched);
        assert_eq!(ready.user.counters(CampaignId(1)).lifetime, 1);
    }

    #[test]
    fn a_stale_cached_catalog_is_fetched_in_a_second_step() {
        let keys = KeySpace::new("p", 0).unwrap();
        let newer = catalog(8);
        let step = flow(&keys, Some(Rc::new(catalog(7)))).read(replies(bulk("8"))).unwrap();
        let fetch = fetch(step);
        assert_eq!(fetch.command().args(), ["GET", "p:{catalog}"]);
        let ready: Ready<Rc<Catalog>> = fetch.read(bulk(&newer.encode())).unwrap();
        assert_eq!(*ready.catalog, newer);
        assert!(ready.fetched, "a fetched catalog is to be cached");
        assert_eq!(ready.user.counters(CampaignId(1)).lifetime, 1, "the customer's state carries over");
    }

    #[test]
    fn a_catalog_gone_by_the_second_step_shows_nothing_and_is_not_cached() {
        let keys = KeySpace::new("p", 0).unwrap();
        let fetch = fetch(flow(&keys, Some(Rc::new(catalog(7)))).read(replies(bulk("8"))).unwrap());
        let ready: Ready<Rc<Catalog>> = fetch.read(Reply::Nil).unwrap();
        assert_eq!(*ready.catalog, Catalog::empty());
        assert!(!ready.fetched);
        let fetch = self::fetch(flow(&keys, Some(Rc::new(catalog(7)))).read(replies(bulk("8"))).unwrap());
        assert_eq!(
            fetch.read::<Rc<Catalog>>(error("LOADING")).map(|_| ()),
            Err(StoreError::Redis { command: "GET catalog", message: "LOADING".into() })
        );
    }

    #[test]
    fn without_a_cached_catalog_the_pipeline_reads_the_catalog_itself() {
        let keys = KeySpace::new("p", 0).unwrap();
        let flow = flow(&keys, None);
        assert_eq!(flow.commands()[2].args(), ["GET", "p:{catalog}"]);
        let ready = ready(flow.read(replies(bulk(&catalog(3).encode()))).unwrap());
        assert_eq!(ready.catalog.version(), 3);
        assert!(ready.fetched);
    }

    #[test]
    fn no_catalog_in_redis_resolves_with_an_empty_one_and_keeps_the_cache() {
        let keys = KeySpace::new("p", 0).unwrap();
        for cached in [None, Some(Rc::new(catalog(7)))] {
            let ready = ready(flow(&keys, cached).read(replies(Reply::Nil)).unwrap());
            assert_eq!(*ready.catalog, Catalog::empty());
            assert!(!ready.fetched, "nothing to cache: the next resolve asks again");
        }
    }
}
