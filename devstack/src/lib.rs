//! devstack: the whole system on one machine. It hosts every HTTP function's routes on one
//! port, exactly as in AWS (the dashboard API, the webhook at `/webhook`), a local queue
//! consumer that feeds the conversation worker in FIFO order, and provider simulators for
//! Meta and OpenAI under `/_sim`, against a local PostgreSQL it starts itself when
//! `DATABASE_URL` is unset.

pub mod bench;
pub mod postgres;
pub mod webchat_demo;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit};
use conversation_worker::{OptOutWords, WorkerState};
use conversations::ConversationsState;
use extraction_worker::{ExtractionConfig, ExtractionState};
use secrecy::SecretString;
use shared::{
    api::{ApiState, layers},
    jobs::{
        ExtractionJob, ExtractionQueue, Lifter, LifterConfig, LocalQueue, Queue, ReplyJob,
        ReplyQueue,
    },
    meta::graph::{Graph, GraphConfig},
    openai::{OpenAi, OpenAiConfig},
};
use webhook::{WebchatLimits, WebhookSecrets, WebhookState};

pub use testkit::simulators::google::{self as google_sim, GoogleSim};
/// The provider simulators live in `testkit` (`testkit::simulators`), so devstack and the
/// tests share one set of Meta and OpenAI fakes.
pub use testkit::simulators::{self, Simulators};

/// Meta's app secret devstack signs and checks webhooks with when `META_APP_SECRET` is unset.
pub const DEV_META_APP_SECRET: &str = "devstack-meta-app-secret";
/// Meta's app id of devstack's resumable uploads when `META_APP_ID` is unset.
pub const DEV_META_APP_ID: &str = "1234567890";
/// The verify token of devstack's webhook when `META_VERIFY_TOKEN` is unset.
pub const DEV_META_VERIFY_TOKEN: &str = "devstack-verify-token";

/// Where the providers are: the simulators by default.
#[derive(Debug, Clone)]
pub struct Providers {
    pub openai: OpenAiConfig,
    /// The extraction job's model, thresholds and triggers.
    pub extraction: ExtractionConfig,
    pub graph: GraphConfig,
    pub meta_app_secret: String,
    pub meta_verify_token: String,
    /// Google (OAuth and Calendar): the simulator unless `GOOGLE_CLIENT_ID` is set.
    pub google: shared::google::GoogleConfig,
    /// The Meta simulator's send limits and status webhooks ([`simulators::meta_limits`]):
    /// Meta's 80 sends per second per number, but no pair rate (one send per 6 s to a
    /// recipient), as a conversation's replies often come closer than that. `devstack`
    /// reads `META_SIM_MPS` and `META_SIM_PAIR_WINDOW_MS`; `POST /_sim/meta/behaviour`
    /// changes them while it runs.
    pub meta_sim: simulators::MetaDefaults,
}

impl Providers {
    /// Everything at devstack's own simulators on `base_url`.
    pub fn simulated(base_url: &str) -> Self {
        Self {
            openai: OpenAiConfig {
                base_url: format!("{base_url}/_sim/openai"),
                api_key: SecretString::from("sk-devstack"),
                timeout: Duration::from_secs(10),
            },
            extraction: ExtractionConfig::default(),
            graph: GraphConfig::for_base_url(&format!("{base_url}/_sim/meta")),
            meta_app_secret: DEV_META_APP_SECRET.to_owned(),
            meta_verify_token: DEV_META_VERIFY_TOKEN.to_owned(),
            google: GoogleSim::config(base_url),
            meta_sim: simulators::MetaDefaults {
                pair_window_ms: 0,
                ..simulators::MetaDefaults::default()
            },
        }
    }
}

/// Every function's state, wired together in one process.
#[derive(Debug, Clone)]
pub struct Stack {
    pub api: ApiState,
    pub agents: agents::AgentsState,
    pub queue: LocalQueue<ReplyJob>,
    pub worker: WorkerState,
    pub webhook: WebhookState,
    pub conversations: ConversationsState,
    pub templates: templates::TemplatesState,
    pub simulators: Simulators,
    /// The extraction jobs' in-process queue (the sweep and `POST /conversations/{id}/extract`
    /// publish to it).
    pub extraction_queue: LocalQueue<ExtractionJob>,
    pub extraction: ExtractionState,
    pub meetings: meetings::MeetingsState,
    /// Campaigns: the API, the start and send queues (in-process, or SQS with
    /// [`Stack::with_campaign_sqs`]), the engine, and the local scheduler that fires
    /// SCHEDULED campaigns at their time (unless [`Stack::with_campaign_scheduler`] gives
    /// them to EventBridge Scheduler).
    pub campaigns: campaigns::CampaignsState,
    pub campaign_starts: Queue<shared::jobs::CampaignStartJob>,
    pub campaign_sends: Queue<shared::jobs::SendJob>,
    pub campaign_start: campaign_start::CampaignStartState,
    pub send_worker: send_worker::SendState,
    pub scheduler: shared::scheduler::LocalScheduler,
    /// The domain events' in-process queue: the events sweep publishes to it, EVENT
    /// campaigns consume it.
    pub events_queue: LocalQueue<shared::events::EventJob>,
    pub google_sim: GoogleSim,
    /// Where this stack listens (the demo page's script origin).
    pub base_url: String,
}

impl Stack {
    /// Wires the functions; `base_url` is where this stack will listen (the simulators post
    /// status webhooks back to it).
    pub fn new(api: ApiState, http: reqwest::Client, base_url: &str, providers: Providers) -> Self {
        let queue = LocalQueue::new();
        let graph = Graph::new(http.clone(), providers.graph.clone());
        let google = shared::google::Google::new(http.clone(), providers.google.clone())
            .unwrap_or_else(|e| panic!("the Google client's TLS set-up failed: {e}"));
        let worker = WorkerState {
            pool: api.pool.clone(),
            openai: OpenAi::new(http.clone(), providers.openai.clone()),
            graph: graph.clone(),
            sealing_key: api.sealing_key.clone(),
            opt_out: OptOutWords::default(),
            retry_queue: None,
            lifter: devstack_lifter(),
            google: Some(google.clone()),
        };
        let webhook = WebhookState {
            pool: api.pool.clone(),
            queue: ReplyQueue::Local(queue.clone()),
            secrets: Arc::new(WebhookSecrets {
                app_secret: SecretString::from(providers.meta_app_secret.clone()),
                verify_token: SecretString::from(providers.meta_verify_token.clone()),
            }),
            webchat: WebchatLimits::default(),
        };
        let agents = agents::AgentsState {
            api: api.clone(),
            graph: graph.clone(),
        };
        let templates = templates::TemplatesState {
            api: api.clone(),
            graph: graph.clone(),
            meta_app_id: shared::config::optional_var("META_APP_ID")
                .ok()
                .flatten()
                .or_else(|| Some(DEV_META_APP_ID.to_owned())),
            media_http: http.clone(),
            // devstack serves sample media on its own (loopback) address.
            media_limits: templates::MediaLimits {
                allow_private_hosts: true,
                ..templates::MediaLimits::default()
            },
        };
        let extraction_queue = LocalQueue::new();
        let extraction = ExtractionState {
            pool: api.pool.clone(),
            openai: OpenAi::new(http.clone(), providers.openai.clone()),
            config: providers.extraction.clone(),
            queue: ExtractionQueue::Local(extraction_queue.clone()),
            retry_queue: None,
            lifter: devstack_lifter(),
        };
        let conversations = ConversationsState {
            api: api.clone(),
            graph: graph.clone(),
            extraction_queue: ExtractionQueue::Local(extraction_queue.clone()),
        };
        let meetings = meetings::MeetingsState {
            api: api.clone(),
            google: Some(google),
            graph,
        };
        let campaign_starts = Queue::Local(LocalQueue::new());
        let campaign_sends = Queue::Local(LocalQueue::new());
        let scheduler = shared::scheduler::LocalScheduler::new();
        let campaigns = campaigns::CampaignsState {
            api: api.clone(),
            starts: campaign_starts.clone(),
            scheduler: shared::scheduler::CampaignScheduler::Local(scheduler.clone()),
        };
        let campaign_start = campaign_start::CampaignStartState {
            pool: api.pool.clone(),
            sends: campaign_sends.clone(),
            starts: campaign_starts.clone(),
            retry_queue: None,
            events_retry_queue: None,
            lifter: devstack_lifter(),
        };
        let send_worker = send_worker::SendState {
            pool: api.pool.clone(),
            graph: meetings.graph.clone(),
            sealing_key: api.sealing_key.clone(),
            config: send_worker::SendConfig::default(),
            retry_queue: None,
            lifter: devstack_lifter(),
            contexts: Default::default(),
        };
        let simulators = Simulators::new(
            format!("{base_url}/webhook"),
            providers.meta_app_secret,
            http,
        );
        simulators.set_meta_defaults(providers.meta_sim);
        Self {
            api,
            agents,
            queue,
            worker,
            webhook,
            conversations,
            templates,
            simulators,
            extraction_queue,
            extraction,
            meetings,
            campaigns,
            campaign_starts,
            campaign_sends,
            campaign_start,
            send_worker,
            scheduler,
            events_queue: LocalQueue::new(),
            google_sim: GoogleSim::default(),
            base_url: base_url.to_owned(),
        }
    }

    /// Uses a real SQS FIFO queue (or moto's) instead of the in-process one: the webhook
    /// publishes to it, and [`Stack::spawn_worker`] polls it like Lambda's event source.
    pub fn with_sqs(mut self, queue: shared::jobs::SqsQueue) -> Self {
        self.webhook.queue = ReplyQueue::Sqs(queue.clone());
        self.worker.retry_queue = Some(queue);
        self
    }

    /// Uses real SQS queues (or moto's) for the campaign engine: the campaigns API and the
    /// sweep publish start jobs to `starts` (FIFO), the fan-out publishes send jobs to
    /// `sends` (standard, a message group per tenant), and [`Stack::spawn_campaigns`] polls
    /// both like Lambda's event source mappings.
    pub fn with_campaign_sqs(
        mut self,
        starts: shared::jobs::SqsQueue,
        sends: shared::jobs::SqsQueue,
    ) -> Self {
        self.campaign_starts = Queue::Sqs(starts.clone());
        self.campaign_sends = Queue::Sqs(sends.clone());
        self.campaigns.starts = self.campaign_starts.clone();
        self.campaign_start.starts = self.campaign_starts.clone();
        self.campaign_start.sends = self.campaign_sends.clone();
        self.campaign_start.retry_queue = Some(starts);
        self.send_worker.retry_queue = Some(sends);
        self
    }

    /// Gives SCHEDULED campaigns to `scheduler` (EventBridge Scheduler, or moto's): its
    /// schedules fire into the campaign-start queue in AWS, not in devstack, so use it
    /// with [`Stack::with_campaign_sqs`] on the queue the schedules target.
    pub fn with_campaign_scheduler(
        mut self,
        scheduler: shared::scheduler::CampaignScheduler,
    ) -> Self {
        self.campaigns.scheduler = scheduler;
        self
    }

    /// Every route, each function with its own body limit, and the common layers once. Serve
    /// it with `into_make_service_with_connect_info::<SocketAddr>()`: the webchat's
    /// per-address limits use the socket address.
    pub fn app(&self) -> Router {
        let api_limit = DefaultBodyLimit::max(layers::API_BODY_LIMIT);
        let merged = Router::new()
            .merge(agents::app(self.agents.clone()).layer(api_limit))
            .merge(conversations::app(self.conversations.clone()).layer(api_limit))
            .merge(templates::app(self.templates.clone()).layer(api_limit))
            // The CSV import's own, larger limit sits inside this one and wins.
            .merge(contacts::app(self.api.clone()).layer(api_limit))
            .merge(meetings::app(self.meetings.clone()).layer(api_limit))
            .merge(
                campaigns::app(self.campaigns.clone())
                    .layer(DefaultBodyLimit::max(campaigns::BODY_LIMIT)),
            )
            .merge(self.google_sim.clone().router())
            .merge(webhook::app(self.webhook.clone()))
            .merge(self.simulators.clone().router())
            .merge(webchat_demo::router(self.base_url.clone()));
        layers::finish(merged, webhook::BODY_LIMIT)
    }

    /// The local stand-in for SQS → Lambda: batches from the in-process FIFO queue (or SQS,
    /// see [`Stack::with_sqs`]) go through the same batch lifter as in Lambda, so a failed
    /// job is retried after its backoff, holds back its customer's later messages, and ends
    /// in the queue's dead letters after 5 receives.
    pub fn spawn_worker(&self) -> tokio::task::JoinHandle<()> {
        let queue = self.queue.clone();
        let worker = self.worker.clone();
        if let Some(sqs) = worker.retry_queue.clone() {
            return tokio::spawn(async move {
                loop {
                    if let Err(error) =
                        conversation_worker::poll_sqs_once(&worker, &sqs, None).await
                    {
                        tracing::warn!(%error, "polling SQS failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }
        tokio::spawn(async move {
            let lifter = Lifter::new(worker.lifter.clone(), None);
            let worker = &worker;
            loop {
                lifter
                    .poll_local(&queue, |job: ReplyJob| async move {
                        conversation_worker::handle(worker, &job).await
                    })
                    .await;
            }
        })
    }
}

impl Stack {
    /// The events sweep, as the `events` schedule runs it in AWS: every 2 seconds, quiet
    /// conversations are announced (`CONVERSATION_ENDED`) and unpublished domain events are
    /// published to the in-process events queue, through the same `shared::events::sweep`.
    pub fn spawn_events_sweep(
        &self,
        queue: shared::events::EventQueue,
        config: shared::events::SweepConfig,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.api.pool.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = shared::events::sweep(&pool, &queue, config).await {
                    tracing::warn!(%error, "events sweep failed");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    }

    /// The extraction worker, as in AWS: jobs from the in-process queue go through the batch
    /// lifter, and the sweep runs every `sweep_every` (EventBridge Scheduler's job there).
    pub fn spawn_extraction(&self, sweep_every: Duration) -> tokio::task::JoinHandle<()> {
        let queue = self.extraction_queue.clone();
        let state = self.extraction.clone();
        let sweeper = self.extraction.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(sweep_every);
            loop {
                ticks.tick().await;
                if let Err(error) = extraction_worker::sweep(&sweeper).await {
                    tracing::warn!(%error, "extraction sweep failed");
                }
            }
        });
        tokio::spawn(async move {
            let lifter = Lifter::new(state.lifter.clone(), None);
            let state = &state;
            loop {
                lifter
                    .poll_local(&queue, |job: ExtractionJob| async move {
                        extraction_worker::handle(state, &job).await.map(|_| ())
                    })
                    .await;
            }
        })
    }

    /// The campaign engine, as in AWS: start jobs, domain events and send jobs from their
    /// in-process queues
    /// through the batch lifter (several send consumers, as Lambda scales out), the local
    /// scheduler fired every second (EventBridge Scheduler's job), and the campaign sweep
    /// every `sweep_every`.
    pub fn spawn_campaigns(&self, sweep_every: Duration, send_consumers: usize) {
        let starts = self.campaign_starts.clone();
        let start_state = self.campaign_start.clone();
        tokio::spawn(async move {
            let lifter = Lifter::new(start_state.lifter.clone(), None);
            let state = &start_state;
            loop {
                let polled = lifter
                    .poll(&starts, |job: shared::jobs::CampaignStartJob| async move {
                        campaign_start::handle(state, &job).await.map(|_| ())
                    })
                    .await;
                pause_after_queue_error(polled).await;
            }
        });
        for _ in 0..send_consumers.max(1) {
            let sends = self.campaign_sends.clone();
            let send_state = self.send_worker.clone();
            tokio::spawn(async move {
                let lifter = Lifter::new(send_state.lifter.clone(), None);
                let state = &send_state;
                loop {
                    let polled = lifter
                        .poll_together(&sends, |jobs| send_worker::run_jobs(state, jobs))
                        .await;
                    pause_after_queue_error(polled).await;
                }
            });
        }
        let events = self.events_queue.clone();
        let event_state = self.campaign_start.clone();
        tokio::spawn(async move {
            let lifter = Lifter::new(event_state.lifter.clone(), None);
            let state = &event_state;
            loop {
                lifter
                    .poll_local(&events, |job: shared::events::EventJob| async move {
                        campaign_start::handle_event(state, &job).await.map(|_| ())
                    })
                    .await;
            }
        });
        let scheduler = self.scheduler.clone();
        let starts = self.campaign_starts.clone();
        let sweeper = self.campaign_start.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            let mut last_sweep = tokio::time::Instant::now();
            loop {
                ticks.tick().await;
                for schedule in scheduler.due(chrono::Utc::now()) {
                    match serde_json::from_str::<shared::jobs::CampaignStartJob>(&schedule.input) {
                        Ok(job) => {
                            if let Err(error) = starts.publish(&job).await {
                                tracing::warn!(%error, schedule = %schedule.name, "a fired schedule could not publish");
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, schedule = %schedule.name, "a schedule's input is not a start job")
                        }
                    }
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = tokio::time::Instant::now();
                    if let Err(error) = campaign_start::sweep(&sweeper).await {
                        tracing::warn!(%error, "campaign sweep failed");
                    }
                }
            }
        });
    }

    /// The completed-meetings sweep, every minute (EventBridge runs it every 15 minutes in
    /// AWS).
    pub fn spawn_meetings_sweep(&self) -> tokio::task::JoinHandle<()> {
        let pool = self.api.pool.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = meetings::sweep_completed(&pool, chrono::Utc::now()).await {
                    tracing::warn!(%error, "the completed-meetings sweep failed");
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
    }
}

/// A queue that could not be reached is polled again a second later (logged once per try).
async fn pause_after_queue_error(polled: Result<usize, shared::jobs::QueueError>) {
    if let Err(error) = polled {
        tracing::warn!(%error, "could not poll a campaign queue; trying again in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// devstack retries quickly (200 ms, doubling, at most 5 s) and has no deadline.
fn devstack_lifter() -> LifterConfig {
    LifterConfig {
        deadline_margin: Duration::ZERO,
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(5),
    }
}

/// The OpenAPI document of the whole HTTP API: the shared base plus every HTTP function's
/// paths (the dashboard's, Meta's webhook and the website chat's public routes).
/// `docs/openapi.json` is this document; a test keeps them equal, and `scripts/test.sh`
/// fuzzes devstack against it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = shared::api::openapi::base();
    document.merge(agents::openapi_router().into_openapi());
    document.merge(conversations::openapi_router().into_openapi());
    document.merge(templates::openapi_router().into_openapi());
    document.merge(contacts::openapi_router().into_openapi());
    document.merge(meetings::openapi_router().into_openapi());
    document.merge(campaigns::openapi_router().into_openapi());
    document.merge(webhook::openapi_router().into_openapi());
    document
}

/// The OpenAPI document as committed: pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut json = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
    json.push('\n');
    json
}

/// A WhatsApp text message webhook body, shaped like Meta's.
pub fn sample_inbound(
    phone_number_id: &str,
    from: &str,
    name: &str,
    text: &str,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "0", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": phone_number_id },
            "contacts": [{ "profile": { "name": name }, "wa_id": from }],
            "messages": [{
                "from": from,
                "id": format!("wamid.DEV{}", now.timestamp_nanos_opt().unwrap_or_default()),
                "timestamp": now.timestamp().to_string(),
                "type": "text",
                "text": { "body": text }
            }]
        }}]}]
    })
}
