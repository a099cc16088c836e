use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn stats_count_sends_by_status_rates_and_clicks_per_button_over_a_range() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;
    let token = app.tenant.token();
    for n in 0..4 {
        app.api
            .post(
                &format!("/templates/{id}/send"),
                &token,
                &json!({ "to": format!("+1415555267{n}"), "variable_values": { "1": "Ana", "order": "A-1" } }),
            )
            .await
            .expect(201);
    }
    let client = app.db.client().await;
    client
        .batch_execute(
            "WITH ordered AS (SELECT send_id, row_number() OVER (ORDER BY send_id) AS n FROM template_sends)
             UPDATE template_sends s SET status = CASE o.n WHEN 1 THEN 'DELIVERED' WHEN 2 THEN 'READ' WHEN 3 THEN 'FAILED' ELSE s.status END
             FROM ordered o WHERE o.send_id = s.send_id",
        )
        .await
        .expect("statuses");
    let template = app
        .api
        .get(&format!("/templates/{id}"), &token)
        .await
        .expect(200)
        .clone();
    let interested = template["buttons"][0]["button_id"]
        .as_str()
        .expect("button")
        .to_owned();
    for (n, (button, customer, days_ago)) in [
        (interested.as_str(), "+14155552670", 0),
        (interested.as_str(), "+14155552670", 0),
        (interested.as_str(), "+14155552671", 0),
        ("unknown", "+14155552672", 0),
        (interested.as_str(), "+14155552673", 40),
    ]
    .into_iter()
    .enumerate()
    {
        client
            .execute(
                "INSERT INTO button_clicks (click_id, template_id, button_id, button_text, customer_phone, user_id, message_id, clicked_at)
                 VALUES ($1, $2, $3, 'x', $4, $5, $6, now() - make_interval(days => $7))",
                &[&format!("clk_{n}"), &id, &button, &customer, &app.tenant.sub, &format!("wamid.{n}"), &days_ago],
            )
            .await
            .expect("click");
    }
    let from = (chrono::Utc::now() - chrono::Duration::days(7))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let all = app.api.get(&format!("/templates/{id}/stats"), &token).await;
    let recent = app
        .api
        .get(&format!("/templates/{id}/stats?from={from}"), &token)
        .await;
    let backwards = app
        .api
        .get(
            &format!("/templates/{id}/stats?from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z"),
            &token,
        )
        .await;

    let all = all.expect(200);
    assert_eq!(
        all["sends"],
        json!({ "total": 4, "pending": 0, "sent": 1, "delivered": 1, "read": 1, "failed": 1 })
    );
    assert_eq!(all["delivery_rate"], json!(0.6667));
    assert_eq!(all["read_rate"], json!(0.3333));
    assert_eq!(all["buttons"][0]["total_clicks"], 4);
    assert_eq!(all["buttons"][0]["unique_clicks"], 3);
    assert_eq!(all["buttons"][1]["total_clicks"], 0);
    assert_eq!(all["buttons"][3]["button_id"], "unknown");
    let recent = recent.expect(200);
    assert_eq!(recent["buttons"][0]["total_clicks"], 3);
    assert_eq!(recent["buttons"][0]["unique_clicks"], 2);
    backwards.expect_problem(422, Some("to"));
}
