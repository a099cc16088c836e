//! The rules a template must meet before it is stored or sent to Meta. Each failure names
//! the field path of the API's request body (`buttons[2].button_url`), so the HTTP layer
//! answers a 422 that says exactly what to fix. The limits are Meta's (documented in
//! docs/architecture.md "Templates"); where Meta publishes no number (how many placeholders
//! a body of a given length may hold) the rule is ours and says so.

use super::model::{Placeholder, TemplateDraft, is_named_parameter, placeholders};
use crate::domain::{
    ButtonType, ComponentType, HeaderType, ParameterFormat, PhoneE164, TemplateCategory,
    contains_nul,
};

/// One broken rule: the field path and what is wrong, completing "<field> …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl Violation {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The longest template name.
pub const NAME_MAX_CHARS: usize = 512;
/// The longest body.
pub const BODY_MAX_CHARS: usize = 1024;
/// The longest text header and footer.
pub const HEADER_TEXT_MAX_CHARS: usize = 60;
/// The longest footer.
pub const FOOTER_MAX_CHARS: usize = 60;
/// At most this many buttons.
pub const MAX_BUTTONS: usize = 10;
/// At most this many URL buttons.
pub const MAX_URL_BUTTONS: usize = 2;
/// The longest button text.
pub const BUTTON_TEXT_MAX_CHARS: usize = 25;
/// The longest button URL.
pub const BUTTON_URL_MAX_CHARS: usize = 2000;
/// The longest phone number of a PHONE_NUMBER button.
pub const BUTTON_PHONE_MAX_CHARS: usize = 20;
/// The longest COPY_CODE example.
pub const COPY_CODE_MAX_CHARS: usize = 15;
/// Positions of variables: 1 to 10 (the schema's CHECK).
pub const MAX_POSITION: i32 = 10;
/// Non-placeholder words a body needs per placeholder (our rule; Meta refuses bodies with
/// "too many variables for the message length", 2388293, without publishing the ratio).
pub const WORDS_PER_PLACEHOLDER: usize = 2;

/// Meta's template language codes.
pub const LANGUAGES: &[&str] = &[
    "af", "sq", "ar", "ar_EG", "ar_AE", "ar_LB", "ar_MA", "ar_QA", "az", "be_BY", "bn", "bn_IN",
    "bg", "ca", "zh_CN", "zh_HK", "zh_TW", "hr", "cs", "da", "prs_AF", "nl", "nl_BE", "en",
    "en_GB", "en_US", "en_AE", "en_AU", "en_CA", "en_GH", "en_IE", "en_IN", "en_JM", "en_MY",
    "en_NZ", "en_QA", "en_SG", "en_UG", "en_ZA", "et", "fil", "fi", "fr", "fr_BE", "fr_CA",
    "fr_CH", "fr_CI", "fr_MA", "ka", "de", "de_AT", "de_CH", "el", "gu", "ha", "he", "hi", "hu",
    "id", "ga", "it", "ja", "kn", "kk", "rw_RW", "ko", "ky_KG", "lo", "lv", "lt", "mk", "ms", "ml",
    "mr", "nb", "ps_AF", "fa", "pl", "pt_BR", "pt_PT", "pa", "ro", "ru", "sr", "si_LK", "sk", "sl",
    "es", "es_AR", "es_CL", "es_CO", "es_CR", "es_DO", "es_EC", "es_HN", "es_MX", "es_PA", "es_PE",
    "es_ES", "es_UY", "sw", "sv", "ta", "te", "th", "tr", "uk", "ur", "uz", "vi", "zu",
];

/// Whether `code` is one of Meta's template languages (exactly as Meta spells it: `en_US`).
pub fn is_language(code: &str) -> bool {
    LANGUAGES.contains(&code)
}

/// Meta's spelling of a language code some webhooks send with a hyphen (`en-US` → `en_US`).
pub fn normalize_language(code: &str) -> String {
    code.replace('-', "_")
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Checks a template against every rule; empty when it may be stored and submitted.
pub fn validate(draft: &TemplateDraft) -> Vec<Violation> {
    let mut errors = Vec::new();
    check_name(&draft.name, &mut errors);
    if !is_language(&draft.language) {
        errors.push(Violation::new(
            "language",
            "is not one of Meta's template language codes (`en`, `en_US`, `pt_BR`, …)",
        ));
    }
    check_nul(draft, &mut errors);
    check_header(draft, &mut errors);
    check_body(draft, &mut errors);
    check_footer(draft, &mut errors);
    check_variables(draft, &mut errors);
    check_buttons(draft, &mut errors);
    errors
}

fn check_name(name: &str, errors: &mut Vec<Violation>) {
    if name.is_empty() || chars(name) > NAME_MAX_CHARS {
        errors.push(Violation::new(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} characters"),
        ));
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errors.push(Violation::new(
            "name",
            "may hold only lowercase letters, digits and underscores",
        ));
    }
}

/// PostgreSQL cannot store U+0000: every text of the content is checked.
fn check_nul(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let content = &draft.content;
    let mut texts: Vec<(String, &str)> = vec![("body.text".to_owned(), &content.body.text)];
    if let Some(text) = &content.header.text {
        texts.push(("header.text".to_owned(), text));
    }
    if let Some(footer) = &content.footer {
        texts.push(("footer.text".to_owned(), &footer.text));
    }
    for (i, v) in content.variables.iter().enumerate() {
        texts.push((format!("variables[{i}].variable_name"), &v.variable_name));
        for (field, value) in [
            ("sample_value", &v.sample_value),
            ("default_value", &v.default_value),
            ("dashboard_mapping", &v.dashboard_mapping),
        ] {
            if let Some(value) = value {
                texts.push((format!("variables[{i}].{field}"), value));
            }
        }
    }
    for (i, b) in content.buttons.iter().enumerate() {
        texts.push((format!("buttons[{i}].button_text"), &b.button_text));
    }
    for (field, text) in texts {
        if contains_nul(text) {
            errors.push(Violation::new(
                field,
                "must not contain the NUL character (U+0000)",
            ));
        }
    }
}

fn check_header(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let header = &draft.content.header;
    let kind = header.kind;
    let not_for = |field: &str, errors: &mut Vec<Violation>| {
        errors.push(Violation::new(
            format!("header.{field}"),
            format!("must not be set for a {kind} header"),
        ));
    };
    if draft.category == TemplateCategory::Authentication && kind != HeaderType::None {
        errors.push(Violation::new(
            "header.type",
            "must be NONE for an AUTHENTICATION template",
        ));
    }
    if kind != HeaderType::Text && header.text.is_some() {
        not_for("text", errors);
    }
    let media = matches!(
        kind,
        HeaderType::Image | HeaderType::Video | HeaderType::Document
    );
    if !media && header.media_url.is_some() {
        not_for("media_url", errors);
    }
    if kind != HeaderType::Document && header.document_filename.is_some() {
        not_for("document_filename", errors);
    }
    if kind != HeaderType::Location && header.location.is_some() {
        not_for("location", errors);
    }
    match kind {
        HeaderType::None | HeaderType::Image | HeaderType::Video => {}
        HeaderType::Text => match header.text.as_deref() {
            None | Some("") => errors.push(Violation::new("header.text", "is required")),
            Some(text) => {
                if chars(text) > HEADER_TEXT_MAX_CHARS {
                    errors.push(Violation::new(
                        "header.text",
                        format!("must be at most {HEADER_TEXT_MAX_CHARS} characters"),
                    ));
                }
                if placeholders(text).len() > 1 {
                    errors.push(Violation::new(
                        "header.text",
                        "may hold at most one placeholder",
                    ));
                }
            }
        },
        HeaderType::Document => match header.document_filename.as_deref() {
            None | Some("") => errors.push(Violation::new(
                "header.document_filename",
                "is required for a DOCUMENT header",
            )),
            Some(name) if chars(name) > 255 => errors.push(Violation::new(
                "header.document_filename",
                "must be at most 255 characters",
            )),
            Some(_) => {}
        },
        HeaderType::Location => {
            if let Some(location) = &header.location {
                if !(-90.0..=90.0).contains(&location.latitude) || location.latitude.is_nan() {
                    errors.push(Violation::new(
                        "header.location.latitude",
                        "must be between -90 and 90",
                    ));
                }
                if !(-180.0..=180.0).contains(&location.longitude) || location.longitude.is_nan() {
                    errors.push(Violation::new(
                        "header.location.longitude",
                        "must be between -180 and 180",
                    ));
                }
                if location.name.as_deref().is_some_and(|n| chars(n) > 255) {
                    errors.push(Violation::new(
                        "header.location.name",
                        "must be at most 255 characters",
                    ));
                }
            }
        }
    }
    if media {
        match header.media_url.as_deref() {
            None => errors.push(Violation::new(
                "header.media_url",
                format!("is required for a {kind} header"),
            )),
            Some(url) if !is_http_url(url) => {
                errors.push(Violation::new("header.media_url", "must be an http(s) URL"))
            }
            Some(_) => {}
        }
    }
}

fn is_http_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty() && !rest.starts_with('/') && !url.chars().any(char::is_whitespace)
}

/// The placeholder rules of one text (`field` is its path).
fn check_placeholders(
    draft: &TemplateDraft,
    field: &str,
    text: &str,
    component: ComponentType,
    errors: &mut Vec<Violation>,
) {
    let found = placeholders(text);
    let mut positions = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for placeholder in &found {
        match (draft.parameter_format, placeholder) {
            (_, Placeholder::Malformed(inner)) => {
                errors.push(Violation::new(
                    field,
                    format!(
                        "has the placeholder {{{{{inner}}}}}: use {{{{1}}}} (positional) or a lowercase name like {{{{first_name}}}} (named)"
                    ),
                ));
                return;
            }
            (ParameterFormat::Positional, Placeholder::Named(name)) => {
                errors.push(Violation::new(
                    field,
                    format!(
                        "has the named placeholder {{{{{name}}}}} in a positional template: use {{{{1}}}}, {{{{2}}}}, …"
                    ),
                ));
                return;
            }
            (ParameterFormat::Named, Placeholder::Positional(n)) => {
                errors.push(Violation::new(
                    field,
                    format!(
                        "has the positional placeholder {{{{{n}}}}} in a named template: use lowercase names like {{{{first_name}}}}"
                    ),
                ));
                return;
            }
            (ParameterFormat::Positional, Placeholder::Positional(n)) => positions.push(*n),
            (ParameterFormat::Named, Placeholder::Named(name)) => {
                if names.contains(&name.as_str()) {
                    errors.push(Violation::new(
                        field,
                        format!("uses {{{{{name}}}}} twice: each named placeholder appears once"),
                    ));
                    return;
                }
                names.push(name);
            }
        }
    }
    if draft.parameter_format == ParameterFormat::Positional {
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != positions.len() {
            errors.push(Violation::new(
                field,
                "uses a placeholder twice: each {{n}} appears once",
            ));
            return;
        }
        let expected: Vec<i32> = (1..=i32::try_from(sorted.len()).unwrap_or(i32::MAX)).collect();
        if sorted != expected {
            errors.push(Violation::new(
                field,
                "must number its placeholders from {{1}} without gaps",
            ));
            return;
        }
        if positions.windows(2).any(|w| w[0] > w[1]) {
            errors.push(Violation::new(
                field,
                "must use its placeholders in order ({{1}} before {{2}})",
            ));
            return;
        }
    }
    for placeholder in &found {
        if draft.content.variable_for(component, placeholder).is_none() {
            let shown = match placeholder {
                Placeholder::Positional(n) => n.to_string(),
                Placeholder::Named(name) => name.clone(),
                Placeholder::Malformed(inner) => inner.clone(),
            };
            errors.push(Violation::new(
                field,
                format!(
                    "has {{{{{shown}}}}} without a variable: add one to `variables` with component_type {component}"
                ),
            ));
        }
    }
}

fn check_body(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let text = &draft.content.body.text;
    if text.trim().is_empty() {
        errors.push(Violation::new("body.text", "is required"));
        return;
    }
    if chars(text) > BODY_MAX_CHARS {
        errors.push(Violation::new(
            "body.text",
            format!("must be at most {BODY_MAX_CHARS} characters"),
        ));
    }
    let before = errors.len();
    check_placeholders(draft, "body.text", text, ComponentType::Body, errors);
    if errors.len() > before {
        return;
    }
    let count = placeholders(text).len();
    if count == 0 || draft.category == TemplateCategory::Authentication {
        return;
    }
    let trimmed = text.trim();
    if trimmed.starts_with("{{") {
        errors.push(Violation::new(
            "body.text",
            "must not start with a placeholder (Meta refuses it)",
        ));
    }
    if trimmed.ends_with("}}") {
        errors.push(Violation::new(
            "body.text",
            "must not end with a placeholder (Meta refuses it)",
        ));
    }
    let words = words_outside_placeholders(text);
    if words < WORDS_PER_PLACEHOLDER * count {
        errors.push(Violation::new(
            "body.text",
            format!(
                "has too many placeholders for its length: {count} placeholder(s) need at least {} other words (Meta's 2388293)",
                WORDS_PER_PLACEHOLDER * count
            ),
        ));
    }
}

/// The words of `text` once its placeholders are removed (a word holds a letter or digit).
fn words_outside_placeholders(text: &str) -> usize {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        plain.push_str(&rest[..start]);
        plain.push(' ');
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    plain.push_str(rest);
    plain
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

fn check_footer(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let Some(footer) = &draft.content.footer else {
        return;
    };
    if footer.text.trim().is_empty() {
        errors.push(Violation::new(
            "footer.text",
            "must not be empty (leave `footer` out instead)",
        ));
    } else if chars(&footer.text) > FOOTER_MAX_CHARS {
        errors.push(Violation::new(
            "footer.text",
            format!("must be at most {FOOTER_MAX_CHARS} characters"),
        ));
    }
    if !placeholders(&footer.text).is_empty() {
        errors.push(Violation::new("footer.text", "must not hold placeholders"));
    }
}

fn check_variables(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let content = &draft.content;
    if draft.content.header.kind == HeaderType::Text {
        if let Some(text) = &content.header.text {
            check_placeholders(draft, "header.text", text, ComponentType::Header, errors);
        }
    }
    let header_used = content
        .header
        .text
        .as_deref()
        .filter(|_| content.header.kind == HeaderType::Text)
        .map(placeholders)
        .unwrap_or_default();
    let body_used = placeholders(&content.body.text);
    for (i, variable) in content.variables.iter().enumerate() {
        let at = |field: &str| format!("variables[{i}].{field}");
        if variable.variable_name.trim().is_empty() || chars(&variable.variable_name) > 100 {
            errors.push(Violation::new(
                at("variable_name"),
                "must be 1 to 100 characters",
            ));
        } else if draft.parameter_format == ParameterFormat::Named
            && variable.component_type != ComponentType::Button
            && !is_named_parameter(&variable.variable_name)
        {
            errors.push(Violation::new(
                at("variable_name"),
                "must be lowercase letters, digits and underscores, starting with a letter (a named placeholder)",
            ));
        }
        if content.variables[..i]
            .iter()
            .any(|other| other.variable_name == variable.variable_name)
        {
            errors.push(Violation::new(
                at("variable_name"),
                "is used by another variable of this template",
            ));
        }
        if !(1..=MAX_POSITION).contains(&variable.position) {
            errors.push(Violation::new(
                at("position"),
                format!("must be between 1 and {MAX_POSITION}"),
            ));
        } else if content.variables[..i].iter().any(|other| {
            other.component_type == variable.component_type && other.position == variable.position
        }) {
            errors.push(Violation::new(
                at("position"),
                format!("is used by another {} variable", variable.component_type),
            ));
        }
        match variable.sample_value.as_deref() {
            None | Some("") => errors.push(Violation::new(
                at("sample_value"),
                "is required: Meta's review needs an example for every placeholder",
            )),
            Some(sample) if chars(sample) > 255 => errors.push(Violation::new(
                at("sample_value"),
                "must be at most 255 characters",
            )),
            Some(_) => {}
        }
        if variable
            .default_value
            .as_deref()
            .is_some_and(|v| chars(v) > 255)
        {
            errors.push(Violation::new(
                at("default_value"),
                "must be at most 255 characters",
            ));
        }
        if variable
            .dashboard_mapping
            .as_deref()
            .is_some_and(|v| chars(v) > 50)
        {
            errors.push(Violation::new(
                at("dashboard_mapping"),
                "must be at most 50 characters",
            ));
        }
        let used = match variable.component_type {
            ComponentType::Header => uses(&header_used, draft.parameter_format, variable),
            ComponentType::Body => uses(&body_used, draft.parameter_format, variable),
            ComponentType::Button => content.buttons.iter().any(|b| {
                b.button_type == ButtonType::Url
                    && b.button_url_suffix_variable == Some(variable.position)
            }),
        };
        if !used {
            errors.push(Violation::new(
                at("component_type"),
                format!(
                    "names a {} placeholder that the template does not use",
                    variable.component_type
                ),
            ));
        }
    }
}

fn uses(found: &[Placeholder], format: ParameterFormat, variable: &super::model::Variable) -> bool {
    found.iter().any(|p| match (format, p) {
        (ParameterFormat::Positional, Placeholder::Positional(n)) => *n == variable.position,
        (ParameterFormat::Named, Placeholder::Named(name)) => *name == variable.variable_name,
        _ => false,
    })
}

fn check_buttons(draft: &TemplateDraft, errors: &mut Vec<Violation>) {
    let buttons = &draft.content.buttons;
    if buttons.len() > MAX_BUTTONS {
        errors.push(Violation::new(
            "buttons",
            format!("may hold at most {MAX_BUTTONS} buttons"),
        ));
    }
    let authentication = draft.category == TemplateCategory::Authentication;
    if authentication && (buttons.len() != 1 || buttons[0].button_type != ButtonType::Otp) {
        errors.push(Violation::new(
            "buttons",
            "must be exactly one OTP button for an AUTHENTICATION template",
        ));
    }
    let mut seen_url = 0;
    let mut seen_phone = 0;
    let mut seen_copy = 0;
    for (i, button) in buttons.iter().enumerate() {
        let at = |field: &str| format!("buttons[{i}].{field}");
        let kind = button.button_type;
        let text = button.button_text.trim();
        if text.is_empty() || chars(&button.button_text) > BUTTON_TEXT_MAX_CHARS {
            errors.push(Violation::new(
                at("button_text"),
                format!("must be 1 to {BUTTON_TEXT_MAX_CHARS} characters"),
            ));
        }
        let not_for = |field: &str, errors: &mut Vec<Violation>| {
            errors.push(Violation::new(
                at(field),
                format!("must not be set on a {kind} button"),
            ));
        };
        if kind != ButtonType::Url {
            if button.button_url.is_some() {
                not_for("button_url", errors);
            }
            if button.button_url_suffix_variable.is_some() {
                not_for("button_url_suffix_variable", errors);
            }
        }
        if kind != ButtonType::PhoneNumber && button.button_phone.is_some() {
            not_for("button_phone", errors);
        }
        if kind != ButtonType::CopyCode && button.copy_code_example.is_some() {
            not_for("copy_code_example", errors);
        }
        if kind != ButtonType::QuickReply && button.tracking_id.is_some() {
            not_for("tracking_id", errors);
        }
        match kind {
            ButtonType::QuickReply => {
                if let Some(tracking) = &button.tracking_id {
                    if tracking.is_empty() || chars(tracking) > 100 || contains_nul(tracking) {
                        errors.push(Violation::new(
                            at("tracking_id"),
                            "must be 1 to 100 characters",
                        ));
                    } else if buttons[..i]
                        .iter()
                        .any(|b| b.tracking_id.as_deref() == Some(tracking))
                    {
                        errors.push(Violation::new(
                            at("tracking_id"),
                            "is used by another button of this template",
                        ));
                    }
                }
            }
            ButtonType::Url => {
                seen_url += 1;
                if seen_url > MAX_URL_BUTTONS {
                    errors.push(Violation::new(
                        at("button_type"),
                        format!("is one URL button too many: at most {MAX_URL_BUTTONS}"),
                    ));
                }
                check_url_button(draft, i, button, errors);
            }
            ButtonType::PhoneNumber => {
                seen_phone += 1;
                if seen_phone > 1 {
                    errors.push(Violation::new(
                        at("button_type"),
                        "is one PHONE_NUMBER button too many: at most 1",
                    ));
                }
                match button.button_phone.as_deref() {
                    None => errors.push(Violation::new(at("button_phone"), "is required")),
                    Some(phone) => {
                        if chars(phone) > BUTTON_PHONE_MAX_CHARS
                            || !phone.starts_with('+')
                            || PhoneE164::parse(phone).is_err()
                        {
                            errors.push(Violation::new(
                                at("button_phone"),
                                "must be a phone number in E.164 form (`+14155552671`), at most 20 characters",
                            ));
                        }
                    }
                }
            }
            ButtonType::CopyCode => {
                seen_copy += 1;
                if seen_copy > 1 {
                    errors.push(Violation::new(
                        at("button_type"),
                        "is one COPY_CODE button too many: at most 1",
                    ));
                }
                if draft.category != TemplateCategory::Marketing {
                    errors.push(Violation::new(
                        at("button_type"),
                        "COPY_CODE is only allowed in MARKETING templates",
                    ));
                }
                match button.copy_code_example.as_deref() {
                    None | Some("") => {
                        errors.push(Violation::new(at("copy_code_example"), "is required"))
                    }
                    Some(code) if chars(code) > COPY_CODE_MAX_CHARS || contains_nul(code) => errors
                        .push(Violation::new(
                            at("copy_code_example"),
                            format!("must be at most {COPY_CODE_MAX_CHARS} characters"),
                        )),
                    Some(_) => {}
                }
            }
            ButtonType::Otp => {
                if !authentication {
                    errors.push(Violation::new(
                        at("button_type"),
                        "OTP is only allowed in AUTHENTICATION templates",
                    ));
                }
            }
        }
    }
    // Quick replies and the other buttons each form one contiguous group.
    let groups = buttons
        .windows(2)
        .filter(|w| {
            (w[0].button_type == ButtonType::QuickReply)
                != (w[1].button_type == ButtonType::QuickReply)
        })
        .count();
    if groups > 1 {
        let at = buttons
            .windows(2)
            .enumerate()
            .filter(|(_, w)| {
                (w[0].button_type == ButtonType::QuickReply)
                    != (w[1].button_type == ButtonType::QuickReply)
            })
            .nth(1)
            .map_or(0, |(i, _)| i + 1);
        errors.push(Violation::new(
            format!("buttons[{at}].button_type"),
            "breaks the grouping: quick replies and the other buttons must each be together (QUICK_REPLY, QUICK_REPLY, URL is valid; QUICK_REPLY, URL, QUICK_REPLY is not)",
        ));
    }
}

fn check_url_button(
    draft: &TemplateDraft,
    i: usize,
    button: &super::model::Button,
    errors: &mut Vec<Violation>,
) {
    let at = |field: &str| format!("buttons[{i}].{field}");
    let Some(url) = button.button_url.as_deref() else {
        errors.push(Violation::new(at("button_url"), "is required"));
        return;
    };
    if chars(url) > BUTTON_URL_MAX_CHARS {
        errors.push(Violation::new(
            at("button_url"),
            format!("must be at most {BUTTON_URL_MAX_CHARS} characters"),
        ));
        return;
    }
    if !is_http_url(url) {
        errors.push(Violation::new(at("button_url"), "must be an http(s) URL"));
        return;
    }
    let found = placeholders(url);
    let dynamic = !found.is_empty();
    if found.len() > 1
        || (dynamic && (found[0] != Placeholder::Positional(1) || !url.ends_with("{{1}}")))
    {
        errors.push(Violation::new(
            at("button_url"),
            "may hold one placeholder, {{1}}, only at its very end",
        ));
        return;
    }
    match (dynamic, button.button_url_suffix_variable) {
        (true, None) => errors.push(Violation::new(
            at("button_url_suffix_variable"),
            "is required for a URL ending with {{1}}: the position of its BUTTON variable",
        )),
        (false, Some(_)) => errors.push(Violation::new(
            at("button_url_suffix_variable"),
            "must not be set: the URL has no {{1}}",
        )),
        (true, Some(position)) => {
            let variable = draft
                .content
                .variables_of(ComponentType::Button)
                .find(|v| v.position == position);
            if variable.is_none() {
                errors.push(Violation::new(
                    at("button_url_suffix_variable"),
                    format!("names no BUTTON variable at position {position}"),
                ));
            } else if draft.content.buttons[..i]
                .iter()
                .any(|b| b.button_url_suffix_variable == Some(position))
            {
                errors.push(Violation::new(
                    at("button_url_suffix_variable"),
                    "is used by another button",
                ));
            }
        }
        (false, None) => {}
    }
}
