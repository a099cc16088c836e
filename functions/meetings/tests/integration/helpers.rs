use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use shared::{
    db::meetings::{self as meeting_rows, Booked, NewMeeting},
    domain::{ConversationId, MeetingId, UserId},
    google::{Google, GoogleConfig},
    meta::graph::{Graph, GraphConfig},
};
use testkit::{TestClient, TestDb, TestTenant, google::FakeGoogle};
use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::any};

/// The `meetings` router on a database of its own, with Google and Meta faked.
pub struct TestApp {
    pub db: TestDb,
    pub api: TestClient,
    pub google_server: MockServer,
    pub google: FakeGoogle,
    pub meta: MockServer,
    pub state: meetings::MeetingsState,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let (google_server, google) = FakeGoogle::start().await;
        let meta = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "messaging_product": "whatsapp",
                "messages": [{ "id": "wamid.CANCEL" }]
            })))
            .mount(&meta)
            .await;
        let http = reqwest::Client::new();
        let state = meetings::MeetingsState {
            api: testkit::api_state(&db),
            google: Some(
                Google::new(
                    http.clone(),
                    GoogleConfig::for_base_url(&google_server.uri()),
                )
                .expect("google client"),
            ),
            graph: Graph::new(http, GraphConfig::for_base_url(&meta.uri())),
        };
        let api = TestClient::new(meetings::router(state.clone()));
        Self {
            db,
            api,
            google_server,
            google,
            meta,
            state,
        }
    }

    /// The Google client of the state.
    pub fn google_client(&self) -> &Google {
        self.state
            .google
            .as_ref()
            .expect("Google is configured in tests")
    }

    /// A tenant with an account.
    pub async fn tenant(&self, label: &str) -> TestTenant {
        let tenant = TestTenant::new(label);
        shared::db::users::provision(&self.db.client().await, &user_id(&tenant), &tenant.email)
            .await
            .expect("provision");
        tenant
    }

    /// `GET /integrations/google/authorize-url` for the tenant: the consent URL and state.
    pub async fn authorize(&self, tenant: &TestTenant) -> Value {
        self.api
            .get("/integrations/google/authorize-url", &tenant.token())
            .await
            .expect(200)
            .clone()
    }

    /// How many Google connections are stored, across tenants.
    pub async fn stored_connections(&self) -> i64 {
        self.count("SELECT count(*) FROM google_calendar_tokens", &[])
            .await
    }

    /// Connects the tenant's Google Calendar through the API, as the dashboard does.
    pub async fn connect(&self, tenant: &TestTenant) -> Value {
        let start = self.authorize(tenant).await;
        self.api
            .post(
                "/integrations/google/callback",
                &tenant.token(),
                &serde_json::json!({ "code": format!("4/code-{}", ulid::Ulid::new()), "state": start["state"] }),
            )
            .await
            .expect(200)
            .clone()
    }

    /// The requests Google received on paths ending with `suffix`, with `method`.
    pub async fn google_requests(&self, method: &str, suffix: &str) -> Vec<Request> {
        self.google_server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r.method.as_str() == method
                    && (r.url.path().ends_with(suffix) || r.url.path().contains(suffix))
            })
            .collect()
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    /// Makes the stored access token expire now.
    pub async fn expire_token(&self, tenant: &TestTenant) {
        self.db
            .client()
            .await
            .execute(
                "UPDATE google_calendar_tokens SET token_expiry = now() - interval '1 minute' WHERE user_id = $1",
                &[&tenant.sub],
            )
            .await
            .expect("expire");
    }

    /// A WhatsApp conversation of the tenant whose customer wrote `last_inbound_ago` ago.
    pub async fn conversation(
        &self,
        tenant: &TestTenant,
        last_inbound_ago: Duration,
    ) -> ConversationId {
        let client = self.db.client().await;
        let unique = ulid::Ulid::new().to_string().to_lowercase();
        let channel = format!("pn_{unique}");
        let sealed = testkit::test_sealing_key()
            .seal(shared::crypto::SecretKind::ChannelAccessToken, "EAAG-token")
            .expect("seal");
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, $2, 'whatsapp', $3, $4, '1')",
                &[&channel, &tenant.sub, &format!("1{}", &unique[..12].bytes().map(|b| (b % 10).to_string()).collect::<String>()), &sealed],
            )
            .await
            .expect("channel");
        let agent = format!("agt_{unique}");
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
                 VALUES ($1, $2, $3, 'pmpt_sales', 'Ava')",
                &[&agent, &tenant.sub, &channel],
            )
            .await
            .expect("agent");
        let conversation = ConversationId::generate();
        client
            .execute(
                "INSERT INTO conversations (conversation_id, agent_id, customer_phone, is_active, last_customer_message_at)
                 VALUES ($1, $2, '+16505551234', true, now() - make_interval(secs => $3))",
                &[&conversation.as_str(), &agent, &(last_inbound_ago.num_seconds() as f64)],
            )
            .await
            .expect("conversation");
        conversation
    }

    /// A scheduled meeting, booked in Google's fake calendar too.
    pub async fn meeting(
        &self,
        tenant: &TestTenant,
        conversation: &ConversationId,
        start: DateTime<Utc>,
    ) -> MeetingId {
        let client = self.db.client().await;
        let event_id =
            shared::google::event_id::for_booking(conversation.as_str(), &start.to_rfc3339(), 0);
        let booked = meeting_rows::insert_booking(
            &client,
            &user_id(tenant),
            &NewMeeting {
                conversation_id: conversation,
                google_event_id: &event_id,
                title: "Demo",
                customer_name: Some("Sheena"),
                customer_email: "sheena@customer.test",
                customer_phone: Some("+16505551234"),
                participants: &["sheena@customer.test".to_owned()],
                meeting_time: start,
                duration_minutes: 30,
                timezone: "Europe/Madrid",
                notes: None,
            },
        )
        .await
        .expect("booking");
        let Booked::New(meeting) = booked else {
            panic!("a new booking")
        };
        let scheduled = meeting_rows::mark_scheduled(
            &client,
            &meeting.meeting_id,
            Some("https://meet.google.com/abc-defg-hij"),
        )
        .await
        .expect("scheduled");
        // The same event at Google.
        self.google
            .seed_event(&event_id, start, start + Duration::minutes(30));
        scheduled.meeting_id
    }
}

pub fn user_id(tenant: &TestTenant) -> UserId {
    UserId::parse(&tenant.sub).expect("user id")
}

/// A time `days` days and `hours` hours from now, on a whole minute.
pub fn future(days: i64, hours: i64) -> DateTime<Utc> {
    let t = Utc::now() + Duration::days(days) + Duration::hours(hours);
    t - Duration::seconds(i64::from(chrono::Timelike::second(&t)))
        - Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&t)))
}
