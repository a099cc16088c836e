//! Quick-reply clicks on template sends.

use serde_json::{Value, json};

use crate::helpers::{TestApp, WA_CHANNEL};

const SENT_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

/// A template with two quick replies (one with a tracking id) and a send of it to
/// `+16505551234` whose id is [`SENT_WAMID`]. Returns (template id, buttons).
async fn sent_template(app: &TestApp, channel: &str, tenant: &str) -> (String, Vec<String>) {
    let client = app.db.client().await;
    let template = shared::domain::TemplateId::generate().to_string();
    client
        .execute(
            "INSERT INTO templates (template_id, user_id, phone_number_id, name, category, status, language, components)
             VALUES ($1, $2, $3, 'promo', 'MARKETING', 'APPROVED', 'en_US', '{}')",
            &[&template, &tenant, &channel],
        )
        .await
        .expect("template");
    let mut buttons = Vec::new();
    for (index, text, tracking) in [(0, "Interested", Some("interested")), (1, "Not now", None)] {
        let id = shared::domain::TemplateButtonId::generate().to_string();
        client
            .execute(
                "INSERT INTO template_buttons (button_id, template_id, button_type, button_text, button_index, tracking_id)
                 VALUES ($1, $2, 'QUICK_REPLY', $3, $4, $5)",
                &[&id, &template, &text, &index, &tracking],
            )
            .await
            .expect("button");
        buttons.push(id);
    }
    client
        .execute(
            "INSERT INTO template_sends (send_id, template_id, customer_phone, status, platform_message_id, phone_number_id, user_id)
             VALUES ($1, $2, '+16505551234', 'SENT', $3, $4, $5)",
            &[&shared::domain::TemplateSendId::generate().to_string(), &template, &SENT_WAMID, &channel, &tenant],
        )
        .await
        .expect("send");
    (template, buttons)
}

fn click(message_id: &str, from: &str, payload: &str, text: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "1",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550001111", "phone_number_id": WA_CHANNEL },
                    "contacts": [{ "profile": { "name": "Sheena" }, "wa_id": from }],
                    "messages": [{
                        "context": { "from": "15550001111", "id": SENT_WAMID },
                        "from": from,
                        "id": message_id,
                        "timestamp": "1751247548",
                        "type": "button",
                        "button": { "payload": payload, "text": text }
                    }]
                }
            }]
        }]
    })
}

async fn counters(app: &TestApp, button: &str) -> (i32, i32) {
    let client = app.db.client().await;
    let row = client
        .query_one(
            "SELECT total_clicks, unique_clicks FROM template_buttons WHERE button_id = $1",
            &[&button],
        )
        .await
        .expect("button");
    (row.get(0), row.get(1))
}

fn wamid(n: u32) -> String {
    format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUI{n:040}")
}

#[tokio::test]
async fn a_click_counts_once_under_redelivery_and_once_per_customer_as_unique() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let (template, buttons) = sent_template(&app, &channel, "acme").await;

    let first = click(&wamid(1), "16505551234", "interested", "Interested");
    app.post_json(&first).await.expect(200);
    app.post_json(&first).await.expect(200);
    app.post_json(&click(&wamid(2), "16505551234", "interested", "Interested"))
        .await
        .expect(200);
    app.post_json(&click(
        &wamid(3),
        "447700900123",
        "interested",
        "Interested",
    ))
    .await
    .expect(200);
    app.post_json(&click(
        &wamid(4),
        "16505551234",
        &format!("{template}.b1"),
        "Not now",
    ))
    .await
    .expect(200);

    assert_eq!(counters(&app, &buttons[0]).await, (3, 2));
    assert_eq!(counters(&app, &buttons[1]).await, (1, 1));
    assert_eq!(
        app.count("SELECT count(*) FROM button_clicks", &[]).await,
        4
    );
    let client = app.db.client().await;
    let row = client
        .query_one(
            "SELECT template_send_id IS NOT NULL, button_text, button_index, button_payload, customer_phone,
                    waba_id, phone_number_id, user_id, original_message_id
             FROM button_clicks WHERE message_id = $1",
            &[&wamid(1)],
        )
        .await
        .expect("click");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "Interested");
    assert_eq!(row.get::<_, Option<i32>>(2), Some(0));
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("interested")
    );
    assert_eq!(row.get::<_, String>(4), "+16505551234");
    assert_eq!(row.get::<_, Option<String>>(5).as_deref(), Some("1"));
    assert_eq!(
        row.get::<_, Option<String>>(6).as_deref(),
        Some(channel.as_str())
    );
    assert_eq!(row.get::<_, String>(7), "acme");
    assert_eq!(row.get::<_, Option<String>>(8).as_deref(), Some(SENT_WAMID));
    // The click is also the customer's message, for the AI to answer.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE message_type = 'button'",
            &[]
        )
        .await,
        4
    );
    assert_eq!(
        app.take_published_jobs().len(),
        4,
        "one reply job per distinct message, none for the redelivery"
    );
}

#[tokio::test]
async fn a_click_whose_payload_names_no_button_is_stored_with_what_is_known() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let (_, buttons) = sent_template(&app, &channel, "acme").await;

    app.post_json(&click(
        &wamid(9),
        "16505551234",
        "renamed-in-whatsapp-manager",
        "Maybe later",
    ))
    .await
    .expect(200);

    let client = app.db.client().await;
    let row = client
        .query_one(
            "SELECT button_id, button_text, button_index FROM button_clicks",
            &[],
        )
        .await
        .expect("stored");
    assert_eq!(row.get::<_, String>(0), "unknown");
    assert_eq!(row.get::<_, String>(1), "Maybe later");
    assert_eq!(row.get::<_, Option<i32>>(2), None);
    assert_eq!(counters(&app, &buttons[0]).await, (0, 0));
    assert_eq!(
        app.take_published_jobs().len(),
        1,
        "the reply to the message"
    );
}

#[tokio::test]
async fn a_reply_to_another_channels_send_is_not_a_click_of_it() {
    let app = TestApp::spawn().await;
    let ours = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    sent_template(&app, &ours, "acme").await;
    app.channel("rival", "whatsapp", "106540352242999").await;
    let mut payload = click(&wamid(5), "16505551234", "interested", "Interested");
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("106540352242999");

    app.post_json(&payload).await.expect(200);

    assert_eq!(
        app.count("SELECT count(*) FROM button_clicks", &[]).await,
        0
    );
    assert_eq!(
        app.take_published_jobs().len(),
        1,
        "the rival's channel answers its own customer"
    );
}
