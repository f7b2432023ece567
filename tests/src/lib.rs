//! End-to-end tests of the whole system through its public interfaces.
//!
//! [`Stack::start`] runs one isolated copy of the product, the way it runs in production, from the built
//! artifacts:
//!
//! - a fresh Postgres database `e2e_<unique>` on the server at `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the stack is dropped;
//! - the origin (`popup-origin serve`) and the gateway (`popup-origin gateway`) over the Redis at
//!   `REDIS_URL` (default `redis://127.0.0.1:6379`), in its logical database [`REDIS_DATABASE`], under a
//!   key prefix of their own;
//! - the edge worker under `wrangler dev`, configured with the gateway's URL and token, the origin's token
//!   secret, key prefix and day offset.
//!
//! Every service listens on a loopback port the system picks (port 0); the stack reads the address each
//! one logs, then waits until the origin is ready (`/readyz`), the gateway answers `PING`, and the edge
//! answers a popup request through the gateway.
//!
//! Each stack has random secrets, so nothing leaks between tests running in parallel. Children run in
//! process groups of their own (wrangler starts `workerd`), are stopped when the stack is dropped, and are
//! killed by a watchdog if the test process dies without dropping it. Their output goes to log files under
//! the OS temp directory; when a test fails, the tail of each is printed and the files are kept.
//!
//! # What must be built first
//!
//! - The origin binary: `cargo build -p popup-origin`. It is looked up at `POPUP_ORIGIN_BIN` if set, else
//!   next to the test executable (`<target>/debug/popup-origin`), else under `CARGO_TARGET_DIR` or the
//!   workspace's `target/`.
//! - The edge bundle: `scripts/build-edge` (it writes `edge/build/` and installs wrangler with npm).
//!
//! The edge runs from a copy of the repository's `wrangler.toml` written next to the stack's logs, with
//! `main` pointing at the bundle and without the `[build]` step, so starting a stack never rebuilds the
//! worker (parallel tests would race on `edge/build/`) and never picks up a developer's `.dev.vars`. The
//! secrets go to that directory's `.dev.vars`, the other settings to `--var`. The platform's request
//! metadata (`request.cf`) comes from a file the stack writes, with the country [`EDGE_COUNTRY`]: wrangler
//! reads the `request.cf` object it gives the worker from the file `CLOUDFLARE_CF_FETCH_PATH` names (its
//! cache of Cloudflare's answer, which it would otherwise fetch from the internet). The origin reads the
//! country from the trusted header [`ORIGIN_COUNTRY_HEADER`], which the stack sends with the same country.

pub mod identity;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context as _};
pub use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The UTC offset at which days start, for the origin and the edge alike.
pub const DAY_OFFSET: &str = "+07:00";

/// The country the edge's platform metadata reports for every request.
pub const EDGE_COUNTRY: &str = "ID";

/// The trusted header the stack's origin reads the country from (`POPUP_COUNTRY_HEADER`); the stack sends
/// it with [`EDGE_COUNTRY`] on the origin's popup requests, as a proxy in front of the origin would, so
/// both sides see the same country.
pub const ORIGIN_COUNTRY_HEADER: &str = "CF-IPCountry";

/// The trusted header the stack's origin reads the client's address from (`POPUP_CLIENT_ADDRESS_HEADER`),
/// the one Cloudflare sets and the edge reads.
pub const CLIENT_ADDRESS_HEADER: &str = "CF-Connecting-IP";

/// How long a request of the edge may wait for the gateway. Above the production default (300 ms), so a
/// loaded test machine running many stacks at once does not turn slow answers into 503s.
pub const EDGE_REDIS_TIMEOUT_MS: u64 = 3000;

const ORIGIN_READY_TIMEOUT: Duration = Duration::from_secs(60);
const GATEWAY_READY_TIMEOUT: Duration = Duration::from_secs(30);
const EDGE_READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_GRACE: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 60;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The `popup-origin` binary: `POPUP_ORIGIN_BIN` if set, else the first that exists of: next to the test
/// executable, `$CARGO_TARGET_DIR/debug`, the workspace's `target/debug`.
pub fn origin_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("POPUP_ORIGIN_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("POPUP_ORIGIN_BIN is {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    let root = workspace_root();
    let mut candidates = Vec::new();
    // The test executable is `<target>/<profile>/deps/<name>-<hash>`.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("popup-origin"));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(root.join(dir).join("debug").join("popup-origin"));
    }
    candidates.push(root.join("target").join("debug").join("popup-origin"));
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => {
            let sources =
                [&root.join("origin").join("src"), &root.join("core").join("src"), &root.join("migrations")];
            warn_if_stale(path, &sources.map(PathBuf::as_path));
            Ok(path.clone())
        }
        None => {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "the origin binary is not built: run `cargo build -p popup-origin` first, or set \
                 POPUP_ORIGIN_BIN (looked at {})",
                looked.join(", ")
            )
        }
    }
}

/// The edge bundle `wrangler dev` runs: `POPUP_EDGE_BUNDLE` if set (an `index.js` next to its
/// `index_bg.wasm`, e.g. another checkout's build), else the workspace's `edge/build/index.js`.
pub fn edge_bundle() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("POPUP_EDGE_BUNDLE") {
        let path = PathBuf::from(path);
        if !path.is_file() || !path.with_file_name("index_bg.wasm").is_file() {
            bail!("POPUP_EDGE_BUNDLE is {}, which is not an index.js next to index_bg.wasm", path.display());
        }
        return Ok(path);
    }
    let root = workspace_root();
    let build = root.join("edge").join("build");
    let entry = build.join("index.js");
    let wasm = build.join("index_bg.wasm");
    if !entry.is_file() || !wasm.is_file() {
        bail!("the edge is not built ({} is missing): run scripts/build-edge first", entry.display());
    }
    warn_if_stale(&wasm, &[&root.join("edge").join("src"), &root.join("core").join("src")]);
    Ok(entry)
}

/// The wrangler that `npx wrangler` would run: the project's own, from `package.json`.
pub fn wrangler_binary() -> anyhow::Result<PathBuf> {
    let path = workspace_root().join("node_modules").join(".bin").join("wrangler");
    if !path.is_file() {
        bail!(
            "wrangler is not installed ({} is missing): run scripts/build-edge (or npm ci)",
            path.display()
        );
    }
    Ok(path)
}

/// Says so on stderr when a file under `sources` is newer than `artifact`: the tests would run old code.
fn warn_if_stale(artifact: &Path, sources: &[&Path]) {
    let Ok(built) = fs::metadata(artifact).and_then(|m| m.modified()) else { return };
    if let Some(newer) = sources.iter().find_map(|dir| newer_file(dir, built)) {
        eprintln!(
            "warning: {} is older than {}: rebuild it, or the tests run old code",
            artifact.display(),
            newer.display()
        );
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn newer_file(path: &Path, than: SystemTime) -> Option<PathBuf> {
    let metadata = fs::metadata(path).ok()?;
    if metadata.is_file() {
        return metadata.modified().ok().filter(|m| *m > than).map(|_| path.to_path_buf());
    }
    fs::read_dir(path).ok()?.flatten().find_map(|entry| newer_file(&entry.path(), than))
}

/// Which public API a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Origin,
    Edge,
}

/// A campaign spec anyone may see, started long ago, as often as they like.
pub fn campaign(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "schedule": {"start": "2026-01-01T00:00:00Z"},
        "creative": {"title": format!("{name} title"), "body": "Body", "action_url": "bankapp://promo"}
    })
}

/// A response: its status and its body as JSON (`Null` when empty, a JSON string when it is not JSON).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The `WWW-Authenticate` header, if any.
    pub challenge: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Reply {
    /// The impression token of a popup, if the body has one.
    pub fn token(&self) -> Option<&str> {
        self.body["impression_token"].as_str()
    }

    /// The campaign id of a popup, if the body has one.
    pub fn campaign(&self) -> Option<i64> {
        self.body["campaign_id"].as_i64()
    }
}

/// What the gateway counted, from its `GET /metrics`: HTTP requests (every route but `/metrics`) and the
/// commands it sent to Redis. Subtract two readings ([`GatewayCounts::since`]) to count what happened in
/// between; this is how the edge's request and command budget is measured (tests and benchmarks alike).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// Requests by route (`/pipeline`, `/`, ...), all statuses together.
    pub requests_by_route: BTreeMap<String, u64>,
    /// Commands sent to Redis by endpoint (`pipeline`, `single`, `multi-exec`).
    pub commands_by_endpoint: BTreeMap<String, u64>,
}

impl GatewayCounts {
    /// Reads the Prometheus text the gateway serves.
    pub fn parse(metrics: &str) -> GatewayCounts {
        let mut counts = GatewayCounts::default();
        for line in metrics.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            // Counters are whole numbers; the exporter prints them without a fraction.
            let value = value as u64;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            match name {
                "http_requests_total" => {
                    let route = label(labels, "route").unwrap_or_default();
                    if route != "/metrics" {
                        *counts.requests_by_route.entry(route).or_default() += value;
                    }
                }
                "gateway_commands_total" => {
                    let endpoint = label(labels, "endpoint").unwrap_or_default();
                    *counts.commands_by_endpoint.entry(endpoint).or_default() += value;
                }
                _ => {}
            }
        }
        counts
    }

    /// HTTP requests, every route together.
    pub fn requests(&self) -> u64 {
        self.requests_by_route.values().sum()
    }

    /// Redis commands, every endpoint together.
    pub fn commands(&self) -> u64 {
        self.commands_by_endpoint.values().sum()
    }

    /// What was counted since `earlier`, a reading taken before this one.
    pub fn since(&self, earlier: &GatewayCounts) -> GatewayCounts {
        let minus = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(key, value)| (key.clone(), value.saturating_sub(then.get(key).copied().unwrap_or(0))))
                .filter(|(_, value)| *value > 0)
                .collect()
        };
        GatewayCounts {
            requests_by_route: minus(&self.requests_by_route, &earlier.requests_by_route),
            commands_by_endpoint: minus(&self.commands_by_endpoint, &earlier.commands_by_endpoint),
        }
    }
}

/// The value of `name="..."` in a Prometheus label set.
fn label(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = labels.get(start..)?;
    Some(rest[..rest.find('"')?].to_string())
}

/// One child process: a process group of its own, its output in a log file.
#[derive(Debug)]
struct Service {
    name: &'static str,
    /// In a mutex so readiness probes, which share the stack, can see whether it exited.
    child: Mutex<Child>,
    pid: u32,
    log: PathBuf,
    /// Kills the group if the test process dies without stopping it.
    watchdog: Option<Child>,
}

impl Service {
    fn spawn(name: &'static str, mut command: Command, dir: &Path) -> anyhow::Result<Service> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command.spawn().with_context(|| format!("starting the {name}: {command:?}"))?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -KILL -- "-$2" 2>/dev/null"#)
            .arg("e2e-watchdog")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
        let pid = child.id();
        Ok(Service { name, child: Mutex::new(child), pid, log, watchdog })
    }

    /// The process group the service runs in (its own, led by the process itself).
    fn process_group(&self) -> u32 {
        self.pid
    }

    /// The exit status if the process has exited.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        child.try_wait().ok().flatten()
    }

    /// SIGTERM to the group, SIGKILL after a grace period, then whatever is left of the group.
    fn stop(&mut self) {
        let group = format!("-{}", self.pid);
        if self.exited().is_none() {
            signal("-TERM", &group);
            let deadline = Instant::now() + STOP_GRACE;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        // Also reaches grandchildren (workerd) that outlived their parent.
        signal("-KILL", &group);
        let _ = self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            signal("-KILL", &format!("-{}", watchdog.id()));
            let _ = watchdog.wait();
        }
    }

    /// The last lines of the log.
    fn tail(&self) -> String {
        let text = read_tail(&self.log, 64 * 1024).unwrap_or_else(|error| format!("(cannot read: {error})"));
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!("---- {} ({}) ----\n{}", self.name, self.log.display(), lines[start..].join("\n"))
    }
}

fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn read_tail(path: &Path, bytes: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(bytes)))?;
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// A database of one stack, dropped with it.
#[derive(Debug)]
struct Database {
    /// Where `CREATE DATABASE` and `DROP DATABASE` run.
    server_url: String,
    name: String,
}

impl Database {
    async fn create(server_url: &str, name: &str) -> anyhow::Result<Database> {
        use sqlx::Connection as _;
        let mut connection = sqlx::PgConnection::connect(server_url)
            .await
            .with_context(|| format!("connecting to Postgres at {} (DATABASE_URL)", redact(server_url)))?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\"")).execute(&mut connection).await?;
        let _ = connection.close().await;
        Ok(Database { server_url: server_url.to_string(), name: name.to_string() })
    }

    /// Drops the database, from a thread of its own so it works from `Drop` inside or outside a runtime.
    fn drop_now(&self) {
        let url = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            use sqlx::Connection as _;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&url).await?;
                sqlx::raw_sql(&sql).execute(&mut connection).await?;
                let _ = connection.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("e2e: cannot drop the database {}: {error:#}", self.name),
            Err(_) => eprintln!("e2e: dropping the database {} panicked", self.name),
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `url` (Postgres or Redis) with its database, the path, replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The logical Redis database the stacks use, apart from the one the product and its benchmarks use by
/// default: a benchmark's millions of keys there do not slow the tests' cleanup, and the tests' keys do
/// not mix with them.
pub const REDIS_DATABASE: u32 = 11;

/// The Redis of the stacks: `REDIS_URL` (default `redis://127.0.0.1:6379`) with the database
/// [`REDIS_DATABASE`].
pub fn redis_url() -> String {
    let base = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    with_database(&base, &REDIS_DATABASE.to_string())
}

/// `n` random bytes as lower-case hex.
fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|error| anyhow!("no randomness: {error}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `text` without ANSI escape sequences (colours in logs).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The origin's `[vars]` etc., as the repository's `wrangler.toml` has them, with `main` pointing at the
/// built bundle, without the `[build]` table (the stack runs what is built; it never rebuilds), and the
/// top-level `[[ratelimits]]` bindings set to `limits`.
fn derived_wrangler_toml(original: &str, entry: &Path, limits: RateLimits) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut in_build = false;
    let mut in_limits = false;
    let mut limit = None;
    let mut limits_set = 0;
    let mut mains = 0;
    for line in original.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_build = trimmed.starts_with("[build]") || trimmed.starts_with("[build.");
            in_limits = trimmed.starts_with("[[ratelimits]]");
        }
        if in_build {
            continue;
        }
        if in_limits && trimmed.split('=').next().map(str::trim) == Some("name") {
            limit = match trimmed.split('"').nth(1) {
                Some("CUSTOMER_LIMIT") => Some(limits.per_customer),
                Some("ADDRESS_LIMIT") => Some(limits.per_address),
                other => bail!("wrangler.toml has a rate limit the e2e harness does not know: {other:?}"),
            };
        }
        if in_limits && trimmed.starts_with("simple") {
            let limit = limit.take().context("a [[ratelimits]] table's `simple` before its `name`")?;
            out.push_str(&format!("simple = {{ limit = {limit}, period = 60 }}\n"));
            limits_set += 1;
            continue;
        }
        if trimmed.starts_with("main") && trimmed[4..].trim_start().starts_with('=') {
            mains += 1;
            out.push_str(&format!("main = {:?}\n", entry.display().to_string()));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if mains != 1 {
        bail!("wrangler.toml has {mains} top-level `main` lines; the e2e harness expects exactly one");
    }
    if limits_set != 2 {
        bail!("wrangler.toml has {limits_set} top-level rate limits; the e2e harness expects two");
    }
    Ok(out)
}

static NEXT_STACK: AtomicU32 = AtomicU32::new(0);

/// What a test may change about its stack; [`Settings::default`] is the product as configured for
/// production, but for the edge's Redis timeout ([`EDGE_REDIS_TIMEOUT_MS`]).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the edge sends its Redis REST requests instead of the stack's gateway: a server that fails or
    /// never answers, to see how the edge copes. The stack is then ready as soon as the edge answers at
    /// all.
    pub edge_redis_rest_url: Option<String>,
    /// The edge's `REDIS_TIMEOUT_MS`.
    pub edge_redis_timeout_ms: u64,
    /// Identity tokens instead of a plain `user_id`, on the edge and the origin alike.
    pub jwt: Option<JwtSettings>,
    /// The public API's abuse limits on the edge (its `[[ratelimits]]` bindings) and the origin.
    pub rate_limits: RateLimits,
}

/// Requests a minute per customer and per client address; the defaults are the product's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub per_customer: u32,
    pub per_address: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits { per_customer: 120, per_address: 6_000 }
    }
}

/// `IDENTITY=jwt` (edge) and `POPUP_IDENTITY=jwt` (origin), with these keys and
/// [`identity::ISSUER`] and [`identity::AUDIENCE`].
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub jwks_url: String,
    pub hs256_secret: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            edge_redis_rest_url: None,
            edge_redis_timeout_ms: EDGE_REDIS_TIMEOUT_MS,
            jwt: None,
            rate_limits: RateLimits::default(),
        }
    }
}

/// One running copy of the product: origin, gateway and edge, over a fresh database and a Redis key prefix
/// of their own. Dropping it stops every process, drops the database and deletes the prefix's keys.
#[derive(Debug)]
pub struct Stack {
    /// Base URLs, without a trailing slash.
    pub origin: String,
    pub gateway: String,
    pub edge: String,
    /// An admin API key of the origin.
    pub admin_key: String,
    /// The gateway's bearer token (the edge's `REDIS_REST_TOKEN`).
    pub gateway_token: String,
    /// The impression token secret the origin and the edge share.
    pub token_secret: String,
    /// The Redis key prefix of this stack.
    pub prefix: String,
    /// The Redis the origin and the gateway use.
    pub redis_url: String,
    /// The HS256 secret of identity tokens, in `jwt` mode.
    pub jwt_secret: Option<String>,
    http: reqwest::Client,
    services: Vec<Service>,
    database: Option<Database>,
    dir: PathBuf,
    keep_logs: bool,
}

impl Stack {
    /// Starts a stack with the default [`Settings`] and waits until the origin, the gateway and the edge
    /// answer, the edge with a popup decision (so it reaches Redis through the gateway). On failure the
    /// error carries the tail of every log.
    pub async fn start() -> anyhow::Result<Stack> {
        Stack::start_with(Settings::default()).await
    }

    /// [`Stack::start`] with other settings.
    pub async fn start_with(settings: Settings) -> anyhow::Result<Stack> {
        let started = Instant::now();
        let mut stack = Stack::prepare()?;
        match stack.launch(&settings).await {
            Ok(()) => {
                eprintln!(
                    "e2e: stack {} ready in {:.1?} (logs in {})",
                    stack.prefix,
                    started.elapsed(),
                    stack.dir.display()
                );
                Ok(stack)
            }
            Err(error) => {
                stack.keep_logs = true;
                let tails = stack.log_tails();
                Err(error.context(format!("the e2e stack did not start\n{tails}")))
            }
        }
    }

    fn prepare() -> anyhow::Result<Stack> {
        let id = format!(
            "{}_{}_{}",
            std::process::id(),
            NEXT_STACK.fetch_add(1, Ordering::Relaxed),
            random_hex(3)?
        );
        let dir = std::env::temp_dir().join("popup-e2e").join(&id);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Stack {
            origin: String::new(),
            gateway: String::new(),
            edge: String::new(),
            admin_key: format!("e2e-admin-{}", random_hex(16)?),
            gateway_token: format!("e2e-gateway-{}", random_hex(16)?),
            token_secret: random_hex(32)?,
            prefix: format!("e2e-{}", id.replace('_', "-")),
            redis_url: redis_url(),
            jwt_secret: None,
            http,
            services: Vec::new(),
            database: None,
            dir,
            keep_logs: false,
        })
    }

    async fn launch(&mut self, settings: &Settings) -> anyhow::Result<()> {
        let origin_bin = origin_binary()?;
        let entry = edge_bundle()?;
        let wrangler = wrangler_binary()?;
        let root = workspace_root();

        let server_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db_name = format!("e2e_{}", self.prefix.trim_start_matches("e2e-").replace('-', "_"));
        self.database = Some(Database::create(&server_url, &db_name).await?);

        // Every service binds port 0 and logs the address it got, so no port is picked free and then
        // taken by someone else before the service binds it.
        let mut origin = Command::new(&origin_bin);
        origin
            .arg("serve")
            .env("DATABASE_URL", with_database(&server_url, &db_name))
            .env("POPUP_LISTEN", "127.0.0.1:0")
            .env("POPUP_OPS_ADDR", "127.0.0.1:0")
            .env("POPUP_TOKEN_SECRET", &self.token_secret)
            .env("POPUP_BOOTSTRAP_ADMIN_KEY", &self.admin_key)
            // An hour: admin writes must reach Redis (and the edge) by themselves, on the next request,
            // not by a reconcile that happens to run in between.
            .env("POPUP_RECONCILE_SECONDS", "3600")
            .env("POPUP_REDIS_TIMEOUT_MS", "3000")
            .env("POPUP_COUNTRY_HEADER", ORIGIN_COUNTRY_HEADER)
            .env("POPUP_RATE_LIMIT_PER_CUSTOMER", settings.rate_limits.per_customer.to_string())
            .env("POPUP_RATE_LIMIT_PER_ADDRESS", settings.rate_limits.per_address.to_string())
            .env("POPUP_CLIENT_ADDRESS_HEADER", CLIENT_ADDRESS_HEADER);
        self.common_env(&mut origin);
        if let Some(jwt) = &settings.jwt {
            origin
                .env("POPUP_IDENTITY", "jwt")
                .env("POPUP_JWT_JWKS_URL", &jwt.jwks_url)
                .env("POPUP_JWT_HS256_SECRET", &jwt.hs256_secret)
                .env("POPUP_JWT_ISSUER", identity::ISSUER)
                .env("POPUP_JWT_AUDIENCE", identity::AUDIENCE);
            self.jwt_secret = Some(jwt.hs256_secret.clone());
        }
        self.services.push(Service::spawn("origin", origin, &self.dir)?);

        let mut gateway = Command::new(&origin_bin);
        gateway
            .arg("gateway")
            // Above the default (1 s): a test machine may run a benchmark against the same Redis.
            .env("POPUP_GATEWAY_REDIS_TIMEOUT_MS", "5000")
            .env("POPUP_GATEWAY_LISTEN", "127.0.0.1:0")
            .env("POPUP_GATEWAY_TOKEN", &self.gateway_token);
        self.common_env(&mut gateway);
        self.services.push(Service::spawn("gateway", gateway, &self.dir)?);
        // The edge needs the gateway's address.
        self.gateway = self.logged_url(1, "listening", "address=", GATEWAY_READY_TIMEOUT).await?;

        // The edge's configuration directory: wrangler.toml, .dev.vars, the request.cf file, its state.
        let edge_dir = self.dir.join("edge");
        fs::create_dir_all(&edge_dir)?;
        let original = fs::read_to_string(root.join("wrangler.toml")).context("reading wrangler.toml")?;
        let config = edge_dir.join("wrangler.toml");
        fs::write(&config, derived_wrangler_toml(&original, &entry, settings.rate_limits)?)?;
        let mut secrets =
            format!("REDIS_REST_TOKEN={}\nTOKEN_SECRET={}\n", self.gateway_token, self.token_secret);
        if let Some(jwt) = &settings.jwt {
            secrets.push_str(&format!("JWT_HS256_SECRET={}\n", jwt.hs256_secret));
        }
        fs::write(edge_dir.join(".dev.vars"), secrets)?;
        let cf = edge_dir.join("cf.json");
        fs::write(
            &cf,
            format!(
                r#"{{"country":"{EDGE_COUNTRY}","colo":"CGK","city":"Jakarta","continent":"AS","timezone":"Asia/Jakarta","asn":0,"httpProtocol":"HTTP/1.1"}}"#
            ),
        )?;
        let mut edge = Command::new(&wrangler);
        edge.current_dir(&root)
            .arg("dev")
            .arg("--config")
            .arg(&config)
            .args(["--ip", "127.0.0.1", "--port", "0"])
            .args(["--inspector-port", "0", "--show-interactive-dev-session=false"])
            .arg("--persist-to")
            .arg(edge_dir.join("state"));
        let mut vars = vec![
            ("REDIS_REST_URL", settings.edge_redis_rest_url.clone().unwrap_or_else(|| self.gateway.clone())),
            ("KEY_PREFIX", self.prefix.clone()),
            ("DAY_OFFSET", DAY_OFFSET.to_string()),
            ("REDIS_TIMEOUT_MS", settings.edge_redis_timeout_ms.to_string()),
        ];
        if let Some(jwt) = &settings.jwt {
            vars.extend([
                ("IDENTITY", "jwt".to_string()),
                ("JWT_JWKS_URL", jwt.jwks_url.clone()),
                ("JWT_ISSUER", identity::ISSUER.to_string()),
                ("JWT_AUDIENCE", identity::AUDIENCE.to_string()),
            ]);
        }
        for (name, value) in vars {
            edge.arg("--var").arg(format!("{name}:{value}"));
        }
        edge.env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_PATH", &cf)
            .env_remove("CLOUDFLARE_CF_FETCH_ENABLED")
            .env("WRANGLER_LOG_PATH", edge_dir.join("wrangler-logs"))
            .env("NO_COLOR", "1");
        self.services.push(Service::spawn("edge", edge, &self.dir)?);

        self.origin = self.logged_url(0, "listening", "address=", ORIGIN_READY_TIMEOUT).await?;
        let origin_ready = format!("{}/readyz", self.origin);
        self.wait_until("origin", ORIGIN_READY_TIMEOUT, || async {
            let Ok(response) = self.http.get(&origin_ready).send().await else { return Ok(false) };
            Ok(response.status() == StatusCode::OK)
        })
        .await?;
        self.wait_until("gateway", GATEWAY_READY_TIMEOUT, || async {
            let ping = serde_json::json!(["PING"]);
            let Ok(reply) = self.gateway_call("/", Some(&self.gateway_token), &ping).await else {
                return Ok(false);
            };
            match reply.status {
                StatusCode::OK => Ok(true),
                StatusCode::UNAUTHORIZED => Err(format!("the gateway refuses its token: {}", reply.body)),
                _ => Ok(false),
            }
        })
        .await?;
        self.edge = self.logged_url(2, "Ready on", "http://", EDGE_READY_TIMEOUT).await?;
        let own_gateway = settings.edge_redis_rest_url.is_none();
        self.wait_until("edge", EDGE_READY_TIMEOUT, || async {
            let ready = match self.jwt_secret.as_deref() {
                None => self.popup(Side::Edge, "user_id=e2e-ready").await,
                Some(secret) => {
                    let token = identity::hs256(
                        &serde_json::json!({"alg": "HS256"}),
                        &identity::claims("e2e-ready", unix_now()),
                        Some(secret.as_bytes()),
                    );
                    self.popup_as(Side::Edge, Some(&token), "").await
                }
            };
            let Ok(reply) = ready else { return Ok(false) };
            if matches!(reply.status, StatusCode::OK | StatusCode::NO_CONTENT) {
                return Ok(true);
            }
            // Until the worker runs, wrangler may answer with pages of its own; an error in the API's
            // shape comes from the worker itself.
            if reply.body["error"]["code"].is_string() {
                if own_gateway {
                    return Err(format!(
                        "the edge runs but answers {} {}: it cannot resolve through the gateway",
                        reply.status, reply.body
                    ));
                }
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        Ok(())
    }

    /// Settings the origin and the gateway share; `POPUP_*` variables of the caller's environment are not
    /// passed on, so a developer's shell cannot change what the tests run.
    fn common_env(&self, command: &mut Command) {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("POPUP_") {
                command.env_remove(name);
            }
        }
        command
            .env("REDIS_URL", &self.redis_url)
            .env("POPUP_KEY_PREFIX", &self.prefix)
            .env("POPUP_DAY_OFFSET", DAY_OFFSET)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
    }

    /// The base URL service `index` logs once it listens: the word after `prefix` on the first line that
    /// holds `marker`, as `http://host:port`.
    async fn logged_url(
        &self,
        index: usize,
        marker: &str,
        prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let service = self.services.get(index).ok_or_else(|| anyhow!("no service {index}"))?;
        let found = || {
            let log = strip_ansi(&fs::read_to_string(&service.log).ok()?);
            let line = log.lines().find(|line| line.contains(marker))?;
            let start = line.find(prefix)? + prefix.len();
            let address: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                .collect();
            (!address.is_empty()).then(|| format!("http://{}", address.trim_end_matches(['.', ':'])))
        };
        let what = format!("the {} to log its address", service.name);
        let mut url = None;
        self.wait_until(&what, timeout, || {
            url = url.take().or_else(found);
            let found = url.is_some();
            async move { Ok(found) }
        })
        .await?;
        url.ok_or_else(|| anyhow!("the {} logged no address", service.name))
    }

    /// Polls `probe` until it answers `Ok(true)`; fails when it answers an error, when a child exits, or
    /// after `timeout`.
    async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            match probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => bail!("the {what} is not usable: {error}"),
            }
            if let Some((name, status)) =
                self.services.iter().find_map(|s| s.exited().map(|status| (s.name, status)))
            {
                bail!("the {name} exited ({status}) while waiting for the {what} to be ready");
            }
            if Instant::now() > deadline {
                bail!("the {what} was not ready within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tail of every child's log.
    pub fn log_tails(&self) -> String {
        self.services.iter().map(Service::tail).collect::<Vec<_>>().join("\n")
    }

    /// The directory holding this stack's logs and edge configuration.
    /// The process group of a service (`"origin"`, `"gateway"` or `"edge"`): for the edge, wrangler and the
    /// `workerd` it runs.
    pub fn process_group(&self, name: &str) -> Option<u32> {
        self.services.iter().find(|service| service.name == name).map(Service::process_group)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The base URL of `side`'s public API.
    pub fn base(&self, side: Side) -> &str {
        match side {
            Side::Origin => &self.origin,
            Side::Edge => &self.edge,
        }
    }

    async fn reply(response: reqwest::Response) -> anyhow::Result<Reply> {
        let status = response.status();
        let header = |name| {
            response.headers().get(name).map(|value: &reqwest::header::HeaderValue| {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            })
        };
        let challenge = header(reqwest::header::WWW_AUTHENTICATE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body, challenge, retry_after })
    }

    /// A request to the admin API (`/admin/v1{path}`) with the admin key.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        let mut request =
            self.http.request(method, format!("{}/admin/v1{path}", self.origin)).bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        Stack::reply(request.send().await?).await
    }

    /// Uploads a new version of segment `name` (customer ids, one per line).
    pub async fn upload_segment(&self, name: &str, ids: &str) -> anyhow::Result<Reply> {
        let response = self
            .http
            .put(format!("{}/admin/v1/segments/{name}", self.origin))
            .bearer_auth(&self.admin_key)
            .header("content-type", "text/csv")
            .body(ids.to_string())
            .send()
            .await?;
        let reply = Stack::reply(response).await?;
        if reply.status != StatusCode::OK {
            bail!("uploading segment {name}: {} {}", reply.status, reply.body);
        }
        Ok(reply)
    }

    /// Creates a campaign (a draft) from its JSON and returns its id.
    pub async fn create_campaign(&self, spec: &Value) -> anyhow::Result<i64> {
        let reply = self.admin(Method::POST, "/campaigns", Some(spec)).await?;
        if reply.status != StatusCode::CREATED {
            bail!("creating a campaign: {} {}", reply.status, reply.body);
        }
        reply.body["id"].as_i64().ok_or_else(|| anyhow!("no id in {}", reply.body))
    }

    /// `POST /campaigns/{id}/{action}` (`activate`, `pause`, `end`), expecting 200.
    pub async fn transition(&self, id: i64, action: &str) -> anyhow::Result<Value> {
        let reply = self.admin(Method::POST, &format!("/campaigns/{id}/{action}"), None).await?;
        if reply.status != StatusCode::OK {
            bail!("{action} campaign {id}: {} {}", reply.status, reply.body);
        }
        Ok(reply.body)
    }

    /// Creates and activates a campaign; returns its id.
    pub async fn live_campaign(&self, spec: &Value) -> anyhow::Result<i64> {
        let id = self.create_campaign(spec).await?;
        self.transition(id, "activate").await?;
        Ok(id)
    }

    /// `GET /v1/campaigns/popup?{query}` on `side`; `query` is already URL-encoded.
    /// The origin's carries the country header a proxy would set ([`ORIGIN_COUNTRY_HEADER`]).
    pub async fn popup(&self, side: Side, query: &str) -> anyhow::Result<Reply> {
        let url = format!("{}/v1/campaigns/popup?{query}", self.base(side));
        let mut request = self.http.get(url);
        if side == Side::Origin {
            request = request.header(ORIGIN_COUNTRY_HEADER, EDGE_COUNTRY);
        }
        Stack::reply(request.send().await?).await
    }

    /// `GET /v1/campaigns/popup?{query}` on `side` from the client address `address` (the
    /// [`CLIENT_ADDRESS_HEADER`] Cloudflare would set).
    pub async fn popup_from(&self, side: Side, address: &str, query: &str) -> anyhow::Result<Reply> {
        let url = format!("{}/v1/campaigns/popup?{query}", self.base(side));
        let mut request = self.http.get(url).header(CLIENT_ADDRESS_HEADER, address);
        if side == Side::Origin {
            request = request.header(ORIGIN_COUNTRY_HEADER, EDGE_COUNTRY);
        }
        Stack::reply(request.send().await?).await
    }

    /// `GET /v1/campaigns/popup?{query}` on `side` with `Authorization: Bearer {jwt}`, if any.
    pub async fn popup_as(&self, side: Side, jwt: Option<&str>, query: &str) -> anyhow::Result<Reply> {
        let url = format!("{}/v1/campaigns/popup?{query}", self.base(side));
        let mut request = self.http.get(url);
        if side == Side::Origin {
            request = request.header(ORIGIN_COUNTRY_HEADER, EDGE_COUNTRY);
        }
        if let Some(jwt) = jwt {
            request = request.bearer_auth(jwt);
        }
        Stack::reply(request.send().await?).await
    }

    /// `POST /v1/campaigns/{campaign}/{kind}` on `side` with `{impression_token}` and the identity token.
    pub async fn event_as(
        &self,
        side: Side,
        jwt: Option<&str>,
        campaign: i64,
        kind: &str,
        token: &str,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}/v1/campaigns/{campaign}/{kind}", self.base(side));
        let mut request = self.http.post(url).json(&serde_json::json!({"impression_token": token}));
        if let Some(jwt) = jwt {
            request = request.bearer_auth(jwt);
        }
        Stack::reply(request.send().await?).await
    }

    /// Any request to `side`'s public API: `path` holds the query, already URL-encoded.
    pub async fn request(
        &self,
        side: Side,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base(side)));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        Stack::reply(request.send().await?).await
    }

    /// `POST /v1/campaigns/{campaign}/{kind}` on `side` with `{user_id, impression_token}`.
    pub async fn event(
        &self,
        side: Side,
        campaign: i64,
        kind: &str,
        user: &str,
        token: &str,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}/v1/campaigns/{campaign}/{kind}", self.base(side));
        let body = serde_json::json!({"user_id": user, "impression_token": token});
        Stack::reply(self.http.post(url).json(&body).send().await?).await
    }

    /// `POST /v1/conversions` on the origin with `{user_id, impression_token}`, as the bank's backend does,
    /// with the admin key.
    pub async fn conversion(&self, user: &str, token: &str) -> anyhow::Result<Reply> {
        let body = serde_json::json!({"user_id": user, "impression_token": token});
        let request = self.http.post(format!("{}/v1/conversions", self.origin)).bearer_auth(&self.admin_key);
        Stack::reply(request.json(&body).send().await?).await
    }

    /// A POST to the gateway (`/`, `/pipeline`, `/multi-exec`) with `token` as the bearer token, if any.
    pub async fn gateway_call(&self, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<Reply> {
        let mut request = self.http.post(format!("{}{path}", self.gateway)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Stack::reply(request.send().await?).await
    }

    /// The gateway's counters now.
    pub async fn gateway_counts(&self) -> anyhow::Result<GatewayCounts> {
        let response = self
            .http
            .get(format!("{}/metrics", self.gateway))
            .bearer_auth(&self.gateway_token)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            bail!("gateway /metrics answered {}", response.status());
        }
        Ok(GatewayCounts::parse(&response.text().await?))
    }

    /// Runs `work` and returns its output with what the gateway counted meanwhile (nothing else may use
    /// this stack's gateway at the same time).
    pub async fn counted<T, Fut>(&self, work: Fut) -> anyhow::Result<(T, GatewayCounts)>
    where
        Fut: std::future::Future<Output = T>,
    {
        let before = self.gateway_counts().await?;
        let output = work.await;
        let after = self.gateway_counts().await?;
        Ok((output, after.since(&before)))
    }

    /// Deletes every Redis key under this stack's prefix.
    fn delete_keys(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
        // SCAN, not KEYS: KEYS blocks the server for as long as it walks the whole database.
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut connection)?;
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(keys).query(&mut connection)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let failed = std::thread::panicking() || self.keep_logs;
        if std::thread::panicking() {
            eprintln!("e2e: the test failed; the stack's logs:\n{}", self.log_tails());
        }
        // The edge first (it calls the gateway), the origin last.
        for service in self.services.iter_mut().rev() {
            service.stop();
        }
        if let Some(database) = self.database.take() {
            database.drop_now();
        }
        if let Err(error) = self.delete_keys() {
            eprintln!("e2e: cannot delete the Redis keys under {}: {error:#}", self.prefix);
        }
        if failed {
            eprintln!("e2e: logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "e2e_1"),
            "postgres://postgres@127.0.0.1:5432/e2e_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
    }

    #[test]
    fn redis_databases_are_replaced() {
        assert_eq!(with_database("redis://127.0.0.1:6379", "11"), "redis://127.0.0.1:6379/11");
        assert_eq!(with_database("redis://127.0.0.1:6379/", "11"), "redis://127.0.0.1:6379/11");
        assert_eq!(with_database("redis://:pw@h:1/3", "11"), "redis://:pw@h:1/11");
        assert_eq!(with_database("redis://h/0?protocol=resp3", "11"), "redis://h/11?protocol=resp3");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn gateway_counters_parse() {
        let text = "# TYPE http_requests_total counter\n\
            http_requests_total{route=\"/pipeline\",status=\"200\"} 7\n\
            http_requests_total{route=\"/pipeline\",status=\"400\"} 1\n\
            http_requests_total{route=\"/\",status=\"200\"} 2\n\
            http_requests_total{route=\"/metrics\",status=\"200\"} 9\n\
            gateway_commands_total{endpoint=\"pipeline\"} 21\n\
            gateway_commands_total{endpoint=\"single\"} 2\n\
            http_request_duration_seconds_count{route=\"/\"} 2\n";
        let counts = GatewayCounts::parse(text);
        assert_eq!((counts.requests(), counts.commands()), (10, 23));
        let mut later = counts.clone();
        *later.requests_by_route.get_mut("/pipeline").unwrap() += 1;
        *later.commands_by_endpoint.get_mut("pipeline").unwrap() += 3;
        let delta = later.since(&counts);
        assert_eq!((delta.requests(), delta.commands()), (1, 3));
        assert_eq!(delta.requests_by_route.keys().collect::<Vec<_>>(), ["/pipeline"]);
    }

    #[test]
    fn the_derived_wrangler_config_runs_the_bundle_without_building() {
        let original = "name = \"w\"\nmain = \"edge/build/index.js\"\ncompatibility_date = \"2026-04-20\"\n\n\
            [build]\ncommand = \"scripts/build-edge\"\nwatch_dir = [\"edge/src\"]\n\n[vars]\nKEY_PREFIX = \"popup\"\n\n\
            [[ratelimits]]\nname = \"CUSTOMER_LIMIT\"\nnamespace_id = \"1\"\nsimple = { limit = 120, period = 60 }\n\n\
            [[ratelimits]]\nname = \"ADDRESS_LIMIT\"\nsimple = { limit = 6000, period = 60 }\n";
        let limits = RateLimits { per_customer: 3, per_address: 7 };
        let derived =
            derived_wrangler_toml(original, Path::new("/repo/edge/build/index.js"), limits).unwrap();
        assert_eq!(
            derived,
            "name = \"w\"\nmain = \"/repo/edge/build/index.js\"\ncompatibility_date = \"2026-04-20\"\n\n\
             [vars]\nKEY_PREFIX = \"popup\"\n\n\
             [[ratelimits]]\nname = \"CUSTOMER_LIMIT\"\nnamespace_id = \"1\"\nsimple = { limit = 3, period = 60 }\n\n\
             [[ratelimits]]\nname = \"ADDRESS_LIMIT\"\nsimple = { limit = 7, period = 60 }\n"
        );
        assert!(derived_wrangler_toml("name = \"w\"\n", Path::new("/x"), limits).is_err());
    }
}
