//! Choosing the popup.
//!
//! Campaigns are tried in catalog order; the first one the customer is eligible for wins. For each campaign
//! the checks run in this order, and the first that fails is the reason it was skipped:
//!
//! 1. schedule: [`Skip::NotStarted`], [`Skip::Ended`], [`Skip::OutsideWindow`]
//! 2. [`Skip::BudgetExhausted`]
//! 3. [`Skip::WrongPlacement`], then the request rules ([`Skip::RuleMismatch`])
//! 4. audience: [`Skip::NotInAudience`], [`Skip::Excluded`]. Membership counts only for a segment's current
//!    version in the catalog. An included segment without one matches nobody; an excluded segment without
//!    one excludes everybody (fail closed: nothing proves the customer is not in it).
//! 5. this campaign's caps: [`Skip::TotalCap`], [`Skip::DailyCap`], [`Skip::Interval`]
//! 6. [`Skip::GlobalDailyCap`]
//! 7. the variant: a customer bucketed into a control variant is a [`Skip::Holdout`], and resolution goes
//!    on to the next campaign, so the holdout sees what they would have seen had the campaign not existed.
//!
//! Campaigns after the winner are [`Skip::LowerPriority`]. [`resolve`] stops at the winner; [`explain`]
//! evaluates every campaign and returns the full trace for the admin preview. Both share one evaluation, so
//! the preview never disagrees with what is served.
//!
//! # While Redis is being restored
//!
//! After Redis lost its data, the catalog lists what is not written back yet ([`Catalog::restoring`]). A
//! check that needs it cannot be decided: a segment being restored (in step 4, unless the customer's
//! membership of another segment already decides), the campaign's counters when it has caps (step 5), or
//! today's totals when there is a global daily cap (step 6). Such a campaign is [`Skip::Restoring`] and
//! resolution **stops** there with no popup: the customer may be excluded, capped or entitled to it, and a
//! lower-priority campaign would be a guess. Later campaigns are [`Skip::LowerPriority`]. Nothing shown is
//! the safe answer; a popup to an opted-out customer is not.
//!
//! # Caps and offers in flight
//!
//! Caps count recorded impressions: the event script ([`crate::store::EVENT_SCRIPT`]) bumps the counters
//! when the app posts an impression, and a resolve only reads them. A resolve cannot reserve a slot, since
//! one round trip per resolve is a hard design constraint, so several resolves answered before the first
//! impression is recorded can each offer the same campaign. An offer is *in flight* from the resolve that
//! answers it until its impression is recorded (or the app drops it for good). The guarantee, for the
//! lifetime cap, the daily cap and the global daily cap alike: recorded impressions never exceed a cap when
//! each offer's impression is recorded before the next resolve; with k offers in flight at once, by at most
//! k-1. Likewise the minimum interval allows at most k impressions, rather than one, in any span of
//! `min_interval_seconds`. An offer whose impression is never posted counts toward nothing.
//!
//! The budget is coarser: it is checked against the served count the catalog carries, which is only as
//! fresh as the catalog, so a campaign can serve past its budget until the next catalog is published.

#[cfg(feature = "openapi")]
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::bucket;
use crate::campaign::{Campaign, Creative, Include, Variant, DEFAULT_VARIANT};
use crate::catalog::Catalog;
use crate::context::{locale_matches, RequestContext};
use crate::ids::{CampaignId, SegmentId, Timestamp, UserId};
use crate::token::TokenClaims;
use crate::user::UserState;

/// Why a campaign was not shown. A new reason also goes in [`Skip::ALL`], so that [`Skip::from_code`]
/// knows it and the tests demand a case for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    NotStarted,
    Ended,
    OutsideWindow,
    BudgetExhausted,
    WrongPlacement,
    RuleMismatch(Rule),
    NotInAudience,
    Excluded,
    TotalCap,
    DailyCap,
    Interval,
    GlobalDailyCap,
    /// What the campaign's checks need is still being restored into Redis; resolution stops here.
    Restoring,
    Holdout,
    LowerPriority,
}

impl Skip {
    /// Every reason, each rule mismatch included, in the order the checks run.
    pub const ALL: [Skip; 18] = [
        Skip::NotStarted,
        Skip::Ended,
        Skip::OutsideWindow,
        Skip::BudgetExhausted,
        Skip::WrongPlacement,
        Skip::RuleMismatch(Rule::Platform),
        Skip::RuleMismatch(Rule::AppVersion),
        Skip::RuleMismatch(Rule::Country),
        Skip::RuleMismatch(Rule::Locale),
        Skip::NotInAudience,
        Skip::Excluded,
        Skip::TotalCap,
        Skip::DailyCap,
        Skip::Interval,
        Skip::GlobalDailyCap,
        Skip::Restoring,
        Skip::Holdout,
        Skip::LowerPriority,
    ];

    /// A stable snake_case code for the reason, as the admin API reports it: `rule_mismatch` for every
    /// rule, whose name [`Rule::as_str`] gives separately.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::NotStarted => "not_started",
            Skip::Ended => "ended",
            Skip::OutsideWindow => "outside_window",
            Skip::BudgetExhausted => "budget_exhausted",
            Skip::WrongPlacement => "wrong_placement",
            Skip::RuleMismatch(_) => "rule_mismatch",
            Skip::NotInAudience => "not_in_audience",
            Skip::Excluded => "excluded",
            Skip::TotalCap => "total_cap",
            Skip::DailyCap => "daily_cap",
            Skip::Interval => "interval",
            Skip::GlobalDailyCap => "global_daily_cap",
            Skip::Restoring => "restoring",
            Skip::Holdout => "holdout",
            Skip::LowerPriority => "lower_priority",
        }
    }

    /// The reason with this [`code`](Skip::code); `rule_mismatch` needs its rule, other codes ignore it.
    pub fn from_code(code: &str, rule: Option<Rule>) -> Option<Skip> {
        Skip::ALL.into_iter().find(|skip| match skip {
            Skip::RuleMismatch(r) => code == skip.code() && rule == Some(*r),
            _ => code == skip.code(),
        })
    }
}

/// Which request rule did not match.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Platform,
    AppVersion,
    Country,
    Locale,
}

impl Rule {
    /// The rule's snake_case name, the same its serde form uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Platform => "platform",
            Rule::AppVersion => "app_version",
            Rule::Country => "country",
            Rule::Locale => "locale",
        }
    }
}

/// Who asks, from where, and when.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub user: &'a UserId,
    pub state: &'a UserState,
    pub context: &'a RequestContext,
    pub now: Timestamp,
}

/// The campaign and variant chosen for a customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection<'c> {
    pub campaign: &'c Campaign,
    /// The variant's key: [`DEFAULT_VARIANT`] for a campaign without variants.
    pub variant: &'c str,
    pub creative: &'c Creative,
}

impl Selection<'_> {
    /// What the impression token of this popup, served to `user` at `now`, asserts. `nonce` comes from the
    /// adapter's randomness: the core draws none.
    pub fn token_claims(&self, user: &UserId, now: Timestamp, nonce: u64) -> TokenClaims {
        TokenClaims {
            user: user.clone(),
            campaign: self.campaign.id,
            variant: self.variant.into(),
            issued_at: now,
            nonce,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision<'c> {
    pub chosen: Option<Selection<'c>>,
    /// Campaigns whose control variant held this customer out before the winner, with the variant key:
    /// adapters record these exposures so lift can be measured against them.
    pub holdouts: Vec<(CampaignId, &'c str)>,
    /// Every other campaign with the reason it was skipped; filled by [`explain`] only.
    pub trace: Vec<(CampaignId, Skip)>,
}

/// The popup for `subject`, if any. Stops at the first eligible campaign.
pub fn resolve<'c>(catalog: &'c Catalog, subject: &Subject<'_>) -> Decision<'c> {
    evaluate(catalog, subject, false)
}

/// Like [`resolve`], and also the reason each other campaign was skipped.
pub fn explain<'c>(catalog: &'c Catalog, subject: &Subject<'_>) -> Decision<'c> {
    evaluate(catalog, subject, true)
}

fn evaluate<'c>(catalog: &'c Catalog, subject: &Subject<'_>, trace: bool) -> Decision<'c> {
    let mut decision = Decision::default();
    // Set by a winner, or by a campaign that cannot be decided yet: either way nothing below it is shown.
    let mut decided = false;
    for campaign in catalog.campaigns() {
        if decided {
            if !trace {
                break;
            }
            decision.trace.push((campaign.id, Skip::LowerPriority));
            continue;
        }
        match check(catalog, campaign, subject) {
            Ok(Offer::Show(selection)) => {
                decision.chosen = Some(selection);
                decided = true;
            }
            Ok(Offer::HoldOut(variant)) => {
                decision.holdouts.push((campaign.id, variant));
                if trace {
                    decision.trace.push((campaign.id, Skip::Holdout));
                }
            }
            Err(skip) => {
                decided = skip == Skip::Restoring;
                if trace {
                    decision.trace.push((campaign.id, skip));
                }
            }
        }
    }
    decision
}

enum Offer<'c> {
    Show(Selection<'c>),
    HoldOut(&'c str),
}

fn check<'c>(catalog: &'c Catalog, campaign: &'c Campaign, subject: &Subject<'_>) -> Result<Offer<'c>, Skip> {
    check_schedule(catalog, campaign, subject.now)?;
    if let Some(budget) = campaign.budget {
        if catalog.served(campaign.id) >= budget {
            return Err(Skip::BudgetExhausted);
        }
    }
    check_placement(campaign, subject.context)?;
    check_rules(campaign, subject.context)?;
    check_audience(catalog, campaign, subject.state)?;
    let restoring = catalog.restoring();
    if campaign.caps.any() && restoring.counters.contains(&campaign.id) {
        return Err(Skip::Restoring);
    }
    check_caps(campaign, subject)?;
    if let Some(limit) = catalog.settings().max_popups_per_day {
        if restoring.daily_totals {
            return Err(Skip::Restoring);
        }
        if subject.state.shown_today >= limit {
            return Err(Skip::GlobalDailyCap);
        }
    }
    Ok(choose_variant(campaign, subject.user))
}

fn check_schedule(catalog: &Catalog, campaign: &Campaign, now: Timestamp) -> Result<(), Skip> {
    let schedule = &campaign.schedule;
    if now < schedule.start {
        return Err(Skip::NotStarted);
    }
    if schedule.end.is_some_and(|end| now >= end) {
        return Err(Skip::Ended);
    }
    if schedule.windows.is_empty() {
        return Ok(());
    }
    // Catalog::build and decode guarantee the zone is present; a missing one fails closed.
    let zone =
        schedule.time_zone.as_deref().and_then(|name| catalog.zone(name)).ok_or(Skip::OutsideWindow)?;
    let local = zone.local(now);
    let inside = |window: &crate::campaign::Window| {
        let minute = local.time;
        if window.start < window.end {
            window.days.contains(&local.weekday) && window.start <= minute && minute < window.end
        } else {
            // Overnight: the part after start belongs to the listed day, the part before end to the next.
            (window.days.contains(&local.weekday) && minute >= window.start)
                || (window.days.contains(&local.weekday.previous()) && minute < window.end)
        }
    };
    if schedule.windows.iter().any(inside) {
        Ok(())
    } else {
        Err(Skip::OutsideWindow)
    }
}

fn check_placement(campaign: &Campaign, context: &RequestContext) -> Result<(), Skip> {
    if campaign.placements.is_empty() {
        return Ok(());
    }
    // A campaign that names placements shows only where the app says it is asking from.
    match &context.placement {
        Some(placement) if campaign.placements.iter().any(|p| p.eq_ignore_ascii_case(placement)) => Ok(()),
        _ => Err(Skip::WrongPlacement),
    }
}

fn check_rules(campaign: &Campaign, context: &RequestContext) -> Result<(), Skip> {
    let rules = &campaign.rules;
    let mismatch = |rule| Err(Skip::RuleMismatch(rule));
    if !rules.platforms.is_empty() && !context.platform.is_some_and(|p| rules.platforms.contains(&p)) {
        return mismatch(Rule::Platform);
    }
    if let Some(range) = &rules.app_version {
        if !context.app_version.is_some_and(|v| range.contains(v)) {
            return mismatch(Rule::AppVersion);
        }
    }
    if !rules.countries.is_empty()
        && !context
            .country
            .as_deref()
            .is_some_and(|c| rules.countries.iter().any(|r| r.eq_ignore_ascii_case(c)))
    {
        return mismatch(Rule::Country);
    }
    if !rules.locales.is_empty()
        && !context.locale.as_deref().is_some_and(|l| rules.locales.iter().any(|r| locale_matches(r, l)))
    {
        return mismatch(Rule::Locale);
    }
    Ok(())
}

fn check_audience(catalog: &Catalog, campaign: &Campaign, state: &UserState) -> Result<(), Skip> {
    let member = |segment| state.is_member(segment, catalog.segment_version(segment));
    let restoring = |segment: &SegmentId| catalog.restoring().segments.contains(segment);
    let audience = &campaign.audience;
    if let Include::AnyOf(segments) = &audience.include {
        // A segment without a current version lists nobody, so it adds no one to the audience; one being
        // restored may list the customer, so only a membership found elsewhere decides.
        if !segments.iter().copied().any(member) {
            return Err(if segments.iter().any(restoring) { Skip::Restoring } else { Skip::NotInAudience });
        }
    }
    // Fails closed: without a current version of an excluded segment (never uploaded, or dropped from the
    // catalog) nothing proves the customer is not in it, and showing a campaign to a customer who opted
    // out is worse than not showing it to one who did not.
    let excluded =
        |segment| (catalog.segment_version(segment).is_none() && !restoring(&segment)) || member(segment);
    if audience.exclude.iter().copied().any(excluded) {
        return Err(Skip::Excluded);
    }
    if audience.exclude.iter().any(restoring) {
        return Err(Skip::Restoring);
    }
    Ok(())
}

fn check_caps(campaign: &Campaign, subject: &Subject<'_>) -> Result<(), Skip> {
    let caps = &campaign.caps;
    let counters = subject.state.counters(campaign.id);
    if caps.lifetime.is_some_and(|cap| counters.lifetime >= cap) {
        return Err(Skip::TotalCap);
    }
    if caps.per_day.is_some_and(|cap| counters.today >= cap) {
        return Err(Skip::DailyCap);
    }
    if let (Some(interval), Some(last)) = (caps.min_interval_seconds, counters.last_shown) {
        if subject.now.seconds() < last.seconds().saturating_add(i64::from(interval)) {
            return Err(Skip::Interval);
        }
    }
    Ok(())
}

/// The control variant that holds `user` out of a campaign with these variants, if any: the assignment the
/// resolver makes, for attributing a held-out customer's conversion to the control arm.
pub fn control_variant<'v>(campaign: CampaignId, variants: &'v [Variant], user: &UserId) -> Option<&'v str> {
    let index = bucket::choose(campaign, user, variants.iter().map(|v| v.weight))?;
    variants.get(index).filter(|v| v.control).map(|v| v.key.as_str())
}

fn choose_variant<'c>(campaign: &'c Campaign, user: &UserId) -> Offer<'c> {
    let base = |variant| Offer::Show(Selection { campaign, variant, creative: &campaign.creative });
    if campaign.variants.is_empty() {
        return base(DEFAULT_VARIANT);
    }
    let weights = campaign.variants.iter().map(|v| v.weight);
    // Validation guarantees a positive total; an invalid catalog falls back to the base creative.
    let Some(variant) = bucket::choose(campaign.id, user, weights).and_then(|i| campaign.variants.get(i))
    else {
        return base(DEFAULT_VARIANT);
    };
    offer(campaign, variant)
}

fn offer<'c>(campaign: &'c Campaign, variant: &'c Variant) -> Offer<'c> {
    if variant.control {
        return Offer::HoldOut(&variant.key);
    }
    let creative = variant.creative.as_ref().unwrap_or(&campaign.creative);
    Offer::Show(Selection { campaign, variant: &variant.key, creative })
}
