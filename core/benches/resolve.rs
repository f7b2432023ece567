//! Resolve over 10, 100 and 1,000 live campaigns, decoding the catalog, and reading a resolve's replies.
//!
//! Run with `scripts/bench-core` (or `cargo bench -p popup-core --bench resolve`).
//!
//! The catalog and the customer are `fixture/`'s. Two cases per size:
//! - `first_match`: the customer is eligible for a campaign early in the order (the common case).
//! - `full_scan`: the customer is eligible for nothing, so every campaign is checked (the worst case).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use popup_core::catalog::Catalog;
use popup_core::resolve::{resolve, Subject};
use popup_core::store::{KeySpace, Reply, ResolvePlan};

mod fixture;
use fixture::{catalog, customer, device, user_state, NOW};

fn bench_resolve(c: &mut Criterion) {
    let user = customer();
    let context = device();
    let mut group = c.benchmark_group("resolve");
    for size in [10u64, 100, 1000] {
        let catalog = catalog(size);
        for (case, eligible) in [("first_match", true), ("full_scan", false)] {
            let state = user_state(eligible);
            let subject = Subject { user: &user, state: &state, context: &context, now: NOW };
            let chosen = resolve(&catalog, &subject).chosen.is_some();
            assert_eq!(
                chosen,
                eligible,
                "{case} over {size} must {} choose",
                if eligible { "" } else { "not" }
            );
            group.bench_with_input(BenchmarkId::new(case, size), &size, |b, _| {
                b.iter(|| resolve(black_box(&catalog), black_box(&subject)))
            });
        }
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog_decode");
    for size in [10u64, 100, 1000] {
        let json = catalog(size).encode();
        group.throughput(criterion::Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &json, |b, json| {
            b.iter(|| Catalog::decode(black_box(json.as_bytes())).unwrap())
        });
    }
    group.finish();
}

fn bench_read_replies(c: &mut Criterion) {
    let keys = KeySpace::new("popup", 7 * 3600).unwrap();
    let user = customer();
    let plan = ResolvePlan::new(&keys, &user, NOW, Some(1));
    let bulk = |s: String| Reply::Bulk(s.into_bytes());
    // Ten segment memberships and five campaigns' counters.
    let mut user_hash = Vec::new();
    for s in 0..10 {
        user_hash.extend([bulk(format!("s:{s}")), bulk("1".into())]);
    }
    for campaign in 0..5 {
        user_hash.extend([
            bulk(format!("n:{campaign}")),
            bulk("2".into()),
            bulk(format!("t:{campaign}")),
            bulk("1767200000".into()),
        ]);
    }
    let day_hash = vec![bulk("n:1".into()), bulk("1".into()), bulk("all".into()), bulk("1".into())];
    let replies = vec![bulk("1".into()), Reply::Array(user_hash), Reply::Array(day_hash)];
    c.bench_function("resolve_replies_decode", |b| b.iter(|| plan.read(black_box(replies.clone())).unwrap()));
}

criterion_group!(benches, bench_resolve, bench_decode, bench_read_replies);
criterion_main!(benches);
