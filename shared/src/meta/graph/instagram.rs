//! Instagram messaging, on the host the account's connection uses (graph.instagram.com for
//! Instagram Login, graph.facebook.com for a Page-connected account): `POST
//! /{ig_user_id}/messages` and `GET /{ig_user_id}?fields=id,username`.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Graph, GraphError, Sent};
use crate::domain::InstagramApi;

/// What an Instagram message carries: a text, or media Meta fetches from a public URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InstagramContent {
    Text { text: String },
    Attachment { attachment: InstagramAttachment },
}

/// `{"type": "image", "payload": {"url"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstagramAttachment {
    /// `image`, `video`, `audio` or `file`.
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: InstagramAttachmentPayload,
}

/// The attachment's URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstagramAttachmentPayload {
    pub url: String,
}

/// The request body of an Instagram send.
#[derive(Debug, Clone, Serialize)]
pub struct InstagramSendRequest<'a> {
    pub recipient: InstagramRecipient<'a>,
    pub message: &'a InstagramContent,
}

/// `{"id": <Instagram-scoped id>}`.
#[derive(Debug, Clone, Serialize)]
pub struct InstagramRecipient<'a> {
    pub id: &'a str,
}

/// `{"recipient_id", "message_id"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstagramSendResponse {
    pub recipient_id: Option<String>,
    pub message_id: Option<String>,
}

/// An Instagram professional account (`GET /{ig_user_id}?fields=id,username`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstagramAccount {
    pub id: String,
    pub username: Option<String>,
}

impl Graph {
    fn instagram_url(&self, api: InstagramApi, path: &str) -> String {
        let base = match api {
            InstagramApi::InstagramLogin => &self.config.instagram_base_url,
            InstagramApi::FacebookPage => &self.config.facebook_base_url,
        };
        format!("{}/{path}", base.trim_end_matches('/'))
    }

    /// Sends `content` from the account `account_id` to the Instagram-scoped
    /// `recipient_id`.
    pub async fn send_instagram(
        &self,
        api: InstagramApi,
        account_id: &str,
        token: &SecretString,
        recipient_id: &str,
        content: &InstagramContent,
    ) -> Result<Sent, GraphError> {
        let url = self.instagram_url(api, &format!("{account_id}/messages"));
        let body = InstagramSendRequest {
            recipient: InstagramRecipient { id: recipient_id },
            message: content,
        };
        let request = self
            .authorized(reqwest::Method::POST, &url, token)
            .json(&body);
        let answer: InstagramSendResponse = self.call(request).await?;
        match answer.message_id {
            Some(id) => Ok(Sent {
                platform_message_id: id,
                message_status: None,
            }),
            None => Err(GraphError::unreadable(
                200,
                "Meta accepted the send but returned no message id".to_owned(),
            )),
        }
    }

    /// Sends an Instagram text.
    pub async fn send_instagram_text(
        &self,
        api: InstagramApi,
        account_id: &str,
        token: &SecretString,
        recipient_id: &str,
        text: &str,
    ) -> Result<Sent, GraphError> {
        let content = InstagramContent::Text {
            text: text.to_owned(),
        };
        self.send_instagram(api, account_id, token, recipient_id, &content)
            .await
    }

    /// Reads the Instagram account `account_id` with `token` (on the host its `api` uses).
    pub async fn instagram_account(
        &self,
        api: InstagramApi,
        account_id: &str,
        token: &SecretString,
    ) -> Result<InstagramAccount, GraphError> {
        let url = self.instagram_url(api, account_id);
        let request = self
            .authorized(reqwest::Method::GET, &url, token)
            .query(&[("fields", "id,username")]);
        self.call(request).await
    }
}
