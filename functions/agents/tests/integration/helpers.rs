use serde_json::{Value, json};
use shared::{
    api::ApiState,
    meta::graph::{Graph, GraphConfig},
};
use testkit::{TestClient, TestDb, TestResponse, TestTenant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// The `agents` router on a database of its own, with Meta's Graph API faked.
pub struct TestApp {
    pub db: TestDb,
    pub api: TestClient,
    /// Answers like devstack's Meta simulator (see [`FakeMeta`]); tests mount mocks with a
    /// higher priority to make Meta refuse or fail.
    pub meta: MockServer,
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
        let db = TestDb::new().await;
        let meta = MockServer::start().await;
        Mock::given(any())
            .respond_with(FakeMeta)
            .with_priority(10)
            .mount(&meta)
            .await;
        let api = TestClient::new(agents::router(agents_state(testkit::api_state(&db), &meta)));
        Self { db, api, meta }
    }

    /// The requests Meta received whose path ends with `suffix`.
    pub async fn meta_requests(&self, suffix: &str) -> Vec<Request> {
        self.meta
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .collect()
    }

    /// A tenant with an account (provisioned by a first call, as in production).
    pub async fn tenant(&self, label: &str) -> TestTenant {
        let tenant = TestTenant::new(label);
        self.api.get("/me", &tenant.token()).await.expect(200);
        tenant
    }

    pub async fn create_whatsapp_channel(&self, tenant: &TestTenant, meta_id: &str) -> Value {
        self.api
            .post(
                "/phone-numbers",
                &tenant.token(),
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
        self.api
            .post(
                "/agents",
                &tenant.token(),
                &json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_sales_v1", "name": name }),
            )
            .await
    }

    /// How many rows a query counts.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    /// Gives an agent conversations straight in the database (the worker creates them in
    /// production): `active` active ones with one message each, and `inactive` archived ones.
    pub async fn seed_conversations(&self, agent_id: &str, active: usize, inactive: usize) {
        let client = self.db.client().await;
        for i in 0..active + inactive {
            let conversation_id = format!("conv_seed_{agent_id}_{i}");
            let customer = format!("+1415555{:04}", 1000 + i);
            client
                .execute(
                    "INSERT INTO conversations (conversation_id, agent_id, customer_phone, is_active)
                     VALUES ($1, $2, $3, $4)",
                    &[&conversation_id, &agent_id, &customer, &(i < active)],
                )
                .await
                .expect("seed conversation");
            client
                .execute(
                    "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no)
                     VALUES ($1, $2, 'user', 'hello', 'sent', 1)",
                    &[&format!("msg_seed_{agent_id}_{i}"), &conversation_id],
                )
                .await
                .expect("seed message");
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
