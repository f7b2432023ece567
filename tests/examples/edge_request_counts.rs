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
//! Last it measures the worker's own CPU without wrangler's proxies: `workerd` run directly (the binary
//! wrangler ships) with a config of two workers, ours against the stack's gateway and one that answers 204
//! with no work, each over `N` × 200 requests (10,000 by default) from a few connections; the CPU time of
//! that one `workerd` process, from `/proc`, per request. The difference between the two is what our
//! worker costs per warm resolve: wasm, the JavaScript glue, the outgoing request and its answer. A third
//! worker, in JavaScript, sends one small pipeline to the gateway and answers 204: what the platform's
//! subrequest costs by itself, so the rest is our wasm and its glue. A second copy of our worker runs with
//! `IDENTITY=jwt` (a key set served by this program, keys made here): its resolves carry an RS256, ES256 or
//! HS256 identity token per customer, so the CPU of verifying one shows beside the unverified resolve.
//!
//! With `BENCH_EDGE_INSPECTOR=127.0.0.1:9229` the directly run `workerd` serves V8's inspector there, and
//! before measuring it sends 30,000 warm resolves alone: a window in which to take a CPU profile of our
//! worker (`ws://127.0.0.1:9229/popup`, with DevTools or any client of the protocol's `Profiler` domain;
//! build with `EDGE_KEEP_NAMES=1` for the wasm's function names).
//!
//! It prints one line per operation and, last, the same figures as one JSON object.

use anyhow::{bail, Context as _};
use popup_tests::identity::{KeySetServer, SigningKey, AUDIENCE, ISSUER};
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
    let direct = direct_workerd_cpu(&stack, customers * 200).await?;

    println!("{}", resolves.line("warm resolve"));
    println!("{}", events.line("event (impression)"));
    println!(
        "{:<28} {:>5.3} ms of workerd CPU (user + system) per warm resolve, over {} sequential resolves",
        "workerd CPU", cpu.per_resolve_ms, cpu.resolves
    );
    println!(
        "{:<28} {:>5.3} ms per warm resolve, {:>5.3} ms per request to a no-op worker: {:.3} ms above it, \
         over {} requests each (workerd run directly)",
        "worker CPU",
        direct.resolve_ms,
        direct.noop_ms,
        direct.resolve_ms - direct.noop_ms,
        direct.requests
    );
    println!(
        "{:<28} {:>5.3} ms per request to a JavaScript worker sending one pipeline to the gateway: our wasm \
         and its glue cost {:.3} ms beyond the platform's subrequest",
        "",
        direct.subrequest_ms,
        direct.resolve_ms - direct.subrequest_ms
    );
    for (alg, ms) in &direct.verified_ms {
        println!(
            "{:<28} {:>5.3} ms per warm resolve with an {alg} identity token: {:.3} ms above the unverified one",
            format!("worker CPU, {alg}"),
            ms,
            ms - direct.resolve_ms
        );
    }
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
            "direct_workerd_requests": direct.requests,
            "direct_workerd_cpu_ms_per_warm_resolve": direct.resolve_ms,
            "direct_workerd_cpu_ms_per_noop_request": direct.noop_ms,
            "direct_workerd_cpu_ms_per_js_subrequest": direct.subrequest_ms,
            "direct_workerd_cpu_ms_per_verified_resolve": direct.verified_ms.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
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

/// CPU per request of `workerd` run directly: our worker's warm resolves beside a worker that does nothing.
struct DirectCpu {
    requests: u64,
    resolve_ms: f64,
    noop_ms: f64,
    /// A JavaScript worker that sends one pipeline to the gateway and answers 204.
    subrequest_ms: f64,
    /// Resolves with an identity token, by its algorithm.
    verified_ms: Vec<(&'static str, f64)>,
}

/// One GET, with an identity token or without.
#[derive(Clone)]
struct Get {
    url: String,
    bearer: Option<String>,
}

fn plain(urls: Vec<String>) -> Vec<Get> {
    urls.into_iter().map(|url| Get { url, bearer: None }).collect()
}

/// The identity provider of the `jwt`-mode worker: its key set, served here, and an HS256 secret.
struct Provider {
    keys: KeySetServer,
    rsa: SigningKey,
    p256: SigningKey,
    hs256_secret: String,
}

impl Provider {
    async fn start() -> anyhow::Result<Provider> {
        let (rsa, p256) = (SigningKey::rsa()?, SigningKey::p256()?);
        let keys = KeySetServer::start(json!({"keys": [rsa.jwk("r1"), p256.jwk("e1")]})).await?;
        Ok(Provider { keys, rsa, p256, hs256_secret: "a-benchmark-hs256-secret-of-32-bytes-or-more".into() })
    }

    /// A token for `user` signed with `alg`, valid for an hour.
    fn token(&self, alg: &str, user: &str) -> anyhow::Result<String> {
        let now = popup_tests::unix_now();
        let claims =
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": now, "nbf": now, "exp": now + 3600});
        match alg {
            "RS256" => self.rsa.sign(Some("r1"), &claims),
            "ES256" => self.p256.sign(Some("e1"), &claims),
            _ => Ok(popup_tests::identity::hs256(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &claims,
                Some(self.hs256_secret.as_bytes()),
            )),
        }
    }
}

/// CPU seconds (user + system, all threads) of one process, from `/proc/<pid>/stat`.
fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = stat.rsplit_once(") ").context("an unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else { bail!("a short /proc stat") };
    Ok((utime.parse::<u64>()? + stime.parse::<u64>()?) as f64 / 100.0)
}

/// A child process stopped when this is dropped, on every path out of the measurement.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A capnp string literal.
fn capnp_string(text: &str) -> String {
    format!("{text:?}")
}

/// The workerd config: our bundle with the stack's settings on one socket, the no-op worker on another, and
/// an outbound network limited to this machine (the gateway).
fn workerd_config(stack: &Stack, provider: &Provider, ports: [u16; 4]) -> String {
    let [popup_port, noop_port, subrequest_port, jwt_port] = ports;
    let vars = [
        ("REDIS_REST_URL", stack.gateway.as_str()),
        ("REDIS_REST_TOKEN", stack.gateway_token.as_str()),
        ("TOKEN_SECRET", stack.token_secret.as_str()),
        ("KEY_PREFIX", stack.prefix.as_str()),
        ("DAY_OFFSET", "+07:00"),
        ("REDIS_TIMEOUT_MS", "3000"),
        ("TOKEN_TTL_SECONDS", "86400"),
    ];
    let text = |(name, value): &(&str, &str)| {
        format!("(name = {}, text = {})", capnp_string(name), capnp_string(value))
    };
    let bindings: Vec<String> = vars.iter().map(text).collect();
    let identity = [
        ("IDENTITY", "jwt"),
        ("JWT_JWKS_URL", provider.keys.url.as_str()),
        ("JWT_HS256_SECRET", provider.hs256_secret.as_str()),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ];
    let jwt_bindings: Vec<String> = vars.iter().chain(identity.iter()).map(text).collect();
    // Our bundle, with these bindings: the plain worker and the `jwt` one differ only in them.
    let our_worker = |bindings: &[String]| {
        format!(
            r#"(
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2026-04-20",
  bindings = [{}],
  globalOutbound = "local",
)"#,
            bindings.join(", ")
        )
    };
    format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "popup", worker = .popup),
    (name = "noop", worker = .noop),
    (name = "subrequest", worker = .subrequest),
    (name = "popup_jwt", worker = .popupJwt),
    (name = "local", network = (allow = ["local", "private"])),
  ],
  sockets = [
    (name = "popup", address = "127.0.0.1:{popup_port}", http = (), service = "popup"),
    (name = "noop", address = "127.0.0.1:{noop_port}", http = (), service = "noop"),
    (name = "subrequest", address = "127.0.0.1:{subrequest_port}", http = (), service = "subrequest"),
    (name = "popup_jwt", address = "127.0.0.1:{jwt_port}", http = (), service = "popup_jwt"),
  ],
);
const popupJwt :Workerd.Worker = {jwt_worker};
const popup :Workerd.Worker = {popup_worker};
const noop :Workerd.Worker = (
  modules = [(name = "noop.js", esModule = embed "noop.js")],
  compatibilityDate = "2026-04-20",
);
const subrequest :Workerd.Worker = (
  modules = [(name = "subrequest.js", esModule = embed "subrequest.js")],
  compatibilityDate = "2026-04-20",
  bindings = [{bindings}],
  globalOutbound = "local",
);
"#,
        jwt_worker = our_worker(&jwt_bindings),
        popup_worker = our_worker(&bindings),
        bindings = bindings.join(", "),
    )
}

/// `requests` GETs of `urls` (taken in turn) over `connections` concurrent connections; each must answer
/// one of `expected`.
async fn load(gets: &[Get], requests: u64, connections: u64, expected: &[u16]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (client, gets, expected) = (client.clone(), gets.to_vec(), expected.to_vec());
        workers.push(tokio::spawn(async move {
            let mut n = worker;
            while n < requests {
                let get = &gets[(n as usize) % gets.len()];
                let mut request = client.get(&get.url);
                if let Some(token) = &get.bearer {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
                let status = response.status().as_u16();
                if !expected.contains(&status) {
                    bail!("{} answered {status}: {}", get.url, response.text().await.unwrap_or_default());
                }
                n += connections;
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

async fn direct_workerd_cpu(stack: &Stack, requests: u64) -> anyhow::Result<DirectCpu> {
    const CONNECTIONS: u64 = 4;
    const ROUNDS: u64 = 5;
    let dir = stack.dir().join("workerd");
    std::fs::create_dir_all(&dir)?;
    let bundle = popup_tests::edge_bundle()?;
    std::fs::copy(&bundle, dir.join("index.js"))?;
    std::fs::copy(bundle.with_file_name("index_bg.wasm"), dir.join("index_bg.wasm"))?;
    std::fs::write(
        dir.join("noop.js"),
        "export default { fetch() { return new Response(null, { status: 204 }); } };\n",
    )?;
    std::fs::write(
        dir.join("subrequest.js"),
        "export default { async fetch(request, env) {\n\
         \x20 const reply = await fetch(env.REDIS_REST_URL + '/pipeline', { method: 'POST',\n\
         \x20   headers: { authorization: 'Bearer ' + env.REDIS_REST_TOKEN }, body: '[[\"PING\"]]' });\n\
         \x20 await reply.text();\n\
         \x20 return new Response(null, { status: reply.ok ? 204 : 502 });\n\
         } };\n",
    )?;
    let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
    let [popup_port, noop_port, subrequest_port, jwt_port] = ports;
    let provider = Provider::start().await?;
    std::fs::write(dir.join("config.capnp"), workerd_config(stack, &provider, ports))?;
    let binary = workspace_root().join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    let log = std::fs::File::create(dir.join("workerd.log"))?;
    let inspector = std::env::var("BENCH_EDGE_INSPECTOR").ok();
    let workerd = Stopped(
        std::process::Command::new(&binary)
            .current_dir(&dir)
            .args(["serve", "config.capnp"])
            .args(inspector.iter().map(|address| format!("--inspector-addr={address}")))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let pid = workerd.0.id();

    let popup_base = format!("http://127.0.0.1:{popup_port}");
    let noop = plain(vec![format!("http://127.0.0.1:{noop_port}/")]);
    let subrequest = plain(vec![format!("http://127.0.0.1:{subrequest_port}/")]);
    let warm = format!("{popup_base}/v1/campaigns/popup?user_id=demo-0001&placement=home&platform=ios");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(&warm).await {
            if response.status() == StatusCode::OK || response.status() == StatusCode::NO_CONTENT {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !ready {
        let log = std::fs::read_to_string(dir.join("workerd.log")).unwrap_or_default();
        bail!("workerd run directly did not answer a resolve within 30 s:\n{log}");
    }
    // A thousand customers, so counters and memberships vary as in real traffic; the catalog stays cached.
    let resolves = plain(
        (0..1000)
            .map(|n| {
                format!("{popup_base}/v1/campaigns/popup?user_id=cpu-direct-{n}&placement=home&platform=ios")
            })
            .collect(),
    );
    // The same customers, named by their identity tokens.
    let jwt_url = format!("http://127.0.0.1:{jwt_port}/v1/campaigns/popup?placement=home&platform=ios");
    let mut verified = Vec::new();
    for alg in ["RS256", "ES256", "HS256"] {
        let gets = (0..1000)
            .map(|n| {
                let bearer = provider.token(alg, &format!("cpu-direct-{n}"))?;
                Ok(Get { url: jwt_url.clone(), bearer: Some(bearer) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        verified.push((alg, gets));
    }
    // Warm-up, as long as a measurement: V8 compiles hot wasm and JavaScript again, optimised, on other
    // threads of the same process, and after only a few hundred requests that work still lands in the
    // measured CPU (the first worker measured showed up to 0.1 ms per request more than it does warm).
    let warm_up = requests;
    load(&resolves, warm_up, CONNECTIONS, &[200, 204]).await?;
    load(&noop, warm_up, CONNECTIONS, &[204]).await?;
    load(&subrequest, warm_up, CONNECTIONS, &[204]).await?;
    for (alg, gets) in &verified {
        if let Err(error) = load(gets, warm_up, CONNECTIONS, &[200, 204]).await {
            let log = std::fs::read_to_string(dir.join("workerd.log")).unwrap_or_default();
            bail!("{alg} resolves failed: {error:#}\nworkerd's log:\n{log}");
        }
    }

    if let Some(address) = &inspector {
        // A window of resolves only, for a CPU profile taken through the inspector (DevTools' Profiler).
        eprintln!("profile window: 30000 warm resolves now; the worker's inspector is ws://{address}/popup");
        load(&resolves, 30_000, CONNECTIONS, &[200, 204]).await?;
        eprintln!("profile window ended");
    }
    // Measured in rounds, each worker in turn, so that drift on the machine (another process, the clock,
    // a collection) spreads over all of them instead of landing on whichever ran at that moment.
    let mut rows: Vec<(&[Get], &[u16])> =
        vec![(&noop, &[204]), (&subrequest, &[204]), (&resolves, &[200, 204])];
    rows.extend(verified.iter().map(|(_, gets)| (gets.as_slice(), &[200u16, 204][..])));
    let mut seconds = vec![0.0; rows.len()];
    let per_round = requests / ROUNDS;
    for _ in 0..ROUNDS {
        for ((gets, expected), spent) in rows.iter().zip(seconds.iter_mut()) {
            let before = process_cpu_seconds(pid)?;
            load(gets, per_round, CONNECTIONS, expected).await?;
            *spent += process_cpu_seconds(pid)? - before;
        }
    }
    let measured = per_round * ROUNDS;
    let ms = |spent: f64| spent * 1000.0 / measured as f64;
    let verified_ms =
        verified.iter().zip(&seconds[3..]).map(|((alg, _), spent)| (*alg, ms(*spent))).collect();
    drop(workerd);
    Ok(DirectCpu {
        requests: measured,
        resolve_ms: ms(seconds[2]),
        noop_ms: ms(seconds[0]),
        subrequest_ms: ms(seconds[1]),
        verified_ms,
    })
}
