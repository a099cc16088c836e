//! The README's template walk-through against devstack on a real port: author a template
//! with an IMAGE header, two variables and three buttons, submit it (the sample fetched
//! from devstack's own media and uploaded to the simulator), approve it in the simulator
//! (a signed status webhook), send it, post the customer's quick-reply click, and read
//! sends and clicks in the stats.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{TestDb, TestTenant};

#[tokio::test]
async fn a_template_is_authored_submitted_approved_sent_and_clicked_through_the_simulator() {
    let db = TestDb::new().await;
    let base = common::serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("tpl");
    let token = tenant.token();
    let api = common::Api {
        http: &http,
        base_url: &base,
        token: &token,
    };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let channel = api.connect_whatsapp().await;

    let (status, template) = api.call(post.clone(), "/templates", Some(json!({
        "phone_number_id": channel["id"],
        "name": "spring_sale",
        "category": "MARKETING",
        "language": "en_US",
        "header": { "type": "IMAGE", "media_url": format!("{base}/_sim/media/sample.jpg") },
        "body": { "text": "Hi {{1}}, your code {{2}} gives 20% off this week." },
        "variables": [
            { "variable_name": "first_name", "position": 1, "sample_value": "Maria" },
            { "variable_name": "code", "position": 2, "sample_value": "SPRING20" }
        ],
        "buttons": [
            { "button_type": "QUICK_REPLY", "button_text": "Interested", "tracking_id": "interested" },
            { "button_type": "QUICK_REPLY", "button_text": "Not now" },
            { "button_type": "URL", "button_text": "Shop", "button_url": "https://shop.example.com" }
        ]
    }))).await;
    assert_eq!(status, 201, "{template}");
    let id = template["template_id"].as_str().expect("id").to_owned();

    let (status, submitted) = api
        .call(post.clone(), format!("/templates/{id}/submit"), None)
        .await;
    assert_eq!(status, 200, "{submitted}");
    assert_eq!(submitted["status"], "PENDING");
    let meta_id = submitted["meta_template_id"]
        .as_str()
        .expect("meta id")
        .to_owned();

    // Not approved yet: the send is refused before Meta.
    let send = json!({ "to": "+16505551234", "variable_values": { "first_name": "Sheena", "code": "SHEENA20" } });
    let (status, _) = api
        .call(
            post.clone(),
            format!("/templates/{id}/send"),
            Some(send.clone()),
        )
        .await;
    assert_eq!(status, 409);

    let reviewed = http
        .post(format!("{base}/_sim/meta/templates/{meta_id}/review"))
        .json(&json!({ "event": "APPROVED" }))
        .send()
        .await
        .expect("review");
    let reviewed: Value = reviewed.json().await.expect("json");
    assert_eq!(reviewed["webhook_status"], 200, "{reviewed}");
    let (_, approved) = api
        .call(get.clone(), format!("/templates/{id}"), None)
        .await;
    assert_eq!(approved["status"], "APPROVED", "{approved}");

    let (status, sent) = api
        .call(post.clone(), format!("/templates/{id}/send"), Some(send))
        .await;
    assert_eq!(status, 201, "{sent}");
    let wamid = sent["platform_message_id"]
        .as_str()
        .expect("wamid")
        .to_owned();

    let click = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "10654035224292", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Sheena" }, "wa_id": "16505551234" }],
            "messages": [{
                "context": { "from": "15550000000", "id": wamid },
                "from": "16505551234", "id": "wamid.CLICK0001", "timestamp": chrono::Utc::now().timestamp().to_string(),
                "type": "button", "button": { "payload": "interested", "text": "Interested" }
            }]
        }}]}]
    })
    .to_string();
    assert_eq!(common::post_webhook(&http, &base, click).await, 200);

    let mut stats = Value::Null;
    for _ in 0..50 {
        let (_, found) = api
            .call(get.clone(), format!("/templates/{id}/stats"), None)
            .await;
        if found["sends"]["read"] == 1 {
            stats = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["sends"]["total"], 1, "{stats}");
    assert_eq!(stats["read_rate"], 1.0);
    assert_eq!(stats["buttons"][0]["button_text"], "Interested");
    assert_eq!(stats["buttons"][0]["total_clicks"], 1);
    assert_eq!(stats["buttons"][0]["unique_clicks"], 1);

    let requests: Value = http
        .get(format!("{base}/_sim/meta/requests"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    let creation = requests
        .as_array()
        .and_then(|r| r.iter().find(|r| r.get("create_template").is_some()))
        .expect("creation recorded");
    let handle = creation["create_template"]["components"][0]["example"]["header_handle"][0]
        .as_str()
        .unwrap_or_default();
    assert!(handle.starts_with("4::"), "{creation}");

    // The simulator answers template sends as Meta does.
    let graph = shared::meta::graph::Graph::new(
        reqwest::Client::new(),
        shared::meta::graph::GraphConfig::for_base_url(&format!("{base}/_sim/meta")),
    );
    let token = secrecy::SecretString::from("EAAG-dev");
    let template = |name: &str, parameters: usize| shared::meta::graph::MessageContent::Template {
        template: shared::meta::graph::messages::TemplateMessage {
            name: name.to_owned(),
            language: shared::meta::graph::messages::TemplateLanguage {
                code: "en_US".to_owned(),
            },
            components: vec![
                shared::meta::graph::messages::TemplateMessageComponent::Body {
                    parameters: (0..parameters)
                        .map(|_| shared::meta::graph::messages::TemplateParameter::Text {
                            text: "x".to_owned(),
                            parameter_name: None,
                        })
                        .collect(),
                },
            ],
        },
    };
    let unknown = graph
        .send_whatsapp(
            "106540352242922",
            &token,
            "16505551234",
            &template("no_such_template", 2),
        )
        .await
        .expect_err("unknown");
    let mismatch = graph
        .send_whatsapp(
            "106540352242922",
            &token,
            "16505551234",
            &template("spring_sale", 1),
        )
        .await
        .expect_err("mismatch");
    assert_eq!(unknown.code, Some(132_001));
    assert_eq!(mismatch.code, Some(132_000));
}
