//! The OAuth 2.0 half: the consent URL (offline access, `prompt=consent`, PKCE, our signed
//! `state`), the code exchange, the refresh and the revocation, through the `oauth2` crate.

use chrono::{DateTime, Utc};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, RevocationUrl, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
    basic::{
        BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
        BasicTokenIntrospectionResponse, BasicTokenType,
    },
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{Google, GoogleError};

/// The scopes asked for: events (insert, read, change, delete) and free/busy on the
/// tenant's calendars, plus `openid email` so the token response names the account.
pub const SCOPES: &[&str] = &[
    "openid",
    "email",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
];

/// The scopes a connection cannot work without; a consent that did not grant them all is
/// refused with 422 naming the missing ones.
pub const REQUIRED_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
];

/// Google's extra token field: the OpenID Connect `id_token` (a JWT that names the account).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GoogleTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for GoogleTokenFields {}

type GoogleTokenResponse = StandardTokenResponse<GoogleTokenFields, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    GoogleTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointSet,
>;

/// What a code exchange or a refresh granted.
#[derive(Debug, Clone)]
pub struct GrantedTokens {
    pub access_token: String,
    /// Google sends a refresh token on a consent with `access_type=offline` and
    /// `prompt=consent`, and usually none on a refresh (the old one stays valid).
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The scopes granted (the response's `scope`), when Google said.
    pub scopes: Option<Vec<String>>,
    /// The account's email, from the `id_token` Google returned over TLS from its token
    /// endpoint (OpenID Connect Core 3.1.3.7: no signature check is needed on this path).
    pub email: Option<String>,
}

/// The consent URL and the PKCE verifier to keep for the callback.
#[derive(Debug)]
pub struct Consent {
    pub url: String,
    pub pkce_verifier: String,
}

impl Google {
    fn oauth_client(&self) -> Result<OAuthClient, GoogleError> {
        let config = &self.config;
        let base = config.oauth_base_url.trim_end_matches('/');
        let bad = |what: &str| GoogleError::Rejected(format!("configured {what} is not a URL"));
        Ok(oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(config.auth_url.clone()).map_err(|_| bad("auth URL"))?)
            .set_token_uri(TokenUrl::new(format!("{base}/token")).map_err(|_| bad("token URL"))?)
            .set_revocation_url(
                RevocationUrl::new(format!("{base}/revoke")).map_err(|_| bad("revocation URL"))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(config.redirect_url.clone()).map_err(|_| bad("redirect URL"))?,
            ))
    }

    /// Google's consent URL for `state`: offline access (a refresh token), `prompt=consent`
    /// (a refresh token again on a reconnect), the calendar scopes and an S256 PKCE challenge.
    pub fn consent_url(&self, state: &str) -> Result<Consent, GoogleError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let (url, _) = self
            .oauth_client()?
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "true")
            .set_pkce_challenge(challenge)
            .url();
        Ok(Consent {
            url: url.to_string(),
            pkce_verifier: verifier.secret().to_owned(),
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<GrantedTokens, GoogleError> {
        let response = self
            .oauth_client()?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.oauth_http)
            .await
            .map_err(token_error)?;
        Ok(granted(&response))
    }

    /// Exchanges a refresh token for a fresh access token. `invalid_grant` (revoked,
    /// expired, the account's password changed) is [`GoogleError::ReconnectNeeded`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<GrantedTokens, GoogleError> {
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = self
            .oauth_client()?
            .exchange_refresh_token(&token)
            .request_async(&self.oauth_http)
            .await
            .map_err(token_error)?;
        Ok(granted(&response))
    }

    /// Revokes a token at Google (revoking the refresh token ends the whole grant): a form
    /// POST of `token` to `/revoke`. Sent directly rather than through `oauth2`, whose
    /// revocation request refuses a non-HTTPS endpoint (the simulator's). A token Google no
    /// longer knows (400 `invalid_token`) counts as revoked.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), GoogleError> {
        let url = format!(
            "{}/revoke",
            self.config.oauth_base_url.trim_end_matches('/')
        );
        let response = self
            .oauth_http
            .post(url)
            .form(&[("token", refresh_token)])
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        match status {
            400 if text.contains("invalid_token") || text.contains("invalid_grant") => Ok(()),
            408 | 429 | 500..=599 => Err(GoogleError::Unavailable(format!("{status}: {text}"))),
            _ => Err(GoogleError::Rejected(format!("{status}: {text}"))),
        }
    }
}

fn granted(response: &GoogleTokenResponse) -> GrantedTokens {
    let expires_in = response
        .expires_in()
        .unwrap_or(std::time::Duration::from_secs(3600));
    let expires_at = Utc::now()
        + chrono::Duration::from_std(expires_in).unwrap_or_else(|_| chrono::Duration::hours(1));
    GrantedTokens {
        access_token: response.access_token().secret().to_owned(),
        refresh_token: response.refresh_token().map(|t| t.secret().to_owned()),
        expires_at,
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
        email: response
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(email_from_id_token),
    }
}

/// The `email` claim of an ID token's payload.
fn email_from_id_token(id_token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("email")?.as_str().map(str::to_owned)
}

fn token_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<RE, BasicErrorResponse>,
) -> GoogleError {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::ReconnectNeeded,
            _ => GoogleError::Rejected(response.to_string()),
        },
        RequestTokenError::Request(error) => GoogleError::Unavailable(error.to_string()),
        RequestTokenError::Parse(error, _) => {
            GoogleError::Unavailable(format!("unreadable token response: {error}"))
        }
        RequestTokenError::Other(message) => GoogleError::Unavailable(message),
    }
}

/// The required scopes `granted` lacks (Google may send full URLs for `email`, and the
/// tenant may untick a scope on the consent page).
pub fn missing_scopes(granted: &[String]) -> Vec<&'static str> {
    REQUIRED_SCOPES
        .iter()
        .copied()
        .filter(|required| !granted.iter().any(|g| g == required))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_comes_from_the_id_tokens_payload() {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let payload = URL_SAFE_NO_PAD.encode(br#"{"email":"owner@acme.test","sub":"1"}"#);
        assert_eq!(
            email_from_id_token(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig")).as_deref(),
            Some("owner@acme.test")
        );
        assert_eq!(email_from_id_token("not-a-jwt"), None);
    }

    #[test]
    fn missing_scopes_names_each_required_scope_not_granted() {
        let granted = vec![
            "openid".to_owned(),
            "https://www.googleapis.com/auth/calendar.events".to_owned(),
        ];
        assert_eq!(
            missing_scopes(&granted),
            vec!["https://www.googleapis.com/auth/calendar.freebusy"]
        );
    }
}
