//! Webhook payloads shaped like Meta's documented examples, parsed into events.

use serde_json::{Value, json};
use shared::{
    domain::{DeliveryStatus, InboundMessage, Platform, StatusUpdate},
    meta::webhook::{Event, parse},
};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/meta/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[track_caller]
fn only_inbound(name: &str) -> InboundMessage {
    let events = parse(&fixture(name)).expect("an envelope");
    match events.as_slice() {
        [Event::Inbound(message)] => message.clone(),
        other => panic!("{name}: expected one inbound message, got {other:?}"),
    }
}

#[test]
fn a_text_message_carries_channel_customer_name_time_and_body() {
    let message = only_inbound("wa_text.json");

    assert_eq!(message.platform, Platform::WhatsApp);
    assert_eq!(message.channel_key, "106540352242922");
    assert_eq!(message.platform_message_id, "wamid.TEXT1");
    assert_eq!(message.customer_id, "16505551234");
    assert_eq!(message.customer_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(message.sent_at.timestamp(), 1_749_416_383);
    assert_eq!(message.message_type, "text");
    assert_eq!(message.text, "Does it come in another color?");
}

#[test]
fn every_message_type_gets_readable_text_and_keeps_its_details() {
    let cases: [(&str, &str, &str, Value); 14] = [
        (
            "wa_text_reply.json",
            "text",
            "Yes please",
            json!({ "context": { "from": "15550783881", "id": "wamid.ORIGINAL" } }),
        ),
        (
            "wa_button_reply.json",
            "interactive",
            "See pricing",
            json!({ "interactive": { "type": "button_reply", "id": "pricing", "title": "See pricing", "description": null } }),
        ),
        (
            "wa_list_reply.json",
            "interactive",
            "Pro plan",
            json!({ "interactive": { "type": "list_reply", "id": "plan_pro", "title": "Pro plan", "description": "For teams" } }),
        ),
        (
            "wa_template_button.json",
            "button",
            "Tell me more",
            json!({ "button": { "payload": "pricing_cta", "text": "Tell me more" }, "context": { "from": "15550783881", "id": "wamid.TEMPLATE_SENT" } }),
        ),
        (
            "wa_image.json",
            "image",
            "[image] This one",
            json!({ "media": { "id": "1003383421387256", "mime_type": "image/jpeg", "caption": "This one" } }),
        ),
        (
            "wa_document.json",
            "document",
            "[document: brief.pdf]",
            json!({ "media": { "id": "1003383421387257", "mime_type": "application/pdf", "filename": "brief.pdf" } }),
        ),
        (
            "wa_audio.json",
            "audio",
            "[audio]",
            json!({ "media": { "id": "1003383421387258", "voice": true } }),
        ),
        (
            "wa_video.json",
            "video",
            "[video]",
            json!({ "media": { "id": "1003383421387260", "mime_type": "video/mp4" } }),
        ),
        (
            "wa_sticker.json",
            "sticker",
            "[sticker]",
            json!({ "media": { "id": "1003383421387259", "mime_type": "image/webp" } }),
        ),
        (
            "wa_location.json",
            "location",
            "[location: Main office (37.483307, -122.148981)]",
            json!({ "location": { "name": "Main office" } }),
        ),
        (
            "wa_contacts.json",
            "contacts",
            "[contacts: Barbara J. Johnson]",
            json!({}),
        ),
        (
            "wa_reaction.json",
            "reaction",
            "[reaction: \u{1f44d}]",
            json!({ "reaction": { "message_id": "wamid.OURS" } }),
        ),
        (
            "wa_referral.json",
            "text",
            "Can I get more info about this?",
            json!({ "referral": { "source_type": "ad", "source_id": "120226305854810726", "ctwa_clid": "Afe0f1Rqc" } }),
        ),
        (
            "wa_unsupported.json",
            "unsupported",
            "[unsupported message: unsupported]",
            json!({}),
        ),
    ];
    for (file, message_type, text, expected_metadata) in cases {
        let message = only_inbound(file);
        assert_eq!(message.message_type, message_type, "{file}");
        assert_eq!(message.text, text, "{file}");
        assert_contains(&message.metadata, &expected_metadata, file);
    }
}

/// Every key of `expected` is in `actual` with the same value (recursively).
#[track_caller]
fn assert_contains(actual: &Value, expected: &Value, context: &str) {
    match expected {
        Value::Object(fields) => {
            for (key, value) in fields {
                let got = actual
                    .get(key)
                    .unwrap_or_else(|| panic!("{context}: no `{key}` in {actual}"));
                assert_contains(got, value, &format!("{context}.{key}"));
            }
        }
        other => assert_eq!(actual, other, "{context}"),
    }
}

#[test]
fn statuses_parse_with_their_errors() {
    let events = parse(&fixture("wa_statuses.json")).expect("envelope");
    let statuses: Vec<DeliveryStatus> = events
        .iter()
        .map(|e| match e {
            Event::Status(StatusUpdate {
                status,
                platform_message_id,
                ..
            }) => {
                assert_eq!(platform_message_id, "wamid.OUT1");
                *status
            }
            other => panic!("expected statuses, got {other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Read
        ]
    );

    let failed = parse(&fixture("wa_status_failed.json")).expect("envelope");
    let [Event::Status(update)] = failed.as_slice() else {
        panic!("one status: {failed:?}")
    };
    assert_eq!(update.status, DeliveryStatus::Failed);
    assert_eq!(update.errors.len(), 1);
    assert_eq!(update.errors[0].code, 131_047);
    assert!(
        update.errors[0]
            .describe()
            .starts_with("131047: Re-engagement message (Message failed")
    );
}

#[test]
fn instagram_text_and_attachments_are_inbound_but_echoes_are_ignored() {
    let text = only_inbound("ig_text.json");
    assert_eq!(text.platform, Platform::Instagram);
    assert_eq!(text.channel_key, "17841400000000");
    assert_eq!(text.customer_id, "5612345678901234");
    assert_eq!(text.text, "Hi! Is this still available?");
    assert_eq!(text.sent_at.timestamp_millis(), 1_749_416_700_123);

    let image = only_inbound("ig_attachment.json");
    assert_eq!(image.text, "[image]");
    assert_eq!(image.metadata["attachments"][0]["type"], "image");

    let echo = parse(&fixture("ig_echo.json")).expect("envelope");
    assert!(matches!(echo.as_slice(), [Event::Ignored(reason)] if reason.contains("echo")));
}

#[test]
fn unknown_objects_fields_and_broken_entries_are_ignored_not_errors() {
    for file in ["unknown_object.json", "wa_unknown_field.json"] {
        let events = parse(&fixture(file)).expect("envelope");
        assert!(
            events.iter().all(|e| matches!(e, Event::Ignored(_))),
            "{file}: {events:?}"
        );
    }
    let mixed = json!({
        "object": "whatsapp_business_account",
        "entry": [
            "garbage",
            { "changes": [ { "field": "messages", "value": { "messages": [ { "id": "x" } ] } } ] },
            fixture("wa_text.json")["entry"][0].clone(),
        ]
    });
    let events = parse(&mixed).expect("envelope");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Inbound(_)))
            .count(),
        1,
        "{events:?}"
    );
    assert!(parse(&json!([1, 2])).is_err());
}

#[test]
fn texts_names_types_and_metadata_are_cleaned_of_nul_and_cut_to_their_columns() {
    let mut payload = fixture("wa_image.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["messages"][0]["image"]["caption"] = json!("a\u{0}b");
    value["contacts"][0]["profile"]["name"] = json!("N".repeat(300));

    let events = parse(&payload).expect("an envelope");

    let [Event::Inbound(message)] = events.as_slice() else {
        panic!("one inbound message: {events:?}");
    };
    assert!(message.text.ends_with("a\u{FFFD}b"), "{}", message.text);
    assert_eq!(message.metadata["media"]["caption"], "a\u{FFFD}b");
    assert_eq!(
        message.customer_name.as_ref().map(|n| n.chars().count()),
        Some(shared::domain::CUSTOMER_NAME_MAX_CHARS)
    );

    let mut odd_type = fixture("wa_text.json");
    odd_type["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = json!("x".repeat(80));
    let events = parse(&odd_type).expect("an envelope");
    let [Event::Inbound(message)] = events.as_slice() else {
        panic!("one inbound message: {events:?}");
    };
    assert_eq!(
        message.message_type.chars().count(),
        shared::domain::MESSAGE_TYPE_MAX_CHARS
    );
}

#[test]
fn identifiers_with_a_nul_or_longer_than_their_columns_make_the_event_unusable() {
    let mut nul_id = fixture("wa_text.json");
    nul_id["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = json!("wamid.\u{0}");
    let mut long_sender = fixture("ig_text.json");
    long_sender["entry"][0]["messaging"][0]["sender"]["id"] =
        json!("1".repeat(shared::domain::CUSTOMER_ID_MAX_CHARS + 1));
    let mut long_status = fixture("wa_statuses.json");
    long_status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] =
        json!("w".repeat(shared::domain::PROVIDER_MESSAGE_ID_MAX_CHARS + 1));

    for payload in [nul_id, long_sender, long_status] {
        let events = parse(&payload).expect("an envelope");
        assert!(
            matches!(events.first(), Some(Event::Unusable(_))),
            "{events:?}"
        );
    }
}

#[test]
fn a_template_status_update_names_metas_numeric_id_and_the_entrys_waba() {
    let events = parse(&fixture("wa_template_status.json")).expect("envelope");
    let [Event::Template(update)] = events.as_slice() else {
        panic!("one template update expected: {events:?}");
    };
    assert_eq!(update.waba_id, "102290129340398");
    assert_eq!(update.meta_template_id, "594425479261596");
    assert_eq!(update.language.as_deref(), Some("en_US"));
    match &update.kind {
        shared::meta::webhook::TemplateUpdateKind::Status { event, reason, .. } => {
            assert_eq!(event, "APPROVED");
            assert_eq!(reason, &None);
        }
        other => panic!("a status event expected: {other:?}"),
    }
}
