//! What the devstack end-to-end tests do over HTTP again and again.

use serde_json::json;

/// Posts `body` to devstack's webhook, signed with its Meta app secret; the status.
#[allow(dead_code, reason = "not every test binary posts webhooks")]
pub async fn post_webhook(http: &reqwest::Client, base_url: &str, body: String) -> u16 {
    let signature =
        shared::meta::signature::sign(devstack::DEV_META_APP_SECRET.as_bytes(), body.as_bytes());
    http.post(format!("{base_url}/webhook"))
        .header("content-type", "application/json")
        .header(shared::meta::signature::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

/// Grants the tenant credits through the operators' route; the status.
#[allow(dead_code, reason = "not every test binary grants credits")]
pub async fn grant_credits(http: &reqwest::Client, base_url: &str, user: &str, amount: i32) -> u16 {
    http.post(format!("{base_url}/admin/credits"))
        .header("x-admin-secret", testkit::TEST_ADMIN_SECRET)
        .json(&json!({ "user_id": user, "amount": amount, "reason": "trial" }))
        .send()
        .await
        .expect("credits")
        .status()
        .as_u16()
}

/// A devstack on a real loopback port with its worker and extraction worker running (the
/// extraction sweep every 100 ms); returns its base URL.
#[allow(dead_code, reason = "not every test binary serves a whole stack")]
pub async fn serve(db: &testkit::TestDb) -> String {
    let (stack, base_url) = serve_stack(db, |stack| stack).await;
    stack.spawn_worker();
    stack.spawn_extraction(std::time::Duration::from_millis(100));
    base_url
}

/// A devstack, as `configure` makes it, serving on a real loopback port (nothing spawned
/// yet); the stack and its base URL.
#[allow(dead_code, reason = "not every test binary serves a whole stack")]
pub async fn serve_stack(
    db: &testkit::TestDb,
    configure: impl FnOnce(devstack::Stack) -> devstack::Stack,
) -> (devstack::Stack, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let stack = configure(devstack::Stack::new(
        testkit::api_state(db),
        reqwest::Client::new(),
        &base_url,
        devstack::Providers::simulated(&base_url),
    ));
    let app = stack.app();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    (stack, base_url)
}

/// The Meta simulator's send counts (`GET /_sim/meta/stats`).
#[allow(dead_code, reason = "not every test binary sends templates")]
pub async fn meta_stats(http: &reqwest::Client, base_url: &str) -> serde_json::Value {
    http.get(format!("{base_url}/_sim/meta/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

/// A tenant's calls to a served devstack.
#[allow(dead_code, reason = "not every test binary calls the API over HTTP")]
pub struct Api<'a> {
    pub http: &'a reqwest::Client,
    pub base_url: &'a str,
    pub token: &'a str,
}

#[allow(dead_code, reason = "not every test binary calls the API over HTTP")]
impl Api<'_> {
    /// One call with the tenant's token: the status and the JSON body (null when none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: impl AsRef<str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base_url, path.as_ref()))
            .bearer_auth(self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }
    /// Connects the walkthrough's WhatsApp number (`106540352242922` of WABA
    /// `10654035224292`) and links an agent to it; the channel.
    pub async fn connect_whatsapp(&self) -> serde_json::Value {
        let (status, channel) = self
            .call(
                reqwest::Method::POST,
                "/phone-numbers",
                Some(json!({
                    "platform": "whatsapp", "meta_phone_number_id": "106540352242922",
                    "access_token": "EAAG-dev", "waba_id": "10654035224292"
                })),
            )
            .await;
        assert_eq!(status, 201, "{channel}");
        let (status, agent) = self
            .call(
                reqwest::Method::POST,
                "/agents",
                Some(json!({
                    "phone_number_id": channel["id"], "prompt_id": "pmpt_demo", "name": "Ava"
                })),
            )
            .await;
        assert_eq!(status, 201, "{agent}");
        channel
    }
}
