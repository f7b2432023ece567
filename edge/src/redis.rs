//! Carries the core's command plans to the REST API over `fetch`, with a deadline: a slow or unreachable
//! Redis becomes [`StoreUnavailable`] within the configured timeout, never a hung request. The protocol
//! itself (bodies, replies) is in [`crate::rest`].
//!
//! Every request goes through the isolate's circuit breaker (`popup_core::breaker`, with the origin's
//! defaults): after repeated failures Redis is not asked for a cool-down, and requests get their 503 at
//! once instead of each waiting out the timeout; then one request probes, and its success closes it.
//! Opening and closing are logged.

use std::cell::RefCell;

use popup_core::breaker::{Admission, Breaker, BreakerSettings, BreakerState};
use popup_core::defaults;
use popup_core::store::{Command, Reply};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_log, console_warn, web_sys};

use crate::config::RedisConfig;
use crate::rest::{self, RestError};

#[derive(Debug, thiserror::Error)]
pub enum StoreUnavailable {
    #[error("redis did not answer within {0} ms")]
    Timeout(u128),
    #[error("fetch failed: {0}")]
    Fetch(#[source] worker::Error),
    #[error(transparent)]
    Protocol(#[from] RestError),
    #[error("redis failed repeatedly; not asked again until the breaker's cool-down ends")]
    CircuitOpen,
}

thread_local! {
    /// The headers every request to the endpoint carries (its token is the isolate's configuration).
    static REQUEST_HEADERS: RefCell<Option<web_sys::Headers>> = const { RefCell::new(None) };
    /// The isolate's breaker: an isolate serves many requests one after another and side by side.
    static BREAKER: RefCell<Breaker> = RefCell::new(Breaker::new(BreakerSettings {
        failures_to_open: defaults::BREAKER_FAILURES,
        cool_down_ms: defaults::BREAKER_COOL_DOWN_MS as i64,
    }));
}

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

impl From<worker::Error> for StoreUnavailable {
    fn from(error: worker::Error) -> StoreUnavailable {
        StoreUnavailable::Fetch(error)
    }
}

impl From<JsValue> for StoreUnavailable {
    fn from(error: JsValue) -> StoreUnavailable {
        StoreUnavailable::Fetch(error.into())
    }
}

/// A client of one REST endpoint.
#[derive(Debug, Clone, Copy)]
pub struct RedisClient<'a> {
    config: &'a RedisConfig,
}

impl<'a> RedisClient<'a> {
    pub fn new(config: &'a RedisConfig) -> RedisClient<'a> {
        RedisClient { config }
    }

    /// Sends `commands` as one pipeline (one HTTP request) and returns one reply per command. A command
    /// that fails in Redis yields [`Reply::Error`]; only a failure to talk to Redis at all is an error.
    pub async fn pipeline(&self, commands: &[Command]) -> Result<Vec<Reply>, StoreUnavailable> {
        let (status, body) = self.post(rest::PIPELINE_PATH, rest::encode_pipeline(commands)?).await?;
        Ok(rest::decode_pipeline(status, &body, commands.len())?)
    }

    /// Sends one command to the single-command endpoint and returns its reply, like [`Self::pipeline`].
    pub async fn command(&self, command: &Command) -> Result<Reply, StoreUnavailable> {
        let (status, body) = self.post("", rest::encode_command(command)?).await?;
        Ok(rest::decode_command(status, &body)?)
    }

    /// POSTs `body` to `path` through the breaker: refused at once while it is open, and the outcome
    /// reported to it otherwise.
    async fn post(&self, path: &str, body: String) -> Result<(u16, String), StoreUnavailable> {
        if let Admission::Refused { .. } = BREAKER.with_borrow_mut(|breaker| breaker.admit(now_ms())) {
            return Err(StoreUnavailable::CircuitOpen);
        }
        let result = self.exchange(path, body).await;
        match BREAKER.with_borrow_mut(|breaker| breaker.record(now_ms(), result.is_ok())) {
            Some(BreakerState::Open) => {
                console_warn!("redis breaker open: answering 503 at once for a cool-down")
            }
            Some(BreakerState::Closed) => console_log!("redis breaker closed: redis answered the probe"),
            None => {}
        }
        result
    }

    /// The headers of every request to the endpoint, made once per isolate: `fetch` copies them into its
    /// request, so one object serves them all.
    fn headers(&self) -> Result<web_sys::Headers, JsValue> {
        crate::cache::kept(&REQUEST_HEADERS, || {
            let headers = web_sys::Headers::new()?;
            headers.set("Authorization", &format!("Bearer {}", self.config.token))?;
            headers.set("Content-Type", "application/json")?;
            headers.set(rest::ENCODING_HEADER.0, rest::ENCODING_HEADER.1)?;
            Ok(headers)
        })
    }

    /// POSTs `body` to `path` and returns the status and the response text, both within the timeout: the
    /// request carries `AbortSignal.timeout`, which aborts the fetch and the body's read alike, so the
    /// runtime does not keep waiting either.
    ///
    /// Built on the runtime's `fetch` and `Response.text()` directly. The `worker` crate's `Fetch` wraps the
    /// request again (reading its method, URL, headers and `cf`), and its `Response::text` reads the body
    /// as a stream, a promise and a lock per chunk; with its timer future for the deadline, that glue cost
    /// more CPU per resolve than the resolve itself.
    async fn exchange(&self, path: &str, body: String) -> Result<(u16, String), StoreUnavailable> {
        let headers = self.headers()?;
        let timeout_ms = self.config.timeout.as_millis();
        let signal = web_sys::AbortSignal::timeout_with_u32(u32::try_from(timeout_ms).unwrap_or(u32::MAX));
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&body));
        init.set_signal(Some(&signal));
        let url = format!("{}{path}", self.config.url);
        let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
        let exchange = async {
            let response: web_sys::Response =
                JsFuture::from(global.fetch_with_str_and_init(&url, &init)).await?.unchecked_into();
            let text = JsFuture::from(response.text()?).await?;
            Ok::<_, JsValue>((response.status(), text.as_string().unwrap_or_default()))
        };
        exchange.await.map_err(|error| {
            if signal.aborted() {
                StoreUnavailable::Timeout(timeout_ms)
            } else {
                StoreUnavailable::Fetch(error.into())
            }
        })
    }
}
