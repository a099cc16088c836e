use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde_json::{Value, json};
use shared::{
    crypto::SecretKind,
    domain::PhoneNumberId,
    meta::graph::{Graph, GraphConfig},
};
use templates::{MediaLimits, TemplatesState};
use testkit::{TestClient, TestDb, TestTenant};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{any, method, path},
};

/// The app id of test states (`META_APP_ID`).
pub const APP_ID: &str = "1234567890";

/// The `templates` router on a database of its own, with Meta faked at `meta` and header
/// media served by `media`.
pub struct TestApp {
    pub db: TestDb,
    pub api: TestClient,
    pub meta: MockServer,
    pub media: MockServer,
    pub tenant: TestTenant,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(MediaLimits {
            allow_private_hosts: true,
            ..MediaLimits::default()
        })
        .await
    }

    pub async fn spawn_with(limits: MediaLimits) -> Self {
        init_logs();
        let db = TestDb::new().await;
        let meta = MockServer::start().await;
        Mock::given(any())
            .respond_with(FakeMeta::default())
            .with_priority(10)
            .mount(&meta)
            .await;
        let media = MockServer::start().await;
        serve_media(&media).await;
        let state = TemplatesState {
            api: testkit::api_state(&db),
            graph: Graph::new(
                reqwest::Client::new(),
                GraphConfig::for_base_url(&meta.uri()),
            ),
            meta_app_id: Some(APP_ID.to_owned()),
            media_http: reqwest::Client::new(),
            media_limits: limits,
        };
        let api = TestClient::new(templates::router(state));
        let tenant = app_tenant(&api, "acme").await;
        Self {
            db,
            api,
            meta,
            media,
            tenant,
        }
    }

    /// Another tenant with an account.
    pub async fn other_tenant(&self) -> TestTenant {
        app_tenant(&self.api, "rival").await
    }

    /// A channel of `tenant` on `platform` (WABA `waba` for WhatsApp).
    pub async fn channel(&self, tenant: &TestTenant, platform: &str, waba: Option<&str>) -> String {
        let client = self.db.client().await;
        let id = PhoneNumberId::generate().to_string();
        let sealed = testkit::test_sealing_key()
            .seal(SecretKind::ChannelAccessToken, "EAAG-token")
            .expect("seal");
        // Ten digits from the whole random id (mapping its letters to one digit collided).
        let digits = id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)))
            % 10_000_000_000;
        let meta_id = format!("10{digits:010}");
        let token = (platform != "webchat").then_some(sealed);
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &tenant.sub, &platform, &meta_id, &token, &waba],
            )
            .await
            .expect("channel");
        id
    }

    /// A WhatsApp channel of the app's tenant in WABA `102290129340398`.
    pub async fn whatsapp(&self) -> String {
        self.channel(&self.tenant.clone(), "whatsapp", Some(WABA))
            .await
    }

    pub fn media_url(&self, file: &str) -> String {
        format!("{}/{file}", self.media.uri())
    }

    /// The requests Meta received whose path ends with `suffix`.
    pub async fn meta_requests(&self, method_name: &str, suffix: &str) -> Vec<Request> {
        self.meta
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == method_name && r.url.path().ends_with(suffix))
            .collect()
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    /// Creates a template and returns its body.
    pub async fn create(&self, body: &Value) -> Value {
        self.api
            .post("/templates", &self.tenant.token(), body)
            .await
            .expect(201)
            .clone()
    }
}

async fn app_tenant(api: &TestClient, label: &str) -> TestTenant {
    let tenant = TestTenant::new(label);
    api.get("/templates", &tenant.token()).await.expect(200);
    tenant
}

/// The WABA of [`TestApp::whatsapp`] channels.
pub const WABA: &str = "102290129340398";

/// A JPEG, a PNG, an MP4 and a PDF header (their first bytes are real signatures), a text
/// file, and a JPEG that declares itself a PNG.
async fn serve_media(server: &MockServer) {
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0u8; 2048]].concat();
    let files: Vec<(&str, &str, Vec<u8>)> = vec![
        ("/sample.jpg", "image/jpeg", jpeg.clone()),
        (
            "/big.jpg",
            "image/jpeg",
            [&jpeg[..], &vec![0u8; 6 * 1024 * 1024]].concat(),
        ),
        (
            "/sample.mp4",
            "video/mp4",
            [&b"\0\0\0\x18ftypmp42"[..], &[0u8; 512]].concat(),
        ),
        (
            "/sample.pdf",
            "application/pdf",
            b"%PDF-1.4\n%test\n".to_vec(),
        ),
        ("/notes.txt", "text/plain", b"hello".to_vec()),
        ("/liar.png", "image/png", b"%PDF-1.4 not an image".to_vec()),
    ];
    for (file, content_type, bytes) in files {
        Mock::given(method("GET"))
            .and(path(file))
            .respond_with(ResponseTemplate::new(200).set_body_raw(bytes, content_type))
            .mount(server)
            .await;
    }
}

/// Meta's template endpoints as the Graph API answers them: creations get numeric ids,
/// uploads a session then a handle, reads `APPROVED`, deletes `{"success": true}`, sends a
/// `wamid`.
#[derive(Default, Clone)]
pub struct FakeMeta {
    next: Arc<AtomicU64>,
}

impl Respond for FakeMeta {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", [_, "message_templates"]) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": format!("{}", 572279198452421_u64 + n),
                    "status": "PENDING",
                    "category": body["category"],
                }))
            }
            ("POST", [_, "uploads"]) => ResponseTemplate::new(200)
                .set_body_json(json!({ "id": format!("upload:MTphdHRh{n}?sig=ARZ") })),
            ("POST", [session]) if session.starts_with("upload:") => {
                ResponseTemplate::new(200).set_body_json(json!({ "h": format!("4::aGFuZGxl{n}:ARb") }))
            }
            ("POST", [_, "messages"]) => ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{ "input": "14155552671", "wa_id": "14155552671" }],
                "messages": [{ "id": format!("wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI{n:020}A"), "message_status": "accepted" }],
            })),
            ("DELETE", [_, "message_templates"]) => {
                ResponseTemplate::new(200).set_body_json(json!({ "success": true }))
            }
            ("POST", [_id]) => ResponseTemplate::new(200).set_body_json(json!({ "success": true })),
            ("GET", [id]) => ResponseTemplate::new(200).set_body_json(json!({
                "id": id, "name": "summer_sale", "status": "APPROVED", "category": "MARKETING",
                "language": "en_US", "quality_score": { "score": "GREEN", "date": 1_700_000_000 },
            })),
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

/// A MARKETING template with an IMAGE header, two body variables and three buttons
/// (two quick replies and a URL with a suffix).
pub fn image_template(channel: &str, media_url: &str) -> Value {
    json!({
        "phone_number_id": channel,
        "name": "summer_sale",
        "category": "MARKETING",
        "language": "en_US",
        "header": { "type": "IMAGE", "media_url": media_url },
        "body": { "text": "Hi {{1}}, your code {{2}} gives 20% off this week." },
        "footer": { "text": "Reply STOP to opt out" },
        "variables": [
            { "variable_name": "first_name", "position": 1, "sample_value": "Maria", "dashboard_mapping": "contact.name" },
            { "variable_name": "code", "position": 2, "sample_value": "SUMMER20", "default_value": "WELCOME" },
            { "variable_name": "order", "position": 1, "component_type": "BUTTON", "sample_value": "A-1001" }
        ],
        "buttons": [
            { "button_type": "QUICK_REPLY", "button_text": "Interested", "tracking_id": "interested" },
            { "button_type": "QUICK_REPLY", "button_text": "Not now" },
            { "button_type": "URL", "button_text": "Track order", "button_url": "https://shop.example.com/orders/{{1}}", "button_url_suffix_variable": 1 }
        ]
    })
}

/// A text-only UTILITY template.
pub fn text_template(channel: &str, name: &str, language: &str) -> Value {
    json!({
        "phone_number_id": channel,
        "name": name,
        "category": "UTILITY",
        "language": language,
        "body": { "text": "Your order {{1}} ships today by courier." },
        "variables": [{ "variable_name": "order_id", "position": 1, "sample_value": "A-1" }]
    })
}

/// Logs to the test output when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
}

impl TestApp {
    /// The image template of [`image_template`], submitted and approved, on a channel with
    /// an agent. Returns the template id.
    pub async fn approved_template(&self) -> String {
        let channel = self.whatsapp().await;
        let client = self.db.client().await;
        let agent = shared::domain::AgentId::generate().to_string();
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
                 VALUES ($1, $2, $3, 'pmpt_sales', 'Ava')",
                &[&agent, &self.tenant.sub, &channel],
            )
            .await
            .expect("agent");
        let created = self
            .create(&image_template(&channel, &self.media_url("sample.jpg")))
            .await;
        let id = created["template_id"].as_str().expect("id").to_owned();
        self.api
            .post(
                &format!("/templates/{id}/submit"),
                &self.tenant.token(),
                &json!({}),
            )
            .await
            .expect(200);
        self.api
            .post(
                &format!("/templates/{id}/sync"),
                &self.tenant.token(),
                &json!({}),
            )
            .await
            .expect(200);
        id
    }
}
