//! The Graph client's resources against a recording fake: the request each call makes
//! (path, query, body, auth header) and how Meta's answers and errors are read.

use serde_json::{Value, json};
use shared::{
    domain::InstagramApi,
    meta::{
        errors::{CheckFailure, SendFailure},
        graph::{
            ErrorOrigin, Graph, GraphConfig, Media, MessageContent, SecretString,
            instagram::InstagramContent,
            messages::{
                ButtonSubType, Interactive, InteractiveText, ListAction, ListRow, ListSection,
                TemplateLanguage, TemplateMessage, TemplateMessageComponent, TemplateParameter,
            },
            templates::{
                ComponentExample, NewTemplate, ParameterFormat, TemplateCategory, TemplateComponent,
            },
        },
    },
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

fn token() -> SecretString {
    SecretString::from("EAAG-secret-token")
}

async fn graph() -> (MockServer, Graph) {
    let server = MockServer::start().await;
    let graph = Graph::new(
        reqwest::Client::new(),
        GraphConfig::for_base_url(&server.uri()),
    );
    (server, graph)
}

fn sent(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": "16505551234", "wa_id": "16505551234" }],
        "messages": [{ "id": id, "message_status": "accepted" }],
    }))
}

#[tokio::test]
async fn a_template_message_is_sent_with_its_components_and_the_bearer_token() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/106540352242922/messages"))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": { "code": "en_US" },
                "components": [
                    { "type": "header", "parameters": [{ "type": "image", "image": { "link": "https://example.test/a.png" } }] },
                    { "type": "body", "parameters": [{ "type": "text", "text": "Sheena 🎉", "parameter_name": "name" }] },
                    { "type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{ "type": "payload", "payload": "STOP" }] },
                ],
            },
        })))
        .respond_with(sent("wamid.T1"))
        .expect(1)
        .mount(&server)
        .await;
    let content = MessageContent::Template {
        template: TemplateMessage {
            name: "order_update".to_owned(),
            language: TemplateLanguage {
                code: "en_US".to_owned(),
            },
            components: vec![
                TemplateMessageComponent::Header {
                    parameters: vec![TemplateParameter::Image {
                        image: Media::by_link("https://example.test/a.png"),
                    }],
                },
                TemplateMessageComponent::Body {
                    parameters: vec![TemplateParameter::Text {
                        text: "Sheena 🎉".to_owned(),
                        parameter_name: Some("name".to_owned()),
                    }],
                },
                TemplateMessageComponent::Button {
                    sub_type: ButtonSubType::QuickReply,
                    index: "0".to_owned(),
                    parameters: vec![TemplateParameter::Payload {
                        payload: "STOP".to_owned(),
                    }],
                },
            ],
        },
    };

    let sent = graph
        .send_whatsapp("106540352242922", &token(), "+16505551234", &content)
        .await
        .expect("sent");

    assert_eq!(sent.platform_message_id, "wamid.T1");
    assert_eq!(sent.message_status.as_deref(), Some("accepted"));
}

#[tokio::test]
async fn interactive_lists_and_media_by_id_have_cloud_api_shapes() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/1/messages"))
        .respond_with(sent("wamid.X"))
        .mount(&server)
        .await;
    let list = MessageContent::Interactive {
        interactive: Interactive::List {
            header: None,
            body: InteractiveText {
                text: "Pick one".to_owned(),
            },
            footer: None,
            action: ListAction {
                button: "Options".to_owned(),
                sections: vec![ListSection {
                    title: Some("Plans".to_owned()),
                    rows: vec![ListRow {
                        id: "basic".to_owned(),
                        title: "Basic".to_owned(),
                        description: None,
                    }],
                }],
            },
        },
    };
    let document = MessageContent::Document {
        document: Media {
            filename: Some("quote.pdf".to_owned()),
            ..Media::by_id("1013859600285441")
        },
    };
    for content in [&list, &document] {
        graph
            .send_whatsapp("1", &token(), "16505551234", content)
            .await
            .expect("sent");
    }

    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(
        bodies[0]["interactive"],
        json!({ "type": "list", "body": { "text": "Pick one" }, "action": { "button": "Options", "sections": [{ "title": "Plans", "rows": [{ "id": "basic", "title": "Basic" }] }] } })
    );
    assert_eq!(bodies[0]["type"], "interactive");
    assert_eq!(bodies[1]["type"], "document");
    assert_eq!(
        bodies[1]["document"],
        json!({ "id": "1013859600285441", "filename": "quote.pdf" })
    );
}

#[tokio::test]
async fn an_instagram_text_goes_to_the_account_with_the_recipient_id() {
    let (server, graph) = graph().await;
    let recipient = "a".repeat(160);
    Mock::given(method("POST"))
        .and(path("/17841400000000000/messages"))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .and(body_json(
            json!({ "recipient": { "id": recipient }, "message": { "text": "Hi 👋" } }),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "recipient_id": recipient, "message_id": "m_1" })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let sent = graph
        .send_instagram(
            InstagramApi::InstagramLogin,
            "17841400000000000",
            &token(),
            &recipient,
            &InstagramContent::Text {
                text: "Hi 👋".to_owned(),
            },
        )
        .await
        .expect("sent");

    assert_eq!(sent.platform_message_id, "m_1");
}

#[tokio::test]
async fn meta_error_bodies_are_parsed_and_a_non_json_body_is_kept_as_text() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/1/messages"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
                       "error_subcode": 2494010, "error_data": { "messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed" },
                       "fbtrace_id": "AbC123" }
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/messages"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_raw("<html>Service Unavailable</html>", "text/html"),
        )
        .mount(&server)
        .await;

    let refused = graph
        .send_whatsapp_text("1", &token(), "16505551234", "Hello")
        .await
        .expect_err("refused");
    let outage = graph
        .send_whatsapp_text("2", &token(), "16505551234", "Hello")
        .await
        .expect_err("outage");

    assert_eq!(refused.status, Some(400));
    assert_eq!(refused.code, Some(131_047));
    assert_eq!(refused.subcode, Some(2_494_010));
    assert_eq!(refused.fbtrace_id.as_deref(), Some("AbC123"));
    assert_eq!(refused.error_type.as_deref(), Some("OAuthException"));
    assert_eq!(
        refused.message,
        "Message failed to send because more than 24 hours have passed"
    );
    assert_eq!(refused.send_failure(), SendFailure::Permanent);
    assert_eq!(outage.status, Some(503));
    assert_eq!(outage.code, None);
    assert_eq!(
        outage.raw_body.as_deref(),
        Some("<html>Service Unavailable</html>")
    );
    assert_eq!(outage.message, "HTTP 503: <html>Service Unavailable</html>");
    assert_eq!(outage.send_failure(), SendFailure::Retryable);
    assert_eq!(outage.check_failure(), CheckFailure::Unavailable);
    assert!(
        !format!("{refused:?}{outage:?}").contains("EAAG-secret-token"),
        "the token is never in an error"
    );
}

#[tokio::test]
async fn no_answer_and_an_unreadable_success_are_retryable() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "messages": [] })))
        .mount(&server)
        .await;
    let unreadable = graph
        .send_whatsapp_text("1", &token(), "16505551234", "Hello")
        .await
        .expect_err("no id");
    let nowhere = Graph::new(
        reqwest::Client::new(),
        GraphConfig::for_base_url("http://127.0.0.1:9"),
    )
    .send_whatsapp_text("1", &token(), "16505551234", "Hello")
    .await
    .expect_err("no answer");

    assert_eq!(unreadable.origin, ErrorOrigin::UnreadableAnswer);
    assert_eq!(unreadable.send_failure(), SendFailure::Retryable);
    assert_eq!(nowhere.origin, ErrorOrigin::NoAnswer);
    assert_eq!(nowhere.send_failure(), SendFailure::Retryable);
}

#[tokio::test]
async fn a_template_is_created_read_and_deleted() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/102290129340398/message_templates"))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .and(body_json(json!({
            "name": "seasonal_promotion",
            "language": "en_US",
            "category": "MARKETING",
            "parameter_format": "POSITIONAL",
            "components": [
                { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1h"] } },
                { "type": "BODY", "text": "Shop now through {{1}}", "example": { "body_text": [["the end of August"]] } },
            ],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "id": "572279198452421", "status": "PENDING", "category": "MARKETING" }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/572279198452421"))
        .and(query_param(
            "fields",
            "id,name,status,category,language,rejected_reason,components,quality_score",
        ))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "572279198452421", "name": "seasonal_promotion", "status": "APPROVED",
            "category": "MARKETING", "language": "en_US",
            "components": [{ "type": "BODY", "text": "Shop now through {{1}}" }],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/102290129340398/message_templates"))
        .and(query_param("name", "seasonal_promotion"))
        .and(query_param("hsm_id", "572279198452421"))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .expect(1)
        .mount(&server)
        .await;
    let template = NewTemplate {
        name: "seasonal_promotion".to_owned(),
        language: "en_US".to_owned(),
        category: TemplateCategory::Marketing,
        parameter_format: Some(ParameterFormat::Positional),
        components: vec![
            TemplateComponent {
                kind: "HEADER".to_owned(),
                format: Some("IMAGE".to_owned()),
                example: Some(ComponentExample {
                    header_handle: vec!["4::aW1h".to_owned()],
                    ..ComponentExample::default()
                }),
                ..TemplateComponent::default()
            },
            TemplateComponent {
                kind: "BODY".to_owned(),
                text: Some("Shop now through {{1}}".to_owned()),
                example: Some(ComponentExample {
                    body_text: vec![vec!["the end of August".to_owned()]],
                    ..ComponentExample::default()
                }),
                ..TemplateComponent::default()
            },
        ],
    };

    let created = graph
        .create_template("102290129340398", &token(), &template)
        .await
        .expect("created");
    let read = graph.template(&created.id, &token()).await.expect("read");
    graph
        .delete_template(
            "102290129340398",
            &token(),
            "seasonal_promotion",
            Some(&created.id),
        )
        .await
        .expect("deleted");

    assert_eq!(created.status, "PENDING");
    assert_eq!(created.category, Some(TemplateCategory::Marketing));
    assert_eq!(read.status.as_deref(), Some("APPROVED"));
    assert_eq!(
        read.components[0].text.as_deref(),
        Some("Shop now through {{1}}")
    );
}

#[tokio::test]
async fn a_file_is_uploaded_in_a_session_with_the_oauth_header_and_offset_zero() {
    let (server, graph) = graph().await;
    Mock::given(method("POST"))
        .and(path("/1234567890/uploads"))
        .and(query_param("file_name", "header.png"))
        .and(query_param("file_length", "5"))
        .and(query_param("file_type", "image/png"))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "id": "upload:MTphdHRh?sig=ARZ" })),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload:MTphdHRh"))
        .and(query_param("sig", "ARZ"))
        .and(header("authorization", "OAuth EAAG-secret-token"))
        .and(header("file_offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "h": "4::aW1h" })))
        .expect(1)
        .mount(&server)
        .await;

    let handle = graph
        .upload_file(
            "1234567890",
            &token(),
            "header.png",
            "image/png",
            bytes::Bytes::from_static(b"\x89PNG\0"),
        )
        .await
        .expect("uploaded");

    assert_eq!(handle.h, "4::aW1h");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests[1].body, b"\x89PNG\0");
}

#[tokio::test]
async fn a_numbers_details_and_throughput_are_read() {
    let (server, graph) = graph().await;
    Mock::given(method("GET"))
        .and(path("/106540352242922"))
        .and(query_param(
            "fields",
            "display_phone_number,verified_name,quality_rating,throughput,messaging_limit_tier",
        ))
        .and(header("authorization", "Bearer EAAG-secret-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "106540352242922", "display_phone_number": "+1 555-555-5555", "verified_name": "Acme",
            "quality_rating": "GREEN", "throughput": { "level": "STANDARD" }, "messaging_limit_tier": "TIER_1K",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/999"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "Unsupported get request", "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "Z" }
        })))
        .mount(&server)
        .await;

    let details = graph
        .phone_number("106540352242922", &token())
        .await
        .expect("details");
    let missing = graph
        .phone_number("999", &token())
        .await
        .expect_err("missing");

    assert_eq!(details.quality_rating.as_deref(), Some("GREEN"));
    assert_eq!(
        details.throughput.and_then(|t| t.level).as_deref(),
        Some("STANDARD")
    );
    assert_eq!(details.messaging_limit_tier.as_deref(), Some("TIER_1K"));
    assert_eq!(missing.check_failure(), CheckFailure::NotFound);
    assert_eq!(missing.subcode, Some(33));
}
