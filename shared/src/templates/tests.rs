//! The validation table (one failing case per rule, each naming its field) and the
//! snapshots of the exact JSON sent to Meta (`shared/tests/snapshots/templates/*.json`,
//! reviewed by a person; `UPDATE_SNAPSHOTS=1` rewrites them).

use std::collections::BTreeMap;

use super::{
    model::*,
    payload::{HeaderOverride, creation_request, resolve_values, send_content},
    validate::{BODY_MAX_CHARS, validate},
};
use crate::domain::{ButtonType, ComponentType, HeaderType, ParameterFormat, TemplateCategory};

fn var(name: &str, position: i32, component: ComponentType, sample: &str) -> Variable {
    Variable {
        variable_name: name.to_owned(),
        position,
        component_type: component,
        dashboard_mapping: None,
        default_value: None,
        sample_value: Some(sample.to_owned()),
    }
}

fn button(kind: ButtonType, text: &str) -> Button {
    Button {
        button_type: kind,
        button_text: text.to_owned(),
        button_url: None,
        button_url_suffix_variable: None,
        button_phone: None,
        copy_code_example: None,
        tracking_id: None,
    }
}

/// A positional MARKETING template with an IMAGE header, two body variables and three
/// buttons (quick reply, URL with a suffix, phone).
fn image_template() -> TemplateDraft {
    TemplateDraft {
        name: "summer_sale".to_owned(),
        category: TemplateCategory::Marketing,
        language: "en_US".to_owned(),
        parameter_format: ParameterFormat::Positional,
        content: TemplateContent {
            header: Header {
                kind: HeaderType::Image,
                media_url: Some("https://cdn.example.com/sale.jpg".to_owned()),
                ..Header::default()
            },
            body: TextPart {
                text: "Hi {{1}}, your code {{2}} gives 20% off this week.".to_owned(),
            },
            footer: Some(TextPart {
                text: "Reply STOP to opt out".to_owned(),
            }),
            variables: vec![
                var("first_name", 1, ComponentType::Body, "Maria"),
                var("code", 2, ComponentType::Body, "SUMMER20"),
                var("order", 1, ComponentType::Button, "A-1001"),
            ],
            buttons: vec![
                Button {
                    tracking_id: Some("interested".to_owned()),
                    ..button(ButtonType::QuickReply, "Interested")
                },
                button(ButtonType::QuickReply, "Not now"),
                Button {
                    button_url: Some("https://shop.example.com/orders/{{1}}".to_owned()),
                    button_url_suffix_variable: Some(1),
                    ..button(ButtonType::Url, "Track order")
                },
                Button {
                    button_phone: Some("+14155552671".to_owned()),
                    ..button(ButtonType::PhoneNumber, "Call us")
                },
            ],
        },
    }
}

/// A named UTILITY template with a TEXT header variable.
fn named_template() -> TemplateDraft {
    TemplateDraft {
        name: "order_update".to_owned(),
        category: TemplateCategory::Utility,
        language: "pt_BR".to_owned(),
        parameter_format: ParameterFormat::Named,
        content: TemplateContent {
            header: Header {
                kind: HeaderType::Text,
                text: Some("Order {{order_id}}".to_owned()),
                ..Header::default()
            },
            body: TextPart {
                text: "Hello {{first_name}}, your order ships on {{ship_date}} by courier."
                    .to_owned(),
            },
            footer: None,
            variables: vec![
                var("order_id", 1, ComponentType::Header, "#123"),
                var("first_name", 1, ComponentType::Body, "Ana"),
                var("ship_date", 2, ComponentType::Body, "May 3"),
            ],
            buttons: vec![],
        },
    }
}

fn fields(draft: &TemplateDraft) -> Vec<String> {
    validate(draft).into_iter().map(|v| v.field).collect()
}

#[test]
fn a_template_at_every_limit_passes() {
    let mut draft = image_template();
    draft.name = "a".repeat(512);
    let filler = "word ".repeat(250);
    let mut body = format!("Hi {{{{1}}}}, code {{{{2}}}} {filler}");
    body.truncate(BODY_MAX_CHARS - 1);
    body.push('.');
    draft.content.body.text = body;
    assert_eq!(draft.content.body.text.chars().count(), BODY_MAX_CHARS);
    draft.content.footer = Some(TextPart {
        text: "f".repeat(60),
    });
    draft.content.buttons = vec![
        button(ButtonType::QuickReply, &"q".repeat(25)),
        button(ButtonType::QuickReply, "Two"),
        button(ButtonType::QuickReply, "Three"),
        button(ButtonType::QuickReply, "Four"),
        button(ButtonType::QuickReply, "Five"),
        button(ButtonType::QuickReply, "Six"),
        Button {
            button_url: Some(format!("https://e.com/{}{{{{1}}}}", "p".repeat(2000 - 19))),
            button_url_suffix_variable: Some(1),
            ..button(ButtonType::Url, "Track")
        },
        Button {
            button_url: Some("https://e.com/static".to_owned()),
            ..button(ButtonType::Url, "Shop")
        },
        Button {
            button_phone: Some("+14155552671".to_owned()),
            ..button(ButtonType::PhoneNumber, "Call")
        },
        Button {
            copy_code_example: Some("C".repeat(15)),
            ..button(ButtonType::CopyCode, "Copy")
        },
    ];
    assert_eq!(
        draft.content.buttons[6]
            .button_url
            .as_deref()
            .map(|u| u.chars().count()),
        Some(2000)
    );
    assert_eq!(validate(&draft), vec![]);
    assert_eq!(validate(&named_template()), vec![]);
    let mut header = named_template();
    header.content.header.text = Some(format!("Order {{{{order_id}}}} {}", "h".repeat(41)));
    assert_eq!(
        header
            .content
            .header
            .text
            .as_deref()
            .map(|t| t.chars().count()),
        Some(60)
    );
    assert_eq!(validate(&header), vec![]);
}

#[test]
fn every_rule_refuses_its_case_naming_the_field() {
    type Edit = fn(&mut TemplateDraft);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "name with capitals",
            |d| d.name = "Summer_Sale".into(),
            "name",
        ),
        (
            "name with a hyphen",
            |d| d.name = "summer-sale".into(),
            "name",
        ),
        ("empty name", |d| d.name = String::new(), "name"),
        ("name over 512", |d| d.name = "a".repeat(513), "name"),
        (
            "unknown language",
            |d| d.language = "english".into(),
            "language",
        ),
        (
            "hyphenated language",
            |d| d.language = "en-US".into(),
            "language",
        ),
        (
            "empty body",
            |d| d.content.body.text = "  ".into(),
            "body.text",
        ),
        (
            "body over 1024",
            |d| d.content.body.text = format!("Hi {{{{1}}}} {{{{2}}}} {}", "x ".repeat(520)),
            "body.text",
        ),
        (
            "placeholder at the start",
            |d| d.content.body.text = "{{1}} hello there, your code {{2}} is ready.".into(),
            "body.text",
        ),
        (
            "placeholder at the end",
            |d| d.content.body.text = "Hello there {{1}}, your code is {{2}}".into(),
            "body.text",
        ),
        (
            "too many placeholders for the length",
            |d| d.content.body.text = "Hi {{1}} {{2}}!".into(),
            "body.text",
        ),
        (
            "positional gap",
            |d| d.content.body.text = "Hi {{1}}, your code {{3}} gives 20% off.".into(),
            "body.text",
        ),
        (
            "positional not from 1",
            |d| d.content.body.text = "Hi {{2}}, your code {{3}} gives 20% off.".into(),
            "body.text",
        ),
        (
            "named placeholder in a positional template",
            |d| d.content.body.text = "Hi {{name}}, your code {{2}} gives 20% off.".into(),
            "body.text",
        ),
        (
            "malformed placeholder",
            |d| d.content.body.text = "Hi {{First Name}}, your code gives 20% off.".into(),
            "body.text",
        ),
        (
            "placeholder without a variable",
            |d| {
                d.content.variables.remove(1);
            },
            "body.text",
        ),
        (
            "variable without a sample",
            |d| d.content.variables[0].sample_value = None,
            "variables[0].sample_value",
        ),
        (
            "variable position out of range",
            |d| d.content.variables[2].position = 11,
            "variables[2].position",
        ),
        (
            "variable name used twice",
            |d| d.content.variables[1].variable_name = "first_name".into(),
            "variables[1].variable_name",
        ),
        (
            "variable the template does not use",
            |d| {
                d.content
                    .variables
                    .push(var("extra", 3, ComponentType::Body, "x"))
            },
            "variables[3].component_type",
        ),
        (
            "text header over 60",
            |d| {
                d.content.header = Header {
                    kind: HeaderType::Text,
                    text: Some("h".repeat(61)),
                    ..Header::default()
                }
            },
            "header.text",
        ),
        (
            "text header with two placeholders",
            |d| {
                d.content.header = Header {
                    kind: HeaderType::Text,
                    text: Some("{{1}} and {{2}}".into()),
                    ..Header::default()
                }
            },
            "header.text",
        ),
        (
            "media header without a URL",
            |d| d.content.header.media_url = None,
            "header.media_url",
        ),
        (
            "media header with a non-http URL",
            |d| d.content.header.media_url = Some("ftp://x/y.jpg".into()),
            "header.media_url",
        ),
        (
            "document without a filename",
            |d| d.content.header.kind = HeaderType::Document,
            "header.document_filename",
        ),
        (
            "latitude out of range",
            |d| {
                d.content.header = Header {
                    kind: HeaderType::Location,
                    location: Some(Location {
                        latitude: 90.5,
                        longitude: 0.0,
                        name: None,
                        address: None,
                    }),
                    ..Header::default()
                }
            },
            "header.location.latitude",
        ),
        (
            "longitude out of range",
            |d| {
                d.content.header = Header {
                    kind: HeaderType::Location,
                    location: Some(Location {
                        latitude: 0.0,
                        longitude: -180.5,
                        name: None,
                        address: None,
                    }),
                    ..Header::default()
                }
            },
            "header.location.longitude",
        ),
        (
            "footer over 60",
            |d| {
                d.content.footer = Some(TextPart {
                    text: "f".repeat(61),
                })
            },
            "footer.text",
        ),
        (
            "footer with a placeholder",
            |d| {
                d.content.footer = Some(TextPart {
                    text: "Bye {{1}}".into(),
                })
            },
            "footer.text",
        ),
        (
            "eleven buttons",
            |d| {
                d.content.buttons = (0..11)
                    .map(|i| button(ButtonType::QuickReply, &format!("Q{i}")))
                    .collect();
                d.content.variables.truncate(2);
            },
            "buttons",
        ),
        (
            "button text over 25",
            |d| d.content.buttons[0].button_text = "b".repeat(26),
            "buttons[0].button_text",
        ),
        (
            "three URL buttons",
            |d| {
                for text in ["Two", "Three"] {
                    d.content.buttons.push(Button {
                        button_url: Some("https://e.com".into()),
                        ..button(ButtonType::Url, text)
                    });
                }
            },
            "buttons[5].button_type",
        ),
        (
            "URL over 2000",
            |d| {
                d.content.buttons[2].button_url =
                    Some(format!("https://e.com/{}", "p".repeat(2000)))
            },
            "buttons[2].button_url",
        ),
        (
            "URL variable not at the end",
            |d| d.content.buttons[2].button_url = Some("https://e.com/{{1}}/track".into()),
            "buttons[2].button_url",
        ),
        (
            "URL with two variables",
            |d| d.content.buttons[2].button_url = Some("https://e.com/{{1}}{{2}}".into()),
            "buttons[2].button_url",
        ),
        (
            "dynamic URL without its variable",
            |d| d.content.buttons[2].button_url_suffix_variable = None,
            "buttons[2].button_url_suffix_variable",
        ),
        (
            "URL suffix variable without a sample",
            |d| d.content.variables[2].sample_value = None,
            "variables[2].sample_value",
        ),
        (
            "phone not E.164",
            |d| d.content.buttons[3].button_phone = Some("4155552671".into()),
            "buttons[3].button_phone",
        ),
        (
            "two phone buttons",
            |d| {
                d.content.buttons.push(Button {
                    button_phone: Some("+14155552672".into()),
                    ..button(ButtonType::PhoneNumber, "Other")
                })
            },
            "buttons[4].button_type",
        ),
        (
            "copy code over 15",
            |d| {
                d.content.buttons.push(Button {
                    copy_code_example: Some("C".repeat(16)),
                    ..button(ButtonType::CopyCode, "Copy")
                })
            },
            "buttons[4].copy_code_example",
        ),
        (
            "two copy codes",
            |d| {
                for _ in 0..2 {
                    d.content.buttons.push(Button {
                        copy_code_example: Some("C".into()),
                        ..button(ButtonType::CopyCode, "Copy")
                    });
                }
            },
            "buttons[5].button_type",
        ),
        (
            "copy code outside marketing",
            |d| {
                d.category = TemplateCategory::Utility;
                d.content.buttons.push(Button {
                    copy_code_example: Some("C".into()),
                    ..button(ButtonType::CopyCode, "Copy")
                });
            },
            "buttons[4].button_type",
        ),
        (
            "quick replies not grouped",
            |d| d.content.buttons.swap(1, 2),
            "buttons[2].button_type",
        ),
        (
            "tracking id on a URL button",
            |d| d.content.buttons[2].tracking_id = Some("t".into()),
            "buttons[2].tracking_id",
        ),
        (
            "tracking id used twice",
            |d| d.content.buttons[1].tracking_id = Some("interested".into()),
            "buttons[1].tracking_id",
        ),
        (
            "authentication without an OTP button",
            |d| {
                d.category = TemplateCategory::Authentication;
                d.content.header = Header::default();
            },
            "buttons",
        ),
        (
            "authentication with a media header",
            |d| {
                d.category = TemplateCategory::Authentication;
                d.content.buttons = vec![button(ButtonType::Otp, "Copy code")];
                d.content.variables.truncate(2);
            },
            "header.type",
        ),
        (
            "OTP button outside authentication",
            |d| d.content.buttons.push(button(ButtonType::Otp, "Copy code")),
            "buttons[4].button_type",
        ),
    ];
    for (case, edit, field) in cases {
        let mut draft = image_template();
        edit(&mut draft);
        let found = fields(&draft);
        assert!(
            found.iter().any(|f| f == field),
            "{case}: expected a violation of `{field}`, got {found:?}"
        );
    }
}

#[test]
fn named_rules_refuse_their_cases() {
    type Edit = fn(&mut TemplateDraft);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "positional placeholder in a named template",
            |d| {
                d.content.body.text =
                    "Hello {{1}}, your order ships on {{ship_date}} by courier.".into()
            },
            "body.text",
        ),
        (
            "named placeholder used twice",
            |d| {
                d.content.body.text =
                    "Hello {{first_name}}, {{first_name}} ships {{ship_date}} by courier.".into()
            },
            "body.text",
        ),
        (
            "named variable not lowercase",
            |d| d.content.variables[1].variable_name = "FirstName".into(),
            "variables[1].variable_name",
        ),
        (
            "named placeholder without its variable",
            |d| d.content.variables[2].variable_name = "date".into(),
            "body.text",
        ),
    ];
    for (case, edit, field) in cases {
        let mut draft = named_template();
        edit(&mut draft);
        let found = fields(&draft);
        assert!(
            found.iter().any(|f| f == field),
            "{case}: expected a violation of `{field}`, got {found:?}"
        );
    }
}

/// Compares `value` with the snapshot file `name` (or writes it when `UPDATE_SNAPSHOTS` is
/// set).
#[track_caller]
fn snapshot(name: &str, value: &serde_json::Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/templates")
        .join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, &pretty).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert_eq!(pretty, stored, "snapshot {name} differs");
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn header_draft(kind: HeaderType) -> TemplateDraft {
    let mut draft = image_template();
    draft.content.header = Header {
        kind,
        ..Header::default()
    };
    match kind {
        HeaderType::Image | HeaderType::Video => {
            draft.content.header.media_url = Some("https://cdn.example.com/file".into())
        }
        HeaderType::Document => {
            draft.content.header.media_url = Some("https://cdn.example.com/menu.pdf".into());
            draft.content.header.document_filename = Some("menu.pdf".into());
        }
        HeaderType::Location => {
            draft.content.header.location = Some(Location {
                latitude: 37.483307,
                longitude: -122.148981,
                name: Some("Pablo Morales".into()),
                address: Some("1 Hacker Way, Menlo Park, CA 94025".into()),
            })
        }
        HeaderType::Text => {
            draft.content.header.text = Some("Sale for {{1}}".into());
            draft
                .content
                .variables
                .push(var("header_name", 1, ComponentType::Header, "Maria"));
        }
        HeaderType::None => {}
    }
    draft
}

#[test]
fn creation_payloads_match_their_snapshots() {
    for (name, kind, handle) in [
        ("create_header_none", HeaderType::None, None),
        ("create_header_text_positional", HeaderType::Text, None),
        (
            "create_header_image",
            HeaderType::Image,
            Some("4::aW1hZ2UvanBlZw==:ARb"),
        ),
        (
            "create_header_video",
            HeaderType::Video,
            Some("4::dmlkZW8=:ARc"),
        ),
        (
            "create_header_document",
            HeaderType::Document,
            Some("4::cGRm:ARd"),
        ),
        ("create_header_location", HeaderType::Location, None),
    ] {
        let draft = header_draft(kind);
        assert_eq!(validate(&draft), vec![], "{name}");
        snapshot(name, &json(&creation_request(&draft, handle)));
    }
    let named = named_template();
    snapshot("create_named", &json(&creation_request(&named, None)));
    let mut copy = image_template();
    copy.content.buttons.push(Button {
        copy_code_example: Some("SAVE30".into()),
        ..button(ButtonType::CopyCode, "Copy code")
    });
    assert_eq!(validate(&copy), vec![]);
    snapshot(
        "create_copy_code",
        &json(&creation_request(&copy, Some("4::h"))),
    );
    let auth = TemplateDraft {
        name: "login_code".into(),
        category: TemplateCategory::Authentication,
        language: "en".into(),
        parameter_format: ParameterFormat::Positional,
        content: TemplateContent {
            body: TextPart {
                text: "{{1}} is your verification code.".into(),
            },
            variables: vec![var("code", 1, ComponentType::Body, "123456")],
            buttons: vec![button(ButtonType::Otp, "Copy code")],
            ..TemplateContent::default()
        },
    };
    assert_eq!(validate(&auth), vec![]);
    snapshot(
        "create_authentication",
        &json(&creation_request(&auth, None)),
    );
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn send_payloads_match_their_snapshots() {
    let template_id = "tpl_01jabcdefghjkmnpqrstvwxyz0";
    // Positional, image header, quick replies (tracking id and generated), URL suffix.
    let draft = image_template();
    let resolved = resolve_values(
        &draft.content,
        &values(&[("1", "Ana"), ("code", "SUMMER20"), ("order", "A-77")]),
    )
    .expect("resolved");
    let content = send_content(template_id, &draft, &resolved, None).expect("built");
    snapshot("send_positional_image_buttons", &json(&content));

    // Named, text header.
    let named = named_template();
    let resolved = resolve_values(
        &named.content,
        &values(&[
            ("order_id", "#9"),
            ("first_name", "Ana"),
            ("ship_date", "May 3"),
        ]),
    )
    .expect("resolved");
    snapshot(
        "send_named_text_header",
        &json(&send_content(template_id, &named, &resolved, None).expect("built")),
    );

    // Document with its filename, location given by the send, copy code.
    for (name, kind) in [
        ("send_document", HeaderType::Document),
        ("send_location", HeaderType::Location),
        ("send_video", HeaderType::Video),
    ] {
        let mut draft = header_draft(kind);
        draft.content.buttons.push(Button {
            copy_code_example: Some("SAVE30".into()),
            ..button(ButtonType::CopyCode, "Copy code")
        });
        let resolved = resolve_values(
            &draft.content,
            &values(&[
                ("1", "Ana"),
                ("2", "X1"),
                ("order", "A-77"),
                ("copy_code", "ANA30"),
            ]),
        )
        .expect("resolved");
        let header = (kind == HeaderType::Location).then(|| HeaderOverride {
            media_url: None,
            location: Some(Location {
                latitude: -23.55052,
                longitude: -46.633308,
                name: Some("Loja Centro".into()),
                address: None,
            }),
        });
        snapshot(
            name,
            &json(&send_content(template_id, &draft, &resolved, header.as_ref()).expect("built")),
        );
    }
}

#[test]
fn a_missing_value_without_default_names_the_variable_and_defaults_fill_in() {
    let mut draft = image_template();
    let error = resolve_values(&draft.content, &values(&[("1", "Ana")])).expect_err("missing");
    let fields: Vec<&str> = error.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["variable_values.code", "variable_values.order"]
    );

    draft.content.variables[1].default_value = Some("WELCOME".into());
    draft.content.variables[2].default_value = Some("-".into());
    let resolved = resolve_values(&draft.content, &values(&[("first_name", "Ana")])).expect("ok");
    assert_eq!(resolved.0.get("code").map(String::as_str), Some("WELCOME"));

    let error = resolve_values(&draft.content, &values(&[("1", "Ana"), ("bogus", "x")]))
        .expect_err("unknown key");
    assert_eq!(error[0].field, "variable_values.bogus");
}

#[test]
fn values_meta_would_refuse_or_given_twice_are_violations_naming_the_variable() {
    let mut draft = image_template();
    for variable in &mut draft.content.variables {
        variable.default_value = Some("x".into());
    }
    let cases = [
        (
            values(&[("first_name", "Ana\nLine")]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", "Ana\tTab")]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", "Ana     Five")]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", "Ana\u{2029}Para")]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", "Ana\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}Nbsp")]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", &"a".repeat(1_025))]),
            "variable_values.first_name",
        ),
        (
            values(&[("first_name", "Ana"), ("1", "Bea")]),
            "variable_values.1",
        ),
    ];
    for (given, field) in cases {
        let error = resolve_values(&draft.content, &given).expect_err(field);
        let fields: Vec<&str> = error.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, vec![field], "{given:?}");
    }
    let fine = values(&[("first_name", &format!("Ana {} Pé 🎉", "a".repeat(1_000)))]);
    assert!(resolve_values(&draft.content, &fine).is_ok());
}
