use serde_json::{Value, json};
use shared::{
    api::ApiState,
    meta::graph::{Graph, GraphConfig},
};
use shared::{
    db::phone_numbers,
    domain::{AgentId, PhoneNumberId, UserId},
};
use testkit::{ConversationSeed, TestResponse, TestTenant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// The `agents` router on [`testkit::TestApp`]. Its Meta fake answers like devstack's
/// simulator (see [`FakeMeta`]); tests mount mocks with a higher priority to make Meta
/// refuse or fail.
pub struct TestApp {
    pub kit: testkit::TestApp,
}

impl std::ops::Deref for TestApp {
    type Target = testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// The `agents` state on `api`, with the Graph client at `meta`.
pub fn agents_state(api: ApiState, meta: &MockServer) -> agents::AgentsState {
    agents::AgentsState {
        api,
        graph: Graph::new(
            shared::http::Client::new(),
            GraphConfig::for_base_url(&meta.uri()),
        ),
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        let kit = testkit::TestApp::new().await;
        Mock::given(any())
            .respond_with(FakeMeta)
            .with_priority(10)
            .mount(&kit.meta)
            .await;
        let router = agents::router(agents_state(kit.api_state(), &kit.meta));
        Self {
            kit: kit.serve(router),
        }
    }

    /// The requests Meta received whose path ends with `suffix`.
    pub async fn meta_requests(&self, suffix: &str) -> Vec<Request> {
        testkit::TestApp::requests_to(&self.meta, suffix).await
    }

    /// A tenant with an account (provisioned by a first call, as in production).
    pub async fn tenant(&self, label: &str) -> TestTenant {
        self.tenant_via(label, "/me").await
    }

    pub async fn create_whatsapp_channel(&self, tenant: &TestTenant, meta_id: &str) -> Value {
        self.post_as(
            tenant,
            "/phone-numbers",
            &json!({
                "platform": "whatsapp",
                "meta_phone_number_id": meta_id,
                "access_token": "EAAG-plaintext-token",
                "display_name": "Main line",
                "waba_id": waba_of(meta_id),
            }),
        )
        .await
        .expect(201)
        .clone()
    }

    pub async fn create_agent(
        &self,
        tenant: &TestTenant,
        channel_id: &str,
        name: &str,
    ) -> TestResponse {
        self.post_as(
            tenant,
            "/agents",
            &json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_sales_v1", "name": name }),
        )
        .await
    }

    /// Gives an agent conversations (the worker creates them in production), seeded through
    /// `shared::db`: `active` active ones with one customer message each, and `inactive`
    /// ended ones.
    pub async fn seed_conversations(&self, agent_id: &str, active: usize, inactive: usize) {
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT user_id, phone_number_id FROM agents WHERE agent_id = $1",
                &[&agent_id],
            )
            .await
            .expect("the agent");
        let user = UserId::parse(row.get(0)).expect("user id");
        let channel_id = PhoneNumberId::parse(row.get(1)).expect("channel id");
        let channel = phone_numbers::get(&self.db.client().await, &user, &channel_id)
            .await
            .expect("channel")
            .expect("the agent's channel");
        let agent = AgentId::parse(agent_id).expect("agent id");
        let seed = self.db.seed();
        for i in 0..active + inactive {
            let customer = format!("1415555{:04}", 1000 + i);
            let conversation = seed
                .conversation(
                    &user,
                    &channel,
                    &agent,
                    ConversationSeed::from_customer(&customer).text("hello"),
                )
                .await;
            if i >= active {
                seed.end_conversation(&conversation).await;
            }
        }
    }
}

/// A field of a JSON body as a string.
#[track_caller]
pub fn str_field<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not a string in {body}"))
}

/// The WABA that owns a phone-number id under the simulator's rule: WABA `W` has the numbers
/// `W0` to `W9`.
pub fn waba_of(phone_number_id: &str) -> &str {
    &phone_number_id[..phone_number_id.len().saturating_sub(1)]
}

/// Meta's Graph API as devstack's simulator answers it: WABA `W` lists the numbers `W0`
/// to `W9`, any decimal id is an Instagram account, subscribing answers `{"success": true}`,
/// and a token that starts with `invalid` gets error 190.
pub struct FakeMeta;

impl Respond for FakeMeta {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if token.is_empty() || token.starts_with("invalid") {
            return graph_error(
                401,
                190,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        let numeric = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", [waba, "phone_numbers"]) if numeric(waba) => {
                let data: Vec<Value> = (0..10)
                    .map(|d| json!({ "id": format!("{waba}{d}"), "display_phone_number": format!("+1 555-010-000{d}"), "verified_name": "Fake" }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({ "data": data, "paging": { "cursors": { "before": "b", "after": "a" } } }))
            }
            ("POST", [waba, "subscribed_apps"]) if numeric(waba) => {
                ResponseTemplate::new(200).set_body_json(json!({ "success": true }))
            }
            ("GET", [id]) if numeric(id) => ResponseTemplate::new(200)
                .set_body_json(json!({ "id": id, "username": format!("fake_{id}") })),
            (_, [id, ..]) => graph_error(
                400,
                100,
                &format!("Unsupported request. Object with ID '{id}' does not exist"),
            ),
            _ => graph_error(400, 100, "Unsupported request"),
        }
    }
}

/// Graph's error document.
pub fn graph_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AfakeTrace" }
    }))
}
