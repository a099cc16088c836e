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
