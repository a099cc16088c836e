//! The Meta simulator's send limits, chosen failures and send counts, as WhatsApp Cloud API
//! applies them to `POST /{phone_number_id}/messages` (campaigns are built against these).
//!
//! A WhatsApp send passes these gates in order; the first that refuses answers Meta's error
//! JSON (`{"error": {"message": "(#code) title", "type": "OAuthException", "code",
//! "error_data": {"messaging_product": "whatsapp", "details"}, "fbtrace_id"}}`, no
//! `error_subcode`: Meta dropped it in v16), with the HTTP status Meta's error-code table
//! gives it:
//!
//! 1. **Throughput** of the sending number: at most `mps` sends in any one second (a sliding
//!    window: the times of the last `mps` sends, so it is exact under concurrency), else
//!    **130429** (HTTP 400, "Rate limit hit"). `default_mps` is 80 (Meta's default; 1,000
//!    after Meta's upgrade), settable per number; `0` means no cap. Every send that passes
//!    takes a slot, even if a later gate refuses it (Meta counts requests, not deliveries).
//! 2. **The recipient's chosen behaviour** (see [`RecipientBehaviour`]): one of Meta's errors
//!    ([`CLOUD_API_ERRORS`]) answered at once, or (`async`) accepted and then reported in a
//!    signed `failed` status webhook, as Meta reports 131049/131026 in practice; or a held
//!    answer (`timeout_ms`): the send is accepted and recorded (it has a wamid, it counts,
//!    its status webhooks go out) but the answer waits `timeout_ms`, so a client that times
//!    out and retries sends twice, which the duplicate count shows. `times: N` applies the
//!    behaviour to the next N sends to that recipient only.
//! 3. The template checks of [`super::meta_templates`] (132000, 132001, 132015, 132016).
//! 4. **Pair rate**: one accepted send from a number to the same recipient per pair window
//!    (default 6 s; `0` disables it), else **131056** (HTTP 400, "(Business Account,
//!    Consumer Account) pair rate limit hit").
//!
//! Recipients are matched by their digits: `+1 415-555-0100`, `+14155550100` and
//! `14155550100` are one recipient, and the counts name it `14155550100`.
//!
//! The counts ([`MetaStats`]): per number, the sends accepted and refused by each gate, and
//! the accepted sends per recipient; and the **duplicates**: template sends accepted from one
//! number to one recipient with the same template (name and language) beyond the first (a
//! campaign sends each recipient one message).
//!
//! Routes (merged into the simulators' router):
//!
//! - `GET /_sim/meta/behaviour`: the current [`MetaBehaviour`].
//! - `POST /_sim/meta/behaviour` with a [`MetaBehaviourUpdate`] (every field optional; a
//!   recipient or a number's `mps` set to `null` is removed): answers the new
//!   [`MetaBehaviour`], or 400 `{"error": "..."}` for an unknown error code or a behaviour
//!   that is neither an error nor a timeout.
//! - `POST /_sim/meta/behaviour/reset`: back to the defaults ([`MetaDefaults`]), no chosen
//!   failures, no per-number `mps`.
//! - `GET /_sim/meta/stats`: the [`MetaStats`].
//! - `POST /_sim/meta/stats/reset`: zeroes the counts and forgets the windows (throughput
//!   and pair times); the behaviour stays.
//!
//! Every gate takes one short lock (no lock is held across an await) and does O(1) work
//! per send.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Simulators;

/// One of Meta's send errors, as the simulator answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudApiError {
    /// Meta's `error.code`.
    pub code: i64,
    /// The HTTP status Meta answers it with.
    pub http_status: u16,
    /// The code's title (Meta's `message` is `(#code) title`).
    pub title: &'static str,
    /// `error.error_data.details`.
    pub details: &'static str,
}

/// The errors the simulator can answer, with Meta's HTTP status, title and details (from
/// Meta's Cloud API error-code table and its example payloads).
pub const CLOUD_API_ERRORS: &[CloudApiError] = &[
    CloudApiError {
        code: 130_429,
        http_status: 400,
        title: "Rate limit hit",
        details: "Message failed to send because there were too many messages sent from this \
                  phone number in a short period of time",
    },
    CloudApiError {
        code: 131_056,
        http_status: 400,
        title: "(Business Account, Consumer Account) pair rate limit hit",
        details: "Message failed to send because there were too many messages sent from this \
                  phone number to the same phone number in a short period of time.",
    },
    CloudApiError {
        code: 131_048,
        http_status: 400,
        title: "Spam rate limit hit",
        details: "Message failed to send because there are restrictions on how many messages \
                  can be sent from this phone number. This may be because too many previous \
                  messages were blocked or flagged as spam.",
    },
    CloudApiError {
        code: 131_049,
        http_status: 400,
        title: "This message was not delivered to maintain healthy ecosystem engagement.",
        details: "In order to maintain a healthy ecosystem engagement, the message failed to \
                  be delivered.",
    },
    CloudApiError {
        code: 131_026,
        http_status: 400,
        title: "Message Undeliverable",
        details: "Message Undeliverable.",
    },
    CloudApiError {
        code: 131_047,
        http_status: 400,
        title: "Re-engagement message",
        details: "Message failed to send because more than 24 hours have passed since the \
                  customer last replied to this number.",
    },
    CloudApiError {
        code: 131_050,
        http_status: 400,
        title: "Unable to deliver the message. This recipient has chosen to stop receiving \
                marketing messages on WhatsApp from your business.",
        details: "Unable to deliver the message. This recipient has chosen to stop receiving \
                  marketing messages on WhatsApp from your business.",
    },
    CloudApiError {
        code: 132_015,
        http_status: 400,
        title: "Template is Paused",
        details: "Template is paused due to low quality so it cannot be sent in a template \
                  message.",
    },
    CloudApiError {
        code: 132_016,
        http_status: 400,
        title: "Template is Disabled",
        details: "Template has been paused too many times due to low quality and is now \
                  permanently disabled.",
    },
    CloudApiError {
        code: 368,
        http_status: 403,
        title: "Temporarily blocked for policies violations",
        details: "The WhatsApp Business Account associated with the app has been restricted \
                  or disabled for violating a platform policy.",
    },
    CloudApiError {
        code: 131_000,
        http_status: 500,
        title: "Something went wrong",
        details: "Message failed to send due to an unknown error.",
    },
    CloudApiError {
        code: 131_016,
        http_status: 503,
        title: "Service unavailable",
        details: "A service is temporarily unavailable.",
    },
];

/// The simulator's entry for Meta's `code`, if it has one.
pub fn cloud_api_error(code: i64) -> Option<&'static CloudApiError> {
    CLOUD_API_ERRORS.iter().find(|error| error.code == code)
}

const THROUGHPUT: CloudApiError = CLOUD_API_ERRORS[0];
const PAIR_RATE: CloudApiError = CLOUD_API_ERRORS[1];

impl CloudApiError {
    /// Graph's error document for this error.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": format!("(#{}) {}", self.code, self.title),
            "type": "OAuthException",
            "code": self.code,
            "error_data": { "messaging_product": "whatsapp", "details": self.details },
            "fbtrace_id": "AsimFbTrace0000",
        }})
    }

    /// The error document with Meta's HTTP status.
    pub fn response(&self) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }

    /// The `errors[]` entry of a `failed` status webhook.
    pub fn webhook_error(&self) -> Value {
        json!({
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": { "details": self.details },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        })
    }
}

/// A recipient's digits: how recipients are matched and counted.
pub fn normalise_recipient(to: &str) -> String {
    to.chars().filter(char::is_ascii_digit).collect()
}

/// What the simulator does with the next sends to one recipient: exactly one of `error`
/// or `timeout_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientBehaviour {
    /// Answer Meta's error with this code (one of [`CLOUD_API_ERRORS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i64>,
    /// With `error`: accept the send (200 and a wamid), then post a signed `failed` status
    /// webhook carrying the error, instead of answering it.
    #[serde(default, rename = "async", skip_serializing_if = "std::ops::Not::not")]
    pub asynchronous: bool,
    /// Accept the send but hold the answer this long (a client timeout; Meta did send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Only the next N sends to the recipient (then it behaves normally); unset: every send.
    /// A send past the throughput gate uses one, even if the template or pair-rate gate then
    /// refuses it. The current behaviour shows how many are left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl RecipientBehaviour {
    /// Answer Meta's error `code` to every send.
    pub fn error(code: i64) -> Self {
        Self {
            error: Some(code),
            ..Self::default()
        }
    }

    /// Accept every send, but answer only after `hold`.
    pub fn timeout(hold: Duration) -> Self {
        Self {
            timeout_ms: Some(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX)),
            ..Self::default()
        }
    }

    /// Report the error in a `failed` status webhook after accepting the send.
    pub fn asynchronous(mut self) -> Self {
        self.asynchronous = true;
        self
    }

    /// Only the next `n` sends.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn check(&self) -> Result<(), String> {
        match (self.error, self.timeout_ms) {
            (Some(code), None) if cloud_api_error(code).is_none() => Err(format!(
                "the simulator does not answer error {code}; it knows {:?}",
                CLOUD_API_ERRORS.iter().map(|e| e.code).collect::<Vec<_>>()
            )),
            (Some(_), None) => Ok(()),
            (None, Some(_)) if self.asynchronous => {
                Err("`async` goes with `error`, not with `timeout_ms`".to_owned())
            }
            (None, Some(_)) => Ok(()),
            _ => Err("a recipient's behaviour is an `error` or a `timeout_ms`".to_owned()),
        }
        .and_then(|()| match self.times {
            Some(0) => Err("`times` is at least 1".to_owned()),
            _ => Ok(()),
        })
    }
}

/// The settings a reset returns to. devstack sets its own (no pair rate) with
/// [`Simulators::set_meta_defaults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaDefaults {
    /// Sends per second per number (`0`: no cap). Meta's default: 80.
    pub default_mps: u32,
    /// One send per number and recipient per this many milliseconds (`0`: no pair rate).
    pub pair_window_ms: u64,
    /// Delay before each status webhook.
    pub status_delay_ms: u64,
    /// Whether sends get status webhooks at all.
    pub status_webhooks: bool,
}

impl Default for MetaDefaults {
    fn default() -> Self {
        Self {
            default_mps: 80,
            pair_window_ms: 6_000,
            status_delay_ms: 50,
            status_webhooks: true,
        }
    }
}

/// A change to the behaviour (`POST /_sim/meta/behaviour`); absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaBehaviourUpdate {
    /// Recipient (with or without `+`) → behaviour; `null` (or `{}`) returns it to normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<BTreeMap<String, Option<RecipientBehaviour>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mps: Option<u32>,
    /// Phone-number id → its sends per second (`0`: no cap); `null` returns it to
    /// `default_mps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps: Option<BTreeMap<String, Option<u32>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_webhooks: Option<bool>,
}

/// The current behaviour (`GET /_sim/meta/behaviour`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaBehaviour {
    pub default_mps: u32,
    pub mps: BTreeMap<String, u32>,
    pub pair_window_ms: u64,
    pub status_delay_ms: u64,
    pub status_webhooks: bool,
    /// By the recipient's digits.
    pub recipients: BTreeMap<String, RecipientBehaviour>,
}

/// One number's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberStats {
    /// Sends accepted (answered with a wamid; held and `async` failures included).
    pub accepted: u64,
    /// Sends refused with 130429 (throughput).
    pub rate_limited: u64,
    /// Sends refused with 131056 (pair rate).
    pub pair_limited: u64,
    /// Chosen failures: errors answered, and `async` failures reported by webhook.
    pub failed: u64,
    /// Accepted sends whose answer was held (`timeout_ms`).
    pub held: u64,
    /// Accepted sends per recipient (by its digits).
    pub recipients: BTreeMap<String, u64>,
}

/// A recipient that got one template more than once from one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateSend {
    pub phone_number_id: String,
    pub to: String,
    /// `name/language`.
    pub template: String,
    /// Accepted sends of it (at least 2).
    pub sends: u64,
}

/// The counts since the last reset (`GET /_sim/meta/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaStats {
    /// Totals over every number.
    pub accepted: u64,
    pub rate_limited: u64,
    pub pair_limited: u64,
    pub failed: u64,
    pub held: u64,
    /// Accepted template sends beyond the first of one template from one number to one
    /// recipient (`0` when every recipient got each template once).
    pub duplicates: u64,
    /// The number and recipient of each duplicate.
    pub duplicated: Vec<DuplicateSend>,
    /// By phone-number id.
    pub numbers: BTreeMap<String, NumberStats>,
}

impl MetaStats {
    /// One number's counts (zero when it sent nothing).
    pub fn number(&self, phone_number_id: &str) -> NumberStats {
        self.numbers
            .get(phone_number_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Accepted sends from `phone_number_id` to `to` (with or without `+`).
    pub fn sent_to(&self, phone_number_id: &str, to: &str) -> u64 {
        self.numbers
            .get(phone_number_id)
            .and_then(|n| n.recipients.get(&normalise_recipient(to)))
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    accepted: u64,
    rate_limited: u64,
    pair_limited: u64,
    failed: u64,
    held: u64,
}

#[derive(Debug, Default)]
struct PairState {
    last_accepted: Option<Instant>,
    accepted: u64,
    /// `name/language` → accepted sends.
    templates: HashMap<String, u64>,
}

#[derive(Debug, Default)]
struct NumberState {
    /// Times of the latest sends that took a throughput slot, oldest first.
    window: VecDeque<Instant>,
    counts: Counts,
    recipients: HashMap<String, PairState>,
}

#[derive(Debug)]
struct Inner {
    defaults: Mutex<MetaDefaults>,
    default_mps: AtomicU32,
    pair_window_ms: AtomicU64,
    status_delay_ms: AtomicU64,
    status_webhooks: AtomicBool,
    mps: RwLock<HashMap<String, u32>>,
    recipients: Mutex<HashMap<String, RecipientBehaviour>>,
    numbers: Mutex<HashMap<String, NumberState>>,
    duplicates: AtomicU64,
}

/// The limits' settings and counts, shared by every clone of the simulators.
#[derive(Debug, Clone)]
pub struct MetaLimits {
    inner: Arc<Inner>,
}

impl Default for MetaLimits {
    fn default() -> Self {
        let defaults = MetaDefaults::default();
        Self {
            inner: Arc::new(Inner {
                defaults: Mutex::new(defaults),
                default_mps: AtomicU32::new(defaults.default_mps),
                pair_window_ms: AtomicU64::new(defaults.pair_window_ms),
                status_delay_ms: AtomicU64::new(defaults.status_delay_ms),
                status_webhooks: AtomicBool::new(defaults.status_webhooks),
                mps: RwLock::default(),
                recipients: Mutex::default(),
                numbers: Mutex::default(),
                duplicates: AtomicU64::new(0),
            }),
        }
    }
}

/// A lock that a panic elsewhere does not make unusable (the counts stay consistent: every
/// update is a few integer writes).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a send was refused before it was accepted.
pub(super) type Refusal = &'static CloudApiError;

impl MetaLimits {
    fn apply_defaults(&self, defaults: MetaDefaults) {
        let inner = &self.inner;
        inner
            .default_mps
            .store(defaults.default_mps, Ordering::Relaxed);
        inner
            .pair_window_ms
            .store(defaults.pair_window_ms, Ordering::Relaxed);
        inner
            .status_delay_ms
            .store(defaults.status_delay_ms, Ordering::Relaxed);
        inner
            .status_webhooks
            .store(defaults.status_webhooks, Ordering::Relaxed);
    }

    /// Sets what a reset returns to, and applies it now.
    pub fn set_defaults(&self, defaults: MetaDefaults) {
        *lock(&self.inner.defaults) = defaults;
        self.apply_defaults(defaults);
    }

    /// Back to the defaults: no chosen failures, no per-number `mps`.
    pub fn reset_behaviour(&self) {
        let defaults = *lock(&self.inner.defaults);
        self.apply_defaults(defaults);
        lock(&self.inner.recipients).clear();
        self.inner
            .mps
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Applies `update`; nothing changes when it is refused.
    pub fn update(&self, update: MetaBehaviourUpdate) -> Result<MetaBehaviour, String> {
        let recipients: Vec<(String, Option<RecipientBehaviour>)> = update
            .recipients
            .unwrap_or_default()
            .into_iter()
            .map(|(to, behaviour)| {
                let digits = normalise_recipient(&to);
                if digits.is_empty() {
                    return Err(format!("recipient `{to}` has no digits"));
                }
                let behaviour = behaviour.filter(|b| *b != RecipientBehaviour::default());
                if let Some(behaviour) = &behaviour {
                    behaviour
                        .check()
                        .map_err(|e| format!("recipient `{to}`: {e}"))?;
                }
                Ok((digits, behaviour))
            })
            .collect::<Result<_, String>>()?;
        let inner = &self.inner;
        {
            let mut chosen = lock(&inner.recipients);
            for (to, behaviour) in recipients {
                match behaviour {
                    Some(behaviour) => chosen.insert(to, behaviour),
                    None => chosen.remove(&to),
                };
            }
        }
        if let Some(mps) = update.mps {
            let mut per_number = inner.mps.write().unwrap_or_else(PoisonError::into_inner);
            for (number, cap) in mps {
                match cap {
                    Some(cap) => per_number.insert(number, cap),
                    None => per_number.remove(&number),
                };
            }
        }
        if let Some(mps) = update.default_mps {
            inner.default_mps.store(mps, Ordering::Relaxed);
        }
        if let Some(ms) = update.pair_window_ms {
            inner.pair_window_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(ms) = update.status_delay_ms {
            inner.status_delay_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(on) = update.status_webhooks {
            inner.status_webhooks.store(on, Ordering::Relaxed);
        }
        Ok(self.behaviour())
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> MetaBehaviour {
        let inner = &self.inner;
        MetaBehaviour {
            default_mps: inner.default_mps.load(Ordering::Relaxed),
            mps: inner
                .mps
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(number, cap)| (number.clone(), *cap))
                .collect(),
            pair_window_ms: inner.pair_window_ms.load(Ordering::Relaxed),
            status_delay_ms: inner.status_delay_ms.load(Ordering::Relaxed),
            status_webhooks: inner.status_webhooks.load(Ordering::Relaxed),
            recipients: lock(&inner.recipients)
                .iter()
                .map(|(to, behaviour)| (to.clone(), behaviour.clone()))
                .collect(),
        }
    }

    /// The delay before each status webhook, or `None` when they are off.
    pub(super) fn status_delay(&self) -> Option<Duration> {
        self.inner
            .status_webhooks
            .load(Ordering::Relaxed)
            .then(|| Duration::from_millis(self.inner.status_delay_ms.load(Ordering::Relaxed)))
    }

    fn mps_for(&self, number: &str) -> u32 {
        let per_number = self
            .inner
            .mps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(number)
            .copied();
        per_number.unwrap_or_else(|| self.inner.default_mps.load(Ordering::Relaxed))
    }

    /// Gate 1: takes one of `number`'s slots of the current second, or refuses with 130429.
    pub(super) fn take_throughput(&self, number: &str) -> Result<(), Refusal> {
        let cap = self.mps_for(number);
        if cap == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut numbers = lock(&self.inner.numbers);
        let state = numbers.entry(number.to_owned()).or_default();
        while state
            .window
            .front()
            .is_some_and(|sent| now.saturating_duration_since(*sent) >= Duration::from_secs(1))
        {
            state.window.pop_front();
        }
        if state.window.len() >= usize::try_from(cap).unwrap_or(usize::MAX) {
            state.counts.rate_limited += 1;
            return Err(&THROUGHPUT);
        }
        state.window.push_back(now);
        Ok(())
    }

    /// Gate 2: the recipient's chosen behaviour for this send, using up one of its `times`.
    pub(super) fn chosen(&self, to: &str) -> Option<RecipientBehaviour> {
        let mut recipients = lock(&self.inner.recipients);
        let behaviour = recipients.get_mut(to)?;
        let chosen = behaviour.clone();
        if let Some(left) = behaviour.times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                recipients.remove(to);
            }
        }
        Some(chosen)
    }

    /// Counts a chosen error answered to a send from `number`.
    pub(super) fn count_failed(&self, number: &str) {
        lock(&self.inner.numbers)
            .entry(number.to_owned())
            .or_default()
            .counts
            .failed += 1;
    }

    /// Gate 4 and the counts: accepts the send from `number` to `to` (digits), or refuses it
    /// with 131056. `template` is `name/language` for a template send.
    pub(super) fn admit(
        &self,
        number: &str,
        to: &str,
        template: Option<&str>,
        chosen: Option<&RecipientBehaviour>,
    ) -> Result<(), Refusal> {
        let window = Duration::from_millis(self.inner.pair_window_ms.load(Ordering::Relaxed));
        let now = Instant::now();
        let mut numbers = lock(&self.inner.numbers);
        let state = numbers.entry(number.to_owned()).or_default();
        let pair = state.recipients.entry(to.to_owned()).or_default();
        let too_soon = pair
            .last_accepted
            .is_some_and(|last| now.saturating_duration_since(last) < window);
        if too_soon {
            state.counts.pair_limited += 1;
            return Err(&PAIR_RATE);
        }
        pair.last_accepted = Some(now);
        pair.accepted += 1;
        state.counts.accepted += 1;
        if let Some(chosen) = chosen {
            if chosen.timeout_ms.is_some() {
                state.counts.held += 1;
            }
            if chosen.asynchronous {
                state.counts.failed += 1;
            }
        }
        if let Some(template) = template {
            let sends = pair.templates.entry(template.to_owned()).or_default();
            *sends += 1;
            if *sends > 1 {
                self.inner.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The counts since the last reset.
    pub fn stats(&self) -> MetaStats {
        let numbers = lock(&self.inner.numbers);
        let mut stats = MetaStats {
            duplicates: self.inner.duplicates.load(Ordering::Relaxed),
            ..MetaStats::default()
        };
        for (number, state) in numbers.iter() {
            let counts = state.counts;
            stats.accepted += counts.accepted;
            stats.rate_limited += counts.rate_limited;
            stats.pair_limited += counts.pair_limited;
            stats.failed += counts.failed;
            stats.held += counts.held;
            let mut recipients = BTreeMap::new();
            for (to, pair) in &state.recipients {
                if pair.accepted > 0 {
                    recipients.insert(to.clone(), pair.accepted);
                }
                for (template, sends) in &pair.templates {
                    if *sends > 1 {
                        stats.duplicated.push(DuplicateSend {
                            phone_number_id: number.clone(),
                            to: to.clone(),
                            template: template.clone(),
                            sends: *sends,
                        });
                    }
                }
            }
            stats.numbers.insert(
                number.clone(),
                NumberStats {
                    accepted: counts.accepted,
                    rate_limited: counts.rate_limited,
                    pair_limited: counts.pair_limited,
                    failed: counts.failed,
                    held: counts.held,
                    recipients,
                },
            );
        }
        stats.duplicated.sort_by(|a, b| {
            (&a.phone_number_id, &a.to, &a.template).cmp(&(&b.phone_number_id, &b.to, &b.template))
        });
        stats
    }

    /// Zeroes the counts and forgets the throughput windows and pair times.
    pub fn reset_stats(&self) {
        let mut numbers = lock(&self.inner.numbers);
        numbers.clear();
        self.inner.duplicates.store(0, Ordering::Relaxed);
    }
}

impl Simulators {
    /// The Meta simulator's limits, chosen failures and counts.
    pub fn meta_limits(&self) -> &MetaLimits {
        &self.limits
    }

    /// Changes the Meta simulator's behaviour, as `POST /_sim/meta/behaviour` does.
    pub fn configure_meta(&self, update: MetaBehaviourUpdate) -> Result<MetaBehaviour, String> {
        self.limits.update(update)
    }

    /// What sends to `to` (with or without `+`) get from now on (see [`RecipientBehaviour`]).
    pub fn set_meta_recipient(
        &self,
        to: &str,
        behaviour: RecipientBehaviour,
    ) -> Result<(), String> {
        let update = MetaBehaviourUpdate {
            recipients: Some(BTreeMap::from([(to.to_owned(), Some(behaviour))])),
            ..MetaBehaviourUpdate::default()
        };
        self.limits.update(update).map(|_| ())
    }

    /// Every number's sends per second (`0`: no cap).
    pub fn set_meta_default_mps(&self, mps: u32) {
        self.limits.inner.default_mps.store(mps, Ordering::Relaxed);
    }

    /// One number's sends per second (`0`: no cap).
    pub fn set_meta_mps(&self, phone_number_id: &str, mps: u32) {
        self.limits
            .inner
            .mps
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(phone_number_id.to_owned(), mps);
    }

    /// One send per number and recipient per `window` (`Duration::ZERO`: no pair rate).
    pub fn set_meta_pair_window(&self, window: Duration) {
        self.limits.inner.pair_window_ms.store(
            u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The delay before each status webhook.
    pub fn set_meta_status_delay(&self, delay: Duration) {
        self.limits.inner.status_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Turns the status webhooks of sends on or off.
    pub fn set_meta_status_webhooks(&self, on: bool) {
        self.limits
            .inner
            .status_webhooks
            .store(on, Ordering::Relaxed);
    }

    /// Sets what a behaviour reset returns to, and applies it now.
    pub fn set_meta_defaults(&self, defaults: MetaDefaults) {
        self.limits.set_defaults(defaults);
    }

    /// Back to the defaults, as `POST /_sim/meta/behaviour/reset` does.
    pub fn reset_meta_behaviour(&self) {
        self.limits.reset_behaviour();
    }

    /// The counts, as `GET /_sim/meta/stats` answers them.
    pub fn meta_stats(&self) -> MetaStats {
        self.limits.stats()
    }

    /// Zeroes the counts, as `POST /_sim/meta/stats/reset` does.
    pub fn reset_meta_stats(&self) {
        self.limits.reset_stats();
    }
}

/// The control routes, merged into the simulators' router.
pub fn router() -> Router<Simulators> {
    Router::new()
        .route(
            "/_sim/meta/behaviour",
            get(get_behaviour).post(post_behaviour),
        )
        .route("/_sim/meta/behaviour/reset", post(reset_behaviour))
        .route("/_sim/meta/stats", get(get_stats))
        .route("/_sim/meta/stats/reset", post(reset_stats))
}

async fn get_behaviour(State(sim): State<Simulators>) -> Json<MetaBehaviour> {
    Json(sim.limits.behaviour())
}

async fn post_behaviour(State(sim): State<Simulators>, body: axum::body::Bytes) -> Response {
    let update = match serde_json::from_slice::<MetaBehaviourUpdate>(&body) {
        Ok(update) => update,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("not a behaviour update: {error}") })),
            )
                .into_response();
        }
    };
    match sim.limits.update(update) {
        Ok(behaviour) => Json(behaviour).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response(),
    }
}

async fn reset_behaviour(State(sim): State<Simulators>) -> Json<MetaBehaviour> {
    sim.limits.reset_behaviour();
    Json(sim.limits.behaviour())
}

async fn get_stats(State(sim): State<Simulators>) -> Json<MetaStats> {
    Json(sim.limits.stats())
}

async fn reset_stats(State(sim): State<Simulators>) -> Json<MetaStats> {
    sim.limits.reset_stats();
    Json(sim.limits.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throughput_window_is_exact_under_concurrency() {
        let limits = MetaLimits::default();
        limits
            .update(MetaBehaviourUpdate {
                default_mps: Some(50),
                ..MetaBehaviourUpdate::default()
            })
            .expect("update");
        let taken = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..40)
                            .filter(|_| limits.take_throughput("1065403522429220").is_ok())
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .sum::<usize>()
        });
        assert_eq!(taken, 50);
        assert_eq!(limits.stats().number("1065403522429220").rate_limited, 270);
    }

    #[test]
    fn recipients_match_by_their_digits() {
        assert_eq!(normalise_recipient("+1 415-555-0100"), "14155550100");
        assert_eq!(normalise_recipient("14155550100"), "14155550100");
    }

    #[test]
    fn a_behaviour_is_an_error_meta_has_or_a_timeout() {
        let limits = MetaLimits::default();
        let refused = |behaviour: RecipientBehaviour| {
            limits
                .update(MetaBehaviourUpdate {
                    recipients: Some(BTreeMap::from([("+1".to_owned(), Some(behaviour))])),
                    ..MetaBehaviourUpdate::default()
                })
                .is_err()
        };
        assert!(refused(RecipientBehaviour::error(999_999)));
        assert!(refused(RecipientBehaviour {
            error: Some(131_049),
            timeout_ms: Some(5),
            ..RecipientBehaviour::default()
        }));
        assert!(refused(
            RecipientBehaviour::timeout(Duration::from_millis(5)).asynchronous()
        ));
        assert!(refused(RecipientBehaviour::error(131_026).times(0)));
        assert!(!refused(RecipientBehaviour::error(131_026).times(1)));
        assert!(limits.behaviour().recipients.contains_key("1"));
    }

    #[test]
    fn every_error_the_simulator_answers_is_in_the_send_table() {
        // 131048 (spam rate limit) is not in the send table yet: it is classed Permanent.
        for error in CLOUD_API_ERRORS.iter().filter(|e| e.code != 131_048) {
            assert!(
                shared::meta::errors::meaning(error.code).is_some(),
                "{} is not in shared::meta::errors",
                error.code
            );
        }
    }
}
