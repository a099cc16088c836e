use serde_json::{Value, json};
use testkit::{TestClient, TestDb, TestResponse, TestTenant};

/// The `agents` router on a database of its own.
pub struct TestApp {
    pub db: TestDb,
    pub api: TestClient,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let api = TestClient::new(agents::router(testkit::api_state(&db)));
        Self { db, api }
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
                    "waba_id": "102290129340398",
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
