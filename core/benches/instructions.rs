//! The core's share of one popup request, for counting instructions under callgrind (`scripts/bench-instructions`),
//! a figure that does not move with machine noise. Not a criterion benchmark: it runs one measured function
//! a given number of times, and the script has callgrind count only inside that function.
//!
//! `cargo bench -p popup-core --bench instructions -- <request|resolve> <first_match|full_scan> <campaigns> <times>`
//!
//! - `request`: everything the edge and the origin ask of the core for one request with a current cached
//!   catalog: parse the query, plan the pipeline, read its three replies, resolve, sign the impression
//!   token and encode the JSON answer. Only the I/O is left out.
//! - `resolve`: the resolution alone, as in `benches/resolve.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use popup_core::catalog::Catalog;
use popup_core::resolve::{resolve, Subject};
use popup_core::store::{FlowStep, KeySpace, Reply, ResolveFlow};
use popup_core::token::Secrets;
use popup_core::user::UserState;
use popup_core::wire::{PopupQuery, PopupResponse};

mod fixture;
use fixture::{catalog, customer, device, user_state, NOW};

const QUERY: [(&str, &str); 5] = [
    ("user_id", "cust-0012345"),
    ("placement", "home"),
    ("platform", "android"),
    ("app_version", "5.2.0"),
    ("locale", "id-ID"),
];

fn bulk(text: String) -> Reply {
    Reply::Bulk(text.into_bytes())
}

/// What Redis answers to a resolve's pipeline for this customer: their hash, today's hash, and the version
/// of the catalog the process holds.
fn replies(state: &UserState, version: u64) -> Vec<Reply> {
    let mut user = Vec::new();
    for ((segment, parity), listed) in &state.segments {
        user.extend([bulk(format!("s:{}:{parity}", segment.0)), bulk(listed.to_string())]);
    }
    let mut today = vec![bulk("all".into()), bulk(state.shown_today.to_string())];
    for (campaign, counters) in &state.campaigns {
        user.extend([bulk(format!("n:{}", campaign.0)), bulk(counters.lifetime.to_string())]);
        if let Some(shown) = counters.last_shown {
            user.extend([bulk(format!("t:{}", campaign.0)), bulk(shown.0.to_string())]);
        }
        today.extend([bulk(format!("n:{}", campaign.0)), bulk(counters.today.to_string())]);
    }
    vec![Reply::Array(user), Reply::Array(today), bulk(version.to_string())]
}

struct Request {
    keys: KeySpace,
    catalog: Arc<Catalog>,
    secrets: Secrets,
    replies: Vec<Reply>,
}

/// One request's work in the core; returns the body it would answer (None for 204).
#[inline(never)]
fn measured_request(request: &Request) -> Option<String> {
    let query = PopupQuery::parse(QUERY).unwrap();
    let user = query.user.unwrap();
    let flow = ResolveFlow::new(&request.keys, &user, NOW, Some(request.catalog.clone()));
    let _pipeline = black_box(flow.commands());
    let FlowStep::Resolve(ready) = flow.read(request.replies.clone()).unwrap() else {
        panic!("the cached catalog is current");
    };
    let decision = resolve(
        &ready.catalog,
        &Subject { user: &user, state: &ready.user, context: &query.context, now: NOW },
    );
    let selection = decision.chosen?;
    let token = request.secrets.issue(&selection.token_claims(&user, NOW, 42)).unwrap();
    Some(serde_json::to_string(&PopupResponse::new(&selection, token)).unwrap())
}

#[inline(never)]
fn measured_resolve(catalog: &Catalog, subject: &Subject<'_>) -> bool {
    resolve(catalog, subject).chosen.is_some()
}

fn main() {
    // `cargo bench` passes `--bench`; the arguments that matter are the last four.
    let args: Vec<String> = std::env::args().filter(|arg| !arg.starts_with("--")).skip(1).collect();
    let [what, case, size, times] = args.as_slice() else {
        eprintln!("usage: instructions <request|resolve> <first_match|full_scan> <campaigns> <times>");
        std::process::exit(2);
    };
    let eligible = match case.as_str() {
        "first_match" => true,
        "full_scan" => false,
        other => panic!("unknown case {other}"),
    };
    let size: u64 = size.parse().unwrap();
    let times: u32 = times.parse().unwrap();
    let catalog = Arc::new(catalog(size));
    let state = user_state(eligible);
    match what.as_str() {
        "request" => {
            let request = Request {
                keys: KeySpace::new("popup", 7 * 3600).unwrap(),
                replies: replies(&state, catalog.version()),
                catalog,
                secrets: Secrets::new("bench-token-secret-0123456789abcdef0123", "", 86_400).unwrap(),
            };
            assert_eq!(measured_request(&request).is_some(), eligible, "{case} over {size}");
            for _ in 0..times {
                black_box(measured_request(black_box(&request)));
            }
        }
        "resolve" => {
            let (user, context) = (customer(), device());
            let subject = Subject { user: &user, state: &state, context: &context, now: NOW };
            assert_eq!(measured_resolve(&catalog, &subject), eligible, "{case} over {size}");
            for _ in 0..times {
                black_box(measured_resolve(black_box(&catalog), black_box(&subject)));
            }
        }
        other => panic!("unknown measure {other}"),
    }
}
