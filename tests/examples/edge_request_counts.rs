//! Counts, at the gateway, the HTTP requests and Redis commands the edge sends per warm resolve, per event,
//! and per resolve after the catalog changed: the figures behind the edge's budget (one request of at most
//! three commands per warm resolve, one request per event).
//!
//! It starts a stack of its own (see `popup_tests::Stack`: build the origin and the edge first), loads the
//! demo campaigns and segments from `demo/`, then measures `N` customers (default 50):
//!
//! ```sh
//! cargo build -p popup-origin && scripts/build-edge
//! cargo run -p popup-tests --example edge_request_counts -- 50
//! ```
//!
//! Then it measures the CPU time `workerd` (the runtime under `wrangler dev`) spends per warm resolve: the
//! user and system time of every `workerd` process in the edge's process group, read from `/proc` before
//! and after `N` × 20 sequential resolves. That includes workerd's HTTP handling and the JavaScript glue as
//! well as the wasm, so it is an upper bound of the worker's own CPU.
//!
//! It prints one line per operation and, last, the same figures as one JSON object.

use anyhow::{bail, Context as _};
use popup_tests::{workspace_root, GatewayCounts, Side, Stack, StatusCode};
use serde_json::{json, Value};

/// Totals over several measured operations.
#[derive(Default)]
struct Tally {
    operations: u64,
    requests: u64,
    commands: u64,
    max_requests: u64,
    max_commands: u64,
}

impl Tally {
    fn add(&mut self, counts: &GatewayCounts) {
        self.operations += 1;
        self.requests += counts.requests();
        self.commands += counts.commands();
        self.max_requests = self.max_requests.max(counts.requests());
        self.max_commands = self.max_commands.max(counts.commands());
    }

    fn mean(total: u64, operations: u64) -> f64 {
        if operations == 0 {
            0.0
        } else {
            total as f64 / operations as f64
        }
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<28} {:>5.2} HTTP requests (max {}), {:>5.2} Redis commands (max {}), over {}",
            Tally::mean(self.requests, self.operations),
            self.max_requests,
            Tally::mean(self.commands, self.operations),
            self.max_commands,
            self.operations
        )
    }

    fn json(&self) -> Value {
        json!({
            "operations": self.operations,
            "requests_per_operation": Tally::mean(self.requests, self.operations),
            "commands_per_operation": Tally::mean(self.commands, self.operations),
            "max_requests": self.max_requests,
            "max_commands": self.max_commands,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let customers: u64 = match std::env::args().nth(1) {
        Some(raw) => raw.parse().with_context(|| format!("{raw:?} is not a number of customers"))?,
        None => 50,
    };
    let stack = Stack::start().await?;

    // The demo's segments and campaigns: a catalog like the product's.
    stack.upload_segment("vip", "demo-0001\ndemo-0002\ndemo-0003\n").await?;
    stack.upload_segment("opted-out", "demo-0004\n").await?;
    let demo = workspace_root().join("demo").join("campaigns.json");
    let campaigns: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&demo).with_context(|| format!("reading {}", demo.display()))?,
    )?;
    let mut live = Vec::new();
    for spec in &campaigns {
        live.push(stack.live_campaign(spec).await?);
    }

    // The first resolve after a catalog change also fetches the catalog.
    let (_, cold) = stack.counted(stack.popup(Side::Edge, "user_id=bench-warmup")).await?;
    let mut cold_tally = Tally::default();
    cold_tally.add(&cold);

    let mut resolves = Tally::default();
    let mut events = Tally::default();
    for n in 0..customers {
        let query = format!("user_id=bench-{n}&placement=home&platform=ios&app_version=5.2.0&locale=id-ID");
        let (popup, counts) = stack.counted(stack.popup(Side::Edge, &query)).await?;
        let popup = popup?;
        resolves.add(&counts);
        if popup.status == StatusCode::OK {
            let (Some(campaign), Some(token)) = (popup.campaign(), popup.token()) else {
                bail!("a popup without campaign or token: {}", popup.body);
            };
            let user = format!("bench-{n}");
            let (event, counts) =
                stack.counted(stack.event(Side::Edge, campaign, "impression", &user, token)).await?;
            let event = event?;
            if event.status != StatusCode::ACCEPTED {
                bail!("the impression was refused: {} {}", event.status, event.body);
            }
            events.add(&counts);
        }
    }

    // A catalog change: the next resolve reads the new catalog, the one after is warm again.
    if let Some(first) = live.first() {
        stack.transition(*first, "pause").await?;
        let (_, counts) = stack.counted(stack.popup(Side::Edge, "user_id=bench-after-change")).await?;
        cold_tally.add(&counts);
    }

    let cpu = workerd_cpu_per_resolve(&stack, customers * 20).await?;

    println!("{}", resolves.line("warm resolve"));
    println!("{}", events.line("event (impression)"));
    println!(
        "{:<28} {:>5.3} ms of workerd CPU (user + system) per warm resolve, over {} sequential resolves",
        "workerd CPU", cpu.per_resolve_ms, cpu.resolves
    );
    println!("{}", cold_tally.line("resolve, catalog changed"));
    println!(
        "{}",
        json!({
            "warm_resolve": resolves.json(),
            "event": events.json(),
            "resolve_after_catalog_change": cold_tally.json(),
            "workerd_cpu_ms_per_warm_resolve": cpu.per_resolve_ms,
            "workerd_cpu_resolves": cpu.resolves,
            "workerd_cpu_ms_per_trivial_request": cpu.baseline_ms,
        })
    );
    Ok(())
}

struct CpuPerResolve {
    resolves: u64,
    per_resolve_ms: f64,
    /// Per request the worker answers without work (an unknown route): workerd's and wrangler's share.
    baseline_ms: f64,
}

/// CPU seconds (user + system) of the `workerd` processes in the edge's process group, from `/proc`.
fn workerd_cpu_seconds(group: u32) -> anyhow::Result<f64> {
    let ticks_per_second = 100.0; // USER_HZ, fixed at 100 on Linux for /proc
    let mut ticks = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        // Fields after the command name, which is in parentheses and may contain spaces.
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        if !head.ends_with("(workerd") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): pgrp is field 5, utime 14, stime 15.
        let (Some(pgrp), Some(utime), Some(stime)) = (fields.get(2), fields.get(11), fields.get(12)) else {
            continue;
        };
        if pgrp.parse::<u32>().ok() != Some(group) {
            continue;
        }
        found = true;
        ticks += utime.parse::<u64>()? + stime.parse::<u64>()?;
    }
    if !found {
        bail!("no workerd process in the edge's process group {group}");
    }
    Ok(ticks as f64 / ticks_per_second)
}

async fn workerd_cpu_per_resolve(stack: &Stack, resolves: u64) -> anyhow::Result<CpuPerResolve> {
    let group = stack.process_group("edge").context("the stack has no edge")?;
    let query = "user_id=demo-0001&placement=home&platform=ios&app_version=5.2.0&locale=id-ID";
    // Warm the isolate and its catalog first.
    for _ in 0..20 {
        stack.popup(Side::Edge, query).await?;
    }
    let before = workerd_cpu_seconds(group)?;
    for n in 0..resolves {
        let reply = stack.popup(Side::Edge, &format!("user_id=cpu-{n}&placement=home&platform=ios")).await?;
        if reply.status != StatusCode::OK && reply.status != StatusCode::NO_CONTENT {
            bail!("resolve {n} failed: {} {}", reply.status, reply.body);
        }
    }
    let spent = workerd_cpu_seconds(group)? - before;
    // The same number of requests the worker answers at once (404, no Redis), for workerd's own share.
    let before = workerd_cpu_seconds(group)?;
    for _ in 0..resolves {
        stack.request(Side::Edge, popup_tests::Method::GET, "/v1/nothing", None, None).await?;
    }
    let baseline = workerd_cpu_seconds(group)? - before;
    Ok(CpuPerResolve {
        resolves,
        per_resolve_ms: spent * 1000.0 / resolves as f64,
        baseline_ms: baseline * 1000.0 / resolves as f64,
    })
}
