//! The authored template. The same structs are the API's request shape and the
//! `templates.components` JSONB document (`{header, body, footer, buttons}`), so what was
//! authored is what is stored and shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{ButtonType, ComponentType, HeaderType, ParameterFormat, TemplateCategory};

/// A template before it is stored: identity and content.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateDraft {
    pub name: String,
    pub category: TemplateCategory,
    pub language: String,
    pub parameter_format: ParameterFormat,
    pub content: TemplateContent,
}

/// What a template says: header, body, footer, its variables and buttons.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateContent {
    /// The header; `{"type": "NONE"}` when absent.
    #[serde(default)]
    pub header: Header,
    pub body: TextPart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextPart>,
    /// One row per placeholder of the header and body, and per URL button suffix.
    #[serde(default)]
    pub variables: Vec<Variable>,
    #[serde(default)]
    pub buttons: Vec<Button>,
}

/// `{"text": …}` of a body or footer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextPart {
    pub text: String,
}

/// The header: none, text (with at most one placeholder), media (a public URL the server
/// fetches at submission) or a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    #[serde(rename = "type")]
    pub kind: HeaderType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// IMAGE (jpeg/png ≤ 5 MB), VIDEO (mp4 ≤ 16 MB), DOCUMENT (pdf ≤ 100 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// Required for DOCUMENT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_filename: Option<String>,
    /// LOCATION: the default location of sends (a send may give its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            kind: HeaderType::None,
            text: None,
            media_url: None,
            document_filename: None,
            location: None,
        }
    }
}

/// A location header's place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// −90 to 90.
    pub latitude: f64,
    /// −180 to 180.
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A placeholder: `{{position}}` (positional) or `{{variable_name}}` (named) in the header
/// or body, or the `{{1}}` suffix of a URL button (`component_type: BUTTON`, referenced by
/// the button's `button_url_suffix_variable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Unique in the template; the key of `variable_values` in sends. Named placeholders
    /// use it as their name (lowercase letters, digits, underscores).
    pub variable_name: String,
    /// 1 to 10, unique within its component.
    pub position: i32,
    #[serde(default = "body_component")]
    pub component_type: ComponentType,
    /// Stored for the dashboard; the server does not interpret it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_mapping: Option<String>,
    /// Used by a send that gives no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    /// The example Meta's review sees (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_value: Option<String>,
}

fn body_component() -> ComponentType {
    ComponentType::Body
}

/// A button. Index is its place in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub button_type: ButtonType,
    pub button_text: String,
    /// URL buttons; a dynamic URL ends with `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_url: Option<String>,
    /// The position of the BUTTON variable that fills a dynamic URL's `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_url_suffix_variable: Option<i32>,
    /// PHONE_NUMBER buttons: E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_phone: Option<String>,
    /// COPY_CODE buttons: the example code (≤ 15 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_code_example: Option<String>,
    /// QUICK_REPLY buttons: the payload sent with the template and returned with the click
    /// (default: a stable id generated from the template and the button).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
}

/// A placeholder found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Positional(i32),
    Named(String),
    /// Neither a number nor a lowercase name (`{{First Name}}`, `{{}}`).
    Malformed(String),
}

/// The placeholders of `text` (`{{…}}`), in order of appearance.
pub fn placeholders(text: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = &after[..end];
        found.push(classify_placeholder(inner));
        rest = &after[end + 2..];
    }
    found
}

fn classify_placeholder(inner: &str) -> Placeholder {
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        return match inner.parse::<i32>() {
            Ok(n) => Placeholder::Positional(n),
            Err(_) => Placeholder::Malformed(inner.to_owned()),
        };
    }
    if is_named_parameter(inner) {
        Placeholder::Named(inner.to_owned())
    } else {
        Placeholder::Malformed(inner.to_owned())
    }
}

/// Meta's named parameters: lowercase letters, digits and underscores, starting with a
/// letter.
pub fn is_named_parameter(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl TemplateContent {
    /// The variables of one component.
    pub fn variables_of(&self, component: ComponentType) -> impl Iterator<Item = &Variable> {
        self.variables
            .iter()
            .filter(move |v| v.component_type == component)
    }

    /// The variable that fills a placeholder of `component`.
    pub fn variable_for(
        &self,
        component: ComponentType,
        placeholder: &Placeholder,
    ) -> Option<&Variable> {
        self.variables_of(component).find(|v| match placeholder {
            Placeholder::Positional(n) => v.position == *n,
            Placeholder::Named(name) => v.variable_name == *name,
            Placeholder::Malformed(_) => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_in_order_and_classified() {
        assert_eq!(
            placeholders("Hi {{1}}, order {{first_name}} {{Bad Name}} {{}} {{2"),
            vec![
                Placeholder::Positional(1),
                Placeholder::Named("first_name".to_owned()),
                Placeholder::Malformed("Bad Name".to_owned()),
                Placeholder::Malformed(String::new()),
            ]
        );
    }
}
