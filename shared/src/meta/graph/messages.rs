//! `POST /{phone_number_id}/messages` (WhatsApp Cloud API): text, template, interactive
//! (reply buttons, list) and media (image, document, video, audio by uploaded id or link),
//! each a typed request; the answer is `{messaging_product, contacts, messages}`.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Graph, GraphError, Sent};

/// What a WhatsApp message carries: serialised as Cloud API's `type` plus the object of
/// that name (`{"type": "text", "text": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text { text: TextBody },
    Template { template: TemplateMessage },
    Interactive { interactive: Interactive },
    Image { image: Media },
    Document { document: Media },
    Video { video: Media },
    Audio { audio: Media },
}

impl MessageContent {
    /// A plain text without link previews.
    pub fn text(body: impl Into<String>) -> Self {
        Self::Text {
            text: TextBody {
                preview_url: false,
                body: body.into(),
            },
        }
    }
}

/// `text`: the body (at most 4,096 characters) and whether links get a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextBody {
    pub preview_url: bool,
    pub body: String,
}

/// `template`: an approved template by name and language, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: TemplateLanguage,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateMessageComponent>,
}

/// `language`: the template's language code (`en_US`, `pt_BR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateLanguage {
    pub code: String,
}

/// One component's parameters: `header`, `body`, or a `button` (with its `sub_type` and
/// `index`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateMessageComponent {
    Header {
        parameters: Vec<TemplateParameter>,
    },
    Body {
        parameters: Vec<TemplateParameter>,
    },
    Button {
        sub_type: ButtonSubType,
        /// The button's position, `"0"` to `"9"`.
        index: String,
        parameters: Vec<TemplateParameter>,
    },
}

/// A template button's kind, for its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonSubType {
    QuickReply,
    Url,
    CopyCode,
}

/// A template parameter. `parameter_name` is set for templates with named parameters
/// (`parameter_format: NAMED`), absent for positional ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateParameter {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    Image {
        image: Media,
    },
    Document {
        document: Media,
    },
    Video {
        video: Media,
    },
    /// A quick-reply button's payload, returned in the click's webhook.
    Payload {
        payload: String,
    },
    /// A location header.
    Location {
        location: LocationParameter,
    },
    /// A COPY_CODE button's code.
    CouponCode {
        coupon_code: String,
    },
}

/// A location header's place: coordinates as Meta's template documentation writes them
/// (decimal strings), with an optional name and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationParameter {
    pub latitude: String,
    pub longitude: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A media object: an id from the media upload, or a public link; with a caption (image,
/// document, video) and a file name (document).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Media {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl Media {
    /// Media uploaded to Meta before.
    pub fn by_id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// Media Meta fetches from a public URL.
    pub fn by_link(link: impl Into<String>) -> Self {
        Self {
            link: Some(link.into()),
            ..Self::default()
        }
    }
}

/// `interactive`: reply buttons (at most 3) or a list (sections of rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Interactive {
    Button {
        #[serde(skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ButtonAction,
    },
    List {
        #[serde(skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ListAction,
    },
}

/// A text header of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InteractiveHeader {
    Text { text: String },
}

/// `{"text": …}` of a body or footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InteractiveText {
    pub text: String,
}

/// The reply buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ButtonAction {
    pub buttons: Vec<ReplyButton>,
}

/// `{"type": "reply", "reply": {"id", "title"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyButton {
    Reply { reply: ButtonReply },
}

/// A reply button's id (returned in the click's webhook) and title (at most 20 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ButtonReply {
    pub id: String,
    pub title: String,
}

/// A list: the button that opens it and its sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListAction {
    pub button: String,
    pub sections: Vec<ListSection>,
}

/// A section of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// A row of a list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The request body of `POST /{phone_number_id}/messages`.
#[derive(Debug, Clone, Serialize)]
pub struct SendMessageRequest<'a> {
    pub messaging_product: &'static str,
    pub recipient_type: &'static str,
    /// The customer's number, digits only.
    pub to: &'a str,
    #[serde(flatten)]
    pub content: &'a MessageContent,
}

/// The Cloud API's answer to a send.
#[derive(Debug, Clone, Deserialize)]
pub struct SendMessageResponse {
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub contacts: Vec<SentContact>,
    #[serde(default)]
    pub messages: Vec<SentMessageRef>,
}

/// `contacts[]`: the number as sent and the WhatsApp id it resolved to.
#[derive(Debug, Clone, Deserialize)]
pub struct SentContact {
    pub input: Option<String>,
    pub wa_id: Option<String>,
}

/// `messages[]`: the `wamid` and, for some sends, `message_status`.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessageRef {
    pub id: String,
    pub message_status: Option<String>,
}

impl Graph {
    /// Sends `content` from the Cloud API number `phone_number_id` to `to` (with or without
    /// `+`).
    pub async fn send_whatsapp(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &str,
        content: &MessageContent,
    ) -> Result<Sent, GraphError> {
        let url = self.facebook_url(&format!("{phone_number_id}/messages"));
        let body = SendMessageRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: to.trim_start_matches('+'),
            content,
        };
        let request = self
            .authorized(reqwest::Method::POST, &url, token)
            .json(&body);
        let answer: SendMessageResponse = self.call(request).await?;
        match answer.messages.into_iter().next() {
            Some(message) => Ok(Sent {
                platform_message_id: message.id,
                message_status: message.message_status,
            }),
            None => Err(GraphError::unreadable(
                200,
                "Meta accepted the send but returned no message id".to_owned(),
            )),
        }
    }

    /// Sends a WhatsApp text.
    pub async fn send_whatsapp_text(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &str,
        text: &str,
    ) -> Result<Sent, GraphError> {
        self.send_whatsapp(phone_number_id, token, to, &MessageContent::text(text))
            .await
    }
}
