//! The Meta simulator's send limits, chosen failures and counts, through a real listener and
//! our own Graph client (`shared::meta::graph`), as the campaigns' tests will use them.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::meta::errors::SendFailure;
use shared::meta::graph::{
    ErrorOrigin, Graph, GraphConfig, GraphError, Sent,
    messages::{MessageContent, TemplateLanguage, TemplateMessage},
};
use testkit::simulators::{MetaBehaviourUpdate, RecipientBehaviour, Simulators};

/// A number of WABA `10654035224292` (the simulator's rule: `W` followed by one digit).
const NUMBER: &str = "106540352242922";
const WABA: &str = "10654035224292";

type Webhooks = Arc<Mutex<Vec<Value>>>;

struct Sim {
    sim: Simulators,
    base: String,
    http: reqwest::Client,
    graph: Graph,
    webhooks: Webhooks,
}

async fn collect(State(webhooks): State<Webhooks>, Json(body): Json<Value>) -> Json<Value> {
    webhooks.lock().expect("webhooks").push(body);
    Json(json!({}))
}

/// The simulators on a loopback port, their status webhooks collected at `/webhook`.
async fn start() -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let http = reqwest::Client::new();
    let sim = Simulators::new(
        format!("{base}/webhook"),
        "sim-app-secret".to_owned(),
        http.clone(),
    );
    let webhooks = Webhooks::default();
    let app = sim.clone().router().merge(
        Router::new()
            .route("/webhook", post(collect))
            .with_state(webhooks.clone()),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let graph = Graph::new(
        http.clone(),
        GraphConfig::for_base_url(&format!("{base}/_sim/meta")),
    );
    Sim {
        sim,
        base,
        http,
        graph,
        webhooks,
    }
}

fn token() -> SecretString {
    SecretString::from("EAAG-test")
}

impl Sim {
    async fn text(&self, from: &str, to: &str) -> Result<Sent, GraphError> {
        self.graph
            .send_whatsapp_text(from, &token(), to, "Hello")
            .await
    }

    async fn template(&self, graph: &Graph, to: &str) -> Result<Sent, GraphError> {
        let content = MessageContent::Template {
            template: TemplateMessage {
                name: "spring_sale".to_owned(),
                language: TemplateLanguage {
                    code: "en_US".to_owned(),
                },
                components: vec![],
            },
        };
        graph.send_whatsapp(NUMBER, &token(), to, &content).await
    }

    /// An approved `spring_sale` (en_US) template of the number's WABA.
    async fn approve_template(&self) {
        let created: Value = self
            .http
            .post(format!("{}/_sim/meta/{WABA}/message_templates", self.base))
            .bearer_auth("EAAG-test")
            .json(&json!({
                "name": "spring_sale", "language": "en_US", "category": "MARKETING",
                "components": [{ "type": "BODY", "text": "Our spring sale starts today." }],
            }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("created");
        let id = created["id"].as_str().expect("template id");
        let reviewed = self
            .http
            .post(format!("{}/_sim/meta/templates/{id}/review", self.base))
            .json(&json!({ "event": "APPROVED" }))
            .send()
            .await
            .expect("review");
        assert!(reviewed.status().is_success());
    }

    async fn control(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/_sim/meta/{path}", self.base);
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let response = request.send().await.expect("control route");
        let status = response.status().as_u16();
        (status, response.json().await.expect("control JSON"))
    }

    /// Status webhooks received so far: `(status, recipient_id, first error code)`.
    fn statuses(&self) -> Vec<(String, String, Option<i64>)> {
        self.webhooks
            .lock()
            .expect("webhooks")
            .iter()
            .filter_map(|w| {
                let status = &w["entry"][0]["changes"][0]["value"]["statuses"][0];
                Some((
                    status["status"].as_str()?.to_owned(),
                    status["recipient_id"].as_str()?.to_owned(),
                    status["errors"][0]["code"].as_i64(),
                ))
            })
            .collect()
    }
}

#[tokio::test]
async fn the_throughput_cap_answers_130429_beyond_n_a_second_and_accepts_after_the_window() {
    let sim = start().await;
    sim.sim.set_meta_mps(NUMBER, 5);
    sim.sim.set_meta_status_webhooks(false);

    let mut sends = tokio::task::JoinSet::new();
    for i in 0..8 {
        let graph = sim.graph.clone();
        sends.spawn(async move {
            graph
                .send_whatsapp_text(NUMBER, &token(), &format!("+1415555{i:04}"), "Hello")
                .await
        });
    }
    let results = sends.join_all().await;
    let refused: Vec<&GraphError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.len() - refused.len(), 5);
    assert_eq!(refused.len(), 3);
    for error in refused {
        assert_eq!(error.code, Some(130_429));
        assert_eq!(error.status, Some(400));
        assert_eq!(error.send_failure(), SendFailure::Retryable);
    }
    // Another number has Meta's default of 80.
    sim.text("106540352242923", "+14155550000")
        .await
        .expect("another number");

    tokio::time::sleep(Duration::from_millis(1_050)).await;
    sim.text(NUMBER, "+14155559999")
        .await
        .expect("a slot is free again after the second");

    let stats = sim.sim.meta_stats();
    assert_eq!(stats.number(NUMBER).accepted, 6);
    assert_eq!(stats.number(NUMBER).rate_limited, 3);
    assert_eq!(stats.rate_limited, 3);
    assert_eq!(stats.accepted, 7);
}

#[tokio::test]
async fn one_send_per_pair_window_to_a_recipient_with_or_without_plus() {
    let sim = start().await;
    sim.sim.set_meta_pair_window(Duration::from_millis(300));
    sim.sim.set_meta_status_webhooks(false);

    sim.text(NUMBER, "+14155550100").await.expect("first send");
    let again = sim
        .text(NUMBER, "14155550100")
        .await
        .expect_err("the same recipient within the window");
    assert_eq!(again.code, Some(131_056));
    assert_eq!(again.status, Some(400));
    assert_eq!(again.send_failure(), SendFailure::Retryable);
    sim.text(NUMBER, "+14155550101")
        .await
        .expect("another recipient");
    sim.text("106540352242923", "+14155550100")
        .await
        .expect("the same recipient from another number");

    tokio::time::sleep(Duration::from_millis(350)).await;
    sim.text(NUMBER, "+14155550100")
        .await
        .expect("after the window");

    let stats = sim.sim.meta_stats();
    assert_eq!(stats.number(NUMBER).pair_limited, 1);
    assert_eq!(stats.sent_to(NUMBER, "+14155550100"), 2);
    assert_eq!(stats.sent_to(NUMBER, "14155550101"), 1);

    sim.sim.set_meta_pair_window(Duration::ZERO);
    sim.text(NUMBER, "+14155550100")
        .await
        .expect("no pair rate when the window is 0");
}

#[tokio::test]
async fn each_chosen_failure_is_metas_error_json_and_our_client_reads_its_code() {
    let sim = start().await;
    let cases = [
        (
            131_049,
            400,
            "This message was not delivered to maintain healthy ecosystem engagement.",
        ),
        (131_026, 400, "Message Undeliverable"),
        (
            131_050,
            400,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        ),
        (131_047, 400, "Re-engagement message"),
        (132_015, 400, "Template is Paused"),
        (132_016, 400, "Template is Disabled"),
        (368, 403, "Temporarily blocked for policies violations"),
    ];
    for (i, (code, status, title)) in cases.into_iter().enumerate() {
        let to = format!("+1415555{:04}", 100 + i);
        sim.sim
            .set_meta_recipient(&to, RecipientBehaviour::error(code))
            .expect("a known code");

        let raw = sim
            .http
            .post(format!("{}/_sim/meta/{NUMBER}/messages", sim.base))
            .bearer_auth("EAAG-test")
            .json(&json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": "Hi" } }))
            .send()
            .await
            .expect("raw send");
        assert_eq!(raw.status().as_u16(), status, "{code}");
        let body: Value = raw.json().await.expect("error JSON");
        let error = &body["error"];
        assert_eq!(error["message"], format!("(#{code}) {title}"));
        assert_eq!(error["type"], "OAuthException");
        assert_eq!(error["code"], code);
        assert_eq!(error["error_data"]["messaging_product"], "whatsapp");
        assert!(error["error_data"]["details"].is_string());
        assert!(error["fbtrace_id"].is_string());
        assert!(
            error.get("error_subcode").is_none(),
            "Meta dropped it in v16"
        );

        let read = sim.text(NUMBER, &to).await.expect_err("the chosen failure");
        assert_eq!(read.code, Some(code));
        assert_eq!(read.status, Some(status));
        assert_eq!(read.origin, ErrorOrigin::Meta);
        assert_eq!(read.error_type.as_deref(), Some("OAuthException"));
        assert_eq!(
            Some(read.message.as_str()),
            error["error_data"]["details"].as_str()
        );
        assert_eq!(read.send_failure(), SendFailure::Permanent, "{code}");
    }
    let stats = sim.sim.meta_stats();
    assert_eq!(stats.number(NUMBER).failed, 14);
    assert_eq!(stats.number(NUMBER).accepted, 0);
    let refused = sim
        .sim
        .meta_stats()
        .numbers
        .get(NUMBER)
        .map(|n| n.recipients.len());
    assert_eq!(refused, Some(0), "a refused send reached no one");
}

#[tokio::test]
async fn a_behaviour_for_n_times_then_the_recipient_is_normal() {
    let sim = start().await;
    sim.sim.set_meta_pair_window(Duration::ZERO);
    sim.sim.set_meta_status_webhooks(false);
    sim.sim
        .set_meta_recipient("+14155550101", RecipientBehaviour::error(131_026).times(2))
        .expect("behaviour");

    let first = sim.text(NUMBER, "14155550101").await.expect_err("1st");
    assert_eq!(first.code, Some(131_026));
    let (_, behaviour) = sim.control("behaviour", None).await;
    assert_eq!(behaviour["recipients"]["14155550101"]["times"], 1);
    let second = sim.text(NUMBER, "+14155550101").await.expect_err("2nd");
    assert_eq!(second.code, Some(131_026));
    sim.text(NUMBER, "+14155550101")
        .await
        .expect("normal after two");
    let (_, behaviour) = sim.control("behaviour", None).await;
    assert_eq!(behaviour["recipients"], json!({}));
}

#[tokio::test]
async fn a_held_answer_times_the_client_out_and_its_retry_is_a_duplicate() {
    let sim = start().await;
    sim.approve_template().await;
    sim.sim.set_meta_pair_window(Duration::ZERO);
    sim.sim.set_meta_status_webhooks(false);
    sim.sim
        .set_meta_recipient(
            "+14155550102",
            RecipientBehaviour::timeout(Duration::from_millis(600)).times(1),
        )
        .expect("behaviour");
    let impatient = Graph::new(
        sim.http.clone(),
        GraphConfig {
            timeout: Duration::from_millis(150),
            ..GraphConfig::for_base_url(&format!("{}/_sim/meta", sim.base))
        },
    );

    let timed_out = sim
        .template(&impatient, "+14155550102")
        .await
        .expect_err("no answer in time");
    assert_eq!(timed_out.origin, ErrorOrigin::NoAnswer);
    assert_eq!(timed_out.send_failure(), SendFailure::Retryable);
    sim.template(&impatient, "+14155550102")
        .await
        .expect("the retry is answered");
    sim.template(&sim.graph, "+14155550103")
        .await
        .expect("another recipient");

    let stats = sim.sim.meta_stats();
    assert_eq!(stats.number(NUMBER).accepted, 3);
    assert_eq!(stats.number(NUMBER).held, 1);
    assert_eq!(stats.sent_to(NUMBER, "+14155550102"), 2);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.duplicated.len(), 1);
    assert_eq!(stats.duplicated[0].to, "14155550102");
    assert_eq!(stats.duplicated[0].template, "spring_sale/en_US");
    assert_eq!(stats.duplicated[0].sends, 2);
    // Both sends are in the request log, each with its own wamid.
    let (_, requests) = sim.control("requests", None).await;
    let sent: Vec<&Value> = requests
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["body"]["to"] == "14155550102" && r["id"].is_string())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0]["id"], sent[1]["id"]);
}

#[tokio::test]
async fn an_async_failure_is_accepted_then_reported_in_a_failed_status_webhook() {
    let sim = start().await;
    sim.sim.set_meta_status_delay(Duration::from_millis(10));
    sim.sim
        .set_meta_recipient(
            "+14155550104",
            RecipientBehaviour::error(131_049).asynchronous(),
        )
        .expect("behaviour");

    let sent = sim
        .text(NUMBER, "+14155550104")
        .await
        .expect("accepted first");
    assert!(sent.platform_message_id.starts_with("wamid."));
    let failed = wait_for(&sim, |statuses| {
        statuses.iter().any(|(status, _, _)| status == "failed")
    })
    .await;
    assert_eq!(
        failed,
        vec![("failed".to_owned(), "14155550104".to_owned(), Some(131_049))]
    );
    let stats = sim.sim.meta_stats();
    assert_eq!(
        (stats.number(NUMBER).accepted, stats.number(NUMBER).failed),
        (1, 1)
    );
}

async fn wait_for(
    sim: &Sim,
    done: impl Fn(&[(String, String, Option<i64>)]) -> bool,
) -> Vec<(String, String, Option<i64>)> {
    for _ in 0..200 {
        let statuses = sim.statuses();
        if done(&statuses) {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("status webhooks: {:?}", sim.statuses());
}

#[tokio::test]
async fn status_webhooks_follow_the_delay_and_can_be_switched_off() {
    let sim = start().await;
    let (status, behaviour) = sim
        .control(
            "behaviour",
            Some(json!({ "status_webhooks": false, "pair_window_ms": 0 })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(behaviour["status_webhooks"], false);
    sim.text(NUMBER, "+14155550105").await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sim.statuses().is_empty(), "{:?}", sim.statuses());

    sim.control(
        "behaviour",
        Some(json!({ "status_webhooks": true, "status_delay_ms": 5 })),
    )
    .await;
    sim.text(NUMBER, "+14155550105").await.expect("send");
    let statuses = wait_for(&sim, |s| s.len() == 3).await;
    let order: Vec<&str> = statuses.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(order, ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn the_control_routes_set_the_behaviour_and_report_the_counts() {
    let sim = start().await;
    let (status, behaviour) = sim
        .control(
            "behaviour",
            Some(json!({
                "recipients": {
                    "+14155550100": { "error": 131049 },
                    "+14155550101": { "error": 131026, "times": 1 },
                    "+14155550102": { "timeout_ms": 15000 },
                },
                "default_mps": 80,
                "mps": { NUMBER: 1000 },
                "pair_window_ms": 6000,
                "status_webhooks": false,
            })),
        )
        .await;
    assert_eq!(status, 200, "{behaviour}");
    assert_eq!(behaviour["mps"][NUMBER], 1000);
    assert_eq!(behaviour["pair_window_ms"], 6000);
    assert_eq!(
        behaviour["recipients"]["14155550100"],
        json!({ "error": 131049 })
    );
    assert_eq!(
        behaviour["recipients"]["14155550102"],
        json!({ "timeout_ms": 15000 })
    );

    let (status, refused) = sim
        .control(
            "behaviour",
            Some(json!({ "recipients": { "+1415": { "error": 999 } } })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("999")));
    let (status, _) = sim
        .control("behaviour", Some(json!({ "pair_window": 5 })))
        .await;
    assert_eq!(status, 400, "unknown fields are refused, not ignored");

    // `null` removes a recipient's behaviour.
    let (_, behaviour) = sim
        .control(
            "behaviour",
            Some(json!({ "recipients": { "14155550102": null } })),
        )
        .await;
    assert!(behaviour["recipients"].get("14155550102").is_none());

    // Every recipient of a small "campaign" gets exactly one message.
    let recipients: Vec<String> = (200..210).map(|n| format!("+1415555{n:04}")).collect();
    for to in &recipients {
        sim.text(NUMBER, to).await.expect("campaign send");
    }
    let failed = sim.text(NUMBER, "+14155550100").await.expect_err("chosen");
    assert_eq!(failed.code, Some(131_049));

    let (status, stats) = sim.control("stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["accepted"], 10);
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["duplicates"], 0);
    assert_eq!(stats["numbers"][NUMBER]["accepted"], 10);
    assert_eq!(stats["numbers"][NUMBER]["rate_limited"], 0);
    let per_recipient = stats["numbers"][NUMBER]["recipients"]
        .as_object()
        .expect("recipients");
    assert_eq!(per_recipient.len(), recipients.len());
    assert!(per_recipient.values().all(|count| count == 1));
    assert_eq!(per_recipient["14155550200"], 1);

    let (_, zeroed) = sim.control("stats/reset", Some(json!({}))).await;
    assert_eq!(zeroed["accepted"], 0);
    assert_eq!(zeroed["numbers"], json!({}));

    let (_, reset) = sim.control("behaviour/reset", Some(json!({}))).await;
    assert_eq!(reset["recipients"], json!({}));
    assert_eq!(reset["mps"], json!({}));
    assert_eq!(reset["default_mps"], 80);
    assert_eq!(reset["status_webhooks"], true);
    assert_eq!(reset["status_delay_ms"], 50);

    let update = MetaBehaviourUpdate {
        default_mps: Some(0),
        ..MetaBehaviourUpdate::default()
    };
    assert_eq!(
        sim.sim.configure_meta(update).expect("update").default_mps,
        0
    );
}
