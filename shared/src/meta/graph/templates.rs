//! Message templates of a WhatsApp Business Account: create (`POST
//! /{waba_id}/message_templates`), read (`GET /{template_id}`), delete (`DELETE
//! /{waba_id}/message_templates?name=&hsm_id=`), and the resumable upload that gives a
//! media header its example handle (`POST /{app_id}/uploads`, then `POST /{upload_id}`).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Graph, GraphError, transport::Success};

/// `category` of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

/// `parameter_format`: `{{1}}` placeholders, or `{{name}}` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    Positional,
    Named,
}

/// A template component as created and as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TemplateComponent {
    /// `HEADER`, `BODY`, `FOOTER` or `BUTTONS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Headers: `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub example: Option<ComponentExample>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub buttons: Vec<TemplateButton>,
    /// AUTHENTICATION bodies: Meta writes the text and may add a security recommendation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub add_security_recommendation: Option<bool>,
}

/// Example values Meta's review needs for every placeholder and media header.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComponentExample {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub header_text: Vec<String>,
    /// The example of a named header placeholder.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub header_text_named_params: Vec<NamedExample>,
    /// One list of example values per body (positional).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub body_text: Vec<Vec<String>>,
    /// Handles from the resumable upload (`h`), for media headers.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub header_handle: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub body_text_named_params: Vec<NamedExample>,
}

/// `{"param_name", "example"}` for a named placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedExample {
    pub param_name: String,
    pub example: String,
}

/// A template button.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TemplateButton {
    /// `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE` or `OTP`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Absent on COPY_CODE buttons (Meta writes their text).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone_number: Option<String>,
    /// A dynamic URL's example (a list with the full URL), or a COPY_CODE's code (a string).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub example: Option<ButtonExample>,
    /// OTP buttons: `COPY_CODE` (the code is copied), `ONE_TAP`, `ZERO_TAP`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub otp_type: Option<String>,
}

/// A button's `example`: Meta takes a list for URL buttons and a string for COPY_CODE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ButtonExample {
    Values(Vec<String>),
    Value(String),
}

/// The body of `POST /{waba_id}/message_templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTemplate {
    pub name: String,
    /// `en_US`, `pt_BR`, …
    pub language: String,
    pub category: TemplateCategory,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<ParameterFormat>,
    pub components: Vec<TemplateComponent>,
}

/// Meta's answer to a create: `{id, status, category}` (`PENDING`, `APPROVED`,
/// `REJECTED`; the category Meta assigned).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedTemplate {
    pub id: String,
    pub status: String,
    pub category: Option<TemplateCategory>,
}

/// A template as read (`GET /{template_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TemplateDetails {
    pub id: String,
    pub name: Option<String>,
    pub status: Option<String>,
    pub category: Option<TemplateCategory>,
    pub language: Option<String>,
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub components: Vec<TemplateComponent>,
    /// `{"score": "GREEN" | "YELLOW" | "RED" | "UNKNOWN", "date": …}`.
    pub quality_score: Option<QualityScore>,
}

/// A template's quality rating as Meta reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QualityScore {
    pub score: Option<String>,
}

/// The fields read of a template.
pub const TEMPLATE_FIELDS: &str =
    "id,name,status,category,language,rejected_reason,components,quality_score";

/// The body of `POST /{template_id}`: a rejected (or approved) template's new content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditTemplate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    pub components: Vec<TemplateComponent>,
}

/// `{"id": "upload:…"}`: an upload session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadSession {
    pub id: String,
}

/// `{"h": "…"}`: the handle of an uploaded file, for `example.header_handle`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadHandle {
    pub h: String,
}

impl Graph {
    /// Submits a template for review.
    pub async fn create_template(
        &self,
        waba_id: &str,
        token: &SecretString,
        template: &NewTemplate,
    ) -> Result<CreatedTemplate, GraphError> {
        let url = self.facebook_url(&format!("{waba_id}/message_templates"));
        let request = self
            .authorized(reqwest::Method::POST, &url, token)
            .json(template);
        self.call(request).await
    }

    /// Edits a submitted template (`POST /{template_id}`): a rejected template goes back to
    /// review under the same id instead of a second template being created.
    pub async fn edit_template(
        &self,
        template_id: &str,
        token: &SecretString,
        edit: &EditTemplate,
    ) -> Result<(), GraphError> {
        let url = self.facebook_url(template_id);
        let request = self
            .authorized(reqwest::Method::POST, &url, token)
            .json(edit);
        let answer: Success = self.call(request).await?;
        if answer.success {
            Ok(())
        } else {
            Err(GraphError::unsuccessful())
        }
    }

    /// Reads a template with its status and components.
    pub async fn template(
        &self,
        template_id: &str,
        token: &SecretString,
    ) -> Result<TemplateDetails, GraphError> {
        let url = self.facebook_url(template_id);
        let request = self
            .authorized(reqwest::Method::GET, &url, token)
            .query(&[("fields", TEMPLATE_FIELDS)]);
        self.call(request).await
    }

    /// Deletes a template: by name (every language), or only the one whose id is `hsm_id`.
    pub async fn delete_template(
        &self,
        waba_id: &str,
        token: &SecretString,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.facebook_url(&format!("{waba_id}/message_templates"));
        let mut query = vec![("name", name)];
        if let Some(hsm_id) = hsm_id {
            query.push(("hsm_id", hsm_id));
        }
        let request = self
            .authorized(reqwest::Method::DELETE, &url, token)
            .query(&query);
        let answer: Success = self.call(request).await?;
        if answer.success {
            Ok(())
        } else {
            Err(GraphError::unsuccessful())
        }
    }

    /// Uploads a file with the resumable upload API, in one piece, and returns its handle:
    /// a session (`POST /{app_id}/uploads?file_name=&file_length=&file_type=`), then the
    /// bytes (`POST /{upload_id}`, `Authorization: OAuth <token>`, `file_offset: 0`).
    pub async fn upload_file(
        &self,
        app_id: &str,
        token: &SecretString,
        file_name: &str,
        file_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<UploadHandle, GraphError> {
        let url = self.facebook_url(&format!("{app_id}/uploads"));
        let length = bytes.len().to_string();
        let request = self.authorized(reqwest::Method::POST, &url, token).query(&[
            ("file_name", file_name),
            ("file_length", length.as_str()),
            ("file_type", file_type),
        ]);
        let session: UploadSession = self.call(request).await?;
        let url = self.facebook_url(&session.id);
        let request = self
            .http
            .post(&url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("OAuth {}", token.expose_secret()),
            )
            .header("file_offset", "0")
            .body(bytes);
        self.call(request).await
    }
}
