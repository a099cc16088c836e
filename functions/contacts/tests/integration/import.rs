//! CSV import and export through the HTTP routes.

use std::fmt::Write;

use http::Method;
use serde_json::json;

use crate::TestApp;

/// `rows` data rows; every 1,000th row has a bad phone, every 1,000th (offset 500) a bad
/// email, every 2,500th (offset 7) repeats the previous row's phone. Returns the CSV and
/// the rows expected to be skipped with their reason.
fn big_file(rows: usize) -> (String, Vec<(u64, String)>) {
    let mut csv = String::from("\u{FEFF}name,phone,email,company,tags\n");
    let mut skipped = Vec::new();
    for i in 1..=rows {
        let row = i as u64;
        let phone = if i % 1000 == 0 {
            skipped.push((row, "phone: is not a phone number".to_owned()));
            "call me".to_owned()
        } else if i % 2500 == 7 {
            skipped.push((row, format!("phone: duplicate of row {}", row - 1)));
            format!("+1415{:07}", 2_000_000 + i - 1)
        } else {
            format!("+1415{:07}", 2_000_000 + i)
        };
        let email = if i % 1000 == 500 {
            skipped.push((
                row,
                "email: must be an email address like name@example.com".to_owned(),
            ));
            "bad@".to_owned()
        } else {
            format!("p{i}@example.com")
        };
        writeln!(
            csv,
            "\"Person {i}, Jr.\",{phone},{email},\"Acme \"\"{i}\"\"\",vip;batch-{}",
            i % 7
        )
        .expect("write");
    }
    skipped.sort();
    (csv, skipped)
}

#[tokio::test]
async fn fifty_thousand_rows_import_with_each_bad_row_named_and_a_reimport_changes_nothing() {
    let app = TestApp::spawn().await;
    let (csv, expected_skips) = big_file(50_000);
    assert!(
        csv.len() > 2 * 1024 * 1024,
        "beyond the API's usual body limit"
    );

    let first = app.import(csv.clone()).await;
    let body = first.expect(200).clone();
    let skipped: Vec<(u64, String)> = body["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            (
                s["row"].as_u64().expect("row"),
                s["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    assert_eq!(skipped, expected_skips);
    let valid = 50_000 - expected_skips.len() as u64;
    assert_eq!(body["created"], valid);
    assert_eq!(
        (body["updated"].clone(), body["unchanged"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM contacts WHERE source = 'IMPORT'")
            .await,
        valid as i64
    );
    assert_eq!(
        app.count("SELECT count(*) FROM contacts WHERE name = 'Person 1, Jr.' AND company = 'Acme \"1\"' AND tags = '{vip,batch-1}'")
            .await,
        1
    );
    let events = app.tag_events().await;
    assert_eq!(
        events,
        2 * valid as i64,
        "vip and one batch tag per contact"
    );
    let updated_at: i64 = app
        .count("SELECT (extract(epoch FROM max(updated_at)) * 1000000)::bigint FROM contacts")
        .await;

    let again = app.import(csv).await;
    let body = again.expect(200);
    assert_eq!(body["created"], 0);
    assert_eq!(body["updated"], 0);
    assert_eq!(body["unchanged"], valid);
    assert_eq!(
        app.tag_events().await,
        events,
        "no event for tags already there"
    );
    assert_eq!(
        app.count("SELECT (extract(epoch FROM max(updated_at)) * 1000000)::bigint FROM contacts")
            .await,
        updated_at,
        "no row was rewritten"
    );
}

#[tokio::test]
async fn an_import_fills_and_replaces_from_non_empty_cells_and_only_adds_tags() {
    let app = TestApp::spawn().await;
    let existing = app
        .create(
            json!({"phone": "+14155552671", "name": "Ana", "company": "Old Co", "tags": ["keep"]}),
        )
        .await;
    app.api
        .post(
            &format!(
                "/contacts/{}/opt-out",
                existing["contact_id"].as_str().expect("id")
            ),
            &app.token(),
            &json!({}),
        )
        .await
        .expect(200);

    let response = app
        .import("phone,name,email,company,tags\n+1 415 555 2671,,ana@example.com,New Co,new\n")
        .await;
    let body = response.expect(200);
    assert_eq!(
        (body["created"].clone(), body["updated"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM contacts WHERE name = 'Ana' AND email = 'ana@example.com' AND company = 'New Co'
             AND tags = '{keep,new}' AND source = 'MANUAL' AND opted_out"
        )
        .await,
        1,
        "empty cells keep, non-empty replace, tags add, source and opt-out untouched"
    );
}

#[tokio::test]
async fn a_wrong_header_or_a_body_that_is_not_csv_writes_nothing() {
    let app = TestApp::spawn().await;
    for (csv, field) in [
        ("name,email\nAna,a@example.com\n", "header"),
        ("phone,favourite_colour\n+14155552671,red\n", "header"),
        ("{\"phone\": \"+14155552671\"}", "header"),
    ] {
        let response = app.import(csv).await;
        response.expect_problem(422, Some(field));
    }
    let binary = app.import(vec![0xFFu8, 0xD8, 0xFF, 0xE0, 0, 1, 2]).await;
    binary.expect_problem(422, Some("body"));
    let json_body = app
        .send_raw(
            Method::POST,
            "/contacts/import",
            &app.token(),
            "application/json",
            "{}",
        )
        .await;
    let problem = json_body.expect_problem(415, None);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("text/csv"),
        "the 415 names the type the import reads: {problem}"
    );
    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 0);
}

#[tokio::test]
async fn a_file_refused_after_its_first_rows_were_written_writes_nothing() {
    // Valid rows are written batch by batch while the rest of the file is parsed; a file
    // found to be over the row limit only at its end is still a 422 that writes nothing.
    let app = TestApp::spawn().await;
    let mut csv = String::from("phone,tags\n");
    for i in 0..20_000 {
        writeln!(csv, "+1415{:07},vip", 3_000_000 + i).expect("write");
    }
    csv.push_str(&"x,\n".repeat(::contacts::transfer::MAX_IMPORT_ROWS + 1 - 20_000));

    app.import(csv).await.expect_problem(422, Some("body"));

    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 0);
    assert_eq!(app.tag_events().await, 0);
}

#[tokio::test]
async fn only_the_import_route_takes_a_large_body() {
    let app = TestApp::spawn().await;
    let big_json = json!({"phone": "+14155552671", "name": "x".repeat(300 * 1024)});
    app.api
        .post("/contacts", &app.token(), &big_json)
        .await
        .expect_problem(413, None);
    let huge = format!("phone\n{}", "+14155552671\n".repeat(11 * 1024 * 1024 / 13));
    app.import(huge).await.expect_problem(413, None);
}

#[tokio::test]
async fn the_export_streams_the_filtered_contacts_as_csv() {
    let app = TestApp::spawn().await;
    let mut csv = String::from("phone,name,tags\n");
    for i in 0..2_500 {
        writeln!(
            csv,
            "+1415{:07},\"=Name {i}\",{}",
            3_000_000 + i,
            if i % 2 == 0 { "even" } else { "odd" }
        )
        .expect("write");
    }
    app.import(csv).await.expect(200);

    let response = app.api.get("/contacts/export?tag=even", &app.token()).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let text = response.body.as_str().expect("text").to_owned();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    assert_eq!(&headers[1], "phone");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(
        rows.len(),
        1_250,
        "every even contact, across pages of 1,000"
    );
    assert!(rows.iter().all(|r| &r[7] == "even"));
    assert!(
        rows.iter().all(|r| r[4].starts_with("'=Name")),
        "formulas are neutralised"
    );

    app.api
        .get("/contacts/export?limit=5", &app.token())
        .await
        .expect_problem(422, Some("limit"));
}

#[tokio::test]
async fn a_file_of_bad_rows_answers_the_first_thousand_and_counts_them_all() {
    let app = TestApp::spawn().await;
    let mut csv = String::from("phone,name\n+14155550100,Good\n");
    for i in 0..2_500 {
        writeln!(csv, "not-a-phone-{i},{}", "b".repeat(200)).expect("write");
    }
    let response = app.import(csv).await;
    let body = response.expect(200);
    assert_eq!(body["created"], 1);
    assert_eq!(body["skipped_count"], 2_500);
    let listed = body["skipped"].as_array().expect("skipped");
    assert_eq!(listed.len(), 1_000);
    assert_eq!(listed[0]["row"], 2, "the first bad rows, in file order");
    assert!(body.to_string().len() < 200_000, "the answer stays small");
}

#[tokio::test]
async fn a_quote_left_open_is_reported_not_silently_swallowing_the_rows_after_it() {
    let app = TestApp::spawn().await;
    let response = app
        .import("phone,name\n+16505550914,\"unterminated\n+16505550915,B\n+16505550916,C\n")
        .await;
    let body = response.expect(200);
    assert_eq!(body["created"], 0, "{body}");
    assert_eq!(body["skipped_count"], 1);
    let reason = body["skipped"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("quote is left open"), "{reason}");
    // A name written over two lines is still one name.
    let fine = app
        .import("phone,name\n+16505550917,\"Doe, Jane\nthe second\"\n")
        .await;
    assert_eq!(fine.expect(200)["created"], 1);
}
