//! The one builder of what Meta receives for a template: its creation (`components` with
//! their `example` shapes) and its sends (`template.components` with parameters). Both read
//! the same authored model, so a template is sent the way it was created.

use std::collections::BTreeMap;

use super::{
    model::{Location, Placeholder, TemplateContent, TemplateDraft, Variable, placeholders},
    validate::Violation,
};
use crate::{
    domain::{ButtonType, ComponentType, HeaderType, ParameterFormat, TemplateCategory},
    meta::graph::{
        Media,
        messages::{
            ButtonSubType, LocationParameter, MessageContent, TemplateLanguage, TemplateMessage,
            TemplateMessageComponent, TemplateParameter,
        },
        templates::{
            ButtonExample, ComponentExample, NamedExample, NewTemplate,
            ParameterFormat as MetaFormat, TemplateButton, TemplateCategory as MetaCategory,
            TemplateComponent,
        },
    },
};

fn meta_category(category: TemplateCategory) -> MetaCategory {
    match category {
        TemplateCategory::Marketing => MetaCategory::Marketing,
        TemplateCategory::Utility => MetaCategory::Utility,
        TemplateCategory::Authentication => MetaCategory::Authentication,
    }
}

/// The variables of `component` in position order.
fn ordered(content: &TemplateContent, component: ComponentType) -> Vec<&Variable> {
    let mut variables: Vec<&Variable> = content.variables_of(component).collect();
    variables.sort_by_key(|v| v.position);
    variables
}

/// The variables a text's placeholders name, in the order they appear.
fn in_text_order<'a>(
    content: &'a TemplateContent,
    component: ComponentType,
    text: &str,
) -> Vec<&'a Variable> {
    placeholders(text)
        .iter()
        .filter_map(|p| content.variable_for(component, p))
        .collect()
}

fn sample(variable: &Variable) -> String {
    variable.sample_value.clone().unwrap_or_default()
}

/// The body of `POST /{waba_id}/message_templates` for a validated template. A media header
/// needs the handle of its uploaded sample (`header_handle`).
pub fn creation_request(draft: &TemplateDraft, header_handle: Option<&str>) -> NewTemplate {
    let content = &draft.content;
    let named = draft.parameter_format == ParameterFormat::Named;
    let mut components = Vec::new();
    let authentication = draft.category == TemplateCategory::Authentication;

    let header = &content.header;
    match header.kind {
        HeaderType::None => {}
        HeaderType::Text => {
            let text = header.text.clone().unwrap_or_default();
            let variables = in_text_order(content, ComponentType::Header, &text);
            let example = (!variables.is_empty()).then(|| {
                if named {
                    ComponentExample {
                        header_text_named_params: variables
                            .iter()
                            .map(|v| NamedExample {
                                param_name: v.variable_name.clone(),
                                example: sample(v),
                            })
                            .collect(),
                        ..ComponentExample::default()
                    }
                } else {
                    ComponentExample {
                        header_text: variables.iter().map(|v| sample(v)).collect(),
                        ..ComponentExample::default()
                    }
                }
            });
            components.push(TemplateComponent {
                kind: "HEADER".to_owned(),
                format: Some("TEXT".to_owned()),
                text: Some(text),
                example,
                ..TemplateComponent::default()
            });
        }
        HeaderType::Image | HeaderType::Video | HeaderType::Document => {
            components.push(TemplateComponent {
                kind: "HEADER".to_owned(),
                format: Some(header.kind.as_str().to_owned()),
                example: header_handle.map(|handle| ComponentExample {
                    header_handle: vec![handle.to_owned()],
                    ..ComponentExample::default()
                }),
                ..TemplateComponent::default()
            });
        }
        HeaderType::Location => components.push(TemplateComponent {
            kind: "HEADER".to_owned(),
            format: Some("LOCATION".to_owned()),
            ..TemplateComponent::default()
        }),
    }

    if authentication {
        // Meta writes an authentication template's body itself.
        components.push(TemplateComponent {
            kind: "BODY".to_owned(),
            add_security_recommendation: Some(true),
            ..TemplateComponent::default()
        });
    } else {
        let text = content.body.text.clone();
        let variables = in_text_order(content, ComponentType::Body, &text);
        let example = (!variables.is_empty()).then(|| {
            if named {
                ComponentExample {
                    body_text_named_params: variables
                        .iter()
                        .map(|v| NamedExample {
                            param_name: v.variable_name.clone(),
                            example: sample(v),
                        })
                        .collect(),
                    ..ComponentExample::default()
                }
            } else {
                ComponentExample {
                    body_text: vec![
                        ordered(content, ComponentType::Body)
                            .iter()
                            .map(|v| sample(v))
                            .collect(),
                    ],
                    ..ComponentExample::default()
                }
            }
        });
        components.push(TemplateComponent {
            kind: "BODY".to_owned(),
            text: Some(text),
            example,
            ..TemplateComponent::default()
        });
    }

    if let Some(footer) = &content.footer {
        components.push(TemplateComponent {
            kind: "FOOTER".to_owned(),
            text: Some(footer.text.clone()),
            ..TemplateComponent::default()
        });
    }

    if !content.buttons.is_empty() {
        let buttons = content
            .buttons
            .iter()
            .map(|button| {
                let text = Some(button.button_text.clone());
                match button.button_type {
                    ButtonType::QuickReply => TemplateButton {
                        kind: "QUICK_REPLY".to_owned(),
                        text,
                        ..TemplateButton::default()
                    },
                    ButtonType::Url => {
                        let url = button.button_url.clone().unwrap_or_default();
                        let example = button
                            .button_url_suffix_variable
                            .and_then(|position| {
                                content
                                    .variables_of(ComponentType::Button)
                                    .find(|v| v.position == position)
                            })
                            .map(|v| ButtonExample::Values(vec![url.replace("{{1}}", &sample(v))]));
                        TemplateButton {
                            kind: "URL".to_owned(),
                            text,
                            url: Some(url),
                            example,
                            ..TemplateButton::default()
                        }
                    }
                    ButtonType::PhoneNumber => TemplateButton {
                        kind: "PHONE_NUMBER".to_owned(),
                        text,
                        phone_number: button.button_phone.clone(),
                        ..TemplateButton::default()
                    },
                    ButtonType::CopyCode => TemplateButton {
                        kind: "COPY_CODE".to_owned(),
                        example: button.copy_code_example.clone().map(ButtonExample::Value),
                        ..TemplateButton::default()
                    },
                    ButtonType::Otp => TemplateButton {
                        kind: "OTP".to_owned(),
                        text,
                        otp_type: Some("COPY_CODE".to_owned()),
                        ..TemplateButton::default()
                    },
                }
            })
            .collect();
        components.push(TemplateComponent {
            kind: "BUTTONS".to_owned(),
            buttons,
            ..TemplateComponent::default()
        });
    }

    NewTemplate {
        name: draft.name.clone(),
        language: draft.language.clone(),
        category: meta_category(draft.category),
        parameter_format: Some(match draft.parameter_format {
            ParameterFormat::Positional => MetaFormat::Positional,
            ParameterFormat::Named => MetaFormat::Named,
        }),
        components,
    }
}

/// The payload of a QUICK_REPLY button: its `tracking_id`, or a stable id naming the
/// template and the button's index (`tpl_….b2`), returned by Meta with the click.
pub fn quick_reply_payload(template_id: &str, index: usize, tracking_id: Option<&str>) -> String {
    tracking_id.map_or_else(|| format!("{template_id}.b{index}"), str::to_owned)
}

/// The key of `variable_values` that gives a COPY_CODE button's code at send time (the
/// button's `copy_code_example` otherwise).
pub const COPY_CODE_KEY: &str = "copy_code";

/// A send's header, replacing the template's stored media or location.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderOverride {
    pub media_url: Option<String>,
    pub location: Option<Location>,
}

/// Every variable's value for one send, by variable name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedValues(pub BTreeMap<String, String>);

/// The longest value a variable takes at send time: a header's whole text is 60 characters,
/// a body's 1,024.
const MAX_HEADER_VALUE_CHARS: usize = 60;
const MAX_BODY_VALUE_CHARS: usize = 1_024;

/// Why Meta would refuse a parameter's text (its error 132018: no new lines or tabs, at
/// most four spaces in a row), or `None`.
fn refused_value(value: &str, max_chars: usize) -> Option<String> {
    if value.contains(['\n', '\r', '\t', '\u{2028}', '\u{2029}']) {
        return Some(
            "must not contain new lines or tabs (Meta refuses them in parameters)".to_owned(),
        );
    }
    let mut run = 0;
    for c in value.chars() {
        run = if c.is_whitespace() { run + 1 } else { 0 };
        if run > 4 {
            return Some(
                "must not contain more than four spaces in a row (Meta refuses them)".to_owned(),
            );
        }
    }
    if value.chars().any(char::is_control) {
        return Some("must not contain control characters".to_owned());
    }
    if value.chars().count() > max_chars {
        return Some(format!("must be at most {max_chars} characters"));
    }
    None
}

/// Resolves a send's values: as given (by `variable_name`, or by position for the body's
/// positional placeholders: `"1"`), else the variable's `default_value`. A variable with
/// neither is a violation naming `variable_values.<name>`; a key naming no variable too, a
/// variable given both by name and by position, and a value Meta would refuse (new lines,
/// tabs, five spaces in a row, over 60 characters in a header or 1,024 in the body).
pub fn resolve_values(
    content: &TemplateContent,
    given: &BTreeMap<String, String>,
) -> Result<ResolvedValues, Vec<Violation>> {
    let mut errors = Vec::new();
    let mut resolved = BTreeMap::new();
    for variable in &content.variables {
        let by_position = (variable.component_type == ComponentType::Body)
            .then(|| given.get(&variable.position.to_string()))
            .flatten();
        let by_name = given.get(&variable.variable_name);
        if by_name.is_some()
            && by_position.is_some()
            && variable.variable_name != variable.position.to_string()
        {
            errors.push(Violation {
                field: format!("variable_values.{}", variable.position),
                message: format!(
                    "gives `{}` a second time: give each variable once, by name or by position",
                    variable.variable_name
                ),
            });
            continue;
        }
        let value = by_name
            .or(by_position)
            .cloned()
            .or_else(|| variable.default_value.clone());
        let max_chars = if variable.component_type == ComponentType::Header {
            MAX_HEADER_VALUE_CHARS
        } else {
            MAX_BODY_VALUE_CHARS
        };
        match value {
            Some(value) if !value.trim().is_empty() => {
                if let Some(message) = refused_value(&value, max_chars) {
                    errors.push(Violation {
                        field: format!("variable_values.{}", variable.variable_name),
                        message,
                    });
                    continue;
                }
                resolved.insert(variable.variable_name.clone(), value);
            }
            _ => errors.push(Violation {
                field: format!("variable_values.{}", variable.variable_name),
                message: "is required: the variable has no default_value".to_owned(),
            }),
        }
    }
    for key in given.keys() {
        let known = key == COPY_CODE_KEY
            || content.variables.iter().any(|v| {
                v.variable_name == *key
                    || (v.component_type == ComponentType::Body && v.position.to_string() == *key)
            });
        if !known {
            errors.push(Violation {
                field: format!("variable_values.{key}"),
                message: "names no variable of this template".to_owned(),
            });
        }
    }
    if let Some(code) = given.get(COPY_CODE_KEY) {
        resolved.insert(COPY_CODE_KEY.to_owned(), code.clone());
    }
    if errors.is_empty() {
        Ok(ResolvedValues(resolved))
    } else {
        Err(errors)
    }
}

fn text_parameter(named: bool, variable: &Variable, values: &ResolvedValues) -> TemplateParameter {
    TemplateParameter::Text {
        text: values
            .0
            .get(&variable.variable_name)
            .cloned()
            .unwrap_or_default(),
        parameter_name: named.then(|| variable.variable_name.clone()),
    }
}

/// Formats a coordinate the way Meta's template examples write it.
fn coordinate(value: f64) -> String {
    let text = format!("{value:.8}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_owned()
}

/// The `template` message of one send. `template_id` names the stored template (for the
/// generated quick-reply payloads). A LOCATION header without a location (stored or given)
/// and a media header without a URL are violations naming `header`.
pub fn send_content(
    template_id: &str,
    draft: &TemplateDraft,
    values: &ResolvedValues,
    header: Option<&HeaderOverride>,
) -> Result<MessageContent, Vec<Violation>> {
    let content = &draft.content;
    let named = draft.parameter_format == ParameterFormat::Named;
    let mut components = Vec::new();

    let stored = &content.header;
    let media_url = header
        .and_then(|h| h.media_url.clone())
        .or_else(|| stored.media_url.clone());
    let media = |url: Option<String>| -> Result<Media, Vec<Violation>> {
        url.map(Media::by_link).ok_or_else(|| {
            vec![Violation {
                field: "header.media_url".to_owned(),
                message: "is required: the template stores no media URL".to_owned(),
            }]
        })
    };
    match stored.kind {
        HeaderType::None => {}
        HeaderType::Text => {
            let text = stored.text.clone().unwrap_or_default();
            let parameters: Vec<TemplateParameter> =
                in_text_order(content, ComponentType::Header, &text)
                    .into_iter()
                    .map(|v| text_parameter(named, v, values))
                    .collect();
            if !parameters.is_empty() {
                components.push(TemplateMessageComponent::Header { parameters });
            }
        }
        HeaderType::Image => components.push(TemplateMessageComponent::Header {
            parameters: vec![TemplateParameter::Image {
                image: media(media_url)?,
            }],
        }),
        HeaderType::Video => components.push(TemplateMessageComponent::Header {
            parameters: vec![TemplateParameter::Video {
                video: media(media_url)?,
            }],
        }),
        HeaderType::Document => {
            let mut document = media(media_url)?;
            document.filename = stored.document_filename.clone();
            components.push(TemplateMessageComponent::Header {
                parameters: vec![TemplateParameter::Document { document }],
            });
        }
        HeaderType::Location => {
            let location = header
                .and_then(|h| h.location.clone())
                .or_else(|| stored.location.clone())
                .ok_or_else(|| {
                    vec![Violation {
                        field: "header.location".to_owned(),
                        message: "is required: the template stores no location".to_owned(),
                    }]
                })?;
            components.push(TemplateMessageComponent::Header {
                parameters: vec![TemplateParameter::Location {
                    location: LocationParameter {
                        latitude: coordinate(location.latitude),
                        longitude: coordinate(location.longitude),
                        name: location.name,
                        address: location.address,
                    },
                }],
            });
        }
    }

    let body_variables = if named {
        in_text_order(content, ComponentType::Body, &content.body.text)
    } else {
        ordered(content, ComponentType::Body)
    };
    if !body_variables.is_empty() {
        components.push(TemplateMessageComponent::Body {
            parameters: body_variables
                .into_iter()
                .map(|v| text_parameter(named, v, values))
                .collect(),
        });
    }

    for (index, button) in content.buttons.iter().enumerate() {
        let index_text = index.to_string();
        match button.button_type {
            ButtonType::QuickReply => components.push(TemplateMessageComponent::Button {
                sub_type: ButtonSubType::QuickReply,
                index: index_text,
                parameters: vec![TemplateParameter::Payload {
                    payload: quick_reply_payload(template_id, index, button.tracking_id.as_deref()),
                }],
            }),
            ButtonType::Url => {
                let Some(variable) = button.button_url_suffix_variable.and_then(|position| {
                    content
                        .variables_of(ComponentType::Button)
                        .find(|v| v.position == position)
                }) else {
                    continue;
                };
                components.push(TemplateMessageComponent::Button {
                    sub_type: ButtonSubType::Url,
                    index: index_text,
                    parameters: vec![text_parameter(false, variable, values)],
                });
            }
            ButtonType::CopyCode => components.push(TemplateMessageComponent::Button {
                sub_type: ButtonSubType::CopyCode,
                index: index_text,
                parameters: vec![TemplateParameter::CouponCode {
                    coupon_code: values
                        .0
                        .get(COPY_CODE_KEY)
                        .cloned()
                        .or_else(|| button.copy_code_example.clone())
                        .unwrap_or_default(),
                }],
            }),
            // The code is the body's one parameter, repeated for the copy button.
            ButtonType::Otp => {
                if let Some(code) = ordered(content, ComponentType::Body).first() {
                    components.push(TemplateMessageComponent::Button {
                        sub_type: ButtonSubType::Url,
                        index: index_text,
                        parameters: vec![text_parameter(false, code, values)],
                    });
                }
            }
            ButtonType::PhoneNumber => {}
        }
    }

    Ok(MessageContent::Template {
        template: TemplateMessage {
            name: draft.name.clone(),
            language: TemplateLanguage {
                code: draft.language.clone(),
            },
            components,
        },
    })
}

/// The text a send leaves in the conversation: the body with its placeholders filled.
pub fn rendered_body(draft: &TemplateDraft, values: &ResolvedValues) -> String {
    let content = &draft.content;
    let mut out = String::new();
    let mut rest = content.body.text.as_str();
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + end];
        let placeholder = match inner.parse::<i32>() {
            Ok(n) => Placeholder::Positional(n),
            Err(_) => Placeholder::Named(inner.to_owned()),
        };
        match content
            .variable_for(ComponentType::Body, &placeholder)
            .and_then(|v| values.0.get(&v.variable_name))
        {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}
