//! Providers: who actually delivers an SMS or WhatsApp message. One trait, two implementations: a mock that
//! behaves like a real provider (latency, failures, idempotency), and a client of Twilio's Messages API.
//!
//! Every send carries an idempotency key, `msg-<message id>-<n>` (see [`super::worker`]). When an attempt's outcome is unknown
//! (the worker died after the provider accepted, or the response was lost to a timeout), the message is
//! sent again under the same key, and the provider answers with its first result instead of delivering
//! twice.

use crate::config::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Deserialize;

use crate::db::message_campaigns::Channel;

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub message_id: i64,
    pub attempt: i32,
    /// Made by the claim: a new one per attempt, or an earlier attempt's when that one's outcome is unknown.
    pub idempotency_key: String,
    pub channel: Channel,
    pub to: String,
    pub body: String,
}

/// A message's `seq`-th idempotency key, `msg-<id>-<seq>`: the format the claim query writes in SQL
/// (`db::messages::claim`, `key_seq`), for the tests and tools that look a key up.
pub fn idempotency_key(message_id: i64, seq: i32) -> String {
    format!("msg-{message_id}-{seq}")
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Worth another attempt later (timeouts, 429, 5xx); otherwise the message fails now (bad number).
    pub retryable: bool,
    /// The provider may have accepted the message (a timeout, a connection lost after the request went
    /// out): the next attempt must reuse this attempt's idempotency key.
    pub maybe_delivered: bool,
    pub message: String,
}

impl SendError {
    /// The provider refused it this time, and said so.
    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError { retryable: true, maybe_delivered: false, message: message.into() }
    }

    /// No answer: the message may or may not have been accepted.
    pub fn unknown(message: impl Into<String>) -> SendError {
        SendError { retryable: true, maybe_delivered: true, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError { retryable: false, maybe_delivered: false, message: message.into() }
    }
}

/// Delivers messages. The worker holds one as `Arc<dyn Provider>`.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Hands the message to the provider; `Ok` carries the provider's id for it.
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<String, SendError>>;
}

/// A uniformly random number in `0..n` (0 when n is 0), from the OS: the worker needs a few thousand a
/// second, which the OS gives cheaply, and it keeps the dependency list short.
pub fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // If the OS has no randomness, jitter and simulated latency degrade to their lower bound.
    getrandom::u64().unwrap_or(0) % n
}

/// The number the mock refuses as invalid, as Twilio's test credentials do.
pub const INVALID_NUMBER: &str = "+15005550001";

/// What the mock accepted, kept so tests and the benchmark can check "delivered once".
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: i64,
    pub attempt: i32,
    pub key: String,
    pub channel: Channel,
    /// When the send reached the provider (before its latency), for rate checks.
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct MockOptions {
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Share of sends that fail with a retryable error, 0.0 to 1.0.
    pub failure_rate: f64,
    /// Every message's first attempts up to this number fail with a retryable error: a provider that is
    /// down for a while, in a form tests can count on.
    pub fail_attempts_up_to: i32,
    /// Every message's first send is accepted but its answer is lost (a timeout at the client).
    pub lose_first_answer: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            latency_min: Duration::from_millis(50),
            latency_max: Duration::from_millis(200),
            failure_rate: 0.0,
            fail_attempts_up_to: 0,
            lose_first_answer: false,
        }
    }
}

/// A provider in memory with a real one's manners: it takes time, it fails now and then, it rejects numbers
/// it cannot deliver to (here [`INVALID_NUMBER`], Twilio's test number for that), and it deduplicates by
/// idempotency key. It remembers every send (about 100 bytes each) so tests can count deliveries: it is for
/// tests, benchmarks and demos, not for a process that runs for months.
#[derive(Debug, Default)]
pub struct MockProvider {
    options: MockOptions,
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    /// Results by idempotency key, so a repeated attempt gets the first answer.
    accepted: HashMap<String, String>,
    deliveries: Vec<Delivery>,
    requests: u64,
    /// Every send received: message id, attempt, when.
    received: Vec<(i64, i32, Instant)>,
}

impl MockProvider {
    pub fn new(options: MockOptions) -> MockProvider {
        MockProvider { options, state: Mutex::default() }
    }

    /// Every accepted delivery, once per idempotency key.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().map(|s| s.deliveries.clone()).unwrap_or_default()
    }

    /// Sends received, repeats and failures included.
    pub fn requests(&self) -> u64 {
        self.state.lock().map(|s| s.requests).unwrap_or_default()
    }

    /// Every send received, repeats and failures included: message id, attempt, and when.
    pub fn received(&self) -> Vec<(i64, i32, Instant)> {
        self.state.lock().map(|s| s.received.clone()).unwrap_or_default()
    }

    fn latency(&self) -> Duration {
        let min = self.options.latency_min;
        let spread = self.options.latency_max.saturating_sub(min).as_micros() as u64;
        min + Duration::from_micros(random_below(spread + 1))
    }

    fn fails_now(&self, attempt: i32) -> bool {
        if attempt <= self.options.fail_attempts_up_to {
            return true;
        }
        let rate = self.options.failure_rate;
        rate > 0.0 && (random_below(1_000_000) as f64) < rate * 1_000_000.0
    }
}

impl Provider for MockProvider {
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let received = Instant::now();
            let key = message.idempotency_key.clone();
            let previous = match self.state.lock() {
                Ok(mut state) => {
                    state.requests += 1;
                    state.received.push((message.message_id, message.attempt, received));
                    state.accepted.get(&key).cloned()
                }
                Err(_) => return Err(SendError::retryable("mock provider state poisoned")),
            };
            tokio::time::sleep(self.latency()).await;
            if let Some(id) = previous {
                return Ok(id);
            }
            if message.to == INVALID_NUMBER {
                return Err(SendError::permanent("21211: invalid 'To' phone number"));
            }
            if self.fails_now(message.attempt) {
                return Err(SendError::retryable("simulated network error"));
            }
            let id = format!("MOCK{:012}{:02}", message.message_id, message.attempt);
            if let Ok(mut state) = self.state.lock() {
                // Another send of the same key may have finished first: it keeps its place.
                if let Some(first) = state.accepted.get(&key) {
                    return Ok(first.clone());
                }
                state.accepted.insert(key.clone(), id.clone());
                state.deliveries.push(Delivery {
                    message_id: message.message_id,
                    attempt: message.attempt,
                    key,
                    channel: message.channel,
                    at: received,
                });
            }
            if self.options.lose_first_answer {
                return Err(SendError::unknown("timed out waiting for the answer"));
            }
            Ok(id)
        })
    }
}

/// Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded `To`, `From`,
/// `Body`, basic auth with the account SID and auth token, idempotency in `I-Twilio-Idempotency-Token`.
/// WhatsApp goes through the same endpoint with `whatsapp:`-prefixed numbers.
/// `Debug` names the account, never the token.
#[derive(Debug)]
pub struct TwilioProvider {
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: SecretString,
    from: String,
}

/// Twilio's error body.
#[derive(Debug, Deserialize, PartialEq)]
pub struct TwilioError {
    pub code: Option<i64>,
    pub message: String,
    #[serde(default)]
    pub more_info: Option<String>,
    pub status: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct TwilioMessage {
    sid: String,
}

impl TwilioProvider {
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        timeout: Duration,
    ) -> anyhow::Result<TwilioProvider> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(TwilioProvider {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            account_sid: account_sid.to_string(),
            auth_token: SecretString::from(auth_token),
            from: from.to_string(),
        })
    }

    fn address(channel: Channel, number: &str) -> String {
        match channel {
            Channel::Sms => number.to_string(),
            Channel::Whatsapp => format!("whatsapp:{number}"),
        }
    }
}

/// Sorts an HTTP failure: 429 and 5xx are the provider's trouble and pass; other 4xx are about the message
/// (a bad number, a blocked recipient) and will not pass on a retry.
pub fn classify(status: u16, body: &[u8]) -> SendError {
    let detail = match serde_json::from_slice::<TwilioError>(body) {
        Ok(error) => match error.code {
            Some(code) => format!("{code}: {}", error.message),
            None => error.message,
        },
        Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    };
    if status == 429 || status >= 500 {
        SendError::retryable(detail)
    } else {
        SendError::permanent(detail)
    }
}

impl Provider for TwilioProvider {
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base_url, self.account_sid);
            let form = [
                ("To", Self::address(message.channel, &message.to)),
                ("From", Self::address(message.channel, &self.from)),
                ("Body", message.body.clone()),
            ];
            let response = self
                .client
                .post(url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
                .header("I-Twilio-Idempotency-Token", &message.idempotency_key)
                .form(&form)
                .send()
                .await
                // Refused before the request went out: certainly not delivered. Anything else (a reset,
                // a timeout) may have reached Twilio, so the retry must carry the same key.
                .map_err(|e| {
                    if e.is_connect() {
                        SendError::retryable(format!("could not connect: {e}"))
                    } else {
                        SendError::unknown(format!("request failed: {e}"))
                    }
                })?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| SendError::unknown(format!("reading the response failed: {e}")))?;
            if !(200..300).contains(&status) {
                return Err(classify(status, &body));
            }
            let accepted: TwilioMessage = serde_json::from_slice(&body)
                .map_err(|e| SendError::unknown(format!("unreadable response: {e}")))?;
            Ok(accepted.sid)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_errors_are_read_and_sorted() {
        let body =
            br#"{"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let error = classify(400, body);
        assert!(!error.retryable);
        assert_eq!(error.message, "21211: The 'To' number +15005550001 is not a valid phone number.");
        let error = classify(429, br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#);
        assert!(error.retryable);
        assert_eq!(error.message, "20429: Too Many Requests");
        let error = classify(503, b"<html>bad gateway</html>");
        assert!(error.retryable);
        assert_eq!(error.message, "HTTP 503: <html>bad gateway</html>");
        assert!(!classify(401, br#"{"code": 20003, "message": "Authenticate"}"#).retryable);
    }

    #[test]
    fn whatsapp_numbers_are_prefixed() {
        assert_eq!(TwilioProvider::address(Channel::Whatsapp, "+628123"), "whatsapp:+628123");
        assert_eq!(TwilioProvider::address(Channel::Sms, "+628123"), "+628123");
    }

    #[tokio::test]
    async fn the_mock_answers_a_repeated_attempt_with_its_first_result() {
        let mock = MockProvider::new(MockOptions {
            latency_min: Duration::ZERO,
            latency_max: Duration::from_millis(1),
            ..MockOptions::default()
        });
        let message = Outbound {
            message_id: 7,
            attempt: 1,
            idempotency_key: idempotency_key(7, 1),
            channel: Channel::Sms,
            to: "+6281234567".into(),
            body: "hi".into(),
        };
        let first = mock.send(&message).await;
        let again = mock.send(&message).await;
        assert!(first.is_ok());
        assert_eq!(first, again);
        assert_eq!(mock.deliveries().len(), 1);
        assert_eq!(mock.requests(), 2);
        let next = Outbound { attempt: 2, idempotency_key: idempotency_key(7, 2), ..message.clone() };
        assert_ne!(mock.send(&next).await, first, "a new attempt is a new delivery");
        let bad = Outbound {
            message_id: 8,
            idempotency_key: idempotency_key(8, 1),
            to: INVALID_NUMBER.into(),
            ..message
        };
        assert!(!mock.send(&bad).await.unwrap_err().retryable);
    }
}
